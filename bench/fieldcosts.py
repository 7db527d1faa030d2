"""Where an MPyC process's CPU per market goes, against what "100,000 markets in 30 s" allows.

    .venv/bin/python bench/fieldcosts.py [--markets 3000] [--values 100000] [--json FILE]

1. **The program**: the HHI over ``--markets`` markets of 5 firms on 3 real MPyC processes over TLS
   (bench/mpcprogram.py): CPU per process and bytes sent, hence the values each process sends per
   market (bytes ÷ markets ÷ its 2 peers ÷ a share's width on the wire).
2. **The steps every value of a secure product goes through** in such a process, each timed on
   ``--values`` values of the same field: the product with its reduction mod p (MPyC's field
   arrays, Python integers), the split into 3 Shamir shares (``limbs.split``: from the integers to
   limbs, random coefficients, the rows' wire bytes) and the recombination of 3 received shares
   (``limbs.combine``: in limbs, then back to integers). No network, no event loop, no protocol
   logic: a floor per value, not an estimate of the whole. Beside them, the conversions between
   Python's integers and limbs that the split and the recombination contain.
3. **The budget**: 30 s on this machine's cores shared by the 3 processes, per market of 100,000;
   and two floors per market: the values per market times the split and the recombination (what
   every value sent costs), and the same with a product each (most values sent are products).

Where the floor alone exceeds the budget, no tuning of the rest meets the target: it needs fewer
values per market (another protocol) or cheaper steps per value (not Python integers).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(Path(__file__).resolve().parent)]

TARGET_S, TARGET_MARKETS, COMPUTES, FIRMS = 30.0, 100_000, 3, 5


def budget_per_market_us() -> float:
    """CPU per market and MPyC process, in µs, that 100,000 markets in 30 s allow: 30 s of this
    machine's cores (at most one per process) shared by the 3 processes."""
    cores = os.cpu_count() or 1
    return TARGET_S * min(cores, COMPUTES) / COMPUTES / TARGET_MARKETS * 1e6


def per_value_ns(fn, n: int, repeat: int = 5) -> float:
    """The fastest of ``repeat`` calls of ``fn()``, in ns per value."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best / n * 1e9


def step_costs(program, n: int) -> dict:
    """ns per value of each step a secure product's value goes through, in ``program``'s field."""
    from mpc_federation import limbs

    field = program.field
    p = field.modulus
    a, b = (field.array(limbs.to_ints(limbs.randoms_below(p, n)), check=False) for _ in range(2))
    product = a * b
    rows = limbs.split(product.value, p, 1, COMPUTES)
    combined = limbs.combine((3, -3, 1), rows, p)  # the Lagrange numerators at 0 of the points 1, 2, 3
    if not (combined == product.value).all():
        raise RuntimeError("the shares do not recombine to the product")
    return {
        "product_and_reduction": per_value_ns(lambda: a * b, n),
        "split_into_3_shares": per_value_ns(lambda: limbs.split(product.value, p, 1, COMPUTES), n),
        "recombination_of_3_shares": per_value_ns(lambda: limbs.combine((3, -3, 1), rows, p), n),
    }


def conversion_costs(program, n: int) -> dict:
    """ns per value of the conversions inside the split and the recombination: Python's integers to
    limbs and back (one ``int.to_bytes`` or ``int.from_bytes`` each), against the limbs' own bytes."""
    from mpc_federation import limbs

    p, count = program.field.modulus, limbs.limb_count(program.field.modulus)
    words = limbs.randoms_below(p, n)
    values = limbs.to_ints(words)
    if not (limbs.to_words(values, count) == words).all():
        raise RuntimeError("the integers do not convert back to their limbs")
    return {
        "integers_to_limbs": per_value_ns(lambda: limbs.to_words(values, count), n),
        "limbs_to_integers": per_value_ns(lambda: limbs.to_ints(words), n),
        "limbs_to_bytes": per_value_ns(lambda: limbs._to_bytes(words), n),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--markets", type=int, default=3000)
    parser.add_argument("--values", type=int, default=100_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    sys.argv = sys.argv[:1]
    import mpcprogram

    from mpc_federation import limbs
    from mpc_federation.programs import load_program

    program = load_program(mpcprogram.HHI).program.for_federation(None, FIRMS)
    run = mpcprogram.run(args.markets, FIRMS, COMPUTES)
    if not run["equals_plaintext"]:
        raise RuntimeError("the program's result differs from the plaintext reference")
    width = 6 * limbs.limb_count(program.field.modulus)  # bytes of a share on the wire
    sent = max(v for v in run["bytes_sent"].values() if v)
    steps = step_costs(program, args.values)
    linear_ns = steps["split_into_3_shares"] + steps["recombination_of_3_shares"]
    floor_ns = linear_ns + steps["product_and_reduction"]
    values_per_market = sent / args.markets / (COMPUTES - 1) / width
    cpu_us = max(run["worker_cpu_s"].values()) / args.markets * 1e6
    budget_us = budget_per_market_us()
    out = {
        "markets": args.markets,
        "field_bits": program.field.modulus.bit_length(),
        "share_bytes": width,
        "cores": os.cpu_count() or 1,
        "cpu_per_market_us": round(cpu_us, 1),
        "values_sent_per_market": round(values_per_market, 1),
        "step_ns": {k: round(v, 1) for k, v in steps.items()},
        "conversion_ns": {k: round(v, 1) for k, v in conversion_costs(program, args.values).items()},
        "budget_per_market_us": round(budget_us, 1),
        "cpu_over_budget": round(cpu_us / budget_us, 2),
    }
    for name, ns in (("resharing", linear_ns), ("product_and_resharing", floor_ns)):
        out[f"floor_{name}_per_market_us"] = round(values_per_market * ns / 1000, 1)
        out[f"floor_{name}_over_budget"] = round(values_per_market * ns / 1000 / budget_us, 2)
    out["program"] = run
    print(json.dumps({k: v for k, v in out.items() if k != "program"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
