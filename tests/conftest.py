"""Shared fixtures: the project on sys.path, a real local S3 API server, and federations with fresh keys."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
for folder in (REPO / "plugins", REPO / "scripts"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import localnet  # noqa: E402

# Every key the tests make is marked as a test key (localnet.test_keys); the tests' environment
# allows them explicitly, as the demo's and the testbed's do. A test of the production refusal
# removes this variable.
os.environ["MPC_ALLOW_TEST_KEYS"] = "1"

TAXI_TEMPLATE = REPO / "include" / "federations" / "taxi_hhi.yaml"


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """moto's S3 API server on a free loopback port, for the whole session."""
    server = localnet.S3Server(tmp_path_factory.mktemp("s3")).start()
    yield server
    server.stop()


def compute_all(runs: dict, attempt: int, parties, alongside=()) -> dict:
    """The compute stage of ``parties`` at once (and ``alongside``, callables run in threads too), as
    their tasks run it: {party: its result or the exception it raised}."""
    import threading

    from mpc_federation import stages

    out: dict = {}

    def go(pid):
        try:
            out[pid] = stages.compute(runs[pid], attempt=attempt)
        except Exception as exc:  # noqa: BLE001 - inspected by the test
            out[pid] = exc

    threads = [threading.Thread(target=go, args=(pid,)) for pid in parties]
    threads += [threading.Thread(target=target) for target in alongside]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return out


def small_parties(inputs: int = 3, computes: int = 3, recipients: tuple[str, ...] = ("regulator",)) -> list[dict]:
    """Parties for a test federation: the first ``computes`` input parties also compute."""
    parties = []
    for i in range(inputs):
        roles = ["input", "compute"] if i < computes else ["input"]
        parties.append({"id": f"company_{chr(ord('a') + i)}", "roles": roles})
    parties += [{"id": r, "roles": ["recipient"]} for r in recipients]
    return parties


@pytest.fixture
def federation(tmp_path, s3_server):
    """Factory: a rendered spec with fresh keys and free ports, and its bucket created."""
    from mpc_federation.spec import load_spec
    from mpc_federation.store import CoordinationStore

    def make(parties: list[dict] | None = None, template: Path = TAXI_TEMPLATE, overrides: dict | None = None,
             name: str = "federation"):
        parties = parties if parties is not None else small_parties()
        # A prefix of its own per test, so runs of the same date never meet across tests.
        overrides = {"coordination": {"bucket": "mpc-coordination", "prefix": f"t{uuid.uuid4().hex[:12]}"},
                     **(overrides or {})}
        keys = {p["id"]: localnet.test_keys(p["id"]) for p in parties}
        path = localnet.render_spec(template, tmp_path / name, keys, parties=parties, overrides=overrides)
        spec = load_spec(path)
        CoordinationStore(s3_server.store_config(spec.bucket)).ensure_bucket()
        return spec, keys

    return make
