"""The UI's data (mpc_ui.data) against the real local S3 server: every party's state from verified
records only (the viewer named by its id: public keys only), attempts, aborts and withdrawals, and
the result for recipients only (the record the reveal task returned as XCom; test_ui_plugin.py
reads it from a real Airflow metadata database)."""

from __future__ import annotations

import time

import pytest

from mpc_federation.channel import RunChannel
from mpc_federation.store import CoordinationStore
from mpc_ui.data import list_runs, run_date, run_overview

RUN = "20240401T000000Z"


@pytest.fixture
def fed(federation, s3_server):
    spec, keys = federation()
    store = CoordinationStore(s3_server.store_config(spec.bucket))

    def channel(party: str, run: str = RUN) -> RunChannel:
        return RunChannel(spec, run, store, keys[party])

    return spec, store, channel


def states(overview: dict) -> dict[str, str]:
    return {p["id"]: p["state"] for p in overview["parties"]}


def share(channel: RunChannel) -> None:
    channel.publish(
        channel.input_done_key(channel.me.id), "input-done", "input", {"inputs": ["revenue_cents"], "seconds": 0.5}
    )


def status(channel: RunChannel, stage: str, role: str, attempt: int = 1, **payload) -> None:
    channel.publish(
        channel.status_key(channel.me.id, stage),
        "status",
        role,
        {"stage": stage, "party": channel.me.id, "attempt": attempt, "at": time.time(), **payload},
    )


def roster(channel: RunChannel, parties: list[str], attempt: int = 1) -> None:
    channel.publish(channel.roster_key(attempt), "roster", "compute", {"roster": parties}, attempt=attempt)


def test_a_run_from_nothing_to_revealed(fed, monkeypatch):
    spec, store, channel = fed
    view = run_overview(spec, store, "regulator", RUN)
    assert view["status"] == "not started" and not view["finished"]
    assert set(states(view).values()) == {"waiting"}
    assert run_date(RUN).isoformat() == view["logical_date"] == "2024-04-01T00:00:00+00:00"

    companies = ["company_a", "company_b", "company_c"]
    for company in companies:
        share(channel(company))
    roster(channel("company_a"), companies)
    status(channel("company_a"), "computing", "compute", roster=companies)
    status(
        channel("company_b"),
        "computed",
        "compute",
        roster=companies,
        seconds={"connect": 0.4, "mpc": 1.25, "stage": 2.0},
    )
    view = run_overview(spec, store, "regulator", RUN)
    assert states(view) == {
        "company_a": "computing",
        "company_b": "computed",
        "company_c": "shared",
        "regulator": "waiting",
    }
    assert view["status"] == "running" and not view["finished"]
    assert view["roster"]["parties"] == companies and view["roster"]["attempt"] == 1
    b = next(p for p in view["parties"] if p["id"] == "company_b")
    assert b["timings"] == {"share": 0.5, "connect": 0.4, "mpc": 1.25, "stage": 2.0}
    assert b["done"] and b["in_roster"] and set(b["events"]) == {"shared", "computed"}
    assert view["recipient"] and view["result"] is None  # the regulator has not revealed yet

    for company in ("company_a", "company_c"):
        status(channel(company), "computed", "compute", roster=companies, seconds={"mpc": 1.0})
    status(channel("regulator"), "revealed", "recipient", roster=companies)
    record = {
        "computation": spec.computation,
        "run": RUN,
        "roster": companies,
        "compute_parties": companies,
        "outputs": {"hhi": {"decimals": 2, "labels": ["all"], "exact": ["3333.33"], "value": [3333.33]}},
    }
    view = run_overview(spec, store, "regulator", RUN, result=record)
    assert view["status"] == "finished" and view["finished"]
    assert all(p["done"] for p in view["parties"])
    assert view["result"]["outputs"]["hhi"]["exact"] == ["3333.33"]

    # A company sees every party's state too, but no result: it is not a recipient.
    company_view = run_overview(spec, store, "company_b", RUN, result=record)
    assert states(company_view) == states(view)
    assert not company_view["recipient"] and company_view["result"] is None
    # No private key is loaded or made: records verify against the spec's public keys.
    from mpc_federation.envelope import PartyKeys

    def no_private_keys(*args, **kwargs):
        raise AssertionError("the UI's data loaded or made private keys")

    monkeypatch.setattr(PartyKeys, "generate", classmethod(no_private_keys))
    monkeypatch.setattr(PartyKeys, "from_json", classmethod(no_private_keys))
    assert states(run_overview(spec, store, "regulator", RUN)) == states(view)


def test_records_that_do_not_verify_are_errors_not_progress(fed):
    spec, store, channel = fed
    share(channel("company_a"))
    # company_b writes a "done" record under company_c's key: signed by the wrong party.
    forger = channel("company_b")
    forger.publish(forger.input_done_key("company_c"), "input-done", "input", {"inputs": []})
    # ... and someone overwrites company_b's status record with garbage.
    store.put(channel("company_b").status_key("company_b", "computed"), b'{"format": "nonsense"}')
    view = run_overview(spec, store, "regulator", RUN)
    by_id = {p["id"]: p for p in view["parties"]}
    assert by_id["company_a"]["state"] == "shared"
    assert by_id["company_c"]["state"] == "invalid" and "shared" not in by_id["company_c"]["events"]
    assert by_id["company_b"]["state"] == "invalid"
    assert any("company_c" in e for e in by_id["company_c"]["errors"])
    assert len(view["errors"]) == 2


def test_a_given_up_attempt_aborts_the_run_until_a_new_attempt(fed):
    spec, store, channel = fed
    companies = ["company_a", "company_b", "company_c"]
    for company in companies:
        share(channel(company))
    roster(channel("company_a"), companies, attempt=1)
    status(channel("company_a"), "computing", "compute", attempt=1)
    b = channel("company_b")
    b.publish(
        b.attempt_abort_key("company_b", 1),
        "abort",
        "compute",
        {"reason": "MPyC process exited with code 1"},
        attempt=1,
    )
    view = run_overview(spec, store, "regulator", RUN)
    assert view["status"] == "aborted" and not view["finished"]  # a retry may still come
    by_id = {p["id"]: p for p in view["parties"]}
    assert by_id["company_b"]["state"] == "aborted"
    assert by_id["company_b"]["abort_reason"] == "MPyC process exited with code 1"
    assert by_id["company_b"]["abort_scope"] == "attempt 1"
    assert view["aborts"] == [
        {"party": "company_b", "reason": "MPyC process exited with code 1", "scope": "attempt", "attempt": 1}
    ]
    # Long quiet after an abort: the run is over and the page stops refreshing.
    assert run_overview(spec, store, "regulator", RUN, now=time.time() + 3600)["finished"]

    # The retry: attempt 2 is live; attempt 1's records are history.
    roster(channel("company_a"), companies, attempt=2)
    view = run_overview(spec, store, "regulator", RUN)
    assert view["status"] == "running" and view["attempt"] == 2
    by_id = {p["id"]: p for p in view["parties"]}
    assert by_id["company_b"]["state"] == "shared" and by_id["company_b"]["abort_reason"] is None
    assert by_id["company_a"]["state"] == "shared" and by_id["company_a"]["history"] == ["computing in attempt 1"]


def test_a_withdrawn_input_party_is_aborted_with_its_reason(fed):
    spec, store, channel = fed
    c = channel("company_c")
    c.publish(c.withdrawal_key("company_c"), "abort", "input", {"reason": "aggregate failed: no data"})
    share(channel("company_a"))
    view = run_overview(spec, store, "company_a", RUN)
    by_id = {p["id"]: p for p in view["parties"]}
    assert by_id["company_c"]["state"] == "aborted"
    assert by_id["company_c"]["abort_reason"] == "aggregate failed: no data"
    assert view["status"] == "running"  # the others may go ahead without it
    assert [w["party"] for w in view["withdrawals"]] == ["company_c"]
    share(c)  # shared after all: no longer withdrawn
    assert states(run_overview(spec, store, "company_a", RUN))["company_c"] == "shared"


def test_list_runs_newest_first_and_cached_when_finished(fed):
    spec, store, channel = fed
    old, new = "20240301T000000Z", "20240401T000000Z"
    share(channel("company_a", old))
    share(channel("company_b", new))
    status(channel("regulator", old), "revealed", "recipient")

    class Counting:
        def __init__(self, inner):
            self.inner, self.gets = inner, 0

        def get(self, key):
            self.gets += 1
            return self.inner.get(key)

        def list(self, prefix, **kw):
            return self.inner.list(prefix, **kw)

    counting, cache = Counting(store), {}
    runs = list_runs(spec, counting, "regulator", cache=cache)
    assert [r["run"] for r in runs] == [new, old]
    assert runs[1]["status"] == "finished" and runs[0]["status"] == "running"
    first = counting.gets
    again = list_runs(spec, counting, "regulator", cache=cache)
    assert [r["status"] for r in again] == ["running", "finished"]
    assert counting.gets - first == 1  # only the live run was read again
    assert list_runs(spec, store, "regulator", limit=1)[0]["run"] == new
