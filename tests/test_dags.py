"""The DAG file as Airflow parses it: no import errors, the right tasks per role, and a cheap parse."""

from __future__ import annotations

from conftest import REPO, parse_dags


def test_each_role_gets_only_its_tasks(tmp_path):
    expected = {
        "company_a": ["aggregate", "share", "wait_for_inputs", "compute"],
        "company_d": ["aggregate", "share", "confirm_inclusion"],
        "regulator": ["wait_for_result", "reveal"],
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
        assert dag["deferrable"] == [t for t in tasks if t.startswith("wait_for_") or t == "confirm_inclusion"]
        assert dag["wait_in_task"] == []
        # A recipient also gets its report DAG, scheduled on the result asset.
        assert ("taxi_hhi_report" in parsed["dags"]) == (party == "regulator")


def test_with_wait_in_task_the_compute_and_reveal_tasks_wait_themselves(tmp_path):
    """[mpc] wait_in_task: no sensor task before compute and reveal (no hand-off on the rendezvous);
    an input party still confirms its inclusion in the triggerer."""
    expected = {
        "company_a": ["aggregate", "share", "compute"],
        "company_d": ["aggregate", "share", "confirm_inclusion"],
        "regulator": ["reveal"],
    }
    for party, tasks in expected.items():
        parsed = parse_dags(party, tmp_path, wait_in_task="True")
        assert parsed["errors"] == {}
        assert parsed["dags"]["taxi_hhi"]["tasks"] == tasks
        assert parsed["dags"]["taxi_hhi"]["wait_in_task"] == [t for t in tasks if t in ("compute", "reveal")]


def test_sensors_follow_airflows_default_deferrable(tmp_path):
    parsed = parse_dags("company_d", tmp_path, deferrable=False)
    assert parsed["errors"] == {} and parsed["dags"]["taxi_hhi"]["deferrable"] == []


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
