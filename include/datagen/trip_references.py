"""Plaintext references for the synthetic trip records (``taxi_trips.py``): net revenue in cents
per month, read from the Parquet with pyarrow only (no Spark), under the same data policy as the
Spark job, so the tests, the demo and the benchmarks can check it.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

# The data policy the plaintext references apply by default: that of the Spark job and the spec.
DEFAULT_POLICY = {"negative_amounts": "count", "null_amounts": "drop", "outside_period": "ignore"}
_MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def _parse_month(text: str) -> np.datetime64:
    if not isinstance(text, str) or not _MONTH_RE.match(text):
        raise ValueError(f"month must look like YYYY-MM, got {text!r}")
    return np.datetime64(text, "M")


def check_policy(policy) -> dict[str, str]:
    """The data policy with defaults filled in (:data:`DEFAULT_POLICY`).

    :raises ValueError: on an unknown name or value
    """
    choices = {
        "negative_amounts": ("count", "drop", "fail"),
        "null_amounts": ("drop", "fail"),
        "outside_period": ("ignore", "fail"),
    }
    out = dict(DEFAULT_POLICY)
    for name, value in dict(policy or {}).items():
        if name not in choices or value not in choices[name]:
            raise ValueError(f"bad policy {name}: {value!r}")
        out[name] = value
    return out


def _revenue_cents(files: list[Path], amount: str, time: str, months, policy, participant=None) -> dict[str, int]:
    """Net revenue in cents per month of the rows of ``files``, under the data policy.

    :param files: Parquet files
    :param amount: money column (two-decimal doubles)
    :param time: pickup time column
    :param months: 'YYYY-MM' strings
    :param policy: see :func:`check_policy`
    :param participant: (column, value) to keep one licensee's rows, or None
    :raises ValueError: where the policy says 'fail'
    """
    policy = check_policy(policy)
    months = list(months)
    wanted = np.array([_parse_month(m) for m in months], dtype="datetime64[M]")
    sums = np.zeros(len(months), dtype=np.int64)
    columns = [amount, time] + ([participant[0]] if participant else [])
    for path in files:
        for batch in pq.ParquetFile(path).iter_batches(columns=columns, batch_size=1 << 20):
            fare = batch.column(amount)
            present = ~pc.is_null(fare).to_numpy(zero_copy_only=False)
            cents = np.rint(pc.fill_null(fare, 0).to_numpy(zero_copy_only=False) * 100).astype(np.int64)
            month = batch.column(time).to_numpy(zero_copy_only=False).astype("datetime64[M]")
            mine = (
                np.ones(len(cents), dtype=bool)
                if participant is None
                else (batch.column(participant[0]).to_numpy(zero_copy_only=False) == participant[1])
            )
            in_period = mine & np.isin(month, wanted)
            if policy["outside_period"] == "fail" and (mine & ~in_period).any():
                raise ValueError(f"{int((mine & ~in_period).sum())} rows outside the period in {path}")
            if policy["null_amounts"] == "fail" and (in_period & ~present).any():
                raise ValueError(f"{int((in_period & ~present).sum())} null amounts in {path}")
            negative = in_period & present & (cents < 0)
            if policy["negative_amounts"] == "fail" and negative.any():
                raise ValueError(f"{int(negative.sum())} negative amounts in {path}")
            keep = in_period & present
            if policy["negative_amounts"] == "drop":
                keep &= ~negative
            for i, m in enumerate(wanted):
                sums[i] += cents[keep & (month == m)].sum(dtype=np.int64)
    result = {"all": int(sums.sum())}
    result.update({m: int(s) for m, s in zip(months, sums)})
    return result


def revenue_cents_by_month(root, company: str, months, policy=None) -> dict[str, int]:
    """Plaintext revenue of one company in integer cents, straight from its Parquet.

    cents = round(fare_amount * 100); only trips whose pickup month is in ``months``
    count. Exact for amounts with at most two decimals (what :func:`generate` writes).
    The data policy is that of the Spark job: by default negative amounts count (net
    revenue), null amounts are dropped, pickups outside ``months`` are ignored.

    :param root: the ``out`` folder given to :func:`generate`
    :param company: company name
    :param months: 'YYYY-MM' strings
    :param policy: data policy (see :func:`check_policy`); default :data:`DEFAULT_POLICY`
    :return: ``{'all': total, 'YYYY-MM': cents, ...}`` with 'all' the sum over ``months``
    :raises ValueError: where the policy says 'fail'
    """
    files = sorted((Path(root) / company / "trips").glob("part-*.parquet"))
    if not files:
        raise FileNotFoundError(f"no part-*.parquet files in {Path(root) / company / 'trips'}")
    return _revenue_cents(files, "fare_amount", "tpep_pickup_datetime", months, policy)


def hvfhv_revenue_cents_by_month(folder, licence: str, months, policy=None) -> dict[str, int]:
    """Plaintext net revenue (``base_passenger_fare``) of one licensee in an HVFHV dataset.

    :param folder: the ``out`` folder given to :func:`generate_hvfhv`
    :param licence: licence id, e.g. 'HV0003'
    :param months: 'YYYY-MM' strings
    :param policy: data policy, as for :func:`revenue_cents_by_month`
    """
    files = sorted(Path(folder).glob("part-*.parquet"))
    if not files:
        raise FileNotFoundError(f"no part-*.parquet files in {folder}")
    return _revenue_cents(
        files, "base_passenger_fare", "pickup_datetime", months, policy, participant=("hvfhs_license_num", licence)
    )
