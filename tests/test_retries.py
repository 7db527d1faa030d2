"""The store's time-bounded retries (mpc_federation.retries) against a port that refuses connections.

A refused connection fails in about a millisecond, so many attempts fit in a short budget. These
tests count attempts with botocore's own ``before-send`` event; none asserts a duration (the budget
of a single call is measured on a fake clock).
"""

from __future__ import annotations

import base64
import http.server
import threading
import zlib

import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.retries.quota import RetryQuota
from localnet import free_port

from mpc_federation.retries import OUTAGE_BUDGET, max_attempts_of, outage_budget, ride_out_outages
from mpc_federation.store import DEFAULT_CLIENT_CONFIG, QUICK_CLIENT_CONFIG, CoordinationStore, StoreConfig

# Left alone, botocore's standard mode stops a call long before: by default after 3 attempts, and in
# any case once the client's retry quota is spent: 500 units allow at most 100 retries even at the
# cheapest cost of 5 units per retry (a connection error costs 10 or 14, by botocore's version).
STOCK_QUOTA_RETRIES = RetryQuota.INITIAL_CAPACITY // 5


def refusing_client(config: dict) -> tuple[object, list[int]]:
    """A client of a loopback port nothing listens on, and a list that counts its attempts."""
    client = StoreConfig(
        "b", endpoint_url=f"http://127.0.0.1:{free_port()}", access_key="k", secret_key="s", client_config=config
    ).client()
    attempts: list[int] = []
    client.meta.events.register("before-send.s3", lambda **_: attempts.append(1))
    return client, attempts


class TickingClock:
    """A fake clock, one second further at each reading; keeps its readings."""

    def __init__(self):
        self.readings: list[float] = []

    def __call__(self) -> float:
        self.readings.append(float(len(self.readings)))
        return self.readings[-1]


def test_a_call_keeps_retrying_for_its_budget_then_raises():
    """One call retries past botocore's stock limits while its budget lasts, then raises, and not before."""
    client, attempts = refusing_client(DEFAULT_CLIENT_CONFIG)
    clock = TickingClock()  # read once per failed attempt: the budget is counted in attempts
    budget = STOCK_QUOTA_RETRIES + 50
    assert ride_out_outages(client, budget=budget, max_backoff=0.001, clock=clock) is client
    assert outage_budget(client) == budget
    with pytest.raises(EndpointConnectionError):
        client.head_bucket(Bucket="b")
    # Retried at every failure less than ``budget`` after the first; raised at the first that was not.
    assert clock.readings[-2] - clock.readings[0] < budget <= clock.readings[-1] - clock.readings[0]
    assert len(attempts) == len(clock.readings) == budget + 1
    # Neither botocore's retry quota nor the attempt count (500, a backstop) ended the call.
    assert STOCK_QUOTA_RETRIES + 1 < len(attempts) < max_attempts_of(client)


def test_concurrent_calls_share_no_quota():
    """Eight calls at once during an outage: together they retry far past botocore's shared quota."""
    client, attempts = refusing_client(DEFAULT_CLIENT_CONFIG)
    ride_out_outages(client, budget=1.5, max_backoff=0.02)
    errors: list[Exception] = []

    def call():
        try:
            client.head_bucket(Bucket="b")
        except Exception as exc:  # noqa: BLE001 - every call must end in the connection error
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 8 and all(isinstance(e, EndpointConnectionError) for e in errors), errors
    assert len(attempts) > 8 + STOCK_QUOTA_RETRIES, len(attempts)


def test_the_attempt_count_stays_a_backstop():
    client, attempts = refusing_client(
        {**DEFAULT_CLIENT_CONFIG, "retries": {"mode": "standard", "total_max_attempts": 3}}
    )
    ride_out_outages(client, budget=60, max_backoff=0.01)
    with pytest.raises(EndpointConnectionError):
        client.head_bucket(Bucket="b")
    assert len(attempts) == 3


@pytest.mark.parametrize(
    "retries, expected",
    [
        ({"mode": "standard", "total_max_attempts": 7}, 7),
        ({"mode": "standard", "max_attempts": 4}, 5),
        ({"mode": "legacy", "max_attempts": 4}, None),
        ({"mode": "adaptive", "total_max_attempts": 4}, None),
    ],
)
def test_max_attempts_of(retries, expected):
    client, _ = refusing_client({"retries": retries})
    assert max_attempts_of(client) == expected


def test_quick_and_other_modes_are_left_alone():
    for config in (QUICK_CLIENT_CONFIG, {"retries": {"mode": "legacy", "max_attempts": 2}}):
        client, attempts = refusing_client(config)
        ride_out_outages(client, budget=60, max_backoff=0.01)
        with pytest.raises(EndpointConnectionError):
            client.head_bucket(Bucket="b")
        assert len(attempts) == (1 if config is QUICK_CLIENT_CONFIG else 3)
        assert outage_budget(client) is None


def test_the_store_bounds_its_patient_client_by_time_and_keeps_the_quick_one_quick():
    store = CoordinationStore(
        StoreConfig("b", endpoint_url=f"http://127.0.0.1:{free_port()}", access_key="k", secret_key="s")
    )
    patient, quick = store.clients()
    assert (outage_budget(patient), outage_budget(quick)) == (OUTAGE_BUDGET, None)
    attempts: list[int] = []
    for client in store.clients():
        client.meta.events.register("before-send.s3", lambda **_: attempts.append(1))
    with pytest.raises(EndpointConnectionError):
        store.list("x", patient=False)
    assert len(attempts) == 1


def test_a_store_of_one_client_counts_it_once():
    client, _ = refusing_client(DEFAULT_CLIENT_CONFIG)
    store = CoordinationStore(client, "b")
    assert store.clients() == (client,) and outage_budget(client) == OUTAGE_BUDGET


def test_concurrently_overlaps_the_requests_keeps_their_order_and_raises_the_first_error():
    """``store.concurrently`` runs its items at once (three that each wait for the other two at a
    barrier finish; one after the other they could not), returns the results in the items' order,
    raises an item's error, and runs a single item in the caller's thread."""
    from mpc_federation.store import concurrently

    barrier = threading.Barrier(3, timeout=10)

    def meet(i: int) -> int:
        barrier.wait()  # BrokenBarrierError after 10 s unless all three are in flight together
        return i * i

    assert concurrently(meet, [3, 1, 2]) == [9, 1, 4]

    def fail_on_two(i: int) -> int:
        if i == 2:
            raise ValueError("item 2")
        return i

    with pytest.raises(ValueError, match="item 2"):
        concurrently(fail_on_two, range(5))
    assert concurrently(lambda _: threading.current_thread(), ["one"]) == [threading.current_thread()]
    assert concurrently(lambda i: threading.current_thread(), [1, 2], threads=1) == [threading.current_thread()] * 2
    assert concurrently(meet, []) == []


class FailingOnce(http.server.BaseHTTPRequestHandler):
    """Answers the first GET with a 500 that carries a response checksum header (as an S3-compatible
    store under load may), every later one with the object; counts the GETs."""

    gets = 0

    def do_GET(self):  # noqa: N802 - http.server's name
        type(self).gets += 1
        failing = type(self).gets == 1
        body = b"<Error><Code>InternalError</Code></Error>" if failing else b"the object"
        self.send_response(500 if failing else 200)
        crc = base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()  # the body's own
        self.send_header("x-amz-checksum-crc32", crc)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_server_error_on_a_get_is_retried_even_with_a_checksum_header():
    """botocore validating response checksums cannot parse a 5xx answer to a GET that names a
    checksum (boto/boto3#4754: AttributeError, not retried); the store's clients validate checksums
    only where an operation requires it (its objects are signed), so the server error is retried."""
    FailingOnce.gets = 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FailingOnce)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        store = CoordinationStore(
            StoreConfig("b", endpoint_url=f"http://127.0.0.1:{server.server_port}", access_key="k", secret_key="s")
        )
        assert store.get("some/key") == b"the object"
        assert FailingOnce.gets == 2
        for config in (DEFAULT_CLIENT_CONFIG, QUICK_CLIENT_CONFIG):
            assert config["response_checksum_validation"] == "when_required"
    finally:
        server.shutdown()
        server.server_close()
