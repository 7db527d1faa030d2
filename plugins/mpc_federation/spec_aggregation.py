"""The ``aggregation`` block of a federation spec: the job each input party runs on its own data,
where it reads, which months, its data policy, the oblivious mode and its Spark resources.

Every part is in the raw spec, so in its hash: every party of a federation runs the same job the
same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpc_federation.spec_checks import MONTH, SpecError, is_int, need, only, spec_file


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

# -- oblivious local stage (issue 17) ---------------------------------------------------------
OBLIVIOUS_FIELDS = ("oblivious",)
# -- who reads the rows: Spark SQL, or pyarrow in Spark's tasks (include/jobs/mpc_arrow.py) ----------
ENGINES = ("spark", "arrow")

AGGREGATION_FIELDS = ("job", "input", "period", *DATA_POLICY_FIELDS, *OBLIVIOUS_FIELDS, "engine", "spark")


def check_aggregation(src: str, spec_path: Path, raw: dict[str, Any]) -> tuple[dict, dict[str, Any]]:
    """The spec's ``aggregation`` mapping (default empty) and its job, input and period.

    :return: (the mapping, {FederationSpec field: value} of the job, input and period)
    """
    aggregation = raw.get("aggregation", {}) or {}
    if not isinstance(aggregation, dict):
        raise SpecError(src, "aggregation", "must be a mapping")
    job = None
    if "job" in aggregation:
        job = spec_file(src, spec_path, "job", need(src, aggregation, "job", str, "aggregation."), "aggregation.job")
    only(src, aggregation, AGGREGATION_FIELDS, "aggregation.")
    agg_input = aggregation.get("input", ".")
    if not isinstance(agg_input, str) or agg_input.startswith("/") or ".." in agg_input.split("/"):
        raise SpecError(src, "aggregation.input", "must be a relative path inside the party's data folder")
    period = aggregation.get("period", {"months": 1})
    _check_period(src, period)
    return aggregation, {"aggregation_job": job, "aggregation_input": agg_input, "period": period}


def check_aggregation_rules(src: str, aggregation: dict, input_ids: list[str]) -> dict[str, Any]:
    """Data policy, oblivious mode and Spark resources of the job, as {FederationSpec field: value}."""
    data_policy, columns, participants = check_data_policy(src, aggregation, input_ids)
    return {
        "data_policy": data_policy,
        "aggregation_columns": columns,
        "aggregation_participants": participants,
        "aggregation_oblivious": check_oblivious(src, aggregation),
        "aggregation_engine": check_engine(src, aggregation),
        "aggregation_spark": check_spark(src, aggregation.get("spark")),
    }


def _check_period(src: str, period: Any) -> None:
    if not isinstance(period, dict):
        raise SpecError(src, "aggregation.period", "must be a mapping")
    unknown = sorted(set(period) - {"months", "start", "end", "snapshot"})
    if unknown:
        raise SpecError(src, "aggregation.period", f"unknown keys {unknown} (allowed: months, start, end, snapshot)")
    if not isinstance(period.get("snapshot", False), bool):
        raise SpecError(src, "aggregation.period.snapshot", f"must be true or false, got {period['snapshot']!r}")
    if "start" in period or "end" in period:
        for key in ("start", "end"):
            value = period.get(key)
            if not isinstance(value, str) or not MONTH.match(value):
                raise SpecError(src, f"aggregation.period.{key}", f"must be a month YYYY-MM, got {value!r}")
        if period["start"] > period["end"]:
            raise SpecError(src, "aggregation.period", "start is after end")
    else:
        n = period.get("months")
        if not is_int(n) or not 1 <= n <= 600:
            raise SpecError(src, "aggregation.period.months", f"must be an integer from 1 to 600, got {n!r}")


def check_data_policy(src: str, aggregation: dict, input_ids: list[str]):
    """Validate ``aggregation.policy``, ``.columns`` and ``.participants``.

    The policy and columns are part of the raw spec, so of its hash: every party applies the same.
    ``participants`` maps each input party to its value in the participant column (its licence id),
    for data where one file holds several licensees; it is required with a participant column.

    :return: (policy with defaults, or None if not declared; declared columns, or None;
        participants as {party id: value})
    """
    policy = _check_policy(src, aggregation["policy"]) if "policy" in aggregation else None
    columns = _check_columns(src, aggregation["columns"]) if "columns" in aggregation else None
    participants = _check_participants(src, aggregation.get("participants"), input_ids, columns)
    return policy, columns, participants


def _check_policy(src: str, given: Any) -> dict[str, str]:
    """``aggregation.policy`` over the defaults (the first choice of each)."""
    given = given or {}
    if not isinstance(given, dict):
        raise SpecError(src, "aggregation.policy", "must be a mapping")
    policy = {name: choices[0] for name, choices in POLICY_CHOICES.items()}
    for name, value in given.items():
        if name not in POLICY_CHOICES:
            raise SpecError(src, f"aggregation.policy.{name}", f"unknown field (allowed: {', '.join(POLICY_CHOICES)})")
        if value not in POLICY_CHOICES[name]:
            raise SpecError(
                src,
                f"aggregation.policy.{name}",
                f"must be one of {', '.join(POLICY_CHOICES[name])}, got {value!r}",
            )
        policy[name] = value
    return policy


def _check_columns(src: str, given: Any) -> dict[str, str | None]:
    """``aggregation.columns``: role -> column name (names differ case-insensitively)."""
    given = given or {}
    if not isinstance(given, dict):
        raise SpecError(src, "aggregation.columns", "must be a mapping")
    only(src, given, COLUMN_ROLES, "aggregation.columns.")
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
    return {role: given[role] for role in COLUMN_ROLES if role in given}


def _check_participants(
    src: str, given: Any, input_ids: list[str], columns: dict[str, str | None] | None
) -> dict[str, str]:
    """``aggregation.participants``: input party -> its distinct value in the participant column."""
    participants = given or {}
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
    return dict(participants)


def check_oblivious(src: str, aggregation: dict) -> bool:
    """Validate ``aggregation.oblivious`` (default false).

    True runs the aggregation job with ``--oblivious``: a keyed, padded shuffle whose volumes do not
    depend on the data, and Spark's encryption of shuffle files and RPC (docs/oblivious.md). It is
    part of the raw spec, so of its hash: every party of the federation runs the same mode.
    """
    value = aggregation.get("oblivious", False)
    if not isinstance(value, bool):
        raise SpecError(src, "aggregation.oblivious", f"must be true or false, got {value!r}")
    return value


def check_engine(src: str, aggregation: dict) -> str:
    """Validate ``aggregation.engine`` (default ``spark``).

    ``arrow`` runs the job with ``--engine arrow``: Spark hands each core's task its share of the
    files' row groups and the task reads them with pyarrow (include/jobs/mpc_arrow.py; local files
    and S3, docs/spark.md). It reads no row through Spark's shuffle, so it does not combine with ``oblivious``.
    """
    value = aggregation.get("engine", ENGINES[0])
    if value not in ENGINES:
        raise SpecError(src, "aggregation.engine", f"must be one of {', '.join(ENGINES)}, got {value!r}")
    if value == "arrow" and aggregation.get("oblivious", False):
        raise SpecError(src, "aggregation.engine", "arrow does not combine with aggregation.oblivious: true")
    return value


# -- Spark resources of the aggregation job (docs/spark.md) -----------------------------------
_SPARK = "aggregation.spark"
_SPARK_FIELDS = (
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
_MEMORY = re.compile(r"^[1-9][0-9]{0,6}[kmgtKMGT]?$")
_SPARK_KEY = re.compile(r"^spark\.[A-Za-z0-9_.\-]+$")
# Set by the task itself, or secrets: never in the shared spec.
_RESERVED_CONF = ("spark.authenticate.secret", "spark.master", "spark.submit.deployMode", "spark.app.name")


def check_spark(src: str, given: Any) -> SparkSettings:
    """Validate ``aggregation.spark`` (every key optional; docs/spark.md lists the defaults).

    ``cores_max`` (default 2; null: no limit), ``executor_cores``, ``num_executors`` (positive
    integers), ``executor_memory``, ``driver_memory`` (like ``2g`` or ``512m``), ``deploy_mode``
    (client or cluster), ``conf`` (extra ``spark.*`` settings), ``python``, ``driver_python``
    (the Python the executors and the driver run) and ``archives`` (shipped and unpacked on every
    node, for a packed Python environment).
    """
    if given is None:
        return SparkSettings()
    if not isinstance(given, dict):
        raise SpecError(src, _SPARK, "must be a mapping")
    only(src, given, _SPARK_FIELDS, f"{_SPARK}.")
    values = _spark_resources(src, given)
    values["conf"] = _spark_conf(src, given.get("conf") or {})
    return SparkSettings(**values)


def _spark_resources(src: str, given: dict) -> dict[str, Any]:
    """The given cores, executors, memory sizes, deploy mode and Python paths."""
    values: dict[str, Any] = {}
    for key in ("cores_max", "executor_cores", "num_executors"):
        if key in given:
            value = given[key]
            if value is not None and (not is_int(value) or not 1 <= value <= 100_000):
                raise SpecError(src, f"{_SPARK}.{key}", f"must be a positive integer (or null), got {value!r}")
            values[key] = value
    for key in ("executor_memory", "driver_memory"):
        if key in given:
            value = given[key]
            if not isinstance(value, str) or not _MEMORY.match(value):
                raise SpecError(src, f"{_SPARK}.{key}", f"must be a size like 2g or 512m, got {value!r}")
            values[key] = value
    if "deploy_mode" in given:
        if given["deploy_mode"] not in ("client", "cluster"):
            raise SpecError(src, f"{_SPARK}.deploy_mode", f"must be client or cluster, got {given['deploy_mode']!r}")
        values["deploy_mode"] = given["deploy_mode"]
    for key in ("python", "driver_python", "archives"):
        if key in given:
            value = given[key]
            if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value):
                raise SpecError(src, f"{_SPARK}.{key}", f"must be a path or URI without spaces, got {value!r}")
            values[key] = value
    return values


def _spark_conf(src: str, conf: Any) -> dict[str, str]:
    """``aggregation.spark.conf``: extra spark.* settings as strings (none the task sets itself)."""
    if not isinstance(conf, dict):
        raise SpecError(src, f"{_SPARK}.conf", "must be a mapping of spark.* settings")
    checked = {}
    for key, value in conf.items():
        if not isinstance(key, str) or not _SPARK_KEY.match(key):
            raise SpecError(src, f"{_SPARK}.conf.{key}", "must be a Spark setting (spark.*)")
        if key in _RESERVED_CONF:
            raise SpecError(
                src, f"{_SPARK}.conf.{key}", "is set by the aggregate task (or is a secret), not by the spec"
            )
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(value, (str, int, float)) or any(c in str(value) for c in "\n\r"):
            raise SpecError(src, f"{_SPARK}.conf.{key}", f"must be a string or number, got {value!r}")
        checked[key] = str(value)  # a copy: the raw spec (and so its hash) stays as written
    return checked
