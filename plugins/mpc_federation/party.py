"""One party in one run: its spec, program, keys, store and channel, resolved at execution time.

The operators, the sensor and the UI build this from Airflow connections; tests build it
from plain values. Nothing here runs at DAG parse time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from mpc_federation.spec import FederationSpec, load_spec

COORDINATION_CONN_ID = "mpc_coordination"
KEYS_CONN_ID = "mpc_party_keys"


def run_date(context: Any) -> datetime:
    """The date that names a run: the logical date, or for a run without one, when it was due."""
    logical = context.get("logical_date")
    return logical if logical is not None else context["dag_run"].run_after


def keys_from_connection(conn_id: str):
    """The party's private keys from an Airflow connection whose password holds the key JSON."""
    from airflow.sdk import BaseHook

    from mpc_federation.envelope import PartyKeys

    from mpc_operators.settings import MPCSettings

    conn = BaseHook.get_connection(conn_id)
    if not conn.password:
        raise ValueError(f"connection {conn_id!r} has no password: it must hold the party's key JSON")
    return PartyKeys.from_json(conn.password, allow_test_keys=MPCSettings.load(require_party=False).allow_test_keys)


def probe_key(spec: FederationSpec, party_id: str) -> str:
    """Where ``party_id`` probes the bucket's conditional writes: a key its role may write
    (``<prefix>/*/*/*/<party>/*``), outside every run and the ledger."""
    return f"{spec.prefix}/{spec.computation}/probe/conditional-writes/{party_id}/probe"


def store_from_connection(conn_id: str, bucket: str, *, probe: str | None = None):
    """The ``CoordinationStore`` of ``bucket`` through the ``aws`` connection ``conn_id`` (Airflow only)."""
    from mpc_operators.hooks import CoordinationHook

    return CoordinationHook(aws_conn_id=conn_id).store(bucket, probe_key=probe)


@dataclass
class PartyRun:
    """What a task of ``party_id`` needs for the run named by ``logical_date``."""

    spec: FederationSpec
    party_id: str
    logical_date: datetime
    keys: Any  # PartyKeys, or None for a party that only reads
    store: Any  # CoordinationStore

    @classmethod
    def from_airflow(cls, spec_path: str, party_id: str, context: Any, *,
                     keys_conn_id: str | None = KEYS_CONN_ID,
                     coordination_conn_id: str = COORDINATION_CONN_ID) -> PartyRun:
        """:param keys_conn_id: None for a task that only reads (verifies with public keys)."""
        spec = load_spec(spec_path)
        spec.party(party_id)  # fails naming the party if it is not a member
        keys = keys_from_connection(keys_conn_id) if keys_conn_id is not None else None
        if keys is not None and keys.party != party_id:
            raise ValueError(f"connection {keys_conn_id!r} holds the keys of {keys.party!r}, not {party_id!r}")
        store = store_from_connection(coordination_conn_id, spec.bucket, probe=probe_key(spec, party_id))
        return cls(spec, party_id, run_date(context), keys, store)

    @cached_property
    def program(self):
        from mpc_federation.programs import load_program

        loaded = load_program(self.spec.program_file)
        return loaded.program

    @cached_property
    def dims(self) -> dict[str, list[str]]:
        return self.spec.dimensions(self.logical_date)

    @cached_property
    def channel(self):
        from mpc_federation.channel import RunChannel
        from mpc_federation.layout import run_key

        return RunChannel(self.spec, run_key(self.logical_date), self.store, self.keys)

    @cached_property
    def reader(self):
        """Verified reads with the spec's public keys: the channel if this run holds keys."""
        from mpc_federation.channel import RunReader
        from mpc_federation.layout import run_key

        if self.keys is not None:
            return self.channel
        return RunReader(self.spec, run_key(self.logical_date), self.store, viewer=self.party_id)

    @property
    def me(self):
        return self.spec.party(self.party_id)
