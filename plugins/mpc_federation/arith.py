"""Secure arithmetic for programs: floors (``at_least``) and exact rounded division
(``round_div(num, den) = floor(num/den + 1/2)``), on MPyC secure integer arrays.

Outputs are revealed at a declared precision (an HHI in hundredths of a point, a mean in cents),
never as an exact fraction: an exact fraction in lowest terms gives away its denominator, e.g. a
market's total revenue. Secure integer ``//`` and ``SecFxp`` at default sizes are not usable here
(the first did not finish with three parties in trials, the second overflows or is off by tens of
HHI points), so this module computes the rounded quotient itself, from MPyC's vectorised building
blocks (``np_to_bits``, ``np_find``, ``trunc`` below, ``np_sgn``) on secure integer arrays, in a number
of rounds that does not depend on how many quotients are computed at once:

1. **Normalise** the denominator: ``v = 2**(B - bitlen(D))`` from D's bits (``np_find`` of the
   leading one), so ``D1 = D*v`` lies in ``[2**(B-1), 2**B)`` and ``N1 = N*v`` keeps the quotient.
2. **Reciprocal** by Newton's iteration in fixed point with F fractional bits: ``X ~ D1/2**(B-F)``,
   ``y0 = 2.9142 - 2x`` (relative error at most 0.0858 on ``[1/2, 1)``), then ``y <- y*(2 - x*y)``,
   ``theta = ceil(log2(F/3.54))`` times (the error squares each time), with a probabilistic
   truncation after every product (``trunc``: each adds at most t + 1 units in the last place).
3. **Estimate** ``z ~ (N1*y/2**(B+F) + 1) * 2**G`` (G = 6 fraction bits). With ``F = Q + 8``
   for quotients below ``2**Q`` it is within ``1/2`` of ``N/D + 1``; its G fraction bits are then
   cut off *exactly* (MPyC's ``np_to_bits`` on G bits), so ``m = floor(z / 2**G)`` is the integer
   nearest to an estimate of ``u = N/D + 1/2`` and ``u`` lies in ``[m - 1, m + 1)``.
4. **Correct exactly** with one secure comparison: ``q = m - [2N + D - 2mD < 0]``, the compared
   value lying in ``[-2D, 2D)``, so the comparison runs on ``B + 3`` bits. Ties round up (towards
   plus infinity), for negative quotients too.

Nothing is opened except masked values inside these building blocks, so the result is a
secret-shared integer; the caller reveals it (to the recipients only).

**Error budget** (in units ``u = 2**-F``, t the threshold): ``trunc`` rounds up by at most t + 1
units. The reciprocal of the normalised root ends within ``(0.78 + 3(t+1))u`` of ``1/X``, its square
within ``(1.56 + 7(t+1))u``, so the quotient estimate is off by at most ``2**Q * (1.56 + 7(t+1))u
= (1.56 + 7(t+1)) / 256`` from the reciprocal and ``(t+1) / 2**G`` from cutting z: below ``1/2``
for ``t <= 7`` (15 compute parties). ``round_div`` refuses a larger threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

_Y0 = 2.9142135623731  # 2*sqrt(2) + 1/2, the best linear start for 1/x on [1/2, 1)
_G = 6  # fraction bits of the estimate before its exact rounding
MAX_THRESHOLD = 7  # the error budget above holds up to here


class _Inverses(dict):
    """1 / 2**G in each field used, computed once."""

    def __missing__(self, p: int) -> int:
        self[p] = pow(2**_G, -1, p)
        return self[p]


_INVERSE_2G = _Inverses()


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
        return max(b + q + 3, q + 2 * f + 6, 2 * f + 6, b + 4)


CHUNK = 4096  # quotients computed at once: bounds the memory; below it the rounds do not depend on n


def round_div(mpc, num, den, size: DivisionSize, *, root=None, valid=None, chunk: int = CHUNK):
    """``floor(num/den + 1/2)`` elementwise, for secure integer arrays of one shape.

    Up to ``chunk`` quotients are computed at once, in a number of rounds that does not depend on
    how many; longer vectors are cut into chunks computed one after the other (the rounds then grow
    with ``n / chunk``, the memory does not grow with n).

    :param num: numerators, ``|num| < den * 2**Q`` (where ``valid`` is 1).
    :param den: denominators in ``[1, 2**B)`` (``[0, 2**B)`` where ``valid`` is 0).
    :param size: B and Q.
    :param root: optionally ``r`` with ``den = r * r`` (an HHI's total revenue): the normalisation
        then works on r's B/2 bits instead of den's B bits, about half the cost.
    :param valid: optionally a secure array that is 0 or 1 by construction (a floor from
        ``at_least``, never an input: another value would push the steps out of their ranges);
        where it is 0 (a suppressed cell) the quotient is 0, computed as 0 / 1 whatever ``num``
        and ``den`` are. The normalisation starts at once, before ``valid`` is known, so the floor
        that usually gives ``valid`` runs alongside it instead of before it (a few rounds fewer on
        the critical path).
    :param chunk: the most quotients computed at once.
    """
    secarray = type(den)
    if mpc.threshold > MAX_THRESHOLD:
        raise ValueError(f"round_div is exact for thresholds up to {MAX_THRESHOLD}, got {mpc.threshold}")
    if secarray.sectype.bit_length < size.secint_bits:
        raise ValueError(
            f"round_div needs SecInt({size.secint_bits}) for {size}, got SecInt({secarray.sectype.bit_length})"
        )
    if den.size <= chunk:
        return _round_div(mpc, num, den, size, root, valid)
    return _chunked(mpc, num, den, size, root, valid, chunk)


def _chunked(mpc, num, den, size: DivisionSize, root, valid, chunk: int):
    """``_round_div`` over consecutive slices of the flattened arrays, one slice at a time: each
    slice's result is awaited (this party's shares, nothing opened) before the next one starts."""
    import numpy as np

    secarray, shape, n = type(den), den.shape, den.size
    flat = [None if a is None else a.reshape((n,)) for a in (num, den, root, valid)]

    @mpc.coroutine
    async def run(num, den, root, valid):
        await mpc.returnType((secarray, shape))
        parts = []
        for start in range(0, n, chunk):
            cut = slice(start, min(start + chunk, n))
            root_cut, valid_cut = (None if a is None else a[cut] for a in (root, valid))
            q = _round_div(mpc, num[cut], den[cut], size, root_cut, valid_cut)
            parts.append((await mpc.gather(q)).value)
        field = secarray.sectype.field
        return field.array(np.concatenate(parts).reshape(shape), check=False)

    return run(*flat)


def _round_div(mpc, num, den, size: DivisionSize, root, valid):
    import numpy as np

    b, f = size.den_bits, size.frac_bits
    h = b if root is None else (b + 1) // 2  # root < 2**h, D1 = (root * v)**2 in [2**(2h-2), 2**(2h))
    # 1. v = 2**(number of leading zeros of den (or root) in its bits): D1 = den * v in [2**(B-1), 2**B).
    v = _normaliser(mpc, den if root is None else root, h)
    if valid is not None:  # 0 / 1 where not valid, with the normaliser of 1: every value inside as for 0 / 1
        num, den, v = valid * num, mpc.np_where(valid, den, 1), mpc.np_where(valid, v, 2 ** (h - 1))
        root = None if root is None else mpc.np_where(valid, root, 1)
    if root is None:
        n1, scale = num * v, b
        # 2. y ~ 2**(2F) / X with X ~ D1 / 2**(B-F), so y ~ 2**(F+B) / D1.
        y = _reciprocal(mpc, _shift_down(mpc, den * v, b - f, b + 1), f, size.iterations)
    else:
        n1, scale = num * (v * v), 2 * h
        y_root = _reciprocal(mpc, _shift_down(mpc, root * v, h - f, h + 1), f, size.iterations)
        y = trunc(mpc, y_root * y_root, f, 2 * f + 6)  # ~ 2**(F + 2h) / D1
    # 3. m = round(N/D), rounded exactly from an estimate within 1/2 of N/D: z ~ (N/D + 1) * 2**G
    #    by probabilistic truncation, then its G fraction bits are cut off exactly (their bits).
    n1 = _shift_down(mpc, n1, scale - f, scale + size.quotient_bits + 2)
    z = trunc(mpc, n1 * y, 2 * f - _G, size.quotient_bits + 2 * f + 6) + 2**_G
    fraction = (mpc.np_to_bits(z, _G) * np.array([2**j for j in range(_G)], dtype=object)).sum(axis=-1)
    m = (z - fraction) * _INVERSE_2G[type(z).sectype.field.modulus]  # exact: z - fraction is a multiple
    # 4. Exact correction: the true u = N/D + 1/2 lies in [m - 1, m + 1), so floor(u) is m or m - 1,
    #    decided by one secure comparison of 2N + D - 2mD, a value in [-2D, 2D).
    below = mpc.np_sgn(2 * num + den - 2 * m * den, l=b + 3, LT=True)  # 1 where u < m
    return m - below


def _normaliser(mpc, x, bits: int):
    """``2**(bits - bitlen(x))`` for x in [1, 2**bits), from x's bits (the leading one)."""
    import numpy as np

    x_bits = mpc.np_to_bits(x, bits)  # low to high
    return mpc.np_find(np.flip(x_bits, axis=-1), 1, cs_f=lambda bit, i: (bit + 1) * 2**i)


def _reciprocal(mpc, x, f: int, iterations: int):
    """y ~ 2**(2F) / x for x ~ [2**(F-1), 2**F]: Newton's iteration from the linear start.

    When the secure integers hold ``3F + 6`` bits, each step truncates once, by 2F bits, after
    both products (``y * (2**(2F+1) - x*y)``, below ``2**(3F+2)`` in absolute value): one round
    fewer per step and one rounding error instead of two; otherwise twice by F bits."""
    y = int(_Y0 * 2**f) - 2 * x
    fused = type(x).sectype.bit_length >= 3 * f + 6
    for _ in range(iterations):
        if fused:
            y = trunc(mpc, y * (2 ** (2 * f + 1) - x * y), 2 * f, 3 * f + 6)
        else:
            e = trunc(mpc, x * y, f, 2 * f + 6)
            y = trunc(mpc, y * (2 ** (f + 1) - e), f, 2 * f + 6)
    return y


def _shift_down(mpc, value, shift: int, bits: int):
    """value / 2**shift with probabilistic rounding (value times 2**-shift when shift < 0)."""
    if shift <= 0:
        return value * 2 ** (-shift)
    return trunc(mpc, value, shift, bits)


def trunc(mpc, a, f: int, bits: int):
    """``floor(a / 2**f) + e`` elementwise, ``0 <= e <= t + 1``, for a secure integer array with
    ``-2**(bits-1) <= a < 2**(bits-1)`` (MPyC's ``l``): probabilistic truncation in one input and
    one opening.

    MPyC's ``np_trunc`` masks ``a`` with f shared random bits per value, each a product of t + 1
    parties' random signs (a resharing each). Here t + 1 compute parties each input a random
    integer ``r_i`` below ``2**(k+bits-s)`` (k the statistical security parameter, ``2**s >= t + 1``)
    together with ``r_i mod 2**f``; ``c = a + 2**(bits-1) + sum r_i`` is opened, and
    ``(a + 2**(bits-1) + sum(r_i mod 2**f) - (c mod 2**f)) / 2**f - 2**(bits-1-f)`` is exact in the
    field. The honest sender's ``r_i`` makes ``c mod 2**f`` uniform and hides the rest of ``a``
    statistically (2**-(k-s-1)), as in MPyC; the carry of up to t + 1 sums of f-bit residues is
    the rounding error ``e``.
    """
    import numpy as np

    from mpc_federation import limbs

    secarray = type(a)
    field = secarray.sectype.field
    k, t = mpc.options.sec_param, mpc.threshold
    spread = t.bit_length()
    if not 0 < f < bits or bits + k + 2 > field.modulus.bit_length():
        raise ValueError(
            f"trunc by {f} of {bits}-bit values needs a field of at least {bits + k + 2} bits, "
            f"not {field.modulus.bit_length()}"
        )
    # Always the first t + 1 parties: a choice that cannot differ between parties, whatever order
    # concurrent coroutines call trunc in (the inputs are 2 values per value truncated, next to the
    # hundreds of values per market every party reshares).
    senders = list(range(t + 1))

    @mpc.coroutine
    async def run(a):
        await mpc.returnType((secarray, a.shape))
        n = a.size
        if mpc.pid in senders:
            r = limbs.random_integers(2 ** (k + bits - spread), n)
            mine = field.array(np.concatenate((r, r & (2**f - 1))), check=False)
        else:
            mine = field.array(np.zeros(2 * n, dtype=object), check=False)
        masks = [x[0].value for x in await mpc.input(mine, senders=senders)]
        total = masks[0] if len(masks) == 1 else np.sum(np.stack(masks), axis=0)
        r, r_low = total[:n], total[n:]
        shifted = (await mpc.gather(a)).value.reshape(n) + 2 ** (bits - 1) + r_low
        c = (await mpc.output(field.array(shifted + r - r_low))).value & (2**f - 1)
        y = (field.array(shifted - c) >> f) - 2 ** (bits - 1 - f)
        return y.reshape(a.shape)

    return run(a)


def at_least(mpc, x, bound: int, bits: int):
    """The 0/1 secure array ``x >= bound``, for ``x - bound`` in ``[-2**(bits-1), 2**(bits-1))``:
    by construction 0 or 1, whatever the program does with it."""
    return 1 - mpc.np_sgn(x - bound, l=bits, LT=True)


def plain_round_div(num: int, den: int) -> int:
    """The plaintext reference: floor(num/den + 1/2) for den > 0."""
    return (2 * num + den) // (2 * den)
