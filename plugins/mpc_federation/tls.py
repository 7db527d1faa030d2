"""Mutual TLS between compute parties' MPyC processes, with certificates pinned in the spec.

Each compute party holds a P-256 key (in its private key JSON) and publishes a self-signed
certificate for its place in the federation ("MPyC party <index>", the name MPyC's client
checks). The certificates are not CAs, so nobody can issue a certificate the others accept:
the only trust anchors are the federation's own pinned certificates.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path


def new_tls_key() -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def certificate(tls_key_pem: bytes, index: int, party_id: str, days: int = 825) -> str:
    """The self-signed certificate of compute party ``index`` (0-based, spec order)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = serialization.load_pem_private_key(tls_key_pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the TLS key of a compute party must be an elliptic-curve key (P-256)")
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, mpyc_name(index)),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, party_id),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(mpyc_name(index))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def mpyc_name(index: int) -> str:
    return f"MPyC party {index}"


def write_mpyc_config(folder: Path, index: int, tls_key_pem: bytes, certificates: list[str]) -> Path:
    """Lay out MPyC's ``.config`` for ``--ssl``: own key and certificate, and the pinned peers."""
    config = folder / ".config"
    config.mkdir(mode=0o700)
    fd = os.open(config / f"party_{index}.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(tls_key_pem)
    (config / f"party_{index}.crt").write_text(certificates[index])
    (config / "mpyc_ca.crt").write_text("".join(certificates))
    return config
