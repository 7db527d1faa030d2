"""The parties of a federation spec: who they are, their roles, the compute parties' endpoints and
public keys, and the Shamir threshold over the compute parties."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mpc_federation.spec_checks import ID, SpecError, check_key, is_int, need, only

ROLES = ("input", "compute", "recipient")
_ENDPOINT = re.compile(r"^[A-Za-z0-9_.\-]+:\d{1,5}$")
# Shamir threshold: at least 1 (t = 0 gives every compute party the plaintext).
MIN_THRESHOLD = 1


@dataclass(frozen=True)
class Party:
    id: str
    roles: tuple[str, ...]
    endpoint: str | None = None
    sign_key: str | None = None  # Ed25519 public key, base64
    box_key: str | None = None  # X25519 public key, base64
    certificate: str | None = None  # PEM of the self-signed MPyC TLS certificate

    def has(self, role: str) -> bool:
        return role in self.roles


def check_parties(src: str, parties_raw: list) -> tuple[Party, ...]:
    """The ``parties`` list: ids, roles, endpoints and public keys of each; every role taken, and
    distinct endpoints of the compute parties."""
    parties: list[Party] = []
    for i, entry in enumerate(parties_raw):
        parties.append(_check_party(src, i, entry, {p.id for p in parties}))
    _check_every_role_taken(src, parties)
    return tuple(parties)


def _check_party(src: str, i: int, entry: object, seen: set[str]) -> Party:
    """One entry of ``parties``; ``seen``: the ids of the entries before it."""
    where = f"parties[{i}]."
    if not isinstance(entry, dict):
        raise SpecError(src, f"parties[{i}]", "must be a mapping")
    only(src, entry, ("id", "roles", "endpoint", "keys"), where)
    pid = need(src, entry, "id", str, where)
    if not ID.match(pid):
        raise SpecError(src, f"{where}id", f"{pid!r} must be lowercase letters, digits and '_'")
    if pid in seen:
        raise SpecError(src, f"{where}id", f"duplicate party id {pid!r}")
    return Party(pid, *_check_roles_and_endpoint(src, entry, where), *_check_party_keys(src, entry, where))


def _check_roles_and_endpoint(src: str, entry: dict, where: str) -> tuple[tuple[str, ...], str | None]:
    """A party's roles, and its endpoint (host:port, required of a compute party)."""
    roles = need(src, entry, "roles", list, where)
    if not roles or any(r not in ROLES for r in roles):
        raise SpecError(src, f"{where}roles", f"must be a non-empty subset of {list(ROLES)}, got {roles}")
    endpoint = entry.get("endpoint")
    if "compute" in roles and (not isinstance(endpoint, str) or not _ENDPOINT.match(endpoint)):
        raise SpecError(src, f"{where}endpoint", f"a compute party needs host:port, got {endpoint!r}")
    if endpoint is not None and not (
        isinstance(endpoint, str) and _ENDPOINT.match(endpoint) and 1 <= int(endpoint.rsplit(":", 1)[1]) <= 65535
    ):
        raise SpecError(src, f"{where}endpoint", f"must be host:port with a port from 1 to 65535, got {endpoint!r}")
    return tuple(roles), endpoint


def _check_party_keys(src: str, entry: dict, where: str) -> tuple[str | None, str | None, str | None]:
    """A party's public keys: (sign, box, certificate)."""
    keys = entry.get("keys") or {}
    if not isinstance(keys, dict):
        raise SpecError(src, f"{where}keys", "must be a mapping")
    only(src, keys, ("sign", "box", "certificate"), f"{where}keys.")
    for key_name in ("sign", "box"):
        if key_name in keys:
            check_key(src, f"{where}keys.{key_name}", keys[key_name])
    return keys.get("sign"), keys.get("box"), keys.get("certificate")


def _check_every_role_taken(src: str, parties: list[Party]) -> None:
    """Every role has a party, and the compute parties have distinct endpoints."""
    for role in ("input", "compute", "recipient"):
        if not any(p.has(role) for p in parties):
            raise SpecError(src, "parties", f"needs at least one party with role {role!r}")
    endpoints = [p.endpoint for p in parties if p.has("compute")]
    if len(set(endpoints)) != len(endpoints):
        raise SpecError(src, "parties", "compute parties must have distinct endpoints")


def check_threshold(src: str, raw: dict, m: int) -> int:
    """The Shamir threshold t for ``m`` compute parties (default: the largest with m >= 2t + 1)."""
    # Shamir with threshold t: any t compute parties learn nothing, t + 1 reconstruct. t = 0 would
    # hand every compute party the plaintext, and MPyC needs an honest majority (m >= 2t + 1).
    if m < 2 * MIN_THRESHOLD + 1:
        raise SpecError(
            src,
            "parties",
            f"needs at least {2 * MIN_THRESHOLD + 1} parties with role 'compute' "
            f"(threshold t >= {MIN_THRESHOLD} and m >= 2t + 1), got {m}",
        )
    threshold = raw.get("threshold", max(MIN_THRESHOLD, (m - 1) // 2))
    if not is_int(threshold) or threshold < MIN_THRESHOLD or 2 * threshold >= m:
        raise SpecError(
            src,
            "threshold",
            f"must be an integer t with {MIN_THRESHOLD} <= t and 2t < {m} compute "
            f"parties (m >= 2t + 1), got {threshold!r}",
        )
    return threshold
