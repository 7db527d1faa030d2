"""The main job on one machine: five taxi companies and a regulator, each in its own Airflow.

Generates trip data per company, starts a local S3 API server, gives every party its own keys
and Airflow home, runs every party's nightly DAG for one date at once (``airflow dags test``),
and prints the HHI the regulator learned next to the plaintext HHI over the pooled data.
Exit status 0 only if they are equal for the whole period and every month.

``--federation pay_equity`` runs the second federation the same way: five companies' payrolls and
an equality office, which learns the gender pay gap overall and per job level (see
include/federations/pay_equity.yaml); its working folder is ``<root>/pay_equity``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import yaml
from localnet import REPO, LocalParty, S3Server, prepare_airflow_homes, render_spec, run_dags_test

from mpc_federation.envelope import PartyKeys  # noqa: E402
from mpc_federation.layout import run_key  # noqa: E402
from mpc_federation.programs import import_file, load_program  # noqa: E402
from mpc_federation.spec import load_spec  # noqa: E402
from mpc_federation.store import CoordinationStore  # noqa: E402

TEMPLATE = REPO / "include" / "federations" / "taxi_hhi.yaml"
PAY_EQUITY_TEMPLATE = REPO / "include" / "federations" / "pay_equity.yaml"
RIDESHARE_TEMPLATE = REPO / "include" / "federations" / "rideshare_hhi.yaml"


def datagen():
    return import_file(REPO / "include" / "datagen" / "taxi_trips.py")


def plaintext_hhi(
    data_dir: Path,
    companies: list[str],
    months: list[str],
    params: dict | None = None,
    policy: dict | None = None,
    licences: dict[str, str] | None = None,
) -> dict[str, Decimal | None]:
    """The insecure reference: the HHI over the pooled data, from the Parquet files directly, under
    the spec's data policy, rounded as the program declares (its own plaintext reference).

    :param licences: {party: licence id} for high-volume for-hire records (one dataset, several
        licensees: ``data_dir/hvfhv``), else each company's trips are ``data_dir/<company>/trips``.
    """
    gen = datagen()
    if licences:
        revenue = {
            c: gen.hvfhv_revenue_cents_by_month(data_dir / "hvfhv", licences[c], months, policy) for c in companies
        }
    else:
        revenue = {c: gen.revenue_cents_by_month(data_dir, c, months, policy) for c in companies}
    markets = ["all", *months]
    reference = load_program(REPO / "include" / "programs" / "hhi.py").module
    hhi = reference.plaintext([{"revenue_cents": [revenue[c][m] for m in markets]} for c in companies], params)
    return dict(zip(markets, hhi["hhi"]))


def setup_federation(
    root: Path,
    parties_yaml: list[dict] | None,
    s3: S3Server,
    spark_master: str,
    data_dir: Path,
    template: Path = TEMPLATE,
    prefix: str | None = None,
) -> tuple[Path, list[LocalParty]]:
    """A federation of local parties: keys, the rendered spec, Airflow homes and the bucket.

    :param prefix: the coordination prefix (default: the template's); a test sharing one S3
        server with other tests gives its own.
    """
    raw = yaml.safe_load(template.read_text())
    ids = [p["id"] for p in (parties_yaml or raw["parties"])]
    keys = {pid: PartyKeys.generate(pid, test_only=True) for pid in ids}  # refused unless [mpc] allow_test_keys
    overrides = {"coordination": {**raw["coordination"], "prefix": prefix}} if prefix else None
    spec_path = render_spec(template, root / "federation", keys, parties=parties_yaml, overrides=overrides)
    parties = [
        LocalParty(pid, root / "parties" / pid, spec_path.parent, data_dir / pid, keys[pid], s3, spark_master)
        for pid in ids
    ]
    prepare_airflow_homes(parties, root / "airflow-template")
    spec = load_spec(spec_path)
    CoordinationStore(s3.store_config(spec.bucket)).ensure_bucket()
    return spec_path, parties


@dataclass
class Night:
    """One night of a federation on this machine, after every party's DAG ran."""

    spec: object
    parties: list[LocalParty]
    date: datetime
    run: str
    recipient: LocalParty
    result: dict | None

    def others_with_results(self) -> list[str]:
        """Non-recipients holding a result record: must be none."""
        return [
            p.id
            for p in self.parties
            if not self.spec.party(p.id).has("recipient")
            and (p.work_dir / self.spec.computation / self.run / "result.json").exists()
        ]


def run_night(root: Path, template: Path, data_dir: Path, args: argparse.Namespace) -> Night:
    """Start the S3 server, set up every party, run all their DAGs for ``args.date`` at once."""
    s3 = S3Server(root / "s3").start()
    print(f"Local S3 API server (moto) on {s3.url}", flush=True)
    try:
        spec_path, parties = setup_federation(root, None, s3, args.spark_master, data_dir, template=template)
        spec = load_spec(spec_path)
        print(
            f"Running the nightly DAG '{spec.computation}' for {args.date} in {len(parties)} Airflows at once: "
            f"{', '.join(p.id for p in parties)}",
            flush=True,
        )
        t1 = time.monotonic()
        codes = run_dags_test(parties, spec.computation, args.date, args.timeout)
        print(f"All parties finished in {time.monotonic() - t1:.1f} s (exit codes {codes})")
    finally:
        s3.stop()
    date = datetime.fromisoformat(args.date).replace(tzinfo=UTC)
    run = run_key(date)
    recipient = next(p for p in parties if spec.party(p.id).has("recipient"))
    record = recipient.work_dir / spec.computation / run / "result.json"
    if not record.is_file():
        print(f"FAILED: no result record at {record}; see the logs in {root / 'parties'}/*/dags-test-*.log")
    result = json.loads(record.read_text()) if record.is_file() else None
    return Night(spec, parties, date, run, recipient, result)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=str(REPO / ".demo"), help="working folder (data, homes, logs)")
    parser.add_argument("--trips", type=int, default=200_000, help="trips over all companies")
    parser.add_argument(
        "--date", default="2024-04-01", help="the run's logical date; the period is the 3 months before"
    )
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--spark-master", default="local[*]")
    parser.add_argument("--timeout", type=float, default=1500, help="seconds for all parties' runs")
    parser.add_argument(
        "--federation",
        choices=["taxi_hhi", "rideshare_hhi", "pay_equity"],
        default="taxi_hhi",
        help="which federation to run (default: the taxi HHI)",
    )
    parser.add_argument("--employees", type=int, default=2000, help="pay_equity: employees over all companies")
    args = parser.parse_args(argv)
    if args.federation == "pay_equity":
        return main_pay_equity(args)
    if args.federation == "rideshare_hhi":
        return main_rideshare(args)

    root = Path(args.root).resolve()
    raw = yaml.safe_load(TEMPLATE.read_text())
    companies = [p["id"] for p in raw["parties"] if "input" in p["roles"]]
    data_dir = root / "data"
    t0 = time.monotonic()
    gen = datagen()
    print(f"Generating {args.trips:,} trips for {len(companies)} companies in {data_dir} ...", flush=True)
    # Real monthly files carry refunds, null fares and stray pickups: so does the demo's data.
    gen.generate(data_dir, companies, args.trips, args.seed, "2024-01", "2024-03", defects=True)
    return report_hhi(root, TEMPLATE, data_dir, args, companies, t0)


def main_rideshare(args: argparse.Namespace) -> int:
    """Three rideshare licensees, whose trip records share one schema (several licensees per file),
    and a regulator: the HHI of the rideshare market."""
    root = Path(args.root).resolve() / "rideshare_hhi"
    raw = yaml.safe_load(RIDESHARE_TEMPLATE.read_text())
    licences = raw["aggregation"]["participants"]
    data_dir = root / "data"
    t0 = time.monotonic()
    print(
        f"Generating {args.trips:,} high-volume for-hire trips of licensees {', '.join(licences.values())} "
        f"in {data_dir / 'hvfhv'} ...",
        flush=True,
    )
    datagen().generate_hvfhv(
        data_dir / "hvfhv", args.trips, args.seed, "2024-01", "2024-03", licences=list(licences.values()), defects=True
    )
    for party in licences:  # every licensee's own copy of records in this schema
        (data_dir / party).mkdir(parents=True, exist_ok=True)
        link = data_dir / party / "hvfhv"
        if not link.exists():
            link.symlink_to(data_dir / "hvfhv", target_is_directory=True)
    return report_hhi(root, RIDESHARE_TEMPLATE, data_dir, args, list(licences), t0, licences)


def report_hhi(
    root: Path,
    template: Path,
    data_dir: Path,
    args: argparse.Namespace,
    companies: list[str],
    t0: float,
    licences: dict[str, str] | None = None,
) -> int:
    """Run one night of an HHI federation and print the revealed HHI next to the plaintext one."""
    night = run_night(root, template, data_dir, args)
    if night.result is None:
        return 1
    spec, result, recipient, date = night.spec, night.result, night.recipient, night.date
    hhi = result["outputs"]["hhi"]
    expected = plaintext_hhi(data_dir, companies, spec.months(date), spec.program_params, spec.data_policy, licences)
    print(
        f"\nHHI revealed to {recipient.id} (roster: {', '.join(result['roster'])}) vs plaintext over the pooled data,"
        f" both rounded to {hhi['decimals']} decimals:"
    )
    print(f"{'market':<8} {'secure (MPC)':>14} {'plaintext':>14}")
    ok = True
    for label, exact in zip(hhi["labels"], hhi["exact"]):
        secure = Decimal(exact) if exact is not None else None
        plain = expected[label]
        ok &= secure == plain
        print(
            f"{label:<8} {str(secure or 'suppressed'):>14} {str(plain or 'suppressed'):>14}"
            f"{'' if secure == plain else '  MISMATCH'}"
        )
    return verdict(night, ok, "HHI", t0)


def verdict(night, ok: bool, what: str, t0: float) -> int:
    """Print whether the secure ``what`` equals the plaintext one and only recipients hold a result;
    the exit code."""
    if night.others_with_results():
        print(f"FAILED: non-recipients hold a result: {night.others_with_results()}")
        ok = False
    print(
        f"\n{'OK' if ok else 'FAILED'}: secure {what} {'equals' if ok else 'differs from'} the plaintext {what} "
        f"(total {time.monotonic() - t0:.1f} s)"
    )
    return 0 if ok else 1


# -- the pay-equity federation -------------------------------------------------------------------------
def dollars(cents: int | None) -> str:
    return "-" if cents is None else f"{cents / 100:,.2f}"


def main_pay_equity(args: argparse.Namespace) -> int:
    """Five companies' payrolls and an equality office: the pooled gender pay gap, overall and per level."""
    root = Path(args.root).resolve() / "pay_equity"
    raw = yaml.safe_load(PAY_EQUITY_TEMPLATE.read_text())
    companies = [p["id"] for p in raw["parties"] if "input" in p["roles"]]
    data_dir = root / "data"
    t0 = time.monotonic()
    payroll = import_file(REPO / "include" / "datagen" / "payroll.py")
    print(
        f"Generating payrolls of {args.employees:,} employees for {len(companies)} companies in {data_dir} ...",
        flush=True,
    )
    payroll.generate(data_dir, companies, args.employees, args.seed)

    night = run_night(root, PAY_EQUITY_TEMPLATE, data_dir, args)
    if night.result is None:
        return 1
    spec, parties, result, recipient, date, run = (
        night.spec,
        night.parties,
        night.result,
        night.recipient,
        night.date,
        night.run,
    )
    levels = spec.dimensions(date)["level"]
    ok = True

    # Each company's Spark aggregate (it never left the company) against the plaintext sums.
    by_id = {p.id: p for p in parties}
    sums = {c: payroll.payroll_sums(data_dir, c, levels[1:]) for c in companies}
    print("\nSalary sums per company (Spark, kept at each company) vs plaintext, in cents:")
    print(
        f"{'company':<10} {'men: sum (Spark)':>18} {'plaintext':>16} {'women: sum (Spark)':>18} {'plaintext':>16}"
        "  count m/f"
    )
    for c in companies:
        aggregate = json.loads((by_id[c].work_dir / spec.computation / run / "aggregate.json").read_text())
        same = aggregate["values"] == sums[c] and aggregate["dimensions"]["level"] == levels
        ok &= same
        v = aggregate["values"]
        print(
            f"{c:<10} {v['salary_sum_men'][0]:>18} {sums[c]['salary_sum_men'][0]:>16} "
            f"{v['salary_sum_women'][0]:>18} {sums[c]['salary_sum_women'][0]:>16}  "
            f"{v['count_men'][0]}/{v['count_women'][0]}{'' if same else '  MISMATCH'}"
        )

    program = load_program(spec.program_file).module
    params = program.settings(spec.program_params)
    expected = program.plaintext([sums[c] for c in result["roster"]], spec.program_params)
    out = result["outputs"]
    print(
        f"\nPay gap revealed to {recipient.id} (roster: {', '.join(result['roster'])}) vs plaintext over the "
        f"pooled payrolls; mean salary of men minus women, in dollars:"
    )
    print(
        f"{'level':<6} {'secure (MPC)':>13} {'plaintext':>13} {'women/men (MPC)':>16} {'plaintext':>10}  gap in cents"
    )
    for j, label in enumerate(out["suppressed"]["labels"]):
        gap = out["mean_gap_cents"]["exact"][j]
        ratio = out["women_to_men_ratio"]["exact"][j]
        secure_gap = None if gap is None else int(gap)
        secure_ratio = None if ratio is None else Decimal(ratio)
        suppressed = int(out["suppressed"]["exact"][j])
        plain_gap, plain_ratio = expected["mean_gap_cents"][j], expected["women_to_men_ratio"][j]
        same = secure_gap == plain_gap and secure_ratio == plain_ratio and suppressed == expected["suppressed"][j]
        ok &= same
        if suppressed:
            note = (
                f"suppressed (fewer than k={params['k']} companies or n={params['n']} employees "
                f"of a gender; plaintext {'agrees' if expected['suppressed'][j] else 'DISAGREES'})"
            )
            print(
                f"{label:<6} {'suppressed':>13} {dollars(plain_gap) if plain_gap is not None else 'suppressed':>13} "
                f"{'-':>16} {'-':>10}  {note}{'' if same else '  MISMATCH'}"
            )
            continue
        print(
            f"{label:<6} {dollars(secure_gap):>13} {dollars(plain_gap):>13} "
            f"{'-' if secure_ratio is None else str(secure_ratio):>16} "
            f"{'-' if plain_ratio is None else str(plain_ratio):>10}  {gap}{'' if same else '  MISMATCH'}"
        )
    return verdict(night, ok, "pay gap", t0)


if __name__ == "__main__":
    sys.exit(main())
