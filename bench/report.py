"""The markdown report and the PNG plots of one benchmark run (from its results.json)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import fmt_s  # noqa: E402

PAPER = {"a": 970, "b": 1051, "c": "> 7,200 (not finished)", "data": "156 GB, 5 companies"}
TARGETS = {"b_over_a": 1.05, "c_over_b": 100, "mpc_5x3x1": 2.0, "mpc_100_inputs": 10.0, "mpc_3000_markets": 30.0}
SECTION_TITLES = ["## Machine and load", "## 1. Table 1", "## 2. MPC scaling", "## 3. Coordination latency",
                  "## 4. Local stage", "## Targets", "## Where the time goes", "## How to reproduce"]


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


def write_report(results: dict, out_dir: Path) -> Path:
    plots = out_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    images = make_plots(results, plots)
    lines: list[str] = []
    w = lines.append
    t1 = results.get("table1")
    w("# Benchmarks: mixed-mode MPC on this machine")
    w("")
    w(f"Scale **{results['scale']}** (`bench/run.py {results['command']}`), started {results['started']}, "
      f"{results.get('total_s', 0):,.0f} s in all. Local stage engine: **{results['engine']}**"
      f"{' (spark-submit, master `' + results['master'] + '`)' if results['engine'] == 'spark' else ''}.")
    w("")

    # -- machine -------------------------------------------------------------------------------
    m = results["machine"]
    w("## Machine and load")
    w("")
    w(f"{m['cpus']} cores, {m['memory_gib']} GiB, Python {m['python']}, {m['java']}; "
      + ", ".join(f"{k} {v}" for k, v in m["versions"].items()) + ".")
    w("The machine is shared with other developers' test runs: the 1-minute load average at the start and "
      "end of each section is below (a load above the core count means the figures are inflated).")
    w("")
    w("| section | load at start (1/5/15 min) | load at end | seconds |")
    w("|---|---|---|---|")
    for e in results.get("loads", []):
        w(f"| {e['section']} | {' / '.join(f'{x:.2f}' for x in e['load_start'])} | "
          f"{e['load_end'][0]:.2f} | {e['seconds']:,.0f} |")
    w("")

    # -- table 1 ----------------------------------------------------------------------------------
    w("## 1. Table 1")
    w("")
    if not t1:
        w("Not run.")
    else:
        n = len(t1["companies"])
        w(f"{n} companies, {t1['trips']:,} trips in all (the paper's 50/20/10/10/10 split for five), "
          f"{t1['computes']} of them compute parties, threshold t = {(t1['computes'] - 1) // 2}; the HHI of the whole "
          f"period and of each of {len(t1['months'])} months ({len(t1['months']) + 1} markets).")
        w("")
        b = t1["b"]
        if t1["repeat"] > 1:
            w(f"Every Spark job ran {t1['repeat']} times, interleaved (a, then each party, per round); the fastest "
              f"run of each is used (on a shared machine, noise only adds time). All runs are in results.json.")
            w("")
        tls = [c.get("tls") for c in t1["b"]["compute"].values()]
        w(f"MPyC channels between the compute parties: {'mutual TLS' if all(tls) else 'plain TCP' if not any(tls) else 'mixed'}.")
        w("")
        w("| | what runs | seconds | ratio | paper (s) |")
        w("|---|---|---:|---:|---:|")
        w(f"| (a) insecure baseline | one {'Spark job (spark-submit)' if t1['engine'] == 'spark' else 'pyarrow scan'} "
          f"over the pooled data, plaintext HHI | {fmt_s(t1['a_s'], 1)} | 1.00 | {PAPER['a']:,} |")
        w(f"| (b) mixed mode, critical path | largest party's local stage ({fmt_s(b['largest_local_s'], 1)} s) "
          f"+ share, rendezvous, compute, reveal | {fmt_s(b['critical_s'], 1)} | "
          f"b/a = {_ratio(t1['ratios']['b_over_a'])} | {PAPER['b']:,} |")
        w(f"| (b) mixed mode, machine time | every party's local stage + every party's MPC-stage work | "
          f"{fmt_s(b['machine_s'], 1)} | {_ratio(t1['ratios']['b_machine_over_a'])} of a | |")
        for variant, c in t1["c"].items():
            what = ("every trip's fare and month secret-shared; one-hot of the month, sums and HHI in MPC"
                    if variant == "secret-month" else
                    "every trip's fare and one-hot month bits secret-shared; only sums and HHI in MPC (a floor)")
            w(f"| (c) MPC only [{variant}], **extrapolated** | {what} | {fmt_s(c['extrapolated_s'], 0)} | "
              f"c/b = {_ratio(t1['ratios'][f'c_over_b[{variant}]'])} | "
              f"{PAPER['c'] if variant == 'secret-month' else ''} |")
        w("")
        ok = t1["secure_equals_plaintext"]
        w(f"Secure HHI {'**equals**' if ok else '**DIFFERS FROM**'} the plaintext HHI over the pooled data "
          f"(rounded to hundredths inside the MPC; the baseline job {'agrees' if t1['a_equals_plaintext'] else 'DISAGREES'}, every "
          f"party's aggregate {'equals' if t1['aggregates_equal_reference'] else 'DIFFERS FROM'} the pyarrow "
          f"reference):")
        w("")
        w("| market | secure (MPC) | plaintext |")
        w("|---|---:|---:|")
        for label, s, p in zip(["all", *t1["months"]], t1["secure_hhi"], t1["plaintext_hhi"]):
            w(f"| {label} | {s} | {p} |")
        w("")
        w("**(b) in detail.** Local stage per party (each measured alone, as if on its own machine; "
          "the MPC stages run all parties on this one machine):")
        w("")
        w("| party | local stage (s) | share (s) | compute stage (s) | MPyC process (s) | peak RSS (MiB) | bytes sent |")
        w("|---|---:|---:|---:|---:|---:|---:|")
        for c in t1["companies"]:
            comp = b["compute"].get(c, {})
            w(f"| {c} | {fmt_s(t1['local_s'][c], 1)} | {fmt_s(b['share_s'][c], 3)} | {fmt_s(comp.get('stage_s'))} | "
              f"{fmt_s(comp.get('launcher_total_s'))} | {_mib(comp.get('peak_rss_mib'))} | "
              f"{_bytes(comp.get('bytes_sent')) if comp else '–'} |")
        w("")
        w(f"MPC stages alone (share → reveal): critical path {fmt_s(b['mpc_critical_s'])} s, machine time "
          f"{fmt_s(b['mpc_machine_s'])} s; reveal {fmt_s(b['reveal_s'], 3)} s.")
        w("")
        w("**(c) in detail.** The bench-only program `bench/programs/hhi_mpc_only.py`: each company "
          "Shamir-shares every trip (fare in cents, and the month as a secret index 0..M-1 [secret-month] or as "
          "M secret bits [onehot]); the three compute parties' real MPyC workers compute, for "
          "[secret-month], each trip's one-hot month vector with `mpc.unit_vector` (a secure bit decomposition), "
          "then per company and month the inner product of fares and month indicators, the whole period as "
          "the sum of fares, and the HHI exactly as the HHI program does. The workers talk plain TCP (the "
          "pipeline's MPC stages use mutual TLS), and the shares reach them "
          "through their job files, not the bucket, so neither TLS nor the transport of per-trip shares is "
          "counted: the figures are lower bounds. The time per trip grows a little with the number of trips "
          "(memory), so a linear extrapolation is optimistic too. Measured at small sizes (every run's HHI equals the plaintext HHI of the "
          "same trips), fitted as `seconds = a + b·trips` and extrapolated to every trip:")
        w("")
        w("| variant | trips | critical path (s) | MPyC (s) | peak RSS per party (MiB) | bytes sent per party | = plaintext |")
        w("|---|---:|---:|---:|---:|---:|---|")
        for variant, c in t1["c"].items():
            for p in c["points"]:
                w(f"| {variant} | {p['trips']:,} | {fmt_s(p['critical_s'])} | {fmt_s(p['mpc_wall_s'])} | "
                  f"{_mib(max(p['peak_rss_mib'].values()))} | {_bytes(max(v or 0 for v in p['bytes_sent'].values()))} | "
                  f"{'yes' if p['equals_plaintext'] else 'NO'} |")
            w(f"| {variant}, **extrapolated** | {t1['trips']:,} | **{fmt_s(c['extrapolated_s'], 0)}** "
              f"({c['fit_per_trip_s'] * 1e3:.2f} ms/trip) | | {_mib(c['extrapolated_peak_rss_mib'])} | "
              f"{_bytes(c['extrapolated_bytes_sent'])} | |")
        w("")
        if "table1" in images:
            w(f"![Table 1](plots/{images['table1']})")
            w("")

    # -- scaling ------------------------------------------------------------------------------------
    w("## 2. MPC scaling")
    w("")
    sc = results.get("scaling")
    if not sc:
        w("Not run.")
    else:
        w("The MPC stages alone (share → reveal, no Spark) with random aggregates: every input party shares "
          "(one after the other; the critical path counts the slowest one, as each party runs on its own "
          "machine), every compute party's stage runs as a thread launching its real MPyC process, then the "
          "recipient reveals. Markets = months of the period + 1 ('all'); the smallest possible is 2 (one month "
          "and 'all'), which stands in for the targets' '1 market' (it does strictly more work). "
          "\"MPyC\" is the worker's own time after connecting; peak RSS is the kernel's high-water mark "
          "(VmHWM) of the MPyC process; bytes sent is MPyC's own count per compute party.")
        w("")
        w("| input parties | compute parties | markets | MPC stages (s) | share (s, max) | compute stage (s, max) "
          "| MPyC process (s) | MPyC after connect (s) | reveal (s) | peak RSS (MiB, max) | bytes sent (max) | = plaintext |")
        w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for p in sc:
            w(f"| {p['inputs']} | {p['computes']} | {p['markets']:,} | **{fmt_s(p['mpc_s'])}** | "
              f"{fmt_s(p['share_max_s'], 3)} | {fmt_s(max(p['compute_stage_s'].values()))} | "
              f"{fmt_s(p['mpyc_process_s'])} | {fmt_s(p['mpyc_compute_s'])} | {fmt_s(p['reveal_s'], 3)} | "
              f"{_mib(p['peak_rss_max_mib'])} | {_bytes(p['bytes_sent_max'])} | "
              f"{'yes' if p['equals_plaintext'] else 'NO'} |")
        w("")
        for key in ("scaling_inputs", "scaling_markets", "scaling_resources"):
            if key in images:
                w(f"![{key}](plots/{images[key]})")
                w("")

    # -- coordination ---------------------------------------------------------------------------------
    w("## 3. Coordination latency")
    w("")
    co = results.get("coordination")
    if not co:
        w("Not run.")
    elif "skipped" in co:
        w(f"Skipped: {co['skipped']}.")
        w("")
    else:
        w(f"{co['parties']} parties ({co['companies']} companies, {co['computes']} computing, one regulator), "
          f"each in its own Airflow, ran one night at once with `airflow dags test` ({co['trips']:,} trips; "
          f"real Spark, S3 server and MPyC; all on this one machine, {fmt_s(co['wall_s'], 0)} s in all). Times "
          f"are from each party's `airflow.db` (task instances) and the signed records in the bucket; the "
          f"sensors poll the bucket every {co['poll_interval_s']} s (deferred, in the triggerer).")
        w("")
        w(f"The last input party ({co['last_input_party']}) published its shares "
          f"{fmt_s(co['inputs_done_spread_s'], 1)} s after the first. From that last publication:")
        w("")
        w("| compute party | its sensor done (s) | compute task started (s) | MPyC launched (s) | all MPyC connected (s) "
          "| gap sensor → compute task (s) |")
        w("|---|---:|---:|---:|---:|---:|")
        for pid, c in co["compute"].items():
            w(f"| {pid} | {fmt_s(c['sensor_done_after_s'])} | {fmt_s(c['compute_task_start_after_s'])} | "
              f"{fmt_s(c['mpyc_launch_after_s'])} | {fmt_s(c['mpyc_connected_after_s'])} | "
              f"{fmt_s(c['gap_sensor_to_compute_s'])} |")
        w("")
        r = co["recipient"]
        w(f"Every compute party ran MPyC **{fmt_s(co['all_mpyc_running_after_s'])} s** after the last "
          f"publication (all connected after {fmt_s(co['all_connected_after_s'])} s). The recipient's sensor "
          f"saw the last output shares after {fmt_s(r['sensor_done_after_last_output_s'])} s and the result "
          f"was revealed {fmt_s(r['reveal_done_after_last_output_s'])} s after them.")
        w("")
        w(f"Between consecutive tasks of one party (end of one → start of the next, Airflow's own scheduling "
          f"in `dags test`): mean {fmt_s(co['task_gap_mean_s'])} s, max {fmt_s(co['task_gap_max_s'])} s.")
        w("")
        w("| party | " + " | ".join(["aggregate", "share", "wait_for_inputs", "compute", "wait_for_result",
                                       "reveal"]) + " | whole run (s) |")
        w("|---|" + "---:|" * 7)
        for pid, d in co["task_durations_s"].items():
            cells = [fmt_s(d.get(t)) if d.get(t) is not None else "" for t in
                     ["aggregate", "share", "wait_for_inputs", "compute", "wait_for_result", "reveal"]]
            w(f"| {pid} | " + " | ".join(cells) + f" | {fmt_s(co['run_s'][pid], 1)} |")
        w("")
        if "coordination" in images:
            w(f"![coordination](plots/{images['coordination']})")
            w("")

    # -- local stage ----------------------------------------------------------------------------------
    w("## 4. Local stage")
    w("")
    lo = results.get("local")
    if not lo:
        w("Not run.")
    else:
        fixed = lo.get("spark_fixed_s")
        w("The local stage (Table 1's measurement of each party) against single-process columnar scans of the "
          "same Parquet files computing the same sums (pyarrow decode + numpy; `1 thread` and `threads` = "
          "pyarrow's thread pool on every core; fastest of 3 after a warm-up). Every scan's sums "
          + ("equal" if all(p["same_result"] for p in lo["parties"].values()) else "**DIFFER FROM**")
          + " the local stage's. The files are in the page cache (read column)."
          + (f" Spark's fixed cost - the same job over 1,000 trips, fastest run - is **{fmt_s(fixed, 1)} s** (JVM, "
             f"session, planning); the marginal column subtracts it." if fixed else ""))
        w("")
        w("| party | rows | Parquet | read files (s) | pyarrow 1 thread (s) | pyarrow threads (s) | local stage (s) "
          "| local stage − fixed (s) | local stage ÷ best scan |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for pid, p in lo["parties"].items():
            best = min(p["arrow_1thread_s"], p["arrow_threads_s"])
            marginal = None if fixed is None else p["local_stage_s"] - fixed
            w(f"| {pid} | {p['rows']:,} | {_bytes(p['parquet_bytes'])} | {fmt_s(p['read_s'])} | "
              f"{fmt_s(p['arrow_1thread_s'])} | {fmt_s(p['arrow_threads_s'])} | {fmt_s(p['local_stage_s'], 1)} | "
              f"{fmt_s(marginal, 1)} | {_ratio(p['local_stage_s'] / best)} |")
        w("")
        if "local" in images:
            w(f"![local stage](plots/{images['local']})")
            w("")

    # -- targets ------------------------------------------------------------------------------------
    w("## Targets")
    w("")
    w("| target | measured | verdict |")
    w("|---|---:|---|")
    for name, value, limit, kind in _targets(results):
        if value is None:
            w(f"| {name} | not measured | – |")
            continue
        met = value <= limit if kind == "max" else value >= limit
        if met:
            verdict = "met"
        elif kind == "max":
            verdict = f"**missed** by {value - limit:,.2f} ({(value / limit - 1) * 100:,.0f}% over)"
        else:
            verdict = f"**missed** ({value:,.1f} < {limit:,})"
        w(f"| {name} | {value:,.2f} | {verdict} |")
    w("")

    # -- profiles -----------------------------------------------------------------------------------
    w("## Where the time goes")
    w("")
    prof = results.get("profiles")
    if sc:
        w("Per target point, the timed run split up along its critical path: the slowest input party's share; "
          "the compute stages from their common start until the last compute party launched MPyC (the leader "
          "fixes the roster, the others poll for it, then each reads and decrypts its input shares); MPyC from "
          "launch until every party is connected (process start, imports, TLS handshakes: the launcher sees the "
          "worker's `connected` line); MPyC's own work after connecting; publishing the output shares; the reveal.")
        w("")
        w("| point | MPC stages (s) | share, max (s) | until last MPyC launch (s) | MPyC launch → connected, max (s) "
          "| MPyC after connect, max (s) | after MPyC, max (s) | reveal (s) |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|")
        from scaling import TARGETS as POINTS

        for name, ((i, c, months), _) in POINTS.items():
            p = next((x for x in sc if (x["inputs"], x["computes"], x["markets"]) == (i, c, months + 1)), None)
            if p is None:
                continue
            connect = max(v or 0 for v in p.get("mpyc_connect_by_party_s", {}).values()) if p.get(
                "mpyc_connect_by_party_s") else None
            after = max(v or 0 for v in p.get("after_mpyc_s", {}).values()) if p.get("after_mpyc_s") else None
            w(f"| {name} | {fmt_s(p['mpc_s'])} | {fmt_s(p['share_max_s'], 3)} | {fmt_s(p.get('last_launch_s'))} | "
              f"{fmt_s(connect)} | {fmt_s(p['mpyc_compute_s'])} | {fmt_s(after)} | {fmt_s(p['reveal_s'], 3)} |")
        w("")
    if prof:
        w("cProfile of a separate (untimed, so slower) run of each target point: the MPyC worker of compute "
          "party 0 (`python -m cProfile -m mpc_federation.worker`), the leader's and a follower's compute stage "
          "(in-process), all input parties' share stages, and the reveal. Top functions by cumulative and by "
          "own time:")
        w("")
        for name, p in prof.items():
            w(f"<details><summary>{name}</summary>")
            w("")
            for part in ("worker", "compute_leader", "compute_follower", "share", "reveal"):
                w(f"**{part}**")
                w("")
                w("```")
                w(_trim_profile(p[part]))
                w("```")
                w("")
            w("</details>")
            w("")

    # -- reproduce ----------------------------------------------------------------------------------
    w("## How to reproduce")
    w("")
    w("```bash")
    w("bash bench/run.sh --scale default --quiet-load 1.5 --publish   # this report; ~15 min on a quiet 2-core machine")
    w("bash bench/run.sh --scale small                                # a few minutes")
    w("bash bench/run.sh --scale tiny                                 # the smoke run (no Spark, no Airflow)")
    w("```")
    w("")
    w("Results go to `bench/results/<timestamp>/` (`report.md`, `results.json`, `plots/`, `work/` with logs and "
      "profiles); generated trips are kept in `bench/results/data/` between runs.")
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _trim_profile(text: str, width: int = 150) -> str:
    keep = []
    for line in text.splitlines():
        if not line.strip() or line.strip().startswith(("Ordered by", "List reduced")) or line.endswith(".prof"):
            continue  # the header line is the date and the profile's path
        keep.append(line[:width])
    return "\n".join(keep)


def _point(sc, inputs, computes, markets):
    return next((p for p in sc or [] if (p["inputs"], p["computes"], p["markets"]) == (inputs, computes, markets)),
                None)


def _targets(results: dict):
    t1, sc = results.get("table1"), results.get("scaling")
    out = [("b/a (critical path over baseline), at most", t1["ratios"]["b_over_a"] if t1 else None,
            TARGETS["b_over_a"], "max")]
    if t1 and t1["c"]:
        variant = "secret-month" if "secret-month" in t1["c"] else next(iter(t1["c"]))
        out.append((f"c/b (MPC only [{variant}], extrapolated, over b), at least",
                    t1["ratios"][f"c_over_b[{variant}]"], TARGETS["c_over_b"], "min"))
    for label, point, key in (("MPC stages, 5 inputs, 3 compute, 1 month (2 markets), s, at most", (5, 3, 2),
                               "mpc_5x3x1"),
                              ("MPC stages, 100 inputs, 3 compute, 2 markets, s, at most", (100, 3, 2),
                               "mpc_100_inputs"),
                              ("MPC stages, 5 inputs, 3 compute, 3,000 markets, s, at most", (5, 3, 3000),
                               "mpc_3000_markets")):
        p = _point(sc, *point)
        out.append((label, p["mpc_s"] if p else None, TARGETS[key], "max"))
    return out


# -- plots ------------------------------------------------------------------------------------------------
def make_plots(results: dict, folder: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = {}

    def save(fig, name):
        fig.tight_layout()
        fig.savefig(folder / name, dpi=110)
        plt.close(fig)
        return name

    t1 = results.get("table1")
    if t1:
        labels = ["(a) baseline", "(b) critical path", "(b) machine time"]
        values = [t1["a_s"], t1["b"]["critical_s"], t1["b"]["machine_s"]]
        colors = ["#888888", "#2b7bba", "#8fb9dc"]
        for variant, c in t1["c"].items():
            labels.append(f"(c) MPC only\n[{variant}]\nextrapolated")
            values.append(c["extrapolated_s"])
            colors.append("#d95f02" if variant == "secret-month" else "#fdb863")
        fig, ax = plt.subplots(figsize=(8, 4.2))
        bars = ax.bar(range(len(values)), values, color=colors)
        for bar, label in zip(bars[3:], labels[3:]):
            bar.set_hatch("//")
        ax.set_yscale("log")
        ax.set_xticks(range(len(values)), labels, fontsize=8)
        ax.set_ylabel("seconds (log scale)")
        ax.set_title(f"Table 1: HHI of {len(t1['companies'])} companies over {t1['trips']:,} trips")
        for i, v in enumerate(values):
            ax.text(i, v * 1.1, f"{v:,.0f} s" if v >= 10 else f"{v:.1f} s", ha="center", fontsize=8)
        made["table1"] = save(fig, "table1.png")

    sc = results.get("scaling")
    if sc:
        fig, ax = plt.subplots(figsize=(7, 4))
        for computes, marker in ((3, "o"), (5, "s")):
            pts = sorted((p["inputs"], p["mpc_s"]) for p in sc if p["computes"] == computes and p["markets"] == 2)
            if pts:
                ax.plot(*zip(*pts), marker=marker, label=f"{computes} compute parties")
        ax.axhline(TARGETS["mpc_5x3x1"], color="grey", ls=":", lw=1)
        ax.axhline(TARGETS["mpc_100_inputs"], color="grey", ls="--", lw=1)
        ax.text(3, TARGETS["mpc_100_inputs"], " target, 100 inputs", va="bottom", fontsize=8, color="grey")
        ax.text(3, TARGETS["mpc_5x3x1"], " target, 5 inputs", va="bottom", fontsize=8, color="grey")
        ax.set_xscale("log")
        ax.set_xlabel("input parties (log scale)")
        ax.set_ylabel("MPC stages, share → reveal (s)")
        ax.set_title("MPC stages against input parties (2 markets)")
        ax.legend()
        made["scaling_inputs"] = save(fig, "scaling_inputs.png")

        fig, ax = plt.subplots(figsize=(7, 4))
        series = sorted({(p["inputs"], p["computes"]) for p in sc})
        for inputs, computes in series:
            pts = sorted((p["markets"], p["mpc_s"]) for p in sc if (p["inputs"], p["computes"]) == (inputs, computes))
            if len(pts) >= 2:
                ax.plot(*zip(*pts), marker="o", label=f"{inputs} inputs, {computes} compute")
        ax.axhline(TARGETS["mpc_3000_markets"], color="grey", ls="--", lw=1)
        ax.text(2, TARGETS["mpc_3000_markets"], " target, 3,000 markets", va="bottom", fontsize=8, color="grey")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("markets (log scale)")
        ax.set_ylabel("MPC stages (s, log scale)")
        ax.set_title("MPC stages against markets")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        made["scaling_markets"] = save(fig, "scaling_markets.png")

        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        for (inputs, computes) in series:
            pts = sorted((p["markets"], p["peak_rss_max_mib"], p["bytes_sent_max"]) for p in sc
                         if (p["inputs"], p["computes"]) == (inputs, computes))
            if len(pts) >= 2:
                ax1.plot([x[0] for x in pts], [x[1] for x in pts], marker="o", label=f"{inputs} in, {computes} c")
                ax2.plot([x[0] for x in pts], [x[2] for x in pts], marker="o", label=f"{inputs} in, {computes} c")
        for computes, marker in ((3, "^"), (5, "v")):
            pts = sorted((p["inputs"], p["peak_rss_max_mib"], p["bytes_sent_max"]) for p in sc
                         if p["computes"] == computes and p["markets"] == 2)
            if len(pts) >= 2:
                ax1.plot([x[0] for x in pts], [x[1] for x in pts], marker=marker, ls="--",
                         label=f"x = input parties, {computes} c, 2 markets")
                ax2.plot([x[0] for x in pts], [x[2] for x in pts], marker=marker, ls="--",
                         label=f"x = input parties, {computes} c, 2 markets")
        for ax, title, unit in ((ax1, "peak RSS per MPyC process", "MiB"), (ax2, "bytes sent per compute party",
                                                                              "bytes")):
            ax.set_xscale("log")
            ax.set_xlabel("markets (solid) or input parties (dashed), log scale")
            ax.set_ylabel(unit)
            ax.set_title(title)
        ax2.set_yscale("log")
        if ax1.get_legend_handles_labels()[0]:
            ax1.legend(fontsize=7)
        made["scaling_resources"] = save(fig, "scaling_resources.png")

    co = results.get("coordination")
    if co and "task_gaps_s" in co:
        made.update(_coordination_plot(co, folder, plt, save))

    lo = results.get("local")
    if lo:
        fig, ax = plt.subplots(figsize=(8, 4))
        parties = list(lo["parties"])
        width = 0.2
        for k, (key, label) in enumerate((("local_stage_s", "local stage (Table 1)"),
                                          ("arrow_1thread_s", "pyarrow, 1 thread"),
                                          ("arrow_threads_s", "pyarrow, threads"),
                                          ("read_s", "read the files"))):
            ax.bar([i + (k - 1.5) * width for i in range(len(parties))], [lo["parties"][p][key] for p in parties],
                   width, label=label)
        if lo.get("spark_fixed_s"):
            ax.axhline(lo["spark_fixed_s"], color="grey", ls=":", lw=1)
            ax.text(-0.4, lo["spark_fixed_s"], " Spark on 1,000 trips", va="bottom", fontsize=8, color="grey")
        ax.set_xticks(range(len(parties)), [f"{p}\n{lo['parties'][p]['rows']:,} rows" for p in parties], fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("seconds (log scale)")
        ax.set_title("Local stage against a single-process columnar scan")
        ax.legend(fontsize=8)
        made["local"] = save(fig, "local_stage.png")
    return made


def _coordination_plot(co: dict, folder: Path, plt, save) -> dict:
    timeline = co.get("timeline")
    if not timeline:
        return {}
    fig, ax = plt.subplots(figsize=(10.5, 0.6 * len(timeline) + 1.6))
    colors = {"aggregate": "#1b9e77", "share": "#d95f02", "wait_for_inputs": "#cccccc", "compute": "#7570b3",
              "wait_for_result": "#e6e6e6", "reveal": "#e7298a"}
    t0 = min(v["start"] for tasks in timeline.values() for v in tasks.values() if v["start"])
    for row, (pid, tasks) in enumerate(timeline.items()):
        for task, v in tasks.items():
            if v["start"] and v["end"]:
                ax.barh(row, v["end"] - v["start"], left=v["start"] - t0, color=colors.get(task, "#999999"),
                        edgecolor="black", lw=0.3, label=task)
    if co.get("last_publication"):
        ax.axvline(co["last_publication"] - t0, color="black", ls="--", lw=1)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_yticks(range(len(timeline)), list(timeline))
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the first task started (dashed: last input party's publication)")
    ax.set_title("One night in Airflow (airflow dags test), every party")
    return {"coordination": save(fig, "coordination.png")}


if __name__ == "__main__":  # re-render a report: python bench/report.py bench/results/<run>
    run_dir = Path(sys.argv[1])
    print(write_report(json.loads((run_dir / "results.json").read_text()), run_dir))
