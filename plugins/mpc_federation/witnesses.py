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
per input party, only whether *its* combination is 0. Every party's combination uses the same
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
    import numpy as np

    words = np.frombuffer(hashlib.shake_256(seed + label.encode()).digest(16 * count), dtype="<u8").reshape(count, 2)
    return (words[:, 1].astype(object) << 64) | words[:, 0].astype(object)


def combinations(spec_input, values, witness, seed: bytes, label: str, modulus: int):
    """This party's shares of the random linear combination of one input's constraints for each
    party: 0 where a party's witness is honest. ``values`` of shape (parties, n) and ``witness`` of
    shape (parties, layout size) are this party's shares as integers (any representatives
    mod p: only the sum is reduced); the coefficients are drawn for ``label`` and
    are the same for every party (each party's sum is tested on its own, so its verdict still
    depends on its own constraints alone).

    Everything is local: the constraints are evaluated on the shares as plain integers and reduced
    once, so the result is a sharing of degree 2t (a product of two degree-t sharings, plus linear
    terms). Sums of such results over chunks and inputs stay of degree 2t; one resharing (MPyC's,
    as after its own products) brings the total back to degree t before it is tested.

    The sum is gathered by the terms' shares rather than by constraint: for the range bits ``b`` of a
    target ``y`` with coefficients ``c`` (per bit) and ``d`` (per value),
    ``sum c*(b*b - b) + sum d*(sum 2**j b_j - y) = b . (c*b + e) - d . y`` with the public
    ``e = d*2**j - c``: two products per bit in one inner product (numpy's ``dot``), not four
    operations and a sum; the nonzero indicators' three constraints likewise in two inner products.
    """
    import numpy as np

    parties, n = values.shape
    lay = layout(spec_input, n)
    L = lay.bits
    counter = iter(range(16))
    total = np.zeros(parties, dtype=object)
    twos = np.array([2**j for j in range(L)], dtype=object)

    def family(count):  # independent pseudorandom coefficients for one family of constraints
        return coefficients(seed, f"{label}/{next(counter)}", count)

    ranges = [values - spec_input.low]
    if lay.upper:
        ranges.append(spec_input.high - values)
    pos = 0
    for target in ranges:
        c, d = family(n * L), family(n)  # c: each bit is 0 or 1; d: the bits are those of the target
        e = (d.reshape(n, 1) * twos).reshape(n * L) - c
        bits = witness[:, pos : pos + n * L]
        pos += n * L
        for i in range(parties):
            total[i] += np.dot(bits[i], c * bits[i] + e) - np.dot(d, target[i])
    if lay.nonzero:
        z, w = witness[:, pos : pos + n], witness[:, pos + n : pos + 2 * n]
        # f1*z*(z-1) (z is 0 or 1) + f2*x*(1-z) (x = 0 where z = 0) + f3*(x*w - z) (z = 1 exactly
        # where x has an inverse) = z . (f1*z - f2*x - f1 - f3) + x . (f2 + f3*w)
        f1, f2, f3 = family(n), family(n), family(n)
        for i in range(parties):
            x = values[i]
            total[i] += np.dot(z[i], f1 * z[i] - f2 * x - (f1 + f3)) + np.dot(x, f2 + f3 * w[i])
    return total % modulus
