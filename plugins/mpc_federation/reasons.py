"""Why a party stopped, as it is published in the bucket: codes, never data.

Everyone who can read the bucket (its operator, every member, every member's UI) reads the
abort records, so nothing derived from a party's data may be in them. An input party that
withdraws publishes only a code from ``WITHDRAWAL_CODES`` and the id of the task that failed;
the exception itself (which may quote an aggregate value, e.g. a failed range check) stays in
the party's local task log. A compute party that gives up an attempt publishes a code from
``GIVE_UP_CODES`` with a text that carries protocol facts only (object keys, party ids,
deadlines): exceptions whose messages may quote data get a fixed text instead.
"""

from __future__ import annotations

# Published in abort/<party>/inputs: why an input party withdrew from a run.
WITHDRAWAL_CODES = {
    "aggregation-failed": "the local aggregation job (Spark) failed",
    "input-check-failed": "the local aggregate does not pass the program's declared input checks "
    "(format, dimensions, integer ranges)",
    "configuration-error": "this party's spec, keys or program could not be loaded",
    "integrity-error": "an object in the bucket failed verification",
    "share-failed": "sharing failed for another reason (e.g. the aggregate file is missing, the bucket unreachable)",
    "task-failed": "an input task failed for a reason not listed here",
}

# Published in abort/<party>/attempt-<n>: why a compute party gave up an MPC attempt.
GIVE_UP_CODES = {
    "protocol": "a protocol rule stopped the attempt (e.g. too few input parties); the text says which",
    "integrity-error": "an object in the bucket failed verification; the text names it",
    "mpc-failed": "the MPyC process failed, missed a deadline or was stopped; the text says which",
    "configuration-error": "this party's spec, keys or certificates do not fit; the text names the field",
    "input-check-failed": "a check on data failed; the details stay in the local task log",
    "compute-failed": "another error; the details stay in the local task log",
}

_MAX_TEXT = 500


def _chain(exc: BaseException | None) -> list[BaseException]:
    """The exception and everything it was raised from or during."""
    seen: list[BaseException] = []
    while exc is not None and not any(exc is s for s in seen):
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def _kinds():
    from mpc_federation.envelope import IntegrityError
    from mpc_federation.programs import ProgramError
    from mpc_federation.spec import SpecError

    return IntegrityError, ProgramError, SpecError


def concerns_data(exc: BaseException | None) -> bool:
    """Whether a data check (ProgramError: its message may quote a value) is anywhere in the chain."""
    _, ProgramError, _ = _kinds()
    return any(isinstance(e, ProgramError) for e in _chain(exc))


def withdrawal_code(task_id: str, exc: BaseException | None) -> str:
    """The code an input party publishes when its task ``task_id`` failed with ``exc``."""
    IntegrityError, ProgramError, SpecError = _kinds()
    chain = _chain(exc)
    if task_id == "aggregate":
        return "aggregation-failed"
    if any(isinstance(e, ProgramError) for e in chain):
        return "input-check-failed"
    if any(isinstance(e, IntegrityError) for e in chain):
        return "integrity-error"
    if any(isinstance(e, (SpecError, PermissionError)) for e in chain):
        return "configuration-error"
    if task_id == "share" and chain:
        return "share-failed"
    return "task-failed"


def give_up_reason(exc: BaseException, party: str) -> tuple[str, str]:
    """The code and the value-free text a compute party publishes when its attempt failed with ``exc``.

    Only exception types whose messages are built from protocol facts pass their first line on;
    anything that involves a data check, or an exception of any other type, is named by code
    and type only.
    """
    from mpc_federation.launcher import MPCRunError
    from mpc_federation.stage_base import StageError

    IntegrityError, _, SpecError = _kinds()
    name = type(exc).__name__
    first = (str(exc).splitlines() or [""])[0]
    if concerns_data(exc):
        return "input-check-failed", (
            f"{name} at {party}: a data check failed; the details stay in {party}'s local task log"
        )
    for kinds, code in (
        (IntegrityError, "integrity-error"),
        (MPCRunError, "mpc-failed"),
        ((SpecError, PermissionError), "configuration-error"),
        (StageError, "protocol"),
    ):
        if isinstance(exc, kinds):
            return code, f"{name}: {first}"[:_MAX_TEXT]
    return "compute-failed", f"{name} at {party}: the details stay in {party}'s local task log"


def check(code: str, codes: dict[str, str]) -> str:
    if code not in codes:
        raise ValueError(f"unknown reason code {code!r} (known: {', '.join(codes)})")
    return code
