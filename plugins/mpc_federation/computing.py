"""The steps of one compute party's MPC attempt (``stages.compute`` runs them in order): the
roster's input shares, the disclosure ledger's verdict, the MPyC job, then the release record and
the output shares."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mpc_federation.channel import RunChannel
from mpc_federation.layout import ledger_key
from mpc_federation.party import PartyRun
from mpc_federation.roster import current_sha
from mpc_federation.stage_base import StageError, explain_aborts

if TYPE_CHECKING:
    from mpc_federation.launcher import MPCProcess

log = logging.getLogger(__name__)
EARLY_SECONDS = 120.0  # how long a process started ahead of its stage may wait for its job


def seen_in_time(channel: RunChannel, view, roster_at: float | None) -> list[str]:
    """The input parties whose verified done marker (in ``view``) was signed no later than the roster
    (with ``RunChannel.verified_beyond``: those the roster leaves out, the only ones that matter)."""
    return [
        p
        for p in channel.shared(view.keys)
        if roster_at is not None
        and view.headers[channel.input_done_key(p)].get("created_at", roster_at + 1) <= roster_at
    ]


def roster_shares(run: PartyRun, roster: list[str], listing: dict) -> tuple[dict, dict, dict]:
    """This party's shares of every input party on the roster, the digest of each object used, and
    the id of the sharing each share belongs to (``agreement``: every compute party must hold the
    same sharing of each input party; None for shares written before sharings had ids).

    :param listing: the fresh listing the shares are read against (``Verified.listing``): a share
        already fetched and verified with an unchanged ETag is not fetched again.
    """
    from mpc_federation import ledger

    shares, consumed, sharings = {}, {}, {}
    for party, key, blob, record in run.channel.read_inputs(roster, listing=listing):
        if blob is None:
            raise StageError(f"input party {party} is on the roster but its shares for {run.party_id} are missing")
        # Whatever is malformed goes on as None: the MPyC process refuses on every compute party at once.
        record = record if isinstance(record, dict) else {}
        shares[party] = record.get("shares")
        sharing = record.get("sharing")
        sharings[party] = sharing if isinstance(sharing, str) else None  # an id, compared inside the MPC
        consumed[key] = ledger.sha256(blob)
    return shares, consumed, sharings


def ledger_verdict(run: PartyRun, attempt: int, roster: list[str], consumed: dict, records: list):
    """The disclosure ledger's verdict on this attempt (what may be released, what is withheld),
    from its records (``roster.ledger_records``)."""
    from mpc_federation import ledger

    return ledger.verdict(  # refuses records that fix different rosters (ledger.fixed_roster)
        records,
        run.program,
        run.dims,
        run.channel.run,
        attempt,
        roster,
        current_sha(run, dict(consumed)),
        snapshot=run.spec.snapshot,
    )


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


def mpyc_seat(run: PartyRun) -> dict:
    """This party's seat: what its MPyC process needs before its job, every one of
    ``launcher.SEAT_FIELDS`` (the arguments of ``launcher.start_mpc``)."""
    spec = run.spec
    return {
        "program": str(spec.program_file),
        "party_index": spec.compute_index(run.party_id),
        "endpoints": [str(c.endpoint) for c in spec.compute_parties],
        "threshold": spec.threshold,
        "tls_key": run.keys.tls_key,
        "certificates": mpyc_certificates(run),
        "names": [c.id for c in spec.compute_parties],
        "bit_length": run.program.bit_length,
    }


class EarlyStart:
    """This compute party's MPyC process, started while the party still waits for the inputs: call
    it (``waiting.wait``'s ``when_near``) and the process imports, loads the program and connects
    to the other compute parties during the wait, so that neither is on the path from the last
    input to the MPC. It gets nothing of the run before ``stages.compute(process=early.take())``
    hands it the job, and the deadlines count from then. Use it as a context manager: a process
    that got no job (the wait failed) is stopped at the end.

    A process that waited longer than ``EARLY_SECONDS`` is not used: its idle connections may have
    been dropped on the way (a NAT's idle timeout is about 350 s) or a peer restarted meanwhile,
    and MPyC does not reconnect. The stage then starts a fresh one.
    """

    def __init__(self, run: PartyRun) -> None:
        self.run = run
        self.process: MPCProcess | None = None

    def __call__(self) -> None:
        from mpc_federation.launcher import start_mpc

        if self.process is None:
            self.process = start_mpc(**mpyc_seat(self.run))

    def take(self) -> MPCProcess | None:
        """The process for the stage, if it was started, still runs and is recent; else None
        (after stopping it)."""
        process = self.process
        if process is not None and not (process.running() and time.monotonic() - process.started < EARLY_SECONDS):
            log.info(
                "Not using the MPyC process started %.0f s ago while waiting: starting afresh",
                time.monotonic() - process.started,
            )
            process.stop()
            process = None
        return process

    def __enter__(self) -> EarlyStart:
        return self

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self.process.stop()


def mpc_job(run: PartyRun, attempt: int, roster: list[str], shares: dict, verdict, agreement: dict):
    """The MPyC process's job: this party's seat, the shares, and the view it must agree on."""
    from mpc_federation.launcher import MPCJob

    spec, program = run.spec, run.program
    return MPCJob.for_program(
        program,
        run.dims,
        **mpyc_seat(run),
        roster=roster,
        shares=shares,
        params=program.params(spec.program_params),
        session=session(run, attempt, roster),
        agreement=agreement,
        withheld=verdict.withheld,
    )


def session(run: PartyRun, attempt: int, roster: list[str]) -> str:
    """What the compute parties' MPyC processes must agree on before anything else: the spec, the
    program and its field, the run, the attempt and the roster."""
    spec = run.spec
    return (
        f"{spec.spec_hash}/{spec.program_hash}/SecInt({run.program.bit_length})/{run.channel.run}/"
        f"attempt-{attempt}/{','.join(roster)}"
    )


def stop_reason(channel: RunChannel, attempt: int):
    """The launcher's poll: why the MPyC process must stop (another party gave ``attempt`` up), or None."""

    def reason() -> str | None:
        try:
            aborts = channel.verified(prefix="abort/", patient=False)
        except Exception:  # the bucket briefly unreachable: keep computing, the deadlines still hold
            return None
        if channel.attempt_aborts(aborts.keys, attempt):
            return f"attempt {attempt} was given up: {explain_aborts(channel, aborts)}"
        return None

    return reason


def record_release(
    run: PartyRun, attempt: int, roster: list[str], verdict, consumed: dict, ledger_dir: str | Path | None
) -> None:
    """The ledger record of what this attempt releases: a private copy first, then the bucket."""
    from mpc_federation import ledger

    spec, channel = run.spec, run.channel
    entry = ledger.payload(
        spec, channel.run, attempt, run.party_id, roster, run.dims, verdict.released, verdict.withheld, consumed
    )
    blob = channel.sign(ledger.KIND, "compute", entry, attempt=attempt)
    if ledger_dir is not None:
        ledger.write_private(ledger_dir, spec, channel.run, attempt, blob)
    channel.store.put(ledger_key(spec, run.party_id, channel.run, attempt), blob)


def publish_outputs(run: PartyRun, attempt: int, roster: list[str], shares, verdict) -> None:
    """One sealed object of output shares per recipient, with what was withheld and why."""
    from mpc_federation import ledger

    channel = run.channel
    held = ledger.cells(verdict.withheld)
    reasons = {
        f"{d or ''}/{label}": verdict.reasons[u]
        for d, label, u in ledger.units(run.program, run.dims)
        if (d, label) in held
    }
    for recipient in run.spec.recipients:
        channel.publish(
            channel.output_key(attempt, run.party_id, recipient.id),
            "output-shares",
            "compute",
            {"shares": shares, "roster": roster, "withheld": verdict.withheld, "withheld_reasons": reasons},
            to=recipient.id,
            attempt=attempt,
        )
