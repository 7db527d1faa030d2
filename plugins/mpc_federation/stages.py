"""The stages of a run, as plain functions over a PartyRun: share, wait, compute, reveal.

The Airflow operators and the sensor are thin wrappers around these, so the same code
runs under Airflow, in the tests, and in the benchmarks.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from mpc_federation.channel import RunChannel
from mpc_federation.envelope import IntegrityError
from mpc_federation.party import PartyRun
from mpc_federation.programs import check_aggregate

ATTEMPT = 1  # the MPC attempt every party follows (see the roster)


class StageError(RuntimeError):
    """A stage that cannot go on; the message says why, and who is concerned."""


# -- share (input parties) ---------------------------------------------------------------------
def read_aggregate(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise StageError(f"aggregate file {path} not found (did the local aggregation task run?)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise StageError(f"aggregate file {path} is not valid JSON: {exc}") from None


def share(run: PartyRun, aggregate: dict) -> dict:
    """Check the aggregate, split it into Shamir shares and publish one sealed object per compute party.

    Everything is checked before the first upload; a retry after success changes nothing.
    """
    from mpc_federation.sharing import split

    program, spec, channel = run.program, run.spec, run.channel
    vectors = check_aggregate(program, aggregate, run.dims, run.party_id)
    done_key = channel.input_done_key(run.party_id)
    if channel.read(done_key, "input-done", run.party_id) is not None:
        return {"run": channel.run, "status": "already shared"}

    flat = [v for i in program.inputs for v in vectors[i.name]]
    computes = spec.compute_parties
    rows = split(program.field, flat, spec.threshold, len(computes))
    for index, compute_party in enumerate(computes):
        payload, pos = {}, 0
        for i in program.inputs:
            n = len(vectors[i.name])
            payload[i.name] = rows[index][pos: pos + n]
            pos += n
        channel.publish(channel.input_key(run.party_id, compute_party.id), "input-shares", "input",
                        {"shares": payload}, to=compute_party.id)
    channel.publish(done_key, "input-done", "input",
                    {"inputs": [i.name for i in program.inputs], "compute_parties": [c.id for c in computes]})
    return {"run": channel.run, "status": "shared", "objects": len(computes) + 1}


# -- waiting (the sensor's condition) --------------------------------------------------------------
def pending(channel: RunChannel, stage: str, present: set[str]) -> dict[str, str]:
    """Objects a stage still waits for, as {key: party}; empty when the stage may start."""
    spec = channel.spec
    if enough_key(channel, stage) in present:
        return {}  # the leader already fixed who is in
    if stage == "inputs":
        wanted = {channel.input_done_key(p.id): p.id for p in spec.input_parties}
    elif stage == "roster":
        wanted = {channel.roster_key(ATTEMPT): spec.leader.id}
    elif stage == "result":
        wanted = {channel.output_key(ATTEMPT, c.id, channel.me.id): c.id for c in spec.compute_parties}
    else:
        raise ValueError(f"unknown stage {stage!r}")
    return {k: p for k, p in wanted.items() if k not in present}


def enough_key(channel: RunChannel, stage: str) -> str | None:
    """A key whose presence alone lets the stage start (see ``pending``)."""
    return channel.roster_key(ATTEMPT) if stage == "inputs" else None


def aborts(channel: RunChannel, present: set[str]) -> list[str]:
    return aborted_parties(channel.root, present)


def aborted_parties(root: str, present: set[str]) -> list[str]:
    """Parties with an abort record among the listed keys of a run."""
    prefix = f"{root}/abort/"
    return sorted({k[len(prefix):].split("/")[0] for k in present if k.startswith(prefix)})


def abort_reason(channel: RunChannel, party: str) -> str:
    record = channel.read(channel.abort_key(party), "abort", party)
    return record["reason"] if record else "(no reason recorded)"


def publish_abort(channel: RunChannel, role: str, reason: str) -> None:
    channel.publish(channel.abort_key(channel.me.id), "abort", role, {"reason": reason})


# -- compute (compute parties) -----------------------------------------------------------------------
def fix_roster(run: PartyRun, wait_seconds: float) -> list[str]:
    """The included input parties: published by the leader, read by everyone else."""
    spec, channel = run.spec, run.channel
    key = channel.roster_key(ATTEMPT)
    if run.party_id == spec.leader.id:
        present = channel.present("inputs/")
        roster = [p.id for p in spec.input_parties if channel.input_done_key(p.id) in present]
        floor = max(run.program.min_input_parties, spec.min_input_parties)
        if len(roster) < floor:
            reason = (f"only {len(roster)} input parties shared ({', '.join(roster) or 'none'}); "
                      f"at least {floor} are required before anything is revealed")
            publish_abort(channel, "compute", reason)
            raise StageError(reason)
        channel.publish(key, "roster", "compute", {"roster": roster}, attempt=ATTEMPT, only_if_new=True)
    deadline = time.monotonic() + wait_seconds
    while True:
        record = channel.read(key, "roster", spec.leader.id, attempt=ATTEMPT)
        if record is not None:
            return record["roster"]
        if time.monotonic() > deadline:
            raise StageError(f"the leader {spec.leader.id} published no roster within {wait_seconds:.0f} s")
        time.sleep(1)


def compute(run: PartyRun, *, connect_timeout: float | None = None, run_timeout: float | None = None) -> dict:
    """Run this compute party's MPyC process over the roster's shares and publish output shares."""
    from mpc_federation.launcher import MPCJob, run_mpc

    spec, program, channel = run.spec, run.program, run.channel
    connect_timeout = connect_timeout or spec.deadlines["connect"]
    run_timeout = run_timeout or spec.deadlines["mpc"]
    t0 = time.monotonic()
    roster = fix_roster(run, connect_timeout)
    channel.publish(channel.status_key(run.party_id, "computing"), "status", "compute",
                    {"roster": roster, "started_at": time.time()})
    shares = {}
    for party in roster:
        record = channel.read(channel.input_key(party, run.party_id), "input-shares", party, to=run.party_id)
        if record is None:
            raise StageError(f"input party {party} is on the roster but its shares for {run.party_id} are missing")
        shares[party] = record["shares"]
    job = MPCJob(
        program=str(spec.program_file), party_index=spec.compute_index(run.party_id),
        endpoints=[c.endpoint for c in spec.compute_parties], threshold=spec.threshold, roster=roster,
        shares=shares, input_lengths=program.input_lengths(run.dims),
        output_lengths=program.output_lengths(run.dims),
        output_kinds={o.name: o.kind for o in program.outputs}, params=spec.program_params,
        tls_dir=os.environ.get("MPC_TLS_DIR") or None,
    )
    result = run_mpc(job, connect_timeout=connect_timeout, run_timeout=run_timeout)
    for recipient in spec.recipients:
        channel.publish(channel.output_key(ATTEMPT, run.party_id, recipient.id), "output-shares", "compute",
                        {"shares": result.shares, "roster": roster}, to=recipient.id, attempt=ATTEMPT)
    timings = {"connect": round(result.connect_seconds, 3), "mpc": round(result.total_seconds, 3),
               "stage": round(time.monotonic() - t0, 3)}
    channel.publish(channel.status_key(run.party_id, "computed"), "status", "compute",
                    {"roster": roster, "seconds": timings})
    return {"run": channel.run, "roster": roster, "seconds": timings}


# -- reveal (recipients) -------------------------------------------------------------------------------------
def reveal(run: PartyRun, results_dir: str | Path | None = None) -> dict:
    """Gather output shares, check they agree on the roster, recombine, decode and keep a record."""
    from mpc_federation.sharing import decode, recombine

    spec, program, channel = run.spec, run.program, run.channel
    if not run.me.has("recipient"):
        raise StageError(f"party {run.party_id} is not a recipient of {spec.computation}")
    roster_record = channel.read(channel.roster_key(ATTEMPT), "roster", spec.leader.id, attempt=ATTEMPT)
    if roster_record is None:
        raise StageError("no roster was published for this run")
    roster = roster_record["roster"]
    floor = max(program.min_input_parties, spec.min_input_parties)
    if len(roster) < floor:
        raise StageError(f"roster has {len(roster)} input parties, below the floor of {floor}: not revealed")
    shares = {}
    for index, c in enumerate(spec.compute_parties):
        record = channel.read(channel.output_key(ATTEMPT, c.id, run.party_id), "output-shares", c.id,
                              to=run.party_id, attempt=ATTEMPT)
        if record is None:
            continue
        if record["roster"] != roster:
            raise IntegrityError(f"compute party {c.id} computed over {record['roster']}, not the roster {roster}")
        shares[index] = record["shares"]
    values = recombine(program.field, shares, spec.threshold)
    outputs = decode(program, run.dims, values)
    result = {"computation": spec.computation, "run": channel.run, "program": program.name,
              "roster": roster, "compute_parties": [spec.compute_parties[i].id for i in sorted(shares)],
              "spec_hash": spec.spec_hash, "program_hash": spec.program_hash, "outputs": outputs}
    if results_dir is not None:
        _write_atomically(Path(results_dir) / spec.computation / channel.run / "result.json", result)
    channel.publish(channel.status_key(run.party_id, "revealed"), "status", "recipient",
                    {"roster": roster, "revealed_at": time.time()})
    return result


def _write_atomically(path: Path, document: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, indent=2))
    os.replace(tmp, path)
