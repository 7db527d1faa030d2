"""Smoke run of the benchmarks (bench/run.py --scale tiny): the harness, the MPC stages against the
real S3 server with real MPyC processes, the bench-only MPC-only program, the report and the plots.
Timings are not checked (benchmarks stay out of pass/fail); the secure HHI must equal the plaintext HHI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

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


def test_standing_reads_a_sittings_results(tmp_path):
    """bench/standing.py over the files bench/standing.sh writes (only the keys it reads): each
    target's measured value and ratio, Table 1 composed from the same sitting, missing files left out."""
    import standing

    def write(name: str, data: dict) -> None:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))

    for i, (first, second) in enumerate([(0.5, 0.7), (0.6, 1.2)], start=1):
        write(
            f"night_near_{i}.json",
            {"all_mpyc_running_after_s": first, "recipient": {"reveal_done_after_last_output_s": second}},
        )
    point = {"mpc_s": 0.8, "mpc_runs_s": [0.7, 0.8, 0.9], "target_s": 1.0}
    seven = {**point, "mpc_s": 2.0, "target_s": None}  # no limit of its own: a ratio to the 3-party point
    write("targets.json", {"5 inputs, 3 compute, 2 markets": point, "7 inputs, 7 compute (t = 3), 2 markets": seven})
    b = {"share_s": {"a": 0.5, "b": 0.2}, "compute_wall_s": 1.0}
    write(
        "table1/results.json",
        {"table1": {"a_s": 20.0, "local_s": {"a": 14.0, "b": 14.5}, "b": b, "ratios": {"b_over_a": 0.8}}},
    )
    slow = {"all_mpyc_running_after_s": 1.5, "recipient": {"reveal_done_after_last_output_s": 9}}
    write("night_sensors_1.json", slow)
    rows = {r.target: r for r in standing.rows(tmp_path)}
    near = "rendezvous, `wait_in_task = near` (the default)"
    assert rows[f"{near}: last input → every compute party in MPyC"].measured == 0.6
    assert rows[f"{near}: last output → revealed"].ratio == 1.2
    assert rows["rendezvous, `wait_in_task = False` (the sensors): last output → revealed"].measured == 9
    assert rows["7 compute parties (t = 3) ÷ 3"].measured == 2.5
    assert rows["MPC stages, 5 inputs, 3 compute, 2 markets"].ratio == 0.8
    table1 = rows["Table 1 through Airflow, b ÷ a"]
    assert abs(table1.measured - (14.7 + 0.6 + 1.0 + 1.2) / 20.0) < 1e-9, table1  # the default's nights
    assert len(rows) == 7  # no night of tasks, 1,000 inputs, WAN, 100,000 markets or Spark files
    assert "| 1.20 (not met) |" in standing.table(list(rows.values()))
    assert (
        standing.main([str(tmp_path), str(tmp_path / "plots")]) == 0
        and (tmp_path / "plots" / "round2_standing.png").is_file()
    )


@pytest.mark.parametrize("inside", [True, False])
def test_standing_spark_row_is_measured_inside_the_job_where_it_can(tmp_path, inside):
    """The Spark row takes the per-row ratio from the job's own seconds when sparkrows.py measured
    them (its whole spark-submit's start-up varies as much as the per-row part), else the whole run's."""
    import standing

    spark = {
        "sizes": {"large": 50_000_000},
        "spark_fixed_s": 16.0,
        "spark_per_row_core_ns": 260.0,
        "arrow_per_row_ns": 20.0,
        "per_row_core_ratio": 13.0,
    }
    if inside:  # a newer sitting: the job's own seconds, and Spark's floor beside them
        spark.update(in_job_per_row_core_ns=160.0, in_job_per_row_core_ratio=8.0, scan_per_row_core_ratio=4.5)
        spark.update(arrow_in_spark_per_row_core_ratio=1.3)
    (tmp_path / "sparkrows.json").write_text(json.dumps(spark))
    (row,) = [r for r in standing.rows(tmp_path) if r.target.startswith("Spark")]
    assert row.measured == (8.0 if inside else 13.0)
    assert ("160 ns" in row.how and "inside the job" in row.how) == inside and "whole spark-submit 13.0×" in row.how
    assert ("the two columns alone 4.5×" in row.how) == inside
    assert ("pyarrow in Spark's tasks 1.3×" in row.how) == inside


def test_standing_spark_row_is_the_arrow_engine_where_measured(tmp_path):
    """With the job's arrow engine measured, the Spark row is its ratio, Spark SQL's beside it."""
    import standing

    spark = {
        "sizes": {"large": 50_000_000},
        "spark_fixed_s": 9.5,
        "spark_per_row_core_ns": 100.0,
        "arrow_per_row_ns": 12.5,
        "per_row_core_ratio": 8.0,
        "in_job_per_row_core_ns": 98.0,
        "in_job_per_row_core_ratio": 7.8,
        "scan_per_row_core_ratio": 4.6,
        "arrow_in_spark_per_row_core_ratio": 2.5,
        "engine_arrow_per_row_core_ns": 35.0,
        "engine_arrow_per_row_core_ratio": 2.8,
    }
    (tmp_path / "sparkrows.json").write_text(json.dumps(spark))
    (row,) = [r for r in standing.rows(tmp_path) if r.target.startswith("Spark")]
    assert row.measured == 2.8
    assert row.how.startswith("35 ns ÷ 12.5 ns per row inside the job with `engine: arrow`, 50,000,000 trips")
    assert "with Spark SQL (`engine: spark`) 7.8×; " in row.how and "whole spark-submit 8.0×" in row.how
    assert "the two columns alone 4.6×" in row.how and "pyarrow in Spark's tasks 2.5×" in row.how


def test_standing_100k_row_sets_the_cpu_per_market_against_what_the_target_allows(tmp_path):
    """With bench/fieldcosts.py's file in the sitting, the 100,000-market row says what a market costs,
    what 30 s allows, and what the products and resharing of its values cost alone."""
    import standing

    program = {"mpc_s": 130.0, "worker_cpu_s": {"0": 80.0, "1": 83.0}, "peak_rss_mib": {"0": 1000.0}}
    costs = {
        "markets": 3000,
        "cpu_per_market_us": 750.0,
        "budget_per_market_us": 200.0,
        "values_sent_per_market": 624.4,
        "floor_product_and_resharing_per_market_us": 329.0,
    }
    (tmp_path / "program_100k.json").write_text(json.dumps(program))
    (row,) = [r for r in standing.rows(tmp_path) if r.target.startswith("100,000")]
    assert row.measured == 130.0 and "allowed" not in row.how
    (tmp_path / "fieldcosts.json").write_text(json.dumps(costs))
    (row,) = [r for r in standing.rows(tmp_path) if r.target.startswith("100,000")]
    assert "CPU per MPyC process 83 s" in row.how
    assert "750 µs of CPU per market and process at 3,000 markets, 200 µs allowed" in row.how
    assert "the 624 values sent per market cost 329 µs in products and resharing alone" in row.how
    steps = {"comparison_bits": 89, "steps": {"normaliser": {"over_budget": 1.78}, "comparison": {"over_budget": 1.55}}}
    (tmp_path / "divisionsteps.json").write_text(json.dumps(steps))
    (row,) = [r for r in standing.rows(tmp_path) if r.target.startswith("100,000")]
    last = "; alone, the division's normaliser costs 1.78× and its final comparison on 89 bits 1.55× of that"
    assert row.how.endswith(last)


def test_divisionsteps_times_each_step_of_the_exact_division():
    """bench/divisionsteps.py on a few markets, three MPyC processes over TLS: the program's HHI,
    opened, equals the plaintext's; the comparison sends at least a value per random bit and more
    than its random bits alone; the normaliser more than its bit decomposition, itself at least a
    value per bit. Timings are reported, not checked."""
    import divisionsteps

    out = divisionsteps.run(40, seed=3)
    assert out["equals_plaintext"] and out["comparison_bits"] == 89
    assert out["field_bits"] > out["comparison_bits"] + 30  # room for the statistical mask (k = 30)
    steps = {name: step["values_per_market"] for name, step in out["steps"].items()}
    assert set(steps) == set(divisionsteps.STEPS)
    assert steps["comparison"] > steps["comparison_random_bits"] >= out["comparison_bits"] + 1
    assert steps["normaliser"] > steps["normaliser_bits"] >= 43
    assert steps["program"] > steps["normaliser"] and steps["program"] > steps["comparison"]


def test_fieldcosts_times_the_steps_of_values_that_recombine():
    """bench/fieldcosts.py's steps on a few thousand values of the HHI's field: the product's shares
    recombine to it (the function checks it), and each step takes some time."""
    import fieldcosts

    sys.path.insert(0, str(REPO / "plugins"))
    from mpc_federation.programs import load_program

    program = load_program(REPO / "include" / "programs" / "hhi.py").program.for_federation(None, fieldcosts.FIRMS)
    steps = fieldcosts.step_costs(program, 3000)
    assert set(steps) == {"product_and_reduction", "split_into_3_shares", "recombination_of_3_shares"}
    assert all(ns > 0 for ns in steps.values())
    conversions = fieldcosts.conversion_costs(program, 3000)  # checks the round trip too
    assert set(conversions) == {"integers_to_limbs", "limbs_to_integers", "limbs_to_bytes"}
    assert all(ns > 0 for ns in conversions.values())


def test_sparkrows_runs_the_job_and_both_references(tmp_path):
    """bench/sparkrows.py on small data: the taxi job with each engine (the arrow engine from the
    disk and from S3), Spark's two-column scan and pyarrow in Spark's tasks each run through
    spark-submit at both sizes, and each agrees with the pyarrow scan (the job's and the tasks'
    sums, the scan's row count; the arrow engine's whole output with the Spark engine's, and from S3
    with its own from the disk). Timings are not checked."""
    out = tmp_path / "sparkrows.json"
    args = ["--trips", "3000", "--repeat", "1", "--cache", str(tmp_path / "data"), "--json", str(out), "--s3"]
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "sparkrows.py"), *args], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    for size, rows in (("tiny", 1000), ("large", 3000)):
        point = result[size]
        assert point["rows_read"] == rows
        assert point["same_result"] and point["arrow_in_spark_same_result"] and point["scan_same_rows"], point
        assert point["engine_arrow_same_output"] and point["engine_arrow_s3_same_output"], point
        names = ("scan", "arrow_in_spark", "engine_arrow", "engine_arrow_s3")
        assert [len(point[f"{name}_runs_s"]) for name in names] == [1, 1, 1, 1]
    ratios = {"in_job", "scan", "arrow_in_spark", "engine_arrow", "engine_arrow_s3"}
    assert {f"{name}_per_row_core_ratio" for name in ratios} <= set(result)
