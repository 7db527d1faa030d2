"""MPCComputeOperator: run this compute party's share of the joint MPyC computation."""

from __future__ import annotations

from typing import Any

from mpc_operators.base import MPCWaitingOperator, final_errors, wait_in_task, waits_by_default


class MPCComputeOperator(MPCWaitingOperator):
    """Fix the roster (the leader publishes it, the others follow), decrypt this party's input
    shares, run the program in an MPyC subprocess with the other compute parties under
    wall-clock deadlines, and publish the output shares sealed to each recipient.

    :param connect_timeout: seconds for all compute parties to connect (default: spec's deadline).
    :param run_timeout: seconds for the whole MPC (default: spec's deadline).
    :param ledger_uri: this party's private disclosure-ledger folder (a local path or an
        object-storage URI): its own record of what it released, which the bucket's operator
        cannot hide. Put the task on a queue whose workers all reach it. None: ``[mpc]
        ledger_uri``, read when the task runs.
    :param wait_for_inputs: wait for the inputs in this task first, as the ``inputs`` sensor
        would: no hand-off from a sensor, the shares and done markers verified while waiting are
        not fetched again, and the MPyC process starts and connects once the rendezvous is near;
        the task holds its worker slot meanwhile. None: unless sensors wait
        (``MPCSettings.waiting``: ``[mpc] wait_in_task`` False, or near without a triggerer; then
        a sensor must wait before this task, or the leader would fix the roster from whoever had
        shared so far).
    :param deferrable: with ``wait_for_inputs``, defer while the rendezvous is far (``MPCWaitingOperator``).

    Skips (AirflowSkipException) when the disclosure ledger leaves nothing to release in this run.
    """

    template_fields = (*MPCWaitingOperator.template_fields, "ledger_uri")
    stage = "inputs"

    ui_color = "#f2e2d9"

    def __init__(
        self,
        *,
        connect_timeout: float | None = None,
        run_timeout: float | None = None,
        ledger_uri: str | None = None,
        wait_for_inputs: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.ledger_uri = ledger_uri
        self.wait_for_inputs = wait_for_inputs
        self.connect_timeout = connect_timeout
        self.run_timeout = run_timeout

    def waits(self) -> bool:
        return waits_by_default() if self.wait_for_inputs is None else self.wait_for_inputs

    def ledger_dir(self) -> str:
        """``ledger_uri``, or ``[mpc] ledger_uri``: a compute party always keeps its private copy."""
        from mpc_operators.settings import MPCSettings

        return self.ledger_uri or MPCSettings.load(require_party=False).ledger_uri

    def run_stage(self, run: Any, context: Any, times: tuple[float, float] | None) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from mpc_federation import stages
        from mpc_federation.computing import EarlyStart
        from mpc_federation.ledger import NothingToRelease

        try:
            with EarlyStart(run) as early:
                # Waiting here, MPyC starts and connects while the last inputs come, and the
                # stage goes on with the listing the wait went ahead on.
                view = (
                    wait_in_task(self, run, self.stage, context, when_near=early, times=times) if self.waits() else None
                )
                with final_errors():
                    # The leader numbers MPC attempts by its own try, so every party's retry meets on a fresh one.
                    result = stages.compute(
                        run,
                        attempt=context["ti"].try_number,
                        connect_timeout=self.connect_timeout,
                        run_timeout=self.run_timeout,
                        ledger_dir=self.ledger_dir(),
                        process=early.take(),
                        view=view,
                    )
        except NothingToRelease as exc:
            raise AirflowSkipException(str(exc)) from None
        self.log.info(
            "Run %s attempt %s: computed over %s in %s",
            result["run"],
            result["attempt"],
            result["roster"],
            result["seconds"],
        )
        return result

    def on_kill(self) -> None:
        """The task was killed: stop this party's MPyC process (its working folder, with the TLS key
        and the shares, is removed by the next run if this process dies before cleaning up)."""
        from mpc_federation.launcher import stop_all

        stop_all()
