"""Waiting for a stage of a run: the readiness rule (``layout.readiness``) applied to verified
listings, polled fast while the rendezvous is near and slowly while it is far.

One ``Waiter`` holds when a wait ends and how often it lists, for both ways of waiting: the
deferrable sensor's trigger (``sensors.triggers``, asynchronous, in the triggerer) and ``wait``
below (in the task itself, which then goes on with the reader it verified with).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mpc_federation.layout import Readiness, readiness

if TYPE_CHECKING:
    from mpc_federation.channel import RunReader, Verified
    from mpc_federation.party import PartyRun

log = logging.getLogger(__name__)

POLL_SECONDS = 5.0  # while the rendezvous is far: a straggler still aggregating
FAST_POLL_SECONDS = 0.5  # while it is near: at most about half a second late
# While it is near, in a task that waits itself (``[mpc] wait_in_task``): the compute parties and
# the recipients, a handful per federation whatever the number of input parties, on the critical
# path of the night. The input parties' sensors keep the pace above.
TASK_NEAR_POLL_SECONDS = 0.2
ACTIVE_SECONDS = 60.0  # after the wait starts and after any new object: parties of one night move together
# For a moment after a new object, faster still: the compute parties publish their output shares
# (and their status records) within a fraction of a second of each other, so the first one says
# the others are about to come. A few dozen more listings a night.
BURST_SECONDS = 2.0
BURST_POLL_SECONDS = 0.1


# The cut-off of a spec without one (``deadlines.cutoff: never``): a time no wait reaches, and a
# plain number in a trigger's arguments and events (JSON has no infinity).
NEVER = float(2**53)


def deadlines(spec, stage: str, started: float) -> tuple[float, float]:
    """(deadline, cutoff) in epoch seconds of a wait for ``stage`` that started at ``started``: the
    spec's deadline of the stage (an input party's roster wait also allows the connection), and the
    cut-off after which the leader may go ahead without stragglers (``NEVER`` for a spec without)."""
    wait = {"inputs": spec.deadlines["inputs"], "roster": spec.deadlines["inputs"] + spec.deadlines["connect"]}
    cutoff = spec.cutoff
    return started + wait.get(stage, spec.deadlines["result"]), NEVER if cutoff is None else started + cutoff


def rendezvous_near(layout: RunReader, keys: set[str], *, floor: int) -> bool:
    """Whether the stage may become ready within seconds, so the waiter lists fast: a roster
    exists (the compute parties are running MPyC, or about to), or at least the privacy floor of
    input parties, or more than half of them, have shared (the rest of a night's parties, the
    roster and for a small computation the outputs are then usually seconds away). Otherwise the
    parties are still aggregating (minutes): the waiter lists slowly. The same rule for every
    stage: a recipient's ``result`` is as near as the compute parties' ``inputs``, one MPC later.

    :param keys: the verified keys of the run.
    """
    if layout.attempts(keys):
        return True
    return len(layout.shared(keys)) >= near_from(floor, len(layout.spec.input_parties))


def near_from(floor: int, inputs: int) -> int:
    """How many of ``inputs`` input parties must have shared for the rendezvous to be near: the
    privacy floor, or more than half of them."""
    return min(floor, inputs // 2 + 1)


class Waiter:
    """One wait of ``party_id`` for ``stage``: ``decide`` on each verified listing, ``pause``
    between listings (measured from a listing's start, so a slow listing is not added on top).

    It lists every ``near_poll_interval`` seconds while the rendezvous is near (``rendezvous_near``),
    every ``fast_poll_interval`` seconds while something happened lately (the first minute of the
    wait, and a minute after each new object: the parties of one night run on one schedule), and
    every ``poll_interval`` seconds otherwise, so the last party's object is seen within about
    ``near_poll_interval``. For ``BURST_SECONDS`` after a new object (not the wait's first listing)
    it lists every ``BURST_POLL_SECONDS`` (at most ``near_poll_interval``): the rest of a burst,
    such as the other compute parties' output shares, is seen within about that.

    :param reader: the run's reader: a ``RunReader`` (public keys only) or, in a compute task, its ``RunChannel``.
    :param floor: the program's privacy floor (``stage_base.floor``).
    :param deadline: epoch seconds; absolute, so a restart does not extend the wait.
    :param cutoff: epoch seconds after which the leader may go ahead without stragglers.
    :param logger: where a change of what is missing, or of the pace, is logged (a logger).
    :param near_poll_interval: the pace while the rendezvous is near (default ``fast_poll_interval``;
        at most that).
    :param burst: start in a burst, as after a new object: the wait goes on from one that has just
        seen news (a task resumed by its trigger, which hands over on the listing that found the
        rendezvous near).
    """

    def __init__(
        self,
        reader: RunReader,
        party_id: str,
        stage: str,
        *,
        floor: int,
        deadline: float,
        cutoff: float,
        poll_interval: float = POLL_SECONDS,
        fast_poll_interval: float = FAST_POLL_SECONDS,
        logger: Any = log,
        near_poll_interval: float | None = None,
        burst: bool = False,
    ) -> None:
        self.reader = reader
        self.party_id = party_id
        self.stage = stage
        self.floor = floor
        self.deadline = deadline
        self.cutoff = cutoff
        self.poll_interval = poll_interval
        self.fast_poll_interval = min(fast_poll_interval, poll_interval)
        near = fast_poll_interval if near_poll_interval is None else near_poll_interval
        self.near_poll_interval = min(near, self.fast_poll_interval)
        self.log = logger
        self.started = time.time()
        self.listings = 0
        self.active_until = self.started + ACTIVE_SECONDS
        self.burst_until = self.started + BURST_SECONDS if burst else 0.0
        self.decided_once = False  # what the first listing shows is there, not news
        self.fast = False  # listing at the fast pace
        self.near = False  # the rendezvous itself is near (``rendezvous_near``), not only news
        self.seen: set[str] = set()
        self.missing: list[str] = []

    def listing(self) -> float:
        """Count a listing about to start; returns when it starts (for ``pause``)."""
        self.listings += 1
        return time.time()

    def decide(self, view: Verified) -> Readiness | None:
        """The readiness from one verified listing if it ends the wait (ready, skip or stop); else
        None, after following the pace (fast again for a while if anything is new)."""
        layout = self.reader
        state = readiness(
            layout,
            self.party_id,
            self.stage,
            view.keys,
            floor=self.floor,
            cutoff_passed=time.time() >= self.cutoff,
            rosters=view.rosters(layout),
        )
        if state.ready or state.skip or state.stop:
            return state
        if view.keys - self.seen:
            if self.decided_once:
                self.burst_until = time.time() + BURST_SECONDS
            self.active_until = time.time() + ACTIVE_SECONDS
            self.seen |= view.keys
        self.decided_once = True
        was = (self.fast, self.near)
        self.near = rendezvous_near(layout, view.keys, floor=self.floor)
        self.fast = self.near or time.time() < self.active_until
        if self.missing != state.missing or (self.fast, self.near) != was:
            self.log.info(
                "Waiting for %s: %s (polling every %.2g s)", self.stage, ", ".join(state.missing), self.interval()
            )
        self.missing = state.missing
        return None

    def interval(self) -> float:
        if time.time() < self.burst_until:
            return min(BURST_POLL_SECONDS, self.near_poll_interval)
        if self.near:
            return self.near_poll_interval
        return self.fast_poll_interval if self.fast else self.poll_interval

    def timed_out(self) -> bool:
        return time.time() >= self.deadline

    def pause(self, polled: float) -> float:
        """Seconds to sleep after the listing that started at ``polled`` (never past the deadline)."""
        return max(0.0, min(self.interval() - (time.time() - polled), self.deadline - time.time()))

    def summary(self) -> str:
        waited = max(time.time() - self.started, 1e-3)
        return (
            f"Listed {self.reader.root} {self.listings} times in {waited:.1f} s "
            f"({self.listings * 3600 / waited:.0f} listings per hour)"
        )


def wait(
    run: PartyRun,
    stage: str,
    *,
    when_near: Callable[[], None] | None = None,
    **pace: Any,
) -> tuple[Readiness, Verified | None]:
    """Wait in this process until ``stage`` is decided: ready, skip, or stop (its reason explained
    from the verified aborts); at the deadline, not ready, with what is missing. Returns the
    decision and the verified listing it was made from (None at a deadline with the bucket
    unreachable).

    It lists through ``run.reader``, so what it verified (a compute party's channel also fetches
    the shares sealed to it, a recipient's opens the output shares sealed to it) is not fetched
    again by the stage that follows.

    :param pace: ``Waiter``'s keyword arguments: ``deadline`` and ``cutoff``, and optionally the
        poll intervals and the logger.
    :param when_near: called once, the first time the rendezvous is near (``rendezvous_near``) and
        the wait not yet decided: e.g. a compute party starts its MPyC process then
        (``computing.EarlyStart``), so that it is connected when the roster is fixed. An error it
        raises is logged, and the wait goes on.
    """
    from mpc_federation.stage_base import explained, floor

    reader = run.reader
    waiter = Waiter(reader, run.party_id, stage, floor=floor(run), **pace)
    logger = waiter.log
    failing = False
    try:
        while True:
            polled = waiter.listing()
            try:
                # The whole run, as the trigger lists it: the pace counts who shared (the loop is the retry).
                view = reader.verified(patient=False)
            except Exception as exc:  # the bucket briefly unreachable is not the end of the run
                if not failing:  # once per outage, not on every poll
                    logger.warning("Listing %s failed: %s", reader.root, exc)
                failing, view = True, None
            else:
                failing = False
            state = waiter.decide(view) if view is not None else None
            if state is not None:
                return explained(state, reader, view), view
            if waiter.timed_out():
                unreachable = ["(the coordination bucket was unreachable)"] if failing else []
                return Readiness(ready=False, missing=waiter.missing + unreachable), view
            if waiter.near and when_near is not None:
                try:
                    when_near()
                except Exception as exc:  # a head start only: the stage that follows does it anyway
                    logger.warning("Could not prepare ahead of the rendezvous: %s", exc)
                when_near = None
            time.sleep(waiter.pause(polled))
    finally:
        logger.info("%s", waiter.summary())
