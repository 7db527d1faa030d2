"""Per-company salary sums and head counts by gender and job level: the input of the pay-gap MPC.

Submitted with spark-submit (directly or through Airflow's SparkSubmitOperator), with the same
arguments as every aggregation job of a federation::

    spark-submit --master local[2] include/jobs/payroll_sums.py \\
        --input URI --output URI --party ID --months 2024-03 \\
        [--levels L1,L2,L3,L4] [--max-salary-cents 1000000000] [--oblivious]

Reads the company's payroll, a Parquet dataset at the input URI (a local path, ``file://``,
``s3a://``, ``hdfs://``, ...: passed to Spark unchanged) with one row per employee::

    employee_id   string or integer, unique
    gender        string, "M" or "F"
    level         string, one of --levels
    salary_cents  integer (yearly salary in cents), 0 <= salary_cents <= --max-salary-cents

and writes the output (a local path atomically, another URI with fsspec; see
include/jobs/mpc_job.py, which this job shares with the others) as JSON::

    {"format": FORMAT, "party": ID,
     "dimensions": {"level": ["all", "L1", "L2", "L3", "L4"]},
     "values": {"salary_sum_men": [int, ...], "salary_sum_women": [...],
                "count_men": [...], "count_women": [...]},
     "stats": {"rows_read": n}}

``--oblivious``: the same sums through the padded, keyed, encrypted shuffle of
include/jobs/mpc_oblivious.py (docs/oblivious.md), the duplicate-id check through its padded
distinct count.

'all' is the whole company. The payroll is a snapshot: --months is checked but not used. Money is
summed as 64-bit integers, never through floating point. Bad input (missing data, missing or
null columns, an unknown gender or level, a negative salary or one above the maximum, a duplicate
employee) exits with code 2 and one line on stderr starting with "payroll_sums: error:" that lists
every problem found, leaving the output as it was; so does an input an executor cannot read.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

try:
    import mpc_job
except ImportError:  # run alone through spark-submit: the shared module is next to this file
    sys.path.append(os.path.dirname(os.path.abspath(__file__)))
    import mpc_job
# Re-exported: the job's own names, as before the shared module.
from mpc_job import InputError, oblivious_module, parse_months, parse_party, write_atomic  # noqa: F401, I001

FORMAT = mpc_job.FORMAT
GENDERS = (("M", "men"), ("F", "women"))
COLUMNS = ("employee_id", "gender", "level", "salary_cents")
DEFAULT_LEVELS = "L1,L2,L3,L4"
DEFAULT_MAX_SALARY_CENTS = 10**9  # include/programs/pay_gap.py: MAX_SALARY_CENTS
_LABEL_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")


def parse_levels(text: str) -> list[str]:
    """'L1,L2' -> ['L1', 'L2']: distinct labels, none of them 'all' (that is the whole company)."""
    levels = [x.strip() for x in (text or "").split(",") if x.strip()]
    if not levels:
        raise InputError("--levels is empty; give job levels like L1,L2,L3,L4")
    for x in levels:
        if x == "all" or not _LABEL_RE.match(x):
            raise InputError(f"--levels has a bad label {x!r} (letters, digits, '_', '.', '-'; not 'all')")
    dupes = sorted({x for x in levels if levels.count(x) > 1})
    if dupes:
        raise InputError(f"--levels lists {dupes[0]} more than once")
    return levels


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="payroll_sums", description="Salary sums by gender and job level.")
    mpc_job.add_common_arguments(parser)  # --months is checked, then not used
    parser.add_argument("--levels", default=DEFAULT_LEVELS, help="job levels, in the spec's order")
    parser.add_argument("--max-salary-cents", type=int, default=DEFAULT_MAX_SALARY_CENTS)
    return parser.parse_args(argv)


def problems(row: dict, levels: list[str], max_salary: int) -> list[str]:
    """Every problem the one aggregation pass found, as readable phrases (empty: the data is good).

    :param row: the counters of :func:`sums_by_gender_and_level` (``rows_read``, ``null_<column>``,
        ``unknown_gender``, ``unknown_level``, ``negative``, ``above_max``, ``distinct_ids`` and
        their ``*_example`` values)
    """
    n = row["rows_read"]
    if n == 0:
        return ["input has zero rows"]
    found = []
    for column in COLUMNS:
        if row[f"null_{column}"]:
            found.append(f"column {column!r} has {row[f'null_{column}']} null values out of {n} rows")
    if row["unknown_gender"]:
        found.append(
            f"column 'gender' has {row['unknown_gender']} values other than "
            f"{' or '.join(repr(g) for g, _ in GENDERS)}, e.g. {row['unknown_gender_example']!r}"
        )
    if row["unknown_level"]:
        found.append(
            f"column 'level' has {row['unknown_level']} values not among the levels "
            f"{','.join(levels)}, e.g. {row['unknown_level_example']!r}"
        )
    if row["negative"]:
        found.append(f"column 'salary_cents' has {row['negative']} negative values, e.g. {row['negative_example']}")
    if row["above_max"]:
        found.append(
            f"column 'salary_cents' has {row['above_max']} values above the maximum {max_salary}, "
            f"e.g. {row['above_max_example']}"
        )
    duplicates = n - row["null_employee_id"] - row["distinct_ids"]
    if duplicates:
        found.append(f"column 'employee_id' has {duplicates} duplicate ids")
    return found


def sums_by_gender_and_level(df, levels: list[str], max_salary: int) -> dict:
    """Validate the payroll and sum it per gender and level, in one pass.

    :return: {'labels': ['all', *levels], 'values': {...}, 'rows_read': n}
    :raises InputError: listing every problem with the data
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import IntegralType, StringType

    fields = {f.name: f.dataType for f in df.schema.fields}
    missing = [c for c in COLUMNS if c not in fields]
    if missing:
        raise InputError(
            f"column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} "
            f"missing; columns are: {', '.join(fields)}"
        )
    if not isinstance(fields["salary_cents"], IntegralType):
        raise InputError(
            f"column 'salary_cents' has type {fields['salary_cents'].simpleString()}, "
            f"expected an integer number of cents"
        )
    for column in ("gender", "level"):
        if not isinstance(fields[column], StringType):
            raise InputError(f"column {column!r} has type {fields[column].simpleString()}, expected a string")

    salary, gender, level = F.col("salary_cents").cast("long"), F.col("gender"), F.col("level")
    known_gender = gender.isin([g for g, _ in GENDERS])
    known_level = level.isin(levels)

    def count(cond):
        return F.count(F.when(cond, 1))

    aggs = [
        F.count(F.lit(1)).alias("rows_read"),
        F.countDistinct("employee_id").alias("distinct_ids"),
        count(gender.isNotNull() & ~known_gender).alias("unknown_gender"),
        F.min(F.when(gender.isNotNull() & ~known_gender, gender)).alias("unknown_gender_example"),
        count(level.isNotNull() & ~known_level).alias("unknown_level"),
        F.min(F.when(level.isNotNull() & ~known_level, level)).alias("unknown_level_example"),
        count(salary < 0).alias("negative"),
        F.min(F.when(salary < 0, salary)).alias("negative_example"),
        count(salary > max_salary).alias("above_max"),
        F.max(F.when(salary > max_salary, salary)).alias("above_max_example"),
    ]
    aggs += [count(F.col(c).isNull()).alias(f"null_{c}") for c in COLUMNS]
    labels = ["all", *levels]
    for j, label in enumerate(labels):
        in_level = F.lit(True) if label == "all" else (level == label)
        for g, suffix in GENDERS:
            cond = in_level & (gender == g)
            # Sum of longs; with ANSI mode (Spark 4 default) an overflow fails instead of wrapping.
            aggs += [
                F.coalesce(F.sum(F.when(cond, salary)), F.lit(0)).alias(f"sum_{suffix}_{j}"),
                count(cond).alias(f"count_{suffix}_{j}"),
            ]
    row = df.agg(*aggs).first().asDict()

    found = problems(row, levels, max_salary)
    if found:
        raise InputError("; ".join(found))
    values = {}
    for _, suffix in GENDERS:
        values[f"salary_sum_{suffix}"] = [int(row[f"sum_{suffix}_{j}"]) for j in range(len(labels))]
    for _, suffix in GENDERS:
        values[f"count_{suffix}"] = [int(row[f"count_{suffix}_{j}"]) for j in range(len(labels))]
    return {"labels": labels, "values": values, "rows_read": int(row["rows_read"])}


def oblivious_sums_by_gender_and_level(spark, df, levels: list[str], max_salary: int) -> dict:
    """What :func:`sums_by_gender_and_level` computes, through the oblivious shuffle.

    Keys: (level, gender) cells of clean rows (level index x 2 + gender index), then one key for
    rows with any problem; the domain is public (the spec's levels). Class 1 marks a row with a
    problem. Employee ids are counted with the padded distinct count (their domain is not
    public). When anything is wrong the plain pass runs, to raise its exact message.

    :raises InputError: listing every problem with the data (the plain pass's message)
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import IntegralType, StringType

    oblivious = oblivious_module()
    types = {f.name: f.dataType for f in df.schema.fields}
    if (
        any(c not in types for c in COLUMNS)
        or not isinstance(types["salary_cents"], IntegralType)
        or not all(isinstance(types[c], StringType) for c in ("gender", "level"))
    ):
        return sums_by_gender_and_level(df, levels, max_salary)  # raises its schema error
    salary, gender, level = F.col("salary_cents").cast("long"), F.col("gender"), F.col("level")
    genders = [g for g, _ in GENDERS]
    clean = (
        F.col("employee_id").isNotNull()
        & salary.isNotNull()
        & gender.isin(genders)
        & level.isin(levels)
        & (salary >= 0)
        & (salary <= max_salary)
    )
    clean = F.coalesce(clean, F.lit(False))
    level_index = F.array_position(F.array(*[F.lit(x) for x in levels]), level).cast("int") - 1
    gender_index = F.array_position(F.array(*[F.lit(g) for g in genders]), gender).cast("int") - 1
    cells = 2 * len(levels)
    key = F.when(clean, level_index * 2 + gender_index).otherwise(F.lit(cells))
    per_key = oblivious.oblivious_sums(
        spark,
        df.select(
            key.cast("int"),
            F.when(clean, 0).otherwise(1).cast("int"),
            F.when(clean, salary).otherwise(F.lit(0).cast("long")),
        ),
        num_keys=cells + 1,
        classes=2,
    )
    rows_read = sum(sum(counts) for counts, _ in per_key)
    problems_seen = sum(per_key[cells][0]) > 0 or rows_read == 0
    if not problems_seen:
        distinct = oblivious.oblivious_distinct_count(spark, df.select("employee_id"))
        problems_seen = distinct != rows_read
    if problems_seen:
        return sums_by_gender_and_level(df, levels, max_salary)  # raises the plain pass's message
    labels = ["all", *levels]
    values = {}
    for g, (_, suffix) in enumerate(GENDERS):
        by_level = [per_key[2 * j + g][1] for j in range(len(levels))]
        values[f"salary_sum_{suffix}"] = [sum(by_level), *by_level]
    for g, (_, suffix) in enumerate(GENDERS):
        by_level = [per_key[2 * j + g][0][0] for j in range(len(levels))]
        values[f"count_{suffix}"] = [sum(by_level), *by_level]
    return {"labels": labels, "values": values, "rows_read": rows_read}


def run(args: argparse.Namespace) -> dict:
    """Validate the arguments, run the Spark aggregation and write the output."""
    parse_months(args.months)
    party = parse_party(args.party)
    levels = parse_levels(args.levels)
    if args.max_salary_cents < 0:
        raise InputError(f"--max-salary-cents must be >= 0, got {args.max_salary_cents}")
    mpc_job.check_locations(args.input, args.output)  # cheap checks first: no need to start Spark for these

    from pyspark.errors import AnalysisException

    spark = mpc_job.session(f"payroll_sums[{party}]", args.oblivious, {"spark.sql.shuffle.partitions": "4"})
    try:
        with mpc_job.spark_errors(args.input):  # an executor's failure too: one line naming the input
            try:
                df = spark.read.parquet(args.input)
            except AnalysisException as e:
                raise mpc_job.read_error(e, args.input) from None
            if args.oblivious:
                result = oblivious_sums_by_gender_and_level(spark, df, levels, args.max_salary_cents)
            else:
                result = sums_by_gender_and_level(df, levels, args.max_salary_cents)
    finally:
        spark.stop()

    doc = {
        "format": FORMAT,
        "party": party,
        "dimensions": {"level": result["labels"]},
        "values": result["values"],
        "stats": {"rows_read": result["rows_read"]},
    }
    mpc_job.write_output(args.output, doc)
    return doc


def main(argv=None) -> int:
    args = parse_args(argv)
    return mpc_job.main(
        "payroll_sums",
        run,
        args,
        lambda doc: [f"payroll_sums: wrote {args.output}: {json.dumps(doc['values'])} {json.dumps(doc['stats'])}"],
    )


if __name__ == "__main__":
    sys.exit(main())
