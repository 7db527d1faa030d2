"""Synthetic payrolls, one Parquet dataset per company, for the pay-equity federation.

Each company gets ``OUT/<company>/payroll/part-NNNNN.parquet`` with one row per employee:

    employee_id   string   "<company>-000001", unique within the company
    gender        string   "M" or "F"
    level         string   job level "L1" (entry) .. "L4" (executive)
    salary_cents  int64    yearly base salary in integer cents

Levels are 52/30/15/3 % of the staff; the share of women falls from 55 % at L1 to 10 % at L4 (so in
a small federation the executive women are few, and the pay-gap program suppresses that cell), and
within a level every company pays women a few percent less than men (a company-specific factor).
Same arguments, same files: the random stream of a company depends only on the seed and its name.

The module also holds the plaintext reference, :func:`payroll_sums`, which reads the Parquet with
pyarrow only (no Spark), so it can check the Spark job and the secure result.

CLI::

    python include/datagen/payroll.py --out DIR --companies a,b,c,d,e --employees N --seed S \\
        [--split 40,25,15,12,8]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

if str(Path(__file__).resolve().parent) not in sys.path:  # the generators' shared module, however this is loaded
    sys.path.insert(0, str(Path(__file__).resolve().parent))
from datagen_common import check_companies, company_rng, split_counts, write_parts  # noqa: E402

LEVELS = ("L1", "L2", "L3", "L4")
LEVEL_SHARE = (0.52, 0.30, 0.15, 0.03)
WOMEN_SHARE = {"L1": 0.55, "L2": 0.45, "L3": 0.35, "L4": 0.10}
MEDIAN_SALARY_CENTS = {"L1": 4_500_000, "L2": 7_000_000, "L3": 11_000_000, "L4": 19_000_000}
MIN_SALARY_CENTS, MAX_SALARY_CENTS = 1_500_000, 10**9  # the pay-gap program's per-employee maximum
DEFAULT_SPLIT = (40, 25, 15, 12, 8)
ROWS_PER_FILE = 1_000_000

SCHEMA = pa.schema(
    [
        ("employee_id", pa.string()),
        ("gender", pa.string()),
        ("level", pa.string()),
        ("salary_cents", pa.int64()),
    ]
)


def split_employees(employees: int, companies: list[str], split=None) -> dict[str, int]:
    """Share ``employees`` among ``companies`` by percentages (largest remainder); the counts add up.

    :param split: percentages, one per company, summing to 100; default 40/25/15/12/8 for five
        companies, else an equal split
    """
    return split_counts(employees, companies, split, DEFAULT_SPLIT, "employees")


def _rng(seed: int, company: str, chunk: int = 0) -> np.random.Generator:
    return company_rng(seed, company, chunk)


def _chunk(rng: np.random.Generator, company: str, first_id: int, n: int, women_factor: float) -> pa.Table:
    level_index = rng.choice(len(LEVELS), size=n, p=LEVEL_SHARE)
    level = np.array(LEVELS)[level_index]
    women_share = np.array([WOMEN_SHARE[x] for x in LEVELS])[level_index]
    woman = rng.random(n) < women_share
    median = np.array([MEDIAN_SALARY_CENTS[x] for x in LEVELS], dtype=np.float64)[level_index]
    salary = median * rng.lognormal(0.0, 0.18, n) * np.where(woman, women_factor, 1.0)
    salary = np.clip(np.rint(salary), MIN_SALARY_CENTS, MAX_SALARY_CENTS).astype(np.int64)
    ids = [f"{company}-{i:06d}" for i in range(first_id, first_id + n)]
    columns = {"employee_id": ids, "gender": np.where(woman, "F", "M"), "level": level, "salary_cents": salary}
    return pa.Table.from_arrays([pa.array(columns[f.name], type=f.type) for f in SCHEMA], schema=SCHEMA)


def generate(
    out, companies, employees: int, seed: int, split=None, rows_per_file: int = ROWS_PER_FILE
) -> dict[str, int]:
    """Write every company's payroll to ``out/<company>/payroll/part-NNNNN.parquet``.

    Existing ``part-*.parquet`` files in those folders are replaced.

    :param employees: total number of employees over all companies
    :return: number of employees written per company
    """
    companies = check_companies(companies, rows_per_file)
    counts = split_employees(int(employees), companies, split)

    def tables(company: str, n: int):
        women_factor = float(_rng(int(seed), company, 10**6).uniform(0.90, 0.99))
        for chunk, offset in enumerate(range(0, n, rows_per_file)):
            yield _chunk(
                _rng(int(seed), company, chunk), company, offset + 1, min(rows_per_file, n - offset), women_factor
            )

    for company, n in counts.items():
        write_parts(Path(out) / company / "payroll", tables(company, n))
    return counts


def payroll_sums(root, company: str, levels=LEVELS) -> dict[str, list[int]]:
    """Plaintext per-company sums, straight from the Parquet: the values the Spark job must write.

    :return: ``{"salary_sum_men": [...], "salary_sum_women": [...], "count_men": [...],
        "count_women": [...]}``, each a list over ``["all", *levels]``
    """
    files = sorted((Path(root) / company / "payroll").glob("part-*.parquet"))
    if not files:
        raise FileNotFoundError(f"no part-*.parquet files in {Path(root) / company / 'payroll'}")
    labels = ["all", *levels]
    out = {name: [0] * len(labels) for name in ("salary_sum_men", "salary_sum_women", "count_men", "count_women")}
    for path in files:
        table = pq.read_table(path, columns=["gender", "level", "salary_cents"])
        gender = table.column("gender").to_numpy(zero_copy_only=False)
        level = table.column("level").to_numpy(zero_copy_only=False)
        salary = table.column("salary_cents").to_numpy()
        for j, label in enumerate(labels):
            in_level = np.ones(len(level), dtype=bool) if label == "all" else level == label
            for g, suffix in (("M", "men"), ("F", "women")):
                mask = in_level & (gender == g)
                out[f"salary_sum_{suffix}"][j] += int(salary[mask].sum(dtype=np.int64))
                out[f"count_{suffix}"][j] += int(mask.sum())
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="root folder; writes OUT/<company>/payroll/")
    parser.add_argument("--companies", required=True, help="comma-separated names, e.g. a,b,c,d,e")
    parser.add_argument("--employees", required=True, type=int, help="total employees over all companies")
    parser.add_argument("--seed", required=True, type=int)
    parser.add_argument("--split", help="percentages per company, e.g. 40,25,15,12,8")
    parser.add_argument("--rows-per-file", type=int, default=ROWS_PER_FILE)
    args = parser.parse_args(argv)
    split = [s.strip() for s in args.split.split(",")] if args.split else None
    try:
        counts = generate(
            args.out, args.companies, args.employees, args.seed, split=split, rows_per_file=args.rows_per_file
        )
    except ValueError as e:
        print(f"payroll: error: {e}", file=sys.stderr)
        return 2
    for company, n in counts.items():
        print(f"{company}\t{n}\t{Path(args.out) / company / 'payroll'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
