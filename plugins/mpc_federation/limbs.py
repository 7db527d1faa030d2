"""Vectors of prime-field elements in machine words, for the linear steps of a resharing.

MPyC keeps a field array as a numpy array of Python integers, so every addition or reduction of a
share is a Python operation on a big integer (100-300 ns each here). A resharing only splits each
value into Shamir shares (additions of random multiples) and recombines the shares it receives
(a sum with small integer coefficients): linear steps that numpy can do on machine words. Here a
vector is an ``(L, n)`` int64 array of 48-bit limbs, least significant first (``words``); a sum
whose coefficients' absolute values add up to less than 2**14 stays below 2**62 in every limb, so
limbs are added and scaled without carries and reduced modulo p at the end (``reduce``; once for
a recombination; a split of degree 1 only subtracts p where it fits, row after row). The shares
travel as 6 bytes per limb (``Words``'s pickle), which are also each value's little-endian bytes,
read and written through views with 6-byte strides. Vectors of fewer than ``SMALL`` values
stay in Python's integers.

Used by ``mpyc_compat.install_fast_random_split`` and ``install_fast_recombine`` in the MPyC process,
and by input parties (``sharing.split``); ``randoms_below`` and ``random_integers`` draw uniform
integers (as limbs, as Python integers).
"""

from __future__ import annotations

import os
from itertools import repeat
from typing import Literal

import numpy as np

BITS = 48  # bits per limb: 6 bytes, and 15 bits of headroom in an int64
MASK = (1 << BITS) - 1
HEADROOM = 1 << 14  # the largest sum of absolute coefficients (and quotient) a limb takes
LITTLE: Literal["little"] = "little"  # limbs and values are little-endian bytes
SMALL = 768  # fewer values are split in Python's integers: about where a resharing costs as much either way
BLOCK = 1 << 14  # values split at once: a block's (L, BLOCK) int64 arrays stay in the CPU's cache


def limb_count(order: int) -> int:
    """The limbs that hold every integer in ``[0, order)`` (at least one)."""
    return max(1, -(-(order - 1).bit_length() // BITS))


def to_words(values, count: int):
    """The ``count`` limbs of each integer in ``values`` (a list of integers in ``[0, 2**(48 count))``)
    as a (count, n) int64 array: one C-level ``int.to_bytes`` per value, the rest in numpy."""
    data = np.fromiter(map(int.to_bytes, values, repeat(6 * count), repeat(LITTLE)), f"S{6 * count}", len(values))
    return _from_bytes(data, count)


def _from_bytes(data, count: int):
    """Limbs from 6 little-endian bytes each, value after value (``bytes`` or a numpy buffer): each
    limb read as the 8 bytes from its start (a view with 6-byte strides over the data and 2 zero
    bytes after it), its top 2 bytes then cleared; far fewer steps than copying bytes one by one."""
    raw = np.frombuffer(data, dtype=np.uint8)
    n = raw.size // (6 * count)
    padded = np.empty(raw.size + 2, dtype=np.uint8)
    padded[: raw.size], padded[raw.size :] = raw, 0
    eight = np.ndarray((count, n), dtype="<i8", buffer=padded, strides=(6, 6 * count))
    words = np.empty((count, n), dtype="<i8")
    np.bitwise_and(eight, MASK, out=words)
    return words


def _to_bytes(words):
    """The limbs (each in ``[0, 2**48)``) as 6 little-endian bytes each, value after value: an (n, 6L)
    uint8 array, written as a 4-byte and a 2-byte integer per limb (views with 6-byte strides)."""
    count, n = words.shape
    out = np.empty((n, 6 * count), dtype=np.uint8)
    if not n:
        return out
    low = np.ndarray((count, n), dtype="<u4", buffer=out, strides=(6, 6 * count))
    high = np.ndarray((count, n), dtype="<u2", buffer=out, offset=4, strides=(6, 6 * count))
    np.copyto(low, words, casting="unsafe")  # the low 32 bits
    np.copyto(high, words >> 32, casting="unsafe")
    return out


def to_ints(words):
    """The integers of normalised limbs (each in ``[0, 2**48)``), as an object array."""
    return integers(_to_bytes(words), 6 * words.shape[0])


def integers(data, width: int, byteorder: Literal["little", "big"] = LITTLE):
    """The integers of ``width`` bytes each that ``data`` holds (bytes or a uint8 array), as an object
    array: one C-level ``int.from_bytes`` each."""
    values = np.frombuffer(data, dtype=f"V{width}").tolist()
    return np.fromiter(map(int.from_bytes, values, repeat(byteorder)), dtype=object, count=len(values))


def _normalise(w) -> None:
    """Carry each limb's excess into the next, in place: limbs below the top end in ``[0, 2**48)``,
    the top one keeps the sign and the rest of the value."""
    for i in range(w.shape[0] - 1):
        carry = w[i] >> BITS  # floor division: negative limbs borrow
        w[i] &= MASK
        w[i + 1] += carry


def _p_words(p: int, count: int):
    return np.array([(p >> (BITS * i)) & MASK for i in range(count)], dtype=np.int64).reshape(count, 1)


def reduce(w, p: int):
    """The values of the limbs ``w`` modulo p, as normalised limbs in ``[0, p)``; ``w`` is changed.
    Each value must lie in ``(-2**14 p, 2**14 p)`` and each limb below ``2**62`` in absolute value
    (what ``split`` and ``combine`` make). The quotient is estimated in floating point from the top
    two limbs (off by at most one), then corrected exactly."""
    count = w.shape[0]
    pw = _p_words(p, count)
    _normalise(w)
    if count == 1:
        w %= p
        return w
    top = float(p >> (BITS * (count - 2)))
    q = np.floor((w[-1].astype(np.float64) * 2.0**BITS + w[-2].astype(np.float64)) / top).astype(np.int64)
    w -= q * pw
    _normalise(w)  # now in [-p, 2p)
    w += (w[-1] < 0) * pw  # [0, 2p)
    return _below_p(w, pw)


def _below_p(w, pw):
    """Values in ``[0, 2p)`` (limbs each below 2**62) as normalised limbs in ``[0, p)``: p subtracted
    where it fits; ``w`` is changed. ``reduce``'s last step, and alone half of its steps, for a sum of
    two values below p."""
    _normalise(w)
    d = w - pw
    _normalise(d)
    return np.where(d[-1] < 0, w, d)


def randoms_below(order: int, n: int):
    """``n`` uniform integers in ``[0, order)`` from the OS's CSPRNG, as limbs: each drawn from
    ``bit_length(order - 1)`` random bits of ``os.urandom``, and drawn again if it is ``order`` or
    more (exactly uniform; fewer than half the draws are redrawn, none for a power of two, and
    hardly any for the primes ``SecInt`` picks, just below a power of two)."""
    count = limb_count(order)
    top_mask = (1 << ((order - 1).bit_length() - BITS * (count - 1))) - 1

    def draw(k):
        w = _from_bytes(os.urandom(6 * count * k), count)
        w[-1] &= top_mask
        return w

    w = draw(n)
    if not order & (order - 1):  # a power of two: every draw is below it (and it may need a limb more)
        return w
    ow = _p_words(order, count)
    while True:
        d = w - ow
        _normalise(d)
        again = np.flatnonzero(d[-1] >= 0)
        if not again.size:
            return w
        w[:, again] = draw(again.size)


def random_integers(order: int, n: int):
    """What ``randoms_below`` draws, as an object array of Python integers, without limbs: each
    value read from its own ``bit_length(order - 1)`` random bits of ``os.urandom`` (big-endian,
    the surplus top bits cleared by numpy), redrawn while it is ``order`` or more. Cheaper than
    limbs for a few values, and for ``arith.trunc``'s masks, which stay integers."""
    bits = (order - 1).bit_length()
    if not bits:  # order 1: only 0
        return np.zeros(n, dtype=object)
    size = (bits + 7) // 8

    def draw(k):
        stream = np.frombuffer(os.urandom(size * k), dtype=np.uint8).reshape(k, size).copy()
        stream[:, 0] &= 0xFF >> (8 * size - bits)
        return integers(stream, size, "big")

    out = draw(n)
    while (again := np.flatnonzero(out >= order)).size:
        out[again] = draw(again.size)
    return out


def split(s, p: int, t: int, m: int) -> list:
    """Shamir shares of degree t of the values ``s`` (integers in ``[0, p)``, p a prime) for the
    points 1..m (m below 2**14), one row per point: the random coefficients drawn in bulk, the
    polynomials evaluated by Horner's rule at the small points (reduced after each step for
    t > 1; for t = 1 each row is the last one plus the coefficient, less p where that fits). A
    row is a ``Words`` in limbs; below ``SMALL`` values, where numpy's cost per call outweighs the
    work, an object array of Python integers instead."""
    values = np.asarray(s, dtype=object).reshape(-1)
    n = len(values)
    if n < SMALL:
        return list(_split_ints(values, p, [random_integers(p, n) for _ in range(t)], m))
    if n <= BLOCK:
        return _split_words(values, p, t, m)
    # A block at a time, each row's block turned into its wire bytes while in the cache: every step
    # is a pass over the limbs, several times dearer once they no longer fit (4 M values: 2.6 s
    # against 0.4 s). The rows hold those bytes; their limbs are read back only if asked for.
    blocks = [_split_words(values[i : i + BLOCK], p, t, m) for i in range(0, n, BLOCK)]
    data = (np.concatenate([block[x]._bytes() for block in blocks]).reshape(-1) for x in range(m))
    return [Words(data=row, count=limb_count(p)) for row in data]


def _split_words(values, p: int, t: int, m: int) -> list:
    """``split``'s rows in limbs, for an object array of integers in ``[0, p)``."""
    n, count = len(values), limb_count(p)
    secret = to_words(values.tolist(), count)
    c = [randoms_below(p, n) for _ in range(t)]  # c[j] multiplies x**(j + 1)
    if t == 1:  # s + x c, each row from the last: s + c below 2p, one conditional subtraction of p
        pw, y, rows = _p_words(p, count), secret, []
        for _ in range(m):
            y = _below_p(y + c[0], pw)
            rows.append(Words(y))
        return rows
    rows = []
    for x in range(1, m + 1):
        if t == 0:
            y = secret.copy()
        else:  # Horner: s + c_1 x + ... + c_t x**t, reduced after each step (below (x + 1) p)
            y = c[t - 1].copy()
            for j in range(t - 2, -1, -1):
                y = reduce(y * x + c[j], p)
            y = y * x + secret
        rows.append(Words(reduce(y, p)))
    return rows


def _split_ints(s, p: int, c: list, m: int):
    """``split``'s rows in Python's integers, from the coefficients ``c`` (object arrays)."""
    t = len(c)
    for x in range(1, m + 1):
        if not t:
            yield s % p
            continue
        y = c[t - 1]
        for j in range(t - 2, -1, -1):
            y = y * x + c[j]
        yield (y * x + s) % p


def combine(coefficients, rows, p: int):
    """``sum(a * row) mod p`` for small integer coefficients, as an object array of integers in
    ``[0, p)``: in limbs when every row is a ``Words`` and the coefficients' absolute values add up
    to less than ``HEADROOM``, otherwise in Python's integers (rows of ``split``'s small vectors,
    or of anything numpy reads as integers)."""
    if all(isinstance(row, Words) for row in rows) and sum(map(abs, coefficients)) < HEADROOM:
        total = rows[0].words * coefficients[0]  # a new array: the sums below are in place
        for a, row in zip(coefficients[1:], rows[1:]):
            total += row.words * a
        return to_ints(reduce(total, p))
    values = [np.asarray(row, dtype=object) for row in rows]
    total = values[0] * coefficients[0]
    for a, v in zip(coefficients[1:], values[1:]):
        if a == 1:
            total += v
        elif a == -1:
            total -= v
        else:
            total += v * a
    return total % p


class Words:
    """A vector of field elements as normalised limbs (``words``, shape (L, n)). It pickles as 6
    bytes per limb, which are also each value's little-endian bytes: a ``Words`` unpickled from
    them reads its integers straight from them where numpy asks for an array (MPyC's input reads
    its shares with ``field.array``), and its limbs only where ``combine`` needs them. ``data`` is
    those bytes (``bytes`` or a flat uint8 array: a long ``split`` row, made a block at a time)."""

    __slots__ = ("_words", "_data", "_count")

    def __init__(self, words=None, *, data=b"", count: int = 0) -> None:
        self._words, self._data = words, data
        self._count = count if words is None else words.shape[0]

    @property
    def words(self):
        if self._words is None:
            self._words = _from_bytes(self._data, self._count)
        return self._words

    def _bytes(self):
        return np.frombuffer(self._data, dtype=np.uint8) if self._words is None else _to_bytes(self._words)

    def __len__(self) -> int:
        return len(self._data) // (6 * self._count) if self._words is None else self._words.shape[1]

    def __array__(self, dtype=None, copy=None):
        return integers(self._bytes(), 6 * self._count)

    def big_endian(self, width: int):
        """The values as ``width`` big-endian bytes each, an (n, width) uint8 array, straight from
        the limbs' little-endian bytes (no Python integers): what ``sharing.pack`` writes. Raises
        ValueError if a value needs more than ``width`` bytes."""
        row = 6 * self._count
        little = self._bytes().reshape(-1, row)
        if width > row:
            little = np.pad(little, ((0, 0), (0, width - row)))
        elif little[:, width:].any():
            raise ValueError(f"a value does not fit in {width} bytes")
        return np.ascontiguousarray(little[:, width - 1 :: -1])

    def __reduce__(self):
        return (_unpickle, (self._bytes().tobytes(), self._count))


def _unpickle(data: bytes, count: int) -> Words:
    if count < 1 or len(data) % (6 * count):
        raise ValueError(f"a vector of shares has {len(data)} bytes, not a multiple of {6 * max(count, 1)}")
    return Words(data=data, count=count)
