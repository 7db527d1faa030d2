"""Signed, optionally encrypted envelopes and the party keys behind them."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from nacl.public import PublicKey, SealedBox

from mpc_federation.envelope import TEST_KEY_MARK, IntegrityError, PartyKeys, assemble, open_envelope, parts, seal
from mpc_federation.spec import canonical_json

HEADER = {
    "computation": "taxi_hhi",
    "run": "20240415T030000Z",
    "attempt": 1,
    "party": "company_a",
    "role": "input",
    "kind": "input-shares",
    "to": "company_b",
    "spec_hash": "s" * 64,
    "program_hash": "p" * 64,
}
NAME = "federations/taxi_hhi/20240415T030000Z/inputs/company_a/to-company_b"
PAYLOAD = json.dumps({"shares": {"revenue_cents": [123456789012, 987654321098]}}).encode()


@pytest.fixture(scope="module")
def keys():
    return {p: PartyKeys.generate(p, test_only=True) for p in ("company_a", "company_b", "company_c")}


def sign_key(k: PartyKeys) -> str:
    return k.public_entry()["sign"]


def box_key(k: PartyKeys) -> str:
    return k.public_entry()["box"]


def tamper_payload(blob: bytes, index: int = 0) -> bytes:
    doc, body = parts(blob)
    payload = bytearray(body)
    payload[index] ^= 0x01
    return assemble(doc, bytes(payload))


def test_plain_roundtrip(keys):
    header = {**HEADER, "to": None}
    blob = seal(header, PAYLOAD, keys["company_a"], None)
    got_header, payload = open_envelope(blob, name=NAME, expected=header, signer_key=sign_key(keys["company_a"]))
    assert payload == PAYLOAD
    assert got_header["encrypted"] is False
    assert {k: got_header[k] for k in header} == header
    assert parts(blob)[1] == PAYLOAD and PAYLOAD in blob  # plain means readable, as it is


def test_encrypted_roundtrip(keys):
    blob = seal(HEADER, PAYLOAD, keys["company_a"], box_key(keys["company_b"]))
    doc, body = parts(blob)
    assert doc["format"] == "mpc-envelope/3" and doc["header"]["encrypted"] is True
    assert b"123456789012" not in blob and PAYLOAD not in body
    header, payload = open_envelope(
        blob, name=NAME, expected=HEADER, signer_key=sign_key(keys["company_a"]), keys=keys["company_b"]
    )
    assert payload == PAYLOAD
    assert header["to"] == "company_b"
    # Sealing is randomised: the same payload never gives the same object twice.
    assert seal(HEADER, PAYLOAD, keys["company_a"], box_key(keys["company_b"])) != blob


@pytest.mark.parametrize("encrypted", [False, True])
@pytest.mark.parametrize("index", [0, -1])
def test_tampered_payload_byte(keys, encrypted, index):
    recipient = box_key(keys["company_b"]) if encrypted else None
    blob = tamper_payload(seal(HEADER, PAYLOAD, keys["company_a"], recipient), index)
    with pytest.raises(IntegrityError) as info:
        open_envelope(blob, name=NAME, expected=HEADER, signer_key=sign_key(keys["company_a"]), keys=keys["company_b"])
    msg = str(info.value)
    assert NAME in msg and "company_a" in msg and "digest" in msg


def test_tampered_header_breaks_signature(keys):
    doc, body = parts(seal(HEADER, PAYLOAD, keys["company_a"], box_key(keys["company_b"])))
    doc["header"]["attempt"] = 2
    with pytest.raises(IntegrityError, match="signature does not verify"):
        open_envelope(
            assemble(doc, body),
            name=NAME,
            expected={**HEADER, "attempt": 2},
            signer_key=sign_key(keys["company_a"]),
            keys=keys["company_b"],
        )


def test_signed_by_a_key_not_in_the_spec(keys):
    intruder = PartyKeys.generate("company_a", test_only=True)  # claims to be company_a
    blob = seal(HEADER, PAYLOAD, intruder, box_key(keys["company_b"]))
    with pytest.raises(IntegrityError) as info:
        open_envelope(blob, name=NAME, expected=HEADER, signer_key=sign_key(keys["company_a"]), keys=keys["company_b"])
    msg = str(info.value)
    assert NAME in msg and "company_a" in msg and "signature does not verify" in msg
    # and a party with no key in the spec at all
    with pytest.raises(IntegrityError, match="no signing key"):
        open_envelope(blob, name=NAME, expected=HEADER, signer_key=None, keys=keys["company_b"])


@pytest.mark.parametrize(
    "field, wrong",
    [
        ("run", "20240416T030000Z"),
        ("computation", "other_hhi"),
        ("attempt", 2),
        ("spec_hash", "x" * 64),
        ("program_hash", "y" * 64),
        ("kind", "roster"),
        ("party", "company_c"),
        ("to", "company_c"),
    ],
)
def test_header_mismatch_names_the_field(keys, field, wrong):
    blob = seal(HEADER, PAYLOAD, keys["company_a"], box_key(keys["company_b"]))
    expected = {**HEADER, field: wrong}
    with pytest.raises(IntegrityError) as info:
        open_envelope(
            blob, name=NAME, expected=expected, signer_key=sign_key(keys["company_a"]), keys=keys["company_b"]
        )
    msg = str(info.value)
    assert NAME in msg and f"{field} is {HEADER[field]!r}, expected {wrong!r}" in msg


def test_encrypted_to_someone_else(keys):
    blob = seal(HEADER, PAYLOAD, keys["company_a"], box_key(keys["company_b"]))
    with pytest.raises(IntegrityError) as info:
        open_envelope(blob, name=NAME, expected=HEADER, signer_key=sign_key(keys["company_a"]), keys=keys["company_c"])
    assert "cannot be decrypted" in str(info.value) and "company_c" in str(info.value)
    with pytest.raises(IntegrityError, match="not readable here"):
        open_envelope(blob, name=NAME, expected=HEADER, signer_key=sign_key(keys["company_a"]), keys=None)


def resign(blob: bytes, signer: PartyKeys, **changes) -> bytes:
    """What a member can do with someone else's object: keep its ciphertext, change the header, sign it."""
    doc, body = parts(blob)
    header = {**doc["header"], **changes}
    doc["header"] = header
    doc["signature"] = base64.b64encode(signer.signing.sign(canonical_json(header)).signature).decode()
    return assemble(doc, body)


def test_sealed_content_is_bound_to_its_sender(keys):
    """company_c re-signs company_a's ciphertext under its own name: the decrypted binding names company_a."""
    blob = seal(HEADER, PAYLOAD, keys["company_a"], box_key(keys["company_b"]))
    copied = resign(blob, keys["company_c"], party="company_c")
    expected = {**HEADER, "party": "company_c"}
    with pytest.raises(IntegrityError) as info:
        open_envelope(
            copied, name=NAME, expected=expected, signer_key=sign_key(keys["company_c"]), keys=keys["company_b"]
        )
    msg = str(info.value)
    assert NAME in msg and "signed by party 'company_c'" in msg and "written by party 'company_a'" in msg
    assert "re-signed company_a's ciphertext" in msg


@pytest.mark.parametrize(
    "field, other",
    [("run", "20240416T030000Z"), ("computation", "other_hhi"), ("attempt", 2), ("kind", "output-shares")],
)
def test_sealed_content_is_bound_to_its_run_and_kind(keys, field, other):
    """The sender itself re-signs its ciphertext for another run, computation, attempt or kind."""
    blob = seal(HEADER, PAYLOAD, keys["company_a"], box_key(keys["company_b"]))
    moved = resign(blob, keys["company_a"], **{field: other})
    with pytest.raises(IntegrityError) as info:
        open_envelope(
            moved,
            name=NAME,
            expected={**HEADER, field: other},
            signer_key=sign_key(keys["company_a"]),
            keys=keys["company_b"],
        )
    msg = str(info.value)
    assert NAME in msg and f"{field} is {HEADER[field]!r} inside, {other!r} in the signed header" in msg


def test_sealed_content_without_a_binding_is_refused(keys):
    """A sealed payload as format 1 wrote it (the bare payload) does not pass as format 3."""
    doc, _ = parts(seal(HEADER, PAYLOAD, keys["company_a"], box_key(keys["company_b"])))
    bare = SealedBox(PublicKey(base64.b64decode(box_key(keys["company_b"])))).encrypt(PAYLOAD)

    header = {**doc["header"], "payload_sha256": hashlib.sha256(bare).hexdigest()}
    doc.update(
        header=header,
        signature=base64.b64encode(keys["company_a"].signing.sign(canonical_json(header)).signature).decode(),
    )
    with pytest.raises(IntegrityError, match="carries no valid binding"):
        open_envelope(
            assemble(doc, bare),
            name=NAME,
            expected=HEADER,
            signer_key=sign_key(keys["company_a"]),
            keys=keys["company_b"],
        )


def seal_format_2(header: dict, payload: bytes, keys: PartyKeys, recipient_box_key: str | None) -> bytes:
    """What the previous release wrote (``mpc-envelope/2``): one JSON document, base64 inside and out."""
    if recipient_box_key is not None:
        bind = {k: header.get(k) for k in ("computation", "run", "attempt", "party", "kind", "to")}
        inner = canonical_json({"bind": bind, "payload": base64.b64encode(payload).decode()})
        payload = SealedBox(PublicKey(base64.b64decode(recipient_box_key))).encrypt(inner)
    header = {
        **header,
        "encrypted": recipient_box_key is not None,
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
    }
    signature = base64.b64encode(keys.signing.sign(canonical_json(header)).signature).decode()
    doc = {"format": "mpc-envelope/2", "header": header, "payload": base64.b64encode(payload).decode()}
    return canonical_json({**doc, "signature": signature})


@pytest.mark.parametrize("encrypted", [False, True])
def test_format_2_is_still_read(keys, encrypted):
    """Records an earlier release wrote (the disclosure ledger's outlive releases) keep counting."""
    header = HEADER if encrypted else {**HEADER, "to": None}
    recipient = box_key(keys["company_b"]) if encrypted else None
    blob = seal_format_2(header, PAYLOAD, keys["company_a"], recipient)
    _, payload = open_envelope(
        blob, name=NAME, expected=header, signer_key=sign_key(keys["company_a"]), keys=keys["company_b"]
    )
    assert payload == PAYLOAD
    doc = json.loads(blob)
    flipped = bytearray(base64.b64decode(doc["payload"]))
    flipped[0] ^= 0x01
    tampered = canonical_json({**doc, "payload": base64.b64encode(bytes(flipped)).decode()})
    with pytest.raises(IntegrityError, match="digest"):  # and its payload is as tightly bound as before
        open_envelope(tampered, name=NAME, expected=header, signer_key=sign_key(keys["company_a"]))
    with pytest.raises(IntegrityError, match="not an object of format 'mpc-envelope/2'"):
        open_envelope(blob + b"\n", name=NAME, expected=header, signer_key=sign_key(keys["company_a"]))


@pytest.mark.parametrize(
    "direction", ["format 2 ciphertext in a format 3 frame", "format 3 ciphertext in a format 2 frame"]
)
def test_a_ciphertext_reframed_in_the_other_format_is_refused(keys, direction):
    """The format is not signed: the bucket's operator can re-frame an object. Each format's
    ciphertext is read only with its own inner form, so a re-framed one never opens."""
    old = seal_format_2(HEADER, PAYLOAD, keys["company_a"], box_key(keys["company_b"]))
    new = seal(HEADER, PAYLOAD, keys["company_a"], box_key(keys["company_b"]))
    if direction.startswith("format 2"):
        doc = json.loads(old)
        body = base64.b64decode(doc.pop("payload"))
        reframed = assemble({**doc, "format": "mpc-envelope/3"}, body)
    else:
        doc, body = parts(new)
        reframed = canonical_json({**doc, "format": "mpc-envelope/2", "payload": base64.b64encode(body).decode()})
    with pytest.raises(IntegrityError, match="carries no valid binding"):
        open_envelope(
            reframed, name=NAME, expected=HEADER, signer_key=sign_key(keys["company_a"]), keys=keys["company_b"]
        )


def test_format_1_is_refused_by_name(keys):
    doc, body = parts(seal(HEADER, PAYLOAD, keys["company_a"], box_key(keys["company_b"])))
    doc["format"] = "mpc-envelope/1"
    with pytest.raises(IntegrityError, match="format 'mpc-envelope/1' is not 'mpc-envelope/3'"):
        open_envelope(
            assemble(doc, body),
            name=NAME,
            expected=HEADER,
            signer_key=sign_key(keys["company_a"]),
            keys=keys["company_b"],
        )


@pytest.mark.parametrize("encrypted", [False, True])
def test_payloads_with_newlines_and_any_bytes_travel_as_they_are(keys, encrypted):
    header = HEADER if encrypted else {**HEADER, "to": None}
    payload = b"\n\n" + bytes(range(256)) + b"\n{}\n"
    recipient = box_key(keys["company_b"]) if encrypted else None
    blob = seal(header, payload, keys["company_a"], recipient)
    got = open_envelope(
        blob, name=NAME, expected=header, signer_key=sign_key(keys["company_a"]), keys=keys["company_b"]
    )
    assert got[1] == payload


def test_sealed_content_without_its_separator_is_refused(keys):
    """Inside format 3's ciphertext: the binding line alone (or with other keys) does not pass."""
    bind = {k: HEADER.get(k) for k in ("computation", "run", "attempt", "party", "kind", "to")}
    for inner in (canonical_json({"bind": bind}), canonical_json({"bind": bind, "payload": ""}) + b"\n" + PAYLOAD):
        ciphertext = SealedBox(PublicKey(base64.b64decode(box_key(keys["company_b"])))).encrypt(inner)
        header = {**HEADER, "encrypted": True, "payload_sha256": hashlib.sha256(ciphertext).hexdigest()}
        signature = base64.b64encode(keys["company_a"].signing.sign(canonical_json(header)).signature).decode()
        blob = assemble({"format": "mpc-envelope/3", "header": header, "signature": signature}, ciphertext)
        with pytest.raises(IntegrityError, match="carries no valid binding"):
            open_envelope(
                blob, name=NAME, expected=HEADER, signer_key=sign_key(keys["company_a"]), keys=keys["company_b"]
            )


def test_json_nested_too_deep_is_malformed_not_a_crash(keys):
    """The bucket's operator nests the first line, or a member the sealed binding line, past
    Python's recursion limit: an IntegrityError like any malformed object, not a RecursionError
    that would stop the reading party alone."""
    deep = b"[" * 200_000 + b"]" * 200_000
    with pytest.raises(ValueError, match="nested too deep"):  # every reader of an object's framing
        parts(deep + b"\n")
    with pytest.raises(IntegrityError, match="malformed envelope"):
        open_envelope(deep + b"\n", name=NAME, expected=HEADER, signer_key=sign_key(keys["company_a"]))
    ciphertext = SealedBox(PublicKey(base64.b64decode(box_key(keys["company_b"])))).encrypt(deep + b"\n" + PAYLOAD)
    header = {**HEADER, "encrypted": True, "payload_sha256": hashlib.sha256(ciphertext).hexdigest()}
    signature = base64.b64encode(keys["company_a"].signing.sign(canonical_json(header)).signature).decode()
    blob = assemble({"format": "mpc-envelope/3", "header": header, "signature": signature}, ciphertext)
    with pytest.raises(IntegrityError, match="carries no valid binding"):
        open_envelope(blob, name=NAME, expected=HEADER, signer_key=sign_key(keys["company_a"]), keys=keys["company_b"])


@pytest.mark.parametrize(
    "blob",
    [
        b"not json",
        b"{}",
        b"[]\npayload",
        json.dumps({"format": "mpc-envelope/3", "header": {}, "signature": ""}).encode(),  # no payload line
        json.dumps({"format": "mpc-envelope/2", "header": {}, "signature": ""}).encode(),  # no payload
        json.dumps({"format": "other/1", "header": {}, "signature": ""}).encode() + b"\n",
        json.dumps({"format": "mpc-envelope/3", "header": [], "signature": ""}).encode() + b"\n",
    ],
)
def test_malformed_envelope(keys, blob):
    with pytest.raises(IntegrityError) as info:
        open_envelope(blob, name=NAME, expected=HEADER, signer_key=sign_key(keys["company_a"]))
    assert "malformed" in str(info.value) and NAME in str(info.value)


def test_party_keys_json_roundtrip(keys):
    original = PartyKeys.generate("company_a")  # production keys: unmarked, accepted without allowing test keys
    text = original.to_json()
    back = PartyKeys.from_json(text)
    assert back.party == "company_a" and back.test_only is False
    assert bytes(back.signing) == bytes(original.signing)
    assert bytes(back.box) == bytes(original.box)
    assert back.public_entry() == original.public_entry()
    assert getattr(back, "tls_key", None) == getattr(original, "tls_key", None)  # the MPyC TLS key, if any
    # keys restored from JSON open what the originals sealed, and vice versa
    blob = seal(HEADER, PAYLOAD, back, box_key(keys["company_b"]))
    assert (
        open_envelope(blob, name=NAME, expected=HEADER, signer_key=sign_key(original), keys=keys["company_b"])[1]
        == PAYLOAD
    )
    public = original.public_entry()
    assert set(public) == {"sign", "box"}
    assert all(len(base64.b64decode(v)) == 32 for v in public.values())
    assert json.loads(text)["sign"] not in public.values()


def test_test_keys_refused_unless_allowed():
    test_keys = PartyKeys.generate("company_a", test_only=True)
    text = test_keys.to_json()
    assert json.loads(text)["note"] == TEST_KEY_MARK
    with pytest.raises(PermissionError, match="test keys"):
        PartyKeys.from_json(text)
    allowed = PartyKeys.from_json(text, allow_test_keys=True)
    assert allowed.test_only is True
    assert bytes(allowed.signing) == bytes(test_keys.signing)
    assert "note" in allowed.to_json()  # the mark survives a roundtrip


def test_repr_never_shows_private_keys(keys):
    k = keys["company_a"]
    secrets = [
        base64.b64encode(bytes(k.signing)).decode(),
        base64.b64encode(bytes(k.box)).decode(),
        bytes(k.signing).hex(),
        bytes(k.box).hex(),
        repr(bytes(k.signing)),
        repr(bytes(k.box)),
    ]
    tls_key = getattr(k, "tls_key", None)
    if tls_key:  # the PEM body of the MPyC TLS key
        secrets += [line for line in tls_key.decode().splitlines() if line and not line.startswith("-----")]
    for shown in (repr(k), str(k), f"{k}", f"{k!r}", repr([k]), repr({"keys": k})):
        assert "company_a" in shown
        for secret in secrets:
            assert secret not in shown
