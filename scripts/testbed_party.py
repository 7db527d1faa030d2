"""Starting one testbed party: its keys, its input data, its Airflow (through the bootstrap script
the EC2 hosts run), and waiting until it is ready."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import time
from pathlib import Path

from localnet import REPO, LocalParty, outside_environ, test_keys
from testbed_api import USER, PartyAPI
from testbed_procs import alive, read_pid
from testbed_state import say

from mpc_federation.envelope import PartyKeys
from mpc_federation.programs import import_file

BOOTSTRAP = REPO / "infra" / "scripts" / "bootstrap_party.sh"

# Settings that keep N Airflows on a 2-core machine (see docs/testbed.md for the measurements).
LEAN_SETTINGS = {
    "AIRFLOW__CORE__PARALLELISM": "2",  # a party runs one chain of tasks; sensors defer
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__API__WORKERS": "1",
    "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "300",  # the DAG file does not change
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "300",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "10",
    "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "10",
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "10",
    "SPARK_DRIVER_MEMORY": "512m",
}


def party_keys(folder: Path, ids: list[str]) -> dict[str, PartyKeys]:
    """Every party's keys, kept in ``folder`` across restarts of the same testbed; all marked as test
    keys (a testbed's parties allow them, a production party refuses them)."""
    folder.mkdir(exist_ok=True, mode=0o700)
    keys = {}
    for pid in ids:
        path = folder / f"{pid}.json"
        if path.is_file():
            keys[pid] = PartyKeys.from_json(path.read_text(), allow_test_keys=True)
        if pid not in keys or not keys[pid].test_only:  # new, or made before test keys were marked
            keys[pid] = dataclasses.replace(keys[pid], test_only=True) if pid in keys else test_keys(pid)
            path.write_text(keys[pid].to_json())
            os.chmod(path, 0o600)
    return keys


def generate_data(raw_spec: dict, data_dir: Path, companies: list[str], args) -> None:
    """Synthetic private input of every input party, by the spec's aggregation input."""
    kind = (raw_spec.get("aggregation") or {}).get("input", "")
    if all((data_dir / c / kind).is_dir() and any((data_dir / c / kind).iterdir()) for c in companies):
        return
    if kind == "trips":
        say(f"Generating {args.trips:,} taxi trips ({args.months}) for {', '.join(companies)} ...")
        first, last = args.months.split(":")
        import_file(REPO / "include" / "datagen" / "taxi_trips.py").generate(
            data_dir, companies, args.trips, args.seed, first, last
        )
    elif kind == "payroll":
        say(f"Generating {args.employees:,} employees' payroll for {', '.join(companies)} ...")
        import_file(REPO / "include" / "datagen" / "payroll.py").generate(
            data_dir, companies, args.employees, args.seed
        )
    else:
        say(
            f"testbed: no data generator for aggregation input {kind!r}: "
            f"put each party's data under {data_dir}/<party>/"
        )


def _write_secret(path: Path, text: str) -> Path:
    path.write_text(text)
    os.chmod(path, 0o600)
    return path


def start_party(party: LocalParty, roles: list[str], host: str, port: int, nightly: bool) -> dict:
    """Start one party's ``airflow standalone`` through the bootstrap script with the party's settings
    (LocalParty.settings) and the lean ones; returns its entry of the testbed state.

    :param nightly: let the scheduler create the spec's scheduled runs.
    """
    home = party.airflow_home.resolve()
    secrets = party.home / "secrets"
    secrets.mkdir(parents=True, exist_ok=True, mode=0o700)
    connections = party.connections()  # to files: a command line is visible to every user
    coordination = _write_secret(secrets / "coordination.json", connections["AIRFLOW_CONN_MPC_COORDINATION"])
    keys_conn = _write_secret(secrets / "keys-connection.json", connections["AIRFLOW_CONN_MPC_PARTY_KEYS"])
    settings = {
        **party.settings(),
        **LEAN_SETTINGS,
        # Without --nightly the scheduler creates no scheduled runs: an unpaused DAG whose
        # night has passed would otherwise start it at once on every party.
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": str(bool(nightly)),
        "AIRFLOW__API__BASE_URL": f"http://{host}:{port}",
    }
    del settings["AIRFLOW_HOME"]  # the script's --airflow-home
    cmd = [
        "bash",
        str(BOOTSTRAP),
        "--skip-setup",
        "--party-id",
        party.id,
        "--repo-dir",
        str(REPO),
        "--airflow-home",
        str(home),
        "--spec-dir",
        str(party.spec_dir),
        "--data-dir",
        str(party.data_dir),
        "--work-dir",
        str(party.work_dir),
        "--host",
        host,
        "--port",
        str(port),
        "--coordination-conn-file",
        str(coordination),
        "--keys-file",
        str(keys_conn),
    ]
    if "compute" in roles:  # the queue of the compute task (standalone runs every queue)
        cmd += ["--compute-queue", f"mpc-compute-{party.id}"]
    for name, value in settings.items():
        cmd += ["--env", f"{name}={value}"]
    result = subprocess.run(cmd, env=outside_environ(), capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"bootstrap of {party.id} failed:\n{result.stdout}{result.stderr}")
    pid = read_pid(home / "airflow.pid")
    say(f"  {party.id:<12} airflow standalone pid {pid} on http://{host}:{port}")
    return {
        "id": party.id,
        "roles": roles,
        "host": host,
        "port": port,
        "url": f"http://{host}:{port}",
        "airflow_home": str(home),
        "home": str(party.home.resolve()),
        "work_dir": str(party.work_dir.resolve()),
        "pid": pid,
        "ports": [port, port + 1000, port + 2000],
    }


def stop_party(entry: dict) -> subprocess.CompletedProcess:
    """Stop one party's Airflow through the bootstrap script."""
    return subprocess.run(
        ["bash", str(BOOTSTRAP), "--stop", "--airflow-home", entry["airflow_home"]],
        env=outside_environ(),
        capture_output=True,
        text=True,
        timeout=180,
    )


def _ready(api: PartyAPI, dag_id: str) -> bool:
    """One look at a party: API healthy, admin password generated, DAG parsed without import errors
    (else RuntimeError), unpaused."""
    if not api.healthy() or not api.password():
        return False
    status, body = api.call("GET", f"/dags/{dag_id}")
    if status == 404:
        status_e, errors = api.call("GET", "/importErrors")
        if status_e == 200 and isinstance(errors, dict) and errors.get("import_errors"):
            raise RuntimeError(f"{api.entry['id']}: DAG import errors: {errors['import_errors']}")
        return False
    if status != 200 or not isinstance(body, dict):
        return False
    if body.get("is_paused"):
        api.call("PATCH", f"/dags/{dag_id}", {"is_paused": False})
        return False
    return True


def wait_ready(state: dict, dag_id: str, timeout: float) -> None:
    """Wait until every party of ``state`` is ready (see :func:`_ready`), or raise RuntimeError."""
    deadline = time.monotonic() + timeout
    pending = {p["id"]: PartyAPI(p) for p in state["parties"]}
    say(f"Waiting for {len(pending)} Airflows (API server, scheduler, DAG parsed) ...")
    while pending:
        for pid, api in list(pending.items()):
            leader = api.entry["pid"]
            if not leader or not alive(leader):
                raise RuntimeError(f"{pid}: airflow standalone exited; see {api.entry['airflow_home']}/standalone.log")
            if _ready(api, dag_id):
                say(f"  {pid:<12} ready")
                del pending[pid]
        if pending and time.monotonic() > deadline:
            raise RuntimeError(f"not ready within {timeout:.0f} s: {', '.join(pending)}")
        if pending:
            time.sleep(2)


def print_logins(state: dict) -> None:
    say(f"{'party':<12} {'roles':<24} {'UI':<26} login")
    for p in state["parties"]:
        password = PartyAPI(p).password() or "(not generated yet)"
        say(f"{p['id']:<12} {','.join(p['roles']):<24} {p['url']:<26} {USER} / {password}")
    say("MPC runs page: <UI>/mpc/ (also in each UI's navigation: 'MPC runs')")
