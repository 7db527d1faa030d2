"""The benchmarks: the paper's Table 1 on this machine, how the MPC cost grows, coordination latency,
and the local stage against a plain columnar scan. Writes ``report.md``, ``results.json`` and PNG
plots under ``bench/results/<timestamp>/``.

    bash bench/run.sh [--scale tiny|small|default] [--sections table1,scaling,coordination,local]
                      [--trips N] [--engine spark|arrow] [--master 'local[*]'] [--repeat N]
                      [--quiet-load 1.5 --quiet-wait 600] [--publish]

``--publish`` copies the report and plots to docs/benchmarks.md and docs/bench/ (do it for a
default-scale run). See docs/benchmarks.md for what every figure means.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, LoadLog, load_average, log, machine_info, wait_for_quiet  # noqa: E402

SCALES = {
    # The smoke run (tests/test_bench_smoke.py): seconds, not minutes. No Spark, no Airflow.
    "tiny": {
        "companies": 3,
        "computes": 3,
        "trips": 30_000,
        "engine": "arrow",
        "mpc_only": {"secret-month": [150, 300]},
        "grid": "tiny",
        "coordination": None,
        "repeat": 1,
    },
    "small": {
        "companies": 5,
        "computes": 3,
        "trips": 1_000_000,
        "engine": "spark",
        "mpc_only": {"secret-month": [250, 500, 1000], "onehot": [1000, 2000, 4000]},
        "grid": "small",
        "coordination": {"companies": 3, "computes": 3, "trips": 3000},
        "repeat": 1,
    },
    "default": {
        "companies": 5,
        "computes": 3,
        "trips": 10_000_000,
        "engine": "spark",
        "mpc_only": {"secret-month": [500, 1000, 2000], "onehot": [10_000, 20_000, 40_000]},
        "grid": "default",
        "coordination": {"companies": 5, "computes": 3, "trips": 5000},
        "repeat": 3,
    },
}
SECTIONS = ("table1", "scaling", "coordination", "local")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=SCALES, default="default")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument("--trips", type=int, help="trips over all companies (Table 1); default by scale")
    parser.add_argument("--companies", type=int, help="companies (Table 1); default by scale")
    parser.add_argument(
        "--engine",
        choices=["spark", "arrow"],
        help="local stage and baseline: spark-submit (default) or a pyarrow scan (tiny)",
    )
    parser.add_argument("--master", default="local[*]", help="Spark master for the baseline and every party")
    parser.add_argument("--repeat", type=int, help="repetitions of every timed run (the median is reported)")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--out", help="results folder (default bench/results/<timestamp>)")
    parser.add_argument(
        "--data-cache",
        default=str(REPO / "bench" / "results" / "data"),
        help="generated trips are kept here between runs",
    )
    parser.add_argument(
        "--quiet-load",
        type=float,
        default=0.0,
        help="before every section wait until the 1-minute load is below this (0: never wait)",
    )
    parser.add_argument("--quiet-wait", type=float, default=600, help="longest wait for a quiet machine, s")
    parser.add_argument("--no-profile", action="store_true", help="skip the profiled runs of the target points")
    parser.add_argument("--publish", action="store_true", help="copy report and plots to docs/")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    command = " ".join(sys.argv[1:] if argv is None else argv) or "(defaults)"
    sys.argv = sys.argv[:1]  # mpyc.runtime parses sys.argv when first imported (in-process sharing code)
    scale = dict(SCALES[args.scale])
    engine = args.engine or scale["engine"]
    trips = args.trips or scale["trips"]
    companies_n = args.companies or scale["companies"]
    repeat = args.repeat or scale["repeat"]
    sections = [s for s in args.sections.split(",") if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        print(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}", file=sys.stderr)
        return 2
    out_dir = Path(args.out) if args.out else REPO / "bench" / "results" / time.strftime("%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    work = out_dir / "work"
    log(
        f"scale {args.scale}: {companies_n} companies, {trips:,} trips, engine {engine}, master {args.master}; "
        f"results in {out_dir}"
    )

    import localnet
    from table1 import companies_for, ensure_data, run_local_stage, run_table1

    loads = LoadLog()
    results: dict = {
        "scale": args.scale,
        "engine": engine,
        "master": args.master,
        "sections": sections,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine_info(),
        "load_at_start": load_average(),
        "command": command,
    }

    def quiet(max_wait: float | None = None):
        if args.quiet_load > 0:
            results.setdefault("quiet_waits", []).append(
                wait_for_quiet(args.quiet_load, args.quiet_wait if max_wait is None else max_wait)
            )

    companies = companies_for(companies_n)
    s3 = localnet.S3Server(work / "s3").start()
    t_start = time.monotonic()

    def save() -> None:
        """Write what was measured so far: a late failure keeps the earlier sections."""
        results["loads"] = loads.entries
        results["total_s"] = round(time.monotonic() - t_start, 1)
        (out_dir / "results.json").write_text(json.dumps(results, indent=1, default=str))

    loads.after_section = save
    try:
        data_dir = None
        if "table1" in sections or "local" in sections:  # section 4 reuses Table 1's Spark runs
            data_dir, info = ensure_data(Path(args.data_cache), companies, trips, args.seed)
            results["data"] = {"folder": str(data_dir), **info}
            quiet()
            with loads.section("1. Table 1"):
                results["table1"] = run_table1(
                    work / "table1",
                    s3,
                    data_dir=data_dir,
                    companies=companies,
                    computes=scale["computes"],
                    engine=engine,
                    master=args.master,
                    repeat=repeat,
                    mpc_only=scale["mpc_only"],
                    total_trips=trips,
                    quiet=lambda: quiet(min(args.quiet_wait, 45)),
                )
        if "scaling" in sections:
            from scaling import GRIDS, TARGETS, profile_targets, run_scaling

            quiet()
            with loads.section("2. MPC scaling"):
                results["scaling"] = run_scaling(work / "scaling", s3, GRIDS[scale["grid"]], repeat=repeat)
            grid = GRIDS[scale["grid"]]
            names = [n for n, (point, _) in TARGETS.items() if point in grid]
            if names and not args.no_profile:
                with loads.section("2b. profiles of the target points"):
                    results["profiles"] = profile_targets(work / "scaling", s3, results["scaling"], names)
        if "coordination" in sections:
            if scale["coordination"] is None:
                results["coordination"] = {"skipped": f"not run at scale {args.scale} (Airflow takes minutes)"}
            else:
                from coordination import run_coordination

                quiet()
                with loads.section("3. Coordination latency"):
                    results["coordination"] = run_coordination(
                        work / "coordination", s3, spark_master=args.master, timeout=1800, **scale["coordination"]
                    )
        if "local" in sections and "table1" in results:
            quiet()
            with loads.section("4. Local stage"):
                results["local"] = run_local_stage(
                    work / "local",
                    data_dir=data_dir,
                    companies=companies,
                    table1=results["table1"],
                    master=args.master,
                    engine=engine,
                    repeat=repeat,
                    quiet=lambda: quiet(min(args.quiet_wait, 45)),
                )
    except BaseException as exc:
        results["failed"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        s3.stop()
        save()

    from report import write_report

    report = write_report(results, out_dir)
    log(f"report: {report}")
    if args.publish:
        publish(out_dir)
    return 0


def publish(out_dir: Path) -> None:
    docs = REPO / "docs"
    images = docs / "bench"
    images.mkdir(parents=True, exist_ok=True)
    for png in sorted((out_dir / "plots").glob("*.png")):
        shutil.copy(png, images / png.name)
    text = (out_dir / "report.md").read_text().replace("](plots/", "](bench/")
    (docs / "benchmarks.md").write_text(text)
    log(f"published to {docs / 'benchmarks.md'} and {images}")


if __name__ == "__main__":
    sys.exit(main())
