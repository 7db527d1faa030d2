"""The DAG file as Airflow parses it: no import errors, the right tasks per role, and a cheap parse."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from conftest import REPO

PARSE = textwrap.dedent("""
    import json, socket, sys
    def no_network(*args, **kwargs):
        raise AssertionError("network access while parsing DAGs")
    socket.socket.connect = no_network
    socket.create_connection = no_network
    from airflow.dag_processing.dagbag import DagBag
    before = set(sys.modules)
    bag = DagBag(dag_folder=sys.argv[1])
    added = {m.split(".")[0] for m in set(sys.modules) - before}
    heavy = sorted(added & {"mpyc", "gmpy2", "boto3", "botocore", "nacl", "pyspark", "py4j", "cryptography"})
    print(json.dumps({
        "errors": {k: str(v) for k, v in bag.import_errors.items()},
        "heavy": heavy,
        "dags": {d.dag_id: {"tags": sorted(d.tags), "schedule": str(d.schedule), "catchup": d.catchup,
                            "tasks": [t.task_id for t in d.topological_sort()],
                            "owners": sorted({t.owner for t in d.tasks}),
                            "retries": sorted({t.retries for t in d.tasks}),
                            "docs": all(t.doc_md for t in d.tasks) and bool(d.doc_md),
                            "deferrable": [t.task_id for t in d.tasks if getattr(t, "deferrable", False)]}
                 for d in bag.dags.values()},
    }))
""")


def parse_as(party: str | None, tmp_path, spec_dir=None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MPC_"))}
    env.update({"AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
                "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
                "PYTHONPATH": str(REPO / "plugins")})
    if party is not None:
        env["MPC_PARTY_ID"] = party
    if spec_dir is not None:
        env["MPC_SPEC_DIR"] = str(spec_dir)
    out = subprocess.run([sys.executable, "-c", PARSE, str(REPO / "dags")], env=env, capture_output=True,
                         text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_each_role_gets_only_its_tasks(tmp_path):
    expected = {
        "company_a": ["aggregate", "share", "wait_for_inputs", "compute"],
        "company_d": ["aggregate", "share", "confirm_inclusion"],
        "regulator": ["wait_for_result", "reveal"],
    }
    for party, tasks in expected.items():
        parsed = parse_as(party, tmp_path)
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


def test_missing_party_id_is_a_clear_import_error(tmp_path):
    parsed = parse_as(None, tmp_path)
    assert parsed["dags"] == {}
    [message] = parsed["errors"].values()
    assert "MPC_PARTY_ID is not set" in message


def test_unknown_party_is_a_clear_import_error(tmp_path):
    parsed = parse_as("company_z", tmp_path)
    [message] = parsed["errors"].values()
    assert "'company_z'" in message and "not a member" in message


def test_broken_spec_names_the_field(tmp_path):
    spec_dir = tmp_path / "specs"
    spec_dir.mkdir()
    text = (REPO / "include" / "federations" / "taxi_hhi.yaml").read_text()
    text = text.replace("threshold: 1", "threshold: 2").replace("../", str(REPO / "include") + "/")
    (spec_dir / "taxi_hhi.yaml").write_text(text)
    parsed = parse_as("company_a", tmp_path, spec_dir)
    [message] = parsed["errors"].values()
    assert "threshold" in message and "2t < 3" in message
