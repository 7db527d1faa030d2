"""Where every party of a run stands, from the signed coordination records: the UI's data.

Read-only, with public keys only: every record shown is fetched once and verified with
``RunReader.read`` (signature against the writer's key in the spec, run, kind, attempt, spec and
program hashes); no private key is loaded, the viewer is named by its party id. A record
that does not verify is reported as an error on that party, never shown as progress. The only
thing read from this party's own disk is its result record, and only if it is a recipient.

States of a party in a run, in order (see the object layout in ``layout.py``/``channel.py``):

    waiting     nothing published yet
    shared      inputs/<p>/done                the input party's shares are all uploaded
    computing   status/<p>/computing           roster fixed, the MPyC process is starting ("ready")
    computed    status/<p>/computed            output shares published (with timings)
    revealed    status/<p>/revealed            the recipient reconstructed the result
    aborted     abort/<p>/...                  the party withdrew its input, or gave up the run's
                                               newest MPC attempt (with its signed reason)

Rosters are ``roster/<leader>/attempt-<n>``; the newest attempt counts, and stage records of an
older attempt are history. Any record kind may gain an ``attempt-<n>`` segment without
breaking this module: the attempt is taken from the record's signed header.
"""

from __future__ import annotations

import json
import os
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mpc_federation.channel import RunReader
from mpc_federation.envelope import IntegrityError
from mpc_federation.spec import FederationSpec

from mpc_federation.layout import run_key

STATES = ("waiting", "shared", "computing", "computed", "revealed")
RUN_KEY_FORMAT = "%Y%m%dT%H%M%SZ"
QUIET_SECONDS = 300  # an aborted run with no new record for this long is over (no retry coming)
_RUN_KEY = re.compile(r"^\d{8}T\d{6}Z$")
_ATTEMPT = re.compile(r"(?:^|/)attempt-(\d+)(?:/|$)")

__all__ = ["run_overview", "list_runs", "run_date", "run_key", "final_state", "party_settings", "party_specs"]


def run_date(run: str) -> datetime | None:
    """The logical date a run key names (``run_key`` backwards), or None."""
    try:
        return datetime.strptime(run, RUN_KEY_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def final_state(roles: tuple[str, ...] | list[str]) -> str:
    """The state a party with these roles reaches when its part of a run is done."""
    if "recipient" in roles:
        return "revealed"
    if "compute" in roles:
        return "computed"
    return "shared"


class _FetchOnce:
    """The store as the channel sees it, remembering every object it fetched: each record is
    downloaded once, and its signed header (time, attempt) is read from the very bytes that
    ``RunReader.read`` verified."""

    def __init__(self, store: Any):
        self._store = store
        self.blobs: dict[str, bytes | None] = {}

    def get(self, key: str) -> bytes | None:
        if key not in self.blobs:
            self.blobs[key] = self._store.get(key)
        return self.blobs[key]

    def list(self, prefix: str, **kwargs: Any) -> list[str]:
        return self._store.list(prefix, **kwargs)

    def header(self, key: str) -> dict:
        try:
            header = json.loads(self.blobs.get(key) or b"{}").get("header", {})
        except (ValueError, AttributeError):
            return {}
        return header if isinstance(header, dict) else {}


def _viewer(spec: FederationSpec, viewer: Any) -> str:
    """The viewing party's id. Verifying needs the spec's public keys only: given a key object
    (older callers), only its party id is used."""
    party = getattr(viewer, "party", viewer)
    return str(party) if party else spec.parties[0].id


def _party_dir(channel: RunReader, names: tuple[str, ...], party: str, fallback: str) -> str:
    """The folder of a party's records of one kind, from the channel's key functions."""
    for name in names:
        key_of = getattr(channel, name, None)
        if key_of is None:
            continue
        try:
            key = key_of(party, 0) if name.startswith("attempt") else key_of(party)
        except TypeError:
            continue
        return key.rsplit("/", 1)[0] + "/"
    return f"{channel.root}/{fallback}/{party}/"


def _attempt_of(key: str, header: dict) -> int:
    attempt = header.get("attempt")
    if isinstance(attempt, int) and not isinstance(attempt, bool):
        return attempt
    match = _ATTEMPT.search(key)
    return int(match.group(1)) if match else 0


def run_overview(spec: FederationSpec, store: Any, viewer: str | None, run: str,
                 work_dir: str | Path | None = None, *, present: set[str] | None = None,
                 now: float | None = None) -> dict:
    """Every party's state in one run, from verified records, and this party's result if it is a
    recipient.

    :param store: a CoordinationStore (anything with ``get`` and ``list``).
    :param viewer: this party's id (verification needs the spec's public keys only).
    :param run: the run key (``run_key`` of the logical date).
    :param work_dir: this party's MPC_WORK_DIR, where ``reveal`` writes result records.
    :param present: the run's keys if already listed (saves a listing).
    """
    now = time.time() if now is None else now
    fetch = _FetchOnce(store)
    me_id = _viewer(spec, viewer)
    channel = RunReader(spec, run, fetch, viewer=me_id)
    if present is None:
        present = set(store.list(f"{channel.root}/"))
    errors: list[dict] = []

    def verified(key: str, kind: str, party: str) -> tuple[dict | None, dict]:
        """(payload, signed header) of one record; (None, {}) if absent or not verifiable."""
        if fetch.get(key) is None:
            return None, {}
        attempt = _attempt_of(key, fetch.header(key))  # a hint only: the signature covers it
        try:
            payload = channel.read(key, kind, party, attempt=attempt)
        except IntegrityError as exc:
            errors.append({"party": party, "key": key, "error": str(exc)})
            return None, {}
        except (ValueError, TypeError) as exc:  # signed, but not the JSON payload we know
            errors.append({"party": party, "key": key, "error": f"unreadable record: {exc}"})
            return None, {}
        if not isinstance(payload, dict):
            errors.append({"party": party, "key": key, "error": "record payload is not an object"})
            return None, {}
        return payload, fetch.header(key)

    def below(folder: str) -> list[str]:
        return sorted(k for k in present if k.startswith(folder))

    # -- rosters (leader) and aborts (anyone), by attempt ----------------------------------------------
    roster_dir = channel.roster_key(0).rsplit("/", 1)[0] + "/"
    rosters: dict[int, dict] = {}
    for key in below(roster_dir):
        payload, header = verified(key, "roster", spec.leader.id)
        if payload is not None:
            attempt = _attempt_of(key, header)
            rosters[attempt] = {"leader": spec.leader.id, "attempt": attempt,
                                "parties": list(payload.get("roster", [])), "at": header.get("created_at"),
                                "left_out": dict(payload.get("left_out") or {}),
                                "nothing_to_release": payload.get("nothing_to_release")}
    aborts: dict[str, list[dict]] = {}
    for party in spec.parties:
        folder = _party_dir(channel, ("withdrawal_key", "abort_key", "attempt_abort_key"), party.id, "abort")
        for key in below(folder):
            payload, header = verified(key, "abort", party.id)
            if payload is None:
                continue
            scope = key[len(folder):]
            kind = "withdrawal" if scope == "inputs" else ("attempt" if _ATTEMPT.search(scope) else "run")
            aborts.setdefault(party.id, []).append({
                "party": party.id, "scope": kind, "attempt": _attempt_of(key, header) if kind == "attempt" else None,
                "reason": str(payload.get("reason", "(no reason recorded)")), "at": header.get("created_at")})
    attempt_numbers = set(rosters) | {a["attempt"] for rows in aborts.values() for a in rows if a["scope"] == "attempt"}
    newest = max(attempt_numbers) if attempt_numbers else None
    roster = rosters[max(rosters)] if rosters else None
    given_up = {p: a for p, rows in aborts.items() for a in rows if a["scope"] == "attempt" and a["attempt"] == newest}
    run_aborts = {p: a for p, rows in aborts.items() for a in rows if a["scope"] == "run"}

    # -- each party ------------------------------------------------------------------------------------
    parties = []
    for party in spec.parties:
        events: dict[str, float | None] = {}
        info: dict[str, Any] = {"timings": {}, "history": []}
        first_error = len(errors)
        if party.has("input"):
            payload, header = verified(channel.input_done_key(party.id), "input-done", party.id) \
                if channel.input_done_key(party.id) in present else (None, {})
            if payload is not None:
                events["shared"] = header.get("created_at")
                if isinstance(payload.get("seconds"), (int, float)):
                    info["timings"]["share"] = payload["seconds"]
        for key in below(channel.status_key(party.id, "")):
            payload, header = verified(key, "status", party.id)
            if payload is None:
                continue
            stage = str(payload.get("stage") or key.rsplit("/", 1)[-1])
            attempt = payload.get("attempt", _attempt_of(key, header))
            if newest is not None and isinstance(attempt, int) and attempt < newest and stage != "revealed":
                info["history"].append(f"{stage} in attempt {attempt}")
                continue  # a stage of an earlier attempt: history, not the current state
            events[stage] = header.get("created_at")
            if isinstance(payload.get("seconds"), dict):
                info["timings"].update(payload["seconds"])
        abort = run_aborts.get(party.id) or given_up.get(party.id)
        withdrawal = next((a for a in aborts.get(party.id, []) if a["scope"] == "withdrawal"), None)
        if abort is None and withdrawal is not None and "shared" not in events:
            abort = withdrawal  # withdrew its input and did not share since
        if abort is not None:
            events["aborted"] = abort["at"]
        reached = [s for s in STATES if s in events]
        state = "aborted" if abort else (reached[-1] if reached else "waiting")
        party_errors = [e["error"] for e in errors[first_error:]]
        if party_errors and state == "waiting":
            state = "invalid"
        target = final_state(party.roles)
        order = [*STATES[1:], "aborted"]
        parties.append({
            "id": party.id, "roles": list(party.roles), "state": state, "final_state": target,
            "done": state in STATES and STATES.index(state) >= STATES.index(target),
            "events": {k: events[k] for k in [*order, *sorted(set(events) - set(order))] if k in events},
            "timings": info["timings"] or None,
            "abort_reason": abort["reason"] if abort else None,
            "abort_scope": (f"attempt {abort['attempt']}" if abort["scope"] == "attempt" else abort["scope"])
            if abort else None,
            "history": info["history"],
            "in_roster": (party.id in roster["parties"]) if roster and party.has("input") else None,
            "errors": party_errors, "me": party.id == me_id,
        })

    # -- the run as a whole ------------------------------------------------------------------------------
    stamps = [t for p in parties for t in p["events"].values() if isinstance(t, (int, float))]
    stamps += [r["at"] for r in rosters.values() if isinstance(r["at"], (int, float))]
    stamps += [a["at"] for rows in aborts.values() for a in rows if isinstance(a["at"], (int, float))]
    first, last = (min(stamps), max(stamps)) if stamps else (None, None)
    recipients = [p for p in parties if "recipient" in p["roles"]]
    stopped = [{"party": p, "reason": a["reason"], "scope": a["scope"], "attempt": a["attempt"]}
               for p, a in {**given_up, **run_aborts}.items()]
    if recipients and all(p["state"] == "revealed" for p in recipients):
        status = "finished"
    elif stopped:
        status = "aborted"
    elif first is not None and now - first > sum(spec.deadlines.values()):
        status = "stalled"  # past every deadline: nobody is coming any more
    elif first is None:
        status = "not started"
    else:
        status = "running"
    finished = status in ("finished", "stalled") or (status == "aborted" and now - (last or now) > QUIET_SECONDS)
    date = run_date(run)
    me = next((p for p in spec.parties if p.id == me_id), None)
    return {
        "computation": spec.computation, "run": run, "logical_date": date.isoformat() if date else None,
        "spec_hash": spec.spec_hash, "threshold": spec.threshold, "leader": spec.leader.id,
        "status": status, "finished": finished, "attempt": newest,
        "roster": roster, "parties": parties, "aborts": stopped,
        "withdrawals": [a for rows in aborts.values() for a in rows if a["scope"] == "withdrawal"],
        "errors": errors, "first_at": first, "last_at": last,
        "elapsed": round((now if status == "running" else last) - first, 1) if first is not None else None,
        "me": me_id, "recipient": bool(me and me.has("recipient")),
        "result": _result(spec, run, work_dir) if me is not None and me.has("recipient") else None,
        "checked_at": now,
    }


def _result(spec: FederationSpec, run: str, work_dir: str | Path | None) -> dict | None:
    """This recipient's own result record (written by ``reveal``), if there is one for the run."""
    if work_dir is None:
        return None
    path = Path(work_dir) / spec.computation / run / "result.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("run") != run or record.get("computation") != spec.computation:
        return None
    return {"roster": record.get("roster"), "compute_parties": record.get("compute_parties"),
            "attempt": record.get("attempt"), "spec_hash": record.get("spec_hash"),
            "outputs": record.get("outputs", {}), "path": str(path)}


def list_runs(spec: FederationSpec, store: Any, viewer: str | None = None,
              work_dir: str | Path | None = None, *, limit: int = 20, cache: dict | None = None,
              now: float | None = None) -> list[dict]:
    """The newest ``limit`` runs of a computation in the bucket, newest first, each with its
    overview. One listing for the whole computation; with ``cache`` (a dict the caller keeps)
    a finished run whose objects did not change is not read again."""
    root = f"{spec.prefix}/{spec.computation}/"
    by_run: dict[str, set[str]] = {}
    for key in store.list(root):
        run = key[len(root):].split("/", 1)[0]
        if _RUN_KEY.match(run):
            by_run.setdefault(run, set()).add(key)
    overviews = []
    for run in sorted(by_run, reverse=True)[:limit]:
        present = by_run[run]
        signature = (spec.spec_hash, frozenset(present))
        cached = cache.get((spec.computation, run)) if cache is not None else None
        if cached is not None and cached[0] == signature and cached[1]["finished"]:
            overviews.append(cached[1])
            continue
        overview = run_overview(spec, store, viewer, run, work_dir, present=present, now=now)
        if cache is not None:
            cache[(spec.computation, run)] = (signature, overview)
        overviews.append(overview)
    return overviews


# -- this party's configuration (the same variables and defaults as mpc_federation.render) ----------------
def party_settings(env: dict[str, str] | None = None) -> dict[str, Any]:
    from mpc_federation.render import DEFAULT_SPEC_DIR

    env = os.environ if env is None else env
    airflow_home = Path(env.get("AIRFLOW_HOME") or Path.home() / "airflow")
    return {"party_id": env.get("MPC_PARTY_ID", "").strip(),
            "spec_dir": Path(env.get("MPC_SPEC_DIR") or DEFAULT_SPEC_DIR),
            "work_dir": Path(env.get("MPC_WORK_DIR") or airflow_home / "mpc-work")}


def party_specs(spec_dir: str | Path, party_id: str) -> dict[str, FederationSpec]:
    """{computation: spec} of every federation in ``spec_dir`` that ``party_id`` belongs to."""
    from mpc_federation.spec import load_spec

    specs = {}
    for path in sorted(Path(spec_dir).glob("*.yaml")):
        spec = load_spec(path)
        if party_id in {p.id for p in spec.parties}:
            specs[spec.computation] = spec
    return specs
