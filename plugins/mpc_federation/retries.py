"""Riding out a bucket outage: botocore's standard retries, bounded by time instead of a count.

botocore's standard mode retries connection errors, timeouts, 5xx and throttling, but two of its
limits fit a night badly. Its back-off grows to 20 s, so a call may sleep well past the end of an
outage; and its retry quota (500 units per client, 5 to 14 per retry depending on the error and
botocore's version) is shared by every call of the client, so a party reading eight objects at
once spends it in a few seconds of outage and then fails at once, with its stage deadline still
far away.

``ride_out_outages`` keeps botocore's own machinery (its retry conditions, jittered exponential
back-off and event handler) and changes three things on one client: a call is retried while its
first failure is less than ``budget`` seconds old (the attempt count stays as a backstop), the
back-off is capped at ``max_backoff`` seconds so the call resumes soon after the bucket returns,
and there is no shared quota. The stage deadlines still bound the whole wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botocore.retries import standard
from botocore.retries.base import BaseRetryableChecker

# An outage up to this long is ridden out by each call; then the call raises.
OUTAGE_BUDGET = 120.0
# The longest sleep between two attempts: the call resumes at most this long after the bucket returns.
MAX_BACKOFF = 2.0
_FIRST_FAILURE = "mpc_first_failure"
# The attribute by which a client made time-bounded carries its budget (read it with ``outage_budget``).
_BUDGET_MARK = "mpc_outage_budget"


class _WithinBudget(BaseRetryableChecker):
    """Retryable while the call's first failure is less than ``budget`` seconds old."""

    def __init__(self, budget: float, clock: Callable[[], float] = time.monotonic):
        self._budget = budget
        self._clock = clock

    def is_retryable(self, context: Any) -> bool:
        now = self._clock()
        first = context.request_context.setdefault(_FIRST_FAILURE, now)
        return now - first < self._budget


class _AllOf(BaseRetryableChecker):
    """Retryable when every checker says so."""

    def __init__(self, *checkers: BaseRetryableChecker):
        self._checkers = checkers

    def is_retryable(self, context: Any) -> bool:
        return all(checker.is_retryable(context) for checker in self._checkers)


class _NoQuota:
    """Every retry may go ahead: the budget, not a quota shared by all calls, bounds them."""

    def acquire_retry_quota(self, context: Any) -> bool:
        return True

    def release_retry_quota(self, context: Any, http_response: Any, **kwargs: Any) -> None:
        return None


def max_attempts_of(client: Any) -> int | None:
    """The client's configured attempt count in standard mode, or None for another retry mode."""
    retries = getattr(client.meta.config, "retries", None) or {}
    if retries.get("mode", "legacy") != "standard":
        return None
    if "total_max_attempts" in retries:
        return int(retries["total_max_attempts"])
    return int(retries.get("max_attempts", standard.DEFAULT_MAX_ATTEMPTS - 1)) + 1


def outage_budget(client: Any) -> float | None:
    """The budget ``ride_out_outages`` gave ``client``'s calls, or None if it left its retries alone."""
    return getattr(client, _BUDGET_MARK, None)


def ride_out_outages(
    client: Any,
    *,
    budget: float = OUTAGE_BUDGET,
    max_backoff: float = MAX_BACKOFF,
    clock: Callable[[], float] = time.monotonic,
) -> Any:
    """Replace the standard retry handler of ``client`` by a time-bounded one; returns the client.

    A client in another retry mode (``legacy``, ``adaptive``, chosen in the connection) is left as
    it is, and so is one allowed a single attempt (it must fail at once). A client made time-bounded
    is marked with its budget: ``outage_budget(client)``.

    :param client: a boto3 client.
    :param budget: seconds after a call's first failure during which it keeps retrying.
    :param max_backoff: cap of the jittered exponential back-off, in seconds.
    :param clock: the seconds ``budget`` is measured in (``time.monotonic``; tests give a fake one).
    """
    attempts = max_attempts_of(client)
    if attempts is None or attempts <= 1:
        return client
    service = client.meta.service_model.service_id.hyphenize()
    adapter = standard.RetryEventAdapter()
    throttling = standard.ThrottlingErrorDetector(adapter)
    handler = standard.RetryHandler(
        retry_policy=standard.RetryPolicy(
            retry_checker=_AllOf(standard.StandardRetryConditions(max_attempts=attempts), _WithinBudget(budget, clock)),
            retry_backoff=standard.ExponentialBackoff(
                max_backoff=max_backoff, service_name=service, throttling_detector=throttling
            ),
        ),
        retry_event_adapter=adapter,
        retry_quota=_NoQuota(),
        service_name=service,
    )
    unique_id = f"retry-config-{service}"
    client.meta.events.unregister(f"needs-retry.{service}", unique_id=unique_id)
    client.meta.events.register(f"needs-retry.{service}", handler.needs_retry, unique_id=unique_id)
    setattr(client, _BUDGET_MARK, budget)
    return client
