"""The DAG file as Airflow parses it: no import errors, the right tasks per role, and a cheap parse."""

from __future__ import annotations

from conftest import REPO, parse_dags


def test_each_role_gets_only_its_tasks(tmp_path):
    """[mpc] wait_in_task = near, the default: no sensor before compute and reveal, which defer
    while the rendezvous is far and then wait themselves; an input party confirms its inclusion in
    the triggerer."""
    expected = {
        "company_a": ["aggregate", "share", "compute"],
        "company_d": ["aggregate", "share", "confirm_inclusion"],
        "regulator": ["reveal"],
    }
    for party, tasks in expected.items():
        parsed = parse_dags(party, tmp_path)
        assert parsed["errors"] == {}
        assert parsed["heavy"] == [], f"parsing imported {parsed['heavy']}"
        dag = parsed["dags"]["taxi_hhi"]
        assert dag["tasks"] == tasks
        assert dag["owners"] == [party]
        assert dag["retries"] == [2]
        assert "mpc" in dag["tags"] and "taxi_hhi" in dag["tags"]
        assert dag["catchup"] is False
        assert dag["docs"], "every task and the DAG carry doc_md"
        waiting = [t for t in tasks if t in ("compute", "reveal")]
        assert dag["wait_in_task"] == waiting
        assert dag["deferrable"] == [t for t in tasks if t in ("confirm_inclusion", *waiting)]
        # A recipient also gets its report DAG, scheduled on the result asset.
        assert ("taxi_hhi_report" in parsed["dags"]) == (party == "regulator")


def test_wait_in_task_says_who_waits(tmp_path):
    """False: a sensor before compute and reveal waits until the stage is ready (the task does not
    wait); True: the tasks wait throughout, never deferring. An input party still confirms its
    inclusion in the triggerer either way; a value that is none of these is a clear import error."""
    expected = {
        "False": {
            "company_a": (["aggregate", "share", "wait_for_inputs", "compute"], [], ["wait_for_inputs"]),
            "regulator": (["wait_for_result", "reveal"], [], ["wait_for_result"]),
        },
        "True": {
            "company_a": (["aggregate", "share", "compute"], ["compute"], []),
            "company_d": (["aggregate", "share", "confirm_inclusion"], [], ["confirm_inclusion"]),
            "regulator": (["reveal"], ["reveal"], []),
        },
    }
    for mode, parties in expected.items():
        for party, (tasks, in_task, deferrable) in parties.items():
            parsed = parse_dags(party, tmp_path, wait_in_task=mode)
            assert parsed["errors"] == {}
            dag = parsed["dags"]["taxi_hhi"]
            assert (dag["tasks"], dag["wait_in_task"], dag["deferrable"]) == (tasks, in_task, deferrable), mode
    [message] = parse_dags("company_a", tmp_path, wait_in_task="sometimes")["errors"].values()
    assert "[mpc] wait_in_task must be False, near or True, not 'sometimes'" in message


def test_sensors_and_waiting_tasks_follow_airflows_default_deferrable(tmp_path):
    """An Airflow that does not defer (no triggerer): the sensors poke, and ``[mpc] wait_in_task =
    near`` falls back to them (public keys only) rather than to a task that holds this party's keys
    for the whole night."""
    parsed = {party: parse_dags(party, tmp_path, deferrable=False) for party in ("company_a", "company_d")}
    assert all(p["errors"] == {} and p["dags"]["taxi_hhi"]["deferrable"] == [] for p in parsed.values())
    dag = parsed["company_a"]["dags"]["taxi_hhi"]
    assert dag["tasks"] == ["aggregate", "share", "wait_for_inputs", "compute"] and dag["wait_in_task"] == []


def test_missing_party_id_is_a_clear_import_error(tmp_path):
    parsed = parse_dags(None, tmp_path)
    assert parsed["dags"] == {}
    [message] = parsed["errors"].values()
    assert "[mpc] party_id is not set (AIRFLOW__MPC__PARTY_ID)" in message


def test_unknown_party_is_a_clear_import_error(tmp_path):
    parsed = parse_dags("company_z", tmp_path)
    [message] = parsed["errors"].values()
    assert "'company_z'" in message and "not a member" in message


def test_broken_spec_names_the_field(tmp_path):
    spec_dir = tmp_path / "specs"
    spec_dir.mkdir()
    text = (REPO / "include" / "federations" / "taxi_hhi.yaml").read_text()
    text = text.replace("threshold: 1", "threshold: 2").replace("../", str(REPO / "include") + "/")
    (spec_dir / "taxi_hhi.yaml").write_text(text)
    parsed = parse_dags("company_a", tmp_path, spec_dir)
    [message] = parsed["errors"].values()
    assert "threshold" in message and "2t < 3" in message
