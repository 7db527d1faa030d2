"""The coordination store: an S3 bucket seen as a few small verbs.

Plain boto3, configured from plain data (an Airflow connection's fields), so the operators,
the trigger, the UI and the tests all build it the same way.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreConfig:
    """Where and how to reach the bucket. Built from the ``mpc_coordination`` connection."""

    bucket: str
    endpoint_url: str | None = None
    region_name: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 20.0
    max_attempts: int = 3
    # How long an operation keeps retrying while the bucket is unreachable (a brief outage
    # must not fail a nightly run; the stage deadlines still bound the whole wait).
    outage_seconds: float = 120.0

    @classmethod
    def from_connection(cls, conn: Any, bucket: str) -> StoreConfig:
        """:param conn: an Airflow Connection (login/password = access keys, extra = endpoint/region)."""
        extra = conn.extra_dejson if conn is not None else {}
        return cls(
            bucket=bucket,
            endpoint_url=extra.get("endpoint_url") or None,
            region_name=extra.get("region_name") or "us-east-1",
            access_key=(conn.login if conn is not None else None) or extra.get("aws_access_key_id"),
            secret_key=(conn.password if conn is not None else None) or extra.get("aws_secret_access_key"),
        )


def _unreachable(exc: Exception) -> bool:
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    return isinstance(exc, (BotoConnectionError, HTTPClientError))


class CoordinationStore:
    """Put, get and list objects of one bucket, riding out brief outages."""

    def __init__(self, config: StoreConfig):
        import boto3
        from botocore.config import Config

        self.config = config
        self.bucket = config.bucket
        self._client = boto3.client(
            "s3",
            endpoint_url=config.endpoint_url,
            region_name=config.region_name,
            aws_access_key_id=config.access_key,
            aws_secret_access_key=config.secret_key,
            config=Config(connect_timeout=config.connect_timeout, read_timeout=config.read_timeout,
                          retries={"max_attempts": config.max_attempts, "mode": "standard"}),
        )

    def _call(self, operation, /, patient: bool = True, **kwargs):
        delay, give_up = 0.5, time.monotonic() + (self.config.outage_seconds if patient else 0)
        while True:
            try:
                return operation(**kwargs)
            except Exception as exc:
                if not _unreachable(exc) or time.monotonic() + delay > give_up:
                    raise
                log.warning("Coordination bucket unreachable (%s); retrying in %.1f s", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def put(self, key: str, body: bytes) -> None:
        self._call(self._client.put_object, Bucket=self.bucket, Key=key, Body=body)

    def put_new(self, key: str, body: bytes) -> bool:
        """Write only if absent (S3 conditional write); False when the key already exists."""
        from botocore.exceptions import ClientError

        try:
            self._call(self._client.put_object, Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*")
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise

    def get(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            return self._call(self._get_body, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise

    def _get_body(self, Key: str) -> bytes:  # noqa: N803 (boto3's spelling)
        return self._client.get_object(Bucket=self.bucket, Key=Key)["Body"].read()

    def list(self, prefix: str, *, patient: bool = True) -> list[str]:
        """Keys under ``prefix``; ``patient=False`` fails at once while the bucket is unreachable."""
        return self._call(self._list, patient=patient, prefix=prefix)

    def _list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return keys

    def list_with_etags(self, prefix: str, *, patient: bool = True) -> dict[str, str]:
        """{key: ETag and LastModified} under ``prefix``: a reader that remembers what it verified
        fetches only objects that changed."""
        return self._call(self._list_with_etags, patient=patient, prefix=prefix)

    def _list_with_etags(self, prefix: str) -> dict[str, str]:
        keys: dict[str, str] = {}
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                keys[obj["Key"]] = f"{obj.get('ETag', '')}/{obj.get('LastModified', '')}"
        return keys

    def ensure_bucket(self) -> None:
        """Create the bucket if missing (local testbeds; in production Terraform owns it)."""
        from botocore.exceptions import ClientError

        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError:
            self._client.create_bucket(Bucket=self.bucket)
