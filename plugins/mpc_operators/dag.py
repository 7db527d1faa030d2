"""A party's DAG from a federation spec: only the tasks of its roles.

A user writes, in their own DAG file::

    from mpc_operators.dag import federation_dag

    dag = federation_dag("include/federations/taxi_hhi.yaml", default_args={"retries": 3})

and the shipped ``dags/mpc_federations.py`` builds one DAG per federation this party belongs to
with :func:`party_dags`. The party's own configuration is the ``[mpc]`` section
(``mpc_operators.settings``). Runs at DAG parse time, so it reads local files and Airflow's
configuration only: no network, no Spark, no MPyC, no cryptography imports.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from mpc_federation.spec import FederationSpec, Party, load_spec, party_specs
from mpc_operators.settings import MPCSettings, PartyConfigError


def party_dags(settings: MPCSettings | None = None, *, reports: bool = True, **dag_kwargs: Any) -> dict[str, Any]:
    """{dag_id: DAG} for every federation in ``[mpc] spec_dir`` that this party belongs to, and for
    each one it receives results of, its report DAG scheduled on the result asset
    (``mpc_operators.reports``).

    :param settings: this party's settings (default: ``MPCSettings.load()``).
    :param reports: add the report DAGs of a recipient.
    :param dag_kwargs: DAG arguments for every federation DAG (see :func:`federation_dag`).
    """
    from mpc_operators.reports import report_dag

    settings = settings or MPCSettings.load()
    if not any(settings.spec_dir.glob("*.yaml")):
        raise PartyConfigError(f"no federation specs (*.yaml) in [mpc] spec_dir = {settings.spec_dir}")
    specs = party_specs(settings.spec_dir, settings.party_id)
    if not specs:
        raise PartyConfigError(
            f"party {settings.party_id!r} ([mpc] party_id) is not a member of any federation in {settings.spec_dir}"
        )
    dags = {spec.computation: federation_dag(spec, settings=settings, **dag_kwargs) for spec in specs.values()}
    if reports:
        for spec in specs.values():
            if spec.party(settings.party_id).has("recipient"):
                dags[f"{spec.computation}_report"] = report_dag(spec.computation)
    return dags


def federation_dag(
    spec: FederationSpec | str | Path,
    *,
    party_id: str | None = None,
    settings: MPCSettings | None = None,
    **dag_kwargs: Any,
):
    """This party's DAG of one federation: aggregate and share (input parties), wait and compute
    (compute parties), wait and reveal (recipients), chained in that order.

    :param spec: the federation spec, or the path of its YAML file.
    :param party_id: this party (default: ``[mpc] party_id``).
    :param settings: this party's settings (default: ``MPCSettings.load()``).
    :param dag_kwargs: passed to ``DAG`` (``start_date``, ``tags``, ``default_args``,
        ``max_active_runs``, ...), over the defaults taken from the spec. The DAG id is always the
        spec's ``computation`` and the schedule the spec's (or None: runs triggered by hand, with
        the logical date the other parties use): every party names the run by them.
    """
    from airflow.sdk import DAG

    spec = spec if isinstance(spec, FederationSpec) else load_spec(spec)
    settings = settings or MPCSettings.load(require_party=party_id is None)
    party_id = party_id or settings.party_id
    if dag_kwargs.get("dag_id", spec.computation) != spec.computation:
        raise ValueError(
            f"the DAG id of a federation is its computation {spec.computation!r}, not "
            f"{dag_kwargs['dag_id']!r}: every party names the run by it"
        )
    schedule = dag_kwargs.get("schedule", spec.schedule)
    if schedule is not None and schedule != spec.schedule:
        raise ValueError(
            f"the schedule of federation {spec.computation!r} is its spec's {spec.schedule!r} (or None, "
            f"for runs triggered by hand), not {schedule!r}: a run is named by its logical date, so a party "
            "on another schedule would never meet the others"
        )
    me = spec.party(party_id)
    dag = DAG(**_dag_arguments(spec, party_id, me.roles, dag_kwargs))
    with dag:
        tasks = _party_tasks(spec, me, settings)
    # One chain per party: its own stages in order (a party that both shares and computes must
    # share first, or the federation would wait on itself).
    for upstream, downstream in zip(tasks, tasks[1:]):
        upstream >> downstream
    return dag


def _dag_arguments(spec: FederationSpec, party_id: str, roles, dag_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The ``DAG`` arguments: the defaults taken from the spec, under the caller's ``dag_kwargs``
    (``default_args`` and ``user_defined_macros`` merged key by key, the ``mpc_months`` macro ours)."""
    defaults: dict[str, Any] = {
        "dag_id": spec.computation,
        "description": spec.description or f"Federated MPC: {spec.computation}",
        "schedule": spec.schedule,
        "start_date": datetime(2024, 1, 1, tzinfo=UTC),
        "catchup": False,
        "max_active_runs": 1,
        "tags": ["mpc", spec.computation, *roles],
        "default_args": {"owner": party_id, "retries": 2, "retry_delay": timedelta(minutes=2)},
        "doc_md": _dag_doc(spec, party_id),
    }
    arguments = {**defaults, **dag_kwargs}
    arguments["default_args"] = {**defaults["default_args"], **dag_kwargs.get("default_args", {})}
    arguments["user_defined_macros"] = {
        **dag_kwargs.get("user_defined_macros", {}),
        "mpc_months": _months_macro(spec),
    }
    return arguments


def _party_tasks(spec: FederationSpec, me: Party, settings: MPCSettings) -> list:
    """This party's tasks in the order of its stages (made inside the DAG's ``with`` block)."""
    from mpc_operators.base import withdraw_on_failure
    from mpc_operators.sensor import coordination_sensor_class

    sensor = coordination_sensor_class()  # sensors or mpc_sensors: mpc_operators/sensor.py
    party_id = me.id
    common: dict[str, Any] = {"spec_path": str(spec.source), "party_id": party_id}
    tasks = []
    if me.has("input"):
        withdraw = partial(withdraw_on_failure, str(spec.source), party_id)
        tasks += _input_tasks(spec, party_id, settings, sensor, common, withdraw, compute=me.has("compute"))
    if me.has("compute"):
        tasks += _compute_tasks(settings, sensor, common)
    if me.has("recipient"):
        tasks += _recipient_tasks(spec, settings, sensor, common)
    return tasks


def _input_tasks(
    spec: FederationSpec,
    party_id: str,
    settings: MPCSettings,
    sensor: Any,
    common: dict[str, Any],
    withdraw: Any,
    *,
    compute: bool,
) -> list:
    """Aggregate and share, then (a party that does not compute) confirm it is on the roster."""
    from mpc_operators import MPCShareOperator
    from mpc_operators.aggregate import aggregate_task

    tasks = [
        aggregate_task(spec, party_id, settings, on_failure=withdraw),
        MPCShareOperator(task_id="share", doc_md=_SHARE_DOC, on_failure_callback=withdraw, **common),
    ]
    if not compute:  # a compute party is on its own roster's side of the table
        tasks.append(sensor(task_id="confirm_inclusion", stage="roster", doc_md=_CONFIRM_INCLUSION_DOC, **common))
    return tasks


def _compute_tasks(settings: MPCSettings, sensor: Any, common: dict[str, Any]) -> list:
    """Wait for the inputs, then compute (on ``[mpc] compute_queue`` if set); ``[mpc]
    wait_in_task`` says who waits (``_waiting``)."""
    from mpc_operators import MPCComputeOperator

    queue: dict[str, Any] = {"queue": settings.compute_queue} if settings.compute_queue else {}
    waits, in_task, deferrable = _waiting(settings, sensor, "wait_for_inputs", "inputs", _WAIT_INPUTS_DOC, common)
    return [
        *waits,
        MPCComputeOperator(
            task_id="compute",
            ledger_uri=settings.ledger_uri,
            wait_for_inputs=in_task,
            deferrable=deferrable,
            doc_md=_COMPUTE_DOC,
            **queue,
            **common,
        ),
    ]


def _recipient_tasks(spec: FederationSpec, settings: MPCSettings, sensor: Any, common: dict[str, Any]) -> list:
    """Wait for the output shares, then reveal (an update of the result asset); ``[mpc]
    wait_in_task`` says who waits (``_waiting``)."""
    from mpc_operators import MPCRevealOperator
    from mpc_operators.reveal import result_asset

    waits, in_task, deferrable = _waiting(settings, sensor, "wait_for_result", "result", _WAIT_RESULT_DOC, common)
    return [
        *waits,
        MPCRevealOperator(
            task_id="reveal",
            results_uri=settings.results_uri or None,
            wait_for_result=in_task,
            deferrable=deferrable,
            outlets=[result_asset(spec.computation)],
            doc_md=_REVEAL_DOC,
            **common,
        ),
    ]


def _waiting(
    settings: MPCSettings, sensor: Any, task_id: str, stage: str, doc: str, common: dict[str, Any]
) -> tuple[list, bool, bool]:
    """Who waits for ``stage`` (``[mpc] wait_in_task``): the sensor tasks (made here, before the
    task that follows, so the DAG lists the tasks in their order), whether the following task
    waits itself, and whether it defers while the rendezvous is far.

    - ``near``: no sensor; the task defers while the rendezvous is far, then waits itself. In an
      Airflow that does not defer (``[operators] default_deferrable`` False: no triggerer), as
      ``sensors``: a sensor that waits with public keys only, rather than a task that holds this
      party's keys for the whole night;
    - ``sensors``: the sensor waits until the stage is ready, the task does not wait;
    - ``tasks``: no sensor; the task waits throughout.
    """
    mode = settings.waiting()
    if mode == "sensors":
        return [sensor(task_id=task_id, stage=stage, doc_md=doc, **common)], False, False
    return [], True, mode == "near"


def _months_macro(spec: FederationSpec):
    def months(dag_run) -> str:
        from mpc_federation.party import logical_date_of

        return ",".join(spec.months(logical_date_of({"logical_date": dag_run.logical_date, "dag_run": dag_run})))

    return months


def _dag_doc(spec: FederationSpec, party_id: str) -> str:
    rows = "\n".join(f"| {p.id} | {', '.join(p.roles)} |" for p in spec.parties)
    return f"""### {spec.computation}: federated MPC, seen from **{party_id}**
{spec.description}

Every night each party aggregates its own data locally, secret-shares the small aggregate to the
compute parties, and the compute parties run the program `{spec.program_file.name}` in MPyC.
Only recipients learn the declared outputs. Your raw data and your aggregate never leave this
Airflow; only encrypted Shamir shares and signed progress records go to the bucket
`{spec.bucket}` under `{spec.prefix}/{spec.computation}/`.

| party | roles |
|---|---|
{rows}

Threshold t = {spec.threshold} of {len(spec.compute_parties)} compute parties (honest majority).
"""


_SHARE_DOC = """Takes the local aggregate from the `aggregate` task's XCom, checks it against the program's
declared inputs and ranges, splits each value into Shamir shares, and uploads one object per compute
party, **encrypted to that party** and signed.
No single compute party (nor the bucket's operator) learns anything about the aggregate."""
_CONFIRM_INCLUSION_DOC = """Waits (in the triggerer) until the leader fixes the roster, then checks this party is on it.
Succeeds when it is; **skips** when the disclosure ledger fixed the roster of this period without it
(months already released over another roster: the reason is in the log); **fails naming the roster**
when this party shared before the roster was fixed and was left out (its shares were hidden from the
leader, or the leader broke the protocol). Reads verified, signed records with public keys only."""
_WAIT_INPUTS_DOC = """Waits (in the triggerer) until every input party has shared, or until the leader fixed the
roster. Fails at the deadline naming the parties that never showed; stops at once on an abort."""
_COMPUTE_DOC = """Waits for the inputs, unless a `wait_for_inputs` sensor did (`[mpc] wait_in_task`; with `near`,
deferred in the triggerer while the rendezvous is far, then here, starting MPyC ahead). Then runs
this party's MPyC process with the other compute parties (over mutual TLS), over the
roster's shares. Publishes output shares encrypted to each recipient. **Sees only shares.**
Before publishing, records what it released in the disclosure ledger (the bucket, and a private copy
at `[mpc] ledger_uri`); units released before are withheld, and the task skips when nothing is
left to release."""
_WAIT_RESULT_DOC = """Waits until every compute party has published output shares for this recipient."""
_REVEAL_DOC = """Waits for the output shares, unless a `wait_for_result` sensor did (`[mpc] wait_in_task`; with
`near`, deferred in the triggerer while the rendezvous is far, then here). Then reconstructs the
declared outputs from the compute parties' shares (checking they agree), returns the result
record as XCom (and emits it as an asset event; a copy goes to `[mpc] results_uri` when set).
Only recipients have this task."""
