"""CoordinationTrigger: waits in the triggerer until a run's stage may start."""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator

from airflow.triggers.base import BaseTrigger, TriggerEvent


class CoordinationTrigger(BaseTrigger):
    """Poll the run's objects and apply the same readiness rule as the sensor's poke, to verified
    objects only: the trigger verifies envelopes with the spec's public keys (no private keys in
    the triggerer) and remembers each verified object by its ETag, so an unchanged object is not
    fetched again while the trigger runs.

    :param spec_path: the federation spec (read in the triggerer: a local file).
    :param party_id: the waiting party.
    :param run: the run key.
    :param stage: ``inputs``, ``roster`` or ``result``.
    :param coordination_conn_id: connection to the bucket (resolved in the triggerer).
    :param deadline: epoch seconds; absolute, so a triggerer restart does not extend the wait.
    :param cutoff: epoch seconds after which the leader may go ahead without stragglers.
    :param poll_interval: seconds between listings.
    """

    def __init__(self, *, spec_path: str, party_id: str, run: str, stage: str, coordination_conn_id: str,
                 deadline: float, cutoff: float, poll_interval: float = 5.0) -> None:
        super().__init__()
        self.spec_path = spec_path
        self.party_id = party_id
        self.run_key = run
        self.stage = stage
        self.coordination_conn_id = coordination_conn_id
        self.deadline = deadline
        self.cutoff = cutoff
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        # This module's own name: sensors.triggers in a cloned project, mpc_sensors.triggers installed.
        return (f"{__name__}.CoordinationTrigger", {
            "spec_path": self.spec_path, "party_id": self.party_id, "run": self.run_key, "stage": self.stage,
            "coordination_conn_id": self.coordination_conn_id, "deadline": self.deadline,
            "cutoff": self.cutoff, "poll_interval": self.poll_interval})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from asgiref.sync import sync_to_async

        from mpc_federation.channel import RunReader
        from mpc_federation.layout import readiness
        from mpc_federation.programs import load_program, privacy_floor
        from mpc_federation.spec import load_spec
        from mpc_operators.hooks import CoordinationHook

        spec = load_spec(self.spec_path)
        floor = privacy_floor(load_program(spec.program_file).program, spec)
        # As the provider's own async hooks do: the connection lookup off the event loop.
        hook = CoordinationHook(aws_conn_id=self.coordination_conn_id)
        store = await sync_to_async(hook.store)(spec.bucket)
        layout = RunReader(spec, self.run_key, store, viewer=self.party_id)
        missing: list[str] = []
        while True:
            try:
                # One impatient listing, bounded by the deadline: this loop is the retry, and an
                # unreachable bucket must not hold the trigger past its absolute deadline.
                view = await asyncio.wait_for(asyncio.to_thread(layout.verified, patient=False),
                                              timeout=max(1.0, self.deadline - time.time()))
            except Exception as exc:  # the bucket briefly unreachable is not the end of the run
                self.log.warning("Listing %s failed: %s", layout.root, exc)
            else:
                state = readiness(layout, self.party_id, self.stage, view.keys, floor=floor,
                                  cutoff_passed=time.time() >= self.cutoff, rosters=view.rosters(layout))
                if state.skip:
                    yield TriggerEvent({"status": "skipped", "reason": state.skip})
                    return
                if state.stop:
                    yield TriggerEvent({"status": "stopped", "reason": state.stop})
                    return
                if state.ready:
                    yield TriggerEvent({"status": "ready", "left_out": state.missing})
                    return
                missing = state.missing
                self.log.info("Waiting for %s: %s", self.stage, ", ".join(missing))
            if time.time() >= self.deadline:
                yield TriggerEvent({"status": "timeout", "missing": missing})
                return
            await asyncio.sleep(max(0.0, min(self.poll_interval, self.deadline - time.time())))
