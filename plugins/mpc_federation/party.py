"""One party in one run: its spec, program, keys, store and channel, resolved at execution time.

The operators and the sensor build this from Airflow connections (``mpc_operators.base``); tests
and benchmarks build it from plain values. Nothing here runs at DAG parse time or imports Airflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from mpc_federation.spec import FederationSpec


def logical_date_of(context: Any) -> datetime:
    """The date that names a run: the logical date, or for a run without one, when it was due."""
    logical = context.get("logical_date")
    return logical if logical is not None else context["dag_run"].run_after


def run_key_of(context: Any) -> str:
    """The key every party names the run of an Airflow task's ``context`` by (``layout.run_key``)."""
    from mpc_federation.layout import run_key

    return run_key(logical_date_of(context))


@dataclass
class PartyRun:
    """What a task of ``party_id`` needs for the run named by ``logical_date``."""

    spec: FederationSpec
    party_id: str
    logical_date: datetime
    keys: Any  # PartyKeys, or None for a party that only reads
    store: Any  # CoordinationStore

    @cached_property
    def program(self):
        from mpc_federation.programs import load_program

        loaded = load_program(self.spec.program_file)
        return loaded.program.for_federation(self.spec.program_params, len(self.spec.input_parties))

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
