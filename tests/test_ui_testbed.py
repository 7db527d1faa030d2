"""The "MPC runs" page in a real browser, on real Airflow servers: the local testbed starts one
``airflow standalone`` per party (3 companies that share and compute, and a regulator) through
infra/scripts/bootstrap_party.sh; a run is triggered on all of them; headless Chromium logs in and
watches every party's state on the page during and after the run. Two more nights follow; the
runs page then draws the HHI of each market over the nights on the 2023 Merger Guidelines bands,
from the reveal tasks' XComs, and offers them as CSV. Requests without a login are refused.
Stopping the testbed leaves no process and no port behind.

Screenshots (ui-during.png, ui-after.png, ui-after-in-airflow.png, ui-trend.png) go to
$MPC_UI_SCREENSHOT_DIR if set, else to the test's temporary folder.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import testbed_state
import yaml
from conftest import REPO, TAXI_TEMPLATE, small_parties
from testbed_api import PartyAPI
from testbed_procs import alive, party_processes, read_pid
from ui_browser import Browser

DATE = "2024-04-01"
RUN = "20240401T000000Z"
MONTHS = "2024-01:2024-05"  # trips of five months: each night's three months before it have data
LATER = ["2024-05-01", "2024-06-01"]  # two more nights: each releases its one new month (and "all")
COMPANIES = ["company_a", "company_b", "company_c"]
PARTIES = [*COMPANIES, "regulator"]
TIMINGS: dict[str, float] = {}


def run_testbed(*args: str, timeout: float) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MPC_"))}
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "testbed.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO,
    )


def free_base_port(parties: int) -> int:
    """A base port whose UI and log-server ports are free on every party's loopback address."""
    for _ in range(100):
        base = random.randrange(20000, 40000, 10)
        if all(
            testbed_state.port_bindable(testbed_state.loopback_host(i, False), base + i + d)
            for i in range(parties)
            for d in (0, 1000, 2000)
        ):
            return base
    raise RuntimeError("no free base port")


def get(url: str, headers: dict | None = None) -> tuple[int, str, str | None]:
    """(status, body, location) without following redirects."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=30) as response:
            return response.status, response.read().decode(), response.headers.get("location")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace"), exc.headers.get("location")


@pytest.fixture(scope="module")
def testbed(tmp_path_factory):
    work = tmp_path_factory.mktemp("ui-testbed")
    raw = yaml.safe_load(TAXI_TEMPLATE.read_text())
    raw["program"]["file"] = str((TAXI_TEMPLATE.parent / raw["program"]["file"]).resolve())
    raw["aggregation"]["job"] = str((TAXI_TEMPLATE.parent / raw["aggregation"]["job"]).resolve())
    raw["parties"] = small_parties(inputs=3, computes=3)
    template = work / "taxi_hhi.yaml"
    template.write_text(yaml.safe_dump(raw, sort_keys=False))
    root = work / "testbed"
    t0 = time.monotonic()
    started = run_testbed(
        "start",
        "--spec",
        str(template),
        "--root",
        str(root),
        "--trips",
        "6000",
        "--months",
        MONTHS,
        "--base-port",
        str(free_base_port(len(PARTIES))),
        timeout=900,
    )
    TIMINGS["start"] = time.monotonic() - t0
    shots = Path(os.environ.get("MPC_UI_SCREENSHOT_DIR") or work / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    try:
        assert started.returncode == 0, started.stdout[-5000:] + started.stderr[-5000:]
        state = json.loads((root / "testbed.json").read_text())
        yield {
            "root": root,
            "state": state,
            "out": started.stdout,
            "shots": shots,
            "parties": {p["id"]: p for p in state["parties"]},
        }
    finally:
        if (root / "testbed.json").exists():  # whatever happened: leave nothing running
            run_testbed("stop", "--root", str(root), timeout=300)
        print(f"\nUI testbed timings (s): {json.dumps({k: round(v, 1) for k, v in TIMINGS.items()})}")


def password(entry: dict) -> str:
    return PartyAPI(entry).password()


def test_start_prints_every_party_ui_and_login(testbed):
    parties = testbed["parties"]
    assert sorted(parties) == sorted(PARTIES)
    hosts = {p["host"] for p in parties.values()}
    if sys.platform.startswith("linux"):
        assert len(hosts) == len(PARTIES), "each party has its own loopback address (cookies are per host)"
    for pid, entry in parties.items():
        assert re.search(
            rf"^{pid}\s+\S+\s+{re.escape(entry['url'])}\s+admin / {re.escape(password(entry))}$",
            testbed["out"],
            flags=re.M,
        ), testbed["out"]
        assert PartyAPI(entry).healthy()
        # Started through the shared bootstrap script: its party.env, its pid file.
        home = Path(entry["airflow_home"])
        assert (home / "party.env").stat().st_mode & 0o777 == 0o600
        assert f"AIRFLOW__MPC__PARTY_ID={pid}" in (home / "party.env").read_text()
        assert read_pid(home / "airflow.pid") == entry["pid"]
    # Every party has its own identity: its own key pair in the spec, its own JWT secret.
    secrets = {
        (Path(e["airflow_home"]) / "airflow.cfg").read_text().split("jwt_secret = ")[1].split()[0]
        for e in parties.values()
    }
    assert len(secrets) == len(PARTIES)


def test_requests_without_login_are_refused(testbed):
    regulator = testbed["parties"]["regulator"]
    url = regulator["url"]
    for path in (
        "/mpc/",
        f"/mpc/runs/taxi_hhi/{RUN}",
        "/mpc/api/runs",
        f"/mpc/api/runs/taxi_hhi/{RUN}",
        "/mpc/dag-run/taxi_hhi/x",
    ):
        status, body, _ = get(url + path, {"Accept": "application/json"})
        assert status == 401, (path, status, body)
        assert "company_a" not in body
        status, _, location = get(url + path, {"Accept": "text/html", "Cookie": "_token=forged"})
        assert status in (303, 401), (path, status)
        if status == 303:
            assert "/auth/login" in location
    status, _, _ = get(url + "/mpc/api/runs", {"Authorization": "Bearer not-a-jwt"})
    assert status == 401
    # A token of another party's Airflow (another JWT secret) is refused too.
    other = PartyAPI(testbed["parties"]["company_a"]).token()
    assert get(url + "/mpc/api/runs", {"Authorization": f"Bearer {other}"})[0] == 401
    # ... and its own is accepted.
    own = PartyAPI(regulator).token()
    status, body, _ = get(url + "/mpc/api/runs", {"Authorization": f"Bearer {own}"})
    assert status == 200 and json.loads(body)["party"] == "regulator"
    with Browser() as browser:
        page = browser.page()
        page.goto(f"{url}/mpc/")
        page.wait_for_url(re.compile(r".*/auth/login.*"))
        assert "company_a" not in page.content()


def test_mpc_runs_page_during_and_after_a_run(testbed):
    parties, shots = testbed["parties"], testbed["shots"]
    regulator = parties["regulator"]
    t0 = time.monotonic()
    triggered = run_testbed("trigger", "--date", DATE, "--root", str(testbed["root"]), timeout=300)
    assert triggered.returncode == 0, triggered.stdout + triggered.stderr
    for pid in PARTIES:
        assert re.search(
            rf"^\s+{pid}\s+triggered taxi_hhi run \S+ \(logical date {DATE}T00:00:00Z\)$", triggered.stdout, flags=re.M
        ), triggered.stdout
    run_page = f"/mpc/runs/taxi_hhi/{RUN}"
    with Browser() as browser:
        page = browser.login(regulator["url"], "admin", password(regulator), next_path=run_page)
        assert page.url.endswith(run_page)
        rows = page.locator("#parties tr[data-party]")
        assert sorted(rows.evaluate_all("rs => rs.map(r => r.dataset.party)")) == sorted(PARTIES)
        # During the run: the page is live and refreshes itself (the test never reloads it) as
        # parties move on. The first party's progress and the end of the run can be a few seconds
        # apart, about one refresh, so the first refresh showing progress may show the end too.
        assert page.locator("#content").get_attribute("data-live") == "1"
        page.wait_for_function(
            """() => [...document.querySelectorAll('#parties tr[data-party]')]
                     .some(r => r.dataset.state !== 'waiting')""",
            timeout=420_000,
            polling=500,
        )
        seen = page.evaluate(
            """() => ({live: document.querySelector('#content').dataset.live,
                       finished: !!document.querySelector('#run-status .s-finished'),
                       states: Object.fromEntries([...document.querySelectorAll('#parties tr[data-party]')]
                                                  .map(r => [r.dataset.party, r.dataset.state]))})"""
        )
        during = seen["states"]
        if not seen["finished"]:  # caught in the middle: still live
            assert seen["live"] == "1", seen
            page.screenshot(path=str(shots / "ui-during.png"), full_page=True)
        TIMINGS["first_progress"] = time.monotonic() - t0
        assert set(during.values()) <= {"waiting", "shared", "computing", "computed", "revealed"}, during

        page.locator("#run-status .s-finished").wait_for(timeout=420_000)
        TIMINGS["run"] = time.monotonic() - t0
        after = dict(
            zip(
                rows.evaluate_all("rs => rs.map(r => r.dataset.party)"),
                rows.evaluate_all("rs => rs.map(r => r.dataset.state)"),
            )
        )
        assert after == {**{c: "computed" for c in COMPANIES}, "regulator": "revealed"}
        text = page.locator("#content").inner_text()
        assert f"{', '.join(COMPANIES)} (attempt 1, signed by company_a" in text  # the roster
        assert "mpc " in text and "connect " in text  # MPC timings of the compute parties
        result = page.locator("#result-hhi")
        assert result.locator("tr").count() == 5  # header + all, 2024-01, 2024-02, 2024-03
        # The HHI to the hundredth, never an exact fraction.
        assert "2024-03" in result.inner_text() and re.search(r"\b\d{3,5}\.\d\d\b", result.inner_text())
        assert not re.search(r"\d+/\d+", result.inner_text())
        assert page.locator("#content").get_attribute("data-live") == "0"  # stopped refreshing
        page.screenshot(path=str(shots / "ui-after.png"), full_page=True)
        # In Airflow's UI: the navigation item "MPC runs" lists the run, and opens its page.
        page.goto(f"{regulator['url']}/plugin/mpc-runs")
        frame = page.frame_locator("iframe")
        frame.locator("#runs a", has_text=DATE).click()
        frame.locator("#result-hhi").wait_for()
        page.screenshot(path=str(shots / "ui-after-in-airflow.png"))

        # The MPC tasks link to the page: the reveal task's extra link leads to this run.
        api = PartyAPI(regulator)
        code, runs = api.call("GET", "/dags/taxi_hhi/dagRuns?logical_date_gte=2024-04-01T00:00:00Z")
        assert code == 200, runs
        [dag_run] = [r for r in runs["dag_runs"] if r["logical_date"].startswith(DATE)]
        code, links = api.call("GET", f"/dags/taxi_hhi/dagRuns/{dag_run['dag_run_id']}/taskInstances/reveal/links")
        link = links.get("extra_links", {}).get("MPC run") if code == 200 else None
        assert link and link.startswith(f"{regulator['url']}/mpc/dag-run/taxi_hhi/"), links
        page.goto(link)
        page.wait_for_url(re.compile(rf".*{re.escape(run_page)}$"))

        # A company sees every party's state, and no result (it is not a recipient).
        company = parties["company_b"]
        other = browser.login(company["url"], "admin", password(company))
        other.goto(company["url"] + run_page)
        other.locator("#run-status .s-finished").wait_for()
        assert other.locator("#parties tr[data-party='company_b']").get_attribute("data-state") == "computed"
        assert other.locator("#result-hhi").count() == 0
        assert "not a recipient" in other.locator("#content").inner_text()

    # Every party's own DAG run succeeded.
    for pid in PARTIES:
        api = PartyAPI(parties[pid])
        deadline = time.monotonic() + 120
        while True:
            code, body = api.call("GET", "/dags/taxi_hhi/dagRuns?logical_date_gte=2024-04-01T00:00:00Z")
            states = [r["state"] for r in body["dag_runs"]]
            if states == ["success"] or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert states == ["success"], (pid, states)
    TIMINGS["all_success"] = time.monotonic() - t0


def test_trend_of_the_nights_and_their_csv(testbed):
    parties, shots = testbed["parties"], testbed["shots"]
    regulator = parties["regulator"]
    t0 = time.monotonic()
    for date in LATER:
        done = run_testbed("trigger", "--date", date, "--root", str(testbed["root"]), "--wait", "600", timeout=700)
        assert done.returncode == 0, done.stdout + done.stderr
    TIMINGS["later_nights"] = time.monotonic() - t0
    with Browser() as browser:
        page = browser.login(regulator["url"], "admin", password(regulator), next_path="/mpc/")
        chart = page.locator("svg#trend-taxi_hhi")
        chart.wait_for()
        bands = chart.locator("rect.band").evaluate_all("rs => rs.map(r => r.dataset.band)")
        assert bands == ["unconcentrated", "moderately concentrated", "highly concentrated"]
        markets = chart.locator("g.market")
        names = markets.evaluate_all("gs => gs.map(g => g.dataset.market)")
        assert sorted(names) == ["2024-01", "2024-02", "2024-03", "2024-04", "2024-05", "all"], names
        assert all(chart.locator(f"g.market[data-market='{m}'] polyline").count() == 1 for m in names)
        # "all" over the three nights; each month is released once (the ledger withholds it later).
        assert chart.locator("g.market[data-market='all'] circle").count() == 3
        assert chart.locator("g.market[data-market='2024-04'] circle").count() == 1
        box = chart.bounding_box()
        assert box and box["width"] > 400 and box["height"] > 200  # drawn, not collapsed
        chart.scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "ui-trend.png"), full_page=True)

        with page.expect_download() as download:
            page.locator("a#csv").click()
        rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
    assert {r["run"] for r in rows} == {RUN, "20240501T000000Z", "20240601T000000Z"}
    assert {r["computation"] for r in rows} == {"taxi_hhi"}
    assert {r["output"] for r in rows} == {"hhi", "suppressed"}  # every revealed output, the flags too
    may = {r["label"]: r for r in rows if r["run"] == "20240501T000000Z" and r["output"] == "hhi"}
    assert may["2024-04"]["exact"] and float(may["2024-04"]["value"]) > 0
    assert may["2024-02"]["exact"] == "" and may["2024-02"]["value"] == ""  # released on 2024-04-01: withheld


def test_status_reports_memory_and_the_federation(testbed):
    out = run_testbed("status", "--root", str(testbed["root"]), timeout=120)
    assert out.returncode == 0, out.stderr
    assert re.search(r"^all\s+\d+\s+\d+\s+\d+", out.stdout, flags=re.M), out.stdout
    assert f"run {RUN}: finished" in out.stdout
    for pid in PARTIES:
        assert re.search(rf"^{pid}\s+up\s+\d+", out.stdout, flags=re.M), out.stdout
    print(out.stdout)


def test_stop_leaves_no_process_and_no_port(testbed):
    root, state = testbed["root"], testbed["state"]
    pids = set()
    for entry in state["parties"]:
        pids |= party_processes(Path(entry["airflow_home"]), entry["pid"])
    pids.add(state["s3"]["pid"])
    assert len(pids) > 4 * len(PARTIES)  # standalone, scheduler, API server, DAG processor, triggerer, ...
    t0 = time.monotonic()
    stopped = run_testbed("stop", "--root", str(root), timeout=300)
    TIMINGS["stop"] = time.monotonic() - t0
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert "no process and no port left" in stopped.stdout
    assert not [pid for pid in pids if alive(pid)]
    for entry in state["parties"]:
        assert not party_processes(Path(entry["airflow_home"]))
        assert not (Path(entry["airflow_home"]) / "airflow.pid").exists()
        for port in entry["ports"]:
            assert not testbed_state.port_in_use(entry["host"], port), (entry["id"], port)
    assert not testbed_state.port_in_use("127.0.0.1", state["s3"]["port"])
