"""Conditional writes checked, not assumed: against moto (honours If-None-Match) and rclone's S3
server (``rclone serve s3``, which ignores it), each started on loopback by this module."""

from __future__ import annotations

import threading

import localnet
import pytest

from mpc_federation import agreement
from mpc_federation.store import PROBE_KEY, ConditionalWritesError, CoordinationStore, StoreConfig


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    started = {kind: localnet.S3Server(tmp_path_factory.mktemp(kind), kind=kind).start() for kind in ("moto", "rclone")}
    yield started
    for server in started.values():
        server.stop()


def store_at(server, bucket: str, conditional_writes: str) -> CoordinationStore:
    config = StoreConfig(
        bucket=bucket,
        endpoint_url=server.url,
        access_key="testing",
        secret_key="testing",
        conditional_writes=conditional_writes,
    )
    store = CoordinationStore(config)
    store.ensure_bucket()
    return store


def test_rclone_ignores_if_none_match_and_moto_honours_it(servers):
    """The premise, measured: the same two writes of one key, on each server."""
    outcome = {}
    for kind, server in servers.items():
        store = store_at(server, f"premise-{kind}", "emulated")
        outcome[kind] = [store._put_if_absent(store._client, "k", body) for body in (b"first", b"second")]
        outcome[kind].append(store.get("k"))
    assert outcome["moto"] == [True, False, b"first"]
    assert outcome["rclone"] == [True, True, b"second"]  # overwritten without a word


def test_a_store_that_ignores_conditional_writes_is_refused_at_first_write(servers):
    store = store_at(servers["rclone"], "refused", "required")
    with pytest.raises(ConditionalWritesError) as info:
        store.put_new("run/roster/attempt-1", b"roster")
    message = str(info.value)
    assert servers["rclone"].url in message and "'refused'" in message
    assert "ignores conditional writes" in message and '"conditional_writes": "emulated"' in message
    with pytest.raises(ConditionalWritesError):
        store.put("run/inputs/a", b"shares")  # every write, not only the roster's
    assert store.list("run/") == []  # nothing of the run was written
    assert store.get(PROBE_KEY) is not None  # only the probe


def test_a_store_that_honours_them_passes_the_probe_once(servers):
    store = store_at(servers["moto"], "honoured", "required")
    assert store.probe_conditional_writes() is True
    assert store.put_new("run/roster/attempt-1", b"one") is True
    assert store.put_new("run/roster/attempt-1", b"two") is False
    assert store.get("run/roster/attempt-1") == b"one"
    # A second store of the same bucket in this process does not probe again.
    assert (servers["moto"].url, "honoured") in CoordinationStore._checked


def test_emulated_conditional_writes_on_rclone(servers):
    """The opt-in: look first, write, read back."""
    store = store_at(servers["rclone"], "emulated", "emulated")
    assert store.put_new("run/roster/attempt-1", b"one") is True
    assert store.put_new("run/roster/attempt-1", b"two") is False  # seen before writing
    assert store.get("run/roster/attempt-1") == b"one"


def test_emulation_residual_race_is_caught_by_the_roster_agreement(servers):
    """Two writers that both look before either writes can both be told they wrote (the documented
    race of ``emulated``); the last write stays. Compute parties that then hold different rosters of
    one attempt are refused by the agreement check every compute party runs inside MPyC."""
    store = store_at(servers["rclone"], "race", "emulated")
    both_looked = threading.Barrier(2)
    original_exists = store.exists

    def exists_then_wait(key):
        seen = original_exists(key)
        both_looked.wait(10)
        return seen

    store.exists = exists_then_wait
    told: dict[str, bool] = {}
    writers = [
        threading.Thread(target=lambda b=body: told.__setitem__(b.decode(), store.put_new("r", b)))
        for body in (b"leader-task-1", b"leader-task-2")
    ]
    for w in writers:
        w.start()
    for w in writers:
        w.join(30)
    assert store.get("r") in (b"leader-task-1", b"leader-task-2")
    # At least the writer whose object stayed was told True; a party that read the other roster
    # before it was overwritten disagrees with the rest, and the agreement check refuses the run.
    assert told[store.get("r").decode()] is True
    base = {
        "attempt": 1,
        "roster": ["a", "b", "c"],
        "roster_at": 5.0,
        "seen": ["a", "b", "c"],
        "ledger": {"fixed_roster": None, "withheld": []},
    }
    other = {**base, "roster": ["a", "b"], "seen": ["a", "b"]}
    with pytest.raises(agreement.AgreementError, match="disagree with x on roster"):
        agreement.check([base, other, base], ["x", "y", "z"])


def test_a_party_probes_where_its_role_may_write_and_no_reader_looks(federation):
    """The bucket policy lets a party write ``<prefix>/*/*/*/<party>/*`` only; run listings and the
    ledger never see the probe."""
    from mpc_federation.layout import ledger_root, probe_key, run_date

    spec, _ = federation()
    key = probe_key(spec, "company_b")
    segments = key.split("/")
    assert segments[0] == spec.prefix and segments[4] == "company_b" and len(segments) == 6
    assert run_date(segments[2]) is None and not key.startswith(ledger_root(spec) + "/")


def test_the_leader_reads_back_a_roster_that_is_already_there(federation, s3_server):
    """fix_roster no longer discards the put-if-absent's answer: a roster key that already holds
    something else than this leader's roster stops the attempt at once, naming the key, instead of
    a wait that ends with no explanation."""
    from test_stages_s3 import aggregate, party_runs

    from mpc_federation import stages

    spec, keys = federation()
    runs = party_runs(spec, keys, s3_server)
    for pid in ("company_a", "company_b", "company_c"):
        stages.share(runs[pid], aggregate(runs[pid], [1, 2, 3]))
    leader = runs[spec.leader.id]
    key = leader.channel.roster_key(1)
    leader.store.put(key, b"written first by someone else")
    with pytest.raises(stages.StageError) as info:
        stages.fix_roster(leader, 1, wait_seconds=30)
    assert key in str(info.value) and "not this leader's roster" in str(info.value)
    assert leader.store.get(key) == b"written first by someone else"  # and nothing overwrote it

    # The leader's own roster of the attempt, found again by a rerun of the same attempt, is kept.
    other = runs["company_b"].channel.roster_key(2)
    assert stages.fix_roster(leader, 2, wait_seconds=30) == (2, ["company_a", "company_b", "company_c"])
    assert stages.fix_roster(leader, 2, wait_seconds=30) == (2, ["company_a", "company_b", "company_c"])
    assert leader.store.get(other) is not None


@pytest.mark.parametrize(
    "value",
    [
        "2026-12-01T23:10:18.524Z",
        "2026-12-01T23:10:18Z",
        "2026-12-01T23:10:18.123456789Z",
        "Tue, 01 Dec 2026 23:10:18 GMT",
        "2026-12-01T23:10:18+02:00",
        "1796166618",
    ],
)
def test_timestamps_parse_to_the_instants_botocore_gives(value):
    from botocore.utils import parse_timestamp as botocore_parse

    from mpc_federation.store import parse_timestamp

    assert parse_timestamp(value) == botocore_parse(value)


def test_both_clients_of_a_store_parse_timestamps_fast(servers):
    """A listing's and a GET's timestamps come from ``store.parse_timestamp`` (which answers in
    ``datetime.UTC``; botocore's own parser answers with dateutil's time zones)."""
    from datetime import UTC

    for kind, server in servers.items():
        store = store_at(server, f"timestamps-{kind}", "emulated")
        store.put("some/key", b"x")
        for client in store.clients():
            listed = client.list_objects_v2(Bucket=store.bucket, Prefix="some/")["Contents"][0]["LastModified"]
            got = client.get_object(Bucket=store.bucket, Key="some/key")["LastModified"]
            assert listed.tzinfo is UTC and got.tzinfo is UTC, kind
        assert list(store.list_with_etags("some/")) == ["some/key"]
