"""Pay equity, locally at each company: the synthetic payroll generator, and the payroll_sums PySpark
job through the real spark-submit (local[2]) on generated and on bad data, checked against the
plaintext sums and against the pay-gap program's declared inputs; and the pay_equity DAG.

Three spark-submit runs (~10-15 s each): one good, one with every kind of bad row, one with a
missing column. Everything else here runs without Spark.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import finish, spark_submit

from mpc_federation.programs import ProgramError, check_aggregate, import_file, load_program
from mpc_federation.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
JOB = ROOT / "include" / "jobs" / "payroll_sums.py"
SPEC = ROOT / "include" / "federations" / "pay_equity.yaml"
PREFIX = "payroll_sums: error:"
DIMS = load_spec(SPEC).dimensions(datetime(2024, 4, 1, tzinfo=UTC))


payroll = import_file(ROOT / "include" / "datagen" / "payroll.py")
job = import_file(JOB)  # imports pyspark lazily, so this is cheap
PAY_GAP = load_program(ROOT / "include" / "programs" / "pay_gap.py").program


# --- the generator --------------------------------------------------------------------------------


def test_generator_is_deterministic_and_well_formed(tmp_path):
    companies = ["company_a", "company_b", "company_c"]
    counts = payroll.generate(tmp_path / "one", companies, 1001, seed=5, rows_per_file=150)
    assert counts == {"company_a": 334, "company_b": 334, "company_c": 333}
    payroll.generate(tmp_path / "two", ["company_c", "company_a"], 668, seed=5, split=[50, 50], rows_per_file=150)
    payroll.generate(tmp_path / "three", companies, 1001, seed=6, rows_per_file=150)
    a = pq.read_table(tmp_path / "one" / "company_a" / "payroll")
    assert a.schema == payroll.SCHEMA and a.num_rows == 334
    assert len(list((tmp_path / "one" / "company_a" / "payroll").glob("part-*.parquet"))) == 3
    # Same seed and company: the same rows, whatever the other companies; another seed: other rows.
    assert pq.read_table(tmp_path / "two" / "company_a" / "payroll").equals(a)
    assert not pq.read_table(tmp_path / "three" / "company_a" / "payroll").equals(a)
    rows = a.to_pylist()
    assert len({r["employee_id"] for r in rows}) == 334
    assert {r["gender"] for r in rows} == {"M", "F"} and {r["level"] for r in rows} <= set(payroll.LEVELS)
    assert all(payroll.MIN_SALARY_CENTS <= r["salary_cents"] <= payroll.MAX_SALARY_CENTS for r in rows)
    # The plaintext reference: 'all' is the sum of the levels.
    sums = payroll.payroll_sums(tmp_path / "one", "company_a")
    for name, vector in sums.items():
        assert vector[0] == sum(vector[1:]), name
    assert sums["count_men"][0] + sums["count_women"][0] == 334
    assert sums["salary_sum_women"][0] == sum(r["salary_cents"] for r in rows if r["gender"] == "F")
    with pytest.raises(ValueError, match="sum to 100"):
        payroll.generate(tmp_path / "bad", companies, 10, seed=1, split=[50, 30, 30])


def test_generator_maximum_is_the_programs():
    pay_gap = import_file(ROOT / "include" / "programs" / "pay_gap.py")
    assert payroll.MAX_SALARY_CENTS == pay_gap.MAX_SALARY_CENTS == job.DEFAULT_MAX_SALARY_CENTS
    assert ",".join(payroll.LEVELS) == job.DEFAULT_LEVELS
    assert DIMS["level"] == ["all", *payroll.LEVELS]


# --- the Spark job on good data --------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("payroll")
    payroll.generate(root / "data", ["company_a", "company_b", "company_c"], 1500, seed=11, rows_per_file=200)
    out = root / "out" / "aggregate.json"
    out.parent.mkdir()
    out.write_text("an older result, to be replaced\n")
    done = finish(
        spark_submit(
            JOB,
            [
                "--input",
                str(root / "data" / "company_b" / "payroll"),
                "--output",
                str(out),
                "--party",
                "company_b",
                "--months",
                "2024-03",
            ],
            cwd=root,
        )
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr[-3000:]}"
    return {"root": root, "out": out, "done": done, "doc": json.loads(out.read_text())}


def test_sums_equal_the_plaintext_to_the_cent(good_run):
    doc = good_run["doc"]
    reference = payroll.payroll_sums(good_run["root"] / "data", "company_b")
    assert doc["values"] == reference
    assert list(doc["values"]) == ["salary_sum_men", "salary_sum_women", "count_men", "count_women"]
    assert all(type(v) is int for vector in doc["values"].values() for v in vector)
    assert doc == {
        "format": "mpc-aggregate/1",
        "party": "company_b",
        "dimensions": {"level": ["all", "L1", "L2", "L3", "L4"]},
        "values": reference,
        "stats": {"rows_read": 500},
    }
    assert sorted(p.name for p in good_run["out"].parent.iterdir()) == ["aggregate.json"]
    assert good_run["done"].stdout.count("payroll_sums: wrote") == 1


def test_output_fits_the_pay_gap_program_and_nothing_else(good_run):
    doc = good_run["doc"]
    assert check_aggregate(PAY_GAP, doc, DIMS, "company_b") == doc["values"]
    # Declared inputs that do not match what the job produced: a clear error before any sharing.
    hhi = load_program(ROOT / "include" / "programs" / "hhi.py").program
    with pytest.raises(
        ProgramError,
        match=r"values \['count_men', 'count_women', 'salary_sum_men', "
        r"'salary_sum_women'\] are not inputs of program hhi",
    ):
        check_aggregate(hhi, doc, DIMS, "company_b")
    other_levels = {**DIMS, "level": ["all", "junior", "senior"]}
    with pytest.raises(ProgramError, match=r"level labels \['all', 'L1', 'L2', 'L3', 'L4'\] do not match"):
        check_aggregate(PAY_GAP, doc, other_levels, "company_b")
    partial = json.loads(json.dumps(doc))
    del partial["values"]["count_women"]
    with pytest.raises(ProgramError, match="missing input 'count_women' declared by program pay_gap"):
        check_aggregate(PAY_GAP, partial, DIMS, "company_b")
    # Sums beyond the declared range (e.g. a job run with a higher --max-salary-cents) are refused.
    big = json.loads(json.dumps(doc))
    big["values"]["salary_sum_men"][1] = 2**54
    with pytest.raises(ProgramError, match=rf"input 'salary_sum_men' at L1: {2**54} is outside"):
        check_aggregate(PAY_GAP, big, DIMS, "company_b")


# --- the Spark job on bad data -----------------------------------------------------------------------


def run_bad(tmp_path: Path, input_path: Path) -> str:
    """Run the job on bad input over an existing output; return its one error line."""
    output = tmp_path / "out" / "aggregate.json"
    output.parent.mkdir()
    before = '{"format": "mpc-aggregate/1", "previous": true}\n'
    output.write_text(before)
    done = finish(
        spark_submit(
            JOB,
            ["--input", str(input_path), "--output", str(output), "--party", "company_a", "--months", "2024-03"],
            cwd=tmp_path,
        )
    )
    assert done.returncode == 2, f"{done.stdout}\n{done.stderr[-3000:]}"
    errors = [line for line in done.stderr.splitlines() if line.startswith(PREFIX)]
    assert len(errors) == 1, done.stderr[-3000:]
    assert PREFIX not in done.stdout
    assert output.read_text() == before  # the previous result survives
    assert [p.name for p in output.parent.iterdir()] == ["aggregate.json"]
    return errors[0]


def write_payroll(folder: Path, rows: list[tuple], names=("employee_id", "gender", "level", "salary_cents")) -> Path:
    folder.mkdir(parents=True)
    columns = list(zip(*rows))
    types = {
        "employee_id": pa.string(),
        "gender": pa.string(),
        "level": pa.string(),
        "salary_cents": pa.int64(),
        "salary": pa.int64(),
    }
    pq.write_table(
        pa.table({n: pa.array(c, type=types[n]) for n, c in zip(names, columns)}), folder / "part-00000.parquet"
    )
    return folder


def test_every_bad_row_is_reported(tmp_path):
    data = write_payroll(
        tmp_path / "bad",
        [
            ("e1", "M", "L1", 5_000_000),
            ("e2", "X", "L1", 5_000_000),  # unknown gender
            ("e3", "F", "L9", 5_000_000),  # unknown level
            ("e4", "F", "L2", -120),  # negative salary
            ("e5", "M", "L3", 10**9 + 1),  # above the declared maximum
            ("e6", "M", "L3", 2 * 10**9),  # above too
            ("e6", None, "L4", 9_000_000),  # duplicate id, missing gender
            ("e8", "F", "L2", None),  # missing salary
        ],
    )
    line = run_bad(tmp_path, data)
    assert line == (
        f"{PREFIX} column 'gender' has 1 null values out of 8 rows; "
        f"column 'salary_cents' has 1 null values out of 8 rows; "
        f"column 'gender' has 1 values other than 'M' or 'F', e.g. 'X'; "
        f"column 'level' has 1 values not among the levels L1,L2,L3,L4, e.g. 'L9'; "
        f"column 'salary_cents' has 1 negative values, e.g. -120; "
        f"column 'salary_cents' has 2 values above the maximum 1000000000, e.g. 2000000000; "
        f"column 'employee_id' has 1 duplicate ids"
    )


def test_missing_column(tmp_path):
    data = write_payroll(
        tmp_path / "nosalary", [("e1", "M", "L1", 5)], names=("employee_id", "gender", "level", "salary")
    )
    line = run_bad(tmp_path, data)
    assert line == f"{PREFIX} column 'salary_cents' missing; columns are: employee_id, gender, level, salary"


# --- without Spark -------------------------------------------------------------------------------------


def test_missing_input_fails_before_spark(tmp_path, capsys):
    output = tmp_path / "aggregate.json"
    code = job.main(
        ["--input", str(tmp_path / "nowhere"), "--output", str(output), "--party", "company_a", "--months", "2024-03"]
    )
    assert code == 2 and not output.exists()
    assert capsys.readouterr().err == f"{PREFIX} input path does not exist: {tmp_path / 'nowhere'}\n"


def counters(**changes) -> dict:
    row = {
        "rows_read": 10,
        "distinct_ids": 10,
        "unknown_gender": 0,
        "unknown_gender_example": None,
        "unknown_level": 0,
        "unknown_level_example": None,
        "negative": 0,
        "negative_example": None,
        "above_max": 0,
        "above_max_example": None,
        **{f"null_{c}": 0 for c in job.COLUMNS},
    }
    row.update(changes)
    return row


def test_problems():
    levels = ["L1", "L2"]
    assert job.problems(counters(), levels, 100) == []
    assert job.problems(counters(rows_read=0, distinct_ids=0), levels, 100) == ["input has zero rows"]
    assert job.problems(counters(null_employee_id=2, distinct_ids=8), levels, 100) == [
        "column 'employee_id' has 2 null values out of 10 rows"
    ]
    assert job.problems(counters(above_max=1, above_max_example=101), levels, 100) == [
        "column 'salary_cents' has 1 values above the maximum 100, e.g. 101"
    ]


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "--levels is empty"),
        ("L1,all", "bad label 'all'"),
        ("L1,L 2", "bad label 'L 2'"),
        ("L1,L1", "lists L1 more than once"),
    ],
)
def test_bad_levels(text, message):
    with pytest.raises(job.InputError, match=message):
        job.parse_levels(text)


def test_months_are_checked_but_not_needed():
    assert job.parse_months("2024-03") == ["2024-03"]
    with pytest.raises(job.InputError, match="malformed month '2024-3'"):
        job.parse_months("2024-3")


# --- the DAG from the same factory ------------------------------------------------------------------------


def test_pay_equity_dag_from_the_same_factory(tmp_path):
    from conftest import parse_dags

    company = parse_dags("company_a", tmp_path)
    assert company["errors"] == {} and company["heavy"] == []
    assert company["dags"]["pay_equity"]["tasks"] == ["aggregate", "share", "compute"]
    assert company["dags"]["taxi_hhi"]["tasks"] == ["aggregate", "share", "compute"]
    office = parse_dags("equality_office", tmp_path)
    assert sorted(office["dags"]) == ["pay_equity", "pay_equity_report"]  # a recipient: its report DAG too
    dag = office["dags"]["pay_equity"]
    assert dag["tasks"] == ["reveal"] and dag["schedule"] == "30 3 * * *"
    assert dag["owners"] == ["equality_office"] and "pay_equity" in dag["tags"]
