"""Section 2: the MPC stages (share to reveal, no Spark) against the number of input parties, of
compute parties and of markets, with random aggregates; peak RSS and bytes sent per compute party.

Markets are the HHI program's ``market`` dimension: 'all' plus one per month of the period, so a
run over M months has M + 1 markets (a 1-month period is the smallest: 2 markets).
"""

from __future__ import annotations

import statistics
from pathlib import Path

from common import S3Requests, log
from mpcstages import make_federation, plaintext_hhi, random_aggregates, run_stages

WIDE_HHI = Path(__file__).resolve().parent / "programs" / "hhi_wide.py"
# (input parties, compute parties, months in the period); markets = months + 1.
GRIDS = {
    "tiny": [(5, 3, 1), (5, 3, 12)],
    "small": [(3, 3, 1), (5, 3, 1), (10, 3, 1), (30, 3, 1), (5, 5, 1), (10, 5, 1), (5, 3, 12), (5, 3, 264)],
    "default": [
        (3, 3, 1),
        (5, 3, 1),
        (10, 3, 1),
        (30, 3, 1),
        (100, 3, 1),
        (5, 5, 1),
        (10, 5, 1),
        (30, 5, 1),
        (100, 5, 1),
        (5, 3, 12),
        (5, 3, 264),
        (5, 3, 2999),
        (30, 3, 264),
        (100, 3, 264),
        (5, 5, 264),
        (5, 5, 2999),
    ],
}
# The targets' points, profiled in a separate (untimed) run.
TARGETS = {
    "5 inputs, 3 compute, 2 markets": ((5, 3, 1), 1.0),
    "100 inputs, 3 compute, 2 markets": ((100, 3, 1), 10.0),
    "1,000 inputs, 3 compute, 2 markets": ((1000, 3, 1), 10.0),
    "7 inputs, 7 compute (t = 3), 2 markets": ((7, 7, 1), None),
    "5 inputs, 3 compute, 3,000 markets": ((5, 3, 2999), 30.0),
}
# The same points' targets with 50 ms round-trip time between the compute parties (targets.py --rtt-ms 50).
WAN_TARGETS = {"5 inputs, 3 compute, 2 markets": 3.0, "5 inputs, 3 compute, 3,000 markets": 10.0}


def run_point(
    work: Path,
    s3,
    inputs: int,
    computes: int,
    months: int,
    *,
    repeat: int = 1,
    profile_dir: Path | None = None,
    rtt_ms: float = 0.0,
    wait_in_task: bool = False,
) -> dict:
    runs = []
    # The HHI program takes at most 100 firms; beyond, its copy with the division sized for 1,000.
    program = WIDE_HHI if inputs > 100 else None
    for r in range(repeat):
        with S3Requests() as requests:  # the parties' clients are made in make_federation
            fed = make_federation(work / "federations", s3, inputs, computes, months, program=program)
            aggregates = random_aggregates(fed, seed=1000 * inputs + 10 * computes + months + r)
            run = run_stages(
                fed, aggregates, profile_dir=profile_dir, requests=requests, rtt_ms=rtt_ms, wait_in_task=wait_in_task
            )
        run["equals_plaintext"] = run["result"]["outputs"]["hhi"]["exact"] == plaintext_hhi(aggregates)
        run.pop("result")
        runs.append(run)
    best = sorted(runs, key=lambda x: x["mpc_critical_s"])[len(runs) // 2]  # the median run
    compute = best["compute"]
    return {
        "inputs": inputs,
        "computes": computes,
        "markets": months + 1,
        "mpc_s": statistics.median(r["mpc_critical_s"] for r in runs),
        "mpc_runs_s": [r["mpc_critical_s"] for r in runs],
        "machine_s": best["mpc_machine_s"],
        "share_max_s": max(best["share_s"].values()),
        "share_sum_s": sum(best["share_s"].values()),
        "share_median_s": statistics.median(best["share_s"].values()),
        # The compute parties' path from the last input published to the result revealed.
        "after_inputs_s": best["after_inputs_s"],
        "rendezvous_max_s": max(best["rendezvous_s"].values()),
        "result_rendezvous_s": best["result_rendezvous_s"],
        "requests": best["requests"],
        "compute_wall_s": best["compute_wall_s"],
        "compute_stage_s": {p: c["stage_s"] for p, c in compute.items()},
        "mpyc_process_s": max(c.get("launcher_total_s", 0) for c in compute.values()),
        "mpyc_connect_s": max(c.get("launcher_connect_s", 0) for c in compute.values()),
        "mpyc_compute_s": max(c.get("worker_mpc_s", 0) or 0 for c in compute.values()),
        # Inside MPyC: the input checks (witnesses), then the program (floors, rounding, outputs).
        "mpyc_checks_s": max(c.get("worker_checks_s", 0) or 0 for c in compute.values()),
        "mpyc_program_s": max(c.get("worker_program_s", 0) or 0 for c in compute.values()),
        "reveal_s": best["reveal_s"],
        "before_mpyc_s": {p: c.get("before_mpyc_s") for p, c in compute.items()},
        "after_mpyc_s": {p: c.get("after_mpyc_s") for p, c in compute.items()},
        "last_launch_s": max(c.get("launched_after_first_s") or 0 for c in compute.values()),
        "mpyc_connect_by_party_s": {p: c.get("launcher_connect_s") for p, c in compute.items()},
        "tls": all(c.get("tls") for c in compute.values()),
        "peak_rss_mib": {p: c["peak_rss_mib"] for p, c in compute.items()},
        "peak_rss_max_mib": best["peak_rss_max_mib"],
        "bytes_sent": {p: c.get("bytes_sent") for p, c in compute.items()},
        "bytes_sent_max": max((c.get("bytes_sent") or 0) for c in compute.values()),
        "worker_cpu_s": {p: c.get("worker_cpu_s") for p, c in compute.items()},
        "equals_plaintext": all(r["equals_plaintext"] for r in runs),
        "program": "hhi_wide" if program else "hhi",
        "rtt_ms": rtt_ms,
        "rounds": best["rounds"],
    }


def run_scaling(work: Path, s3, grid: list[tuple[int, int, int]], *, repeat: int) -> list[dict]:
    points = []
    for inputs, computes, months in grid:
        point = run_point(work, s3, inputs, computes, months, repeat=repeat)
        points.append(point)
        log(
            f"(2) {inputs} inputs, {computes} compute, {months + 1} markets: {point['mpc_s']:.2f} s, "
            f"peak RSS {point['peak_rss_max_mib']} MiB, {point['bytes_sent_max']:,} bytes sent"
            f"{'' if point['equals_plaintext'] else '  MISMATCH'}"
        )
    return points


def profile_targets(work: Path, s3, grid_points: list[dict], names: list[str]) -> dict:
    """cProfile of the bench-side stages (share, each compute thread, reveal) and of every MPyC
    worker (``python -m cProfile``) for the given target points; returns text summaries."""
    from common import profile_summary

    out = {}
    for name in names:
        (inputs, computes, months), _ = TARGETS[name]
        folder = work / "profiles" / f"{inputs}in-{computes}c-{months + 1}m"
        run_point(work, s3, inputs, computes, months, profile_dir=folder)
        leader = "company_a" if inputs <= 26 else f"company_{0:0{len(str(inputs - 1))}d}"
        follower = "company_b" if inputs <= 26 else f"company_{1:0{len(str(inputs - 1))}d}"
        out[name] = {
            "folder": str(folder),
            "worker": profile_summary(folder / "worker-0.prof", 14),
            "compute_leader": profile_summary(folder / f"compute-{leader}.prof", 14),
            "compute_follower": profile_summary(folder / f"compute-{follower}.prof", 10),
            "share": profile_summary(folder / "share-all-parties.prof", 10),
            "reveal": profile_summary(folder / "reveal.prof", 10),
        }
        log(f"(2) profiled {name} in {folder}")
    return out
