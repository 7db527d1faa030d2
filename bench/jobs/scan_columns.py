"""Benchmark reference (bench/sparkrows.py): Spark's own floor for the local stage. It reads the two
columns the taxi job reads (the amount and the pickup time) from the same Parquet files and
aggregates each once (a sum, a max and a count), with none of the job's checks, conversions or
per-month sums. Submitted like the job (spark-submit, ``local[*]``)::

    spark-submit --master local[*] bench/jobs/scan_columns.py --input DIR [--amount fare_amount]
        [--time tpep_pickup_datetime]

It prints ``scan_columns: read in N s (R rows)``, the reading and aggregation alone, without the
JVM's and the session's start-up, as the taxi job's own timing line does, then the rows as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

TIMING = "scan_columns: read in"  # the log line bench/sparkrows.py reads


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="scan_columns", description=__doc__)
    parser.add_argument("--input", required=True, help="Parquet dataset")
    parser.add_argument("--amount", default="fare_amount")
    parser.add_argument("--time", default="tpep_pickup_datetime")
    args = parser.parse_args(argv)
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    spark = SparkSession.builder.appName("scan_columns").config("spark.ui.enabled", "false").getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    try:
        started = time.monotonic()
        trips = spark.read.parquet(args.input)
        row = trips.agg(F.sum(args.amount), F.max(args.time), F.count(F.lit(1)).alias("rows")).first()
        print(f"{TIMING} {time.monotonic() - started:.3f} s ({row['rows']} rows)", flush=True)
        print(json.dumps({"rows_read": row["rows"]}), flush=True)
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
