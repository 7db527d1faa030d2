"""The markdown report of one benchmark run (from its results.json); the sections are rendered by
report_table1.py, report_sections.py and report_targets.py (numbers and markdown: report_format.py),
the plots by report_plots.py.

.venv/bin/python bench/report.py bench/results/<run>     # re-render a run's report
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report_sections as sections  # noqa: E402
import report_table1  # noqa: E402
import report_targets  # noqa: E402
from report_format import Doc  # noqa: E402

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

# (title, the results' key a section needs ("Not run." without it) or None, the renderer)
SECTIONS = [
    (SECTION_TITLES[0], None, sections.machine),
    (SECTION_TITLES[1], "table1", report_table1.table1),
    (SECTION_TITLES[2], "scaling", sections.scaling),
    (SECTION_TITLES[3], "coordination", sections.coordination),
    (SECTION_TITLES[4], "local", sections.local),
    (SECTION_TITLES[5], None, report_targets.targets),
    (SECTION_TITLES[6], None, report_targets.profiles),
    (SECTION_TITLES[7], None, sections.reproduce),
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


if __name__ == "__main__":  # re-render a report: python bench/report.py bench/results/<run>
    run_dir = Path(sys.argv[1])
    print(write_report(json.loads((run_dir / "results.json").read_text()), run_dir))
