"""The party's private keys as an Airflow connection of their own type, ``mpc_party_keys``.

The connection form shows one field: the key JSON that ``python -m mpc_federation.keys generate``
wrote (signing, sealing and, for a compute party, TLS keys). Store it in a secrets backend in
production; only the ``share`` and ``compute`` tasks (and ``reveal``, to open its shares) read it.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

KEYS_CONN_ID = "mpc_party_keys"
CONN_TYPE = "mpc_party_keys"


class PartyKeysHook(BaseHook):
    """Reads a party's private keys from a connection whose password holds the key JSON.

    :param mpc_party_keys_conn_id: the connection (type ``mpc_party_keys``; a ``generic``
        connection with the same password works too).
    """

    conn_name_attr = "mpc_party_keys_conn_id"
    default_conn_name = KEYS_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "MPC party keys"

    def __init__(self, mpc_party_keys_conn_id: str = KEYS_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mpc_party_keys_conn_id = mpc_party_keys_conn_id

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return UI_FIELD_BEHAVIOUR

    def get_keys(self):
        """The party's PartyKeys; keys marked as test keys only where ``[mpc] allow_test_keys``.

        :raises PartyConfigError: the connection holds no key JSON.
        :raises PermissionError: test keys where they are not allowed.
        """
        from mpc_federation.envelope import PartyKeys
        from mpc_operators.settings import MPCSettings, PartyConfigError

        conn = self.get_connection(self.mpc_party_keys_conn_id)
        if not conn.password:
            raise PartyConfigError(
                f"connection {self.mpc_party_keys_conn_id!r} has no password: it must hold the "
                "party's key JSON (python -m mpc_federation.keys generate)"
            )
        allow = MPCSettings.load(require_party=False).allow_test_keys
        return PartyKeys.from_json(conn.password, allow_test_keys=allow)

    def test_connection(self) -> tuple[bool, str]:
        """The connection form's Test button: the keys parse, and name the party they belong to."""
        try:
            keys = self.get_keys()
        except Exception as exc:  # noqa: BLE001 - the form shows the reason
            return False, f"{type(exc).__name__}: {exc}"
        roles = "with a TLS key (compute party)" if keys.tls_key else "without a TLS key"
        return True, f"keys of party {keys.party!r}, {roles}"


UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["host", "schema", "login", "port", "extra"],
    "relabeling": {"password": "Private keys (JSON)"},
    "placeholders": {
        "password": '{"party": "company_a", "sign": "...", "box": "...", "tls": "..."} '
        "(python -m mpc_federation.keys generate --party ID --out FILE)"
    },
}
