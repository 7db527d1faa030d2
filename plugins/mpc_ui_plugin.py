"""Registers the MPC runs pages (plugins/mpc_ui/): Airflow loads plugins from top-level files here.

When the distribution airflow-mpc-federation is installed too, its ``airflow.plugins`` entry point
registers the same plugin; then this file registers nothing, so Airflow does not report the
second registration as a plugin import error.
"""

from importlib.metadata import entry_points

if not any(ep.value.startswith("mpc_ui.") for ep in entry_points(group="airflow.plugins")):
    from mpc_ui.plugin import MPCRunsPlugin  # noqa: F401
