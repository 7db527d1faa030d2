"""Secure programs as small declared modules.

A program module (e.g. ``include/programs/hhi.py``) defines ``PROGRAM = SecureProgram(...)``:
what each input party contributes (named integer vectors with ranges, checked again inside the
MPC), what is revealed (integers at a declared precision, and which flag suppresses them), the
privacy floor, and the MPyC function. The operators are generic over this declaration: adding a
program changes nothing in them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any

# MPyC's default statistical security parameter: SecInt(l) needs a prime of l + k + 2 bits.
SEC_PARAM = 30
AGGREGATE_FORMAT = "mpc-aggregate/1"  # what a local aggregation job writes


class ProgramError(ValueError):
    """A program module that does not declare itself properly, or inputs that do not fit it."""


@dataclass(frozen=True)
class Input:
    """One integer vector each input party contributes.

    :param name: key in the party's aggregate file (``values.<name>``).
    :param low: smallest allowed value (inclusive); checked by the sender and inside the MPC.
    :param high: largest allowed value (inclusive); a power of two minus one (plus ``low``) is
        cheapest to check inside the MPC.
    :param dim: name of the dimension that labels the vector (e.g. ``market``), or None for a scalar.
    :param nonzero: the program uses the verified 0/1 indicator ``x != 0`` of each value
        (``inputs.nonzero[name]``), e.g. to count the firms with revenue in a market.
    """

    name: str
    low: int
    high: int
    dim: str | None = None
    nonzero: bool = False

    @property
    def bits(self) -> int:
        """The bit length of its wider bound: ``SecInt(l)`` holds the input for ``l`` above it."""
        return max(abs(self.low), abs(self.high)).bit_length()


@dataclass(frozen=True)
class Output:
    """One revealed vector of integers.

    :param decimals: the revealed integer q means ``q / 10**decimals`` (an HHI revealed with
        ``decimals=2`` is an integer number of hundredths of a point); or the name of the
        program's parameter that sets it (declarable per spec).
    :param suppressed_by: name of a 0/1 output that marks suppressed cells: where it is 1 this
        output is revealed as 0 by the program and shown as None, never as a number.
    """

    name: str
    dim: str | None = None
    decimals: int | str = 0
    suppressed_by: str | None = None
    description: str = ""


@dataclass
class ProgramInputs:
    """What ``compute`` gets: per input, a secure array of shape (parties, values) in roster
    order, and for inputs declared ``nonzero`` the verified indicators of the same shape."""

    values: dict[str, Any]
    nonzero: dict[str, Any]
    parties: int

    def __getitem__(self, name: str):
        return self.values[name]


@dataclass(frozen=True)
class SecureProgram:
    """The declaration of a secure program.

    :param name: short id.
    :param inputs: what each input party contributes.
    :param outputs: what recipients learn.
    :param compute: ``compute(mpc, secint, inputs: ProgramInputs, params) -> {output name: secure
        integer array (or list) of the output's length}``; may be a coroutine function.
    :param bit_length: l of MPyC's SecInt(l); arithmetic is exact below 2**l.
    :param min_input_parties: privacy floor k: never reveal over fewer input parties.
    :param settings: ``settings(params) -> dict``: the spec's ``program.params`` checked, with
        defaults (a ValueError names a bad one); None for a program without parameters.
    :param sizing: ``sizing(settings, input_parties) -> bit length``: the ``SecInt`` a federation
        needs, from its checked params and the number of input parties its spec declares, at most
        ``bit_length`` (which then covers the largest federation); a smaller field is cheaper to
        compute in. None: always ``bit_length``. See ``for_federation``.
    """

    name: str
    inputs: tuple[Input, ...]
    outputs: tuple[Output, ...]
    compute: Callable[..., Any]
    bit_length: int = 64
    min_input_parties: int = 3
    description: str = ""
    settings: Callable[[dict | None], dict] | None = None
    sizing: Callable[[dict, int], int] | None = None

    @cached_property
    def modulus(self) -> int:
        """The prime of the Shamir field; the same one MPyC picks for SecInt(bit_length)."""
        return blum_prime_below(self.bit_length + SEC_PARAM + 2)

    @cached_property
    def field(self):
        from mpyc.finfields import GF

        return GF(self.modulus)

    @property
    def input_bits(self) -> int:
        """The widest of its inputs' ``Input.bits``."""
        return max((i.bits for i in self.inputs), default=0)

    def for_federation(self, params: dict | None, input_parties: int) -> SecureProgram:
        """This program in the field of one federation (``sizing`` of the spec's params and its
        number of input parties, else as declared): every party derives the same field from the
        spec, input parties share in it and compute parties compute in it."""
        if self.sizing is None:
            return self
        return self.with_bit_length(self.sizing(self.params(params), input_parties))

    def with_bit_length(self, bits: int) -> SecureProgram:
        """This program computing in ``SecInt(bits)``: never wider than it declares, and wide enough
        for its inputs' ranges (ProgramError otherwise)."""
        if bits == self.bit_length:
            return self
        if not self.input_bits < bits <= self.bit_length:
            raise ProgramError(
                f"program {self.name}: SecInt({bits}) is outside the sizes it allows "
                f"({self.input_bits + 1} to {self.bit_length})"
            )
        return replace(self, bit_length=bits)

    def input_lengths(self, dims: dict[str, list[str]]) -> dict[str, int]:
        return {i.name: (len(dims[i.dim]) if i.dim else 1) for i in self.inputs}

    def output_lengths(self, dims: dict[str, list[str]]) -> dict[str, int]:
        return {o.name: (len(dims[o.dim]) if o.dim else 1) for o in self.outputs}

    def params(self, params: dict | None) -> dict:
        """The spec's parameters, checked (ProgramError names the problem)."""
        if self.settings is None:
            if params:
                raise ProgramError(f"program {self.name} takes no params, got {sorted(params)}")
            return {}
        try:
            return self.settings(params)
        except ValueError as exc:
            raise ProgramError(str(exc)) from None

    def decimals(self, output: Output, params: dict) -> int:
        """The output's precision for the checked ``params``."""
        return params[output.decimals] if isinstance(output.decimals, str) else output.decimals


@dataclass(frozen=True)
class LoadedProgram:
    program: SecureProgram
    path: Path

    @property
    def module(self):
        """The program's module: its ``plaintext`` reference (what recipients must learn) lives there."""
        return sys.modules[self.program.compute.__module__]


def import_file(path: str | Path, name: str | None = None):
    """Import the Python file at ``path`` as the module ``name``, once per process: a later call
    with the same name returns the module already imported. The one way the project loads a module
    that is a file rather than a package member (programs, data generators, Spark jobs).

    :param path: the ``.py`` file.
    :param name: the module's name in ``sys.modules`` (default: the file's stem).
    """
    path = Path(path).resolve()
    name = name or path.stem
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {path}: not a Python file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return sys.modules[name]


def load_program(path: str | Path) -> LoadedProgram:
    """Import a program module by file path and check its declaration."""
    path = Path(path).resolve()
    name = f"mpc_program_{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}"
    program = getattr(import_file(path, name), "PROGRAM", None)
    if not isinstance(program, SecureProgram):
        raise ProgramError(f"program {path} must define PROGRAM = SecureProgram(...)")
    _check_declaration(program, path)
    return LoadedProgram(program, path)


def _check_declaration(program: SecureProgram, path: Path) -> None:
    names = [i.name for i in program.inputs] + [o.name for o in program.outputs]
    if len(set(names)) != len(names):
        raise ProgramError(f"program {path}: input and output names must be distinct: {names}")
    for i in program.inputs:
        if i.low > i.high:
            raise ProgramError(f"program {path}: input {i.name}: low {i.low} > high {i.high}")
        if i.bits >= program.bit_length:
            raise ProgramError(f"program {path}: input {i.name}: range does not fit SecInt({program.bit_length})")
    outputs = {o.name for o in program.outputs}
    for o in program.outputs:
        if isinstance(o.decimals, str):
            if program.settings is None or o.decimals not in program.settings(None):
                raise ProgramError(f"program {path}: output {o.name}: decimals names no parameter of the program")
        elif not isinstance(o.decimals, int) or not 0 <= o.decimals <= 12:
            raise ProgramError(f"program {path}: output {o.name}: decimals must be an integer from 0 to 12")
        if o.suppressed_by is not None and (o.suppressed_by not in outputs or o.suppressed_by == o.name):
            raise ProgramError(f"program {path}: output {o.name}: suppressed_by names no other output")
    if program.min_input_parties < 1:
        raise ProgramError(f"program {path}: min_input_parties must be at least 1")


def blum_prime_below(bits: int) -> int:
    """The largest prime ``p < 2**bits`` with ``p % 4 == 3``: the prime of MPyC's
    ``finfields.find_prime_root(bits, n=2)`` (tests/test_programs.py checks them equal), found with
    gmpy2 alone. A recipient needs only this number to recombine its output shares; MPyC's field
    module would bring numpy in (a third of a second of a reveal task's start, under load)."""
    import gmpy2

    p = gmpy2.prev_prime(1 << bits)
    while p % 4 != 3:
        p = gmpy2.prev_prime(p)
    return int(p)


def fixed(value: int, decimals: int) -> Decimal:
    """An integer number of 10**-decimals units as the exact decimal it stands for (exact at any
    size: ``Decimal.scaleb`` would round to the context's 28 digits)."""
    sign, digits, exponent = Decimal(value).as_tuple()
    return Decimal((sign, digits, int(exponent) - decimals))


def check_aggregate(
    program: SecureProgram, aggregate: Any, dims: dict[str, list[str]], party: str
) -> dict[str, list[int]]:
    """Check a party's aggregate file against the program's declared inputs.

    Returns the input vectors. Raises ProgramError naming the first problem found.
    """
    where = f"aggregate of {party}"
    if not isinstance(aggregate, dict) or aggregate.get("format") != AGGREGATE_FORMAT:
        raise ProgramError(f"{where}: not an {AGGREGATE_FORMAT} document")
    if aggregate.get("party") != party:
        raise ProgramError(f"{where}: written for party {aggregate.get('party')!r}")
    values = aggregate.get("values")
    if not isinstance(values, dict):
        raise ProgramError(f"{where}: has no 'values' mapping")
    declared = {i.name for i in program.inputs}
    extra = sorted(set(values) - declared)
    if extra:
        raise ProgramError(
            f"{where}: values {extra} are not inputs of program {program.name} (declared: {sorted(declared)})"
        )
    got_dims = aggregate.get("dimensions", {})
    out: dict[str, list[int]] = {}
    for spec_input in program.inputs:
        name = spec_input.name
        if name not in values:
            raise ProgramError(f"{where}: missing input {name!r} declared by program {program.name}")
        vector = values[name] if spec_input.dim else [values[name]]
        if not isinstance(vector, list):
            raise ProgramError(f"{where}: input {name!r} must be a list over {spec_input.dim}")
        if spec_input.dim:
            want = dims[spec_input.dim]
            if got_dims.get(spec_input.dim) != want:
                raise ProgramError(
                    f"{where}: {spec_input.dim} labels {got_dims.get(spec_input.dim)} do not match this run's {want}"
                )
            if len(vector) != len(want):
                raise ProgramError(f"{where}: input {name!r} has {len(vector)} values, expected {len(want)}")
        for label, v in zip(dims[spec_input.dim] if spec_input.dim else [name], vector):
            if not isinstance(v, int) or isinstance(v, bool):
                raise ProgramError(f"{where}: input {name!r} at {label}: {v!r} is not an integer")
            if not spec_input.low <= v <= spec_input.high:
                raise ProgramError(
                    f"{where}: input {name!r} at {label}: {v} is outside the declared "
                    f"range [{spec_input.low}, {spec_input.high}]"
                )
        out[name] = list(vector)
    return out


def privacy_floor(program: SecureProgram, spec: Any) -> int:
    """The fewest input parties a result may be computed over (the privacy floor k): the
    program's own floor or the federation spec's, whichever is higher."""
    return max(program.min_input_parties, spec.min_input_parties)
