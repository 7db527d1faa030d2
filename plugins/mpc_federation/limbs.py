"""Vectors of prime-field elements in machine words, for the linear steps of a resharing.

MPyC keeps a field array as a numpy array of Python integers, so every addition or reduction of a
share is a Python operation on a big integer (100-300 ns each here). A resharing only splits each
value into Shamir shares (additions of random multiples) and recombines the shares it receives
(a sum with small integer coefficients): linear steps that numpy can do on machine words. Here a
vector is an ``(L, n)`` int64 array of 48-bit limbs, least significant first (``words``); a sum of
up to 2**14 terms of 48-bit limbs fits in 62 bits, so limbs are added and scaled without carries
and reduced modulo p once (``reduce``). The shares travel as 6 bytes per limb (``Words``'s pickle).

Used by ``mpyc_compat.install_fast_random_split`` and ``install_fast_recombine`` in the MPyC process.
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


def limb_count(p: int) -> int:
    return -(-(p - 1).bit_length() // BITS)


def to_words(values, count: int):
    """The ``count`` limbs of each integer in ``values`` (a list of integers in ``[0, 2**(48 count))``)
    as a (count, n) int64 array: one C-level ``int.to_bytes`` per value, the rest in numpy."""
    data = np.fromiter(map(int.to_bytes, values, repeat(6 * count), repeat(LITTLE)), f"S{6 * count}", len(values))
    return _from_bytes(data, count)


def _from_bytes(data, count: int):
    """Limbs from 6 little-endian bytes each, value after value (``bytes`` or a numpy buffer)."""
    raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, count, 6)
    words = np.zeros((count, raw.shape[0]), dtype="<i8")
    words.view(np.uint8).reshape(count, -1, 8)[:, :, :6] = raw.transpose(1, 0, 2)
    return words


def _to_bytes(words):
    """The limbs (each in ``[0, 2**48)``) as 6 little-endian bytes each, value after value: an (n, 6L)
    uint8 array."""
    count, n = words.shape
    out = np.empty((n, count, 6), dtype=np.uint8)
    out[...] = np.ascontiguousarray(words, dtype="<i8").view(np.uint8).reshape(count, n, 8)[:, :, :6].transpose(1, 0, 2)
    return out.reshape(n, 6 * count)


def to_ints(words):
    """The integers of normalised limbs (each in ``[0, 2**48)``), as an object array."""
    return np.asarray(Words(words))


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
    """The values of the limbs ``w`` (any int64 limbs of a value in ``(-2**14 p, 2**14 p)``) modulo p,
    as normalised limbs in ``[0, p)``; ``w`` is changed. The quotient is estimated in floating point
    from the top two limbs (off by at most one), then corrected exactly."""
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
    w += (w[-1] < 0) * pw
    _normalise(w)  # [0, 2p)
    d = w - pw
    _normalise(d)
    return np.where(d[-1] < 0, w, d)


def randoms_below(p: int, n: int):
    """``n`` uniform values in ``[0, p)`` as limbs: each drawn from ``bit_length(p - 1)`` random bits
    of ``os.urandom``, and drawn again if it is ``p`` or more."""
    count = limb_count(p)
    top_mask = (1 << ((p - 1).bit_length() - BITS * (count - 1))) - 1
    pw = _p_words(p, count)

    def draw(k):
        w = _from_bytes(os.urandom(6 * count * k), count)
        w[-1] &= top_mask
        return w

    w = draw(n)
    while True:
        d = w - pw
        _normalise(d)
        again = np.flatnonzero(d[-1] >= 0)
        if not again.size:
            return w
        w[:, again] = draw(again.size)


def split(s, p: int, t: int, m: int) -> list[Words]:
    """Shamir shares of degree t >= 1 of the values ``s`` (integers in ``[0, p)``) for the points
    1..m, one ``Words`` per point: s plus random multiples, in limbs."""
    count = limb_count(p)
    secret = to_words(np.asarray(s, dtype=object).reshape(-1).tolist(), count)
    n = secret.shape[1]
    c = [randoms_below(p, n) for _ in range(t)]
    rows = []
    for x in range(1, m + 1):
        if t == 1:
            y = secret + x * c[0]
        else:  # Horner: s + c_1 x + ... + c_t x**t, reduced after each step (small x)
            y = c[t - 1].copy()
            for j in range(t - 2, -1, -1):
                y = reduce(y * x + c[j], p)
            y = y * x + secret
        rows.append(Words(reduce(y, p)))
    return rows


def combine(coefficients, rows, p: int):
    """``sum(a * row) mod p`` for small integer coefficients (the sum of their absolute values below
    2**14) and ``Words`` rows, as an object array of integers in ``[0, p)``."""
    total = None
    for a, row in zip(coefficients, rows):
        term = row.words * a if a != 1 else row.words
        total = term.copy() if total is None else total + term
    return to_ints(reduce(total, p))


class Words:
    """A vector of field elements as normalised limbs (``words``, shape (L, n)). It pickles as 6
    bytes per limb, which are also each value's little-endian bytes: a ``Words`` unpickled from
    them reads its integers straight from them where numpy asks for an array (MPyC's input reads
    its shares with ``field.array``), and its limbs only where ``combine`` needs them."""

    __slots__ = ("_words", "_data", "_count")

    def __init__(self, words=None, *, data: bytes = b"", count: int = 0) -> None:
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
        n, width = len(self), 6 * self._count
        values = self._bytes().view(f"S{width}").reshape(n).tolist()  # little-endian: the zeros S drops are high
        return np.fromiter(map(int.from_bytes, values, repeat(LITTLE)), dtype=object, count=n)

    def __reduce__(self):
        return (_unpickle, (self._bytes().tobytes(), self._count))


def _unpickle(data: bytes, count: int) -> Words:
    return Words(data=data, count=count)
