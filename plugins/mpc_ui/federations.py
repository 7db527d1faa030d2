"""This party's federations as the UI sees them: its ``[mpc]`` settings, the specs it belongs to,
and one coordination store per bucket. No private key is ever loaded: verifying needs the
spec's public keys only."""

from __future__ import annotations

import threading
from typing import Any

from mpc_federation.spec import FederationSpec, party_specs


def coordination_store(spec: FederationSpec):
    """The coordination bucket of ``spec`` through the ``mpc_coordination`` connection: the one
    place the UI builds a store. A page answers at once: no riding out a bucket outage as the tasks do."""
    from mpc_operators.hooks import CoordinationHook

    return CoordinationHook().store(spec.bucket, quick=True)


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
            self._stores[spec.bucket] = coordination_store(spec)
        return self._stores[spec.bucket]


FEDERATIONS = Federations()
