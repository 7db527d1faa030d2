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
import json
import os
import shutil
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml
from localnet import REPO, LocalParty, S3Server, prepare_airflow_homes, render_spec
from testbed_api import USER, PartyAPI
from testbed_party import generate_data, party_keys, print_logins, start_party, stop_party, wait_ready
from testbed_procs import alive, command_line, memory_of, party_processes, read_pid, terminate
from testbed_state import STATE_FILE, load_state, loopback_host, port_bindable, port_in_use, save_state, say

from mpc_federation.spec import load_spec
from mpc_federation.store import CoordinationStore

DEFAULT_SPEC = REPO / "include" / "federations" / "taxi_hhi.yaml"
DEFAULT_ROOT = REPO / ".testbed"


# -- start ----------------------------------------------------------------------------------------------------
def start(args) -> int:
    root = Path(args.root).resolve()
    if (root / STATE_FILE).is_file():
        state = json.loads((root / STATE_FILE).read_text())
        running = [
            p["id"]
            for p in state.get("parties", [])
            if (pid := read_pid(Path(p["airflow_home"]) / "airflow.pid")) and alive(pid)
        ]
        if running or (state.get("s3", {}).get("pid") and alive(state["s3"]["pid"])):
            say(
                f"testbed: already running at {root} ({', '.join(running) or 'S3 server'}); stop it first: "
                f"scripts/testbed.sh stop --root {root}"
            )
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

    # Identity: keys per party, kept across restarts of the same root; marked as test keys.
    keys = party_keys(root / "keys", ids)

    hosts = {pid: loopback_host(i, args.same_host) for i, pid in enumerate(ids)}
    ports = {pid: args.base_port + i for i, pid in enumerate(ids)}
    busy = [
        f"{hosts[p]}:{ports[p] + d}"
        for p in ids
        for d in (0, 1000, 2000)
        if not port_bindable(hosts[p], ports[p] + d) or port_in_use(hosts[p], ports[p] + d)
    ]
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
        parties = [
            LocalParty(pid, root / "parties" / pid, spec_path.parent, data_dir / pid, keys[pid], s3, args.spark_master)
            for pid in ids
        ]
        say(f"Preparing {len(parties)} Airflow homes ...")
        prepare_airflow_homes(parties, root / "airflow-template")
        for party in parties:
            entry = start_party(party, list(spec.party(party.id).roles), hosts[party.id], ports[party.id], args.nightly)
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
    say(
        f"\nTestbed of {len(parties)} parties ready in {time.monotonic() - t0:.0f} s "
        f"(federation {spec.computation}, spec {spec_path}):"
    )
    print_logins(state)
    say(f"\nNext: scripts/testbed.sh trigger --date 2024-04-01 --root {root}   ·   status   ·   stop")
    return 0


# -- trigger --------------------------------------------------------------------------------------------------
def trigger(args) -> int:
    root = Path(args.root).resolve()
    state = load_state(root)
    dag_id = state["computation"]
    date = datetime.fromisoformat(args.date)
    if date.tzinfo is None:
        date = date.replace(tzinfo=UTC)
    logical = date.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    runs = {}
    failed = False
    for p in state["parties"]:
        status, body = PartyAPI(p).call("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": logical})
        if status in (200, 201):
            runs[p["id"]] = body["dag_run_id"]
            say(f"  {p['id']:<12} triggered {dag_id} run {body['dag_run_id']} (logical date {logical})")
        elif status == 409:
            failed = True
            say(
                f"  {p['id']:<12} already has a run with logical date {logical} (a date runs once per party: "
                f"choose another --date, or start a new testbed with --fresh)"
            )
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
        for pid in missing:  # where each one stands, task by task
            status, body = apis[pid].call("GET", f"/dags/{dag_id}/dagRuns/{runs[pid]}/taskInstances")
            tasks = body.get("task_instances", []) if status == 200 and isinstance(body, dict) else []
            say(f"  {pid:<12} " + ", ".join(f"{t['task_id']} {t['state']} (try {t['try_number']})" for t in tasks))
        return 1
    return 0 if all(s == "success" for s in final.values()) else 1


# -- status ---------------------------------------------------------------------------------------------------
def status(args) -> int:
    root = Path(args.root).resolve()
    state = load_state(root)
    dag_id = state.get("computation")
    s3 = state.get("s3", {})
    s3_alive = bool(s3.get("pid")) and alive(s3["pid"])
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
        up = bool(leader and alive(leader))
        if up and api.healthy() and dag_id:
            code, body = api.call("GET", f"/dags/{dag_id}/dagRuns?order_by=-logical_date&limit=3")
            if code == 200:
                runs = ", ".join(f"{(r.get('logical_date') or '')[:10]}={r['state']}" for r in body["dag_runs"])
        say(
            f"{p['id']:<12} {'up' if up else 'down':<9} {mem['processes']:>5} {mem['rss_kib'] / 1024:>8.0f} "
            f"{mem['pss_kib'] / 1024:>8.0f}  {p['url']:<26} {runs}"
        )
    if s3_alive:
        mem = memory_of({s3["pid"]})
        for k in total:
            total[k] += mem[k]
    say(
        f"{'all':<12} {'':<9} {total['processes']:>5} {total['rss_kib'] / 1024:>8.0f} {total['pss_kib'] / 1024:>8.0f}"
        "  (with the S3 server; PSS counts shared pages once)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"total": total}, indent=2))
    say("")
    print_logins(state)
    if s3_alive and state.get("spec"):
        federation_status(state)
    return 0


def federation_status(state: dict) -> None:
    """Every run in the bucket as the monitor sees it (verified records)."""
    from mpc_ui.data import list_runs

    spec = load_spec(state["spec"])
    s3 = S3Server(Path(state["root"]) / "s3", port=state["s3"]["port"])
    store = CoordinationStore(s3.store_config(spec.bucket))
    recipient = next(p for p in state["parties"] if "recipient" in p["roles"])
    runs = list_runs(spec, store, recipient["id"], limit=5)
    for r in runs:
        roster = r["roster"]
        say(
            f"\nrun {r['run']}: {r['status']}"
            + (f", roster {', '.join(roster['parties'])} (attempt {roster['attempt']})" if roster else "")
        )
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
    tracked = {
        p["id"]: party_processes(Path(p["airflow_home"]), read_pid(Path(p["airflow_home"]) / "airflow.pid"))
        for p in parties
    }
    results: dict[str, str] = {}

    def stop_one(entry: dict) -> None:
        results[entry["id"]] = stop_party(entry).stdout

    threads = [threading.Thread(target=stop_one, args=(p,)) for p in parties]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    leftovers: set[int] = set()
    for p in parties:
        if not quiet:
            say(f"  {p['id']:<12} {(results[p['id']].strip().splitlines() or ['?'])[-1]}")
        leftovers |= tracked[p["id"]] | party_processes(Path(p["airflow_home"]))
    leftovers = {pid for pid in leftovers if alive(pid)}
    if leftovers:
        say(f"  stopping {len(leftovers)} leftover process(es) of the parties: {sorted(leftovers)}")
        still = terminate(leftovers)
        if still:
            say(f"testbed: could not stop {sorted(still)}")
    s3 = state.get("s3", {})
    pid = s3.get("pid")
    if pid and alive(pid):
        if "moto_server" in command_line(pid):
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
    p.add_argument(
        "--base-port", type=int, default=28080, help="party i's UI is on base+i; its log servers on +1000 and +2000"
    )
    p.add_argument(
        "--same-host", action="store_true", help="every party on 127.0.0.1 (log in to each in its own browser profile)"
    )
    p.add_argument("--trips", type=int, default=100_000, help="taxi trips over all companies")
    p.add_argument("--employees", type=int, default=2000, help="payroll: employees over all companies")
    p.add_argument("--months", default="2024-01:2024-03", help="months of generated trips (first:last)")
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--spark-master", default="local[1]", help="each party's Spark master")
    p.add_argument("--timeout", type=float, default=600, help="seconds for all parties to be ready")
    p.add_argument("--fresh", action="store_true", help="delete the testbed folder first (new keys, data, homes)")
    p.add_argument(
        "--nightly",
        action="store_true",
        help="also run the spec's schedule (unpausing then runs the latest missed night at once); "
        "by default runs start only by `trigger`",
    )
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
