"""This party's federations as the UI sees them: its ``[mpc]`` settings, the specs it belongs to,
and one coordination store per bucket. No private key is ever loaded: verifying needs the
spec's public keys only."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

from mpc_federation.spec import FederationSpec, party_specs

# A page answers at once: no riding out a bucket outage as the tasks do.
QUICK_STORE = {"connect_timeout": 3.0, "read_timeout": 10.0, "max_attempts": 1, "outage_seconds": 0.0}


def coordination_store(spec: FederationSpec, **overrides: Any):
    """The coordination bucket of ``spec``, from this Airflow's connection: the one place the UI
    builds a store (swap in the CoordinationHook here once it lands).

    :param overrides: StoreConfig fields to change (timeouts, retries).
    """
    from airflow.models.connection import Connection
    from mpc_federation.party import COORDINATION_CONN_ID
    from mpc_federation.store import CoordinationStore, StoreConfig

    config = StoreConfig.from_connection(Connection.get_connection_from_secrets(COORDINATION_CONN_ID), spec.bucket)
    fields = {f.name for f in dataclasses.fields(config)}
    return CoordinationStore(dataclasses.replace(config, **{k: v for k, v in overrides.items() if k in fields}))


class Federations:
    """Specs and stores of this party, loaded on first use and again when a spec file or the
    settings change."""

    def __init__(self):
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._stores: dict[str, Any] = {}
        self.party_id = ""
        self.specs: dict[str, FederationSpec] = {}
        self.error: str | None = None
        self.cache: dict = {}  # finished runs' overviews (data.list_runs)

    def load(self) -> None:
        from mpc_operators.settings import MPCSettings

        try:
            settings = MPCSettings.load()
        except Exception as exc:  # noqa: BLE001 - shown on the page instead of a 500
            with self._lock:
                self.party_id, self.specs, self.error, self._stamp = "", {}, str(exc), None
            return
        files = sorted(settings.spec_dir.glob("*.yaml"))
        stamp = (settings.party_id, str(settings.spec_dir), tuple((str(f), f.stat().st_mtime) for f in files))
        with self._lock:
            if stamp == self._stamp:
                return
            self.party_id = settings.party_id
            try:
                self.specs, self.error = party_specs(settings.spec_dir, self.party_id), None
                if not self.specs:
                    self.error = f"party {self.party_id!r} is in no federation spec in {settings.spec_dir}"
            except Exception as exc:  # noqa: BLE001 - shown on the page instead of a 500
                self.specs, self.error = {}, f"{type(exc).__name__}: {exc}"
            self._stores, self.cache, self._stamp = {}, {}, stamp

    def store(self, spec: FederationSpec) -> Any:
        if spec.bucket not in self._stores:
            self._stores[spec.bucket] = coordination_store(spec, **QUICK_STORE)
        return self._stores[spec.bucket]


FEDERATIONS = Federations()
