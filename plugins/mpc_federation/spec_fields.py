"""The top-level fields of a federation spec: which are allowed, the computation's name, its
schedule, program, coordination bucket, quorum of input parties, deadlines and dimensions.

The parties are checked in spec_parties.py, the ``aggregation`` block in spec_aggregation.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mpc_federation.spec_checks import ID, SpecError, is_int, need, only, spec_file

# Seconds. Defaults fit a nightly window: parties may be an hour apart, the MPC itself is short.
DEFAULT_DEADLINES = {"inputs": 3600, "connect": 300, "mpc": 900, "result": 3600}
# The cut-off (after which the leader goes ahead without stragglers) defaults to the inputs deadline.

# Every field a spec may have at its top level.
_TOP_LEVEL = (
    "aggregation",
    "computation",
    "coordination",
    "deadlines",
    "description",
    "dimensions",
    "min_input_parties",
    "parties",
    "program",
    "schedule",
    "threshold",
)


def check_known(src: str, raw: dict[str, Any]) -> None:
    """No top-level field but the known ones."""
    for key in raw:
        if key not in _TOP_LEVEL:
            raise SpecError(src, str(key), f"unknown field (allowed: {', '.join(sorted(_TOP_LEVEL))})")


def check_computation(src: str, raw: dict[str, Any]) -> str:
    """The computation's name: an id, used in run keys and DAG ids."""
    computation = need(src, raw, "computation", str, "")
    if not ID.match(computation):
        raise SpecError(src, "computation", "must be lowercase letters, digits and '_' (start with a letter)")
    return computation


def check_schedule(src: str, raw: dict[str, Any]) -> str:
    """The run schedule: a 5-field cron expression (UTC)."""
    schedule = need(src, raw, "schedule", str, "")
    fields = schedule.split()
    if len(fields) != 5 or not all(re.match(r"^[\d*/,\-]+$", f) for f in fields):
        raise SpecError(src, "schedule", f"must be a 5-field cron expression in UTC, got {schedule!r}")
    return schedule


def check_program(src: str, path: Path, raw: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    """The secure program's file and its parameters."""
    program = need(src, raw, "program", dict, "")
    only(src, program, ("file", "params"), "program.")
    program_file = spec_file(src, path, "program", need(src, program, "file", str, "program."), "program.file")
    params = program.get("params", {}) or {}
    if not isinstance(params, dict):
        raise SpecError(src, "program.params", "must be a mapping")
    return program_file, params


def check_coordination(src: str, raw: dict[str, Any]) -> tuple[str, str]:
    """The coordination bucket and the prefix of the federations' objects in it."""
    coordination = need(src, raw, "coordination", dict, "")
    only(src, coordination, ("bucket", "prefix"), "coordination.")
    bucket = need(src, coordination, "bucket", str, "coordination.")
    prefix = coordination.get("prefix", "federations")
    if not isinstance(prefix, str) or prefix.startswith("/") or prefix.endswith("/"):
        raise SpecError(src, "coordination.prefix", "must be a string without leading or trailing '/'")
    return bucket, prefix


def check_min_inputs(src: str, raw: dict[str, Any], n_inputs: int) -> int:
    """How many of the ``n_inputs`` input parties a run needs at the least (default: all)."""
    min_inputs = raw.get("min_input_parties", n_inputs)
    if not is_int(min_inputs) or not 1 <= min_inputs <= n_inputs:
        raise SpecError(src, "min_input_parties", f"must be an integer from 1 to {n_inputs}")
    return min_inputs


def check_deadlines(src: str, given: Any) -> dict[str, int]:
    """The spec's deadlines in seconds over the defaults; the cut-off defaults to the inputs deadline,
    and is left out for ``cutoff: never`` (no party is left out unless it withdrew)."""
    deadlines = dict(DEFAULT_DEADLINES)
    never = False
    if not isinstance(given, dict):
        raise SpecError(src, "deadlines", "must be a mapping")
    for key, value in given.items():
        if key not in (*DEFAULT_DEADLINES, "cutoff"):
            raise SpecError(
                src, f"deadlines.{key}", f"unknown deadline (allowed: {', '.join(DEFAULT_DEADLINES)}, cutoff)"
            )
        if key == "cutoff" and value == "never":
            never = True
            continue
        if not is_int(value) or value <= 0:
            other = " (or, for the cut-off, never)" if key == "cutoff" else ""
            raise SpecError(src, f"deadlines.{key}", f"must be a positive number of seconds{other}")
        deadlines[key] = value
    if never:
        return deadlines
    deadlines.setdefault("cutoff", deadlines["inputs"])
    if deadlines["cutoff"] > deadlines["inputs"]:
        raise SpecError(src, "deadlines.cutoff", "must not be later than deadlines.inputs")

    return deadlines


def check_dimensions(src: str, dimensions: Any) -> dict:
    """Extra dimensions of a program's outputs: name -> distinct labels."""
    if not isinstance(dimensions, dict):
        raise SpecError(src, "dimensions", "must be a mapping of name to a list of labels")
    for name, labels in dimensions.items():
        if name == "market" or not ID.match(str(name)):
            raise SpecError(src, f"dimensions.{name}", "must be a lowercase name other than 'market'")
        if not isinstance(labels, list) or not labels or len(set(map(str, labels))) != len(labels):
            raise SpecError(src, f"dimensions.{name}", "must be a non-empty list of distinct labels")

    return dimensions
