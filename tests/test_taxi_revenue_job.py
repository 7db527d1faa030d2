"""The taxi revenue PySpark job, run through the real spark-submit (local[2]).

Each spark-submit costs ~10-15 s here, so there are five: two good runs (started
together in one module fixture) and three bad inputs.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[1]
JOB = ROOT / "include" / "jobs" / "taxi_revenue.py"
BIN = ROOT / ".venv" / "bin"
PREFIX = "taxi_revenue: error:"


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


taxi = _load(ROOT / "include" / "datagen" / "taxi_trips.py")
job = _load(JOB)  # imports pyspark lazily, so this is cheap


def spark_submit(args: list[str], cwd: Path) -> subprocess.Popen:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
               PYSPARK_PYTHON=str(BIN / "python"), PYSPARK_DRIVER_PYTHON=str(BIN / "python"))
    cmd = [str(BIN / "spark-submit"), "--master", "local[2]", str(JOB), *args]
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    out, err = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def write_trips(folder: Path, fares: pa.Array) -> Path:
    """A tiny trips dataset with the given fares, pickups spread over Jan-Feb 2024."""
    folder.mkdir(parents=True)
    pickup = pa.array([f"2024-0{1 + i % 2}-1{i % 10} 08:00:00" for i in range(len(fares))]).cast(pa.timestamp("us"))
    pq.write_table(pa.table({"tpep_pickup_datetime": pickup, "fare_amount": fares}), folder / "part-00000.parquet")
    return folder


# --- good runs ---------------------------------------------------------------------

MONTHS_A = ["2024-01", "2024-02", "2024-03"]  # exactly the generated period
MONTHS_C = ["2024-02", "2024-03", "2024-04"]  # January left out, April has no trips


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Generate 3 companies x 1000 trips and run the job for companies a and c, concurrently."""
    root = tmp_path_factory.mktemp("taxi")
    taxi.generate(root / "data", ["a", "b", "c"], 3000, seed=42, start="2024-01", end="2024-03", rows_per_file=350)
    out = root / "out"
    out.mkdir()
    (out / "a.json").write_text("an older result, to be replaced\n")
    plans = {"a": ("company_a", MONTHS_A), "c": ("company_c", MONTHS_C)}
    procs = {c: spark_submit(["--input", str(root / "data" / c / "trips"), "--output", str(out / f"{c}.json"),
                              "--party", party, "--months", ",".join(months)], cwd=root)
             for c, (party, months) in plans.items()}
    done = {c: finish(p) for c, p in procs.items()}
    for c, d in done.items():
        assert d.returncode == 0, f"job for {c} failed:\n{d.stdout}\n{d.stderr[-3000:]}"
    return {"root": root, "out": out, "done": done,
            "docs": {c: json.loads((out / f"{c}.json").read_text()) for c in plans}, "months": {
                c: months for c, (_, months) in plans.items()}}


@pytest.mark.parametrize("company", ["a", "c"])
def test_revenue_equals_plaintext_reference(runs, company):
    doc, months = runs["docs"][company], runs["months"][company]
    reference = taxi.revenue_cents_by_month(runs["root"] / "data", company, months)
    markets = doc["dimensions"]["market"]
    assert markets == ["all", *months]
    assert doc["values"]["revenue_cents"] == [reference[m] for m in markets]
    values = doc["values"]["revenue_cents"]
    assert all(type(v) is int for v in values)
    assert values[0] == sum(values[1:])


def test_output_format(runs):
    a, c = runs["docs"]["a"], runs["docs"]["c"]
    assert a["format"] == c["format"] == "mpc-aggregate/1"
    assert (a["party"], c["party"]) == ("company_a", "company_c")
    assert set(a) == {"format", "party", "dimensions", "values", "stats"}
    assert a["stats"] == {"rows_read": 1000, "rows_in_period": 1000}


def test_months_outside_and_empty(runs):
    c = runs["docs"]["c"]
    revenue = dict(zip(c["dimensions"]["market"], c["values"]["revenue_cents"]))
    assert revenue["2024-04"] == 0 and revenue["2024-02"] > 0 and revenue["2024-03"] > 0
    pickups = pq.read_table(runs["root"] / "data" / "c" / "trips").column("tpep_pickup_datetime").to_numpy()
    in_period = int(((pickups >= np.datetime64("2024-02-01")) & (pickups < np.datetime64("2024-05-01"))).sum())
    assert c["stats"] == {"rows_read": 1000, "rows_in_period": in_period}
    assert 0 < in_period < 1000


def test_output_replaced_atomically(runs):
    assert sorted(p.name for p in runs["out"].iterdir()) == ["a.json", "c.json"]  # no temp files left
    assert runs["done"]["a"].stdout.count("taxi_revenue: wrote") == 1
    assert PREFIX not in runs["done"]["a"].stdout + runs["done"]["a"].stderr


# --- bad input ---------------------------------------------------------------------

def run_bad(tmp_path: Path, input_path: Path) -> tuple[subprocess.CompletedProcess, str]:
    """Run the job on bad input over an existing output; return the run and its one error line."""
    output = tmp_path / "out" / "result.json"
    output.parent.mkdir()
    before = '{"format": "mpc-aggregate/1", "previous": true}\n'
    output.write_text(before)
    done = finish(spark_submit(["--input", str(input_path), "--output", str(output), "--party", "1",
                                "--months", "2024-01,2024-02"], cwd=tmp_path))
    assert done.returncode == 2, f"{done.stdout}\n{done.stderr[-3000:]}"
    errors = [line for line in done.stderr.splitlines() if line.startswith(PREFIX)]
    assert len(errors) == 1, done.stderr[-3000:]
    assert PREFIX not in done.stdout
    assert output.read_text() == before  # the previous result survives
    assert [p.name for p in output.parent.iterdir()] == ["result.json"]
    return done, errors[0]


def test_missing_input(tmp_path):
    missing = tmp_path / "no-such-dir"
    _, line = run_bad(tmp_path, missing)
    assert line == f"{PREFIX} input path does not exist: {missing}"


def test_negative_fares(tmp_path):
    data = write_trips(tmp_path / "neg", pa.array([12.5, -3.5, 7.0, -0.01, 3.25]))
    _, line = run_bad(tmp_path, data)
    assert line == f"{PREFIX} revenue column 'fare_amount' has 2 negative values out of 5 rows, e.g. -3.50"


def test_non_numeric_string_fares(tmp_path):
    data = write_trips(tmp_path / "str", pa.array(["12.50", "abc", "7", "n/a", "3.25"]))
    _, line = run_bad(tmp_path, data)
    assert line == (f"{PREFIX} revenue column 'fare_amount' (string) has 2 values that are not numbers "
                    f"out of 5 rows, e.g. 'abc'")


# --- argument checks, without Spark -------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("", "--months is empty"),
    (" , ", "--months is empty"),
    ("2024-1", "malformed month '2024-1'"),
    ("2024-01,2024-13", "malformed month '2024-13'"),
    ("2024-01,2024-01", "lists 2024-01 more than once"),
])
def test_bad_months(text, message):
    with pytest.raises(job.InputError, match=message):
        job.parse_months(text)


def test_months_and_party_parsing():
    assert job.parse_months("2024-03, 2024-01") == ["2024-03", "2024-01"]  # order kept
    assert job.parse_party("3") == "3" and job.parse_party(" company_a ") == "company_a"
    with pytest.raises(job.InputError, match="--party is empty"):
        job.parse_party(" ")


def test_write_atomic_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "x.json"
    target.write_text("old")
    with pytest.raises(TypeError):
        job.write_atomic(str(target), {"bad": object()})
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
