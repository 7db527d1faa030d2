"""The MPC runs plugin without servers: its routes refuse requests without a valid Airflow login and
without access to the computation's DAG, serve the verified run data with one, escape everything
other parties wrote (abort reasons, errors), and read results from the reveal task's XCom in a real
Airflow metadata database (written by real DAG runs, ``dag.test``): the HHI trend chart and the CSV.
The browser test (test_ui_testbed.py) shows the same on real Airflow servers."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime

from conftest import REPO, TAXI_TEMPLATE

RUN = "20240401T000000Z"  # in the bucket; not revealed
NIGHTS = ["2024-03-29", "2024-03-30", "2024-03-31"]  # revealed (XCom), not in the bucket


def hhi_record(computation: str, night: str, values: list[float | None]) -> dict:
    """A result record as ``stages.reveal`` returns it (a suppressed cell is None)."""
    run = night.replace("-", "") + "T000000Z"
    exact = [None if v is None else f"{v:.2f}" for v in values]
    return {
        "computation": computation,
        "run": run,
        "attempt": 1,
        "program": "hhi",
        "roster": ["company_a", "company_b", "company_c"],
        "compute_parties": ["company_a", "company_b", "company_c"],
        "recipient": "regulator",
        "withheld": [],
        "outputs": {
            "hhi": {
                "decimals": 2,
                "labels": ["all", "2024-01", "2024-02"],
                "exact": exact,
                "value": [None if e is None else float(e) for e in exact],
                "withheld": [],
            }
        },
    }


TAXI = {NIGHTS[0]: [900.0, 1500.0, 2500.0], NIGHTS[1]: [950.0, None, 2600.0], NIGHTS[2]: [1010.5, 1700.25, 2400.0]}

DAG_FILE = textwrap.dedent("""
    from datetime import datetime
    from airflow.sdk import DAG, task

    for dag_id in ("taxi_hhi", "rideshare_hhi"):
        with DAG(dag_id, schedule=None, start_date=datetime(2024, 1, 1)) as dag:
            @task(task_id="reveal")
            def reveal(**context):
                return context["dag_run"].conf["record"]  # what MPCRevealOperator returns
            reveal()
        globals()[dag_id] = dag
""")

AUTH = textwrap.dedent("""
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

    class OneDagAuthManager(SimpleAuthManager):
        '''Simple auth manager, but the user "analyst" may not read the rideshare_hhi DAG.'''
        def is_authorized_dag(self, *, method, user, access_entity=None, details=None):
            if user.get_name() == "analyst" and details is not None and details.id == "rideshare_hhi":
                return False
            return super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)
""")

SCRIPT = textwrap.dedent("""
    import json, sys
    from datetime import datetime, timezone
    from fastapi.testclient import TestClient
    from airflow.api_fastapi.app import create_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils import db

    db.initdb()
    bag = DagBag(sys.argv[2])
    for dag_id, night, record in json.loads(sys.argv[3]):
        bag.dags[dag_id].test(logical_date=datetime.fromisoformat(night).replace(tzinfo=timezone.utc),
                              run_conf={"record": record})

    import mpc_ui_plugin
    from mpc_ui_plugin import MPCRunsPlugin
    from mpc_ui.app import app

    manager = create_auth_manager()
    manager.init()
    admin = manager.generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
    analyst = manager.generate_jwt(SimpleAuthManagerUser(username="analyst", role="viewer"))
    client = TestClient(app, base_url="http://testserver/mpc", root_path="/mpc")
    run = sys.argv[1]
    out = {"plugin": {"views": MPCRunsPlugin.external_views,
                      "apps": [(a["url_prefix"], a["name"]) for a in MPCRunsPlugin.fastapi_apps]}}
    paths = ("/", "/api/runs", f"/runs/taxi_hhi/{run}", f"/api/runs/taxi_hhi/{run}", "/runs/nope/" + run,
             "/results.csv", "/api/trend/taxi_hhi", "/api/runs/taxi_hhi/20240331T000000Z",
             f"/runs/rideshare_hhi/{run}", "/api/trend/rideshare_hhi", "/static/mpc.css")
    for name, headers in {
        "none": {"Accept": "application/json"},
        "html": {"Accept": "text/html"},
        "garbage": {"Authorization": "Bearer not-a-jwt"},
        "cookie": {"Cookie": "_token=" + admin},
        "bearer": {"Authorization": "Bearer " + admin},
        "analyst": {"Authorization": "Bearer " + analyst},
    }.items():
        for path in paths:
            r = client.get(path, headers=headers, follow_redirects=False)
            out[f"{name} {path}"] = {"status": r.status_code, "location": r.headers.get("location"), "body": r.text,
                                     "type": r.headers.get("content-type")}
    print("RESULT " + json.dumps(out))
""")


def second_computation(tmp_path, computation: str):
    """The taxi spec under another computation name (another DAG of the same parties)."""
    import yaml

    raw = yaml.safe_load(TAXI_TEMPLATE.read_text())
    raw["computation"] = computation
    raw["program"]["file"] = str((TAXI_TEMPLATE.parent / raw["program"]["file"]).resolve())
    raw["aggregation"]["job"] = str((TAXI_TEMPLATE.parent / raw["aggregation"]["job"]).resolve())
    path = tmp_path / "templates" / f"{computation}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_routes_need_a_login_and_escape_what_parties_wrote(federation, s3_server, tmp_path):
    from mpc_federation.channel import RunChannel
    from mpc_federation.store import CoordinationStore

    spec, keys = federation()
    other, _ = federation(template=second_computation(tmp_path, "rideshare_hhi"))
    assert spec.source.parent == other.source.parent
    store = CoordinationStore(s3_server.store_config(spec.bucket))
    a = RunChannel(spec, RUN, store, keys["company_a"])
    a.publish(a.input_done_key("company_a"), "input-done", "input", {"inputs": ["revenue_cents"]})
    c = RunChannel(spec, RUN, store, keys["company_c"])
    c.publish(c.withdrawal_key("company_c"), "abort", "input", {"reason": "<script>alert(1)</script> no data"})

    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "reveal_dags.py").write_text(DAG_FILE)
    (tmp_path / "one_dag_auth.py").write_text(AUTH)
    runs = [("taxi_hhi", night, hhi_record("taxi_hhi", night, values)) for night, values in TAXI.items()]
    runs.append(("rideshare_hhi", NIGHTS[2], hhi_record("rideshare_hhi", NIGHTS[2], [4000.0, 4100.0, 3900.0])))

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MPC_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(tmp_path / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), str(tmp_path)]),
            "AIRFLOW__CORE__AUTH_MANAGER": "one_dag_auth.OneDagAuthManager",
            "AIRFLOW__API_AUTH__JWT_SECRET": "test-secret-of-this-party-only-0123456789abcdef0123456789abcdef",
            "AIRFLOW__MPC__PARTY_ID": "regulator",
            "AIRFLOW__MPC__SPEC_DIR": str(spec.source.parent),
            "AIRFLOW_CONN_MPC_COORDINATION": json.dumps(s3_server.connection()),
        }
    )
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, RUN, str(dags), json.dumps(runs)],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:] + proc.stdout[-4000:]
    [line] = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    out = json.loads(line[len("RESULT ") :])

    assert out["plugin"]["apps"] == [["/mpc", "MPC runs"]]
    assert {v["destination"] for v in out["plugin"]["views"]} == {"nav", "dag_run"}
    for path in ("/", "/api/runs", f"/runs/taxi_hhi/{RUN}", f"/api/runs/taxi_hhi/{RUN}", "/results.csv"):
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
    assert out["bearer /runs/nope/" + RUN]["status"] == 404
    assert out["none /static/mpc.css"]["status"] == 200  # no data in the style sheet

    data = json.loads(out[f"bearer /api/runs/taxi_hhi/{RUN}"]["body"])
    assert {p["id"]: p["state"] for p in data["parties"]} == {
        "company_a": "shared",
        "company_b": "waiting",
        "company_c": "aborted",
        "regulator": "waiting",
    }
    assert data["me"] == "regulator" and data["result"] is None
    page = out[f"cookie /runs/taxi_hhi/{RUN}"]["body"]
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; no data" in page
    assert 'data-party="company_c" data-state="aborted"' in page
    assert 'data-live="1"' in page  # a live run refreshes itself
    index = out["cookie /"]["body"]
    assert f'href="/mpc/runs/taxi_hhi/{RUN}"' in index and "shared 1/3" in index

    # The result of a revealed night: the reveal task's XCom of that DAG run.
    revealed = json.loads(out["bearer /api/runs/taxi_hhi/20240331T000000Z"]["body"])
    assert revealed["result"]["outputs"]["hhi"]["exact"] == ["1010.50", "1700.25", "2400.00"]
    assert revealed["result"]["dag_run_id"].startswith("manual__")
    assert [r["state"] for r in revealed["local_runs"]] == ["success"]

    # The trend: a line per market over the nights (a suppressed cell is no point), on the three bands.
    trend = json.loads(out["bearer /api/trend/taxi_hhi"]["body"])["series"]
    assert trend == {
        "all": [
            ["2024-03-29T00:00:00+00:00", 900.0],
            ["2024-03-30T00:00:00+00:00", 950.0],
            ["2024-03-31T00:00:00+00:00", 1010.5],
        ],
        "2024-01": [["2024-03-29T00:00:00+00:00", 1500.0], ["2024-03-31T00:00:00+00:00", 1700.25]],
        "2024-02": [
            ["2024-03-29T00:00:00+00:00", 2500.0],
            ["2024-03-30T00:00:00+00:00", 2600.0],
            ["2024-03-31T00:00:00+00:00", 2400.0],
        ],
    }
    assert index.count('class="band band-') == 2 * 3  # taxi_hhi and rideshare_hhi: three bands each
    assert 'id="trend-taxi_hhi"' in index and index.count('<g class="market"') == 6
    for band in ("unconcentrated", "moderately concentrated", "highly concentrated"):
        assert f'data-band="{band}"' in index

    # The CSV: every revealed cell the user may read; a suppressed cell is empty.
    admin_csv = out["bearer /results.csv"]
    assert admin_csv["type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(admin_csv["body"])))
    assert list(rows[0]) == [
        "computation",
        "run",
        "logical_date",
        "dag_run_id",
        "attempt",
        "output",
        "label",
        "value",
        "exact",
    ]
    assert len(rows) == 4 * 3 and {r["computation"] for r in rows} == {"taxi_hhi", "rideshare_hhi"}
    taxi = {(r["run"], r["label"]): r for r in rows if r["computation"] == "taxi_hhi"}
    hidden = taxi["20240330T000000Z", "2024-01"]
    assert hidden["value"] == "" and hidden["exact"] == ""
    shown = taxi["20240331T000000Z", "all"]
    assert shown["exact"] == "1010.50" and float(shown["value"]) == 1010.5 and shown["output"] == "hhi"

    # A user without access to a DAG: its results, runs and trend are not shown, and its pages are refused.
    analyst_rows = list(csv.DictReader(io.StringIO(out["analyst /results.csv"]["body"])))
    assert len(analyst_rows) == 3 * 3 and {r["computation"] for r in analyst_rows} == {"taxi_hhi"}
    assert out[f"analyst /runs/rideshare_hhi/{RUN}"]["status"] == 403
    assert out["analyst /api/trend/rideshare_hhi"]["status"] == 403
    assert out["analyst /api/trend/taxi_hhi"]["status"] == 200
    assert list(json.loads(out["analyst /api/runs"]["body"])["computations"]) == ["taxi_hhi"]
    assert "rideshare_hhi" not in out["analyst /"]["body"] and 'id="trend-taxi_hhi"' in out["analyst /"]["body"]


def test_trend_series_and_bands_from_several_nights():
    from mpc_ui.chart import BANDS, trend_chart
    from mpc_ui.results import Revealed, csv_text, trend

    def revealed(computation: str, night: str, values: list[float | None]) -> Revealed:
        record = hhi_record(computation, night, values)
        date = datetime.fromisoformat(night).replace(tzinfo=UTC)
        return Revealed(computation, record["run"], date, f"scheduled__{night}", record)

    found = [revealed("taxi_hhi", night, values) for night, values in TAXI.items()]
    found.append(revealed("rideshare_hhi", NIGHTS[0], [5000.0, 5000.0, 5000.0]))
    series = trend(found, "taxi_hhi")
    assert sorted(series) == ["2024-01", "2024-02", "all"]
    assert [v for _, v in series["2024-01"]] == [1500.0, 1700.25]  # the suppressed night is left out
    assert [d.day for d, _ in series["all"]] == [29, 30, 31]

    chart = trend_chart(series)
    assert [b["name"] for b in chart.bands] == [name for name, _, _ in BANDS]
    by_name = {b["name"]: b for b in chart.bands}
    # Higher HHI is higher up: the highly-concentrated band sits above the moderate one, which sits above the rest.
    assert (
        by_name["highly concentrated"]["y"] < by_name["moderately concentrated"]["y"] < by_name["unconcentrated"]["y"]
    )
    assert (
        by_name["moderately concentrated"]["y"] + by_name["moderately concentrated"]["height"]
        == by_name["unconcentrated"]["y"]
    )
    lines = {line["market"]: line for line in chart.lines}
    assert len(lines["all"]["dots"]) == 3 and len(lines["2024-01"]["dots"]) == 2
    # A point above 1,800 lies in the highly-concentrated band, one below 1,000 in the unconcentrated band.
    high, low = lines["2024-02"]["dots"][0], lines["all"]["dots"][0]
    band = by_name["highly concentrated"]
    assert band["y"] <= high["y"] <= band["y"] + band["height"]
    band = by_name["unconcentrated"]
    assert band["y"] <= low["y"] <= band["y"] + band["height"]
    xs = [d["x"] for d in lines["all"]["dots"]]
    assert xs == sorted(xs) and len(set(xs)) == 3  # nights left to right

    text = csv_text(found)
    assert text.splitlines()[0] == "computation,run,logical_date,dag_run_id,attempt,output,label,value,exact"
    assert "taxi_hhi,20240330T000000Z,2024-03-30T00:00:00+00:00,scheduled__2024-03-30,1,hhi,2024-01,," in text
