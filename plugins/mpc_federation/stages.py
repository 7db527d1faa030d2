"""The stages of a run, as plain functions over a PartyRun: share, wait, compute, reveal.

The Airflow operators and the sensor are thin wrappers around these, so the same code
runs under Airflow, in the tests, and in the benchmarks. Every stage logs one summary line
and leaves a signed status record (timings, roster, outcome) in the bucket.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from mpc_federation.channel import RunChannel
from mpc_federation.envelope import IntegrityError
from mpc_federation.layout import Readiness, ledger_key, readiness
from mpc_federation.party import PartyRun
from mpc_federation.programs import check_aggregate

log = logging.getLogger(__name__)
ABORT_POLL_SECONDS = 2.0


class StageError(RuntimeError):
    """A stage that cannot go on; the message says why, and who is concerned."""


def floor(run: PartyRun) -> int:
    """The privacy floor k of this run (``programs.privacy_floor``)."""
    from mpc_federation.programs import privacy_floor

    return privacy_floor(run.program, run.spec)


def _record(channel: RunChannel, stage: str, role: str, payload: dict) -> None:
    """Leave the stage's durable record in the bucket and in the task log."""
    payload = {"stage": stage, "party": channel.me.id, "run": channel.run, "at": time.time(), **payload}
    channel.publish(channel.status_key(channel.me.id, stage), "status", role, payload)
    log.info("mpc-record %s", json.dumps(payload, sort_keys=True))


# -- share (input parties) ---------------------------------------------------------------------
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
        channel.publish(
            channel.input_key(run.party_id, compute_party.id),
            "input-shares",
            "input",
            {"shares": payload},
            to=compute_party.id,
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


# -- waiting (the sensor's condition) ------------------------------------------------------------
def _verified(reader, present):
    """A verified view of the run: ``present`` may already be one, a raw listing, or None (list now)."""
    from mpc_federation.channel import Verified

    return present if isinstance(present, Verified) else reader.verified(present)


def wait_state(run: PartyRun, stage: str, present=None, *, cutoff_passed: bool) -> Readiness:
    """The readiness of ``stage`` from the run's verified objects only (``present``: a Verified
    view, a raw listing to verify, or None to list now)."""
    reader = run.reader
    view = _verified(reader, present)
    state = readiness(
        reader,
        run.party_id,
        stage,
        view.keys,
        floor=floor(run),
        cutoff_passed=cutoff_passed,
        rosters=view.rosters(reader),
    )
    if state.stop:
        state.stop = f"{state.stop}; {explain_aborts(reader, view)}".rstrip("; ")
    return state


def explain_aborts(reader, present=None) -> str:
    """The verified reasons of every abort record of the run (one that does not verify is ignored,
    with a warning naming it)."""
    view = _verified(reader, present)
    reasons = []
    for key in sorted(k for k in view.keys if k.startswith(f"{reader.root}/abort/")):
        party, scope = key[len(reader.root) + len("/abort/") :].split("/", 1)
        payload = view.payloads.get(key)
        reason = payload.get("reason") if isinstance(payload, dict) else None
        reasons.append(f"{party} ({scope}): {reason or '(no reason recorded)'}")
    return "; ".join(reasons)


def inclusion(run: PartyRun, present=None) -> tuple[str, str]:
    """Whether this input party is on the newest roster: ("wait" | "included" | "skip" | "fail", why).

    Included: on the roster. Skip: the ledger fixed the roster without it, the run has nothing to
    release, or it shared after the roster was fixed (a straggler). Fail: it shared in time and was
    left out (a roster that should have been refused), or its done marker cannot be read."""
    reader = run.reader
    view = _verified(reader, present)
    attempts = reader.attempts(view.keys)
    if not attempts:
        return "wait", f"the leader {run.spec.leader.id} has published no roster"
    attempt = attempts[-1]
    key = reader.roster_key(attempt)
    record, header = view.payloads[key], view.headers[key]
    roster, me = list(record.get("roster", [])), run.party_id
    named = f"the roster [{', '.join(roster)}] of attempt {attempt} (run {reader.run})"
    if me in roster:
        return "included", f"{me} is on {named}"
    if record.get("nothing_to_release"):
        return "skip", f"nothing to release in run {reader.run}: {record['nothing_to_release']}"
    why = (record.get("left_out") or {}).get(me)
    if why:
        return "skip", f"{me} is not on {named}: {why}"
    try:
        done = reader.read_with_header(reader.input_done_key(me), "input-done", me)
    except IntegrityError as exc:
        done = None
        log.warning("This party's own done marker does not verify: %s", exc)
    if done is not None and done[0].get("created_at", 0) > header.get("created_at", 0):
        return "skip", f"{me} shared after {named} was fixed: left out as a straggler after the cut-off"
    return "fail", (
        f"{me} shared for run {reader.run} before the roster was fixed, but {named} leaves it out "
        "(its shares were hidden from the leader, or the leader broke the protocol)"
    )


# -- compute (compute parties) ---------------------------------------------------------------------
def _ledger_records(run: PartyRun, ledger_dir) -> list:
    """This compute party's private ledger copies and every compute party's verified bucket records."""
    from mpc_federation import ledger
    from mpc_federation.channel import RunReader

    readers: dict = {}

    def reader_for(run_name: str):
        if run_name not in readers:
            readers[run_name] = RunReader(run.spec, run_name, run.store, viewer=run.party_id)
        return readers[run_name]

    private = ledger.private_records(run.spec, ledger_dir, run.party_id, reader_for)
    return ledger.all_records(private, ledger.bucket_records(run.spec, run.store, reader_for))


def _current_sha(run: PartyRun, known: dict[str, str | None]):
    from mpc_federation import ledger

    def sha(key: str) -> str | None:
        if key not in known:
            blob = run.store.get(key)
            known[key] = ledger.sha256(blob) if blob is not None else None
        return known[key]

    return sha


def _pick_roster(run: PartyRun, attempt: int, shared: list[str], ledger_dir) -> dict:
    """The leader's roster payload for ``attempt``: rule (a) of the ledger, else whoever shared."""
    from mpc_federation import ledger

    records = _ledger_records(run, ledger_dir)
    months, _ = ledger.period(run.dims)
    fixed = ledger.fixed_roster(records, months)  # LedgerError: records that fix different rosters
    left_out: dict[str, str] = {}
    if fixed is not None:
        roster, record, covered = fixed
        missing = [p for p in roster if p not in shared]
        if missing:
            raise ledger.LedgerError(
                f"month {covered[0]} was released over [{', '.join(roster)}] in {record.name}; "
                f"{', '.join(missing)} {'has' if len(missing) == 1 else 'have'} not shared in this run, so no "
                "roster allowed by the disclosure ledger can be used: refused"
            )
        left_out = {p: ledger.fixed_reason(fixed) for p in shared if p not in roster}
        if left_out:
            log.warning("Leaving out %s: %s", ", ".join(left_out), ledger.fixed_reason(fixed))
    else:
        roster = shared
        if len(roster) < floor(run):
            raise StageError(
                f"only {len(roster)} input parties shared ({', '.join(roster) or 'none'}); at least "
                f"{floor(run)} are required before anything is revealed"
            )
    payload: dict = {"roster": list(roster), "left_out": left_out}
    verdict = ledger.verdict(records, run.program, run.dims, run.channel.run, attempt, roster, _current_sha(run, {}))
    if verdict.nothing_to_release:
        payload["nothing_to_release"] = verdict.explain()
    return payload


def fix_roster(run: PartyRun, attempt: int, wait_seconds: float, *, ledger_dir=None) -> tuple[int, list[str]]:
    """The attempt and its included input parties: the leader publishes, the others follow.

    Decided from verified objects only. The leader takes every input party whose signed done
    marker it saw, unless the disclosure ledger fixed the roster of this period (then exactly that
    roster, the others left out with the reason in the roster record, or refused if one of its
    parties has not shared).

    :param attempt: the leader's attempt number (its task's try); ignored by the others, who
        take the newest attempt that no compute party has given up.
    :param ledger_dir: this party's private ledger folder (``[mpc] ledger_uri``).
    """
    from mpc_federation.ledger import LedgerError

    spec, channel = run.spec, run.channel
    if run.party_id == spec.leader.id:
        shared = channel.shared(channel.verified().keys)
        try:
            payload = _pick_roster(run, attempt, shared, ledger_dir)
        except (StageError, LedgerError) as exc:
            give_up(channel, attempt, str(exc))
            raise StageError(str(exc)) from None
        if not channel.publish(
            channel.roster_key(attempt), "roster", "compute", payload, attempt=attempt, only_if_new=True
        ):
            _check_fixed_roster(channel, attempt, payload)
    else:  # verify the done markers (the compute stage needs them) while the leader fixes the roster
        channel.verified()
    deadline, pause = time.monotonic() + wait_seconds, 0.1
    while True:
        view = channel.verified_control()  # rosters and aborts: not every input party's objects
        live = channel.live_attempt(view.keys)
        # Follow the live attempt, but never one this party already completed: a re-run waits
        # for the leader's next attempt instead of replaying the last one.
        done_here = live is not None and (
            channel.output_key(live, run.party_id, spec.recipients[0].id) in view.keys or _skipped(channel, live, view)
        )
        if live is not None and (live == attempt if run.party_id == spec.leader.id else not done_here):
            return live, list(view.payloads[channel.roster_key(live)]["roster"])
        if time.monotonic() > deadline:
            aborted = explain_aborts(channel, view)
            view = channel.verified()  # the whole run, once: which objects did not verify, and why
            ignored = "; ".join(f"{reason}" for _, reason in sorted(view.invalid.items())[:3])
            raise StageError(
                f"the leader {spec.leader.id} published no live roster within {wait_seconds:.0f} s"
                + (f"; {aborted}" if aborted else "")
                + (f"; ignored objects that do not verify: {ignored}" if ignored else "")
            )
        time.sleep(pause)
        pause = min(pause * 2, 0.25)  # the leader is a moment away: one cheap LIST (ETag-cached) per pause


def _check_fixed_roster(channel: RunChannel, attempt: int, payload: dict) -> None:
    """The roster of ``attempt`` was already there (the put-if-absent said so): read it back.

    It must verify as the leader's own roster of this attempt, else the attempt stops here naming
    the key. A verified roster that differs from ``payload`` was fixed by an earlier run of this
    attempt's leader task (a party shared since): it stays, as every follower reads it.
    """
    key = channel.roster_key(attempt)
    try:
        existing = channel.read(key, "roster", channel.spec.leader.id, attempt=attempt)
    except IntegrityError as exc:
        raise StageError(
            f"the roster key of attempt {attempt} ({key}) already holds an object that is not "
            f"this leader's roster ({exc}); a roster is written once, so this attempt stops here"
        ) from None
    if existing is None:
        raise StageError(
            f"the coordination store refused to write the roster of attempt {attempt} ({key}) "
            f"as already present, but it cannot be read back"
        )
    if existing != json.loads(json.dumps(payload)):  # as it reads back
        log.warning(
            "The roster of attempt %s was fixed earlier (%s) and stays: this run of the leader would have taken %s",
            attempt,
            ", ".join(existing.get("roster", [])),
            ", ".join(payload["roster"]),
        )


def _skipped(channel: RunChannel, attempt: int, view) -> bool:
    """Whether this party already skipped ``attempt`` (its roster left nothing to release)."""
    roster = view.payloads.get(channel.roster_key(attempt))
    if not (isinstance(roster, dict) and roster.get("nothing_to_release")):
        return False
    try:
        record = channel.read(channel.status_key(channel.me.id, "skipped"), "status", channel.me.id)
    except IntegrityError:
        return False
    return record is not None and record.get("attempt") == attempt


def mpyc_certificates(run: PartyRun) -> list[str]:
    """The pinned certificates of every compute party: MPyC runs over mutual TLS only."""
    missing = [c.id for c in run.spec.compute_parties if not c.certificate]
    if missing:
        raise StageError(
            f"compute parties {', '.join(missing)} have no TLS certificate in the federation spec "
            "(python -m mpc_federation.keys public --keys FILE --compute-index N)"
        )
    if run.keys.tls_key is None:
        raise StageError(f"the private keys of {run.party_id} hold no TLS key for MPyC")
    return [c.certificate for c in run.spec.compute_parties if c.certificate]


def give_up(channel: RunChannel, attempt: int, reason: str, code: str = "protocol") -> None:
    """A compute party gives up ``attempt``: a code from ``reasons.GIVE_UP_CODES`` and a text of
    protocol facts only (never a value derived from data; see ``reasons.give_up_reason``)."""
    from mpc_federation import reasons

    reasons.check(code, reasons.GIVE_UP_CODES)
    channel.publish(
        channel.attempt_abort_key(channel.me.id, attempt),
        "abort",
        "compute",
        {"code": code, "reason": reason},
        attempt=attempt,
    )


def compute(
    run: PartyRun,
    *,
    attempt: int = 1,
    connect_timeout: float | None = None,
    run_timeout: float | None = None,
    ledger_dir: str | Path | None = None,
) -> dict:
    """Run this compute party's MPyC process over the roster's shares and publish output shares.

    On failure this party gives up the attempt in the bucket, which stops the other compute
    parties within seconds; a retry by every party converges on the next attempt. Raises
    ``ledger.NothingToRelease`` when the disclosure ledger withholds every unit of the run.

    :param ledger_dir: this party's private ledger folder (its own memory of what it released).
    """
    from mpc_federation.launcher import MPCRefused
    from mpc_federation.ledger import LedgerError, NothingToRelease

    spec, channel = run.spec, run.channel
    connect_timeout = connect_timeout or spec.deadlines["connect"]
    run_timeout = run_timeout or spec.deadlines["mpc"]
    t0 = time.monotonic()
    live, roster = fix_roster(run, attempt, connect_timeout, ledger_dir=ledger_dir)
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
) -> dict:
    from mpc_federation import ledger
    from mpc_federation.launcher import MPCJob, run_mpc

    spec, program, channel = run.spec, run.program, run.channel
    _record(channel, "computing", "compute", {"attempt": attempt, "roster": roster})
    view = channel.verified()
    seen = [
        p
        for p in channel.shared(view.keys)
        if roster_at is not None
        and view.headers[channel.input_done_key(p)].get("created_at", roster_at + 1) <= roster_at
    ]
    shares, consumed = {}, {}
    for party, key, blob, record in channel.read_inputs(roster, listing=view.listing):
        if blob is None:
            raise StageError(f"input party {party} is on the roster but its shares for {run.party_id} are missing")
        shares[party] = record["shares"]
        consumed[key] = ledger.sha256(blob)
    records = _ledger_records(run, ledger_dir)
    ledger.fixed_roster(records, ledger.period(run.dims)[0])  # refuses records that fix different rosters
    verdict = ledger.verdict(
        records, program, run.dims, channel.run, attempt, roster, _current_sha(run, dict(consumed))
    )
    job = MPCJob(
        program=str(spec.program_file),
        party_index=spec.compute_index(run.party_id),
        endpoints=[str(c.endpoint) for c in spec.compute_parties],
        threshold=spec.threshold,
        roster=roster,
        shares=shares,
        input_lengths=program.input_lengths(run.dims),
        output_lengths=program.output_lengths(run.dims),
        dims=run.dims,
        params=program.params(spec.program_params),
        session=f"{spec.spec_hash}/{spec.program_hash}/{channel.run}/attempt-{attempt}/{','.join(roster)}",
        tls_key=run.keys.tls_key,
        certificates=mpyc_certificates(run),
        names=[c.id for c in spec.compute_parties],
        agreement={
            "attempt": attempt,
            "roster": roster,
            "roster_at": roster_at,
            "seen": seen,
            "ledger": verdict.view(),
        },
        withheld=verdict.withheld,
    )

    def stop_reason() -> str | None:
        try:
            aborts = channel.verified(prefix="abort/", patient=False)
        except Exception:  # the bucket briefly unreachable: keep computing, the deadlines still hold
            return None
        if channel.attempt_aborts(aborts.keys, attempt):
            return f"attempt {attempt} was given up: {explain_aborts(channel, aborts)}"
        return None

    result = run_mpc(
        job,
        connect_timeout=connect_timeout,
        run_timeout=run_timeout,
        stop_reason=stop_reason,
        poll_seconds=ABORT_POLL_SECONDS,
    )
    # The ledger first (a private copy, then the bucket), the output shares after: what is
    # released is always on record.
    entry = ledger.payload(
        spec, channel.run, attempt, run.party_id, roster, run.dims, verdict.released, verdict.withheld, consumed
    )
    blob = channel.sign(ledger.KIND, "compute", entry, attempt=attempt)
    if ledger_dir is not None:
        ledger.write_private(ledger_dir, spec, channel.run, attempt, blob)
    channel.store.put(ledger_key(spec, run.party_id, channel.run, attempt), blob)
    reasons = {
        f"{d or ''}/{label}": verdict.reasons[u]
        for d, label, u in ledger.units(program, run.dims)
        if [d, label] in verdict.withheld
    }
    for recipient in spec.recipients:
        channel.publish(
            channel.output_key(attempt, run.party_id, recipient.id),
            "output-shares",
            "compute",
            {"shares": result.shares, "roster": roster, "withheld": verdict.withheld, "withheld_reasons": reasons},
            to=recipient.id,
            attempt=attempt,
        )
    timings = {
        "connect": round(result.connect_seconds, 3),
        "mpc": round(result.total_seconds, 3),
        "stage": round(time.monotonic() - t0, 3),
    }
    _record(
        channel,
        "computed",
        "compute",
        {
            "attempt": attempt,
            "roster": roster,
            "seconds": timings,
            "bytes_sent": result.bytes_sent,
            "tls": result.tls,
            "withheld": verdict.withheld,
        },
    )
    return {
        "run": channel.run,
        "attempt": attempt,
        "roster": roster,
        "seconds": timings,
        "tls": result.tls,
        "withheld": verdict.withheld,
    }


# -- reveal (recipients) -------------------------------------------------------------------------------------
def reveal(run: PartyRun) -> dict:
    """Gather output shares of the live attempt, check they agree on the roster and on one
    polynomial, recombine and decode: the result record (the reveal task returns it as XCom)."""
    from mpc_federation.sharing import decode, recombine

    spec, program, channel = run.spec, run.program, run.channel
    if not run.me.has("recipient"):
        raise StageError(f"party {run.party_id} is not a recipient of {spec.computation}")
    attempt = channel.live_attempt(channel.verified_control().keys)  # signed objects only: junk aborts stop nobody
    if attempt is None:
        raise StageError("no live MPC attempt for this run (no roster, or the newest attempt was given up)")
    roster = channel.read(channel.roster_key(attempt), "roster", spec.leader.id, attempt=attempt)["roster"]
    if len(roster) < floor(run):
        raise StageError(f"roster has {len(roster)} input parties, below the floor of {floor(run)}: not revealed")
    shares, withheld = {}, None
    for index, c in enumerate(spec.compute_parties):
        record = channel.read(
            channel.output_key(attempt, c.id, run.party_id), "output-shares", c.id, to=run.party_id, attempt=attempt
        )
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
