"""The input checks' random linear combination, on plain values (a sharing with one share): 0 for
every honest witness, not 0 for each kind of wrong one; and the coefficients it draws."""

from __future__ import annotations

import numpy as np
import pytest

from mpc_federation import witnesses
from mpc_federation.programs import Input

P = 2**127 - 1  # a prime below 2**128: the bound is then 2/p
BOUNDED = Input("x", low=-3, high=20)  # span 23: 5 bits of x - low and 5 of high - x
NONZERO = Input("r", low=0, high=2**8 - 1, nonzero=True)  # span 2**8 - 1: no upper bits
SEED = b"s" * 32


def _verdicts(spec, rows: list[list[int]], witness_rows: list[list[int]]) -> list[int]:
    values = np.array([[v % P for v in row] for row in rows], dtype=object)
    witness = np.array([[w % P for w in row] for row in witness_rows], dtype=object)
    labels = [f"party{i}" for i in range(len(rows))]
    return list(witnesses.combinations(spec, values, witness, SEED, labels, P))


@pytest.mark.parametrize("spec", [BOUNDED, NONZERO])
def test_honest_witnesses_combine_to_zero(spec):
    rows = [[spec.low, spec.high, 0 if spec.low <= 0 else spec.low, 7], [1, 2, 3, spec.high]]
    assert _verdicts(spec, rows, [witnesses.make(spec, r, P) for r in rows]) == [0, 0]


@pytest.mark.parametrize(
    ("spec", "value", "tamper"),
    [
        (BOUNDED, 21, "none"),  # out of range: its honest-looking bits cannot match high - x
        (BOUNDED, -4, "none"),
        (BOUNDED, 5, "bit=2"),  # a "bit" that is not 0 or 1, recomposition kept right
        (BOUNDED, 5, "flip"),  # a bit flipped: the recomposition is wrong
        (NONZERO, 9, "z=0"),  # a firm with revenue claims none
        (NONZERO, 0, "z=1"),  # a firm without revenue claims some
        (NONZERO, 9, "w"),  # a wrong inverse
    ],
)
def test_each_wrong_witness_is_caught_and_only_its_party(spec, value, tamper):
    honest_row = [1, 2]
    rows = [honest_row, [value, 2]]
    bad = witnesses.make(spec, [min(max(value, spec.low), spec.high), 2], P)
    lay = witnesses.layout(spec, 2)
    if tamper == "bit=2":  # 5 - low = 8 = 0b01000: bits 2 and 3 as 2 and 0 give the same sum
        bad[2], bad[3] = 2, 0
    elif tamper == "flip":
        bad[0] ^= 1
    elif tamper in ("z=0", "z=1"):
        bad[lay.size - 4] = 0 if tamper == "z=0" else 1
    elif tamper == "w":
        bad[lay.size - 2] = 5
    verdicts = _verdicts(spec, rows, [witnesses.make(spec, honest_row, P), bad])
    assert verdicts[0] == 0 and verdicts[1] != 0


def test_coefficients_are_128_bit_and_depend_on_seed_and_label():
    a = witnesses.coefficients(SEED, "p/0", 1000)
    assert a.dtype == object and len(a) == 1000
    assert all(isinstance(c, int) and 0 <= c < 2**128 for c in a)
    assert max(a).bit_length() > 120  # both 64-bit words are used
    assert list(witnesses.coefficients(SEED, "p/0", 1000)) == list(a)  # every compute party draws the same
    assert list(witnesses.coefficients(SEED, "p/1", 1000)) != list(a)
    assert list(witnesses.coefficients(b"t" * 32, "p/0", 1000)) != list(a)
