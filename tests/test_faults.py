"""Fault injection with real processes: the operators' code paths (stages), real MPyC
subprocesses, the real local S3 server (behind a proxy that can cut it off) and the trigger.

Each test asserts the outcome (a failure within deadline plus margin carrying the reason, or
success), that no recipient sees a result over a wrong roster, and that a retry succeeds.
Measured times are printed (run with -s) and tabulated in docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

import psutil
import pytest
from conftest import REPO, in_threads, small_parties

from mpc_federation import stages
from mpc_federation.launcher import MPCRunError
from mpc_federation.party import PartyRun
from mpc_federation.store import CoordinationStore, StoreConfig
from sensors.triggers import CoordinationTrigger

DATE = datetime(2024, 4, 1, 3, tzinfo=UTC)
SLOW_SUM = REPO / "tests" / "programs" / "slow_sum.py"
VALUES = {"company_a": 110_000_001, "company_b": 220_000_002, "company_c": 330_000_003, "company_d": 440_000_004}


def fault_federation(federation, *, inputs=3, delay=0.0, deadlines=None, min_inputs=None):
    overrides = {
        "program": {"file": str(SLOW_SUM), "params": {"delay": delay}},
        "deadlines": {"cutoff": 60, "inputs": 60, "connect": 60, "mpc": 60, "result": 60, **(deadlines or {})},
        "min_input_parties": min_inputs or 3,
    }
    return federation(small_parties(inputs=inputs, computes=3), overrides=overrides)


def runs_for(spec, keys, config: StoreConfig) -> dict[str, PartyRun]:
    return {pid: PartyRun(spec, pid, DATE, k, CoordinationStore(config)) for pid, k in keys.items()}


def share(run: PartyRun) -> dict:
    aggregate = {
        "format": "mpc-aggregate/1",
        "party": run.party_id,
        "dimensions": {},
        "values": {"value": VALUES[run.party_id]},
    }
    return stages.share(run, aggregate)


def compute_all(runs: dict[str, PartyRun], attempt: int, **kwargs) -> dict[str, object]:
    """Every compute party's compute stage at once; returns result or exception and finish time."""
    finished: dict[str, float] = {}

    def compute(pid: str):
        try:
            return stages.compute(runs[pid], attempt=attempt, **kwargs)
        finally:
            finished[pid + ":t"] = time.monotonic()

    parties = next(iter(runs.values())).spec.compute_parties
    return {**in_threads({p.id: functools.partial(compute, p.id) for p in parties}), **finished}


def total_of(result: dict) -> int:
    return int(result["outputs"]["total"]["exact"][0])


async def first_event(trigger: CoordinationTrigger, timeout: float):
    async def first():
        async for event in trigger.run():
            return event.payload

    return await asyncio.wait_for(first(), timeout)


def trigger_for(spec, party: str, stage: str, *, deadline_in: float, cutoff_in: float, poll: float = 0.5):
    now = time.time()
    return CoordinationTrigger(
        spec_path=str(spec.source),
        party_id=party,
        run="20240401T030000Z",
        stage=stage,
        coordination_conn_id="mpc_coordination",
        deadline=now + deadline_in,
        cutoff=now + cutoff_in,
        poll_interval=poll,
    )


@pytest.fixture
def coordination_conn(monkeypatch, s3_server):
    monkeypatch.setenv("AIRFLOW_CONN_MPC_COORDINATION", json.dumps(s3_server.connection()))


def test_compute_party_killed_mid_mpc_stops_the_others_and_a_retry_succeeds(federation, s3_server, tmp_path):
    spec, keys = fault_federation(federation, delay=4.0)
    runs = runs_for(spec, keys, s3_server.store_config(spec.bucket))
    for pid in ("company_a", "company_b", "company_c"):
        share(runs[pid])

    killed_at = {}

    def kill_company_c_worker():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            for proc in psutil.process_iter(["cmdline"]):
                cmd = proc.info["cmdline"] or []
                if (
                    "mpc_federation.worker" in cmd
                    and cmd[cmd.index("-I") + 1] == "2"
                    and spec.compute_parties[2].endpoint.rsplit(":", 1)[1] in " ".join(cmd)
                ):
                    time.sleep(1.5)  # connected and inside the program's pause
                    killed_at["t"] = time.monotonic()
                    proc.send_signal(signal.SIGKILL)
                    return
            time.sleep(0.1)

    killer = threading.Thread(target=kill_company_c_worker)
    killer.start()
    out = compute_all(runs, attempt=1)
    killer.join()
    assert "t" in killed_at, "the MPyC worker of company_c was never found"
    assert isinstance(out["company_c"], MPCRunError) and "exited with code -9" in str(out["company_c"])
    for pid in ("company_a", "company_b"):
        assert isinstance(out[pid], MPCRunError), out[pid]
        assert "attempt 1 was given up" in str(out[pid]) and "company_c" in str(out[pid])
        seconds = out[pid + ":t"] - killed_at["t"]
        print(f"\n[fault] compute party killed mid-MPC: {pid} stopped {seconds:.1f} s after the kill")
        assert seconds < 10
    with pytest.raises(stages.StageError, match="no live MPC attempt"):
        stages.reveal(runs["regulator"])  # nothing over a failed attempt

    out = compute_all(runs, attempt=2)  # every party retries; the leader's try numbers the attempt
    assert all(out[p]["attempt"] == 2 for p in ("company_a", "company_b", "company_c")), out
    result = stages.reveal(runs["regulator"])
    assert result["attempt"] == 2 and result["roster"] == ["company_a", "company_b", "company_c"]
    assert total_of(result) == VALUES["company_a"] + VALUES["company_b"] + VALUES["company_c"]


def test_a_worker_ended_by_a_peer_that_gave_up_says_why(tmp_path):
    """A compute party that gives up publishes why, then stops its MPyC process; a peer's process
    can die of the closed connection before its next poll. Its error is then the published
    reason, not the crash; a process killed by a signal still says so."""
    from types import SimpleNamespace

    from mpc_federation.launcher import MPCRunError, _outcome

    reason = "attempt 1 was given up: company_a: an input object does not verify"

    def outcome(returncode: int, stop_reason):
        proc = SimpleNamespace(returncode=returncode)
        with pytest.raises(MPCRunError) as info:
            _outcome(proc, tmp_path / "out.json", ["Traceback", "ConnectionResetError"], 0.1, 0.0, True, stop_reason)
        return str(info.value)

    assert outcome(1, lambda: reason) == f"stopped: {reason}"
    assert outcome(1, lambda: None).startswith("MPyC process exited with code 1\n")
    assert outcome(-9, lambda: reason).startswith("MPyC process exited with code -9")  # its own death
    assert outcome(1, None).startswith("MPyC process exited with code 1")


def test_a_worker_ended_by_a_peer_that_hung_up_waits_a_little_for_its_reason(tmp_path, monkeypatch):
    """The MPyC process ends as soon as a peer hangs up (``mpyc_compat.install_hang_up_guard``),
    usually before that peer's stage has published why it gave up: the launcher waits up to
    ``HUNG_UP_PATIENCE`` for the reason, then names the peer that hung up; without a hang-up it
    asks once."""
    from types import SimpleNamespace

    from mpc_federation import launcher
    from mpc_federation.worker import HUNG_UP

    reason = "attempt 1 was given up: company_c: mpc-failed"
    log = ["mpc-worker: connected", f"{HUNG_UP} company_c closed its connection"]
    monkeypatch.setattr(launcher, "HUNG_UP_PATIENCE", 1.0)

    def outcome(lines: list[str], answers: list) -> tuple[str, int]:
        asked = []

        def stop_reason():
            asked.append(1)
            return answers[min(len(asked), len(answers)) - 1]

        with pytest.raises(launcher.MPCRunError) as info:
            launcher._outcome(SimpleNamespace(returncode=1), tmp_path / "out.json", lines, 0.1, 0.0, True, stop_reason)
        return str(info.value), len(asked)

    assert outcome(log, [None, None, reason]) == (f"stopped: {reason}", 3)  # published moments later
    text, asked = outcome(log, [None])  # never published: the hang-up is the reason given
    assert text.startswith("MPyC process exited with code 1: company_c closed its connection\n") and asked > 1
    assert outcome(["Traceback"], [None])[1] == 1  # nobody hung up: no reason is on its way


def test_straggler_left_out_after_cutoff_when_the_floor_holds(federation, s3_server, coordination_conn, tmp_path):
    spec, keys = fault_federation(federation, inputs=4, deadlines={"cutoff": 2, "inputs": 20})
    runs = runs_for(spec, keys, s3_server.store_config(spec.bucket))
    for pid in ("company_a", "company_b", "company_c"):
        share(runs[pid])  # company_d never shows

    t0 = time.monotonic()
    leader = asyncio.run(first_event(trigger_for(spec, "company_a", "inputs", deadline_in=20, cutoff_in=2), 30))
    waited = time.monotonic() - t0
    print(f"\n[fault] straggler, floor met: leader went ahead after {waited:.1f} s without {leader['left_out']}")
    assert leader == {"status": "ready", "left_out": ["company_d"]} and 1.5 < waited < 6

    out = compute_all(runs, attempt=1)
    assert all(
        out[p]["roster"] == ["company_a", "company_b", "company_c"] for p in ("company_a", "company_b", "company_c")
    ), out
    result = stages.reveal(runs["regulator"])
    assert result["roster"] == ["company_a", "company_b", "company_c"]
    assert total_of(result) == VALUES["company_a"] + VALUES["company_b"] + VALUES["company_c"]


def test_stragglers_below_the_floor_time_out_naming_them_and_nothing_is_revealed(
    federation, s3_server, coordination_conn
):
    spec, keys = fault_federation(federation, inputs=4, deadlines={"cutoff": 1, "inputs": 4})
    runs = runs_for(spec, keys, s3_server.store_config(spec.bucket))
    for pid in ("company_a", "company_b"):
        share(runs[pid])

    t0 = time.monotonic()
    event = asyncio.run(first_event(trigger_for(spec, "company_a", "inputs", deadline_in=4, cutoff_in=1), 30))
    waited = time.monotonic() - t0
    print(f"\n[fault] stragglers, floor not met: timeout after {waited:.1f} s, missing {event['missing']}")
    assert event == {"status": "timeout", "missing": ["company_c", "company_d"]} and 3.5 < waited < 6
    with pytest.raises(stages.StageError, match="only 2 input parties shared"):
        stages.fix_roster(runs["company_a"], 1, 5)
    with pytest.raises(stages.StageError, match="no live MPC attempt"):
        stages.reveal(runs["regulator"])

    share(runs["company_c"])  # the straggler arrives; every party retries
    out = compute_all(runs, attempt=2)
    assert out["company_a"]["roster"] == ["company_a", "company_b", "company_c"], out
    assert total_of(stages.reveal(runs["regulator"])) == sum(VALUES[p] for p in ("company_a", "company_b", "company_c"))


def test_withdrawal_stops_the_waiting_parties_at_once_and_a_retry_succeeds(federation, s3_server, coordination_conn):
    spec, keys = fault_federation(federation)
    runs = runs_for(spec, keys, s3_server.store_config(spec.bucket))
    share(runs["company_a"])
    share(runs["company_b"])

    def withdraw_soon():
        time.sleep(1.0)
        stages.withdraw(runs["company_c"], "aggregation-failed", "aggregate")

    threading.Thread(target=withdraw_soon).start()
    t0 = time.monotonic()
    event = asyncio.run(first_event(trigger_for(spec, "company_b", "inputs", deadline_in=60, cutoff_in=60), 30))
    waited = time.monotonic() - t0
    print(f"\n[fault] abort published by an input party: waiting party stopped after {waited:.1f} s")
    assert event["status"] == "stopped" and "company_c" in event["reason"] and waited < 3
    verified = stages.wait_state(runs["company_b"], "inputs", runs["company_b"].channel.present(), cutoff_passed=False)
    assert "aggregate failed: aggregation-failed" in verified.stop  # the code, verified against company_c's key

    share(runs["company_c"])  # fixed at company_c; its shares supersede its withdrawal
    ready = asyncio.run(first_event(trigger_for(spec, "company_b", "inputs", deadline_in=60, cutoff_in=60), 30))
    assert ready["status"] == "ready"
    out = compute_all(runs, attempt=1)
    assert total_of(stages.reveal(runs["regulator"])) == sum(
        VALUES[p] for p in ("company_a", "company_b", "company_c")
    ), out


def test_bucket_unreachable_for_30_seconds_mid_run(federation, s3_server, tmp_path):
    from localnet import TcpProxy

    spec, keys = fault_federation(federation)
    proxy = TcpProxy(s3_server.port).start()
    config = dataclasses.replace(s3_server.store_config(spec.bucket), endpoint_url=proxy.url)
    runs = runs_for(spec, keys, config)
    for pid in ("company_a", "company_b", "company_c"):
        share(runs[pid])

    proxy.cut()
    restore = threading.Timer(30, proxy.restore)
    restore.start()
    t0 = time.monotonic()
    out = compute_all(runs, attempt=1)
    assert all(isinstance(out[p], dict) for p in ("company_a", "company_b", "company_c")), out
    result = stages.reveal(runs["regulator"])
    took = time.monotonic() - t0
    restore.join()
    proxy.cut()
    print(f"\n[fault] bucket unreachable for 30 s: run completed {took:.1f} s after the cut")
    assert all(isinstance(out[p], dict) for p in ("company_a", "company_b", "company_c")), out
    assert 30 <= took < 30 + 20
    assert total_of(result) == sum(VALUES[p] for p in ("company_a", "company_b", "company_c"))


CLOCK_SKEWED_COMPUTE = """
import json, sys
from datetime import datetime, timezone
sys.path.insert(0, sys.argv[1])
from mpc_federation import stages
from mpc_federation.envelope import PartyKeys
from mpc_federation.party import PartyRun
from mpc_federation.spec import load_spec
from mpc_federation.store import CoordinationStore, StoreConfig
import time
args = json.loads(sys.argv[2])
spec = load_spec(args["spec"])
keys = PartyKeys.from_json(args["keys"], allow_test_keys=True)
run = PartyRun(spec, args["party"], datetime(2024, 4, 1, 3, tzinfo=timezone.utc), keys,
               CoordinationStore(StoreConfig(**args["store"])))
print(json.dumps({"skew": round(time.time() - args["now"]), "result": stages.compute(run, attempt=1)}))
"""


def test_a_party_whose_clock_is_five_minutes_off(federation, s3_server, tmp_path):
    spec, keys = fault_federation(federation)
    config = s3_server.store_config(spec.bucket)
    runs = runs_for(spec, keys, config)
    for pid in ("company_a", "company_b", "company_c"):
        share(runs[pid])
    env = {**os.environ, "FAKE_CLOCK_OFFSET": "300", "PYTHONPATH": str(REPO / "tests" / "clock")}
    args = {
        "spec": str(spec.source),
        "party": "company_c",
        "keys": keys["company_c"].to_json(),
        "store": config.__dict__,
        "now": time.time(),
    }
    skewed = subprocess.Popen(
        [sys.executable, "-c", CLOCK_SKEWED_COMPUTE, str(REPO / "plugins"), json.dumps(args)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    others = {pid: runs[pid] for pid in ("company_a", "company_b", "regulator")}
    t0 = time.monotonic()
    out: dict = {}
    threads = [
        threading.Thread(target=lambda p=p: out.update({p: stages.compute(others[p], attempt=1)}))
        for p in ("company_a", "company_b")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    stdout, stderr = skewed.communicate(timeout=120)
    assert skewed.returncode == 0, stderr[-2000:]
    report = json.loads(stdout.strip().splitlines()[-1])
    assert report["skew"] >= 299  # the party really lived 5 minutes ahead
    result = stages.reveal(runs["regulator"])
    print(f"\n[fault] one party's clock 5 minutes ahead: run completed in {time.monotonic() - t0:.1f} s")
    assert total_of(result) == sum(VALUES[p] for p in ("company_a", "company_b", "company_c"))


def test_triggerer_restart_while_the_sensor_waits(federation, s3_server, coordination_conn):
    spec, keys = fault_federation(federation)
    runs = runs_for(spec, keys, s3_server.store_config(spec.bucket))
    share(runs["company_a"])
    trigger = trigger_for(spec, "company_a", "inputs", deadline_in=60, cutoff_in=60)
    classpath, kwargs = trigger.serialize()
    assert classpath == "sensors.triggers.CoordinationTrigger"
    json.dumps(kwargs)  # plain data only: what the metadata database stores

    async def restart():
        task = asyncio.ensure_future(first_event(trigger, 60))
        await asyncio.sleep(1.5)
        task.cancel()  # the triggerer goes down mid-wait
        return task

    cancelled = asyncio.run(restart())
    assert cancelled.cancelled()
    share(runs["company_b"])
    share(runs["company_c"])
    revived = CoordinationTrigger(**kwargs)  # what a new triggerer builds from the stored kwargs
    assert revived.serialize()[1]["deadline"] == kwargs["deadline"]  # the deadline does not move
    t0 = time.monotonic()
    event = asyncio.run(first_event(revived, 30))
    print(f"\n[fault] triggerer restart: the revived trigger saw the run ready after {time.monotonic() - t0:.1f} s")
    assert event == {"status": "ready", "left_out": []}


def test_every_task_can_be_retried(federation, s3_server, tmp_path):
    spec, keys = fault_federation(federation)
    runs = runs_for(spec, keys, s3_server.store_config(spec.bucket))
    store = runs["regulator"].store
    for pid in ("company_a", "company_b", "company_c"):
        share(runs[pid])
    root = runs["regulator"].channel.root
    before = {k: store.get(k) for k in store.list(f"{root}/inputs/")}
    for pid in ("company_a", "company_b", "company_c"):
        assert share(runs[pid])["status"] == "already shared"  # share retried: nothing changes
    assert {k: store.get(k) for k in store.list(f"{root}/inputs/")} == before

    companies = ("company_a", "company_b", "company_c")
    first = compute_all(runs, attempt=1)
    assert [first[p]["attempt"] for p in companies] == [1, 1, 1], first
    one = stages.reveal(runs["regulator"])
    control = {k: store.get(k) for k in store.list(f"{root}/roster/") + store.list(f"{root}/outputs/")}

    # A compute task retried after it finished (Airflow did not hear of its end: a lost worker, a
    # stale executor event) ends as it did, alone or with every party: no second MPC, nothing written.
    alone = stages.compute(runs["company_b"], attempt=2)
    retried = compute_all(runs, attempt=2)
    for out in (alone, *(retried[p] for p in companies)):
        assert out["status"] == "already computed" and out["attempt"] == 1, (alone, retried)
        assert out["roster"] == list(companies) and out["withheld"] == []
    assert {k: store.get(k) for k in store.list(f"{root}/roster/") + store.list(f"{root}/outputs/")} == control
    two = stages.reveal(runs["regulator"])  # reveal retried: the same result
    assert one["outputs"] == two["outputs"] and one["attempt"] == two["attempt"] == 1

    # Once a compute party gives the attempt up, every party's retry meets on a fresh one.
    stages.give_up(runs["company_c"].channel, 1, "a test gives the attempt up")
    fresh = compute_all(runs, attempt=3)
    assert [fresh[p]["attempt"] for p in companies] == [3, 3, 3], fresh
    assert all("status" not in fresh[p] for p in companies), fresh
    three = stages.reveal(runs["regulator"])
    assert three["attempt"] == 3 and three["outputs"] == one["outputs"]
    assert total_of(three) == sum(VALUES[p] for p in companies)


def test_a_failing_input_task_publishes_its_withdrawal(federation, s3_server, monkeypatch, caplog):
    """The on_failure_callback the DAG factory puts on an input party's tasks."""
    import logging
    from types import SimpleNamespace

    from mpc_operators.base import withdraw_on_failure

    spec, keys = fault_federation(federation)
    # The task's own connections (not the default ids, which are not defined here).
    monkeypatch.delenv("AIRFLOW_CONN_MPC_COORDINATION", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_MPC_PARTY_KEYS", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_C_BUCKET", json.dumps(s3_server.connection()))
    monkeypatch.setenv(
        "AIRFLOW_CONN_C_KEYS", json.dumps({"conn_type": "generic", "password": keys["company_c"].to_json()})
    )
    context = {
        "exception": RuntimeError("taxi_revenue: error: 3 trips with negative fare_amount\nmore"),
        "task_instance": SimpleNamespace(task_id="aggregate", log=logging.getLogger("test")),
        "task": SimpleNamespace(coordination_conn_id="c_bucket", keys_conn_id="c_keys"),
        "logical_date": DATE,
    }
    withdraw_on_failure(str(spec.source), "company_c", context)
    run = runs_for(spec, keys, s3_server.store_config(spec.bucket))["company_a"]
    present = run.channel.present()
    assert run.channel.withdrawn(present) == ["company_c"]
    assert not any("/inputs/company_c/" in k for k in present)  # nothing else was uploaded for it
    assert "company_c (inputs): aggregate failed: aggregation-failed" in stages.explain_aborts(run.channel, present)
    dump = b"".join(run.store.get(k) for k in run.store.list(run.channel.root + "/"))
    assert b"negative fare_amount" not in dump and b"taxi_revenue" not in dump  # the error stays local
    assert "3 trips with negative fare_amount" in caplog.text  # ... in the party's task log


def test_a_long_silent_mpc_is_not_mistaken_for_a_failed_connection(tmp_path):
    """The launcher sees the worker's 'connected' line at once, however long the MPC then stays quiet."""
    from localnet import free_ports

    from mpc_federation.launcher import MPCJob, run_mpc
    from mpc_federation.programs import load_program
    from mpc_federation.sharing import input_payloads, recombine

    program = load_program(SLOW_SUM).program
    values = [5, 7, 11]
    rows = [input_payloads(program, {"value": [v]}, 1, 3) for v in values]
    endpoints = [f"127.0.0.1:{port}" for port in free_ports(3)]
    out: dict = {}

    def go(i):
        job = MPCJob(
            program=str(SLOW_SUM),
            party_index=i,
            endpoints=endpoints,
            threshold=1,
            roster=["p0", "p1", "p2"],
            shares={f"p{j}": rows[j][i] for j in range(3)},
            input_lengths={"value": 1},
            output_lengths={"total": 1},
            dims={},
            params={"delay": 4},
            names=["p0", "p1", "p2"],
        )
        try:
            out[i] = run_mpc(job, connect_timeout=3, run_timeout=60)
        except Exception as exc:  # noqa: BLE001
            out[i] = exc

    threads = [threading.Thread(target=go, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert all(not isinstance(out[i], Exception) for i in range(3)), out
    assert all(out[i].connect_seconds < 3 < out[i].total_seconds for i in range(3))
    assert recombine(program.modulus, {i: out[i].shares for i in range(3)}, 1) == [sum(values)]
