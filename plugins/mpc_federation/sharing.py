"""Shamir sharing over MPyC's fields, and decoding of revealed outputs.

Input parties split over the program's SecInt field at MPyC's points (``limbs.split``, with
random coefficients drawn in bulk; the MPyC process splits every resharing with it too), so compute
party i (x-coordinate i+1) can wrap its shares in secure integers directly. A vector of shares
travels as one text (``pack``: fixed-width bytes, base64), not as a JSON list of big integers.
Recipients recombine by Lagrange's interpolation in Python integers and check that any extra
shares lie on the same polynomial, then read the integers at their declared precision.
"""

from __future__ import annotations

import functools
import math


class ReconstructionError(ValueError):
    """Output shares that do not determine one consistent result."""


def split(field, values: list[int], t: int, m: int) -> list[list[int]]:
    """Shares of every value for each of m compute parties (row i for party i), degree t."""
    import numpy as np

    from mpc_federation import limbs

    p = field.modulus
    return [np.asarray(row).tolist() for row in limbs.split(np.array(values, dtype=object) % p, p, t, m)]


def pack(values, modulus: int) -> str:
    """Field elements (Python integers in ``[0, modulus)``, or a ``limbs.Words``) as one base64 text:
    each in ``width(modulus)`` big-endian bytes, concatenated. Little more than half as long as a
    JSON list of their decimals, and read back by numpy (``unpack``) instead of the JSON parser."""
    return _base64(packed_bytes(values, width(modulus)))


def packed_bytes(values, w: int):
    """``values`` (integers in ``[0, 2**(8 w))``, or a ``limbs.Words``) as ``w`` big-endian bytes each:
    an (n, w) uint8 array, the rows ``pack`` concatenates. A ``Words`` (a split of many values) is
    read from its limbs' bytes, without making a Python integer of each share."""
    from itertools import repeat

    import numpy as np

    from mpc_federation import limbs

    if isinstance(values, limbs.Words):
        return values.big_endian(w)
    data = b"".join(map(int.to_bytes, np.asarray(values, dtype=object).tolist(), repeat(w)))
    return np.frombuffer(data, dtype=np.uint8).reshape(-1, w)


def _base64(rows) -> str:
    import base64

    return base64.b64encode(rows.tobytes()).decode()


def unpack(text, modulus: int) -> list[int]:
    """The integers ``pack`` wrote, as a list (``unpack_array``'s)."""
    return unpack_array(text, modulus).tolist()


def unpack_array(text, modulus: int):
    """The integers ``pack`` wrote, as a numpy object array (not reduced: a value of another party
    may be any integer of ``width(modulus)`` bytes; its users reduce mod p). Raises ValueError if
    ``text`` is not such a text."""
    return integers(unpack_bytes(text, modulus))


def unpack_bytes(text, modulus: int):
    """The big-endian bytes of the integers ``pack`` wrote, one row each: a ``(n, width)`` uint8
    array (what the input checks read, ``witnesses.combinations``). Raises ValueError if ``text``
    is not such a text."""
    import base64
    import binascii

    import numpy as np

    if not isinstance(text, str):
        raise ValueError(f"a vector of shares must be packed text, not {type(text).__name__}")
    try:
        data = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"a vector of shares is not base64 ({exc})") from None
    w = width(modulus)
    if len(data) % w:
        raise ValueError(f"a vector of shares has {len(data)} bytes, not a multiple of {w}")
    return np.frombuffer(data, dtype=np.uint8).reshape(-1, w)


def integers(rows):
    """The integers of big-endian byte rows (``unpack_bytes``), as an object array."""
    from mpc_federation import limbs

    return limbs.integers(rows.tobytes(), rows.shape[1], "big")


def width(modulus: int) -> int:
    """Bytes per packed field element."""
    return ((modulus - 1).bit_length() + 7) // 8


def input_payloads(program, vectors: dict[str, list[int]], t: int, m: int) -> list[dict]:
    """One input party's shares for each of m compute parties: per input its values, then its
    witness (range bits and nonzero indicators, checked inside the MPC; see ``witnesses``).

    :param vectors: the party's checked input vectors, by input name.
    :return: ``[{"values": {name: packed}, "witness": {name: packed}}]``, one per compute party
        (``packed``: the shares as one text, see ``pack``).
    """
    import numpy as np

    from mpc_federation import limbs, witnesses

    parts = [(i.name, "values", vectors[i.name]) for i in program.inputs]
    parts += [(i.name, "witness", witnesses.make(i, vectors[i.name], program.modulus)) for i in program.inputs]
    p, w = program.modulus, width(program.modulus)
    values = np.array([v for _, _, vector in parts for v in vector], dtype=object) % p
    payloads = []
    for row in limbs.split(values, p, t, m):  # packed from the limbs, never as integers
        data = packed_bytes(row, w)
        payload: dict[str, dict[str, str]] = {"values": {}, "witness": {}}
        pos = 0
        for name, part, vector in parts:
            payload[part][name] = _base64(data[pos : pos + len(vector)])
            pos += len(vector)
        payloads.append(payload)
    return payloads


def recombine(modulus: int, shares: dict[int, list[int]], t: int) -> list[int]:
    """Recombine field values from shares keyed by MPyC party index (0-based), in ``GF(modulus)``.

    Uses the first t+1 parties and checks every further share against the same polynomial,
    so a single altered share is detected whenever more than t+1 parties answered. Lagrange's
    interpolation at MPyC's points (party i at x = i + 1) in Python integers: a recipient needs
    neither MPyC's field nor numpy for a few hundred values.
    """
    if len(shares) < t + 1:
        raise ReconstructionError(f"need shares of at least {t + 1} compute parties, got {len(shares)}")
    lengths = {len(v) for v in shares.values()}
    if len(lengths) != 1:
        raise ReconstructionError(f"compute parties sent different numbers of shares: {sorted(lengths)}")
    indices = sorted(shares)
    base = indices[: t + 1]
    xs = tuple(i + 1 for i in base)

    def at(x: int) -> list[int]:
        numerators, denominator = lagrange(xs, x)
        inverse = pow(denominator, -1, modulus)
        columns = zip(*(shares[i] for i in base))
        return [sum(c * int(s) for c, s in zip(numerators, column)) * inverse % modulus for column in columns]

    secrets = at(0)
    for i in indices[t + 1 :]:
        if at(i + 1) != [int(s) % modulus for s in shares[i]]:
            raise ReconstructionError(f"the shares of compute party {i} are inconsistent with the others")
    return secrets


@functools.cache
def lagrange(xs: tuple[int, ...], x_r: int) -> tuple[tuple[int, ...], int]:
    """The Lagrange coefficients at ``x_r`` of the points ``xs``, as integer numerators over one
    positive common denominator."""
    from fractions import Fraction

    coefficients = []
    for i, x_i in enumerate(xs):
        c = Fraction(1)
        for j, x_j in enumerate(xs):
            if i != j:
                c *= Fraction(x_r - x_j, x_i - x_j)
        coefficients.append(c)
    denominator = math.lcm(*(c.denominator for c in coefficients))
    return tuple(int(c * denominator) for c in coefficients), denominator


def load_recombine(program) -> None:
    """Work out what ``recombine`` needs for ``program`` ahead (its prime, with gmpy2's import): a
    recipient does it while it waits for the output shares, so it is not on the path from the last
    output share to the result."""
    program.modulus  # noqa: B018 - a cached property: the prime, found once


def to_signed(value: int, modulus: int) -> int:
    return value - modulus if value > modulus // 2 else value


def decode(
    program, dims: dict[str, list[str]], values: list[int], params: dict, withheld: list[list[str]] | None = None
) -> dict[str, dict]:
    """Turn the recombined field values (outputs in declared order) into the revealed result.

    Each output is a list over its labels: ``exact`` holds the value as an exact decimal string
    at the declared precision (e.g. "3192.85"), ``value`` the same as a float; both are None where
    the output's suppression flag is 1 or where the cell was withheld (released before).

    :param params: the program's checked parameters (an output's precision may be one).
    """
    from mpc_federation.programs import fixed

    p = program.modulus
    withheld_cells = {tuple(pair) for pair in withheld or []}
    raw, pos = {}, 0
    for output, length in zip(program.outputs, program.output_lengths(dims).values()):
        raw[output.name] = [to_signed(v, p) for v in values[pos : pos + length]]
        pos += length
    if pos != len(values):
        raise ReconstructionError(f"expected {pos} output values, got {len(values)}")
    out = {}
    for output in program.outputs:
        labels = dims[output.dim] if output.dim else [output.name]
        flags = raw[output.suppressed_by] if output.suppressed_by else [0] * len(labels)
        if any(f not in (0, 1) for f in flags):
            raise ReconstructionError(f"suppression flags {output.suppressed_by} are not 0/1: {flags}")
        exact: list[str | None] = []
        for label, v, flag in zip(labels, raw[output.name], flags):
            hidden = flag == 1 or (output.dim, label) in withheld_cells
            exact.append(None if hidden else str(fixed(v, program.decimals(output, params))))
        out[output.name] = {
            "decimals": program.decimals(output, params),
            "labels": labels,
            "exact": exact,
            "value": [None if e is None else float(e) for e in exact],
            "withheld": [label for label in labels if (output.dim, label) in withheld_cells],
        }
    return out
