"""The stages of a run, as plain functions over a PartyRun: share, wait, compute, reveal.

The Airflow operators and the sensor are thin wrappers around these, so the same code
runs under Airflow, in the tests, and in the benchmarks. Every stage logs one summary line
and leaves a signed status record (timings, roster, outcome) in the bucket.

This module is the entry point (``__all__``); the roster (fixed by the leader, followed, given
up, an input party's inclusion) is in ``roster``, the steps of one MPC attempt in ``computing``,
and what they all share (``StageError``, the floor, abort reasons) in ``stage_base``.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mpc_federation import computing
from mpc_federation.channel import RunChannel, Verified
from mpc_federation.envelope import IntegrityError
from mpc_federation.layout import Readiness, readiness
from mpc_federation.party import PartyRun
from mpc_federation.programs import check_aggregate
from mpc_federation.roster import check_nobody_absent, finished_here, fix_roster, give_up, inclusion, ledger_records
from mpc_federation.stage_base import StageError, explain_aborts, explained, floor, verified
from mpc_federation.store import concurrently

if TYPE_CHECKING:
    from mpc_federation.launcher import MPCProcess

__all__ = [
    "Readiness",
    "StageError",
    "compute",
    "explain_aborts",
    "fix_roster",
    "floor",
    "give_up",
    "inclusion",
    "reveal",
    "share",
    "wait_state",
    "withdraw",
]

log = logging.getLogger(__name__)
ABORT_POLL_SECONDS = 2.0


def _record(channel: RunChannel, stage: str, role: str, payload: dict) -> None:
    """Leave the stage's durable record in the bucket and in the task log."""
    payload = {"stage": stage, "party": channel.me.id, "run": channel.run, "at": time.time(), **payload}
    channel.publish(channel.status_key(channel.me.id, stage), "status", role, payload)
    log.info("mpc-record %s", json.dumps(payload, sort_keys=True))


# -- share (input parties) ---------------------------------------------------------------------
def share(run: PartyRun, aggregate: dict) -> dict:
    """Check the aggregate, split it into Shamir shares and publish one sealed object per compute party.

    Everything is checked before the first upload. A retry after success changes nothing; a
    record this party cannot read any more (an old spec or program) is replaced. Without a cut-off
    a party that withdrew from the run does not share in it again (``check_nobody_absent``).
    """
    from mpc_federation.sharing import input_payloads

    program, spec, channel = run.program, run.spec, run.channel
    t0 = time.monotonic()
    vectors = check_aggregate(program, aggregate, run.dims, run.party_id)
    if spec.cutoff is None and _withdrew(channel, run.party_id):
        raise StageError(
            f"{run.party_id} withdrew from run {channel.run}: without a cut-off (deadlines.cutoff: never) a "
            "withdrawal is final for the run, since the bucket's operator could show it instead of new shares "
            "and have this party left out; it takes part again in the next run"
        )
    done_key = channel.input_done_key(run.party_id)
    try:
        if channel.read(done_key, "input-done", run.party_id) is not None:
            return {"run": channel.run, "status": "already shared"}
    except IntegrityError as exc:
        log.warning("Replacing this party's earlier shares: %s", exc)

    computes = spec.compute_parties
    payloads = input_payloads(program, vectors, spec.threshold, len(computes))
    sharing = secrets.token_hex(16)  # names this one sharing: the compute parties must all hold it
    concurrently(  # one sealed object per compute party, written at once; the done marker after all
        lambda item: channel.publish(
            channel.input_key(run.party_id, item[0].id),
            "input-shares",
            "input",
            {"shares": item[1], "sharing": sharing},
            to=item[0].id,
        ),
        zip(computes, payloads),
    )
    seconds = round(time.monotonic() - t0, 3)
    channel.publish(
        done_key,
        "input-done",
        "input",
        {"inputs": [i.name for i in program.inputs], "compute_parties": [c.id for c in computes], "seconds": seconds},
    )
    log.info(
        "mpc-record %s", json.dumps({"stage": "shared", "party": run.party_id, "run": channel.run, "seconds": seconds})
    )
    return {"run": channel.run, "status": "shared", "objects": len(computes) + 1}


def _withdrew(channel, party: str) -> bool:
    """Whether ``party``'s own verified withdrawal from the run is in the bucket (an object there
    that does not verify is none: no compute party would count it either)."""
    try:
        return channel.read(channel.withdrawal_key(party), "abort", party) is not None
    except IntegrityError:
        return False


def withdraw(run: PartyRun, code: str, task: str = "share") -> None:
    """An input party that cannot share says so, so that nobody waits for it in vain.

    Only a code from ``reasons.WITHDRAWAL_CODES`` and the failing task's id are published: the
    error itself may quote the party's data and stays in its local task log.
    """
    from mpc_federation import reasons

    reasons.check(code, reasons.WITHDRAWAL_CODES)
    run.channel.publish(
        run.channel.withdrawal_key(run.party_id),
        "abort",
        "input",
        {"code": code, "task": task, "reason": f"{task} failed: {code}"},
    )


# -- waiting (the sensor's conditions; an input party's inclusion is roster.inclusion) ---------------
def wait_state(run: PartyRun, stage: str, present=None, *, cutoff_passed: bool) -> Readiness:
    """The readiness of ``stage`` from the run's verified objects only (``present``: a Verified
    view, a raw listing to verify, or None to list now)."""
    reader = run.reader
    view = verified(reader, present)
    state = readiness(
        reader,
        run.party_id,
        stage,
        view.keys,
        floor=floor(run),
        cutoff_passed=cutoff_passed,
        rosters=view.rosters(reader),
    )
    return explained(state, reader, view)


# -- compute (compute parties) ---------------------------------------------------------------------
def compute(
    run: PartyRun,
    *,
    attempt: int = 1,
    connect_timeout: float | None = None,
    run_timeout: float | None = None,
    ledger_dir: str | Path | None = None,
    process: MPCProcess | None = None,
    view: Verified | None = None,
) -> dict:
    """Run this compute party's MPyC process over the roster's shares and publish output shares.

    On failure this party gives up the attempt in the bucket, which stops the other compute
    parties within seconds; a retry by every party converges on the next attempt. A retry of a
    party that finished the live attempt ends as it did (``roster.finished_here``). Raises
    ``ledger.NothingToRelease`` when the disclosure ledger withholds every unit of the run.

    :param ledger_dir: this party's private ledger folder (its own memory of what it released).
    :param process: this party's MPyC process if it started before the stage
        (``computing.EarlyStart.take``); the stage hands it the job and stops it. None: the stage
        starts it.
    :param view: the verified listing this party's wait went ahead on (``roster.fix_roster``).
    """
    from mpc_federation.launcher import MPCRefused, start_mpc
    from mpc_federation.ledger import LedgerError, NothingToRelease

    spec, channel = run.spec, run.channel
    if attempt > 1 and (done := finished_here(run, channel.verified_control())) is not None:
        return _finished_before(run, done)
    connect_timeout = connect_timeout or spec.deadlines["connect"]
    run_timeout = run_timeout or spec.deadlines["mpc"]
    t0 = time.monotonic()
    # MPyC starts and connects while the roster is fixed and the shares are read: it gets nothing
    # of the run until its job is handed over, and it is stopped if the stage ends before.
    with process or start_mpc(**computing.mpyc_seat(run)) as process:
        live, roster = fix_roster(run, attempt, connect_timeout, ledger_dir=ledger_dir, view=view)
        header, record = channel.read_with_header(channel.roster_key(live), "roster", spec.leader.id, attempt=live)
        if record.get("nothing_to_release"):
            _record(channel, "skipped", "compute", {"attempt": live, "reason": record["nothing_to_release"]})
            raise NothingToRelease(f"run {channel.run}: nothing to release: {record['nothing_to_release']}")
        try:
            return _compute_attempt(
                run,
                live,
                roster,
                connect_timeout,
                run_timeout,
                t0,
                roster_at=header.get("created_at"),
                ledger_dir=ledger_dir,
                process=process,
            )
        except MPCRefused as exc:  # the reason names parties and rosters, never data
            _give_up_quietly(run, live, exc)
            raise
        except LedgerError as exc:
            _give_up_quietly(run, live, exc)
            raise StageError(str(exc)) from None
        except Exception as exc:
            _give_up_quietly(run, live, exc)
            raise


def _finished_before(run: PartyRun, record: dict) -> dict:
    """A retried compute task whose earlier try finished the live attempt (``roster.finished_here``)
    ends as that try did, from its own signed record: no second MPC, nothing published again."""
    from mpc_federation.ledger import NothingToRelease

    channel = run.channel
    if record["stage"] == "skipped":
        raise NothingToRelease(f"run {channel.run}: nothing to release: {record.get('reason')}")
    log.info(
        "Run %s: this party computed in attempt %s already (an earlier try of this task, whose end "
        "Airflow did not record): its output shares stand",
        channel.run,
        record["attempt"],
    )
    summary = {k: record.get(k) for k in ("attempt", "roster", "seconds", "tls", "withheld")}
    return {"run": channel.run, **summary, "status": "already computed"}


def _give_up_quietly(run: PartyRun, attempt: int, exc: Exception) -> None:
    """Give up ``attempt`` with a value-free code and text; keep the original failure if that fails."""
    from mpc_federation.ledger import LedgerError
    from mpc_federation.reasons import give_up_reason

    try:
        if isinstance(exc, LedgerError):  # months, runs and parties: protocol facts, never data
            code, reason = "protocol", str(exc)[:500]
        else:
            code, reason = give_up_reason(exc, run.party_id)  # never a ProgramError's text
        give_up(run.channel, attempt, reason, code)
    except Exception as err:  # the others still have their deadlines
        log.warning("Could not publish giving up attempt %s: %s", attempt, err)


def _compute_attempt(
    run: PartyRun,
    attempt: int,
    roster: list[str],
    connect_timeout: float,
    run_timeout: float,
    t0: float,
    *,
    roster_at: float | None = None,
    ledger_dir: str | Path | None = None,
    process: MPCProcess,
) -> dict:
    """One attempt over ``roster``: the steps of ``computing`` in order, between two status records.

    :param process: this party's MPyC process, from ``compute`` (started there or ahead of the stage).
    """
    channel = run.channel

    def shares_in_view():
        view = channel.verified_beyond(roster)
        return (view, *computing.roster_shares(run, roster, view.listing))

    # The progress record, the run's objects and the disclosure ledger at once: independent requests.
    _, (view, shares, consumed, sharings), records = concurrently(
        lambda step: step(),
        (
            lambda: _record(channel, "computing", "compute", {"attempt": attempt, "roster": roster}),
            shares_in_view,
            lambda: ledger_records(run, ledger_dir),
        ),
    )
    check_nobody_absent(channel, view.keys, roster)
    seen = computing.seen_in_time(channel, view, roster_at)
    verdict = computing.ledger_verdict(run, attempt, roster, consumed, records)
    agreement = {
        "attempt": attempt,
        "roster": roster,
        "roster_at": roster_at,
        "seen": seen,
        "sharings": sharings,
        "ledger": verdict.view(),
    }
    result = process.run(
        computing.mpc_job(run, attempt, roster, shares, verdict, agreement),
        connect_timeout=connect_timeout,
        run_timeout=run_timeout,
        stop_reason=computing.stop_reason(channel, attempt),
        poll_seconds=ABORT_POLL_SECONDS,
    )
    # The ledger first (a private copy, then the bucket), the output shares after: what is
    # released is always on record.
    computing.record_release(run, attempt, roster, verdict, consumed, ledger_dir)
    computing.publish_outputs(run, attempt, roster, result.shares, verdict)
    timings = {
        "connect": round(result.connect_seconds, 3),
        "mpc": round(result.total_seconds, 3),
        "stage": round(time.monotonic() - t0, 3),
    }
    summary = {
        "attempt": attempt,
        "roster": roster,
        "seconds": timings,
        "tls": result.tls,
        "withheld": verdict.withheld,
    }
    _record(channel, "computed", "compute", {**summary, "bytes_sent": result.bytes_sent})
    return {"run": channel.run, **summary}


# -- reveal (recipients) -------------------------------------------------------------------------------------
def reveal(run: PartyRun, view: Verified | None = None) -> dict:
    """Gather output shares of the live attempt, check they agree on the roster and on one
    polynomial, recombine and decode: the result record (the reveal task returns it as XCom).

    :param view: the verified listing to decide from (``waiting.wait``'s, through this party's
        channel: its roster and the output shares sealed to this party are already verified and
        opened); None: list the run's control objects now.
    """
    from mpc_federation.sharing import decode, recombine

    spec, program, channel = run.spec, run.program, run.channel
    if not run.me.has("recipient"):
        raise StageError(f"party {run.party_id} is not a recipient of {spec.computation}")
    view = channel.verified_control() if view is None else view
    attempt = channel.live_attempt(view.keys)  # signed objects only: junk aborts stop nobody
    if attempt is None:
        raise StageError("no live MPC attempt for this run (no roster, or the newest attempt was given up)")

    def read(key: str, kind: str, party: str, **expected) -> Any:
        """The verified payload of ``key``: from ``view`` if it opened it there, else fetched now."""
        if key in view.keys and view.payloads.get(key) is not None:
            return view.payloads[key]
        return channel.read(key, kind, party, attempt=attempt, **expected)

    roster = read(channel.roster_key(attempt), "roster", spec.leader.id)["roster"]
    if len(roster) < floor(run):
        raise StageError(f"roster has {len(roster)} input parties, below the floor of {floor(run)}: not revealed")
    shares, withheld = {}, None
    for index, c in enumerate(spec.compute_parties):
        record = read(channel.output_key(attempt, c.id, run.party_id), "output-shares", c.id, to=run.party_id)
        if record is None:
            continue
        if record["roster"] != roster:
            raise IntegrityError(f"compute party {c.id} computed over {record['roster']}, not the roster {roster}")
        if withheld is not None and record.get("withheld", []) != withheld:
            raise IntegrityError(f"compute party {c.id} withheld {record.get('withheld')}, the others {withheld}")
        withheld = record.get("withheld", [])
        shares[index] = record["shares"]
    values = recombine(program.modulus, shares, spec.threshold)
    outputs = decode(program, run.dims, values, program.params(spec.program_params), withheld or [])
    result = {
        "computation": spec.computation,
        "run": channel.run,
        "attempt": attempt,
        "program": program.name,
        "roster": roster,
        "compute_parties": [spec.compute_parties[i].id for i in sorted(shares)],
        "recipient": run.party_id,
        "spec_hash": spec.spec_hash,
        "program_hash": spec.program_hash,
        "outputs": outputs,
        "withheld": withheld or [],
    }
    _record(
        channel,
        "revealed",
        "recipient",
        {"attempt": attempt, "roster": roster, "compute_parties": result["compute_parties"]},
    )
    return result
