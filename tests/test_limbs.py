"""Field vectors in machine words (mpc_federation.limbs) against Python's integers."""

from __future__ import annotations

import itertools
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


# One limb (48 bits), two limbs with a 1-bit top, four with a 1-bit top, the HHI's (156 bits), the
# pay gap's, and wider fields.
PRIMES = [_prime(b) for b in (47, 49, 96, 145, 156, 232, 300)]
HHI = PRIMES[4]


def _ids(p: int) -> str:
    return f"{p.bit_length()} bits"


@pytest.fixture(params=["in words", "in blocks", "in integers"])
def small(request, monkeypatch):
    """``split`` in limbs (every vector counts as large), in limbs a block of 7 values at a time
    (every vector of more counts as long), or in Python's integers (every one small)."""
    monkeypatch.setattr(limbs, "SMALL", 2**62 if request.param == "in integers" else 0)
    if request.param == "in blocks":
        monkeypatch.setattr(limbs, "BLOCK", 7)
    return request.param


def _lagrange(points: tuple[int, ...], p: int) -> list[int]:
    """Lagrange coefficients at 0 of ``points``, mod p."""
    out = []
    for x_i in points:
        c = Fraction(1)
        for x_j in points:
            if x_j != x_i:
                c *= Fraction(-x_j, x_i - x_j)
        out.append(c.numerator * pow(c.denominator, -1, p) % p)
    return out


@pytest.mark.parametrize("p", PRIMES, ids=_ids)
def test_words_hold_every_value_and_travel_in_six_bytes_a_limb(p):
    rng = random.Random(p)
    values = [v for v in [0, 1, p - 1, p // 2, 2**47, 2**48 - 1, 2**48] if v < p]
    values += [rng.randrange(p) for _ in range(500)]
    words = limbs.to_words(values, limbs.limb_count(p))
    assert words.shape == (limbs.limb_count(p), len(values)) and words.dtype == np.int64
    assert list(limbs.to_ints(words)) == values
    wire = pickle.dumps(limbs.Words(words))
    back = pickle.loads(wire)
    assert isinstance(back, limbs.Words) and len(back) == len(values)
    assert list(np.asarray(back)) == values  # read straight from the bytes
    assert (back.words == words).all()  # and as limbs
    assert len(wire) < 6 * words.size + 200  # 6 bytes a limb, not a pickled integer each


@pytest.mark.parametrize("p", PRIMES, ids=_ids)
def test_words_give_the_packed_big_endian_bytes_of_their_integers(p):
    """``Words.big_endian``, which ``sharing.pack`` uses for an input party's split, gives the bytes
    of ``int.to_bytes(v, width, "big")`` for every value, from limbs or from the wire's bytes, and
    refuses a width too narrow for a value."""
    from mpc_federation import sharing

    rng = random.Random(p)
    values = [v for v in [0, 1, p - 1, p // 2, 2**47, 2**48 - 1, 2**48] if v < p]
    values += [rng.randrange(p) for _ in range(300)]
    width = sharing.width(p)
    expected = b"".join(v.to_bytes(width, "big") for v in values)
    words = limbs.Words(limbs.to_words(values, limbs.limb_count(p)))
    for row in (words, pickle.loads(pickle.dumps(words))):
        packed = row.big_endian(width)
        assert packed.shape == (len(values), width) and packed.dtype == np.uint8
        assert packed.tobytes() == expected
        assert sharing.pack(row, p) == sharing.pack(values, p)  # the text an input party publishes
        assert sharing.unpack(sharing.pack(row, p), p) == values
    wide = words.big_endian(6 * limbs.limb_count(p) + 2)  # wider than the limbs: zeros in front
    assert wide.tobytes() == b"".join(v.to_bytes(6 * limbs.limb_count(p) + 2, "big") for v in values)
    with pytest.raises(ValueError, match="does not fit in"):
        words.big_endian((p - 1).bit_length() // 8 - 1)


def test_a_vector_of_shares_of_the_wrong_length_is_refused():
    """What a peer's pickle hands ``_unpickle``: bytes that are not whole values are refused."""
    assert len(limbs._unpickle(b"\x00" * 24, 2)) == 2
    with pytest.raises(ValueError, match="has 13 bytes, not a multiple of 12"):
        limbs._unpickle(b"\x00" * 13, 2)
    with pytest.raises(ValueError, match="not a multiple"):
        limbs._unpickle(b"", 0)


@pytest.mark.parametrize("p", PRIMES, ids=_ids)
def test_combine_equals_the_sum_mod_p_for_coefficients_up_to_the_headroom(p):
    """Signed coefficients whose absolute values sum to just below 2**14 (the bound of ``combine``),
    over values at the edges of the field and random ones, with rows in memory and unpickled."""
    rng = random.Random(p + 1)
    count, n = limbs.limb_count(p), 400
    for coefficients in ([3, -3, 1], [1], [-1, -1], [7, -21, 35, -35, 21, -7, 1], [5461, -5461, 5461]):
        assert sum(map(abs, coefficients)) < limbs.HEADROOM
        rows = [[rng.choice([0, 1, p - 1, rng.randrange(p)]) for _ in range(n)] for _ in coefficients]
        words = [limbs.Words(limbs.to_words(r, count)) for r in rows]
        words = [pickle.loads(pickle.dumps(w)) if i % 2 else w for i, w in enumerate(words)]
        got = limbs.combine(coefficients, words, p)
        assert list(got) == [sum(a * r[i] for a, r in zip(coefficients, rows)) % p for i in range(n)]


def _limbs_of(values: list[int], count: int):
    """Signed integers as ``count`` limbs of 48 bits, the top one taking the rest (not normalised
    beyond that: what ``combine`` and ``split`` hand ``reduce``)."""
    rows = []
    for v in values:
        a = abs(v)
        digits = [(a >> (48 * i)) & limbs.MASK for i in range(count - 1)] + [a >> (48 * (count - 1))]
        rows.append([d if v >= 0 else -d for d in digits])
    return np.array(rows, dtype=np.int64).T.copy()


@pytest.mark.parametrize("p", PRIMES, ids=_ids)
def test_reduce_is_exact_next_to_every_multiple_of_p(p):
    """k p - 1, k p and k p + 1 for every |k| below 2**14 (the headroom): the values where the
    quotient's floating-point estimate can be off by one either way, so that each correction runs."""
    count = limbs.limb_count(p)
    values = [k * p + d for k in range(-(2**14) + 1, 2**14) for d in (-1, 0, 1)]
    values = [v for v in values if abs(v) < 2**14 * p]
    got = limbs.to_ints(limbs.reduce(_limbs_of(values, count), p))
    assert list(got) == [v % p for v in values]


@pytest.mark.parametrize("t,m", [(0, 3), (1, 3), (1, 4), (2, 5), (3, 7)])
@pytest.mark.parametrize("p", PRIMES, ids=_ids)
def test_split_gives_shares_of_degree_t_that_every_t_plus_1_parties_recombine(p, t, m, small):
    rng = random.Random(p + t)
    secrets = [0, 1, p - 1] + [rng.randrange(p) for _ in range(50)]
    split = limbs.split(secrets, p, t, m)
    assert all(isinstance(row, limbs.Words) == (small != "in integers") for row in split)
    assert all(len(row) == len(secrets) for row in split)
    if small == "in blocks":  # the rows' limbs, read back from the blocks' bytes, are the values too
        assert [limbs.to_ints(row.words).tolist() for row in split] == [np.asarray(row).tolist() for row in split]
    rows = [np.asarray(pickle.loads(pickle.dumps(row))) for row in split]
    assert all(0 <= int(v) < p for row in rows for v in row)
    for subset in itertools.combinations(range(1, m + 1), t + 1):
        lagrange = _lagrange(subset, p)
        assert [sum(c * int(rows[x - 1][k]) for c, x in zip(lagrange, subset)) % p for k in range(len(secrets))] == [
            s % p for s in secrets
        ]
    if t:  # t shares of the secret 0 are not 0, and no share is its secret: the coefficients are drawn
        assert all(int(rows[i][0]) for i in range(t))
        assert not any(int(a) == s for row in rows for a, s in zip(row, secrets))


def test_the_coefficients_of_each_degree_are_drawn_apart(small):
    """With t = 3 the polynomial of each secret, read back from 4 shares, has coefficients that
    differ from each other and between secrets: each degree has its own draw."""
    p, t = HHI, 3
    rows = [np.asarray(row) for row in limbs.split([0] * 20, p, t, t + 1)]
    xs = list(range(1, t + 2))
    coefficients = []
    for k in range(20):  # solve the Vandermonde system for c_1..c_t (the secret is 0)
        ys = [int(rows[x - 1][k]) for x in xs]
        # Newton's divided differences mod p, then expand
        table = [[y % p for y in ys]]
        for level in range(1, t + 1):
            prev = table[-1]
            table.append(
                [(prev[i + 1] - prev[i]) * pow(xs[i + level] - xs[i], -1, p) % p for i in range(len(prev) - 1)]
            )
        newton = [table[i][0] for i in range(t + 1)]
        poly = [0] * (t + 1)  # coefficients, low degree first
        for i in range(t, -1, -1):  # Horner over the Newton basis
            shifted = [0] + poly[:-1]
            poly = [(s - xs[i] * c) % p for s, c in zip(shifted, poly)]
            poly[0] = (poly[0] + newton[i]) % p
        assert poly[0] == 0
        coefficients.append(tuple(poly[1:]))
    assert all(len(set(c)) == t for c in coefficients)
    assert len({c for cs in coefficients for c in cs}) == 20 * t


@pytest.mark.parametrize("sampler", ["randoms_below", "random_integers"])
@pytest.mark.parametrize("order", [1, 3, 2**48, 2**64 + 1, 2**96, 2**96 - 1, "field"])
def test_randoms_are_uniform_below_the_order(order, sampler):
    """Each value lies in [0, order); a small order hits every value about equally; otherwise all
    values differ, every bit below the order's top bit is set about half the time, and the top bit
    as often as it should be (2**64 + 1 takes 65-bit draws and redraws about half of them; a power of
    two at a limb's end, the masks of ``arith.trunc``, takes whole limbs). The same law as limbs
    (``randoms_below``) and as Python integers (``random_integers``)."""
    from collections import Counter

    if order == "field":
        order = HHI
    n = 30000
    if sampler == "randoms_below":
        drawn = limbs.to_ints(limbs.randoms_below(order, n))
    else:
        drawn = limbs.random_integers(order, n)
    values = [int(v) for v in drawn]
    assert len(values) == n and all(0 <= v < order for v in values)
    if order <= 3:
        counts = Counter(values)
        assert len(counts) == order and all(n / order * 0.9 < c < n / order * 1.1 for c in counts.values())
        return
    assert len(set(values)) == n
    top = (order - 1).bit_length() - 1
    for bit in range(top):
        assert 0.47 < sum(v >> bit & 1 for v in values) / n < 0.53, bit
    expected = (order - 2**top) / order
    assert abs(sum(v >> top & 1 for v in values) / n - expected) < 0.02


def test_combine_sums_integers_where_rows_are_not_words_or_coefficients_pass_the_headroom(monkeypatch):
    """Rows of a small vector's split (object arrays), a mix with ``Words``, and ``Words`` with
    coefficients past the headroom: summed in Python's integers, the same result."""
    p, rng = HHI, random.Random(5)
    rows = [[rng.randrange(p) for _ in range(300)] for _ in range(3)]
    words = [limbs.Words(limbs.to_words(r, limbs.limb_count(p))) for r in rows]
    expected = [(3 * a - 3 * b + c) % p for a, b, c in zip(*rows)]
    assert list(limbs.combine([3, -3, 1], [np.array(r, dtype=object) for r in rows], p)) == expected
    assert list(limbs.combine([3, -3, 1], [words[0], np.array(rows[1], dtype=object), words[2]], p)) == expected
    monkeypatch.setattr(limbs, "HEADROOM", 7)  # 3 + 3 + 1: not below it
    monkeypatch.setattr(limbs, "reduce", None)  # the limbs are not used
    assert list(limbs.combine([3, -3, 1], words, p)) == expected


def test_small_vectors_are_split_in_integers_and_large_ones_in_words():
    p = HHI
    assert all(isinstance(row, np.ndarray) for row in limbs.split([1] * (limbs.SMALL - 1), p, 1, 3))
    assert all(isinstance(row, limbs.Words) for row in limbs.split([1] * limbs.SMALL, p, 1, 3))


def test_empty_vectors_split_and_combine(monkeypatch):
    monkeypatch.setattr(limbs, "SMALL", 0)
    p = HHI
    rows = limbs.split([], p, 1, 3)
    assert [len(r) for r in rows] == [0, 0, 0]
    assert len(limbs.combine([3, -3, 1], [pickle.loads(pickle.dumps(r)) for r in rows], p)) == 0


@pytest.mark.parametrize("count", [1, 2, 4, 7])
def test_limbs_are_read_from_and_written_to_the_wire_bytes_in_place(count):
    """The 6-byte little-endian limbs of the wire, value after value, for every vector length (the
    8-byte reads past the last limb, the 4- and 2-byte writes), from contiguous limbs and from a view."""
    import os

    for n in (0, 1, 5, 1000):
        data = os.urandom(6 * count * n)
        words = limbs._from_bytes(data, count)
        assert words.shape == (count, n) and words.flags.c_contiguous
        limb = [
            [int.from_bytes(data[6 * (count * j + i) : 6 * (count * j + i + 1)], "little") for j in range(n)]
            for i in range(count)
        ]
        assert words.tolist() == limb
        assert limbs._to_bytes(words).tobytes() == data
        assert limbs._to_bytes(np.asfortranarray(words)).tobytes() == data
