"""Tests of the synthetic taxi trip generator and its plaintext revenue reference."""

from __future__ import annotations

import subprocess
import sys
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from mpc_federation.programs import import_file

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "include" / "datagen" / "taxi_trips.py"


taxi = import_file(SCRIPT)

MONEY = [
    "fare_amount",
    "extra",
    "mta_tax",
    "tip_amount",
    "tolls_amount",
    "improvement_surcharge",
    "total_amount",
    "congestion_surcharge",
    "airport_fee",
]


def read(root: Path, company: str) -> pa.Table:
    files = sorted((root / company / "trips").glob("part-*.parquet"))
    return pa.concat_tables(pq.read_table(f) for f in files)


def cents(values) -> np.ndarray:
    return np.rint(np.asarray(values) * 100).astype(np.int64)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """3000 trips, 3 companies (equal split), Jan-Mar 2024, several files per company."""
    out = tmp_path_factory.mktemp("trips")
    counts = taxi.generate(out, ["a", "b", "c"], 3000, seed=11, start="2024-01", end="2024-03", rows_per_file=400)
    return out, counts


def test_months_between():
    assert taxi.months_between("2024-01", "2024-03") == ["2024-01", "2024-02", "2024-03"]
    assert taxi.months_between("2023-11", "2024-02") == ["2023-11", "2023-12", "2024-01", "2024-02"]
    assert taxi.months_between("2024-05", "2024-05") == ["2024-05"]
    with pytest.raises(ValueError, match="before"):
        taxi.months_between("2024-03", "2024-01")
    with pytest.raises(ValueError, match="YYYY-MM"):
        taxi.months_between("2024-1", "2024-03")


def test_split_defaults_and_custom():
    five = ["a", "b", "c", "d", "e"]
    assert taxi.split_trips(1000, five) == {"a": 500, "b": 200, "c": 100, "d": 100, "e": 100}
    assert taxi.split_trips(10, ["x", "y", "z"]) == {"x": 4, "y": 3, "z": 3}  # equal split, sum kept
    assert taxi.split_trips(7, ["x", "y"], [70, 30]) == {"x": 5, "y": 2}
    assert sum(taxi.split_trips(12345, five, ["33.3", "16.7", 20, 20, 10]).values()) == 12345


def test_split_must_match_companies():
    with pytest.raises(ValueError, match="split has 2 percentages but there are 3 companies"):
        taxi.split_trips(100, ["a", "b", "c"], [50, 50])
    with pytest.raises(ValueError, match="sum to 100"):
        taxi.split_trips(100, ["a", "b"], [50, 40])
    with pytest.raises(ValueError, match="split must be numbers"):
        taxi.split_trips(100, ["a", "b"], ["50", "x"])


def test_split_respected(tmp_path):
    counts = taxi.generate(tmp_path, "a,b,c,d,e", 2000, seed=1, start="2024-01", end="2024-01")
    assert counts == {"a": 1000, "b": 400, "c": 200, "d": 200, "e": 200}
    for company, n in counts.items():
        assert read(tmp_path, company).num_rows == n


def test_schema_and_value_ranges(small):
    out, counts = small
    assert counts == {"a": 1000, "b": 1000, "c": 1000}
    assert len(list((out / "a" / "trips").glob("part-*.parquet"))) == 3  # 400 + 400 + 200 rows
    table = read(out, "a")
    assert table.schema.equals(taxi.SCHEMA)
    assert table.schema.field("tpep_pickup_datetime").type == pa.timestamp("us")  # naive
    t = {name: table.column(name).to_numpy() for name in table.column_names}
    for name in MONEY:  # every amount has exactly two decimals
        assert np.array_equal(cents(t[name]) / 100, t[name]), name
    fare = cents(t["fare_amount"])
    assert fare.min() >= 250 and fare.max() <= 50_000
    parts = sum(cents(t[name]) for name in MONEY if name != "total_amount")
    assert np.array_equal(parts, cents(t["total_amount"]))
    assert (t["tpep_dropoff_datetime"] > t["tpep_pickup_datetime"]).all()
    assert (t["trip_distance"] > 0).all()
    assert set(np.unique(t["VendorID"])) <= {1, 2}
    assert set(np.unique(t["store_and_fwd_flag"])) <= {"Y", "N"}
    assert t["PULocationID"].min() >= 1 and t["PULocationID"].max() <= 263


def test_months_respected(small):
    out, _ = small
    for company in "abc":
        pickup = read(out, company).column("tpep_pickup_datetime").to_numpy()
        assert pickup.min() >= np.datetime64("2024-01-01")
        assert pickup.max() < np.datetime64("2024-04-01")
        months = set(pickup.astype("datetime64[M]").astype(str))
        assert months == {"2024-01", "2024-02", "2024-03"}


def test_deterministic_by_seed(tmp_path):
    args = dict(companies=["a", "b"], trips=1500, start="2024-01", end="2024-02", rows_per_file=500)
    taxi.generate(tmp_path / "one", seed=5, **args)
    taxi.generate(tmp_path / "two", seed=5, **args)
    taxi.generate(tmp_path / "other", seed=6, **args)
    for company in ("a", "b"):
        files = sorted(p.name for p in (tmp_path / "one" / company / "trips").iterdir())
        assert files == ["part-00000.parquet", "part-00001.parquet"]
        for name in files:
            one = (tmp_path / "one" / company / "trips" / name).read_bytes()
            assert one == (tmp_path / "two" / company / "trips" / name).read_bytes()
        assert read(tmp_path / "one", company).equals(read(tmp_path / "two", company))
        fare = read(tmp_path / "one", company).column("fare_amount")
        assert not fare.equals(read(tmp_path / "other", company).column("fare_amount"))
    # Each company has its own stream.
    assert (
        not read(tmp_path / "one", "a").column("fare_amount").equals(read(tmp_path / "one", "b").column("fare_amount"))
    )


def test_rerun_replaces_stale_parts(tmp_path):
    taxi.generate(tmp_path, ["a"], 1000, seed=1, start="2024-01", end="2024-01", rows_per_file=300)
    assert len(list((tmp_path / "a" / "trips").glob("part-*.parquet"))) == 4
    taxi.generate(tmp_path, ["a"], 1000, seed=1, start="2024-01", end="2024-01")
    assert [p.name for p in (tmp_path / "a" / "trips").iterdir()] == ["part-00000.parquet"]
    assert read(tmp_path, "a").num_rows == 1000


def test_revenue_reference_matches_a_plain_computation(small):
    out, _ = small
    table = read(out, "b")
    expected = {"2024-01": 0, "2024-02": 0, "2024-03": 0, "2024-04": 0}
    # Independent path: Python Decimals from the doubles' shortest repr, rounded half-up.
    for fare, when in zip(table.column("fare_amount").to_pylist(), table.column("tpep_pickup_datetime").to_pylist()):
        c = int((Decimal(repr(fare)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        expected[when.strftime("%Y-%m")] += c
    months = ["2024-02", "2024-03", "2024-04"]  # Jan is outside, Apr has no trips
    got = taxi.revenue_cents_by_month(out, "b", months)
    assert list(got) == ["all", *months]
    assert got == {"all": sum(expected[m] for m in months), **{m: expected[m] for m in months}}
    assert got["2024-04"] == 0 and got["2024-02"] > 0
    full = taxi.revenue_cents_by_month(out, "b", ["2024-01", "2024-02", "2024-03"])
    assert full["all"] == int(cents(table.column("fare_amount").to_numpy()).sum())


def test_cli(tmp_path):
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--out",
        str(tmp_path),
        "--companies",
        "a,b,c,d,e",
        "--trips",
        "1000",
        "--seed",
        "3",
        "--start",
        "2024-01",
        "--end",
        "2024-03",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert [line.split("\t")[:2] for line in done.stdout.splitlines()] == [
        ["a", "500"],
        ["b", "200"],
        ["c", "100"],
        ["d", "100"],
        ["e", "100"],
    ]
    taxi.generate(tmp_path / "again", "a,b,c,d,e", 1000, seed=3, start="2024-01", end="2024-03")
    assert read(tmp_path, "a").equals(read(tmp_path / "again", "a"))  # CLI == function

    bad = subprocess.run(cmd + ["--split", "60,40"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.strip() == "taxi_trips: error: split has 2 percentages but there are 5 companies (a,b,c,d,e)"


# --- realistic data: defects at stated rates ---------------------------------------------------


def net_cents(
    table: pa.Table, months, amount="fare_amount", time="tpep_pickup_datetime", drop_negatives=False, participant=None
) -> dict[str, int]:
    """Independent reference: Python Decimals row by row (null dropped, outside ignored)."""
    out = dict.fromkeys(months, 0)
    who = table.column(participant[0]).to_pylist() if participant else [None] * table.num_rows
    for fare, when, p in zip(table.column(amount).to_pylist(), table.column(time).to_pylist(), who):
        if fare is None or (participant and p != participant[1]) or when.strftime("%Y-%m") not in out:
            continue
        c = int((Decimal(repr(fare)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        if c < 0 and drop_negatives:
            continue
        out[when.strftime("%Y-%m")] += c
    return {"all": sum(out.values()), **out}


@pytest.fixture(scope="module")
def dirty(tmp_path_factory):
    """20000 trips for one company with every defect, in 3 files."""
    out = tmp_path_factory.mktemp("dirty")
    taxi.generate(out, ["a"], 20000, seed=8, start="2024-01", end="2024-03", rows_per_file=7000, defects=True)
    return out, read(out, "a")


def outside(pickups: np.ndarray, start="2024-01-01", end="2024-04-01") -> np.ndarray:
    return (pickups < np.datetime64(start)) | (pickups >= np.datetime64(end))


def test_defects_at_stated_rates(dirty):
    _, table = dirty
    n = table.num_rows
    assert n == 20000  # as many rows as asked, defects included
    fare = table.column("fare_amount")
    negatives = sum(1 for x in fare.to_pylist() if x is not None and x < 0)
    pickups = table.column("tpep_pickup_datetime").to_numpy()
    for got, rate in (
        (negatives, taxi.DEFECTS["refunds"]),
        (fare.null_count, taxi.DEFECTS["null_fares"]),
        (int(outside(pickups).sum()), taxi.DEFECTS["outside_period"]),
    ):
        assert abs(got - rate * n) <= 5 * np.sqrt(rate * n) + 2, (got, rate * n)
        assert got > 0


def test_every_refund_has_its_fare(dirty):
    _, table = dirty
    rows = table.select(["tpep_pickup_datetime", "fare_amount", "total_amount", "payment_type"]).to_pylist()
    positives = {}
    for r in rows:
        if r["fare_amount"] is not None and r["fare_amount"] > 0:
            positives.setdefault((r["tpep_pickup_datetime"], r["fare_amount"]), []).append(r)
    refunds = [r for r in rows if r["fare_amount"] is not None and r["fare_amount"] < 0]
    for r in refunds:
        pair = positives[(r["tpep_pickup_datetime"], -r["fare_amount"])]
        assert any(p["total_amount"] == -r["total_amount"] for p in pair)
        assert r["payment_type"] == taxi.REFUND_PAYMENT_TYPE
    # Null fares and out-of-period pickups never hit a refunded pair, so every month nets >= 0.
    assert all(v > 0 for v in net_cents(table, ["2024-01", "2024-02", "2024-03"]).values())


def test_outside_pickups_are_shifted_whole(dirty):
    _, table = dirty
    t = {c: table.column(c).to_numpy() for c in ("tpep_pickup_datetime", "tpep_dropoff_datetime")}
    odd = outside(t["tpep_pickup_datetime"])
    assert (t["tpep_dropoff_datetime"] > t["tpep_pickup_datetime"]).all()
    years = set(t["tpep_pickup_datetime"][odd].astype("datetime64[Y]").astype(str))
    assert years & {str(y) for y in range(2001, 2010)} and "2024" in years  # clock errors and neighbours


def test_defects_deterministic_and_optional(tmp_path):
    args = dict(companies=["a"], trips=3000, seed=4, start="2024-01", end="2024-02", rows_per_file=1000)
    taxi.generate(tmp_path / "one", defects=True, **args)
    taxi.generate(tmp_path / "two", defects=True, **args)
    taxi.generate(tmp_path / "clean", **args)
    taxi.generate(tmp_path / "none", defects={"refunds": 0, "null_fares": 0, "outside_period": 0}, **args)
    assert read(tmp_path / "one", "a").equals(read(tmp_path / "two", "a"))
    clean = read(tmp_path / "clean", "a")
    assert not read(tmp_path / "one", "a").equals(clean)
    assert read(tmp_path / "none", "a").equals(clean)  # zero rates: the clean trips exactly
    assert clean.column("fare_amount").null_count == 0


def test_defect_rates_validated():
    assert taxi.defect_rates(None) is None and taxi.defect_rates(True) == taxi.DEFECTS
    assert taxi.defect_rates({"null_fares": 0.1}) == {"refunds": 0.0, "null_fares": 0.1, "outside_period": 0.0}
    with pytest.raises(ValueError, match="unknown defect 'typos'"):
        taxi.defect_rates({"typos": 0.1})
    with pytest.raises(ValueError, match="from 0 to 0.2"):
        taxi.defect_rates({"refunds": 0.5})


@pytest.mark.parametrize("policy, drop", [(None, False), ({"negative_amounts": "drop"}, True)])
def test_reference_applies_the_policy(dirty, policy, drop):
    out, table = dirty
    months = ["2024-01", "2024-02", "2024-03"]
    assert taxi.revenue_cents_by_month(out, "a", months, policy) == net_cents(table, months, drop_negatives=drop)


@pytest.mark.parametrize(
    "policy, message",
    [
        ({"negative_amounts": "fail"}, "negative amounts"),
        ({"null_amounts": "fail"}, "null amounts"),
        ({"outside_period": "fail"}, "outside the period"),
        ({"negative_amounts": "sometimes"}, "bad policy negative_amounts"),
    ],
)
def test_reference_policy_failures(dirty, policy, message):
    with pytest.raises(ValueError, match=message):
        taxi.revenue_cents_by_month(dirty[0], "a", ["2024-01", "2024-02", "2024-03"], policy)


# --- the second schema: high-volume for-hire records ---------------------------------------------


@pytest.fixture(scope="module")
def hvfhv(tmp_path_factory):
    out = tmp_path_factory.mktemp("hvfhv") / "fhvhv"
    counts = taxi.generate_hvfhv(out, 12000, seed=2, start="2024-01", end="2024-02", rows_per_file=5000, defects=True)
    return out, counts, pa.concat_tables(pq.read_table(f) for f in sorted(out.glob("part-*.parquet")))


def test_hvfhv_schema_and_licensees(hvfhv):
    out, counts, table = hvfhv
    assert table.schema.equals(taxi.HVFHV_SCHEMA)
    assert len(list(out.glob("part-*.parquet"))) == 3
    assert sum(counts.values()) == table.num_rows == 12000
    licences = table.column("hvfhs_license_num").to_pylist()
    assert {x: licences.count(x) for x in set(licences)} == counts
    assert list(counts) == ["HV0003", "HV0005", "HV0004"]
    assert counts["HV0003"] > counts["HV0005"] > counts["HV0004"] > 0  # 70/25/5
    fare = table.column("base_passenger_fare")
    assert fare.null_count > 0 and pc.min(fare).as_py() < 0  # defects in this schema too
    t = {c: table.column(c).to_numpy() for c in ("request_datetime", "pickup_datetime", "dropoff_datetime")}
    assert (t["request_datetime"] < t["pickup_datetime"]).all() and (t["pickup_datetime"] < t["dropoff_datetime"]).all()


def test_hvfhv_reference_per_licensee(hvfhv):
    out, counts, table = hvfhv
    months = ["2024-01", "2024-02"]
    for licence in counts:
        got = taxi.hvfhv_revenue_cents_by_month(out, licence, months)
        assert got == net_cents(
            table, months, "base_passenger_fare", "pickup_datetime", participant=("hvfhs_license_num", licence)
        )
        assert got["all"] > 0


def test_hvfhv_deterministic_and_cli(tmp_path):
    taxi.generate_hvfhv(
        tmp_path / "fn", 2000, seed=9, start="2024-03", end="2024-03", licences="HV0003,HV0005", split=[60, 40]
    )
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--schema",
        "hvfhv",
        "--out",
        str(tmp_path / "cli"),
        "--trips",
        "2000",
        "--seed",
        "9",
        "--start",
        "2024-03",
        "--end",
        "2024-03",
        "--licences",
        "HV0003,HV0005",
        "--split",
        "60,40",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert [line.split("\t")[0] for line in done.stdout.splitlines()] == ["HV0003", "HV0005"]
    assert pq.read_table(tmp_path / "fn").equals(pq.read_table(tmp_path / "cli"))
    with pytest.raises(ValueError, match="distinct"):
        taxi.generate_hvfhv(tmp_path / "x", 10, seed=1, start="2024-01", end="2024-01", licences="HV1,HV1")


def test_cli_defects(tmp_path):
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--out",
        str(tmp_path / "cli"),
        "--companies",
        "a",
        "--trips",
        "3000",
        "--seed",
        "3",
        "--start",
        "2024-01",
        "--end",
        "2024-02",
        "--defects",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    taxi.generate(tmp_path / "fn", ["a"], 3000, seed=3, start="2024-01", end="2024-02", defects=True)
    assert read(tmp_path / "cli", "a").equals(read(tmp_path / "fn", "a"))
    assert read(tmp_path / "cli", "a").column("fare_amount").null_count > 0
    missing = subprocess.run(cmd[:3] + cmd[5:], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "--companies is required" in missing.stderr
