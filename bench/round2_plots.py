"""Plots of the round-two measurements (docs/benchmarks.md, "Performance, round two"): the two
rendezvous before and after adaptive polling, the secure program's time, CPU and peak RSS per
MPyC process against the number of markets, and where every target stands (``standing_plot``,
drawn by bench/standing.py).

    .venv/bin/python bench/round2_plots.py RESULTS_DIR OUT_DIR

RESULTS_DIR holds the JSON files of bench/rendezvous.py (rendezvous.json), bench/coordination.py
(coordination.json) and bench/mpcprogram.py (prog-m<markets>.json).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def load_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def rendezvous_plot(results: Path, out: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trig, night = load_json(results / "rendezvous.json"), load_json(results / "coordination.json")
    if trig is None:
        return None
    labels = ["last input → all compute\nparties go (trigger)", "last output → recipient\ngoes (trigger)"]
    # Before: the default-scale run of 2026-11-21 (sensors polling every 5 s): the last compute party's
    # sensor done, the recipient's sensor done; then MPyC launched everywhere, and revealed.
    before = [5.65, 4.78]
    after = [max(trig["input_latency_s"].values()), trig["result_latency_s"]]
    if night:
        labels += ["last input → all MPyC\nlaunched (Airflow)", "last output → revealed\n(Airflow)"]
        before += [5.87, 5.49]
        after += [night["all_mpyc_running_after_s"], night["recipient"]["reveal_done_after_last_output_s"]]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    xs = range(len(labels))
    ax.bar([x - 0.2 for x in xs], before, 0.4, label="before (5 s poll)", color="#bbbbbb")
    ax.bar([x + 0.2 for x in xs], after, 0.4, label="now (0.5 s when near, 5 s otherwise)", color="#3b75af")
    ax.axhline(1.0, color="grey", ls="--", lw=1)
    ax.text(len(labels) - 0.5, 1.02, "target 1 s", ha="right", va="bottom", fontsize=8, color="grey")
    ax.set_xticks(list(xs), labels, fontsize=8)
    ax.set_ylabel("seconds")
    ax.legend(fontsize=8)
    return _save(fig, out / "round2_rendezvous.png")


def markets_plot(results: Path, out: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = sorted(
        (p for p in map(load_json, results.glob("prog-m*.json")) if p and not p["rtt_ms"] and p["computes"] == 3),
        key=lambda p: p["markets"],
    )
    if not points:
        return None
    m = [p["markets"] for p in points]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    a1.plot(m, [p["program_s"] for p in points], "o-", label="program in MPyC (wall)")
    a1.plot(m, [max(p["worker_cpu_s"].values()) for p in points], "s--", label="CPU per MPyC process")
    a1.set_xscale("log")
    a1.set_yscale("log")
    a1.set_xlabel("markets")
    a1.set_ylabel("seconds")
    a1.legend(fontsize=8)
    a2.plot(m, [max(p["peak_rss_mib"].values()) for p in points], "o-", color="#b35a2a")
    a2.set_xscale("log")
    a2.set_xlabel("markets")
    a2.set_ylabel("peak RSS per MPyC process, MiB")
    return _save(fig, out / "round2_markets.png")


def standing_plot(rows: list, out: Path) -> Path:
    """Measured ÷ target of each row of bench/standing.py (``target``, ``ratio``), on a log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(9, 0.42 * len(rows) + 1.2))
    ys = range(len(rows))[::-1]
    ax.barh(list(ys), [r.ratio for r in rows], color=["#3b75af" if r.ratio <= 1 else "#c0504d" for r in rows])
    ax.axvline(1.0, color="grey", ls="--", lw=1)
    ax.set_yticks(list(ys), [r.target for r in rows], fontsize=8)
    ax.set_xscale("log")
    # Plain labels at a few round ratios (the log axis' own minor labels run into each other).
    ticks = [
        x
        for x in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20)
        if min(r.ratio for r in rows) / 2 <= x <= max(r.ratio for r in rows) * 2
    ]
    ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:g}"))
    ax.set_xlim(right=max(r.ratio for r in rows) * 1.6)  # room for the last bar's label
    for y, r in zip(ys, rows):
        ax.text(r.ratio, y, f" {r.ratio:.2f}", va="center", fontsize=7)
    ax.set_xlabel("measured ÷ target (left of 1: met)")
    return _save(fig, out / "round2_standing.png")


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    argv = argv if argv is not None else sys.argv[1:]
    results, out = Path(argv[0]), Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for made in (rendezvous_plot(results, out), markets_plot(results, out)):
        print(made)
    return 0


if __name__ == "__main__":
    sys.exit(main())
