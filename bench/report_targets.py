"""The benchmark report's targets (measured against their limits) and where the time goes (the
target points' critical paths and profiles)."""

from __future__ import annotations

from common import fmt_s
from report_format import Doc, largest

# Ratio targets of Table 1; the MPC stages' targets are scaling.TARGETS (also the profiled points).
RATIO_TARGETS = {"b_over_a": 1.05, "c_over_b": 100}


def mpc_targets() -> dict[str, tuple[tuple[int, int, int], float]]:
    """{name: ((input parties, compute parties, markets), seconds at most)} of the MPC stages that
    have a limit in seconds (the 7-compute-party point is a ratio to the 3-party time)."""
    from scaling import TARGETS

    return {name: ((i, c, months + 1), limit) for name, ((i, c, months), limit) in TARGETS.items() if limit is not None}


def target_values(results: dict):
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
        p = scaling_point(sc, inputs, computes, markets)
        out.append(
            (
                f"MPC stages, {inputs} inputs, {computes} compute, {markets:,} markets, s, at most",
                p["mpc_s"] if p else None,
                limit,
                "max",
            )
        )
    return out


def scaling_point(sc, inputs, computes, markets):
    return next(
        (p for p in sc or [] if (p["inputs"], p["computes"], p["markets"]) == (inputs, computes, markets)), None
    )


def verdict(value: float, limit: float, kind: str) -> str:
    if value <= limit if kind == "max" else value >= limit:
        return "met"
    if kind == "max":
        return f"**missed** by {value - limit:,.2f} ({(value / limit - 1) * 100:,.0f}% over)"
    return f"**missed** ({value:,.1f} < {limit:,})"


def targets(doc: Doc, results: dict) -> None:
    doc.table(
        ["target", "measured", "verdict"],
        "lrl",
        [
            [name, "not measured", "–"] if value is None else [name, f"{value:,.2f}", verdict(value, limit, kind)]
            for name, value, limit, kind in target_values(results)
        ],
    )


def profiles(doc: Doc, results: dict) -> None:
    """Where the time goes: the target points' critical paths, then their cProfile listings."""
    sc, prof = results.get("scaling"), results.get("profiles")
    if sc:
        _critical_paths(doc, sc)
    if prof:
        _profile_listings(doc, prof)


def _critical_paths(doc: Doc, sc: list) -> None:
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
        p = scaling_point(sc, *point)
        if p is not None:
            rows.append(
                [
                    name,
                    fmt_s(p["mpc_s"]),
                    fmt_s(p["share_max_s"], 3),
                    fmt_s(p.get("last_launch_s")),
                    fmt_s(largest(p.get("mpyc_connect_by_party_s", {}).values())),
                    fmt_s(p["mpyc_compute_s"]),
                    fmt_s(largest(p.get("after_mpyc_s", {}).values())),
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


def _profile_listings(doc: Doc, prof: dict) -> None:
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
            doc.para("```", trim_profile(p[part]), "```")
        doc.para("</details>")


def trim_profile(text: str, width: int = 150) -> str:
    keep = []
    for line in text.splitlines():
        if not line.strip() or line.strip().startswith(("Ordered by", "List reduced")) or line.endswith(".prof"):
            continue  # the header line is the date and the profile's path
        keep.append(line[:width])
    return "\n".join(keep)
