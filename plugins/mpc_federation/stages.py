"""The stages of a run, as plain functions over a PartyRun: share, wait, compute, reveal.

The Airflow operators and the sensor are thin wrappers around these, so the same code
runs under Airflow, in the tests, and in the benchmarks. Every stage logs one summary line
and leaves a signed status record (timings, roster, outcome) in the bucket.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from mpc_federation.channel import RunChannel
from mpc_federation.envelope import IntegrityError
from mpc_federation.layout import Readiness, readiness
from mpc_federation.party import PartyRun
from mpc_federation.programs import check_aggregate

log = logging.getLogger(__name__)
ABORT_POLL_SECONDS = 2.0


class StageError(RuntimeError):
    """A stage that cannot go on; the message says why, and who is concerned."""


def floor(run: PartyRun) -> int:
    """The fewest input parties a result may be computed over (privacy floor k)."""
    return max(run.program.min_input_parties, run.spec.min_input_parties)


def _record(channel: RunChannel, stage: str, role: str, payload: dict) -> None:
    """Leave the stage's durable record in the bucket and in the task log."""
    payload = {"stage": stage, "party": channel.me.id, "run": channel.run, "at": time.time(), **payload}
    channel.publish(channel.status_key(channel.me.id, stage), "status", role, payload)
    log.info("mpc-record %s", json.dumps(payload, sort_keys=True))


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

    Everything is checked before the first upload. A retry after success changes nothing; a
    record this party cannot read any more (an old spec or program) is replaced.
    """
    from mpc_federation.sharing import input_payloads

    program, spec, channel = run.program, run.spec, run.channel
    t0 = time.monotonic()
    vectors = check_aggregate(program, aggregate, run.dims, run.party_id)
    done_key = channel.input_done_key(run.party_id)
    try:
        if channel.read(done_key, "input-done", run.party_id) is not None:
            return {"run": channel.run, "status": "already shared"}
    except IntegrityError as exc:
        log.warning("Replacing this party's earlier shares: %s", exc)

    computes = spec.compute_parties
    payloads = input_payloads(program, vectors, spec.threshold, len(computes))
    for compute_party, payload in zip(computes, payloads):
        channel.publish(channel.input_key(run.party_id, compute_party.id), "input-shares", "input",
                        {"shares": payload}, to=compute_party.id)
    seconds = round(time.monotonic() - t0, 3)
    channel.publish(done_key, "input-done", "input",
                    {"inputs": [i.name for i in program.inputs], "compute_parties": [c.id for c in computes],
                     "seconds": seconds})
    log.info("mpc-record %s", json.dumps({"stage": "shared", "party": run.party_id, "run": channel.run,
                                          "seconds": seconds}))
    return {"run": channel.run, "status": "shared", "objects": len(computes) + 1}


def withdraw(run: PartyRun, code: str, task: str = "share") -> None:
    """An input party that cannot share says so, so that nobody waits for it in vain.

    Only a code from ``reasons.WITHDRAWAL_CODES`` and the failing task's id are published: the
    error itself may quote the party's data and stays in its local task log.
    """
    from mpc_federation import reasons

    reasons.check(code, reasons.WITHDRAWAL_CODES)
    run.channel.publish(run.channel.withdrawal_key(run.party_id), "abort", "input",
                        {"code": code, "task": task, "reason": f"{task} failed: {code}"})


# -- waiting (the sensor's condition) ------------------------------------------------------------
def wait_state(run: PartyRun, stage: str, present: set[str], *, cutoff_passed: bool) -> Readiness:
    state = readiness(run.channel, run.party_id, stage, present, floor=floor(run), cutoff_passed=cutoff_passed)
    if state.stop:
        state.stop = f"{state.stop}; {explain_aborts(run.channel, present)}".rstrip("; ")
    return state


def explain_aborts(channel: RunChannel, present: set[str]) -> str:
    """The verified reasons of every abort record in a listing."""
    reasons = []
    for key in sorted(k for k in present if k.startswith(f"{channel.root}/abort/")):
        party, scope = key[len(channel.root) + len("/abort/"):].split("/", 1)
        attempt = int(scope.split("-")[1]) if scope.startswith("attempt-") else 0
        try:
            record = channel.read(key, "abort", party, attempt=attempt)
            reasons.append(f"{party} ({scope}): {record['reason']}")
        except IntegrityError as exc:
            reasons.append(f"{party} ({scope}): unverifiable abort record: {exc}")
    return "; ".join(reasons)


# -- compute (compute parties) ---------------------------------------------------------------------
def fix_roster(run: PartyRun, attempt: int, wait_seconds: float) -> tuple[int, list[str]]:
    """The attempt and its included input parties: the leader publishes, the others follow.

    :param attempt: the leader's attempt number (its task's try); ignored by the others, who
        take the newest attempt that no compute party has given up.
    """
    spec, channel = run.spec, run.channel
    if run.party_id == spec.leader.id:
        present = channel.present()
        shared = channel.shared(present)
        if len(shared) < floor(run):
            reason = (f"only {len(shared)} input parties shared ({', '.join(shared) or 'none'}); at least "
                      f"{floor(run)} are required before anything is revealed")
            give_up(channel, attempt, reason)
            raise StageError(reason)
        channel.publish(channel.roster_key(attempt), "roster", "compute", {"roster": shared},
                        attempt=attempt, only_if_new=True)
    deadline, pause = time.monotonic() + wait_seconds, 0.1
    while True:
        present = channel.present()
        live = channel.live_attempt(present)
        # Follow the live attempt, but never one this party already completed: a re-run waits
        # for the leader's next attempt instead of replaying the last one.
        done_here = live is not None and channel.output_key(live, run.party_id, spec.recipients[0].id) in present
        if live is not None and (live == attempt if run.party_id == spec.leader.id else not done_here):
            record = channel.read(channel.roster_key(live), "roster", spec.leader.id, attempt=live)
            return live, record["roster"]
        if time.monotonic() > deadline:
            aborted = explain_aborts(channel, present)
            raise StageError(f"the leader {spec.leader.id} published no live roster within {wait_seconds:.0f} s"
                             + (f"; {aborted}" if aborted else ""))
        time.sleep(pause)
        pause = min(pause * 2, 1.0)  # the leader is usually a moment away; don't poll the bucket hard


def mpyc_certificates(run: PartyRun) -> list[str]:
    """The pinned certificates of every compute party: MPyC runs over mutual TLS only."""
    missing = [c.id for c in run.spec.compute_parties if not c.certificate]
    if missing:
        raise StageError(f"compute parties {', '.join(missing)} have no TLS certificate in the federation spec "
                         "(python -m mpc_federation.keys public --keys FILE --compute-index N)")
    if run.keys.tls_key is None:
        raise StageError(f"the private keys of {run.party_id} hold no TLS key for MPyC")
    return [c.certificate for c in run.spec.compute_parties]


def give_up(channel: RunChannel, attempt: int, reason: str, code: str = "protocol") -> None:
    """A compute party gives up ``attempt``: a code from ``reasons.GIVE_UP_CODES`` and a text of
    protocol facts only (never a value derived from data; see ``reasons.give_up_reason``)."""
    from mpc_federation import reasons

    reasons.check(code, reasons.GIVE_UP_CODES)
    channel.publish(channel.attempt_abort_key(channel.me.id, attempt), "abort", "compute",
                    {"code": code, "reason": reason}, attempt=attempt)


def compute(run: PartyRun, *, attempt: int = 1, connect_timeout: float | None = None,
            run_timeout: float | None = None) -> dict:
    """Run this compute party's MPyC process over the roster's shares and publish output shares.

    On failure this party gives up the attempt in the bucket, which stops the other compute
    parties within seconds; a retry by every party converges on the next attempt.
    """
    spec = run.spec
    connect_timeout = connect_timeout or spec.deadlines["connect"]
    run_timeout = run_timeout or spec.deadlines["mpc"]
    t0 = time.monotonic()
    live, roster = fix_roster(run, attempt, connect_timeout)
    try:
        return _compute_attempt(run, live, roster, connect_timeout, run_timeout, t0)
    except Exception as exc:
        try:
            from mpc_federation.reasons import give_up_reason

            code, reason = give_up_reason(exc, run.party_id)  # value-free: never a ProgramError's text
            give_up(run.channel, live, reason, code)
        except Exception as err:  # keep the original failure; the others still have their deadlines
            log.warning("Could not publish giving up attempt %s: %s", live, err)
        raise


def _compute_attempt(run: PartyRun, attempt: int, roster: list[str], connect_timeout: float,
                     run_timeout: float, t0: float) -> dict:
    from mpc_federation.launcher import MPCJob, run_mpc

    spec, program, channel = run.spec, run.program, run.channel
    _record(channel, "computing", "compute", {"attempt": attempt, "roster": roster})
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
        dims=run.dims, params=program.params(spec.program_params),
        session=f"{spec.spec_hash}/{spec.program_hash}/{channel.run}/attempt-{attempt}/{','.join(roster)}",
        tls_key=run.keys.tls_key, certificates=mpyc_certificates(run),
        names=[c.id for c in spec.compute_parties],
    )

    def stop_reason() -> str | None:
        try:
            present = channel.present("abort/", patient=False)
        except Exception:  # the bucket briefly unreachable: keep computing, the deadlines still hold
            return None
        if channel.attempt_aborts(present, attempt):
            return f"attempt {attempt} was given up: {explain_aborts(channel, present)}"
        return None

    result = run_mpc(job, connect_timeout=connect_timeout, run_timeout=run_timeout,
                     stop_reason=stop_reason, poll_seconds=ABORT_POLL_SECONDS)
    for recipient in spec.recipients:
        channel.publish(channel.output_key(attempt, run.party_id, recipient.id), "output-shares", "compute",
                        {"shares": result.shares, "roster": roster, "withheld": job.withheld},
                        to=recipient.id, attempt=attempt)
    timings = {"connect": round(result.connect_seconds, 3), "mpc": round(result.total_seconds, 3),
               "stage": round(time.monotonic() - t0, 3)}
    _record(channel, "computed", "compute", {"attempt": attempt, "roster": roster, "seconds": timings,
                                             "bytes_sent": result.bytes_sent, "tls": result.tls})
    return {"run": channel.run, "attempt": attempt, "roster": roster, "seconds": timings, "tls": result.tls}


# -- reveal (recipients) -------------------------------------------------------------------------------------
def reveal(run: PartyRun, results_dir: str | Path | None = None) -> dict:
    """Gather output shares of the live attempt, check they agree on the roster and on one
    polynomial, recombine, decode and keep a record."""
    from mpc_federation.sharing import decode, recombine

    spec, program, channel = run.spec, run.program, run.channel
    if not run.me.has("recipient"):
        raise StageError(f"party {run.party_id} is not a recipient of {spec.computation}")
    attempt = channel.live_attempt(channel.present())
    if attempt is None:
        raise StageError("no live MPC attempt for this run (no roster, or the newest attempt was given up)")
    roster = channel.read(channel.roster_key(attempt), "roster", spec.leader.id, attempt=attempt)["roster"]
    if len(roster) < floor(run):
        raise StageError(f"roster has {len(roster)} input parties, below the floor of {floor(run)}: not revealed")
    shares, withheld = {}, None
    for index, c in enumerate(spec.compute_parties):
        record = channel.read(channel.output_key(attempt, c.id, run.party_id), "output-shares", c.id,
                              to=run.party_id, attempt=attempt)
        if record is None:
            continue
        if record["roster"] != roster:
            raise IntegrityError(f"compute party {c.id} computed over {record['roster']}, not the roster {roster}")
        if withheld is not None and record.get("withheld", []) != withheld:
            raise IntegrityError(f"compute party {c.id} withheld {record.get('withheld')}, the others {withheld}")
        withheld = record.get("withheld", [])
        shares[index] = record["shares"]
    values = recombine(program.field, shares, spec.threshold)
    outputs = decode(program, run.dims, values, program.params(spec.program_params), withheld or [])
    result = {"computation": spec.computation, "run": channel.run, "attempt": attempt, "program": program.name,
              "roster": roster, "compute_parties": [spec.compute_parties[i].id for i in sorted(shares)],
              "recipient": run.party_id, "spec_hash": spec.spec_hash, "program_hash": spec.program_hash,
              "outputs": outputs}
    if results_dir is not None:
        _write_atomically(Path(results_dir) / spec.computation / channel.run / "result.json", result)
    _record(channel, "revealed", "recipient", {"attempt": attempt, "roster": roster,
                                               "compute_parties": result["compute_parties"]})
    return result


def _write_atomically(path: Path, document: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(document, indent=2))
    os.replace(tmp, path)
