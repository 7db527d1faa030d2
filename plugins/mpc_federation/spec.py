"""The federation spec: one YAML file that every party holds identically.

Loading validates every field and names the offending one on error. The spec's
canonical hash is what parties compare to agree that they run the same thing.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeGuard

ROLES = ("input", "compute", "recipient")
_ID = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
_ENDPOINT = re.compile(r"^[A-Za-z0-9_.\-]+:\d{1,5}$")

# Seconds. Defaults fit a nightly window: parties may be an hour apart, the MPC itself is short.
# Shamir threshold: at least 1 (t = 0 gives every compute party the plaintext).
MIN_THRESHOLD = 1
DEFAULT_DEADLINES = {"inputs": 3600, "connect": 300, "mpc": 900, "result": 3600}
# The cut-off (after which the leader goes ahead without stragglers) defaults to the inputs deadline.


class SpecError(ValueError):
    """A federation spec that does not parse or does not validate."""

    def __init__(self, source: str, field_path: str, problem: str):
        super().__init__(f"federation spec {source}: {field_path}: {problem}")
        self.field_path = field_path


@dataclass(frozen=True)
class Party:
    id: str
    roles: tuple[str, ...]
    endpoint: str | None = None
    sign_key: str | None = None  # Ed25519 public key, base64
    box_key: str | None = None  # X25519 public key, base64
    certificate: str | None = None  # PEM of the self-signed MPyC TLS certificate

    def has(self, role: str) -> bool:
        return role in self.roles


@dataclass(frozen=True)
class SparkSettings:
    """``aggregation.spark``: what the aggregation job may take from a shared Spark cluster.

    None leaves a setting to the ``spark_default`` connection and the party's spark-defaults.conf.
    """

    cores_max: int | None = 2  # spark.cores.max: one party's job never takes the whole cluster
    executor_cores: int | None = None
    executor_memory: str | None = None
    driver_memory: str | None = None
    num_executors: int | None = None
    deploy_mode: str | None = None  # client | cluster; None: the connection's deploy-mode (client)
    conf: dict[str, str] = field(default_factory=dict)
    python: str | None = None  # spark.pyspark.python: executors (and a cluster-mode driver)
    driver_python: str | None = None  # spark.pyspark.driver.python
    archives: str | None = None  # --archives, e.g. a venv-pack archive: "env.tar.gz#environment"


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
    deadlines: dict[str, int]
    extra_dimensions: dict[str, list[str]]
    source: Path
    raw: dict[str, Any] = field(repr=False, compare=False)
    # -- data policy of the aggregation job (see _check_data_policy); None when not declared --
    data_policy: dict[str, str] | None = None
    aggregation_columns: dict[str, str | None] | None = None
    aggregation_participants: dict[str, str] = field(default_factory=dict)
    # -- oblivious local stage (see _check_oblivious): padded keyed shuffle, Spark encryption --
    aggregation_oblivious: bool = False
    # -- Spark resources of the aggregation job (see _check_spark) --
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
        if not isinstance(text, str) or not _MONTH.match(text):
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


def _need(src: str, mapping: dict, key: str, kind: type | tuple, where: str) -> Any:
    """``mapping[key]``, which must be there and of ``kind``."""
    if key not in mapping:
        raise SpecError(src, f"{where}{key}", "is required")
    value = mapping[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise SpecError(src, f"{where}{key}", f"must be {_kind_name(kind)}, got {value!r}")
    return value


def _validate(raw: dict[str, Any], path: Path) -> FederationSpec:
    src = str(path)
    need = functools.partial(_need, src)

    known = {
        "computation",
        "description",
        "schedule",
        "program",
        "aggregation",
        "parties",
        "threshold",
        "coordination",
        "min_input_parties",
        "deadlines",
        "dimensions",
    }
    for key in raw:
        if key not in known:
            raise SpecError(src, str(key), f"unknown field (allowed: {', '.join(sorted(known))})")

    computation = need(raw, "computation", str, "")
    if not _ID.match(computation):
        raise SpecError(src, "computation", "must be lowercase letters, digits and '_' (start with a letter)")
    schedule = need(raw, "schedule", str, "")
    _check_cron(src, schedule)

    program = need(raw, "program", dict, "")
    _only(src, program, ("file", "params"), "program.")
    program_file = _spec_file(src, path, "program", need(program, "file", str, "program."), "program.file")
    params = program.get("params", {}) or {}
    if not isinstance(params, dict):
        raise SpecError(src, "program.params", "must be a mapping")

    aggregation = raw.get("aggregation", {}) or {}
    if not isinstance(aggregation, dict):
        raise SpecError(src, "aggregation", "must be a mapping")
    job = None
    if "job" in aggregation:
        job = _spec_file(src, path, "job", need(aggregation, "job", str, "aggregation."), "aggregation.job")
    _only(src, aggregation, ("job", "input", "period", *DATA_POLICY_FIELDS, *OBLIVIOUS_FIELDS, "spark"), "aggregation.")
    agg_input = aggregation.get("input", ".")
    if not isinstance(agg_input, str) or agg_input.startswith("/") or ".." in agg_input.split("/"):
        raise SpecError(src, "aggregation.input", "must be a relative path inside the party's data folder")
    period = aggregation.get("period", {"months": 1})
    _check_period(src, period)

    spec_parties = _check_parties(src, need(raw, "parties", list, ""))
    computes = [p for p in spec_parties if p.has("compute")]
    inputs = [p for p in spec_parties if p.has("input")]
    if not inputs:
        raise SpecError(src, "parties", "needs at least one party with role 'input'")
    if not computes:
        raise SpecError(src, "parties", "needs at least one party with role 'compute'")
    if not any(p.has("recipient") for p in spec_parties):
        raise SpecError(src, "parties", "needs at least one party with role 'recipient'")
    endpoints = [p.endpoint for p in computes]
    if len(set(endpoints)) != len(endpoints):
        raise SpecError(src, "parties", "compute parties must have distinct endpoints")

    threshold = _check_threshold(src, raw, len(computes))
    coordination = need(raw, "coordination", dict, "")
    _only(src, coordination, ("bucket", "prefix"), "coordination.")
    bucket = need(coordination, "bucket", str, "coordination.")
    prefix = coordination.get("prefix", "federations")
    if not isinstance(prefix, str) or prefix.startswith("/") or prefix.endswith("/"):
        raise SpecError(src, "coordination.prefix", "must be a string without leading or trailing '/'")

    min_inputs = raw.get("min_input_parties", len(inputs))
    if not _is_int(min_inputs) or not 1 <= min_inputs <= len(inputs):
        raise SpecError(src, "min_input_parties", f"must be an integer from 1 to {len(inputs)}")

    deadlines = _check_deadlines(src, raw.get("deadlines", {}) or {})
    dimensions = _check_dimensions(src, raw.get("dimensions", {}) or {})
    data_policy, columns, participants = _check_data_policy(src, aggregation, [p.id for p in inputs])
    return FederationSpec(
        computation=computation,
        description=str(raw.get("description", "")),
        schedule=schedule,
        program_file=program_file,
        program_params=params,
        aggregation_job=job,
        aggregation_input=agg_input,
        period=period,
        parties=spec_parties,
        threshold=threshold,
        bucket=bucket,
        prefix=prefix,
        min_input_parties=min_inputs,
        deadlines=deadlines,
        extra_dimensions={k: [str(x) for x in v] for k, v in dimensions.items()},
        source=path,
        raw=raw,
        data_policy=data_policy,
        aggregation_columns=columns,
        aggregation_participants=participants,
        aggregation_oblivious=_check_oblivious(src, aggregation),
        aggregation_spark=_check_spark(src, aggregation.get("spark")),
    )


def _check_parties(src: str, parties_raw: list) -> tuple[Party, ...]:
    """The ``parties`` list: ids, roles, endpoints and public keys of each."""
    parties, seen = [], set()
    for i, entry in enumerate(parties_raw):
        where = f"parties[{i}]."
        if not isinstance(entry, dict):
            raise SpecError(src, f"parties[{i}]", "must be a mapping")
        _only(src, entry, ("id", "roles", "endpoint", "keys"), where)
        pid = _need(src, entry, "id", str, where)
        if not _ID.match(pid):
            raise SpecError(src, f"{where}id", f"{pid!r} must be lowercase letters, digits and '_'")
        if pid in seen:
            raise SpecError(src, f"{where}id", f"duplicate party id {pid!r}")
        seen.add(pid)
        roles = _need(src, entry, "roles", list, where)
        if not roles or any(r not in ROLES for r in roles):
            raise SpecError(src, f"{where}roles", f"must be a non-empty subset of {list(ROLES)}, got {roles}")
        endpoint = entry.get("endpoint")
        if "compute" in roles and (not isinstance(endpoint, str) or not _ENDPOINT.match(endpoint)):
            raise SpecError(src, f"{where}endpoint", f"a compute party needs host:port, got {endpoint!r}")
        if endpoint is not None and not (
            isinstance(endpoint, str) and _ENDPOINT.match(endpoint) and 1 <= int(endpoint.rsplit(":", 1)[1]) <= 65535
        ):
            raise SpecError(src, f"{where}endpoint", f"must be host:port with a port from 1 to 65535, got {endpoint!r}")
        keys = entry.get("keys") or {}
        if not isinstance(keys, dict):
            raise SpecError(src, f"{where}keys", "must be a mapping")
        _only(src, keys, ("sign", "box", "certificate"), f"{where}keys.")
        for key_name in ("sign", "box"):
            if key_name in keys:
                _check_key(src, f"{where}keys.{key_name}", keys[key_name])
        parties.append(Party(pid, tuple(roles), endpoint, keys.get("sign"), keys.get("box"), keys.get("certificate")))

    return tuple(parties)


def _check_threshold(src: str, raw: dict, m: int) -> int:
    """The Shamir threshold t for ``m`` compute parties (default: the largest with m >= 2t + 1)."""
    # Shamir with threshold t: any t compute parties learn nothing, t + 1 reconstruct. t = 0 would
    # hand every compute party the plaintext, and MPyC needs an honest majority (m >= 2t + 1).
    if m < 2 * MIN_THRESHOLD + 1:
        raise SpecError(
            src,
            "parties",
            f"needs at least {2 * MIN_THRESHOLD + 1} parties with role 'compute' "
            f"(threshold t >= {MIN_THRESHOLD} and m >= 2t + 1), got {m}",
        )
    threshold = raw.get("threshold", max(MIN_THRESHOLD, (m - 1) // 2))
    if not _is_int(threshold) or threshold < MIN_THRESHOLD or 2 * threshold >= m:
        raise SpecError(
            src,
            "threshold",
            f"must be an integer t with {MIN_THRESHOLD} <= t and 2t < {m} compute "
            f"parties (m >= 2t + 1), got {threshold!r}",
        )
    return threshold


def _check_deadlines(src: str, given: Any) -> dict[str, int]:
    """The spec's deadlines in seconds over the defaults; the cut-off defaults to the inputs deadline."""
    deadlines = dict(DEFAULT_DEADLINES)
    if not isinstance(given, dict):
        raise SpecError(src, "deadlines", "must be a mapping")
    for key, value in given.items():
        if key not in (*DEFAULT_DEADLINES, "cutoff"):
            raise SpecError(
                src, f"deadlines.{key}", f"unknown deadline (allowed: {', '.join(DEFAULT_DEADLINES)}, cutoff)"
            )
        if not _is_int(value) or value <= 0:
            raise SpecError(src, f"deadlines.{key}", "must be a positive number of seconds")
        deadlines[key] = value
    deadlines.setdefault("cutoff", deadlines["inputs"])
    if deadlines["cutoff"] > deadlines["inputs"]:
        raise SpecError(src, "deadlines.cutoff", "must not be later than deadlines.inputs")

    return deadlines


def _check_dimensions(src: str, dimensions: Any) -> dict:
    """Extra dimensions of a program's outputs: name -> distinct labels."""
    if not isinstance(dimensions, dict):
        raise SpecError(src, "dimensions", "must be a mapping of name to a list of labels")
    for name, labels in dimensions.items():
        if name == "market" or not _ID.match(str(name)):
            raise SpecError(src, f"dimensions.{name}", "must be a lowercase name other than 'market'")
        if not isinstance(labels, list) or not labels or len(set(map(str, labels))) != len(labels):
            raise SpecError(src, f"dimensions.{name}", "must be a non-empty list of distinct labels")

    return dimensions


def _spec_file(src: str, spec_path: Path, kind: str, value: str, where: str) -> Path:
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


def _only(src: str, mapping: dict, allowed: tuple[str, ...], where: str) -> None:
    for key in mapping:
        if key not in allowed:
            raise SpecError(src, f"{where}{key}", f"unknown field (allowed: {', '.join(allowed)})")


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _kind_name(kind) -> str:
    names = {str: "a string", int: "an integer", dict: "a mapping", list: "a list"}
    return names.get(kind, getattr(kind, "__name__", str(kind)))


def _check_cron(src: str, schedule: str) -> None:
    fields = schedule.split()
    if len(fields) != 5 or not all(re.match(r"^[\d*/,\-]+$", f) for f in fields):
        raise SpecError(src, "schedule", f"must be a 5-field cron expression in UTC, got {schedule!r}")


def _check_period(src: str, period: Any) -> None:
    if not isinstance(period, dict):
        raise SpecError(src, "aggregation.period", "must be a mapping")
    if "start" in period or "end" in period:
        for key in ("start", "end"):
            value = period.get(key)
            if not isinstance(value, str) or not _MONTH.match(value):
                raise SpecError(src, f"aggregation.period.{key}", f"must be a month YYYY-MM, got {value!r}")
        if period["start"] > period["end"]:
            raise SpecError(src, "aggregation.period", "start is after end")
    else:
        n = period.get("months")
        if not _is_int(n) or not 1 <= n <= 600:
            raise SpecError(src, "aggregation.period.months", f"must be an integer from 1 to 600, got {n!r}")


# -- data policy of the aggregation (issue 18) -----------------------------------------------
DATA_POLICY_FIELDS = ("policy", "columns", "participants")
# What the job does with rows that real data has: the first choice is the default.
POLICY_CHOICES = {
    "negative_amounts": ("count", "drop", "fail"),  # count: net revenue (a refund cancels its fare)
    "null_amounts": ("drop", "fail"),
    "outside_period": ("ignore", "fail"),
}
COLUMN_ROLES = ("revenue", "time", "participant")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_PARTICIPANT = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


def _check_data_policy(src: str, aggregation: dict, input_ids: list[str]):
    """Validate ``aggregation.policy``, ``.columns`` and ``.participants``.

    The policy and columns are part of the raw spec, so of its hash: every party applies the same.
    ``participants`` maps each input party to its value in the participant column (its licence id),
    for data where one file holds several licensees; it is required with a participant column.

    :return: (policy with defaults, or None if not declared; declared columns, or None;
        participants as {party id: value})
    """
    policy = None
    if "policy" in aggregation:
        given = aggregation["policy"] or {}
        if not isinstance(given, dict):
            raise SpecError(src, "aggregation.policy", "must be a mapping")
        policy = {name: choices[0] for name, choices in POLICY_CHOICES.items()}
        for name, value in given.items():
            if name not in POLICY_CHOICES:
                raise SpecError(
                    src, f"aggregation.policy.{name}", f"unknown field (allowed: {', '.join(POLICY_CHOICES)})"
                )
            if value not in POLICY_CHOICES[name]:
                raise SpecError(
                    src,
                    f"aggregation.policy.{name}",
                    f"must be one of {', '.join(POLICY_CHOICES[name])}, got {value!r}",
                )
            policy[name] = value
    columns = None
    if "columns" in aggregation:
        given = aggregation["columns"] or {}
        if not isinstance(given, dict):
            raise SpecError(src, "aggregation.columns", "must be a mapping")
        _only(src, given, COLUMN_ROLES, "aggregation.columns.")
        for role, name in given.items():
            if name is None and role == "participant":
                continue
            if not isinstance(name, str) or not _COLUMN.match(name):
                raise SpecError(
                    src, f"aggregation.columns.{role}", f"must be a column name (letters, digits, '_'), got {name!r}"
                )
        lowered = [n.lower() for n in given.values() if n is not None]
        if len(set(lowered)) != len(lowered):
            raise SpecError(src, "aggregation.columns", "names must differ (they are matched case-insensitively)")
        columns = {role: given[role] for role in COLUMN_ROLES if role in given}
    participants = aggregation.get("participants") or {}
    if not isinstance(participants, dict):
        raise SpecError(src, "aggregation.participants", "must be a mapping of input party id to its value")
    for pid, value in participants.items():
        if pid not in input_ids:
            raise SpecError(src, f"aggregation.participants.{pid}", "is not an input party")
        if not isinstance(value, str) or not _PARTICIPANT.match(value):
            raise SpecError(
                src,
                f"aggregation.participants.{pid}",
                f"must be an id of letters, digits, '_', '.' or '-' (like HV0003), got {value!r}",
            )
    values = list(participants.values())
    if len(set(values)) != len(values):
        raise SpecError(src, "aggregation.participants", "two parties have the same value: rows would count twice")
    if (columns or {}).get("participant"):
        missing = [pid for pid in input_ids if pid not in participants]
        if missing:
            raise SpecError(
                src,
                f"aggregation.participants.{missing[0]}",
                "is required: every input party needs its value in the participant column",
            )
    elif participants:
        raise SpecError(src, "aggregation.participants", "needs aggregation.columns.participant")
    return policy, columns, dict(participants)


# -- oblivious local stage (issue 17) ---------------------------------------------------------
OBLIVIOUS_FIELDS = ("oblivious",)


def _check_oblivious(src: str, aggregation: dict) -> bool:
    """Validate ``aggregation.oblivious`` (default false).

    True runs the aggregation job with ``--oblivious``: a keyed, padded shuffle whose volumes do not
    depend on the data, and Spark's encryption of shuffle files and RPC (docs/oblivious.md). It is
    part of the raw spec, so of its hash: every party of the federation runs the same mode.
    """
    value = aggregation.get("oblivious", False)
    if not isinstance(value, bool):
        raise SpecError(src, "aggregation.oblivious", f"must be true or false, got {value!r}")
    return value


# -- Spark resources of the aggregation job (docs/spark.md) -----------------------------------
_MEMORY = re.compile(r"^[1-9][0-9]{0,6}[kmgtKMGT]?$")
_SPARK_KEY = re.compile(r"^spark\.[A-Za-z0-9_.\-]+$")
# Set by the task itself, or secrets: never in the shared spec.
_RESERVED_CONF = ("spark.authenticate.secret", "spark.master", "spark.submit.deployMode", "spark.app.name")


def _check_spark(src: str, given: Any) -> SparkSettings:
    """Validate ``aggregation.spark`` (every key optional; docs/spark.md lists the defaults).

    ``cores_max`` (default 2; null: no limit), ``executor_cores``, ``num_executors`` (positive
    integers), ``executor_memory``, ``driver_memory`` (like ``2g`` or ``512m``), ``deploy_mode``
    (client or cluster), ``conf`` (extra ``spark.*`` settings), ``python``, ``driver_python``
    (the Python the executors and the driver run) and ``archives`` (shipped and unpacked on every
    node, for a packed Python environment).
    """
    where = "aggregation.spark"
    if given is None:
        return SparkSettings()
    if not isinstance(given, dict):
        raise SpecError(src, where, "must be a mapping")
    fields = (
        "cores_max",
        "executor_cores",
        "num_executors",
        "executor_memory",
        "driver_memory",
        "deploy_mode",
        "conf",
        "python",
        "driver_python",
        "archives",
    )
    _only(src, given, fields, f"{where}.")
    values: dict[str, Any] = {}
    for key in ("cores_max", "executor_cores", "num_executors"):
        if key in given:
            value = given[key]
            if value is not None and (not _is_int(value) or not 1 <= value <= 100_000):
                raise SpecError(src, f"{where}.{key}", f"must be a positive integer (or null), got {value!r}")
            values[key] = value
    for key in ("executor_memory", "driver_memory"):
        if key in given:
            value = given[key]
            if not isinstance(value, str) or not _MEMORY.match(value):
                raise SpecError(src, f"{where}.{key}", f"must be a size like 2g or 512m, got {value!r}")
            values[key] = value
    if "deploy_mode" in given:
        if given["deploy_mode"] not in ("client", "cluster"):
            raise SpecError(src, f"{where}.deploy_mode", f"must be client or cluster, got {given['deploy_mode']!r}")
        values["deploy_mode"] = given["deploy_mode"]
    for key in ("python", "driver_python", "archives"):
        if key in given:
            value = given[key]
            if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value):
                raise SpecError(src, f"{where}.{key}", f"must be a path or URI without spaces, got {value!r}")
            values[key] = value
    conf = given.get("conf") or {}
    if not isinstance(conf, dict):
        raise SpecError(src, f"{where}.conf", "must be a mapping of spark.* settings")
    checked = {}
    for key, value in conf.items():
        if not isinstance(key, str) or not _SPARK_KEY.match(key):
            raise SpecError(src, f"{where}.conf.{key}", "must be a Spark setting (spark.*)")
        if key in _RESERVED_CONF:
            raise SpecError(
                src, f"{where}.conf.{key}", "is set by the aggregate task (or is a secret), not by the spec"
            )
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(value, (str, int, float)) or any(c in str(value) for c in "\n\r"):
            raise SpecError(src, f"{where}.conf.{key}", f"must be a string or number, got {value!r}")
        checked[key] = str(value)  # a copy: the raw spec (and so its hash) stays as written
    values["conf"] = checked
    return SparkSettings(**values)


def _check_key(src: str, where: str, value: Any) -> None:
    try:
        ok = isinstance(value, str) and len(base64.b64decode(value, validate=True)) == 32
    except ValueError:
        ok = False
    if not ok:
        raise SpecError(src, where, "must be a base64 32-byte public key")
