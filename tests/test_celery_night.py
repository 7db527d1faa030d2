"""A night on real deployments: three parties, each an Airflow of separate processes (API server,
scheduler, DAG processor, triggerer) on the CeleryExecutor with a real Redis broker and two Celery
workers in private folders; runs triggered through the REST API, real Spark (``local[*]``), real
MPyC over mutual TLS, the local S3 server. The recipient's result (the reveal task's XCom) must equal the plaintext HHI;
``compute`` must run on the worker of the party's compute queue, the other tasks on the other
worker; and no aggregate or result file may be left in any worker's folder: tasks hand over
through XCom and the bucket, never through a local file.

Run it with ``pytest -m celery tests/test_celery_night.py``.
"""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.celery,
    pytest.mark.skipif(
        shutil.which("redis-server") is None,
        reason="redis-server (the Celery broker) is not installed: scripts/setup_system.sh",
    ),
]

DATE = "2024-04-01"
LOGICAL = "2024-04-01T00:00:00Z"
DAG_ID = "taxi_hhi"
RECIPIENT = "company_a"
LOCAL_TASKS = ("aggregate", "share", "reveal")  # the default queue's tasks


def party_roles() -> list[dict]:
    from conftest import small_parties

    parties = small_parties(inputs=3, computes=3, recipients=())
    for p in parties:
        if p["id"] == RECIPIENT:
            p["roles"].append("recipient")
    return parties


def wait_for(deployments, check, what: str, timeout: float) -> None:
    """Poll ``check()`` until true, failing at once if a process of any party exited."""
    deadline = time.monotonic() + timeout
    while not check():
        for d in deployments:
            d.check_alive()
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(2)


def run_state(api, run_id: str) -> str:
    status, body = api.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")
    return body["state"] if status == 200 else f"http {status}"


def task_instances(api, run_id: str) -> dict[str, dict]:
    status, body = api.call("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances")
    assert status == 200, body
    return {ti["task_id"]: ti for ti in body["task_instances"]}


def xcom(api, run_id: str, task_id: str):
    status, body = api.call(
        "GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value?deserialize=true"
    )
    assert status == 200, f"{task_id} XCom: {status} {body}"
    return body["value"]


def metadata_tables(path: Path) -> list[str]:
    """The tables of a SQLite file ([] if there is none)."""
    import sqlite3

    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        return [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]


def private_files(folder: Path) -> list[Path]:
    """Files a task could have left in a worker's folder, without Airflow's own task logs."""
    logs = folder / "airflow" / "logs"
    return [p for p in folder.rglob("*") if p.is_file() and logs not in p.parents]


def test_night_through_celery_workers(tmp_path, s3_server, federation):
    import demo
    from airflow_party import PartyDeployment, Redis
    from localnet import LocalParty, prepare_airflow_homes

    spec, keys = federation(party_roles())
    companies = [p.id for p in spec.parties]
    data_dir = tmp_path / "data"
    demo.datagen().generate(data_dir, companies, 6000, 11, "2024-01", "2024-03", defects=True)
    parties = [
        LocalParty(pid, tmp_path / "parties" / pid, spec.source.parent, data_dir / pid, keys[pid], s3_server)
        for pid in companies
    ]
    prepare_airflow_homes(parties, tmp_path / "airflow-template")

    redis = Redis(tmp_path / "redis").start()
    deployments = [
        PartyDeployment(p, redis, redis_db=i + 1, compute_queue=f"mpc-compute-{p.id}") for i, p in enumerate(parties)
    ]
    left: dict[str, set[int]] = {}
    try:
        for d in deployments:
            d.start()
        apis = {d.party.id: d.api() for d in deployments}
        by_id = {d.party.id: d for d in deployments}

        def ready() -> bool:
            for d in deployments:
                api = apis[d.party.id]
                if not (api.healthy() and api.password() and all(d.worker_ready(w) for w in d.worker_list)):
                    return False
                status, body = api.call("GET", f"/dags/{DAG_ID}")
                if status != 200:
                    _, errors = api.call("GET", "/importErrors")
                    assert not (isinstance(errors, dict) and errors.get("import_errors")), (d.party.id, errors)
                    return False
                if body.get("is_paused"):
                    api.call("PATCH", f"/dags/{DAG_ID}", {"is_paused": False})
                    return False
            return True

        wait_for(deployments, ready, "API servers healthy, DAG parsed and unpaused, workers ready", 300)

        runs = {}
        for pid, api in apis.items():
            status, body = api.call("POST", f"/dags/{DAG_ID}/dagRuns", {"logical_date": LOGICAL})
            assert status in (200, 201), f"{pid}: trigger failed ({status}): {body}"
            runs[pid] = body["dag_run_id"]
        wait_for(
            deployments,
            lambda: all(run_state(apis[p], r) in ("success", "failed") for p, r in runs.items()),
            "every party's run finished",
            600,
        )
        states = {p: run_state(apis[p], r) for p, r in runs.items()}
        tis = {p: task_instances(apis[p], r) for p, r in runs.items()}
        assert states == {p: "success" for p in runs}, {p: {t: ti["state"] for t, ti in tis[p].items()} for p in runs}

        # The recipient's result, from the reveal task's XCom, equals the plaintext HHI over the pooled data.
        result = xcom(apis[RECIPIENT], runs[RECIPIENT], "reveal")
        date = datetime.fromisoformat(DATE).replace(tzinfo=UTC)
        expected = demo.plaintext_hhi(data_dir, companies, spec.months(date), spec.program_params, spec.data_policy)
        hhi = result["outputs"]["hhi"]
        assert result["roster"] == companies
        assert hhi["labels"] == ["all", "2024-01", "2024-02", "2024-03"]
        assert [Decimal(x) for x in hhi["exact"]] == [expected[label] for label in hhi["labels"]]

        for pid, d in by_id.items():
            compute_worker, local_worker = d.worker_list
            ran = tis[pid]
            # compute on the worker at the MPC endpoint, through the party's compute queue ...
            assert ran["compute"]["queue"] == f"mpc-compute-{pid}", ran["compute"]
            assert ran["compute"]["hostname"] == compute_worker.name, ran["compute"]
            assert xcom(apis[pid], runs[pid], "compute")["tls"] is True  # MPyC's channels ran over mutual TLS
            # ... everything else on the other worker: both workers ran tasks of this party.
            for task in LOCAL_TASKS:
                if task in ran:
                    assert ran[task]["hostname"] == local_worker.name, (task, ran[task])
            # Each worker's own log folder holds the logs of its tasks only.
            for worker, tasks in ((compute_worker, {"compute"}), (local_worker, set(ran) - {"compute"})):
                logged = {
                    p.parent.name.removeprefix("task_id=")
                    for p in (worker.airflow_home / "logs").rglob("attempt=*.log")
                }
                assert logged == tasks, (worker.name, logged)
                # A worker has no metadata database: none is configured for it (it talks to the API
                # server's execution API only); at most Airflow left an empty SQLite file at its default path.
                assert metadata_tables(worker.airflow_home / "airflow.db") == [], worker.name
            # The aggregate went from `aggregate` to `share` as XCom, not as a file on a worker.
            assert xcom(apis[pid], runs[pid], "aggregate")["values"]["revenue_cents"]
            for worker in d.worker_list:
                leftovers = [
                    p
                    for p in private_files(worker.folder)
                    if "aggregate" in p.name or "result" in p.name or b"revenue_cents" in p.read_bytes()
                ]
                assert not leftovers, (worker.name, leftovers)
    finally:
        for d in deployments:
            left[d.party.id] = d.stop()
        redis.stop()
    assert not any(left.values()), f"processes that survived the stop: {left}"
