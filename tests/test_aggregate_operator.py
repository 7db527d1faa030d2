"""The aggregate task: MPCAggregateOperator and aggregate_task.

Without Spark: the task's arguments (input URIs passed unchanged, the spec's ``aggregation.spark``
settings and the ``spark_default`` connection's on the spark-submit command line), the spec's
checks, the cluster-mode error without ``[mpc] aggregate_uri``. With the real spark-submit
(local[2]): the aggregate returned as the task's value and left nowhere on disk, in client mode
and through object storage as a cluster-mode driver writes it. tests/test_spark_cluster.py runs it
against a Spark standalone cluster.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import stat
import sys
from pathlib import Path

import pytest
import yaml
from conftest import party_settings, raw_template

from mpc_federation.spec import SpecError, load_spec
from mpc_operators.settings import MPCSettings

REPO = Path(__file__).resolve().parents[1]
TAXI = REPO / "include" / "federations" / "taxi_hhi.yaml"
PAY = REPO / "include" / "federations" / "pay_equity.yaml"
JOBS = REPO / "include" / "jobs"
BIN = REPO / ".venv" / "bin"
SECRET = "s3cr3t-Spark-auth-0123456789abcdef"
MONTHS = ["2024-01", "2024-02", "2024-03"]


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


taxi = _load(REPO / "include" / "datagen" / "taxi_trips.py", "taxi_trips_aggop")
job = _load(JOBS / "taxi_revenue.py", "taxi_revenue_aggop")
mpc_job = _load(JOBS / "mpc_job.py", "mpc_job_aggop")


def load(tmp_path: Path, raw: dict, name: str = "spec.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_spec(path)


def settings(data_uri: str = "/data", aggregate_uri: str = "") -> MPCSettings:
    return party_settings(party_id="company_b", data_uri=data_uri, aggregate_uri=aggregate_uri)


def spark_connection(monkeypatch, host: str = "local[2]", **extra) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_DEFAULT", json.dumps({"conn_type": "spark", "host": host, "extra": extra}))


def command(task) -> list[str]:
    return task._get_hook()._build_spark_submit_command(task.application)


def conf_of(cmd: list[str]) -> dict[str, str]:
    return dict(cmd[i + 1].split("=", 1) for i, part in enumerate(cmd) if part == "--conf")


# -- the task's arguments ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "data_uri, name, expected",
    [
        ("/srv/mpc-data", "trips", "/srv/mpc-data/trips"),
        ("/srv/mpc-data/", "./trips/2024", "/srv/mpc-data/trips/2024"),
        ("file:///srv/mpc-data", "trips", "file:///srv/mpc-data/trips"),
        ("s3a://party-bucket/raw", "trips", "s3a://party-bucket/raw/trips"),
        ("hdfs://nn:8020/user/mpc", "trips", "hdfs://nn:8020/user/mpc/trips"),
        ("s3a://party-bucket/raw", ".", "s3a://party-bucket/raw"),
    ],
)
def test_input_uri_is_joined_without_pathlib(data_uri, name, expected):
    from mpc_operators.aggregate import input_uri

    assert input_uri(data_uri, name) == expected


@pytest.mark.parametrize("data_uri", ["s3a://party-bucket/raw", "hdfs://nn:8020/user/mpc", "file:///srv/data"])
def test_aggregate_task_passes_the_input_uri_unchanged(tmp_path, monkeypatch, data_uri):
    from mpc_operators.aggregate import JOB_MODULE, MPCAggregateOperator, aggregate_task

    spark_connection(monkeypatch)
    raw = raw_template(TAXI)
    raw["aggregation"]["policy"]["negative_amounts"] = "drop"
    task = aggregate_task(load(tmp_path, raw), "company_b", settings(data_uri), on_failure=None)
    assert isinstance(task, MPCAggregateOperator)
    assert task.task_id == "aggregate" and task.computation == "taxi_hhi" and task.party_id == "company_b"
    assert task.application == str(JOBS / "taxi_revenue.py") and task.py_files == str(JOB_MODULE)
    assert task.application_args == [
        "--input",
        f"{data_uri}/trips",
        "--party",
        "company_b",
        "--months",
        "{{ mpc_months(dag_run) }}",
        "--negative-amounts",
        "drop",
        "--null-amounts",
        "drop",
        "--outside-period",
        "ignore",
        "--revenue-column",
        "fare_amount",
        "--time-column",
        "tpep_pickup_datetime",
    ]
    assert task.run_key is None and not task.oblivious  # the DAG run's key, taken when the task runs
    cmd = command(task)
    assert cmd[cmd.index("--input") + 1] == f"{data_uri}/trips"  # what spark-submit gets, unchanged
    assert "--output" not in cmd  # the task chooses it when it runs
    # The job accepts exactly these arguments, plus the --output the task adds.
    args = job.parse_args([*task.application_args, "--output", "x.json"])
    assert args.input == f"{data_uri}/trips" and args.negative_amounts == "drop"


def test_default_spark_settings(tmp_path, monkeypatch):
    from mpc_operators.aggregate import aggregate_task

    spark_connection(monkeypatch)
    task = aggregate_task(load(tmp_path, raw_template(TAXI)), "company_a", settings(), on_failure=None)
    cmd = command(task)
    assert conf_of(cmd) == {"spark.ui.enabled": "false", "spark.sql.session.timeZone": "UTC", "spark.cores.max": "2"}
    for flag in (
        "--executor-memory",
        "--executor-cores",
        "--driver-memory",
        "--num-executors",
        "--archives",
        "--deploy-mode",
        "--queue",
    ):
        assert flag not in cmd
    assert cmd[:3] == ["spark-submit", "--master", "local[2]"]


def test_spec_spark_settings_reach_spark_submit(tmp_path, monkeypatch):
    from mpc_operators.aggregate import aggregate_task

    spark_connection(monkeypatch, host="yarn")
    raw = raw_template(PAY)
    raw["aggregation"]["spark"] = {
        "cores_max": 6,
        "executor_cores": 2,
        "executor_memory": "3g",
        "driver_memory": "1g",
        "num_executors": 3,
        "deploy_mode": "cluster",
        "python": "./environment/bin/python",
        "driver_python": "python3",
        "archives": "s3a://tools/mpc-env.tar.gz#environment",
        "conf": {
            "spark.executor.memoryOverhead": "512m",
            "spark.dynamicAllocation.enabled": False,
            "spark.sql.shuffle.partitions": 8,
        },
    }
    spec = load(tmp_path, raw)
    party = next(p.id for p in spec.input_parties)
    cmd = command(aggregate_task(spec, party, settings(), on_failure=None))
    assert conf_of(cmd) == {
        "spark.ui.enabled": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.cores.max": "6",
        "spark.pyspark.python": "./environment/bin/python",
        "spark.pyspark.driver.python": "python3",
        "spark.executor.memoryOverhead": "512m",
        "spark.dynamicAllocation.enabled": "false",
        "spark.sql.shuffle.partitions": "8",
    }
    for flag, value in [
        ("--executor-cores", "2"),
        ("--executor-memory", "3g"),
        ("--driver-memory", "1g"),
        ("--num-executors", "3"),
        ("--deploy-mode", "cluster"),
        ("--archives", "s3a://tools/mpc-env.tar.gz#environment"),
    ]:
        assert cmd[cmd.index(flag) + 1] == value
    assert (
        raw_template(PAY) != raw
        and spec.raw["aggregation"]["spark"]["conf"]["spark.dynamicAllocation.enabled"] is False
    )


def test_no_core_limit_when_the_spec_says_null(tmp_path, monkeypatch):
    from mpc_operators.aggregate import aggregate_task

    spark_connection(monkeypatch)
    raw = raw_template(TAXI)
    raw["aggregation"]["spark"] = {"cores_max": None}
    cmd = command(aggregate_task(load(tmp_path, raw), "company_a", settings(), on_failure=None))
    assert "spark.cores.max" not in conf_of(cmd)


def test_the_connections_own_settings_are_honoured(tmp_path, monkeypatch):
    """deploy-mode, spark-binary and queue in the spark_default connection's extra; the spec's
    deploy_mode, when given, wins (as any SparkSubmitOperator argument does)."""
    from mpc_operators.aggregate import aggregate_task

    spark_connection(
        monkeypatch, host="yarn", **{"deploy-mode": "cluster", "spark-binary": "spark3-submit", "queue": "mpc"}
    )
    raw = raw_template(TAXI)
    task = aggregate_task(load(tmp_path, raw, "a.yaml"), "company_a", settings(), on_failure=None)
    cmd = command(task)
    assert cmd[0] == "spark3-submit" and cmd[cmd.index("--queue") + 1] == "mpc"
    assert cmd[cmd.index("--deploy-mode") + 1] == "cluster" and task.driver_is_remote()
    raw["aggregation"]["spark"] = {"deploy_mode": "client"}
    task = aggregate_task(load(tmp_path, raw, "b.yaml"), "company_a", settings(), on_failure=None)
    assert command(task)[command(task).index("--deploy-mode") + 1] == "client" and not task.driver_is_remote()


@pytest.mark.parametrize(
    "spark, field, words",
    [
        ("two", "aggregation.spark", "must be a mapping"),
        ({"cores": 2}, "aggregation.spark.cores", "unknown field"),
        ({"cores_max": 0}, "aggregation.spark.cores_max", "positive integer"),
        ({"cores_max": "2"}, "aggregation.spark.cores_max", "positive integer"),
        ({"executor_cores": True}, "aggregation.spark.executor_cores", "positive integer"),
        ({"executor_memory": "2 GB"}, "aggregation.spark.executor_memory", "like 2g"),
        ({"driver_memory": 2}, "aggregation.spark.driver_memory", "like 2g"),
        ({"deploy_mode": "yarn"}, "aggregation.spark.deploy_mode", "client or cluster"),
        ({"conf": ["spark.x"]}, "aggregation.spark.conf", "must be a mapping"),
        ({"conf": {"executor.memory": "1g"}}, "aggregation.spark.conf.executor.memory", "spark.*"),
        (
            {"conf": {"spark.authenticate.secret": "x" * 20}},
            "aggregation.spark.conf.spark.authenticate.secret",
            "not by the spec",
        ),
        ({"conf": {"spark.master": "local"}}, "aggregation.spark.conf.spark.master", "not by the spec"),
        ({"conf": {"spark.x": {"a": 1}}}, "aggregation.spark.conf.spark.x", "string or number"),
        ({"python": "my python"}, "aggregation.spark.python", "without spaces"),
    ],
)
def test_spark_settings_are_checked(tmp_path, spark, field, words):
    raw = raw_template(TAXI)
    raw["aggregation"]["spark"] = spark
    with pytest.raises(SpecError) as info:
        load(tmp_path, raw)
    assert info.value.field_path == field and words in str(info.value)


def test_spark_settings_are_part_of_the_spec_hash(tmp_path):
    raw = raw_template(TAXI)
    more = copy.deepcopy(raw)
    more["aggregation"]["spark"] = {"cores_max": 4}
    plain, four = load(tmp_path, raw, "a.yaml"), load(tmp_path, more, "b.yaml")
    assert plain.aggregation_spark.cores_max == 2 and four.aggregation_spark.cores_max == 4
    assert plain.spec_hash != four.spec_hash


def test_oblivious_task(tmp_path, monkeypatch):
    from mpc_operators.aggregate import JOB_MODULE, OBLIVIOUS_MODULE, OBLIVIOUS_SPARK_CONF, aggregate_task

    oblivious = _load(JOBS / "mpc_oblivious.py", "mpc_oblivious_aggop")
    assert OBLIVIOUS_SPARK_CONF == oblivious.SPARK_CONF
    raw = raw_template(TAXI)
    raw["aggregation"]["oblivious"] = True
    task = aggregate_task(load(tmp_path, raw), "company_a", settings(), on_failure=None)
    assert task.oblivious and task.secret_conn_id == "mpc_spark_secret" and task.properties_file is None
    assert task.application_args[-1] == "--oblivious"
    assert task.py_files == f"{JOB_MODULE},{OBLIVIOUS_MODULE}"
    assert {k: task.conf[k] for k in OBLIVIOUS_SPARK_CONF} == OBLIVIOUS_SPARK_CONF
    assert task.conf["spark.cores.max"] == "2" and not any("secret" in key for key in task.conf)


def test_aggregate_format_is_the_protocols():
    from mpc_federation.programs import AGGREGATE_FORMAT

    assert mpc_job.FORMAT == job.FORMAT == AGGREGATE_FORMAT


def test_a_dag_with_the_task(tmp_path, monkeypatch):
    """The task in a DAG whose macros name the run: its templates render to the job's arguments."""
    from datetime import UTC, datetime

    from airflow.sdk import DAG

    from mpc_operators.aggregate import aggregate_task

    spec = load(tmp_path, raw_template(TAXI))
    with DAG(
        "taxi_hhi",
        schedule=None,
        start_date=datetime(2024, 1, 1, tzinfo=UTC),
        user_defined_macros={"mpc_months": lambda run: "2024-01,2024-02"},  # no mpc_run_key needed
    ):
        task = aggregate_task(spec, "company_c", settings("s3a://b/raw"), on_failure=None)
    jinja = task.dag.get_template_env()
    rendered = [jinja.from_string(arg).render(dag_run=None) for arg in task.application_args]
    assert rendered[:6] == ["--input", "s3a://b/raw/trips", "--party", "company_c", "--months", "2024-01,2024-02"]
    assert task.run_key is None


# -- execution without Spark -----------------------------------------------------------------------------
def _no_spark_submit(monkeypatch):
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    monkeypatch.setattr(SparkSubmitOperator, "execute", lambda self, context: pytest.fail("spark-submit ran"))


def test_cluster_mode_needs_aggregate_uri(monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    from mpc_operators.aggregate import MPCAggregateOperator

    spark_connection(monkeypatch, host="yarn", **{"deploy-mode": "cluster"})
    monkeypatch.delenv("AIRFLOW__MPC__AGGREGATE_URI", raising=False)
    _no_spark_submit(monkeypatch)
    task = MPCAggregateOperator(
        task_id="aggregate",
        application=str(JOBS / "taxi_revenue.py"),
        computation="c",
        party_id="p",
        run_key="r",
        application_args=["--input", "s3a://b/x"],
    )
    with pytest.raises(AirflowFailException, match=r"cluster deploy mode .* needs \[mpc\] aggregate_uri"):
        task.execute({})


def test_cluster_mode_output_location(monkeypatch):
    from datetime import UTC, datetime

    from mpc_operators.aggregate import MPCAggregateOperator

    monkeypatch.setenv("AIRFLOW__MPC__AGGREGATE_URI", "s3://party-private/aggregates/")
    task = MPCAggregateOperator(
        task_id="aggregate", application="job.py", computation="taxi_hhi", party_id="company_a", run_key="20240401"
    )
    assert task.remote_output() == "s3://party-private/aggregates/taxi_hhi/20240401/company_a.json"
    # Given no run key (the operator's default, outside federation_dag too), the DAG run's.
    task = MPCAggregateOperator(task_id="aggregate", application="job.py", computation="taxi_hhi", party_id="company_a")
    context = {"logical_date": datetime(2024, 4, 1, 3, tzinfo=UTC)}
    assert task.remote_output(context) == "s3://party-private/aggregates/taxi_hhi/20240401T030000Z/company_a.json"


def test_the_task_chooses_the_output(monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    from mpc_operators.aggregate import MPCAggregateOperator

    _no_spark_submit(monkeypatch)
    task = MPCAggregateOperator(
        task_id="aggregate",
        application="job.py",
        computation="c",
        party_id="p",
        run_key="r",
        application_args=["--output", "/tmp/x.json"],
    )
    with pytest.raises(AirflowFailException, match="must not give --output"):
        task.execute({})


def test_oblivious_secret_in_a_private_file(monkeypatch, tmp_path):
    """oblivious=True: the secret from mpc_spark_secret reaches spark-submit in a 0600 file only."""
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
    from airflow.sdk import BaseHook, Connection

    from mpc_operators.aggregate import MPCAggregateOperator

    monkeypatch.setenv("SPARK_CONF_DIR", str(tmp_path))  # no spark-defaults.conf there
    seen = {}

    def get_connection(cls, conn_id):
        if conn_id == "spark_default":
            return Connection(conn_id=conn_id, conn_type="spark", host="local[2]")
        return Connection(conn_id=conn_id, conn_type="generic", password=SECRET)

    def fake_execute(self, context):
        path = self.properties_file
        seen.update(mode=stat.S_IMODE(os.stat(path).st_mode), text=Path(path).read_text(), path=path)
        cmd = self._get_hook()._build_spark_submit_command(self.application)
        seen["cmd"] = cmd
        output = cmd[cmd.index("--output") + 1]
        seen["folder_mode"] = stat.S_IMODE(os.stat(os.path.dirname(output)).st_mode)
        Path(output).write_text(json.dumps({"format": "x", "values": {}}))

    monkeypatch.setattr(BaseHook, "get_connection", classmethod(get_connection))
    monkeypatch.setattr("airflow.sdk.log.mask_secret", lambda value, *a, **k: None)
    monkeypatch.setattr(SparkSubmitOperator, "execute", fake_execute)
    task = MPCAggregateOperator(
        task_id="aggregate",
        application="job.py",
        computation="c",
        party_id="p",
        run_key="r",
        oblivious=True,
        application_args=["--oblivious"],
    )
    assert task.execute({}) == {"format": "x", "values": {}}
    assert seen["mode"] == 0o600 and seen["folder_mode"] == 0o700
    assert seen["text"] == f"spark.authenticate.secret {SECRET}\n"
    assert not any(SECRET in part for part in seen["cmd"]) and "--properties-file" in seen["cmd"]
    output = seen["cmd"][seen["cmd"].index("--output") + 1]
    assert not os.path.exists(seen["path"]) and not os.path.exists(os.path.dirname(output))
    assert task.properties_file is None and task.application_args == ["--oblivious"]


# -- the real spark-submit, local[2] ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trips(tmp_path_factory):
    root = tmp_path_factory.mktemp("aggop")
    taxi.generate(root / "data", ["a"], 600, seed=3, start=MONTHS[0], end=MONTHS[-1], rows_per_file=200)
    return root


@pytest.fixture
def spark_env(monkeypatch):
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)
    monkeypatch.setenv("PYSPARK_DRIVER_PYTHON", sys.executable)
    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")
    spark_connection(monkeypatch)


def taxi_operator(cls, input_uri: str, **kwargs):
    from mpc_operators.aggregate import BASE_SPARK_CONF, JOB_MODULE

    return cls(
        task_id="aggregate",
        application=str(JOBS / "taxi_revenue.py"),
        computation="taxi_hhi",
        party_id="company_a",
        run_key="20240401",
        py_files=str(JOB_MODULE),
        conf=dict(BASE_SPARK_CONF),
        application_args=["--input", input_uri, "--party", "company_a", "--months", ",".join(MONTHS)],
        **kwargs,
    )


def test_cluster_mode_aggregate_through_object_storage(trips, spark_env, tmp_path):
    """What a cluster-mode driver does, on local[2]: the job writes to aggregate_uri (file:// here),
    the task reads it with ObjectStoragePath, returns it and deletes it."""
    from mpc_operators.aggregate import MPCAggregateOperator

    class DriverElsewhere(MPCAggregateOperator):
        def driver_is_remote(self) -> bool:
            return True

    shared = tmp_path / "shared"
    stale = shared / "taxi_hhi" / "20240401" / "company_a.json"
    stale.parent.mkdir(parents=True)
    stale.write_text('{"stale": true}')  # an earlier try's: never taken for this one's
    task = taxi_operator(DriverElsewhere, (trips / "data" / "a" / "trips").as_uri(), aggregate_uri=shared.as_uri())
    doc = task.execute({})
    reference = taxi.revenue_cents_by_month(trips / "data", "a", MONTHS)
    assert doc["format"] == "mpc-aggregate/1" and doc["party"] == "company_a"
    assert doc["values"]["revenue_cents"] == [sum(reference[m] for m in MONTHS), *(reference[m] for m in MONTHS)]
    assert not stale.exists() and list(stale.parent.iterdir()) == []
    assert task.application_args[-1] == ",".join(MONTHS)  # the task's own fields as they were


def test_not_parquet_fails_with_the_jobs_message(trips, spark_env, tmp_path, monkeypatch):
    """Reading the input fails inside a Spark job (the schema merge runs on the executors): the task
    fails with the job's line naming the input, and leaves no temporary folder."""
    from airflow.sdk.exceptions import AirflowException

    from mpc_operators.aggregate import MPCAggregateOperator

    bad = tmp_path / "bad"
    bad.mkdir()
    for part in sorted((trips / "data" / "a" / "trips").iterdir())[:1]:
        (bad / part.name).write_bytes(part.read_bytes())
    (bad / "part-99999.parquet").write_text("not parquet at all\n")
    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(private))
    with pytest.raises(AirflowException) as info:
        taxi_operator(MPCAggregateOperator, bad.as_uri()).execute({})
    first = str(info.value).splitlines()[0]
    assert first.startswith(f"taxi_revenue: error: cannot read the input {bad.as_uri()}: ")
    assert "part-99999.parquet is not a Parquet file" in first
    assert list(private.iterdir()) == []


# -- the jobs' shared module, without Spark ------------------------------------------------------------
def test_output_uri_written_with_fsspec():
    import fsspec

    doc = {"format": mpc_job.FORMAT, "party": "p", "values": {"n": [1]}}
    mpc_job.write_output("memory://aggregates/taxi_hhi/20240401/p.json", doc)
    with fsspec.open("memory://aggregates/taxi_hhi/20240401/p.json") as f:
        assert json.load(f) == doc


def test_local_output_written_atomically(tmp_path):
    doc = {"format": mpc_job.FORMAT, "party": "p"}
    mpc_job.write_output(str(tmp_path / "a" / "aggregate.json"), doc)
    mpc_job.write_output((tmp_path / "b.json").as_uri(), doc)
    assert json.loads((tmp_path / "a" / "aggregate.json").read_text()) == doc
    assert json.loads((tmp_path / "b.json").read_text()) == doc
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b.json"]  # no temporary file left


def test_locations_checked_on_the_driver_only_when_local(tmp_path):
    mpc_job.check_locations("s3a://bucket/trips", "s3a://bucket/out.json")  # Spark and fsspec will say
    mpc_job.check_locations("hdfs://nn:8020/trips", str(tmp_path / "out.json"))
    with pytest.raises(mpc_job.InputError, match="input path does not exist: file:///no/such/dir"):
        mpc_job.check_locations("file:///no/such/dir", str(tmp_path / "out.json"))
    with pytest.raises(mpc_job.InputError, match="output is a directory"):
        mpc_job.check_locations(str(tmp_path), tmp_path.as_uri())


def test_an_unknown_output_scheme_is_one_clear_line():
    with pytest.raises(mpc_job.InputError, match="cannot write the output nosuchscheme://x/a.json"):
        mpc_job.write_output("nosuchscheme://x/a.json", {})
