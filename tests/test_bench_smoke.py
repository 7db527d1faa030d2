"""Smoke run of the benchmarks (bench/run.py --scale tiny): the harness, the MPC stages against the
real S3 server with real MPyC processes, the bench-only MPC-only program, the report and the plots.
Timings are not checked (benchmarks stay out of pass/fail); the secure HHI must equal the plaintext HHI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from report import SECTION_TITLES  # noqa: E402


def test_bench_smoke_tiny(tmp_path):
    out = tmp_path / "results"
    t0 = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "run.py"),
            "--scale",
            "tiny",
            "--out",
            str(out),
            "--data-cache",
            str(tmp_path / "data"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    seconds = time.monotonic() - t0
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    report = (out / "report.md").read_text()
    for title in SECTION_TITLES:
        assert title in report, title
    results = json.loads((out / "results.json").read_text())
    t1 = results["table1"]
    assert t1["secure_equals_plaintext"] is True
    assert t1["secure_hhi"] == t1["plaintext_hhi"] and t1["a_equals_plaintext"] is True
    assert "Secure HHI **equals** the plaintext HHI" in report
    assert all(c["all_equal_plaintext"] for c in t1["c"].values())  # MPC only agrees on its trips too
    assert results["scaling"] and all(p["equals_plaintext"] for p in results["scaling"])
    assert all(p["bytes_sent_max"] > 0 and p["peak_rss_max_mib"] > 0 for p in results["scaling"])
    for png in ("table1.png", "scaling_inputs.png", "scaling_markets.png", "local_stage.png"):
        assert (out / "plots" / png).stat().st_size > 1000, png
    print(f"bench smoke run: {seconds:.1f} s")
