"""Field vectors in machine words (mpc_federation.limbs) against Python's integers."""

from __future__ import annotations

import pickle
import random
from fractions import Fraction

import numpy as np
import pytest

from mpc_federation import limbs


def _prime(bits: int) -> int:
    """The largest prime below 2**bits (Miller-Rabin by MPyC's gmpy wrapper)."""
    from mpyc.gmpy import is_prime

    p = 2**bits - 1
    while not is_prime(p):
        p -= 2
    return p


# One limb (48 bits), two limbs with a 1-bit top, and the HHI's (156 bits), the pay gap's, and wider fields.
PRIMES = [_prime(b) for b in (47, 49, 96, 156, 232, 300)]


@pytest.mark.parametrize("p", PRIMES, ids=lambda p: f"{p.bit_length()} bits")
def test_words_hold_every_value_and_travel_in_six_bytes_a_limb(p):
    rng = random.Random(p)
    values = [0, 1, p - 1, p // 2, 2**47, 2**48 - 1] + [rng.randrange(p) for _ in range(500)]
    values = [v for v in values if v < p]
    words = limbs.to_words(values, limbs.limb_count(p))
    assert words.shape == (limbs.limb_count(p), len(values)) and words.dtype == np.int64
    assert list(limbs.to_ints(words)) == values
    wire = limbs.Words(words)
    back = pickle.loads(pickle.dumps(wire))
    assert isinstance(back, limbs.Words) and list(np.asarray(back)) == values
    assert len(pickle.dumps(wire)) < 6 * words.size + 200  # 6 bytes a limb, not a pickled integer each


@pytest.mark.parametrize("p", PRIMES, ids=lambda p: f"{p.bit_length()} bits")
def test_combine_equals_the_sum_mod_p_for_coefficients_up_to_the_headroom(p):
    """Signed coefficients whose absolute values sum to just below 2**14 (the bound of ``combine``),
    over values at the edges of the field and random ones."""
    rng = random.Random(p + 1)
    count, n = limbs.limb_count(p), 400
    for coefficients in ([3, -3, 1], [1], [-1, -1], [7, -21, 35, -35, 21, -7, 1], [5461, -5461, 5461]):
        assert sum(map(abs, coefficients)) < limbs.HEADROOM
        rows = [[rng.choice([0, 1, p - 1, rng.randrange(p)]) for _ in range(n)] for _ in coefficients]
        got = limbs.combine(coefficients, [limbs.Words(limbs.to_words(r, count)) for r in rows], p)
        assert list(got) == [sum(a * r[i] for a, r in zip(coefficients, rows)) % p for i in range(n)]


@pytest.mark.parametrize("t,m", [(1, 3), (1, 4), (2, 5), (3, 7)])
@pytest.mark.parametrize("p", PRIMES[1:5], ids=lambda p: f"{p.bit_length()} bits")
def test_split_gives_shares_of_degree_t_that_every_t_plus_1_parties_recombine(p, t, m):
    import itertools

    rng = random.Random(p + t)
    secrets = [0, 1, p - 1] + [rng.randrange(p) for _ in range(50)]
    rows = [np.asarray(row) for row in limbs.split(secrets, p, t, m)]
    assert all(0 <= int(v) < p for row in rows for v in row)
    for subset in itertools.combinations(range(1, m + 1), t + 1):
        lagrange = []
        for x_i in subset:
            c = Fraction(1)
            for x_j in subset:
                if x_j != x_i:
                    c *= Fraction(-x_j, x_i - x_j)
            lagrange.append(c.numerator * pow(c.denominator, -1, p) % p)
        assert [sum(c * int(rows[x - 1][k]) for c, x in zip(lagrange, subset)) % p for k in range(len(secrets))] == [
            s % p for s in secrets
        ]
    assert any(int(v) for v in rows[0][:3])  # shares of 0, 1, p - 1 are not the secrets themselves


@pytest.mark.parametrize(
    "p", [PRIMES[3], 2**96 + 2**48 + 1, 3 * 2**94 + 1], ids=["just below 2**156", "just above 2**96", "0.75 of 2**96"]
)
def test_randoms_are_uniform_below_p(p):
    """Every value lies in [0, p); the top bit is set in the share of draws it should be (half of
    2**bits for a prime just below it; about a third for 0.75 * 2**96: the rejected quarter is drawn again)."""
    n = 30000
    values = limbs.to_ints(limbs.randoms_below(p, n))
    assert len(values) == n and all(0 <= int(v) < p for v in values)
    top = 1 << ((p - 1).bit_length() - 1)
    share = sum(1 for v in values if int(v) >= top) / n
    expected = (p - top) / p
    assert abs(share - expected) < 0.02, (share, expected)


def test_empty_vectors_split_and_combine():
    p = PRIMES[3]
    rows = limbs.split([], p, 1, 3)
    assert [len(r) for r in rows] == [0, 0, 0]
    assert len(limbs.combine([3, -3, 1], rows, p)) == 0
