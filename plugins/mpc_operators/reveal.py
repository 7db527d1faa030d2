"""MPCRevealOperator: reconstruct the result, on a recipient only."""

from __future__ import annotations

import json
from typing import Any

from mpc_operators.base import MPCWaitingOperator, final_errors, wait_in_task, waits_by_default


def result_asset(computation: str):
    """The Airflow asset of a computation's revealed results: a downstream DAG (a report, a
    dashboard refresh) can be scheduled on it (``schedule=[result_asset("taxi_hhi")]``)."""
    from airflow.sdk import Asset

    return Asset(name=f"mpc_result_{computation}", uri=f"mpc://{computation}/result", group="mpc")


class MPCRevealOperator(MPCWaitingOperator):
    """Gather the output shares sealed to this recipient, check they agree on the roster and on
    one polynomial, reconstruct the declared outputs and return the result record as XCom. It
    emits an event of the computation's result asset (``result_asset``, when it is among the
    task's ``outlets``, as in the DAGs ``federation_dag`` builds) whose extra names the run, so
    downstream DAGs can be scheduled on new results. Only parties with the recipient
    role can run it.

    :param results_uri: where to keep a copy of each result record as well
        (``<results_uri>/<computation>/<run>/result.json``; a local path or an object-storage
        URI through ``ObjectStoragePath``). None: ``[mpc] results_uri``, read when the task runs;
        empty: XCom only.
    :param results_conn_id: connection for ``results_uri`` on an object store.
    :param wait_for_result: wait for the output shares in this task first, as the ``result``
        sensor would; the task holds its worker slot meanwhile. None: unless sensors wait
        (``MPCSettings.waiting``; then a sensor must wait before this task).
    :param deferrable: with ``wait_for_result``, defer while the rendezvous is far (``MPCWaitingOperator``).
    """

    template_fields = (*MPCWaitingOperator.template_fields, "results_uri")
    stage = "result"
    ui_color = "#dff2d9"

    def __init__(
        self,
        *,
        results_uri: str | None = None,
        results_conn_id: str | None = None,
        wait_for_result: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.results_uri = results_uri
        self.results_conn_id = results_conn_id
        self.wait_for_result = wait_for_result

    def waits(self) -> bool:
        return waits_by_default() if self.wait_for_result is None else self.wait_for_result

    def run_stage(self, run: Any, context: Any, times: tuple[float, float] | None) -> dict:
        from mpc_federation import stages
        from mpc_federation.sharing import load_recombine

        # Waiting here, the reveal decides from the listing the wait went ahead on: nothing fetched
        # twice; and it loads what the recombination needs once the rendezvous is near.
        view = (
            wait_in_task(self, run, self.stage, context, times=times, when_near=lambda: load_recombine(run.program))
            if self.waits()
            else None
        )
        with final_errors():
            result = stages.reveal(run, view)
        for name, output in result["outputs"].items():
            for label, exact in zip(output["labels"], output["exact"]):
                self.log.info("%s[%s] = %s", name, label, exact)
        if self.results_root():
            self.log.info("Result record written to %s", self.write_copy(result))
        asset = result_asset(result["computation"])
        if asset in (self.outlets or []):
            context["outlet_events"][asset].extra = {
                "run": result["run"],
                "attempt": result["attempt"],
                "program": result["program"],
            }
        return result

    def results_root(self) -> str:
        """``results_uri``, or ``[mpc] results_uri`` (empty: no copy)."""
        from mpc_operators.settings import MPCSettings

        return MPCSettings.load(require_party=False).results_uri if self.results_uri is None else self.results_uri

    def write_copy(self, result: dict) -> str:
        """Write ``result`` under ``results_root()``; returns where."""
        from airflow.sdk import ObjectStoragePath

        from mpc_operators.settings import result_location

        root = self.results_root()
        if not root:
            raise ValueError("no results_uri to write the result record to")
        path = ObjectStoragePath(
            result_location(root, result["computation"], result["run"]), conn_id=self.results_conn_id
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2))
        return str(path)
