"""The AirflowPlugin of the MPC runs pages: a FastAPI app in the API server, shown in the UI's
navigation and as a tab on every DAG run."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from mpc_operators.links import UI_PREFIX
from mpc_ui.app import app


class MPCRunsPlugin(AirflowPlugin):
    name = "mpc_runs"
    fastapi_apps = [{"app": app, "url_prefix": UI_PREFIX, "name": "MPC runs"}]  # noqa: RUF012
    external_views = [  # noqa: RUF012
        {"name": "MPC runs", "href": f"{UI_PREFIX}/", "destination": "nav", "url_route": "mpc-runs"},
        {
            "name": "MPC run",
            "href": f"{UI_PREFIX}/dag-run/{{DAG_ID}}/{{RUN_ID}}",
            "destination": "dag_run",
            "url_route": "mpc-run",
        },
    ]
