"""Benchmark reference (bench/sparkrows.py): the local stage's arithmetic with Spark only handing out
the files. Each Spark task reads its files with pyarrow in its Python worker and sums the revenue
per month with numpy (bench/localstage.py's scan, the same sums); the driver adds the tasks' sums.
What a local stage that does not read through Spark's JVM would cost per row; it is not the taxi
job (no schema tolerance, no data policy, local files only). Submitted like the job::

    spark-submit --master local[*] bench/jobs/arrow_in_spark.py --input DIR --months 2024-01,2024-02

It prints ``arrow_in_spark: read in N s (R rows)``, the reading and summing alone, as the taxi
job's own timing line does, then the sums as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

TIMING = "arrow_in_spark: read in"  # the log line bench/sparkrows.py reads
BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def task_sums(files, months: list[str]) -> list[dict]:
    """One Spark task: its files' revenue per month, read by pyarrow in this Python worker."""
    files = list(files)
    if not files:
        return []
    sys.path.insert(0, BENCH)  # the workers run on this machine (local[*]): bench/localstage.py is here
    from localstage import arrow_revenue

    return [arrow_revenue(files, months)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="arrow_in_spark", description=__doc__)
    parser.add_argument("--input", required=True, help="folder of Parquet files")
    parser.add_argument("--months", required=True, help="declared months, e.g. 2024-01,2024-02")
    args = parser.parse_args(argv)
    months = args.months.split(",")
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName("arrow_in_spark").config("spark.ui.enabled", "false").getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    try:
        started = time.monotonic()
        files = sorted(str(p) for p in Path(args.input).glob("*.parquet"))
        # One task per core, each with its share of the files: a task's own cost (its Python worker,
        # the function shipped to it) is paid once per core, not once per file.
        slices = max(1, min(len(files), spark.sparkContext.defaultParallelism))
        parts = spark.sparkContext.parallelize(files, slices).mapPartitions(lambda it: task_sums(it, months))
        sums = parts.collect()
        rows = sum(part["rows_read"] for part in sums)
        revenue = [sum(column) for column in zip(*(part["revenue_cents"] for part in sums))]
        print(f"{TIMING} {time.monotonic() - started:.3f} s ({rows} rows)", flush=True)
        print(json.dumps({"revenue_cents": revenue, "rows_read": rows}), flush=True)
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
