"""One run's place in the bucket, and the verified reads and signed writes that use it.

Every object is ``<prefix>/<computation>/<run_key>/<kind>/<writer>/<name>``: the writing party is
always the fifth segment, so a bucket policy confines each party to its own prefixes, and a
reader checks that the signer is the party the key names.

    inputs/<party>/to-<compute party>              input shares, sealed to that compute party
    inputs/<party>/done                            written last: the party's shares are all there
    roster/<leader>/attempt-<n>                    the leader's list of included input parties
    outputs/<compute party>/attempt-<n>/to-<recipient>   output shares, sealed to the recipient
    status/<party>/<stage>                         progress for monitoring (no data)
    abort/<party>/reason                           a party's signed reason for stopping the run
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any

from mpc_federation.envelope import IntegrityError, PartyKeys, open_envelope, seal
from mpc_federation.spec import FederationSpec
from mpc_federation.store import CoordinationStore


def run_key(logical_date: datetime) -> str:
    """The name every party derives for the same nightly run: its logical date in UTC."""
    if logical_date.tzinfo is None:
        logical_date = logical_date.replace(tzinfo=timezone.utc)
    return logical_date.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


class RunChannel:
    """Signed writes and verified reads for one party in one run."""

    def __init__(self, spec: FederationSpec, run: str, store: CoordinationStore, keys: PartyKeys):
        self.spec = spec
        self.run = run
        self.store = store
        self.keys = keys
        self.me = spec.party(keys.party)
        self.root = f"{spec.prefix}/{spec.computation}/{run}"
        self._spec_hash = spec.spec_hash
        self._program_hash = spec.program_hash

    # -- keys of objects ----------------------------------------------------
    def input_key(self, party: str, compute: str) -> str:
        return f"{self.root}/inputs/{party}/to-{compute}"

    def input_done_key(self, party: str) -> str:
        return f"{self.root}/inputs/{party}/done"

    def roster_key(self, attempt: int) -> str:
        return f"{self.root}/roster/{self.spec.leader.id}/attempt-{attempt}"

    def output_key(self, attempt: int, compute: str, recipient: str) -> str:
        return f"{self.root}/outputs/{compute}/attempt-{attempt}/to-{recipient}"

    def status_key(self, party: str, stage: str) -> str:
        return f"{self.root}/status/{party}/{stage}"

    def abort_key(self, party: str) -> str:
        return f"{self.root}/abort/{party}/reason"

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

    def present(self, prefix: str = "") -> set[str]:
        """Keys below the run's root (one listing, no verification: for waiting only)."""
        return set(self.store.list(f"{self.root}/{prefix}"))
