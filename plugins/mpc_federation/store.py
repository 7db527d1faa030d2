"""The coordination store: an S3 bucket seen as a few small verbs.

``CoordinationStore`` takes a ready boto3 S3 client. In Airflow the client comes from the
``mpc_coordination`` connection through the Amazon provider (``mpc_operators.hooks``: credentials,
role assumption, endpoint, TLS verification and botocore's retries, configured once); tests,
benchmarks and scripts build one from plain values with ``StoreConfig``. This module does not
import Airflow.

Outages: the store does not loop on its own. A brief outage is ridden out by botocore's retries,
bounded by time (``retries.ride_out_outages``: each call keeps retrying for two minutes after its
first failure, sleeping at most 2 s between attempts, with no retry quota shared between calls),
installed on the patient client. Callers that poll anyway (sensor, trigger, UI) pass
``patient=False`` and get the quick client, which fails at once.

Conditional writes: a run's roster is fixed once with a put-if-absent (``If-None-Match: *``). A
store that ignores the condition would let a second writer overwrite it without a word, so the
first write through a store probes the bucket and refuses a store that ignores it
(``ConditionalWritesError``), unless the connection opts in to ``conditional_writes: emulated``
(see docs/stores.md for the residual race and what catches it).

Timestamps: both clients parse S3's two timestamp forms directly (``fast_timestamps``); botocore's
general parser (dateutil) costs about 50 µs a timestamp, a large part of listing thousands of keys.
"""

from __future__ import annotations

import functools
import logging
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .retries import ride_out_outages

log = logging.getLogger(__name__)

# A compute party reads every input party's shares with ``CONCURRENT_REQUESTS`` concurrent GETs:
# urllib3 keeps at most ``max_pool_connections`` connections per host (botocore's default is 10)
# and discards the others after use, so the pool must be at least as large.
MAX_POOL_CONNECTIONS = 32
# The most requests ``concurrently`` has in flight: boto3 clients are thread-safe, and the pool
# above is as large, so connections are reused. A GET of a small object mostly waits on the store
# (verifying and decrypting an envelope takes about 0.15 ms of CPU, in libsodium).
CONCURRENT_REQUESTS = MAX_POOL_CONNECTIONS
# A brief outage must not fail a nightly run: botocore's standard retries (connection errors,
# timeouts, 5xx, throttling), bounded by ``retries.OUTAGE_BUDGET`` seconds per call rather than by
# this count, which is only a backstop (the stage deadlines still bound the whole wait).
#
# Response checksums are validated only when an operation requires it. Every object the protocol
# reads is signed, and sealed where private, so a checksum adds nothing against the untrusted bucket;
# and botocore (1.36 to at least 1.44) fails to parse a 5xx answer to a checksummed GET (its body is
# wrapped in a StreamingChecksumBody, which has no ``strip``: boto/boto3#4754), raising
# AttributeError instead of retrying the server error as the standard mode promises.
DEFAULT_CLIENT_CONFIG: dict[str, Any] = {
    "connect_timeout": 5,
    "read_timeout": 20,
    "retries": {"mode": "standard", "total_max_attempts": 500},
    "max_pool_connections": MAX_POOL_CONNECTIONS,
    "response_checksum_validation": "when_required",
}
# For callers that poll again anyway and must answer at once (sensor, trigger, UI pages).
QUICK_CLIENT_CONFIG: dict[str, Any] = {
    "connect_timeout": 3,
    "read_timeout": 10,
    "retries": {"mode": "standard", "total_max_attempts": 1},
    "max_pool_connections": MAX_POOL_CONNECTIONS,
    "response_checksum_validation": "when_required",
}
CONDITIONAL_WRITES = ("required", "emulated")
# One small object, written at most twice per probe and never deleted. At the bucket's root unless
# the store is given another key: a party's role may write only its own keys (infra/terraform), so
# a party's tasks probe at ``party.probe_key(spec, party)``.
PROBE_KEY = "mpc-probe/conditional-writes"


def concurrently(fn, items, threads: int = CONCURRENT_REQUESTS) -> list:
    """``[fn(item) for item in items]``, up to ``threads`` at a time: requests to the store mostly
    wait on it, so independent ones overlap. The first exception is raised (after the others
    ended); one item, or one thread, runs in the caller's thread."""
    items = list(items)
    if len(items) <= 1 or threads <= 1:
        return [fn(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(threads, len(items)), thread_name_prefix="store") as pool:
        return list(pool.map(fn, items))


class ConditionalWritesError(RuntimeError):
    """The store does not honour S3 conditional writes (``If-None-Match: *``)."""


@dataclass(frozen=True)
class StoreConfig:
    """A store from plain values (tests, benchmarks, scripts); Airflow uses the ``aws`` connection.

    :param client_config: botocore ``Config`` keyword arguments; ``DEFAULT_CLIENT_CONFIG`` if None.
    :param conditional_writes: ``required`` (default) or ``emulated`` (see the module docstring).
    """

    bucket: str
    endpoint_url: str | None = None
    region_name: str | None = "us-east-1"
    access_key: str | None = None
    secret_key: str | None = None
    conditional_writes: str = "required"
    client_config: dict | None = field(default=None)

    def client(self, overrides: dict | None = None) -> Any:
        """A boto3 S3 client for these values; ``overrides`` replace keys of the client config."""
        import boto3
        from botocore.config import Config

        kwargs = {**(self.client_config or DEFAULT_CLIENT_CONFIG), **(overrides or {})}
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region_name,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(**kwargs),
        )

    def store(self) -> CoordinationStore:
        return CoordinationStore(
            self.client(),
            self.bucket,
            quick_client=functools.partial(self.client, QUICK_CLIENT_CONFIG),
            conditional_writes=self.conditional_writes,
        )


def parse_timestamp(value: str) -> Any:
    """A timestamp as botocore returns it (an aware datetime), fast for the forms S3 sends: ISO 8601
    in UTC (``2026-12-01T23:10:18.524Z``, listings) and RFC 7231 (``Tue, 01 Dec 2026 23:10:18 GMT``,
    the Last-Modified header); anything else goes to botocore's own parser."""
    from datetime import UTC, datetime
    from email.utils import parsedate_to_datetime

    from botocore.utils import parse_timestamp as botocore_parse

    try:
        if value.endswith("Z") and "T" in value:
            return datetime.fromisoformat(value[:-1]).replace(tzinfo=UTC)
        if value.endswith(" GMT"):
            return parsedate_to_datetime(value).replace(tzinfo=UTC)
    except (TypeError, ValueError):
        pass
    return botocore_parse(value)


def fast_timestamps(client: Any) -> Any:
    """Make ``client`` parse response timestamps with ``parse_timestamp`` (botocore's documented
    parser default, ``ResponseParserFactory.set_parser_defaults``, on the factory its endpoint uses;
    clients of one botocore session share it). Returns the client; one without the factory (a
    stand-in in tests) is returned unchanged."""
    factory = getattr(getattr(client, "_endpoint", None), "_response_parser_factory", None)
    if factory is not None:
        factory.set_parser_defaults(timestamp_parser=parse_timestamp)
    return client


def _code(exc: Exception) -> str | None:
    response = getattr(exc, "response", None) or {}
    return response.get("Error", {}).get("Code")


def store_name(client: Any, bucket: str) -> str:
    """How a message names a store: its endpoint and the bucket."""
    endpoint = getattr(getattr(client, "meta", None), "endpoint_url", None) or "AWS S3"
    return f"bucket {bucket!r} at {endpoint}"


class CoordinationStore:
    """Put, get and list objects of one bucket.

    :param client: a boto3 S3 client (its standard-mode retries become time-bounded), or a
        ``StoreConfig`` of plain values, which builds both clients.
    :param bucket: the bucket (taken from the ``StoreConfig`` when one is given).
    :param quick_client: the client for ``patient=False`` calls, or a function that makes it when
        the first such call comes (a task that makes none does not pay for a second client);
        ``client`` if None.
    :param conditional_writes: ``required`` or ``emulated``.
    :param probe_key: where the conditional-write probe writes (a key this party may write).
    """

    # (endpoint, bucket) pairs whose conditional writes this process has already checked.
    _checked: ClassVar[set[tuple[str, str]]] = set()
    _check_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        client: Any,
        bucket: str | None = None,
        *,
        quick_client: Any = None,
        conditional_writes: str = "required",
        probe_key: str = PROBE_KEY,
    ):
        if isinstance(client, StoreConfig):
            config = client
            client, quick_client = config.client(), functools.partial(config.client, QUICK_CLIENT_CONFIG)
            bucket, conditional_writes = config.bucket, config.conditional_writes
        if not bucket:
            raise ValueError("CoordinationStore needs a bucket")
        if conditional_writes not in CONDITIONAL_WRITES:
            raise ValueError(
                f"conditional_writes must be one of {', '.join(CONDITIONAL_WRITES)}, not {conditional_writes!r}"
            )
        self.bucket = bucket
        self.conditional_writes = conditional_writes
        self.probe_key = probe_key
        self._client = ride_out_outages(fast_timestamps(client))
        self._quick_client = quick_client

    @functools.cached_property
    def _quick(self) -> Any:
        """The client of ``patient=False`` calls (made now if a function to make it was given)."""
        quick = self._quick_client
        if quick is None:
            return self._client
        return fast_timestamps(quick() if callable(quick) else quick)

    @property
    def name(self) -> str:
        return store_name(self._client, self.bucket)

    def clients(self) -> tuple[Any, ...]:
        """The distinct boto3 clients the store calls through: the patient one first, then the quick
        one (for ``patient=False``) if it is another. For instrumentation, such as counting the
        requests with a botocore event hook; the store's calls go through its verbs."""
        return (self._client,) if self._quick is self._client else (self._client, self._quick)

    def _for(self, patient: bool) -> Any:
        return self._client if patient else self._quick

    # -- conditional writes ----------------------------------------------------------------------
    def _put_if_absent(self, client: Any, key: str, body: bytes) -> bool:
        try:
            client.put_object(Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*")
            return True
        except Exception as exc:
            if _code(exc) in ("PreconditionFailed", "ConditionalRequestConflict", "412"):
                return False
            raise

    def probe_conditional_writes(self, *, patient: bool = True) -> bool:
        """Whether the store refuses to overwrite an object written with ``If-None-Match: *``.

        Writes ``probe_key`` at most twice: either write refused proves the condition is honoured;
        two accepted writes prove it is ignored. Errors other than a refusal propagate.
        """
        client = self._for(patient)
        body = f"conditional-write probe {secrets.token_hex(8)}\n".encode()
        if not self._put_if_absent(client, self.probe_key, body):
            return True
        return not self._put_if_absent(client, self.probe_key, body)

    def check_conditional_writes(self, *, patient: bool = True) -> None:
        """Refuse a store that ignores conditional writes unless emulation was opted in to.

        :raises ConditionalWritesError: naming the store, and the way out.
        """
        if self.conditional_writes == "emulated":
            return
        where = (getattr(self._client.meta, "endpoint_url", "") or "", self.bucket)
        with self._check_lock:
            if where in self._checked:
                return
            try:
                honoured = self.probe_conditional_writes(patient=patient)
            except Exception as exc:
                if _code(exc) in ("NotImplemented", "501", "InvalidArgument", "400"):
                    raise ConditionalWritesError(
                        f"the coordination store ({self.name}) rejects conditional writes "
                        f"(PutObject with If-None-Match: *): {exc}"
                    ) from exc
                raise
            if not honoured:
                raise ConditionalWritesError(self.refusal())
            self._checked.add(where)
            log.info("The coordination store (%s) honours conditional writes", self.name)

    def refusal(self) -> str:
        """Why a store that ignores conditional writes is refused, and the ways out."""
        return (
            f"the coordination store ({self.name}) ignores conditional writes: a second PutObject "
            f"with If-None-Match: * of {self.probe_key!r} overwrote the first instead of failing with 412. "
            f"A run's roster must be written once, so this store is refused. Use a store that honours "
            f"conditional writes (AWS S3 and most S3 servers do), or opt in to emulation with the "
            f'connection extra "conditional_writes": "emulated" (see docs/stores.md)'
        )

    def check_reachable(self) -> None:
        """HeadBucket with the quick client: raises at once if the bucket cannot be reached."""
        self._quick.head_bucket(Bucket=self.bucket)

    # -- the verbs -------------------------------------------------------------------------------
    def put(self, key: str, body: bytes) -> None:
        self.check_conditional_writes()
        self._client.put_object(Bucket=self.bucket, Key=key, Body=body)

    def put_new(self, key: str, body: bytes) -> bool:
        """Write only if absent (S3 conditional write); False when the key already exists.

        With ``conditional_writes="emulated"``: look first, write, and read back; False when the key
        existed or another writer's object is there after the write (the residual race between two
        writers that both looked before either wrote is documented in docs/stores.md).
        """
        self.check_conditional_writes()
        if self.conditional_writes == "emulated":
            if self.exists(key):
                return False
            if not self._put_if_absent(self._client, key, body):
                return False
            return self.get(key) == body
        return self._put_if_absent(self._client, key, body)

    def exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=key)
            return True
        except Exception as exc:
            if _code(exc) in ("NoSuchKey", "404", "NotFound"):
                return False
            raise

    def get(self, key: str) -> bytes | None:
        try:
            return self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except Exception as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return None
            raise

    def list(self, prefix: str, *, patient: bool = True) -> list[str]:
        """Keys under ``prefix``; ``patient=False`` fails at once while the bucket is unreachable."""
        return list(self.list_with_etags(prefix, patient=patient))

    def list_with_etags(self, prefix: str, *, patient: bool = True) -> dict[str, str]:
        """{key: ETag and LastModified} under ``prefix``: a reader that remembers what it verified
        fetches only objects that changed."""
        keys: dict[str, str] = {}
        paginator = self._for(patient).get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                keys[obj["Key"]] = f"{obj.get('ETag', '')}/{obj.get('LastModified', '')}"
        return keys

    def ensure_bucket(self) -> None:
        """Create the bucket if missing (local testbeds; in production Terraform owns it)."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            if _code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                raise
            self._client.create_bucket(Bucket=self.bucket)
