"""Signed writes and verified reads of one party in one run (the object layout is in layout.py)."""

from __future__ import annotations

import json
import time
from typing import Any

from mpc_federation.envelope import IntegrityError, PartyKeys, open_envelope, seal
from mpc_federation.layout import RunLayout
from mpc_federation.spec import FederationSpec
from mpc_federation.store import CoordinationStore


class RunChannel(RunLayout):
    """Signed writes and verified reads for one party in one run."""

    def __init__(self, spec: FederationSpec, run: str, store: CoordinationStore, keys: PartyKeys):
        super().__init__(spec, run)
        self.store = store
        self.keys = keys
        self.me = spec.party(keys.party)
        self._spec_hash = spec.spec_hash
        self._program_hash = spec.program_hash

    # -- writing -------------------------------------------------------------
    def _header(self, kind: str, role: str, to: str | None, attempt: int) -> dict[str, Any]:
        return {"computation": self.spec.computation, "run": self.run, "attempt": attempt,
                "party": self.me.id, "role": role, "kind": kind, "to": to,
                "spec_hash": self._spec_hash, "program_hash": self._program_hash,
                "created_at": time.time()}

    def publish(self, key: str, kind: str, role: str, payload: dict, *, to: str | None = None,
                attempt: int = 0, only_if_new: bool = False) -> bool:
        """Sign (and seal to ``to``) a JSON payload and write it. Returns False if it existed."""
        if not self.me.has(role):
            raise PermissionError(f"party {self.me.id} has no role {role!r} in {self.spec.computation}")
        box_key = None
        if to is not None:
            box_key = self.spec.party(to).box_key
            if box_key is None:
                raise IntegrityError(f"party {to!r} has no encryption key in the federation spec")
        blob = seal(self._header(kind, role, to, attempt), json.dumps(payload).encode(), self.keys, box_key)
        if only_if_new:
            return self.store.put_new(key, blob)
        self.store.put(key, blob)
        return True

    # -- reading -------------------------------------------------------------
    def read(self, key: str, kind: str, party: str, *, to: str | None = None,
             attempt: int = 0) -> dict | None:
        """Fetch and verify one object written by ``party``; None if absent."""
        blob = self.store.get(key)
        if blob is None:
            return None
        signer = self.spec.party(party) if party in {p.id for p in self.spec.parties} else None
        expected = {"computation": self.spec.computation, "run": self.run, "attempt": attempt,
                    "party": party, "kind": kind, "to": to,
                    "spec_hash": self._spec_hash, "program_hash": self._program_hash}
        try:
            _, payload = open_envelope(blob, name=key, expected=expected,
                                       signer_key=signer.sign_key if signer else None,
                                       keys=self.keys if to == self.me.id else None)
        except IntegrityError as exc:
            raise IntegrityError(self._explain(exc, blob, party)) from None
        return json.loads(payload)

    def _explain(self, exc: IntegrityError, blob: bytes, party: str) -> str:
        """Name a disagreement on the spec or program as such: the usual cause is an edited spec."""
        text = str(exc)
        if "spec_hash is" in text:
            return f"{text}; party {party} runs a different federation spec than {self.me.id}"
        if "program_hash is" in text:
            return f"{text}; party {party} runs a different program file than {self.me.id}"
        return text

    def present(self, prefix: str = "", *, patient: bool = True) -> set[str]:
        """Keys below the run's root (one listing, no verification: for waiting only)."""
        return set(self.store.list(f"{self.root}/{prefix}", patient=patient))
