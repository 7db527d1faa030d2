"""The taxi job's arrow engine (include/jobs/mpc_arrow.py) without Spark: amounts to exact cents
against an independent Decimal reference (known values, half-cent ties, extremes and random
doubles), times to months in every unit against Python's calendar, the exact sums beyond 2**53,
the examples as Spark prints them, the files a dataset holds and the schema checks. Its Spark tasks
run in tests/test_trip_policy_spark.py (every case on both engines) and through spark-submit in
tests/test_taxi_revenue_job.py; ``aggregation.engine`` in the spec and the aggregate task here.
"""

from __future__ import annotations

import copy
import os
import random
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import localnet
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import load_raw as load
from conftest import party_settings, raw_template, upload_folder

from mpc_federation.programs import import_file
from mpc_federation.spec import SpecError

REPO = Path(__file__).resolve().parents[1]
JOBS = REPO / "include" / "jobs"
TAXI = REPO / "include" / "federations" / "taxi_hhi.yaml"
COLUMNS = {"revenue": "fare_amount", "time": "tpep_pickup_datetime", "participant": None}

arrow = import_file(JOBS / "mpc_arrow.py", "mpc_arrow_tests")


def reference_cents(value) -> int | None:
    """Independent: the value's decimal text, half-up to the cent, None outside decimal(18,2)."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return None
    text = repr(value) if isinstance(value, float) else str(value).strip()
    try:
        cents = int((Decimal(text) * 100).quantize(1, rounding=ROUND_HALF_UP))
    except ArithmeticError:
        return None
    return cents if abs(cents) < 10**18 else None


# -- amounts ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value, cents",
    [
        (12, 1200),
        (-3, -300),
        (10**16 - 1, (10**16 - 1) * 100),
        (10**16, None),  # above decimal(18,2)
        (0.125, 13),  # a half-cent tie: half-up
        (1.005, 101),  # its shortest text is 1.005 (the double is a little below): half-up
        (-0.125, -13),
        (123456.785, 12345679),
        (float("nan"), None),
        (float("inf"), None),
        (1e20, None),
        (" 12.50", 1250),
        ("\t7\n", 700),
        ("1e1", 1000),
        ("+.5", 50),
        ("5.", 500),
        ("1_000", None),  # Python's Decimal takes it, Spark's cast does not
        ("NaN", None),
        ("abc", None),
        ("9999999999999999.995", None),  # rounds to 10**16: above decimal(18,2)
        (Decimal("1.005"), 101),
        (Decimal("-2.004"), -200),
    ],
)
def test_cents_of_one_amount(value, cents):
    assert arrow.cents_of(value) == cents


def test_float_amounts_equal_the_decimal_cast():
    """Random doubles of every kind (most take numpy's shortcut, ties and extremes the decimal
    cast), with nulls, in float64 and float32 columns."""
    rng = random.Random(7)
    values = [round(rng.uniform(-500, 500), 2) for _ in range(4000)]
    values += [k / 200 for k in range(-400, 400)]  # half cents: every one a tie or next to one
    values += [rng.uniform(-1e12, 1e12) for _ in range(300)]  # beyond the shortcut's 1e9
    values += [rng.uniform(-1e-3, 1e-3) for _ in range(300)]
    values += [None, float("nan"), float("inf"), float("-inf"), 1e16, -1e16, 9.999999999999998e15, 0.0, -0.0]
    rng.shuffle(values)
    for kind in (pa.float64(), pa.float32()):
        column = pa.array(values, kind)
        amounts = arrow.amount_cents(column)
        cents, known, null, money, bound = amounts.exact(), amounts.known, amounts.null, amounts.money, amounts.bound
        assert (money[known] == cents[known]).all() and np.abs(cents[known]).max() <= bound
        expected = [reference_cents(None if v is None else float(v)) for v in column.to_pylist()]
        assert null.tolist() == [v is None for v in column.to_pylist()]
        assert known.tolist() == [c is not None for c in expected]
        assert [int(c) if k else None for c, k in zip(cents, known)] == expected
    assert sum(1 for v in values if v is not None and arrow.cents_of(v) is not None) > 5000


@pytest.mark.parametrize(
    "kind, values",
    [
        (pa.int8(), [1, -2, None, 127]),
        (pa.int64(), [10**16 - 1, 10**16, -(10**16), None, 0]),
        (pa.uint64(), [2**64 - 1, 5, None]),
        (pa.decimal128(10, 3), [Decimal("1.005"), Decimal("-1.005"), None, Decimal("2.004")]),
        (pa.string(), [" 12.50", "abc", None, "1e400", "-3"]),
        (pa.null(), [None, None]),
    ],
)
def test_other_amount_types(kind, values):
    amounts = arrow.amount_cents(pa.array(values, kind))
    cents, known, null, money, bound = amounts.exact(), amounts.known, amounts.null, amounts.money, amounts.bound
    assert (money[known] == cents[known]).all() and (not known.any() or np.abs(cents[known]).max() <= bound)
    expected = [reference_cents(v) for v in values]
    assert [int(c) if k else None for c, k in zip(cents, known)] == expected
    assert null.tolist() == [v is None for v in values]


def test_a_cent_beyond_float64s_integers():
    """A double whose cents exceed 2**53 (below decimal(18,2)'s bound): exact int64 cents besides."""
    amounts = arrow.amount_cents(pa.array([9.5e15, 1.25, None, 123456789012345.67]))
    assert amounts.bound == float("inf") and amounts.cents is not None
    assert amounts.exact()[amounts.known].tolist() == [reference_cents(v) for v in (9.5e15, 1.25, 123456789012345.67)]
    key = np.zeros(4, dtype=np.intp)
    assert arrow._sums(key, amounts, amounts.known, 1) == [sum(amounts.exact()[amounts.known].tolist())]


def test_exact_sums_beyond_two_to_the_53():
    """In float64 while no partial sum can reach 2**53, in two 32-bit halves beyond: exact either way."""
    rng = np.random.default_rng(3)
    for bound in (10**6, 2**40, 10**17):
        value = rng.integers(-bound, bound, size=100_000, dtype=np.int64)
        key = rng.integers(0, 5, size=100_000).astype(np.intp)
        ones = np.ones(len(value), dtype=bool)
        used = rng.random(len(value)) < 0.9
        amounts = arrow._with_money(value, ones, ~ones)
        for rows in (ones, used):
            sums = arrow._sums(key, amounts, rows, 3)
            assert sums == [sum(int(v) for v in value[(key == i) & rows]) for i in range(3)]


@pytest.mark.parametrize(
    "value, text",
    [
        (1e20, "1.0E20"),
        (1e7, "1.0E7"),
        (1234567.5, "1234567.5"),
        (0.001, "0.001"),
        (1.5e-5, "1.5E-5"),
        (-2.5e-4, "-2.5E-4"),
        (float("nan"), "NaN"),
        (float("-inf"), "-Infinity"),
        ("n/a", "n/a"),
        (Decimal("100000000000000000"), "100000000000000000"),
    ],
)
def test_examples_print_as_spark_casts_them(value, text):
    assert arrow.java_text(value) == text


# -- times -----------------------------------------------------------------------------------------
MONTHS = ["2024-02", "2023-12", "2024-01", "2024-06"]  # out of order, with a gap


def month_of(moment) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


@pytest.mark.parametrize(
    "kind", [pa.timestamp("s"), pa.timestamp("ms"), pa.timestamp("us", "UTC"), pa.timestamp("ns"), pa.date32()]
)
def test_month_index_matches_the_calendar(kind):
    rng = random.Random(11)
    start = datetime(2023, 10, 1)
    moments = [start + timedelta(seconds=rng.randrange(0, 300 * 86400)) for _ in range(3000)]
    edges = [datetime(2023, 12, 1), datetime(2024, 1, 1), datetime(2024, 3, 1), datetime(2024, 6, 1)]
    moments += [e + timedelta(microseconds=d) for e in edges for d in (-1_000_000, 0)]
    if pa.types.is_date(kind):
        moments = [m.date() for m in moments]
        column = pa.array(moments + [None], kind)
    else:
        column = pa.array(moments + [None], pa.timestamp(kind.unit)).cast(kind)
    index = arrow.month_index(column, arrow.month_bounds(MONTHS, kind))
    expected = [MONTHS.index(month_of(m)) if month_of(m) in MONTHS else len(MONTHS) for m in moments]
    assert index.tolist() == [*expected, len(MONTHS)]  # a null time: outside


def test_time_text_as_spark_prints_it():
    ts = pa.timestamp("us")
    tick = int((datetime(2023, 12, 31, 23, 59, 59, 500000) - datetime(1970, 1, 1)) / timedelta(microseconds=1))
    assert arrow.time_text(tick, ts) == "2023-12-31 23:59:59.5"
    assert arrow.time_text(tick - 500000, ts) == "2023-12-31 23:59:59"
    assert arrow.time_text(tick // 10**6 * 10**9 + 1, pa.timestamp("ns")) == "2023-12-31 23:59:59.000000001"
    assert arrow.time_text((date(2002, 12, 31) - date(1970, 1, 1)).days, pa.date32()) == "2002-12-31"
    utc = datetime(2024, 2, 1, 3, 30, tzinfo=UTC)
    assert arrow.time_text(int(utc.timestamp()) * 1000, pa.timestamp("ms", "UTC")) == "2024-02-01 03:30:00"


# -- files and schemas -----------------------------------------------------------------------------
def write(path: Path, **columns) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path


def trips(path: Path, fare=None, **extra) -> Path:
    times = pa.array(["2024-01-05 10:00:00"]).cast(pa.timestamp("us"))
    return write(path, tpep_pickup_datetime=times, fare_amount=fare if fare is not None else [1.5], **extra)


def test_the_files_of_a_dataset(tmp_path):
    data = tmp_path / "data"
    a = trips(data / "a.parquet")
    b = trips(data / "year=2024" / "b.parquet")
    trips(data / "_SUCCESS")
    trips(data / ".hidden.parquet")
    trips(data / "_temporary" / "c.parquet")
    assert arrow.list_files(str(data)) == [str(a), str(b)]
    assert arrow.list_files(data.as_uri()) == [str(a), str(b)]
    assert arrow.list_files(str(a)) == [str(a)]
    with pytest.raises(arrow.DataError, match="input path does not exist"):
        arrow.list_files(str(tmp_path / "nothing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(arrow.DataError, match="no Parquet data found in"):
        arrow.list_files(str(tmp_path / "empty"))
    with pytest.raises(arrow.DataError, match="reads local files .* and s3:// or s3a://, not gs://b/t: use the spark"):
        arrow.list_files("gs://b/t")


def test_s3_options_from_hadoops_s3a_settings():
    """The endpoint and credentials of Hadoop's s3a settings, per bucket where Hadoop has them, so
    one spark-defaults.conf serves both engines."""
    settings = {
        "fs.s3a.endpoint": "http://127.0.0.1:9000/",
        "fs.s3a.connection.ssl.enabled": "true",  # Hadoop's default; a scheme in the endpoint wins
        "fs.s3a.access.key": "AK",
        "fs.s3a.secret.key": "SK",
        "fs.s3a.endpoint.region": "eu-west-1",
        "fs.s3a.bucket.other.endpoint": "minio.internal:9000",
        "fs.s3a.bucket.other.connection.ssl.enabled": "false",
        "fs.s3a.bucket.other.session.token": "T",
        "fs.s3a.bucket.other.path.style.access": "true",  # MinIO's choice
        "fs.s3a.path.style.access": "false",  # Hadoop's default: buckets by host name
    }
    common = {"access_key": "AK", "secret_key": "SK", "region": "eu-west-1", "checksum_validation": "when_required"}
    assert arrow.s3_options("trips", settings.get) == {
        **common,
        "endpoint_override": "127.0.0.1:9000",
        "scheme": "http",
        "force_virtual_addressing": True,
    }
    assert arrow.s3_options("other", settings.get) == {
        **common,
        "session_token": "T",
        "endpoint_override": "minio.internal:9000",
        "scheme": "http",
        "force_virtual_addressing": False,
    }
    on_aws = {
        "fs.s3a.endpoint": "s3.eu-west-1.amazonaws.com",
        "fs.s3a.secret.key": " ",  # blank: not set
        "fs.s3a.checksum.validation": "true",
    }
    assert arrow.s3_options("b", on_aws.get) == {
        "checksum_validation": "when_supported",
        "endpoint_override": "s3.eu-west-1.amazonaws.com",
        "scheme": "https",
        "force_virtual_addressing": True,
    }
    default = {"checksum_validation": "when_required"}  # pyarrow's chain: AWS_* variables, ~/.aws, the instance's role
    assert arrow.s3_options("b", {}.get) == default
    public = "org.apache.hadoop.fs.s3a.AnonymousAWSCredentialsProvider"
    assert arrow.s3_options("b", {"fs.s3a.aws.credentials.provider": public}.get) == {**default, "anonymous": True}
    keys_first = {"fs.s3a.aws.credentials.provider": f"SimpleAWSCredentialsProvider,{public}", **settings}
    assert "anonymous" not in arrow.s3_options("trips", keys_first.get)  # keys are given: signed
    with pytest.raises(arrow.DataError, match=r"fs.s3a.access.key and fs.s3a.secret.key go together \(bucket b\)"):
        arrow.s3_options("b", {"fs.s3a.access.key": "AK"}.get)
    source = arrow.source_of("s3a://trips/year=2024/", settings.get)
    assert (source.uri, source.root, source.s3["scheme"]) == ("s3a://trips/year=2024/", "trips/year=2024", "http")
    assert arrow.source_of("s3://trips").root == "trips" and arrow.source_of(source) is source
    assert arrow.source_of("file:///data/trips") == arrow.Source("file:///data/trips", "/data/trips")


@pytest.fixture(scope="module", params=["moto", "rclone"])
def store(request, tmp_path_factory):
    """Each of the two S3 servers of the tests (rclone's checks the keys; moto takes any)."""
    server = localnet.S3Server(tmp_path_factory.mktemp(request.param), kind=request.param).start()
    yield server
    server.stop()


def test_a_dataset_on_s3(tmp_path, store):
    """The same files, row groups, schemas and counts from the S3 server as from the local disk;
    a missing prefix, a missing bucket, a file that is not Parquet, wrong keys and a store that does
    not answer are named in one line."""
    data = tmp_path / "data"
    rng = random.Random(11)
    times = [datetime(2023, 12, 25) + timedelta(minutes=rng.randrange(0, 70 * 24 * 60)) for _ in range(5000)]
    fares = [None if rng.random() < 0.05 else round(rng.uniform(-10, 90), 2) for _ in times]
    big = data / "year=2024" / "big.parquet"
    big.parent.mkdir(parents=True)
    pq.write_table(pa.table({"tpep_pickup_datetime": times, "fare_amount": fares}), big, row_group_size=1200)
    trips(data / "a.parquet", fare=pa.array([7], pa.int32()))
    trips(data / "_SUCCESS")
    trips(data / "_temporary" / "c.parquet")
    uri = upload_folder(store, data, "arrow-engine", "trips")
    source = arrow.source_of(uri, store.s3a_settings().get)
    names = ["arrow-engine/trips/a.parquet", "arrow-engine/trips/year=2024/big.parquet"]
    assert arrow.list_files(source) == names
    assert arrow.list_files(arrow.source_of(f"{uri}/a.parquet", store.s3a_settings().get)) == names[:1]
    months = ["2024-01", "2024-02"]
    local_units, local_schemas = arrow.plan(str(data), COLUMNS)
    units, schemas = arrow.plan(source, COLUMNS)
    assert [(os.path.basename(f), g) for f, g in units] == [(os.path.basename(f), g) for f, g in local_units]
    assert len(units) == 6 and schemas == local_schemas == 2
    [remote] = arrow.task_counts(units, months, COLUMNS, None, False, arrow.EXAMPLES, source)
    [local] = arrow.task_counts(local_units, months, COLUMNS, None, False)
    assert remote == local and sum(remote["counts"]) == 5001

    def refused(uri: str, message: str, settings=None) -> None:
        with pytest.raises(arrow.DataError, match=message):
            arrow.plan(arrow.source_of(uri, (settings or store.s3a_settings()).get), COLUMNS)

    refused(f"{uri}/nothing", r"^input path does not exist: s3a://arrow-engine/trips/nothing$")
    refused("s3a://no-such-bucket/t", r"^input path does not exist: s3a://no-such-bucket/t \(no bucket no-such-")
    bad = tmp_path / "bad"
    trips(bad / "a.parquet")
    (bad / "b.parquet").write_bytes(b"not parquet at all")
    bad_uri = upload_folder(store, bad, "arrow-engine", "bad")
    refused(bad_uri, r"^cannot read the input s3a://arrow-engine/bad: b.parquet: ")
    if store.kind == "rclone":
        wrong = {**store.s3a_settings(), "fs.s3a.secret.key": "not the key"}
        refused(uri, r"^cannot read the input s3a://arrow-engine/trips: .*ACCESS_DENIED", wrong)
        # rclone sends the whole object's checksum with a range of it: refused only when asked for
        checked = {**store.s3a_settings(), "fs.s3a.checksum.validation": "true"}
        mismatch = r"^cannot read the input s3a://arrow-engine/trips: big.parquet: .*checksums mismatch"
        refused(uri, mismatch, checked)
        assert arrow.CHECKSUMS not in os.environ  # set only while a client is made
        with pytest.MonkeyPatch.context() as environment:
            environment.setenv(arrow.CHECKSUMS, "when_supported")  # the environment's choice wins
            arrow._s3_client.cache_clear()
            refused(uri, mismatch)
        arrow._s3_client.cache_clear()
    closed = {**store.s3a_settings(), "fs.s3a.endpoint": "http://127.0.0.1:9"}
    refused(uri, r"^cannot read the input s3a://arrow-engine/trips: .*(connect|Connection)", closed)


def test_s3_keys_from_the_environment(tmp_path, monkeypatch):
    """Without keys in the s3a settings, pyarrow's own chain finds them, here in the AWS_* variables
    of the task's environment; rclone's server checks them."""
    server = localnet.S3Server(tmp_path / "s3", kind="rclone").start()
    try:
        uri = upload_folder(server, trips(tmp_path / "data" / "a.parquet").parent, "keys", "trips")
        endpoint = {k: v for k, v in server.s3a_settings().items() if not k.endswith(".key")}
        for secret, works in (("testing", True), ("not the key", False)):
            monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
            arrow._s3_client.cache_clear()  # a client reads the environment when it is made
            source = arrow.source_of(uri, endpoint.get)
            assert "access_key" not in source.s3
            if works:
                assert arrow.list_files(source) == ["keys/trips/a.parquet"]
            else:
                with pytest.raises(arrow.DataError, match=r"^cannot read the input s3a://keys/trips: .*ACCESS_DENIED"):
                    arrow.list_files(source)
    finally:
        arrow._s3_client.cache_clear()
        server.stop()


def test_plan_counts_schemas_and_refuses_bad_ones(tmp_path):
    data = tmp_path / "data"
    trips(data / "a.parquet")
    trips(data / "b.parquet", fare=[2.5])
    trips(data / "c.parquet", fare=pa.array([3], pa.int32()))
    units, schemas = arrow.plan(str(data), COLUMNS)
    assert [os.path.basename(path) for path, _ in units] == ["a.parquet", "b.parquet", "c.parquet"] and schemas == 2
    cases = {
        "case": ({"FARE_AMOUNT": [1.0]}, r"two columns differ only by case in d.parquet: fare_amount, FARE_AMOUNT"),
        "type": (
            {"fare_amount": [True]},
            r"revenue column 'fare_amount' in d.parquet has type bool, expected a number",
        ),
    }
    for name, (columns, message) in cases.items():
        bad = tmp_path / name
        trips(bad / "a.parquet")
        times = pa.array(["2024-01-05 10:00:00"]).cast(pa.timestamp("us"))
        write(
            bad / "d.parquet",
            tpep_pickup_datetime=times,
            **({"fare_amount": [1.0]} if name == "case" else {}),
            **columns,
        )
        with pytest.raises(arrow.DataError, match=message):
            arrow.plan(str(bad), COLUMNS)
    wrong_time = write(tmp_path / "t" / "a.parquet", tpep_pickup_datetime=["2024-01-05"], fare_amount=[1.0])
    with pytest.raises(arrow.DataError, match="time column 'tpep_pickup_datetime' in a.parquet has type string"):
        arrow.plan(str(wrong_time), COLUMNS)
    missing = write(tmp_path / "m" / "a.parquet", tpep_pickup_datetime=[datetime(2024, 1, 5)], total=[1.0])
    with pytest.raises(arrow.DataError, match=r"revenue column 'fare_amount' is missing; columns are: "):
        arrow.plan(str(missing), COLUMNS)
    (tmp_path / "n").mkdir()
    (tmp_path / "n" / "a.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(arrow.DataError, match=r"cannot read the input .*: a.parquet: "):
        arrow.plan(str(tmp_path / "n"), COLUMNS)


def test_a_large_file_is_shared_by_its_row_groups(tmp_path):
    """The unit of work is a row group: one large file is read by every core, and the tasks' counts
    add up to the file's."""
    rng = random.Random(5)
    start = datetime(2023, 12, 20)
    times = [start + timedelta(minutes=rng.randrange(0, 130 * 24 * 60)) for _ in range(10_000)]
    fares = [None if rng.random() < 0.02 else round(rng.uniform(-20, 80), 2) for _ in times]
    path = tmp_path / "big.parquet"
    pq.write_table(pa.table({"tpep_pickup_datetime": times, "fare_amount": fares}), path, row_group_size=1500)
    units, schemas = arrow.plan(str(path), COLUMNS)
    assert units == [(str(path), g) for g in range(7)] and schemas == 1
    months = ["2024-01", "2024-02", "2024-03"]
    whole = arrow.file_counts(str(path), months, COLUMNS, None, False)
    [first], [second] = (arrow.task_counts(part, months, COLUMNS, None, False) for part in (units[:3], units[3:]))
    assert arrow.merge(first, second) == whole
    assert first["counts"] != whole["counts"] and sum(first["counts"]) + sum(second["counts"]) == 10_000


def test_one_file_counts_every_class(tmp_path):
    """One file with every kind of row: the counts, the sums and the examples Spark would quote."""
    times = pa.array(
        ["2024-01-05 10:00:00"] * 5 + ["2023-11-30 23:00:00", "2023-11-02 01:00:00", None, "2024-02-01 00:00:00"]
    ).cast(pa.timestamp("us"))
    fares = pa.array(["10.50", "-2.25", "abc", None, "-1.10", "7", "8", "9", "0.995"])
    path = write(tmp_path / "a.parquet", tpep_pickup_datetime=times, fare_amount=fares)
    found = arrow.file_counts(str(path), ["2024-01", "2024-02"], COLUMNS, None, False)
    row = arrow.row_of(found, 2)
    assert (row["rows_read"], row["rows_in_period"], row["rows_outside_period"]) == (9, 6, 3)
    assert (row["null_amounts"], row["not_numbers"], row["negatives"], row["rows_used"]) == (1, 1, 2, 4)
    assert (row["m0"], row["m1"]) == (Decimal("7.15"), Decimal("1.00"))
    assert row["outside_example"] == "2023-11-02 01:00:00" and row["not_number_example"] == "abc"
    assert row["negative_example"] == Decimal("-2.25")
    dropped = arrow.row_of(arrow.file_counts(str(path), ["2024-01", "2024-02"], COLUMNS, None, True), 2)
    assert (dropped["m0"], dropped["rows_used"]) == (Decimal("10.50"), 2)
    # Only the examples a 'fail' choice of the policy quotes are looked for; the counts are the same.
    quiet = arrow.row_of(arrow.file_counts(str(path), ["2024-01", "2024-02"], COLUMNS, None, False, ("negative",)), 2)
    assert quiet["outside_example"] is None and quiet["not_number_example"] is None
    assert quiet["negative_example"] == Decimal("-2.25") and quiet["rows_used"] == row["rows_used"]


# -- the spec and the aggregate task ---------------------------------------------------------------
def test_engine_in_the_spec_and_the_task(tmp_path):
    from mpc_operators.aggregate import aggregate_task

    raw = raw_template(TAXI)
    plain = load(tmp_path, raw, "plain.yaml")
    assert plain.aggregation_engine == "spark"
    on = copy.deepcopy(raw)
    on["aggregation"]["engine"] = "arrow"
    spec = load(tmp_path, on, "arrow.yaml")
    assert spec.aggregation_engine == "arrow" and spec.spec_hash != plain.spec_hash
    party = next(p["id"] for p in raw["parties"] if "input" in p["roles"])
    task, plain_task = (aggregate_task(s, party, party_settings(party_id=party)) for s in (spec, plain))
    assert task.application_args == [*plain_task.application_args, "--engine", "arrow"]
    assert task.py_files.split(",") == [str(JOBS / "mpc_job.py"), str(JOBS / "mpc_arrow.py")]
    for value, message in (("duckdb", "must be one of spark, arrow"), ("arrow", "does not combine with")):
        bad = copy.deepcopy(raw)
        bad["aggregation"].update(engine=value, oblivious=value == "arrow")
        with pytest.raises(SpecError) as info:
            load(tmp_path, bad, "bad.yaml")
        assert info.value.field_path == "aggregation.engine" and message in str(info.value)
