"""What the stage modules share: the error a stage stops with, the privacy floor, and the
verified abort reasons of a run (``stages``, ``roster`` and ``computing`` import it, it imports none of them)."""

from __future__ import annotations

from mpc_federation.party import PartyRun


class StageError(RuntimeError):
    """A stage that cannot go on; the message says why, and who is concerned."""


def floor(run: PartyRun) -> int:
    """The privacy floor k of this run (``programs.privacy_floor``)."""
    from mpc_federation.programs import privacy_floor

    return privacy_floor(run.program, run.spec)


def verified(reader, present):
    """A verified view of the run: ``present`` may already be one, a raw listing, or None (list now)."""
    from mpc_federation.channel import Verified

    return present if isinstance(present, Verified) else reader.verified(present)


def explained(state, reader, view):
    """``state`` (a ``layout.Readiness``) with a stop's reason followed by the verified reasons of
    the run's aborts (``explain_aborts``)."""
    if state.stop:
        state.stop = f"{state.stop}; {explain_aborts(reader, view)}".rstrip("; ")
    return state


def explain_aborts(reader, present=None) -> str:
    """The verified reasons of every abort record of the run (one that does not verify is ignored,
    with a warning naming it)."""
    view = verified(reader, present)
    reasons = []
    for key in sorted(k for k in view.keys if k.startswith(f"{reader.root}/abort/")):
        party, scope = key[len(reader.root) + len("/abort/") :].split("/", 1)
        payload = view.payloads.get(key)
        reason = payload.get("reason") if isinstance(payload, dict) else None
        reasons.append(f"{party} ({scope}): {reason or '(no reason recorded)'}")
    return "; ".join(reasons)
