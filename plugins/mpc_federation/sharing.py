"""Shamir sharing with MPyC's own field and threshold code, and decoding of revealed outputs.

Input parties split with ``mpyc.thresha.random_split`` over the program's SecInt field, so
compute party i (x-coordinate i+1) can wrap its shares in secure integers directly.
Recipients recombine with ``mpyc.thresha.recombine`` and check that any extra shares lie on
the same polynomial.
"""

from __future__ import annotations

from fractions import Fraction
from math import isqrt


class ReconstructionError(ValueError):
    """Output shares that do not determine one consistent result."""


def split(field, values: list[int], t: int, m: int) -> list[list[int]]:
    """Shares of every value for each of m compute parties (row i for party i), degree t."""
    from mpyc.thresha import random_split

    rows = random_split(field, [field(v) for v in values], t, m)
    return [[int(s) % field.modulus for s in row] for row in rows]


def recombine(field, shares: dict[int, list[int]], t: int) -> list[int]:
    """Recombine field values from shares keyed by MPyC party index (0-based).

    Uses the first t+1 parties and checks every further share against the same polynomial,
    so a single altered share is detected whenever more than t+1 parties answered.
    """
    from mpyc.thresha import recombine as mpyc_recombine

    if len(shares) < t + 1:
        raise ReconstructionError(f"need shares of at least {t + 1} compute parties, got {len(shares)}")
    lengths = {len(v) for v in shares.values()}
    if len(lengths) != 1:
        raise ReconstructionError(f"compute parties sent different numbers of shares: {sorted(lengths)}")
    indices = sorted(shares)
    base = [(i + 1, [field(s) for s in shares[i]]) for i in indices[: t + 1]]
    p = field.modulus
    secrets = [int(v) % p for v in mpyc_recombine(field, base)]  # int() of a field element is signed
    for i in indices[t + 1:]:
        expected = [int(v) % p for v in mpyc_recombine(field, base, [i + 1])[0]]
        if expected != [int(s) % p for s in shares[i]]:
            raise ReconstructionError(f"the shares of compute party {i} are inconsistent with the others")
    return secrets


def to_signed(value: int, modulus: int) -> int:
    return value - modulus if value > modulus // 2 else value


def rational(num: int, den: int, modulus: int) -> Fraction | None:
    """The fraction a/b hidden in a masked pair (rho*a, rho*b) mod p; None when b == 0.

    Rational reconstruction (extended Euclid): finds the unique a/b in lowest terms with
    |a|, b below sqrt(p/2) and a = b*c mod p, where c = num/den mod p.
    """
    num, den = num % modulus, den % modulus
    if den == 0:
        if num != 0:
            raise ReconstructionError("masked ratio with zero denominator and non-zero numerator")
        return None
    c = num * pow(den, -1, modulus) % modulus
    bound = isqrt(modulus // 2)
    r0, r1, s0, s1 = modulus, c, 0, 1
    while r1 > bound:
        q = r0 // r1
        r0, r1, s0, s1 = r1, r0 - q * r1, s1, s0 - q * s1
    if s1 == 0 or abs(s1) > bound:
        raise ReconstructionError("masked ratio does not reconstruct to a fraction within bounds")
    return Fraction(r1, s1)


def decode(program, dims: dict[str, list[str]], values: list[int]) -> dict[str, dict]:
    """Turn the recombined field values (outputs in declared order) into the revealed result."""
    p = program.modulus
    out, pos = {}, 0
    for output, length in zip(program.outputs, program.output_lengths(dims).values()):
        labels = dims[output.dim] if output.dim else [output.name]
        if output.kind == "int":
            exact = [to_signed(v, p) for v in values[pos: pos + length]]
            pos += length
            shown = [str(v) for v in exact]
            approx = [float(v) for v in exact]
        else:
            pairs = values[pos: pos + 2 * length]
            pos += 2 * length
            fractions = [rational(pairs[2 * k], pairs[2 * k + 1], p) for k in range(length)]
            shown = [None if f is None else str(f) for f in fractions]
            approx = [None if f is None else round(float(f), 6) for f in fractions]
        out[output.name] = {"kind": output.kind, "labels": labels, "exact": shown, "value": approx}
    if pos != len(values):
        raise ReconstructionError(f"expected {pos} output values, got {len(values)}")
    return out
