"""The MPC stages at the target points, with the precision work's cost split out: share to reveal
against the real S3 server with real MPyC over TLS, and inside MPyC the time of the input checks
(witnesses) and of the program (floors and the exact rounded division).

    .venv/bin/python bench/targets.py [--json FILE] [--repeat N]

Prints a markdown table; no timing is asserted anywhere. "MPC stages" is the critical path: the
slowest input party's share (the input parties share one after the other in this process; each
would run on its own machine, at the same time), then the compute parties' path from the last
input published to the result revealed (their sensors' last poke, compute, the recipient's
sensor, reveal), which is also shown apart, with the median input party's own share time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", help="JSON file for the results")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--only", action="append", help="run only the points whose name contains this")
    parser.add_argument("--rtt-ms", type=float, default=0.0, help="emulated WAN between the compute parties")
    parser.add_argument(
        "--wait-in-task", action="store_true", help="the compute and reveal tasks wait themselves ([mpc] wait_in_task)"
    )
    args = parser.parse_args(argv)
    sys.argv = sys.argv[:1]  # MPyC, imported below, parses the command line too
    from common import load_average, log  # puts plugins/ and scripts/ on the path
    from scaling import TARGETS, WAN_TARGETS, run_point

    # isort: split
    import localnet

    points = {"5 inputs, 3 compute, 4 markets (the nightly HHI)": ((5, 3, 3), None), **TARGETS}
    if args.only:
        points = {k: v for k, v in points.items() if any(o in k for o in args.only)}

    rows = {}
    with tempfile.TemporaryDirectory(prefix="mpc-targets-") as tmp:
        s3 = localnet.S3Server(Path(tmp) / "s3").start()
        try:
            for name, ((inputs, computes, months), target) in points.items():
                if args.rtt_ms:
                    target = WAN_TARGETS.get(name) if args.rtt_ms == 50 else None
                point = run_point(
                    Path(tmp),
                    s3,
                    inputs,
                    computes,
                    months,
                    repeat=args.repeat,
                    rtt_ms=args.rtt_ms,
                    wait_in_task=args.wait_in_task,
                )
                point.update(name=name, target_s=target, load=load_average()[0], wait_in_task=args.wait_in_task)
                rows[name] = point
                log(
                    f"{name} (RTT {args.rtt_ms:g} ms, {point['rounds'] or '-'} rounds): {point['mpc_s']:.2f} s "
                    f"(checks {point['mpyc_checks_s']:.2f} s, program "
                    f"{point['mpyc_program_s']:.2f} s), equals plaintext: {point['equals_plaintext']}"
                )
        finally:
            s3.stop()
    print(
        "| point | MPC stages, s | target, s | share, median input party, s | last input to revealed, s "
        "| input checks in MPyC, s | program in MPyC, s | peak RSS, MiB | equals plaintext |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, p in rows.items():
        print(
            f"| {name} | {p['mpc_s']:.2f} | {p['target_s'] or '-'} | {p['share_median_s']:.3f} | "
            f"{p['after_inputs_s']:.2f} | {p['mpyc_checks_s']:.2f} | {p['mpyc_program_s']:.2f} | "
            f"{p['peak_rss_max_mib']} | {p['equals_plaintext']} |"
        )
    print("\nS3 requests by stage (all parties):\n")
    for name, p in rows.items():
        stages = "; ".join(
            f"{stage}: {', '.join(f'{n} {kind}' for kind, n in counts.items()) or 'none'}"
            for stage, counts in p.get("requests", {}).items()
        )
        print(f"- {name}: {stages}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2, default=str))
    return 0 if all(p["equals_plaintext"] for p in rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
