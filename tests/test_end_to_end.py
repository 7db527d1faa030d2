"""End to end: four parties' DAGs run at once in real Airflow (``airflow dags test``), with real
Spark, the real local S3 server and real MPyC processes; the regulator's HHI must equal the
plaintext HHI over the pooled data, exactly. The federation reads its trips with the arrow engine
(``aggregation.engine: arrow``: pyarrow in Spark's tasks), and one firm keeps its trips in S3
(``[mpc] data_uri`` is an ``s3a://`` URI, its spark-defaults.conf has the s3a settings); the other
nights through Airflow (tests/test_ui_testbed.py, tests/test_celery_night.py, scripts/demo.sh)
with Spark SQL and local files."""

from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import UTC, datetime
from decimal import Decimal

import demo
import yaml
from conftest import raw_template, small_parties, upload_folder
from localnet import VENV_BIN, metadata, run_dags_test, xcom

DATE = "2024-04-01"


def test_nightly_hhi_through_airflow_spark_s3_and_mpyc(tmp_path, s3_server):
    parties_yaml = small_parties(inputs=3, computes=3)
    companies = [p["id"] for p in parties_yaml if "input" in p["roles"]]
    data_dir = tmp_path / "data"
    demo.datagen().generate(data_dir, companies, 9000, 7, "2024-01", "2024-03", defects=True)  # refunds, nulls...
    raw = raw_template(demo.TEMPLATE)
    raw["aggregation"]["engine"] = "arrow"
    template = tmp_path / demo.TEMPLATE.name
    template.write_text(yaml.safe_dump(raw, sort_keys=False))
    spec_path, parties = demo.setup_federation(
        tmp_path,
        parties_yaml,
        s3_server,
        "local[2]",
        data_dir,
        template=template,
        prefix=f"{tmp_path.name}-{os.getpid()}",
    )

    # The recipient's DAGs in its metadata DB, as its DAG processor would have them: the report DAG
    # scheduled on the result asset among them.
    regulator = next(p for p in parties if p.id == "regulator")
    for command in (["dags", "reserialize"], ["dags", "unpause", "taxi_hhi_report"]):
        subprocess.run(
            [str(VENV_BIN / "airflow"), *command], env=regulator.env(), check=True, capture_output=True, timeout=300
        )
    # Every way of waiting ([mpc] wait_in_task): the leader waits in its compute task throughout,
    # company_c's compute task and the recipient's reveal task defer while the rendezvous is far
    # (the default), company_b waits after its sensor only.
    waits = {"company_a": "True", "company_c": "near", "regulator": "near"}

    # company_b's trips are in S3: its data_uri and its Spark's s3a settings say where.
    in_s3 = {"AIRFLOW__MPC__DATA_URI": upload_folder(s3_server, data_dir / "company_b", "party-data", "company_b")}
    conf_dir = tmp_path / "company_b-spark-conf"
    conf_dir.mkdir()
    settings = "".join(f"{key} {value}\n" for key, value in s3_server.spark_conf().items())
    (conf_dir / "spark-defaults.conf").write_text(settings)
    in_s3["SPARK_CONF_DIR"] = str(conf_dir)

    def env_of(party):
        s3 = in_s3 if party.id == "company_b" else {}
        return {**party.env(), **s3, "AIRFLOW__MPC__WAIT_IN_TASK": waits.get(party.id, "False")}

    codes = run_dags_test(parties, "taxi_hhi", DATE, timeout=900, env_of=env_of)
    logs = {p.id: (p.home / f"dags-test-{DATE}.log") for p in parties}
    assert codes == {p.id: 0 for p in parties}, {pid: logs[pid].read_text()[-3000:] for pid, c in codes.items() if c}

    from mpc_federation.layout import run_key
    from mpc_federation.spec import load_spec
    from mpc_federation.store import CoordinationStore

    spec = load_spec(spec_path)
    date = datetime(2024, 4, 1, tzinfo=UTC)
    run = run_key(date)
    by_id = {p.id: p for p in parties}
    result = xcom(regulator, "taxi_hhi", "reveal")  # handed on through XCom ...
    record = regulator.work_dir / "taxi_hhi" / run / "result.json"  # ... with a copy at [mpc] results_uri
    assert json.loads(record.read_text()) == result
    assert result["roster"] == companies
    expected = demo.plaintext_hhi(data_dir, companies, spec.months(date), spec.program_params, spec.data_policy)
    hhi = result["outputs"]["hhi"]
    assert hhi["labels"] == ["all", "2024-01", "2024-02", "2024-03"] and hhi["decimals"] == 2
    assert [Decimal(x) for x in hhi["exact"]] == [expected[label] for label in hhi["labels"]]
    assert "reveal" in logs["regulator"].read_text()
    assert spec.aggregation_engine == "arrow"
    for company in companies:  # the aggregate task ran the job with the arrow engine
        assert re.search(r"taxi_revenue\.py .*--engine arrow", logs[company].read_text())
    assert "--input s3a://party-data/company_b/trips" in logs["company_b"].read_text()
    tasks = {
        p.id: {t for (t,) in metadata(p, "SELECT task_id FROM task_instance WHERE dag_id = 'taxi_hhi'")}
        for p in parties
    }
    assert tasks["regulator"] == {"reveal"} and tasks["company_a"] == {"aggregate", "share", "compute"}
    assert tasks["company_c"] == tasks["company_a"] and {"wait_for_inputs", "compute"} <= tasks["company_b"]
    for party in waits:  # the task itself listed the run until its stage was ready
        assert re.search(r"Listed \S+ \d+ times in", logs[party].read_text())
    # The recipient's reveal task started with the night, when nobody had shared: it deferred, and
    # the trigger resumed it once the rendezvous was near.
    night = logs["regulator"].read_text()
    assert "The rendezvous for result is far: deferring until it is near" in night
    assert re.search(r"Resumed by the trigger: (near|ready)", night)
    # The result is an asset event a downstream DAG can be scheduled on, naming the run.
    [(extra,)] = metadata(
        regulator,
        "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.uri = 'mpc://taxi_hhi/result'",
    )
    assert json.loads(extra) == {"run": run, "attempt": 1, "program": "hhi"}
    # ... and the recipient's report DAG (mpc_operators.reports), scheduled on it, is queued.
    assert metadata(regulator, "SELECT target_dag_id FROM asset_dag_run_queue") == [("taxi_hhi_report",)]

    # Nobody else holds a result; the companies' aggregates stayed home (the aggregate task's XCom in
    # their own Airflow, no file on a worker's disk) and never reached the bucket.
    for company in companies:
        assert not (by_id[company].work_dir / "taxi_hhi" / run / "result.json").exists()
        assert not list(by_id[company].home.rglob("aggregate.json"))
    store = CoordinationStore(s3_server.store_config(spec.bucket))
    keys = store.list(f"{spec.prefix}/taxi_hhi/{run}/")
    dump = b"".join(store.get(k) for k in keys)
    assert any(k.endswith("/inputs/company_a/to-company_b") for k in keys)
    for company in companies:
        aggregate = xcom(by_id[company], "taxi_hhi", "aggregate")
        assert aggregate["party"] == company
        for cents in aggregate["values"]["revenue_cents"]:
            assert str(cents).encode() not in dump
            assert cents.to_bytes(8, "big") not in dump and cents.to_bytes(8, "little") not in dump
