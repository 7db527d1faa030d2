"""The small checks every part of a federation spec's validation uses (spec.py, spec_parties.py,
spec_aggregation.py): the error type, field lookups, and the id, month and key formats.

It imports no other spec module, so they can all import it.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any, TypeGuard

ID = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class SpecError(ValueError):
    """A federation spec that does not parse or does not validate."""

    def __init__(self, source: str, field_path: str, problem: str):
        super().__init__(f"federation spec {source}: {field_path}: {problem}")
        self.field_path = field_path


def need(src: str, mapping: dict, key: str, kind: type | tuple, where: str) -> Any:
    """``mapping[key]``, which must be there and of ``kind``."""
    if key not in mapping:
        raise SpecError(src, f"{where}{key}", "is required")
    value = mapping[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise SpecError(src, f"{where}{key}", f"must be {kind_name(kind)}, got {value!r}")
    return value


def only(src: str, mapping: dict, allowed: tuple[str, ...], where: str) -> None:
    """Every key of ``mapping`` is one of ``allowed``."""
    for key in mapping:
        if key not in allowed:
            raise SpecError(src, f"{where}{key}", f"unknown field (allowed: {', '.join(allowed)})")


def is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def kind_name(kind) -> str:
    names = {str: "a string", int: "an integer", dict: "a mapping", list: "a list"}
    return names.get(kind, getattr(kind, "__name__", str(kind)))


def check_key(src: str, where: str, value: Any) -> None:
    """A party's public key: base64 of 32 bytes."""
    try:
        ok = isinstance(value, str) and len(base64.b64decode(value, validate=True)) == 32
    except ValueError:
        ok = False
    if not ok:
        raise SpecError(src, where, "must be a base64 32-byte public key")


def spec_file(src: str, spec_path: Path, kind: str, value: str, where: str) -> Path:
    """A program or job file of a spec: ``builtin:<name>`` (mpc_federation/builtins.py: shipped with
    the project or the installed package) or a path relative to the spec file."""
    from mpc_federation.builtins import PREFIX, builtin_path

    if value.startswith(PREFIX):
        try:
            return builtin_path(kind, value[len(PREFIX) :].strip())
        except LookupError as exc:
            raise SpecError(src, where, str(exc)) from None
    file = (spec_path.parent / value).resolve()
    if not file.is_file():
        raise SpecError(
            src, where, f"no such file: {file} (a path relative to the spec, or {PREFIX}<name> for a built-in {kind})"
        )
    return file
