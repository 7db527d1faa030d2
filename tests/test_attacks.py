"""One test per attack on the bucket, the network and the spec, with real MPyC processes (over
mutual TLS) and the real local S3 server. Each asserts a clear error on every affected party,
that nothing is revealed, that the honest parties' local data is untouched, and that the run
succeeds when retried after the cause is removed."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from conftest import compute_all, small_parties, write_aggregate

from mpc_federation import computing, stages
from mpc_federation.envelope import IntegrityError, PartyKeys, assemble, parts, seal
from mpc_federation.launcher import MPCJob, MPCRefused, MPCRunError, run_mpc
from mpc_federation.party import PartyRun
from mpc_federation.programs import load_program
from mpc_federation.spec import load_spec
from mpc_federation.store import CoordinationStore
from mpc_federation.tls import certificate, new_tls_key

HHI = load_program(Path(__file__).resolve().parents[1] / "include" / "programs" / "hhi.py").module
DATE = datetime(2024, 4, 2, 3, tzinfo=UTC)  # yesterday falls in the same period
COMPANIES = ("company_a", "company_b", "company_c")
REVENUE = {
    "company_a": [901_000_000_001, 300_000_000_011, 301_000_000_013, 300_000_000_017],
    "company_b": [602_000_000_003, 200_000_000_019, 201_000_000_023, 201_000_000_029],
    "company_c": [303_000_000_005, 101_000_000_031, 101_000_000_037, 101_000_000_041],
}


class Federation:
    """Three input+compute companies and a regulator; aggregates kept as local files."""

    def __init__(self, federation, s3_server, tmp_path: Path, date: datetime = DATE):
        self.spec, self.keys = federation(small_parties(), overrides={"deadlines": {"connect": 8, "mpc": 60}})
        self.config = s3_server.store_config(self.spec.bucket)
        self.store = CoordinationStore(self.config)
        self.tmp = tmp_path
        self.runs = {pid: self.party_run(pid, date) for pid in self.keys}
        self.files = {}
        for pid in COMPANIES:
            self.files[pid] = write_aggregate(
                tmp_path / pid / "aggregate.json", pid, self.labels, {"revenue_cents": REVENUE[pid]}
            )
        self.local_before = {pid: hashlib.sha256(p.read_bytes()).hexdigest() for pid, p in self.files.items()}

    @property
    def labels(self) -> list[str]:
        return self.spec.dimensions(DATE)["market"]

    def party_run(self, pid: str, date: datetime = DATE, spec=None) -> PartyRun:
        return PartyRun(spec or self.spec, pid, date, self.keys[pid], CoordinationStore(self.config))

    def share(self, pid: str, run: PartyRun | None = None):
        return stages.share(run or self.runs[pid], json.loads(Path(self.files[pid]).read_text()))

    def compute_all(self, attempt: int, runs: dict | None = None, parties=COMPANIES, alongside=()) -> dict:
        return compute_all(runs or self.runs, attempt, parties, alongside)

    def expect_nothing_revealed(self) -> None:
        with pytest.raises(stages.StageError, match="no live MPC attempt"):
            stages.reveal(self.runs["regulator"])

    def expect_local_data_untouched(self) -> None:
        assert {pid: hashlib.sha256(p.read_bytes()).hexdigest() for pid, p in self.files.items()} == self.local_before

    def expect_success(self, attempt: int, runs: dict | None = None) -> None:
        out = self.compute_all(attempt, runs)
        assert all(isinstance(out[p], dict) and out[p]["tls"] for p in COMPANIES), out
        result = stages.reveal(self.runs["regulator"])
        assert result["attempt"] == attempt and result["roster"] == list(COMPANIES)
        reference = HHI.plaintext([{"revenue_cents": REVENUE[p]} for p in COMPANIES])["hhi"]
        assert [Decimal(x) for x in result["outputs"]["hhi"]["exact"]] == reference


def assert_all_failed(out: dict, victim: str, victim_error: str) -> None:
    """The party that read the bad object names it; the others stop because it gave up."""
    assert isinstance(out[victim], IntegrityError) and victim_error in str(out[victim]), out[victim]
    for pid in COMPANIES:
        if pid != victim:
            assert isinstance(out[pid], Exception) and victim in str(out[pid]), out[pid]


def tamper(store: CoordinationStore, key: str, edit) -> bytes:
    """Write back the object with its payload's bytes replaced by ``edit(payload)``; the original."""
    original = store.get(key)
    doc, payload = parts(original)
    store.put(key, assemble(doc, edit(payload)))
    return original


@pytest.fixture
def fed(federation, s3_server, tmp_path):
    return Federation(federation, s3_server, tmp_path)


def test_flipped_byte_in_a_share_object(fed):
    for pid in COMPANIES:
        fed.share(pid)
    key = fed.runs["company_a"].channel.input_key("company_b", "company_a")

    def flip(payload: bytes) -> bytes:
        flipped = bytearray(payload)
        flipped[len(flipped) // 2] ^= 0x01
        return bytes(flipped)

    original = tamper(fed.store, key, flip)
    out = fed.compute_all(1)
    assert_all_failed(out, "company_a", "payload does not match its signed digest")
    assert key in str(out["company_a"]) and "claimed party company_b" in str(out["company_a"])
    fed.expect_nothing_revealed()
    fed.expect_local_data_untouched()
    fed.store.put(key, original)  # the cause removed
    fed.expect_success(2)


def test_object_signed_by_a_key_not_in_the_spec(fed):
    for pid in COMPANIES:
        fed.share(pid)
    channel = fed.runs["company_a"].channel
    key = channel.input_key("company_b", "company_a")
    original = fed.store.get(key)
    header = parts(original)[0]["header"]
    forged = {"shares": {"revenue_cents": [1, 2, 3, 4]}}
    mallory = PartyKeys.generate("company_b", test_only=True)  # claims to be company_b
    fed.store.put(
        key,
        seal(
            {k: v for k, v in header.items() if k not in ("encrypted", "payload_sha256")},
            json.dumps(forged).encode(),
            mallory,
            fed.spec.party("company_a").box_key,
        ),
    )
    out = fed.compute_all(1)
    assert_all_failed(out, "company_a", "signature does not verify against that party's key in the spec")
    fed.expect_nothing_revealed()
    fed.expect_local_data_untouched()
    fed.store.put(key, original)
    fed.expect_success(2)


def test_yesterdays_objects_replayed_into_today(fed):
    yesterday = {pid: fed.party_run(pid, DATE - timedelta(days=1)) for pid in fed.keys}
    for pid in COMPANIES:
        fed.share(pid, yesterday[pid])
    for pid in ("company_a", "company_c"):
        fed.share(pid)
    old_root, new_root = yesterday["company_b"].channel.root, fed.runs["company_b"].channel.root
    for key in fed.store.list(f"{old_root}/inputs/company_b/"):  # the bucket operator copies them over
        fed.store.put(key.replace(old_root, new_root), fed.store.get(key))
    # The replayed objects do not verify for today's run, so they count for no decision: the leader
    # sees two parties shared, below the floor, and every compute party stops naming the reason.
    view = fed.runs["company_a"].channel.verified()
    assert "run is '20240401T030000Z', expected '20240402T030000Z'" in view.invalid[f"{new_root}/inputs/company_b/done"]
    out = fed.compute_all(1)
    assert isinstance(out["company_a"], stages.StageError), out["company_a"]
    for pid in COMPANIES:
        assert "only 2 input parties shared (company_a, company_c)" in str(out[pid]), out[pid]
    fed.expect_nothing_revealed()
    fed.expect_local_data_untouched()
    assert fed.share("company_b")["status"] == "shared"  # company_b's own run replaces the replayed objects
    fed.expect_success(2)


def test_a_party_writing_under_another_partys_name(fed):
    for pid in COMPANIES:
        fed.share(pid)
    key = fed.runs["company_a"].channel.input_key("company_b", "company_a")
    original = fed.store.get(key)
    header = {k: v for k, v in parts(original)[0]["header"].items() if k not in ("encrypted", "payload_sha256")}
    # company_c, a member, writes at company_b's place: once in its own name, once claiming to be company_b.
    as_itself = seal(
        {**header, "party": "company_c"},
        b'{"shares": {"revenue_cents": [0, 0, 0, 0]}}',
        fed.keys["company_c"],
        fed.spec.party("company_a").box_key,
    )
    fed.store.put(key, as_itself)
    out = fed.compute_all(1)
    assert_all_failed(out, "company_a", "party is 'company_c', expected 'company_b'")
    fed.store.put(
        key,
        seal(
            header,
            b'{"shares": {"revenue_cents": [0, 0, 0, 0]}}',
            fed.keys["company_c"],
            fed.spec.party("company_a").box_key,
        ),
    )
    out = fed.compute_all(2)
    assert_all_failed(out, "company_a", "signature does not verify")
    fed.expect_nothing_revealed()
    fed.expect_local_data_untouched()
    fed.store.put(key, original)
    fed.expect_success(3)


def view_root(fed: Federation) -> str:
    return fed.runs["company_a"].channel.root


def impostor_worker(fed: Federation, tls_key: bytes, own_certificate: str, results: dict, seat: int = 2) -> None:
    """An MPyC process in the given seat (company_c's by default) that presents ``own_certificate``,
    and otherwise claims exactly what the honest parties run (session and view)."""
    spec = fed.spec
    certs = [c.certificate for c in spec.compute_parties]
    certs[seat] = own_certificate
    dims = spec.dimensions(DATE)
    program = fed.runs["company_c"].program
    roster = list(COMPANIES)
    job = MPCJob.for_program(
        program,
        dims,
        program=str(spec.program_file),
        party_index=seat,
        endpoints=[c.endpoint for c in spec.compute_parties],
        threshold=1,
        roster=roster,
        shares={},
        params=program.params(spec.program_params),
        names=list(COMPANIES),
        session=computing.session(fed.runs["company_a"], 1, roster),
        tls_key=tls_key,
        certificates=certs,
    )
    try:
        results["impostor"] = run_mpc(job, connect_timeout=8, run_timeout=30)
    except Exception as exc:  # noqa: BLE001
        results["impostor"] = exc


@pytest.mark.parametrize("impostor", ["non-member with its own certificate", "company_c presenting company_b's"])
def test_an_impostor_cannot_join_the_mpc(fed, impostor):
    for pid in COMPANIES:
        fed.share(pid)
    if impostor.startswith("non-member"):
        key = new_tls_key()
        cert = certificate(key, 2, "mallory")  # a valid-looking certificate for seat 2, but not the pinned one
    else:
        key, cert = fed.keys["company_c"].tls_key, fed.spec.party("company_b").certificate
    results: dict = {}
    honest = ("company_a", "company_b")
    out = fed.compute_all(1, parties=honest, alongside=[lambda: impostor_worker(fed, key, cert, results)])
    assert isinstance(results["impostor"], MPCRunError)
    for pid in honest:
        assert isinstance(out[pid], MPCRunError), out[pid]
        assert "did not all connect" in str(out[pid]) or "gave up" in str(out[pid]), out[pid]
    fed.expect_nothing_revealed()
    fed.expect_local_data_untouched()
    fed.expect_success(2)  # company_c itself takes its seat


def test_spec_edited_on_one_party_only(fed):
    raw = yaml.safe_load(fed.spec.source.read_text())
    raw["description"] = "edited at company_b only"
    edited_path = fed.tmp / "company_b_spec" / fed.spec.source.name
    edited_path.parent.mkdir()
    edited_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    edited = {**fed.runs, "company_b": fed.party_run("company_b", spec=load_spec(edited_path))}
    for pid in COMPANIES:
        fed.share(pid, edited[pid])
    # company_b's objects do not verify for the others (and theirs not for company_b), so they count
    # for no decision: the leader sees two parties shared, below the floor, and says why.
    view = fed.runs["company_a"].channel.verified()
    assert (
        "company_b runs a different federation spec than company_a"
        in view.invalid[f"{view_root(fed)}/inputs/company_b/done"]
    )
    out = fed.compute_all(1, edited)
    assert isinstance(out["company_a"], stages.StageError)
    assert "only 2 input parties shared (company_a, company_c)" in str(out["company_a"])
    assert "different federation spec" in str(out["company_b"])  # company_b sees the others differ
    assert "only 2 input parties shared" in str(out["company_c"])
    assert "company_b runs a different federation spec than company_c" in str(out["company_c"])
    fed.expect_nothing_revealed()
    fed.expect_local_data_untouched()
    assert fed.share("company_b")["status"] == "shared"  # back on the common spec: its shares are replaced
    fed.expect_success(2)


@pytest.mark.parametrize("direction", ["the impostor connects to the honest party", "the honest party connects to it"])
def test_a_member_cannot_take_another_seat_with_its_own_certificate(fed, direction):
    """A member's valid, pinned certificate is accepted only for the member's own seat. MPyC's
    accepting side took any pinned certificate for whatever seat the client claimed, so a member
    (or a thief of its key) could sit in two seats and hold t + 1 shares."""
    for pid in COMPANIES:
        fed.share(pid)
    if direction.startswith("the impostor connects"):
        # company_c also sits in company_a's seat 0; seat 0 connects to seats 1 and 2 (MPyC's order).
        seat, thief, honest = 0, "company_c", ("company_b", "company_c")
    else:
        # company_a also sits in company_c's seat 2: company_b connects to it and checks its name.
        seat, thief, honest = 2, "company_a", ("company_a", "company_b")
    results: dict = {}
    alongside = [
        lambda: impostor_worker(fed, fed.keys[thief].tls_key, fed.spec.party(thief).certificate, results, seat)
    ]
    if seat == 0:  # company_a is away; its roster for attempt 1 is fixed (it would be, by its task)
        alongside.append(lambda: stages.fix_roster(fed.runs["company_a"], 1, 30))
    out = fed.compute_all(1, parties=honest, alongside=alongside)
    assert isinstance(results["impostor"], MPCRunError)
    for pid in honest:
        assert isinstance(out[pid], MPCRunError), out[pid]
    if seat == 0:
        # Refused inside the MPC, naming the seat and whose certificate it was. The first honest
        # party to see the refusal gives the attempt up; the other may be stopped by that published
        # reason before its own process prints the refusal, and then says it came from the first.
        assert any(isinstance(out[pid], MPCRefused) for pid in honest), out
        for pid in honest:
            assert f"seat of company_a presented the TLS certificate of {thief}" in str(out[pid]), out[pid]
            if not isinstance(out[pid], MPCRefused):
                assert "was given up" in str(out[pid]) and "MPCRefused" in str(out[pid]), out[pid]
    else:
        assert any(
            "did not all connect" in str(out[pid]) or "seat of company_c" in str(out[pid]) or "gave up" in str(out[pid])
            for pid in honest
        ), out
    fed.expect_nothing_revealed()
    fed.expect_local_data_untouched()
    fed.expect_success(2)
