"""The "MPC runs" page of this party's Airflow: where every party of the federation stands.

A FastAPI app mounted at /mpc in the Airflow API server (``fastapi_apps``), shown in the UI's
navigation and as a tab on every DAG run (``external_views``). Each page lists every party's
state in a run (shared, computing, computed, revealed, aborted), read from the signed
coordination records and verified against the spec's keys (``mpc_federation.monitor``), with
timings, the roster, abort reasons, and the result only where this party is a recipient.

Airflow does not authenticate a plugin's app: every route here requires the user's Airflow login
(the JWT the UI keeps in its ``_token`` cookie, or a ``Bearer`` token) and read access to the
computation's DAG runs. Without it, pages redirect to the login page and JSON answers 401.

Configuration is this party's deployment (``party.env``): MPC_PARTY_ID (which names the viewer),
MPC_SPEC_DIR, MPC_WORK_DIR and the connection ``mpc_coordination``. The UI process verifies with
the spec's public keys only: it never loads this party's private keys (``mpc_party_keys``).
"""

from __future__ import annotations

import html
import logging
import threading
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from airflow.plugins_manager import AirflowPlugin

log = logging.getLogger(__name__)

URL_PREFIX = "/mpc"
REFRESH_SECONDS = 5  # while a run is live
IDLE_REFRESH_SECONDS = 30  # the list of runs, while none is live: new runs may start
RUNS_SHOWN = 20

app = FastAPI(title="MPC runs", description="Every party's state in this party's federated MPC runs",
              docs_url=None, redoc_url=None, openapi_url=None)


# -- authentication and authorisation ------------------------------------------------------------------
class NotLoggedIn(Exception):
    def __init__(self, status: int, detail: str):
        self.status, self.detail = status, detail


async def current_user(request: Request):
    """The Airflow user of this request, validated exactly as the core API does (``get_user``)."""
    from fastapi.security import HTTPAuthorizationCredentials

    from airflow.api_fastapi.core_api.security import get_user

    credentials = None
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token:
        credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=token)
    try:
        return await get_user(request, None, credentials)
    except HTTPException as exc:
        raise NotLoggedIn(exc.status_code, str(exc.detail)) from None


def may_read(user: Any, computation: str) -> bool:
    """Whether the user may read the runs of this computation's DAG (its id is the computation)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    return get_auth_manager().is_authorized_dag(method="GET", access_entity=DagAccessEntity.RUN,
                                                details=DagDetails(id=computation), user=user)


@app.exception_handler(NotLoggedIn)
async def _not_logged_in(request: Request, exc: NotLoggedIn) -> Response:
    wants_html = "text/html" in request.headers.get("accept", "") and "/api/" not in request.url.path
    if wants_html:
        from airflow.api_fastapi.app import get_auth_manager

        return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)), status_code=303)
    return JSONResponse({"detail": exc.detail}, status_code=401, headers={"WWW-Authenticate": "Bearer"})


# -- this party's view of its federations ------------------------------------------------------------------
class Federations:
    """Specs and store of this party, loaded on first use and when a spec file changes (no keys:
    verifying needs the spec's public keys only)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self.specs: dict[str, Any] = {}
        self.error: str | None = None
        self._stores: dict[str, Any] = {}
        self.cache: dict = {}

    def load(self) -> None:
        from mpc_federation.monitor import party_settings, party_specs

        settings = party_settings()
        self.party_id, self.work_dir = settings["party_id"], settings["work_dir"]
        files = sorted(settings["spec_dir"].glob("*.yaml"))
        stamp = (self.party_id, str(settings["spec_dir"]), tuple((str(f), f.stat().st_mtime) for f in files))
        with self._lock:
            if stamp == self._stamp:
                return
            try:
                if not self.party_id:
                    raise ValueError("MPC_PARTY_ID is not set in this Airflow's environment")
                self.specs, self.error = party_specs(settings["spec_dir"], self.party_id), None
                if not self.specs:
                    self.error = f"party {self.party_id!r} is in no federation spec in {settings['spec_dir']}"
            except Exception as exc:  # noqa: BLE001 - shown on the page instead of a 500
                self.specs, self.error = {}, f"{type(exc).__name__}: {exc}"
            self._stores, self.cache, self._stamp = {}, {}, stamp

    def store(self, spec) -> Any:
        from mpc_federation.party import COORDINATION_CONN_ID
        from mpc_operators.hooks import CoordinationHook

        if spec.bucket not in self._stores:
            # A page answers at once: no riding out a bucket outage as the tasks do.
            self._stores[spec.bucket] = CoordinationHook(aws_conn_id=COORDINATION_CONN_ID).store(spec.bucket,
                                                                                                 quick=True)
        return self._stores[spec.bucket]


FEDERATIONS = Federations()


def _spec_or_404(computation: str, user: Any, run: str | None = None):
    from mpc_federation.monitor import run_date

    if run is not None and run_date(run) is None:
        raise HTTPException(404, f"{run!r} is not a run key (YYYYMMDDTHHMMSSZ)")
    FEDERATIONS.load()
    spec = FEDERATIONS.specs.get(computation)
    if spec is None:
        raise HTTPException(404, f"no federation {computation!r} for party {FEDERATIONS.party_id!r}")
    if not may_read(user, computation):
        raise HTTPException(403, f"you may not read the runs of {computation!r}")
    return spec


def overview(spec, run: str) -> dict:
    from mpc_federation.monitor import run_overview

    return run_overview(spec, FEDERATIONS.store(spec), FEDERATIONS.party_id, run, FEDERATIONS.work_dir)


def runs_of(spec) -> list[dict]:
    from mpc_federation.monitor import list_runs

    return list_runs(spec, FEDERATIONS.store(spec), FEDERATIONS.party_id, FEDERATIONS.work_dir,
                     limit=RUNS_SHOWN, cache=FEDERATIONS.cache)


def local_runs(computation: str, run: str) -> list[dict]:
    """This party's own Airflow DAG runs for the federation run (same logical date)."""
    from mpc_federation.monitor import run_date

    date = run_date(run)
    if date is None:
        return []
    try:
        from sqlalchemy import select

        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session

        with create_session() as session:
            rows = session.execute(select(DagRun.run_id, DagRun.state).where(
                DagRun.dag_id == computation, DagRun.logical_date == date)).all()
        return [{"run_id": r.run_id, "state": str(r.state.value if hasattr(r.state, "value") else r.state)}
                for r in rows]
    except Exception as exc:  # noqa: BLE001 - a detail of the page, not worth failing it
        log.warning("MPC runs page: could not read local DAG runs: %s", exc)
        return []


# -- routes ---------------------------------------------------------------------------------------------------
@app.get("/", response_class=HTMLResponse)
def index(request: Request, partial: int = 0, user=Depends(current_user)) -> HTMLResponse:
    FEDERATIONS.load()
    sections, live = [], False
    for computation, spec in FEDERATIONS.specs.items():
        if not may_read(user, computation):
            continue
        try:
            runs = runs_of(spec)
        except Exception as exc:  # noqa: BLE001 - e.g. the bucket is unreachable
            sections.append(_section_error(spec, exc))
            continue
        live |= any(not r["finished"] for r in runs)
        sections.append(_runs_table(request, spec, runs))
    if FEDERATIONS.error:
        sections.insert(0, f'<p class="error">{_e(FEDERATIONS.error)}</p>')
    body = "".join(sections) or "<p>No federation.</p>"
    return _page(request, "MPC runs", f"MPC runs of {FEDERATIONS.party_id}", body, live, partial,
                 idle_refresh=IDLE_REFRESH_SECONDS)


@app.get("/runs/{computation}/{run}", response_class=HTMLResponse)
def run_page(request: Request, computation: str, run: str, partial: int = 0,
             user=Depends(current_user)) -> HTMLResponse:
    spec = _spec_or_404(computation, user, run)
    try:
        data = overview(spec, run)
    except Exception as exc:  # noqa: BLE001 - e.g. the bucket is unreachable: say so, and keep trying
        return _page(request, f"{computation} · {run}", f"{computation}: run {run}", _section_error(spec, exc),
                     True, partial)
    body = _run_detail(request, spec, data, local_runs(computation, run))
    title = f"{computation} · {data['logical_date'] or run}"
    return _page(request, title, f"{computation}: run of {_date(data)}", body, not data["finished"], partial)


@app.get("/api/runs")
def api_runs(user=Depends(current_user)) -> dict:
    FEDERATIONS.load()
    return {"party": FEDERATIONS.party_id, "error": FEDERATIONS.error,
            "computations": {c: runs_of(s) for c, s in FEDERATIONS.specs.items() if may_read(user, c)}}


@app.get("/api/runs/{computation}/{run}")
def api_run(computation: str, run: str, user=Depends(current_user)) -> dict:
    spec = _spec_or_404(computation, user, run)
    return {**overview(spec, run), "local_runs": local_runs(computation, run)}


@app.get("/dag-run/{dag_id}/{run_id}")
def from_dag_run(request: Request, dag_id: str, run_id: str, user=Depends(current_user)) -> Response:
    """An Airflow DAG run (task link, DAG run tab) to its federation run: same logical date."""
    from sqlalchemy import select

    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    from mpc_federation.monitor import run_key

    _spec_or_404(dag_id, user)
    with create_session() as session:
        row = session.execute(select(DagRun.logical_date, DagRun.run_after).where(
            DagRun.dag_id == dag_id, DagRun.run_id == run_id)).first()
    if row is None:
        raise HTTPException(404, f"no DAG run {run_id!r} of {dag_id!r}")
    return RedirectResponse(f"{_base(request)}/runs/{quote(dag_id)}/{run_key(row.logical_date or row.run_after)}",
                            status_code=303)


# -- HTML (server-rendered; a small script swaps in fresh content while a run is live) ---------------------
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:16px 20px;color:#1f2328;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:22px 0 6px}
a{color:#0b57d0;text-decoration:none}a:hover{text-decoration:underline}
table{border-collapse:collapse;margin:6px 0 10px}th,td{border-bottom:1px solid #e3e6ea;padding:5px 10px;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.meta{color:#59636e;margin:2px 0}.muted{color:#8a939c}.error{color:#b3261e}.mono{font-family:ui-monospace,monospace;font-size:12px}
.state{display:inline-block;border-radius:10px;padding:1px 9px;font-size:12px;font-weight:600;border:1px solid transparent;white-space:nowrap}
.s-waiting{background:#eef0f2;color:#59636e}.s-shared{background:#ddeefe;color:#0a4b8c}
.s-computing{background:#fff3cd;color:#7a5200}.s-computed{background:#e1f0e4;color:#1e6b34}
.s-revealed{background:#1e6b34;color:#fff}.s-aborted,.s-invalid{background:#fbe0de;color:#8c1d18}
.s-running,.s-not-started{background:#fff3cd;color:#7a5200}.s-finished{background:#1e6b34;color:#fff}.s-stalled{background:#eef0f2;color:#59636e}
.s-success{background:#1e6b34;color:#fff}.s-failed{background:#fbe0de;color:#8c1d18}
.s-queued,.s-up_for_retry{background:#eef0f2;color:#59636e}
.chips .state{margin:1px 2px}.chips .nw{display:inline-block;margin-right:6px}span.nw{white-space:nowrap}th{white-space:nowrap}.live{color:#7a5200}td.t,td.nw{white-space:nowrap}
"""

_SCRIPT = """
(function(){
  function every(){
    var box = document.getElementById('content');
    return box ? 1000 * parseInt(box.getAttribute('data-refresh') || '0', 10) : 0;
  }
  function again(){
    var box = document.getElementById('content');
    if (!box || every() <= 0) return;
    var url = new URL(window.location.href); url.searchParams.set('partial', '1');
    fetch(url.toString(), {credentials: 'same-origin', headers: {'Accept': 'text/html'}})
      .then(function(r){ if (r.redirected || !r.ok) { window.location.reload(); return null; } return r.text(); })
      .then(function(text){
        if (text === null) return;
        var doc = new DOMParser().parseFromString(text, 'text/html');
        var fresh = doc.getElementById('content');
        if (fresh) box.replaceWith(fresh);
        if (every() > 0) setTimeout(again, every());
      })
      .catch(function(){ setTimeout(again, every() || 30000); });
  }
  if (every() > 0) setTimeout(again, every());
})();
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _base(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _page(request: Request, title: str, heading: str, body: str, live: bool, partial: int,
          idle_refresh: int = 0) -> HTMLResponse:
    """A page whose #content refreshes every REFRESH_SECONDS while ``live``, else every
    ``idle_refresh`` seconds (0: not at all)."""
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    refresh = REFRESH_SECONDS if live else idle_refresh
    if live:
        note = f'<span class="live">live: refreshes every {REFRESH_SECONDS} s</span>'
    elif idle_refresh:
        note = f'<span class="muted">no run in progress: looks for new runs every {idle_refresh} s</span>'
    else:
        note = '<span class="muted">run over: not refreshing</span>'
    content = (f'<div id="content" data-live="{1 if live else 0}" data-refresh="{refresh}"><p class="meta">'
               f'Party <b>{_e(FEDERATIONS.party_id)}</b> · checked {stamp} · {note} · '
               f'<a href="{_base(request)}/">all runs</a></p>{body}</div>')
    if partial:
        return HTMLResponse(f"<!doctype html><html><body>{content}</body></html>", headers={"Cache-Control": "no-store"})
    refresh = f'<noscript><meta http-equiv="refresh" content="{refresh}"></noscript>' if refresh else ""
    return HTMLResponse(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>{refresh}'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head>'
        f'<body><h1>{_e(heading)}</h1>{content}<script>{_SCRIPT}</script></body></html>',
        headers={"Cache-Control": "no-store"})


def _state(state: str, text: str | None = None) -> str:
    label = {"computing": "ready / computing"}.get(state, state) if text is None else text
    return f'<span class="state s-{_e(state.replace(" ", "-"))}">{_e(label)}</span>'


def _date(data: dict) -> str:
    """The run's logical date: '2024-04-01', or '2024-04-01 03:00 UTC' when not at midnight."""
    text = data.get("logical_date")
    if not text:
        return data["run"]
    date = datetime.fromisoformat(text).astimezone(timezone.utc)
    return date.strftime("%Y-%m-%d") if date.time() == datetime.min.time() else date.strftime("%Y-%m-%d %H:%M UTC")


def _progress(data: dict) -> str:
    """'shared 3/3 · computed 1/3 · revealed 0/1': how far each role has got."""
    parts = []
    for role, state in (("input", "shared"), ("compute", "computed"), ("recipient", "revealed")):
        members = [p for p in data["parties"] if role in p["roles"]]
        if members:
            reached = sum(1 for p in members if state in p["events"])
            parts.append(f"{state} {reached}/{len(members)}")
    return " · ".join(parts)


def _clock(epoch: Any) -> str:
    if not isinstance(epoch, (int, float)):
        return ""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%H:%M:%S")


def _seconds(value: Any) -> str:
    return f"{value:.1f} s" if isinstance(value, (int, float)) else ""


def _section_error(spec, exc: Exception) -> str:
    return (f'<h2>{_e(spec.computation)}</h2><p class="error">Cannot read the coordination bucket '
            f'{_e(spec.bucket)}: {_e(type(exc).__name__)}: {_e(exc)}</p>')


def _runs_table(request: Request, spec, runs: list[dict]) -> str:
    base = _base(request)
    head = (f'<h2>{_e(spec.computation)}</h2><p class="meta">{_e(spec.description)} · schedule '
            f'<span class="mono">{_e(spec.schedule)}</span> UTC · {len(spec.parties)} parties</p>')
    if not runs:
        return head + '<p class="muted">No run in the bucket yet.</p>'
    rows = []
    for r in runs:
        chips = "".join(f'<span class="nw" title="{_e(p["id"])}: {_e(p["state"])}">{_e(p["id"])} {_state(p["state"])}</span> '
                        for p in r["parties"])
        roster = ", ".join(r["roster"]["parties"]) if r["roster"] else ""
        rows.append(f'<tr><td><a href="{base}/runs/{quote(spec.computation)}/{quote(r["run"])}">{_e(_date(r))}</a></td>'
                    f'<td>{_state(r["status"])}</td><td class="nw">{_e(_progress(r))}</td><td class="chips">{chips}</td>'
                    f'<td>{_e(roster)}</td><td class="num">{_seconds(r["elapsed"])}</td></tr>')
    return (head + '<table id="runs"><tr><th>run (logical date)</th><th>status</th><th>progress</th><th>parties</th>'
            '<th>roster</th><th>elapsed</th></tr>' + "".join(rows) + "</table>")


def _run_detail(request: Request, spec, data: dict, local: list[dict]) -> str:
    out = []
    roster = data["roster"]
    roster_text = (f'{_e(", ".join(roster["parties"]))} <span class="muted">(attempt {roster["attempt"]}, signed by '
                   f'{_e(roster["leader"])} at {_clock(roster["at"])})</span>') if roster else '<span class="muted">not fixed yet</span>'
    out.append(f'<p>Status <span id="run-status">{_state(data["status"])}</span> · {_e(_progress(data))}'
               f' · elapsed {_seconds(data["elapsed"]) or "–"} · run key <span class="mono">{_e(data["run"])}</span></p>')
    out.append(f'<p>Roster: {roster_text}</p>')
    if roster and roster.get("nothing_to_release"):
        out.append(f'<p class="meta">Nothing to release in this run: {_e(roster["nothing_to_release"])}</p>')
    out.append(f'<p class="meta">Spec <span class="mono">{_e(data["spec_hash"][:16])}</span> · threshold '
               f't = {data["threshold"]} · leader {_e(data["leader"])}'
               + "".join(f' · this Airflow\'s DAG run <a target="_top" href="/dags/{quote(spec.computation)}/runs/'
                         f'{quote(r["run_id"], safe="")}">{_e(r["run_id"])}</a> {_state(r["state"])}' for r in local)
               + '</p>')
    first = data["first_at"]
    rows = []
    for p in data["parties"]:
        ev = p["events"]

        def at(stage: str) -> str:
            t = ev.get(stage)
            if t is None:
                return ""
            offset = f' <span class="muted">+{t - first:.1f} s</span>' if isinstance(t, (int, float)) and first else ""
            return f"{_clock(t)}{offset}"

        timings = p["timings"] or {}
        timing_text = " · ".join(f'<span class="nw">{_e(k)} {_seconds(v)}</span>' for k, v in timings.items())
        notes = []
        if p["abort_reason"]:
            notes.append(f'<span class="error">aborted ({_e(p["abort_scope"])}): {_e(p["abort_reason"])}</span>')
        if p["history"]:
            notes.append(f'<span class="muted">earlier: {_e("; ".join(p["history"]))}</span>')
        notes += [f'<span class="error">{_e(err)}</span>' for err in p["errors"]]
        left_out = ((roster or {}).get("left_out") or {}).get(p["id"])
        if p["in_roster"] is False and left_out:
            notes.append(f'<span class="muted">not on the roster: {_e(left_out)}</span>')
        elif p["in_roster"] is False:
            notes.append('<span class="error">not on the roster</span>')
        name = f'<b>{_e(p["id"])}</b>' + (' <span class="muted">(you)</span>' if p["me"] else "")
        done = "✓" if p["done"] else ""
        rows.append(f'<tr data-party="{_e(p["id"])}" data-state="{_e(p["state"])}"><td>{name}</td>'
                    f'<td class="nw">{_e(", ".join(p["roles"]))}</td><td class="nw">{_state(p["state"])} {done}</td>'
                    f'<td class="t">{at("shared")}</td><td class="t">{at("computing")}</td><td class="t">{at("computed")}</td>'
                    f'<td>{timing_text}</td><td class="t">{at("revealed")}</td><td>{"<br>".join(notes)}</td></tr>')
    out.append('<table id="parties"><tr><th>party</th><th>roles</th><th>state</th><th>shared</th>'
               '<th>computing</th><th>computed</th><th>timings</th><th>revealed</th><th>notes</th></tr>'
               + "".join(rows) + "</table>")
    for a in data["aborts"]:
        scope = f' (attempt {a["attempt"]})' if a["attempt"] is not None else ""
        out.append(f'<p class="error">Stopped by {_e(a["party"])}{_e(scope)}: {_e(a["reason"])}</p>')
    for w in data["withdrawals"]:
        out.append(f'<p class="error">{_e(w["party"])} withdrew its input: {_e(w["reason"])}</p>')
    orphan = [e for e in data["errors"] if e["party"] not in {p["id"] for p in data["parties"]}]
    for err in orphan:
        out.append(f'<p class="error">{_e(err["key"])}: {_e(err["error"])}</p>')
    out.append(_result_html(data))
    return "".join(out)


def _result_html(data: dict) -> str:
    if not data["recipient"]:
        return ('<h2>Result</h2><p class="muted">This party is not a recipient of this computation: '
                'the result is revealed to the recipients only.</p>')
    result = data["result"]
    if result is None:
        return '<h2>Result</h2><p class="muted">Not revealed to this party (yet).</p>'
    parts = [f'<h2>Result (revealed to {_e(data["me"])})</h2><p class="meta">roster: '
             f'{_e(", ".join(result["roster"] or []))} · from compute parties '
             f'{_e(", ".join(result["compute_parties"] or []))} · record <span class="mono">{_e(result["path"])}</span></p>']
    for name, output in result["outputs"].items():
        rows = "".join(
            f'<tr><td>{_e(label)}</td><td class="num">{_e("" if value is None else f"{value:,.2f}")}</td>'
            f'<td class="mono">{_e(exact)}</td></tr>'
            for label, value, exact in zip(output.get("labels", []), output.get("value", []), output.get("exact", [])))
        parts.append(f'<table id="result-{_e(name)}"><tr><th>{_e(name)}</th><th>value</th><th>exact</th></tr>{rows}</table>')
    return "".join(parts)


# -- the plugin ------------------------------------------------------------------------------------------------
class MPCRunsPlugin(AirflowPlugin):
    name = "mpc_runs"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "MPC runs"}]
    external_views = [
        {"name": "MPC runs", "href": f"{URL_PREFIX}/", "destination": "nav", "url_route": "mpc-runs"},
        {"name": "MPC run", "href": f"{URL_PREFIX}/dag-run/{{DAG_ID}}/{{RUN_ID}}", "destination": "dag_run",
         "url_route": "mpc-run"},
    ]
