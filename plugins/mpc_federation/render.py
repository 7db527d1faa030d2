"""Render a federation spec into this party's Airflow DAG: only the tasks of its roles.

Runs at DAG parse time, so it reads local files and environment variables only: no
network, no Spark, no MPyC, no cryptography imports.

Party configuration (per deployment, never in the shared spec):
    MPC_PARTY_ID   this party's id in the specs (required)
    MPC_SPEC_DIR   folder of federation specs (default: include/federations of this project)
    MPC_DATA_DIR   this party's private input data root (default: $AIRFLOW_HOME/mpc-data)
    MPC_WORK_DIR   local aggregates, result records and the private ledger (default: $AIRFLOW_HOME/mpc-work)
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

from mpc_federation.spec import FederationSpec, SpecError, load_spec

PROJECT_DIR = Path(__file__).resolve().parents[2]
DEFAULT_SPEC_DIR = PROJECT_DIR / "include" / "federations"


class PartyConfigError(RuntimeError):
    """This deployment's party configuration is missing or does not match the specs."""


def dags_for_party(env: dict[str, str] | None = None) -> dict[str, object]:
    """Build {dag_id: DAG} for every federation in MPC_SPEC_DIR that this party belongs to."""
    env = os.environ if env is None else env
    party_id = env.get("MPC_PARTY_ID", "").strip()
    if not party_id:
        raise PartyConfigError("MPC_PARTY_ID is not set: each party's Airflow must say which party it is")
    spec_dir = Path(env.get("MPC_SPEC_DIR") or DEFAULT_SPEC_DIR)
    airflow_home = Path(env.get("AIRFLOW_HOME") or Path.home() / "airflow")
    data_dir = Path(env.get("MPC_DATA_DIR") or airflow_home / "mpc-data")
    work_dir = Path(env.get("MPC_WORK_DIR") or airflow_home / "mpc-work")
    specs = sorted(spec_dir.glob("*.yaml"))
    if not specs:
        raise PartyConfigError(f"no federation specs (*.yaml) in MPC_SPEC_DIR={spec_dir}")
    dags = {}
    for path in specs:
        spec = load_spec(path)
        if party_id in {p.id for p in spec.parties}:
            dag = build_dag(spec, party_id, data_dir=data_dir, work_dir=work_dir)
            dags[dag.dag_id] = dag
    if not dags:
        raise PartyConfigError(f"party {party_id!r} (MPC_PARTY_ID) is not a member of any federation in {spec_dir}")
    return dags


def build_dag(spec: FederationSpec, party_id: str, *, data_dir: Path, work_dir: Path):
    from airflow.sdk import DAG

    from mpc_operators import MPCComputeOperator, MPCRevealOperator, MPCShareOperator
    from sensors.coordination import MPCCoordinationSensor

    from functools import partial

    from mpc_operators.base import withdraw_on_failure

    me = spec.party(party_id)
    common = {"spec_path": str(spec.source), "party_id": party_id}
    withdraw = partial(withdraw_on_failure, str(spec.source), party_id)
    run_dir = f"{work_dir}/{spec.computation}/{{{{ mpc_run_key(dag_run) }}}}"
    dag = DAG(
        dag_id=spec.computation,
        description=spec.description or f"Federated MPC: {spec.computation}",
        schedule=spec.schedule,
        start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
        catchup=False,
        max_active_runs=1,
        tags=["mpc", spec.computation, *me.roles],
        default_args={"owner": party_id, "retries": 2, "retry_delay": timedelta(minutes=2)},
        user_defined_macros={"mpc_run_key": _run_key_macro, "mpc_months": _months_macro(spec)},
        doc_md=_dag_doc(spec, party_id),
    )
    tasks = []
    with dag:
        if me.has("input"):
            tasks += [_aggregate_task(spec, party_id, data_dir, run_dir, withdraw),
                      MPCShareOperator(task_id="share", aggregate_path=f"{run_dir}/aggregate.json", doc_md=_SHARE_DOC,
                                       on_failure_callback=withdraw, **common)]
            if not me.has("compute"):  # a compute party is on its own roster's side of the table
                tasks.append(MPCCoordinationSensor(task_id="confirm_inclusion", stage="roster",
                                                   doc_md=_CONFIRM_INCLUSION_DOC, **common))
        if me.has("compute"):
            tasks += [MPCCoordinationSensor(task_id="wait_for_inputs", stage="inputs", doc_md=_WAIT_INPUTS_DOC,
                                            **common),
                      MPCComputeOperator(task_id="compute", ledger_dir=str(work_dir / "ledger"), doc_md=_COMPUTE_DOC,
                                         **common)]
        if me.has("recipient"):
            tasks += [MPCCoordinationSensor(task_id="wait_for_result", stage="result", doc_md=_WAIT_RESULT_DOC,
                                            **common),
                      MPCRevealOperator(task_id="reveal", results_dir=str(work_dir), doc_md=_REVEAL_DOC, **common)]
    # One chain per party: its own stages in order (a party that both shares and computes must
    # share first, or the federation would wait on itself).
    for upstream, downstream in zip(tasks, tasks[1:]):
        upstream >> downstream
    return dag


def _aggregate_task(spec: FederationSpec, party_id: str, data_dir: Path, run_dir: str, on_failure):
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    if spec.aggregation_job is None:
        raise SpecError(str(spec.source), "aggregation.job", "input parties need a local aggregation job")
    source = data_dir / spec.aggregation_input
    # The declared data policy and columns (only when the spec declares them: other jobs keep
    # their own arguments). The spec allows only plain names and ids here, so Jinja leaves them as they are.
    policy_args = []
    for name, value in (spec.data_policy or {}).items():
        policy_args += [f"--{name.replace('_', '-')}", value]
    for role, column in (spec.aggregation_columns or {}).items():
        if column is not None:
            policy_args += [f"--{role}-column", column]
    if (spec.aggregation_columns or {}).get("participant"):
        policy_args += ["--participant-value", spec.aggregation_participants[party_id]]
    operator, extra = SparkSubmitOperator, {"conf": {"spark.ui.enabled": "false", "spark.sql.session.timeZone": "UTC"}}
    if spec.aggregation_oblivious:
        operator, extra, policy_args = _oblivious_aggregate(extra["conf"], policy_args)
    return operator(
        task_id="aggregate",
        application=str(spec.aggregation_job),
        conn_id="spark_default",
        name=f"{spec.computation}-{party_id}",
        application_args=["--input", str(source), "--output", f"{run_dir}/aggregate.json",
                          "--party", party_id, "--months", "{{ mpc_months(dag_run) }}", *policy_args],
        doc_md=_AGGREGATE_DOC,
        on_failure_callback=on_failure,
        **extra,
    )


# The Spark settings of an oblivious local stage (the same as include/jobs/mpc_oblivious.py: SPARK_CONF,
# which the job also sets itself). spark.authenticate.secret is added at execution time by
# ObliviousSparkSubmitOperator from the party's connection mpc_spark_secret: never at parse time.
OBLIVIOUS_SPARK_CONF = {
    "spark.io.encryption.enabled": "true",
    "spark.network.crypto.enabled": "true",
    "spark.authenticate": "true",
    "spark.shuffle.compress": "false",
    "spark.sql.adaptive.enabled": "false",
}
OBLIVIOUS_MODULE = PROJECT_DIR / "include" / "jobs" / "mpc_oblivious.py"


def _oblivious_aggregate(conf: dict[str, str], job_args: list[str]):
    """(operator class, its extra arguments, job arguments) of an oblivious aggregate task
    (``aggregation.oblivious: true``; docs/oblivious.md)."""
    from mpc_operators.spark import ObliviousSparkSubmitOperator

    extra = {"conf": {**conf, **OBLIVIOUS_SPARK_CONF}, "py_files": str(OBLIVIOUS_MODULE)}
    return ObliviousSparkSubmitOperator, extra, [*job_args, "--oblivious"]


def _run_key_macro(dag_run) -> str:
    from mpc_federation.layout import run_key

    return run_key(dag_run.logical_date or dag_run.run_after)


def _months_macro(spec: FederationSpec):
    def months(dag_run) -> str:
        return ",".join(spec.months(dag_run.logical_date or dag_run.run_after))

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


_AGGREGATE_DOC = """Local aggregation with Spark (`spark_default` connection; `local[*]` unless changed).
Reads this party's raw records and writes one small aggregate file in the run's work folder.
**Nothing leaves the party.** With `aggregation.oblivious: true` in the spec the job runs with
`--oblivious` (padded keyed shuffle, Spark's encryption; secret from connection `mpc_spark_secret`)."""
_SHARE_DOC = """Checks the aggregate against the program's declared inputs and ranges, splits each value
into Shamir shares, and uploads one object per compute party, **encrypted to that party** and signed.
No single compute party (nor the bucket's operator) learns anything about the aggregate."""
_CONFIRM_INCLUSION_DOC = """Waits (in the triggerer) until the leader fixes the roster, then checks this party is on it.
Succeeds when it is; **skips** when the disclosure ledger fixed the roster of this period without it
(months already released over another roster: the reason is in the log); **fails naming the roster**
when this party shared before the roster was fixed and was left out (its shares were hidden from the
leader, or the leader broke the protocol). Reads verified, signed records with public keys only."""
_WAIT_INPUTS_DOC = """Waits (in the triggerer) until every input party has shared, or until the leader fixed the
roster. Fails at the deadline naming the parties that never showed; stops at once on an abort."""
_COMPUTE_DOC = """Runs this party's MPyC process with the other compute parties (mutual TLS when configured),
over the roster's shares. Publishes output shares encrypted to each recipient. **Sees only shares.**
Before publishing, records what it released in the disclosure ledger (the bucket, and a private copy
under `MPC_WORK_DIR/ledger`); units released before are withheld, and the task skips when nothing is
left to release."""
_WAIT_RESULT_DOC = """Waits until every compute party has published output shares for this recipient."""
_REVEAL_DOC = """Reconstructs the declared outputs from the compute parties' shares (checking they agree),
writes the result record and returns it as XCom. Only recipients have this task."""
