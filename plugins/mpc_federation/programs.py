"""Secure programs as small declared modules.

A program module (e.g. ``include/programs/hhi.py``) defines ``PROGRAM = SecureProgram(...)``:
what each input party contributes (named integer vectors with ranges), what is revealed
(integers, or exact ratios), who may see it under which floor, and the MPyC function.
The operators are generic over this declaration: adding a program changes nothing in them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

# MPyC's default statistical security parameter: SecInt(l) needs a prime of l + k + 2 bits.
SEC_PARAM = 30


class ProgramError(ValueError):
    """A program module that does not declare itself properly, or inputs that do not fit it."""


@dataclass(frozen=True)
class Input:
    """One integer vector each input party contributes.

    :param name: key in the party's aggregate file (``values.<name>``).
    :param low: smallest allowed value (inclusive).
    :param high: largest allowed value (inclusive).
    :param dim: name of the dimension that labels the vector (e.g. ``market``), or None for a scalar.
    """

    name: str
    low: int
    high: int
    dim: str | None = None


@dataclass(frozen=True)
class Output:
    """One revealed vector.

    :param kind: ``int`` (an integer) or ``ratio`` (an exact fraction num/den, revealed as
        (rho*num, rho*den) for a fresh secret random rho per element, which tells the recipient
        the fraction and nothing else).
    """

    name: str
    kind: str = "int"
    dim: str | None = None
    description: str = ""


@dataclass(frozen=True)
class SecureProgram:
    """The declaration of a secure program.

    :param name: short id.
    :param inputs: what each input party contributes.
    :param outputs: what recipients learn.
    :param compute: ``compute(mpc, secint, inputs, params) -> {output name: list}``. ``inputs`` maps
        each input name to a list over parties (roster order) of lists of secure integers. ``int``
        outputs are lists of secure integers; ``ratio`` outputs are lists of (num, den) pairs.
    :param bit_length: l of MPyC's SecInt(l); arithmetic is exact below 2**l.
    :param min_input_parties: privacy floor k: never reveal over fewer input parties.
    """

    name: str
    inputs: tuple[Input, ...]
    outputs: tuple[Output, ...]
    compute: Callable[..., Any]
    bit_length: int = 64
    min_input_parties: int = 3
    description: str = ""

    @cached_property
    def modulus(self) -> int:
        """The prime of the Shamir field; the same one MPyC picks for SecInt(bit_length)."""
        from mpyc.finfields import find_prime_root

        return int(find_prime_root(self.bit_length + SEC_PARAM + 2, n=2)[0])

    @cached_property
    def field(self):
        from mpyc.finfields import GF

        return GF(self.modulus)

    def input_lengths(self, dims: dict[str, list[str]]) -> dict[str, int]:
        return {i.name: (len(dims[i.dim]) if i.dim else 1) for i in self.inputs}

    def output_lengths(self, dims: dict[str, list[str]]) -> dict[str, int]:
        return {o.name: (len(dims[o.dim]) if o.dim else 1) for o in self.outputs}


@dataclass(frozen=True)
class LoadedProgram:
    program: SecureProgram
    path: Path
    sha256: str = field(repr=False)


def load_program(path: str | Path) -> LoadedProgram:
    """Import a program module by file path and check its declaration."""
    path = Path(path).resolve()
    source = path.read_bytes()
    name = f"mpc_program_{hashlib.sha256(source).hexdigest()[:16]}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception:
            del sys.modules[name]
            raise
    program = getattr(sys.modules[name], "PROGRAM", None)
    if not isinstance(program, SecureProgram):
        raise ProgramError(f"program {path} must define PROGRAM = SecureProgram(...)")
    _check_declaration(program, path)
    return LoadedProgram(program, path, hashlib.sha256(source).hexdigest())


def _check_declaration(program: SecureProgram, path: Path) -> None:
    names = [i.name for i in program.inputs] + [o.name for o in program.outputs]
    if len(set(names)) != len(names):
        raise ProgramError(f"program {path}: input and output names must be distinct: {names}")
    for i in program.inputs:
        if i.low > i.high:
            raise ProgramError(f"program {path}: input {i.name}: low {i.low} > high {i.high}")
        if max(abs(i.low), abs(i.high)).bit_length() >= program.bit_length:
            raise ProgramError(f"program {path}: input {i.name}: range does not fit SecInt({program.bit_length})")
    for o in program.outputs:
        if o.kind not in ("int", "ratio"):
            raise ProgramError(f"program {path}: output {o.name}: kind must be 'int' or 'ratio'")
    if program.min_input_parties < 1:
        raise ProgramError(f"program {path}: min_input_parties must be at least 1")


def check_aggregate(program: SecureProgram, aggregate: Any, dims: dict[str, list[str]],
                    party: str) -> dict[str, list[int]]:
    """Check a party's aggregate file against the program's declared inputs.

    Returns the input vectors. Raises ProgramError naming the first problem found.
    """
    where = f"aggregate of {party}"
    if not isinstance(aggregate, dict) or aggregate.get("format") != "mpc-aggregate/1":
        raise ProgramError(f"{where}: not an mpc-aggregate/1 document")
    if aggregate.get("party") != party:
        raise ProgramError(f"{where}: written for party {aggregate.get('party')!r}")
    values = aggregate.get("values")
    if not isinstance(values, dict):
        raise ProgramError(f"{where}: has no 'values' mapping")
    declared = {i.name for i in program.inputs}
    extra = sorted(set(values) - declared)
    if extra:
        raise ProgramError(f"{where}: values {extra} are not inputs of program {program.name} "
                           f"(declared: {sorted(declared)})")
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
                raise ProgramError(f"{where}: {spec_input.dim} labels {got_dims.get(spec_input.dim)} "
                                   f"do not match this run's {want}")
            if len(vector) != len(want):
                raise ProgramError(f"{where}: input {name!r} has {len(vector)} values, expected {len(want)}")
        for label, v in zip(dims[spec_input.dim] if spec_input.dim else [name], vector):
            if not isinstance(v, int) or isinstance(v, bool):
                raise ProgramError(f"{where}: input {name!r} at {label}: {v!r} is not an integer")
            if not spec_input.low <= v <= spec_input.high:
                raise ProgramError(f"{where}: input {name!r} at {label}: {v} is outside the declared "
                                   f"range [{spec_input.low}, {spec_input.high}]")
        out[name] = list(vector)
    return out
