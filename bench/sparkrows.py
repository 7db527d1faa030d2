"""Section 4b: the Spark local stage split into its fixed start-up cost and its per-row cost, against
a single-process pyarrow scan of the same files: the taxi job (include/jobs/taxi_revenue.py via
spark-submit, ``local[*]``) on a 1,000-trip dataset and on ``--trips`` trips of one company.

    .venv/bin/python bench/sparkrows.py --trips 10000000 [--repeat 2] [--json FILE]

per-row (Spark) = (T(N) - T(1,000)) / N; per core = that times the cores Spark used. T is the whole
spark-submit; the same difference of the job's own reading and aggregation (the line of its log
that starts with ``taxi_revenue.JOB_TIMING``: without the JVM's and the session's start-up, whose
spread of 1-3 s here hides a per-row cost of a few seconds) is reported next to it as ``in_job``.

Spark's own floor is measured beside it, in turn with the job: bench/jobs/scan_columns.py reads the
same two columns and aggregates each once, with none of the job's work per row (``scan``). Its
per-row cost and core over pyarrow's is what no aggregation written in Spark can go below here.
So is bench/jobs/arrow_in_spark.py (``arrow_in_spark``): Spark handing out the files to tasks that
each read theirs with pyarrow in their Python worker, the same sums as the pyarrow scan: what a
local stage that does not read through Spark's JVM would cost per row. The job itself with
``--engine arrow`` (include/jobs/mpc_arrow.py: the same design, with the job's whole data policy)
runs in turn with them (``engine_arrow``), and its output must equal the Spark engine's.

With ``--s3`` the job with ``--engine arrow`` also reads the same files from S3 (``engine_arrow_s3``:
``rclone serve s3`` on loopback serves the data folder as it is, each size's folder a bucket, and
the job gets the s3a settings as Spark conf), and its output must equal the local run's. The S3
server runs on the same cores as Spark, so its work is in that figure too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trips", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path(__file__).resolve().parent / "results" / "data")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--s3", action="store_true", help="also read the files from S3 with the arrow engine")
    args = parser.parse_args(argv)
    sizes = {"tiny": 1000, "large": args.trips}
    out: dict = {"cores": os.cpu_count(), "sizes": sizes}
    for trips in sizes.values():  # before the S3 server starts: it lists its folders once
        _dataset(args.cache, trips)
    with _data_over_s3(args.cache) if args.s3 else contextlib.nullcontext() as s3:
        _measure(args, sizes, out, s3)
    large, tiny = out["large"], out["tiny"]
    rows = large["rows_read"]
    out["spark_fixed_s"] = tiny["spark_s"]
    out["spark_per_row_ns"] = (large["spark_s"] - tiny["spark_s"]) / rows * 1e9
    out["spark_per_row_core_ns"] = out["spark_per_row_ns"] * out["cores"]
    out["arrow_per_row_ns"] = large["arrow_1thread_s"] / rows * 1e9
    out["per_row_core_ratio"] = out["spark_per_row_core_ns"] / out["arrow_per_row_ns"]
    for run in ("in_job", "scan", "arrow_in_spark", "engine_arrow", *(("engine_arrow_s3",) if args.s3 else ())):
        ns = (large[f"{run}_s"] - tiny[f"{run}_s"]) / rows * 1e9 * out["cores"]  # the job's own seconds
        out[f"{run}_per_row_core_ns"] = ns
        out[f"{run}_per_row_core_ratio"] = ns / out["arrow_per_row_ns"]
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


def _measure(args, sizes: dict, out: dict, s3) -> None:
    """Every run at both sizes, in turn (see the module's docstring); the results into ``out``."""
    from common import ARROW_IN_SPARK_JOB, SCAN_JOB, TAXI_JOB, log, spark_submit
    from jobs.arrow_in_spark import TIMING as ARROW_IN_SPARK_TIMING
    from jobs.scan_columns import TIMING as SCAN_TIMING
    from localstage import arrow_revenue
    from table1 import MONTHS

    for name, trips in sizes.items():
        folder = _dataset(args.cache, trips)
        trips_dir = folder / "company_a" / "trips"
        data, months = ["--input", str(trips_dir)], ["--months", ",".join(MONTHS)]
        spark, in_job, scan, in_spark, engine, engine_s3 = [], [], [], [], [], []
        for r in range(args.repeat):
            job = ["--output", str(folder / f"agg-{r}.json"), "--party", "company_a"]
            run = spark_submit(TAXI_JOB, [*data, *job, *months], "local[*]")
            spark.append(run.seconds)
            in_job.append(job_seconds(run.output))
            floor = spark_submit(SCAN_JOB, data, "local[*]")
            scan.append(job_seconds(floor.output, SCAN_TIMING))
            other = spark_submit(ARROW_IN_SPARK_JOB, [*data, *months], "local[*]")
            in_spark.append(job_seconds(other.output, ARROW_IN_SPARK_TIMING))
            job = ["--output", str(folder / f"agg-arrow-{r}.json"), "--party", "company_a", "--engine", "arrow"]
            engine.append(job_seconds(spark_submit(TAXI_JOB, [*data, *job, *months], "local[*]").output))
            if s3 is not None:  # the same files, each size's folder a bucket
                remote = ["--input", f"s3a://{folder.name}/company_a/trips"]
                job = ["--output", str(folder / f"agg-s3-{r}.json"), "--party", "company_a", "--engine", "arrow"]
                run = spark_submit(TAXI_JOB, [*remote, *job, *months], "local[*]", conf=s3)
                engine_s3.append(job_seconds(run.output))
        scanned, in_spark_sums = (last_json(app.output) for app in (floor, other))  # the last run of each
        arrow_revenue(trips_dir, MONTHS)  # warm-up
        arrow = min((arrow_revenue(trips_dir, MONTHS, threads=False) for _ in range(3)), key=lambda r: r["seconds"])
        same = json.loads((folder / "agg-0.json").read_text())["values"]["revenue_cents"] == arrow["revenue_cents"]
        engines_agree = all(
            json.loads((folder / f"agg-arrow-{r}.json").read_text()) == json.loads((folder / "agg-0.json").read_text())
            for r in range(args.repeat)
        )
        out[name] = {
            "trips": trips,
            "rows_read": arrow["rows_read"],
            "spark_s": min(spark),
            "spark_runs_s": spark,
            "in_job_s": min(in_job),
            "in_job_runs_s": in_job,
            "scan_s": min(scan),
            "scan_runs_s": scan,
            "scan_same_rows": scanned["rows_read"] == arrow["rows_read"],
            "arrow_in_spark_s": min(in_spark),
            "arrow_in_spark_runs_s": in_spark,
            "arrow_in_spark_same_result": in_spark_sums["revenue_cents"] == arrow["revenue_cents"],
            "engine_arrow_s": min(engine),
            "engine_arrow_runs_s": engine,
            "engine_arrow_same_output": engines_agree,
            **(_s3_point(folder, engine_s3, args.repeat) if s3 is not None else {}),
            "arrow_1thread_s": arrow["seconds"],
            "same_result": same,
        }
        log(
            f"{name}: {trips:,} trips: Spark {min(spark):.1f} s ({min(in_job):.2f} s in the job, "
            f"its two columns alone {min(scan):.2f} s, pyarrow in Spark's tasks {min(in_spark):.2f} s; "
            f"the job with --engine arrow {min(engine):.2f} s in the job"
            f"{f', from S3 {min(engine_s3):.2f} s' if engine_s3 else ''}), "
            f"pyarrow (1 thread) {arrow['seconds']:.2f} s"
        )


def _dataset(cache: Path, trips: int) -> Path:
    """The folder of ``trips`` trips of one company, generated once and kept."""
    from common import datagen, log
    from table1 import MONTHS

    folder = cache / f"rows-{trips}"
    if not (folder / "complete.json").is_file():
        t0 = time.monotonic()
        datagen().generate(folder, ["company_a"], trips, 1, MONTHS[0], MONTHS[-1])
        (folder / "complete.json").write_text(json.dumps({"seconds": time.monotonic() - t0}))
        log(f"generated {trips:,} trips in {time.monotonic() - t0:.0f} s")
    return folder


@contextlib.contextmanager
def _data_over_s3(cache: Path):
    """``rclone serve s3`` over the data folder (each size's folder a bucket): the s3a settings of
    Spark's conf that reach it."""
    import tempfile

    from common import REPO

    sys.path.insert(0, str(REPO / "scripts"))
    import localnet

    with tempfile.TemporaryDirectory() as root:
        cache.mkdir(parents=True, exist_ok=True)
        os.symlink(cache.resolve(), Path(root) / "rclone-data")  # what S3Server(kind="rclone") serves
        server = localnet.S3Server(Path(root), kind="rclone").start()
        try:
            yield server.spark_conf()
        finally:
            server.stop()


def _s3_point(folder: Path, seconds: list[float], repeat: int) -> dict:
    local = json.loads((folder / "agg-arrow-0.json").read_text())
    same = all(json.loads((folder / f"agg-s3-{r}.json").read_text()) == local for r in range(repeat))
    return {"engine_arrow_s3_s": min(seconds), "engine_arrow_s3_runs_s": seconds, "engine_arrow_s3_same_output": same}


def last_json(output: str) -> dict:
    """What a reference job (bench/jobs/scan_columns.py, arrow_in_spark.py) found: its last line, JSON."""
    return json.loads(output.strip().splitlines()[-1])


def job_seconds(output: str, line: str | None = None) -> float:
    """A job's own seconds of reading and aggregating, from its log line (the taxi job's ``JOB_TIMING``
    by default)."""
    if line is None:
        from common import TAXI_JOB

        sys.path.insert(0, str(TAXI_JOB.parent))
        from taxi_revenue import JOB_TIMING as line

    found = re.search(re.escape(line) + r" ([\d.]+) s", output)
    if found is None:
        raise RuntimeError(f"the job's log has no line starting with {line!r}")
    return float(found.group(1))


if __name__ == "__main__":
    sys.exit(main())
