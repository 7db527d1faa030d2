"""Shared fixtures: the project on sys.path, a real local S3 API server, and federations with fresh keys."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
for folder in (REPO / "plugins", REPO / "scripts"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import localnet  # noqa: E402

# Every key the tests make is marked as a test key (localnet.test_keys); the tests' environment
# allows them explicitly, as the demo's and the testbed's do. A test of the production refusal
# removes this variable.
os.environ["MPC_ALLOW_TEST_KEYS"] = "1"

TAXI_TEMPLATE = REPO / "include" / "federations" / "taxi_hhi.yaml"


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A local S3 API server on a free loopback port, for the whole session: moto, or with
    ``MPC_TEST_S3=rclone`` rclone's (``rclone serve s3``, which needs ``conditional_writes: emulated``)."""
    server = localnet.S3Server(tmp_path_factory.mktemp("s3")).start()
    yield server
    server.stop()


def compute_all(runs: dict, attempt: int, parties, alongside=()) -> dict:
    """The compute stage of ``parties`` at once (and ``alongside``, callables run in threads too), as
    their tasks run it: {party: its result or the exception it raised}."""
    import threading

    from mpc_federation import stages

    out: dict = {}

    def go(pid):
        try:
            out[pid] = stages.compute(runs[pid], attempt=attempt)
        except Exception as exc:  # noqa: BLE001 - inspected by the test
            out[pid] = exc

    threads = [threading.Thread(target=go, args=(pid,)) for pid in parties]
    threads += [threading.Thread(target=target) for target in alongside]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return out


def small_parties(inputs: int = 3, computes: int = 3, recipients: tuple[str, ...] = ("regulator",)) -> list[dict]:
    """Parties for a test federation: the first ``computes`` input parties also compute."""
    parties = []
    for i in range(inputs):
        roles = ["input", "compute"] if i < computes else ["input"]
        parties.append({"id": f"company_{chr(ord('a') + i)}", "roles": roles})
    parties += [{"id": r, "roles": ["recipient"]} for r in recipients]
    return parties


@pytest.fixture
def federation(tmp_path, s3_server):
    """Factory: a rendered spec with fresh keys and free ports, and its bucket created."""
    from mpc_federation.spec import load_spec
    from mpc_federation.store import CoordinationStore

    def make(parties: list[dict] | None = None, template: Path = TAXI_TEMPLATE, overrides: dict | None = None,
             name: str = "federation"):
        parties = parties if parties is not None else small_parties()
        # A prefix of its own per test, so runs of the same date never meet across tests.
        overrides = {"coordination": {"bucket": "mpc-coordination", "prefix": f"t{uuid.uuid4().hex[:12]}"},
                     **(overrides or {})}
        keys = {p["id"]: localnet.test_keys(p["id"]) for p in parties}
        path = localnet.render_spec(template, tmp_path / name, keys, parties=parties, overrides=overrides)
        spec = load_spec(path)
        CoordinationStore(s3_server.store_config(spec.bucket)).ensure_bucket()
        return spec, keys

    return make


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
    from airflow.serialization.serialized_objects import DagSerialization
    serialized = {d.dag_id: json.dumps(DagSerialization.to_dict(d)) for d in bag.dags.values()}
    print(json.dumps({
        "errors": {k: str(v) for k, v in bag.import_errors.items()},
        "heavy": heavy,
        "dags": {d.dag_id: {"tags": sorted(d.tags), "schedule": str(d.schedule), "catchup": d.catchup,
                            "tasks": [t.task_id for t in d.topological_sort()],
                            "owners": sorted({t.owner for t in d.tasks}),
                            "retries": sorted({t.retries for t in d.tasks}),
                            "docs": all(t.doc_md for t in d.tasks) and bool(d.doc_md),
                            "deferrable": [t.task_id for t in d.tasks if getattr(t, "deferrable", False)],
                            "types": {t.task_id: type(t).__name__ for t in d.tasks},
                            "aggregate_args": list(getattr(d.task_dict.get("aggregate"), "application_args", [])),
                            "serialized": len(serialized[d.dag_id]),
                            "secret_in_serialized": "authenticate.secret" in serialized[d.dag_id]}
                 for d in bag.dags.values()},
    }))
""")


def parse_dags(party: str | None, tmp_path, spec_dir=None) -> dict:
    """The project's DAG folder parsed by Airflow's DagBag in a fresh process, as ``party``, with the
    network blocked: import errors, heavy modules imported, and per DAG what a test checks."""
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
