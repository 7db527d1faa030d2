"""The secure program alone on real MPyC processes (no bucket): time, peak RSS and message rounds
per compute party for a number of markets and input parties; optionally with a delay proxy on
every MPyC link (an emulated WAN) and under cProfile.

    .venv/bin/python bench/mpcprogram.py --markets 3000 [--inputs 5] [--computes 3] [--rtt-ms 50]
        [--profile DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT / "scripts"), str(Path(__file__).resolve().parent)]

HHI = ROOT / "include" / "programs" / "hhi.py"


def run(
    markets: int, inputs: int, computes: int, *, rtt_ms: float = 0.0, profile: Path | None = None, seed: int = 1
) -> dict:
    """One run of the HHI program; returns timings, peak RSS and rounds per compute party."""
    import localnet
    import wanproxy
    from common import MPCRecorder, WorkerMonitor, hhi_reference

    from mpc_federation import launcher
    from mpc_federation.launcher import MPCJob
    from mpc_federation.programs import load_program
    from mpc_federation.sharing import decode, input_payloads, recombine

    rng = random.Random(seed)
    program = load_program(HHI).program.for_federation(None, inputs)  # the field such a federation computes in
    params = program.params(None)
    labels = [f"m{i}" for i in range(markets)]
    dims = {"market": labels}
    parties = {
        f"p{i}": {"revenue_cents": [rng.choice([0, rng.randint(1, 10**9)]) for _ in labels]} for i in range(inputs)
    }
    t = (computes - 1) // 2
    t_share = time.monotonic()
    shares: list[dict] = [{} for _ in range(computes)]
    for party, vectors in parties.items():
        rows = input_payloads(program, vectors, t, computes)
        for i in range(computes):
            shares[i][party] = rows[i]
    share_s = time.monotonic() - t_share
    ports = localnet.free_ports(computes)
    proxies = []
    # A delay proxy in front of every party (0 ms: plain forwarding, to count the rounds alone).
    endpoints, proxies = wanproxy.delayed_mesh(ports, rtt_ms / 2000)
    results, errors = {}, {}

    def compute_party(i: int) -> None:
        job = MPCJob.for_program(
            program,
            dims,
            program=str(HHI),
            party_index=i,
            endpoints=endpoints[i],
            threshold=t,
            roster=list(parties),
            shares=shares[i],
            params=params,
            names=[f"compute_{j}" for j in range(computes)],
        )
        try:
            results[i] = launcher.run_mpc(job, connect_timeout=120, run_timeout=1800)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors[i] = exc

    t0 = time.monotonic()
    try:
        with MPCRecorder(profile) as recorder, WorkerMonitor() as monitor:
            threads = [threading.Thread(target=compute_party, args=(i,)) for i in range(computes)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
    finally:
        for proxy in proxies:
            proxy.stop()
    wall = time.monotonic() - t0
    if errors:
        raise errors[min(errors)]
    values = recombine(program.modulus, {i: r.shares for i, r in results.items()}, t)
    outputs = decode(program, dims, values, params, [])
    expected = hhi_reference([list(c) for c in zip(*(p["revenue_cents"] for p in parties.values()))])
    recs = recorder.results
    return {
        "markets": markets,
        "inputs": inputs,
        "computes": computes,
        "threshold": t,
        "rtt_ms": rtt_ms,
        "share_s": round(share_s, 3),
        "mpyc_wall_s": round(wall, 3),
        "checks_s": max(r.get("worker_checks_s") or 0 for r in recs.values()),
        "program_s": max(r.get("worker_program_s") or 0 for r in recs.values()),
        "mpc_s": max(r.get("worker_mpc_s") or 0 for r in recs.values()),
        # Flights on the busiest link direction: the communication rounds, with a delay well above
        # the compute time per round (with none, bursts merge and this undercounts).
        "rounds": max(p.max_flights for p in proxies),
        "worker_cpu_s": {i: round(c, 2) for i, c in sorted(monitor.cpu_seconds.items())},
        "bytes_sent": {i: r.get("bytes_sent") for i, r in sorted(recs.items())},
        "peak_rss_mib": monitor.peak_mib(),
        "equals_plaintext": outputs["hhi"]["exact"] == expected,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--markets", type=int, default=2)
    parser.add_argument("--inputs", type=int, default=5)
    parser.add_argument("--computes", type=int, default=3)
    parser.add_argument("--rtt-ms", type=float, default=0.0)
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    sys.argv = sys.argv[:1]
    out = run(args.markets, args.inputs, args.computes, rtt_ms=args.rtt_ms, profile=args.profile)
    print(json.dumps(out, default=str))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))
    return 0 if out["equals_plaintext"] else 1


if __name__ == "__main__":
    sys.exit(main())
