"""The oblivious local stage on real Spark (one local[2] session for the module, with the oblivious
Spark settings and the event log on).

* Results: the oblivious path gives exactly the plain job's result (cents, every count, every
  error message) on skewed data (one month with 100x the trips of each other), on uniform data,
  under each data policy, on the bad inputs that stop the night, and for the payroll job.
* Padding, from sizes only: with the oblivious path every map task writes the same number of
  records to every reduce partition (counted per map partition and target reducer), and Spark's
  own metrics in the event log show equal records and bytes per map task and per reduce
  partition; the unpadded keyed shuffle of the same rows does not (it follows the skew).

tests/test_oblivious.py covers the spec, the Airflow task and the secret; the spark-submit run of
both jobs with --oblivious is at the end of this file.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import finish, spark_submit, write_trips

from mpc_federation.programs import import_file

ROOT = Path(__file__).resolve().parents[1]
MONTHS = ["2024-01", "2024-02", "2024-03"]
COLUMNS = {"revenue": "fare_amount", "time": "tpep_pickup_datetime", "participant": None}
DEFAULT_POLICY = {"negative_amounts": "count", "null_amounts": "drop", "outside_period": "ignore"}
FILES = 6  # Parquet files = map tasks


taxi = import_file(ROOT / "include" / "datagen" / "taxi_trips.py", "taxi_trips_obl")
payroll_data = import_file(ROOT / "include" / "datagen" / "payroll.py", "payroll_data_obl")
job = import_file(ROOT / "include" / "jobs" / "taxi_revenue.py", "taxi_revenue_obl")
pay = import_file(ROOT / "include" / "jobs" / "payroll_sums.py", "payroll_sums_obl")
bench = import_file(ROOT / "bench" / "oblivious.py", "bench_oblivious_obl")
oblivious = job.oblivious_module()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("obl")
    n = 12_000
    taxi.generate(
        root / "skewed",
        ["a"],
        n,
        seed=5,
        start=MONTHS[0],
        end=MONTHS[-1],
        rows_per_file=n // FILES,
        defects=True,
        month_weights=(100, 1, 1),
    )
    taxi.generate(
        root / "uniform", ["a"], n, seed=6, start=MONTHS[0], end=MONTHS[-1], rows_per_file=n // FILES, defects=True
    )
    return {"root": root, "skewed": root / "skewed" / "a" / "trips", "uniform": root / "uniform" / "a" / "trips"}


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    from pyspark.sql import SparkSession

    logging.getLogger("py4j").setLevel(logging.WARNING)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    log_dir = tmp_path_factory.mktemp("eventlog")
    builder = (
        SparkSession.builder.master("local[2]")
        .appName("oblivious_tests")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.files.openCostInBytes", str(1 << 30))  # one map task per file
        .config("spark.eventLog.dir", log_dir.as_uri())
    )
    for key, value in bench.EVENT_LOG_CONF.items():
        builder = builder.config(key, value)
    for key, value in oblivious.SPARK_CONF.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    job.mpc_job.ship_module(session, oblivious)
    yield session
    session.stop()


def event_log(spark) -> Path:
    folder = Path(spark.sparkContext.getConf().get("spark.eventLog.dir").removeprefix("file:"))
    (log,) = [p for p in folder.iterdir() if spark.sparkContext.applicationId in p.name]
    return log


def both(spark, path, months=MONTHS, policy=None, max_cents=job.DEFAULT_MAX_CENTS):
    """(plain result, oblivious result) or (plain error, oblivious error) of the taxi job's aggregation."""
    out = []
    for mode in (None, spark):
        try:
            trips, _ = job.read_trips(spark, str(path), COLUMNS, None)
            out.append(
                job.revenue_by_month(
                    trips, months, {**DEFAULT_POLICY, **(policy or {})}, COLUMNS, None, max_cents, oblivious_spark=mode
                )
            )
        except job.InputError as e:
            out.append(f"InputError: {e}")
    return out


# -- identical results ---------------------------------------------------------------------------
@pytest.mark.parametrize("shape", ["skewed", "uniform"])
def test_identical_to_plain_to_the_cent(spark, data, shape):
    plain, obl = both(spark, data[shape])
    assert obl == plain  # revenue per market and every count of the local stats
    assert plain["revenue_cents"][1:] == [
        taxi.revenue_cents_by_month(data["root"] / shape, "a", MONTHS)[m] for m in MONTHS
    ]
    if shape == "skewed":
        in_month = plain["stats"]["rows_in_period"]
        assert plain["revenue_cents"][1] > 50 * plain["revenue_cents"][2]  # the skew is really there
        assert in_month > 11_000


@pytest.mark.parametrize(
    "policy",
    [{"negative_amounts": "drop"}, {"negative_amounts": "fail"}, {"null_amounts": "fail"}, {"outside_period": "fail"}],
)
def test_identical_under_each_policy(spark, data, policy):
    plain, obl = both(spark, data["skewed"], policy=policy)
    assert obl == plain
    if "drop" not in policy.values():
        assert plain.startswith("InputError:") and "policy" in plain


def test_identical_for_one_licensee_of_a_shared_dataset(spark, tmp_path):
    taxi.generate_hvfhv(
        tmp_path / "fhv", 6000, seed=3, start="2024-01", end="2024-02", rows_per_file=2000, defects=True
    )
    columns = {"revenue": "base_passenger_fare", "time": "pickup_datetime", "participant": "hvfhs_license_num"}
    out = []
    for mode in (None, spark):
        trips, _ = job.read_trips(spark, str(tmp_path / "fhv"), columns, "HV0005")
        out.append(
            job.revenue_by_month(trips, ["2024-01", "2024-02"], DEFAULT_POLICY, columns, "HV0005", oblivious_spark=mode)
        )
    assert out[1] == out[0]
    assert out[0]["stats"]["rows_other_participants"] > 0 and out[0]["revenue_cents"][0] > 0


def test_bad_inputs_stop_with_the_same_error(spark, tmp_path):
    """The job tests' bad inputs (tests/test_taxi_revenue_job.py) that reach the aggregation."""
    cases = {
        "nulls": (write_trips(tmp_path / "nulls", pa.array([None, None, None], pa.float64())), {}),
        "refunds": (write_trips(tmp_path / "refunds", pa.array([12.5, 7.0, -12.5, -9.0])), {}),
        "big": (write_trips(tmp_path / "big", pa.array([600.0, 400.01, 1.0])), {"max_cents": 100_000}),
        "text": (write_trips(tmp_path / "text", pa.array(["1.5", "abc", "2"])), {"policy": {"null_amounts": "fail"}}),
    }
    expected = {
        "nulls": "has no usable amount",
        "refunds": "market 2024-02: net revenue is negative (-200 cents)",
        "big": "market all: net revenue 100101 cents is above",
        "text": "e.g. 'abc'",
    }
    for name, (path, kwargs) in cases.items():
        plain, obl = both(spark, path, months=["2024-01", "2024-02"], **kwargs)
        assert obl == plain, name
        assert plain.startswith("InputError:") and expected[name] in plain, plain


def test_payroll_identical(spark, tmp_path):
    payroll_data.generate(tmp_path / "pay", ["a"], 3000, seed=9)
    df = spark.read.parquet(str(tmp_path / "pay" / "a" / "payroll"))
    levels = ["L1", "L2", "L3", "L4"]
    plain = pay.sums_by_gender_and_level(df, levels, pay.DEFAULT_MAX_SALARY_CENTS)
    assert pay.oblivious_sums_by_gender_and_level(spark, df, levels, pay.DEFAULT_MAX_SALARY_CENTS) == plain
    # bad payrolls: a duplicate id (found by the padded distinct count), an unknown gender
    rows = {
        "employee_id": ["e1", "e2", "e2", "e4"],
        "gender": ["M", "F", "F", "X"],
        "level": ["L1", "L2", "L2", "L1"],
        "salary_cents": [5_000_000, 6_000_000, 6_000_000, 7_000_000],
    }
    for name, edit in {"dup": lambda r: r.update(gender=["M", "F", "F", "M"]), "both": lambda r: None}.items():
        table = {k: list(v) for k, v in rows.items()}
        edit(table)
        folder = tmp_path / name
        folder.mkdir()
        pq.write_table(pa.table(table), folder / "part-00000.parquet")
        bad = spark.read.parquet(str(folder))
        messages = []
        for oblivious_mode in (False, True):
            with pytest.raises(pay.InputError) as info:
                if oblivious_mode:
                    pay.oblivious_sums_by_gender_and_level(spark, bad, levels, 10**9)
                else:
                    pay.sums_by_gender_and_level(bad, levels, 10**9)
            messages.append(str(info.value))
        assert messages[0] == messages[1] and "1 duplicate ids" in messages[0]
    assert oblivious.oblivious_distinct_count(spark, spark.createDataFrame([(1,), (2,), (2,), (None,)], "x int")) == 2


# -- the padding property, from sizes ------------------------------------------------------------------
def _rows(spark, path):
    trips, _ = job.read_trips(spark, str(path), COLUMNS, None)
    return job.oblivious_rows(trips, MONTHS, drop_negatives=False)


def _per_map_task_and_reducer(frame, reducer_of_row) -> dict[int, Counter]:
    """{map partition: Counter(reducer -> records)} of the records a map stage hands to the shuffle."""

    def count(index, rows):
        yield index, Counter(reducer_of_row(row) for row in rows)

    return dict(frame.rdd.mapPartitionsWithIndex(count).collect())


def test_every_map_task_writes_the_same_records_to_every_reducer(spark, data):
    reducers = oblivious.REDUCERS
    rows, num_keys, classes = _rows(spark, data["skewed"])
    labels = oblivious.hash_labels(spark, reducers)
    owner = [oblivious.prf_partition(oblivious.new_secret(), k, reducers) for k in range(num_keys)]
    mapped = rows.mapInArrow(oblivious.combine_and_pad(owner, labels, classes), oblivious.map_schema(classes))
    padded = _per_map_task_and_reducer(mapped, lambda row: labels.index(row["label"]))
    assert len(padded) == FILES
    for counts in padded.values():  # every map task: num_keys records to each of the reducers
        assert counts == Counter({r: num_keys for r in range(reducers)})

    # The same rows through a keyed shuffle without the mode: Spark's hash partitioner on the key.
    from pyspark.sql import functions as F

    target = rows.select(F.pmod(F.hash("key"), F.lit(reducers)).alias("r"))
    plain = _per_map_task_and_reducer(target, lambda row: row["r"])
    heavy = [counts.most_common(1)[0][1] for counts in plain.values()]
    assert all(h > 0.9 * 12_000 / FILES for h in heavy)  # the heavy month's reducer gets almost everything
    assert all(len({counts[r] for r in range(reducers)}) > 1 for counts in plain.values())


def test_spark_metrics_show_equal_volumes_only_with_the_mode(spark, data):
    sc = spark.sparkContext
    results = {}
    for shape in ("skewed", "uniform"):
        rows, num_keys, classes = _rows(spark, data[shape])
        sc.setJobGroup(f"oblivious-{shape}", "padded keyed shuffle")
        results[shape] = oblivious.oblivious_sums(spark, rows, num_keys, classes)
        sc.setJobGroup(f"keyed-{shape}", "keyed shuffle without the mode")
        rows.repartition(oblivious.REDUCERS, "key").rdd.mapPartitions(lambda it: [sum(1 for _ in it)]).collect()
    sc.setJobGroup("after", "flush")
    spark.range(1).collect()  # a later job: the event log has been flushed past the ones above
    log = event_log(spark)

    volumes = {}
    for shape in ("skewed", "uniform"):
        m = bench.shuffle_metrics(log, f"oblivious-{shape}")
        assert len(m["map"]) == FILES and len(m["reduce"]) == oblivious.REDUCERS
        per_task = oblivious.REDUCERS * num_keys
        assert {t["records"] for t in m["map"]} == {per_task}  # every map task: R x K records
        assert len({t["bytes"] for t in m["map"]}) == 1  # ... and the same bytes
        assert {t["records"] for t in m["reduce"]} == {FILES * num_keys}  # every reducer: M x K records
        assert len({t["bytes"] for t in m["reduce"]}) == 1
        volumes[shape] = ({t["bytes"] for t in m["map"]}, {t["bytes"] for t in m["reduce"]})

        keyed = bench.shuffle_metrics(log, f"keyed-{shape}")
        read = sorted(t["records"] for t in keyed["reduce"])
        assert sum(read) == 12_000
        if shape == "skewed":
            assert read[-1] > 0.9 * 12_000  # one reducer gets the heavy month: the skew shows
    assert volumes["skewed"] == volumes["uniform"]  # independent of the data
    assert results["skewed"] != results["uniform"]


# -- the jobs alone through spark-submit ------------------------------------------------------------
def test_both_jobs_run_oblivious_through_spark_submit(data, tmp_path):
    """Each job file alone (it ships include/jobs/mpc_oblivious.py itself), on the skewed trips and a payroll."""
    payroll_data.generate(tmp_path / "pay", ["a"], 2000, seed=4)
    runs = {
        "taxi": (ROOT / "include" / "jobs" / "taxi_revenue.py", data["skewed"], ",".join(MONTHS)),
        "pay": (ROOT / "include" / "jobs" / "payroll_sums.py", tmp_path / "pay" / "a" / "payroll", "2024-03"),
    }
    procs = {}
    for name, (script, source, months) in runs.items():
        out = tmp_path / f"{name}.json"
        procs[name] = (
            out,
            spark_submit(
                script,
                ["--input", str(source), "--output", str(out), "--party", "a", "--months", months, "--oblivious"],
                tmp_path,
                master="local[1]",
            ),
        )
    docs = {}
    for name, (out, proc) in procs.items():
        done = finish(proc)
        assert done.returncode == 0, f"{name}:\n{done.stdout}\n{done.stderr[-3000:]}"
        docs[name] = json.loads(out.read_text())
    reference = taxi.revenue_cents_by_month(data["root"] / "skewed", "a", MONTHS)
    per_month = [reference[m] for m in MONTHS]
    assert docs["taxi"]["values"]["revenue_cents"] == [sum(per_month), *per_month]
    assert docs["taxi"]["stats"]["rows_read"] == 12_000
    sums = payroll_data.payroll_sums(tmp_path / "pay", "a")
    for key, values in sums.items():
        assert docs["pay"]["values"][key] == values, key
