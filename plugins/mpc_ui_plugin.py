"""Registers the MPC runs pages (plugins/mpc_ui/): Airflow loads plugins from top-level files here."""

from mpc_ui.plugin import MPCRunsPlugin  # noqa: F401
