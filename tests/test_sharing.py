"""Shamir splitting and recombination over the HHI program's field, what input parties upload
(values and witnesses), and decoding of revealed outputs at their declared precision."""

from __future__ import annotations

import base64
import itertools
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from mpc_federation.programs import Input, Output, SecureProgram, load_program
from mpc_federation.sharing import (
    ReconstructionError,
    decode,
    input_payloads,
    pack,
    recombine,
    split,
    to_signed,
    unpack,
    unpack_array,
    width,
)

REPO = Path(__file__).resolve().parents[1]
HHI_PATH = REPO / "include" / "programs" / "hhi.py"
HHI = load_program(HHI_PATH).program
P = HHI.modulus
MAX_REVENUE = 2**40 - 1
MAX_PARTIES = 100


def test_hhi_field_is_large_enough():
    """The field holds every intermediate value of the rounded division at the declared maxima."""
    assert HHI.field.modulus == P
    assert P.bit_length() >= HHI.bit_length + 30
    assert (MAX_PARTIES * MAX_REVENUE) ** 2 < 2**94  # the division's denominators: den_bits = 94
    assert 10**8 * MAX_PARTIES * MAX_REVENUE**2 < 2 ** (HHI.bit_length - 1)  # decimals up to 4


@pytest.mark.parametrize("t, m", [(1, 3), (2, 5)])
def test_split_recombine_any_subset(t, m):
    rng = random.Random(1000 + m)
    values = [
        0,
        1,
        MAX_REVENUE,
        P - 1,
        *(rng.randrange(P) for _ in range(8)),
        *(rng.randint(0, MAX_REVENUE) for _ in range(8)),
    ]
    rows = split(HHI.field, values, t, m)
    assert len(rows) == m and all(len(r) == len(values) for r in rows)
    assert all(0 <= s < P for r in rows for s in r)
    assert all(rows[i] != values for i in range(m))
    for size in range(t + 1, m + 1):
        for subset in itertools.combinations(range(m), size):
            assert recombine(HHI.modulus, {i: rows[i] for i in subset}, t) == values, subset


@pytest.mark.parametrize("t, m", [(1, 3), (2, 5)])
def test_sharing_is_randomised(t, m):
    """Two sharings of the same value differ, and both recombine to it."""
    a = split(HHI.field, [42], t, m)
    b = split(HHI.field, [42], t, m)
    assert a != b
    assert recombine(HHI.modulus, dict(enumerate(a)), t) == recombine(HHI.modulus, dict(enumerate(b)), t) == [42]


@pytest.mark.parametrize("t, m", [(1, 3), (2, 5)])
def test_one_altered_share_is_detected(t, m):
    rng = random.Random(7 * m)
    values = [rng.randint(0, MAX_REVENUE) for _ in range(6)]
    rows = split(HHI.field, values, t, m)
    for party in range(m):
        for position in (0, len(values) - 1):
            altered = [list(r) for r in rows]
            altered[party][position] = (altered[party][position] + 1) % P
            with pytest.raises(ReconstructionError, match="inconsistent"):
                recombine(HHI.modulus, dict(enumerate(altered)), t)
    # With exactly t + 1 shares there is nothing to check against: the alteration goes through.
    altered = [list(r) for r in rows]
    altered[0][0] = (altered[0][0] + 1) % P
    assert recombine(HHI.modulus, {i: altered[i] for i in range(t + 1)}, t) != values


@pytest.mark.parametrize("t, m", [(1, 3), (2, 5)])
def test_too_few_shares(t, m):
    rows = split(HHI.field, [5, 6], t, m)
    with pytest.raises(ReconstructionError, match=f"at least {t + 1}"):
        recombine(HHI.modulus, {i: rows[i] for i in range(t)}, t)
    with pytest.raises(ReconstructionError):
        recombine(HHI.modulus, {}, t)


def test_different_share_counts():
    rows = split(HHI.field, [5, 6, 7], 1, 3)
    with pytest.raises(ReconstructionError, match="different numbers"):
        recombine(HHI.modulus, {0: rows[0], 1: rows[1][:2], 2: rows[2]}, 1)


def masked(num: int, den: int, rng: random.Random) -> tuple[int, int]:
    rho = rng.randrange(1, P)
    return rho * num % P, rho * den % P


def test_to_signed():
    assert to_signed(5, P) == 5
    assert to_signed(P - 5, P) == -5
    assert to_signed(0, P) == 0


def toy_program() -> SecureProgram:
    return SecureProgram(
        name="toy",
        inputs=(Input("x", 0, 100, dim="market"),),
        outputs=(
            Output("count"),
            Output("share", dim="market", decimals=2, suppressed_by="hidden"),
            Output("hidden", dim="market"),
            Output("delta", dim="market"),
        ),
        compute=lambda *a: None,
        bit_length=64,
    )


def test_decode_at_declared_precision_with_suppression_and_withheld_cells():
    program = toy_program()
    p = program.modulus
    dims = {"market": ["all", "2024-01", "2024-02"]}
    values = [7, 319285, 0, (-75) % p, 0, 1, 0, (-4) % p, 0, 123]
    out = decode(program, dims, values, {})
    assert list(out) == ["count", "share", "hidden", "delta"]
    assert out["count"] == {"decimals": 0, "labels": ["count"], "exact": ["7"], "value": [7.0], "withheld": []}
    assert out["share"]["labels"] == dims["market"]
    assert out["share"]["exact"] == ["3192.85", None, "-0.75"]  # suppressed: None, never 0.00
    assert out["share"]["value"] == [3192.85, None, -0.75]
    assert out["delta"]["exact"] == ["-4", "0", "123"]
    withheld = decode(program, dims, values, {}, [["market", "all"]])
    assert withheld["share"]["exact"] == [None, None, "-0.75"] and withheld["share"]["withheld"] == ["all"]
    assert withheld["count"]["exact"] == ["7"]
    with pytest.raises(ReconstructionError, match="expected 10 output values, got 11"):
        decode(program, dims, values + [1], {})
    with pytest.raises(ReconstructionError, match="expected 10 output values, got 9"):
        decode(program, dims, values[:-1], {})
    with pytest.raises(ReconstructionError, match="not 0/1"):
        decode(program, dims, [7, 1, 2, 3, 0, 2, 0, 0, 0, 0], {})


def test_split_recombine_decode_hhi_roundtrip():
    """An output sharing of rounded HHIs recombines and decodes to the declared precision."""
    dims = {"market": ["all", "2024-01"]}
    rows = split(HHI.field, [260000, 244444, 0, 0], 1, 3)  # hundredths of a point, then the flags
    values = recombine(HHI.modulus, {0: rows[0], 2: rows[2]}, 1)
    out = decode(HHI, dims, values, HHI.params(None))
    assert out["hhi"]["exact"] == ["2600.00", "2444.44"]
    assert decode(HHI, dims, values, HHI.params({"decimals": 3}))["hhi"]["exact"] == ["260.000", "244.444"]


def test_input_payloads_hold_values_and_witnesses():
    """What an input party uploads: its values and their witnesses, shared; recombined, they are
    the values, the bits of each value (the range is [0, 2**40 - 1]) and the nonzero indicators."""
    vectors = {"revenue_cents": [5, 0, 2**40 - 1]}
    payloads = input_payloads(HHI, vectors, 1, 3)
    assert len(payloads) == 3 and set(payloads[0]) == {"values", "witness"}
    both = {i: [*unpacked(payloads[i], "values"), *unpacked(payloads[i], "witness")] for i in (0, 1)}
    plain = recombine(HHI.modulus, both, 1)
    assert plain[:3] == [5, 0, 2**40 - 1]
    bits = plain[3 : 3 + 3 * 40]
    assert bits[:40] == [1, 0, 1] + [0] * 37 and bits[40:80] == [0] * 40 and bits[80:] == [1] * 40
    assert plain[123:126] == [1, 0, 1]  # nonzero indicators, then the inverses
    assert plain[126] * 5 % P == 1 and plain[127] == 0 and plain[128] * (2**40 - 1) % P == 1


def unpacked(payload: dict, part: str) -> list[int]:
    return unpack(payload[part]["revenue_cents"], P)


@pytest.mark.parametrize("modulus", [2, 3, 256, 257, 2**64 - 59, P])
def test_packed_vectors_roundtrip(modulus):
    """A vector of shares travels as fixed-width big-endian bytes in base64: every field element,
    the largest included, comes back as it was, and the text is far shorter than JSON's decimals."""
    rng = random.Random(modulus)
    values = [0, 1, modulus - 1, *(rng.randrange(modulus) for _ in range(50))]
    text = pack(values, modulus)
    assert unpack(text, modulus) == values and unpack(pack([], modulus), modulus) == []
    array = unpack_array(text, modulus)  # what the MPyC process reads: an object array of Python integers
    assert array.dtype == object and array.tolist() == values and all(type(v) is int for v in array)
    assert (
        len(base64.b64decode(text)) == len(values) * width(modulus) == len(values) * -(-(modulus - 1).bit_length() // 8)
    )
    if modulus == P:
        assert len(text) < 0.6 * len(json.dumps(values))


@pytest.mark.parametrize(
    "text, message",
    [
        ([1, 2, 3], "must be packed text, not list"),
        ("not base64!", "is not base64"),
        (base64.b64encode(b"\x00" * 21).decode(), "has 21 bytes, not a multiple of 20"),
    ],
)
def test_what_is_not_a_packed_vector_is_refused(text, message):
    assert width(P) == 20
    with pytest.raises(ValueError, match=message):
        unpack(text, P)


def test_recombination_equals_mpycs_at_every_point():
    """The plain-integer interpolation gives what MPyC's ``thresha.recombine`` gives, at 0 (the
    values) and at the other parties' points (the check of extra shares)."""
    from mpyc import thresha

    rng = random.Random(11)
    for t, m in ((1, 3), (2, 5), (3, 7)):
        values = [rng.randrange(P) for _ in range(5)]
        rows = split(HHI.field, values, t, m)
        subset = sorted(rng.sample(range(m), t + 1))
        base = [(i + 1, [HHI.field(s) for s in rows[i]]) for i in subset]
        assert recombine(HHI.modulus, {i: rows[i] for i in subset}, t) == values
        assert [int(v) % P for v in thresha.recombine(HHI.field, base)] == values
        others = [i for i in range(m) if i not in subset]
        for i, row in zip(others, thresha.recombine(HHI.field, base, [i + 1 for i in others])):
            assert [int(v) % P for v in row] == rows[i]


def test_a_recipient_recombines_without_numpy_or_mpycs_field():
    """The reveal's own work (the program's prime, recombination, decoding) imports neither numpy
    nor MPyC's field module: a reveal task that starts after the output shares arrived does not
    pay for their import (a third of a second under load)."""
    code = (
        "import sys\n"
        "from mpc_federation.programs import load_program\n"
        "from mpc_federation.sharing import decode, recombine\n"
        f"program = load_program({str(HHI_PATH)!r}).program.for_federation(None, 3)\n"
        "shares = {0: [1235, 2], 1: [1236, 4], 2: [1237, 6]}\n"
        "values = recombine(program.modulus, shares, 1)\n"
        "out = decode(program, {'market': ['m']}, values, program.params(None))\n"
        "assert values == [1234, 0] and out['hhi']['exact'] == ['12.34'], (values, out)\n"
        "print(sorted(m for m in ('numpy', 'mpyc', 'mpyc.finfields') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "plugins")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["[]"], out.stdout + out.stderr
