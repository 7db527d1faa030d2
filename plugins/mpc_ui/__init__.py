"""The "MPC runs" pages of a party's Airflow (the Airflow layer; the protocol is mpc_federation).

    plugin.py    the AirflowPlugin: the app at ``mpc_operators.links.UI_PREFIX``, nav item and DAG-run tab
    app.py       routes, with Airflow's FastAPI security dependencies (login, DAG access)
    federations.py  this party's ``[mpc]`` settings, its federation specs and coordination stores
    data.py      every party's state in a run, from verified bucket records (public keys only)
    results.py   revealed results from the reveal task's XCom; the trend series and the CSV
    chart.py     the HHI trend chart's coordinates (server-side SVG)
    pages.py     Jinja2 templates (autoescaped) and their filters; templates/, static/

Airflow imports every .py file in the plugins folder as a top-level module, so this package is
listed in plugins/.airflowignore and registered by the one-line ``plugins/mpc_ui_plugin.py``.
"""
