"""Benchmark section: the oblivious local stage against the plain one (issue 17), measured from Spark's
own shuffle metrics.

For skewed data (one month with 100x the trips of each other month) and uniform data, runs through
the real spark-submit (``local[2]``, Spark's event log on):

* ``plain``: include/jobs/taxi_revenue.py as every party runs it today;
* ``oblivious``: the same job with ``--oblivious`` (and the Spark settings the Airflow task passes);
* ``keyed``: bench/jobs/keyed_revenue.py, the reference of what a keyed shuffle without the mode
  reveals: the same rows shuffled by their market key with Spark's hash partitioner, no combiner,
  no padding (what a job with a join, a distinct count or a non-combinable aggregate writes).

From the event log (JSON lines; ``SparkListenerTaskEnd`` events carry "Task Metrics" with
"Shuffle Write Metrics" and "Shuffle Read Metrics") it reads, per map task, the shuffle records and
bytes written and, per reduce partition, the records and bytes read; it reports their spread and
the overhead (wall time of spark-submit, and shuffle bytes) against the plain job. The results go
to ``--out`` as JSON and a Markdown table (docs/oblivious.md quotes one run).

    python bench/oblivious.py                       # 10 M trips, one run of each
    python bench/oblivious.py --trips 20000 --runs 1 --out /tmp/obl   # smoke size
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
JOB = REPO / "include" / "jobs" / "taxi_revenue.py"
KEYED_JOB = REPO / "bench" / "jobs" / "keyed_revenue.py"
DATAGEN = REPO / "include" / "datagen" / "taxi_trips.py"
MONTHS = ["2024-01", "2024-02", "2024-03"]
SKEW = (100, 1, 1)
VENV_BIN = Path(sys.executable).parent


# -- the event log -------------------------------------------------------------------------------
# Spark 4 rolls and compresses event logs by default; these settings give plain JSON lines.
EVENT_LOG_CONF = {
    "spark.eventLog.enabled": "true",
    "spark.eventLog.compress": "false",
    "spark.eventLog.rolling.enabled": "false",
}


def read_events(path: Path) -> list[dict]:
    """The JSON events of one Spark event log: a file (finished or in progress) or a rolled
    folder of uncompressed ``events_N_*`` files."""
    path = Path(path)
    files = [path]
    if path.is_dir():
        files = sorted(path.glob("events_*"), key=lambda p: int(p.name.split("_")[1]))
    events = []
    for file in files:
        if file.suffix in (".zstd", ".lz4", ".snappy", ".lzf"):
            raise ValueError(f"{file} is compressed: run Spark with spark.eventLog.compress=false")
        with open(file) as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        events.append(json.loads(line))
                    except json.JSONDecodeError:  # a line still being written
                        break
    return events


def shuffle_metrics(path: Path, job_group: str | None = None) -> dict:
    """Shuffle volumes per map task and per reduce partition, from an event log.

    :param path: the event log file
    :param job_group: only the jobs of this job group (``SparkContext.setJobGroup``), else all
    :return: {"map": [{"stage", "task", "records", "bytes"}], "reduce": [{"stage", "partition",
        "records", "bytes"}]} over successful tasks; a map task is one that wrote shuffle records,
        a reduce task one that read shuffle blocks
    """
    events = read_events(path)
    stages = None
    if job_group is not None:
        stages = set()
        for e in events:
            if e.get("Event") == "SparkListenerJobStart":
                props = e.get("Properties") or {}
                if props.get("spark.jobGroup.id") == job_group:
                    stages.update(e.get("Stage IDs", []))
    out = {"map": [], "reduce": [], "app_seconds": None}
    times = {
        e.get("Event"): e.get("Timestamp")
        for e in events
        if e.get("Event") in ("SparkListenerApplicationStart", "SparkListenerApplicationEnd")
    }
    if len(times) == 2 and None not in times.values():
        out["app_seconds"] = (times["SparkListenerApplicationEnd"] - times["SparkListenerApplicationStart"]) / 1000
    for e in events:
        if e.get("Event") != "SparkListenerTaskEnd" or (stages is not None and e["Stage ID"] not in stages):
            continue
        info, metrics = e.get("Task Info", {}), e.get("Task Metrics") or {}
        if info.get("Failed") or info.get("Killed"):
            continue
        write = metrics.get("Shuffle Write Metrics") or {}
        read = metrics.get("Shuffle Read Metrics") or {}
        if write.get("Shuffle Records Written", 0) > 0:
            out["map"].append(
                {
                    "stage": e["Stage ID"],
                    "task": info.get("Index"),
                    "records": write["Shuffle Records Written"],
                    "bytes": write.get("Shuffle Bytes Written", 0),
                }
            )
        if read.get("Remote Blocks Fetched", 0) + read.get("Local Blocks Fetched", 0) > 0:
            out["reduce"].append(
                {
                    "stage": e["Stage ID"],
                    "partition": info.get("Index"),
                    "records": read.get("Total Records Read", 0),
                    "bytes": read.get("Remote Bytes Read", 0) + read.get("Local Bytes Read", 0),
                }
            )
    return out


def spread(values: list[int]) -> dict:
    """min, max, max/min and the relative standard deviation of a list of volumes."""
    if not values:
        return {"n": 0}
    lo, hi = min(values), max(values)
    mean = statistics.fmean(values)
    return {
        "n": len(values),
        "min": lo,
        "max": hi,
        "max_over_min": (hi / lo) if lo else None,
        "rel_stdev": (statistics.pstdev(values) / mean) if mean else 0.0,
        "total": sum(values),
    }


# -- the runs ------------------------------------------------------------------------------------
def generate(folder: Path, trips: int, skewed: bool, rows_per_file: int) -> Path:
    """One company's trips (cached in ``folder`` by size and skew)."""
    data = folder / f"{'skewed' if skewed else 'uniform'}-{trips}"
    marker = data / "done.json"
    if not marker.exists():
        sys.path.insert(0, str(DATAGEN.parent))
        import taxi_trips

        taxi_trips.generate(
            data,
            ["a"],
            trips,
            seed=17,
            start=MONTHS[0],
            end=MONTHS[-1],
            rows_per_file=rows_per_file,
            month_weights=SKEW if skewed else None,
        )
        marker.write_text(json.dumps({"trips": trips, "skew": SKEW if skewed else None}))
    return data / "a" / "trips"


def submit(kind: str, trips_dir: Path, out: Path, log_dir: Path, master: str, split_mb: int = 32) -> dict:
    """One spark-submit of ``kind`` (plain, oblivious, keyed): wall time, result and its event log."""
    log_dir.mkdir(parents=True, exist_ok=True)
    before = set(log_dir.iterdir())
    job = KEYED_JOB if kind == "keyed" else JOB
    conf = {
        **EVENT_LOG_CONF,
        "spark.eventLog.dir": log_dir.as_uri(),
        "spark.ui.enabled": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.files.maxPartitionBytes": f"{split_mb}m",
    }
    args = ["--input", str(trips_dir), "--output", str(out), "--party", "a", "--months", ",".join(MONTHS)]
    if kind == "oblivious":
        conf.update(load_oblivious().SPARK_CONF)
        args.append("--oblivious")
    cmd = [str(VENV_BIN / "spark-submit"), "--master", master]
    for key, value in conf.items():
        cmd += ["--conf", f"{key}={value}"]
    if kind == "oblivious":
        cmd += ["--py-files", str(JOB.parent / "mpc_oblivious.py")]
    env = dict(
        os.environ,
        PYSPARK_PYTHON=sys.executable,
        PYSPARK_DRIVER_PYTHON=sys.executable,
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    t0 = time.monotonic()
    proc = subprocess.run([*cmd, str(job), *args], capture_output=True, text=True, env=env, timeout=3600, check=False)
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    logs = [p for p in set(log_dir.iterdir()) - before]
    if len(logs) != 1:
        raise RuntimeError(f"expected one new event log in {log_dir}, found {logs}")
    metrics = shuffle_metrics(logs[0])
    return {
        "kind": kind,
        "seconds": seconds,
        "app_seconds": metrics["app_seconds"],
        "values": json.loads(out.read_text())["values"],
        "map": metrics["map"],
        "reduce": metrics["reduce"],
        "map_records": spread([m["records"] for m in metrics["map"]]),
        "map_bytes": spread([m["bytes"] for m in metrics["map"]]),
        "reduce_records": spread([r["records"] for r in metrics["reduce"]]),
        "reduce_bytes": spread([r["bytes"] for r in metrics["reduce"]]),
    }


def load_oblivious():
    sys.path.insert(0, str(JOB.parent))
    import mpc_oblivious as oblivious

    return oblivious


def uptime_load() -> float:
    return os.getloadavg()[0]


def run(trips: int, runs: int, out: Path, data_dir: Path, master: str, rows_per_file: int, split_mb: int = 32) -> dict:
    results = {
        "trips": trips,
        "runs": runs,
        "master": master,
        "cpus": os.cpu_count(),
        "skew": list(SKEW),
        "split_mb": split_mb,
        "load_before": uptime_load(),
        "cases": {},
    }
    for skewed in (True, False):
        trips_dir = generate(data_dir, trips, skewed, rows_per_file)
        name = "skewed" if skewed else "uniform"
        case = results["cases"][name] = {}
        for kind in ("plain", "oblivious", "keyed"):
            best = None
            for i in range(runs):
                r = submit(kind, trips_dir, out / f"{name}-{kind}-{i}.json", out / "eventlog", master, split_mb)
                r["load"] = uptime_load()
                if best is None or r["seconds"] < best["seconds"]:
                    best = r
            case[kind] = best
        plain, obl = case["plain"], case["oblivious"]
        case["identical"] = plain["values"] == obl["values"] == case["keyed"]["values"]
        plain_bytes = plain["map_bytes"].get("total", 0)
        case["overhead_time"] = obl["seconds"] / plain["seconds"]
        if plain["app_seconds"] and obl["app_seconds"]:
            case["overhead_app_time"] = obl["app_seconds"] / plain["app_seconds"]
        case["overhead_shuffle_bytes"] = (obl["map_bytes"]["total"] / plain_bytes) if plain_bytes else None
    results["load_after"] = uptime_load()
    return results


def _row(name: str, kind: str, r: dict) -> str:
    def fmt(s):
        if not s.get("n"):
            return "-"
        ratio = f"{s['max_over_min']:.2f}" if s.get("max_over_min") else "-"
        return f"{s['min']:,}..{s['max']:,} (max/min {ratio})"

    app = f"{r['app_seconds']:.1f}" if r.get("app_seconds") else "-"
    return (
        f"| {name} | {kind} | {r['seconds']:.1f} | {app} | {r['map_records']['n']} | {fmt(r['map_records'])} | "
        f"{fmt(r['map_bytes'])} | {r['reduce_records'].get('n', 0)} | {fmt(r['reduce_records'])} | "
        f"{fmt(r['reduce_bytes'])} |"
    )


def report(results: dict) -> str:
    header = (
        f"{results['trips']:,} trips, one company, 3 months; skewed = month weights "
        f"{'/'.join(map(str, results['skew']))}; spark-submit --master {results['master']}, "
        f"{results['cpus']} CPUs; input splits of at most {results['split_mb']} MB; best of {results['runs']} "
        f"run(s); 1-minute load average {results['load_before']:.2f} before, {results['load_after']:.2f} after."
    )
    columns = (
        "| data | job | spark-submit s | Spark app s | map tasks | records written per map task "
        "| bytes written per map task | reduce partitions | records read per reduce partition "
        "| bytes read per reduce partition |"
    )
    lines = [header, "", columns, "|---|---|---|---|---|---|---|---|---|---|"]
    for name, case in results["cases"].items():
        for kind in ("plain", "oblivious", "keyed"):
            lines.append(_row(name, kind, case[kind]))
    lines.append("")
    for name, case in results["cases"].items():
        sb = case["overhead_shuffle_bytes"]
        app = f" (Spark application {case['overhead_app_time']:.2f}x)" if case.get("overhead_app_time") else ""
        written = case["oblivious"]["map_bytes"]["total"], case["plain"]["map_bytes"].get("total", 0)
        lines.append(
            f"- {name}: oblivious / plain wall time = {case['overhead_time']:.2f}x{app}; shuffle bytes "
            f"written {written[0]:,} vs {written[1]:,}"
            f"{f' ({sb:.1f}x)' if sb else ''}; results identical: {case['identical']}"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Oblivious local stage vs plain: shuffle volumes and overhead")
    parser.add_argument("--trips", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=1, help="runs of each job; the fastest is kept")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default: a temporary one)")
    parser.add_argument("--data-cache", type=Path, default=None, help="generated trips, kept between runs")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument(
        "--split-mb", type=int, default=32, help="spark.sql.files.maxPartitionBytes in MB: input split = map task size"
    )
    parser.add_argument(
        "--rows-per-file",
        type=int,
        default=None,
        help="rows per Parquet file = rows per map task (default: trips/8, at most 1 M)",
    )
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-oblivious-"))
    out.mkdir(parents=True, exist_ok=True)
    data = args.data_cache or out / "data"
    rows_per_file = args.rows_per_file or max(1, min(1_000_000, args.trips // 8))
    results = run(args.trips, args.runs, out, data, args.master, rows_per_file, args.split_mb)
    for case in results["cases"].values():
        for r in case.values():
            if isinstance(r, dict):
                r.pop("values", None)
    (out / "oblivious.json").write_text(json.dumps(results, indent=2))
    text = report(results)
    (out / "oblivious.md").write_text(text)
    print(text)
    return 0 if all(c["identical"] for c in results["cases"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
