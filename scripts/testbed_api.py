"""One testbed party's Airflow through its REST API (httpx), logged in as the generated admin."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

USER = "admin"


def http(
    method: str, url: str, *, token: str | None = None, body: dict | None = None, timeout: float = 30
) -> tuple[int, dict | str]:
    """One request; returns (status, the JSON body, or the text if it is not JSON).

    :param token: a bearer token (see :meth:`PartyAPI.token`).
    :param body: sent as JSON.
    """
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response = httpx.request(method, url, json=body, headers=headers, timeout=timeout)
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, response.text


class PartyAPI:
    """A party of the testbed state (``{"id", "url", "airflow_home", ...}``)."""

    def __init__(self, entry: dict):
        self.entry = entry
        self.url = entry["url"]
        self._token: str | None = None

    def password(self) -> str | None:
        """The admin password ``airflow standalone`` generated, once it has."""
        path = Path(self.entry["airflow_home"]) / "simple_auth_manager_passwords.json.generated"
        try:
            return json.loads(path.read_text()).get(USER)
        except (OSError, ValueError):
            return None

    def healthy(self) -> bool:
        try:
            status, _ = http("GET", f"{self.url}/api/v2/monitor/health", timeout=5)
        except httpx.HTTPError:
            return False
        return status == 200

    def token(self) -> str:
        if self._token is None:
            status, body = http("POST", f"{self.url}/auth/token", body={"username": USER, "password": self.password()})
            if status not in (200, 201) or not isinstance(body, dict):
                raise RuntimeError(f"{self.entry['id']}: login failed ({status}): {body}")
            self._token = body["access_token"]
        return self._token

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict | str]:
        """A call to ``/api/v2<path>`` with the party's token."""
        return http(method, f"{self.url}/api/v2{path}", token=self.token(), body=body)
