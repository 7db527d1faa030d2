"""The MPC runs app: FastAPI routes mounted at ``UI_PREFIX`` in the Airflow API server.

Airflow does not authenticate a plugin's app, so every route uses Airflow's own FastAPI security
dependencies: the user from the UI's ``_token`` cookie or a ``Bearer`` token (``get_user``),
``requires_access_dag`` for one computation's DAG (its id is the computation), and the readable
DAGs (``ReadableDagsFilterDep``/``ReadableXComFilterDep``) for the pages that span several.
Without a login, pages redirect to Airflow's login page and JSON answers 401; without access to
a DAG, 403.

Run states come from the verified bucket records (``data.py``), results from the reveal task's
XCom in the metadata database (``results.py``), HTML from Jinja2 templates (``pages.py``).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any
from urllib.parse import quote

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import (
    ReadableDagsFilterDep,
    ReadableXComFilterDep,
    auth_manager_from_app,
    bearer_scheme,
    get_user,
    requires_access_dag,
)
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.staticfiles import StaticFiles

from mpc_federation.layout import run_key
from mpc_ui import pages, results
from mpc_ui.chart import trend_chart
from mpc_ui.federations import FEDERATIONS

log = logging.getLogger(__name__)

RUNS_SHOWN = 20
TREND_OUTPUT = "hhi"

app = FastAPI(
    title="MPC runs",
    description="Every party's state in this party's federated MPC runs",
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
)
app.mount("/static", StaticFiles(directory=str(pages.STATIC)), name="static")


# -- authentication: Airflow's dependencies, with "not logged in" answered as a login --------------------------
class NotLoggedIn(Exception):
    def __init__(self, status: int, detail: str):
        self.status, self.detail = status, detail


async def _logged_in(
    request: Request, bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)] = None
):
    """Airflow's ``get_user``; a missing, expired or forged token is "not logged in" (never a 403)."""
    try:
        return await get_user(request, None, bearer)
    except HTTPException as exc:
        raise NotLoggedIn(exc.status_code, str(exc.detail)) from None


# Every Airflow dependency that asks for the user (requires_access_dag, the readable-DAG filters) gets it
# through _logged_in; the auth manager is the API server's (this app is mounted, its state is its own).
app.dependency_overrides[get_user] = _logged_in
app.dependency_overrides[auth_manager_from_app] = get_auth_manager

RUN_ACCESS = [Depends(requires_access_dag("GET", DagAccessEntity.RUN))]
RESULT_ACCESS = [*RUN_ACCESS, Depends(requires_access_dag("GET", DagAccessEntity.XCOM))]


@app.exception_handler(NotLoggedIn)
async def _not_logged_in(request: Request, exc: NotLoggedIn) -> Response:
    if "text/html" in request.headers.get("accept", "") and "/api/" not in request.url.path:
        return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)), status_code=303)
    return JSONResponse({"detail": exc.detail}, status_code=401, headers={"WWW-Authenticate": "Bearer"})


def _data():
    """The run data module: it imports the protocol's cryptography, so only when a page is served
    (the plugin is loaded by every Airflow process)."""
    from mpc_ui import data

    return data


# -- this party's data ------------------------------------------------------------------------------------------
def _spec_or_404(dag_id: str, run: str | None = None):
    if run is not None and _data().run_date(run) is None:
        raise HTTPException(404, f"{run!r} is not a run key (YYYYMMDDTHHMMSSZ)")
    FEDERATIONS.load()
    spec = FEDERATIONS.specs.get(dag_id)
    if spec is None:
        raise HTTPException(404, f"no federation {dag_id!r} for party {FEDERATIONS.party_id!r}")
    return spec


def _readable(permitted: Any) -> list:
    """This party's specs whose DAG the user may read."""
    FEDERATIONS.load()
    return [s for c, s in FEDERATIONS.specs.items() if c in (permitted.value or set())]


def _overview(spec, run: str, session) -> dict:
    found = results.by_run(results.revealed([spec.computation], session), spec.computation)
    return _data().run_overview(spec, FEDERATIONS.store(spec), FEDERATIONS.party_id, run, result=found.get(run))


def _runs(spec, found: list) -> list[dict]:
    return _data().list_runs(
        spec,
        FEDERATIONS.store(spec),
        FEDERATIONS.party_id,
        limit=RUNS_SHOWN,
        results=results.by_run(found, spec.computation),
        cache=FEDERATIONS.cache,
    )


def _local_runs(dag_id: str, run: str, session) -> list[dict]:
    """This party's own Airflow DAG runs for the federation run (same logical date)."""
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    rows = session.execute(
        select(DagRun.run_id, DagRun.state).where(DagRun.dag_id == dag_id, DagRun.logical_date == _data().run_date(run))
    ).all()
    return [{"run_id": r.run_id, "state": str(getattr(r.state, "value", r.state))} for r in rows]


def _base(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _html(request: Request, template: str, **context: Any) -> HTMLResponse:
    text = pages.render(template, base=_base(request), party=FEDERATIONS.party_id, **context)
    return HTMLResponse(text, headers={"Cache-Control": "no-store"})


def _section(spec, found: list) -> dict:
    series = results.trend(found, spec.computation, TREND_OUTPUT)
    section = {
        "spec": spec,
        "output": TREND_OUTPUT,
        "chart": trend_chart(series) if series else None,
        "runs": [],
        "error": None,
    }
    try:
        section["runs"] = _runs(spec, found)
    except Exception as exc:  # noqa: BLE001 - e.g. the bucket is unreachable: say so on the page
        section["error"] = f"{type(exc).__name__}: {exc}"
    return section


# -- routes -----------------------------------------------------------------------------------------------------
@app.get("/", response_class=HTMLResponse)
def index(request: Request, permitted: ReadableDagsFilterDep, session: SessionDep, partial: int = 0) -> HTMLResponse:
    specs = _readable(permitted)
    found = results.revealed([s.computation for s in specs], session)
    sections = [_section(spec, found) for spec in specs]
    live = any(not r["finished"] for s in sections for r in s["runs"])
    return _html(
        request,
        "index.html",
        title="MPC runs",
        heading=f"MPC runs of {FEDERATIONS.party_id}",
        sections=sections,
        error=FEDERATIONS.error,
        live=live,
        partial=bool(partial),
        idle_refresh=pages.IDLE_REFRESH_SECONDS,
    )


@app.get("/runs/{dag_id}/{run}", response_class=HTMLResponse, dependencies=RESULT_ACCESS)
def run_page(request: Request, dag_id: str, run: str, session: SessionDep, partial: int = 0) -> HTMLResponse:
    spec = _spec_or_404(dag_id, run)
    try:
        overview = _overview(spec, run, session)
    except Exception as exc:  # noqa: BLE001 - e.g. the bucket is unreachable: say so, and keep trying
        return _html(
            request,
            "run.html",
            title=f"{dag_id} · {run}",
            heading=f"{dag_id}: run {run}",
            spec=spec,
            error=f"{type(exc).__name__}: {exc}",
            live=True,
            partial=bool(partial),
        )
    return _html(
        request,
        "run.html",
        title=f"{dag_id} · {overview['logical_date'] or run}",
        heading=f"{dag_id}: run of {pages.logical_date(overview)}",
        spec=spec,
        data=overview,
        error=None,
        local=_local_runs(dag_id, run, session),
        live=not overview["finished"],
        partial=bool(partial),
    )


@app.get("/results.csv")
def results_csv(permitted: ReadableXComFilterDep, session: SessionDep) -> Response:
    """Every revealed result of the computations whose DAG the user may read, as CSV."""
    found = results.revealed([s.computation for s in _readable(permitted)], session)
    return Response(
        results.csv_text(found),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="mpc-results.csv"', "Cache-Control": "no-store"},
    )


@app.get("/api/runs")
def api_runs(permitted: ReadableDagsFilterDep, session: SessionDep) -> dict:
    specs = _readable(permitted)
    found = results.revealed([s.computation for s in specs], session)
    return {
        "party": FEDERATIONS.party_id,
        "error": FEDERATIONS.error,
        "computations": {s.computation: _runs(s, found) for s in specs},
    }


@app.get("/api/runs/{dag_id}/{run}", dependencies=RESULT_ACCESS)
def api_run(dag_id: str, run: str, session: SessionDep) -> dict:
    spec = _spec_or_404(dag_id, run)
    return {**_overview(spec, run, session), "local_runs": _local_runs(dag_id, run, session)}


@app.get("/api/trend/{dag_id}", dependencies=RESULT_ACCESS)
def api_trend(dag_id: str, session: SessionDep, output: str = TREND_OUTPUT) -> dict:
    """{market: [[logical date, value], ...]} of one output over the nights."""
    spec = _spec_or_404(dag_id)
    series = results.trend(results.revealed([spec.computation], session), spec.computation, output)
    return {
        "computation": dag_id,
        "output": output,
        "series": {m: [[d.isoformat(), v] for d, v in points] for m, points in series.items()},
    }


@app.get("/dag-run/{dag_id}/{run_id}", dependencies=RUN_ACCESS)
def from_dag_run(request: Request, dag_id: str, run_id: str, session: SessionDep) -> Response:
    """An Airflow DAG run (task link, DAG run tab) to its federation run: same logical date."""
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    _spec_or_404(dag_id)
    row = session.execute(
        select(DagRun.logical_date, DagRun.run_after).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
    ).first()
    if row is None:
        raise HTTPException(404, f"no DAG run {run_id!r} of {dag_id!r}")
    return RedirectResponse(
        f"{_base(request)}/runs/{quote(dag_id)}/{run_key(row.logical_date or row.run_after)}", status_code=303
    )
