"""The input checks' random linear combination, on plain values (a sharing with one share): 0 for
every honest witness, not 0 for each kind of wrong one (each family of constraints caught alone);
the coefficients it draws; and the protocol version the compute parties compare first."""

from __future__ import annotations

import numpy as np
import pytest

from mpc_federation import witnesses
from mpc_federation.programs import Input

P = 2**127 - 1  # a prime below 2**128: the bound is then 2/p
BOUNDED = Input("x", low=-3, high=20)  # span 23: 5 bits of x - low and 5 of high - x
NONZERO = Input("r", low=0, high=2**8 - 1, nonzero=True)  # span 2**8 - 1: no upper bits
WIDE = Input("r", low=0, high=2**40 - 1, nonzero=True)  # the HHI's revenue: 40 bits
SEED = b"s" * 32
ODD_WIDTH = 38685626227668133590597803  # the prime after 2**85: 11 bytes
HHI_FIELD = 91343852333181432387730302044767688728495783763  # the HHI program's field: 156 bits (20 bytes)


def _verdicts(spec, rows: list[list[int]], witness_rows: list[list[int]]) -> list[int]:
    values = np.array([[v % P for v in row] for row in rows], dtype=object)
    witness = np.array([[w % P for w in row] for row in witness_rows], dtype=object)
    return list(witnesses.combinations(spec, values, witness, SEED, "x/0", P))


def _by_constraint(spec, values, witness, label: str, modulus: int = P) -> list[int]:
    """The combination as its definition reads, constraint by constraint (the coefficients drawn
    as ``combinations`` draws them): the reference for the inner products it computes instead."""
    parties, n = values.shape
    lay = witnesses.layout(spec, n)
    family = iter(range(16))
    draws = []
    for _ in range(2 if lay.upper else 1):
        draws.append([witnesses.coefficients(SEED, f"{label}/{next(family)}", k) for k in (n * lay.bits, n)])
    f = [witnesses.coefficients(SEED, f"{label}/{next(family)}", n) for _ in range(3)] if lay.nonzero else []
    out = []
    for i in range(parties):
        x, wit, total, pos = [int(v) for v in values[i]], [int(v) for v in witness[i]], 0, 0
        for r, (c, d) in enumerate(draws):
            for k in range(n):
                target = x[k] - spec.low if r == 0 else spec.high - x[k]
                bits = wit[pos + k * lay.bits : pos + (k + 1) * lay.bits]
                total += sum(int(c[k * lay.bits + j]) * b * (b - 1) for j, b in enumerate(bits))
                total += int(d[k]) * (sum(b << j for j, b in enumerate(bits)) - target)
            pos += n * lay.bits
        if lay.nonzero:
            for k in range(n):
                z, w = wit[pos + k], wit[pos + n + k]
                total += int(f[0][k]) * z * (z - 1) + int(f[1][k]) * x[k] * (1 - z) + int(f[2][k]) * (x[k] * w - z)
        out.append(total % modulus)
    return out


@pytest.mark.parametrize("spec", [BOUNDED, NONZERO, WIDE])
@pytest.mark.parametrize("modulus", [P, ODD_WIDTH, HHI_FIELD])
def test_the_inner_products_equal_the_combination_by_constraint(spec, modulus):
    """On random shares (what a compute party holds: anything in the field, or any integer of the
    field's width, written as big-endian bytes), the inner products ``combinations`` takes in
    16-bit digits equal the sum of every constraint times its coefficient, in fields of an even and
    an odd number of bytes, for bits of up to 40 places (recomposed 32 places at a time)."""
    import random

    from mpc_federation.sharing import pack, unpack_bytes, width

    rng = random.Random(7)
    lay = witnesses.layout(spec, 5)
    top = 256 ** width(modulus)  # a share may be written as any integer of the field's width
    values = np.array([[rng.randrange(modulus) for _ in range(5)] for _ in range(3)], dtype=object)
    witness = np.array([[rng.randrange(top) for _ in range(lay.size)] for _ in range(3)], dtype=object)
    witness[0, :3] = [0, top - 1, modulus]  # the extremes of the digits and a representative of 0
    as_read = np.stack([unpack_bytes(pack(row, modulus), modulus) for row in witness.tolist()])
    got = list(witnesses.combinations(spec, values, as_read, SEED, "x/0", modulus))
    assert got == _by_constraint(spec, values, witness, "x/0", modulus)
    assert got == list(witnesses.combinations(spec, values, witness, SEED, "x/0", modulus))  # integers alike
    assert all(got)  # random shares are no honest witness


@pytest.mark.parametrize("spec", [BOUNDED, NONZERO])
def test_honest_witnesses_combine_to_zero(spec):
    rows = [[spec.low, spec.high, 0 if spec.low <= 0 else spec.low, 7], [1, 2, 3, spec.high]]
    assert _verdicts(spec, rows, [witnesses.make(spec, r, P) for r in rows]) == [0, 0]


@pytest.mark.parametrize(
    ("spec", "value", "tamper"),
    [
        (BOUNDED, 21, "none"),  # out of range: its honest-looking bits cannot match high - x
        (BOUNDED, -4, "none"),
        (BOUNDED, 5, "bit=2"),  # a "bit" that is not 0 or 1, recomposition kept right
        (BOUNDED, 5, "flip"),  # a bit flipped: the recomposition is wrong
        (BOUNDED, 21, "lower bits of 21"),  # x - low right, only high - x has no bits: the upper family alone
        (NONZERO, 9, "z=0"),  # a firm with revenue claims none
        (NONZERO, 9, "z=0, w=0"),  # ... and hides it from x*w - z: x*(1 - z) alone catches it
        (NONZERO, 0, "z=1"),  # a firm without revenue claims some
        (NONZERO, 9, "w"),  # a wrong inverse
    ],
)
def test_each_wrong_witness_is_caught_and_only_its_party(spec, value, tamper):
    honest_row = [1, 2]
    rows = [honest_row, [value, 2]]
    bad = witnesses.make(spec, [min(max(value, spec.low), spec.high), 2], P)
    lay = witnesses.layout(spec, 2)
    if tamper == "bit=2":  # 5 - low = 8 = 0b01000: bits 2 and 3 as 2 and 0 give the same sum
        bad[2], bad[3] = 2, 0
    elif tamper == "flip":
        bad[0] ^= 1
    elif tamper == "lower bits of 21":  # 21 - low = 24: the lower family holds, high - x = -1 has no bits
        bad[: lay.bits] = [(21 - spec.low) >> j & 1 for j in range(lay.bits)]
    elif tamper.startswith("z="):
        bad[lay.size - 4] = 0 if tamper.startswith("z=0") else 1
        if tamper == "z=0, w=0":
            bad[lay.size - 2] = 0
    elif tamper == "w":
        bad[lay.size - 2] = 5
    verdicts = _verdicts(spec, rows, [witnesses.make(spec, honest_row, P), bad])
    assert verdicts[0] == 0 and verdicts[1] != 0


def test_coefficients_are_128_bit_and_depend_on_seed_and_label():
    import hashlib

    a = witnesses.coefficients(SEED, "p/0", 1000)
    assert a.dtype == object and len(a) == 1000
    assert all(isinstance(c, int) and 0 <= c < 2**128 for c in a)
    stream = hashlib.shake_256(SEED + b"p/0").digest(16 * 1000)  # what every compute party must derive
    assert list(a) == [int.from_bytes(stream[16 * i : 16 * (i + 1)], "little") for i in range(1000)]
    assert list(witnesses.coefficients(SEED, "p/0", 1000)) == list(a)  # every compute party draws the same
    assert list(witnesses.coefficients(SEED, "p/1", 1000)) != list(a)
    assert list(witnesses.coefficients(b"t" * 32, "p/0", 1000)) != list(a)


def test_compute_parties_on_different_protocol_versions_refuse_before_the_seed_is_used(capsys):
    """Another release's checks would draw other coefficients and blame every input party: the
    agreement exchange compares the protocol version first and refuses, naming the versions."""
    import asyncio

    from mpc_federation import worker

    class Peers:  # MPyC's transfer: what each compute party sent (this one is party 0)
        def __init__(self, other_version):
            self.other_version, self.shut = other_version, False

        async def transfer(self, mine):
            return [mine, [self.other_version, *mine[1:]], mine]

        async def shutdown(self):
            self.shut = True

    job = {"session": "spec/program/run/attempt-1/a,b,c", "agreement": {}}
    names = ["company_a", "company_b", "company_c"]
    assert len(asyncio.run(worker._agree(Peers(worker.PROTOCOL), job, names))) == 32  # the same: a seed
    peers = Peers(worker.PROTOCOL - 1)
    with pytest.raises(SystemExit) as refused:
        asyncio.run(worker._agree(peers, job, names))
    assert refused.value.code == 3 and peers.shut
    out = capsys.readouterr().out
    assert worker.REFUSED in out and "different versions of the secure protocol" in out
    assert f"company_b {worker.PROTOCOL - 1}" in out and f"company_a {worker.PROTOCOL}" in out


def test_a_refusal_does_not_wait_for_a_peer_that_is_gone(capsys, monkeypatch):
    """A compute party that refuses waits at MPyC's shutdown barrier for the others, but only for
    ``REFUSAL_GRACE_SECONDS``: a peer that crashed or quit never reaches it, and the refusal must
    reach the launcher before the run's deadline."""
    import asyncio

    from mpc_federation import worker

    class GonePeer:  # MPyC's shutdown barrier with a peer that never sends its part
        async def shutdown(self):
            await asyncio.Event().wait()

    def refuse():
        raise worker.AgreementError("the connection for the seat of company_a presented the certificate of company_c")

    monkeypatch.setattr(worker, "REFUSAL_GRACE_SECONDS", 0.2)
    with pytest.raises(SystemExit) as refused:
        asyncio.run(asyncio.wait_for(worker._refuse_on_error(GonePeer(), refuse), 30))
    assert refused.value.code == 3
    assert f"{worker.REFUSED} the connection for the seat of company_a presented" in capsys.readouterr().out


@pytest.mark.parametrize("spec", [BOUNDED, NONZERO])
def test_the_pieces_of_a_witness_are_the_witnesses_of_their_values(spec):
    """The MPyC process checks a long input in pieces (``witnesses.CHUNK`` values at a time): the
    piece of a party's witness (an object array) for values ``[start, stop)`` is exactly the
    witness of those values alone, and the pieces combine as the whole does."""
    values = [spec.low, spec.high, 1, 0 if spec.low <= 0 else 3, 7, spec.high - 1, 2]
    whole = np.array(witnesses.make(spec, values, P), dtype=object)
    lay = witnesses.layout(spec, len(values))
    for start, stop in ((0, 3), (3, 7), (2, 3), (0, 7)):
        piece = witnesses.part(whole, lay, start, stop)
        assert isinstance(piece, np.ndarray) and piece.tolist() == witnesses.make(spec, values[start:stop], P)
    if lay.nonzero:
        assert witnesses.indicator(whole, lay).tolist() == [1 if v else 0 for v in values]
    row = np.array([values], dtype=object) % P
    pieces = [
        witnesses.combinations(spec, row[:, a:b], witnesses.part(whole, lay, a, b).reshape(1, -1), SEED, f"x/{a}", P)
        for a, b in ((0, 3), (3, 7))
    ]
    assert [int(p[0]) for p in pieces] == [0, 0]
    lifted = witnesses.combinations(spec, row, (whole + P).reshape(1, -1), SEED, "x/0", P)  # other representatives
    assert lifted.tolist() == witnesses.combinations(spec, row, whole.reshape(1, -1), SEED, "x/0", P).tolist() == [0]


@pytest.mark.parametrize("modulus", [P, ODD_WIDTH, HHI_FIELD])
def test_the_linear_combination_equals_its_definition(modulus):
    """``linear``'s inner products in 16-bit digits equal the plain sum of every share times its
    coefficient, on shares written as any integer of the field's width."""
    import random

    from mpc_federation.sharing import pack, unpack_bytes, width

    rng = random.Random(11)
    lay = witnesses.layout(WIDE, 4)
    top = 256 ** width(modulus)
    values = np.array([[rng.randrange(modulus) for _ in range(4)] for _ in range(3)], dtype=object)
    witness = np.array([[rng.randrange(top) for _ in range(lay.size)] for _ in range(3)], dtype=object)
    as_read = np.stack([unpack_bytes(pack(row, modulus), modulus) for row in witness.tolist()])
    a = witnesses.coefficients(SEED, "x/0/linear/values", 4)
    b = witnesses.coefficients(SEED, "x/0/linear/witness", lay.size)
    expected = [(int(np.dot(a, values[i])) + int(np.dot(b, witness[i]))) % modulus for i in range(3)]
    assert list(witnesses.linear(values, as_read, SEED, "x/0", modulus)) == expected
    assert list(witnesses.linear(values, witness, SEED, "x/0", modulus)) == expected


@pytest.mark.parametrize("where", ["none", "a value", "a lower bit", "an upper bit", "z", "w"])
def test_the_combination_is_of_degree_t_exactly_when_every_sharing_is(where):
    """Three compute parties (t = 1) hold Shamir shares of one input party's values and witness.
    The combination ``linear`` gives each lies on a line when every sharing does, and on none when a
    single share anywhere is moved off its line (what ``worker._check_degrees`` tests, masked)."""
    import random

    from mpc_federation.sharing import ReconstructionError, recombine

    rng = random.Random(5)
    spec = NONZERO if where in ("z", "w") else BOUNDED
    values = [0, 20, 7]
    lay = witnesses.layout(spec, len(values))
    plain = [values, witnesses.make(spec, values, P)]
    slopes = [[rng.randrange(P) for _ in row] for row in plain]
    held = [[[(v + s * k) % P for v, s in zip(row, slope)] for row, slope in zip(plain, slopes)] for k in (1, 2, 3)]
    position = {
        "a value": (0, 1),
        "a lower bit": (1, 3),
        "an upper bit": (1, lay.n * lay.bits + 2),
        "z": (1, lay.size - 2 * lay.n),
        "w": (1, lay.size - 1),
    }
    if where in position:
        part, index = position[where]
        held[1][part][index] = (held[1][part][index] + 1) % P  # party 2's share only: off the line
    combined = [
        int(witnesses.linear(np.array([v], dtype=object), np.array([w], dtype=object), SEED, "x/0", P)[0])
        for v, w in held
    ]
    if where == "none":
        assert recombine(P, {k: [c] for k, c in enumerate(combined)}, 1) is not None
    else:
        with pytest.raises(ReconstructionError):
            recombine(P, {k: [c] for k, c in enumerate(combined)}, 1)
