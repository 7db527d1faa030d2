"""MPCCoordinationSensor: the S3-backed rendezvous of the parties of one run."""

from __future__ import annotations

import time
from typing import Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowFailException

from mpc_federation.party import COORDINATION_CONN_ID, KEYS_CONN_ID
from mpc_operators.links import MPCRunLink


class MPCCoordinationSensor(BaseSensorOperator):
    """Wait until every party this run needs has published for ``stage``:

    - ``inputs`` (compute parties): every input party that has not withdrawn has shared, or the
      leader has fixed the roster; after the spec's cut-off the leader goes ahead without
      stragglers if at least the privacy floor of input parties shared;
    - ``result`` (recipients): every compute party published output shares for this recipient.

    Deferrable by default (waits in the triggerer, holding no worker slot); with
    ``deferrable=False`` it pokes, and ``mode="reschedule"`` frees the slot between pokes.
    Deadlines are absolute (when this sensor first started waiting, plus the spec's deadline),
    so a triggerer restart does not extend them. At the deadline it fails naming the parties
    that never showed; an abort that makes the stage impossible stops it at once with the
    aborting party's verified reason.

    :param spec_path: path of the federation spec YAML.
    :param party_id: this party's id.
    :param stage: ``inputs`` or ``result``.
    :param deferrable: wait in the triggerer.
    :param coordination_conn_id: connection to the coordination bucket.
    :param keys_conn_id: connection with this party's keys (to verify abort records).
    """

    template_fields = ("spec_path", "party_id")
    ui_color = "#f7f0d9"
    operator_extra_links = (MPCRunLink(),)

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
        self._started: float | None = None

    def _party_run(self, context: Any):
        from mpc_operators.base import open_party_run

        return open_party_run(self, context)

    def _times(self, run, context: Any) -> tuple[float, float]:
        """(deadline, cutoff) in epoch seconds, from when this sensor first started waiting."""
        if self._started is None:
            first = context["ti"].get_first_reschedule_date(context) if self.reschedule else None
            self._started = first.timestamp() if first is not None else time.time()
        deadlines = run.spec.deadlines
        wait = deadlines["inputs" if self.stage == "inputs" else "result"]
        return self._started + wait, self._started + deadlines["cutoff"]

    def _check(self, run, context: Any) -> bool:
        from mpc_federation import stages

        deadline, cutoff = self._times(run, context)
        try:
            present = run.channel.present(patient=False)  # the poke loop is the retry
        except Exception as exc:
            self.log.warning("Listing the run's objects failed: %s", exc)
            if time.time() >= deadline:
                self._fail_timeout(run, ["(the coordination bucket was unreachable)"])
            return False
        state = stages.wait_state(run, self.stage, present, cutoff_passed=time.time() >= cutoff)
        if state.stop:
            raise AirflowFailException(f"run {run.channel.run}: stopped waiting for {self.stage}: {state.stop}")
        if state.ready:
            if state.missing:
                self.log.warning("Going ahead after the cut-off without: %s", ", ".join(state.missing))
            return True
        if time.time() >= deadline:
            self._fail_timeout(run, state.missing)
        self.log.info("Waiting for %s: %s", self.stage, ", ".join(state.missing))
        return False

    def _fail_timeout(self, run, missing: list[str]) -> None:
        raise AirflowFailException(f"run {run.channel.run}: deadline passed waiting for {self.stage}; "
                                   f"parties that never showed: {', '.join(missing) or '(none listed)'}")

    def poke(self, context: Any) -> bool:
        return self._check(self._party_run(context), context)

    def execute(self, context: Any) -> None:
        if not self.deferrable:
            return super().execute(context)
        from sensors.triggers import CoordinationTrigger

        run = self._party_run(context)
        if self._check(run, context):
            return None
        deadline, cutoff = self._times(run, context)
        self.defer(
            trigger=CoordinationTrigger(spec_path=self.spec_path, party_id=self.party_id, run=run.channel.run,
                                        stage=self.stage, coordination_conn_id=self.coordination_conn_id,
                                        deadline=deadline, cutoff=cutoff, poll_interval=self.poke_interval),
            method_name="execute_complete",
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> None:
        if event["status"] == "ready":
            if event.get("left_out"):
                self.log.warning("Going ahead after the cut-off without: %s", ", ".join(event["left_out"]))
            return None
        run = self._party_run(context)
        if event["status"] == "stopped":
            from mpc_federation import stages

            reasons = stages.explain_aborts(run.channel, run.channel.present())  # verified, not the trigger's word
            raise AirflowFailException(f"run {run.channel.run}: stopped waiting for {self.stage}: "
                                       f"{event['reason']}; {reasons}")
        self._fail_timeout(run, event.get("missing", []))
