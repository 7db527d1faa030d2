"""The oblivious local stage (issue 17) without Spark: ``aggregation.oblivious`` in the spec (off by
default, validated, in the spec hash), what the aggregate task passes to the job and to Spark, how
the Spark secret reaches spark-submit (at execution time, in a 0600 file, never in the task's
fields or command line), and the keyed partitioner. tests/test_oblivious_spark.py runs the jobs."""

from __future__ import annotations

import copy
import json
import os
import stat
from pathlib import Path

import pytest
import yaml
from conftest import load_raw as load
from conftest import parse_dags, party_settings, raw_template

from mpc_federation.programs import import_file
from mpc_federation.spec import SpecError

REPO = Path(__file__).resolve().parents[1]
TAXI = REPO / "include" / "federations" / "taxi_hhi.yaml"
PAY = REPO / "include" / "federations" / "pay_equity.yaml"
JOBS = REPO / "include" / "jobs"
SECRET = "s3cr3t-Spark-auth-0123456789abcdef"


oblivious = import_file(JOBS / "mpc_oblivious.py", "oblivious_module_tests")


# -- the spec ------------------------------------------------------------------------------------
def test_off_by_default_and_in_the_hash(tmp_path):
    raw = raw_template(TAXI)
    plain = load(tmp_path, raw, "plain.yaml")
    assert plain.aggregation_oblivious is False
    on = copy.deepcopy(raw)
    on["aggregation"]["oblivious"] = True
    off = copy.deepcopy(raw)
    off["aggregation"]["oblivious"] = False
    spec_on, spec_off = load(tmp_path, on, "on.yaml"), load(tmp_path, off, "off.yaml")
    assert spec_on.aggregation_oblivious is True and spec_off.aggregation_oblivious is False
    # A party that runs the other mode runs a different federation: its shares are refused.
    assert len({plain.spec_hash, spec_on.spec_hash, spec_off.spec_hash}) == 3


@pytest.mark.parametrize("value", ["yes", 1, None, {"enabled": True}])
def test_must_be_a_boolean(tmp_path, value):
    raw = raw_template(TAXI)
    raw["aggregation"]["oblivious"] = value
    with pytest.raises(SpecError) as info:
        load(tmp_path, raw)
    assert info.value.field_path == "aggregation.oblivious"
    assert "must be true or false" in str(info.value)


# -- the aggregate task ------------------------------------------------------------------------------
def aggregate_task(spec, party: str):
    from mpc_operators.aggregate import aggregate_task as build

    return build(spec, party, party_settings(party_id=party))


@pytest.mark.parametrize("federation,party", [(TAXI, "company_b"), (PAY, None)])
def test_oblivious_task_arguments_and_settings(tmp_path, federation, party):
    from mpc_operators.aggregate import BASE_SPARK_CONF, MPCAggregateOperator

    raw = raw_template(federation)
    party = party or next(p["id"] for p in raw["parties"] if "input" in p["roles"])
    plain_task = aggregate_task(load(tmp_path, raw, "plain.yaml"), party)
    raw["aggregation"]["oblivious"] = True
    task = aggregate_task(load(tmp_path, raw, "on.yaml"), party)

    assert not plain_task.oblivious and "--oblivious" not in plain_task.application_args
    assert plain_task.conf == {**BASE_SPARK_CONF, "spark.cores.max": "2"}
    assert isinstance(task, MPCAggregateOperator) and task.oblivious
    assert task.application_args == [*plain_task.application_args, "--oblivious"]
    assert task.conf == {**plain_task.conf, **oblivious.SPARK_CONF}
    assert task.conf["spark.io.encryption.enabled"] == task.conf["spark.network.crypto.enabled"] == "true"
    assert task.conf["spark.authenticate"] == "true"
    assert task.py_files.split(",") == [str(JOBS / "mpc_job.py"), str(JOBS / "mpc_oblivious.py")]
    assert task.secret_conn_id == "mpc_spark_secret"
    # No secret at parse time: nothing in the task's fields names one.
    assert not any("secret" in key for key in task.conf) and task.properties_file is None
    job = import_file(raw["aggregation"]["job"] and Path(raw["aggregation"]["job"]), "job_of_" + federation.stem)
    assert job.parse_args([*task.application_args, "--output", "/tmp/a.json"]).oblivious is True


def test_the_dag_and_the_job_module_agree_on_the_spark_settings():
    from mpc_operators.aggregate import OBLIVIOUS_MODULE, OBLIVIOUS_SPARK_CONF

    assert OBLIVIOUS_SPARK_CONF == oblivious.SPARK_CONF
    assert OBLIVIOUS_MODULE == JOBS / "mpc_oblivious.py" and OBLIVIOUS_MODULE.is_file()


# -- the secret ------------------------------------------------------------------------------------
class _Conn:
    def __init__(self, password):
        self.password = password


def _operator(monkeypatch):
    from mpc_operators.aggregate import MPCAggregateOperator

    monkeypatch.setattr(MPCAggregateOperator, "driver_is_remote", lambda self: False)  # client mode
    return MPCAggregateOperator(
        task_id="aggregate",
        application=str(JOBS / "taxi_revenue.py"),
        conf=dict(oblivious.SPARK_CONF),
        application_args=["--oblivious"],
        computation="taxi_hhi",
        party_id="company_a",
        oblivious=True,
    )


def test_secret_reaches_spark_submit_in_a_private_file_at_execution_time(monkeypatch, tmp_path):
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
    from airflow.sdk import BaseHook

    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    (conf_dir / "spark-defaults.conf").write_text("spark.executor.memory 2g")
    monkeypatch.setenv("SPARK_CONF_DIR", str(conf_dir))
    asked, masked, seen = [], [], {}
    from airflow.sdk import Connection

    def get_connection(cls, conn_id):
        if conn_id == "spark_default":  # the hook's own look-up of the master
            return Connection(conn_id=conn_id, conn_type="spark", host="local[2]")
        asked.append(conn_id)
        return Connection(conn_id=conn_id, conn_type="generic", password=SECRET)

    monkeypatch.setattr(BaseHook, "get_connection", classmethod(get_connection))
    monkeypatch.setattr("airflow.sdk.log.mask_secret", lambda value, *a, **k: masked.append(value))

    def fake_execute(self, context):
        path = self.properties_file
        seen["mode"] = stat.S_IMODE(os.stat(path).st_mode)
        seen["folder_mode"] = stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode)
        seen["text"] = Path(path).read_text()
        seen["path"] = path
        hook = self._get_hook()
        seen["cmd"] = hook._build_spark_submit_command(self.application)
        output = self.application_args[self.application_args.index("--output") + 1]
        Path(output).write_text(json.dumps({"format": "mpc-aggregate/1"}))

    monkeypatch.setattr(SparkSubmitOperator, "execute", fake_execute)
    task = _operator(monkeypatch)
    assert asked == []  # nothing read when the task is built (DAG parse time)
    assert task.execute({}) == {"format": "mpc-aggregate/1"}
    assert asked == ["mpc_spark_secret"] and masked == [SECRET]
    assert seen["mode"] == 0o600 and seen["folder_mode"] == 0o700
    assert seen["text"] == f"spark.executor.memory 2g\nspark.authenticate.secret {SECRET}\n"
    cmd = seen["cmd"]
    assert "--properties-file" in cmd and not any(SECRET in part for part in cmd)
    assert "spark.io.encryption.enabled=true" in cmd and "spark.authenticate=true" in cmd
    assert not os.path.exists(seen["path"]) and not os.path.exists(os.path.dirname(seen["path"]))
    assert task.properties_file is None


@pytest.mark.parametrize(
    "password,words",
    [
        (None, "has no password"),
        ("", "has no password"),
        ("short", "at least 16"),
        ("with a space 0123456789", "without spaces"),
    ],
)
def test_missing_or_unfit_secret_fails_the_task(monkeypatch, password, words):
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setattr(BaseHook, "get_connection", classmethod(lambda cls, conn_id: _Conn(password)))
    monkeypatch.setattr(SparkSubmitOperator, "execute", lambda self, context: pytest.fail("spark-submit ran"))
    with pytest.raises(AirflowFailException) as info:
        _operator(monkeypatch).execute({})
    assert words in str(info.value) and "mpc_spark_secret" in str(info.value)
    if password:
        assert password not in str(info.value)


def test_missing_connection_fails_the_task(monkeypatch):
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowFailException

    def missing(cls, conn_id):
        raise LookupError(f"The conn_id `{conn_id}` isn't defined")

    monkeypatch.setattr(BaseHook, "get_connection", classmethod(missing))
    with pytest.raises(AirflowFailException, match="cannot read connection 'mpc_spark_secret'"):
        _operator(monkeypatch).execute({})


# -- the keyed partitioner ------------------------------------------------------------------------------
def test_partitioner_is_keyed_and_fresh_per_run():
    keys = range(64)
    one, two = oblivious.new_secret(), oblivious.new_secret()
    assert len(one) == 32 and one != two
    mapping = [oblivious.prf_partition(one, k, 4) for k in keys]
    assert mapping == [oblivious.prf_partition(one, k, 4) for k in keys]  # deterministic within a run
    assert mapping != [oblivious.prf_partition(two, k, 4) for k in keys]  # unpredictable across runs
    assert set(mapping) == {0, 1, 2, 3}
    import hashlib
    import hmac

    expected = int.from_bytes(hmac.new(one, b"mpc-oblivious-partition/1:7", hashlib.sha256).digest(), "big") % 4
    assert oblivious.prf_partition(one, 7, 4) == expected


# -- the DAG file as Airflow parses it ------------------------------------------------------------------
def test_dag_file_parses_an_oblivious_federation(tmp_path):
    specs = tmp_path / "specs"
    specs.mkdir()
    raw = raw_template(TAXI)
    raw["aggregation"]["oblivious"] = True
    (specs / "taxi_hhi.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    parsed = parse_dags("company_d", tmp_path, specs)
    assert parsed["errors"] == {} and parsed["heavy"] == []
    dag = parsed["dags"]["taxi_hhi"]
    assert dag["types"]["aggregate"] == "MPCAggregateOperator" and dag["aggregate_args"][-1] == "--oblivious"
    assert dag["serialized"] > 1000 and dag["secret_in_serialized"] is False
