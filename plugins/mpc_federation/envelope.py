"""Signed, optionally encrypted envelopes: the only form in which data enters the bucket.

Every object carries a header (computation, run, attempt, party, role, kind, recipient,
spec and program hashes) and is signed by its party's Ed25519 key over the header and the
payload digest. Payloads for one party are sealed to that party's X25519 key, so the
bucket's operator and the network see ciphertext only. libsodium does the cryptography.

Format ``mpc-envelope/3``: an object is the canonical JSON ``{"format", "header", "signature"}``
(one line: canonical JSON has no raw newline), a newline, then the payload's bytes as they are
(``parts``, ``assemble``): a share object of 3,000 markets is not base64'd twice and parsed as
megabytes of JSON text. A sealed payload is, inside the ciphertext, the canonical JSON
``{"bind": {computation, run, attempt, party, kind, to}}``, a newline, then the payload, so the
sender, computation, run, attempt, kind and recipient are inside the ciphertext too. A SealedBox
is anonymous: without the binding, a member could re-sign another party's ciphertext under its
own name and have it counted as its own input. The reader compares the binding with the signed
header after decryption.

Objects of format ``mpc-envelope/2`` (one JSON document, the payload in base64, inside a sealed
one ``{"bind", "payload"}``) are still read, never written: records an earlier release wrote,
such as the disclosure ledger's, must keep counting. Each format's ciphertext is read only
with its own inner form, so re-framing one as the other is refused.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from nacl.exceptions import BadSignatureError, CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox
from nacl.signing import SigningKey, VerifyKey

from mpc_federation.spec import canonical_json

FORMAT = "mpc-envelope/3"
OLD_FORMAT = "mpc-envelope/2"  # read, never written
# Header fields bound inside a sealed payload (the sender is "party", the recipient "to").
BOUND_FIELDS = ("computation", "run", "attempt", "party", "kind", "to")
TEST_KEY_MARK = "TEST KEY - NOT FOR PRODUCTION"


class IntegrityError(Exception):
    """An object in the bucket that must not be used: bad signature, wrong run, tampered."""


@dataclass(frozen=True)
class PartyKeys:
    """A party's private keys. Lives in the party's Airflow secrets, never in the repo or logs."""

    party: str
    signing: SigningKey
    box: PrivateKey
    tls_key: bytes | None = None  # PEM of the P-256 key behind the MPyC TLS certificate
    test_only: bool = False

    @classmethod
    def generate(cls, party: str, *, test_only: bool = False) -> PartyKeys:
        from mpc_federation.tls import new_tls_key

        return cls(party, SigningKey.generate(), PrivateKey.generate(), new_tls_key(), test_only)

    @classmethod
    def from_json(cls, text: str, *, allow_test_keys: bool = False) -> PartyKeys:
        data = json.loads(text)
        test_only = data.get("note") == TEST_KEY_MARK
        if test_only and not allow_test_keys:
            raise PermissionError(
                f"the keys of party {data.get('party')!r} are marked as test keys and are refused outside tests"
            )
        tls = data.get("tls")
        return cls(
            data["party"],
            SigningKey(base64.b64decode(data["sign"])),
            PrivateKey(base64.b64decode(data["box"])),
            tls.encode() if tls else None,
            test_only,
        )

    def to_json(self) -> str:
        data = {"party": self.party, "sign": _b64(bytes(self.signing)), "box": _b64(bytes(self.box))}
        if self.tls_key:
            data["tls"] = self.tls_key.decode()
        if self.test_only:
            data["note"] = TEST_KEY_MARK
        return json.dumps(data)

    def public_entry(self, compute_index: int | None = None) -> dict[str, str]:
        """What goes into the federation spec under the party's ``keys`` (with the MPyC TLS
        certificate for a compute party, whose place in the spec's order it names)."""
        entry = {"sign": _b64(bytes(self.signing.verify_key)), "box": _b64(bytes(self.box.public_key))}
        if compute_index is not None:
            from mpc_federation.tls import certificate

            if self.tls_key is None:
                raise ValueError(f"the keys of {self.party} have no TLS key")
            entry["certificate"] = certificate(self.tls_key, compute_index, self.party)
        return entry

    def __repr__(self) -> str:  # never print private keys
        return f"PartyKeys(party={self.party!r}, private=***)"


def seal(header: dict, payload: bytes, keys: PartyKeys, recipient_box_key: str | None) -> bytes:
    """Encrypt ``payload`` to the recipient (if any), then sign header and ciphertext."""
    if recipient_box_key is not None:
        inner = assemble({"bind": {k: header.get(k) for k in BOUND_FIELDS}}, payload)
        payload = SealedBox(PublicKey(base64.b64decode(recipient_box_key))).encrypt(inner)
    header = {
        **header,
        "encrypted": recipient_box_key is not None,
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
    }
    signature = keys.signing.sign(canonical_json(header)).signature
    return assemble({"format": FORMAT, "header": header, "signature": _b64(signature)}, payload)


def assemble(doc: dict, payload: bytes) -> bytes:
    """``doc`` as canonical JSON (one line), a newline, then ``payload`` as it is."""
    return canonical_json(doc) + b"\n" + payload


def read_json(data: bytes | str) -> Any:
    """``json.loads`` of text from the bucket: ValueError for anything that is not JSON, also for
    JSON nested deeper than Python's recursion limit (which ``json.loads`` raises as RecursionError)."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deep") from None


def parts(blob: bytes) -> tuple[dict, bytes]:
    """An object's JSON document and its payload, NOT verified: format 3's line, newline and
    bytes, or format 2's one document with the payload in base64. ValueError for anything else
    (naming a format that is neither)."""
    line, newline, payload = blob.partition(b"\n")
    doc = read_json(line)
    if not isinstance(doc, dict):
        raise ValueError("its first line is not a JSON object")
    if doc.get("format") == OLD_FORMAT:
        if newline or not isinstance(doc.get("payload"), str):
            raise ValueError(f"not an object of format {OLD_FORMAT!r}")
        return doc, base64.b64decode(doc["payload"], validate=True)
    if doc.get("format") != FORMAT:
        raise ValueError(f"format {doc.get('format')!r} is not {FORMAT!r}")
    if not newline:
        raise ValueError("no newline between its document and its payload")
    return doc, payload


def open_envelope(
    blob: bytes, *, name: str, expected: dict, signer_key: str | None, keys: PartyKeys | None = None
) -> tuple[dict, bytes]:
    """Verify an envelope and return its header and (decrypted) payload.

    :param name: the object's key, for error messages.
    :param expected: header fields that must match exactly (run, party, kind, hashes...).
    :param signer_key: the claimed party's Ed25519 public key from the spec.
    :param keys: this party's keys, to decrypt a payload sealed to it.
    """
    claimed = expected.get("party", "?")
    try:
        doc, payload = parts(blob)
        header, signature = doc["header"], base64.b64decode(doc["signature"])
        if not isinstance(header, dict):
            raise TypeError("the header is not a mapping")
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"object {name} (claimed party {claimed}): malformed envelope: {exc}") from None
    claimed = header.get("party", claimed)
    if "party" in expected and claimed != expected["party"]:  # someone writing at another party's place
        raise IntegrityError(
            f"object {name} (claimed party {claimed}): party is {claimed!r}, expected {expected['party']!r}"
        )
    if signer_key is None:
        raise IntegrityError(f"object {name}: party {claimed!r} has no signing key in the federation spec")
    try:
        VerifyKey(base64.b64decode(signer_key)).verify(canonical_json(header), signature)
    except (BadSignatureError, ValueError):
        raise IntegrityError(
            f"object {name} (claimed party {claimed}): signature does not verify against that party's key in the spec"
        ) from None
    if hashlib.sha256(payload).hexdigest() != header.get("payload_sha256"):
        raise IntegrityError(f"object {name} (claimed party {claimed}): payload does not match its signed digest")
    for key, value in expected.items():
        if header.get(key) != value:
            raise IntegrityError(
                f"object {name} (claimed party {claimed}): {key} is {header.get(key)!r}, expected {value!r}"
            )
    if header.get("encrypted"):
        if keys is None:
            raise IntegrityError(f"object {name} is encrypted to {header.get('to')!r}, not readable here")
        try:
            payload = SealedBox(keys.box).decrypt(payload)
        except CryptoError:
            raise IntegrityError(
                f"object {name} (claimed party {claimed}): cannot be decrypted with the keys of {keys.party}"
            ) from None
        payload = _unbind(payload, header, name=name, claimed=claimed, old=doc["format"] == OLD_FORMAT)
    return header, payload


def _unbind(plaintext: bytes, header: dict, *, name: str, claimed: str, old: bool = False) -> bytes:
    """The payload inside a sealed envelope, once its binding matches the signed header.

    :param old: the envelope is of format 2 (its inner form: one document with the payload in base64).
    """
    try:
        if old:
            inner = read_json(plaintext)
            bind, payload = inner["bind"], base64.b64decode(inner["payload"], validate=True)
        else:
            line, newline, payload = plaintext.partition(b"\n")
            inner = read_json(line)
            if not newline or not isinstance(inner, dict) or set(inner) != {"bind"}:
                raise ValueError("not a binding line followed by the payload")
            bind = inner["bind"]
        if not isinstance(bind, dict):
            raise TypeError("bind is not a mapping")
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(
            f"object {name} (claimed party {claimed}): sealed content carries no valid "
            f"binding to its sender and run ({exc})"
        ) from None
    sender = bind.get("party")
    if sender != header.get("party"):
        raise IntegrityError(
            f"object {name}: signed by party {header.get('party')!r} but its sealed content was "
            f"written by party {sender!r}: {header.get('party')} re-signed {sender}'s ciphertext "
            "as its own (refused: a party may only submit what it sealed itself)"
        )
    wrong = [
        f"{k} is {bind.get(k)!r} inside, {header.get(k)!r} in the signed header"
        for k in BOUND_FIELDS
        if bind.get(k) != header.get(k)
    ]
    if wrong:
        raise IntegrityError(
            f"object {name} (claimed party {claimed}): sealed content was bound to another "
            f"object: {'; '.join(wrong)} (ciphertext copied from elsewhere)"
        )
    return payload


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
