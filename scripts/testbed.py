"""The local multi-party testbed: one real ``airflow standalone`` per party of a federation spec.

    scripts/testbed.sh start   [--spec include/federations/taxi_hhi.yaml] [--root .testbed]
    scripts/testbed.sh trigger --date 2024-04-01 [--wait 900]
    scripts/testbed.sh status
    scripts/testbed.sh stop

``start`` generates every party's keys and synthetic input data, starts the local S3 API server
(moto), renders the spec with the parties' public keys and free MPyC ports, and starts each
party's Airflow through ``infra/scripts/bootstrap_party.sh`` (the script EC2 hosts run), each
with its own AIRFLOW_HOME, loopback address and port, keys, JWT secret and generated admin
password. It waits until every party's API server answers and its DAG is parsed and unpaused,
then prints every party's UI address and login. ``trigger`` starts a run with the same logical
date on every party through its REST API; ``status`` shows each party's processes, memory, DAG
runs and the federation's view of every run; ``stop`` stops everything it started and checks
that no process and no port is left. The state is kept in ``<root>/testbed.json``.

On Linux each party gets its own loopback address (127.0.0.2, 127.0.0.3, ...): browsers keep
cookies per host name, not per port, so parties on one address would log each other out.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import yaml

from localnet import REPO, VENV_BIN, LocalParty, S3Server, prepare_airflow_homes, render_spec, test_keys

from mpc_federation.envelope import PartyKeys  # noqa: E402
from mpc_federation.spec import load_spec  # noqa: E402
from mpc_federation.store import CoordinationStore  # noqa: E402

BOOTSTRAP = REPO / "infra" / "scripts" / "bootstrap_party.sh"
DEFAULT_SPEC = REPO / "include" / "federations" / "taxi_hhi.yaml"
DEFAULT_ROOT = REPO / ".testbed"
STATE_FILE = "testbed.json"
USER = "admin"

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


# -- small helpers -------------------------------------------------------------------------------------------
def say(text: str = "") -> None:
    print(text, flush=True)


def loopback_host(index: int, same_host: bool) -> str:
    return "127.0.0.1" if same_host or not sys.platform.startswith("linux") else f"127.0.0.{index + 2}"


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def port_bindable(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def http(method: str, url: str, *, token: str | None = None, body: dict | None = None,
         timeout: float = 30) -> tuple[int, dict | str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read().decode(errors="replace"), exc.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


def load_state(root: Path) -> dict:
    path = root / STATE_FILE
    if not path.is_file():
        raise SystemExit(f"testbed: no testbed at {root} (start one with: scripts/testbed.sh start --root {root})")
    return json.loads(path.read_text())


def save_state(root: Path, state: dict) -> None:
    path = root / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


# -- processes ------------------------------------------------------------------------------------------------
def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return not stat.rsplit(") ", 1)[1].startswith("Z")


def _children(pid: int) -> list[int]:
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        out: list[int] = []
        for task in tasks:
            out += [int(c) for c in (task / "children").read_text().split()]
        return out
    except OSError:
        return []


def party_processes(home: Path, leader: int | None = None) -> set[int]:
    """Live processes of one party: the standalone tree below ``leader``, and every process whose
    AIRFLOW_HOME is the party's (task processes, Spark and MPyC run in sessions of their own)."""
    home_str = str(home)
    found: set[int] = set()
    if leader and _alive(leader):
        stack = [leader]
        while stack:
            pid = stack.pop()
            if pid not in found:
                found.add(pid)
                stack += _children(pid)
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != me:
            if _environ(int(entry.name)).get("AIRFLOW_HOME") == home_str:
                found.add(int(entry.name))
    return {pid for pid in found if _alive(pid)}


def memory_of(pids: set[int]) -> dict[str, int]:
    """Resident (RSS) and proportional (PSS: shared pages split among sharers) memory, in KiB."""
    rss = pss = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            continue
    return {"rss_kib": rss, "pss_kib": pss, "processes": len(pids)}


def terminate(pids: set[int], grace: float = 15) -> set[int]:
    """TERM, then KILL after ``grace`` seconds; returns the pids that still live."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.2)
    for pid in [p for p in pids if _alive(p)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(0.3)
    return {p for p in pids if _alive(p)}


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


# -- one party's Airflow through its REST API ----------------------------------------------------------------
class PartyAPI:
    def __init__(self, entry: dict):
        self.entry = entry
        self.url = entry["url"]
        self._token: str | None = None

    def password(self) -> str | None:
        path = Path(entry_home(self.entry)) / "simple_auth_manager_passwords.json.generated"
        try:
            return json.loads(path.read_text()).get(USER)
        except (OSError, ValueError):
            return None

    def healthy(self) -> bool:
        try:
            status, _ = http("GET", f"{self.url}/api/v2/monitor/health", timeout=5)
        except OSError:
            return False
        return status == 200

    def token(self) -> str:
        if self._token is None:
            status, body = http("POST", f"{self.url}/auth/token", body={"username": USER, "password": self.password()})
            if status not in (200, 201) or not isinstance(body, dict):
                raise RuntimeError(f"{self.entry['id']}: login failed ({status}): {body}")
            self._token = body["access_token"]
        return self._token

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict | str]:
        return http(method, f"{self.url}/api/v2{path}", token=self.token(), body=body)


def entry_home(entry: dict) -> str:
    return entry["airflow_home"]


# -- start ----------------------------------------------------------------------------------------------------
def generate_data(raw_spec: dict, data_dir: Path, companies: list[str], args) -> None:
    """Synthetic private input of every input party, by the spec's aggregation input."""
    kind = (raw_spec.get("aggregation") or {}).get("input", "")
    if all((data_dir / c / kind).is_dir() and any((data_dir / c / kind).iterdir()) for c in companies):
        return
    if kind == "trips":
        gen = _load(REPO / "include" / "datagen" / "taxi_trips.py")
        say(f"Generating {args.trips:,} taxi trips ({args.months}) for {', '.join(companies)} ...")
        first, last = args.months.split(":")
        gen.generate(data_dir, companies, args.trips, args.seed, first, last)
    elif kind == "payroll":
        gen = _load(REPO / "include" / "datagen" / "payroll.py")
        say(f"Generating {args.employees:,} employees' payroll for {', '.join(companies)} ...")
        gen.generate(data_dir, companies, args.employees, args.seed)
    else:
        say(f"testbed: no data generator for aggregation input {kind!r}: put each party's data under {data_dir}/<party>/")


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bootstrap_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MPC_"))}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def start(args) -> int:
    root = Path(args.root).resolve()
    if (root / STATE_FILE).is_file():
        state = json.loads((root / STATE_FILE).read_text())
        running = [p["id"] for p in state.get("parties", [])
                   if (pid := read_pid(Path(p["airflow_home"]) / "airflow.pid")) and _alive(pid)]
        if running or (state.get("s3", {}).get("pid") and _alive(state["s3"]["pid"])):
            say(f"testbed: already running at {root} ({', '.join(running) or 'S3 server'}); stop it first: "
                f"scripts/testbed.sh stop --root {root}")
            return 1
    if args.fresh and root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    t0 = time.monotonic()
    template = Path(args.spec).resolve()
    raw = yaml.safe_load(template.read_text())
    members = raw["parties"]
    ids = [p["id"] for p in members]

    # Identity: keys per party, kept across restarts of the same root; marked as test keys (a
    # testbed's parties allow them with MPC_ALLOW_TEST_KEYS=1, a production party refuses them).
    keys = {}
    (root / "keys").mkdir(exist_ok=True, mode=0o700)
    for pid in ids:
        path = root / "keys" / f"{pid}.json"
        if path.is_file():
            keys[pid] = PartyKeys.from_json(path.read_text(), allow_test_keys=True)
        if pid not in keys or not keys[pid].test_only:  # new, or made before test keys were marked
            keys[pid] = dataclasses.replace(keys[pid], test_only=True) if pid in keys else test_keys(pid)
            path.write_text(keys[pid].to_json())
            os.chmod(path, 0o600)

    hosts = {pid: loopback_host(i, args.same_host) for i, pid in enumerate(ids)}
    ports = {pid: args.base_port + i for i, pid in enumerate(ids)}
    busy = [f"{hosts[p]}:{ports[p] + d}" for p in ids for d in (0, 1000, 2000)
            if not port_bindable(hosts[p], ports[p] + d) or port_in_use(hosts[p], ports[p] + d)]
    if busy:
        say(f"testbed: ports in use: {', '.join(busy)} (choose another --base-port)")
        return 1

    data_dir = root / "data"
    generate_data(raw, data_dir, [p["id"] for p in members if "input" in p["roles"]], args)

    state = {"root": str(root), "spec_template": str(template), "started_at": time.time(), "parties": [], "s3": {}}
    s3 = S3Server(root / "s3").start()
    state["s3"] = {"pid": s3.proc.pid, "port": s3.port, "url": s3.url}
    save_state(root, state)  # from here on, `stop` can clean up whatever happens
    say(f"Local S3 API server (moto) on {s3.url} (pid {s3.proc.pid})")
    try:
        spec_path = render_spec(template, root / "federation", keys)
        spec = load_spec(spec_path)
        CoordinationStore(s3.store_config(spec.bucket)).ensure_bucket()
        parties = [LocalParty(pid, root / "parties" / pid, spec_path.parent, data_dir / pid, keys[pid], s3,
                              args.spark_master) for pid in ids]
        say(f"Preparing {len(parties)} Airflow homes ...")
        prepare_airflow_homes(parties, root / "airflow-template")
        for party in parties:
            entry = start_party(party, spec, hosts[party.id], ports[party.id], args)
            state["parties"].append(entry)
            save_state(root, state)
        state["computation"] = spec.computation
        state["spec"] = str(spec_path)
        save_state(root, state)
        wait_ready(state, spec.computation, args.timeout)
    except BaseException as exc:
        say(f"testbed: start failed: {exc}\n  (logs: {root}/parties/<party>/airflow/standalone.log); stopping")
        stop_all(root, quiet=True)
        return 1
    state["ready_at"] = time.time()
    save_state(root, state)
    say(f"\nTestbed of {len(parties)} parties ready in {time.monotonic() - t0:.0f} s "
        f"(federation {spec.computation}, spec {spec_path}):")
    print_logins(state)
    say(f"\nNext: scripts/testbed.sh trigger --date 2024-04-01 --root {root}   ·   status   ·   stop")
    return 0


def start_party(party: LocalParty, spec, host: str, port: int, args) -> dict:
    home = (party.home / "airflow").resolve()
    secrets = party.home / "secrets"
    secrets.mkdir(parents=True, exist_ok=True, mode=0o700)
    coordination = secrets / "coordination.json"
    coordination.write_text(json.dumps(party.s3.connection()))
    keys_conn = secrets / "keys-connection.json"
    keys_conn.write_text(json.dumps({"conn_type": "generic", "password": party.keys.to_json()}))
    for path in (coordination, keys_conn):
        os.chmod(path, 0o600)
    extra = {**LEAN_SETTINGS,
             "MPC_ALLOW_TEST_KEYS": "1" if party.allow_test_keys else "0",  # the testbed's keys are test keys
             # The [mpc] settings the UI reads (mpc_operators.settings), until bootstrap writes them itself.
             "AIRFLOW__MPC__PARTY_ID": party.id, "AIRFLOW__MPC__SPEC_DIR": str(party.spec_dir),
             # Without --nightly the scheduler creates no scheduled runs: an unpaused DAG whose
             # night has passed would otherwise start it at once on every party.
             "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": str(bool(args.nightly)),
             "AIRFLOW__API__BASE_URL": f"http://{host}:{port}",
             "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps({"conn_type": "spark", "host": party.spark_master}),
             "PYTHONPATH": str(REPO / "plugins"),
             "PYSPARK_PYTHON": sys.executable}
    cmd = ["bash", str(BOOTSTRAP), "--skip-setup", "--party-id", party.id, "--repo-dir", str(REPO),
           "--airflow-home", str(home), "--spec-dir", str(party.spec_dir), "--data-dir", str(party.data_dir),
           "--work-dir", str(party.work_dir), "--host", host, "--port", str(port),
           "--coordination-conn-file", str(coordination), "--keys-file", str(keys_conn)]
    if spec.party(party.id).has("compute"):  # the queue of the compute task (standalone runs every queue)
        cmd += ["--compute-queue", f"mpc-compute-{party.id}"]
    for name, value in extra.items():
        cmd += ["--env", f"{name}={value}"]
    result = subprocess.run(cmd, env=bootstrap_env(), capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"bootstrap of {party.id} failed:\n{result.stdout}{result.stderr}")
    pid = read_pid(home / "airflow.pid")
    say(f"  {party.id:<12} airflow standalone pid {pid} on http://{host}:{port}")
    return {"id": party.id, "roles": list(spec.party(party.id).roles), "host": host, "port": port,
            "url": f"http://{host}:{port}", "airflow_home": str(home), "home": str(party.home.resolve()),
            "work_dir": str(party.work_dir.resolve()), "pid": pid,
            "ports": [port, port + 1000, port + 2000]}


def wait_ready(state: dict, dag_id: str, timeout: float) -> None:
    """Every party: API healthy, admin password generated, DAG parsed without import errors, unpaused."""
    deadline = time.monotonic() + timeout
    pending = {p["id"]: PartyAPI(p) for p in state["parties"]}
    say(f"Waiting for {len(pending)} Airflows (API server, scheduler, DAG parsed) ...")
    while pending:
        for pid, api in list(pending.items()):
            leader = api.entry["pid"]
            if not leader or not _alive(leader):
                raise RuntimeError(f"{pid}: airflow standalone exited; see {api.entry['airflow_home']}/standalone.log")
            if not api.healthy() or not api.password():
                continue
            status, body = api.call("GET", f"/dags/{dag_id}")
            if status == 404:
                status_e, errors = api.call("GET", "/importErrors")
                if status_e == 200 and isinstance(errors, dict) and errors.get("import_errors"):
                    raise RuntimeError(f"{pid}: DAG import errors: {errors['import_errors']}")
                continue
            if status != 200:
                continue
            if body.get("is_paused"):
                api.call("PATCH", f"/dags/{dag_id}", {"is_paused": False})
                continue
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


# -- trigger --------------------------------------------------------------------------------------------------
def trigger(args) -> int:
    root = Path(args.root).resolve()
    state = load_state(root)
    dag_id = state["computation"]
    date = datetime.fromisoformat(args.date)
    if date.tzinfo is None:
        date = date.replace(tzinfo=timezone.utc)
    logical = date.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    runs = {}
    failed = False
    for p in state["parties"]:
        status, body = PartyAPI(p).call("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": logical})
        if status in (200, 201):
            runs[p["id"]] = body["dag_run_id"]
            say(f"  {p['id']:<12} triggered {dag_id} run {body['dag_run_id']} (logical date {logical})")
        elif status == 409:
            failed = True
            say(f"  {p['id']:<12} already has a run with logical date {logical} (a date runs once per party: "
                f"choose another --date, or start a new testbed with --fresh)")
        else:
            failed = True
            say(f"  {p['id']:<12} trigger failed ({status}): {body}")
    state.setdefault("triggers", []).append({"date": logical, "runs": runs, "at": time.time()})
    save_state(root, state)
    if failed:
        return 1
    if args.wait:
        return wait_runs(state, dag_id, runs, args.wait)
    return 0


def wait_runs(state: dict, dag_id: str, runs: dict[str, str], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    apis = {p["id"]: PartyAPI(p) for p in state["parties"]}
    final: dict[str, str] = {}
    while len(final) < len(runs) and time.monotonic() < deadline:
        for pid, run_id in runs.items():
            if pid in final:
                continue
            status, body = apis[pid].call("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            if status == 200 and body.get("state") in ("success", "failed"):
                final[pid] = body["state"]
                say(f"  {pid:<12} {body['state']}")
        time.sleep(3)
    missing = [p for p in runs if p not in final]
    if missing:
        say(f"testbed: runs not finished within {timeout:.0f} s: {', '.join(missing)}")
        return 1
    return 0 if all(s == "success" for s in final.values()) else 1


# -- status ---------------------------------------------------------------------------------------------------
def status(args) -> int:
    root = Path(args.root).resolve()
    state = load_state(root)
    dag_id = state.get("computation")
    s3 = state.get("s3", {})
    s3_alive = bool(s3.get("pid")) and _alive(s3["pid"])
    say(f"S3 server {s3.get('url')}: {'running' if s3_alive else 'stopped'} (pid {s3.get('pid')})")
    total = {"rss_kib": 0, "pss_kib": 0, "processes": 0}
    say(f"{'party':<12} {'state':<9} {'procs':>5} {'RSS MiB':>8} {'PSS MiB':>8}  {'UI':<26} latest runs")
    for p in state["parties"]:
        leader = read_pid(Path(p["airflow_home"]) / "airflow.pid")
        pids = party_processes(Path(p["airflow_home"]), leader)
        mem = memory_of(pids)
        for k in total:
            total[k] += mem[k]
        api = PartyAPI(p)
        runs = ""
        up = bool(leader and _alive(leader))
        if up and api.healthy() and dag_id:
            code, body = api.call("GET", f"/dags/{dag_id}/dagRuns?order_by=-logical_date&limit=3")
            if code == 200:
                runs = ", ".join(f"{(r.get('logical_date') or '')[:10]}={r['state']}" for r in body["dag_runs"])
        say(f"{p['id']:<12} {'up' if up else 'down':<9} {mem['processes']:>5} {mem['rss_kib'] / 1024:>8.0f} "
            f"{mem['pss_kib'] / 1024:>8.0f}  {p['url']:<26} {runs}")
    if s3_alive:
        mem = memory_of({s3["pid"]})
        for k in total:
            total[k] += mem[k]
    say(f"{'all':<12} {'':<9} {total['processes']:>5} {total['rss_kib'] / 1024:>8.0f} {total['pss_kib'] / 1024:>8.0f}"
        "  (with the S3 server; PSS counts shared pages once)")
    if args.json:
        Path(args.json).write_text(json.dumps({"total": total}, indent=2))
    say("")
    print_logins(state)
    if s3_alive and state.get("spec"):
        federation_status(state)
    return 0


def federation_status(state: dict) -> None:
    """Every run in the bucket as the monitor sees it (verified records)."""
    from localnet import S3Server as _S3

    from mpc_ui.data import list_runs

    spec = load_spec(state["spec"])
    s3 = _S3(Path(state["root"]) / "s3", port=state["s3"]["port"])
    store = CoordinationStore(s3.store_config(spec.bucket))
    recipient = next(p for p in state["parties"] if "recipient" in p["roles"])
    runs = list_runs(spec, store, recipient["id"], limit=5)
    for r in runs:
        say(f"\nrun {r['run']}: {r['status']}"
            + (f", roster {', '.join(r['roster']['parties'])} (attempt {r['roster']['attempt']})" if r["roster"] else ""))
        for p in r["parties"]:
            extra = f"  {p['abort_reason']}" if p["abort_reason"] else ""
            say(f"  {p['id']:<12} {p['state']}{extra}")


# -- stop -----------------------------------------------------------------------------------------------------
def stop(args) -> int:
    root = Path(args.root).resolve()
    load_state(root)
    return stop_all(root)


def stop_all(root: Path, quiet: bool = False) -> int:
    state = json.loads((root / STATE_FILE).read_text())
    parties = state.get("parties", [])
    # Everything each party runs, found before stopping: task processes (Spark, MPyC) live in
    # process groups of their own and would outlive the standalone's group.
    tracked = {p["id"]: party_processes(Path(p["airflow_home"]), read_pid(Path(p["airflow_home"]) / "airflow.pid"))
               for p in parties}
    results: dict[str, subprocess.CompletedProcess] = {}

    def stop_one(entry: dict) -> None:
        results[entry["id"]] = subprocess.run(
            ["bash", str(BOOTSTRAP), "--stop", "--airflow-home", entry["airflow_home"]],
            env=bootstrap_env(), capture_output=True, text=True, timeout=180)

    threads = [threading.Thread(target=stop_one, args=(p,)) for p in parties]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    leftovers: set[int] = set()
    for p in parties:
        if not quiet:
            say(f"  {p['id']:<12} {(results[p['id']].stdout.strip().splitlines() or ['?'])[-1]}")
        leftovers |= tracked[p["id"]] | party_processes(Path(p["airflow_home"]))
    leftovers = {pid for pid in leftovers if _alive(pid)}
    if leftovers:
        say(f"  stopping {len(leftovers)} leftover process(es) of the parties: {sorted(leftovers)}")
        still = terminate(leftovers)
        if still:
            say(f"testbed: could not stop {sorted(still)}")
    s3 = state.get("s3", {})
    pid = s3.get("pid")
    if pid and _alive(pid):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        if "moto_server" in cmdline:
            terminate({pid}, grace=10)
            if not quiet:
                say(f"  S3 server (pid {pid}) stopped")
    # Check: no process of ours, no port of ours.
    left = set()
    for p in parties:
        left |= party_processes(Path(p["airflow_home"]))
    open_ports = [f"{p['host']}:{port}" for p in parties for port in p.get("ports", []) if port_in_use(p["host"], port)]
    if s3.get("port") and port_in_use("127.0.0.1", s3["port"]):
        open_ports.append(f"127.0.0.1:{s3['port']}")
    state["stopped_at"] = time.time()
    save_state(root, state)
    if left or open_ports:
        say(f"testbed: after stop, processes {sorted(left)} and ports {open_ports} remain")
        return 1
    if not quiet:
        say("Testbed stopped: no process and no port left.")
    return 0


# -- screenshot (for docs/) -----------------------------------------------------------------------------------
def screenshot(args) -> int:
    from ui_browser import Browser

    root = Path(args.root).resolve()
    state = load_state(root)
    entry = next(p for p in state["parties"] if p["id"] == args.party)
    with Browser() as browser:
        page = browser.login(entry["url"], USER, PartyAPI(entry).password())
        page.goto(f"{entry['url']}{args.path}")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=args.out, full_page=True)
    say(f"wrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument("--root", default=str(DEFAULT_ROOT), help="testbed folder (default: .testbed)")
        return p

    p = common(sub.add_parser("start", help="start every party's Airflow and the S3 server"))
    p.add_argument("--spec", default=str(DEFAULT_SPEC), help="federation spec template")
    p.add_argument("--base-port", type=int, default=28080,
                   help="party i's UI is on base+i; its log servers on +1000 and +2000")
    p.add_argument("--same-host", action="store_true",
                   help="every party on 127.0.0.1 (log in to each in its own browser profile)")
    p.add_argument("--trips", type=int, default=100_000, help="taxi trips over all companies")
    p.add_argument("--employees", type=int, default=2000, help="payroll: employees over all companies")
    p.add_argument("--months", default="2024-01:2024-03", help="months of generated trips (first:last)")
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--spark-master", default="local[1]", help="each party's Spark master")
    p.add_argument("--timeout", type=float, default=600, help="seconds for all parties to be ready")
    p.add_argument("--fresh", action="store_true", help="delete the testbed folder first (new keys, data, homes)")
    p.add_argument("--nightly", action="store_true",
                   help="also run the spec's schedule (unpausing then runs the latest missed night at once); "
                        "by default runs start only by `trigger`")
    p.set_defaults(func=start)

    p = common(sub.add_parser("trigger", help="trigger a run with the same logical date on every party"))
    p.add_argument("--date", default="2024-04-01", help="logical date (UTC), e.g. 2024-04-01")
    p.add_argument("--wait", type=float, default=0, help="wait up to this many seconds for every party's run")
    p.set_defaults(func=trigger)

    p = common(sub.add_parser("status", help="processes, memory, DAG runs and the federation's view"))
    p.add_argument("--json", help="also write the memory totals to this file")
    p.set_defaults(func=status)

    p = common(sub.add_parser("stop", help="stop everything the testbed started"))
    p.set_defaults(func=stop)

    p = common(sub.add_parser("screenshot", help="log in to a party's UI and save a screenshot of a page"))
    p.add_argument("--party", default="regulator")
    p.add_argument("--path", default="/mpc/")
    p.add_argument("--out", required=True)
    p.set_defaults(func=screenshot)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
