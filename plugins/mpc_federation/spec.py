"""The federation spec: one YAML file that every party holds identically.

Loading validates every field and names the offending one on error. The spec's
canonical hash is what parties compare to agree that they run the same thing.

This module is the public face: the spec object, loading, and the order of the checks. The checks
themselves: the top-level fields in spec_fields.py, the parties in spec_parties.py, the
``aggregation`` block in spec_aggregation.py, and the small shared ones in spec_checks.py. Import
every name from here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from mpc_federation.spec_aggregation import (
    COLUMN_ROLES,
    DATA_POLICY_FIELDS,
    OBLIVIOUS_FIELDS,
    POLICY_CHOICES,
    SparkSettings,
    check_aggregation,
    check_aggregation_rules,
)
from mpc_federation.spec_checks import MONTH, SpecError, need
from mpc_federation.spec_fields import (
    DEFAULT_DEADLINES,
    check_computation,
    check_coordination,
    check_deadlines,
    check_dimensions,
    check_known,
    check_min_inputs,
    check_program,
    check_schedule,
)
from mpc_federation.spec_parties import MIN_THRESHOLD, ROLES, Party, check_parties, check_threshold

__all__ = [
    "COLUMN_ROLES",
    "DATA_POLICY_FIELDS",
    "DEFAULT_DEADLINES",
    "MIN_THRESHOLD",
    "OBLIVIOUS_FIELDS",
    "POLICY_CHOICES",
    "ROLES",
    "FederationSpec",
    "Party",
    "SparkSettings",
    "SpecError",
    "canonical_json",
    "load_spec",
    "months_between",
    "party_specs",
]


@dataclass(frozen=True)
class FederationSpec:
    computation: str
    description: str
    schedule: str
    program_file: Path
    program_params: dict[str, Any]
    aggregation_job: Path | None
    aggregation_input: str
    period: dict[str, Any]
    parties: tuple[Party, ...]
    threshold: int
    bucket: str
    prefix: str
    min_input_parties: int
    deadlines: dict[str, int]  # seconds; no "cutoff" for ``cutoff: never`` (``cutoff``)
    extra_dimensions: dict[str, list[str]]
    source: Path
    raw: dict[str, Any] = field(repr=False, compare=False)
    # -- data policy of the aggregation job (see spec_aggregation.check_data_policy); None when not declared --
    data_policy: dict[str, str] | None = None
    aggregation_columns: dict[str, str | None] | None = None
    aggregation_participants: dict[str, str] = field(default_factory=dict)
    # -- oblivious local stage (see spec_aggregation.check_oblivious): padded keyed shuffle, Spark encryption --
    aggregation_oblivious: bool = False
    # -- who reads the rows (see spec_aggregation.check_engine): spark, or arrow (pyarrow in Spark's tasks) --
    aggregation_engine: str = "spark"
    # -- Spark resources of the aggregation job (see spec_aggregation.check_spark) --
    aggregation_spark: SparkSettings = field(default_factory=lambda: SparkSettings())

    # -- roles -------------------------------------------------------------
    def party(self, party_id: str) -> Party:
        for p in self.parties:
            if p.id == party_id:
                return p
        known = ", ".join(p.id for p in self.parties)
        raise SpecError(str(self.source), "parties", f"unknown party {party_id!r} (members: {known})")

    def with_role(self, role: str) -> list[Party]:
        return [p for p in self.parties if p.has(role)]

    @property
    def input_parties(self) -> list[Party]:
        return self.with_role("input")

    @property
    def compute_parties(self) -> list[Party]:
        return self.with_role("compute")

    @property
    def recipients(self) -> list[Party]:
        return self.with_role("recipient")

    def compute_index(self, party_id: str) -> int:
        """MPyC party number of a compute party; its Shamir x-coordinate is this plus one."""
        return [p.id for p in self.compute_parties].index(party_id)

    @property
    def leader(self) -> Party:
        """The compute party that publishes the roster."""
        return self.compute_parties[0]

    # -- identity ----------------------------------------------------------
    @property
    def spec_hash(self) -> str:
        return hashlib.sha256(canonical_json(self.raw)).hexdigest()

    @property
    def program_hash(self) -> str:
        return hashlib.sha256(self.program_file.read_bytes()).hexdigest()

    @property
    def cutoff(self) -> int | None:
        """Seconds after a wait for the inputs starts when the leader may go ahead without the
        input parties that have not shared (at least ``min_input_parties`` having shared); None
        for ``deadlines.cutoff: never``: only a party that withdrew is ever left out."""
        return self.deadlines.get("cutoff")

    @property
    def snapshot(self) -> bool:
        """``aggregation.period.snapshot``: the job reads the same data whatever the months (a
        payroll as it stands), so the disclosure ledger takes every release as covering every
        period (``ledger.fixed_roster``)."""
        return bool(self.period.get("snapshot", False))

    # -- dimensions of one run -------------------------------------------
    def months(self, logical_date: datetime) -> list[str]:
        """Months of the aggregation period for a run (explicit, or the last N before the run)."""
        if "start" in self.period:
            return months_between(self.period["start"], self.period["end"])
        n = self.period["months"]
        year, month = logical_date.year, logical_date.month
        out = []
        for _ in range(n):
            year, month = (year, month - 1) if month > 1 else (year - 1, 12)
            out.append(f"{year:04d}-{month:02d}")
        return sorted(out)

    def dimensions(self, logical_date: datetime) -> dict[str, list[str]]:
        """Labels of every dimension a program may declare, for one run: ``market`` (the whole
        period, then each month) and the spec's own ``dimensions``."""
        return {"market": ["all", *self.months(logical_date)], **self.extra_dimensions}


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def months_between(start: str, end: str) -> list[str]:
    """Months from ``start`` to ``end`` inclusive, as 'YYYY-MM' strings (the one definition: the
    data generators use it too).

    :param start: first month, 'YYYY-MM'
    :param end: last month, 'YYYY-MM' (not before ``start``)
    """
    for text in (start, end):
        if not isinstance(text, str) or not MONTH.match(text):
            raise ValueError(f"month must look like YYYY-MM, got {text!r}")
    if end < start:
        raise ValueError(f"end month {end} is before start month {start}")
    y, m = map(int, start.split("-"))
    ey, em = map(int, end.split("-"))
    out = []
    while (y, m) <= (ey, em):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y, m + 1) if m < 12 else (y + 1, 1)
    return out


def party_specs(spec_dir: str | Path, party_id: str) -> dict[str, FederationSpec]:
    """{computation: spec} of every federation spec (``*.yaml``) in ``spec_dir`` that ``party_id`` belongs to."""
    specs = {}
    for path in sorted(Path(spec_dir).glob("*.yaml")):
        spec = load_spec(path)
        if party_id in {p.id for p in spec.parties}:
            specs[spec.computation] = spec
    return specs


def load_spec(path: str | Path) -> FederationSpec:
    import yaml  # light, but only needed here

    path = Path(path).resolve()
    src = str(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SpecError(src, "(file)", "not found") from None
    except yaml.YAMLError as exc:
        raise SpecError(src, "(file)", f"does not parse as YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise SpecError(src, "(file)", "must be a mapping at the top level")
    return _validate(raw, path)


def _validate(raw: dict[str, Any], path: Path) -> FederationSpec:
    """The spec from its parsed YAML, each part checked in the order of the file's sections."""
    src = str(path)
    check_known(src, raw)
    computation = check_computation(src, raw)
    schedule = check_schedule(src, raw)
    program_file, params = check_program(src, path, raw)
    aggregation, aggregation_fields = check_aggregation(src, path, raw)
    parties = check_parties(src, need(src, raw, "parties", list, ""))
    threshold = check_threshold(src, raw, len([p for p in parties if p.has("compute")]))
    bucket, prefix = check_coordination(src, raw)
    input_ids = [p.id for p in parties if p.has("input")]
    min_inputs = check_min_inputs(src, raw, len(input_ids))
    deadlines = check_deadlines(src, raw.get("deadlines", {}) or {})
    if aggregation_fields["period"].get("snapshot") and "cutoff" in deadlines:
        raise SpecError(
            src,
            "aggregation.period.snapshot",
            "needs deadlines.cutoff: never: with a cut-off the bucket's operator could leave parties out of "
            "the first release, and a snapshot keeps the roster of its first release for good",
        )
    dimensions = check_dimensions(src, raw.get("dimensions", {}) or {})
    rules = check_aggregation_rules(src, aggregation, input_ids)
    return FederationSpec(
        computation=computation,
        description=str(raw.get("description", "")),
        schedule=schedule,
        program_file=program_file,
        program_params=params,
        parties=parties,
        threshold=threshold,
        bucket=bucket,
        prefix=prefix,
        min_input_parties=min_inputs,
        deadlines=deadlines,
        extra_dimensions={k: [str(x) for x in v] for k, v in dimensions.items()},
        source=path,
        raw=raw,
        **aggregation_fields,
        **rules,
    )
