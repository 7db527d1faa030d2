"""Bench only: the insecure baseline of Table 1 - a trusted party holds every company's trips and
computes the HHI in plaintext with one Spark job.

    spark-submit --master local[*] bench/jobs/pooled_hhi.py --root DIR --companies a,b,c \\
        --months 2024-01,2024-02,2024-03 --output FILE

Reads ``DIR/<company>/trips`` (Parquet) for every company into one DataFrame, sums the fares in
integer cents per company and month (fare cast to decimal(18,2), then cents as a long, exactly as
include/jobs/taxi_revenue.py does), and computes on the driver, from those few sums, the exact HHI
of the whole period and of every month. Writes FILE as JSON:
``{"markets": [...], "hhi": ["num/den" | null, ...], "revenue_cents": {company: [...]}, "rows": n}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from fractions import Fraction


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="pooled_hhi")
    parser.add_argument("--root", required=True)
    parser.add_argument("--companies", required=True)
    parser.add_argument("--months", required=True)
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    companies = [c for c in args.companies.split(",") if c]
    months = [m for m in args.months.split(",") if m]

    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    spark = (
        SparkSession.builder.appName("pooled_hhi")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("WARN")
    try:
        pooled = None
        for company in companies:
            df = spark.read.parquet(f"{args.root}/{company}/trips").select(
                F.lit(company).alias("company"), "fare_amount", "tpep_pickup_datetime"
            )
            pooled = df if pooled is None else pooled.unionByName(df)
        month = F.date_format(F.col("tpep_pickup_datetime"), "yyyy-MM")
        cents = (F.col("fare_amount").try_cast("decimal(18,2)") * 100).cast("long")
        rows = (
            pooled.where(month.isin(months))
            .groupBy("company", month.alias("month"))
            .agg(F.sum(cents).alias("cents"), F.count(F.lit(1)).alias("trips"))
            .collect()
        )
    finally:
        spark.stop()

    revenue = {c: {m: 0 for m in months} for c in companies}
    trips = 0
    for row in rows:
        revenue[row["company"]][row["month"]] = int(row["cents"] or 0)
        trips += int(row["trips"])
    vectors = {c: [sum(revenue[c].values()), *(revenue[c][m] for m in months)] for c in companies}
    hhi = []
    for k in range(len(months) + 1):
        column = [vectors[c][k] for c in companies]
        total = sum(column)
        hhi.append(str(Fraction(10000 * sum(r * r for r in column), total * total)) if total else None)
    doc = {"markets": ["all", *months], "hhi": hhi, "revenue_cents": vectors, "rows": trips}
    with open(args.output, "w") as f:
        json.dump(doc, f, indent=2)
    print(f"pooled_hhi: wrote {args.output}: {json.dumps(hhi)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
