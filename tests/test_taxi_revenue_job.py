"""The taxi revenue PySpark job, run through the real spark-submit (local[2]).

Each spark-submit costs ~10-15 s here, so they are grouped: the good runs (two taxi companies
with every defect, and one licensee of a high-volume for-hire dataset) start together in one
module fixture, and so do the inputs that must stop the night. The many smaller cases of the
data policy and the schema tolerance run the job's own functions in one local[2] Spark session
(tests/test_trip_policy_spark.py).
"""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import finish, spark_submit, upload_folder, write_trips

from mpc_federation.programs import import_file

ROOT = Path(__file__).resolve().parents[1]
JOB = ROOT / "include" / "jobs" / "taxi_revenue.py"
PREFIX = "taxi_revenue: error:"


taxi = import_file(ROOT / "include" / "datagen" / "taxi_trips.py")
job = import_file(JOB)  # imports pyspark lazily, so this is cheap


def net_cents(
    table: pa.Table, months, amount="fare_amount", time="tpep_pickup_datetime", participant=None
) -> list[int]:
    """Independent reference, row by row with Decimals: negatives count, nulls and other months are left out."""
    per = dict.fromkeys(months, 0)
    who = table.column(participant[0]).to_pylist() if participant else [None] * table.num_rows
    for fare, when, p in zip(table.column(amount).to_pylist(), table.column(time).to_pylist(), who):
        if fare is not None and (not participant or p == participant[1]) and when.strftime("%Y-%m") in per:
            per[when.strftime("%Y-%m")] += int((Decimal(repr(fare)) * 100).quantize(1, rounding=ROUND_HALF_UP))
    return [sum(per.values()), *per.values()]


# --- good runs ---------------------------------------------------------------------

MONTHS_A = ["2024-01", "2024-02", "2024-03"]  # exactly the generated period
MONTHS_C = ["2024-02", "2024-03", "2024-04"]  # January left out, April has no trips
MONTHS_H = ["2024-01", "2024-02"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, s3_server):
    """3 companies x 1000 trips with every defect, and an HVFHV dataset of three licensees: the job
    for companies a and c and for licensee HV0005, and for HV0005 again with ``--engine arrow``, from
    the local files and from the S3 server (``s3a://``, the endpoint and keys as Hadoop's s3a
    settings), concurrently."""
    root = tmp_path_factory.mktemp("taxi")
    taxi.generate(
        root / "data", ["a", "b", "c"], 3000, seed=42, start="2024-01", end="2024-03", rows_per_file=350, defects=True
    )
    taxi.generate_hvfhv(
        root / "data" / "fhvhv", 3000, seed=42, start="2024-01", end="2024-02", rows_per_file=1100, defects=True
    )
    out = root / "out"
    out.mkdir()
    (out / "a.json").write_text("an older result, to be replaced\n")
    plans = {
        "a": ("company_a", MONTHS_A, []),
        "c": ("company_c", MONTHS_C, []),
        "h": (
            "company_h",
            MONTHS_H,
            [
                "--revenue-column",
                "base_passenger_fare",
                "--time-column",
                "Pickup_Datetime",
                "--participant-column",
                "hvfhs_license_num",
                "--participant-value",
                "HV0005",
            ],
        ),
    }
    plans["h_arrow"] = plans["h_s3"] = (*plans["h"][:2], [*plans["h"][2], "--engine", "arrow"])
    inputs = {"a": root / "data" / "a" / "trips", "c": root / "data" / "c" / "trips", "h": root / "data" / "fhvhv"}
    inputs["h_arrow"] = inputs["h"]
    remote = upload_folder(s3_server, inputs["h"], "taxi-job", "fhvhv")
    conf = {"h_s3": s3_server.spark_conf()}
    procs = {
        c: spark_submit(
            JOB,
            [
                "--input",
                remote if c == "h_s3" else str(inputs[c]),
                "--output",
                str(out / f"{c}.json"),
                "--party",
                party,
                "--months",
                ",".join(months),
                *extra,
            ],
            cwd=root,
            conf=conf.get(c),
        )
        for c, (party, months, extra) in plans.items()
    }
    done = {c: finish(p) for c, p in procs.items()}
    for c, d in done.items():
        assert d.returncode == 0, f"job for {c} failed:\n{d.stdout}\n{d.stderr[-3000:]}"
    return {
        "root": root,
        "out": out,
        "done": done,
        "docs": {c: json.loads((out / f"{c}.json").read_text()) for c in plans},
        "tables": {c: pq.read_table(inputs[c]) for c in inputs},
        "months": {c: months for c, (_, months, _) in plans.items()},
    }


@pytest.mark.parametrize("company", ["a", "c"])
def test_revenue_equals_plaintext_reference(runs, company):
    doc, months = runs["docs"][company], runs["months"][company]
    reference = taxi.revenue_cents_by_month(runs["root"] / "data", company, months)
    markets = doc["dimensions"]["market"]
    assert markets == ["all", *months]
    assert doc["values"]["revenue_cents"] == [reference[m] for m in markets]
    assert doc["values"]["revenue_cents"] == net_cents(runs["tables"][company], months)
    values = doc["values"]["revenue_cents"]
    assert all(type(v) is int for v in values)
    assert values[0] == sum(values[1:])


def test_one_licensee_of_a_shared_dataset(runs):
    doc, table = runs["docs"]["h"], runs["tables"]["h"]
    expected = net_cents(table, MONTHS_H, "base_passenger_fare", "pickup_datetime", ("hvfhs_license_num", "HV0005"))
    assert doc["values"]["revenue_cents"] == expected
    reference = taxi.hvfhv_revenue_cents_by_month(runs["root"] / "data" / "fhvhv", "HV0005", MONTHS_H)
    assert expected == [reference[m] for m in ["all", *MONTHS_H]]
    others = sum(1 for x in table.column("hvfhs_license_num").to_pylist() if x != "HV0005")
    assert doc["stats"]["rows_other_participants"] == others > 0
    assert doc["stats"]["rows_read"] == 3000


def test_the_arrow_engine_writes_the_same_output(runs):
    """pyarrow in Spark's tasks (include/jobs/mpc_arrow.py): the same revenue and local stats as Spark
    SQL, to the row; only the number of schemas differs in kind (each file's own, not Spark's merge)."""
    spark_doc, arrow_doc = (json.loads(json.dumps(runs["docs"][c])) for c in ("h", "h_arrow"))
    assert arrow_doc["stats"].pop("schemas") >= spark_doc["stats"].pop("schemas") == 1
    assert arrow_doc == spark_doc
    assert arrow_doc["values"]["revenue_cents"] == net_cents(
        runs["tables"]["h"], MONTHS_H, "base_passenger_fare", "pickup_datetime", ("hvfhs_license_num", "HV0005")
    )
    assert job.stats_line(arrow_doc["stats"]) in runs["done"]["h_arrow"].stdout


def test_the_arrow_engine_reads_s3(runs):
    """The same dataset read from the S3 server through pyarrow's S3 client, with the endpoint and
    keys Spark's s3a settings give: the same output, to the byte."""
    local, remote = ((runs["out"] / f"{c}.json").read_text() for c in ("h_arrow", "h_s3"))
    assert remote == local and json.loads(remote)["stats"]["rows_read"] == 3000
    assert "s3a://taxi-job/fhvhv" in runs["done"]["h_s3"].args  # Spark itself has no s3a file system here


def test_output_format_and_local_stats(runs):
    a, c = runs["docs"]["a"], runs["docs"]["c"]
    assert a["format"] == c["format"] == "mpc-aggregate/1"
    assert (a["party"], c["party"]) == ("company_a", "company_c")
    assert set(a) == {"format", "party", "dimensions", "values", "stats"}
    assert set(a["values"]) == {"revenue_cents"}  # the counts never become an input of the MPC
    fare = runs["tables"]["a"].column("fare_amount").to_pylist()
    pickups = runs["tables"]["a"].column("tpep_pickup_datetime").to_pylist()
    in_period = [f for f, t in zip(fare, pickups) if t.strftime("%Y-%m") in MONTHS_A]
    stats = a["stats"]
    assert stats["rows_read"] == 1000 and stats["rows_in_period"] == len(in_period)
    assert stats["rows_outside_period"] == 1000 - len(in_period) > 0
    assert stats["dropped"] == {"null_amount": in_period.count(None), "not_a_number": 0, "negative_amount": 0}
    assert stats["negative_amounts"] == sum(1 for f in in_period if f is not None and f < 0) > 0
    assert stats["rows_used"] == len(in_period) - in_period.count(None)
    assert stats["policy"] == {"negative_amounts": "count", "null_amounts": "drop", "outside_period": "ignore"}
    line = [x for x in runs["done"]["a"].stdout.splitlines() if x.startswith("taxi_revenue: rows:")]
    assert line == [job.stats_line(stats)]
    timed = [x for x in runs["done"]["a"].stdout.splitlines() if x.startswith(job.JOB_TIMING)]
    assert len(timed) == 1 and float(timed[0].split()[-2]) > 0  # in the log (bench/sparkrows.py), not the file
    assert "seconds" not in json.dumps(stats)
    assert f"{stats['negative_amounts']} negative amounts counted (net revenue)" in line[0]


def test_months_outside_and_empty(runs):
    c = runs["docs"]["c"]
    revenue = dict(zip(c["dimensions"]["market"], c["values"]["revenue_cents"]))
    assert revenue["2024-04"] == 0 and revenue["2024-02"] > 0 and revenue["2024-03"] > 0
    assert 0 < c["stats"]["rows_in_period"] < c["stats"]["rows_read"] == 1000


def test_output_replaced_atomically(runs):
    # no temp files left
    assert sorted(p.name for p in runs["out"].iterdir()) == ["a.json", "c.json", "h.json", "h_arrow.json", "h_s3.json"]
    assert runs["done"]["a"].stdout.count("taxi_revenue: wrote") == 1
    assert PREFIX not in runs["done"]["a"].stdout + runs["done"]["a"].stderr


# --- bad input: the night stops with one line, exit code 2, and no output -------------------------


def _bad_inputs(root: Path) -> dict[str, tuple[Path, list[str]]]:
    """Inputs that must stop the night, with extra arguments."""
    nulls = write_trips(root / "nulls", pa.array([None, None, None], pa.float64()))
    refunds = write_trips(root / "refunds", pa.array([12.5, 7.0, -12.5, -9.0]))  # Feb: 7.00 - 9.00
    missing = root / "missing"
    missing.mkdir()
    pickup = pa.array(["2024-01-10 08:00:00"]).cast(pa.timestamp("us"))
    pq.write_table(pa.table({"tpep_pickup_datetime": pickup, "total_amount": [3.5]}), missing / "part-00000.parquet")
    big = write_trips(root / "big", pa.array([600.0, 400.01, 1.0]))
    return {
        "nulls": (nulls, []),
        "refunds": (refunds, []),
        "missing": (missing, []),
        "big": (big, ["--max-cents", "100000"]),
        "no_input": (root / "no-such-dir", []),
    }


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory):
    """Every bad input at once; half of them over an earlier result that must survive."""
    root = tmp_path_factory.mktemp("bad")
    before = '{"format": "mpc-aggregate/1", "previous": true}\n'
    procs = {}
    for i, (name, (data, extra)) in enumerate(_bad_inputs(root).items()):
        output = root / f"out-{name}" / "result.json"
        output.parent.mkdir()
        if i % 2 == 0:
            output.write_text(before)
        procs[name] = (
            output,
            spark_submit(
                JOB,
                ["--input", str(data), "--output", str(output), "--party", "1", "--months", "2024-01,2024-02", *extra],
                cwd=root,
            ),
        )
    return {name: (output, finish(proc), before) for name, (output, proc) in procs.items()}


def error_line(bad_runs, name: str) -> str:
    output, done, before = bad_runs[name]
    assert done.returncode == 2, f"{done.stdout}\n{done.stderr[-3000:]}"
    errors = [line for line in done.stderr.splitlines() if line.startswith(PREFIX)]
    assert len(errors) == 1, done.stderr[-3000:]
    assert PREFIX not in done.stdout and "taxi_revenue: wrote" not in done.stdout
    if output.exists():
        assert output.read_text() == before  # the previous result survives
    assert [p.name for p in output.parent.iterdir()] == (["result.json"] if output.exists() else [])
    return errors[0]


def test_every_amount_null(bad_runs):
    assert error_line(bad_runs, "nulls") == (
        f"{PREFIX} revenue column 'fare_amount' has no usable amount: all 3 rows "
        f"in the period are null (3) or not numbers (0)"
    )


def test_a_market_with_negative_net_revenue(bad_runs):
    assert error_line(bad_runs, "refunds") == (
        f"{PREFIX} market 2024-02: net revenue is negative (-200 cents): refunds exceed fares, nothing is shared"
    )


def test_missing_column(bad_runs):
    assert error_line(bad_runs, "missing") == (
        f"{PREFIX} revenue column 'fare_amount' is missing; columns are: tpep_pickup_datetime, total_amount"
    )


def test_above_the_programs_bound(bad_runs):
    assert error_line(bad_runs, "big") == (
        f"{PREFIX} market all: net revenue 100101 cents is above the program's "
        f"bound of 100000 cents (--max-cents), nothing is shared"
    )


def test_missing_input(bad_runs):
    missing = bad_runs["no_input"][1].args[bad_runs["no_input"][1].args.index("--input") + 1]
    assert error_line(bad_runs, "no_input") == f"{PREFIX} input path does not exist: {missing}"


# --- argument checks, without Spark -------------------------------------------------


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "--months is empty"),
        (" , ", "--months is empty"),
        ("2024-1", "malformed month '2024-1'"),
        ("2024-01,2024-13", "malformed month '2024-13'"),
        ("2024-01,2024-01", "lists 2024-01 more than once"),
    ],
)
def test_bad_months(text, message):
    with pytest.raises(job.InputError, match=message):
        job.parse_months(text)


def test_months_and_party_parsing():
    assert job.parse_months("2024-03, 2024-01") == ["2024-03", "2024-01"]  # order kept
    assert job.parse_party("3") == "3" and job.parse_party(" company_a ") == "company_a"
    with pytest.raises(job.InputError, match="--party is empty"):
        job.parse_party(" ")


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--participant-column", "hvfhs_license_num"], "must be given together"),
        (["--participant-value", "HV0003"], "must be given together"),
        (["--participant-column", "x", "--participant-value", " "], "--participant-value is empty"),
        (["--max-cents", "-1"], "--max-cents must be >= 0"),
        (["--time-column", "FARE_AMOUNT"], "columns must differ"),
        (["--engine", "arrow", "--oblivious"], "--engine arrow does not combine with --oblivious"),
    ],
)
def test_bad_options(extra, message):
    args = job.parse_args(["--input", "i", "--output", "o", "--party", "p", "--months", "2024-01", *extra])
    with pytest.raises(job.InputError, match=message):
        job.check_options(args)


def test_policy_choices_are_checked_by_argparse(capsys):
    with pytest.raises(SystemExit):
        job.parse_args(
            ["--input", "i", "--output", "o", "--party", "p", "--months", "2024-01", "--negative-amounts", "ignore"]
        )
    assert "invalid choice: 'ignore'" in capsys.readouterr().err


def test_to_cents_is_exact():
    assert job.to_cents(None) == 0
    assert job.to_cents(Decimal("123456789012345.67")) == 12345678901234567
    assert job.to_cents(Decimal("-0.01")) == -1


def test_write_atomic_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "x.json"
    target.write_text("old")
    with pytest.raises(TypeError):
        job.write_atomic(str(target), {"bad": object()})
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
