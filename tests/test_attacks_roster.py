"""Attacks on the roster and on what is released, with real MPyC processes (over mutual TLS) and the
real local S3 server: differencing across rosters and nights, overlapping periods, junk and hidden
coordination objects, a bucket operator who deletes the disclosure ledger, and the UI without
private keys. Each asserts a clear error (or a clear skip) on every affected party, that nothing
is revealed that the ledger forbids, that the honest parties' local data is untouched, and that a
retry succeeds once the cause is removed."""

from __future__ import annotations

import functools
import hashlib
import json
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from conftest import TAXI_TEMPLATE, in_threads, small_parties

from mpc_federation import stages
from mpc_federation.envelope import PartyKeys
from mpc_federation.launcher import MPCRefused
from mpc_federation.layout import ledger_root
from mpc_federation.ledger import NothingToRelease
from mpc_federation.party import PartyRun
from mpc_federation.programs import load_program
from mpc_federation.store import CoordinationStore
from mpc_operators.hooks import COORDINATION_CONN_ID
from mpc_operators.keys import KEYS_CONN_ID

HHI = load_program(Path(__file__).resolve().parents[1] / "include" / "programs" / "hhi.py").module

APRIL = datetime(2024, 4, 2, 3, tzinfo=UTC)  # period 2024-01..2024-03
APRIL_LATER = datetime(2024, 4, 3, 3, tzinfo=UTC)  # the same period, the next night
MAY = datetime(2024, 5, 2, 3, tzinfo=UTC)  # period 2024-02..2024-04: overlaps April's
COMPUTES = ("company_a", "company_b", "company_c")
BASE = {
    "company_a": 300_000_000_001,
    "company_b": 200_000_000_003,
    "company_c": 100_000_000_005,
    "company_d": 60_000_000_007,
    "company_e": 30_000_000_009,
}


def revenue(party: str, month: str) -> int:
    """Distinct, deterministic monthly revenue of a party (the same month has the same value in
    every run, as real data would)."""
    y, m = map(int, month.split("-"))
    return BASE[party] + 1_000_003 * (y * 12 + m) + 17 * sorted(BASE).index(party)


def vector(party: str, labels: list[str]) -> list[int]:
    """A party's aggregate over a run's labels: the whole period, then each month."""
    months = labels[1:]
    return [sum(revenue(party, m) for m in months), *(revenue(party, m) for m in months)]


def reference(parties, labels: list[str]) -> list:
    """The plaintext HHI per label, as the program rounds it (its own reference)."""
    return HHI.plaintext([{"revenue_cents": vector(p, labels)} for p in parties])["hhi"]


class HidingStore:
    """The bucket as a dishonest operator serves it to one party: some keys hidden from listings
    and reads."""

    def __init__(self, store: CoordinationStore, hide):
        self._store, self._hide = store, hide

    def __getattr__(self, name):
        return getattr(self._store, name)

    def list(self, prefix: str, **kwargs):
        return [k for k in self._store.list(prefix, **kwargs) if not self._hide(k)]

    def list_with_etags(self, prefix: str, **kwargs):
        return {k: v for k, v in self._store.list_with_etags(prefix, **kwargs).items() if not self._hide(k)}

    def get(self, key: str):
        return None if self._hide(key) else self._store.get(key)


class Federation:
    """Five companies (a, b, c also compute) and a regulator; aggregates and ledgers as local files."""

    def __init__(self, federation, s3_server, tmp_path: Path, period: dict | None = None, cutoff=None):
        overrides: dict = {"deadlines": {"connect": 8, "mpc": 60, **({"cutoff": cutoff} if cutoff else {})}}
        if period is not None:  # the taxi spec's aggregation with another period
            aggregation = yaml.safe_load(TAXI_TEMPLATE.read_text())["aggregation"]
            aggregation["job"] = str((TAXI_TEMPLATE.parent / aggregation["job"]).resolve())
            overrides["aggregation"] = {**aggregation, "period": period}
        self.spec, self.keys = federation(small_parties(inputs=5), overrides=overrides)
        self.config = s3_server.store_config(self.spec.bucket)
        self.store = CoordinationStore(self.config)
        self.tmp = tmp_path
        self.ledgers = {pid: tmp_path / pid / "ledger" for pid in COMPUTES}
        self.files: dict[tuple[str, datetime], Path] = {}

    def run(self, pid: str, date: datetime, store=None) -> PartyRun:
        return PartyRun(self.spec, pid, date, self.keys[pid], store or CoordinationStore(self.config))

    def labels(self, date: datetime) -> list[str]:
        return self.spec.dimensions(date)["market"]

    def share(self, pid: str, date: datetime) -> dict:
        labels = self.labels(date)
        values = vector(pid, labels)
        path = self.tmp / pid / date.strftime("%Y%m%d") / "aggregate.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            json.dumps(
                {
                    "format": "mpc-aggregate/1",
                    "party": pid,
                    "dimensions": {"market": labels},
                    "values": {"revenue_cents": values},
                }
            )
        )
        self.files[(pid, date)] = path
        return stages.share(self.run(pid, date), json.loads(Path(path).read_text()))

    def local_state(self) -> dict:
        return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in self.files.values()}

    def compute_all(self, date: datetime, attempt: int, runs: dict | None = None, ledgers: dict | None = None) -> dict:
        runs = runs or {pid: self.run(pid, date) for pid in COMPUTES}
        ledgers = self.ledgers if ledgers is None else ledgers
        return in_threads(
            {
                pid: functools.partial(stages.compute, runs[pid], attempt=attempt, ledger_dir=ledgers[pid])
                for pid in COMPUTES
            },
            timeout=120,
        )

    def start_again(self, date: datetime, attempt: int) -> None:
        """A compute party gives ``attempt`` up, so that every party's retry meets on a fresh one
        (a retry of a party that finished the live attempt ends as it did: ``roster.finished_here``)."""
        stages.give_up(self.run("company_c", date).channel, attempt, "a compute party starts the run again")

    def reveal(self, date: datetime) -> dict:
        return stages.reveal(self.run("regulator", date))

    def expect_nothing_revealed(self, date: datetime) -> None:
        with pytest.raises(stages.StageError, match="no live MPC attempt"):
            stages.reveal(self.run("regulator", date))

    def expect_nothing_released(self, date: datetime) -> None:
        """Nothing revealed, and nothing on record in the bucket's ledger."""
        self.expect_nothing_revealed(date)
        assert self.store.list(ledger_root(self.spec) + "/") == []

    def expect_result(
        self, result: dict, date: datetime, roster: list[str], attempt: int, withheld: list[list[str]] | None = None
    ) -> None:
        assert result["attempt"] == attempt and result["roster"] == roster
        assert result["withheld"] == (withheld or [])
        labels = self.labels(date)
        hidden = [label for dim, label in (withheld or [])]
        assert result["outputs"]["hhi"]["withheld"] == hidden
        expected = [None if label in hidden else value for label, value in zip(labels, reference(roster, labels))]
        assert [None if x is None else Decimal(x) for x in result["outputs"]["hhi"]["exact"]] == expected
        assert None not in [x for label, x in zip(labels, expected) if label not in hidden]

    def roster_record(self, date: datetime, attempt: int) -> dict:
        return self.run("regulator", date).channel.read(
            self.run("regulator", date).channel.roster_key(attempt), "roster", "company_a", attempt=attempt
        )


@pytest.fixture
def fed(federation, s3_server, tmp_path):
    return Federation(federation, s3_server, tmp_path)


@pytest.fixture
def airflow_conn(s3_server, monkeypatch):
    """The coordination connection as a party's Airflow has it; no keys connection at all."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{COORDINATION_CONN_ID.upper()}", json.dumps(s3_server.connection()))
    monkeypatch.delenv(f"AIRFLOW_CONN_{KEYS_CONN_ID.upper()}", raising=False)


def confirm_inclusion(fed: Federation, pid: str, date: datetime):
    """The input party's confirm_inclusion task (the real sensor, one poke): True, or what it raised."""
    from sensors.coordination import MPCCoordinationSensor

    task = MPCCoordinationSensor(
        task_id="confirm_inclusion",
        spec_path=str(fed.spec.source),
        party_id=pid,
        stage="roster",
        deferrable=False,
        poke_interval=0.2,
    )
    try:
        return task.poke({"logical_date": date})
    except (AirflowFailException, AirflowSkipException) as exc:
        return exc


def explain(fed: Federation, date: datetime) -> str:
    """Every verified abort reason of the run, as the parties' tasks report them."""
    return stages.explain_aborts(fed.run("regulator", date).reader)


def assert_refused(out: dict, *needles: str, kind: type = stages.StageError) -> None:
    for pid in COMPUTES:
        assert isinstance(out[pid], kind), (pid, out[pid])
        for needle in needles:
            assert needle in str(out[pid]), (pid, str(out[pid]))


# -- 1. differencing across rosters ---------------------------------------------------------------------
JULY = datetime(2024, 7, 2, 3, tzinfo=UTC)  # period 2024-04..2024-06: no month in common with April's


def test_a_snapshot_keeps_its_roster_across_periods(federation, s3_server, tmp_path, airflow_conn):
    """A job that reads the same data whatever the months (pay_equity's payroll as it stands) makes
    runs of disjoint periods runs over nearly the same data: April released over [a..d], July over
    [a..e] would give the recipient company_e's part by difference. A spec that declares its data a
    snapshot (``aggregation.period.snapshot``, which needs ``deadlines.cutoff: never``) keeps the
    roster of its first release in every period: company_e shares in July and is left out, naming
    the ledger; the result is July's over [a..d]. Without the declaration, months that do not
    overlap fix nothing (the control). In April company_e withdrew, which without a cut-off is
    final for the run: its later share is refused."""
    from mpc_federation import ledger
    from mpc_federation.roster import ledger_records

    fed = Federation(federation, s3_server, tmp_path, period={"months": 3, "snapshot": True}, cutoff="never")
    four = ["company_a", "company_b", "company_c", "company_d"]
    for pid in four:
        fed.share(pid, APRIL)
    # company_e's aggregation failed in April: it withdrew, and without a cut-off that is final for
    # the run (the operator could otherwise show the withdrawal instead of shares made after it).
    stages.withdraw(fed.run("company_e", APRIL), "aggregation-failed", "aggregate")
    with pytest.raises(stages.StageError, match="company_e withdrew from run 20240402T030000Z: without a cut-off"):
        fed.share("company_e", APRIL)
    out = fed.compute_all(APRIL, 1)
    assert all(isinstance(out[p], dict) and out[p]["roster"] == four for p in COMPUTES), out
    fed.expect_result(fed.reveal(APRIL), APRIL, four, 1)

    for pid in [*four, "company_e"]:  # July: company_e shares too
        fed.share(pid, JULY)
    records = ledger_records(fed.run("company_a", JULY), fed.ledgers["company_a"])
    july_months = ledger.period(fed.run("company_a", JULY).dims)[0]
    assert ledger.fixed_roster(records, july_months) is None  # the control: by months alone, nothing fixed
    out = fed.compute_all(JULY, 1)
    assert all(isinstance(out[p], dict) and out[p]["roster"] == four for p in COMPUTES), out
    record = fed.roster_record(JULY, 1)
    assert record["roster"] == four
    assert (
        "the disclosure ledger fixed the roster of 2024-01..2024-03 to [company_a, company_b, company_c, company_d]"
        in (record["left_out"]["company_e"])
    )
    fed.expect_result(fed.reveal(JULY), JULY, four, 1)
    skipped = confirm_inclusion(fed, "company_e", JULY)
    assert isinstance(skipped, AirflowSkipException) and "fixed the roster" in str(skipped)


def test_differencing_across_rosters_is_refused(fed, airflow_conn):
    run_name = "20240402T030000Z"
    for pid in ("company_a", "company_b", "company_c", "company_d"):
        fed.share(pid, APRIL)
    out = fed.compute_all(APRIL, 1)
    assert all(isinstance(out[p], dict) and out[p]["roster"] == [*COMPUTES, "company_d"] for p in COMPUTES), out
    first = fed.reveal(APRIL)
    four = ["company_a", "company_b", "company_c", "company_d"]
    fed.expect_result(first, APRIL, four, 1)
    # Every compute party has its record in the bucket and a private copy.
    assert sorted(fed.store.list(ledger_root(fed.spec) + "/")) == [
        f"{ledger_root(fed.spec)}/{p}/{run_name}-attempt-1" for p in COMPUTES
    ]
    for pid in COMPUTES:
        assert (fed.ledgers[pid] / "taxi_hhi" / f"{run_name}-attempt-1").is_file()

    # company_e shares late; a new attempt over the same months must keep the released roster.
    fed.share("company_e", APRIL)
    local = fed.local_state()
    fed.start_again(APRIL, 1)
    out = fed.compute_all(APRIL, 2)
    assert all(isinstance(out[p], dict) and out[p]["roster"] == four and out[p]["withheld"] == [] for p in COMPUTES), (
        out
    )
    record = fed.roster_record(APRIL, 2)
    reason = (
        "the disclosure ledger fixed the roster of 2024-01..2024-03 to [company_a, company_b, company_c, "
        f"company_d] (released in run {run_name} attempt 1)"
    )
    assert record["roster"] == four and record["left_out"] == {"company_e": reason}
    second = fed.reveal(APRIL)
    fed.expect_result(second, APRIL, four, 2)
    assert second["outputs"]["hhi"]["exact"] == first["outputs"]["hhi"]["exact"]  # nothing new to difference
    skipped = confirm_inclusion(fed, "company_e", APRIL)
    assert isinstance(skipped, AirflowSkipException) and reason in str(skipped)
    assert confirm_inclusion(fed, "company_d", APRIL) is True

    # The operator hides every ledger record from the leader, whose own copy is lost: the leader
    # proposes [a..e], the others' ledgers say otherwise, and the MPC refuses on every party.
    leader_store = HidingStore(fed.store, lambda k: k.startswith(ledger_root(fed.spec) + "/"))
    runs = {pid: fed.run(pid, APRIL) for pid in COMPUTES}
    runs["company_a"] = fed.run("company_a", APRIL, store=leader_store)
    fed.start_again(APRIL, 2)
    out = fed.compute_all(APRIL, 3, runs, ledgers={**fed.ledgers, "company_a": fed.tmp / "lost"})
    assert_refused(out, "refused by the compute parties", "disagree on the disclosure ledger", kind=MPCRefused)
    assert "refused by the compute parties: compute parties disagree on the disclosure ledger" in explain(
        fed, APRIL
    )  # every party's reason in the bucket
    fed.expect_nothing_revealed(APRIL)
    assert fed.local_state() == local

    # The cause removed: the next attempt is over the released roster again.
    out = fed.compute_all(APRIL, 4)
    assert all(isinstance(out[p], dict) and out[p]["roster"] == four for p in COMPUTES), out
    fed.expect_result(fed.reveal(APRIL), APRIL, four, 4)


# -- 2. a later night over the same period -----------------------------------------------------------------
def test_a_later_night_over_the_same_period_releases_nothing_new(fed, airflow_conn):
    for pid in COMPUTES:
        fed.share(pid, APRIL)
    assert all(isinstance(r, dict) for r in fed.compute_all(APRIL, 1).values())
    fed.expect_result(fed.reveal(APRIL), APRIL, list(COMPUTES), 1)

    for pid in (*COMPUTES, "company_d"):
        fed.share(pid, APRIL_LATER)
    local = fed.local_state()
    out = fed.compute_all(APRIL_LATER, 1)
    for pid in COMPUTES:
        assert isinstance(out[pid], NothingToRelease), out[pid]
        assert "nothing to release" in str(out[pid]) and "released in run 20240402T030000Z" in str(out[pid])
    record = fed.roster_record(APRIL_LATER, 1)
    assert record["roster"] == list(COMPUTES) and "company_d" in record["left_out"]
    state = stages.wait_state(fed.run("regulator", APRIL_LATER), "result", cutoff_passed=False)
    assert state.skip and "released in run 20240402T030000Z" in state.skip and not state.ready
    # The recipient's wait skips (poke and trigger share the rule); company_d skips too.
    from sensors.coordination import MPCCoordinationSensor

    with pytest.raises(AirflowSkipException, match="nothing to release"):
        MPCCoordinationSensor(
            task_id="wait_for_result",
            spec_path=str(fed.spec.source),
            party_id="regulator",
            stage="result",
            deferrable=False,
        ).poke({"logical_date": APRIL_LATER})
    assert isinstance(confirm_inclusion(fed, "company_d", APRIL_LATER), AirflowSkipException)
    # A retry of the compute tasks skips as the first try did, and fixes no second roster.
    out = fed.compute_all(APRIL_LATER, 2)
    assert all(isinstance(out[p], NothingToRelease) and "released in run 20240402T030000Z" in str(out[p]) for p in out)
    root = fed.run("regulator", APRIL_LATER).channel.root
    assert fed.store.list(f"{root}/roster/") == [fed.run("regulator", APRIL_LATER).channel.roster_key(1)]
    assert not any(fed.store.list(f"{root}/outputs/"))
    assert fed.local_state() == local


# -- 3. an overlapping period with a new roster ------------------------------------------------------------------
def test_overlapping_period_keeps_the_released_roster_and_withholds_released_months(fed, airflow_conn):
    for pid in COMPUTES:
        fed.share(pid, APRIL)
    assert all(isinstance(r, dict) for r in fed.compute_all(APRIL, 1).values())
    fed.expect_result(fed.reveal(APRIL), APRIL, list(COMPUTES), 1)

    # May's period (Feb..Apr) shares Feb and Mar with April's. company_c does not share; company_d does:
    # the released roster [a, b, c] cannot be met, and [a, b, d] would difference Feb and Mar.
    for pid in ("company_a", "company_b", "company_d"):
        fed.share(pid, MAY)
    local = fed.local_state()
    out = fed.compute_all(MAY, 1)
    assert_refused(out)
    assert (
        "month 2024-02 was released over [company_a, company_b, company_c] in run 20240402T030000Z "
        "attempt 1; company_c has not shared in this run" in str(out["company_a"])
    )
    for pid in ("company_b", "company_c"):
        assert "company_c has not shared" in str(out[pid]), out[pid]
    fed.expect_nothing_revealed(MAY)
    assert fed.local_state() == local

    # company_c shares: May is computed over [a, b, c]; Feb and Mar are withheld, Apr and the
    # whole of Feb..Apr are released; company_d is left out with the ledger's reason.
    fed.share("company_c", MAY)
    out = fed.compute_all(MAY, 2)
    withheld = [["market", "2024-02"], ["market", "2024-03"]]
    assert all(
        isinstance(out[p], dict) and out[p]["roster"] == list(COMPUTES) and out[p]["withheld"] == withheld
        for p in COMPUTES
    ), out
    result = fed.reveal(MAY)
    fed.expect_result(result, MAY, list(COMPUTES), 2, withheld)
    assert fed.labels(MAY) == ["all", "2024-02", "2024-03", "2024-04"]
    skipped = confirm_inclusion(fed, "company_d", MAY)
    assert isinstance(skipped, AirflowSkipException) and "roster of 2024-02..2024-03" in str(skipped)
    key = f"{ledger_root(fed.spec)}/company_b/20240502T030000Z-attempt-2"
    entry = fed.run("regulator", MAY).channel.read(key, "ledger", "company_b", attempt=2)  # signed over May's run
    assert entry["units"] == ["all@2024-02..2024-04", "2024-04"] and entry["withheld"] == withheld
    assert entry["roster"] == list(COMPUTES) and entry["months"] == ["2024-02", "2024-03", "2024-04"]
    assert sorted(entry["inputs"]) == sorted(
        fed.run("company_b", MAY).channel.input_key(p, "company_b") for p in COMPUTES
    )


# -- 4. junk coordination objects ---------------------------------------------------------------------------
def test_junk_unsigned_objects_neither_start_nor_stop_anyone(fed, airflow_conn):
    for pid in ("company_a", "company_b", "company_c", "company_d"):
        fed.share(pid, APRIL)
    run = fed.run("company_b", APRIL)
    root = run.channel.root
    # Unsigned junk where company_e's withdrawal would be (that used to make everyone go ahead at
    # once), a forged done marker for it, and a junk abort of attempt 1 by company_c.
    fed.store.put(f"{root}/abort/company_e/inputs", b"junk")
    forged = PartyKeys.generate("company_e")
    mallory = fed.run("company_e", APRIL)
    mallory.keys = forged  # signs as company_e with a key that is not in the spec
    mallory.channel.publish(run.channel.input_done_key("company_e"), "input-done", "input", {"inputs": []})
    fed.store.put(f"{root}/abort/company_c/attempt-1", json.dumps({"header": {"party": "company_c"}}).encode())
    for pid in COMPUTES:
        state = stages.wait_state(fed.run(pid, APRIL), "inputs", cutoff_passed=False)
        assert not state.ready and state.stop is None and state.missing == ["company_e"], (pid, state)
    view = run.reader.verified()
    assert set(view.invalid) == {
        f"{root}/abort/company_e/inputs",
        f"{root}/inputs/company_e/done",
        f"{root}/abort/company_c/attempt-1",
    }
    assert "signature does not verify" in view.invalid[f"{root}/inputs/company_e/done"]
    # The deferrable trigger applies the same rule to verified objects.
    import asyncio
    import time

    from sensors.triggers import CoordinationTrigger

    trigger = CoordinationTrigger(
        spec_path=str(fed.spec.source),
        party_id="company_b",
        run=run.channel.run,
        stage="inputs",
        coordination_conn_id=COORDINATION_CONN_ID,
        deadline=time.time() + 1.5,
        cutoff=time.time() + 60,
        poll_interval=0.2,
    )

    async def first():
        async for event in trigger.run():
            return event.payload

    assert asyncio.run(first()) == {"status": "timeout", "missing": ["company_e"]}

    # The real shares of company_e: the run goes ahead, and the junk abort of attempt 1 stops nobody.
    fed.share("company_e", APRIL)
    local = fed.local_state()
    assert stages.wait_state(fed.run("company_b", APRIL), "inputs", cutoff_passed=False).ready
    out = fed.compute_all(APRIL, 1)
    everyone = ["company_a", "company_b", "company_c", "company_d", "company_e"]
    assert all(isinstance(out[p], dict) and out[p]["roster"] == everyone for p in COMPUTES), out
    fed.expect_result(fed.reveal(APRIL), APRIL, everyone, 1)
    assert fed.local_state() == local


# -- 5. hidden done markers ---------------------------------------------------------------------------------------
def test_done_marker_hidden_from_the_leader_is_refused_inside_the_mpc(fed, airflow_conn):
    for pid in ("company_a", "company_b", "company_c", "company_d"):
        fed.share(pid, APRIL)
    local = fed.local_state()
    done_d = fed.run("company_a", APRIL).channel.input_done_key("company_d")
    runs = {pid: fed.run(pid, APRIL) for pid in COMPUTES}
    runs["company_a"] = fed.run("company_a", APRIL, store=HidingStore(fed.store, lambda k: k == done_d))
    out = fed.compute_all(APRIL, 1, runs)
    assert_refused(
        out,
        "refused by the compute parties: roster [company_a, company_b, company_c] of attempt 1 "
        "leaves out company_d, whose shares company_b saw before the roster was fixed",
        kind=MPCRefused,
    )
    fed.expect_nothing_released(APRIL)
    failed = confirm_inclusion(fed, "company_d", APRIL)
    assert isinstance(failed, AirflowFailException)
    assert "the roster [company_a, company_b, company_c] of attempt 1" in str(failed)
    assert fed.local_state() == local

    out = fed.compute_all(APRIL, 2)  # the cause removed
    four = ["company_a", "company_b", "company_c", "company_d"]
    assert all(isinstance(out[p], dict) and out[p]["roster"] == four for p in COMPUTES), out
    fed.expect_result(fed.reveal(APRIL), APRIL, four, 2)
    assert confirm_inclusion(fed, "company_d", APRIL) is True


def test_done_marker_hidden_from_everyone_fails_the_left_out_party_loudly(fed, airflow_conn):
    for pid in ("company_a", "company_b", "company_c", "company_d"):
        fed.share(pid, APRIL)
    local = fed.local_state()
    done_d = fed.run("company_a", APRIL).channel.input_done_key("company_d")
    runs = {pid: fed.run(pid, APRIL, store=HidingStore(fed.store, lambda k: k == done_d)) for pid in COMPUTES}
    out = fed.compute_all(APRIL, 1, runs)
    assert all(isinstance(out[p], dict) and out[p]["roster"] == list(COMPUTES) for p in COMPUTES), out
    failed = confirm_inclusion(fed, "company_d", APRIL)
    assert isinstance(failed, AirflowFailException), failed
    assert (
        "company_d shared for run 20240402T030000Z before the roster was fixed, but the roster "
        "[company_a, company_b, company_c] of attempt 1 (run 20240402T030000Z) leaves it out"
    ) in str(failed)
    assert fed.local_state() == local
    # The period is now released over [a, b, c] (hiding is a denial of service for company_d, not a
    # disclosure): another attempt keeps that roster, and company_d's task says why it is left out.
    fed.start_again(APRIL, 1)
    out = fed.compute_all(APRIL, 2)
    assert all(isinstance(out[p], dict) and out[p]["roster"] == list(COMPUTES) for p in COMPUTES), out
    fed.expect_result(fed.reveal(APRIL), APRIL, list(COMPUTES), 2)
    skipped = confirm_inclusion(fed, "company_d", APRIL)
    assert isinstance(skipped, AirflowSkipException) and "disclosure ledger fixed the roster" in str(skipped)


def test_without_a_cutoff_hiding_done_markers_from_everyone_releases_nothing(
    federation, s3_server, tmp_path, airflow_conn
):
    """The bucket's operator hides company_d's and company_e's done markers from every compute party,
    to shrink the roster to [a, b, c]: with firms of it and a recipient on its side, the floor's
    last honest firm is isolated (with the default cut-off that goes ahead, above). A spec with
    ``deadlines.cutoff: never`` leaves out only parties that withdrew: the wait for the inputs never
    goes ahead without d and e (it fails at its deadline naming them), and a roster without them is
    refused by the leader and by every compute party. Nothing is revealed; with the markers shown
    again the retry is over all five."""
    from mpc_federation import waiting
    from mpc_federation.roster import check_nobody_absent

    fed = Federation(federation, s3_server, tmp_path, cutoff="never")
    assert fed.spec.cutoff is None and waiting.deadlines(fed.spec, "inputs", 0.0)[1] == waiting.NEVER
    everyone = [*COMPUTES, "company_d", "company_e"]
    for pid in everyone:
        fed.share(pid, APRIL)
    local = fed.local_state()
    channel = fed.run("company_a", APRIL).channel
    hidden = {channel.input_done_key("company_d"), channel.input_done_key("company_e")}
    runs = {pid: fed.run(pid, APRIL, store=HidingStore(fed.store, lambda k: k in hidden)) for pid in COMPUTES}
    # A wait that began long ago is past any cut-off but this one: it never goes ahead without d, e.
    _, cutoff = waiting.deadlines(fed.spec, "inputs", time.time() - 10**6)
    state = stages.wait_state(runs["company_b"], "inputs", cutoff_passed=time.time() >= cutoff)
    assert not state.ready and state.missing == ["company_d", "company_e"]
    out = fed.compute_all(APRIL, 1, runs)
    for pid in COMPUTES:
        assert isinstance(out[pid], stages.StageError), (pid, out[pid])
    leader = str(out["company_a"])
    assert "leaves out company_d, company_e, which neither shared nor withdrew" in leader, leader
    for pid in ("company_b", "company_c"):  # a follower refuses such a roster too, from its own view
        follower = runs[pid].channel
        with pytest.raises(stages.StageError, match="leaves out company_d, company_e"):
            check_nobody_absent(follower, follower.verified().keys, list(COMPUTES))
    assert "deadlines.cutoff: never" in leader
    assert "leaves out company_d, company_e" in explain(fed, APRIL)  # the reason, for every party
    fed.expect_nothing_released(APRIL)
    assert fed.local_state() == local

    # The markers shown again: the leader's next attempt is over all five.
    fed.start_again(APRIL, 1)
    out = fed.compute_all(APRIL, 2)
    assert all(isinstance(out[p], dict) and out[p]["roster"] == everyone for p in COMPUTES), out
    fed.expect_result(fed.reveal(APRIL), APRIL, everyone, 2)


def test_an_older_sharing_served_to_one_compute_party_is_refused_inside_the_mpc(fed, airflow_conn):
    # company_e shares; the bucket's operator keeps its share for company_b, makes its done marker
    # unreadable so that company_e shares again (fresh random shares of the same values), then
    # serves company_b the older share. Mixed, the shares recombine to no value of company_e's.
    for pid in ("company_a", "company_b", "company_c", "company_d", "company_e"):
        fed.share(pid, APRIL)
    channel = fed.run("company_a", APRIL).channel
    to_b = channel.input_key("company_e", "company_b")
    older = fed.store.get(to_b)
    fed.store.put(channel.input_done_key("company_e"), b"unreadable")
    assert fed.share("company_e", APRIL)["status"] == "shared"  # its retry replaces every object
    newer = fed.store.get(to_b)
    assert newer != older
    fed.store.put(to_b, older)
    local = fed.local_state()

    out = fed.compute_all(APRIL, 1)
    assert_refused(
        out,
        "compute parties hold shares of different sharings of company_e (the bucket served some of "
        "them an older sharing of the same run)",
        kind=MPCRefused,
    )
    fed.expect_nothing_released(APRIL)
    assert fed.local_state() == local

    fed.store.put(to_b, newer)  # the cause removed: the bucket serves the current object
    out = fed.compute_all(APRIL, 2)
    everyone = ["company_a", "company_b", "company_c", "company_d", "company_e"]
    assert all(isinstance(out[p], dict) and out[p]["roster"] == everyone for p in COMPUTES), out
    fed.expect_result(fed.reveal(APRIL), APRIL, everyone, 2)


# -- 6. the bucket operator deletes the ledger --------------------------------------------------------------------
def test_deleted_ledger_records_the_private_copies_still_refuse(fed, airflow_conn):
    for pid in COMPUTES:
        fed.share(pid, APRIL)
    assert all(isinstance(r, dict) for r in fed.compute_all(APRIL, 1).values())
    fed.expect_result(fed.reveal(APRIL), APRIL, list(COMPUTES), 1)
    for key in fed.store.list(ledger_root(fed.spec) + "/"):
        fed.store._client.delete_object(Bucket=fed.spec.bucket, Key=key)
    assert fed.store.list(ledger_root(fed.spec) + "/") == []

    for pid in (*COMPUTES, "company_d"):
        fed.share(pid, APRIL_LATER)
    local = fed.local_state()
    # Every compute party still remembers: nothing to release, company_d is not let in.
    out = fed.compute_all(APRIL_LATER, 1)
    for pid in COMPUTES:
        assert isinstance(out[pid], NothingToRelease) and "released in run 20240402T030000Z" in str(out[pid])
    assert fed.roster_record(APRIL_LATER, 1)["roster"] == list(COMPUTES)

    # Even a leader that lost its own copy too cannot release: the others' copies refuse in the MPC.
    fed.start_again(APRIL_LATER, 1)
    out = fed.compute_all(APRIL_LATER, 2, ledgers={**fed.ledgers, "company_a": fed.tmp / "lost"})
    assert_refused(out, "disagree on the disclosure ledger", kind=MPCRefused)
    fed.expect_nothing_revealed(APRIL_LATER)
    assert fed.local_state() == local
    # With its copy back, the leader agrees again: nothing to release.
    out = fed.compute_all(APRIL_LATER, 3)
    assert all(isinstance(out[p], NothingToRelease) for p in COMPUTES), out


# -- 7. the UI without private keys -----------------------------------------------------------------------------------
def test_ui_overview_without_private_keys(fed, airflow_conn, monkeypatch, tmp_path):
    for pid in COMPUTES:
        fed.share(pid, APRIL)
    root = fed.run("regulator", APRIL).channel.root
    fed.store.put(f"{root}/abort/company_d/inputs", b"junk")
    assert all(isinstance(r, dict) for r in fed.compute_all(APRIL, 1).values())
    fed.share("company_e", APRIL)  # late: the ledger keeps it out of attempt 2
    fed.start_again(APRIL, 1)
    assert all(isinstance(r, dict) for r in fed.compute_all(APRIL, 2).values())
    fed.reveal(APRIL)

    def no_private_keys(*args, **kwargs):
        raise AssertionError("the UI loaded or made private keys")

    monkeypatch.setattr(PartyKeys, "generate", classmethod(no_private_keys))
    monkeypatch.setattr(PartyKeys, "from_json", classmethod(no_private_keys))
    monkeypatch.setenv("AIRFLOW__MPC__PARTY_ID", "regulator")
    monkeypatch.setenv("AIRFLOW__MPC__SPEC_DIR", str(fed.spec.source.parent))
    monkeypatch.setenv(f"AIRFLOW_CONN_{KEYS_CONN_ID.upper()}", json.dumps({"conn_type": "generic", "password": "x"}))
    from mpc_ui import data as ui_data
    from mpc_ui.federations import FEDERATIONS, Federations
    from mpc_ui.pages import render

    assert not hasattr(Federations, "keys")
    FEDERATIONS.load()
    data = ui_data.run_overview(fed.spec, FEDERATIONS.store(fed.spec), FEDERATIONS.party_id, "20240402T030000Z")
    assert data["me"] == "regulator" and data["status"] == "finished"
    states = {p["id"]: p["state"] for p in data["parties"]}
    assert states == {
        "company_a": "computed",
        "company_b": "computed",
        "company_c": "computed",
        "company_d": "waiting",
        "company_e": "shared",
        "regulator": "revealed",
    }
    assert data["roster"]["parties"] == list(COMPUTES) and data["roster"]["attempt"] == 2
    reason = data["roster"]["left_out"]["company_e"]
    assert reason.startswith("the disclosure ledger fixed the roster of 2024-01..2024-03 to [company_a, company_b")
    page = render("run.html", base="", party="regulator", live=False, spec=fed.spec, data=data, error=None, local=[])
    assert f"not on the roster: {reason}" in page
    assert any(e["key"] == f"{root}/abort/company_d/inputs" for e in data["errors"])  # an error, not an abort
    assert data["aborts"] == [] and data["withdrawals"] == []
    assert ui_data.list_runs(fed.spec, fed.store, "regulator")[0]["status"] == "finished"


# -- the rules without MPyC -------------------------------------------------------------------------------------
def test_units_keys_and_agreement_rules(fed):
    from mpc_federation import agreement, ledger
    from mpc_federation.layout import ledger_key, parse_ledger_key
    from mpc_federation.programs import load_program

    dims = fed.spec.dimensions(APRIL)
    program = fed.run("company_a", APRIL).program
    assert ledger.units(program, dims) == [
        ("market", "all", "all@2024-01..2024-03"),
        ("market", "2024-01", "2024-01"),
        ("market", "2024-02", "2024-02"),
        ("market", "2024-03", "2024-03"),
    ]
    pay_gap = load_program(Path(fed.spec.program_file).parent / "pay_gap.py").program
    assert ledger.units(pay_gap, {"market": ["all", "2024-03"], "level": ["all", "L1"]}) == [
        ("level", "all", "level=all@2024-03..2024-03"),
        ("level", "L1", "level=L1@2024-03..2024-03"),
    ]
    key = ledger_key(fed.spec, "company_b", "20240402T030000Z", 2)
    assert key.split("/")[4] == "company_b"  # the writer is the fifth segment, as the bucket policy needs
    assert parse_ledger_key(fed.spec, key) == ("company_b", "20240402T030000Z", 2)

    base = {
        "attempt": 1,
        "roster": ["a", "b", "c"],
        "roster_at": 5.0,
        "seen": ["a", "b", "c"],
        "ledger": {"fixed_roster": None, "withheld": []},
    }
    agreement.check([base, base, base], ["x", "y", "z"])
    with pytest.raises(
        agreement.AgreementError,
        match=r"roster \[a, b, c\] of attempt 1 leaves out d, whose "
        r"shares y saw before the roster was fixed",
    ):
        agreement.check([base, {**base, "seen": ["a", "b", "c", "d"]}, base], ["x", "y", "z"])
    fixed = {**base, "ledger": {"fixed_roster": ["a", "b", "c"], "withheld": []}}
    agreement.check([fixed, {**fixed, "seen": ["a", "b", "c", "d"]}, fixed], ["x", "y", "z"])  # the ledger fixed it
    with pytest.raises(agreement.AgreementError, match="disagree on the disclosure ledger"):
        agreement.check([base, fixed, fixed], ["x", "y", "z"])
    with pytest.raises(agreement.AgreementError, match=r"differs from \[a, b\], over which the ledger"):
        other = {**base, "ledger": {"fixed_roster": ["a", "b"], "withheld": []}}
        agreement.check([other, other, other], ["x", "y", "z"])
    with pytest.raises(agreement.AgreementError, match="y disagree with x on roster_at"):
        agreement.check([base, {**base, "roster_at": 6.0}, base], ["x", "y", "z"])
    held = {**base, "sharings": {"a": "s1", "b": "s2", "c": None}}
    agreement.check([held, held, held], ["x", "y", "z"])
    with pytest.raises(agreement.AgreementError, match="different sharings of b "):
        agreement.check([held, {**held, "sharings": {"a": "s1", "b": "old", "c": None}}, held], ["x", "y", "z"])
    with pytest.raises(agreement.AgreementError, match="y disagree with x on roster, sharings"):
        other = {**held, "roster": ["a", "b"], "sharings": {"a": "s1", "b": "s2"}}
        agreement.check([held, other, held], ["x", "y", "z"])


def test_a_retry_over_other_input_objects_releases_nothing(fed, airflow_conn):
    """An input party that shares again within a run (new objects, perhaps other values) cannot
    get the same units released a second time: a retry releases again only over identical inputs."""
    for pid in COMPUTES:
        fed.share(pid, APRIL)
    assert all(isinstance(r, dict) for r in fed.compute_all(APRIL, 1).values())
    fed.expect_result(fed.reveal(APRIL), APRIL, list(COMPUTES), 1)
    channel = fed.run("company_c", APRIL).channel
    fed.store._client.delete_object(Bucket=fed.spec.bucket, Key=channel.input_done_key("company_c"))
    assert fed.share("company_c", APRIL)["status"] == "shared"  # fresh sealed objects
    fed.start_again(APRIL, 1)
    out = fed.compute_all(APRIL, 2)
    for pid in COMPUTES:
        assert isinstance(out[pid], NothingToRelease), out[pid]
        assert "released in attempt 1 of this run over other input objects" in str(out[pid])
    state = stages.wait_state(fed.run("regulator", APRIL), "result", cutoff_passed=False)
    assert state.skip and "over other input objects" in state.skip
