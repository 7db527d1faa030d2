"""The MPC stages of one run, measured: share (every input party), rendezvous, compute (every compute
party as a thread launching its real MPyC process), reveal - all through ``mpc_federation.stages``
against the real local S3 API server, as the Airflow operators run them.
"""

from __future__ import annotations

import random
import time
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from common import TAXI_JOB, TAXI_TEMPLATE, MPCRecorder, S3Requests, WorkerMonitor, all_at_once, hhi_reference

DATE = datetime(2024, 4, 1, tzinfo=UTC)  # the period is the three months before


def parties_yaml(inputs: int, computes: int) -> list[dict]:
    """``inputs`` companies (the first ``computes`` of them also compute) and one regulator."""
    if computes > inputs:
        raise ValueError("the compute parties are input parties too: need computes <= inputs")
    width = len(str(inputs - 1))
    out = []
    for i in range(inputs):
        name = f"company_{chr(ord('a') + i)}" if inputs <= 26 else f"company_{i:0{width}d}"
        out.append({"id": name, "roles": ["input", "compute"] if i < computes else ["input"]})
    out.append({"id": "regulator", "roles": ["recipient"]})
    return out


def months_back(last: str, count: int) -> tuple[str, str]:
    """(start, end) of ``count`` months ending with ``last`` (YYYY-MM)."""
    y, m = map(int, last.split("-"))
    index = y * 12 + (m - 1) - (count - 1)
    return f"{index // 12:04d}-{index % 12 + 1:02d}", last


@dataclass
class Federation:
    spec: object
    keys: dict
    runs: dict  # party id -> PartyRun


def make_federation(
    root: Path,
    s3,
    inputs: int,
    computes: int,
    months: int | None = None,
    party_list: list[dict] | None = None,
    program: Path | None = None,
) -> Federation:
    """A rendered spec (fresh keys, free ports, a prefix of its own) and every party's PartyRun.

    :param months: months in the period (markets = months + 1 for 'all'); None keeps the template's.
    :param program: another program file than the template's (same inputs and outputs).
    """
    import localnet

    from mpc_federation.envelope import PartyKeys
    from mpc_federation.party import PartyRun
    from mpc_federation.spec import load_spec
    from mpc_federation.store import CoordinationStore

    plist = party_list or parties_yaml(inputs, computes)
    keys = {p["id"]: PartyKeys.generate(p["id"], test_only=True) for p in plist}
    overrides = {
        "coordination": {"bucket": "mpc-coordination", "prefix": f"bench{uuid.uuid4().hex[:10]}"},
        "min_input_parties": min(3, inputs),
    }
    if program is not None:
        overrides["program"] = {"file": str(program)}
    if months is not None:
        start, end = months_back("2024-03", months)
        overrides["aggregation"] = {"job": str(TAXI_JOB), "input": "trips", "period": {"start": start, "end": end}}
    path = localnet.render_spec(
        TAXI_TEMPLATE, root / f"spec-{uuid.uuid4().hex[:8]}", keys, parties=plist, overrides=overrides
    )
    spec = load_spec(path)
    store = CoordinationStore(s3.store_config(spec.bucket))
    store.ensure_bucket()
    runs = {
        p.id: PartyRun(spec, p.id, DATE, keys[p.id], CoordinationStore(s3.store_config(spec.bucket)))
        for p in spec.parties
    }
    return Federation(spec, keys, runs)


def random_aggregates(fed: Federation, seed: int = 1) -> dict[str, dict]:
    """Aggregates as the Spark job writes them, with random revenues ('all' = the sum of the months)."""
    rng = random.Random(seed)
    labels = fed.spec.dimensions(DATE)["market"]
    months = len(labels) - 1
    high = 10**12 // months
    out = {}
    for p in fed.spec.input_parties:
        values = [rng.randint(0, high) for _ in range(months)]
        out[p.id] = {
            "format": "mpc-aggregate/1",
            "party": p.id,
            "dimensions": {"market": labels},
            "values": {"revenue_cents": [sum(values), *values]},
        }
    return out


def plaintext_hhi(aggregates: dict[str, dict]) -> list[str | None]:
    vectors = [a["values"]["revenue_cents"] for a in aggregates.values()]
    return hhi_reference([list(column) for column in zip(*vectors)])


@contextmanager
def _profiled(profile_dir: Path | None, name: str):
    """cProfile of this thread's work, written to ``profile_dir/name.prof`` (nothing without a folder)."""
    if profile_dir is None:
        yield
        return
    import cProfile

    profile_dir.mkdir(parents=True, exist_ok=True)
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        profiler.dump_stats(str(profile_dir / f"{name}.prof"))


def still_missing(run, stage: str, view=None) -> list[str]:
    """The sensor's condition for ``stage`` on one listing of the run (``view``, or a new one): who
    is still missing."""
    from mpc_federation import stages

    view = run.reader.verified_for(stage) if view is None else view
    state = stages.wait_state(run, stage, view, cutoff_passed=False)
    return [] if state.ready else (state.missing or [state.stop or "?"])


def sensor_runs(fed: Federation, parties: list) -> dict:
    """Each party's sensor as Airflow runs it: its own reader with public keys only, which
    remembers what it verified between pokes (not the compute task's channel)."""
    from mpc_federation.party import PartyRun

    return {p.id: PartyRun(fed.spec, p.id, DATE, None, fed.runs[p.id].store) for p in parties}


@contextmanager
def _emulated_wan(spec, rtt_ms: float):
    """With ``rtt_ms``: a delay proxy in front of every compute party's MPyC port (scripts/wanproxy.py),
    each party dialling the others through them; yields the proxies (their flights count rounds)."""
    if not rtt_ms:
        yield []
        return
    import wanproxy

    from mpc_federation import computing

    ports = [int(str(c.endpoint).rsplit(":", 1)[1]) for c in spec.compute_parties]
    endpoints, proxies = wanproxy.delayed_mesh(ports, rtt_ms / 2000)
    seat = computing.mpyc_seat

    def delayed_seat(run):
        own = seat(run)
        return {**own, "endpoints": endpoints[own["party_index"]]}

    computing.mpyc_seat = delayed_seat
    try:
        yield proxies
    finally:
        computing.mpyc_seat = seat
        for proxy in proxies:
            proxy.stop()


def run_stages(
    fed: Federation,
    aggregates: dict[str, dict],
    *,
    profile_dir: Path | None = None,
    run_timeout: float = 900,
    rtt_ms: float = 0.0,
    requests: S3Requests | None = None,
    wait_in_task: bool = False,
) -> dict:
    """Share, rendezvous, compute, reveal; every stage timed per party. With ``rtt_ms``, the MPyC
    links between compute parties go through an emulated WAN of that round-trip time. With
    ``wait_in_task`` the compute and reveal tasks wait themselves (``[mpc] wait_in_task``): the
    waits list through the parties' own runs, whose listings the stages then go on with, and the compute
    parties start MPyC once the rendezvous is near (``computing.EarlyStart``, from the
    ``waiting.near_from``-th input party's share on).

    The input parties share one after the other in this process (each would run on its own
    machine, at the same time): ``mpc_critical_s`` counts the slowest party's share, and
    ``after_inputs_s`` is the compute parties' path from the last input published to the result
    revealed (rendezvous, compute, result rendezvous, reveal).

    Returns {"share_s": {party: s}, "rendezvous_s": {party: s}, "compute": {party: {...}},
    "reveal_s": s, "result": revealed result, "mpc_critical_s": ..., "mpc_machine_s": ...,
    "after_inputs_s": ..., "requests": {stage: {kind: count}} (with ``requests``)}.
    """
    from mpc_federation import stages
    from mpc_federation.computing import EarlyStart
    from mpc_federation.stage_base import floor
    from mpc_federation.waiting import near_from

    with ExitStack() as stack:
        recorder = stack.enter_context(MPCRecorder(profile_dir))
        monitor = stack.enter_context(WorkerMonitor())
        proxies = stack.enter_context(_emulated_wan(fed.spec, rtt_ms))
        early = {c.id: stack.enter_context(EarlyStart(fed.runs[c.id])) for c in fed.spec.compute_parties}
        spec, runs = fed.spec, fed.runs
        near_at = near_from(floor(runs[spec.compute_parties[0].id]), len(spec.input_parties))
        counts: dict[str, dict[str, int]] = {}
        mark = requests.snapshot() if requests else {}

        def counted(stage: str) -> None:
            nonlocal mark
            if requests is not None:
                counts[stage] = requests.since(mark)
                mark = requests.snapshot()

        waiting = [*spec.compute_parties, spec.recipients[0]]
        sensors = {p.id: runs[p.id] for p in waiting} if wait_in_task else sensor_runs(fed, waiting)
        share_s = {}
        with _profiled(profile_dir, "share-all-parties"):
            for i, party in enumerate(spec.input_parties):  # one after the other: each would run on its own machine
                if wait_in_task and i == near_at:  # the compute tasks' waits see the rendezvous near
                    for c in spec.compute_parties:
                        early[c.id]()
                if i == len(spec.input_parties) - 1:
                    counted("share")
                    for c in spec.compute_parties:  # the sensors poked while the others shared
                        still_missing(sensors[c.id], "inputs")
                    counted("sensor pokes before the last input")
                t0 = time.monotonic()
                stages.share(runs[party.id], aggregates[party.id])
                share_s[party.id] = time.monotonic() - t0
        counted("share of the last input party")

        # The rendezvous: each compute party's sensor condition (its poke after the last input).
        rendezvous_s, views = {}, {}
        for party in spec.compute_parties:
            t0 = time.monotonic()
            views[party.id] = sensors[party.id].reader.verified_for("inputs")
            missing = still_missing(sensors[party.id], "inputs", views[party.id])
            rendezvous_s[party.id] = time.monotonic() - t0
            if missing:
                raise RuntimeError(f"inputs still missing after every party shared: {missing}")
        counted("rendezvous")

        results, errors, stage_s, stage_at = {}, {}, {}, {}

        def go(run):
            t0 = time.monotonic()
            stage_at[run.party_id] = t0
            try:
                with _profiled(profile_dir, f"compute-{run.party_id}"):
                    # connect_timeout = run_timeout: the launcher may read the worker's "connected" line
                    # late (see the report), so a long silent MPC must not count against connecting.
                    results[run.party_id] = stages.compute(
                        run,
                        connect_timeout=run_timeout,
                        run_timeout=run_timeout,
                        process=early[run.party_id].take(),
                        view=views[run.party_id] if wait_in_task else None,
                    )
            except Exception as exc:  # noqa: BLE001 - reported below
                errors[run.party_id] = exc
            stage_s[run.party_id] = time.monotonic() - t0

        t_compute = time.monotonic()
        compute_wall = all_at_once(go, [(runs[p.id],) for p in spec.compute_parties])
        rounds = max((proxy.max_flights for proxy in proxies), default=None)
        counted("compute")
        if errors:
            raise RuntimeError(f"compute failed: {errors}")

        recipient = spec.recipients[0]
        t0 = time.monotonic()
        view = sensors[recipient.id].reader.verified_for("result")
        missing = still_missing(sensors[recipient.id], "result", view)
        result_rendezvous = time.monotonic() - t0
        if missing:
            raise RuntimeError(f"output shares missing: {missing}")
        t0 = time.monotonic()
        with _profiled(profile_dir, "reveal"):  # waiting itself, the reveal goes on with the wait's listing
            result = stages.reveal(runs[recipient.id], view if wait_in_task else None)
        reveal_s = time.monotonic() - t0
        counted("result rendezvous and reveal")

        peaks = monitor.peak_mib()
        compute = {}
        for i, party in enumerate(spec.compute_parties):
            rec = recorder.results.get(i, {})
            start, end = stage_at[party.id], stage_at[party.id] + stage_s[party.id]
            compute[party.id] = {
                "stage_s": stage_s[party.id],
                "peak_rss_mib": peaks.get(i),
                "tls": results[party.id].get("tls"),
                "worker_cpu_s": round(monitor.cpu_seconds.get(i, 0.0), 2),
                # before MPyC: fixing the roster (followers poll for the leader's), reading and
                # decrypting the input shares (the MPyC process starts and connects meanwhile);
                # after: publishing the output shares and status.
                "before_mpyc_s": rec["launched_at"] - start if rec else None,
                "mpyc_started_after_stage_s": rec["started_at"] - start if rec else None,
                "after_mpyc_s": end - rec["finished_at"] if rec else None,
                "launched_after_first_s": rec["launched_at"] - t_compute if rec else None,
                **{k: v for k, v in rec.items() if k not in ("started_at", "launched_at", "finished_at")},
            }
        max_share = max(share_s.values())
        after_inputs = max(rendezvous_s.values()) + compute_wall + result_rendezvous + reveal_s
        critical = max_share + after_inputs
        machine = (
            sum(share_s.values()) + sum(rendezvous_s.values()) + sum(stage_s.values()) + result_rendezvous + reveal_s
        )
        return {
            "share_s": share_s,
            "rendezvous_s": rendezvous_s,
            "compute": compute,
            "compute_wall_s": compute_wall,
            "result_rendezvous_s": result_rendezvous,
            "reveal_s": reveal_s,
            "result": result,
            "mpc_critical_s": critical,
            "rtt_ms": rtt_ms,
            "rounds": rounds,
            "after_inputs_s": after_inputs,
            "requests": counts,
            "mpc_machine_s": machine,
            "bytes_sent_total": sum(c.get("bytes_sent", 0) for c in compute.values()),
            "peak_rss_max_mib": max((c["peak_rss_mib"] or 0) for c in compute.values()),
        }
