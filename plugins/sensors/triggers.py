"""CoordinationTrigger: waits in the triggerer until a run's stage may start."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from mpc_federation.waiting import FAST_POLL_SECONDS, POLL_SECONDS

if TYPE_CHECKING:
    from mpc_federation.channel import RunReader, Verified
    from mpc_federation.layout import Readiness


def _decided(state: Readiness) -> dict[str, Any]:
    """What ends the wait that ``state`` decided: skipped, stopped or ready."""
    if state.skip:
        return {"status": "skipped", "reason": state.skip}
    if state.stop:
        return {"status": "stopped", "reason": state.stop}
    return {"status": "ready", "left_out": state.missing}


class CoordinationTrigger(BaseTrigger):
    """Poll the run's objects and apply the same readiness rule as the sensor's poke, to verified
    objects only: the trigger verifies envelopes with the spec's public keys (no private keys in
    the triggerer) and remembers each verified object by its ETag, so an unchanged object is not
    fetched again while the trigger runs: a poll is one LIST request, plus one GET per new object.

    It polls at the pace of ``mpc_federation.waiting.Waiter`` (every ``fast_poll_interval``
    seconds while the rendezvous is near or something happened lately, every ``poll_interval``
    seconds otherwise); the log line at the end gives the requests it made.

    :param spec_path: the federation spec (read in the triggerer: a local file).
    :param party_id: the waiting party.
    :param run: the run key.
    :param stage: ``inputs``, ``roster`` or ``result``.
    :param coordination_conn_id: connection to the bucket (resolved in the triggerer).
    :param deadline: epoch seconds; absolute, so a triggerer restart does not extend the wait.
    :param cutoff: epoch seconds after which the leader may go ahead without stragglers.
    :param poll_interval: seconds from one listing's start to the next while the rendezvous is far.
    :param fast_poll_interval: the same while it is near (at most ``poll_interval``).
    :param hand_over_when_near: end with a ``near`` event once the rendezvous is near
        (``waiting.rendezvous_near``) and not yet decided: the deferred task then waits the last
        seconds itself (``mpc_operators.base.defer_while_far``, ``[mpc] wait_in_task = near``).
        Every event then carries the wait's ``deadline`` and ``cutoff`` for that task.
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
        poll_interval: float = POLL_SECONDS,
        fast_poll_interval: float = FAST_POLL_SECONDS,
        hand_over_when_near: bool = False,
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
        self.hand_over_when_near = hand_over_when_near

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
                "hand_over_when_near": self.hand_over_when_near,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from mpc_federation.waiting import Waiter

        layout, floor = await self._reader()
        waiter = Waiter(
            layout,
            self.party_id,
            self.stage,
            floor=floor,
            deadline=self.deadline,
            cutoff=self.cutoff,
            poll_interval=self.poll_interval,
            fast_poll_interval=self.fast_poll_interval,
            logger=self.log,
        )
        try:
            while True:
                polled = waiter.listing()
                view = await self._list(layout)
                state = waiter.decide(view) if view is not None else None
                if state is not None:
                    yield self._end(_decided(state))
                    return
                if self.hand_over_when_near and waiter.near:
                    yield self._end({"status": "near", "missing": waiter.missing})
                    return
                if waiter.timed_out():
                    yield self._end({"status": "timeout", "missing": waiter.missing})
                    return
                await asyncio.sleep(waiter.pause(polled))
        finally:
            self.log.info("%s", waiter.summary())

    def _end(self, payload: dict[str, Any]) -> TriggerEvent:
        """The event that ends this wait. A trigger that hands over also gives the wait's deadline
        and cut-off, which the task it resumes keeps (``mpc_operators.base.wait_in_task``)."""
        if self.hand_over_when_near:
            payload = {**payload, "deadline": self.deadline, "cutoff": self.cutoff}
        return TriggerEvent(payload)

    async def _reader(self) -> tuple[RunReader, int]:
        """The run's reader (the spec's public keys only) and the program's privacy floor."""
        from asgiref.sync import sync_to_async

        from mpc_federation.channel import RunReader
        from mpc_federation.programs import load_program, privacy_floor
        from mpc_federation.spec import load_spec
        from mpc_operators.hooks import CoordinationHook

        def open_reader() -> tuple[RunReader, int]:
            spec = load_spec(self.spec_path)
            floor = privacy_floor(load_program(spec.program_file).program, spec)
            store = CoordinationHook(aws_conn_id=self.coordination_conn_id).store(spec.bucket)
            return RunReader(spec, self.run_key, store, viewer=self.party_id), floor

        # Off the triggerer's event loop, which every deferred task shares, as the provider's own
        # async hooks do: reading the spec, importing its program, looking the connection up.
        return await sync_to_async(open_reader)()

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
