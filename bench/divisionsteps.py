"""Where the HHI's CPU per market goes, step by step, against what "100,000 markets in 30 s" allows.

    .venv/bin/python bench/divisionsteps.py [--markets 3000] [--json FILE]

Three real MPyC processes (mutual TLS on loopback, the worker's own replacements of MPyC's
arithmetic, ``mpyc_compat.install_speedups``) take the same ``--markets`` markets of 5 firms as
secret inputs, then run, one after the other with a barrier between them:

- the **whole HHI program** (``include/programs/hhi.py``: sums, squares, the floor of k firms and
  the exact rounded division), its result opened and checked against the plaintext;
- alone, each step of the division that exact rounding needs (plugins/mpc_federation/arith.py):
  the **floor** (a comparison on 9 bits), the **normaliser** (the root's 43 bits and their leading
  one) and its **bit decomposition** alone, the **fraction cut** (6 bits), the **final comparison**
  (89 bits), and the **random bits** that comparison consumes, alone.

Each process records its own CPU time and bytes sent per step; the report gives, per step and per
market, the values a process sends to each peer (bytes ÷ 2 peers ÷ a share's width) and its CPU,
the busiest process's, beside the budget (bench/fieldcosts.py's: 30 s of this machine's cores
shared by the 3 processes, per market of 100,000), and the normaliser and the final comparison
together, against the budget and the program. Steps measured alone cost a little more than
inside the program, where the floor and the normaliser run side by side and share their rounds.
The input checks that run before the program (about a seventh of the MPC stages) are not included.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT / "scripts"), str(Path(__file__).resolve().parent)]

HHI = ROOT / "include" / "programs" / "hhi.py"
FIRMS, COMPUTES = 5, 3
STEPS = ("program", "floor", "normaliser", "normaliser_bits", "fraction_cut", "comparison", "comparison_random_bits")
NEEDED = ("normaliser", "comparison")  # the two steps of exact rounding that cost the most


def revenues(markets: int, seed: int):
    """The firms' revenue per market in cents, below 10**9; about a fifth of them 0 (no revenue there)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    values = rng.integers(1, 10**9, size=(FIRMS, markets)) * (rng.random((FIRMS, markets)) < 0.8)
    return [[int(v) for v in row] for row in values]


def equals_plaintext(rows: list[list[int]], opened: list[int]) -> bool:
    """The opened ``hhi`` output (hundredths, 0 where suppressed) against the program's plaintext."""
    from mpc_federation.programs import fixed, load_program

    loaded = load_program(HHI)
    params = loaded.program.params(None)
    reference = loaded.module.plaintext([{"revenue_cents": row} for row in rows], params)
    mine = [None if gone else fixed(q, params["decimals"]) for q, gone in zip(opened, reference["suppressed"])]
    return mine == reference["hhi"] and not any(q for q, gone in zip(opened, reference["suppressed"]) if gone)


async def _steps(mpc, rows: list[list[int]]) -> dict:
    """This process's CPU seconds and bytes sent per step, and the program's opened HHI."""
    import numpy as np

    from mpc_federation import arith
    from mpc_federation.programs import ProgramInputs, load_program

    loaded = load_program(HHI)
    program, hhi = loaded.program.for_federation(None, FIRMS), loaded.module
    params = program.params(None)
    secint = mpc.SecInt(program.bit_length, p=program.modulus)
    size = hhi.division(params["decimals"], FIRMS)
    h = (size.den_bits + 1) // 2  # the root's bits, as round_div normalises it
    markets = len(rows[0])
    await mpc.start()
    plain = np.array(rows, dtype=object)
    revenue = mpc.input(secint.array(plain), senders=0)  # (firms, markets), shared by party 0
    nonzero = mpc.input(secint.array(np.where(plain != 0, 1, 0).astype(object)), senders=0)
    inputs = ProgramInputs({"revenue_cents": revenue}, {"revenue_cents": nonzero}, FIRMS)
    total, firms = revenue.sum(axis=0), nonzero.sum(axis=0)
    square = total * total
    run = {
        "program": lambda: hhi.hhi(mpc, secint, inputs, params)["hhi"],
        "floor": lambda: arith.at_least(mpc, firms, params["k"], hhi.PARTY_BITS),
        "normaliser": lambda: arith._normaliser(mpc, total, h),
        "normaliser_bits": lambda: mpc.np_to_bits(total, h),
        "fraction_cut": lambda: mpc.np_to_bits(total, 6),
        "comparison": lambda: mpc.np_sgn(square - 2 ** (size.den_bits - 1), l=size.den_bits + 3, LT=True),
        "comparison_random_bits": lambda: mpc.np_random_bits(secint, (size.den_bits + 4) * markets),
    }

    def sent() -> int:
        return sum(peer.protocol.nbytes_sent for peer in mpc.parties if peer.pid != mpc.pid)

    out: dict = {"cpu_s": {}, "bytes": {}, "wall_s": {}}
    await mpc.gather(total, firms, square)
    results = {}
    for name in STEPS:
        await mpc.barrier(name)
        c0, b0, t0 = time.process_time(), sent(), time.perf_counter()
        results[name] = run[name]()
        await mpc.gather(results[name])
        out["cpu_s"][name] = time.process_time() - c0
        out["bytes"][name] = sent() - b0
        out["wall_s"][name] = time.perf_counter() - t0
    out["hhi"] = [int(v) for v in await mpc.output(results["program"])]
    out["field_bits"] = program.modulus.bit_length()
    out["den_bits"] = size.den_bits
    await mpc.shutdown()
    return out


def party_main(job_file: str) -> None:
    """One compute party's process (MPyC's options follow the job file on the command line)."""
    job = json.loads(Path(job_file).read_text())
    sys.argv = [sys.argv[0], *sys.argv[3:]]  # MPyC's options only
    from mpyc.runtime import mpc

    from mpc_federation import mpyc_compat

    mpyc_compat.install_speedups()
    out = mpc.run(_steps(mpc, job["rows"]))
    Path(job["out"]).write_text(json.dumps(out))


def run(markets: int, seed: int = 1) -> dict:
    """The steps on ``markets`` markets; every process's figures and the report's per-market ones."""
    import localnet
    from fieldcosts import budget_per_market_us

    from mpc_federation import limbs, tls

    rows = revenues(markets, seed)
    ports = localnet.free_ports(COMPUTES)
    keys = [tls.new_tls_key() for _ in range(COMPUTES)]
    certificates = [tls.certificate(key, i, f"compute_{i}") for i, key in enumerate(keys)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryDirectory(prefix="divisionsteps-") as tmp:
        procs = []
        for i in range(COMPUTES):
            folder = Path(tmp) / f"party-{i}"
            folder.mkdir()
            tls.write_mpyc_config(folder, i, keys[i], certificates)
            (folder / "job.json").write_text(json.dumps({"rows": rows, "out": str(folder / "out.json")}))
            peers = [f":{port}" if j == i else f"127.0.0.1:{port}" for j, port in enumerate(ports)]
            cmd = [sys.executable, __file__, "--party-job", str(folder / "job.json")]
            cmd += ["-M", str(COMPUTES), "-I", str(i), "--no-prss", "--ssl", "--no-log"]
            cmd += [arg for peer in peers for arg in ("-P", peer)]
            procs.append(subprocess.Popen(cmd, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        logs = [proc.communicate(timeout=3600)[0].decode(errors="replace") for proc in procs]
        for i, proc in enumerate(procs):
            if proc.returncode:
                raise RuntimeError(f"compute party {i} failed ({proc.returncode}):\n{logs[i][-3000:]}")
        parties = [json.loads((Path(tmp) / f"party-{i}" / "out.json").read_text()) for i in range(COMPUTES)]
    from mpc_federation.programs import load_program

    program = load_program(HHI).program.for_federation(None, FIRMS)
    width = 6 * limbs.limb_count(program.modulus)  # bytes of a share on the wire
    budget = budget_per_market_us()
    steps = {}
    for name in STEPS:
        values = max(p["bytes"][name] for p in parties) / markets / (COMPUTES - 1) / width
        cpu_us = max(p["cpu_s"][name] for p in parties) / markets * 1e6
        steps[name] = {
            "values_per_market": round(values, 1),
            "cpu_per_market_us": round(cpu_us, 1),
            "over_budget": round(cpu_us / budget, 2),
            "wall_s": round(max(p["wall_s"][name] for p in parties), 3),
        }
    needed = sum(steps[name]["cpu_per_market_us"] for name in NEEDED)
    exact_rounding = {
        "cpu_per_market_us": round(needed, 1),
        "over_budget": round(needed / budget, 2),
        "of_the_program": round(needed / steps["program"]["cpu_per_market_us"], 2),
    }
    return {
        "markets": markets,
        "firms": FIRMS,
        "computes": COMPUTES,
        "field_bits": parties[0]["field_bits"],
        "comparison_bits": parties[0]["den_bits"] + 3,
        "share_bytes": width,
        "budget_per_market_us": round(budget, 1),
        "steps": steps,
        "normaliser_and_comparison": exact_rounding,
        "equals_plaintext": all(equals_plaintext(rows, p["hhi"]) for p in parties),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--markets", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    out = run(args.markets, args.seed)
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0 if out["equals_plaintext"] else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["--party-job"]:
        party_main(sys.argv[2])
    else:
        sys.exit(main())
