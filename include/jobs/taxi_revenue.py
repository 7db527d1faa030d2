"""Per-party taxi revenue per month, in integer cents: the input of the nightly MPC.

Submitted with spark-submit (directly or through Airflow's SparkSubmitOperator)::

    spark-submit --master local[2] include/jobs/taxi_revenue.py \\
        --input PATH --output FILE --party ID --months 2024-01,2024-02,2024-03 \\
        [--revenue-column fare_amount] [--time-column tpep_pickup_datetime]

Reads the Parquet dataset at PATH and writes FILE (atomically) as JSON::

    {"format": "mpc-aggregate/1", "party": ID,
     "dimensions": {"market": ["all", "2024-01", ...]},
     "values": {"revenue_cents": [int, ...]},
     "stats": {"rows_read": n, "rows_in_period": k}}

'all' is the sum over the declared months; a month is that of the pickup time in UTC.
Money never goes through floating point: the revenue column is cast to decimal(18,2)
and then to a long number of cents. Bad input exits with code 2 and one line on stderr
starting with "taxi_revenue: error:", leaving FILE as it was.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from urllib.parse import urlparse

FORMAT = "mpc-aggregate/1"
MONEY = "decimal(18,2)"
_MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class InputError(Exception):
    """Bad input or arguments: reported as one line, exit code 2."""


def parse_months(text: str) -> list[str]:
    """'2024-01,2024-02' -> ['2024-01', '2024-02'], in the given order.

    :param text: comma-separated 'YYYY-MM' months, no duplicates
    :raises InputError: if empty, malformed or duplicated
    """
    months = [m.strip() for m in (text or "").split(",") if m.strip()]
    if not months:
        raise InputError("--months is empty; give months like 2024-01,2024-02")
    bad = [m for m in months if not _MONTH_RE.match(m)]
    if bad:
        raise InputError(f"--months has malformed month {bad[0]!r}; expected YYYY-MM like 2024-01")
    dupes = sorted({m for m in months if months.count(m) > 1})
    if dupes:
        raise InputError(f"--months lists {dupes[0]} more than once")
    return months


def parse_party(text: str) -> str:
    """The party id as given (federation ids are names like 'company_a'); never empty."""
    if not text.strip():
        raise InputError("--party is empty")
    return text.strip()


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="taxi_revenue", description="Per-month taxi revenue in cents.")
    parser.add_argument("--input", required=True, help="Parquet dataset (a directory)")
    parser.add_argument("--output", required=True, help="JSON file to write")
    parser.add_argument("--party", required=True, help="party id, echoed in the output")
    parser.add_argument("--months", required=True, help="comma-separated YYYY-MM months")
    parser.add_argument("--revenue-column", default="fare_amount")
    parser.add_argument("--time-column", default="tpep_pickup_datetime")
    return parser.parse_args(argv)


def _is_local(path: str) -> bool:
    scheme = urlparse(path).scheme
    return scheme in ("", "file") or len(scheme) == 1  # one letter: a Windows drive


def check_paths(input_path: str, output_path: str) -> None:
    """Fail before starting Spark when the local input is missing or the output is unusable."""
    if _is_local(input_path):
        local = urlparse(input_path).path if input_path.startswith("file:") else input_path
        if not os.path.exists(local):
            raise InputError(f"input path does not exist: {input_path}")
    if os.path.isdir(output_path):
        raise InputError(f"output is a directory, expected a file path: {output_path}")


def revenue_by_month(df, months: list[str], revenue_column: str, time_column: str) -> dict:
    """Validate the columns and sum the revenue per declared month, in one pass.

    :param df: the trips DataFrame
    :param months: declared 'YYYY-MM' months
    :param revenue_column: money column (numeric, or a string of numbers), >= 0, no nulls
    :param time_column: timestamp/date column whose UTC month places a trip
    :return: {'markets': ['all', *months], 'revenue_cents': [...], 'rows_read': n, 'rows_in_period': k}
    :raises InputError: on a missing or bad column, or zero rows
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import (DateType, DecimalType, DoubleType, FloatType, IntegralType,
                                   StringType, TimestampNTZType, TimestampType)

    fields = {f.name: f.dataType for f in df.schema.fields}
    for role, name in (("revenue", revenue_column), ("time", time_column)):
        if name not in fields:
            raise InputError(f"{role} column {name!r} is missing; columns are: {', '.join(fields)}")
    rtype, ttype = fields[revenue_column], fields[time_column]
    if not isinstance(rtype, (IntegralType, FloatType, DoubleType, DecimalType, StringType)):
        raise InputError(f"revenue column {revenue_column!r} has type {rtype.simpleString()}, expected a number")
    if not isinstance(ttype, (TimestampType, TimestampNTZType, DateType)):
        raise InputError(f"time column {time_column!r} has type {ttype.simpleString()}, expected a timestamp")

    raw = F.col(revenue_column)
    # try_cast gives null instead of failing for "abc", NaN, infinity or values too big for
    # decimal(18,2); those rows are reported as "not numbers" below.
    money = raw.try_cast(MONEY)
    cents = (money * 100).cast("long")
    # The session time zone is UTC, so this is the UTC month (timestamp_ntz has no zone at all).
    month = F.date_format(F.col(time_column), "yyyy-MM")

    def count(cond):
        return F.count(F.when(cond, 1))

    aggs = [
        F.count(F.lit(1)).alias("rows_read"),
        count(month.isin(months)).alias("rows_in_period"),
        count(raw.isNull()).alias("nulls"),
        count(raw.isNotNull() & money.isNull()).alias("not_numbers"),
        F.min(F.when(raw.isNotNull() & money.isNull(), raw.cast("string"))).alias("not_number_example"),
        count(money < 0).alias("negatives"),
        F.min(F.when(money < 0, money)).alias("negative_example"),
    ]
    # Sum of longs; with ANSI mode (Spark 4 default) an overflow fails instead of wrapping.
    aggs += [F.coalesce(F.sum(F.when(month == m, cents)), F.lit(0)).alias(f"m{i}") for i, m in enumerate(months)]
    row = df.agg(*aggs).first()

    n = row["rows_read"]
    if n == 0:
        raise InputError("input has zero rows")
    if row["nulls"]:
        raise InputError(f"revenue column {revenue_column!r} has {row['nulls']} null values out of {n} rows")
    if row["not_numbers"]:
        raise InputError(f"revenue column {revenue_column!r} ({rtype.simpleString()}) has {row['not_numbers']} "
                         f"values that are not numbers out of {n} rows, e.g. {row['not_number_example']!r}")
    if row["negatives"]:
        raise InputError(f"revenue column {revenue_column!r} has {row['negatives']} negative values "
                         f"out of {n} rows, e.g. {row['negative_example']}")
    per_month = [int(row[f"m{i}"]) for i in range(len(months))]
    return {
        "markets": ["all", *months],
        "revenue_cents": [sum(per_month), *per_month],
        "rows_read": int(n),
        "rows_in_period": int(row["rows_in_period"]),
    }


def write_atomic(path: str, doc: dict) -> None:
    """Write JSON to a temp file next to ``path``, then rename: readers see old or new, never half."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; the result is meant to be read by others
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def run(args: argparse.Namespace) -> dict:
    """Validate the arguments, run the Spark aggregation and write the output.

    :param args: parsed command line (see :func:`parse_args`)
    :return: the document written to ``args.output``
    :raises InputError: on bad arguments or bad input data
    """
    months = parse_months(args.months)
    party = parse_party(args.party)
    check_paths(args.input, args.output)  # cheap checks first: no need to start Spark for these

    from pyspark.errors import AnalysisException
    from pyspark.sql import SparkSession

    # No .master(): spark-submit --master decides where this runs.
    spark = (SparkSession.builder.appName(f"taxi_revenue[{party}]")
             .config("spark.sql.session.timeZone", "UTC")  # months are UTC months on every machine
             .config("spark.sql.shuffle.partitions", "4")  # one small global aggregate
             .config("spark.ui.enabled", "false")
             .getOrCreate())
    if not spark.sparkContext.getConf().contains("spark.log.level"):
        spark.sparkContext.setLogLevel("WARN")  # keep task logs readable unless the caller chose a level
    try:
        try:
            df = spark.read.parquet(args.input)
        except AnalysisException as e:
            cond = e.getCondition() or ""
            if cond == "UNABLE_TO_INFER_SCHEMA":
                raise InputError(f"no Parquet data found in {args.input}") from None
            if cond == "PATH_NOT_FOUND":
                raise InputError(f"input path does not exist: {args.input}") from None
            raise InputError(f"cannot read Parquet at {args.input}: {str(e).splitlines()[0]}") from None
        result = revenue_by_month(df, months, args.revenue_column, args.time_column)
    finally:
        spark.stop()

    doc = {
        "format": FORMAT,
        "party": party,
        "dimensions": {"market": result["markets"]},
        "values": {"revenue_cents": result["revenue_cents"]},
        "stats": {"rows_read": result["rows_read"], "rows_in_period": result["rows_in_period"]},
    }
    write_atomic(args.output, doc)
    return doc


def report_error(message: str) -> None:
    """Print the one error line on stderr: spark-submit's stderr when running under it.

    spark-submit merges the Python driver's stderr into its own *stdout*, so under
    spark-submit (PYSPARK_GATEWAY_PORT is set) the line goes through the JVM's System.err.
    """
    line = f"taxi_revenue: error: {message}"
    if os.environ.get("PYSPARK_GATEWAY_PORT"):
        try:
            from pyspark import SparkContext

            SparkContext._ensure_initialized()  # connects to spark-submit's JVM; cheap, no Spark start
            err = SparkContext._jvm.java.lang.System.err
            err.println(line)
            err.flush()
            return
        except Exception:  # never lose the message: fall back to our own stderr
            pass
    print(line, file=sys.stderr, flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        doc = run(args)
    except InputError as e:
        report_error(str(e))
        return 2
    print(f"taxi_revenue: wrote {args.output}: {json.dumps(doc['values'])} {json.dumps(doc['stats'])}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
