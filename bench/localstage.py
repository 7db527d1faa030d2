"""The local stage without Spark: a single-process columnar scan of the same Parquet (pyarrow +
numpy), for section 4 (how close Spark's local stage is to what the hardware allows) and as the
``--engine arrow`` stand-in for spark-submit in the smoke run.

The scan computes exactly what include/jobs/taxi_revenue.py computes (revenue in integer cents of
the whole period and of every month, by the pickup's UTC month) and writes the same
``mpc-aggregate/1`` document; it skips the job's input validation counts (nulls, negatives).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

COLUMNS = ["fare_amount", "tpep_pickup_datetime"]


def _bounds_us(months: list[str]) -> np.ndarray:
    starts = [np.datetime64(m, "M") for m in months]
    edges = [*starts, starts[-1] + 1]
    return np.array([e.astype("datetime64[us]").astype(np.int64) for e in edges])


def arrow_revenue(trips_dir: Path | list[str], months: list[str], *, threads: bool = False) -> dict:
    """Revenue per month of one dataset (a folder, or a list of its files: a Spark task's share in
    bench/jobs/arrow_in_spark.py); ``threads`` lets pyarrow decode with all cores."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    pa.set_cpu_count(pa.cpu_count())  # idempotent; use_threads below decides
    t0 = time.monotonic()
    dataset = ds.dataset(trips_dir if isinstance(trips_dir, list) else str(trips_dir), format="parquet")
    bounds = _bounds_us(months)
    sums = np.zeros(len(months), dtype=np.int64)
    rows = in_period = 0
    for batch in dataset.to_batches(columns=COLUMNS, use_threads=threads, batch_size=1 << 20):
        fare = batch.column(0).to_numpy(zero_copy_only=False)
        ts = batch.column(1).cast(pa.int64()).to_numpy(zero_copy_only=False)
        cents = np.rint(fare * 100).astype(np.int64)
        idx = np.searchsorted(bounds, ts, side="right") - 1  # month index; -1 or len: outside
        rows += len(fare)
        for k in range(len(months)):
            mask = idx == k
            sums[k] += cents[mask].sum(dtype=np.int64)
            in_period += int(mask.sum())
    per_month = [int(s) for s in sums]
    return {
        "revenue_cents": [sum(per_month), *per_month],
        "rows_read": rows,
        "rows_in_period": in_period,
        "seconds": time.monotonic() - t0,
    }


def write_aggregate(path: Path, party: str, months: list[str], scan: dict) -> dict:
    doc = {
        "format": "mpc-aggregate/1",
        "party": party,
        "dimensions": {"market": ["all", *months]},
        "values": {"revenue_cents": scan["revenue_cents"]},
        "stats": {"rows_read": scan["rows_read"], "rows_in_period": scan["rows_in_period"]},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2))
    return doc


def read_bytes(trips_dir: Path) -> tuple[int, float]:
    """Bytes of the Parquet files and the seconds to read them (mostly from the page cache)."""
    t0 = time.monotonic()
    total = 0
    for path in sorted(trips_dir.glob("*.parquet")):
        with open(path, "rb") as f:
            while chunk := f.read(1 << 24):
                total += len(chunk)
    return total, time.monotonic() - t0
