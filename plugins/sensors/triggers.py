"""CoordinationTrigger: waits in the triggerer until a run's objects are in the bucket."""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator

from airflow.triggers.base import BaseTrigger, TriggerEvent


class CoordinationTrigger(BaseTrigger):
    """Poll the run's prefix until none of ``wanted`` is missing, an abort appears, or ``deadline``.

    :param wanted: {object key: party} that the stage waits for.
    :param enough: a key whose presence alone ends the wait (the roster, once the leader fixed it).
    :param root: the run's prefix in the bucket.
    :param bucket: the coordination bucket.
    :param coordination_conn_id: connection to the bucket (resolved in the triggerer).
    :param deadline: epoch seconds; absolute, so a triggerer restart does not extend the wait.
    :param poll_interval: seconds between listings.
    """

    def __init__(self, *, wanted: dict[str, str], enough: str | None, root: str, bucket: str, coordination_conn_id: str,
                 deadline: float, poll_interval: float = 5.0) -> None:
        super().__init__()
        self.wanted = wanted
        self.enough = enough
        self.root = root
        self.bucket = bucket
        self.coordination_conn_id = coordination_conn_id
        self.deadline = deadline
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("sensors.triggers.CoordinationTrigger", {
            "wanted": self.wanted, "enough": self.enough, "root": self.root, "bucket": self.bucket,
            "coordination_conn_id": self.coordination_conn_id, "deadline": self.deadline,
            "poll_interval": self.poll_interval})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow.sdk import BaseHook

        from mpc_federation.stages import aborted_parties
        from mpc_federation.store import CoordinationStore, StoreConfig

        conn = await BaseHook.aget_connection(self.coordination_conn_id)
        store = CoordinationStore(StoreConfig.from_connection(conn, self.bucket))
        while True:
            try:
                present = set(await asyncio.to_thread(store.list, self.root + "/"))
            except Exception as exc:  # the bucket being briefly unreachable is not the end of the run
                self.log.warning("Listing %s failed: %s", self.root, exc)
                present = None
            if present is not None:
                aborted = aborted_parties(self.root, present)
                if aborted:
                    yield TriggerEvent({"status": "aborted", "parties": aborted})
                    return
                missing = sorted({p for k, p in self.wanted.items() if k not in present})
                if not missing or self.enough in present:
                    yield TriggerEvent({"status": "ready"})
                    return
            else:
                missing = sorted(set(self.wanted.values()))
            if time.time() >= self.deadline:
                yield TriggerEvent({"status": "timeout", "missing": missing})
                return
            await asyncio.sleep(min(self.poll_interval, max(0.0, self.deadline - time.time())))
