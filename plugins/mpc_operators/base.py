"""What every MPC operator shares: the spec and party it acts for, and its connections."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow.configuration import conf
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from mpc_operators.hooks import COORDINATION_CONN_ID
from mpc_operators.keys import KEYS_CONN_ID
from mpc_operators.links import MPCRunLink

if TYPE_CHECKING:
    from mpc_federation.channel import Verified

# A deferred wait's own timeout comes this long after its deadline: the trigger ends the wait at the
# deadline itself, naming who never showed; this holds the deadline even when no triggerer runs.
DEFERRAL_GRACE_SECONDS = 60.0


class MPCBaseOperator(BaseOperator):
    """Base of the MPC operators.

    :param spec_path: path of the federation spec YAML (identical at every party).
    :param party_id: this party's id in the spec.
    :param coordination_conn_id: connection to the coordination bucket (S3 API).
    :param keys_conn_id: connection whose password holds this party's private keys.
    """

    template_fields: Sequence[str] = ("spec_path", "party_id")
    ui_color = "#e8e0f7"
    operator_extra_links = (MPCRunLink(),)

    def __init__(
        self,
        *,
        spec_path: str,
        party_id: str,
        coordination_conn_id: str = COORDINATION_CONN_ID,
        keys_conn_id: str = KEYS_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.spec_path = spec_path
        self.party_id = party_id
        self.coordination_conn_id = coordination_conn_id
        self.keys_conn_id = keys_conn_id

    def party_run(self, context: Any):
        return open_party_run(self, context)


class MPCWaitingOperator(MPCBaseOperator):
    """An MPC operator that may first wait for its stage itself (``[mpc] wait_in_task``): with
    ``deferrable`` it defers while the rendezvous is far (``defer_while_far``) and is resumed in
    ``execute_complete``; either way it goes on with ``run_stage``.

    :param deferrable: when the task waits itself, defer to the triggerer while the rendezvous is
        far and wait in the task only once it is near (``[mpc] wait_in_task = near``): no worker
        slot held while the parties aggregate, and no hand-off between tasks when the last one
        publishes. Default: ``[operators] default_deferrable``.
    """

    stage: str  # what the task waits for: "inputs" or "result"

    def __init__(
        self, *, deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False), **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.deferrable = deferrable

    def waits(self) -> bool:
        """Whether this task waits for its stage itself."""
        raise NotImplementedError

    def run_stage(self, run: Any, context: Any, times: tuple[float, float] | None) -> dict:
        """Wait if ``waits()`` (``wait_in_task``, keeping ``times``), then do the stage."""
        raise NotImplementedError

    def execute(self, context: Any) -> dict:
        run = self.party_run(context)
        if self.waits() and self.deferrable:
            defer_while_far(self, run, self.stage, context)  # resumes in execute_complete
        return self.run_stage(run, context, None)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict:
        """Resumed by the trigger (the rendezvous is near, decided, or past its deadline): wait the
        rest here, by the deadline and cut-off the wait began with (in ``event``), then do the stage."""
        self.log.info("Resumed by the trigger: %s", event["status"])
        return self.run_stage(self.party_run(context), context, (event["deadline"], event["cutoff"]))


def waits_by_default() -> bool:
    """Whether a compute or reveal task given no ``wait_for_inputs`` / ``wait_for_result`` waits for
    its stage itself: unless sensors wait before it (``MPCSettings.waiting``), as in the DAGs
    ``federation_dag`` builds."""
    from mpc_operators.settings import MPCSettings

    return MPCSettings.load(require_party=False).waiting() != "sensors"


def open_party_run(task: Any, context: Any):
    """The PartyRun of an MPC task (operator or sensor), from its fields and connections."""
    return open_party_run_for(
        task.spec_path,
        task.party_id,
        context,
        keys_conn_id=task.keys_conn_id,
        coordination_conn_id=task.coordination_conn_id,
    )


def open_party_run_for(
    spec_path: str,
    party_id: str,
    context: Any,
    *,
    keys_conn_id: str | None = KEYS_CONN_ID,
    coordination_conn_id: str = COORDINATION_CONN_ID,
):
    """The PartyRun of ``party_id`` for the run of ``context``: the spec, this party's keys from
    ``keys_conn_id`` (None: a task that only reads, verifying with public keys) and the bucket
    through ``coordination_conn_id``."""
    from mpc_federation.layout import probe_key
    from mpc_federation.party import PartyRun, logical_date_of
    from mpc_federation.spec import load_spec
    from mpc_operators.hooks import CoordinationHook
    from mpc_operators.keys import PartyKeysHook
    from mpc_operators.settings import PartyConfigError

    with final_errors():
        spec = load_spec(spec_path)
        spec.party(party_id)  # fails naming the party if it is not a member
        keys = PartyKeysHook(keys_conn_id).get_keys() if keys_conn_id is not None else None
        if keys is not None and keys.party != party_id:
            raise PartyConfigError(f"connection {keys_conn_id!r} holds the keys of {keys.party!r}, not {party_id!r}")
        store = CoordinationHook(aws_conn_id=coordination_conn_id).store(
            spec.bucket, probe_key=probe_key(spec, party_id)
        )
        return PartyRun(spec, party_id, logical_date_of(context), keys, store)


def end_wait(run_key: str, stage: str, state: Any, log: Any) -> None:
    """What a decided wait (``layout.Readiness``) means for the task waiting for ``stage``: skip it,
    fail it naming the cause or the parties that never showed, or go ahead (logging who the
    leader goes ahead without, after the cut-off)."""
    from airflow.sdk.exceptions import AirflowSkipException

    if state.stop:
        raise AirflowFailException(f"run {run_key}: stopped waiting for {stage}: {state.stop}")
    if state.skip:
        raise AirflowSkipException(f"run {run_key}: {state.skip}")
    if not state.ready:
        raise AirflowFailException(
            f"run {run_key}: deadline passed waiting for {stage}; "
            f"parties that never showed: {', '.join(state.missing) or '(none listed)'}"
        )
    if state.missing:
        log.warning("Going ahead after the cut-off without: %s", ", ".join(state.missing))


def wait_in_task(
    task: Any, run: Any, stage: str, context: Any, *, when_near: Any = None, times: tuple[float, float] | None = None
) -> Verified | None:
    """Wait for ``stage`` in the running task from now for the spec's deadline of the stage, then
    ``end_wait``: the wait the sensor would make, without handing over to another task (the task
    holds its worker slot meanwhile), and faster while the rendezvous is near
    (``waiting.TASK_NEAR_POLL_SECONDS``). Once it is near and the wait not yet decided,
    ``waiting.wait`` calls ``when_near`` and this checks that the store honours conditional
    writes, as the task's first write would. Returns the verified listing the wait went ahead on.

    :param times: (deadline, cutoff) in epoch seconds of the wait this task began before it
        deferred (``defer_while_far``): kept, so deferring extends neither. The resumed wait
        starts in a burst (``waiting.Waiter``).

    A retry waits with the cut-off passed: the first try already waited for stragglers, and the
    other compute parties' waits for the leader's roster (the ``connect`` deadline) must not run
    out meanwhile."""
    import time

    from mpc_federation import waiting

    now = time.time()
    deadline, cutoff = times or waiting.deadlines(run.spec, stage, now)
    if times is None and context["ti"].try_number > 1 and run.spec.cutoff is not None:
        cutoff = now

    def ahead() -> None:
        try:
            if when_near is not None:
                when_near()
        finally:
            # The check the task's first write makes (two PUTs, once per process), made while it
            # waits, with the quick client: an outage fails it at once, and the first write checks again.
            run.store.check_conditional_writes(patient=False)

    # Resumed by the trigger (``times``: only a trigger that hands over gives them): it handed over
    # on news, so the wait goes on in a burst.
    state, view = waiting.wait(
        run,
        stage,
        deadline=deadline,
        cutoff=cutoff,
        logger=task.log,
        when_near=ahead,
        near_poll_interval=waiting.TASK_NEAR_POLL_SECONDS,
        burst=times is not None,
    )
    end_wait(run.reader.run, stage, state, task.log)
    return view


def defer_while_far(task: Any, run: Any, stage: str, context: Any) -> None:
    """``[mpc] wait_in_task = near``: while the rendezvous for ``stage`` is far
    (``waiting.rendezvous_near``: parties still aggregating), defer ``task`` to the coordination
    trigger, so it holds no worker slot; the trigger resumes it in ``execute_complete`` once the
    rendezvous is near (or decided, or its deadline passed), with an event that carries the wait's
    ``deadline`` and ``cutoff``, and the task waits the rest itself by them (``wait_in_task``).
    Returns at once when the rendezvous is near or decided already, and on a retry (which waits
    with the cut-off passed)."""
    import time

    from mpc_federation import stages, waiting
    from mpc_federation.stage_base import floor

    if context["ti"].try_number > 1:
        return
    deadline, cutoff = waiting.deadlines(run.spec, stage, time.time())
    try:
        view = run.reader.verified(patient=False)  # the whole run, as the trigger and the wait list it
    except Exception as exc:  # the trigger lists again, until the deadline
        task.log.warning("Listing the run's objects failed: %s", exc)
    else:
        state = stages.wait_state(run, stage, view, cutoff_passed=False)
        if state.ready or state.stop or state.skip or waiting.rendezvous_near(run.reader, view.keys, floor=floor(run)):
            return
    task.log.info("The rendezvous for %s is far: deferring until it is near", stage)
    defer_wait(task, run, stage, deadline, cutoff, hand_over_when_near=True)


def defer_wait(
    task: Any,
    run: Any,
    stage: str,
    deadline: float,
    cutoff: float,
    *,
    poll_interval: float | None = None,
    fast_poll_interval: float | None = None,
    hand_over_when_near: bool = False,
) -> None:
    """Defer ``task`` (an MPC operator or the sensor) to a ``CoordinationTrigger`` waiting for
    ``stage`` until ``deadline``, to resume in ``execute_complete`` with its event. The deferral
    also times out a little after the deadline (``DEFERRAL_GRACE_SECONDS``), so the deadline holds
    even when no triggerer runs.

    :param poll_interval: the trigger's listing pace while the rendezvous is far, and
        ``fast_poll_interval`` while it is near (default: ``mpc_federation.waiting``'s).
    :param hand_over_when_near: the trigger ends once the rendezvous is near, not only once decided.
    """
    import time
    from datetime import timedelta

    from mpc_federation import waiting
    from mpc_operators.sensor import coordination_trigger_class

    poll = waiting.POLL_SECONDS if poll_interval is None else poll_interval
    trigger = coordination_trigger_class()(
        spec_path=task.spec_path,
        party_id=task.party_id,
        run=run.reader.run,
        stage=stage,
        coordination_conn_id=task.coordination_conn_id,
        deadline=deadline,
        cutoff=cutoff,
        poll_interval=poll,
        fast_poll_interval=min(waiting.FAST_POLL_SECONDS if fast_poll_interval is None else fast_poll_interval, poll),
        hand_over_when_near=hand_over_when_near,
    )
    timeout = timedelta(seconds=max(1.0, deadline - time.time()) + DEFERRAL_GRACE_SECONDS)
    task.defer(trigger=trigger, method_name="execute_complete", timeout=timeout)


@contextmanager
def final_errors():
    """Errors that a retry cannot fix (bad input, bad spec, tampered objects, this party's missing or
    wrong configuration) fail the task at once, rather than after its retries while the others wait."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    from mpc_federation.envelope import IntegrityError
    from mpc_federation.programs import ProgramError
    from mpc_federation.sharing import ReconstructionError
    from mpc_federation.spec import SpecError
    from mpc_federation.stages import StageError
    from mpc_operators.settings import PartyConfigError

    final = (SpecError, ProgramError, IntegrityError, ReconstructionError, StageError, PermissionError)
    try:
        yield
    except (*final, PartyConfigError, AirflowNotFoundException) as exc:
        raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc


def withdraw_on_failure(spec_path: str, party_id: str, context: Any) -> None:
    """on_failure_callback of an input party's tasks: publish a signed withdrawal, so the compute
    parties stop waiting for this party (and go ahead without it if the floor still holds).

    The bucket gets a code and the task id only (``mpc_federation.reasons``): the error may quote
    this party's data (a failed range check names the value), so it stays in the local task log.
    """
    from mpc_federation import reasons, stages

    exc = context.get("exception")
    task_id = context["task_instance"].task_id
    log = context["task_instance"].log
    task = context.get("task")  # its connections, when the task names its own
    conns = {
        name: getattr(task, name)
        for name in ("coordination_conn_id", "keys_conn_id")
        if isinstance(getattr(task, name, None), str)
    }
    code = reasons.withdrawal_code(task_id, exc)
    log.error(
        "Withdrawing %s from the run: the bucket gets the code %r only; the error stays in this log: %s: %s",
        party_id,
        code,
        type(exc).__name__ if exc else "unknown error",
        exc,
    )
    try:
        run = open_party_run_for(spec_path, party_id, context, **conns)
        stages.withdraw(run, code, task_id)
    except Exception as err:  # the failure itself is what matters; the withdrawal is a courtesy
        log.warning("Could not publish the withdrawal: %s", err)
