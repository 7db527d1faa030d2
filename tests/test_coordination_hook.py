"""The coordination bucket through the Amazon provider's ``aws`` connection (``CoordinationHook``):
role assumption, the project's retry defaults, and the connection test's conditional-write probe,
against S3 servers started on loopback (moto, which also answers STS, and rclone)."""

from __future__ import annotations

import json

import localnet
import pytest

from mpc_federation.store import DEFAULT_CLIENT_CONFIG
from mpc_operators.hooks import CoordinationHook

ROLE = "arn:aws:iam::123456789012:role/mpc-coordination"


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    server = localnet.S3Server(tmp_path_factory.mktemp("moto"), kind="moto").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def rclone(tmp_path_factory):
    server = localnet.S3Server(tmp_path_factory.mktemp("rclone"), kind="rclone").start()
    yield server
    server.stop()


def connect(monkeypatch, conn_id: str, connection: dict) -> CoordinationHook:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))
    return CoordinationHook(aws_conn_id=conn_id)


def test_role_arn_through_sts_of_the_local_server(moto, monkeypatch):
    """The connection's keys only assume the role; the bucket is used with the role's credentials."""
    connection = moto.connection()
    connection["extra"].update(
        {
            "role_arn": ROLE,
            "assume_role_method": "assume_role",
            "assume_role_kwargs": {"RoleSessionName": "mpc-test"},
            "service_config": {"sts": {"endpoint_url": moto.url}},
        }
    )
    hook = connect(monkeypatch, "mpc_role", connection)
    store = hook.store("role-bucket")
    store.ensure_bucket()
    assert store.put_new("run/roster/attempt-1", b"roster") is True
    assert store.put_new("run/roster/attempt-1", b"again") is False
    assert store.get("run/roster/attempt-1") == b"roster"
    credentials = store._client._request_signer._credentials.get_frozen_credentials()
    assert credentials.access_key != "testing" and credentials.token  # temporary credentials of the role
    identity = hook.get_session().client("sts", endpoint_url=moto.url).get_caller_identity()
    assert identity["Arn"].startswith("arn:aws:sts::123456789012:assumed-role/mpc-coordination/mpc-test")


def test_retry_defaults_apply_unless_the_connection_sets_them(moto, monkeypatch):
    plain = connect(monkeypatch, "mpc_plain", moto.connection()).store("plain-bucket")
    retries = plain._client.meta.config.retries
    assert retries["mode"] == "standard"
    assert retries["total_max_attempts"] == DEFAULT_CLIENT_CONFIG["retries"]["total_max_attempts"]
    assert "_quick" not in plain.__dict__  # the quick client is made on its first call, not with the store
    plain.ensure_bucket()
    assert plain.list("run/", patient=False) == []
    assert plain._quick is not plain._client and plain._quick.meta.config.retries["total_max_attempts"] == 1
    for client in (plain._client, plain._quick):  # see test_retries: a 5xx on a GET must stay retryable
        assert client.meta.config.response_checksum_validation == "when_required"

    connection = moto.connection()
    connection["extra"]["config_kwargs"] = {"retries": {"mode": "adaptive", "total_max_attempts": 7}}
    own = connect(monkeypatch, "mpc_own", connection).store("b1")
    assert own._client.meta.config.retries == {"mode": "adaptive", "total_max_attempts": 7}
    assert own._client.meta.config.connect_timeout == DEFAULT_CLIENT_CONFIG["connect_timeout"]  # default kept


def test_connection_test_checks_conditional_writes(moto, rclone, monkeypatch):
    for server in (moto, rclone):
        localnet_store = server.store_config("tested")
        from mpc_federation.store import CoordinationStore

        CoordinationStore(localnet_store).ensure_bucket()

    ok, message = connect(
        monkeypatch, "mpc_moto", {**moto.connection(), "extra": {**moto.connection()["extra"], "bucket": "tested"}}
    ).test_connection()
    assert ok and "conditional writes honoured" in message and moto.url in message

    required = rclone.connection()
    required["extra"].pop("conditional_writes")
    hook = connect(monkeypatch, "mpc_rclone", required)
    hook.bucket = "tested"
    ok, message = hook.test_connection()
    assert not ok and "ignores conditional writes" in message and rclone.url in message and "'tested'" in message

    emulated = connect(monkeypatch, "mpc_emulated", rclone.connection())
    emulated.bucket = "tested"
    ok, message = emulated.test_connection()
    assert ok and "emulated" in message and "ignores them" in message

    ok, message = connect(monkeypatch, "mpc_nobucket", moto.connection()).test_connection()
    assert not ok and "no bucket" in message


def test_unreachable_bucket_fails_the_connection_test_at_once(monkeypatch):
    dead = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {
            "endpoint_url": f"http://127.0.0.1:{localnet.free_port()}",
            "region_name": "us-east-1",
            "bucket": "tested",
        },
    }
    ok, message = connect(monkeypatch, "mpc_dead", dead).test_connection()
    assert not ok and "EndpointConnectionError" in message and "'tested'" in message


def test_hooks_of_one_process_parse_the_s3_model_once_and_build_no_user_agent_twice(moto, monkeypatch):
    """A triggerer makes a hook per trigger and ``airflow dags test`` one per task, on the
    rendezvous's critical path: the second hook's store reads no service-model file, and its user
    agent names the hook (the provider's own caller lookup walks the call stack)."""
    from botocore.loaders import JSONFileLoader

    connect(monkeypatch, "mpc_first", moto.connection()).store("b1")
    loaded = []
    original = JSONFileLoader.load_file
    monkeypatch.setattr(JSONFileLoader, "load_file", lambda self, path: loaded.append(path) or original(self, path))
    store = connect(monkeypatch, "mpc_second", moto.connection()).store("hook-bucket")
    assert loaded == []
    patient, quick = store.clients()
    assert quick.meta.config.user_agent_extra == patient.meta.config.user_agent_extra
    assert "Caller/CoordinationHook" in patient.meta.config.user_agent_extra
    assert quick.meta.config.retries["total_max_attempts"] == 1
    assert quick.meta.endpoint_url == patient.meta.endpoint_url == moto.url
    store.ensure_bucket()
    assert store.put_new("k", b"v") is True
    assert "k" in store.list("", patient=False)
