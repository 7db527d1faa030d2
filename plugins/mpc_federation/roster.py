"""The roster of an attempt: which input parties it computes over, fixed by the leading compute
party and read by the other compute parties, how a compute party gives an attempt up, and
whether an input party is on it (``inclusion``).

The leader takes every input party whose signed done marker it saw, unless the disclosure ledger
fixed the roster of the run's period; the followers take the newest attempt nobody gave up.
"""

from __future__ import annotations

import json
import logging
import time

from mpc_federation.channel import RunChannel, Verified
from mpc_federation.envelope import IntegrityError
from mpc_federation.party import PartyRun
from mpc_federation.stage_base import StageError, explain_aborts, floor, verified

log = logging.getLogger(__name__)


# -- fixing it (compute parties) ---------------------------------------------------------------
def ledger_records(run: PartyRun, ledger_dir) -> list:
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


def current_sha(run: PartyRun, known: dict[str, str | None]):
    """The digest of a bucket object as it is now (None if absent), from ``known`` or read once."""
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

    records = ledger_records(run, ledger_dir)
    months, _ = ledger.period(run.dims)
    fixed = ledger.fixed_roster(records, months, snapshot=run.spec.snapshot)  # LedgerError: rosters differ
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
    from mpc_federation.computing import ledger_verdict  # computing imports this module

    verdict = ledger_verdict(run, attempt, roster, {}, records)
    if verdict.nothing_to_release:
        payload["nothing_to_release"] = verdict.explain()
    return payload


def fix_roster(
    run: PartyRun, attempt: int, wait_seconds: float, *, ledger_dir=None, view: Verified | None = None
) -> tuple[int, list[str]]:
    """The attempt and its included input parties: the leader publishes, the others follow.

    Decided from verified objects only. The leader takes every input party whose signed done
    marker it saw, unless the disclosure ledger fixed the roster of this period (then exactly that
    roster, the others left out with the reason in the roster record, or refused if one of its
    parties has not shared).

    :param attempt: the leader's attempt number (its task's try); ignored by the others, who
        take the newest attempt that no compute party has given up.
    :param ledger_dir: this party's private ledger folder (``[mpc] ledger_uri``).
    :param view: the verified listing of the whole run that this party's wait went ahead on, moments
        ago (``waiting.wait`` through its channel): the leader takes who shared from it (and fetches
        the done markers of the parties it lacks), and a follower's shares were fetched with it.
        None: list the run now.
    """
    if run.party_id == run.spec.leader.id:
        _publish_roster(run, attempt, ledger_dir, view)
    elif view is None:  # fetch and verify the shares (the compute stage needs them) while the leader fixes the roster
        run.channel.prefetch_shares()
    return _await_live_roster(run, attempt, wait_seconds)


def _publish_roster(run: PartyRun, attempt: int, ledger_dir, view: Verified | None) -> None:
    """The leader fixes the roster of ``attempt`` (written once), or gives the attempt up saying why."""
    from mpc_federation.ledger import LedgerError

    channel = run.channel
    keys = channel.verified().keys if view is None else view.keys | _latecomers(channel, view)
    try:
        payload = _pick_roster(run, attempt, channel.shared(keys), ledger_dir)
        check_nobody_absent(channel, keys, payload["roster"])
    except (StageError, LedgerError) as exc:
        give_up(channel, attempt, str(exc))
        raise StageError(str(exc)) from None
    if not channel.publish(
        channel.roster_key(attempt), "roster", "compute", payload, attempt=attempt, only_if_new=True
    ):
        _check_fixed_roster(channel, attempt, payload)


def check_nobody_absent(channel: RunChannel, keys: set[str], roster: list[str]) -> None:
    """A spec without a cut-off (``deadlines.cutoff: never``) leaves out no input party that did not
    withdraw: refuse a roster that leaves out a party of which ``keys`` (this party's verified view
    of the run) shows neither a done marker nor a withdrawal. The bucket's operator could otherwise
    hide the markers of the firms it wants out from every compute party, and, with firms of the
    rest and a recipient, isolate one firm."""
    if channel.spec.cutoff is not None:
        return
    seen = {*roster, *channel.shared(keys), *channel.withdrawn(keys)}
    absent = [p.id for p in channel.spec.input_parties if p.id not in seen]
    if absent:
        raise StageError(
            f"the roster [{', '.join(roster)}] leaves out {', '.join(absent)}, which neither shared nor withdrew "
            f"as {channel.me.id} sees the run; the spec has no cut-off (deadlines.cutoff: never), so only a party "
            "that withdrew may be left out: refused (were their done markers hidden?)"
        )


def _latecomers(channel: RunChannel, view: Verified) -> set[str]:
    """The verified done markers of the input parties that ``view`` (the wait's listing, moments
    old) lacks, fetched now: the roster leaves out no party that shared before it was fixed, which
    the agreement inside the MPC would refuse. One GET per absent party, none when everyone shared."""
    absent = [key for p in channel.spec.input_parties if (key := channel.input_done_key(p.id)) not in view.keys]
    return channel.verified(dict.fromkeys(absent)).keys if absent else set()


def _await_live_roster(run: PartyRun, attempt: int, wait_seconds: float) -> tuple[int, list[str]]:
    """The live attempt this party computes in and its roster, once the leader's roster is there."""
    from mpc_federation.waiting import BURST_POLL_SECONDS, BURST_SECONDS

    spec, channel = run.spec, run.channel
    started = time.monotonic()
    deadline = started + wait_seconds
    rosters = None  # the roster objects (key: listing token) of the last decision
    while True:
        # Only a new or changed roster can end this wait (a give-up, or this party's outputs, keep
        # it going), so between rosters one LIST of the rosters per pause; at first and on a
        # change, the rosters, aborts and outputs, verified (not every input party's objects).
        if rosters is None or _rosters(channel, channel.listing("roster/")) != rosters:
            view = channel.verified_control()
            rosters = _rosters(channel, view.listing)
            live = channel.live_attempt(view.keys)
            # Follow the live attempt, but never one this party already completed: a re-run waits
            # for the leader's next attempt instead of replaying the last one.
            done_here = live is not None and _finished_as(run, live, view) is not None
            if live is not None and (live == attempt if run.party_id == spec.leader.id else not done_here):
                return live, list(view.payloads[channel.roster_key(live)]["roster"])
        if time.monotonic() > deadline:
            view = channel.verified()  # the whole run, once: its aborts, and which objects did not verify
            aborted = explain_aborts(channel, view)
            ignored = "; ".join(f"{reason}" for _, reason in sorted(view.invalid.items())[:3])
            raise StageError(
                f"the leader {spec.leader.id} published no live roster within {wait_seconds:.0f} s"
                + (f"; {aborted}" if aborted else "")
                + (f"; ignored objects that do not verify: {ignored}" if ignored else "")
            )
        # The leader's roster follows the inputs within a moment: one cheap LIST per pause, at the
        # pace of a burst first (``waiting``), then every 0.25 s.
        time.sleep(BURST_POLL_SECONDS if time.monotonic() - started < BURST_SECONDS else 0.25)


def _rosters(channel: RunChannel, listing: dict) -> dict:
    """The roster objects of a listing, with their listing tokens."""
    return {key: token for key, token in listing.items() if (d := channel.describe(key)) and d.kind == "roster"}


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


def finished_here(run: PartyRun, view: Verified) -> dict | None:
    """This party's own signed record of its part in the live attempt of ``view``, if it finished
    it: ``computed`` (its output shares are there) or ``skipped`` (nothing to release); else None.

    A retry of a compute task that finished (Airflow lost the success: a worker or API server lost
    after the stage, a stale executor event) ends with this record: nobody else will start
    another attempt for it to join.
    """
    channel = run.channel
    live = channel.live_attempt(view.keys)
    if live is None or (stage := _finished_as(run, live, view)) is None:
        return None
    try:
        record = channel.read(channel.status_key(run.party_id, stage), "status", run.party_id)
    except IntegrityError:
        return None
    return record if record is not None and record.get("attempt") == live else None


def _finished_as(run: PartyRun, attempt: int, view: Verified) -> str | None:
    """How this party finished ``attempt`` by ``view``: ``computed`` (its output shares are there),
    ``skipped`` (its roster left nothing to release, and this party said so), or None."""
    channel = run.channel
    if channel.output_key(attempt, run.party_id, run.spec.recipients[0].id) in view.keys:
        return "computed"
    return "skipped" if _skipped(channel, attempt, view) else None


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


# -- reading it (input parties) -----------------------------------------------------------------
def inclusion(run: PartyRun, present=None) -> tuple[str, str]:
    """Whether this input party is on the newest roster: ("wait" | "included" | "skip" | "fail", why).

    Included: on the roster. Skip: the ledger fixed the roster without it, the run has nothing to
    release, or it shared after the roster was fixed (a straggler). Fail: it shared in time and was
    left out (a roster that should have been refused), or its done marker cannot be read."""
    reader = run.reader
    view = verified(reader, present)
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
