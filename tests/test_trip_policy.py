"""The declared data policy of an aggregation (issue 18): the spec's ``aggregation.policy``,
``.columns`` and ``.participants`` validate with errors naming the field, are covered by the spec
hash, and reach the Spark job as its command-line arguments."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from conftest import load_raw as load
from conftest import party_settings

from mpc_federation import spec as spec_module
from mpc_federation.programs import import_file
from mpc_federation.spec import SpecError, load_spec

REPO = Path(__file__).resolve().parents[1]
TAXI = REPO / "include" / "federations" / "taxi_hhi.yaml"
JOB = REPO / "include" / "jobs" / "taxi_revenue.py"
DEFAULTS = {"negative_amounts": "count", "null_amounts": "drop", "outside_period": "ignore"}
INPUTS = ["company_a", "company_b", "company_c", "company_d", "company_e"]


def base_raw() -> dict:
    raw = yaml.safe_load(TAXI.read_text())
    raw["program"]["file"] = str(REPO / "include" / "programs" / "hhi.py")
    raw["aggregation"]["job"] = str(JOB)
    return raw


def hvfhv_raw() -> dict:
    raw = base_raw()
    raw["aggregation"]["columns"] = {
        "revenue": "base_passenger_fare",
        "time": "pickup_datetime",
        "participant": "hvfhs_license_num",
    }
    raw["aggregation"]["participants"] = {pid: f"HV000{i}" for i, pid in enumerate(INPUTS, start=1)}
    return raw


def test_committed_spec_declares_the_defaults():
    spec = load_spec(TAXI)
    assert spec.data_policy == DEFAULTS
    assert spec.aggregation_columns == {"revenue": "fare_amount", "time": "tpep_pickup_datetime"}
    assert spec.aggregation_participants == {}


def test_spec_and_job_agree_on_the_choices():
    job = import_file(JOB, "taxi_revenue_job")
    assert job.POLICY_CHOICES == spec_module.POLICY_CHOICES
    assert {name: choices[0] for name, choices in job.POLICY_CHOICES.items()} == DEFAULTS
    args = job.parse_args(["--input", "i", "--output", "o", "--party", "p", "--months", "2024-01"])
    assert {name: getattr(args, name) for name in DEFAULTS} == DEFAULTS and args.max_cents == 2**40 - 1


def test_not_declared_means_no_policy(tmp_path):
    raw = base_raw()
    del raw["aggregation"]["policy"], raw["aggregation"]["columns"]
    spec = load(tmp_path, raw)
    assert spec.data_policy is None and spec.aggregation_columns is None  # other jobs keep their arguments


def test_partial_policy_gets_defaults(tmp_path):
    raw = base_raw()
    raw["aggregation"]["policy"] = {"negative_amounts": "drop"}
    assert load(tmp_path, raw).data_policy == {**DEFAULTS, "negative_amounts": "drop"}
    raw["aggregation"]["policy"] = None
    assert load(tmp_path, raw).data_policy == DEFAULTS


def test_participants(tmp_path):
    spec = load(tmp_path, hvfhv_raw())
    assert spec.aggregation_columns["participant"] == "hvfhs_license_num"
    assert spec.aggregation_participants["company_c"] == "HV0003"


@pytest.mark.parametrize(
    "edit, field_path, words",
    [
        (
            lambda a: a.update(policy={"negative_amounts": "ignore"}),
            "aggregation.policy.negative_amounts",
            ["count, drop, fail", "'ignore'"],
        ),
        (lambda a: a.update(policy={"null_amounts": "count"}), "aggregation.policy.null_amounts", ["drop, fail"]),
        (lambda a: a.update(policy={"outside_period": "drop"}), "aggregation.policy.outside_period", ["ignore, fail"]),
        (lambda a: a.update(policy={"typos": "fix"}), "aggregation.policy.typos", ["unknown field"]),
        (lambda a: a.update(policy=["count"]), "aggregation.policy", ["mapping"]),
        (lambda a: a.update(columns={"revenue": ""}), "aggregation.columns.revenue", ["column name"]),
        (lambda a: a.update(columns={"time": "pickup time"}), "aggregation.columns.time", ["column name"]),
        (lambda a: a.update(columns={"time": "{{ x }}"}), "aggregation.columns.time", ["column name"]),
        (lambda a: a.update(columns={"revenue": None}), "aggregation.columns.revenue", ["column name"]),
        (lambda a: a.update(columns={"amount": "fare"}), "aggregation.columns.amount", ["unknown field"]),
        (lambda a: a.update(columns={"revenue": "Fare", "time": "fare"}), "aggregation.columns", ["differ"]),
        (lambda a: a.update(columns="fare_amount"), "aggregation.columns", ["mapping"]),
        (
            lambda a: a.update(participants={"company_a": "HV0003"}),
            "aggregation.participants",
            ["needs aggregation.columns.participant"],
        ),
    ],
)
def test_bad_policy_fields(tmp_path, edit, field_path, words):
    raw = base_raw()
    edit(raw["aggregation"])
    with pytest.raises(SpecError) as info:
        load(tmp_path, raw)
    assert info.value.field_path == field_path, str(info.value)
    for word in words:
        assert word in str(info.value), str(info.value)


@pytest.mark.parametrize(
    "edit, field_path, words",
    [
        (lambda p: p.pop("company_d"), "aggregation.participants.company_d", ["is required"]),
        (lambda p: p.update(regulator="HV0009"), "aggregation.participants.regulator", ["not an input party"]),
        (lambda p: p.update(company_e="HV0001"), "aggregation.participants", ["same value"]),
        (lambda p: p.update(company_e="HV 5"), "aggregation.participants.company_e", ["like HV0003"]),
        (lambda p: p.update(company_e=3), "aggregation.participants.company_e", ["got 3"]),
    ],
)
def test_bad_participants(tmp_path, edit, field_path, words):
    raw = hvfhv_raw()
    edit(raw["aggregation"]["participants"])
    with pytest.raises(SpecError) as info:
        load(tmp_path, raw)
    assert info.value.field_path == field_path, str(info.value)
    for word in words:
        assert word in str(info.value), str(info.value)


def test_policy_is_part_of_the_spec_hash(tmp_path):
    """The policy lives in the raw spec, so the canonical hash covers it: parties with another
    policy (or other columns, or another licence mapping) run a different federation spec."""
    raw = base_raw()
    same = load(tmp_path, raw, "a.yaml")
    assert load(tmp_path, copy.deepcopy(raw), "b.yaml").spec_hash == same.spec_hash
    edits = [
        lambda a: a["policy"].update(negative_amounts="drop"),
        lambda a: a["policy"].update(null_amounts="fail"),
        lambda a: a["policy"].update(outside_period="fail"),
        lambda a: a["columns"].update(revenue="total_amount"),
        lambda a: a["columns"].update(time="TPEP_PICKUP_DATETIME"),
    ]
    hashes = {same.spec_hash}
    for i, edit in enumerate(edits):
        edited = copy.deepcopy(raw)
        edit(edited["aggregation"])
        hashes.add(load(tmp_path, edited, f"e{i}.yaml").spec_hash)
    assert len(hashes) == len(edits) + 1
    one = hvfhv_raw()
    two = copy.deepcopy(one)
    two["aggregation"]["participants"]["company_a"], two["aggregation"]["participants"]["company_b"] = (
        "HV0002",
        "HV0001",
    )
    assert load(tmp_path, one, "h1.yaml").spec_hash != load(tmp_path, two, "h2.yaml").spec_hash


# -- what the job receives ----------------------------------------------------------------------------
def aggregate_args(spec, party: str) -> list[str]:
    from mpc_operators.aggregate import aggregate_task

    return list(aggregate_task(spec, party, party_settings(party_id=party)).application_args)


def test_job_receives_policy_and_columns():
    args = aggregate_args(load_spec(TAXI), "company_d")
    assert args[:6] == ["--input", "/data/trips", "--party", "company_d", "--months", "{{ mpc_months(dag_run) }}"]
    assert args[6:] == [
        "--negative-amounts",
        "count",
        "--null-amounts",
        "drop",
        "--outside-period",
        "ignore",
        "--revenue-column",
        "fare_amount",
        "--time-column",
        "tpep_pickup_datetime",
    ]
    job = import_file(JOB, "taxi_revenue_job2")
    parsed = job.parse_args([*args, "--output", "/tmp/aggregate.json"])  # the job accepts exactly these
    assert (parsed.negative_amounts, parsed.revenue_column, parsed.participant_column) == ("count", "fare_amount", None)


def test_job_receives_its_licence(tmp_path):
    spec = load(tmp_path, hvfhv_raw())
    args = aggregate_args(spec, "company_b")
    tail = args[args.index("--revenue-column") :]
    assert tail == [
        "--revenue-column",
        "base_passenger_fare",
        "--time-column",
        "pickup_datetime",
        "--participant-column",
        "hvfhs_license_num",
        "--participant-value",
        "HV0002",
    ]


def test_undeclared_policy_adds_no_arguments(tmp_path):
    raw = base_raw()
    del raw["aggregation"]["policy"], raw["aggregation"]["columns"]
    args = aggregate_args(load(tmp_path, raw), "company_a")
    assert len(args) == 6 and args[-2] == "--months"
