"""The markdown report of one benchmark run (from its results.json); the plots are report_plots.py.

.venv/bin/python bench/report.py bench/results/<run>     # re-render a run's report
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import fmt_s  # noqa: E402

PAPER = {"a": 970, "b": 1051, "c": "> 7,200 (not finished)", "data": "156 GB, 5 companies"}
# Ratio targets of Table 1; the MPC stages' targets are scaling.TARGETS (also the profiled points).
RATIO_TARGETS = {"b_over_a": 1.05, "c_over_b": 100}
SECTION_TITLES = [
    "## Machine and load",
    "## 1. Table 1",
    "## 2. MPC scaling",
    "## 3. Coordination latency",
    "## 4. Local stage",
    "## Targets",
    "## Where the time goes",
    "## How to reproduce",
]
TASKS = ["aggregate", "share", "wait_for_inputs", "compute", "wait_for_result", "reveal"]


def mpc_targets() -> dict[str, tuple[tuple[int, int, int], float]]:
    """{name: ((input parties, compute parties, markets), seconds at most)} of the MPC stages that
    have a limit in seconds (the 7-compute-party point is a ratio to the 3-party time)."""
    from scaling import TARGETS

    return {name: ((i, c, months + 1), limit) for name, ((i, c, months), limit) in TARGETS.items() if limit is not None}


# -- formatting -----------------------------------------------------------------------------------------------
def _mib(x) -> str:
    if x is None:
        return "–"
    return f"{x / 1024:,.0f} GiB" if x >= 10 * 1024 else f"{x:,.0f}"


def _bytes(x) -> str:
    if x is None:
        return "–"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if x >= size:
            return f"{x / size:,.1f} {unit}"
    return f"{x:,.0f} B"


def _ratio(x) -> str:
    return "–" if x is None else (f"{x:,.0f}×" if x >= 100 else f"{x:,.2f}×")


def _yes(ok: bool) -> str:
    return "yes" if ok else "NO"


def _max(values) -> float | None:
    """The largest of ``values`` (None counts as 0), or None when there are none."""
    values = list(values or [])
    return max(v or 0 for v in values) if values else None


class Doc:
    """Markdown lines: paragraphs, tables and images, each followed by a blank line."""

    def __init__(self, images: dict[str, str]):
        self.lines: list[str] = []
        self.images = images

    def para(self, *texts: str) -> None:
        self.lines += [*texts, ""]

    def table(self, header: list[str], align: str, rows) -> None:
        """:param align: one letter per column, ``l`` (left) or ``r`` (right)."""
        self.lines.append(self._row(header))
        self.lines.append("|" + "".join("---|" if a == "l" else "---:|" for a in align))
        self.lines += [self._row(row) for row in rows]
        self.lines.append("")

    @staticmethod
    def _row(cells) -> str:
        return "|" + "|".join(f" {c} " if c != "" else " " for c in cells) + "|"

    def image(self, key: str, alt: str) -> None:
        if key in self.images:
            self.para(f"![{alt}](plots/{self.images[key]})")


# -- sections -------------------------------------------------------------------------------------------------
def _machine(doc: Doc, results: dict) -> None:
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


def _table1(doc: Doc, t1: dict) -> None:
    b, ratios = t1["b"], t1["ratios"]
    doc.para(
        f"{len(t1['companies'])} companies, {t1['trips']:,} trips in all (the paper's 50/20/10/10/10 split "
        f"for five), {t1['computes']} of them compute parties, threshold t = {(t1['computes'] - 1) // 2}; the "
        f"HHI of the whole period and of each of {len(t1['months'])} months ({len(t1['months']) + 1} markets)."
    )
    if t1["repeat"] > 1:
        doc.para(
            f"Every Spark job ran {t1['repeat']} times, interleaved (a, then each party, per round); the "
            f"fastest run of each is used (on a shared machine, noise only adds time). All runs are in "
            f"results.json."
        )
    tls = [c.get("tls") for c in b["compute"].values()]
    doc.para(
        f"MPyC channels between the compute parties: "
        f"{'mutual TLS' if all(tls) else 'plain TCP' if not any(tls) else 'mixed'}."
    )
    baseline = "Spark job (spark-submit)" if t1["engine"] == "spark" else "pyarrow scan"
    rows = [
        [
            "(a) insecure baseline",
            f"one {baseline} over the pooled data, plaintext HHI",
            fmt_s(t1["a_s"], 1),
            "1.00",
            f"{PAPER['a']:,}",
        ],
        [
            "(b) mixed mode, critical path",
            f"largest party's local stage ({fmt_s(b['largest_local_s'], 1)} s) + share, rendezvous, compute, reveal",
            fmt_s(b["critical_s"], 1),
            f"b/a = {_ratio(ratios['b_over_a'])}",
            f"{PAPER['b']:,}",
        ],
        [
            "(b) mixed mode, machine time",
            "every party's local stage + every party's MPC-stage work",
            fmt_s(b["machine_s"], 1),
            f"{_ratio(ratios['b_machine_over_a'])} of a",
            "",
        ],
    ]
    for variant, c in t1["c"].items():
        what = (
            "every trip's fare and month secret-shared; one-hot of the month, sums and HHI in MPC"
            if variant == "secret-month"
            else "every trip's fare and one-hot month bits secret-shared; only sums and HHI in MPC (a floor)"
        )
        rows.append(
            [
                f"(c) MPC only [{variant}], **extrapolated**",
                what,
                fmt_s(c["extrapolated_s"], 0),
                f"c/b = {_ratio(ratios[f'c_over_b[{variant}]'])}",
                PAPER["c"] if variant == "secret-month" else "",
            ]
        )
    doc.table(["", "what runs", "seconds", "ratio", "paper (s)"], "llrrr", rows)

    ok = t1["secure_equals_plaintext"]
    doc.para(
        f"Secure HHI {'**equals**' if ok else '**DIFFERS FROM**'} the plaintext HHI over the pooled data "
        f"(rounded to hundredths inside the MPC; the baseline job "
        f"{'agrees' if t1['a_equals_plaintext'] else 'DISAGREES'}, every party's aggregate "
        f"{'equals' if t1['aggregates_equal_reference'] else 'DIFFERS FROM'} the pyarrow reference):"
    )
    doc.table(
        ["market", "secure (MPC)", "plaintext"],
        "lrr",
        zip(["all", *t1["months"]], t1["secure_hhi"], t1["plaintext_hhi"]),
    )

    doc.para(
        "**(b) in detail.** Local stage per party (each measured alone, as if on its own machine; "
        "the MPC stages run all parties on this one machine):"
    )
    rows = []
    for c in t1["companies"]:
        comp = b["compute"].get(c, {})
        rows.append(
            [
                c,
                fmt_s(t1["local_s"][c], 1),
                fmt_s(b["share_s"][c], 3),
                fmt_s(comp.get("stage_s")),
                fmt_s(comp.get("launcher_total_s")),
                _mib(comp.get("peak_rss_mib")),
                _bytes(comp.get("bytes_sent")) if comp else "–",
            ]
        )
    doc.table(
        [
            "party",
            "local stage (s)",
            "share (s)",
            "compute stage (s)",
            "MPyC process (s)",
            "peak RSS (MiB)",
            "bytes sent",
        ],
        "lrrrrrr",
        rows,
    )
    doc.para(
        f"MPC stages alone (share → reveal): critical path {fmt_s(b['mpc_critical_s'])} s, machine time "
        f"{fmt_s(b['mpc_machine_s'])} s; reveal {fmt_s(b['reveal_s'], 3)} s."
    )

    doc.para(
        "**(c) in detail.** The bench-only program `bench/programs/hhi_mpc_only.py`: each company "
        "Shamir-shares every trip (fare in cents, and the month as a secret index 0..M-1 [secret-month] or as "
        "M secret bits [onehot]); the three compute parties' real MPyC workers compute, for "
        "[secret-month], each trip's one-hot month vector with `mpc.unit_vector` (a secure bit decomposition), "
        "then per company and month the inner product of fares and month indicators, the whole period as "
        "the sum of fares, and the HHI exactly as the HHI program does. The workers talk plain TCP (the "
        "pipeline's MPC stages use mutual TLS), and the shares reach them "
        "through their job files, not the bucket, so neither TLS nor the transport of per-trip shares is "
        "counted: the figures are lower bounds. The time per trip grows a little with the number of trips "
        "(memory), so a linear extrapolation is optimistic too. Measured at small sizes (every run's HHI "
        "equals the plaintext HHI of the same trips), fitted as `seconds = a + b·trips` and extrapolated to "
        "every trip:"
    )
    rows = []
    for variant, c in t1["c"].items():
        rows += [
            [
                variant,
                f"{p['trips']:,}",
                fmt_s(p["critical_s"]),
                fmt_s(p["mpc_wall_s"]),
                _mib(max(p["peak_rss_mib"].values())),
                _bytes(_max(p["bytes_sent"].values())),
                _yes(p["equals_plaintext"]),
            ]
            for p in c["points"]
        ]
        rows.append(
            [
                f"{variant}, **extrapolated**",
                f"{t1['trips']:,}",
                f"**{fmt_s(c['extrapolated_s'], 0)}** ({c['fit_per_trip_s'] * 1e3:.2f} ms/trip)",
                "",
                _mib(c["extrapolated_peak_rss_mib"]),
                _bytes(c["extrapolated_bytes_sent"]),
                "",
            ]
        )
    doc.table(
        [
            "variant",
            "trips",
            "critical path (s)",
            "MPyC (s)",
            "peak RSS per party (MiB)",
            "bytes sent per party",
            "= plaintext",
        ],
        "lrrrrrl",
        rows,
    )
    doc.image("table1", "Table 1")


def _scaling(doc: Doc, sc: list) -> None:
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
                _mib(p["peak_rss_max_mib"]),
                _bytes(p["bytes_sent_max"]),
                _yes(p["equals_plaintext"]),
            ]
            for p in sc
        ],
    )
    for key in ("scaling_inputs", "scaling_markets", "scaling_resources"):
        doc.image(key, key)


def _coordination(doc: Doc, co: dict) -> None:
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


def _local(doc: Doc, lo: dict) -> None:
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
                _bytes(p["parquet_bytes"]),
                fmt_s(p["read_s"]),
                fmt_s(p["arrow_1thread_s"]),
                fmt_s(p["arrow_threads_s"]),
                fmt_s(p["local_stage_s"], 1),
                fmt_s(marginal, 1),
                _ratio(p["local_stage_s"] / best),
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


def _verdict(value: float, limit: float, kind: str) -> str:
    if value <= limit if kind == "max" else value >= limit:
        return "met"
    if kind == "max":
        return f"**missed** by {value - limit:,.2f} ({(value / limit - 1) * 100:,.0f}% over)"
    return f"**missed** ({value:,.1f} < {limit:,})"


def _targets_section(doc: Doc, results: dict) -> None:
    doc.table(
        ["target", "measured", "verdict"],
        "lrl",
        [
            [name, "not measured", "–"] if value is None else [name, f"{value:,.2f}", _verdict(value, limit, kind)]
            for name, value, limit, kind in _targets(results)
        ],
    )


def _profiles(doc: Doc, results: dict) -> None:
    sc, prof = results.get("scaling"), results.get("profiles")
    if sc:
        doc.para(
            "Per target point, the timed run split up along its critical path: the slowest input party's "
            "share; the compute stages from their common start until the last compute party launched MPyC "
            "(the leader fixes the roster, the others poll for it, then each reads and decrypts its input "
            "shares); MPyC from launch until every party is connected (process start, imports, TLS "
            "handshakes: the launcher sees the worker's `connected` line); MPyC's own work after connecting; "
            "publishing the output shares; the reveal."
        )
        rows = []
        for name, (point, _) in mpc_targets().items():
            p = _point(sc, *point)
            if p is not None:
                rows.append(
                    [
                        name,
                        fmt_s(p["mpc_s"]),
                        fmt_s(p["share_max_s"], 3),
                        fmt_s(p.get("last_launch_s")),
                        fmt_s(_max(p.get("mpyc_connect_by_party_s", {}).values())),
                        fmt_s(p["mpyc_compute_s"]),
                        fmt_s(_max(p.get("after_mpyc_s", {}).values())),
                        fmt_s(p["reveal_s"], 3),
                    ]
                )
        doc.table(
            [
                "point",
                "MPC stages (s)",
                "share, max (s)",
                "until last MPyC launch (s)",
                "MPyC launch → connected, max (s)",
                "MPyC after connect, max (s)",
                "after MPyC, max (s)",
                "reveal (s)",
            ],
            "lrrrrrrr",
            rows,
        )
    if prof:
        doc.para(
            "cProfile of a separate (untimed, so slower) run of each target point: the MPyC worker of compute "
            "party 0 (`python -m cProfile -m mpc_federation.worker`), the leader's and a follower's compute "
            "stage (in-process), all input parties' share stages, and the reveal. Top functions by cumulative "
            "and by own time:"
        )
        for name, p in prof.items():
            doc.para(f"<details><summary>{name}</summary>")
            for part in ("worker", "compute_leader", "compute_follower", "share", "reveal"):
                doc.para(f"**{part}**")
                doc.para("```", _trim_profile(p[part]), "```")
            doc.para("</details>")


def _reproduce(doc: Doc, results: dict) -> None:
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


# (title, the results' key a section needs ("Not run." without it) or None, the renderer)
SECTIONS = [
    (SECTION_TITLES[0], None, _machine),
    (SECTION_TITLES[1], "table1", _table1),
    (SECTION_TITLES[2], "scaling", _scaling),
    (SECTION_TITLES[3], "coordination", _coordination),
    (SECTION_TITLES[4], "local", _local),
    (SECTION_TITLES[5], None, _targets_section),
    (SECTION_TITLES[6], None, _profiles),
    (SECTION_TITLES[7], None, _reproduce),
]


def write_report(results: dict, out_dir: Path) -> Path:
    """Write ``out_dir/report.md`` and its plots (``out_dir/plots/``); returns the report's path."""
    from report_plots import make_plots

    plots = out_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    doc = Doc(make_plots(results, plots))
    doc.para("# Benchmarks: mixed-mode MPC on this machine")
    doc.para(
        f"Scale **{results['scale']}** (`bench/run.py {results['command']}`), started {results['started']}, "
        f"{results.get('total_s', 0):,.0f} s in all. Local stage engine: **{results['engine']}**"
        f"{' (spark-submit, master `' + results['master'] + '`)' if results['engine'] == 'spark' else ''}."
    )
    for title, key, render in SECTIONS:
        doc.para(title)
        if key is None:
            render(doc, results)
        elif results.get(key):
            render(doc, results[key])
        else:
            doc.para("Not run.")
    path = out_dir / "report.md"
    path.write_text("\n".join(doc.lines) + "\n")
    return path


def _trim_profile(text: str, width: int = 150) -> str:
    keep = []
    for line in text.splitlines():
        if not line.strip() or line.strip().startswith(("Ordered by", "List reduced")) or line.endswith(".prof"):
            continue  # the header line is the date and the profile's path
        keep.append(line[:width])
    return "\n".join(keep)


def _point(sc, inputs, computes, markets):
    return next(
        (p for p in sc or [] if (p["inputs"], p["computes"], p["markets"]) == (inputs, computes, markets)), None
    )


def _targets(results: dict):
    """(name, measured value or None, limit, "max" or "min") of every target."""
    t1, sc = results.get("table1"), results.get("scaling")
    out = [
        (
            "b/a (critical path over baseline), at most",
            t1["ratios"]["b_over_a"] if t1 else None,
            RATIO_TARGETS["b_over_a"],
            "max",
        )
    ]
    if t1 and t1["c"]:
        variant = "secret-month" if "secret-month" in t1["c"] else next(iter(t1["c"]))
        out.append(
            (
                f"c/b (MPC only [{variant}], extrapolated, over b), at least",
                t1["ratios"][f"c_over_b[{variant}]"],
                RATIO_TARGETS["c_over_b"],
                "min",
            )
        )
    for (inputs, computes, markets), limit in mpc_targets().values():
        p = _point(sc, inputs, computes, markets)
        out.append(
            (
                f"MPC stages, {inputs} inputs, {computes} compute, {markets:,} markets, s, at most",
                p["mpc_s"] if p else None,
                limit,
                "max",
            )
        )
    return out


if __name__ == "__main__":  # re-render a report: python bench/report.py bench/results/<run>
    run_dir = Path(sys.argv[1])
    print(write_report(json.loads((run_dir / "results.json").read_text()), run_dir))
