"""Shamir splitting and recombination over the HHI program's field, rational reconstruction of
masked ratios, and decoding of revealed outputs."""

from __future__ import annotations

import itertools
import random
from fractions import Fraction
from math import isqrt
from pathlib import Path

import pytest

from mpc_federation.programs import Input, Output, SecureProgram, load_program
from mpc_federation.sharing import ReconstructionError, decode, rational, recombine, split, to_signed

REPO = Path(__file__).resolve().parents[1]
HHI = load_program(REPO / "include" / "programs" / "hhi.py").program
P = HHI.modulus
MAX_REVENUE = 10**12
MAX_PARTIES = 100


def test_hhi_field_is_large_enough():
    assert HHI.field.modulus == P
    assert P.bit_length() >= HHI.bit_length + 30
    bound = isqrt(P // 2)
    assert 10000 * MAX_PARTIES * MAX_REVENUE**2 < bound
    assert (MAX_PARTIES * MAX_REVENUE) ** 2 < bound


@pytest.mark.parametrize("t, m", [(1, 3), (2, 5)])
def test_split_recombine_any_subset(t, m):
    rng = random.Random(1000 + m)
    values = [0, 1, MAX_REVENUE, P - 1, *(rng.randrange(P) for _ in range(8)),
              *(rng.randint(0, MAX_REVENUE) for _ in range(8))]
    rows = split(HHI.field, values, t, m)
    assert len(rows) == m and all(len(r) == len(values) for r in rows)
    assert all(0 <= s < P for r in rows for s in r)
    assert all(rows[i] != values for i in range(m))
    for size in range(t + 1, m + 1):
        for subset in itertools.combinations(range(m), size):
            assert recombine(HHI.field, {i: rows[i] for i in subset}, t) == values, subset


@pytest.mark.parametrize("t, m", [(1, 3), (2, 5)])
def test_sharing_is_randomised(t, m):
    """Two sharings of the same value differ, and both recombine to it."""
    a = split(HHI.field, [42], t, m)
    b = split(HHI.field, [42], t, m)
    assert a != b
    assert recombine(HHI.field, dict(enumerate(a)), t) == recombine(HHI.field, dict(enumerate(b)), t) == [42]


@pytest.mark.parametrize("t, m", [(1, 3), (2, 5)])
def test_one_altered_share_is_detected(t, m):
    rng = random.Random(7 * m)
    values = [rng.randint(0, MAX_REVENUE) for _ in range(6)]
    rows = split(HHI.field, values, t, m)
    for party in range(m):
        for position in (0, len(values) - 1):
            altered = [list(r) for r in rows]
            altered[party][position] = (altered[party][position] + 1) % P
            with pytest.raises(ReconstructionError, match="inconsistent"):
                recombine(HHI.field, dict(enumerate(altered)), t)
    # With exactly t + 1 shares there is nothing to check against: the alteration goes through.
    altered = [list(r) for r in rows]
    altered[0][0] = (altered[0][0] + 1) % P
    assert recombine(HHI.field, {i: altered[i] for i in range(t + 1)}, t) != values


@pytest.mark.parametrize("t, m", [(1, 3), (2, 5)])
def test_too_few_shares(t, m):
    rows = split(HHI.field, [5, 6], t, m)
    with pytest.raises(ReconstructionError, match=f"at least {t + 1}"):
        recombine(HHI.field, {i: rows[i] for i in range(t)}, t)
    with pytest.raises(ReconstructionError):
        recombine(HHI.field, {}, t)


def test_different_share_counts():
    rows = split(HHI.field, [5, 6, 7], 1, 3)
    with pytest.raises(ReconstructionError, match="different numbers"):
        recombine(HHI.field, {0: rows[0], 1: rows[1][:2], 2: rows[2]}, 1)


def masked(num: int, den: int, rng: random.Random) -> tuple[int, int]:
    rho = rng.randrange(1, P)
    return rho * num % P, rho * den % P


def test_rational_recovers_random_fractions():
    rng = random.Random(20240415)
    bound = isqrt(P // 2)
    for magnitude in (10, 10**6, 10**20, 10**30, bound):
        for _ in range(300):
            a, b = rng.randint(-magnitude, magnitude), rng.randint(1, magnitude)
            assert rational(*masked(a, b, rng), P) == Fraction(a, b), (a, b)


def test_rational_at_the_hhi_bounds():
    rng = random.Random(3)
    num_max = 10000 * MAX_PARTIES * MAX_REVENUE**2
    den_max = (MAX_PARTIES * MAX_REVENUE) ** 2
    cases = [(num_max, den_max), (num_max, 1), (1, den_max), (num_max - 1, den_max - 7),
             (10000 * MAX_REVENUE**2, MAX_REVENUE**2)]  # one firm with everything: 10000
    for _ in range(500):
        revenues = [rng.randint(0, MAX_REVENUE) for _ in range(rng.randint(1, MAX_PARTIES))]
        if sum(revenues):
            cases.append((10000 * sum(r * r for r in revenues), sum(revenues) ** 2))
    for num, den in cases:
        got = rational(*masked(num, den, rng), P)
        assert got == Fraction(num, den)
        assert 0 <= got <= 10000 or num == num_max  # num_max/1 is a bound, not an HHI


def test_rational_zero_denominator():
    assert rational(0, 0, P) is None
    assert rational(P, 2 * P, P) is None  # zero mod p
    with pytest.raises(ReconstructionError):
        rational(5, 0, P)
    assert rational(0, 17, P) == 0


def test_to_signed():
    assert to_signed(5, P) == 5
    assert to_signed(P - 5, P) == -5
    assert to_signed(0, P) == 0


def toy_program() -> SecureProgram:
    return SecureProgram(
        name="toy", inputs=(Input("x", 0, 100, dim="market"),),
        outputs=(Output("count", kind="int"), Output("share", kind="ratio", dim="market"),
                 Output("delta", kind="int", dim="market")),
        compute=lambda *a: None, bit_length=64)


def test_decode_int_and_ratio_outputs():
    program = toy_program()
    p = program.modulus
    rng = random.Random(11)
    dims = {"market": ["all", "2024-01", "2024-02"]}
    ratios = [Fraction(22000, 9), None, Fraction(-3, 4)]
    values = [7]
    for f in ratios:
        values += masked_mod(f, rng, p)
    values += [(-4) % p, 0, 123]
    out = decode(program, dims, values)
    assert list(out) == ["count", "share", "delta"]
    assert out["count"] == {"kind": "int", "labels": ["count"], "exact": ["7"], "value": [7.0]}
    assert out["share"]["kind"] == "ratio"
    assert out["share"]["labels"] == dims["market"]
    assert out["share"]["exact"] == ["22000/9", None, "-3/4"]
    assert out["share"]["value"] == [round(22000 / 9, 6), None, -0.75]
    assert out["delta"]["exact"] == ["-4", "0", "123"]
    assert out["delta"]["value"] == [-4.0, 0.0, 123.0]
    with pytest.raises(ReconstructionError, match="expected 10 output values, got 11"):
        decode(program, dims, values + [1])
    with pytest.raises(ReconstructionError, match="expected 10 output values, got 9"):
        decode(program, dims, values[:-1])


def masked_mod(f: Fraction | None, rng: random.Random, p: int) -> list[int]:
    if f is None:
        return [0, 0]
    rho = rng.randrange(1, p)
    return [rho * f.numerator % p, rho * f.denominator % p]


def test_split_recombine_decode_hhi_roundtrip():
    """An output sharing of the masked HHI pair recombines and decodes to the exact fraction."""
    rng = random.Random(99)
    dims = {"market": ["all", "2024-01"]}
    revenues = [[30, 30, 20, 20], [5, 4, 3, 2, 1]]
    flat = []
    for r in revenues:
        flat += masked(10000 * sum(x * x for x in r), sum(r) ** 2, rng)
    rows = split(HHI.field, flat, 1, 3)
    values = recombine(HHI.field, {0: rows[0], 2: rows[2]}, 1)
    out = decode(HHI, dims, values)
    assert out["hhi"]["exact"] == ["2600", "22000/9"]
