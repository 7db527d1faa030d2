"""The benchmark report's sections other than Table 1 and the targets: machine and load, MPC scaling,
coordination latency, local stage, how to reproduce."""

from __future__ import annotations

from common import fmt_s
from report_format import Doc, byte_size, mib, ratio, yes

TASKS = ["aggregate", "share", "wait_for_inputs", "compute", "wait_for_result", "reveal"]


def machine(doc: Doc, results: dict) -> None:
    m = results["machine"]
    doc.para(
        f"{m['cpus']} cores, {m['memory_gib']} GiB, Python {m['python']}, {m['java']}; "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
        + ".",
        "The machine is shared with other developers' test runs: the 1-minute load average at the start and "
        "end of each section is below (a load above the core count means the figures are inflated).",
    )
    doc.table(
        ["section", "load at start (1/5/15 min)", "load at end", "seconds"],
        "llll",
        [
            [
                e["section"],
                " / ".join(f"{x:.2f}" for x in e["load_start"]),
                f"{e['load_end'][0]:.2f}",
                f"{e['seconds']:,.0f}",
            ]
            for e in results.get("loads", [])
        ],
    )


def scaling(doc: Doc, sc: list) -> None:
    doc.para(
        "The MPC stages alone (share → reveal, no Spark) with random aggregates: every input party shares "
        "(one after the other; the critical path counts the slowest one, as each party runs on its own "
        "machine), every compute party's stage runs as a thread launching its real MPyC process, then the "
        "recipient reveals. Markets = months of the period + 1 ('all'); the smallest possible is 2 (one "
        "month and 'all'), which stands in for the targets' '1 market' (it does strictly more work). "
        "\"MPyC\" is the worker's own time after connecting; peak RSS is the kernel's high-water mark "
        "(VmHWM) of the MPyC process; bytes sent is MPyC's own count per compute party."
    )
    doc.table(
        [
            "input parties",
            "compute parties",
            "markets",
            "MPC stages (s)",
            "share (s, max)",
            "compute stage (s, max)",
            "MPyC process (s)",
            "MPyC after connect (s)",
            "reveal (s)",
            "peak RSS (MiB, max)",
            "bytes sent (max)",
            "= plaintext",
        ],
        "rrrrrrrrrrrl",
        [
            [
                p["inputs"],
                p["computes"],
                f"{p['markets']:,}",
                f"**{fmt_s(p['mpc_s'])}**",
                fmt_s(p["share_max_s"], 3),
                fmt_s(max(p["compute_stage_s"].values())),
                fmt_s(p["mpyc_process_s"]),
                fmt_s(p["mpyc_compute_s"]),
                fmt_s(p["reveal_s"], 3),
                mib(p["peak_rss_max_mib"]),
                byte_size(p["bytes_sent_max"]),
                yes(p["equals_plaintext"]),
            ]
            for p in sc
        ],
    )
    for key in ("scaling_inputs", "scaling_markets", "scaling_resources"):
        doc.image(key, key)


def coordination(doc: Doc, co: dict) -> None:
    if "skipped" in co:
        doc.para(f"Skipped: {co['skipped']}.")
        return
    doc.para(
        f"{co['parties']} parties ({co['companies']} companies, {co['computes']} computing, one regulator), "
        f"each in its own Airflow, ran one night at once with `airflow dags test` ({co['trips']:,} trips; "
        f"real Spark, S3 server and MPyC; all on this one machine, {fmt_s(co['wall_s'], 0)} s in all). Times "
        f"are from each party's `airflow.db` (task instances) and the signed records in the bucket; the "
        f"sensors poll the bucket every {co['poll_interval_s']} s (deferred, in the triggerer)."
    )
    doc.para(
        f"The last input party ({co['last_input_party']}) published its shares "
        f"{fmt_s(co['inputs_done_spread_s'], 1)} s after the first. From that last publication:"
    )
    columns = [
        "sensor_done_after_s",
        "compute_task_start_after_s",
        "mpyc_launch_after_s",
        "mpyc_connected_after_s",
        "gap_sensor_to_compute_s",
    ]
    doc.table(
        [
            "compute party",
            "its sensor done (s)",
            "compute task started (s)",
            "MPyC launched (s)",
            "all MPyC connected (s)",
            "gap sensor → compute task (s)",
        ],
        "lrrrrr",
        [[pid, *(fmt_s(c[k]) for k in columns)] for pid, c in co["compute"].items()],
    )
    r = co["recipient"]
    doc.para(
        f"Every compute party ran MPyC **{fmt_s(co['all_mpyc_running_after_s'])} s** after the last "
        f"publication (all connected after {fmt_s(co['all_connected_after_s'])} s). The recipient's sensor "
        f"saw the last output shares after {fmt_s(r['sensor_done_after_last_output_s'])} s and the result "
        f"was revealed {fmt_s(r['reveal_done_after_last_output_s'])} s after them."
    )
    doc.para(
        f"Between consecutive tasks of one party (end of one → start of the next, Airflow's own scheduling "
        f"in `dags test`): mean {fmt_s(co['task_gap_mean_s'])} s, max {fmt_s(co['task_gap_max_s'])} s."
    )
    doc.table(
        ["party", *TASKS, "whole run (s)"],
        "l" + "r" * (len(TASKS) + 1),
        [
            [pid, *(fmt_s(d[t]) if d.get(t) is not None else "" for t in TASKS), fmt_s(co["run_s"][pid], 1)]
            for pid, d in co["task_durations_s"].items()
        ],
    )
    doc.image("coordination", "coordination")


def local(doc: Doc, lo: dict) -> None:
    fixed = lo.get("spark_fixed_s")
    same = all(p["same_result"] for p in lo["parties"].values())
    doc.para(
        "The local stage (Table 1's measurement of each party) against single-process columnar scans of the "
        "same Parquet files computing the same sums (pyarrow decode + numpy; `1 thread` and `threads` = "
        "pyarrow's thread pool on every core; fastest of 3 after a warm-up). Every scan's sums "
        + ("equal" if same else "**DIFFER FROM**")
        + " the local stage's. The files are in the page cache (read column)."
        + (
            f" Spark's fixed cost - the same job over 1,000 trips, fastest run - is **{fmt_s(fixed, 1)} s** "
            f"(JVM, session, planning); the marginal column subtracts it."
            if fixed
            else ""
        )
    )
    rows = []
    for pid, p in lo["parties"].items():
        best = min(p["arrow_1thread_s"], p["arrow_threads_s"])
        marginal = None if fixed is None else p["local_stage_s"] - fixed
        rows.append(
            [
                pid,
                f"{p['rows']:,}",
                byte_size(p["parquet_bytes"]),
                fmt_s(p["read_s"]),
                fmt_s(p["arrow_1thread_s"]),
                fmt_s(p["arrow_threads_s"]),
                fmt_s(p["local_stage_s"], 1),
                fmt_s(marginal, 1),
                ratio(p["local_stage_s"] / best),
            ]
        )
    doc.table(
        [
            "party",
            "rows",
            "Parquet",
            "read files (s)",
            "pyarrow 1 thread (s)",
            "pyarrow threads (s)",
            "local stage (s)",
            "local stage − fixed (s)",
            "local stage ÷ best scan",
        ],
        "lrrrrrrrr",
        rows,
    )
    doc.image("local", "local stage")


def reproduce(doc: Doc, results: dict) -> None:
    doc.para(
        "```bash",
        "bash bench/run.sh --scale default --quiet-load 1.5 --publish   # this report; ~15 min on a quiet 2-core "
        "machine",
        "bash bench/run.sh --scale small                                # a few minutes",
        "bash bench/run.sh --scale tiny                                 # the smoke run (no Spark, no Airflow)",
        "```",
    )
    doc.lines.append(
        "Results go to `bench/results/<timestamp>/` (`report.md`, `results.json`, `plots/`, `work/` "
        "with logs and profiles); generated trips are kept in `bench/results/data/` between runs."
    )
