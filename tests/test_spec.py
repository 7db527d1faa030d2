"""The federation spec: the committed taxi spec loads as documented, and every bad spec fails
with a SpecError that names the offending field."""

from __future__ import annotations

import base64
import copy
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from conftest import write_spec as write

from mpc_federation.spec import SpecError, load_spec

REPO = Path(__file__).resolve().parents[1]
TAXI = REPO / "include" / "federations" / "taxi_hhi.yaml"
HHI = REPO / "include" / "programs" / "hhi.py"
JOB = REPO / "include" / "jobs" / "taxi_revenue.py"


def base_raw() -> dict:
    """The committed spec with absolute file paths, so a copy can live anywhere."""
    raw = yaml.safe_load(TAXI.read_text())
    raw["program"]["file"] = str(HHI)
    raw["aggregation"]["job"] = str(JOB)
    return raw


def expect_error(tmp_path: Path, raw: dict | str, field_path: str, *words: str) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, raw))
    err = info.value
    assert err.field_path == field_path, str(err)
    assert field_path in str(err)
    for word in words:
        assert word in str(err), str(err)
    return err


# -- the committed spec -----------------------------------------------------------------------------
def test_committed_taxi_spec_loads():
    spec = load_spec(TAXI)
    assert spec.computation == "taxi_hhi"
    assert spec.schedule == "0 3 * * *"
    assert spec.program_file == HHI.resolve()
    assert spec.aggregation_job == JOB.resolve()
    assert spec.aggregation_input == "trips"
    assert [p.id for p in spec.parties] == [
        "company_a",
        "company_b",
        "company_c",
        "company_d",
        "company_e",
        "regulator",
    ]
    assert [p.id for p in spec.input_parties] == ["company_a", "company_b", "company_c", "company_d", "company_e"]
    assert [p.id for p in spec.compute_parties] == ["company_a", "company_b", "company_c"]
    assert [p.id for p in spec.recipients] == ["regulator"]
    assert spec.party("company_a").roles == ("input", "compute")
    assert spec.party("company_d").roles == ("input",)
    assert spec.party("company_d").endpoint is None
    assert spec.party("regulator").has("recipient") and not spec.party("regulator").has("input")
    assert spec.party("company_b").endpoint == "127.0.0.1:11366"
    assert spec.leader.id == "company_a"
    assert spec.threshold == 1
    assert 2 * spec.threshold < len(spec.compute_parties)
    assert [spec.compute_index(p) for p in ("company_a", "company_b", "company_c")] == [0, 1, 2]
    with pytest.raises(ValueError):
        spec.compute_index("company_d")  # not a compute party
    assert spec.min_input_parties == 3
    assert spec.bucket == "mpc-coordination" and spec.prefix == "federations"
    assert spec.deadlines == {"cutoff": 2700, "inputs": 3600, "connect": 300, "mpc": 900, "result": 3600}


def test_months_of_a_rolling_period():
    spec = load_spec(TAXI)
    assert spec.period == {"months": 3}
    date = datetime(2024, 4, 15, 3, 0, tzinfo=UTC)
    assert spec.months(date) == ["2024-01", "2024-02", "2024-03"]
    assert spec.dimensions(date) == {"market": ["all", "2024-01", "2024-02", "2024-03"]}
    # across a year boundary, and on the first day of a month (that month is not yet complete)
    assert spec.months(datetime(2024, 2, 1, tzinfo=UTC)) == ["2023-11", "2023-12", "2024-01"]
    assert spec.months(datetime(2024, 1, 31)) == ["2023-10", "2023-11", "2023-12"]


def test_months_of_an_explicit_period(tmp_path):
    raw = base_raw()
    raw["aggregation"]["period"] = {"start": "2023-11", "end": "2024-02"}
    spec = load_spec(write(tmp_path, raw))
    want = ["2023-11", "2023-12", "2024-01", "2024-02"]
    assert spec.months(datetime(2024, 4, 15, tzinfo=UTC)) == want
    assert spec.months(datetime(2030, 1, 1, tzinfo=UTC)) == want  # independent of the run
    assert spec.dimensions(datetime(2024, 4, 15))["market"] == ["all", *want]


def test_spec_hash_is_stable_and_changes_on_edit(tmp_path):
    a = load_spec(TAXI)
    assert a.spec_hash == load_spec(TAXI).spec_hash
    assert len(a.spec_hash) == 64 and int(a.spec_hash, 16) >= 0

    raw = base_raw()
    one = load_spec(write(tmp_path, raw, "one.yaml"))
    # Same content, other key order and a comment: the same spec.
    reordered = "# a comment\n" + yaml.safe_dump(dict(reversed(list(raw.items()))), sort_keys=True)
    two = load_spec(write(tmp_path, reordered, "two.yaml"))
    assert one.spec_hash == two.spec_hash

    for edit in (
        lambda r: r.update(min_input_parties=4),
        lambda r: r.update(description=r["description"] + "."),
        lambda r: r["parties"][3].update(roles=["input", "recipient"]),
        lambda r: r["coordination"].update(prefix="elsewhere"),
    ):
        edited = copy.deepcopy(raw)
        edit(edited)
        assert load_spec(write(tmp_path, edited, "edited.yaml")).spec_hash != one.spec_hash


def test_defaults(tmp_path):
    raw = base_raw()
    for key in ("threshold", "min_input_parties", "deadlines"):
        del raw[key]
    del raw["aggregation"]["period"]
    raw["coordination"] = {"bucket": "b"}
    spec = load_spec(write(tmp_path, raw))
    assert spec.threshold == 1  # (3 - 1) // 2
    assert spec.min_input_parties == 5  # every input party
    assert spec.prefix == "federations"
    assert spec.period == {"months": 1}
    assert spec.months(datetime(2024, 1, 10)) == ["2023-12"]
    assert spec.deadlines["mpc"] == 900
    assert spec.cutoff == spec.deadlines["inputs"]  # by default, at the inputs deadline
    raw["deadlines"] = {"cutoff": "never"}
    spec = load_spec(write(tmp_path, raw, "never.yaml"))
    assert spec.cutoff is None and "cutoff" not in spec.deadlines and spec.deadlines["inputs"] == 3600


# -- bad specs -------------------------------------------------------------------------------------------
def test_unparsable_yaml(tmp_path):
    expect_error(tmp_path, "computation: [taxi\nparties: {", "(file)", "YAML")


def test_not_a_mapping_and_missing_file(tmp_path):
    expect_error(tmp_path, "- a\n- b\n", "(file)", "mapping")
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "absent.yaml")
    assert info.value.field_path == "(file)"


def test_unknown_top_level_field(tmp_path):
    raw = base_raw()
    raw["treshold"] = 1
    expect_error(tmp_path, raw, "treshold", "unknown field")


def test_unknown_party_role(tmp_path):
    raw = base_raw()
    raw["parties"][4]["roles"] = ["input", "auditor"]
    expect_error(tmp_path, raw, "parties[4].roles", "auditor")


def test_duplicate_party_id(tmp_path):
    raw = base_raw()
    raw["parties"][4]["id"] = "company_b"
    expect_error(tmp_path, raw, "parties[4].id", "duplicate", "company_b")


def test_compute_party_without_endpoint(tmp_path):
    raw = base_raw()
    del raw["parties"][1]["endpoint"]
    expect_error(tmp_path, raw, "parties[1].endpoint", "host:port")
    raw = base_raw()
    raw["parties"][2]["endpoint"] = "no-port"
    expect_error(tmp_path, raw, "parties[2].endpoint")


@pytest.mark.parametrize("threshold", [0, 2, 3, -1, "1", True, None])
def test_threshold_without_honest_majority(tmp_path, threshold):
    raw = base_raw()
    raw["threshold"] = threshold  # 3 compute parties: only t = 1 has 1 <= t and 2t < 3
    expect_error(tmp_path, raw, "threshold", "1 <= t", "2t < 3")


def test_threshold_zero_would_give_every_compute_party_the_plaintext(tmp_path):
    raw = base_raw()
    raw["threshold"] = 0
    err = expect_error(tmp_path, raw, "threshold", "got 0")
    assert "federation spec" in str(err)


@pytest.mark.parametrize("computes", [1, 2])
def test_fewer_than_three_compute_parties(tmp_path, computes):
    raw = base_raw()
    for party in raw["parties"]:
        if "compute" in party["roles"] and sum("compute" in p["roles"] for p in raw["parties"]) > computes:
            party["roles"] = [r for r in party["roles"] if r != "compute"]
            party.pop("endpoint", None)
    for threshold in (None, 0, 1):
        if threshold is None:
            raw.pop("threshold", None)
        else:
            raw["threshold"] = threshold
        expect_error(tmp_path, raw, "parties", "at least 3 parties with role 'compute'", f"got {computes}")


@pytest.mark.parametrize("computes, expected", [(3, 1), (4, 1), (5, 2), (6, 2), (7, 3)])
def test_default_threshold_is_the_largest_honest_majority_one(tmp_path, computes, expected):
    raw = base_raw()
    raw.pop("threshold")
    base = raw["parties"][0]
    extra = [
        {"id": f"compute_{i}", "roles": ["compute"], "endpoint": f"127.0.0.1:{12000 + i}"} for i in range(computes - 3)
    ]
    raw["parties"] = raw["parties"] + extra
    spec = load_spec(write(tmp_path, raw))
    assert len(spec.compute_parties) == computes and spec.threshold == expected
    assert base["id"] == spec.leader.id


def test_missing_coordination_bucket(tmp_path):
    raw = base_raw()
    del raw["coordination"]["bucket"]
    expect_error(tmp_path, raw, "coordination.bucket", "required")
    raw = base_raw()
    del raw["coordination"]
    expect_error(tmp_path, raw, "coordination", "required")


def test_unknown_party_lookup():
    spec = load_spec(TAXI)
    with pytest.raises(SpecError) as info:
        spec.party("nobody")
    assert info.value.field_path == "parties"
    assert "'nobody'" in str(info.value) and "company_a" in str(info.value)


def test_program_file_missing(tmp_path):
    raw = base_raw()
    raw["program"]["file"] = "../programs/no_such_program.py"
    expect_error(tmp_path, raw, "program.file", "no_such_program.py")
    raw = base_raw()
    del raw["program"]["file"]
    expect_error(tmp_path, raw, "program.file", "required")


def test_builtin_program_and_job_by_name(tmp_path):
    raw = base_raw()
    raw["program"]["file"] = "builtin:hhi"
    raw["aggregation"]["job"] = "builtin:taxi_revenue"
    spec = load_spec(write(tmp_path, raw))
    assert spec.program_file == HHI.resolve()  # a cloned project: its include/ folder
    assert spec.aggregation_job == JOB.resolve()
    (tmp_path / "by_path").mkdir()
    assert spec.program_hash == load_spec(write(tmp_path / "by_path", base_raw())).program_hash


def test_builtin_resolver_finds_every_kind_and_refuses_unknown_names():
    from mpc_federation.builtins import builtin_names, builtin_path

    assert builtin_path("federation", "taxi_hhi") == TAXI.resolve()
    assert {"hhi", "mean", "pay_gap", "sum"} <= set(builtin_names("program"))
    for name in ("no_such", "../programs/hhi", ".hidden", ""):
        with pytest.raises(LookupError, match="known: .*hhi"):
            builtin_path("program", name)
    with pytest.raises(ValueError, match="unknown kind"):
        builtin_path("dataset", "hhi")


@pytest.mark.parametrize(
    ("edit", "field_path", "words"),
    [
        (
            lambda r: r["program"].update(file="builtin:no_such_program"),
            "program.file",
            ("no built-in program 'no_such_program'", "hhi"),
        ),
        (
            lambda r: r["aggregation"].update(job="builtin:hhi"),
            "aggregation.job",
            ("no built-in job 'hhi'", "taxi_revenue"),
        ),
        (
            lambda r: r["aggregation"].update(job="no_such_job.py"),
            "aggregation.job",
            ("no such file", "no_such_job.py", "builtin:<name>"),
        ),
    ],
)
def test_unknown_builtin_or_missing_file(tmp_path, edit, field_path, words):
    raw = base_raw()
    edit(raw)
    expect_error(tmp_path, raw, field_path, *words)


@pytest.mark.parametrize(
    "value", ["not base64 at all!", base64.b64encode(b"x" * 31).decode(), base64.b64encode(b"x" * 33).decode(), 12345]
)
def test_bad_key_base64(tmp_path, value):
    raw = base_raw()
    raw["parties"][2]["keys"] = {"sign": base64.b64encode(b"k" * 32).decode(), "box": value}
    expect_error(tmp_path, raw, "parties[2].keys.box", "32-byte")


def test_good_keys_are_kept(tmp_path):
    from mpc_federation.envelope import PartyKeys

    raw = base_raw()
    keys = PartyKeys.generate("company_c", test_only=True)
    raw["parties"][2]["keys"] = keys.public_entry()
    party = load_spec(write(tmp_path, raw)).party("company_c")
    assert party.sign_key == keys.public_entry()["sign"]
    assert party.box_key == keys.public_entry()["box"]


@pytest.mark.parametrize(
    "edit, field_path",
    [
        (lambda r: r.update(computation="Taxi-HHI"), "computation"),
        (lambda r: r.update(schedule="every night"), "schedule"),
        (lambda r: r["aggregation"].update(period={"months": 0}), "aggregation.period.months"),
        (lambda r: r["aggregation"].update(period={"start": "2024-13", "end": "2024-12"}), "aggregation.period.start"),
        (lambda r: r["aggregation"].update(period={"start": "2024-05", "end": "2024-01"}), "aggregation.period"),
        (lambda r: r["aggregation"].update(period={"months": 1, "snapshot": "yes"}), "aggregation.period.snapshot"),
        (lambda r: r["aggregation"].update(period={"months": 1, "snapshot": True}), "aggregation.period.snapshot"),
        (lambda r: r["aggregation"].update(period={"months": 1, "snap": True}), "aggregation.period"),
        (lambda r: r["aggregation"].update(input="../other"), "aggregation.input"),
        (lambda r: r["aggregation"].update(jobs="x"), "aggregation.jobs"),
        (lambda r: r.update(min_input_parties=6), "min_input_parties"),
        (lambda r: r.update(deadlines={"inputs": 0}), "deadlines.inputs"),
        (lambda r: r.update(deadlines={"lunch": 10}), "deadlines.lunch"),
        (lambda r: r.update(deadlines={"cutoff": "soon"}), "deadlines.cutoff"),
        (lambda r: r["coordination"].update(prefix="/abs"), "coordination.prefix"),
        (lambda r: r.update(parties=[p for p in r["parties"] if p["id"] != "regulator"]), "parties"),
        (lambda r: r["parties"][1].update(endpoint="127.0.0.1:11365"), "parties"),
        (lambda r: r["parties"][0].update(id="Company A"), "parties[0].id"),
    ],
)
def test_other_bad_fields(tmp_path, edit, field_path):
    raw = base_raw()
    edit(raw)
    expect_error(tmp_path, raw, field_path)


# -- fields below the top level are validated as strictly as the top level -------------------------------
@pytest.mark.parametrize(
    "edit, field_path",
    [
        # a misspelt "keys": the party would silently have no keys and every object it signs is refused later
        (lambda r: r["parties"][3].update(key={"sign": base64.b64encode(b"k" * 32).decode()}), "parties[3].key"),
        # a misspelt "prefix": two federations would silently share the default prefix
        (lambda r: r["coordination"].update(prefx="other"), "coordination.prefx"),
        # a misspelt "params": the program would silently run with its defaults
        (lambda r: r["program"].update(parms={"x": 1}), "program.parms"),
    ],
)
def test_unknown_nested_field(tmp_path, edit, field_path):
    raw = base_raw()
    edit(raw)
    expect_error(tmp_path, raw, field_path, "unknown field")


@pytest.mark.parametrize("endpoint", ["127.0.0.1:70000", "127.0.0.1:0", "127.0.0.1:65536"])
def test_endpoint_port_out_of_range(tmp_path, endpoint):
    raw = base_raw()
    raw["parties"][1]["endpoint"] = endpoint
    expect_error(tmp_path, raw, "parties[1].endpoint")


@pytest.mark.parametrize(
    "edit, field_path",
    [
        (lambda r: r.update(min_input_parties=True), "min_input_parties"),
        (lambda r: r.update(deadlines={"inputs": True}), "deadlines.inputs"),
        (lambda r: r["aggregation"].update(period={"months": True}), "aggregation.period.months"),
    ],
)
def test_booleans_are_not_integers(tmp_path, edit, field_path):
    """``threshold: true`` is refused (see above); the other integer fields must refuse it too."""
    raw = base_raw()
    edit(raw)
    expect_error(tmp_path, raw, field_path)


# -- the spec's own dimensions ------------------------------------------------------------------------------
def test_declared_dimensions(tmp_path):
    raw = base_raw()
    raw["dimensions"] = {"zone": ["manhattan", "brooklyn", 3]}
    spec = load_spec(write(tmp_path, raw))
    assert spec.dimensions(datetime(2024, 4, 15)) == {
        "market": ["all", "2024-01", "2024-02", "2024-03"],
        "zone": ["manhattan", "brooklyn", "3"],
    }
    assert load_spec(TAXI).dimensions(datetime(2024, 4, 15)).keys() == {"market"}


@pytest.mark.parametrize(
    "dimensions, field_path",
    [
        (["zone"], "dimensions"),
        ({"market": ["a"]}, "dimensions.market"),
        ({"Zone": ["a"]}, "dimensions.Zone"),
        ({"zone": []}, "dimensions.zone"),
        ({"zone": "abc"}, "dimensions.zone"),
        ({"zone": ["a", "b", "a"]}, "dimensions.zone"),
        ({"zone": [1, "1"]}, "dimensions.zone"),
    ],
)
def test_bad_dimensions(tmp_path, dimensions, field_path):
    raw = base_raw()
    raw["dimensions"] = dimensions
    expect_error(tmp_path, raw, field_path)


def test_public_keys_as_terraform_renders_them(tmp_path):
    """infra/terraform merges ``party_public_keys`` (an object per party) as the party's ``keys`` into the
    spec every hosted party loads; the loader must accept exactly those attribute names."""
    import re

    variables = (REPO / "infra" / "terraform" / "variables.tf").read_text()
    block = re.search(r'variable\s+"party_public_keys"\s*\{.*?object\(\{(.*?)\}\)', variables, re.S)
    assert block, "party_public_keys not found in variables.tf"
    names = re.findall(r"(\w+)\s*=", block.group(1))
    assert {"sign", "box"} <= set(names)
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    from mpc_federation.envelope import PartyKeys

    public = PartyKeys.generate("company_a", test_only=True).public_entry()
    raw = base_raw()
    raw["parties"][0]["keys"] = {name: public.get(name, pem) for name in names}
    party = load_spec(write(tmp_path, raw)).party("company_a")  # must not raise
    assert party.sign_key == public["sign"] and party.box_key == public["box"]
    if set(names) - {"sign", "box"}:
        assert party.certificate == pem  # the TLS certificate is not dropped on the way
