"""Tasks hand data over through XCom or object storage, never through a file on the worker's disk;
the DAG a user builds from a spec takes their DAG arguments and this party's [mpc] settings.
(The night through real Celery workers with separate folders is tests/test_celery_night.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import REPO, party_settings

SPEC = REPO / "include" / "federations" / "taxi_hhi.yaml"


def settings(tmp_path, **changes):
    values = {"data_uri": "s3a://trips-bucket/yellow", "ledger_uri": str(tmp_path / "ledger"), **changes}
    return party_settings(**values)


class FakeTI:
    def __init__(self, xcom):
        self.xcom, self.pulled = xcom, []

    def xcom_pull(self, task_ids):
        self.pulled.append(task_ids)
        return self.xcom


def test_the_dag_takes_the_users_arguments_and_the_partys_settings(tmp_path):
    from mpc_operators.dag import federation_dag
    from mpc_operators.reveal import result_asset

    dag = federation_dag(
        SPEC,
        settings=settings(tmp_path, compute_queue="mpc-compute-company_a"),
        tags=["nightly"],
        default_args={"retries": 5},
        max_active_runs=2,
    )
    assert dag.dag_id == "taxi_hhi" and dag.tags == {"nightly"} and dag.max_active_runs == 2
    tasks = dag.task_dict
    assert list(tasks) == ["aggregate", "share", "compute"]
    assert tasks["share"].retries == 5 and tasks["share"].owner == "company_a"  # defaults merged, not replaced
    assert tasks["compute"].queue == "mpc-compute-company_a"  # the workers at the MPC endpoint
    assert {tasks[t].queue for t in ("aggregate", "share")} == {"default"}
    assert tasks["compute"].ledger_uri == str(tmp_path / "ledger")
    # The input is a URI handed to Spark unchanged (pathlib would fold s3a:// into s3a:/).
    args = tasks["aggregate"].application_args
    assert args[args.index("--input") + 1] == "s3a://trips-bucket/yellow/" + _spec_input()

    regulator = federation_dag(SPEC, party_id="regulator", settings=settings(tmp_path, party_id=""))
    assert list(regulator.task_dict) == ["reveal"]
    assert regulator.task_dict["reveal"].outlets == [result_asset("taxi_hhi")]
    assert regulator.timetable is not None and regulator.dag_id == "taxi_hhi"

    with pytest.raises(ValueError, match="DAG id of a federation is its computation 'taxi_hhi'"):
        federation_dag(SPEC, settings=settings(tmp_path), dag_id="my_hhi")
    # The run key is the logical date: a party on another schedule would never meet the others.
    with pytest.raises(ValueError, match="schedule of federation 'taxi_hhi' is its spec's '0 3 \\* \\* \\*'"):
        federation_dag(SPEC, settings=settings(tmp_path), schedule="@daily")
    manual = federation_dag(SPEC, settings=settings(tmp_path), schedule=None)  # runs triggered by hand
    assert type(manual.timetable).__name__ == "NullTimetable"
    assert federation_dag(SPEC, settings=settings(tmp_path), schedule="0 3 * * *").dag_id == "taxi_hhi"


def _spec_input() -> str:
    from mpc_federation.spec import load_spec

    return load_spec(SPEC).aggregation_input


def test_share_takes_the_aggregate_from_xcom_or_a_uri(tmp_path):
    from mpc_federation.stages import StageError
    from mpc_operators.share import MPCShareOperator

    aggregate = {"format": "mpc-aggregate/1", "party": "company_a", "values": {"revenue_cents": [1, 2]}}
    share = MPCShareOperator(task_id="share", spec_path=str(SPEC), party_id="company_a")
    ti = FakeTI(aggregate)
    assert share.aggregate({"ti": ti}) == aggregate and ti.pulled == ["aggregate"]
    with pytest.raises(StageError, match="no aggregate in the XCom of task 'aggregate'"):
        share.aggregate({"ti": FakeTI(None)})

    path = tmp_path / "elsewhere" / "aggregate.json"
    path.parent.mkdir()
    path.write_text(json.dumps(aggregate))
    from_uri = MPCShareOperator(
        task_id="share", spec_path=str(SPEC), party_id="company_a", aggregate_uri=f"file://{path}"
    )
    assert from_uri.aggregate({"ti": FakeTI(None)}) == aggregate
    path.write_text("{not json")
    with pytest.raises(StageError, match="is not valid JSON"):
        from_uri.aggregate({})
    path.unlink()
    with pytest.raises(StageError, match=f"aggregate file://{path} not found"):
        from_uri.aggregate({})


def test_reveal_keeps_a_copy_at_the_results_uri(tmp_path):
    from mpc_operators.reveal import MPCRevealOperator

    result = {"computation": "taxi_hhi", "run": "20240401T000000Z", "attempt": 1, "outputs": {}}
    reveal = MPCRevealOperator(
        task_id="reveal", spec_path=str(SPEC), party_id="regulator", results_uri=f"file://{tmp_path}/results"
    )
    written = reveal.write_copy(result)
    record = Path(tmp_path / "results" / "taxi_hhi" / "20240401T000000Z" / "result.json")
    assert written.endswith("taxi_hhi/20240401T000000Z/result.json")
    assert json.loads(record.read_text()) == result


def test_the_ledger_copy_lives_at_a_uri(tmp_path):
    from mpc_federation import ledger

    class Spec:
        computation = "taxi_hhi"

    path = ledger.write_private(f"file://{tmp_path}/ledger", Spec, "20240401T000000Z", 2, b"signed")
    assert (tmp_path / "ledger" / "taxi_hhi" / "20240401T000000Z-attempt-2").read_bytes() == b"signed"
    local = ledger.write_private(tmp_path / "local", Spec, "20240401T000000Z", 1, b"x")
    assert local.read_bytes() == b"x" and not list(local.parent.glob("*.tmp"))
    assert str(path).endswith("20240401T000000Z-attempt-2")


def test_wait_in_task_near_makes_the_tasks_wait_deferring_while_far(tmp_path, monkeypatch):
    from mpc_operators.dag import federation_dag
    from mpc_operators.settings import PartyConfigError, wait_mode

    assert [wait_mode(v) for v in ("False", "0", "no", "near", " Near ", "True", "1")] == [
        "sensors",
        "sensors",
        "sensors",
        "near",
        "near",
        "tasks",
        "tasks",
    ]
    with pytest.raises(PartyConfigError, match="must be False, near or True, not 'later'"):
        wait_mode("later")
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")
    for party, task_id in (("company_a", "compute"), ("regulator", "reveal")):
        dag = federation_dag(SPEC, party_id=party, settings=settings(tmp_path, party_id=""))  # near, the default
        task = dag.task_dict[task_id]
        assert not any(t.startswith("wait_for_") for t in dag.task_dict)
        assert task.deferrable and task.waits()
        dag = federation_dag(SPEC, party_id=party, settings=settings(tmp_path, party_id="", wait_in_task="tasks"))
        assert dag.task_dict[task_id].waits() and not dag.task_dict[task_id].deferrable  # waits throughout
        dag = federation_dag(SPEC, party_id=party, settings=settings(tmp_path, party_id="", wait_in_task="sensors"))
        assert any(t.startswith("wait_for_") for t in dag.task_dict) and not dag.task_dict[task_id].waits()
    # Without a triggerer, near falls back to the sensors, not to a task that waits all night.
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "False")
    dag = federation_dag(SPEC, party_id="company_a", settings=settings(tmp_path, party_id=""))
    assert "wait_for_inputs" in dag.task_dict and not dag.task_dict["compute"].wait_for_inputs


def test_compute_and_reveal_used_alone_follow_the_partys_settings(tmp_path, monkeypatch):
    """Given no wait_for_* (outside federation_dag), a task waits for its stage itself unless sensors
    do (``[mpc] wait_in_task`` False, or near without a triggerer); a compute task given no
    ledger_uri keeps its private ledger copy at ``[mpc] ledger_uri``; a reveal task given no
    results_uri keeps its copy at ``[mpc] results_uri``."""
    from mpc_operators import MPCComputeOperator, MPCRevealOperator

    common = {"spec_path": str(SPEC), "party_id": "company_a"}
    compute = MPCComputeOperator(task_id="compute", **common)
    reveal = MPCRevealOperator(task_id="reveal", **common)
    for mode, deferrable, waits in (
        ("near", "True", True),
        ("near", "False", False),  # no triggerer: sensors wait, as in federation_dag's DAGs
        ("True", "False", True),
        ("False", "True", False),
    ):
        monkeypatch.setenv("AIRFLOW__MPC__WAIT_IN_TASK", mode)
        monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", deferrable)
        assert compute.waits() is waits and reveal.waits() is waits, (mode, deferrable)
    assert MPCComputeOperator(task_id="c", wait_for_inputs=True, **common).waits() is True  # given: kept
    assert MPCRevealOperator(task_id="r", wait_for_result=False, **common).waits() is False
    monkeypatch.setenv("AIRFLOW__MPC__LEDGER_URI", str(tmp_path / "ledger"))
    assert compute.ledger_dir() == str(tmp_path / "ledger")
    assert MPCComputeOperator(task_id="c", ledger_uri="s3://own/ledger", **common).ledger_dir() == "s3://own/ledger"
    monkeypatch.setenv("AIRFLOW__MPC__RESULTS_URI", str(tmp_path / "results"))
    assert reveal.results_root() == str(tmp_path / "results")
    assert MPCRevealOperator(task_id="r", results_uri="", **common).results_root() == ""  # XCom only


def test_a_partys_configuration_errors_fail_the_task_at_once(monkeypatch):
    """A missing connection, or keys of another party, cannot be fixed by a retry: the task fails
    at once (AirflowFailException) instead of retrying while the other parties wait."""
    import localnet
    from airflow.sdk.exceptions import AirflowFailException

    from mpc_operators.base import open_party_run_for

    context = {"logical_date": None, "dag_run": None}
    with pytest.raises(AirflowFailException, match="AirflowNotFoundException: .*no_such_keys"):
        open_party_run_for(str(SPEC), "company_a", context, keys_conn_id="no_such_keys")
    monkeypatch.setenv("AIRFLOW__MPC__ALLOW_TEST_KEYS", "True")
    keys = localnet.test_keys("company_b").to_json()
    monkeypatch.setenv("AIRFLOW_CONN_B_KEYS", json.dumps({"conn_type": "generic", "password": keys}))
    with pytest.raises(AirflowFailException, match="'b_keys' holds the keys of 'company_b', not 'company_a'"):
        open_party_run_for(str(SPEC), "company_a", context, keys_conn_id="b_keys")
    monkeypatch.setenv("AIRFLOW_CONN_NO_PASSWORD", json.dumps({"conn_type": "generic"}))
    with pytest.raises(AirflowFailException, match="PartyConfigError: connection 'no_password' has no password"):
        open_party_run_for(str(SPEC), "company_a", context, keys_conn_id="no_password")
