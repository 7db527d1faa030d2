"""Where every target of "Performance, round two" stands, from one sitting of ``bench/standing.sh``:
a markdown table (measured, target, measured ÷ target) and a plot of the ratios.

    .venv/bin/python bench/standing.py RESULTS_DIR OUT_DIR

RESULTS_DIR holds what ``standing.sh`` wrote: ``night_near_*.json``, ``night_tasks_*.json`` and
``night_sensors_*.json`` (bench/coordination.py, one file per night), ``targets.json``,
``targets_1000.json`` and ``targets_wan.json`` (bench/targets.py), ``program_100k.json``
(bench/mpcprogram.py), ``sparkrows.json`` and ``table1/results.json`` (bench/run.py). A file
that is missing leaves its rows out.

Table 1 through Airflow is composed from the same sitting: the largest party's local stage and
share, the night's first rendezvous (last input published → every compute party in MPyC), the
compute stage of Table 1's own run, and the night's second rendezvous (last output shares → the
recipient's task done, the reveal included), over the pooled job (a). It is conservative: the
compute stage measured there starts its MPyC processes, which a task that waits itself started
during the first rendezvous.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from report_targets import RATIO_TARGETS
from round2_plots import load_json, standing_plot

# The issue's targets that no benchmark's JSON carries; the MPC stages' points carry theirs
# (``target_s``: bench/scaling.TARGETS, and WAN_TARGETS with 50 ms RTT), Table 1 its ratio's.
RENDEZVOUS_S = 1.0
SEVEN_OVER_THREE = 2.0
MARKETS_100K_S = 30.0
SPARK_PER_ROW_RATIO = 3.0
# The nights (bench/coordination.py) by their ``[mpc] wait_in_task``: file prefix and label, the
# default first, whose rendezvous compose Table 1 through Airflow.
NIGHTS = (
    ("night_near", "`wait_in_task = near` (the default)"),
    ("night_tasks", "`wait_in_task = True`"),
    ("night_sensors", "`wait_in_task = False` (the sensors)"),
)


@dataclass(frozen=True)
class Row:
    target: str
    measured: float
    limit: float
    unit: str  # "s" or "×"
    how: str  # the figures behind it

    @property
    def ratio(self) -> float:
        return self.measured / self.limit


def _runs(point: dict) -> str:
    return "median of " + ", ".join(f"{x:.2f}" for x in point["mpc_runs_s"])


def rows(results: Path) -> list[Row]:
    out: list[Row] = []
    default: tuple[list[float], list[float]] = ([], [])  # Table 1 through Airflow uses the default's rendezvous
    for prefix, label in NIGHTS:
        found = [n for n in map(load_json, sorted(results.glob(f"{prefix}_*.json"))) if n]
        first = [n["all_mpyc_running_after_s"] for n in found]
        second = [n["recipient"]["reveal_done_after_last_output_s"] for n in found]
        if prefix == NIGHTS[0][0]:
            default = (first, second)
        for name, values in (("last input → every compute party in MPyC", first), ("last output → revealed", second)):
            if values:
                how = f"{len(values)} night(s) of 6 Airflows: " + ", ".join(f"{x:.2f}" for x in values)
                out.append(Row(f"rendezvous, {label}: {name}", max(values), RENDEZVOUS_S, "s", how))
    for file, label in (("targets", ""), ("targets_1000", ""), ("targets_wan", " with 50 ms RTT")):
        for name, point in (load_json(results / f"{file}.json") or {}).items():
            if point.get("target_s"):
                out.append(Row(f"MPC stages{label}, {name}", point["mpc_s"], point["target_s"], "s", _runs(point)))
    points = load_json(results / "targets.json") or {}
    base, seven = points.get("5 inputs, 3 compute, 2 markets"), points.get("7 inputs, 7 compute (t = 3), 2 markets")
    if base and seven:
        how = f"medians {seven['mpc_s']:.2f} s ÷ {base['mpc_s']:.2f} s"
        out.append(Row("7 compute parties (t = 3) ÷ 3", seven["mpc_s"] / base["mpc_s"], SEVEN_OVER_THREE, "×", how))
    program = load_json(results / "program_100k.json")
    if program:
        how = (
            f"CPU per MPyC process {max(program['worker_cpu_s'].values()):.0f} s, "
            f"peak RSS {max(program['peak_rss_mib'].values()):,.0f} MiB"
        )
        costs = load_json(results / "fieldcosts.json")
        if costs:  # what the target allows per market, against what the resharing of each value costs alone
            how += (
                f"; {costs['cpu_per_market_us']:.0f} µs of CPU per market and process at {costs['markets']:,} markets, "
                f"{costs['budget_per_market_us']:.0f} µs allowed; the {costs['values_sent_per_market']:.0f} values "
                f"sent per market cost {costs['floor_product_and_resharing_per_market_us']:.0f} µs in products and "
                f"resharing alone"
            )
        steps = load_json(results / "divisionsteps.json")
        if steps:  # the two steps exact rounding needs, each against the whole budget
            s = steps["steps"]
            how += (
                f"; alone, the division's normaliser costs {s['normaliser']['over_budget']:.2f}× and its final "
                f"comparison on {steps['comparison_bits']} bits {s['comparison']['over_budget']:.2f}× of that"
            )
        out.append(Row("100,000 markets: checks and program in MPyC", program["mpc_s"], MARKETS_100K_S, "s", how))
    spark = load_json(results / "sparkrows.json")
    if spark:
        # Inside the job where measured: the whole spark-submit's start-up varies as much as the per-row part.
        inside = "in_job_per_row_core_ratio" in spark
        ns, ratio = (
            ("in_job_per_row_core_ns", "in_job_per_row_core_ratio")
            if inside
            else ("spark_per_row_core_ns", "per_row_core_ratio")
        )
        how = (
            f"{spark[ns]:.0f} ns ÷ {spark['arrow_per_row_ns']:.1f} ns per row"
            f"{' inside the job' if inside else ''}, {spark['sizes']['large']:,} trips; whole spark-submit "
            f"{spark['per_row_core_ratio']:.1f}×, fixed start-up {spark['spark_fixed_s']:.1f} s"
        )
        if "scan_per_row_core_ratio" in spark:  # Spark's floor: its own reading of the two columns
            how += f"; Spark reading the two columns alone {spark['scan_per_row_core_ratio']:.1f}×"
        if "arrow_in_spark_per_row_core_ratio" in spark:  # the same sums, each Spark task reading with pyarrow
            how += f"; pyarrow in Spark's tasks {spark['arrow_in_spark_per_row_core_ratio']:.1f}×"
        if "engine_arrow_per_row_core_ratio" in spark:  # the job itself with aggregation.engine: arrow
            how = (
                f"{spark['engine_arrow_per_row_core_ns']:.0f} ns ÷ {spark['arrow_per_row_ns']:.1f} ns per row inside "
                f"the job with `engine: arrow`, {spark['sizes']['large']:,} trips; with Spark SQL (`engine: spark`) "
                f"{spark[ratio]:.1f}×; {how.split('; ', 1)[1]}"
            )
            ratio = "engine_arrow_per_row_core_ratio"
        out.append(Row("Spark per row and core ÷ pyarrow", spark[ratio], SPARK_PER_ROW_RATIO, "×", how))
    table1 = (load_json(results / "table1" / "results.json") or {}).get("table1")
    first, second = default
    if table1 and first:
        b = table1["b"]
        own = max(table1["local_s"][c] + b["share_s"][c] for c in table1["local_s"])
        critical = own + max(first) + b["compute_wall_s"] + max(second)
        how = (
            f"b = {own:.1f} + {max(first):.2f} + {b['compute_wall_s']:.2f} + {max(second):.2f} = {critical:.1f} s, "
            f"a = {table1['a_s']:.1f} s; without Airflow's rendezvous {table1['ratios']['b_over_a']:.2f}"
        )
        out.append(Row("Table 1 through Airflow, b ÷ a", critical / table1["a_s"], RATIO_TARGETS["b_over_a"], "×", how))
    return out


def table(found: list[Row]) -> str:
    lines = ["| target | measured | limit | ÷ limit | from |", "|---|---:|---:|---:|---|"]
    for r in found:
        mark = "**met**" if r.ratio <= 1 else "not met"
        lines.append(
            f"| {r.target} | {r.measured:.2f} {r.unit} | {r.limit:g} {r.unit} | {r.ratio:.2f} ({mark}) | {r.how} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = argv if argv is not None else sys.argv[1:]
    results, out = Path(argv[0]), Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    found = rows(results)
    print(table(found))
    print(standing_plot(found, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
