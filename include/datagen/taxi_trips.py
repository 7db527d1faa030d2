"""Synthetic NYC-TLC-like trip records: yellow taxi per company, and high-volume for-hire.

Each company gets ``OUT/<company>/trips/part-NNNNN.parquet`` with the columns of the
TLC "yellow tripdata" files. Money columns are generated as integer cents and stored
as ``cents / 100`` doubles, so every amount has exactly two decimals and
``round(x * 100)`` gives the cents back exactly.

Real monthly files are not clean, and with ``defects=True`` (CLI ``--defects``) neither are
these, at the rates of :data:`DEFECTS` (see docs/data.md): refunds (a trip followed by its
negative copy), null fares, and pickups outside the generated months. Without it the files
are exactly those of earlier versions.

:func:`generate_hvfhv` writes the second schema, high-volume for-hire records
(``hvfhs_license_num``, ``base_passenger_fare``, ``pickup_datetime``, ...) of several licensees
in one dataset, as the TLC publishes them; each licensee's party selects its rows by licence id.

The plaintext references, :func:`revenue_cents_by_month` and :func:`hvfhv_revenue_cents_by_month`,
live in ``trip_references.py`` (importable from here too): they read the Parquet with pyarrow
only (no Spark) and apply the same data policy as the Spark job, so they can check it.

CLI::

    python include/datagen/taxi_trips.py --out DIR --companies a,b,c,d,e --trips N \\
        --seed S --start 2024-01 --end 2024-03 [--split 50,20,10,10,10] [--rows-per-file R] [--defects]
    python include/datagen/taxi_trips.py --schema hvfhv --out DIR --trips N --seed S \\
        --start 2024-01 --end 2024-03 [--licences HV0003,HV0005,HV0004] [--split 70,25,5] [--defects]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa

if str(Path(__file__).resolve().parent) not in sys.path:  # the generators' shared module, however this is loaded
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from datagen_common import check_companies, company_rng, months_between, split_counts, write_parts  # noqa: E402
from trip_defects import DEFECTS, REFUND_PAYMENT_TYPE, add_defects, defect_rates, epoch_us  # noqa: E402, F401
from trip_references import (  # noqa: E402, F401 - the plaintext references, kept importable from here
    DEFAULT_POLICY,
    check_policy,
    hvfhv_revenue_cents_by_month,
    revenue_cents_by_month,
)

# The paper's setting: one big company and four small ones.
PAPER_SPLIT = (50, 20, 10, 10, 10)
ROWS_PER_FILE = 1_000_000
MIN_FARE_CENTS, MAX_FARE_CENTS = 250, 50_000
JFK_FLAT_FARE_CENTS = 7_000
AIRPORT_ZONES = (132, 138)  # JFK, LaGuardia: pickups there pay the airport fee
N_ZONES = 263


SCHEMA = pa.schema(
    [
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
    ]
)
MONEY_COLUMNS = tuple(f.name for f in SCHEMA if f.type == pa.float64() and f.name != "trip_distance")


# High-volume for-hire vehicle (HVFHV) records: Uber, Lyft and Via licence ids in TLC's files.
HVFHV_LICENCES = ("HV0003", "HV0005", "HV0004")
HVFHV_SPLIT = (70, 25, 5)
HVFHV_SCHEMA = pa.schema(
    [
        ("hvfhs_license_num", pa.string()),
        ("dispatching_base_num", pa.string()),
        ("request_datetime", pa.timestamp("us")),
        ("pickup_datetime", pa.timestamp("us")),
        ("dropoff_datetime", pa.timestamp("us")),
        ("PULocationID", pa.int64()),
        ("DOLocationID", pa.int64()),
        ("trip_miles", pa.float64()),
        ("trip_time", pa.int64()),
        ("base_passenger_fare", pa.float64()),
        ("tolls", pa.float64()),
        ("bcf", pa.float64()),
        ("sales_tax", pa.float64()),
        ("congestion_surcharge", pa.float64()),
        ("airport_fee", pa.float64()),
        ("tips", pa.float64()),
        ("driver_pay", pa.float64()),
        ("shared_request_flag", pa.string()),
        ("wav_request_flag", pa.string()),
    ]
)
HVFHV_MONEY_COLUMNS = (
    "base_passenger_fare",
    "tolls",
    "bcf",
    "sales_tax",
    "congestion_surcharge",
    "airport_fee",
    "tips",
    "driver_pay",
)
_HVFHV_BASES = {"HV0003": "B03404", "HV0005": "B03406", "HV0004": "B02800", "HV0002": "B03136"}


def split_trips(trips: int, companies: list[str], split=None) -> dict[str, int]:
    """Share ``trips`` among ``companies`` by percentages; the counts add up to ``trips``.

    :param trips: total number of trips (>= 0)
    :param companies: company names, in order
    :param split: percentages, one per company, summing to 100; default the paper's
        50/20/10/10/10 for five companies, else an equal split
    """
    return split_counts(trips, companies, split, PAPER_SPLIT, "trips")


def _rng(seed: int, company: str, chunk: int, stream: int = 0) -> np.random.Generator:
    # Stream 1 draws the defects, so turning them on does not redraw the trips themselves.
    return company_rng(seed, company, chunk, stream)


# Zone popularity: a fixed skew (a few busy Manhattan-like zones), identical for every
# seed so all companies serve the same city.
_ZONE_WEIGHTS = 1.0 / np.arange(1, N_ZONES + 1) ** 0.9
_ZONE_WEIGHTS /= _ZONE_WEIGHTS.sum()
_ZONE_IDS = np.random.default_rng(20240101).permutation(np.arange(1, N_ZONES + 1)).astype(np.int32)


def _chunk(rng: np.random.Generator, n: int, t0_us: int, t1_us: int, skew=None) -> pa.Table:
    """``n`` trips with pickup times uniform in [t0_us, t1_us) (microseconds since epoch), or, with
    ``skew`` = (month edges in microseconds, probabilities), in a month drawn by those
    probabilities and then uniform within it."""
    if skew is None:
        pickup = np.sort(rng.integers(t0_us, t1_us, size=n, dtype=np.int64))
    else:
        edges, p = skew
        month = rng.choice(len(p), size=n, p=p)
        pickup = np.sort(rng.integers(edges[month], edges[month + 1], dtype=np.int64))
    minutes = np.clip(rng.lognormal(np.log(12.0), 0.6, n), 1.0, 240.0)
    mph = np.clip(rng.lognormal(np.log(11.0), 0.35, n), 2.0, 50.0)
    distance = np.round(minutes / 60.0 * mph, 2)
    dropoff = pickup + (minutes * 60e6).astype(np.int64)

    ratecode = rng.choice(np.array([1, 2, 3, 4, 5], dtype=np.int64), size=n, p=[0.95, 0.03, 0.005, 0.005, 0.01])
    pu = rng.choice(_ZONE_IDS, size=n, p=_ZONE_WEIGHTS)
    do = rng.choice(_ZONE_IDS, size=n, p=_ZONE_WEIGHTS)
    # Meter: $3 flag drop, $3.50/mile, ~$0.35/minute, some noise; JFK is a flat fare.
    fare = 300 + 350 * distance + 35 * minutes + rng.normal(0, 80, n)
    fare = np.where(ratecode == 2, JFK_FLAT_FARE_CENTS, fare)
    fare = np.clip(np.rint(fare), MIN_FARE_CENTS, MAX_FARE_CENTS).astype(np.int64)

    hour = (pickup // 3_600_000_000) % 24
    weekday = (pickup // 86_400_000_000 + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    extra = np.where((hour >= 20) | (hour < 6), 100, np.where((hour >= 16) & (weekday < 5), 250, 0)).astype(np.int64)
    mta_tax = np.full(n, 50, dtype=np.int64)
    improvement = np.full(n, 100, dtype=np.int64)
    payment = rng.choice(np.array([1, 2, 3, 4], dtype=np.int64), size=n, p=[0.75, 0.22, 0.015, 0.015])
    tip_pct = rng.choice(np.array([0, 10, 15, 18, 20, 25, 30]), size=n, p=[0.15, 0.05, 0.15, 0.2, 0.25, 0.15, 0.05])
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
        "passenger_count": rng.choice(np.arange(1, 7, dtype=np.int64), size=n, p=[0.72, 0.15, 0.05, 0.03, 0.03, 0.02]),
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


def _period_us(start: str, end: str) -> tuple[int, int]:
    months = months_between(start, end)
    return epoch_us(np.datetime64(months[0], "M")), epoch_us(np.datetime64(months[-1], "M") + 1)


# --- yellow taxi ---------------------------------------------------------------------------


def month_skew(start: str, end: str, weights) -> tuple[np.ndarray, np.ndarray] | None:
    """(month edges in microseconds, probabilities) for ``weights``, one per month of the period.

    E.g. ``(100, 1, 1)`` over three months: the first month has 100 times the trips of each other
    (the skewed data of the oblivious stage's tests and benchmark). None for None.
    """
    if weights is None:
        return None
    months = months_between(start, end)
    w = np.array([float(x) for x in weights], dtype=np.float64)
    if len(w) != len(months) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(
            f"month weights must be {len(months)} numbers >= 0 (one per month "
            f"{start}..{end}), not all 0, got {','.join(map(str, weights))}"
        )
    edges = np.array(
        [epoch_us(np.datetime64(m, "M")) for m in months] + [epoch_us(np.datetime64(months[-1], "M") + 1)],
        dtype=np.int64,
    )
    return edges, w / w.sum()


def generate(
    out,
    companies,
    trips,
    seed,
    start,
    end,
    split=None,
    rows_per_file: int = ROWS_PER_FILE,
    defects=None,
    month_weights=None,
) -> dict[str, int]:
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
    :param defects: None for clean data (the default), True for :data:`DEFECTS`, or rates
        (see :func:`defect_rates`); the number of rows is the same either way
    :param month_weights: None for pickups uniform over the period (the default), or one weight
        per month (see :func:`month_skew`)
    :return: number of rows written per company
    """
    companies = check_companies(companies, rows_per_file)
    t0, t1 = _period_us(start, end)
    counts = split_trips(int(trips), companies, split)
    rates = defect_rates(defects)
    skew = month_skew(start, end, month_weights)

    def tables(company: str, n: int):
        for chunk, offset in enumerate(range(0, n, rows_per_file)):
            table = _chunk(_rng(int(seed), company, chunk), min(rows_per_file, n - offset), t0, t1, skew)
            if rates:
                table = add_defects(
                    table,
                    _rng(int(seed), company, chunk, 1),
                    rates,
                    t0,
                    t1,
                    amount="fare_amount",
                    times=("tpep_pickup_datetime", "tpep_dropoff_datetime"),
                    money=MONEY_COLUMNS,
                    payment="payment_type",
                )
            yield table

    for company, n in counts.items():
        write_parts(Path(out) / company / "trips", tables(company, n))
    return counts


# --- high-volume for-hire vehicles ---------------------------------------------------------


def _hvfhv_chunk(
    rng: np.random.Generator, n: int, t0_us: int, t1_us: int, licences: list[str], weights: np.ndarray
) -> pa.Table:
    """``n`` HVFHV trips of the given licensees (drawn by ``weights``), pickups uniform in [t0_us, t1_us)."""
    pickup = np.sort(rng.integers(t0_us, t1_us, size=n, dtype=np.int64))
    licence = np.asarray(licences, dtype=object)[rng.choice(len(licences), size=n, p=weights)]
    request = pickup - rng.integers(60, 900, size=n) * 1_000_000
    minutes = np.clip(rng.lognormal(np.log(18.0), 0.6, n), 1.0, 240.0)
    mph = np.clip(rng.lognormal(np.log(12.0), 0.35, n), 2.0, 55.0)
    miles = np.round(minutes / 60.0 * mph, 3)
    trip_time = np.rint(minutes * 60).astype(np.int64)
    pu = rng.choice(_ZONE_IDS, size=n, p=_ZONE_WEIGHTS).astype(np.int64)
    do = rng.choice(_ZONE_IDS, size=n, p=_ZONE_WEIGHTS).astype(np.int64)
    fare = np.clip(np.rint(250 + 130 * miles + 62 * minutes + rng.normal(0, 120, n)), 700, 60_000).astype(np.int64)
    tolls = np.where(rng.random(n) < 0.05, 694, 0).astype(np.int64)
    bcf = np.rint(fare * 0.0275).astype(np.int64)  # black car fund
    sales_tax = np.rint(fare * 0.08875).astype(np.int64)
    congestion = np.where(rng.random(n) < 0.6, 275, 0).astype(np.int64)
    airport = np.where(np.isin(pu, AIRPORT_ZONES), 250, 0).astype(np.int64)
    tips = np.where(rng.random(n) < 0.2, fare * 15 // 100, 0).astype(np.int64)
    driver_pay = (fare * 72 // 100 + tips).astype(np.int64)
    columns = {
        "hvfhs_license_num": licence,
        "dispatching_base_num": np.array([_HVFHV_BASES.get(x, "B00000") for x in licence], dtype=object),
        "request_datetime": request,
        "pickup_datetime": pickup,
        "dropoff_datetime": pickup + trip_time * 1_000_000,
        "PULocationID": pu,
        "DOLocationID": do,
        "trip_miles": miles,
        "trip_time": trip_time,
        "shared_request_flag": np.where(rng.random(n) < 0.03, "Y", "N"),
        "wav_request_flag": np.where(rng.random(n) < 0.01, "Y", "N"),
    }
    for name, cents in (
        ("base_passenger_fare", fare),
        ("tolls", tolls),
        ("bcf", bcf),
        ("sales_tax", sales_tax),
        ("congestion_surcharge", congestion),
        ("airport_fee", airport),
        ("tips", tips),
        ("driver_pay", driver_pay),
    ):
        columns[name] = cents / 100.0
    return pa.Table.from_arrays([pa.array(columns[f.name], type=f.type) for f in HVFHV_SCHEMA], schema=HVFHV_SCHEMA)


def generate_hvfhv(
    out, trips, seed, start, end, licences=HVFHV_LICENCES, split=None, rows_per_file: int = ROWS_PER_FILE, defects=None
) -> dict[str, int]:
    """Write one HVFHV dataset holding several licensees to ``out/part-NNNNN.parquet``.

    Rows of all licensees are mixed (sorted by pickup), as in TLC's monthly files; the Spark
    job selects one party's rows with ``--participant-column hvfhs_license_num
    --participant-value HV0003``. Existing ``part-*.parquet`` files in ``out`` are replaced.

    :param out: the dataset folder
    :param trips: total number of rows
    :param seed: integer seed; same arguments give identical files
    :param start: first month 'YYYY-MM'
    :param end: last month 'YYYY-MM'
    :param licences: licence ids (list, or a comma-separated string); default Uber, Lyft, Via
    :param split: percentages per licence (each row's licence is drawn with these weights);
        default 70/25/5 for the default licences, else equal
    :param rows_per_file: rows per Parquet file
    :param defects: as for :func:`generate` (null and negative ``base_passenger_fare``, ...)
    :return: number of rows written per licence
    """
    if isinstance(licences, str):
        licences = licences.split(",")
    licences = [x.strip() for x in licences]
    if not licences or any(not x for x in licences) or len(set(licences)) != len(licences):
        raise ValueError(f"licences must be distinct non-empty ids, got {','.join(licences)}")
    if rows_per_file < 1:
        raise ValueError(f"rows_per_file must be >= 1, got {rows_per_file}")
    if split is None and tuple(licences) == HVFHV_LICENCES:
        split = HVFHV_SPLIT
    shares = split_trips(10**6, licences, split)  # validates the split; weights as exact counts
    weights = np.array([shares[x] for x in licences], dtype=float) / 10**6
    t0, t1 = _period_us(start, end)
    rates = defect_rates(defects)
    trips = int(trips)
    if trips < 0:
        raise ValueError(f"trips must be >= 0, got {trips}")
    counts = dict.fromkeys(licences, 0)

    def tables():
        for chunk, offset in enumerate(range(0, trips, rows_per_file)):
            n = min(rows_per_file, trips - offset)
            table = _hvfhv_chunk(_rng(int(seed), "hvfhv", chunk), n, t0, t1, licences, weights)
            if rates:
                table = add_defects(
                    table,
                    _rng(int(seed), "hvfhv", chunk, 1),
                    rates,
                    t0,
                    t1,
                    amount="base_passenger_fare",
                    times=("pickup_datetime", "request_datetime", "dropoff_datetime"),
                    money=HVFHV_MONEY_COLUMNS,
                )
            for licence, k in zip(
                *np.unique(table.column("hvfhs_license_num").to_numpy(zero_copy_only=False), return_counts=True)
            ):
                counts[licence] += int(k)
            yield table

    write_parts(Path(out), tables())
    return counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--schema",
        choices=("yellow", "hvfhv"),
        default="yellow",
        help="yellow: OUT/<company>/trips per company; hvfhv: one dataset OUT of several licensees",
    )
    parser.add_argument("--out", required=True, help="root folder; writes OUT/<company>/trips/ (or OUT/ for hvfhv)")
    parser.add_argument("--companies", help="comma-separated names, e.g. a,b,c,d,e (yellow)")
    parser.add_argument("--licences", default=",".join(HVFHV_LICENCES), help="licence ids (hvfhv)")
    parser.add_argument("--trips", required=True, type=int, help="total trips over all companies")
    parser.add_argument("--seed", required=True, type=int)
    parser.add_argument("--start", required=True, help="first month, YYYY-MM")
    parser.add_argument("--end", required=True, help="last month, YYYY-MM (inclusive)")
    parser.add_argument("--split", help="percentages per company, e.g. 50,20,10,10,10")
    parser.add_argument("--rows-per-file", type=int, default=ROWS_PER_FILE)
    parser.add_argument(
        "--defects",
        action="store_true",
        help="refunds, null fares and out-of-period pickups at the rates of docs/data.md",
    )
    parser.add_argument(
        "--month-weights", help="skew (yellow): one weight per month, e.g. 100,1,1: the first month has 100x the trips"
    )
    args = parser.parse_args(argv)
    split = [s.strip() for s in args.split.split(",")] if args.split else None
    try:
        if args.schema == "hvfhv":
            counts = generate_hvfhv(
                args.out,
                args.trips,
                args.seed,
                args.start,
                args.end,
                licences=args.licences,
                split=split,
                rows_per_file=args.rows_per_file,
                defects=args.defects or None,
            )
            for licence, n in counts.items():
                print(f"{licence}\t{n}\t{Path(args.out)}")
            return 0
        if not args.companies:
            raise ValueError("--companies is required for the yellow schema")
        counts = generate(
            args.out,
            args.companies,
            args.trips,
            args.seed,
            args.start,
            args.end,
            split=split,
            rows_per_file=args.rows_per_file,
            defects=args.defects or None,
            month_weights=args.month_weights.split(",") if args.month_weights else None,
        )
    except ValueError as e:
        print(f"taxi_trips: error: {e}", file=sys.stderr)
        return 2
    for company, n in counts.items():
        print(f"{company}\t{n}\t{Path(args.out) / company / 'trips'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
