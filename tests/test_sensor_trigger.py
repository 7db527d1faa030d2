"""The coordination trigger and sensor against the real local S3 API server, outside any running
Airflow: connections come from ``AIRFLOW_CONN_*`` environment variables, which the Task SDK's
``BaseHook.get_connection`` / ``aget_connection`` resolve without a task runner (Airflow 3.3)."""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import threading
import time
from datetime import UTC, datetime
from types import SimpleNamespace

import localnet
import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred
from conftest import small_parties

from mpc_federation import stages
from mpc_federation.party import PartyRun
from mpc_federation.store import CoordinationStore
from mpc_operators.hooks import COORDINATION_CONN_ID
from mpc_operators.keys import KEYS_CONN_ID
from sensors.coordination import MPCCoordinationSensor
from sensors.triggers import CoordinationTrigger

DATE = datetime(2024, 4, 15, 3, 0, tzinfo=UTC)
RUN = "20240415T030000Z"


@pytest.fixture
def fed(federation, s3_server, monkeypatch):
    """Factory: a federation whose connections are in the environment, as each party's Airflow has them.

    Returns (spec, runs, as_party): ``as_party(id)`` puts that party's keys in ``mpc_party_keys``.
    """
    monkeypatch.setenv(f"AIRFLOW_CONN_{COORDINATION_CONN_ID.upper()}", json.dumps(s3_server.connection()))
    monkeypatch.setenv("AIRFLOW__MPC__ALLOW_TEST_KEYS", "1")  # the fixtures' keys are marked test keys

    def make(inputs: int = 3, cutoff: int = 2, inputs_deadline: int = 2, result_deadline: int = 2):
        spec, keys = federation(
            parties=small_parties(inputs=inputs),
            overrides={
                "min_input_parties": 3,
                "deadlines": {
                    "cutoff": cutoff,
                    "inputs": inputs_deadline,
                    "connect": 300,
                    "mpc": 900,
                    "result": result_deadline,
                },
            },
        )

        def as_party(party_id: str) -> None:
            monkeypatch.setenv(
                f"AIRFLOW_CONN_{KEYS_CONN_ID.upper()}",
                json.dumps({"conn_type": "generic", "password": keys[party_id].to_json()}),
            )

        runs = {
            p.id: PartyRun(spec, p.id, DATE, keys[p.id], CoordinationStore(s3_server.store_config(spec.bucket)))
            for p in spec.parties
        }
        return spec, runs, as_party

    return make


def share(run: PartyRun) -> None:
    dims = run.spec.dimensions(run.logical_date)
    stages.share(
        run,
        {
            "format": "mpc-aggregate/1",
            "party": run.party_id,
            "dimensions": dims,
            "values": {"revenue_cents": [6, 1, 2, 3]},
        },
    )


def later(delay: float, fn, *args) -> threading.Thread:
    def go():
        time.sleep(delay)
        fn(*args)

    th = threading.Thread(target=go)
    th.start()
    return th


def trigger_for(
    spec,
    party: str,
    stage: str,
    *,
    deadline_in: float = 20,
    cutoff_in: float | None = None,
    conn_id: str = COORDINATION_CONN_ID,
    hand_over_when_near: bool = False,
) -> CoordinationTrigger:
    now = time.time()
    return CoordinationTrigger(
        spec_path=str(spec.source),
        party_id=party,
        run=RUN,
        stage=stage,
        coordination_conn_id=conn_id,
        deadline=now + deadline_in,
        cutoff=now + (deadline_in if cutoff_in is None else cutoff_in),
        poll_interval=0.2,
        hand_over_when_near=hand_over_when_near,
    )


def first_event(trigger: CoordinationTrigger, timeout: float = 30) -> dict:
    async def go():
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(asyncio.wait_for(go(), timeout))


def sensor(spec, party_id: str, stage: str, **kwargs) -> MPCCoordinationSensor:
    return MPCCoordinationSensor(
        task_id=f"wait_for_{stage}",
        spec_path=str(spec.source),
        party_id=party_id,
        stage=stage,
        poke_interval=0.2,
        **kwargs,
    )


CONTEXT = {"logical_date": DATE}
FIRST_TRY = {**CONTEXT, "ti": SimpleNamespace(try_number=1)}  # what an operator's execute reads of its try


# -- the trigger -------------------------------------------------------------------------------------
def test_trigger_serializes_to_plain_data():
    trigger = CoordinationTrigger(
        spec_path="/specs/taxi_hhi.yaml",
        party_id="company_b",
        run=RUN,
        stage="inputs",
        coordination_conn_id="conn",
        deadline=1712000000.5,
        cutoff=1711999000.0,
        poll_interval=2.0,
    )
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    cls = getattr(importlib.import_module(module), name)  # as the triggerer resolves it
    assert cls is CoordinationTrigger
    assert json.loads(json.dumps(kwargs)) == kwargs  # plain JSON data only
    again = cls(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    assert (
        kwargs.items()
        >= {
            "spec_path": "/specs/taxi_hhi.yaml",
            "party_id": "company_b",
            "run": RUN,
            "stage": "inputs",
            "coordination_conn_id": "conn",
            "deadline": 1712000000.5,
            "cutoff": 1711999000.0,
            "poll_interval": 2.0,
        }.items()
    )


def test_trigger_survives_airflow_trigger_row():
    """What the scheduler stores for a deferred task and the triggerer rebuilds the trigger from."""
    from airflow.models.trigger import Trigger

    trigger = CoordinationTrigger(
        spec_path="/s.yaml",
        party_id="regulator",
        run=RUN,
        stage="result",
        coordination_conn_id="conn",
        deadline=1712000000.5,
        cutoff=1712000000.5,
    )
    row = Trigger.from_object(trigger)
    assert row.classpath == "sensors.triggers.CoordinationTrigger"
    assert CoordinationTrigger(**row.kwargs).serialize() == trigger.serialize()


def test_trigger_ready_once_everyone_shared(fed):
    spec, runs, _ = fed()
    share(runs["company_a"])
    writer = later(0.6, lambda: (share(runs["company_b"]), share(runs["company_c"])))
    start = time.monotonic()
    assert first_event(trigger_for(spec, "company_b", "inputs")) == {"status": "ready", "left_out": []}
    assert time.monotonic() - start >= 0.5  # it did wait for the late parties
    writer.join()


def test_trigger_ready_once_the_roster_exists(fed):
    spec, runs, _ = fed(inputs=4)
    for c in ("company_a", "company_b", "company_c"):
        share(runs[c])
    writer = later(0.5, stages.fix_roster, runs["company_a"], 1, 5)
    assert first_event(trigger_for(spec, "company_c", "inputs"))["status"] == "ready"
    writer.join()


def test_trigger_timeout_names_missing_parties(fed):
    spec, runs, _ = fed()
    share(runs["company_b"])
    start = time.monotonic()
    event = first_event(trigger_for(spec, "company_b", "inputs", deadline_in=1.0))
    assert event == {"status": "timeout", "missing": ["company_a", "company_c"]}
    assert 0.8 <= time.monotonic() - start < 10


def test_trigger_leader_goes_ahead_after_the_cutoff(fed):
    spec, runs, _ = fed(inputs=4)
    for c in ("company_a", "company_b", "company_c"):
        share(runs[c])
    start = time.monotonic()
    event = first_event(trigger_for(spec, "company_a", "inputs", deadline_in=20, cutoff_in=1.0))
    assert event == {"status": "ready", "left_out": ["company_d"]}
    assert 0.8 <= time.monotonic() - start < 10
    # after its own cut-off a follower goes ahead too; the compute stage then waits for the roster
    event = first_event(trigger_for(spec, "company_b", "inputs", deadline_in=1.5, cutoff_in=0))
    assert event == {"status": "ready", "left_out": ["company_d"]}
    # before its cut-off it still waits for everyone, and times out naming the straggler
    event = first_event(trigger_for(spec, "company_b", "inputs", deadline_in=1.5, cutoff_in=60))
    assert event == {"status": "timeout", "missing": ["company_d"]}


def test_trigger_stopped_by_an_abort(fed):
    spec, runs, _ = fed()
    for c in ("company_a", "company_b", "company_c"):
        share(runs[c])
    stages.fix_roster(runs["company_a"], 1, 5)
    writer = later(0.4, stages.give_up, runs["company_b"].channel, 1, "disk on fire")
    start = time.monotonic()
    event = first_event(trigger_for(spec, "regulator", "result"))
    assert event["status"] == "stopped" and "company_b gave up MPC attempt 1" in event["reason"]
    assert time.monotonic() - start < 10  # well before the deadline
    writer.join()


def test_trigger_stopped_by_withdrawals_below_the_floor(fed):
    spec, runs, _ = fed()
    share(runs["company_a"])
    writer = later(0.4, stages.withdraw, runs["company_c"], "aggregation-failed", "aggregate")
    event = first_event(trigger_for(spec, "company_a", "inputs"))
    assert event["status"] == "stopped" and "company_c" in event["reason"] and "floor of 3" in event["reason"]
    writer.join()


def store_bucket(monkeypatch, bucket: str) -> None:
    """Change the bucket of the store the trigger builds from its connection."""
    from mpc_operators.hooks import CoordinationHook

    original = CoordinationHook.store
    monkeypatch.setattr(CoordinationHook, "store", lambda self, _bucket, **kw: original(self, bucket, **kw))


def test_trigger_survives_listing_errors(fed, monkeypatch):
    """A listing that fails (here: no such bucket) is retried until the deadline."""
    spec, runs, _ = fed()
    share(runs["company_a"])
    store_bucket(monkeypatch, "no-such-bucket-for-this-test")
    start = time.monotonic()
    event = first_event(trigger_for(spec, "company_a", "inputs", deadline_in=0.8))
    assert event["status"] == "timeout"
    assert time.monotonic() - start < 5


def test_trigger_keeps_its_deadline_while_the_bucket_is_unreachable(fed, monkeypatch):
    """Deadlines are absolute: an unreachable bucket must not hold the trigger past its deadline.

    The store's client rides out outages with botocore's retries (about two minutes); the trigger,
    which polls again anyway, lists with the store's quick client and must not wait inside one listing.
    """
    spec, _, _ = fed()
    dead = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"endpoint_url": f"http://127.0.0.1:{localnet.free_port()}", "region_name": "us-east-1"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_MPC_UNREACHABLE", json.dumps(dead))
    start = time.monotonic()
    event = first_event(trigger_for(spec, "company_a", "inputs", deadline_in=1.0, conn_id="mpc_unreachable"))
    elapsed = time.monotonic() - start
    assert event["status"] == "timeout"
    assert elapsed < 4, f"the trigger reported its 1 s deadline only after {elapsed:.1f} s"


# -- the sensor ----------------------------------------------------------------------------------------
def test_sensor_poke(fed):
    spec, runs, as_party = fed()
    as_party("company_a")
    waiting = sensor(spec, "company_a", "inputs", deferrable=False)
    assert waiting.poke(CONTEXT) is False
    share(runs["company_a"])
    share(runs["company_b"])
    assert waiting.poke(CONTEXT) is False
    # The sensor's condition is the stage's: the same parties are still missing.
    state = stages.wait_state(runs["company_a"], "inputs", runs["company_a"].channel.present(), cutoff_passed=False)
    assert state.missing == ["company_c"]
    share(runs["company_c"])
    assert waiting.poke(CONTEXT) is True


def test_sensor_poke_deadline_names_missing_parties(fed):
    spec, runs, as_party = fed()
    as_party("company_b")
    share(runs["company_a"])
    waiting = sensor(spec, "company_b", "inputs", deferrable=False)
    assert waiting.poke(CONTEXT) is False
    time.sleep(2.1)  # the spec's inputs deadline is 2 s
    with pytest.raises(AirflowFailException) as info:
        waiting.poke(CONTEXT)
    msg = str(info.value)
    assert RUN in msg and "never showed: company_b, company_c" in msg


def test_sensor_poke_stops_on_an_abort(fed):
    spec, runs, as_party = fed()
    for c in ("company_a", "company_b", "company_c"):
        share(runs[c])
    stages.fix_roster(runs["company_a"], 1, 5)
    stages.give_up(runs["company_b"].channel, 1, "disk on fire")
    as_party("regulator")
    with pytest.raises(AirflowFailException) as info:
        sensor(spec, "regulator", "result", deferrable=False).poke(CONTEXT)
    assert "company_b gave up MPC attempt 1" in str(info.value) and "disk on fire" in str(info.value)


def test_sensor_reads_with_public_keys_only(fed, monkeypatch):
    """The sensor never loads a private key: it works without the keys connection, and a keys
    connection holding garbage is never read."""
    spec, runs, _ = fed()
    monkeypatch.delenv(f"AIRFLOW_CONN_{KEYS_CONN_ID.upper()}", raising=False)
    waiting = sensor(spec, "company_a", "inputs", deferrable=False)
    assert waiting.poke(CONTEXT) is False
    for c in ("company_a", "company_b", "company_c"):
        share(runs[c])
    monkeypatch.setenv(f"AIRFLOW_CONN_{KEYS_CONN_ID.upper()}", json.dumps({"conn_type": "generic", "password": "x"}))
    assert sensor(spec, "company_a", "inputs", deferrable=False).poke(CONTEXT) is True


def test_sensor_execute_in_poke_mode(fed):
    spec, runs, as_party = fed(inputs_deadline=30)
    as_party("company_c")
    for c in ("company_a", "company_b"):
        share(runs[c])
    writer = later(0.5, share, runs["company_c"])
    start = time.monotonic()
    assert sensor(spec, "company_c", "inputs", deferrable=False).execute(CONTEXT) is None
    assert time.monotonic() - start >= 0.4
    writer.join()


def test_sensor_execute_deferrable(fed):
    spec, runs, as_party = fed()
    as_party("regulator")
    waiting = sensor(spec, "regulator", "result")
    before = time.time()
    with pytest.raises(TaskDeferred) as info:
        waiting.execute(CONTEXT)
    after = time.time()
    assert info.value.method_name == "execute_complete"
    trigger = info.value.trigger
    assert isinstance(trigger, CoordinationTrigger)
    # The deferral times out a minute after the trigger's deadline, counted from when it deferred
    # (between before and after): it holds even without a triggerer.
    assert info.value.timeout is not None
    timeout = info.value.timeout.total_seconds()
    assert trigger.deadline - after + 59.9 <= timeout <= trigger.deadline - before + 60.1
    assert (trigger.spec_path, trigger.party_id, trigger.run_key, trigger.stage) == (
        str(spec.source),
        "regulator",
        RUN,
        "result",
    )
    assert trigger.coordination_conn_id == COORDINATION_CONN_ID
    assert before + 2 <= trigger.deadline <= time.time() + 2  # the spec's result deadline
    assert trigger.poll_interval == 0.2

    # The trigger it deferred to, run as the triggerer would: times out naming the leader.
    event = first_event(trigger)
    assert event == {"status": "timeout", "missing": ["company_a"]}
    with pytest.raises(AirflowFailException, match="never showed: company_a"):
        waiting.execute_complete(CONTEXT, event)
    assert waiting.execute_complete(CONTEXT, {"status": "ready", "left_out": []}) is None
    # A task resumed by its trigger's "ready" builds no clients and lists nothing: its next task
    # verifies what it reads (only an input party's inclusion is checked again).
    resumed = sensor(spec, "regulator", "result")
    resumed._party_run = lambda context: pytest.fail("the resumed sensor opened the store")
    assert resumed.execute_complete(CONTEXT, {"status": "ready", "left_out": []}) is None

    # A stop carries the verified reasons from the bucket, not just the trigger's word.
    for c in ("company_a", "company_b", "company_c"):
        share(runs[c])
    stages.fix_roster(runs["company_a"], 1, 5)
    stages.give_up(runs["company_c"].channel, 1, "peer unreachable")
    with pytest.raises(AirflowFailException) as info:
        waiting.execute_complete(CONTEXT, {"status": "stopped", "reason": "company_c gave up MPC attempt 1"})
    assert "peer unreachable" in str(info.value)


def test_sensor_execute_deferrable_then_ready(fed):
    spec, runs, as_party = fed(inputs_deadline=30, cutoff=30)
    as_party("company_b")
    share(runs["company_a"])
    with pytest.raises(TaskDeferred) as info:
        sensor(spec, "company_b", "inputs").execute(CONTEXT)
    writer = later(0.4, lambda: (share(runs["company_b"]), share(runs["company_c"])))
    assert first_event(info.value.trigger) == {"status": "ready", "left_out": []}
    writer.join()
    # Once ready, the sensor does not defer at all.
    assert sensor(spec, "company_b", "inputs").execute(CONTEXT) is None


# -- stragglers and the privacy floor ----------------------------------------------------------------
def test_leader_goes_ahead_after_the_cutoff_and_the_others_follow(fed):
    spec, runs, as_party = fed(inputs=4, cutoff=1, inputs_deadline=30)
    for c in ("company_a", "company_b", "company_c"):
        share(runs[c])
    as_party("company_a")
    leader = sensor(spec, "company_a", "inputs", deferrable=False)
    assert leader.poke(CONTEXT) is False  # before the cut-off it waits for company_d
    as_party("company_b")
    follower = sensor(spec, "company_b", "inputs", deferrable=False)
    assert follower.poke(CONTEXT) is False
    time.sleep(1.1)
    as_party("company_a")
    assert leader.poke(CONTEXT) is True  # three of four shared: the floor is met
    as_party("company_b")
    assert follower.poke(CONTEXT) is True  # past its cut-off with the floor met: on to the compute stage
    assert stages.fix_roster(runs["company_a"], 1, 5) == (1, ["company_a", "company_b", "company_c"])
    assert stages.fix_roster(runs["company_b"], 0, 5) == (1, ["company_a", "company_b", "company_c"])


def test_leader_does_not_go_ahead_below_the_floor(fed):
    spec, runs, as_party = fed(inputs=4, cutoff=1, inputs_deadline=2)
    for c in ("company_a", "company_b"):
        share(runs[c])
    as_party("company_a")
    leader = sensor(spec, "company_a", "inputs", deferrable=False)
    assert leader.poke(CONTEXT) is False
    time.sleep(1.1)
    assert leader.poke(CONTEXT) is False  # after the cut-off, but only two shared
    time.sleep(1.0)
    with pytest.raises(AirflowFailException, match="never showed: company_c, company_d"):
        leader.poke(CONTEXT)


# -- verified objects only, fetched once ---------------------------------------------------------------
def test_verified_listing_fetches_each_unchanged_object_once(fed):
    spec, runs, _ = fed()
    for c in ("company_a", "company_b"):
        share(runs[c])
    from mpc_federation.channel import RunReader

    store = runs["regulator"].store
    gets: list[str] = []
    real_get = store.get
    store.get = lambda key: (gets.append(key), real_get(key))[1]
    reader = RunReader(spec, RUN, store, viewer="regulator")
    root = reader.root
    store.put(f"{root}/abort/company_c/inputs", b"junk")
    first = reader.verified()
    assert first.keys == {f"{root}/inputs/company_a/done", f"{root}/inputs/company_b/done"}
    assert list(first.invalid) == [f"{root}/abort/company_c/inputs"]
    assert sorted(gets) == sorted([*first.keys, *first.invalid])  # no input shares, no status records
    gets.clear()
    again = reader.verified()
    assert again.keys == first.keys and again.invalid == first.invalid and gets == []  # nothing fetched again
    share(runs["company_c"])
    third = reader.verified()
    assert gets == [f"{root}/inputs/company_c/done"] and len(third.keys) == 3


def test_confirm_inclusion_deferred_then_included_or_skipped(fed):
    spec, runs, _ = fed(inputs=4, inputs_deadline=30, cutoff=30)
    for c in ("company_a", "company_b", "company_c"):
        share(runs[c])
    waiting = sensor(spec, "company_c", "roster")
    with pytest.raises(TaskDeferred) as info:
        waiting.execute(CONTEXT)
    trigger = info.value.trigger
    assert trigger.stage == "roster" and trigger.deadline >= time.time() + 29  # inputs + connect deadlines
    writer = later(0.4, stages.fix_roster, runs["company_a"], 1, 5)
    assert first_event(trigger) == {"status": "ready", "left_out": []}
    writer.join()
    assert waiting.execute_complete(CONTEXT, {"status": "ready", "left_out": []}) is None
    # company_d shares after the roster was fixed: a straggler, skipped, not failed.
    share(runs["company_d"])
    from airflow.sdk.exceptions import AirflowSkipException

    with pytest.raises(AirflowSkipException, match="shared after the roster .* was fixed"):
        sensor(spec, "company_d", "roster", deferrable=False).poke(CONTEXT)


# -- a task that defers while the rendezvous is far ([mpc] wait_in_task = near) -----------------------
def test_a_trigger_that_hands_over_ends_once_the_rendezvous_is_near(fed):
    """One of three shared: far, the trigger waits; two of three: near (``waiting.rendezvous_near``),
    and it ends, company_c still missing, with the wait's deadline and cut-off: the task it resumes
    waits the last seconds itself, by them."""
    spec, runs, _ = fed()
    share(runs["company_a"])
    trigger = trigger_for(spec, "company_b", "inputs", hand_over_when_near=True)
    writer = later(0.6, share, runs["company_b"])
    start = time.monotonic()
    event = first_event(trigger)
    writer.join()
    assert time.monotonic() - start >= 0.5  # it did wait while the rendezvous was far
    times = {"deadline": trigger.deadline, "cutoff": trigger.cutoff}
    assert event == {"status": "near", "missing": ["company_c"], **times}
    classpath, kwargs = trigger.serialize()
    assert kwargs["hand_over_when_near"] is True and CoordinationTrigger(**kwargs).hand_over_when_near
    # Without hand-over, near is not the end of the wait.
    event = first_event(trigger_for(spec, "company_b", "inputs", deadline_in=1.0))
    assert event == {"status": "timeout", "missing": ["company_c"]}


def test_a_task_that_waits_defers_while_the_rendezvous_is_far_and_resumes_with_its_deadline(fed):
    """``deferrable`` with ``wait_for_result``: far (one of three shared, no roster), the reveal task
    defers to a trigger that hands over once near, whose event carries the wait's deadline and
    cut-off to ``execute_complete``; near already (two of three), it does not defer and waits itself."""
    from mpc_operators import MPCRevealOperator
    from mpc_operators.base import DEFERRAL_GRACE_SECONDS, defer_while_far

    spec, runs, as_party = fed(result_deadline=30)
    as_party("regulator")
    share(runs["company_a"])
    task = MPCRevealOperator(
        task_id="reveal", spec_path=str(spec.source), party_id="regulator", wait_for_result=True, deferrable=True
    )
    before = time.time()
    with pytest.raises(TaskDeferred) as info:
        task.execute(FIRST_TRY)
    deferred = info.value
    trigger = deferred.trigger
    assert isinstance(trigger, CoordinationTrigger) and trigger.hand_over_when_near and trigger.stage == "result"
    assert deferred.method_name == "execute_complete"
    assert before + 30 <= trigger.deadline <= time.time() + 30  # the spec's result deadline, from now
    timeout = deferred.timeout.total_seconds()
    assert trigger.deadline - time.time() + DEFERRAL_GRACE_SECONDS - 1 <= timeout <= trigger.deadline - before + 61
    # Resumed by the trigger, it waits by the deadline it deferred with, not a fresh one: here one
    # that passed, so it fails at once (not after the spec's 30 s) naming the leader, whose outputs
    # never came.
    resumed = time.monotonic()
    with pytest.raises(AirflowFailException, match="deadline passed waiting for result.*never showed: company_a"):
        task.execute_complete(FIRST_TRY, {"status": "timeout", "missing": [], "deadline": time.time(), "cutoff": 0})
    assert time.monotonic() - resumed < 10
    # A retry never defers, even while the rendezvous is far: it waits in the task.
    assert (
        defer_while_far(task, task.party_run(FIRST_TRY), "result", {**CONTEXT, "ti": SimpleNamespace(try_number=2)})
        is None
    )
    # Near already (two of three shared): no deferral, the task waits itself.
    share(runs["company_b"])
    assert defer_while_far(task, task.party_run(FIRST_TRY), "result", FIRST_TRY) is None
    # Decided already (the attempt given up after a roster): no deferral either, and the task's own
    # wait stops at once with the verified reason.
    share(runs["company_c"])
    stages.fix_roster(runs["company_a"], 1, 5)
    stages.give_up(runs["company_c"].channel, 1, "peer unreachable")
    with pytest.raises(AirflowFailException, match="stopped waiting for result.*peer unreachable"):
        task.execute(FIRST_TRY)
    # Resumed by whatever event, the task decides from what it verifies itself: here the stop.
    event = {"status": "ready", "left_out": [], "deadline": time.time() + 30, "cutoff": 0}
    with pytest.raises(AirflowFailException, match="stopped waiting for result.*peer unreachable"):
        task.execute_complete(FIRST_TRY, event)


def test_a_task_resumed_from_its_deferral_keeps_the_waits_deadline_and_cutoff(fed, caplog):
    """The compute task that resumes after deferring must not start the spec's deadline and
    cut-off again: the leader goes ahead at the cut-off the wait began with, and a wait runs out at
    its first deadline, not a full deadline after resuming."""
    from mpc_operators.base import wait_in_task

    spec, runs, _ = fed(inputs=4, cutoff=60, inputs_deadline=60)
    for c in ("company_a", "company_b", "company_c"):  # the floor (3); company_d still aggregating
        share(runs[c])
    task = SimpleNamespace(log=logging.getLogger("test"))
    now = time.time()
    start = time.monotonic()
    with caplog.at_level(logging.WARNING):  # the cut-off it deferred with has passed
        wait_in_task(task, runs["company_a"], "inputs", FIRST_TRY, times=(now + 60, now - 1))
    assert time.monotonic() - start < 30
    assert "Going ahead after the cut-off without: company_d" in caplog.text
    caplog.clear()
    with (
        caplog.at_level(logging.INFO),
        pytest.raises(AirflowFailException, match="deadline passed waiting for inputs.*never showed: company_d"),
    ):
        wait_in_task(task, runs["company_b"], "inputs", FIRST_TRY, times=(now + 1, now + 60))
    assert time.time() - now < 30
    # The trigger handed over on news: the resumed wait lists at the burst pace from its first listing.
    assert "Waiting for inputs: company_d (polling every 0.1 s)" in caplog.text


# -- waiting in the task itself ([mpc] wait_in_task) ----------------------------------------------------
def test_waiting_in_the_task_goes_ahead_at_the_fast_pace_once_the_last_input_shared(fed):
    """``waiting.wait``, the trigger's pace in the task's own process: the last party's object is
    seen at the fast pace, although the slow one is longer than the whole test."""
    from mpc_federation import waiting

    spec, runs, _ = fed()
    for c in ("company_b", "company_c"):
        share(runs[c])
    writer = later(0.5, share, runs["company_a"])
    now = time.time()
    state, view = waiting.wait(
        runs["company_b"], "inputs", deadline=now + 30, cutoff=now + 30, poll_interval=30, fast_poll_interval=0.2
    )
    writer.join()
    assert state.ready and state.missing == [] and not (state.stop or state.skip)
    assert {runs["company_b"].channel.input_done_key(c) for c in ("company_a", "company_b", "company_c")} <= view.keys
    assert time.time() - now < 10  # listed at the fast pace (the first minute of a wait), not every 30 s


def test_a_task_that_waits_itself_lists_every_fifth_of_a_second_while_the_rendezvous_is_near(fed, caplog):
    """``wait_in_task``: near (two of three shared), the wait lists every ``TASK_NEAR_POLL_SECONDS``,
    not at the sensors' 0.5 s."""
    from mpc_operators.base import wait_in_task

    spec, runs, _ = fed(inputs_deadline=1, cutoff=1)
    for c in ("company_b", "company_c"):
        share(runs[c])
    task = SimpleNamespace(log=logging.getLogger("test"))
    with (
        caplog.at_level(logging.INFO),
        pytest.raises(AirflowFailException, match="deadline passed waiting for inputs.*never showed: company_a"),
    ):
        wait_in_task(task, runs["company_b"], "inputs", FIRST_TRY)
    assert "Waiting for inputs: company_a (polling every 0.2 s)" in caplog.text


def test_a_compute_task_that_waits_itself_fails_at_the_deadline_naming_who_never_showed(fed, monkeypatch):
    """Two of three parties shared: the rendezvous is near, so the task starts its MPyC process
    while it waits (``computing.EarlyStart``); at the deadline it fails naming the missing party,
    and the process it started is gone."""
    from mpc_federation import launcher
    from mpc_operators import MPCComputeOperator

    spec, runs, as_party = fed(inputs_deadline=1, cutoff=1)
    as_party("company_b")
    for c in ("company_b", "company_c"):
        share(runs[c])
    started = []
    real_start = launcher.start_mpc
    monkeypatch.setattr(launcher, "start_mpc", lambda **seat: started.append(real_start(**seat)) or started[-1])
    task = MPCComputeOperator(task_id="compute", spec_path=str(spec.source), party_id="company_b", wait_for_inputs=True)
    with pytest.raises(
        AirflowFailException, match="deadline passed waiting for inputs; parties that never showed: company_a"
    ):
        task.execute(FIRST_TRY)
    assert len(started) == 1  # started while waiting, then stopped with its folder (TLS key) removed
    assert not started[0].running() and not started[0].work_dir.exists()
    assert started[0]._proc.pid not in launcher._LIVE
    state = stages.wait_state(runs["company_b"], "inputs", cutoff_passed=False)
    assert state.missing == ["company_a"]  # nothing computed


def test_waiting_calls_when_near_once_and_only_once_the_rendezvous_is_near(fed, monkeypatch):
    """One of three parties shared: far (below the floor and not more than half), so nothing starts
    ahead; two of three: near, and ``when_near`` is called once however often the wait lists."""
    from mpc_federation import waiting

    spec, runs, _ = fed()
    run, calls, listings = runs["company_b"], [], []
    verified = run.reader.verified
    monkeypatch.setattr(run.reader, "verified", lambda **kw: listings.append(1) or verified(**kw))
    share(runs["company_a"])
    now = time.time()
    state, _ = waiting.wait(
        run, "inputs", deadline=now + 2, cutoff=now + 60, fast_poll_interval=0.1, when_near=lambda: calls.append(1)
    )
    assert not state.ready and calls == [] and len(listings) > 1
    share(runs["company_b"])
    listings.clear()
    now = time.time()
    state, _ = waiting.wait(
        run, "inputs", deadline=now + 2, cutoff=now + 60, fast_poll_interval=0.1, when_near=lambda: calls.append(1)
    )
    assert not state.ready and state.missing == ["company_c"]
    assert calls == [1] and len(listings) > 1  # once, although it listed again after the call


def test_a_reveal_task_that_waits_itself_stops_at_once_when_the_attempt_is_given_up(fed):
    from mpc_operators import MPCRevealOperator

    spec, runs, as_party = fed(result_deadline=60)
    as_party("regulator")
    for c in ("company_a", "company_b", "company_c"):
        share(runs[c])
    stages.fix_roster(runs["company_a"], 1, 5)
    stages.give_up(runs["company_c"].channel, 1, "peer unreachable")
    task = MPCRevealOperator(task_id="reveal", spec_path=str(spec.source), party_id="regulator", wait_for_result=True)
    start = time.monotonic()
    with pytest.raises(AirflowFailException, match="stopped waiting for result") as info:
        task.execute(FIRST_TRY)
    assert time.monotonic() - start < 30  # at once, not at the deadline
    assert "peer unreachable" in str(info.value)  # the verified reason, explained


def test_a_reveal_task_that_waits_itself_makes_its_first_writes_check_while_it_waits(fed, monkeypatch):
    """Near (a roster, no output shares yet), a reveal task that waits itself checks that the store
    honours conditional writes (two PUTs its ``revealed`` record would otherwise make after the
    last output share) and loads the program's field for the recombination, while it waits."""
    from mpc_federation.store import CoordinationStore
    from mpc_operators import MPCRevealOperator

    spec, runs, as_party = fed(result_deadline=1)
    as_party("regulator")
    for c in ("company_a", "company_b", "company_c"):
        share(runs[c])
    stages.fix_roster(runs["company_a"], 1, 5)
    checks, loaded = [], []
    monkeypatch.setattr(CoordinationStore, "check_conditional_writes", lambda store, **how: checks.append(how))
    monkeypatch.setattr("mpc_federation.sharing.load_recombine", loaded.append)
    task = MPCRevealOperator(task_id="reveal", spec_path=str(spec.source), party_id="regulator", wait_for_result=True)
    with pytest.raises(AirflowFailException, match="deadline passed waiting for result"):
        task.execute(FIRST_TRY)
    assert checks == [{"patient": False}]  # once, while waiting (nothing was written), failing fast
    assert [p.name for p in loaded] == ["hhi"]


def test_a_retry_that_waits_itself_goes_ahead_with_the_floor_at_once(fed, caplog):
    """The first try waited for stragglers until the cut-off; a retry must not wait for them again
    (the other compute parties' waits for the roster would run out meanwhile)."""
    from mpc_operators.base import wait_in_task

    spec, runs, _ = fed(inputs=4, cutoff=60, inputs_deadline=60)
    for c in ("company_a", "company_b", "company_c"):  # the floor (3); company_d still aggregating
        share(runs[c])
    task = SimpleNamespace(log=logging.getLogger("test"))
    start = time.monotonic()
    with caplog.at_level(logging.WARNING):
        wait_in_task(task, runs["company_a"], "inputs", {"ti": SimpleNamespace(try_number=2)})
    assert time.monotonic() - start < 30  # went ahead, not at the 60 s cut-off
    assert "Going ahead after the cut-off without: company_d" in caplog.text
    state = stages.wait_state(runs["company_a"], "inputs", cutoff_passed=False)
    assert not state.ready and state.missing == ["company_d"]  # the first try would still wait


def test_waiting_in_the_task_through_an_unreachable_bucket_says_so_at_the_deadline(fed, monkeypatch, caplog):
    from mpc_federation import waiting

    spec, runs, _ = fed()
    run = runs["company_b"]

    def unreachable(*args, **kwargs):
        raise ConnectionError("connection refused")

    monkeypatch.setattr(run.reader, "verified", unreachable)
    now = time.time()
    with caplog.at_level(logging.WARNING):
        state, view = waiting.wait(run, "inputs", deadline=now + 1.5, cutoff=now + 1.5, fast_poll_interval=0.2)
    assert not state.ready and state.missing == ["(the coordination bucket was unreachable)"] and view is None
    assert [r.getMessage() for r in caplog.records if "failed" in r.getMessage()] == [
        f"Listing {run.reader.root} failed: connection refused"
    ]  # once per outage, not on every poll


def test_a_waiters_near_poll_interval_is_its_pace_once_the_rendezvous_is_near(fed, monkeypatch):
    """``near_poll_interval`` (``wait_in_task`` passes ``TASK_NEAR_POLL_SECONDS``) is the pace once
    the rendezvous is near; before, the wait keeps ``fast_poll_interval`` (its first minute)."""
    from mpc_federation import waiting

    spec, runs, _ = fed()
    run = runs["company_b"]
    monkeypatch.setattr(waiting, "BURST_SECONDS", 0.0)  # the pace itself, not a burst after news
    now = time.time()
    pace = {"deadline": now + 60, "cutoff": now + 60, "near_poll_interval": waiting.TASK_NEAR_POLL_SECONDS}
    waiter = waiting.Waiter(run.reader, "company_b", "inputs", floor=3, **pace)
    assert waiter.decide(run.reader.verified(patient=False)) is None and not waiter.near
    assert waiter.interval() == waiting.FAST_POLL_SECONDS
    for c in ("company_a", "company_c"):  # two of three: more than half shared
        share(runs[c])
    assert waiter.decide(run.reader.verified(patient=False)) is None and waiter.near
    assert waiter.interval() == waiting.TASK_NEAR_POLL_SECONDS < waiting.FAST_POLL_SECONDS
    plain = waiting.Waiter(run.reader, "company_b", "inputs", floor=3, deadline=now + 60, cutoff=now + 60)
    assert plain.decide(run.reader.verified(patient=False)) is None and plain.near
    assert plain.interval() == waiting.FAST_POLL_SECONDS  # the sensors' and triggers' pace


def test_a_new_object_makes_the_wait_list_faster_for_a_moment(fed, monkeypatch):
    """What was there when the wait started is no news (the fast pace of a wait's first minute);
    an object that comes later is: for ``BURST_SECONDS`` the wait lists every
    ``BURST_POLL_SECONDS``, as the rest of a burst (the other compute parties' outputs) is near."""
    from mpc_federation import waiting

    spec, runs, _ = fed()
    run = runs["company_b"]
    monkeypatch.setattr(waiting, "BURST_SECONDS", 0.5)
    now = time.time()
    waiter = waiting.Waiter(run.reader, "company_b", "inputs", floor=3, deadline=now + 60, cutoff=now + 60)
    assert waiter.decide(run.reader.verified(patient=False)) is None  # nothing there yet
    share(runs["company_a"])
    assert waiter.decide(run.reader.verified(patient=False)) is None
    assert waiter.interval() == waiting.BURST_POLL_SECONDS  # the first news after an empty listing
    time.sleep(0.6)
    assert waiter.interval() == waiting.FAST_POLL_SECONDS
    waiter = waiting.Waiter(run.reader, "company_b", "inputs", floor=3, deadline=now + 60, cutoff=now + 60)
    assert waiter.decide(run.reader.verified(patient=False)) is None
    assert waiter.interval() == waiting.FAST_POLL_SECONDS  # what was there when the wait began is no news
    share(runs["company_c"])
    assert waiter.decide(run.reader.verified(patient=False)) is None
    assert waiter.interval() == waiting.BURST_POLL_SECONDS < waiting.FAST_POLL_SECONDS
    time.sleep(0.6)
    assert waiter.interval() == waiting.FAST_POLL_SECONDS
    # A wait that goes on from one that has just seen news (a task resumed by its trigger) starts in a burst.
    waiter = waiting.Waiter(run.reader, "company_b", "inputs", floor=3, deadline=now + 60, cutoff=now + 60, burst=True)
    assert waiter.decide(run.reader.verified(patient=False)) is None
    assert waiter.interval() == waiting.BURST_POLL_SECONDS
    time.sleep(0.6)
    assert waiter.interval() == waiting.FAST_POLL_SECONDS
