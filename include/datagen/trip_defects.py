"""Defects of real trip records, added to the synthetic ones at declared rates (docs/data.md says
why): refunds (a trip followed by its negative copy), null fares, and pickups outside the period.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

# Defect rates of the realistic data: fractions of all rows.
DEFECTS = {
    "refunds": 0.01,  # negative copies of an earlier trip (dispute / refund); the pair nets to zero
    "null_fares": 0.005,  # fare amount missing
    "outside_period": 0.002,  # pickup outside the generated months (clock errors, next-month pickups)
}
REFUND_PAYMENT_TYPE = 4  # TLC payment_type 4: dispute


def epoch_us(month: np.datetime64) -> int:
    """A month's first instant in microseconds since the epoch."""
    return int(month.astype("datetime64[us]").astype(np.int64))


def defect_rates(defects) -> dict[str, float] | None:
    """The defect rates to apply: None (clean), True (:data:`DEFECTS`), or a mapping.

    :param defects: None/False, True, or ``{name: fraction of rows}`` with names from
        :data:`DEFECTS`; names left out are 0, so one defect can be tried alone
    :raises ValueError: on an unknown name or a rate outside [0, 0.2]
    """
    if defects is None or defects is False:
        return None
    if defects is True:
        return dict(DEFECTS)
    rates = {name: 0.0 for name in DEFECTS}
    for name, rate in dict(defects).items():
        if name not in DEFECTS:
            raise ValueError(f"unknown defect {name!r} (known: {', '.join(DEFECTS)})")
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 0.2:
            raise ValueError(f"defect rate {name} must be a fraction from 0 to 0.2, got {rate!r}")
        rates[name] = float(rate)
    return rates


def _pick(rng: np.random.Generator, pool: np.ndarray, rate: float, n: int) -> np.ndarray:
    """About ``rate * n`` distinct indices from ``pool`` (binomial count, capped by the pool)."""
    k = min(int(rng.binomial(n, rate)) if rate else 0, len(pool))
    return np.sort(rng.choice(pool, size=k, replace=False)) if k else np.zeros(0, dtype=np.int64)


def _outside_times(rng: np.random.Generator, k: int, t0_us: int, t1_us: int) -> np.ndarray:
    """Pickup times outside [t0_us, t1_us): a third years off (clock errors, as 2002 or 2008 in
    TLC files), a third on the day before, a third in the three days after the period."""
    day = 86_400_000_000
    old0, old1 = epoch_us(np.datetime64("2001-01", "M")), epoch_us(np.datetime64("2010-01", "M"))
    kind = rng.integers(0, 3, size=k)
    return np.where(
        kind == 0,
        rng.integers(old0, old1, size=k),
        np.where(kind == 1, t0_us - 1 - rng.integers(0, day, size=k), t1_us + rng.integers(0, 3 * day, size=k)),
    ).astype(np.int64)


def add_defects(
    table: pa.Table,
    rng: np.random.Generator,
    rates: dict[str, float],
    t0_us: int,
    t1_us: int,
    *,
    amount: str,
    times: tuple[str, ...],
    money: tuple[str, ...],
    payment: str | None = None,
) -> pa.Table:
    """The same number of rows, with defects at the given rates.

    Refunds: for each, one trip gets a negative copy (every money column negated, same times,
    ``payment`` set to dispute) that replaces another row, so the pair nets to zero. Null fares
    and out-of-period pickups (every time column shifted together) hit other rows only, so each
    defect stays visible on its own and a month's net revenue never goes below zero.

    :param table: clean rows, sorted by the first of ``times``
    :param rng: the defect stream
    :param rates: see :func:`defect_rates`
    :param t0_us: start of the generated period (microseconds since the epoch)
    :param t1_us: end of the generated period (exclusive)
    :param amount: the revenue column (gets the nulls)
    :param times: time columns, pickup first
    :param money: columns negated in a refund
    :param payment: payment type column, or None
    :return: the table with defects, sorted by pickup
    """
    n = table.num_rows
    cols = {name: table.column(name).to_numpy(zero_copy_only=False).copy() for name in table.column_names}
    r = min(int(rng.binomial(n, rates["refunds"])) if rates["refunds"] else 0, n // 2)
    chosen = rng.choice(n, size=2 * r, replace=False) if r else np.zeros(0, dtype=np.int64)
    originals, replaced = chosen[:r], chosen[r:]
    for name in cols:
        cols[name][replaced] = cols[name][originals]
    for name in money:
        cols[name][replaced] = -cols[name][replaced]
    if payment is not None:
        cols[payment][replaced] = REFUND_PAYMENT_TYPE
    order = np.argsort(cols[times[0]], kind="stable")
    cols = {name: values[order] for name, values in cols.items()}
    paired = np.zeros(n, dtype=bool)
    paired[np.argsort(order)[chosen]] = True  # where the pairs went after sorting

    free = np.flatnonzero(~paired)
    nulls = _pick(rng, free, rates["null_fares"], n)
    free = np.setdiff1d(free, nulls)
    outside = _pick(rng, free, rates["outside_period"], n)
    if len(outside):
        pickup = cols[times[0]].astype("datetime64[us]").astype(np.int64)
        shift = _outside_times(rng, len(outside), t0_us, t1_us) - pickup[outside]
        for name in times:
            values = cols[name].astype("datetime64[us]").astype(np.int64)
            values[outside] += shift
            cols[name] = values.astype("datetime64[us]")
    mask = np.zeros(n, dtype=bool)
    mask[nulls] = True
    arrays = [pa.array(cols[f.name], type=f.type, mask=mask if f.name == amount else None) for f in table.schema]
    return pa.Table.from_arrays(arrays, schema=table.schema)
