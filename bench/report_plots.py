"""The PNG plots of one benchmark run's report (matplotlib, no display)."""

from __future__ import annotations

from pathlib import Path

from report_targets import mpc_targets

TASK_COLORS = {
    "aggregate": "#1b9e77",
    "share": "#d95f02",
    "wait_for_inputs": "#cccccc",
    "compute": "#7570b3",
    "wait_for_result": "#e6e6e6",
    "reveal": "#e7298a",
}


def make_plots(results: dict, folder: Path) -> dict[str, str]:
    """Every plot the results allow, written to ``folder``; returns {plot key: file name}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def save(fig, name: str) -> str:
        fig.tight_layout()
        fig.savefig(folder / name, dpi=110)
        plt.close(fig)
        return name

    made = {}
    if results.get("table1"):
        made["table1"] = save(_table1(plt, results["table1"]), "table1.png")
    sc = results.get("scaling")
    if sc:
        made["scaling_inputs"] = save(_scaling_inputs(plt, sc), "scaling_inputs.png")
        made["scaling_markets"] = save(_scaling_markets(plt, sc), "scaling_markets.png")
        made["scaling_resources"] = save(_scaling_resources(plt, sc), "scaling_resources.png")
    co = results.get("coordination")
    if co and "task_gaps_s" in co and co.get("timeline"):
        made["coordination"] = save(_coordination(plt, co), "coordination.png")
    if results.get("local"):
        made["local"] = save(_local(plt, results["local"]), "local_stage.png")
    return made


def _table1(plt, t1: dict):
    labels = ["(a) baseline", "(b) critical path", "(b) machine time"]
    values = [t1["a_s"], t1["b"]["critical_s"], t1["b"]["machine_s"]]
    colors = ["#888888", "#2b7bba", "#8fb9dc"]
    for variant, c in t1["c"].items():
        labels.append(f"(c) MPC only\n[{variant}]\nextrapolated")
        values.append(c["extrapolated_s"])
        colors.append("#d95f02" if variant == "secret-month" else "#fdb863")
    fig, ax = plt.subplots(figsize=(8, 4.2))
    bars = ax.bar(range(len(values)), values, color=colors)
    for bar in bars[3:]:
        bar.set_hatch("//")
    ax.set_yscale("log")
    ax.set_xticks(range(len(values)), labels, fontsize=8)
    ax.set_ylabel("seconds (log scale)")
    ax.set_title(f"Table 1: HHI of {len(t1['companies'])} companies over {t1['trips']:,} trips")
    for i, v in enumerate(values):
        ax.text(i, v * 1.1, f"{v:,.0f} s" if v >= 10 else f"{v:.1f} s", ha="center", fontsize=8)
    return fig


def _target_line(ax, x: float, seconds: float, text: str, style: str) -> None:
    ax.axhline(seconds, color="grey", ls=style, lw=1)
    ax.text(x, seconds, f" {text}", va="bottom", fontsize=8, color="grey")


def _series(sc: list) -> list[tuple[int, int]]:
    return sorted({(p["inputs"], p["computes"]) for p in sc})


def _scaling_inputs(plt, sc: list):
    fig, ax = plt.subplots(figsize=(7, 4))
    for computes, marker in ((3, "o"), (5, "s")):
        pts = sorted((p["inputs"], p["mpc_s"]) for p in sc if p["computes"] == computes and p["markets"] == 2)
        if pts:
            ax.plot(*zip(*pts), marker=marker, label=f"{computes} compute parties")
    for (inputs, _, markets), seconds in mpc_targets().values():
        if markets == 2:
            _target_line(ax, 3, seconds, f"target, {inputs} inputs", ":" if inputs < 100 else "--")
    ax.set_xscale("log")
    ax.set_xlabel("input parties (log scale)")
    ax.set_ylabel("MPC stages, share → reveal (s)")
    ax.set_title("MPC stages against input parties (2 markets)")
    ax.legend()
    return fig


def _scaling_markets(plt, sc: list):
    fig, ax = plt.subplots(figsize=(7, 4))
    for inputs, computes in _series(sc):
        pts = sorted((p["markets"], p["mpc_s"]) for p in sc if (p["inputs"], p["computes"]) == (inputs, computes))
        if len(pts) >= 2:
            ax.plot(*zip(*pts), marker="o", label=f"{inputs} inputs, {computes} compute")
    for (_, _, markets), seconds in mpc_targets().values():
        if markets > 2:
            _target_line(ax, 2, seconds, f"target, {markets:,} markets", "--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("markets (log scale)")
    ax.set_ylabel("MPC stages (s, log scale)")
    ax.set_title("MPC stages against markets")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return fig


def _scaling_resources(plt, sc: list):
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    keys = ("peak_rss_max_mib", "bytes_sent_max")  # one per axis

    def plot(rows, x: str, **style) -> None:
        pts = sorted((p[x], *(p[k] for k in keys)) for p in rows)
        if len(pts) >= 2:
            for i, ax in enumerate(axes):
                ax.plot([q[0] for q in pts], [q[i + 1] for q in pts], **style)

    for inputs, computes in _series(sc):
        plot(
            [p for p in sc if (p["inputs"], p["computes"]) == (inputs, computes)],
            "markets",
            marker="o",
            label=f"{inputs} in, {computes} c",
        )
    for computes, marker in ((3, "^"), (5, "v")):
        plot(
            [p for p in sc if p["computes"] == computes and p["markets"] == 2],
            "inputs",
            marker=marker,
            ls="--",
            label=f"x = input parties, {computes} c, 2 markets",
        )
    for ax, title, unit in zip(axes, ("peak RSS per MPyC process", "bytes sent per compute party"), ("MiB", "bytes")):
        ax.set_xscale("log")
        ax.set_xlabel("markets (solid) or input parties (dashed), log scale")
        ax.set_ylabel(unit)
        ax.set_title(title)
    axes[1].set_yscale("log")
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=7)
    return fig


def _coordination(plt, co: dict):
    timeline = co["timeline"]
    fig, ax = plt.subplots(figsize=(10.5, 0.6 * len(timeline) + 1.6))
    t0 = min(v["start"] for tasks in timeline.values() for v in tasks.values() if v["start"])
    for row, tasks in enumerate(timeline.values()):
        for task, v in tasks.items():
            if v["start"] and v["end"]:
                ax.barh(
                    row,
                    v["end"] - v["start"],
                    left=v["start"] - t0,
                    color=TASK_COLORS.get(task, "#999999"),
                    edgecolor="black",
                    lw=0.3,
                    label=task,
                )
    if co.get("last_publication"):
        ax.axvline(co["last_publication"] - t0, color="black", ls="--", lw=1)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_yticks(range(len(timeline)), list(timeline))
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the first task started (dashed: last input party's publication)")
    ax.set_title("One night in Airflow (airflow dags test), every party")
    return fig


def _local(plt, lo: dict):
    fig, ax = plt.subplots(figsize=(8, 4))
    parties = list(lo["parties"])
    width = 0.2
    for k, (key, label) in enumerate(
        (
            ("local_stage_s", "local stage (Table 1)"),
            ("arrow_1thread_s", "pyarrow, 1 thread"),
            ("arrow_threads_s", "pyarrow, threads"),
            ("read_s", "read the files"),
        )
    ):
        ax.bar(
            [i + (k - 1.5) * width for i in range(len(parties))],
            [lo["parties"][p][key] for p in parties],
            width,
            label=label,
        )
    if lo.get("spark_fixed_s"):
        _target_line(ax, -0.4, lo["spark_fixed_s"], "Spark on 1,000 trips", ":")
    ax.set_xticks(range(len(parties)), [f"{p}\n{lo['parties'][p]['rows']:,} rows" for p in parties], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("seconds (log scale)")
    ax.set_title("Local stage against a single-process columnar scan")
    ax.legend(fontsize=8)
    return fig
