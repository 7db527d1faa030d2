"""The "MPC run" button on MPC tasks: opens the federation's view of the task's run (plugins/mpc_ui/)."""

from __future__ import annotations

from urllib.parse import quote

from airflow.sdk import BaseOperatorLink

UI_PREFIX = "/mpc"  # where the MPC runs app (plugins/mpc_ui/plugin.py) is mounted: defined here only


def run_page_path(dag_id: str, run_id: str) -> str:
    """Path of the page that resolves an Airflow DAG run to its federation run (by logical date)."""
    return f"{UI_PREFIX}/dag-run/{quote(dag_id, safe='')}/{quote(run_id, safe='')}"


def _base_url() -> str:
    try:
        from airflow.configuration import conf

        base = conf.get("api", "base_url", fallback="") or ""
    except Exception:  # noqa: BLE001 - a link without a base still works in the UI (same origin)
        base = ""
    return base.rstrip("/") if base.startswith(("http://", "https://", "/")) else ""


class MPCRunLink(BaseOperatorLink):
    """Link from an MPC task instance to every party's state in its run."""

    name = "MPC run"

    def get_link(self, operator, *, ti_key) -> str:
        return _base_url() + run_page_path(ti_key.dag_id, ti_key.run_id)
