"""The MPyC process of one compute party: ``python -m mpc_federation.worker --job FILE --out FILE``
plus MPyC's own options (-M, -I, -P, -T, --ssl). Started by the launcher, never by hand.

It wraps this party's input shares in secure integers, runs the program, masks ratio outputs
with fresh secret randomness, re-randomises every output sharing, and writes this party's
output shares. Nothing is opened inside the MPC: only recipients recombine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from mpc_federation.agreement import AgreementError
from mpc_federation.agreement import check as check_agreement

CONNECTED = "mpc-worker: connected"
REFUSED = "mpc-worker: refused:"  # followed by the reason; the launcher raises MPCRefused


def _parse_own_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--job", required=True)
    parser.add_argument("--out", required=True)
    args, rest = parser.parse_known_args()
    sys.argv = [sys.argv[0], *rest]  # leave MPyC's options for MPyC
    return args


async def _run(mpc, program, job: dict) -> list[int]:
    secint = mpc.SecInt(program.bit_length, p=program.modulus)
    field = secint.field
    t0 = time.monotonic()
    await mpc.start()
    print(CONNECTED, flush=True)
    connected = time.monotonic()
    # Peers that connected on the same ports but for another spec, run, attempt or roster must not
    # compute together: compare what each party is about to do before touching any share.
    sessions = await mpc.transfer(job["session"])
    if len(set(sessions)) != 1:
        await mpc.shutdown()
        raise SystemExit(f"mpc-worker: compute parties disagree on the session: {sessions}")
    views = await mpc.transfer(job.get("agreement", {}))
    try:
        check_agreement(views, job.get("names") or [str(i) for i in range(len(views))])
    except AgreementError as exc:
        print(f"{REFUSED} {exc}", flush=True)
        await mpc.shutdown()
        raise SystemExit(3) from None

    lengths = job["input_lengths"]
    inputs = {}
    for name, length in lengths.items():
        vectors = []
        for party in job["roster"]:
            shares = job["shares"][party][name]
            if len(shares) != length:
                raise ValueError(f"input {name} of {party}: {len(shares)} shares, expected {length}")
            vectors.append([secint(field(s)) for s in shares])
        inputs[name] = vectors

    result = program.compute(mpc, secint, inputs, job["params"])
    if asyncio.iscoroutine(result):
        result = await result

    flat = []
    for output, length in job["output_lengths"].items():
        values = result[output]
        if len(values) != length:
            raise ValueError(f"program returned {len(values)} values for {output}, expected {length}")
        if job["output_kinds"][output] == "ratio":
            # A fresh secret rho per element: the pair (rho*a, rho*b) reveals a/b and nothing more.
            rhos = mpc._randoms(secint, len(values))
            for rho, (num, den) in zip(rhos, values):
                flat += [rho * num, rho * den]
        else:
            flat += [v if isinstance(v, secint) else secint(v) for v in values]
    fresh = mpc._reshare(flat)  # recipients see a random sharing, independent of how it was computed
    shares = await mpc.gather(fresh)
    await mpc.shutdown()
    print(f"mpc-worker: timings connect={connected - t0:.3f}s mpc={time.monotonic() - connected:.3f}s",
          flush=True)
    return [int(s) for s in shares]


def main() -> None:
    args = _parse_own_args()
    with open(args.job) as f:
        job = json.load(f)
    from mpyc.runtime import mpc  # parses MPyC's options from sys.argv

    from mpc_federation.programs import load_program

    program = load_program(job["program"]).program
    shares = mpc.run(_run(mpc, program, job))
    with open(args.out, "w") as f:
        json.dump({"shares": shares}, f)


if __name__ == "__main__":
    main()
