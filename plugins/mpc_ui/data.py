"""Where every party of a run stands, from the signed coordination records: the UI's data.

Read-only, with the spec's public keys only (``RunReader``): every record shown is verified
against its writer's key in the spec (signature, run, kind, attempt, spec and program hashes); a
record that does not verify is reported as an error on that party, never shown as progress. The
result is not read here: the caller hands in this party's revealed record (``results.py``).

States of a party in a run, in order (the object layout is in ``mpc_federation/layout.py``):

    waiting     nothing published yet
    shared      inputs/<p>/done                the input party's shares are all uploaded
    computing   status/<p>/computing           roster fixed, the MPyC process is starting ("ready")
    computed    status/<p>/computed            output shares published (with timings)
    revealed    status/<p>/revealed            the recipient reconstructed the result
    aborted     abort/<p>/inputs               the input party withdrew its input
                abort/<p>/attempt-<n>          the compute party gave up the newest MPC attempt

The newest attempt is the leader's newest roster (``RunLayout.attempts``); status records of an
older attempt are history.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from mpc_federation.channel import RunReader, Verified
from mpc_federation.envelope import IntegrityError, parts
from mpc_federation.layout import run_date, run_key
from mpc_federation.spec import FederationSpec

STATES = ("waiting", "shared", "computing", "computed", "revealed")
QUIET_SECONDS = 300  # an aborted run with no new record for this long is over (no retry coming)
_DECIDING = {"input-done", "roster", "abort"}  # fetched and verified; sealed shares are not fetched

__all__ = ["final_state", "list_runs", "run_date", "run_key", "run_overview"]


def final_state(roles: tuple[str, ...] | list[str]) -> str:
    """The state a party with these roles reaches when its part of a run is done."""
    if "recipient" in roles:
        return "revealed"
    return "computed" if "compute" in roles else "shared"


def _signed_attempt(blob: bytes) -> int:
    """The attempt an envelope's header claims: a hint for verifying it (the signature covers it)."""
    try:
        attempt = parts(blob)[0].get("header", {}).get("attempt", 0)
    except (ValueError, AttributeError):
        return 0
    return attempt if isinstance(attempt, int) and not isinstance(attempt, bool) else 0


def _statuses(reader: RunReader, party: str, present: set[str], errors: list[dict]) -> list[tuple[dict, dict]]:
    """(payload, signed header) of every verified status record of ``party``; errors for the rest."""
    folder = reader.status_key(party, "")
    out = []
    for key in sorted(k for k in present if k.startswith(folder)):
        blob = reader.store.get(key)
        if blob is None:
            continue
        try:
            header, payload = reader.open(blob, key, "status", party, attempt=_signed_attempt(blob))
        except IntegrityError as exc:
            errors.append({"party": party, "key": key, "error": str(exc)})
            continue
        except (ValueError, TypeError) as exc:  # signed, but not the JSON payload we know
            errors.append({"party": party, "key": key, "error": f"unreadable record: {exc}"})
            continue
        if not isinstance(payload, dict):
            errors.append({"party": party, "key": key, "error": "record payload is not an object"})
            continue
        out.append((payload, header))
    return out


def _rosters(reader: RunReader, view: Verified) -> dict[int, dict]:
    out = {}
    for attempt, payload in view.rosters(reader).items():
        out[attempt] = {
            "leader": reader.spec.leader.id,
            "attempt": attempt,
            "parties": list(payload.get("roster", [])),
            "at": view.headers[reader.roster_key(attempt)].get("created_at"),
            "left_out": dict(payload.get("left_out") or {}),
            "nothing_to_release": payload.get("nothing_to_release"),
        }
    return out


def _aborts(reader: RunReader, view: Verified) -> list[dict]:
    """Verified withdrawals (abort/<p>/inputs) and given-up attempts (abort/<p>/attempt-<n>)."""
    out = []
    for key in sorted(view.keys):
        described = reader.describe(key)
        if described is None or described.kind != "abort":
            continue
        payload, header = view.payloads.get(key) or {}, view.headers[key]
        withdrawal = key.endswith("/inputs")
        out.append(
            {
                "party": described.party,
                "scope": "withdrawal" if withdrawal else "attempt",
                "attempt": None if withdrawal else described.attempt,
                "reason": str(payload.get("reason", "(no reason recorded)")),
                "at": header.get("created_at"),
            }
        )
    return out


@dataclass
class _Attempts:
    """What the verified records say about the run's MPC attempts and who stopped."""

    rosters: dict[int, dict]  # the leader's rosters by attempt (``_rosters``)
    newest: int | None  # the newest attempt (the leader's newest roster), if any
    aborts: list[dict]  # every verified abort record (``_aborts``)
    given_up: dict[str, dict]  # compute party: its abort of the newest attempt
    withdrawals: dict[str, dict]  # input party: its withdrawal

    @property
    def roster(self) -> dict | None:
        return self.rosters.get(self.newest) if self.newest is not None else None

    def stopped(self) -> list[dict]:
        """The compute parties that gave up the newest attempt, and why."""
        return [
            {"party": p, "reason": a["reason"], "scope": a["scope"], "attempt": a["attempt"]}
            for p, a in self.given_up.items()
        ]


def _attempts(reader: RunReader, view: Verified) -> _Attempts:
    """The rosters, the newest attempt, the aborts, and who gave up the newest attempt or withdrew."""
    rosters = _rosters(reader, view)
    attempts = reader.attempts(view.keys)
    newest = attempts[-1] if attempts else None
    aborts = _aborts(reader, view)
    gave_up = reader.attempt_aborts(view.keys, newest) if newest is not None else []  # layout's rule
    given_up = {
        a["party"]: a for a in aborts if a["scope"] == "attempt" and a["attempt"] == newest and a["party"] in gave_up
    }
    withdrawals = {a["party"]: a for a in aborts if a["scope"] == "withdrawal"}
    return _Attempts(rosters, newest, aborts, given_up, withdrawals)


def _progress(
    reader: RunReader, party, view: Verified, present: set[str], newest: int | None, errors: list[dict]
) -> tuple[dict[str, Any], dict[str, float], list[str]]:
    """A party's events (stage: time), timings and history (stages of earlier attempts)."""
    events: dict[str, Any] = {}
    timings: dict[str, float] = {}
    history: list[str] = []
    done_key = reader.input_done_key(party.id)
    if party.has("input") and done_key in view.keys:
        events["shared"] = view.headers[done_key].get("created_at")
        seconds = (view.payloads.get(done_key) or {}).get("seconds")
        if isinstance(seconds, (int, float)):
            timings["share"] = seconds
    for payload, header in _statuses(reader, party.id, present, errors):
        stage = str(payload.get("stage") or "")
        attempt = payload.get("attempt", header.get("attempt"))
        if newest is not None and isinstance(attempt, int) and attempt < newest and stage != "revealed":
            history.append(f"{stage} in attempt {attempt}")
            continue  # a stage of an earlier attempt: history, not the current state
        events[stage] = header.get("created_at")
        if isinstance(payload.get("seconds"), dict):
            timings.update(payload["seconds"])
    return events, timings, history


def _abort_of(party, events: dict[str, Any], attempts: _Attempts) -> dict | None:
    """The party's abort of the newest attempt, or its withdrawal if it did not share since."""
    abort = attempts.given_up.get(party.id)
    if abort is None and party.id in attempts.withdrawals and "shared" not in events:
        abort = attempts.withdrawals[party.id]  # withdrew its input and did not share since
    return abort


def _state(events: dict[str, Any], abort: dict | None, errors_of: list[str]) -> str:
    reached = [s for s in STATES if s in events]
    state = "aborted" if abort else (reached[-1] if reached else "waiting")
    return "invalid" if errors_of and state == "waiting" else state


def _in_order(events: dict[str, Any]) -> dict[str, Any]:
    """The events in the order of the states, then any others by name."""
    order = [*STATES[1:], "aborted"]
    return {k: events[k] for k in [*order, *sorted(set(events) - set(order))] if k in events}


def _party(
    reader: RunReader,
    party,
    view: Verified,
    present: set[str],
    attempts: _Attempts,
    errors: list[dict],
    me: str,
) -> dict:
    """One party's state, events, timings and notes."""
    first_error = len(errors)
    events, timings, history = _progress(reader, party, view, present, attempts.newest, errors)
    done_key = reader.input_done_key(party.id)
    errors_of = [reason for key, reason in view.invalid.items() if key == done_key]
    errors_of += [e["error"] for e in errors[first_error:]]
    abort = _abort_of(party, events, attempts)
    if abort is not None:
        events["aborted"] = abort["at"]
    state, target, roster = _state(events, abort, errors_of), final_state(party.roles), attempts.roster
    return {
        "id": party.id,
        "roles": list(party.roles),
        "state": state,
        "final_state": target,
        "done": state in STATES and STATES.index(state) >= STATES.index(target),
        "events": _in_order(events),
        "timings": timings or None,
        "abort_reason": abort["reason"] if abort else None,
        "abort_scope": (f"attempt {abort['attempt']}" if abort["scope"] == "attempt" else abort["scope"])
        if abort
        else None,
        "history": history,
        "in_roster": (party.id in roster["parties"]) if roster and party.has("input") else None,
        "errors": errors_of,
        "me": party.id == me,
    }


def _status(spec: FederationSpec, parties: list[dict], stopped: list, first: float | None, now: float) -> str:
    recipients = [p for p in parties if "recipient" in p["roles"]]
    if recipients and all(p["state"] == "revealed" for p in recipients):
        return "finished"
    if stopped:
        return "aborted"
    if first is None:
        return "not started"
    return "stalled" if now - first > sum(spec.deadlines.values()) else "running"  # stalled: past every deadline


def _verified(reader: RunReader, present: set[str]) -> tuple[Verified, list[dict]]:
    """The run's deciding records, verified, and an error for each that does not verify."""
    described = {k: d for k in present if (d := reader.describe(k)) is not None}
    view = reader.verified({k for k, d in described.items() if d.kind in _DECIDING})
    errors = [
        {"party": described[k].party, "key": k, "error": e, "on_party": described[k].kind == "input-done"}
        for k, e in view.invalid.items()
    ]
    return view, errors


def _span(parties: list[dict], attempts: _Attempts) -> tuple[float | None, float | None]:
    """The first and the last time stamp of the run's records (None, None before any)."""
    stamps = [t for p in parties for t in p["events"].values() if isinstance(t, (int, float))]
    stamps += [r["at"] for r in attempts.rosters.values() if isinstance(r["at"], (int, float))]
    stamps += [a["at"] for a in attempts.aborts if isinstance(a["at"], (int, float))]
    return (min(stamps), max(stamps)) if stamps else (None, None)


def _run_header(spec: FederationSpec, run: str) -> dict:
    date = run_date(run)
    return {
        "computation": spec.computation,
        "run": run,
        "logical_date": date.isoformat() if date else None,
        "spec_hash": spec.spec_hash,
        "threshold": spec.threshold,
        "leader": spec.leader.id,
    }


def _clock(status: str, first: float | None, last: float | None, now: float) -> dict:
    elapsed = round((now if status == "running" else last or now) - first, 1) if first is not None else None
    return {"first_at": first, "last_at": last, "elapsed": elapsed}


def _viewer(spec: FederationSpec, me_id: str, result: dict | None) -> dict:
    """The viewing party, and its result if it is a recipient."""
    me = next((p for p in spec.parties if p.id == me_id), None)
    recipient = bool(me and me.has("recipient"))
    return {"me": me_id, "recipient": recipient, "result": result if recipient else None}


def run_overview(
    spec: FederationSpec,
    store: Any,
    viewer: str | None,
    run: str,
    *,
    result: dict | None = None,
    present: set[str] | None = None,
    now: float | None = None,
) -> dict:
    """Every party's state in one run, from verified records, and this party's result if it is a
    recipient.

    :param store: a CoordinationStore (anything with ``get`` and ``list``).
    :param viewer: this party's id (verification needs the spec's public keys only).
    :param run: the run key (``layout.run_key`` of the logical date).
    :param result: this party's revealed result record for the run (the reveal task's XCom), if any.
    :param present: the run's keys if already listed (saves a listing).
    """
    now = time.time() if now is None else now
    me_id = viewer or spec.parties[0].id
    reader = RunReader(spec, run, store, viewer=me_id)
    if present is None:
        present = reader.present(patient=False)
    view, errors = _verified(reader, present)
    attempts = _attempts(reader, view)
    own_errors: list[dict] = []
    parties = [_party(reader, p, view, present, attempts, own_errors, me_id) for p in spec.parties]
    errors += [{**e, "on_party": True} for e in own_errors]
    first, last = _span(parties, attempts)
    stopped = attempts.stopped()
    status = _status(spec, parties, stopped, first, now)
    return {
        **_run_header(spec, run),
        "status": status,
        "attempt": attempts.newest,
        "roster": attempts.roster,
        "parties": parties,
        "aborts": stopped,
        "finished": status in ("finished", "stalled") or (status == "aborted" and now - (last or now) > QUIET_SECONDS),
        "withdrawals": list(attempts.withdrawals.values()),
        "errors": errors,
        **_clock(status, first, last, now),
        **_viewer(spec, me_id, result),
        "checked_at": now,
    }


def runs_in_bucket(spec: FederationSpec, store: Any) -> dict[str, set[str]]:
    """{run key: its object keys} of a computation, from one listing."""
    root = f"{spec.prefix}/{spec.computation}/"
    by_run: dict[str, set[str]] = {}
    for key in store.list(root):
        run = key[len(root) :].split("/", 1)[0]
        if run_date(run) is not None:
            by_run.setdefault(run, set()).add(key)
    return by_run


def list_runs(
    spec: FederationSpec,
    store: Any,
    viewer: str | None = None,
    *,
    results: dict | None = None,
    limit: int = 20,
    cache: dict | None = None,
    now: float | None = None,
) -> list[dict]:
    """The newest ``limit`` runs of a computation in the bucket, newest first, each with its
    overview. With ``cache`` (a dict the caller keeps) a finished run whose objects did not
    change is not read again.

    :param results: this party's revealed result records by run key.
    """
    results = results or {}
    by_run = runs_in_bucket(spec, store)
    overviews = []
    for run in sorted(by_run, reverse=True)[:limit]:
        signature = (spec.spec_hash, frozenset(by_run[run]), json.dumps(results.get(run), sort_keys=True))
        cached = cache.get((spec.computation, run)) if cache is not None else None
        if cached is not None and cached[0] == signature and cached[1]["finished"]:
            overviews.append(cached[1])
            continue
        overview = run_overview(spec, store, viewer, run, result=results.get(run), present=by_run[run], now=now)
        if cache is not None:
            cache[(spec.computation, run)] = (signature, overview)
        overviews.append(overview)
    return overviews
