"""MPCCoordinationSensor: the S3-backed rendezvous of the parties of one run."""

from __future__ import annotations

import time
from typing import Any

from airflow.configuration import conf
from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from mpc_federation.waiting import FAST_POLL_SECONDS, POLL_SECONDS
from mpc_operators.base import defer_wait, end_wait
from mpc_operators.hooks import COORDINATION_CONN_ID
from mpc_operators.keys import KEYS_CONN_ID
from mpc_operators.links import MPCRunLink


class MPCCoordinationSensor(BaseSensorOperator):
    """Wait until every party this run needs has published for ``stage``:

    - ``inputs`` (compute parties): every input party that has not withdrawn has shared, or the
      leader has fixed the roster; after the spec's cut-off the leader goes ahead without
      stragglers if at least the privacy floor of input parties shared;
    - ``roster`` (input parties, after ``share``): the leader fixed a roster; then succeeds when
      this party is on it, skips when the disclosure ledger fixed a roster without it (or the run
      has nothing to release, or it shared after the roster was fixed), and fails naming the
      roster when it shared in time and was left out;
    - ``result`` (recipients): every compute party published output shares for this recipient;
      skips when the ledger leaves nothing to release in this run.

    Only objects whose signed envelopes verify count (``RunReader.verified``): an unsigned or
    badly signed object is ignored with a warning naming it. The sensor reads with the spec's
    public keys only; it never loads this party's private keys.

    Deferrable as Airflow's ``[operators] default_deferrable`` says (set it to True on an MPC
    party: the sensor then waits in the triggerer, holding no worker slot); with
    ``deferrable=False`` it pokes, and ``mode="reschedule"`` frees the slot between pokes. A
    deferred wait also carries a deferral timeout just after its deadline, so the deadline holds
    even when no triggerer runs.
    Deadlines are absolute (when this sensor first started waiting, plus the spec's deadline),
    so a triggerer restart does not extend them. At the deadline it fails naming the parties
    that never showed; an abort that makes the stage impossible stops it at once with the
    aborting party's verified reason.

    :param spec_path: path of the federation spec YAML.
    :param party_id: this party's id.
    :param stage: ``inputs``, ``roster`` or ``result``.
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).
    :param coordination_conn_id: connection to the coordination bucket.
    :param keys_conn_id: kept for compatibility; not used (verifying needs public keys only).
    :param fast_poke_interval: seconds between the trigger's listings once the rendezvous is near
        (``poke_interval``, 5 s by default, applies while it is far; see ``CoordinationTrigger``).
    """

    template_fields = ("spec_path", "party_id")
    ui_color = "#f7f0d9"
    operator_extra_links = (MPCRunLink(),)

    def __init__(
        self,
        *,
        spec_path: str,
        party_id: str,
        stage: str,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        coordination_conn_id: str = COORDINATION_CONN_ID,
        keys_conn_id: str = KEYS_CONN_ID,
        fast_poke_interval: float = FAST_POLL_SECONDS,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", POLL_SECONDS)
        super().__init__(**kwargs)
        self.spec_path = spec_path
        self.party_id = party_id
        self.stage = stage
        self.deferrable = deferrable
        self.coordination_conn_id = coordination_conn_id
        self.keys_conn_id = keys_conn_id
        self.fast_poke_interval = fast_poke_interval
        self._started: float | None = None
        self._run = None

    def _party_run(self, context: Any):
        """This party's run, reading only: spec, program and bucket, no private keys."""
        if self._run is None:  # one reader per sensor: it remembers what it verified
            from mpc_operators.base import open_party_run_for

            self._run = open_party_run_for(
                self.spec_path,
                self.party_id,
                context,
                keys_conn_id=None,
                coordination_conn_id=self.coordination_conn_id,
            )
        return self._run

    def _times(self, run, context: Any) -> tuple[float, float]:
        """(deadline, cutoff) in epoch seconds, from when this sensor first started waiting."""
        from mpc_federation.waiting import deadlines

        if self._started is None:
            first = context["ti"].get_first_reschedule_date(context) if self.reschedule else None
            self._started = first.timestamp() if first is not None else time.time()
        return deadlines(run.spec, self.stage, self._started)

    def _check(self, run, context: Any) -> bool:
        from mpc_federation import stages

        deadline, cutoff = self._times(run, context)
        try:
            view = run.reader.verified_for(self.stage, patient=False)  # the poke loop is the retry
        except Exception as exc:
            self.log.warning("Listing the run's objects failed: %s", exc)
            if time.time() >= deadline:
                self._fail_timeout(run, ["(the coordination bucket was unreachable)"])
            return False
        state = stages.wait_state(run, self.stage, view, cutoff_passed=time.time() >= cutoff)
        if state.ready and self.stage == "roster" and not (state.stop or state.skip):
            return self._included(run, view)
        if state.ready or state.stop or state.skip or time.time() >= deadline:
            end_wait(run.reader.run, self.stage, state, self.log)  # raises unless ready
            return True
        self.log.info("Waiting for %s: %s", self.stage, ", ".join(state.missing))
        return False

    def _included(self, run, view=None) -> bool:
        from mpc_federation import stages

        outcome, why = stages.inclusion(run, view)
        if outcome == "included":
            self.log.info("%s", why)
            return True
        if outcome == "skip":
            raise AirflowSkipException(why)
        if outcome == "fail":
            raise AirflowFailException(why)
        return False

    def _fail_timeout(self, run, missing: list[str]) -> None:
        from mpc_federation.layout import Readiness

        end_wait(run.reader.run, self.stage, Readiness(ready=False, missing=missing), self.log)

    def poke(self, context: Any) -> bool:
        return self._check(self._party_run(context), context)

    def execute(self, context: Any) -> None:
        if not self.deferrable:
            return super().execute(context)
        run = self._party_run(context)
        if self._check(run, context):
            return None
        deadline, cutoff = self._times(run, context)
        defer_wait(
            self,
            run,
            self.stage,
            deadline,
            cutoff,
            poll_interval=self.poke_interval,
            fast_poll_interval=self.fast_poke_interval,
        )

    def execute_complete(self, context: Any, event: dict[str, Any]) -> None:
        if event["status"] == "ready" and self.stage != "roster":
            # The trigger decided from verified objects; the next task verifies what it reads. No
            # store is opened here: on the rendezvous's critical path it costs clients and a listing.
            if event.get("left_out"):
                self.log.warning("Going ahead after the cut-off without: %s", ", ".join(event["left_out"]))
            return None
        run = self._party_run(context)
        if event["status"] == "ready":
            # An input party's inclusion is checked again from verified objects (the trigger holds
            # no keys either, but this is where the task decides).
            if not self._included(run):
                raise AirflowFailException(f"run {run.reader.run}: the roster is gone again")
            return None
        if event["status"] == "skipped":
            raise AirflowSkipException(f"run {run.reader.run}: {event['reason']}")
        if event["status"] == "stopped":
            from mpc_federation import stages

            reasons = stages.explain_aborts(run.reader)  # verified, not the trigger's word
            raise AirflowFailException(
                f"run {run.reader.run}: stopped waiting for {self.stage}: {event['reason']}; {reasons}"
            )
        self._fail_timeout(run, event.get("missing", []))
