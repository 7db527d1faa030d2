"""This party's configuration: the ``[mpc]`` section of Airflow's configuration, in one place.

Set like any Airflow option, in ``airflow.cfg`` or as ``AIRFLOW__MPC__<KEY>`` environment
variables; ``OPTIONS`` below says what each key means (the provider's config section and the
README's table are made from it). The shared federation spec never holds any of these: they
differ per party.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mpc_federation.builtins import builtin_dir

SECTION = "mpc"
# key -> (default as documented, meaning)
OPTIONS: dict[str, tuple[str, str]] = {
    "party_id": ("", "This party's id in the federation specs (required)."),
    "spec_dir": ("the built-in federations (include/federations)", "Folder of federation specs (*.yaml)."),
    "data_uri": (
        "$AIRFLOW_HOME/mpc-data",
        "Root of this party's private input data: a local path or a URI "
        "(file://, s3a://, hdfs://, ...), passed to Spark unchanged; a spec's aggregation.input is "
        "relative to it.",
    ),
    "ledger_uri": (
        "$AIRFLOW_HOME/mpc-work/ledger",
        "This compute party's private copy of the disclosure "
        "ledger: a local path or an object-storage URI, reachable from the compute queue's workers.",
    ),
    "results_uri": (
        "",
        "Where a recipient also keeps its result records (<computation>/<run>/result.json); "
        "empty: the reveal task's XCom (and its asset event) only.",
    ),
    "aggregate_uri": (
        "",
        "Where the Spark job writes the aggregate when its driver runs elsewhere "
        "(deploy_mode=cluster); empty: a private temporary file on the worker, read back and "
        "handed to the share task as XCom.",
    ),
    "compute_queue": (
        "",
        "The Airflow queue of the compute task: the workers at this party's MPC endpoint "
        "listen on it; empty: the default queue.",
    ),
    "wait_in_task": (
        "near",
        "Who waits on a rendezvous. near: the compute and reveal tasks, deferred in the triggerer "
        "while the rendezvous is far (no worker slot, public keys only), then, once it is near (the "
        "privacy floor or more than half of the input parties shared, or a roster exists), in the "
        "task itself, polling fast: nothing is handed between tasks when the last party publishes, "
        "and a compute party's MPyC process starts and connects ahead; without "
        "[operators] default_deferrable (no triggerer), as False. False: the wait_for_inputs and "
        "wait_for_result sensors until the stage is ready, then the next task starts. True: the "
        "tasks throughout. A task that waits holds its worker slot (and this party's keys) while "
        "it waits. Set it alike for the DAG processor and every worker: it decides which tasks the "
        "DAG has.",
    ),
    "allow_test_keys": ("False", "Accept keys marked as test keys (the local federations); never in production."),
}
# The options whose documented default above is their value itself (the others depend on
# $AIRFLOW_HOME or the installation): MPCSettings.load falls back to it, and the provider declares it.
LITERAL_DEFAULTS = ("wait_in_task", "allow_test_keys")
# The project's include/federations in a clone, the package data of an installed distribution.
DEFAULT_SPEC_DIR = builtin_dir("federation")


class PartyConfigError(RuntimeError):
    """This deployment's party configuration is missing or does not match the specs."""


@dataclass(frozen=True)
class MPCSettings:
    party_id: str
    spec_dir: Path
    data_uri: str
    ledger_uri: str
    results_uri: str
    aggregate_uri: str
    compute_queue: str
    wait_in_task: str  # "sensors", "near" or "tasks": ``wait_mode``
    allow_test_keys: bool

    def waiting(self) -> str:
        """The way of waiting in effect: ``wait_in_task``, except that ``near`` is ``sensors`` in an
        Airflow that does not defer (``[operators] default_deferrable`` False: no triggerer), so a
        task never holds this party's keys for the whole night there."""
        from airflow.configuration import conf

        if self.wait_in_task == "near" and not conf.getboolean("operators", "default_deferrable", fallback=False):
            return "sensors"
        return self.wait_in_task

    @classmethod
    def load(cls, *, require_party: bool = True) -> MPCSettings:
        """The ``[mpc]`` settings of this process (Airflow's configuration, then the defaults).

        :param require_party: raise PartyConfigError when ``party_id`` is not set.
        """
        from airflow.configuration import conf

        def get(key: str, default: str = "") -> str:
            return (conf.get(SECTION, key, fallback=default) or default).strip()

        home = Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")
        settings = cls(
            party_id=get("party_id"),
            spec_dir=Path(get("spec_dir") or DEFAULT_SPEC_DIR),
            data_uri=get("data_uri") or str(home / "mpc-data"),
            ledger_uri=get("ledger_uri") or str(home / "mpc-work" / "ledger"),
            results_uri=get("results_uri"),
            aggregate_uri=get("aggregate_uri"),
            compute_queue=get("compute_queue"),
            wait_in_task=wait_mode(get("wait_in_task", OPTIONS["wait_in_task"][0])),
            allow_test_keys=_true(get("allow_test_keys", OPTIONS["allow_test_keys"][0])),
        )
        if require_party and not settings.party_id:
            raise PartyConfigError(
                "[mpc] party_id is not set (AIRFLOW__MPC__PARTY_ID): each party's Airflow must say which party it is"
            )
        return settings


def _true(value: str) -> bool:
    return value.lower() in ("1", "true", "yes")


def wait_mode(value: str) -> str:
    """The way of waiting that ``[mpc] wait_in_task`` names: ``near`` (the tasks defer while the
    rendezvous is far, then wait), ``sensors`` (False: sensor tasks wait) or ``tasks`` (True: the
    tasks wait throughout)."""
    text = value.strip().lower()
    if text in ("0", "false", "no"):
        return "sensors"
    if _true(text):
        return "tasks"
    if text == "near":
        return "near"
    raise PartyConfigError(f"[mpc] wait_in_task must be False, near or True, not {value!r}")


def join_uri(root: str, name: str) -> str:
    """``name`` under ``root``, both local paths or URIs; a ``name`` that is a URI or an absolute
    path stands alone. Never goes through pathlib, which would fold ``s3a://b`` into ``s3a:/b``."""
    if "://" in name or name.startswith("/"):
        return name
    return f"{root.rstrip('/')}/{name}"


def result_location(results_uri: str, computation: str, run: str) -> str:
    """Where a recipient keeps the result record of ``run`` under ``[mpc] results_uri``."""
    return join_uri(results_uri, f"{computation}/{run}/result.json")
