"""The whole protocol against the real local S3 API server, without Airflow: share, wait, compute
(three real MPyC processes), reveal; idempotence, input checks before upload, no plaintext in the
bucket, and the privacy floor."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from conftest import compute_each, small_parties

from mpc_federation import computing, stages
from mpc_federation.envelope import IntegrityError, parts
from mpc_federation.launcher import SEAT_FIELDS, seat_of
from mpc_federation.layout import run_key
from mpc_federation.party import PartyRun
from mpc_federation.programs import ProgramError, load_program
from mpc_federation.sharing import unpack
from mpc_federation.spec import load_spec
from mpc_federation.store import CoordinationStore

DATE = datetime(2024, 4, 15, 3, 0, tzinfo=UTC)
RUN = "20240415T030000Z"


def party_runs(spec, keys, s3_server, date=DATE) -> dict[str, PartyRun]:
    return {
        p.id: PartyRun(spec, p.id, date, keys[p.id], CoordinationStore(s3_server.store_config(spec.bucket)))
        for p in spec.parties
    }


def aggregate(run: PartyRun, months: list[int]) -> dict:
    """An aggregate as the Spark job writes it: 'all' is the sum of the months."""
    return {
        "format": "mpc-aggregate/1",
        "party": run.party_id,
        "dimensions": {"market": run.spec.dimensions(run.logical_date)["market"]},
        "values": {"revenue_cents": [sum(months), *months]},
    }


HHI_REFERENCE = load_program(Path(__file__).resolve().parents[1] / "include" / "programs" / "hhi.py").module


def rounded_hhi(revenues: list[int]) -> Decimal | None:
    """The plaintext reference: the HHI rounded to hundredths (None below the floor of 3 firms)."""
    return HHI_REFERENCE.plaintext([{"revenue_cents": [r]} for r in revenues])["hhi"][0]


def snapshot(store: CoordinationStore, prefix: str) -> dict[str, bytes]:
    return {key: store.get(key) for key in store.list(prefix)}


def waiting_for(run: PartyRun, stage: str, *, cutoff_passed: bool = False) -> stages.Readiness:
    return stages.wait_state(run, stage, run.channel.present(), cutoff_passed=cutoff_passed)


def test_full_protocol(federation, s3_server, tmp_path):
    spec, keys = federation()
    runs = party_runs(spec, keys, s3_server)
    companies = [p.id for p in spec.input_parties]
    assert companies == ["company_a", "company_b", "company_c"]
    assert [p.id for p in spec.compute_parties] == companies
    store = runs["regulator"].store
    leader = runs["company_a"].channel
    root = leader.root
    assert root == f"{spec.prefix}/taxi_hhi/{RUN}"
    assert all(r.channel.root == root for r in runs.values())

    # 12-digit revenues per month: unique strings, and 'all' (their sum) stays below 10**12.
    rng = random.Random(8)
    months = {c: [rng.randint(10**11, 3 * 10**11 - 1) for _ in range(3)] for c in companies}
    aggregates = {c: aggregate(runs[c], months[c]) for c in companies}

    # -- before anyone shared: everybody waits, naming whom ----------------------------------------
    for c in companies:
        state = waiting_for(runs[c], "inputs")
        assert not state.ready and state.missing == companies and state.stop is None
    state = waiting_for(runs["regulator"], "result")
    assert not state.ready and state.missing == ["company_a"]  # the leader has published no roster

    # -- share ---------------------------------------------------------------------------------------
    first = stages.share(runs["company_a"], aggregates["company_a"])
    assert first == {"run": RUN, "status": "shared", "objects": 4}
    assert waiting_for(runs["company_b"], "inputs").missing == ["company_b", "company_c"]
    for c in companies[1:]:
        assert stages.share(runs[c], aggregates[c])["status"] == "shared"
    for c in companies:
        state = waiting_for(runs[c], "inputs")
        assert state.ready and state.missing == []
    assert leader.shared(leader.present()) == companies

    # A retry after success changes nothing.
    before = snapshot(store, f"{root}/inputs/company_a/")
    assert len(before) == 4
    assert stages.share(runs["company_a"], aggregates["company_a"]) == {"run": RUN, "status": "already shared"}
    assert snapshot(store, f"{root}/inputs/company_a/") == before

    # Each compute party can open exactly its own input shares.
    record = runs["company_b"].channel.read(
        leader.input_key("company_a", "company_b"), "input-shares", "company_a", to="company_b"
    )
    modulus = runs["company_b"].program.modulus
    assert len(unpack(record["shares"]["values"]["revenue_cents"], modulus)) == 4
    witness = unpack(record["shares"]["witness"]["revenue_cents"], modulus)
    assert len(witness) == 4 * (40 + 2)  # range bits, nonzero, inverse
    with pytest.raises(IntegrityError):
        runs["company_c"].channel.read(
            leader.input_key("company_a", "company_b"), "input-shares", "company_a", to="company_b"
        )

    # -- compute ----------------------------------------------------------------------------------------
    assert waiting_for(runs["regulator"], "result").missing == ["company_a"]
    fetched: dict[str, list[str]] = {c: [] for c in companies}  # every GET of each compute party
    for c in companies:
        get = runs[c].store.get
        runs[c].store.get = lambda key, _get=get, _c=c: fetched[_c].append(key) or _get(key)
    computed = compute_each([runs[c] for c in companies], attempt=1, connect_timeout=60, run_timeout=120)
    markers = {leader.input_done_key(c) for c in companies}
    # The leader fixes the roster from the signed done markers; a follower's shares of the roster
    # parties show that they shared, so it fetches no marker of theirs (a third fewer GETs).
    assert markers <= set(fetched["company_a"])
    for c in companies[1:]:
        assert not markers & set(fetched[c]), c
        assert {leader.input_key(p, c) for p in companies} <= set(fetched[c]), c
    for c in companies:
        assert computed[c]["roster"] == companies
        assert computed[c]["run"] == RUN and computed[c]["attempt"] == 1
    state = waiting_for(runs["regulator"], "result")
    assert state.ready and state.missing == [] and state.stop is None
    present = leader.present()
    assert leader.attempts(present) == [1] and leader.live_attempt(present) == 1
    assert leader.attempt_aborts(present, 1) == [] and not any("/abort/" in k for k in present)

    # -- reveal ---------------------------------------------------------------------------------------------
    result = stages.reveal(runs["regulator"])
    labels = spec.dimensions(DATE)["market"]
    assert labels == ["all", "2024-01", "2024-02", "2024-03"]
    hhi = result["outputs"]["hhi"]
    assert hhi["labels"] == labels and hhi["decimals"] == 2
    for k, label in enumerate(labels):
        plain = rounded_hhi([aggregates[c]["values"]["revenue_cents"][k] for c in companies])
        assert Decimal(hhi["exact"][k]) == plain, label
        assert hhi["value"][k] == float(plain)
    assert result["roster"] == companies and result["compute_parties"] == companies
    assert result["spec_hash"] == spec.spec_hash and result["program_hash"] == spec.program_hash
    assert result["run"] == RUN and result["program"] == "hhi" and result["attempt"] == 1

    assert f"{root}/status/regulator/revealed" in store.list(root)

    # Only recipients reveal.
    with pytest.raises(stages.StageError, match="company_b is not a recipient"):
        stages.reveal(runs["company_b"])

    # -- every object is accounted for, and none shows an aggregate value ----------------------------
    objects = snapshot(store, f"{root}/")
    data_keys = {k for k in objects if not k.startswith(f"{root}/status/")}
    assert data_keys == (
        {leader.input_key(c, d) for c in companies for d in companies}
        | {leader.input_done_key(c) for c in companies}
        | {leader.roster_key(1)}
        | {leader.output_key(1, c, "regulator") for c in companies}
    )
    assert {f"{root}/status/{c}/computed" for c in companies} | {f"{root}/status/regulator/revealed"} <= set(
        objects
    ) - data_keys
    blobs = []
    for key, blob in objects.items():
        blobs += [blob, parts(blob)[1], key.encode()]
    needles = []
    for c in companies:
        for value in aggregates[c]["values"]["revenue_cents"]:
            needles += [str(value).encode(), value.to_bytes(8, "big"), value.to_bytes(8, "little")]
    for needle in needles:
        for blob in blobs:
            assert needle not in blob


def test_compute_parties_waiting_in_their_tasks_start_mpyc_before_the_last_input(federation, s3_server, monkeypatch):
    """``[mpc] wait_in_task``: once the floor has shared, each compute party's own wait starts its
    MPyC process (``computing.EarlyStart``), which loads and connects while the last input is
    awaited; the compute stage hands that very process its job, starts no other, and goes on with
    the listing the wait went ahead on. The recipient's own wait opens the output shares sealed to
    it, and the reveal goes on with that listing without reading the bucket again. The result
    equals plaintext."""
    from concurrent.futures import ThreadPoolExecutor

    from mpc_federation import launcher, waiting

    spec, keys = federation(parties=small_parties(inputs=4))
    runs = party_runs(spec, keys, s3_server)
    companies = [p.id for p in spec.input_parties]
    computes = [p.id for p in spec.compute_parties]
    rng = random.Random(15)
    aggregates = {c: aggregate(runs[c], [rng.randint(10**9, 10**10) for _ in range(3)]) for c in companies}
    started: list[tuple[int, bool]] = []  # (MPyC index, whether company_d had shared then)
    last_shared = False
    real_start = launcher.start_mpc
    monkeypatch.setattr(
        launcher, "start_mpc", lambda **seat: started.append((seat["party_index"], last_shared)) or real_start(**seat)
    )
    for c in companies[:3]:  # the floor: the rendezvous is near
        stages.share(runs[c], aggregates[c])
    early = {c: computing.EarlyStart(runs[c]) for c in computes}

    listed: dict[str, list[str]] = {c: [] for c in computes}  # what each compute stage listed

    def wait_then_compute(c: str) -> dict:
        with early[c]:
            now = time.time()
            state, view = waiting.wait(
                runs[c], "inputs", deadline=now + 120, cutoff=now + 120, fast_poll_interval=0.2, when_near=early[c]
            )
            assert state.ready, state
            lister = runs[c].store.list_with_etags
            runs[c].store.list_with_etags = lambda where, **kw: listed[c].append(where) or lister(where, **kw)
            return stages.compute(runs[c], connect_timeout=60, run_timeout=120, process=early[c].take(), view=view)

    with ThreadPoolExecutor(len(computes)) as pool:
        futures = [pool.submit(wait_then_compute, c) for c in computes]
        for _ in range(600):  # each wait lists at once and finds the rendezvous near
            if all(e.process is not None for e in early.values()) or any(f.done() for f in futures):
                break
            time.sleep(0.1)
        assert [f.exception() for f in futures if f.done()] == []
        assert sorted(started) == [(0, False), (1, False), (2, False)]
        last_shared = True
        stages.share(runs["company_d"], aggregates["company_d"])
        computed = [f.result(timeout=180) for f in futures]
    assert sorted(started) == [(0, False), (1, False), (2, False)]  # the stage started no other process
    assert all(e.process._proc.returncode == 0 for e in early.values())  # each ran its job to the end
    assert all(r["roster"] == companies for r in computed)
    # The stage went on with the wait's listing: the leader fixed the roster from it and the
    # followers had their shares from it; each listed the whole run once, for what lies beyond the roster.
    root = runs["regulator"].channel.root
    for c in computes:
        assert listed[c].count(f"{root}/") == 1 and f"{root}/inputs/" not in listed[c], (c, listed[c])
    recipient = runs["regulator"]
    now = time.time()
    state, view = waiting.wait(recipient, "result", deadline=now + 60, cutoff=now)
    assert state.ready
    reads: list[str] = []
    for name in ("get", "list", "list_with_etags"):
        call = getattr(recipient.store, name)
        monkeypatch.setattr(
            recipient.store, name, lambda *a, _call=call, _name=name, **k: reads.append(_name) or _call(*a, **k)
        )
    result = stages.reveal(recipient, view)
    assert reads == []  # decided from the wait's verified listing; only the "revealed" record is written
    plain = rounded_hhi([aggregates[c]["values"]["revenue_cents"][0] for c in companies])
    assert Decimal(result["outputs"]["hhi"]["exact"][0]) == plain
    assert result == stages.reveal(recipient) and reads  # the same result when the reveal lists the run itself


def test_bad_aggregate_uploads_nothing(federation, s3_server):
    spec, keys = federation()
    runs = party_runs(spec, keys, s3_server)
    run = runs["company_b"]
    with pytest.raises(ProgramError, match="-5 is outside"):
        stages.share(run, aggregate(run, [10**11, -5, 10**11]))
    root = run.channel.root
    assert run.store.list(f"{root}/inputs/company_b/") == []
    assert run.store.list(f"{root}/") == []
    # Written for another party: refused before any upload too.
    with pytest.raises(ProgramError, match="written for party 'company_a'"):
        stages.share(run, aggregate(runs["company_a"], [1, 2, 3]))
    assert run.store.list(f"{root}/") == []


def test_privacy_floor_aborts(federation, s3_server):
    spec, keys = federation()
    runs = party_runs(spec, keys, s3_server)
    assert stages.floor(runs["company_a"]) == 3
    for c in ("company_a", "company_b"):
        stages.share(runs[c], aggregate(runs[c], [10**11, 2 * 10**11, 3 * 10**11]))
    # Even after the cut-off the leader does not go ahead below the floor.
    state = waiting_for(runs["company_a"], "inputs", cutoff_passed=True)
    assert not state.ready and state.missing == ["company_c"]

    with pytest.raises(stages.StageError) as info:
        stages.fix_roster(runs["company_a"], 1, wait_seconds=1)
    reason = str(info.value)
    assert "only 2 input parties shared (company_a, company_b)" in reason and "at least 3" in reason

    channel = runs["company_b"].channel
    present = channel.present()
    assert channel.attempt_abort_key("company_a", 1) in present
    assert channel.attempts(present) == []  # no roster: nothing goes on
    assert channel.attempt_aborts(present, 1) == ["company_a"]
    record = runs["regulator"].channel.read(channel.attempt_abort_key("company_a", 1), "abort", "company_a", attempt=1)
    assert record["reason"] == reason
    explained = stages.explain_aborts(runs["regulator"].channel, present)
    assert "company_a (attempt-1)" in explained and reason in explained
    with pytest.raises(stages.StageError, match="no live MPC attempt"):
        stages.reveal(runs["regulator"])


def test_withdrawals_below_the_floor_stop_the_wait(federation, s3_server):
    spec, keys = federation()
    runs = party_runs(spec, keys, s3_server)
    stages.share(runs["company_a"], aggregate(runs["company_a"], [1, 2, 3]))
    stages.withdraw(runs["company_c"], "aggregation-failed", "aggregate")
    state = waiting_for(runs["company_b"], "inputs")
    assert not state.ready and state.stop
    assert "company_c" in state.stop and "floor of 3" in state.stop
    assert "company_c (inputs): aggregate failed: aggregation-failed" in state.stop  # the verified code is attached


def test_roster_ends_the_wait_for_inputs(federation, s3_server):
    """With four input parties and a floor of three, the leader goes ahead after the cut-off, and
    its roster lets everyone else go on; the roster is fixed once."""
    spec, keys = federation(parties=small_parties(inputs=4))
    assert spec.min_input_parties == 3 and len(spec.input_parties) == 4
    runs = party_runs(spec, keys, s3_server)
    for c in ("company_a", "company_b", "company_c"):
        stages.share(runs[c], aggregate(runs[c], [1, 2, 3]))
    for c in ("company_a", "company_b"):
        state = waiting_for(runs[c], "inputs")
        assert not state.ready and state.missing == ["company_d"]
    # After the cut-off every compute party goes ahead; the leader fixes the roster, the others read it.
    for c in ("company_a", "company_b"):
        state = waiting_for(runs[c], "inputs", cutoff_passed=True)
        assert state.ready and state.missing == ["company_d"]

    roster = ["company_a", "company_b", "company_c"]
    assert stages.fix_roster(runs["company_a"], 1, wait_seconds=5) == (1, roster)
    assert stages.fix_roster(runs["company_c"], 1, wait_seconds=5) == (1, roster)  # followers read it
    state = waiting_for(runs["company_b"], "inputs")
    assert state.ready and state.stop is None

    # A late party and a retried leader do not change the roster of an attempt.
    stages.share(runs["company_d"], aggregate(runs["company_d"], [1, 2, 3]))
    assert stages.fix_roster(runs["company_a"], 1, wait_seconds=5) == (1, roster)
    assert stages.fix_roster(runs["company_b"], 1, wait_seconds=5) == (1, roster)


def test_a_follower_waiting_for_the_roster_lists_only_the_rosters_until_one_appears(federation, s3_server):
    """While no roster is there, a follower's pause costs one LIST of the rosters, not the three
    control listings; the roster the leader then publishes ends the wait with its verified roster."""
    import threading
    from collections import Counter

    spec, keys = federation(parties=small_parties(inputs=3))
    runs = party_runs(spec, keys, s3_server)
    for c in ("company_a", "company_b", "company_c"):
        stages.share(runs[c], aggregate(runs[c], [1, 2, 3]))
    follower = runs["company_b"]
    listed: list[str] = []
    for client in follower.store.clients():
        client.meta.events.register(
            "before-call.s3.ListObjectsV2",
            lambda params, **_: listed.append(params["query_string"]["prefix"].rsplit("/", 2)[-2]),
        )
    leader = threading.Timer(1.0, stages.fix_roster, (runs["company_a"], 1), {"wait_seconds": 10})
    leader.start()
    try:
        attempt, roster = stages.fix_roster(follower, 1, wait_seconds=10)
    finally:
        leader.join()
    assert (attempt, roster) == (1, ["company_a", "company_b", "company_c"])
    counts = Counter(listed)  # the three control listings run at once, in any order
    assert counts["abort"] == counts["outputs"] == 2, listed  # the first decision and the roster's
    assert counts["roster"] >= 2 + 5, listed  # and one per pause in between (0.1 s apart for 1 s)


def test_a_follower_that_sees_no_roster_by_its_deadline_names_the_leader_and_the_aborts(federation, s3_server):
    """Without a roster, a follower's wait ends at its deadline with a StageError that names the
    leader and quotes the run's verified abort records."""
    spec, keys = federation(parties=small_parties(inputs=4))
    runs = party_runs(spec, keys, s3_server)
    for c in ("company_a", "company_b", "company_c"):
        stages.share(runs[c], aggregate(runs[c], [1, 2, 3]))
    stages.withdraw(runs["company_d"], "aggregation-failed", "aggregate")
    with pytest.raises(stages.StageError) as caught:
        stages.fix_roster(runs["company_b"], 1, wait_seconds=0.5)
    message = str(caught.value)
    assert "the leader company_a published no live roster within 0 s" in message, message
    assert "company_d (inputs): aggregate failed: aggregation-failed" in message, message


def test_a_leader_that_goes_on_with_its_waits_listing_still_includes_a_party_that_shared_since(federation, s3_server):
    """The leader's wait went ahead after the cut-off without company_d; company_d shares before
    the roster is fixed. Fixing the roster from the wait's listing (``fix_roster(view=...)``) fetches
    the markers that listing lacked, so company_d is on the roster: leaving it out would have every
    compute party refuse the attempt, since they see its marker signed before the roster."""
    from mpc_federation import waiting

    spec, keys = federation(parties=small_parties(inputs=4))
    runs = party_runs(spec, keys, s3_server)
    companies = [p.id for p in spec.input_parties]
    for c in companies[:3]:
        stages.share(runs[c], aggregate(runs[c], [1, 2, 3]))
    now = time.time()
    state, view = waiting.wait(runs["company_a"], "inputs", deadline=now + 30, cutoff=now)
    assert state.ready and state.missing == ["company_d"]
    stages.share(runs["company_d"], aggregate(runs["company_d"], [1, 2, 3]))
    assert runs["company_a"].channel.input_done_key("company_d") not in view.keys
    assert stages.fix_roster(runs["company_a"], 1, wait_seconds=5, view=view) == (1, companies)


def test_edited_spec_at_one_party_names_that_party(federation, s3_server, tmp_path):
    """A party that runs an edited copy of the spec is caught by the hash in every envelope."""
    spec, keys = federation()
    runs = party_runs(spec, keys, s3_server)
    raw = yaml.safe_load(spec.source.read_text())
    raw["description"] = "edited by company_a only"
    edited_path = tmp_path / "edited" / "taxi_hhi.yaml"
    edited_path.parent.mkdir()
    edited_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    edited = load_spec(edited_path)
    assert edited.spec_hash != spec.spec_hash
    rogue = PartyRun(edited, "company_a", DATE, keys["company_a"], runs["company_a"].store)
    assert rogue.channel.root == runs["company_b"].channel.root  # they do meet in the bucket
    stages.share(rogue, aggregate(rogue, [10**11, 10**11, 10**11]))
    channel = runs["company_b"].channel
    with pytest.raises(IntegrityError) as info:
        channel.read(channel.input_key("company_a", "company_b"), "input-shares", "company_a", to="company_b")
    msg = str(info.value)
    assert "spec_hash" in msg and "party company_a runs a different federation spec than company_b" in msg


def test_a_compute_partys_seat_is_what_start_mpc_takes(federation, s3_server):
    """The seat's fields are start_mpc's parameters: mpyc_seat gives them all, and the job carries them."""
    spec, keys = federation()
    run = party_runs(spec, keys, s3_server)["company_b"]
    seat = computing.mpyc_seat(run)
    assert set(seat) == set(SEAT_FIELDS)
    job = computing.mpc_job(run, 1, ["company_a"], {}, SimpleNamespace(withheld=[]), {})
    assert seat_of(job) == seat and seat["party_index"] == 1


def test_run_key():
    assert run_key(DATE) == RUN
    assert run_key(datetime(2024, 4, 15, 3, 0)) == RUN  # naive means UTC
    assert run_key(datetime(2024, 4, 15, 5, 0, tzinfo=timezone(timedelta(hours=2)))) == RUN
