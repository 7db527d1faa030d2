"""The ``aggregate`` task: the party's Spark job, whose aggregate is the task's XCom.

:class:`MPCAggregateOperator` is a SparkSubmitOperator that runs the federation's aggregation job
and **returns** the aggregate document (XCom ``return_value``); the ``share`` task pulls it from
there. No other task reads a file this one wrote, and the aggregate is never left on disk:

* client deploy mode (the default: the driver runs in the task's process tree, on the Airflow
  worker): the job writes ``aggregate.json`` into a private temporary folder (mode 0700) of the
  worker; the task reads it back after spark-submit and removes the folder.
* cluster deploy mode (YARN, Kubernetes: the driver runs on a cluster node): the job writes to
  ``[mpc] aggregate_uri``/<computation>/<run>/<party>.json (an object store both can reach); the
  task reads it with Airflow's ObjectStoragePath and deletes it. Without ``aggregate_uri`` the
  task fails at once, naming the setting. (Spark standalone runs no Python driver in cluster mode.)

Where Spark runs is the ``spark_default`` connection's business (master, ``deploy-mode``,
``spark-binary``, ``queue`` in its extra), with the spec's ``aggregation.spark`` settings on top
(docs/spark.md): ``spark.cores.max`` 2 unless the spec says otherwise, so one party's job does
not take a whole shared cluster.

The job's input is ``join_uri([mpc] data_uri, aggregation.input)``: a local path or a URI
(``file://``, ``s3a://``, ``hdfs://``) passed to Spark unchanged. The shared job module
include/jobs/mpc_job.py (and mpc_oblivious.py for an oblivious run, mpc_arrow.py for the arrow
engine) goes with ``--py-files``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk.exceptions import AirflowFailException

from mpc_federation.builtins import builtin_path
from mpc_operators.settings import MPCSettings, join_uri
from mpc_operators.spark import SPARK_SECRET_CONN_ID, secret_properties

# The shared job modules, shipped with the project (include/jobs) or as the installed package's data.
JOB_MODULE = builtin_path("job", "mpc_job")
OBLIVIOUS_MODULE = builtin_path("job", "mpc_oblivious")
ARROW_MODULE = builtin_path("job", "mpc_arrow")
# The Spark settings of an oblivious local stage (the same as include/jobs/mpc_oblivious.py:
# SPARK_CONF, which the job also sets itself). spark.authenticate.secret is added at execution
# time from the party's connection mpc_spark_secret: never at parse time.
OBLIVIOUS_SPARK_CONF = {
    "spark.io.encryption.enabled": "true",
    "spark.network.crypto.enabled": "true",
    "spark.authenticate": "true",
    "spark.shuffle.compress": "false",
    "spark.sql.adaptive.enabled": "false",
}
BASE_SPARK_CONF = {"spark.ui.enabled": "false", "spark.sql.session.timeZone": "UTC"}
AGGREGATE_FILE = "aggregate.json"
_JOB_ERROR = re.compile(r"^[A-Za-z0-9_.\-]+: error: \S")  # mpc_job.report_error's line


class MPCAggregateOperator(SparkSubmitOperator):
    """Run the party's aggregation job with spark-submit and return its aggregate (see the module
    docstring). Every SparkSubmitOperator argument is accepted; ``application_args`` must not
    hold ``--output``: the task chooses where the job writes.

    :param computation: the federation's computation (names the cluster-mode output)
    :param party_id: this party's id (names the cluster-mode output)
    :param run_key: the run's key (templated); None: the key of the task's DAG run, as every
        party names it (``mpc_federation.layout.run_key``)
    :param oblivious: pass ``spark.authenticate.secret`` from ``secret_conn_id`` in a private
        properties file (docs/oblivious.md); the caller adds ``--oblivious`` and the conf
    :param secret_conn_id: connection whose password is the Spark authentication secret
    :param aggregate_uri: where a cluster-mode driver writes; None: ``[mpc] aggregate_uri``,
        read when the task runs
    """

    template_fields = (*SparkSubmitOperator.template_fields, "run_key")
    ui_color = "#f4e3c1"

    def __init__(
        self,
        *,
        computation: str,
        party_id: str,
        run_key: str | None = None,
        oblivious: bool = False,
        secret_conn_id: str = SPARK_SECRET_CONN_ID,
        aggregate_uri: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.computation = computation
        self.party_id = party_id
        self.run_key = run_key
        self.oblivious = oblivious
        self.secret_conn_id = secret_conn_id
        self.aggregate_uri = aggregate_uri

    # -- where the driver runs and writes ------------------------------------------------------
    def driver_is_remote(self) -> bool:
        """True when the driver runs on the cluster (deploy mode ``cluster``, from this task or the
        connection's ``deploy-mode``), so it cannot write into this worker's temporary folder."""
        return self._get_hook()._connection["deploy_mode"] == "cluster"

    def remote_output(self, context: Any = None) -> str:
        """``aggregate_uri/<computation>/<run>/<party>.json`` for a cluster-mode driver (the run:
        ``run_key``, or the key of the DAG run of ``context``).

        :raises AirflowFailException: no aggregate_uri is configured
        """
        root = self.aggregate_uri
        if root is None:
            root = MPCSettings.load(require_party=False).aggregate_uri
        if not root:
            raise AirflowFailException(
                "the aggregation job runs in cluster deploy mode (its driver is not on this worker), so it needs "
                "[mpc] aggregate_uri (AIRFLOW__MPC__AGGREGATE_URI): an object-store or shared URI that both the "
                "Spark driver and this Airflow worker can reach"
            )
        from mpc_federation.party import run_key_of

        return join_uri(root, f"{self.computation}/{self.run_key or run_key_of(context)}/{self.party_id}.json")

    # -- execution -------------------------------------------------------------------------------
    def execute(self, context: Any) -> dict:  # type: ignore[override]  # the aggregate is the XCom
        if "--output" in (self.application_args or []):
            raise AirflowFailException("application_args must not give --output: the aggregate task chooses it")
        remote = self.driver_is_remote()
        folder = None
        if remote:
            output = self.remote_output(context)
            _storage_path(output).unlink(missing_ok=True)  # never take an earlier try's aggregate for this one's
        else:
            folder = tempfile.mkdtemp(prefix="mpc-aggregate-")  # mode 0700: this task's user only
            output = os.path.join(folder, AGGREGATE_FILE)
        args_before, properties_before = self.application_args, self.properties_file
        try:
            self.application_args = [*(self.application_args or []), "--output", output]
            if self.oblivious:
                with secret_properties(self.secret_conn_id) as path:
                    self.properties_file = path
                    self._submit(context)
            else:
                self._submit(context)
            return _read_aggregate(output, remote)
        finally:
            self.application_args, self.properties_file = args_before, properties_before
            self._hook = None
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
            else:
                _storage_path(output).unlink(missing_ok=True)

    def _submit(self, context: Any) -> None:
        """spark-submit; on failure, the job's own error line (``<job>: error: ...``) is the
        exception's message, ahead of spark-submit's command line and output tail."""
        from airflow.sdk.exceptions import AirflowException

        self._hook = None  # the hook is built from the operator's fields: now with the output
        try:
            super().execute(context)
        except AirflowException as e:
            lines = list(getattr(self._hook, "_last_submit_log_lines", None) or []) + str(e).splitlines()
            job_errors = [line.strip() for line in lines if _JOB_ERROR.match(line.strip())]
            if not job_errors:
                raise
            raise AirflowException(f"{job_errors[-1]}\n(the aggregation job failed: {e})") from None


def _storage_path(uri: str):
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(uri if "://" in uri else Path(uri).absolute().as_uri())


def _read_aggregate(output: str, remote: bool) -> dict:
    """The aggregate the job wrote, as a dict.

    :raises AirflowFailException: nothing was written, or not a JSON object
    """
    try:
        if remote:
            text = _storage_path(output).read_text()
        else:
            with open(output) as f:
                text = f.read()
    except FileNotFoundError:
        raise AirflowFailException(f"the aggregation job ended without writing its aggregate ({output})") from None
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise AirflowFailException(f"the aggregation job wrote an aggregate that is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise AirflowFailException("the aggregation job wrote an aggregate that is not a JSON object")
    return doc


# -- the task of a federation DAG ----------------------------------------------------------------
def spark_arguments(spark) -> dict[str, Any]:
    """SparkSubmitOperator arguments of the spec's ``aggregation.spark`` (mpc_federation.spec.SparkSettings).

    Settings the spec leaves out are not passed, so the ``spark_default`` connection's (deploy-mode,
    spark-binary, queue) and the party's spark-defaults.conf apply.
    """
    conf = dict(BASE_SPARK_CONF)
    if spark.cores_max is not None:
        conf["spark.cores.max"] = str(spark.cores_max)
    if spark.python:
        conf["spark.pyspark.python"] = spark.python
    if spark.driver_python:
        conf["spark.pyspark.driver.python"] = spark.driver_python
    conf.update(spark.conf)
    args: dict[str, Any] = {"conf": conf}
    for name in ("executor_cores", "executor_memory", "driver_memory", "num_executors", "deploy_mode", "archives"):
        value = getattr(spark, name)
        if value is not None:
            args[name] = value
    return args


def input_uri(data_uri: str, name: str) -> str:
    """The job's input: ``name`` (the spec's ``aggregation.input``, relative) under the party's
    ``data_uri``, as a string Spark takes unchanged (``.`` is the root itself)."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return join_uri(data_uri, "/".join(parts)) if parts else data_uri


def aggregate_task(spec, party_id: str, settings: MPCSettings, *, on_failure=None) -> MPCAggregateOperator:
    """The ``aggregate`` task of ``party_id`` in the DAG of ``spec`` (call inside ``with dag:``).

    :param spec: the federation spec (mpc_federation.spec.FederationSpec)
    :param party_id: an input party of the spec
    :param settings: this party's ``[mpc]`` settings (``data_uri`` roots the job's input)
    :param on_failure: the task's on_failure_callback (withdraw from the run)
    :raises SpecError: the spec has no aggregation job
    """
    from mpc_federation.spec import SpecError

    if spec.aggregation_job is None:
        raise SpecError(str(spec.source), "aggregation.job", "input parties need a local aggregation job")
    # The declared data policy and columns (only when the spec declares them: other jobs keep their
    # own arguments). The spec allows only plain names and ids here, so Jinja leaves them as they are.
    job_args = []
    for name, value in (spec.data_policy or {}).items():
        job_args += [f"--{name.replace('_', '-')}", value]
    for role, column in (spec.aggregation_columns or {}).items():
        if column is not None:
            job_args += [f"--{role}-column", column]
    if (spec.aggregation_columns or {}).get("participant"):
        job_args += ["--participant-value", spec.aggregation_participants[party_id]]
    extra = spark_arguments(spec.aggregation_spark)
    py_files = [str(JOB_MODULE)]
    if spec.aggregation_oblivious:
        extra["conf"] = {**extra["conf"], **OBLIVIOUS_SPARK_CONF}
        py_files.append(str(OBLIVIOUS_MODULE))
        job_args.append("--oblivious")
    if spec.aggregation_engine != "spark":
        py_files.append(str(ARROW_MODULE))
        job_args += ["--engine", spec.aggregation_engine]
    return MPCAggregateOperator(
        task_id="aggregate",
        application=str(spec.aggregation_job),
        conn_id="spark_default",
        name=f"{spec.computation}-{party_id}",
        computation=spec.computation,
        party_id=party_id,
        oblivious=spec.aggregation_oblivious,
        py_files=",".join(py_files),
        application_args=[
            "--input",
            input_uri(settings.data_uri, spec.aggregation_input),
            "--party",
            party_id,
            "--months",
            "{{ mpc_months(dag_run) }}",
            *job_args,
        ],
        doc_md=AGGREGATE_DOC,
        on_failure_callback=on_failure,
        **extra,
    )


AGGREGATE_DOC = """Local aggregation with Spark (`spark_default` connection; `local[*]` unless changed; settings
in the spec's `aggregation.spark`, docs/spark.md). Reads this party's raw records at `[mpc] data_uri` and
returns the small aggregate as this task's XCom (it is not left on disk). **Nothing leaves the party.**
With `aggregation.oblivious: true` the job runs with `--oblivious` (padded keyed shuffle, Spark's
encryption; secret from connection `mpc_spark_secret`). With `aggregation.engine: arrow` Spark's tasks
read the files with pyarrow (`--engine arrow`)."""
