"""Input checks inside the MPC: every input party proves its values lie in their declared ranges.

An input party's own check before sharing protects honest parties from their mistakes, not the
federation from a malicious party: a value outside its range (``count = 2**40``) could turn a
suppression flag into garbage, or let a secure comparison leak (MPyC's comparisons are only
statistically hiding for values within their bit length). So every value is checked again inside
the MPC, the way Prio validates client inputs: with each value ``x`` of an input declared in
``[low, high]`` the party also secret-shares a *witness*:

* the L bits of ``x - low`` and, unless ``high - low + 1 == 2**L``, the L bits of ``high - x``
  (L = bit length of ``high - low``): then ``x`` is in ``[low, high]`` exactly;
* for inputs declared ``nonzero=True``, ``z = [x != 0]`` and ``w = 1/x`` (0 for ``x = 0``): then
  ``z`` is the verified 0/1 indicator the program may count (a firm with revenue in a market).

The compute parties check all constraints at once: each is a polynomial of degree at most 2 that
is 0 for an honest witness (``b*(b-1)``, ``sum(b_j 2**j) - (x - low)``, ``z*(z-1)``,
``x*(1-z)``, ``x*w - z``); they take a random linear combination with coefficients drawn after
the inputs were fixed (evaluated by each compute party on its shares, as one would a secure
inner product: a single resharing for every party, chunk and input), and MPyC's public zero test tells,
per input party, only whether *its* combination is 0. Products of shares are sound only for
sharings of degree t, so before that test the compute parties check that every share an input party
dealt lies on a polynomial of degree t (``linear``). Every party's combination uses the same
coefficients, but each is tested on its own: a party's verdict depends on its own input alone, so
naming the party that failed reveals nothing about anyone else. A wrong witness passes
with probability at most ``2**-128 + 2/p``: a 128-bit coefficient that cancels the wrong constraint
(``coefficients``), or MPyC's zero test erring (1/p); below ``2**-95`` from ``SecInt(64)`` on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class WitnessLayout:
    """How one input's witness is laid out for a vector of n values.

    :param n: values in the vector.
    :param bits: L, bits per range witness.
    :param upper: whether the bits of ``high - x`` are included.
    :param nonzero: whether ``z`` and ``w`` are included.
    """

    n: int
    bits: int
    upper: bool
    nonzero: bool

    @property
    def size(self) -> int:
        return self.n * (self.bits * (2 if self.upper else 1) + (2 if self.nonzero else 0))


def layout(spec_input, n: int) -> WitnessLayout:
    """The witness layout of a declared ``Input`` with ``n`` values."""
    span = spec_input.high - spec_input.low
    bits = max(1, span.bit_length())
    return WitnessLayout(n, bits, upper=span + 1 != 2**bits, nonzero=spec_input.nonzero)


def make(spec_input, values: list[int], modulus: int) -> list[int]:
    """The witness of an input party's checked values (plain integers mod p), in layout order:
    lower-range bits (value-major), upper-range bits, z, w."""
    lay = layout(spec_input, len(values))
    out = [(v - spec_input.low) >> j & 1 for v in values for j in range(lay.bits)]
    if lay.upper:
        out += [(spec_input.high - v) >> j & 1 for v in values for j in range(lay.bits)]
    if lay.nonzero:
        out += [1 if v else 0 for v in values]
        out += [pow(v, -1, modulus) if v % modulus else 0 for v in values]
    return out


CHUNK = 4096  # values per party checked at once: bounds the checks' memory (42 field elements per HHI value)


def part(witness: np.ndarray, lay: WitnessLayout, start: int, stop: int) -> np.ndarray:
    """The piece of one party's witness (an array in ``lay``'s order) for its values ``[start,
    stop)``, laid out as the witness of those values alone (``layout(spec_input, stop - start)``)."""
    import numpy as np

    n, bits = lay.n, lay.bits
    pieces = [witness[start * bits : stop * bits]]
    pos = n * bits
    if lay.upper:
        pieces.append(witness[pos + start * bits : pos + stop * bits])
        pos += n * bits
    if lay.nonzero:
        pieces += [witness[pos + start : pos + stop], witness[pos + n + start : pos + n + stop]]
    return np.concatenate(pieces)


def indicator(witness: np.ndarray, lay: WitnessLayout) -> np.ndarray:
    """The verified indicators ``z = [x != 0]`` of one party's witness (``nonzero`` inputs)."""
    start = lay.size - 2 * lay.n
    return witness[start : start + lay.n]


def coefficients(seed: bytes, label: str, count: int) -> np.ndarray:
    """``count`` pseudorandom 128-bit integers from a public seed (SHAKE-256), for one label, as an
    object array. The random linear combination needs no full field elements: for a constraint that
    is not 0, one value of its coefficient mod p makes the sum 0, whatever the others are, and at
    most ``ceil(2**128 / p)`` of the ``2**128`` draws have it: probability at most
    ``2**-128 + 1/p``. A 128-bit coefficient is read from two 64-bit words and multiplies a share
    faster than a field element."""
    return _word_ints(_coefficient_words(seed, label, count))


def _word_ints(words) -> np.ndarray:
    """(k, 2) 64-bit words, low first, as an object array of k integers."""
    return (words[:, 1].astype(object) << 64) | words[:, 0].astype(object)


def _coefficient_words(seed: bytes, label: str, count: int) -> np.ndarray:
    """``coefficients``' draws as a ``(count, 2)`` array of 64-bit words, low word first."""
    import numpy as np

    return np.frombuffer(hashlib.shake_256(seed + label.encode()).digest(16 * count), dtype="<u8").reshape(count, 2)


def combinations(spec_input, values, witness, seed: bytes, label: str, modulus: int):
    """This party's shares of the random linear combination of one input's constraints for each
    party: 0 where a party's witness is honest. ``values`` of shape (parties, n) are this party's
    shares as integers, ``witness`` its shares of the witnesses: a (parties, layout size, width)
    uint8 array of big-endian bytes (``sharing.unpack_bytes``), or a (parties, layout size) array of
    integers of the field's width (``sharing.pack``). Any representatives mod p will do: only the
    sums are reduced. The coefficients are drawn for ``label`` and are the same for every party
    (each party's sum is tested on its own, so its verdict still depends on its own constraints
    alone).

    Everything is local: the constraints are evaluated on the shares as plain integers and reduced
    once, so the result is a sharing of degree 2t (a product of two degree-t sharings, plus linear
    terms). Sums of such results over chunks and inputs stay of degree 2t; one resharing (MPyC's,
    as after its own products) brings the total back to degree t before it is tested.

    The range bits are nearly all of a witness (40 of the 42 shares per value of an HHI revenue), so
    their terms are computed exactly without Python's integers: for the bits ``b`` of a target ``y``
    with coefficients ``c`` (per bit) and ``d`` (per value),
    ``sum c*(b*b - b) + sum d*(sum 2**j b_j - y) = c . b**2 - c . b + d . R - d . y`` with each
    value's recomposition ``R = sum 2**j b_j``, and every inner product of two such vectors is
    taken in 16-bit digits, as products of digit matrices of 64-bit integers (``_inner``), in
    blocks small enough that no sum reaches 2**62: exact. (In floating point, BLAS's threads made
    the checks three times slower in three MPyC processes on two cores.) The nonzero indicators'
    three constraints are two inner products of Python's integers,
    ``z . (f1*z - f2*x - f1 - f3) + x . (f2 + f3*w)``.
    """
    import numpy as np

    from mpc_federation.sharing import integers

    parties, n = values.shape
    lay = layout(spec_input, n)
    witness = _as_bytes(witness, modulus)
    L = lay.bits
    counter = iter(range(16))
    total = np.zeros(parties, dtype=object)

    def family(count):  # independent pseudorandom words for one family of constraints
        return _coefficient_words(seed, f"{label}/{next(counter)}", count)

    ranges = [values - spec_input.low]
    if lay.upper:
        ranges.append(spec_input.high - values)
    pos = 0
    for target in ranges:
        c, d = family(n * L), family(n)  # c: each bit is 0 or 1; d: the bits are those of the target
        c_digits, d_digits, d_ints = _word_digits(c), _word_digits(d), _word_ints(d)
        for i in range(parties):
            b = _byte_digits(witness[i, pos : pos + n * L])
            total[i] += (
                _inner(c_digits, _square(b))
                - _inner(c_digits, b)
                + _recomposed(d_digits, b, n, L)
                - np.dot(d_ints, target[i])
            )
        pos += n * L
    if lay.nonzero:
        # f1*z*(z-1) (z is 0 or 1) + f2*x*(1-z) (x = 0 where z = 0) + f3*(x*w - z) (z = 1 exactly
        # where x has an inverse) = z . (f1*z - f2*x - f1 - f3) + x . (f2 + f3*w)
        f1, f2, f3 = (coefficients(seed, f"{label}/{next(counter)}", n) for _ in range(3))
        for i in range(parties):
            x = values[i]
            z, w = integers(witness[i, pos : pos + n]), integers(witness[i, pos + n : pos + 2 * n])
            total[i] += np.dot(z, f1 * z - f2 * x - (f1 + f3)) + np.dot(x, f2 + f3 * w)
    return total % modulus


def linear(values, witness, seed: bytes, label: str, modulus: int):
    """This party's shares of a random linear combination of every share each party sent of one
    input (its values and its witness), one per party, with coefficients drawn for ``label``, the
    same for every party.

    The constraints above are sound only for sharings of degree t: with ``2t + 1`` compute parties
    any shares at all lie on some polynomial of degree 2t, so a party that deals a witness off every
    polynomial of degree t can make a local product read as whatever it likes (``x * w - z`` as 0
    with ``x = 0`` and ``z = 1``: a firm without revenue counted as one). A linear combination of
    sharings of degree t is of degree t; for a party with any sharing that is not, a combination with
    128-bit coefficients drawn after its shares were fixed is not either, but with probability at
    most ``2**-128 + 1/p`` (as in ``coefficients``). The compute parties mask the combination with a
    fresh random sharing and compare all its shares (``worker._check_degrees``). ``values`` and
    ``witness`` as in ``combinations``."""
    import numpy as np

    parties, n = values.shape
    witness = _as_bytes(witness, modulus)
    a = coefficients(seed, f"{label}/linear/values", n)
    b = _word_digits(_coefficient_words(seed, f"{label}/linear/witness", witness.shape[1]))
    total = np.zeros(parties, dtype=object)
    for i in range(parties):
        total[i] = np.dot(a, values[i]) + _inner(b, _byte_digits(witness[i]))
    return total % modulus


def _as_bytes(witness, modulus: int):
    """A witness of integers as the big-endian byte rows it travels in (``sharing.unpack_bytes``);
    byte rows as they are."""
    import numpy as np

    from mpc_federation.sharing import pack, unpack_bytes

    if witness.dtype != object:
        return witness
    return np.stack([unpack_bytes(pack(row, modulus), modulus) for row in witness.tolist()])


# -- exact inner products in 16-bit digits ----------------------------------------------------------------
# A vector of k numbers is a (digits, k) int64 array, the least significant 16-bit digit first.
DIGIT = 16


def _byte_digits(rows):
    """Big-endian byte rows (k, width) as digits (ceil(width / 2), k)."""
    import numpy as np

    k, w = rows.shape
    if w % 2:
        rows = np.concatenate((np.zeros((k, 1), dtype=np.uint8), rows), axis=1)
    return np.ascontiguousarray(np.ascontiguousarray(rows).view(">u2")[:, ::-1].T, dtype=np.int64)


def _word_digits(words):
    """(k, 2) 64-bit words, low first, as digits (8, k)."""
    import numpy as np

    out = np.empty((8, len(words)), dtype=np.int64)
    for i in range(8):
        out[i] = (words[:, i // 4] >> np.uint64(DIGIT * (i % 4))) & np.uint64(0xFFFF)
    return out


def _square(b):
    """Each number squared, as digit sums (2D - 1, k), each below D * 2**32 (not carried)."""
    import numpy as np

    digits, k = b.shape
    out = np.zeros((2 * digits - 1, k), dtype=np.int64)
    for j in range(digits):
        out[j : j + digits] += b[j] * b
    return out


def _recomposed(d_digits, bits, n: int, L: int):
    """``sum_v d_v * sum_j 2**j b_vj`` for the digits of d (8, n) and of the bits (D, n L), value
    after value: each value's recomposition summed 16 bits of j at a time (below 2**32 per digit)."""
    import numpy as np

    by_value = bits.reshape(len(bits), n, L)
    total = 0
    for low in range(0, L, DIGIT):
        j = np.arange(low, min(low + DIGIT, L))
        total += _inner(d_digits, (by_value[:, :, j] << (j - low)).sum(axis=2)) << low
    return total


def _inner(a, b) -> int:
    """``sum_k A_k * B_k`` as a Python integer, for the numbers ``A_k`` (digits ``a[:, k]``, below
    2**16) and ``B_k`` (nonnegative entries ``b[:, k]``, below 2**46): the digit products summed in
    64-bit integers, exactly, over as many numbers at a time as keeps each sum below 2**62."""
    import numpy as np

    rows = 1 << max(0, 62 - DIGIT - int(b.max(initial=0)).bit_length())
    sums = np.zeros((len(a), len(b)), dtype=object)
    for start in range(0, a.shape[1], rows):
        sums += (a[:, start : start + rows] @ b[:, start : start + rows].T).astype(object)
    return sum(int(v) << (DIGIT * (i + j)) for (i, j), v in np.ndenumerate(sums))
