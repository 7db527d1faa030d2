"""Synthetic NYC-TLC-yellow-like taxi trips, one Parquet dataset per company.

Each company gets ``OUT/<company>/trips/part-NNNNN.parquet`` with the columns of the
TLC "yellow tripdata" files. Money columns are generated as integer cents and stored
as ``cents / 100`` doubles, so every amount has exactly two decimals and
``round(x * 100)`` gives the cents back exactly.

The module also holds the plaintext reference, :func:`revenue_cents_by_month`, which
reads the Parquet with pyarrow only (no Spark), so it can check the Spark job.

CLI::

    python include/datagen/taxi_trips.py --out DIR --companies a,b,c,d,e --trips N \\
        --seed S --start 2024-01 --end 2024-03 [--split 50,20,10,10,10] [--rows-per-file R]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

# The paper's setting: one big company and four small ones.
PAPER_SPLIT = (50, 20, 10, 10, 10)
ROWS_PER_FILE = 1_000_000
MIN_FARE_CENTS, MAX_FARE_CENTS = 250, 50_000
JFK_FLAT_FARE_CENTS = 7_000
AIRPORT_ZONES = (132, 138)  # JFK, LaGuardia: pickups there pay the airport fee
N_ZONES = 263

_MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")

SCHEMA = pa.schema([
    ("VendorID", pa.int32()),
    ("tpep_pickup_datetime", pa.timestamp("us")),
    ("tpep_dropoff_datetime", pa.timestamp("us")),
    ("passenger_count", pa.int64()),
    ("trip_distance", pa.float64()),
    ("RatecodeID", pa.int64()),
    ("store_and_fwd_flag", pa.string()),
    ("PULocationID", pa.int32()),
    ("DOLocationID", pa.int32()),
    ("payment_type", pa.int64()),
    ("fare_amount", pa.float64()),
    ("extra", pa.float64()),
    ("mta_tax", pa.float64()),
    ("tip_amount", pa.float64()),
    ("tolls_amount", pa.float64()),
    ("improvement_surcharge", pa.float64()),
    ("total_amount", pa.float64()),
    ("congestion_surcharge", pa.float64()),
    ("airport_fee", pa.float64()),
])


def _parse_month(text: str) -> np.datetime64:
    if not isinstance(text, str) or not _MONTH_RE.match(text):
        raise ValueError(f"month must look like YYYY-MM, got {text!r}")
    return np.datetime64(text, "M")


def months_between(start: str, end: str) -> list[str]:
    """Months from ``start`` to ``end`` inclusive, as 'YYYY-MM' strings.

    :param start: first month, 'YYYY-MM'
    :param end: last month, 'YYYY-MM' (not before ``start``)
    """
    first, last = _parse_month(start), _parse_month(end)
    if last < first:
        raise ValueError(f"end month {end} is before start month {start}")
    return [str(m) for m in np.arange(first, last + 1)]


def split_trips(trips: int, companies: list[str], split=None) -> dict[str, int]:
    """Share ``trips`` among ``companies`` by percentages; the counts add up to ``trips``.

    :param trips: total number of trips (>= 0)
    :param companies: company names, in order
    :param split: percentages, one per company, summing to 100; default the paper's
        50/20/10/10/10 for five companies, else an equal split
    """
    if trips < 0:
        raise ValueError(f"trips must be >= 0, got {trips}")
    if split is None:
        split = PAPER_SPLIT if len(companies) == len(PAPER_SPLIT) else [1] * len(companies)
        shares = [Fraction(s) for s in split]
    else:
        if len(split) != len(companies):
            raise ValueError(f"split has {len(split)} percentages but there are "
                             f"{len(companies)} companies ({','.join(companies)})")
        try:
            shares = [Fraction(str(s).strip()) for s in split]
        except ValueError:
            raise ValueError(f"split must be numbers, got {','.join(str(s) for s in split)}") from None
        if any(s < 0 for s in shares) or sum(shares) != 100:
            raise ValueError(f"split percentages must be >= 0 and sum to 100, got "
                             f"{','.join(str(s) for s in split)}")
    total = sum(shares)
    exact = [trips * s / total for s in shares]
    counts = [int(e) for e in exact]  # floor, all values are >= 0
    # Largest remainder: hand the leftover trips to the biggest fractional parts
    # (ties go to the earlier company), so the sum is exactly `trips`.
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: trips - sum(counts)]:
        counts[i] += 1
    return dict(zip(companies, counts))


def _rng(seed: int, company: str, chunk: int) -> np.random.Generator:
    # Derive a stream per (seed, company, chunk) from the company's *name*, so a
    # company's data does not change when other companies are added or reordered.
    name_key = int.from_bytes(hashlib.sha256(company.encode()).digest()[:8], "big")
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(name_key, chunk)))


# Zone popularity: a fixed skew (a few busy Manhattan-like zones), identical for every
# seed so all companies serve the same city.
_ZONE_WEIGHTS = 1.0 / np.arange(1, N_ZONES + 1) ** 0.9
_ZONE_WEIGHTS /= _ZONE_WEIGHTS.sum()
_ZONE_IDS = np.random.default_rng(20240101).permutation(np.arange(1, N_ZONES + 1)).astype(np.int32)


def _chunk(rng: np.random.Generator, n: int, t0_us: int, t1_us: int) -> pa.Table:
    """``n`` trips with pickup times uniform in [t0_us, t1_us) (microseconds since epoch)."""
    pickup = np.sort(rng.integers(t0_us, t1_us, size=n, dtype=np.int64))
    minutes = np.clip(rng.lognormal(np.log(12.0), 0.6, n), 1.0, 240.0)
    mph = np.clip(rng.lognormal(np.log(11.0), 0.35, n), 2.0, 50.0)
    distance = np.round(minutes / 60.0 * mph, 2)
    dropoff = pickup + (minutes * 60e6).astype(np.int64)

    ratecode = rng.choice(np.array([1, 2, 3, 4, 5], dtype=np.int64), size=n,
                          p=[0.95, 0.03, 0.005, 0.005, 0.01])
    pu = rng.choice(_ZONE_IDS, size=n, p=_ZONE_WEIGHTS)
    do = rng.choice(_ZONE_IDS, size=n, p=_ZONE_WEIGHTS)
    # Meter: $3 flag drop, $3.50/mile, ~$0.35/minute, some noise; JFK is a flat fare.
    fare = 300 + 350 * distance + 35 * minutes + rng.normal(0, 80, n)
    fare = np.where(ratecode == 2, JFK_FLAT_FARE_CENTS, fare)
    fare = np.clip(np.rint(fare), MIN_FARE_CENTS, MAX_FARE_CENTS).astype(np.int64)

    hour = (pickup // 3_600_000_000) % 24
    weekday = (pickup // 86_400_000_000 + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    extra = np.where((hour >= 20) | (hour < 6), 100,
                     np.where((hour >= 16) & (weekday < 5), 250, 0)).astype(np.int64)
    mta_tax = np.full(n, 50, dtype=np.int64)
    improvement = np.full(n, 100, dtype=np.int64)
    payment = rng.choice(np.array([1, 2, 3, 4], dtype=np.int64), size=n, p=[0.75, 0.22, 0.015, 0.015])
    tip_pct = rng.choice(np.array([0, 10, 15, 18, 20, 25, 30]), size=n,
                         p=[0.15, 0.05, 0.15, 0.2, 0.25, 0.15, 0.05])
    tip = np.where(payment == 1, fare * tip_pct // 100, 0).astype(np.int64)  # only card tips are recorded
    tolls = np.where(rng.random(n) < 0.05, 694, 0).astype(np.int64)
    congestion = np.where(rng.random(n) < 0.9, 250, 0).astype(np.int64)
    airport = np.where(np.isin(pu, AIRPORT_ZONES), 175, 0).astype(np.int64)
    total = fare + extra + mta_tax + tip + tolls + improvement + congestion + airport

    def money(cents):
        return cents / 100.0  # nearest double to the 2-decimal amount

    columns = {
        "VendorID": rng.choice(np.array([1, 2], dtype=np.int32), size=n, p=[0.3, 0.7]),
        "tpep_pickup_datetime": pickup,
        "tpep_dropoff_datetime": dropoff,
        "passenger_count": rng.choice(np.arange(1, 7, dtype=np.int64), size=n,
                                      p=[0.72, 0.15, 0.05, 0.03, 0.03, 0.02]),
        "trip_distance": distance,
        "RatecodeID": ratecode,
        "store_and_fwd_flag": np.where(rng.random(n) < 0.005, "Y", "N"),
        "PULocationID": pu,
        "DOLocationID": do,
        "payment_type": payment,
        "fare_amount": money(fare),
        "extra": money(extra),
        "mta_tax": money(mta_tax),
        "tip_amount": money(tip),
        "tolls_amount": money(tolls),
        "improvement_surcharge": money(improvement),
        "total_amount": money(total),
        "congestion_surcharge": money(congestion),
        "airport_fee": money(airport),
    }
    return pa.Table.from_arrays([pa.array(columns[f.name], type=f.type) for f in SCHEMA], schema=SCHEMA)


def _epoch_us(month: np.datetime64) -> int:
    return int(month.astype("datetime64[us]").astype(np.int64))


def generate(out, companies, trips, seed, start, end, split=None,
             rows_per_file: int = ROWS_PER_FILE) -> dict[str, int]:
    """Write every company's trips to ``out/<company>/trips/part-NNNNN.parquet``.

    Existing ``part-*.parquet`` files in those folders are replaced, so a re-run never
    leaves stale parts behind.

    :param out: root folder
    :param companies: company names (list, or a comma-separated string)
    :param trips: total number of trips over all companies
    :param seed: integer seed; same arguments give identical files
    :param start: first month 'YYYY-MM'; pickup times are uniform from its start ...
    :param end: ... to the end of this month 'YYYY-MM'
    :param split: percentages per company (see :func:`split_trips`)
    :param rows_per_file: rows per Parquet file; bounds memory use
    :return: number of rows written per company
    """
    if isinstance(companies, str):
        companies = companies.split(",")
    companies = [c.strip() for c in companies]
    for c in companies:
        if not c or c in (".", "..") or "/" in c or os.sep in c:
            raise ValueError(f"bad company name {c!r}")
    if len(set(companies)) != len(companies):
        raise ValueError(f"duplicate company names in {','.join(companies)}")
    if rows_per_file < 1:
        raise ValueError(f"rows_per_file must be >= 1, got {rows_per_file}")
    months = months_between(start, end)
    t0 = _epoch_us(np.datetime64(months[0], "M"))
    t1 = _epoch_us(np.datetime64(months[-1], "M") + 1)
    counts = split_trips(int(trips), companies, split)

    for company, n in counts.items():
        folder = Path(out) / company / "trips"
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("part-*.parquet"):
            old.unlink()
        for chunk, offset in enumerate(range(0, n, rows_per_file)):
            table = _chunk(_rng(int(seed), company, chunk), min(rows_per_file, n - offset), t0, t1)
            final = folder / f"part-{chunk:05d}.parquet"
            # Spark and pyarrow skip names starting with "_", so a half-written file is never read.
            tmp = folder / f"_tmp-{chunk:05d}.parquet"
            pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, final)
    return counts


def revenue_cents_by_month(root, company: str, months) -> dict[str, int]:
    """Plaintext revenue of one company in integer cents, straight from its Parquet.

    cents = round(fare_amount * 100); only trips whose pickup month is in ``months``
    count. Exact for amounts with at most two decimals (what :func:`generate` writes).

    :param root: the ``out`` folder given to :func:`generate`
    :param company: company name
    :param months: 'YYYY-MM' strings
    :return: ``{'all': total, 'YYYY-MM': cents, ...}`` with 'all' the sum over ``months``
    """
    months = list(months)
    wanted = np.array([_parse_month(m) for m in months], dtype="datetime64[M]")
    sums = np.zeros(len(months), dtype=np.int64)
    files = sorted((Path(root) / company / "trips").glob("part-*.parquet"))
    if not files:
        raise FileNotFoundError(f"no part-*.parquet files in {Path(root) / company / 'trips'}")
    for path in files:
        pf = pq.ParquetFile(path)
        for batch in pf.iter_batches(columns=["fare_amount", "tpep_pickup_datetime"], batch_size=1 << 20):
            fare = batch.column("fare_amount").to_numpy(zero_copy_only=False)
            month = batch.column("tpep_pickup_datetime").to_numpy(zero_copy_only=False).astype("datetime64[M]")
            cents = np.rint(fare * 100).astype(np.int64)
            for i, m in enumerate(wanted):
                sums[i] += cents[month == m].sum(dtype=np.int64)
    result = {"all": int(sums.sum())}
    result.update({m: int(s) for m, s in zip(months, sums)})
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="root folder; writes OUT/<company>/trips/")
    parser.add_argument("--companies", required=True, help="comma-separated names, e.g. a,b,c,d,e")
    parser.add_argument("--trips", required=True, type=int, help="total trips over all companies")
    parser.add_argument("--seed", required=True, type=int)
    parser.add_argument("--start", required=True, help="first month, YYYY-MM")
    parser.add_argument("--end", required=True, help="last month, YYYY-MM (inclusive)")
    parser.add_argument("--split", help="percentages per company, e.g. 50,20,10,10,10")
    parser.add_argument("--rows-per-file", type=int, default=ROWS_PER_FILE)
    args = parser.parse_args(argv)
    split = [s.strip() for s in args.split.split(",")] if args.split else None
    try:
        counts = generate(args.out, args.companies, args.trips, args.seed, args.start, args.end,
                          split=split, rows_per_file=args.rows_per_file)
    except ValueError as e:
        print(f"taxi_trips: error: {e}", file=sys.stderr)
        return 2
    for company, n in counts.items():
        print(f"{company}\t{n}\t{Path(args.out) / company / 'trips'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
