"""Secure arithmetic for programs: floors (``at_least``) and exact rounded division
(``round_div(num, den) = floor(num/den + 1/2)``), on MPyC secure integer arrays.

Outputs are revealed at a declared precision (an HHI in hundredths of a point, a mean in cents),
never as an exact fraction: an exact fraction in lowest terms gives away its denominator, e.g. a
market's total revenue. Secure integer ``//`` and ``SecFxp`` at default sizes are not usable here
(the first did not finish with three parties in trials, the second overflows or is off by tens of
HHI points), so this module computes the rounded quotient itself, from MPyC's vectorised building
blocks (``np_to_bits``, ``np_find``, ``np_trunc``, ``np_sgn``) on secure integer arrays, in a number
of rounds that does not depend on how many quotients are computed at once:

1. **Normalise** the denominator: ``v = 2**(B - bitlen(D))`` from D's bits (``np_find`` of the
   leading one), so ``D1 = D*v`` lies in ``[2**(B-1), 2**B)`` and ``N1 = N*v`` keeps the quotient.
2. **Reciprocal** by Newton's iteration in fixed point with F fractional bits: ``X ~ D1/2**(B-F)``,
   ``y0 = 2.9142 - 2x`` (relative error at most 0.0858 on ``[1/2, 1)``), then ``y <- y*(2 - x*y)``,
   ``theta = ceil(log2(F/3.54))`` times (the error squares each time), with MPyC's probabilistic
   truncation after every product (each adds at most one unit in the last place).
3. **Estimate** ``q' ~ N1*y/2**(B+F)``. With ``F = Q + 8`` for quotients below ``2**Q`` the
   estimate is within ``1/2`` of ``N/D`` before its last truncation, so ``q'`` is ``q-1``, ``q`` or
   ``q+1`` where ``q`` is the exact rounded quotient.
4. **Correct exactly** with two secure comparisons (in parallel):
   ``q = q' - 1 + [2N + D - 2q'D >= 0] + [2N + D - 2(q'+1)D >= 0]``. The compared values are
   below ``6D`` in absolute value, so the comparisons run on ``B + 4`` bits. Ties round up
   (towards plus infinity), for negative quotients too.

Nothing is opened except MPyC's own masked values inside these building blocks, so the result is
a secret-shared integer; the caller reveals it (to the recipients only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SEC_PARAM = 30  # MPyC's default statistical security parameter (-K)
_Y0 = 2.9142135623731  # 2*sqrt(2) + 1/2, the best linear start for 1/x on [1/2, 1)


@dataclass(frozen=True)
class DivisionSize:
    """Bit sizes of one family of divisions.

    :param den_bits: B: every denominator lies in ``[1, 2**B)``.
    :param quotient_bits: Q: every quotient ``|num/den|`` lies below ``2**Q``.
    """

    den_bits: int
    quotient_bits: int

    @property
    def frac_bits(self) -> int:
        """F: fixed-point precision of the reciprocal."""
        return self.quotient_bits + 8

    @property
    def iterations(self) -> int:
        return max(1, math.ceil(math.log2(self.frac_bits / 3.54)))

    @property
    def secint_bits(self) -> int:
        """The smallest ``SecInt`` bit length that holds every intermediate value."""
        b, q, f = self.den_bits, self.quotient_bits, self.frac_bits
        return max(b + q + 2, q + 2 * f + 4, 2 * f + 6, b + 5)


def round_div(mpc, num, den, size: DivisionSize):
    """``floor(num/den + 1/2)`` elementwise, for secure integer arrays of one shape.

    :param num: numerators, ``|num| < den * 2**Q``.
    :param den: denominators in ``[1, 2**B)``; callers mask cells with no quotient (see ``masked``).
    :param size: B and Q.
    """
    import numpy as np

    secarray = type(den)
    if secarray.sectype.bit_length < size.secint_bits:
        raise ValueError(f"round_div needs SecInt({size.secint_bits}) for {size}, "
                         f"got SecInt({secarray.sectype.bit_length})")
    b, f = size.den_bits, size.frac_bits
    # 1. v = 2**(number of leading zeros of den in B bits).
    bits = mpc.np_to_bits(den, b)  # low to high
    v = mpc.np_find(np.flip(bits, axis=-1), 1, cs_f=lambda bit, i: (bit + 1) * 2**i)
    d1 = den * v
    n1 = num * v
    # 2. y ~ 2**(2F) / X with X ~ D1 / 2**(B-F), so y ~ 2**(F+B) / D1.
    x = _shift_down(mpc, d1, b - f, b + 1)
    y = int(_Y0 * 2**f) - 2 * x
    for _ in range(size.iterations):
        e = mpc.np_trunc(x * y, f, l=2 * f + 6)
        y = mpc.np_trunc(y * (2 ** (f + 1) - e), f, l=2 * f + 6)
    # 3. q' ~ N1 / D1.
    n1 = _shift_down(mpc, n1, b - f, b + size.quotient_bits + 2)
    estimate = mpc.np_trunc(n1 * y, 2 * f, l=size.quotient_bits + 2 * f + 4)
    # 4. Exact correction by two comparisons of values below 6D.
    rest = 2 * num + den - 2 * estimate * den
    both = mpc.np_stack((rest, rest - 2 * den))
    below = mpc.np_sgn(both, l=b + 4, LT=True)  # 1 where negative
    return estimate + 1 - below[0] - below[1]


def masked(mpc, num, den, valid):
    """(num, den) where ``valid`` is 1, and (0, 1) where it is 0: a safe division for cells that
    will be suppressed (``valid`` must be a 0/1 secure array)."""
    return valid * num, valid * (den - 1) + 1


def _shift_down(mpc, value, shift: int, bits: int):
    """value / 2**shift with probabilistic rounding (value times 2**-shift when shift < 0)."""
    if shift <= 0:
        return value * 2 ** (-shift)
    return mpc.np_trunc(value, shift, l=bits)


def at_least(mpc, x, bound: int, bits: int):
    """The 0/1 secure array ``x >= bound``, for ``x - bound`` in ``[-2**(bits-1), 2**(bits-1))``:
    by construction 0 or 1, whatever the program does with it."""
    return 1 - mpc.np_sgn(x - bound, l=bits, LT=True)


def plain_round_div(num: int, den: int) -> int:
    """The plaintext reference: floor(num/den + 1/2) for den > 0."""
    return (2 * num + den) // (2 * den)
