"""Per-party trip revenue per month, in integer cents: the input of the nightly MPC.

Submitted with spark-submit (directly or through Airflow's SparkSubmitOperator)::

    spark-submit --master local[2] include/jobs/taxi_revenue.py \\
        --input URI --output URI --party ID --months 2024-01,2024-02,2024-03 \\
        [--revenue-column fare_amount] [--time-column tpep_pickup_datetime] \\
        [--participant-column hvfhs_license_num --participant-value HV0003] \\
        [--negative-amounts count|drop|fail] [--null-amounts drop|fail] \\
        [--outside-period ignore|fail] [--max-cents 1099511627775] [--oblivious | --engine arrow]

Reads the Parquet dataset at the input URI (a local path, ``file://``, ``s3a://``, ``hdfs://``, ...:
passed to Spark unchanged) and writes the output (a local path atomically, another URI with
fsspec; see include/jobs/mpc_job.py, which this job shares with the others) as JSON::

    {"format": FORMAT, "party": ID,
     "dimensions": {"market": ["all", "2024-01", ...]},
     "values": {"revenue_cents": [int, ...]},
     "stats": {"rows_read": n, "rows_in_period": k, "rows_used": u, ...}}

'all' is the sum over the declared months; a month is that of the pickup time in UTC
(a ``timestamp_ntz`` or ``date`` column is taken as it is written).

The data policy (declared in the federation spec, so every party applies the same one):

* ``--negative-amounts count`` (default): refunds and disputes count, so the revenue is net
  (a refund cancels its fare); ``drop`` leaves them out; ``fail`` stops the night.
* ``--null-amounts drop`` (default): rows whose amount is null or not a number are left out;
  ``fail`` stops the night.
* ``--outside-period ignore`` (default): rows whose pickup is outside the declared months (or
  null) are left out; ``fail`` stops the night.

Every reason is counted in "stats" and in the log line; "stats" stays in the party's local
aggregate file (the share stage sends only "values"). What leaves the party is checked instead
of the rows: every market's net revenue must be >= 0 and <= ``--max-cents`` (the HHI program's
per-market bound). The night also stops when the input has no rows, when every amount in the
period is null, or when a column is missing.

Schema tolerance: column names match case-insensitively; the amount may be any integer,
floating, decimal or string-of-number type; the time a timestamp, timestamp_ntz or date; files
of one dataset may disagree on those types (each group of files with one schema is read on its
own and the groups are unioned by name).

``--oblivious`` (the spec's ``aggregation.oblivious``) aggregates through the padded, keyed,
encrypted shuffle of include/jobs/mpc_oblivious.py (docs/oblivious.md): the same output, the same
errors, and shuffle volumes that do not depend on the data. The job ships that module to the
executors itself, so it still runs alone through spark-submit.

``--engine arrow`` (the spec's ``aggregation.engine``) leaves Spark only to hand each core's task
its share of the files' row groups; the task reads them with pyarrow and counts and sums them with
numpy (include/jobs/mpc_arrow.py): the same output, and the same errors but for the few that
docs/spark.md lists, in several times less CPU per row than Spark SQL (docs/benchmarks.md), for a
local input (a path or ``file://``) that every executor sees or one on S3 (``s3://``, ``s3a://``, read
with the endpoint and keys of Hadoop's s3a settings).

Money is exact: an amount counts as its value cast to decimal(18,2), taken as integer cents (see
:func:`exact_cents`: a double takes a floating-point shortcut only where it provably gives the
same cent) and summed as bigints (a sum that would overflow is redone as a decimal sum). Bad input
exits with code 2 and one line on stderr starting with "taxi_revenue: error:", leaving the output
as it was; so does an input an executor cannot read (the line names the input and Spark's reason,
not a stack trace).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from decimal import Decimal

try:
    import mpc_job
except ImportError:  # run alone through spark-submit: the shared module is next to this file
    sys.path.append(os.path.dirname(os.path.abspath(__file__)))
    import mpc_job
# Re-exported: the job's own names, as before the shared module.
from mpc_job import InputError, arrow_module, oblivious_module, parse_months, parse_party, write_atomic  # noqa: F401, I001

FORMAT = mpc_job.FORMAT
MONEY = "decimal(18,2)"
JOB_TIMING = "taxi_revenue: read and aggregated in"  # the log line bench/sparkrows.py reads
DEFAULT_MAX_CENTS = 2**40 - 1  # the HHI program's per-party, per-market bound (include/programs/hhi.py)
POLICY_CHOICES = {
    "negative_amounts": ("count", "drop", "fail"),
    "null_amounts": ("drop", "fail"),
    "outside_period": ("ignore", "fail"),
}
# Who reads the rows: Spark SQL, or pyarrow in Spark's tasks (mpc_arrow.py); the spec's choices
# (mpc_federation.spec_aggregation.ENGINES: jobs run where the plugins are not).
ENGINES = ("spark", "arrow")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="taxi_revenue", description="Per-month trip revenue in cents.")
    mpc_job.add_common_arguments(parser, ENGINES)
    parser.add_argument("--revenue-column", default="fare_amount", help="money column (any case)")
    parser.add_argument("--time-column", default="tpep_pickup_datetime", help="pickup time column (any case)")
    parser.add_argument(
        "--participant-column",
        default=None,
        help="column naming the licensee, when one dataset holds several (e.g. hvfhs_license_num)",
    )
    parser.add_argument("--participant-value", default=None, help="this party's value in that column (e.g. HV0003)")
    for name, choices in POLICY_CHOICES.items():
        parser.add_argument(f"--{name.replace('_', '-')}", choices=choices, default=choices[0])
    parser.add_argument(
        "--max-cents", type=int, default=DEFAULT_MAX_CENTS, help="largest net revenue per market the program accepts"
    )
    return parser.parse_args(argv)


def check_options(args: argparse.Namespace) -> None:
    """Argument combinations argparse cannot check.

    :param args: parsed command line
    :raises InputError: on a participant column without value (or the reverse), or a negative bound
    """
    if (args.participant_column is None) != (args.participant_value is None):
        raise InputError("--participant-column and --participant-value must be given together")
    if args.participant_value is not None and not args.participant_value.strip():
        raise InputError("--participant-value is empty")
    if args.max_cents < 0:
        raise InputError(f"--max-cents must be >= 0, got {args.max_cents}")
    if args.engine == "arrow" and args.oblivious:
        raise InputError("--engine arrow does not combine with --oblivious (its rows never go through Spark's shuffle)")
    names = [args.revenue_column, args.time_column, args.participant_column]
    lowered = [n.lower() for n in names if n is not None]
    if len(set(lowered)) != len(lowered):
        raise InputError(f"the revenue, time and participant columns must differ, got {', '.join(filter(None, names))}")


# --- reading: schema tolerance ----------------------------------------------------------


class _SchemaDrift(Exception):
    """The merged schema cannot be used as one (two names differ only by case): read per file."""


def resolve_column(names: list[str], wanted: str, role: str, where: str = "") -> str:
    """The actual name of column ``wanted``, matched case-insensitively.

    :param names: the dataset's column names
    :param wanted: the configured name
    :param role: 'revenue', 'time' or 'participant', for the error message
    :param where: ' in FILE' when checking one file of a dataset
    :raises InputError: if missing
    :raises _SchemaDrift: if several columns match only by case
    """
    matches = [n for n in names if n.lower() == wanted.lower()]
    if len(matches) > 1:
        raise _SchemaDrift(f"columns {', '.join(matches)} differ only by case")
    if not matches:
        raise InputError(f"{role} column {wanted!r} is missing{where}; columns are: {', '.join(names)}")
    return matches[0]


def normalize(df, columns: dict, participant_value: str | None, where: str = ""):
    """The few columns the aggregation needs, with one type whatever the file's schema.

    :param df: a DataFrame read from Parquet
    :param columns: {'revenue': name, 'time': name, 'participant': name or None}
    :param participant_value: this party's licence id, or None to take every row
    :param where: ' in FILE' for error messages
    :return: DataFrame of (amount_null bool, money decimal(18,2), cents bigint (money in cents),
        bad bool (not null but not a number), bad_text string, time (the pickup time as read: a
        timestamp, timestamp_ntz or date, see :func:`month_index`), time_text string, mine bool);
        a column no aggregation reads is never computed (Spark prunes it)
    :raises InputError: on a missing column or a type that cannot hold the value
    :raises _SchemaDrift: on column names that differ only by case
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import (
        DateType,
        DecimalType,
        DoubleType,
        FloatType,
        IntegralType,
        StringType,
        TimestampNTZType,
        TimestampType,
    )

    fields = {f.name: f.dataType for f in df.schema.fields}
    names = list(fields)
    rev = resolve_column(names, columns["revenue"], "revenue", where)
    when = resolve_column(names, columns["time"], "time", where)
    rtype, ttype = fields[rev], fields[when]
    if not isinstance(rtype, (IntegralType, FloatType, DoubleType, DecimalType, StringType)):
        raise InputError(f"revenue column {rev!r}{where} has type {rtype.simpleString()}, expected a number")
    if not isinstance(ttype, (TimestampType, TimestampNTZType, DateType)):
        raise InputError(f"time column {when!r}{where} has type {ttype.simpleString()}, expected a timestamp")
    raw = F.col(f"`{rev}`")
    # try_cast gives null instead of failing for "abc", NaN, infinity or values too big for
    # decimal(18,2); those rows are counted as "not numbers".
    money = raw.try_cast(MONEY)
    cents = exact_cents(raw, rtype, money)
    if columns.get("participant"):
        part = resolve_column(names, columns["participant"], "participant", where)
        mine = F.coalesce(F.col(f"`{part}`").cast("string") == F.lit(participant_value), F.lit(False))
    else:
        mine = F.lit(True)
    tcol = F.col(f"`{when}`")
    return df.select(
        raw.isNull().alias("amount_null"),
        money.alias("money"),
        cents.alias("cents"),
        (raw.isNotNull() & cents.isNull()).alias("bad"),
        F.when(raw.isNotNull() & money.isNull(), raw.cast("string")).alias("bad_text"),
        tcol.alias("time"),
        tcol.cast("string").alias("time_text"),
        mine.alias("mine"),
    )


def exact_cents(raw, rtype, money):
    """The amount in integer cents, exactly ``money`` * 100 (null where ``money`` is null), cheaply.

    Casting to decimal(18,2) is the dearest step per row (a double goes through its decimal
    text), so the common cases skip it:

    * an integer is simply times 100 (below 10**16 in magnitude, what decimal(18,2) holds);
    * a double d with |d| < 1e9 whose d * 100 is not within 0.001 of a half cent is rounded to the
      nearest cent in floating point: d's decimal text and the exact d * 100 are within 2e-5 cents
      of the computed d * 100 (a few ulps of numbers below 2**37), so the decimal cast's half-up
      rounding of that text gives the same cent. Ties, large values, NaN and infinities take the
      decimal cast.

    :param raw: the amount column as read
    :param rtype: its Spark type
    :param money: ``raw`` cast to decimal(18,2) (null when that fails)
    :return: a bigint column
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, IntegralType

    slow = (money * 100).cast("long")  # exact: decimal(18,2) * 100 is below 10**18
    if isinstance(rtype, IntegralType):
        bound = F.lit(10**16)
        return F.when((raw > -bound) & (raw < bound), raw.cast("long") * 100)
    if isinstance(rtype, DoubleType):
        x = raw * 100.0
        fast = (F.abs(raw) < 1e9) & (F.abs(x - F.floor(x) - 0.5) > 0.001)
        return F.when(fast, F.floor(x + 0.5)).otherwise(slow)
    return slow


def read_trips(spark, path: str, columns: dict, participant_value: str | None):
    """Read the dataset and normalize it, tolerating schemas that differ between its files.

    First one read with ``mergeSchema`` (a dataset of one schema, however many files). If the
    files' types cannot be merged (Spark 4.2 merges neither int with bigint nor bigint with
    double, nor timestamp with timestamp_ntz) or names differ only by case, every group of files
    with one schema is read and normalized on its own, and the groups are unioned by name.

    :param spark: the session
    :param path: Parquet dataset
    :param columns: see :func:`normalize`
    :param participant_value: see :func:`normalize`
    :return: (normalized DataFrame, number of schema groups read)
    :raises InputError: when nothing can be read or a column is missing
    """
    from pyspark.errors import AnalysisException

    sc = spark.sparkContext
    sc.setLogLevel("FATAL")  # a failed merge is expected with drifting files: no stack trace in the log
    try:
        merged = spark.read.option("mergeSchema", "true").parquet(path)
        return normalize(merged, columns, participant_value), 1
    except InputError:
        raise
    except _SchemaDrift:
        pass  # read per schema below
    except AnalysisException as e:
        if (e.getCondition() or "") != "COLUMN_ALREADY_EXISTS":  # names that differ only by case
            raise mpc_job.read_error(e, path) from None
    except Exception as e:  # Py4JJavaError from the schema merge job
        if "CANNOT_MERGE" not in str(e):
            raise
    finally:
        sc.setLogLevel(sc.getConf().get("spark.log.level", "WARN"))
    parts = []
    for frame, where in _schema_groups(spark, path):
        try:
            parts.append(normalize(frame, columns, participant_value, where))
        except _SchemaDrift as e:
            raise InputError(f"{e}{where}") from None
    union = parts[0]
    for part in parts[1:]:
        union = union.unionByName(part)
    return union, len(parts)


def _schema_groups(spark, path: str):
    """The dataset's files grouped by their Parquet schema: (DataFrame of a group, ' in FILE').

    :raises InputError: naming a file that cannot be read, e.g. with two names that differ only by case
    """
    from pyspark.errors import AnalysisException

    # Listing through binaryFile reads no Parquet footer, so a broken file cannot stop the listing.
    files = sorted(spark.read.format("binaryFile").load(path).inputFiles())
    groups: dict[str, list[str]] = {}
    for file in files:
        try:
            groups.setdefault(spark.read.parquet(file).schema.json(), []).append(file)
        except AnalysisException as e:
            name, first = os.path.basename(file), str(e).splitlines()[0]
            if (e.getCondition() or "") == "COLUMN_ALREADY_EXISTS":
                raise InputError(f"two columns differ only by case in {name}: {first}") from None
            raise InputError(f"cannot read {name} in {path}: {first}") from None
    for members in groups.values():
        more = f" (and {len(members) - 1} more files)" if len(members) > 1 else ""
        where = f" in {os.path.basename(members[0])}{more}"
        yield spark.read.parquet(*members), where


# --- aggregation and policy -------------------------------------------------------------


def month_index(trips, months: list[str]):
    """The index of the declared month a row's pickup falls in (an int column), null for other times.

    The time is compared, in its own type, with each month's first instant and the next month's:
    constants Spark computes once (a timestamp's in the session time zone, UTC, so months are UTC
    months; a timestamp_ntz's or a date's as written). That is exact, and much cheaper per row
    than converting every time to a date or to a month string.

    :param trips: output of :func:`read_trips` (its ``time`` column)
    :param months: declared 'YYYY-MM' months
    """
    from pyspark.sql import functions as F

    pickup, ttype = F.col("time"), trips.schema["time"].dataType

    def first(year: int, month: int):
        return F.lit(f"{year:04d}-{month:02d}-01").cast(ttype)

    index = None
    for i, m in enumerate(months):
        year, month = int(m[:4]), int(m[5:])
        inside = (pickup >= first(year, month)) & (pickup < first(year + month // 12, month % 12 + 1))
        index = F.when(inside, F.lit(i)) if index is None else index.when(inside, F.lit(i))
    return index


def count_and_sum(trips, months: list[str], drop_negatives: bool, examples: bool = True) -> dict:
    """One pass over the normalized trips: every count of the policy and the sum per month.

    :param trips: output of :func:`read_trips`
    :param months: declared 'YYYY-MM' months
    :param drop_negatives: leave negative amounts out of the sums
    :param examples: also find the examples the policy's messages quote (a few string and decimal
        aggregates more per row: :func:`revenue_by_month` asks for them only when the night stops)
    :return: the aggregated row as a dict; sums ``m0``.. are Decimals (or None); the examples
        are None without ``examples``
    """
    from pyspark.sql import functions as F

    # The month index is computed once per row (Spark does not inline it into every aggregate).
    trips = trips.withColumn("month", month_index(trips, months))
    mine, cents, month = F.col("mine"), F.col("cents"), F.col("month")
    in_period = mine & month.isNotNull()
    outside = mine & month.isNull()
    keep = in_period & cents.isNotNull()
    if drop_negatives:
        keep = keep & (cents >= 0)

    def count(cond):
        return F.count(F.when(cond, 1))

    aggs = [
        F.count(F.lit(1)).alias("rows_read"),
        count(mine).alias("rows_mine"),
        count(in_period).alias("rows_in_period"),
        count(outside).alias("rows_outside_period"),
        count(in_period & F.col("amount_null")).alias("null_amounts"),
        count(in_period & F.col("bad")).alias("not_numbers"),
        count(in_period & (cents < 0)).alias("negatives"),
        count(keep).alias("rows_used"),
    ]
    if examples:
        money = F.col("money")
        aggs += [
            F.min(F.when(outside, F.coalesce(F.col("time_text"), F.lit("null")))).alias("outside_example"),
            F.min(F.when(in_period, F.col("bad_text"))).alias("not_number_example"),
            F.min(F.when(in_period & (money < 0), money)).alias("negative_example"),
        ]
    # Sums of cents as bigints, with a count to tell an empty month from an overflow (try_sum's null).
    for i in range(len(months)):
        kept = keep & (month == i)
        aggs += [F.try_sum(F.when(kept, cents)).alias(f"m{i}"), count(kept).alias(f"n{i}")]
    row = trips.agg(*aggs).first().asDict()
    if any(row[f"m{i}"] is None and row[f"n{i}"] for i in range(len(months))):
        # Beyond 2**63 cents: the exact decimal sums (decimal(28,2) in Spark), in a second pass.
        sums = [F.sum(F.when(keep & (month == i), F.col("money"))).alias(f"m{i}") for i in range(len(months))]
        row.update(trips.agg(*sums).first().asDict())
    else:
        for i in range(len(months)):
            row[f"m{i}"] = None if row[f"m{i}"] is None else Decimal(row[f"m{i}"]).scaleb(-2)
    if not examples:
        row.update(outside_example=None, not_number_example=None, negative_example=None)
    return row


# Row classes of the oblivious path: bit flags of a row in the period (see oblivious_count_and_sum).
_NULL, _NOT_NUMBER, _NEGATIVE, _USED = 1, 2, 4, 8


def oblivious_rows(trips, months: list[str], drop_negatives: bool):
    """The rows of the oblivious shuffle: (key, cls, value) per trip.

    Keys: the declared months (0..K-1), then K for this party's rows outside the period and K+1
    for other licensees' rows; the domain is public (the spec's months). A row's class is its bit
    flags (null amount, not a number, negative, used) and its value the cents it adds.

    :return: (DataFrame, number of keys, number of classes)
    """
    from pyspark.sql import functions as F

    k = len(months)
    trips = trips.withColumn("month", month_index(trips, months))
    mine, cents, month = F.col("mine"), F.col("cents"), F.col("month")
    in_period = month.isNotNull()
    index = month
    key = F.when(~mine, F.lit(k + 1)).when(in_period, index).otherwise(F.lit(k))
    keep = cents.isNotNull() & (cents >= 0) if drop_negatives else cents.isNotNull()
    flags = (
        F.when(F.col("amount_null"), _NULL).otherwise(0)
        + F.when(F.col("bad"), _NOT_NUMBER).otherwise(0)
        + F.when(F.coalesce(cents < 0, F.lit(False)), _NEGATIVE).otherwise(0)
        + F.when(keep, _USED).otherwise(0)
    )
    cls = F.when(mine & in_period, flags).otherwise(F.lit(0))
    value = F.when(mine & in_period & keep, cents).otherwise(F.lit(0).cast("long"))
    rows = trips.select(key.cast("int").alias("key"), cls.cast("int").alias("cls"), value.alias("value"))
    return rows, k + 2, 16


def oblivious_count_and_sum(spark, trips, months: list[str], drop_negatives: bool) -> dict:
    """What :func:`count_and_sum` computes (without the examples), through the oblivious shuffle
    (include/jobs/mpc_oblivious.py) of :func:`oblivious_rows`."""
    rows, num_keys, classes = oblivious_rows(trips, months, drop_negatives)
    per_key = oblivious_module().oblivious_sums(spark, rows, num_keys=num_keys, classes=classes)
    k = len(months)

    def flagged(bit):
        return sum(counts[c] for counts, _ in per_key[:k] for c in range(16) if c & bit)

    rows_read = sum(sum(counts) for counts, _ in per_key)
    row = {
        "rows_read": rows_read,
        "rows_mine": rows_read - sum(per_key[k + 1][0]),
        "rows_in_period": sum(sum(counts) for counts, _ in per_key[:k]),
        "rows_outside_period": sum(per_key[k][0]),
        "outside_example": None,
        "null_amounts": flagged(_NULL),
        "not_numbers": flagged(_NOT_NUMBER),
        "not_number_example": None,
        "negatives": flagged(_NEGATIVE),
        "negative_example": None,
        "rows_used": flagged(_USED),
    }
    for i in range(k):
        row[f"m{i}"] = Decimal(per_key[i][1]).scaleb(-2)
    return row


def to_cents(amount) -> int:
    """An exact decimal amount (or None for an empty sum) as integer cents; never a float."""
    if amount is None:
        return 0
    cents = Decimal(amount) * 100
    if cents != cents.to_integral_value():
        raise InputError(f"internal: amount {amount} is not a whole number of cents")
    return int(cents)


# The example each 'fail' choice of the policy quotes in its message (apply_policy): the arrow
# engine looks only for these, as the Spark engine's second pass does.
QUOTED_EXAMPLES = {
    "outside": ("outside_period", "fail"),
    "not_number": ("null_amounts", "fail"),
    "negative": ("negative_amounts", "fail"),
}


def apply_policy(row: dict, policy: dict, columns: dict, participant_value: str | None) -> None:
    """Stop the night where the declared policy or the data says so.

    :param row: output of :func:`count_and_sum`
    :param policy: {'negative_amounts': ..., 'null_amounts': ..., 'outside_period': ...}
    :param columns: configured column names, for messages
    :param participant_value: this party's licence id, or None
    :raises InputError: with one clear line
    """
    n, rev = row["rows_read"], columns["revenue"]
    if n == 0:
        raise InputError("input has zero rows")
    if participant_value is not None and row["rows_mine"] == 0:
        raise InputError(f"no rows with {columns['participant']} = {participant_value!r} among {n} rows")
    if row["rows_outside_period"] and policy["outside_period"] == "fail":
        raise InputError(
            f"time column {columns['time']!r} has {row['rows_outside_period']} rows outside the "
            f"declared months, e.g. {row['outside_example']} (policy outside_period: fail)"
        )
    unreadable = row["null_amounts"] + row["not_numbers"]
    if row["rows_in_period"] and unreadable == row["rows_in_period"]:
        raise InputError(
            f"revenue column {rev!r} has no usable amount: all {row['rows_in_period']} rows in "
            f"the period are null ({row['null_amounts']}) or not numbers ({row['not_numbers']})"
        )
    if policy["null_amounts"] == "fail":
        if row["null_amounts"]:
            raise InputError(
                f"revenue column {rev!r} has {row['null_amounts']} null values out of "
                f"{row['rows_in_period']} rows in the period (policy null_amounts: fail)"
            )
        if row["not_numbers"]:
            raise InputError(
                f"revenue column {rev!r} has {row['not_numbers']} values that are not numbers out "
                f"of {row['rows_in_period']} rows in the period, e.g. {row['not_number_example']!r} "
                f"(policy null_amounts: fail)"
            )
    if row["negatives"] and policy["negative_amounts"] == "fail":
        raise InputError(
            f"revenue column {rev!r} has {row['negatives']} negative values out of "
            f"{row['rows_in_period']} rows in the period, e.g. {row['negative_example']} "
            f"(policy negative_amounts: fail)"
        )


def check_markets(markets: list[str], cents: list[int], max_cents: int) -> None:
    """What leaves the party: every market's net revenue in [0, max_cents].

    :param markets: market labels, 'all' first
    :param cents: net revenue per market
    :param max_cents: the program's bound
    :raises InputError: naming the first month out of range ('all' only when no month is)
    """
    for market, value in [*zip(markets[1:], cents[1:]), (markets[0], cents[0])]:
        if value < 0:
            raise InputError(
                f"market {market}: net revenue is negative ({value} cents): refunds exceed fares, nothing is shared"
            )
        if value > max_cents:
            raise InputError(
                f"market {market}: net revenue {value} cents is above the program's bound "
                f"of {max_cents} cents (--max-cents), nothing is shared"
            )


def revenue_by_month(
    trips,
    months: list[str],
    policy: dict,
    columns: dict,
    participant_value: str | None = None,
    max_cents: int = DEFAULT_MAX_CENTS,
    oblivious_spark=None,
) -> dict:
    """Apply the data policy and sum the net revenue per declared month, in one pass.

    :param trips: output of :func:`read_trips`
    :param months: declared 'YYYY-MM' months
    :param policy: the data policy (see the module docstring)
    :param columns: {'revenue': name, 'time': name, 'participant': name or None}
    :param participant_value: this party's licence id, or None
    :param max_cents: largest net revenue per market
    :param oblivious_spark: the session, to aggregate through the oblivious shuffle (None: plain)
    :return: {'markets': ['all', *months], 'revenue_cents': [...], 'stats': {...}}
    :raises InputError: where the policy or the range check says stop
    """
    drop = policy["negative_amounts"] == "drop"
    if oblivious_spark is None:
        row = count_and_sum(trips, months, drop, examples=False)
    else:
        row = oblivious_count_and_sum(oblivious_spark, trips, months, drop)
    try:
        apply_policy(row, policy, columns, participant_value)
    except InputError:
        # The night stops: a second, plain pass finds the examples the message quotes (same counts).
        apply_policy(count_and_sum(trips, months, drop), policy, columns, participant_value)
        raise
    return revenue_of(row, months, policy, participant_value, max_cents)


def revenue_of(row: dict, months: list[str], policy: dict, participant_value: str | None, max_cents: int) -> dict:
    """The markets, their net revenue and the local stats of one pass's counts (the policy applied).

    :param row: output of :func:`count_and_sum` (or of the oblivious or the arrow pass)
    :raises InputError: a market out of range
    """
    per_month = [to_cents(row[f"m{i}"]) for i in range(len(months))]
    markets, cents = ["all", *months], [sum(per_month), *per_month]
    check_markets(markets, cents, max_cents)
    dropped_negatives = row["negatives"] if policy["negative_amounts"] == "drop" else 0
    stats = {
        "rows_read": int(row["rows_read"]),
        "rows_in_period": int(row["rows_in_period"]),
        "rows_used": int(row["rows_used"]),
        "rows_outside_period": int(row["rows_outside_period"]),
        "negative_amounts": int(row["negatives"]),
        "dropped": {
            "null_amount": int(row["null_amounts"]),
            "not_a_number": int(row["not_numbers"]),
            "negative_amount": int(dropped_negatives),
        },
        "policy": dict(policy),
    }
    if participant_value is not None:
        stats["rows_other_participants"] = int(row["rows_read"] - row["rows_mine"])
    return {"markets": markets, "revenue_cents": cents, "stats": stats}


def aggregate(
    spark,
    path: str,
    months: list[str],
    policy: dict,
    columns: dict,
    participant_value: str | None = None,
    max_cents: int = DEFAULT_MAX_CENTS,
    *,
    engine: str = "spark",
    oblivious: bool = False,
) -> dict:
    """Read the dataset at ``path`` and aggregate it: what the job computes, without its output.

    :param engine: ``spark`` (:func:`read_trips`, :func:`revenue_by_month`) or ``arrow``
        (include/jobs/mpc_arrow.py: pyarrow in Spark's tasks; local files and S3)
    :param oblivious: through the oblivious shuffle (the spark engine only)
    :return: see :func:`revenue_by_month`, with ``stats.schemas`` (the distinct schemas read)
    :raises InputError: bad input, or where the policy or the range check says stop
    """
    if engine == "arrow":
        arrow = arrow_module()
        mpc_job.ship_module(spark, arrow)
        quoted = tuple(kind for kind, (name, choice) in QUOTED_EXAMPLES.items() if policy[name] == choice)
        try:
            row, schemas = arrow.count_and_sum(
                spark, path, months, columns, participant_value, policy["negative_amounts"] == "drop", quoted
            )
        except arrow.DataError as e:
            raise InputError(str(e)) from None
        apply_policy(row, policy, columns, participant_value)
        result = revenue_of(row, months, policy, participant_value, max_cents)
    else:
        trips, schemas = read_trips(spark, path, columns, participant_value)
        oblivious_spark = spark if oblivious else None
        result = revenue_by_month(trips, months, policy, columns, participant_value, max_cents, oblivious_spark)
    result["stats"]["schemas"] = schemas
    return result


def stats_line(stats: dict) -> str:
    """The counts as one readable log line (they stay on this party)."""
    d = stats["dropped"]
    other = f", {stats['rows_other_participants']} of other licensees" if "rows_other_participants" in stats else ""
    verb = "dropped" if stats["policy"]["negative_amounts"] == "drop" else "counted (net revenue)"
    return (
        f"taxi_revenue: rows: {stats['rows_read']} read{other}, {stats['rows_outside_period']} outside the "
        f"period (ignored), {stats['rows_in_period']} in the period, {stats['rows_used']} used; dropped: "
        f"{d['null_amount']} null amounts, {d['not_a_number']} not numbers, {d['negative_amount']} negative "
        f"amounts; {stats['negative_amounts']} negative amounts {verb}"
    )


def run(args: argparse.Namespace) -> dict:
    """Validate the arguments, run the Spark aggregation and write the output.

    :param args: parsed command line (see :func:`parse_args`)
    :return: the document written to ``args.output``
    :raises InputError: on bad arguments or bad input data
    """
    months = parse_months(args.months)
    party = parse_party(args.party)
    check_options(args)
    mpc_job.check_locations(args.input, args.output)  # cheap checks first: no need to start Spark for these
    columns = {"revenue": args.revenue_column, "time": args.time_column, "participant": args.participant_column}
    value = args.participant_value.strip() if args.participant_value is not None else None
    policy = {name: getattr(args, name) for name in POLICY_CHOICES}

    spark = mpc_job.session(
        f"taxi_revenue[{party}]",
        args.oblivious,
        {
            "spark.sql.session.timeZone": "UTC",  # months are UTC months on every machine
            "spark.sql.shuffle.partitions": "4",  # one small global aggregate
        },
    )
    try:
        started = time.monotonic()
        with mpc_job.spark_errors(args.input):  # an executor's failure too: one line naming the input
            result = aggregate(
                spark,
                args.input,
                months,
                policy,
                columns,
                value,
                args.max_cents,
                engine=args.engine,
                oblivious=args.oblivious,
            )
        # The reading and aggregation alone, without the JVM's and the session's start-up, in the
        # job's log only (bench/sparkrows.py): the aggregate file stays the same from run to run.
        print(f"{JOB_TIMING} {time.monotonic() - started:.3f} s", flush=True)
    finally:
        spark.stop()

    doc = {
        "format": FORMAT,
        "party": party,
        "dimensions": {"market": result["markets"]},
        "values": {"revenue_cents": result["revenue_cents"]},
        "stats": result["stats"],
    }
    mpc_job.write_output(args.output, doc)
    return doc


def main(argv=None) -> int:
    args = parse_args(argv)
    return mpc_job.main(
        "taxi_revenue",
        run,
        args,
        lambda doc: [stats_line(doc["stats"]), f"taxi_revenue: wrote {args.output}: {json.dumps(doc['values'])}"],
    )


if __name__ == "__main__":
    sys.exit(main())
