"""Section 1 of the benchmark report: Table 1 ((a) baseline, (b) mixed mode, (c) MPC only) and its details."""

from __future__ import annotations

from common import fmt_s
from report_format import Doc, byte_size, largest, mib, ratio, yes

PAPER = {"a": 970, "b": 1051, "c": "> 7,200 (not finished)", "data": "156 GB, 5 companies"}


def table1(doc: Doc, t1: dict) -> None:
    """Section 1: the setup, Table 1 itself, the secure against the plaintext HHI, then (b) and (c) in detail."""
    _setup(doc, t1)
    _overview(doc, t1)
    _agreement(doc, t1)
    _b_detail(doc, t1)
    _c_detail(doc, t1)
    doc.image("table1", "Table 1")


def _setup(doc: Doc, t1: dict) -> None:
    """The parties, trips and markets; repetitions; the MPyC channels."""
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
    tls = [c.get("tls") for c in t1["b"]["compute"].values()]
    doc.para(
        f"MPyC channels between the compute parties: "
        f"{'mutual TLS' if all(tls) else 'plain TCP' if not any(tls) else 'mixed'}."
    )


def _overview(doc: Doc, t1: dict) -> None:
    """Table 1: (a), (b) and (c) with their ratios and the paper's figures."""
    b, ratios = t1["b"], t1["ratios"]
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
            f"b/a = {ratio(ratios['b_over_a'])}",
            f"{PAPER['b']:,}",
        ],
        [
            "(b) mixed mode, machine time",
            "every party's local stage + every party's MPC-stage work",
            fmt_s(b["machine_s"], 1),
            f"{ratio(ratios['b_machine_over_a'])} of a",
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
                f"c/b = {ratio(ratios[f'c_over_b[{variant}]'])}",
                PAPER["c"] if variant == "secret-month" else "",
            ]
        )
    doc.table(["", "what runs", "seconds", "ratio", "paper (s)"], "llrrr", rows)


def _agreement(doc: Doc, t1: dict) -> None:
    """Whether the secure HHI equals the plaintext HHI, market by market."""
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


def _b_detail(doc: Doc, t1: dict) -> None:
    """(b) per party: local stage, share, compute stage, MPyC, memory and bytes."""
    b = t1["b"]
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
                mib(comp.get("peak_rss_mib")),
                byte_size(comp.get("bytes_sent")) if comp else "–",
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


def _c_detail(doc: Doc, t1: dict) -> None:
    """(c) the MPC-only program at small sizes, fitted and extrapolated to every trip."""
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
                mib(max(p["peak_rss_mib"].values())),
                byte_size(largest(p["bytes_sent"].values())),
                yes(p["equals_plaintext"]),
            ]
            for p in c["points"]
        ]
        rows.append(
            [
                f"{variant}, **extrapolated**",
                f"{t1['trips']:,}",
                f"**{fmt_s(c['extrapolated_s'], 0)}** ({c['fit_per_trip_s'] * 1e3:.2f} ms/trip)",
                "",
                mib(c["extrapolated_peak_rss_mib"]),
                byte_size(c["extrapolated_bytes_sent"]),
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
