"""Shared fixtures: the project on sys.path, a real local S3 API server, and federations with fresh keys."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / ".venv" / "bin"
for folder in (REPO / "plugins", REPO / "scripts"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import localnet  # noqa: E402

# Every key the tests make is marked as a test key (localnet.test_keys); the tests' environment
# allows them explicitly, as the demo's and the testbed's do. A test of the production refusal
# removes this setting.
os.environ["AIRFLOW__MPC__ALLOW_TEST_KEYS"] = "True"
# As on every MPC party (localnet, bootstrap_party.sh): the sensors wait in the triggerer.
os.environ["AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE"] = "True"

TAXI_TEMPLATE = REPO / "include" / "federations" / "taxi_hhi.yaml"


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "celery: a night on Airflow deployments with Celery workers and a Redis "
        "broker (tests/test_celery_night.py; needs redis-server)",
    )


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A local S3 API server on a free loopback port, for the whole session: moto, or with
    ``MPC_TEST_S3=rclone`` rclone's (``rclone serve s3``, which needs ``conditional_writes: emulated``)."""
    server = localnet.S3Server(tmp_path_factory.mktemp("s3")).start()
    yield server
    server.stop()


def in_threads(calls: dict, timeout: float = 180) -> dict:
    """Every callable of ``calls`` in a thread of its own, all at once, as the parties' tasks run:
    {key: what it returned, or the exception it raised}.

    :param timeout: seconds to wait for each thread.
    """
    import threading

    out: dict = {}

    def go(key, call):
        try:
            out[key] = call()
        except Exception as exc:  # noqa: BLE001 - returned to the test
            out[key] = exc

    threads = [threading.Thread(target=go, args=item) for item in calls.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return out


def compute_all(runs: dict, attempt: int, parties, alongside=()) -> dict:
    """The compute stage of ``parties`` at once (and ``alongside``, callables run in threads too), as
    their tasks run it: {party: its result or the exception it raised}."""
    from mpc_federation import stages

    calls = {pid: functools.partial(stages.compute, runs[pid], attempt=attempt) for pid in parties}
    out = in_threads({**calls, **{("alongside", i): call for i, call in enumerate(alongside)}}, timeout=120)
    return {pid: out[pid] for pid in parties if pid in out}


def compute_each(runs: list, **kwargs) -> dict:
    """The compute stage of every PartyRun in ``runs`` at once; their results by party (asserts that
    none failed).

    :param kwargs: for ``stages.compute`` (attempt, timeouts).
    """
    from mpc_federation import stages

    out = in_threads({run.party_id: functools.partial(stages.compute, run, **kwargs) for run in runs})
    errors = {pid: value for pid, value in out.items() if isinstance(value, Exception)}
    assert not errors, errors
    return out


def write_spec(folder: Path, raw: dict | str, name: str = "spec.yaml") -> Path:
    """A spec file from its YAML text or its parsed form."""
    path = folder / name
    path.write_text(raw if isinstance(raw, str) else yaml.safe_dump(raw, sort_keys=False))
    return path


def raw_template(path: Path = TAXI_TEMPLATE) -> dict:
    """A built-in spec's parsed form, its program and job given as absolute paths (to be written anywhere)."""
    raw = yaml.safe_load(path.read_text())
    raw["program"]["file"] = str((path.parent / raw["program"]["file"]).resolve())
    raw["aggregation"]["job"] = str((path.parent / raw["aggregation"]["job"]).resolve())
    return raw


def load_raw(folder: Path, raw: dict, name: str = "spec.yaml"):
    """The FederationSpec of a parsed spec, written to ``folder`` and loaded as a party loads it."""
    from mpc_federation.spec import load_spec

    return load_spec(write_spec(folder, raw, name))


def spark_submit(job: Path, args: list[str], cwd: Path, master: str = "local[2]", conf=None) -> subprocess.Popen:
    """``spark-submit --master <master> [--conf k=v ...] <job> <args>`` with the project's Python,
    started (see :func:`finish`)."""
    env = dict(
        os.environ,
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        PYSPARK_PYTHON=str(BIN / "python"),
        PYSPARK_DRIVER_PYTHON=str(BIN / "python"),
    )
    confs = [x for key, value in (conf or {}).items() for x in ("--conf", f"{key}={value}")]
    cmd = [str(BIN / "spark-submit"), "--master", master, *confs, str(job), *args]
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 600) -> subprocess.CompletedProcess:
    """Wait for a process started with pipes; its exit code and output."""
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def upload_folder(server, folder: Path, bucket: str, prefix: str) -> str:
    """Every file under ``folder`` to ``s3a://<bucket>/<prefix>/`` on the test S3 server (the
    bucket made if needed); that URI."""
    client = server.store_config(bucket).client()
    if bucket not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
        client.create_bucket(Bucket=bucket)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder).as_posix()}")
    return f"s3a://{bucket}/{prefix}"


def write_trips(folder: Path, fares, months=("2024-01", "2024-02")) -> Path:
    """A tiny trips dataset with the given fares (a pyarrow array), pickups alternating over ``months``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True)
    pickup = pa.array([f"{months[i % len(months)]}-1{i % 10} 08:00:00" for i in range(len(fares))]).cast(
        pa.timestamp("us")
    )
    pq.write_table(pa.table({"tpep_pickup_datetime": pickup, "fare_amount": fares}), folder / "part-00000.parquet")
    return folder


def write_aggregate(path: Path, party: str, labels: list[str], values: dict[str, list[int]]) -> Path:
    """An input party's aggregate file, as the Spark jobs write it."""
    from mpc_federation.programs import AGGREGATE_FORMAT

    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"format": AGGREGATE_FORMAT, "party": party, "dimensions": {"market": labels}, "values": values}
    path.write_text(json.dumps(doc))
    return path


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

    def make(
        parties: list[dict] | None = None,
        template: Path = TAXI_TEMPLATE,
        overrides: dict | None = None,
        name: str = "federation",
    ):
        parties = parties if parties is not None else small_parties()
        # A prefix of its own per test, so runs of the same date never meet across tests.
        overrides = {
            "coordination": {"bucket": "mpc-coordination", "prefix": f"t{uuid.uuid4().hex[:12]}"},
            **(overrides or {}),
        }
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
    # boto3 is not on the list: declaring the reveal task's result asset makes Airflow load every
    # provider's asset URI handlers, the Amazon provider's among them (no client, no network).
    heavy = sorted(added & {"mpyc", "gmpy2", "nacl", "pyspark", "py4j", "cryptography"})
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
                            "wait_in_task": [
                                t.task_id
                                for t in d.tasks
                                if getattr(t, "wait_for_inputs", False) or getattr(t, "wait_for_result", False)
                            ],
                            "types": {t.task_id: type(t).__name__ for t in d.tasks},
                            "aggregate_args": list(getattr(d.task_dict.get("aggregate"), "application_args", [])),
                            "serialized": len(serialized[d.dag_id]),
                            "secret_in_serialized": "authenticate.secret" in serialized[d.dag_id]}
                 for d in bag.dags.values()},
    }))
""")


def parse_dags(party: str | None, tmp_path, spec_dir=None, *, deferrable: bool = True, **mpc: str) -> dict:
    """The project's DAG folder parsed by Airflow's DagBag in a fresh process, as ``party``, with the
    network blocked: import errors, heavy modules imported, and per DAG what a test checks.

    :param mpc: more ``[mpc]`` settings (``wait_in_task="True"``)."""
    env = localnet.outside_environ()
    env.update(
        {
            "AIRFLOW_HOME": str(tmp_path / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": str(deferrable),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "PYTHONPATH": str(REPO / "plugins"),
        }
    )
    if party is not None:
        env["AIRFLOW__MPC__PARTY_ID"] = party
    if spec_dir is not None:
        env["AIRFLOW__MPC__SPEC_DIR"] = str(spec_dir)
    env.update({f"AIRFLOW__MPC__{key.upper()}": value for key, value in mpc.items()})
    out = subprocess.run(
        [sys.executable, "-c", PARSE, str(REPO / "dags")], env=env, capture_output=True, text=True, timeout=180
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def party_settings(**changes):
    """A party's ``[mpc]`` settings as a test states them (MPCSettings), without Airflow's config."""
    from mpc_operators.settings import MPCSettings

    values = {
        "party_id": "company_a",
        "spec_dir": REPO / "include" / "federations",
        "data_uri": "/data",
        "ledger_uri": "/ledger",
        "results_uri": "",
        "aggregate_uri": "",
        "compute_queue": "",
        "wait_in_task": "near",
        "allow_test_keys": False,
    }
    return MPCSettings(**{**values, **changes})
