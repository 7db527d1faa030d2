"""Where one run's objects live in the bucket, and what a listing of them means.

Every object is ``<prefix>/<computation>/<run>/<kind>/<writer>/<name>``: the writing party is
always the fifth segment, so a bucket policy confines each party to its own prefixes, and a
reader checks that the signer is the party the key names.

    inputs/<party>/to-<compute party>                    input shares, sealed to that compute party
    inputs/<party>/done                                  written last: all the party's shares are there
    roster/<leader>/attempt-<n>                          included input parties for MPC attempt n:
                                                         {"roster": [...], "left_out": {party: reason},
                                                          "nothing_to_release": reason (only then)}
    outputs/<compute party>/attempt-<n>/to-<recipient>   output shares, sealed to the recipient
    status/<party>/<stage>                               progress and timings (no data)
    abort/<party>/inputs                                 an input party withdrew from the run
    abort/<party>/attempt-<n>                            a compute party gave up MPC attempt n

and, outside any run, the disclosure ledger (see ledger.py), the writer again fifth:

    <prefix>/<computation>/ledger/released/<compute party>/<run>-attempt-<n>

Attempts: the leader numbers each MPC attempt by its compute task's try; the other compute
parties follow the newest attempt that no compute party has given up. So a retry by every
party converges on a fresh attempt, and an abort never blocks a later one.

Decisions count signed objects only: the channel verifies a listing (``RunReader.verified``)
and hands this module the keys whose envelopes verified, so a junk object at an abort key or a
fake done marker never makes anybody go ahead or stop.

This module is pure (no network, no cryptography): the sensor, the trigger and the UI use it
to interpret a verified listing; the channel uses it to name what it writes and reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mpc_federation.spec import FederationSpec

_ATTEMPT = re.compile(r"^attempt-(\d+)$")


@dataclass(frozen=True)
class Described:
    """What an object key claims to be: the envelope must say the same, signed by ``party``."""

    kind: str
    party: str
    to: str | None = None
    attempt: int = 0


def ledger_root(spec: FederationSpec) -> str:
    return f"{spec.prefix}/{spec.computation}/ledger/released"


def ledger_key(spec: FederationSpec, writer: str, run: str, attempt: int) -> str:
    return f"{ledger_root(spec)}/{writer}/{run}-attempt-{attempt}"


_LEDGER_NAME = re.compile(r"^(\d{8}T\d{6}Z)-attempt-(\d+)$")


def parse_ledger_key(spec: FederationSpec, key: str) -> tuple[str, str, int] | None:
    """(writer, run, attempt) of a ledger record's key, or None if the key is not one."""
    rest = key[len(ledger_root(spec)) + 1 :] if key.startswith(ledger_root(spec) + "/") else ""
    writer, _, name = rest.partition("/")
    match = _LEDGER_NAME.match(name)
    if not writer or match is None:
        return None
    return writer, match.group(1), int(match.group(2))


def probe_key(spec: FederationSpec, party_id: str) -> str:
    """Where ``party_id`` probes the bucket's conditional writes: a key its role may write
    (``<prefix>/*/*/*/<party>/*``), outside every run and the ledger."""
    return f"{spec.prefix}/{spec.computation}/probe/conditional-writes/{party_id}/probe"


def run_key(logical_date: datetime) -> str:
    """The name every party derives for the same nightly run: its logical date in UTC."""
    if logical_date.tzinfo is None:
        logical_date = logical_date.replace(tzinfo=UTC)
    return logical_date.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def run_date(run: str) -> datetime | None:
    """The logical date a run key names (``run_key`` backwards), or None if ``run`` is not one."""
    if not _RUN_KEY.match(run):
        return None
    try:
        date = datetime.fromisoformat(run)  # the ISO 8601 basic format run_key writes
    except ValueError:
        return None
    return date if run_key(date) == run else None


_RUN_KEY = re.compile(r"^\d{8}T\d{6}Z$")


class RunLayout:
    """Object keys of one run, and readings of a set of listed keys."""

    def __init__(self, spec: FederationSpec, run: str):
        self.spec = spec
        self.run = run
        self.root = f"{spec.prefix}/{spec.computation}/{run}"

    # -- keys -------------------------------------------------------------------------------
    def input_key(self, party: str, compute: str) -> str:
        return f"{self.root}/inputs/{party}/to-{compute}"

    def input_done_key(self, party: str) -> str:
        return f"{self.root}/inputs/{party}/done"

    def roster_key(self, attempt: int) -> str:
        return f"{self.root}/roster/{self.spec.leader.id}/attempt-{attempt}"

    def output_key(self, attempt: int, compute: str, recipient: str) -> str:
        return f"{self.root}/outputs/{compute}/attempt-{attempt}/to-{recipient}"

    def status_key(self, party: str, stage: str) -> str:
        return f"{self.root}/status/{party}/{stage}"

    def withdrawal_key(self, party: str) -> str:
        return f"{self.root}/abort/{party}/inputs"

    def attempt_abort_key(self, party: str, attempt: int) -> str:
        return f"{self.root}/abort/{party}/attempt-{attempt}"

    def describe(self, key: str) -> Described | None:
        """The kind, writer, recipient and attempt an object key of this run stands for (None for a
        key outside the layout). The writer is always the segment after the kind."""
        if not key.startswith(self.root + "/"):
            return None
        parts = key[len(self.root) + 1 :].split("/")
        if len(parts) < 3:
            return None
        folder, party, rest = parts[0], parts[1], parts[2:]
        attempt = _ATTEMPT.match(rest[0])
        if folder == "inputs" and len(rest) == 1:
            if rest[0] == "done":
                return Described("input-done", party)
            if rest[0].startswith("to-"):
                return Described("input-shares", party, rest[0][3:])
        elif folder == "roster" and len(rest) == 1 and attempt and party == self.spec.leader.id:
            return Described("roster", party, None, int(attempt.group(1)))
        elif folder == "outputs" and len(rest) == 2 and attempt and rest[1].startswith("to-"):
            return Described("output-shares", party, rest[1][3:], int(attempt.group(1)))
        elif folder == "abort" and len(rest) == 1:
            if rest[0] == "inputs":
                return Described("abort", party)
            if attempt:
                return Described("abort", party, None, int(attempt.group(1)))
        elif folder == "status" and len(rest) == 1:
            return Described("status", party)
        return None

    # -- readings of a (verified) listing -------------------------------------------------------
    def shared(self, present: set[str]) -> list[str]:
        """Input parties whose shares are complete, in spec order."""
        return [p.id for p in self.spec.input_parties if self.input_done_key(p.id) in present]

    def withdrawn(self, present: set[str]) -> list[str]:
        """Input parties that withdrew and have not shared since."""
        done = set(self.shared(present))
        return [p.id for p in self.spec.input_parties if self.withdrawal_key(p.id) in present and p.id not in done]

    def attempts(self, present: set[str]) -> list[int]:
        prefix = f"{self.root}/roster/{self.spec.leader.id}/"
        return sorted(
            int(m.group(1)) for k in present if k.startswith(prefix) for m in [_ATTEMPT.match(k[len(prefix) :])] if m
        )

    def attempt_aborts(self, present: set[str], attempt: int) -> list[str]:
        """Compute parties that gave up ``attempt``."""
        return [c.id for c in self.spec.compute_parties if self.attempt_abort_key(c.id, attempt) in present]

    def live_attempt(self, present: set[str]) -> int | None:
        """The newest attempt with a roster that no compute party has given up, if any."""
        for attempt in reversed(self.attempts(present)):
            if not self.attempt_aborts(present, attempt):
                return attempt
            break  # a newer roster would come from the leader's next try
        return None


@dataclass
class Readiness:
    """What a waiting party should do now."""

    ready: bool
    missing: list[str] = field(default_factory=list)
    stop: str | None = None  # a reason to stop waiting at once (the task fails)
    skip: str | None = None  # a reason there is nothing to wait for (the task skips)


def readiness(
    layout: RunLayout,
    me: str,
    stage: str,
    present: set[str],
    *,
    floor: int,
    cutoff_passed: bool,
    rosters: dict[int, dict] | None = None,
) -> Readiness:
    """The one rule for waiting, shared by the sensor (poke) and the trigger (deferred).

    ``present`` holds the keys whose envelopes verified (``RunReader.verified``), never a raw
    listing; ``rosters`` the verified roster payloads by attempt (for ``nothing_to_release``).

    ``inputs`` (compute parties): ready when every input party that has not withdrawn has
    shared, or when the leader has published a roster; after the cut-off every compute party
    goes ahead if at least ``floor`` input parties shared (the leader then fixes the roster, the
    others wait for it in the compute stage). Stops when withdrawals leave fewer than ``floor``
    possible input parties.

    ``roster`` (input parties, after sharing): ready when the leader has published a roster;
    the task then checks that this party is on it (``stages.inclusion``).

    ``result`` (recipients): ready when every compute party published output shares for this
    recipient in the live attempt; stops when the newest attempt was given up; skips when the
    leader's roster says the ledger leaves nothing to release in this run.
    """
    if stage == "inputs":
        return _inputs_readiness(layout, present, floor=floor, cutoff_passed=cutoff_passed)
    if stage == "roster":
        return Readiness(True) if layout.attempts(present) else Readiness(False, [layout.spec.leader.id])
    if stage == "result":
        return _result_readiness(layout, me, present, rosters)
    raise ValueError(f"unknown stage {stage!r}")


def _inputs_readiness(layout: RunLayout, present: set[str], *, floor: int, cutoff_passed: bool) -> Readiness:
    """``readiness`` of a compute party's ``inputs`` stage."""
    spec = layout.spec
    if layout.attempts(present):
        return Readiness(True)
    shared, withdrawn = layout.shared(present), layout.withdrawn(present)
    possible = len(spec.input_parties) - len(withdrawn)
    if possible < floor:
        return Readiness(
            False,
            stop=f"input parties {', '.join(withdrawn)} withdrew: at most {possible} "
            f"can take part, fewer than the floor of {floor}",
        )
    missing = [p.id for p in spec.input_parties if p.id not in shared and p.id not in withdrawn]
    if not missing:
        return Readiness(True)
    if cutoff_passed and len(shared) >= floor:
        return Readiness(True, missing)
    return Readiness(False, missing)


def _result_readiness(layout: RunLayout, me: str, present: set[str], rosters: dict[int, dict] | None) -> Readiness:
    """``readiness`` of a recipient's ``result`` stage."""
    spec = layout.spec
    attempts = layout.attempts(present)
    if not attempts:
        return Readiness(False, [spec.leader.id])
    newest = attempts[-1]
    nothing = ((rosters or {}).get(newest) or {}).get("nothing_to_release")
    if nothing:
        return Readiness(False, skip=f"nothing to release in attempt {newest}: {nothing}")
    gave_up = layout.attempt_aborts(present, newest)
    if gave_up:
        return Readiness(False, stop=f"compute parties {', '.join(gave_up)} gave up MPC attempt {newest}")
    missing = [c.id for c in spec.compute_parties if layout.output_key(newest, c.id, me) not in present]
    return Readiness(not missing, missing)
