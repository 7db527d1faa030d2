"""Verified reads (public keys only) and signed writes of one party in one run; the object layout
is in layout.py.

``RunReader`` needs the federation spec and the bucket only: it verifies every object against
the writer's public key in the spec (signature, run, kind, attempt, spec and program hashes).
The trigger, the sensor's readiness, the monitor and the UI read through it, so a process that
only watches never holds a party's private keys. ``RunChannel`` adds the party's keys: signed
writes, and reading the objects sealed to this party.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mpc_federation.envelope import IntegrityError, PartyKeys, open_envelope, parts, read_json, seal
from mpc_federation.layout import Described, RunLayout
from mpc_federation.spec import FederationSpec
from mpc_federation.store import CONCURRENT_REQUESTS, concurrently

log = logging.getLogger(__name__)

# The kinds that decide waiting, rosters and stops; input shares (sealed, large) are not fetched
# for that, and status records are progress only.
DECISION_KINDS = frozenset({"input-done", "roster", "output-shares", "abort"})


@dataclass
class Verified:
    """A listing of one run, reduced to the objects whose envelopes verified.

    :param keys: keys of verified objects (what ``layout.readiness`` reads).
    :param headers: their signed headers.
    :param payloads: their payloads (None for sealed ones).
    :param invalid: keys that did not verify, with the reason (ignored for every decision).
    :param listing: the listing it was made from, {key: ETag/LastModified or None} (every key).
    """

    keys: set[str] = field(default_factory=set)
    headers: dict[str, dict] = field(default_factory=dict)
    payloads: dict[str, Any] = field(default_factory=dict)
    invalid: dict[str, str] = field(default_factory=dict)
    listing: dict[str, str | None] = field(default_factory=dict)

    def rosters(self, layout: RunLayout) -> dict[int, dict]:
        """The verified roster payloads by attempt."""
        return {
            a: self.payloads[layout.roster_key(a)]
            for a in layout.attempts(self.keys)
            if isinstance(self.payloads.get(layout.roster_key(a)), dict)
        }


class RunReader(RunLayout):
    """Verified reads of one run with the spec's public keys only.

    :param viewer: the reading party's id (for messages; None for an anonymous reader).
    """

    def __init__(self, spec: FederationSpec, run: str, store: Any, viewer: str | None = None):
        super().__init__(spec, run)
        self.store = store
        self.viewer = viewer
        self._spec_hash = spec.spec_hash
        self._program_hash = spec.program_hash
        # key -> (listing token, sha256 of the body, verified (header, payload) or None, error)
        self._seen: dict[str, tuple[str | None, str, tuple[dict, Any] | None, str | None]] = {}
        self._blobs: dict[str, bytes] = {}  # the bodies of prefetched objects (``_prefetches``)

    @property
    def _reader_keys(self) -> PartyKeys | None:
        return None

    # -- reading -------------------------------------------------------------
    def _expected(self, party: str, kind: str, to: str | None, attempt: int, any_spec: bool) -> dict:
        expected = {
            "computation": self.spec.computation,
            "run": self.run,
            "attempt": attempt,
            "party": party,
            "kind": kind,
            "to": to,
        }
        if not any_spec:
            expected.update(spec_hash=self._spec_hash, program_hash=self._program_hash)
        return expected

    def open(
        self,
        blob: bytes,
        key: str,
        kind: str,
        party: str,
        *,
        to: str | None = None,
        attempt: int = 0,
        any_spec: bool = False,
    ) -> tuple[dict, Any]:
        """Verify one fetched object written by ``party``: (signed header, payload). The payload of
        an object sealed to another party is None (its envelope is verified all the same).

        :param any_spec: do not require this spec's and program's hashes (ledger records outlive
            an edited spec: a new version must not erase what was released).
        """
        signer = self.spec.party(party) if party in {p.id for p in self.spec.parties} else None
        keys = (
            self._reader_keys
            if to is not None and self._reader_keys is not None and to == self._reader_keys.party
            else None
        )
        try:
            header, payload = open_envelope(
                blob,
                name=key,
                expected=self._expected(party, kind, to, attempt, any_spec),
                signer_key=signer.sign_key if signer else None,
                keys=keys,
            )
        except IntegrityError as exc:
            # Sealed to someone else: open_envelope checked signature, digest and header first.
            if keys is None and str(exc).endswith("not readable here"):
                return parts(blob)[0]["header"], None
            raise IntegrityError(self._explain(exc, party)) from None
        try:
            return header, read_json(payload)
        except ValueError:
            raise IntegrityError(f"object {key} (claimed party {party}): payload is not JSON") from None

    def read(
        self, key: str, kind: str, party: str, *, to: str | None = None, attempt: int = 0, any_spec: bool = False
    ) -> dict | None:
        """Fetch and verify one object written by ``party``; None if absent."""
        blob = self.store.get(key)
        if blob is None:
            return None
        _, payload = self.open(blob, key, kind, party, to=to, attempt=attempt, any_spec=any_spec)
        if payload is None:
            raise IntegrityError(f"object {key} is encrypted to {to!r}, not readable by {self.viewer or 'a reader'}")
        return payload

    def read_with_header(
        self, key: str, kind: str, party: str, *, to: str | None = None, attempt: int = 0
    ) -> tuple[dict, Any] | None:
        blob = self.store.get(key)
        return None if blob is None else self.open(blob, key, kind, party, to=to, attempt=attempt)

    def _explain(self, exc: IntegrityError, party: str) -> str:
        """Name a disagreement on the spec or program as such: the usual cause is an edited spec."""
        text, me = str(exc), self.viewer or "this party"
        if "spec_hash is" in text:
            return f"{text}; party {party} runs a different federation spec than {me}"
        if "program_hash is" in text:
            return f"{text}; party {party} runs a different program file than {me}"
        return text

    def present(self, prefix: str = "", *, patient: bool = True) -> set[str]:
        """Keys below the run's root: one listing, NOT verified (the monitor's and tests' view).
        Every decision uses ``verified`` instead."""
        return set(self.listing(prefix, patient=patient))

    def verified(
        self, listing: set[str] | Mapping[str, str | None] | None = None, *, prefix: str = "", patient: bool = True
    ) -> Verified:
        """The run's objects that decide waiting, rosters and stops, verified.

        Lists the run (or takes ``listing``: keys, or {key: ETag/LastModified}), fetches each
        decision object that is new or changed since this reader last saw it, and verifies its
        envelope against the key it sits at (writer, kind, recipient, attempt). An object that does
        not verify is left out with a warning naming it. Results are remembered per key and listing
        token (or body digest), so an unchanged object is neither fetched nor verified again.
        """
        tokens = self.listing(prefix, patient=patient) if listing is None else listing
        tokens = tokens if isinstance(tokens, dict) else dict.fromkeys(tokens)
        wanted = [
            (key, d)
            for key in sorted(tokens)
            for d in [self.describe(key)]
            if d is not None and (d.kind in DECISION_KINDS or self._prefetches(d))
        ]
        outcomes = self._verify_all(wanted, tokens)
        view = Verified(listing=tokens)
        for key, d in wanted:
            if d.kind not in DECISION_KINDS:  # prefetched for a later read, not for decisions
                continue
            outcome = outcomes[key]
            if outcome is None:
                continue
            result, error = outcome
            if result is None:
                view.invalid[key] = error or "does not verify"
                continue
            view.keys.add(key)
            view.headers[key], view.payloads[key] = result
        return view

    def listing(self, prefix: str = "", *, patient: bool = True) -> dict[str, str | None]:
        """The keys below the run's root and ``prefix``, each with its listing token (ETag or
        LastModified; None from a store that lists keys only). NOT verified."""
        lister = getattr(self.store, "list_with_etags", None)
        where = f"{self.root}/{prefix}"
        return lister(where, patient=patient) if lister else dict.fromkeys(self.store.list(where, patient=patient))

    def verified_control(self, *, patient: bool = True) -> Verified:
        """``verified`` over the roster, abort and output objects only: three small listings, made at
        once, instead of one over every input party's objects (thousands of keys with many input
        parties). What attempts, rosters and stops are decided from; not who shared."""
        listing: dict[str, str | None] = {}
        for part in concurrently(lambda where: self.listing(where, patient=patient), ("roster/", "abort/", "outputs/")):
            listing.update(part)
        return self.verified(listing)

    def verified_for(self, stage: str, *, patient: bool = True) -> Verified:
        """The verified view ``layout.readiness`` needs for ``stage``: the whole run for ``inputs``
        (who shared, who withdrew), the roster, abort and output objects only for ``roster`` and
        ``result`` (``verified_control``: not a thousand input parties' markers)."""
        return self.verified(patient=patient) if stage == "inputs" else self.verified_control(patient=patient)

    def _verify_all(self, wanted: list[tuple[str, Described]], tokens: dict) -> dict:
        """``_verify_cached`` of every wanted key; new or changed objects fetched concurrently
        (a thousand parties' markers on a first listing are a thousand GETs)."""

        def fresh(key: str) -> bool:
            cached = self._seen.get(key)
            return cached is None or tokens[key] is None or cached[0] != tokens[key]

        threads = CONCURRENT_REQUESTS if sum(1 for key, _ in wanted if fresh(key)) > 1 else 1
        results = concurrently(lambda item: self._verify_cached(item[0], tokens[item[0]], item[1]), wanted, threads)
        return {key: outcome for (key, _), outcome in zip(wanted, results)}

    def _prefetches(self, d: Described) -> bool:
        """Whether ``verified`` also fetches and verifies this non-decision object, for a later
        read (``RunChannel``: the input shares sealed to this compute party)."""
        return False

    def _verify_cached(self, key: str, token: str | None, d: Described):
        cached = self._seen.get(key)
        if cached is not None and token is not None and cached[0] == token:
            return cached[2], cached[3]
        blob = self.store.get(key)
        if blob is None:  # gone since the listing
            self._seen.pop(key, None)
            self._blobs.pop(key, None)
            return None
        if d.kind not in DECISION_KINDS:
            self._blobs[key] = blob
        digest = hashlib.sha256(blob).hexdigest()
        if cached is not None and cached[1] == digest:
            self._seen[key] = (token, digest, cached[2], cached[3])
            return cached[2], cached[3]
        try:
            result, error = self.open(blob, key, d.kind, d.party, to=d.to, attempt=d.attempt), None
        except IntegrityError as exc:
            result, error = None, str(exc)
            log.warning("Ignoring object %s: it does not verify (%s); it counts for no decision", key, exc)
        self._seen[key] = (token, digest, result, error)
        return result, error


class RunChannel(RunReader):
    """A party's signed writes and verified reads in one run (including objects sealed to it)."""

    def __init__(self, spec: FederationSpec, run: str, store: Any, keys: PartyKeys):
        super().__init__(spec, run, store, viewer=keys.party)
        self.keys = keys
        self.me = spec.party(keys.party)

    @property
    def _reader_keys(self) -> PartyKeys | None:
        return self.keys

    def _prefetches(self, d: Described) -> bool:
        return d.kind == "input-shares" and d.to == self.me.id and self.me.has("compute")

    def prefetch_shares(self) -> None:
        """Fetch and verify the input shares sealed to this compute party (``read_inputs`` then
        reads them from memory), not the done markers: a follower's work while the leader fixes
        the roster."""
        listing = self.listing("inputs/")
        self.verified({k: v for k, v in listing.items() if (d := self.describe(k)) is not None and self._prefetches(d)})

    def verified_beyond(self, roster: list[str]) -> Verified:
        """``verified`` of the whole run except the done markers of the parties on ``roster``
        (neither fetched nor in the view): what a compute party decides from once the roster is
        fixed. A roster party's share, signed and sealed to this party, shows that it shared;
        only the markers of parties the roster leaves out still decide something
        (``agreement``: whether they shared in time). The view's ``listing`` keeps every key."""
        listing = self.listing()
        markers = {self.input_done_key(p) for p in roster}
        view = self.verified({k: v for k, v in listing.items() if k not in markers})
        view.listing = listing
        return view

    def read_inputs(self, parties: list[str], *, listing: Mapping[str, str | None] | None = None):
        """Fetch and verify the input shares every party in ``parties`` sealed to this party,
        several at a time (``store.concurrently``: GETs and signature checks overlap); in the order
        of ``parties``.

        :param listing: a fresh listing with ETags (``Verified.listing``): an object that
            ``verified`` already fetched and verified (a compute party's channel prefetches the
            shares sealed to it) and that the listing shows unchanged is not fetched again.
        :return: ``[(party, key, blob or None if absent, payload or None)]``; raises
            IntegrityError naming the first party whose object does not verify.
        """

        def fetch(party: str):
            key = self.input_key(party, self.me.id)
            d = self.describe(key)
            outcome = self._verify_cached(key, (listing or {}).get(key), d) if d is not None else None
            if outcome is None:  # absent
                return party, key, None, None
            result, error = outcome
            if result is None:
                raise IntegrityError(error or f"object {key} does not verify")
            return party, key, self._blobs[key], result[1]

        return concurrently(fetch, parties)

    # -- writing -------------------------------------------------------------
    def _header(self, kind: str, role: str, to: str | None, attempt: int) -> dict[str, Any]:
        return {
            "computation": self.spec.computation,
            "run": self.run,
            "attempt": attempt,
            "party": self.me.id,
            "role": role,
            "kind": kind,
            "to": to,
            "spec_hash": self._spec_hash,
            "program_hash": self._program_hash,
            "created_at": time.time(),
        }

    def sign(self, kind: str, role: str, payload: dict, *, to: str | None = None, attempt: int = 0) -> bytes:
        """The signed (and, with ``to``, sealed) envelope of a JSON payload."""
        if not self.me.has(role):
            raise PermissionError(f"party {self.me.id} has no role {role!r} in {self.spec.computation}")
        box_key = None
        if to is not None:
            box_key = self.spec.party(to).box_key
            if box_key is None:
                raise IntegrityError(f"party {to!r} has no encryption key in the federation spec")
        return seal(self._header(kind, role, to, attempt), json.dumps(payload).encode(), self.keys, box_key)

    def publish(
        self,
        key: str,
        kind: str,
        role: str,
        payload: dict,
        *,
        to: str | None = None,
        attempt: int = 0,
        only_if_new: bool = False,
    ) -> bool:
        """Sign (and seal to ``to``) a JSON payload and write it. Returns False if it existed."""
        blob = self.sign(kind, role, payload, to=to, attempt=attempt)
        if only_if_new:
            return self.store.put_new(key, blob)
        self.store.put(key, blob)
        return True
