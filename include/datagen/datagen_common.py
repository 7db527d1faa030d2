"""What the data generators share: company names, the split of rows among companies, each company's
random stream, and the Parquet writer. The month arithmetic is the federation spec's own
(:func:`mpc_federation.spec.months_between`), so generated periods and run periods agree.
"""

from __future__ import annotations

import hashlib
import os
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

_PLUGINS = str(Path(__file__).resolve().parents[2] / "plugins")
if _PLUGINS not in sys.path:  # run as a script, or loaded by file path: the project's protocol package
    sys.path.append(_PLUGINS)

from mpc_federation.spec import months_between  # noqa: E402

__all__ = ["check_companies", "company_rng", "months_between", "split_counts", "write_parts"]


def check_companies(companies, rows_per_file: int) -> list[str]:
    """The company names (a list, or a comma-separated string), checked: each a folder name, no two alike.

    :param companies: company names
    :param rows_per_file: rows per Parquet file, checked to be at least 1
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
    return companies


def split_counts(total: int, companies: list[str], split, default, what: str = "rows") -> dict[str, int]:
    """Share ``total`` among ``companies`` by percentages; the counts add up to ``total``.

    :param total: number of rows (>= 0)
    :param companies: company names, in order
    :param split: percentages, one per company, summing to 100; None for ``default``
    :param default: percentages used when ``split`` is None and there are as many companies, else
        an equal split
    :param what: what is counted, for the error messages
    """
    if total < 0:
        raise ValueError(f"{what} must be >= 0, got {total}")
    if split is None:
        split = default if len(companies) == len(default) else [1] * len(companies)
        shares = [Fraction(s) for s in split]
    else:
        if len(split) != len(companies):
            raise ValueError(
                f"split has {len(split)} percentages but there are {len(companies)} companies ({','.join(companies)})"
            )
        try:
            shares = [Fraction(str(s).strip()) for s in split]
        except ValueError:
            raise ValueError(f"split must be numbers, got {','.join(str(s) for s in split)}") from None
        if any(s < 0 for s in shares) or sum(shares) != 100:
            raise ValueError(f"split percentages must be >= 0 and sum to 100, got {','.join(str(s) for s in split)}")
    whole = sum(shares)
    exact = [total * s / whole for s in shares]
    counts = [int(e) for e in exact]  # floor, all values are >= 0
    # Largest remainder: hand the leftover rows to the biggest fractional parts (ties go to the
    # earlier company), so the sum is exactly `total`.
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return dict(zip(companies, counts))


def company_rng(seed: int, company: str, chunk: int, stream: int = 0) -> np.random.Generator:
    """The random stream of one chunk of a company's rows.

    Derived from the company's *name*, so its data does not change when other companies are added
    or reordered; ``stream`` separates independent draws of the same chunk (stream 0 keeps the
    streams of earlier versions).
    """
    name_key = int.from_bytes(hashlib.sha256(company.encode()).digest()[:8], "big")
    key = (name_key, chunk) if stream == 0 else (name_key, chunk, stream)
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=key))


def write_parts(folder: Path, tables) -> None:
    """Replace the ``part-*.parquet`` files of ``folder`` with one file per table.

    :param folder: the dataset's folder (created if missing)
    :param tables: pyarrow tables, written in order as ``part-00000.parquet``, ...
    """
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("part-*.parquet"):
        old.unlink()
    for chunk, table in enumerate(tables):
        # Spark and pyarrow skip names starting with "_", so a half-written file is never read.
        tmp = folder / f"_tmp-{chunk:05d}.parquet"
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, folder / f"part-{chunk:05d}.parquet")
