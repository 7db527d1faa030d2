"""Attacks on what goes into a computation and what comes out of a failure (issue 12, items 3, 4,
5 and 7), with the real local S3 server and, where the attack needs them, real MPyC processes over
mutual TLS, as in test_attacks.py. Each test reproduces the attack, asserts a clear error on every
affected party, that nothing is revealed, that the honest parties' local data is untouched, and
that the run succeeds once the cause is removed."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import localnet
import pytest
import yaml
from airflow.sdk.exceptions import AirflowFailException
from conftest import REPO, TAXI_TEMPLATE, compute_all, small_parties, write_aggregate

from mpc_federation import reasons, stages
from mpc_federation.envelope import TEST_KEY_MARK, IntegrityError, PartyKeys, assemble, parts
from mpc_federation.launcher import MPCRefused
from mpc_federation.party import PartyRun
from mpc_federation.programs import ProgramError
from mpc_federation.spec import SpecError, canonical_json, load_spec
from mpc_federation.store import CoordinationStore

DATE = datetime(2024, 4, 2, 3, tzinfo=UTC)
COMPUTES = ("company_a", "company_b", "company_c")
REVENUE = {
    "company_a": [904_000_000_001, 301_000_000_011, 302_000_000_013, 301_000_000_017],
    "company_b": [603_000_000_003, 201_000_000_019, 201_000_000_023, 201_000_000_029],
    "company_c": [306_000_000_005, 102_000_000_031, 102_000_000_037, 102_000_000_041],
    "company_d": [150_000_000_043, 50_000_000_047, 50_000_000_053, 50_000_000_059],
    "company_e": [120_000_000_061, 40_000_000_067, 40_000_000_071, 40_000_000_073],
}
OUT_OF_RANGE = 1_000_000_000_128  # above the HHI program's 10**12 cents per firm and market (see below)
ALL_INPUTS = ("company_a", "company_b", "company_c", "company_d", "company_e")


class Federation:
    """``inputs`` companies (the first three also compute) and a regulator; aggregates in local files."""

    def __init__(self, federation, s3_server, tmp_path: Path, inputs: int = 5):
        # Every input party is needed (min_input_parties = inputs): a withdrawal stops the run.
        self.spec, self.keys = federation(
            small_parties(inputs=inputs),
            overrides={"deadlines": {"connect": 8, "mpc": 60}, "min_input_parties": inputs},
        )
        self.s3 = s3_server
        self.config = s3_server.store_config(self.spec.bucket)
        self.store = CoordinationStore(self.config)
        self.tmp = tmp_path
        self.companies = ALL_INPUTS[:inputs]
        self.runs = {
            pid: PartyRun(self.spec, pid, DATE, self.keys[pid], CoordinationStore(self.config)) for pid in self.keys
        }
        self.files = {pid: self.write_aggregate(pid, REVENUE[pid]) for pid in self.companies}
        self.local_before = self.local_state()

    @property
    def labels(self) -> list[str]:
        return self.spec.dimensions(DATE)["market"]

    def write_aggregate(self, pid: str, values: list[int]) -> Path:
        return write_aggregate(self.tmp / pid / "aggregate.json", pid, self.labels, {"revenue_cents": values})

    def local_state(self) -> dict[str, str]:
        return {pid: hashlib.sha256(p.read_bytes()).hexdigest() for pid, p in self.files.items()}

    def share(self, pid: str):
        return stages.share(self.runs[pid], json.loads(Path(self.files[pid]).read_text()))

    def compute_all(self, attempt: int) -> dict:
        return compute_all(self.runs, attempt, COMPUTES)

    def expect_nothing_revealed(self) -> None:
        with pytest.raises(stages.StageError, match="no live MPC attempt"):
            stages.reveal(self.runs["regulator"])

    def expect_success(self, attempt: int, revenue: dict[str, list[int]]) -> dict:
        out = self.compute_all(attempt)
        assert all(isinstance(out[p], dict) and out[p]["tls"] for p in COMPUTES), out
        result = stages.reveal(self.runs["regulator"])
        assert result["attempt"] == attempt and result["roster"] == list(revenue)
        assert_hhi(result, [revenue[p] for p in revenue])  # each firm counted once
        return result

    def use_connections(self, monkeypatch, party: str, *, allow_test_keys: bool = True) -> None:
        """This party's Airflow connections, as its Airflow has them (AIRFLOW_CONN_* variables)."""
        monkeypatch.setenv("AIRFLOW_CONN_MPC_COORDINATION", json.dumps(self.s3.connection()))
        monkeypatch.setenv(
            "AIRFLOW_CONN_MPC_PARTY_KEYS", json.dumps({"conn_type": "generic", "password": self.keys[party].to_json()})
        )
        if allow_test_keys:
            monkeypatch.setenv("AIRFLOW__MPC__ALLOW_TEST_KEYS", "1")
        else:
            monkeypatch.delenv("AIRFLOW__MPC__ALLOW_TEST_KEYS", raising=False)


def assert_hhi(result: dict, revenues: list[list[int]]) -> None:
    """The revealed HHI equals the program's own plaintext reference if it has one, else the exact fraction."""
    from mpc_federation.programs import load_program

    got = result["outputs"]["hhi"]["exact"]
    loaded = load_program(REPO / "include" / "programs" / "hhi.py")
    module = getattr(loaded, "module", None)
    if module is not None and hasattr(module, "plaintext"):
        from decimal import Decimal

        reference = module.plaintext([{"revenue_cents": r} for r in revenues])["hhi"]
        assert [Decimal(x) for x in got] == reference
        return
    for k in range(len(got)):
        r = [v[k] for v in revenues]
        assert Fraction(got[k]) == Fraction(10000 * sum(x * x for x in r), sum(r) ** 2), k


def bucket_dump(store: CoordinationStore) -> bytes:
    """Every object in the bucket as stored, plus the decoded header and payload of every envelope
    that is not encrypted (what anyone who reads the bucket can see)."""
    pieces = []
    for key in store.list(""):
        blob = store.get(key) or b""
        pieces += [key.encode(), blob]
        try:
            doc, payload = parts(blob)
        except ValueError:
            continue
        pieces.append(json.dumps(doc).encode())
        if isinstance(doc.get("header"), dict) and not doc["header"].get("encrypted"):
            pieces.append(payload)
            try:
                pieces.append(json.dumps(json.loads(payload)).encode())
            except ValueError:
                pass
    return b"\n".join(pieces)


def assert_not_in_bucket(store: CoordinationStore, *values: int) -> None:
    """Neither the decimal text nor the 8-byte little- or big-endian encoding of any value."""
    dump = bucket_dump(store)
    for value in values:
        for form in (str(value).encode(), value.to_bytes(8, "little"), value.to_bytes(8, "big")):
            assert form not in dump, f"{value} found in the bucket as {form!r}"


def out_of_range_value() -> int:
    """1000000000128 cents, or just above the HHI program's declared bound if that is higher."""
    from mpc_federation.programs import load_program

    program = load_program(REPO / "include" / "programs" / "hhi.py").program
    high = next(i.high for i in program.inputs if i.name == "revenue_cents")
    return max(OUT_OF_RANGE, high + 128)


def airflow_context(**extra) -> dict:
    return {"logical_date": DATE, **extra}


# -- item 3: copied inputs ----------------------------------------------------------------------------------
def resign_as(blob: bytes, signer: PartyKeys) -> bytes:
    """What a member can do with another member's object: keep the ciphertext, put its own name in
    the header and sign that with its own key."""
    doc, payload = parts(blob)
    header = {**doc["header"], "party": signer.party, "created_at": time.time()}
    doc["header"] = header
    doc["signature"] = base64.b64encode(signer.signing.sign(canonical_json(header)).signature).decode()
    return assemble(doc, payload)


@pytest.fixture
def five(federation, s3_server, tmp_path):
    return Federation(federation, s3_server, tmp_path, inputs=5)


def test_a_member_resigning_another_members_ciphertexts_as_its_own(five):
    """company_d submits company_e's sealed shares, re-signed under its own name: without a binding
    inside the ciphertext, e's data would count twice and d's would be replaced by e's."""
    fed = five
    for pid in fed.companies:
        fed.share(pid)
    channel = fed.runs["company_a"].channel
    originals = {}
    for c in COMPUTES:
        key = channel.input_key("company_d", c)
        originals[key] = fed.store.get(key)
        copied = resign_as(fed.store.get(channel.input_key("company_e", c)), fed.keys["company_d"])
        fed.store.put(key, copied)
        # The attack as found: the very ciphertext of company_e, under a valid signature of company_d.
        assert parts(copied)[1] == parts(fed.store.get(channel.input_key("company_e", c)))[1]
    out = fed.compute_all(1)
    for pid in COMPUTES:  # every compute party reads its own copied object, or stops on the one that did
        assert isinstance(out[pid], Exception), out[pid]
        assert "company_d re-signed company_e's ciphertext" in str(out[pid]), out[pid]
    assert any(isinstance(out[pid], IntegrityError) for pid in COMPUTES), out
    leader_error = str(out["company_a"])
    assert "signed by party 'company_d'" in leader_error and "written by party 'company_e'" in leader_error
    record = channel.read(channel.attempt_abort_key("company_a", 1), "abort", "company_a", attempt=1)
    assert record["code"] == "integrity-error" and "company_e" in record["reason"]
    fed.expect_nothing_revealed()
    assert fed.local_state() == fed.local_before
    for key, blob in originals.items():  # the cause removed: company_d's own shares
        fed.store.put(key, blob)
    fed.expect_success(2, {p: REVENUE[p] for p in fed.companies})


@pytest.mark.parametrize("garbage", ["a JSON list", "a list for its sharing id"])
def test_a_member_sealing_garbage_to_one_compute_party(five, garbage):
    """company_d seals honest shares to two compute parties and, to company_b only, a share object
    that is no mapping of packed vectors (a JSON list), or honest shares under a sharing id that
    is no text: company_b's stage hands it on rather than failing alone, and every compute party
    refuses in the MPC's agreement exchange, naming company_d, before any share is used. Nothing
    is revealed; with company_d's own shares back, the retry succeeds."""
    fed = five
    for pid in fed.companies:
        fed.share(pid)
    channel = fed.runs["company_d"].channel
    key = channel.input_key("company_d", "company_b")
    original = fed.store.get(key)
    record = fed.runs["company_b"].channel.read(key, "input-shares", "company_d", to="company_b")
    forged = [1, 2, 3] if garbage == "a JSON list" else {**record, "sharing": [1]}
    fed.store.put(key, channel.sign("input-shares", "input", forged, to="company_b"))  # type: ignore[arg-type]
    out = fed.compute_all(1)
    for pid in COMPUTES:
        assert isinstance(out[pid], MPCRefused), out[pid]
        reason = out[pid].reason
        if garbage == "a JSON list":
            assert "the shares of company_d are not vectors of shares of this run and release" in reason, reason
            assert "company_b got from company_d: shares: not a mapping of vectors" in reason
            assert "company_a got from" not in reason and "from company_e" not in reason
        else:
            assert "compute parties hold shares of different sharings of company_d" in reason, reason
    fed.expect_nothing_revealed()
    assert fed.local_state() == fed.local_before
    fed.store.put(key, original)  # the cause removed
    fed.expect_success(2, {p: REVENUE[p] for p in fed.companies})


def test_what_a_member_adds_to_its_share_object_is_dropped(five):
    """company_d adds an entry of its own to the shares it seals to company_b (a "nonzero" entry,
    the name of what the input checks keep): the MPyC process keeps only the vectors it checked,
    so it neither crashes that compute party alone nor reaches the program; the run succeeds and
    equals plaintext."""
    fed = five
    for pid in fed.companies:
        fed.share(pid)
    channel = fed.runs["company_d"].channel
    key = channel.input_key("company_d", "company_b")
    record = fed.runs["company_b"].channel.read(key, "input-shares", "company_d", to="company_b")
    record["shares"]["nonzero"] = 0
    fed.store.put(key, channel.sign("input-shares", "input", record, to="company_b"))
    fed.expect_success(1, {p: REVENUE[p] for p in fed.companies})


def forged_indicator(fed: Federation, market: int) -> dict[str, bytes]:
    """company_d's sealed share objects for the compute parties, made as company_d could make them
    after sharing revenue 0 in ``market`` honestly: a sharing of "has revenue" z = 1 there, and the
    inverse w dealt off every polynomial of degree 1, (0, -1/(6a), 0) with ``a`` the slope of its
    sharing of x = 0. The local products x*w, read at degree 2 at MPyC's points 1, 2, 3 (Lagrange's
    3, -3, 1), give -3 * (2a * -1/(6a)) = 1 = z: every constraint of the input checks holds."""
    import secrets

    from mpc_federation import witnesses
    from mpc_federation.sharing import pack, unpack_array

    program = fed.runs["company_a"].program
    p, [spec_input] = program.modulus, program.inputs
    name, n = spec_input.name, len(fed.labels)
    lay = witnesses.layout(spec_input, n)
    channel = fed.runs["company_d"].channel
    records = {
        c: fed.runs[c].channel.read(channel.input_key("company_d", c), "input-shares", "company_d", to=c)
        for c in COMPUTES
    }
    x = [unpack_array(records[c]["shares"]["values"][name], p) % p for c in COMPUTES]
    w = [[int(v) for v in unpack_array(records[c]["shares"]["witness"][name], p) % p] for c in COMPUTES]
    slope = int(x[0][market])
    assert (2 * slope - x[1][market]) % p == 0 and slope  # company_d's honest sharing of 0
    r = secrets.randbelow(p)
    z_at, w_at = lay.size - 2 * n + market, lay.size - n + market
    for k, forged_w in enumerate((0, -pow(6 * slope, -1, p) % p, 0)):
        w[k][z_at], w[k][w_at] = (1 + r * (k + 1)) % p, forged_w
    blobs = {}
    for k, c in enumerate(COMPUTES):
        shares = {**records[c]["shares"], "witness": {name: pack(w[k], p)}}
        blobs[channel.input_key("company_d", c)] = channel.sign(
            "input-shares", "input", {**records[c], "shares": shares}, to=c
        )
    return blobs


def test_an_input_party_cannot_count_as_a_firm_with_a_sharing_off_the_threshold(five):
    """Market 3 has revenue from company_a and company_b only: below the floor of 3 firms, so it is
    suppressed. company_d, with revenue 0 there, deals its "has revenue" indicator as 1 and the
    inverse that proves it off every polynomial of degree t: each local product then reads as it
    chooses, every constraint of the input checks held, and d counted as a third firm, so the
    regulator would have learned the two firms' shares (HHI = 10000 (s^2 + (1-s)^2)). Every compute
    party now checks, on a masked random combination of all of d's shares, that they lie on one
    polynomial of degree t, and refuses naming d; nothing is revealed; with d's honest shares back
    the retry succeeds and suppresses market 3."""
    from decimal import Decimal

    from mpc_federation.programs import load_program

    fed = five
    revenue = {pid: list(REVENUE[pid]) for pid in fed.companies}
    for pid in ("company_c", "company_d", "company_e"):
        revenue[pid][3] = 0
        fed.files[pid] = fed.write_aggregate(pid, revenue[pid])
    fed.local_before = fed.local_state()
    for pid in fed.companies:
        fed.share(pid)
    forged = forged_indicator(fed, market=3)
    originals = {key: fed.store.get(key) for key in forged}
    for key, blob in forged.items():
        fed.store.put(key, blob)
    out = fed.compute_all(1)
    for pid in COMPUTES:
        assert isinstance(out[pid], MPCRefused), out[pid]
        assert "the shares of company_d are not a sharing of degree t = 1" in out[pid].reason, out[pid].reason
        assert "company_a" not in out[pid].reason and "company_e" not in out[pid].reason
    fed.expect_nothing_revealed()
    assert fed.local_state() == fed.local_before
    for key, blob in originals.items():  # the cause removed: company_d's honest shares
        fed.store.put(key, blob)
    out = fed.compute_all(2)
    assert all(isinstance(out[p], dict) for p in COMPUTES), out
    result = stages.reveal(fed.runs["regulator"])
    module = load_program(REPO / "include" / "programs" / "hhi.py").module
    reference = module.plaintext([{"revenue_cents": revenue[p]} for p in fed.companies])
    got = result["outputs"]["hhi"]["exact"]
    assert [None if g is None else Decimal(g) for g in got] == reference["hhi"] and got[3] is None
    assert [int(v) for v in result["outputs"]["suppressed"]["exact"]] == [0, 0, 0, 1]


# -- item 4: nothing derived from a party's data in the bucket -----------------------------------------------
@pytest.fixture
def four(federation, s3_server, tmp_path):
    return Federation(federation, s3_server, tmp_path, inputs=4)


def test_an_out_of_range_aggregate_never_reaches_the_bucket(four, monkeypatch, caplog):
    """A failing range check once put the offending value into the withdrawal everyone reads."""
    from mpc_operators.base import withdraw_on_failure
    from mpc_operators.share import MPCShareOperator
    from sensors.coordination import MPCCoordinationSensor

    fed = four
    value = out_of_range_value()
    for pid in COMPUTES:
        fed.share(pid)
    bad = [*REVENUE["company_d"][:2], value, REVENUE["company_d"][3]]
    fed.files["company_d"] = fed.write_aggregate("company_d", bad)
    fed.local_before = fed.local_state()

    # company_d's share task fails, as under Airflow: the operator, then its on_failure_callback.
    fed.use_connections(monkeypatch, "company_d")
    task = MPCShareOperator(
        task_id="share", spec_path=str(fed.spec.source), party_id="company_d", aggregate_uri=str(fed.files["company_d"])
    )
    with pytest.raises(AirflowFailException) as info:
        task.execute(airflow_context())
    assert f"{value} is outside the declared range" in str(info.value)  # clear, and local only
    with caplog.at_level(logging.INFO):
        withdraw_on_failure(
            str(fed.spec.source),
            "company_d",
            airflow_context(
                exception=info.value,
                task_instance=SimpleNamespace(task_id="share", log=logging.getLogger("test.share")),
            ),
        )
    assert str(value) in caplog.text and "input-check-failed" in caplog.text  # the full error stays here
    channel = fed.runs["company_a"].channel
    record = channel.read(channel.withdrawal_key("company_d"), "abort", "company_d")
    assert record == {"code": "input-check-failed", "task": "share", "reason": "share failed: input-check-failed"}
    assert record["code"] in reasons.WITHDRAWAL_CODES
    assert_not_in_bucket(fed.store, value)

    # Every compute party's sensor sees the withdrawal, verified, with its code, and stops waiting.
    for pid in COMPUTES:
        fed.use_connections(monkeypatch, pid)
        sensor = MPCCoordinationSensor(
            task_id="wait_for_inputs", stage="inputs", spec_path=str(fed.spec.source), party_id=pid, deferrable=False
        )
        with pytest.raises(AirflowFailException) as stopped:
            sensor.poke(airflow_context())
        assert "company_d (inputs): share failed: input-check-failed" in str(stopped.value), pid
        assert str(value) not in str(stopped.value)
    fed.expect_nothing_revealed()
    assert fed.local_state() == fed.local_before

    # company_d fixes its data and shares: its shares supersede the withdrawal.
    fed.files["company_d"] = fed.write_aggregate("company_d", REVENUE["company_d"])
    fed.use_connections(monkeypatch, "company_d")
    assert task.execute(airflow_context())["status"] == "shared"

    # A compute party whose stage fails on a data check (a ProgramError quoting the value, even
    # wrapped in another error) gives up with a code and a value-free text.
    original = stages._compute_attempt

    def data_check_fails(run, attempt, *args, **kwargs):
        if run.party_id == "company_a":
            try:
                raise ProgramError(
                    f"aggregate of company_d: input 'revenue_cents' at 2024-02: {value} is outside the declared range"
                )
            except ProgramError as exc:
                raise stages.StageError(f"cannot go on: {exc}") from exc
        return original(run, attempt, *args, **kwargs)

    monkeypatch.setattr(stages, "_compute_attempt", data_check_fails)
    with pytest.raises(stages.StageError, match=str(value)):  # the local error keeps the details
        stages.compute(fed.runs["company_a"], attempt=1)
    monkeypatch.setattr(stages, "_compute_attempt", original)
    record = channel.read(channel.attempt_abort_key("company_a", 1), "abort", "company_a", attempt=1)
    assert record["code"] == "input-check-failed" and str(value) not in record["reason"], record
    assert "local task log" in record["reason"]
    assert_not_in_bucket(fed.store, value)
    fed.expect_nothing_revealed()

    fed.expect_success(2, {p: REVENUE[p] for p in fed.companies})
    # ... nor any aggregate of the night, in any form
    assert_not_in_bucket(fed.store, value, *(cents for pid in fed.companies for cents in REVENUE[pid]))


def test_withdrawal_codes_and_give_up_texts_carry_no_data():
    value_error = ProgramError(f"aggregate of company_d: input 'revenue_cents' at all: {OUT_OF_RANGE} is outside")
    assert reasons.withdrawal_code("share", value_error) == "input-check-failed"
    assert reasons.withdrawal_code("share", AirflowFailException(f"ProgramError: {value_error}")) == "share-failed"
    try:  # as final_errors raises it: the ProgramError is the cause
        try:
            raise value_error
        except ProgramError as exc:
            raise AirflowFailException(f"ProgramError: {exc}") from exc
    except AirflowFailException as wrapped:
        assert reasons.withdrawal_code("share", wrapped) == "input-check-failed"
        code, text = reasons.give_up_reason(wrapped, "company_a")
        assert code == "input-check-failed" and str(OUT_OF_RANGE) not in text
    assert reasons.withdrawal_code("aggregate", RuntimeError(f"{OUT_OF_RANGE} trips")) == "aggregation-failed"
    assert reasons.withdrawal_code("share", IntegrityError("object x")) == "integrity-error"
    assert reasons.withdrawal_code("share", PermissionError("test keys")) == "configuration-error"
    assert reasons.withdrawal_code("share", OSError("disk")) == "share-failed"
    assert reasons.withdrawal_code("other", None) == "task-failed"
    # Anything not built from protocol facts is named by code and type only.
    code, text = reasons.give_up_reason(ValueError(f"{OUT_OF_RANGE}"), "company_b")
    assert code == "compute-failed" and str(OUT_OF_RANGE) not in text and "ValueError" in text
    code, text = reasons.give_up_reason(IntegrityError("object k (claimed party company_d): bad\nmore"), "company_b")
    assert (code, text) == ("integrity-error", "IntegrityError: object k (claimed party company_d): bad")
    with pytest.raises(ValueError, match="unknown reason code"):
        reasons.check(f"aggregate {OUT_OF_RANGE} too large", reasons.WITHDRAWAL_CODES)


def test_withdraw_and_give_up_publish_only_known_codes(four):
    with pytest.raises(ValueError, match="unknown reason code"):
        stages.withdraw(four.runs["company_d"], f"{OUT_OF_RANGE} is outside the declared range")
    with pytest.raises(ValueError, match="unknown reason code"):
        stages.give_up(four.runs["company_a"].channel, 1, "a reason", code=f"{OUT_OF_RANGE}")
    assert not four.store.list(four.runs["company_a"].channel.root + "/")


# -- item 5: threshold 0, or too few compute parties ----------------------------------------------------------
def test_threshold_zero_and_too_few_compute_parties_are_refused(federation, s3_server, tmp_path):
    from mpc_federation.programs import load_program
    from mpc_federation.sharing import split

    # Why: with t = 0 every compute party's "share" is the value itself.
    field = load_program(REPO / "include" / "programs" / "hhi.py").program.field
    assert split(field, [OUT_OF_RANGE], 0, 3) == [[OUT_OF_RANGE]] * 3
    assert all(row != [OUT_OF_RANGE] for row in split(field, [OUT_OF_RANGE], 1, 3))

    with pytest.raises(SpecError) as info:
        federation(small_parties(), overrides={"threshold": 0})
    assert info.value.field_path == "threshold" and "1 <= t" in str(info.value)
    for computes in (1, 2):
        for overrides in ({}, {"threshold": 0}, {"threshold": 1}):
            with pytest.raises(SpecError) as info:
                federation(small_parties(computes=computes), overrides=overrides)
            assert info.value.field_path == "parties" and "at least 3 parties with role 'compute'" in str(info.value)

    spec, _ = federation(small_parties())  # the cause removed: the default threshold for 3 compute parties
    assert spec.threshold == 1 and len(spec.compute_parties) == 3


# -- item 7: test keys refused by a production-style start -----------------------------------------------------
def test_test_keys_are_refused_by_a_production_style_start(four, monkeypatch):
    from mpc_operators.compute import MPCComputeOperator
    from mpc_operators.keys import PartyKeysHook
    from mpc_operators.share import MPCShareOperator
    from sensors.coordination import MPCCoordinationSensor

    fed = four
    assert all(k.test_only for k in fed.keys.values())  # the fixtures' keys are marked
    assert json.loads(fed.keys["company_a"].to_json())["note"] == TEST_KEY_MARK
    # A party's Airflow with test keys in its keys connection, and no AIRFLOW__MPC__ALLOW_TEST_KEYS.
    fed.use_connections(monkeypatch, "company_a", allow_test_keys=False)
    with pytest.raises(PermissionError, match="marked as test keys and are refused outside tests"):
        PartyKeysHook("mpc_party_keys").get_keys()
    share = MPCShareOperator(
        task_id="share", spec_path=str(fed.spec.source), party_id="company_a", aggregate_uri=str(fed.files["company_a"])
    )
    with pytest.raises(AirflowFailException) as info:  # the first MPC task of an input party
        share.execute(airflow_context())
    assert "PermissionError: the keys of party 'company_a' are marked as test keys" in str(info.value)
    # A compute party's sensor reads with public keys only; its compute task is the first to load keys.
    sensor = MPCCoordinationSensor(
        task_id="wait_for_inputs",
        stage="inputs",
        spec_path=str(fed.spec.source),
        party_id="company_a",
        deferrable=False,
    )
    assert sensor.poke(airflow_context()) is False  # waiting: it needs no private key to read
    compute = MPCComputeOperator(task_id="compute", spec_path=str(fed.spec.source), party_id="company_a")
    with pytest.raises(AirflowFailException, match="marked as test keys"):
        compute.execute(airflow_context())
    monkeypatch.setenv("AIRFLOW__MPC__ALLOW_TEST_KEYS", "0")  # an explicit "no"
    with pytest.raises(AirflowFailException, match="marked as test keys"):
        share.execute(airflow_context())
    assert not fed.store.list(fed.runs["company_a"].channel.root + "/")  # nothing was published
    assert fed.local_state() == fed.local_before

    # The cause removed: a test environment that allows test keys explicitly ...
    monkeypatch.setenv("AIRFLOW__MPC__ALLOW_TEST_KEYS", "1")
    assert share.execute(airflow_context())["status"] == "shared"


def test_production_keys_start_without_allowing_test_keys(federation, s3_server, tmp_path, monkeypatch):
    """... or production keys, which a production-style start accepts."""
    from mpc_operators.share import MPCShareOperator

    parties = small_parties()
    keys = {p["id"]: localnet.test_keys(p["id"]) for p in parties}
    keys["company_a"] = PartyKeys.generate("company_a")  # as `python -m mpc_federation.keys generate` makes them
    path = localnet.render_spec(
        TAXI_TEMPLATE,
        tmp_path / "production",
        keys,
        parties=parties,
        overrides={"coordination": {"bucket": "mpc-coordination", "prefix": f"p{os.getpid()}{time.time_ns()}"}},
    )
    spec = load_spec(path)
    CoordinationStore(s3_server.store_config(spec.bucket)).ensure_bucket()
    monkeypatch.setenv("AIRFLOW_CONN_MPC_COORDINATION", json.dumps(s3_server.connection()))
    monkeypatch.setenv(
        "AIRFLOW_CONN_MPC_PARTY_KEYS", json.dumps({"conn_type": "generic", "password": keys["company_a"].to_json()})
    )
    monkeypatch.delenv("AIRFLOW__MPC__ALLOW_TEST_KEYS", raising=False)
    labels = spec.dimensions(DATE)["market"]
    aggregate = write_aggregate(
        tmp_path / "aggregate.json", "company_a", labels, {"revenue_cents": REVENUE["company_a"]}
    )
    share = MPCShareOperator(
        task_id="share", spec_path=str(spec.source), party_id="company_a", aggregate_uri=str(aggregate)
    )
    assert share.execute(airflow_context())["status"] == "shared"


def test_the_keys_command_makes_production_keys(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW__MPC__ALLOW_TEST_KEYS"}
    env["PYTHONPATH"] = str(REPO / "plugins")
    out = tmp_path / "company_a.keys.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mpc_federation.keys",
            "generate",
            "--party",
            "company_a",
            "--out",
            str(out),
            "--compute-index",
            "0",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    text = out.read_text()
    assert "note" not in json.loads(text) and TEST_KEY_MARK not in text
    keys = PartyKeys.from_json(text)  # accepted where test keys are not
    assert keys.party == "company_a" and not keys.test_only
    assert yaml.safe_load(result.stdout)["keys"]["sign"] == keys.public_entry()["sign"]
    command = [sys.executable, "-m", "mpc_federation.keys", "generate", "--party", "company_a", "--out", str(out)]
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "exists: not replacing a party's keys" in again.stderr
    assert out.read_text() == text  # kept
    forced = subprocess.run([*command, "--force"], env=env, capture_output=True, text=True, timeout=60)
    assert forced.returncode == 0 and out.read_text() != text

    # `keys public` of a test-key file: refused unless test keys are allowed.
    test_file = tmp_path / "test.keys.json"
    test_file.write_text(localnet.test_keys("company_b").to_json())
    refused = subprocess.run(
        [sys.executable, "-m", "mpc_federation.keys", "public", "--keys", str(test_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0 and "marked as test keys" in refused.stderr
    allowed = subprocess.run(
        [sys.executable, "-m", "mpc_federation.keys", "public", "--keys", str(test_file), "--allow-test-keys"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert allowed.returncode == 0, allowed.stderr


def test_local_federations_mark_their_keys_and_allow_them_explicitly(tmp_path, s3_server, monkeypatch):
    monkeypatch.setenv("AIRFLOW__MPC__ALLOW_TEST_KEYS", "1")  # the caller's setting never leaks into a party
    keys = localnet.test_keys("company_a")
    party = localnet.LocalParty("company_a", tmp_path, tmp_path, tmp_path, keys, s3_server)
    env = party.env()
    assert env["AIRFLOW__MPC__ALLOW_TEST_KEYS"] == "True"
    assert json.loads(json.loads(env["AIRFLOW_CONN_MPC_PARTY_KEYS"])["password"])["note"] == TEST_KEY_MARK
    production_style = localnet.LocalParty(
        "company_a", tmp_path, tmp_path, tmp_path, keys, s3_server, allow_test_keys=False
    )
    assert production_style.env()["AIRFLOW__MPC__ALLOW_TEST_KEYS"] == "False"
    # Every key the demo, the testbed, the benchmarks and the test fixtures make is a marked test key.
    sources = [
        *sorted((REPO / "scripts").glob("*.py")),
        REPO / "tests" / "conftest.py",
        *sorted((REPO / "bench").glob("*.py")),
    ]
    for source in sources:
        for call in re.findall(r"PartyKeys\.generate\([^)]*\)", source.read_text()):
            assert "test_only=True" in call, f"{source.name}: {call}"
    testbed = (REPO / "scripts" / "testbed_party.py").read_text()
    assert re.search(
        r"settings = \{\s*\*\*party\.settings\(\),", testbed
    )  # the testbed's parties get LocalParty's settings
    bootstrap = (REPO / "infra" / "scripts" / "bootstrap_party.sh").read_text()
    assert "env_line AIRFLOW__MPC__ALLOW_TEST_KEYS False" in bootstrap  # production parties refuse test keys
