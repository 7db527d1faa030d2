"""Benchmark reference (bench/oblivious.py): the taxi revenue per month through a plain *keyed* shuffle.

The rows of the oblivious path (include/jobs/taxi_revenue.py: oblivious_rows) shuffled by their
market key with Spark's hash partitioner over 4 reducers, without combiner and without padding,
then summed per reducer: the shuffle of a job whose aggregation does not combine (a join, a
distinct count, a median). Its volumes follow the data; the built-in jobs do not shuffle this way.
Same arguments and output as the taxi job (default policy only).
"""

from __future__ import annotations

import json
import os
import sys
from decimal import Decimal

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "include", "jobs"))

import taxi_revenue as job


def _sum_partition(batches):
    """One reducer: row counts per (key, class) and the cents per key (exact: Python ints per batch)."""
    import numpy as np
    import pyarrow as pa

    counts = np.zeros(64 * 16, dtype=np.int64)
    totals: dict[int, int] = {}
    for batch in batches:
        key = batch.column(0).to_numpy(zero_copy_only=False).astype(np.int64)
        cls = batch.column(1).to_numpy(zero_copy_only=False).astype(np.int64)
        value = batch.column(2).to_numpy(zero_copy_only=False).astype(np.int64)
        counts += np.bincount(key * 16 + cls, minlength=64 * 16)
        for k in np.unique(key).tolist():
            totals[k] = totals.get(k, 0) + sum(value[key == k].tolist())
    keys = sorted(totals)
    columns = [pa.array(keys, pa.int32())]
    columns += [pa.array([int(counts[k * 16 + j]) for k in keys], pa.int64()) for j in range(16)]
    columns.append(pa.array([totals[k] for k in keys], pa.int64()))
    yield pa.RecordBatch.from_arrays(columns, names=["key", *(f"c{j}" for j in range(16)), "total"])


def main(argv=None) -> int:
    args = job.parse_args(argv)
    months = job.parse_months(args.months)
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.appName("keyed_revenue")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("WARN")
    columns = {"revenue": args.revenue_column, "time": args.time_column, "participant": None}
    trips, _ = job.read_trips(spark, args.input, columns, None)
    rows, num_keys, classes = job.oblivious_rows(trips, months, drop_negatives=False)
    schema = "key int, " + ", ".join(f"c{j} long" for j in range(classes)) + ", total long"
    per_key = [([0] * classes, 0) for _ in range(num_keys)]
    for row in rows.repartition(4, "key").mapInArrow(_sum_partition, schema).collect():
        counts, total = per_key[row["key"]]
        per_key[row["key"]] = ([a + row[f"c{j}"] for j, a in enumerate(counts)], total + row["total"])
    spark.stop()
    per_month = [int(Decimal(per_key[i][1])) for i in range(len(months))]
    doc = {
        "format": job.FORMAT,
        "party": args.party,
        "dimensions": {"market": ["all", *months]},
        "values": {"revenue_cents": [sum(per_month), *per_month]},
    }
    job.write_atomic(args.output, doc)
    print(f"keyed_revenue: wrote {args.output}: {json.dumps(doc['values'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
