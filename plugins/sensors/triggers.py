"""CoordinationTrigger: waits in the triggerer until a run's stage may start."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

if TYPE_CHECKING:
    from mpc_federation.channel import RunReader, Verified
    from mpc_federation.layout import Readiness

FAST_POLL_SECONDS = 0.5  # while the rendezvous is near: at most about half a second late
ACTIVE_SECONDS = 60.0  # after the wait starts and after any new object: parties of one night move together


def rendezvous_near(layout, stage: str, keys: set[str], *, floor: int) -> bool:
    """Whether the stage may become ready within seconds, so the trigger lists fast: a roster
    exists (the compute parties are running MPyC, or about to), or at least the privacy floor of
    input parties, or more than half of them, have shared (the rest of a night's parties, the
    roster and for a small computation the outputs are then usually seconds away). Otherwise the
    parties are still aggregating (minutes): the trigger lists slowly. The same rule for every
    stage: a recipient's ``result`` is as near as the compute parties' ``inputs``, one MPC later.

    :param keys: the verified keys of the run.
    """
    if layout.attempts(keys):
        return True
    shared = len(layout.shared(keys))
    return shared >= floor or 2 * shared > len(layout.spec.input_parties)


@dataclass
class _Pace:
    """How fast the trigger lists, and what it logged last: fast while the rendezvous is near
    (``near``) or until ``active_until`` (a while after the start and after each new object)."""

    active_until: float
    near: bool = False
    seen: set[str] = field(default_factory=set)
    missing: list[str] = field(default_factory=list)


def _decided(state: Readiness) -> TriggerEvent | None:
    """The event that ends the wait, if ``state`` decides it: skipped, stopped or ready."""
    if state.skip:
        return TriggerEvent({"status": "skipped", "reason": state.skip})
    if state.stop:
        return TriggerEvent({"status": "stopped", "reason": state.stop})
    if state.ready:
        return TriggerEvent({"status": "ready", "left_out": state.missing})
    return None


class CoordinationTrigger(BaseTrigger):
    """Poll the run's objects and apply the same readiness rule as the sensor's poke, to verified
    objects only: the trigger verifies envelopes with the spec's public keys (no private keys in
    the triggerer) and remembers each verified object by its ETag, so an unchanged object is not
    fetched again while the trigger runs: a poll is one LIST request, plus one GET per new object.

    It lists every ``fast_poll_interval`` seconds while the rendezvous is near (``rendezvous_near``)
    or something happened lately (the first minute of the wait, and a minute after each new
    object: the parties of one night run on one schedule), and every ``poll_interval`` seconds
    otherwise (a straggler still aggregating), so the last party's object is seen within about
    ``fast_poll_interval``; the log line at the end gives the requests it made.

    :param spec_path: the federation spec (read in the triggerer: a local file).
    :param party_id: the waiting party.
    :param run: the run key.
    :param stage: ``inputs``, ``roster`` or ``result``.
    :param coordination_conn_id: connection to the bucket (resolved in the triggerer).
    :param deadline: epoch seconds; absolute, so a triggerer restart does not extend the wait.
    :param cutoff: epoch seconds after which the leader may go ahead without stragglers.
    :param poll_interval: seconds from one listing's start to the next while the rendezvous is far.
    :param fast_poll_interval: the same while it is near (at most ``poll_interval``).
    """

    def __init__(
        self,
        *,
        spec_path: str,
        party_id: str,
        run: str,
        stage: str,
        coordination_conn_id: str,
        deadline: float,
        cutoff: float,
        poll_interval: float = 5.0,
        fast_poll_interval: float = FAST_POLL_SECONDS,
    ) -> None:
        super().__init__()
        self.spec_path = spec_path
        self.party_id = party_id
        self.run_key = run
        self.stage = stage
        self.coordination_conn_id = coordination_conn_id
        self.deadline = deadline
        self.cutoff = cutoff
        self.poll_interval = poll_interval
        self.fast_poll_interval = fast_poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        # This module's own name: sensors.triggers in a cloned project, mpc_sensors.triggers installed.
        return (
            f"{__name__}.CoordinationTrigger",
            {
                "spec_path": self.spec_path,
                "party_id": self.party_id,
                "run": self.run_key,
                "stage": self.stage,
                "coordination_conn_id": self.coordination_conn_id,
                "deadline": self.deadline,
                "cutoff": self.cutoff,
                "poll_interval": self.poll_interval,
                "fast_poll_interval": self.fast_poll_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        layout, floor = await self._reader()
        started, listings = time.time(), 0
        pace = _Pace(active_until=started + ACTIVE_SECONDS)  # fast for a while after the wait starts or anything new
        try:
            while True:
                polled = time.time()
                listings += 1
                view = await self._list(layout)
                if view is not None:
                    state = self._readiness(layout, view, floor)
                    event = _decided(state)
                    if event is not None:
                        yield event
                        return
                    self._follow(pace, layout, view.keys, state.missing, floor)
                if time.time() >= self.deadline:
                    yield TriggerEvent({"status": "timeout", "missing": pace.missing})
                    return
                # Every interval from the start of the last listing: a slow listing is not added on top.
                pause = self._interval(pace.near) - (time.time() - polled)
                await asyncio.sleep(max(0.0, min(pause, self.deadline - time.time())))
        finally:
            self._log_listings(layout, listings, started)

    async def _reader(self) -> tuple[RunReader, int]:
        """The run's reader (the spec's public keys only) and the program's privacy floor."""
        from asgiref.sync import sync_to_async

        from mpc_federation.channel import RunReader
        from mpc_federation.programs import load_program, privacy_floor
        from mpc_federation.spec import load_spec
        from mpc_operators.hooks import CoordinationHook

        spec = load_spec(self.spec_path)
        floor = privacy_floor(load_program(spec.program_file).program, spec)
        # As the provider's own async hooks do: the connection lookup off the event loop.
        hook = CoordinationHook(aws_conn_id=self.coordination_conn_id)
        store = await sync_to_async(hook.store)(spec.bucket)
        return RunReader(spec, self.run_key, store, viewer=self.party_id), floor

    async def _list(self, layout: RunReader) -> Verified | None:
        """The run's verified objects from one impatient listing, bounded by the deadline: the loop
        in ``run`` is the retry, and an unreachable bucket must not hold the trigger past its
        absolute deadline. None if the listing failed (logged)."""
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(layout.verified, patient=False), timeout=max(1.0, self.deadline - time.time())
            )
        except Exception as exc:  # the bucket briefly unreachable is not the end of the run
            self.log.warning("Listing %s failed: %s", layout.root, exc)
            return None

    def _readiness(self, layout: RunReader, view: Verified, floor: int) -> Readiness:
        from mpc_federation.layout import readiness

        return readiness(
            layout,
            self.party_id,
            self.stage,
            view.keys,
            floor=floor,
            cutoff_passed=time.time() >= self.cutoff,
            rosters=view.rosters(layout),
        )

    def _follow(self, pace: _Pace, layout: RunReader, keys: set[str], missing: list[str], floor: int) -> None:
        """After a listing that decided nothing: list fast again for a while if anything is new, and
        log the wait when what is missing or the pace changed."""
        if keys - pace.seen:
            pace.active_until = time.time() + ACTIVE_SECONDS
            pace.seen |= keys
        was = pace.near
        pace.near = rendezvous_near(layout, self.stage, keys, floor=floor) or time.time() < pace.active_until
        if pace.missing != missing or pace.near != was:
            self.log.info(
                "Waiting for %s: %s (polling every %.2g s)",
                self.stage,
                ", ".join(missing),
                self._interval(pace.near),
            )
        pace.missing = missing

    def _log_listings(self, layout: RunReader, listings: int, started: float) -> None:
        waited = max(time.time() - started, 1e-3)
        self.log.info(
            "Listed %s %d times in %.1f s (%.0f listings per hour)",
            layout.root,
            listings,
            waited,
            listings * 3600 / waited,
        )

    def _interval(self, near: bool) -> float:
        return min(self.fast_poll_interval, self.poll_interval) if near else self.poll_interval
