"""``arith.trunc`` (probabilistic truncation masked by random integers that t + 1 compute parties
input) across real MPyC processes: ``floor(a / 2**f) + e`` with ``0 <= e <= t + 1`` on the extremes
of its declared range and on random values, for three and five compute parties; and exact decoding
of revealed values of any size."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path

import pytest
from mpcrun import run_program

from mpc_federation.arith import trunc
from mpc_federation.programs import fixed

PROBE = Path(__file__).resolve().parent / "programs" / "trunc_probe.py"
ROUND_DIV_PROBE = PROBE.with_name("round_div_probe.py")
RANDOM_BITS_PROBE = PROBE.with_name("random_bits_probe.py")
SHIFTS = (1, 30, 61, 119)


def cells() -> list[tuple[int, int]]:
    """(hi, lo) with a = hi * 2**60 + lo: both ends of [-2**120, 2**120), zero, -1, and random."""
    rng = random.Random(20261201)
    extremes = [(-(2**60), 0), (2**60 - 1, 2**60 - 1), (0, 0), (-1, 2**60 - 1), (-1, 0), (0, 1)]
    return extremes + [(rng.randint(-(2**60), 2**60 - 1), rng.randint(0, 2**60 - 1)) for _ in range(40)]


@pytest.mark.parametrize("m,t", [(3, 1), (5, 2)])
def test_trunc_is_the_floor_plus_at_most_t_plus_one(m, t):
    values = cells()
    labels = [f"c{i}" for i in range(len(values))]
    party = {"hi": [hi for hi, _ in values], "lo": [lo for _, lo in values]}
    out = run_program(PROBE, {"cell": labels}, {"company_a": party}, m=m, t=t)
    seen = set()
    for f in SHIFTS:
        for label, (hi, lo), exact in zip(labels, values, out[f"shift_{f}"]["exact"]):
            a = hi * 2**60 + lo
            error = int(Decimal(exact)) - (a >> f)  # >> is the floor, for negative a too
            assert 0 <= error <= t + 1, (label, f, error)
            seen.add(error)
    assert {0, 1} <= seen  # a real rounding error, not always 0 (t + 1 itself is too rare to require)


def test_trunc_refuses_a_field_too_small_for_its_mask():
    import numpy as np
    from mpyc.runtime import mpc

    secint = mpc.SecInt(64)  # a field of 96 bits: 64-bit values and a 30-bit mask fit, 65-bit ones do not
    with pytest.raises(ValueError, match="needs a field of at least 97 bits, not 96"):
        trunc(mpc, secint.array(np.array([1])), 10, 65)


def test_fixed_is_exact_at_any_size():
    assert str(fixed(-(2**120), 0)) == str(-(2**120))
    assert str(fixed(10**40 + 1, 3)) == "1" + "0" * 37 + ".001"
    assert str(fixed(-5, 4)) == "-0.0005"
    assert str(fixed(0, 2)) == "0.00"


@pytest.mark.parametrize("words", [False, True], ids=["small vector", "large vector"])
@pytest.mark.parametrize("t,m", [(1, 3), (1, 4), (2, 5), (3, 7)])
def test_the_bulk_random_split_is_a_shamir_sharing_of_degree_t(t, m, words, monkeypatch):
    """The installed ``np_random_split`` (bulk randomness): one row per party, a ``limbs.Words``
    for a large vector, each surviving MPyC's pickling; every set of t + 1 parties recombines the
    secrets, t shares of 0 are not 0, and a second split draws anew."""
    import itertools
    import pickle

    import numpy as np
    from mpyc import thresha
    from mpyc.runtime import mpc

    from mpc_federation import limbs, mpyc_compat

    monkeypatch.setattr(thresha, "np_random_split", thresha.np_random_split)  # MPyC's again afterwards
    monkeypatch.setattr(limbs, "SMALL", 0 if words else 2**62)  # every vector large, or every one small
    mpyc_compat.install_fast_random_split()
    field = mpc.SecInt(124).field
    secrets = [0, 1, 5, field.modulus - 1, 2**100]
    split = thresha.np_random_split(field, field.array(np.array(secrets, dtype=object)), t, m)
    assert len(split) == m and all(isinstance(row, limbs.Words) == words and len(row) == 5 for row in split)
    rows = np.stack([np.asarray(pickle.loads(pickle.dumps(row))) for row in split])  # as MPyC sends them
    assert all(0 <= int(v) < field.modulus for v in rows.flatten())
    for subset in itertools.combinations(range(m), t + 1):
        points = [(i + 1, [field(int(v)) for v in rows[i]]) for i in subset]
        assert [int(v) % field.modulus for v in thresha.recombine(field, points)] == secrets
    assert all(int(v) for v in rows[:t, 0])  # t shares of the secret 0 are not 0: the coefficients are drawn
    again = np.asarray(thresha.np_random_split(field, field.array(np.array(secrets, dtype=object)), t, m)[0])
    assert not any(a == b for a, b in zip(again, rows[0]))  # and drawn anew for every split


@pytest.mark.parametrize("words", [False, True], ids=["small vectors", "large vectors"])
@pytest.mark.parametrize("t,m", [(1, 3), (1, 4), (2, 5), (2, 6), (3, 7)])
def test_the_small_integer_recombination_equals_mpycs(t, m, words, monkeypatch):
    """The installed ``np_recombine`` (Lagrange coefficients as small integers over one denominator)
    gives what MPyC's own ``recombine`` gives for the point sets of a resharing (the 2t + 1 parties
    from a rotating start, in MPyC's order: the others', then this party's own share last) and of
    an output (t + 1 shares), and for several targets at once; with m > 2t + 1 the coefficients
    have denominators other than 1. The shares come from the installed split, the others' through
    a pickle: object arrays for a small vector, ``limbs.Words`` (summed in machine words) for a
    large one."""
    import itertools
    import pickle

    import numpy as np
    from mpyc import thresha
    from mpyc.runtime import mpc

    from mpc_federation import limbs, mpyc_compat
    from mpc_federation.sharing import lagrange

    field = mpc.SecInt(124).field
    secrets = np.array([0, 1, 5, field.modulus - 1, 2**100], dtype=object)

    def mpycs(points, x_rs):  # MPyC's recombination of field elements, one value at a time
        return thresha.recombine(field, [(x, [field(int(v)) for v in np.asarray(share)]) for x, share in points], x_rs)

    monkeypatch.setattr(thresha, "np_recombine", thresha.np_recombine)  # MPyC's again afterwards
    mpyc_compat.install_fast_recombine()
    assert thresha.np_recombine._small
    monkeypatch.setattr(thresha, "np_random_split", thresha.np_random_split)  # MPyC's again afterwards
    monkeypatch.setattr(limbs, "SMALL", 0 if words else 2**62)  # every vector large, or every one small
    mpyc_compat.install_fast_random_split()
    shares = thresha.np_random_split(field, field.array(secrets), 2 * t, m)  # degree 2t: a product
    assert all(isinstance(row, limbs.Words) == words for row in shares)
    received = [pickle.loads(pickle.dumps(row)) for row in shares]  # as the peers get them
    windows = [[(u + j) % m for j in range(2 * t + 1)] for u in range(m)]
    sets = [[i for i in w if i != own] + [own] for w in windows for own in w]
    assert m == 2 * t + 1 or any(lagrange(tuple(i + 1 for i in s), 0)[1] != 1 for s in sets)
    for subset in sets:  # the others' shares received, this party's own last, as MPyC's _reshare has them
        points = [(i + 1, received[i]) for i in subset[:-1]] + [(subset[-1] + 1, shares[subset[-1]])]
        fast = thresha.np_recombine(field, points)
        assert isinstance(fast, field.array) and list(fast.value) == list(secrets)
        assert list(fast.value) == [v.value for v in mpycs(points, 0)]
    low = thresha.np_random_split(field, field.array(secrets), t, m)
    for subset in itertools.combinations(range(m), t + 1):
        points = [(i + 1, low[i]) for i in subset]
        both = thresha.np_recombine(field, points, [0, m + 1])
        assert both.shape == (2, len(secrets)) and list(both.value[0]) == list(secrets)
        assert [list(row) for row in both.value] == [[v.value for v in row] for row in mpycs(points, [0, m + 1])]


def _value(bits: list[int]) -> int:
    """The integer of a bit vector, low bit first."""
    return sum(bit << i for i, bit in enumerate(bits))


@pytest.mark.parametrize("public", [True, False])
def test_the_brent_kung_addition_equals_mpycs(public, monkeypatch):
    """The installed ``np_add_bits`` (a Brent-Kung carry circuit) gives the bits of ``(a + b) mod
    2**n``, as MPyC's own (Sklansky) one does, for every width from 1 to 50 bits (the HHI's
    normalisation takes 43 for 5 firms, 47 for 100) and the pay gap's 62 and 92, with ``b`` public
    (as ``np_to_bits`` calls it) or secure."""
    import numpy as np
    from mpyc import runtime
    from mpyc.runtime import mpc

    from mpc_federation import mpyc_compat

    secint, rng = mpc.SecInt(64), random.Random(20261202)
    mpycs = runtime.Runtime.np_add_bits
    assert not getattr(mpycs, "_brent_kung", False)  # the reference really is MPyC's own
    monkeypatch.setattr(runtime.Runtime, "np_add_bits", mpycs)  # MPyC's again afterwards
    for n in [*range(1, 51), 62, 92]:
        a_bits, b_bits = ([[rng.randint(0, 1) for _ in range(n)] for _ in range(4)] for _ in range(2))
        a = secint.array(np.array(a_bits, dtype=object))
        b = np.array(b_bits, dtype=np.int8) if public else secint.array(np.array(b_bits, dtype=object))
        sums = [(_value(x) + _value(y)) % 2**n for x, y in zip(a_bits, b_bits)]
        expected = [[(s >> i) & 1 for i in range(n)] for s in sums]
        runtime.Runtime.np_add_bits = mpycs
        assert mpc.run(mpc.output(mpc.np_add_bits(a, b))).tolist() == expected, n
        mpyc_compat.install_brent_kung_add_bits()
        assert runtime.Runtime.np_add_bits._brent_kung
        assert mpc.run(mpc.output(mpc.np_add_bits(a, b))).tolist() == expected, n


def test_the_field_array_wrapping_equals_mpycs(monkeypatch):
    """The installed ``FiniteFieldArray.__init__`` (numpy's version compared once) wraps as MPyC's
    own: reduced with ``check``, as given without, shared or copied as MPyC shares or copies (for
    lists, object arrays and arrays of another dtype), in MPyC's prime and binary fields."""
    import numpy as np
    from mpyc import finfields
    from mpyc.runtime import mpc

    from mpc_federation import mpyc_compat

    mpycs = finfields.FiniteFieldArray.__init__
    assert not getattr(mpycs, "_once", False)  # the reference really is MPyC's own
    monkeypatch.setattr(finfields.FiniteFieldArray, "__init__", mpycs)  # MPyC's again afterwards
    fields = [mpc.SecInt(64).field, finfields.GF(finfields.find_prime_root(61, False)[0]), mpc.SecFld(2**8).field]

    def wrapped(field, value, kwargs):
        a = field.array(value, **kwargs)
        return a.value.dtype, a.value.shape, a.value.tolist(), a.value is value, np.shares_memory(a.value, value)

    cases = []
    for field in fields:
        big = field.order + 5
        for make in (
            lambda big=big: [[1, 2, big], [0, 3, 4]],
            lambda big=big: np.array([[1, 2, big], [0, 3, 4]], dtype=object),
            lambda: np.array([7, 2, 0], dtype=np.int64),
            lambda: np.array(9, dtype=object),
        ):
            for kwargs in ({}, {"check": False}, {"copy": True}, {"copy": False, "check": False}):
                cases.append((field, make, kwargs))
    expected = [wrapped(field, make(), kwargs) for field, make, kwargs in cases]
    mpyc_compat.install_field_array_init()
    assert finfields.FiniteFieldArray.__init__._once
    assert [wrapped(field, make(), kwargs) for field, make, kwargs in cases] == expected
    assert (fields[0].array([fields[0].order + 5]) + 1).value.tolist() == [6]  # the arithmetic is MPyC's


def test_round_div_is_exact_where_valid_and_zero_elsewhere():
    """``round_div(..., valid=...)``: the normalisation starts before the mask is known, yet a cell
    whose mask is 0 is exactly 0 (0 / 1), even with a denominator of 0 or the largest one, and a
    cell whose mask is 1 is the exactly rounded quotient, at the extremes and on random values; on
    the plain and the root path, and cut into chunks."""
    from mpc_federation.arith import plain_round_div

    rng = random.Random(20261202)
    top, root_top = 2**40, 2**10 - 1
    valid = [(-top, 1), (top, 1), (0, 1), (1, root_top), (-1, root_top), (-1, 1), (top - 1, 2), (1, 2)]
    valid += [(rng.randint(-top, top), rng.randint(1, root_top)) for _ in range(24)]
    invalid = [(top, 0), (-top, 0), (0, 0), (123, root_top), (-top, 1), (7, 2)]
    cells = [(n, r, 1) for n, r in valid] + [(n, r, 0) for n, r in invalid]
    labels = [f"c{i}" for i in range(len(cells))]
    party = {"num": [n for n, _, _ in cells], "root": [r for _, r, _ in cells], "flag": [f for _, _, f in cells]}
    out = run_program(ROUND_DIV_PROBE, {"cell": labels}, {"company_a": party})
    expected = [str(plain_round_div(n, r * r)) if f else "0" for n, r, f in cells]
    assert out["plain"]["exact"] == expected
    assert out["rooted"]["exact"] == expected
    assert out["chunked"]["exact"] == expected  # cut into slices of 7 quotients


@pytest.mark.parametrize("m,t", [(3, 1), (5, 2)])
def test_bulk_random_bits_are_random_bits(m, t):
    """The MPyC process's ``np_random_bits`` (signs from one ``os.urandom`` call, their product over
    t + 1 senders) and ``_np_randoms`` (each sender's masks drawn at once; the probe fails if MPyC's
    own ran): 0/1 bits, and -1/+1 signs when asked signed, about half of each (for t = 2 the product
    of three signs takes its odd row through the halving); masks below their bound, all different."""
    n = 600
    labels = [f"c{i}" for i in range(n)]
    out = run_program(RANDOM_BITS_PROBE, {"cell": labels}, {"company_a": {"x": [0] * n}}, m=m, t=t)
    bits = [int(v) for v in out["bits"]["exact"]]
    signs = [int(v) for v in out["signs"]["exact"]]
    assert set(bits) == {0, 1} and set(signs) == {-1, 1}
    assert 220 < sum(bits) < 380 and 220 < signs.count(1) < 380  # ~300 each; outside: about 1e-9
    # The masks: t + 1 senders' draws below 2**19 (t = 1) or 2**18 (t = 2), summed: below 2**20.
    masks = [int(v) for v in out["masks"]["exact"]]
    each = 2 ** ((2**20 // (t + 1)).bit_length() - 1)
    assert all(0 <= v < (t + 1) * each for v in masks) and len(set(masks)) > n - 5
    assert 0.4 < sum(masks) / n / ((t + 1) * each / 2) < 1.6  # the mean of a sum of uniforms, roughly
