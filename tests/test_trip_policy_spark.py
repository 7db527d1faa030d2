"""The taxi revenue job's data policy and schema tolerance on real Spark (one local[2] session for
the module): each defect alone and all together give the exact net cents, computed here
independently from the rows with Decimals; the policy's 'fail' choices and the bad data that must
stop the night raise one clear message; column names in any case, both timestamp kinds and dates,
every numeric type, files of one dataset with different schemas, and one licensee's rows of a
dataset holding several. (tests/test_taxi_revenue_job.py runs the job itself through spark-submit.)
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mpc_federation.programs import import_file

ROOT = Path(__file__).resolve().parents[1]
MONTHS = ["2024-01", "2024-02", "2024-03"]
TAXI_COLUMNS = {"revenue": "fare_amount", "time": "tpep_pickup_datetime", "participant": None}
DEFAULT_POLICY = {"negative_amounts": "count", "null_amounts": "drop", "outside_period": "ignore"}


taxi = import_file(ROOT / "include" / "datagen" / "taxi_trips.py", "taxi_trips_policy_tests")
job = import_file(ROOT / "include" / "jobs" / "taxi_revenue.py", "taxi_revenue_policy_tests")


@pytest.fixture(scope="module")
def session():
    from pyspark.sql import SparkSession

    logging.getLogger("py4j").setLevel(logging.WARNING)  # no INFO from its atexit close into closed streams
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # the arrow engine's tasks import pyarrow
    session = (
        SparkSession.builder.master("local[2]")
        .appName("trip_policy_tests")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("WARN")
    yield session
    session.stop()


@pytest.fixture(scope="module", params=job.ENGINES)
def spark(request, session):
    """The session and an engine: every case runs on both (Spark SQL; pyarrow in Spark's tasks)."""
    return session, request.param


def aggregate(spark, path, months=MONTHS, policy=None, columns=None, value=None, max_cents=job.DEFAULT_MAX_CENTS):
    """What the job computes for ``path``, without spark-submit."""
    session, engine = spark
    columns = {**TAXI_COLUMNS, **(columns or {})}
    policy = {**DEFAULT_POLICY, **(policy or {})}
    return job.aggregate(session, str(path), months, policy, columns, value, max_cents, engine=engine)


def cents_of(value) -> int | None:
    """Independent conversion: the exact decimal of the value, rounded half-up to cents."""
    if value is None:
        return None
    if isinstance(value, float):
        value = repr(value)
    try:
        return int((Decimal(str(value)) * 100).quantize(1, rounding=ROUND_HALF_UP))
    except ArithmeticError:
        return None


def expected(rows, months=MONTHS, drop_negatives=False) -> list[int]:
    """Net cents per market from (amount, month string) pairs: nulls and other months left out."""
    per = dict.fromkeys(months, 0)
    for amount, month in rows:
        c = cents_of(amount)
        if c is None or month not in per or (drop_negatives and c < 0):
            continue
        per[month] += c
    return [sum(per.values()), *per.values()]


def rows_of(table: pa.Table, amount="fare_amount", time="tpep_pickup_datetime", participant=None):
    who = table.column(participant[0]).to_pylist() if participant else [None] * table.num_rows
    return [
        (a, t.strftime("%Y-%m"))
        for a, t, p in zip(table.column(amount).to_pylist(), table.column(time).to_pylist(), who)
        if not participant or p == participant[1]
    ]


def write(folder: Path, name: str, table: pa.Table) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / name)
    return folder


def ts(text: str, tz: str | None = None) -> pa.Array:
    return (
        pa.array([text]).cast(pa.timestamp("us")).cast(pa.timestamp("us", tz))
        if tz
        else pa.array([text]).cast(pa.timestamp("us"))
    )


# --- each defect alone, and all together ----------------------------------------------------------

DEFECT_CASES = {
    "refunds": {"refunds": 0.05},
    "null_fares": {"null_fares": 0.05},
    "outside_period": {"outside_period": 0.05},
    "all": {"refunds": 0.05, "null_fares": 0.05, "outside_period": 0.05},
}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("defects")
    for name, rates in DEFECT_CASES.items():
        taxi.generate(
            root / name, ["a"], 2000, seed=21, start=MONTHS[0], end=MONTHS[-1], rows_per_file=800, defects=rates
        )
    return root


@pytest.mark.parametrize("case", list(DEFECT_CASES))
def test_each_defect_gives_the_exact_net_cents(spark, datasets, case):
    folder = datasets / case / "a" / "trips"
    table = pq.read_table(folder)
    rows = rows_of(table)
    result = aggregate(spark, folder)
    assert result["revenue_cents"] == expected(rows)
    reference = taxi.revenue_cents_by_month(datasets / case, "a", MONTHS)
    assert result["revenue_cents"] == [reference[m] for m in ["all", *MONTHS]]
    stats = result["stats"]
    in_period = [a for a, m in rows if m in MONTHS]
    negatives = sum(1 for a in in_period if a is not None and a < 0)
    assert stats["rows_read"] == 2000
    assert stats["rows_in_period"] == len(in_period)
    assert stats["rows_outside_period"] == 2000 - len(in_period)
    assert stats["dropped"] == {"null_amount": in_period.count(None), "not_a_number": 0, "negative_amount": 0}
    assert stats["negative_amounts"] == negatives
    assert stats["rows_used"] == len(in_period) - in_period.count(None)
    seen = {"refunds": negatives, "null_fares": in_period.count(None), "outside_period": 2000 - len(in_period)}
    for defect in DEFECT_CASES["all"]:
        assert (seen[defect] > 0) == (defect in DEFECT_CASES[case]), (defect, seen)


def test_dropping_negatives(spark, datasets):
    folder = datasets / "all" / "a" / "trips"
    result = aggregate(spark, folder, policy={"negative_amounts": "drop"})
    rows = rows_of(pq.read_table(folder))
    assert result["revenue_cents"] == expected(rows, drop_negatives=True)
    assert result["revenue_cents"] != expected(rows)
    assert result["stats"]["dropped"]["negative_amount"] == result["stats"]["negative_amounts"] > 0


@pytest.mark.parametrize(
    "policy, message",
    [
        (
            {"negative_amounts": "fail"},
            r"revenue column 'fare_amount' has \d+ negative values out of \d+ rows in the "
            r"period, e.g. -\d+\.\d\d \(policy negative_amounts: fail\)",
        ),
        (
            {"null_amounts": "fail"},
            r"revenue column 'fare_amount' has \d+ null values out of \d+ rows in the period "
            r"\(policy null_amounts: fail\)",
        ),
        (
            {"outside_period": "fail"},
            r"time column 'tpep_pickup_datetime' has \d+ rows outside the declared months, "
            r"e.g. \d{4}-\d\d-\d\d \d\d:\d\d:\d\d",
        ),
    ],
)
def test_policy_fail_choices(spark, datasets, policy, message):
    with pytest.raises(job.InputError, match=message):
        aggregate(spark, datasets / "all" / "a" / "trips", policy=policy)


# --- bad data that still stops the night ---------------------------------------------------------


def simple(folder: Path, amounts, months=None, amount_type=None, name="part-0.parquet") -> Path:
    months = months or [MONTHS[i % 2] for i in range(len(amounts))]
    pickup = pa.array([f"{m}-15 12:00:00" for m in months]).cast(pa.timestamp("us"))
    return write(
        folder, name, pa.table({"tpep_pickup_datetime": pickup, "fare_amount": pa.array(amounts, amount_type)})
    )


@pytest.mark.parametrize(
    "amounts, kwargs, message",
    [
        ([None, None], {}, "has no usable amount: all 2 rows in the period are null (2) or not numbers (0)"),
        (
            ["abc", None, "n/a"],
            {"amount_type": pa.string()},
            "has no usable amount: all 3 rows in the period are null (1) or not numbers (2)",
        ),
        ([5.0, 1.0, -5.0, -2.0], {}, "market 2024-02: net revenue is negative (-100 cents)"),
        ([5.0, 1.0], {"max_cents": 499}, "market 2024-01: net revenue 500 cents is above the program's bound of 499"),
        ([], {"amount_type": pa.float64()}, "input has zero rows"),
    ],
)
def test_stops_the_night(spark, tmp_path, amounts, kwargs, message):
    kwargs = dict(kwargs)  # the case runs once per engine
    max_cents = kwargs.pop("max_cents", job.DEFAULT_MAX_CENTS)
    folder = simple(tmp_path / "d", amounts, **kwargs)
    with pytest.raises(job.InputError) as info:
        aggregate(spark, folder, max_cents=max_cents)
    assert message in str(info.value)


def test_bound_is_inclusive(spark, tmp_path):
    folder = simple(tmp_path / "d", [5.0, 1.0])
    assert aggregate(spark, folder, max_cents=600)["revenue_cents"] == [600, 500, 100, 0]


def test_not_numbers_are_dropped_and_counted(spark, tmp_path):
    folder = simple(tmp_path / "d", ["12.50", "abc", "7", "n/a", "3.25", None], amount_type=pa.string())
    result = aggregate(spark, folder)
    assert result["revenue_cents"] == [2275, 2275, 0, 0]  # the numbers are all January's
    assert result["stats"]["dropped"] == {"null_amount": 1, "not_a_number": 2, "negative_amount": 0}
    with pytest.raises(
        job.InputError,
        match=r"2 values that are not numbers out of 6 rows in the period, "
        r"e.g. 'abc' \(policy null_amounts: fail\)",
    ):
        aggregate(
            spark,
            simple(tmp_path / "e", ["12.50", "abc", "7", "n/a", "3.25", "1"], amount_type=pa.string()),
            policy={"null_amounts": "fail"},
        )


# --- schema tolerance -----------------------------------------------------------------------------


def test_column_names_in_any_case(spark, tmp_path):
    table = pa.table(
        {
            "TPEP_Pickup_DateTime": pa.array(["2024-01-03 10:00:00", "2024-02-03 10:00:00"]).cast(pa.timestamp("us")),
            "Fare_Amount": [10.25, 3.5],
        }
    )
    folder = write(tmp_path / "d", "part-0.parquet", table)
    assert aggregate(spark, folder)["revenue_cents"] == [1375, 1025, 350, 0]
    assert aggregate(spark, folder, columns={"revenue": "FARE_AMOUNT"})["revenue_cents"] == [1375, 1025, 350, 0]


def test_names_that_differ_only_by_case_stop_the_night(spark, tmp_path):
    table = pa.table({"tpep_pickup_datetime": ts("2024-01-03 10:00:00"), "fare_amount": [1.0], "FARE_AMOUNT": [2.0]})
    with pytest.raises(job.InputError, match=r"two columns differ only by case in part-0.parquet: .*fare_amount"):
        aggregate(spark, write(tmp_path / "d", "part-0.parquet", table))


def test_names_in_other_case_across_files(spark, tmp_path):
    folder = write(
        tmp_path / "d", "a.parquet", pa.table({"tpep_pickup_datetime": ts("2024-01-03 10:00:00"), "fare_amount": [1.0]})
    )
    write(folder, "b.parquet", pa.table({"TPEP_PICKUP_DATETIME": ts("2024-01-04 10:00:00"), "Fare_Amount": [2.5]}))
    result = aggregate(spark, folder)
    assert result["revenue_cents"] == [350, 350, 0, 0] and result["stats"]["rows_used"] == 2


@pytest.mark.parametrize("time_type", ["timestamp_ntz", "timestamp_utc", "timestamp_new_york", "date"])
def test_time_kinds(spark, tmp_path, time_type):
    """A pickup at 2024-02-01 03:30 UTC is February whatever the kind; New York's 22:30 the evening
    before is stored as that UTC instant, so it is February too (months are UTC months)."""
    times = {
        "timestamp_ntz": ts("2024-02-01 03:30:00"),
        "timestamp_utc": ts("2024-02-01 03:30:00", "UTC"),
        "timestamp_new_york": ts("2024-02-01 03:30:00", "America/New_York"),
        "date": pa.array([date(2024, 2, 1)]),
    }[time_type]
    folder = write(tmp_path / "d", "part-0.parquet", pa.table({"tpep_pickup_datetime": times, "fare_amount": [9.99]}))
    assert aggregate(spark, folder)["revenue_cents"] == [999, 0, 999, 0]


@pytest.mark.parametrize("time_type", ["timestamp_ntz", "timestamp_utc", "date"])
def test_month_boundaries(spark, tmp_path, time_type):
    """The first and last instant (or day) of each declared month, and the neighbours just outside,
    over a year's end and a leap day, with the months declared out of order: each fare lands in its
    month (each fare is a power of two, so a sum names its rows)."""
    edges = {
        "2023-11-30 23:59:59.999999": None,
        "2023-12-01 00:00:00": "2023-12",
        "2023-12-31 23:59:59.999999": "2023-12",
        "2024-01-01 00:00:00": "2024-01",
        "2024-01-31 23:59:59.999999": "2024-01",
        "2024-02-01 00:00:00": "2024-02",
        "2024-02-29 23:59:59.999999": "2024-02",
        "2024-03-01 00:00:00": None,
    }
    if time_type == "date":
        edges = {text[:10]: month for text, month in edges.items()}
        times = pa.array([date.fromisoformat(text) for text in edges])
    else:
        times = pa.array(list(edges)).cast(pa.timestamp("us"))
        times = times.cast(pa.timestamp("us", "UTC")) if time_type == "timestamp_utc" else times
    fares = [2**i for i in range(len(edges))]
    folder = write(tmp_path / "d", "part-0.parquet", pa.table({"tpep_pickup_datetime": times, "fare_amount": fares}))
    months = ["2024-02", "2023-12", "2024-01"]
    per = [sum(100 * f for f, m in zip(fares, edges.values()) if m == month) for month in months]
    assert per == [100 * (32 + 64), 100 * (2 + 4), 100 * (8 + 16)]
    result = aggregate(spark, folder, months=months)
    assert result["revenue_cents"] == [sum(per), *per]
    assert (result["stats"]["rows_in_period"], result["stats"]["rows_outside_period"]) == (6, 2)


@pytest.mark.parametrize(
    "amount_type, values, cents",
    [
        (pa.int32(), [12, -3], [1200, -300]),
        (pa.int64(), [12, 7], [1200, 700]),
        (pa.float32(), [12.5, 0.25], [1250, 25]),
        (pa.float64(), [0.125, 1.005], [13, 101]),  # half-cent ties take the decimal cast, half-up
        (pa.decimal128(10, 3), [Decimal("1.005"), Decimal("2.004")], [101, 200]),  # half-up to cents
        (pa.decimal128(38, 2), [Decimal("123456789.01"), Decimal("0.99")], [12345678901, 99]),
        (pa.string(), [" 12.50", "1e1"], [1250, 1000]),
    ],
)
def test_amount_types(spark, tmp_path, amount_type, values, cents):
    folder = simple(tmp_path / "d", values, months=["2024-01", "2024-01"], amount_type=amount_type)
    assert aggregate(spark, folder)["revenue_cents"] == [sum(cents), sum(cents), 0, 0]


def test_month_sums_beyond_64_bits_are_exact(spark, tmp_path):
    """Cents are summed as 64-bit integers; a month whose sum would overflow is summed again as
    exact decimals."""
    folder = simple(tmp_path / "d", [9 * 10**15] * 20, months=["2024-01"] * 20, amount_type=pa.int64())
    assert aggregate(spark, folder, max_cents=10**20)["revenue_cents"] == [18 * 10**18, 18 * 10**18, 0, 0]


def test_files_of_one_dataset_with_different_schemas(spark, tmp_path):
    """One month with integer fares, one with doubles, one with decimals and another time kind,
    one with other letter case: read per schema and unioned by name, exactly."""
    folder = tmp_path / "drift"
    write(
        folder,
        "2024-01.parquet",
        pa.table(
            {
                "tpep_pickup_datetime": pa.array(["2024-01-05 10:00:00"] * 3).cast(pa.timestamp("us")),
                "fare_amount": pa.array([10, 20, -5], pa.int64()),
            }
        ),
    )
    write(
        folder,
        "2024-02.parquet",
        pa.table(
            {
                "tpep_pickup_datetime": pa.array(["2024-02-05 10:00:00"] * 3)
                .cast(pa.timestamp("us"))
                .cast(pa.timestamp("us", "UTC")),
                "fare_amount": pa.array([1.25, None, 2.5], pa.float64()),
            }
        ),
    )
    write(
        folder,
        "2024-03.parquet",
        pa.table(
            {
                "Tpep_Pickup_Datetime": pa.array(["2024-03-05 10:00:00", "2002-12-31 23:59:59"]).cast(
                    pa.timestamp("ms")
                ),
                "Fare_Amount": pa.array([Decimal("3.33"), Decimal("4.00")], pa.decimal128(9, 2)),
                "extra": [1.0, 2.0],
            }
        ),
    )
    result = aggregate(spark, folder)
    assert result["revenue_cents"] == [2500 + 375 + 333, 2500, 375, 333]
    stats = result["stats"]
    assert stats["schemas"] == 3
    assert (stats["rows_read"], stats["rows_in_period"], stats["rows_outside_period"]) == (8, 7, 1)
    assert stats["dropped"]["null_amount"] == 1 and stats["negative_amounts"] == 1


def test_integer_and_long_files(spark, tmp_path):
    folder = tmp_path / "ints"
    for i, kind in enumerate((pa.int32(), pa.int64())):
        write(
            folder,
            f"part-{i}.parquet",
            pa.table({"tpep_pickup_datetime": ts("2024-03-01 00:00:00"), "fare_amount": pa.array([7], kind)}),
        )
    result = aggregate(spark, folder)
    assert result["revenue_cents"] == [1400, 0, 0, 1400]
    assert result["stats"]["schemas"] == 2  # Spark 4.2 does not merge int and bigint: read per schema


def test_same_schema_files_are_one_read(spark, datasets):
    assert aggregate(spark, datasets / "all" / "a" / "trips")["stats"]["schemas"] == 1  # 3 files, one schema


def test_a_file_missing_the_column(spark, tmp_path):
    """A file that lacks the revenue column but merges with the others reads as null amounts:
    counted (and dropped, or stopping the night under null_amounts: fail). If its types do not
    merge, Spark reads the file on its own and names it; the arrow engine reads every file on its
    own, so it reads null amounts there too."""
    folder = simple(tmp_path / "d", [1.0], name="a.parquet")
    write(folder, "b.parquet", pa.table({"tpep_pickup_datetime": ts("2024-01-20 00:00:00"), "fare": [2.0]}))
    result = aggregate(spark, folder)
    assert result["revenue_cents"] == [100, 100, 0, 0] and result["stats"]["dropped"]["null_amount"] == 1
    with pytest.raises(job.InputError, match="1 null values"):
        aggregate(spark, folder, policy={"null_amounts": "fail"})
    write(
        folder,
        "c.parquet",
        pa.table(
            {
                "tpep_pickup_datetime": ts("2024-01-20 00:00:00", "UTC"),
                "fare": pa.array([2], pa.int32()),
                "fare_amount": ["x"],
            }
        ),
    )
    write(folder, "d.parquet", pa.table({"tpep_pickup_datetime": ts("2024-01-20 00:00:00", "UTC"), "fare": [2]}))
    if spark[1] == "arrow":
        result = aggregate(spark, folder)
        assert result["revenue_cents"] == [100, 100, 0, 0]
        assert result["stats"]["dropped"] == {"null_amount": 2, "not_a_number": 1, "negative_amount": 0}
        return
    with pytest.raises(job.InputError, match=r"revenue column 'fare_amount' is missing in [bd].parquet"):
        aggregate(spark, folder)


# --- one licensee of a dataset holding several ----------------------------------------------------


@pytest.fixture(scope="module")
def hvfhv(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hv") / "fhvhv"
    taxi.generate_hvfhv(folder, 4000, seed=13, start="2024-01", end="2024-02", rows_per_file=1500, defects=True)
    return folder, pq.read_table(folder)


HV_COLUMNS = {"revenue": "base_passenger_fare", "time": "pickup_datetime", "participant": "hvfhs_license_num"}


@pytest.mark.parametrize("licence", taxi.HVFHV_LICENCES)
def test_licensee_selection(spark, hvfhv, licence):
    folder, table = hvfhv
    months = ["2024-01", "2024-02"]
    result = aggregate(spark, folder, months, columns=HV_COLUMNS, value=licence)
    rows = rows_of(table, "base_passenger_fare", "pickup_datetime", ("hvfhs_license_num", licence))
    assert result["revenue_cents"] == expected(rows, months)
    reference = taxi.hvfhv_revenue_cents_by_month(folder, licence, months)
    assert result["revenue_cents"] == [reference[m] for m in ["all", *months]]
    assert result["stats"]["rows_other_participants"] == table.num_rows - len(rows)
    assert result["stats"]["rows_in_period"] + result["stats"]["rows_outside_period"] == len(rows)


def test_unknown_licence_stops_the_night(spark, hvfhv):
    with pytest.raises(job.InputError, match="no rows with hvfhs_license_num = 'HV0009' among 4000 rows"):
        aggregate(spark, hvfhv[0], ["2024-01"], columns=HV_COLUMNS, value="HV0009")


def test_participant_column_missing(spark, datasets):
    with pytest.raises(job.InputError, match="participant column 'hvfhs_license_num' is missing"):
        aggregate(spark, datasets / "all" / "a" / "trips", columns={"participant": "hvfhs_license_num"}, value="HV0003")
