"""The MPC runs plugin without servers: its routes refuse requests without a valid Airflow login, serve
the verified run data with one, and escape everything other parties wrote (abort reasons, errors).
The browser test (test_ui_testbed.py) shows the same on real Airflow servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from conftest import REPO

SCRIPT = textwrap.dedent("""
    import json, sys
    from fastapi.testclient import TestClient
    from airflow.api_fastapi.app import create_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    import mpc_ui_plugin
    from mpc_ui_plugin import MPCRunsPlugin, app

    from airflow import settings
    from airflow.models.revoked_token import RevokedToken

    RevokedToken.__table__.create(settings.engine, checkfirst=True)  # the one table token checks read
    manager = create_auth_manager()
    manager.init()
    token = manager.generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
    client = TestClient(app, base_url="http://testserver/mpc", root_path="/mpc")
    run = sys.argv[1]
    out = {"plugin": {"views": MPCRunsPlugin.external_views,
                      "apps": [(a["url_prefix"], a["name"]) for a in MPCRunsPlugin.fastapi_apps]}}
    for name, headers in {
        "none": {"Accept": "application/json"},
        "html": {"Accept": "text/html"},
        "garbage": {"Authorization": "Bearer not-a-jwt"},
        "cookie": {"Cookie": "_token=" + token},
        "bearer": {"Authorization": "Bearer " + token},
    }.items():
        for path in ("/", "/api/runs", f"/runs/taxi_hhi/{run}", f"/api/runs/taxi_hhi/{run}", "/runs/nope/" + run):
            r = client.get(path, headers=headers, follow_redirects=False)
            out[f"{name} {path}"] = {"status": r.status_code, "location": r.headers.get("location"), "body": r.text}
    print(json.dumps(out))
""")


def test_routes_need_a_login_and_escape_what_parties_wrote(federation, s3_server, tmp_path):
    from mpc_federation.channel import RunChannel
    from mpc_federation.store import CoordinationStore

    spec, keys = federation()
    run = "20240401T000000Z"
    store = CoordinationStore(s3_server.store_config(spec.bucket))
    a = RunChannel(spec, run, store, keys["company_a"])
    a.publish(a.input_done_key("company_a"), "input-done", "input", {"inputs": ["revenue_cents"]})
    c = RunChannel(spec, run, store, keys["company_c"])
    c.publish(c.withdrawal_key("company_c"), "abort", "input", {"reason": "<script>alert(1)</script> no data"})

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MPC_"))}
    env.update({
        "AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"), "PYTHONPATH": str(REPO / "plugins"),
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__API_AUTH__JWT_SECRET": "test-secret-of-this-party-only-0123456789abcdef0123456789abcdef",
        "MPC_PARTY_ID": "regulator", "MPC_SPEC_DIR": str(spec.source.parent), "MPC_WORK_DIR": str(tmp_path / "work"),
        "AIRFLOW_CONN_MPC_COORDINATION": json.dumps(s3_server.connection()),
    })
    proc = subprocess.run([sys.executable, "-c", SCRIPT, run], env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])

    assert out["plugin"]["apps"] == [["/mpc", "MPC runs"]]
    assert {v["destination"] for v in out["plugin"]["views"]} == {"nav", "dag_run"}
    for path in ("/", "/api/runs", f"/runs/taxi_hhi/{run}", f"/api/runs/taxi_hhi/{run}"):
        for name in ("none", "garbage"):
            assert out[f"{name} {path}"]["status"] == 401, (name, path)
            assert "company_a" not in out[f"{name} {path}"]["body"]
        html = out[f"html {path}"]
        if "/api/" in path:
            assert html["status"] == 401
        else:
            assert html["status"] == 303 and html["location"].startswith("/auth/login?next="), html
        for name in ("cookie", "bearer"):
            assert out[f"{name} {path}"]["status"] == 200, (name, path, out[f"{name} {path}"]["body"][:500])
    assert out["bearer /runs/nope/" + run]["status"] == 404

    data = json.loads(out[f"bearer /api/runs/taxi_hhi/{run}"]["body"])
    assert {p["id"]: p["state"] for p in data["parties"]} == {
        "company_a": "shared", "company_b": "waiting", "company_c": "aborted", "regulator": "waiting"}
    assert data["me"] == "regulator" and data["result"] is None
    page = out[f"cookie /runs/taxi_hhi/{run}"]["body"]
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; no data" in page
    assert 'data-party="company_c" data-state="aborted"' in page
    assert 'data-live="1"' in page  # a live run refreshes itself
    index = out["cookie /"]["body"]
    assert f'href="/mpc/runs/taxi_hhi/{run}"' in index and "shared 1/3" in index
