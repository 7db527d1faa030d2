"""MPCCoordinationSensor: the S3-backed rendezvous of the parties of one run."""

from __future__ import annotations

import time
from typing import Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowFailException

from mpc_federation.party import COORDINATION_CONN_ID, KEYS_CONN_ID

STAGE_DEADLINES = {"inputs": "inputs", "roster": "inputs", "result": "result"}


class MPCCoordinationSensor(BaseSensorOperator):
    """Wait until every party this run needs has published for ``stage``:

    - ``inputs``: every input party has shared (or the leader has fixed the roster);
    - ``result``: every compute party has published output shares for this recipient.

    Deferrable by default (waits in the triggerer, holding no worker slot); with
    ``deferrable=False`` it pokes, and ``mode="reschedule"`` frees the slot between pokes.
    The deadline is absolute (the run's start on this party plus the spec's deadline for the
    stage); at the deadline it fails naming the parties that never showed. An abort published
    by any party stops the wait at once with that party's reason.

    :param spec_path: path of the federation spec YAML.
    :param party_id: this party's id.
    :param stage: ``inputs`` or ``result``.
    :param deferrable: wait in the triggerer.
    :param coordination_conn_id: connection to the coordination bucket.
    :param keys_conn_id: connection with this party's keys (to verify abort records).
    """

    template_fields = ("spec_path", "party_id")
    ui_color = "#f7f0d9"

    def __init__(self, *, spec_path: str, party_id: str, stage: str, deferrable: bool = True,
                 coordination_conn_id: str = COORDINATION_CONN_ID, keys_conn_id: str = KEYS_CONN_ID,
                 **kwargs: Any) -> None:
        kwargs.setdefault("poke_interval", 5)
        super().__init__(**kwargs)
        self.spec_path = spec_path
        self.party_id = party_id
        self.stage = stage
        self.deferrable = deferrable
        self.coordination_conn_id = coordination_conn_id
        self.keys_conn_id = keys_conn_id
        self._deadline_at: float | None = None

    # -- shared by both modes -------------------------------------------------------------------
    def _party_run(self, context: Any):
        from mpc_operators.base import open_party_run

        return open_party_run(self, context)

    def _deadline(self, run, context: Any) -> float:
        """Epoch seconds: when this sensor first started waiting, plus the spec's deadline."""
        if self._deadline_at is None:
            first = context["ti"].get_first_reschedule_date(context) if self.reschedule else None
            started = first.timestamp() if first is not None else time.time()
            self._deadline_at = started + run.spec.deadlines[STAGE_DEADLINES[self.stage]]
        return self._deadline_at

    def _check(self, run, context: Any) -> bool:
        from mpc_federation import stages

        channel = run.channel
        present = channel.present()
        self._fail_on_abort(run, stages.aborts(channel, present))
        missing = stages.pending(channel, self.stage, present)
        if not missing:
            return True
        if time.time() >= self._deadline(run, context):
            self._fail_timeout(run, sorted(set(missing.values())))
        self.log.info("Waiting for %s: %s", self.stage, ", ".join(sorted(set(missing.values()))))
        return False

    def _fail_on_abort(self, run, parties: list[str]) -> None:
        if not parties:
            return
        from mpc_federation import stages

        reasons = "; ".join(f"{p}: {stages.abort_reason(run.channel, p)}" for p in parties)
        raise AirflowFailException(f"run {run.channel.run} was aborted by {reasons}")

    def _fail_timeout(self, run, missing: list[str]) -> None:
        seconds = run.spec.deadlines[STAGE_DEADLINES[self.stage]]
        raise AirflowFailException(f"run {run.channel.run}: waited {seconds} s for {self.stage}; "
                                   f"parties that never showed: {', '.join(missing)}")

    # -- poke mode ------------------------------------------------------------------------------
    def poke(self, context: Any) -> bool:
        return self._check(self._party_run(context), context)

    # -- deferrable mode ------------------------------------------------------------------------
    def execute(self, context: Any) -> None:
        if not self.deferrable:
            return super().execute(context)
        from mpc_federation import stages
        from sensors.triggers import CoordinationTrigger

        run = self._party_run(context)
        if self._check(run, context):
            return None
        channel = run.channel
        self.defer(
            trigger=CoordinationTrigger(
                wanted=stages.pending(channel, self.stage, set()), enough=stages.enough_key(channel, self.stage),
                root=channel.root, bucket=run.spec.bucket,
                coordination_conn_id=self.coordination_conn_id, deadline=self._deadline(run, context),
                poll_interval=self.poke_interval),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> None:
        run = self._party_run(context)
        if event["status"] == "ready":
            return None
        if event["status"] == "aborted":
            self._fail_on_abort(run, event["parties"])
        self._fail_timeout(run, event.get("missing", []))
