"""Where every target of "Performance, round two" stands, from one sitting of ``bench/standing.sh``:
a markdown table (measured, target, measured ÷ target) and a plot of the ratios.

    .venv/bin/python bench/standing.py RESULTS_DIR OUT_DIR

RESULTS_DIR holds what ``standing.sh`` wrote: ``night_wait_{1,2}.json`` and ``night_sensors.json``
(bench/coordination.py), ``targets.json``, ``targets_1000.json`` and ``targets_wan.json``
(bench/targets.py), ``program_100k.json`` (bench/mpcprogram.py), ``sparkrows.json`` and
``table1/results.json`` (bench/run.py). A file that is missing leaves its rows out.

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

from round2_plots import _load, standing_plot


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


def rows(results: Path) -> list[Row]:
    out: list[Row] = []
    nights = [n for n in (_load(results / f"night_wait_{i}.json") for i in (1, 2)) if n]
    if nights:
        first = [n["all_mpyc_running_after_s"] for n in nights]
        second = [n["recipient"]["reveal_done_after_last_output_s"] for n in nights]
        nights_text = f"{len(nights)} nights of 6 Airflows, `wait_in_task`: "
        out.append(
            Row(
                "rendezvous: last input → every compute party in MPyC",
                max(first),
                1.0,
                "s",
                nights_text + ", ".join(f"{x:.2f}" for x in first),
            )
        )
        out.append(
            Row(
                "rendezvous: last output → result revealed",
                max(second),
                1.0,
                "s",
                nights_text + ", ".join(f"{x:.2f}" for x in second),
            )
        )
    sensors = _load(results / "night_sensors.json")
    if sensors:
        first, second = sensors["all_mpyc_running_after_s"], sensors["recipient"]["reveal_done_after_last_output_s"]
        out.append(
            Row(
                "rendezvous with the sensors (the default), the slower of the two",
                max(first, second),
                1.0,
                "s",
                f"one night: {first:.2f} to MPyC, {second:.2f} to revealed",
            )
        )
    targets = _load(results / "targets.json") or {}
    base = targets.get("5 inputs, 3 compute, 2 markets")
    if base:
        out.append(
            Row(
                "MPC stages, 5 input × 3 compute parties, 2 markets",
                base["mpc_s"],
                1.0,
                "s",
                "median of " + ", ".join(f"{x:.2f}" for x in base["mpc_runs_s"]),
            )
        )
    seven = targets.get("7 inputs, 7 compute (t = 3), 2 markets")
    if base and seven:
        out.append(
            Row(
                "7 compute parties (t = 3) ÷ 3 compute parties",
                seven["mpc_s"] / base["mpc_s"],
                2.0,
                "×",
                f"medians {seven['mpc_s']:.2f} s ÷ {base['mpc_s']:.2f} s",
            )
        )
    thousand = (_load(results / "targets_1000.json") or {}).get("1,000 inputs, 3 compute, 2 markets")
    if thousand:
        out.append(Row("MPC stages, 1,000 input parties", thousand["mpc_s"], 10.0, "s", "one run"))
    program = _load(results / "program_100k.json")
    if program:
        rss = max(program["peak_rss_mib"].values())
        out.append(
            Row(
                "MPC, 100,000 markets (checks and program in MPyC)",
                program["mpc_s"],
                30.0,
                "s",
                f"CPU per MPyC process {max(program['worker_cpu_s'].values()):.0f} s, peak RSS {rss:,.0f} MiB",
            )
        )
    wan = _load(results / "targets_wan.json") or {}
    for name, limit in (("5 inputs, 3 compute, 2 markets", 3.0), ("5 inputs, 3 compute, 3,000 markets", 10.0)):
        if name in wan:
            point = wan[name]
            out.append(
                Row(
                    f"MPC stages with 50 ms RTT, {name.split(', ', 2)[2]}",
                    point["mpc_s"],
                    limit,
                    "s",
                    "median of " + ", ".join(f"{x:.2f}" for x in point["mpc_runs_s"]),
                )
            )
    spark = _load(results / "sparkrows.json")
    if spark:
        out.append(
            Row(
                "Spark per row and core ÷ single-threaded pyarrow",
                spark["per_row_core_ratio"],
                3.0,
                "×",
                f"{spark['spark_per_row_core_ns']:.0f} ns ÷ {spark['arrow_per_row_ns']:.1f} ns per row, "
                f"{spark['sizes']['large']:,} trips; fixed start-up {spark['spark_fixed_s']:.1f} s",
            )
        )
    table1 = (_load(results / "table1" / "results.json") or {}).get("table1")
    if table1 and nights:
        b = table1["b"]
        own = max(table1["local_s"][c] + b["share_s"][c] for c in table1["local_s"])
        first = max(n["all_mpyc_running_after_s"] for n in nights)
        second = max(n["recipient"]["reveal_done_after_last_output_s"] for n in nights)
        critical = own + first + b["compute_wall_s"] + second
        out.append(
            Row(
                "Table 1 through Airflow, b ÷ a (10 M trips)",
                critical / table1["a_s"],
                1.05,
                "×",
                f"b = {own:.1f} + {first:.2f} + {b['compute_wall_s']:.2f} + {second:.2f} = {critical:.1f} s, "
                f"a = {table1['a_s']:.1f} s; without Airflow's rendezvous "
                f"{table1['ratios']['b_over_a']:.2f}",
            )
        )
    return out


def table(found: list[Row]) -> str:
    lines = ["| target | measured | target | ÷ target | from |", "|---|---:|---:|---:|---|"]
    for r in found:
        mark = "**met**" if r.ratio <= 1 else "not met"
        value = f"{r.measured:.2f} {r.unit}" if r.unit == "×" else f"{r.measured:.2f} s"
        lines.append(f"| {r.target} | {value} | {r.limit:g} {r.unit} | {r.ratio:.2f} ({mark}) | {r.how} |")
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
