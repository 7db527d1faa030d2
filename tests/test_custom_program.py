"""A user's own secure program, written in a temporary folder, runs through the generic stages that the
operators wrap (share, compute with three real MPyC processes, reveal) against the real local S3
server, with a federation spec of its own: nothing under plugins/ knows about it."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime

import pytest
from conftest import compute_each, small_parties

from mpc_federation import stages
from mpc_federation.party import PartyRun
from mpc_federation.programs import ProgramError
from mpc_federation.store import CoordinationStore

DATE = datetime(2024, 6, 2, 3, 0, tzinfo=UTC)

PROGRAM = textwrap.dedent('''
    """Trips per region: the total, scaled by a public factor, and the mean per company to 0.01."""
    from mpc_federation.arith import DivisionSize, round_div
    from mpc_federation.programs import Input, Output, SecureProgram

    MEAN = DivisionSize(den_bits=8, quotient_bits=30)

    def trips(mpc, secint, inputs, params):
        totals = inputs["trips"].sum(axis=0)
        companies = secint.array(__import__("numpy").full(totals.shape, inputs.parties, dtype=object))
        return {"total": params["scale"] * totals,
                "mean_per_company": round_div(mpc, 100 * totals, companies, MEAN)}

    PROGRAM = SecureProgram(
        name="regional_trips",
        inputs=(Input("trips", low=0, high=2**20 - 1, dim="region"),),
        outputs=(Output("total", dim="region"),
                 Output("mean_per_company", dim="region", decimals=2)),
        compute=trips,
        bit_length=MEAN.secint_bits,
        min_input_parties=3,
        settings=lambda params: {"scale": 1, **(params or {})},
    )
''')

TEMPLATE = textwrap.dedent("""
    computation: regional_trips
    description: Trips per region across companies (a program that lives outside the project)
    schedule: "0 4 * * *"
    program:
      file: ../programs/regional_trips.py
      params: {scale: 2}
    dimensions:
      region: [north, south, east]
    threshold: 1
    min_input_parties: 3
    coordination: {bucket: mpc-coordination, prefix: federations}
    parties: []
""")


def test_a_program_from_a_temporary_folder_runs_through_the_stages(tmp_path, federation, s3_server):
    (tmp_path / "programs").mkdir()
    program_file = tmp_path / "programs" / "regional_trips.py"
    program_file.write_text(PROGRAM)
    (tmp_path / "specs").mkdir()
    template = tmp_path / "specs" / "regional_trips.yaml"
    template.write_text(TEMPLATE)

    spec, keys = federation(parties=small_parties(inputs=3, computes=3), template=template)
    assert spec.program_file == program_file.resolve()
    assert spec.dimensions(DATE)["region"] == ["north", "south", "east"]
    runs = {
        p.id: PartyRun(spec, p.id, DATE, keys[p.id], CoordinationStore(s3_server.store_config(spec.bucket)))
        for p in spec.parties
    }
    companies = [p.id for p in spec.input_parties]
    assert runs["regulator"].program.name == "regional_trips"

    trips = {"company_a": [100, 0, 7], "company_b": [250, 3, 7], "company_c": [1, 10**6, 8]}

    def aggregate(party: str, values: dict) -> dict:
        return {
            "format": "mpc-aggregate/1",
            "party": party,
            "dimensions": {"region": ["north", "south", "east"]},
            "values": values,
        }

    # Bad input first: an aggregate that does not match the declared inputs uploads nothing.
    root = runs["company_a"].channel.root
    with pytest.raises(ProgramError, match=r"values \['revenue_cents'\] are not inputs of program regional_trips"):
        stages.share(runs["company_a"], aggregate("company_a", {"trips": [1, 2, 3], "revenue_cents": [4, 5, 6]}))
    with pytest.raises(ProgramError, match="region labels"):
        stages.share(
            runs["company_a"],
            {**aggregate("company_a", {"trips": [1, 2, 3]}), "dimensions": {"region": ["north", "south", "west"]}},
        )
    with pytest.raises(ProgramError, match=r"input 'trips' at south: 1048576 is outside the declared range"):
        stages.share(runs["company_a"], aggregate("company_a", {"trips": [1, 2**20, 3]}))
    assert runs["company_a"].store.list(f"{root}/") == []

    for company in companies:
        assert stages.share(runs[company], aggregate(company, {"trips": trips[company]}))["status"] == "shared"
    computed = compute_each([runs[c] for c in companies], connect_timeout=60, run_timeout=120)
    assert all(r["roster"] == companies for r in computed.values())

    result = stages.reveal(runs["regulator"])
    assert result["program"] == "regional_trips" and result["roster"] == companies
    assert result["program_hash"] == spec.program_hash
    totals = [sum(column) for column in zip(*trips.values())]
    assert result["outputs"]["total"] == {
        "decimals": 0,
        "labels": ["north", "south", "east"],
        "withheld": [],
        "exact": [str(2 * t) for t in totals],
        "value": [float(2 * t) for t in totals],
    }
    means = result["outputs"]["mean_per_company"]
    assert means["exact"] == ["117.00", "333334.33", "7.33"]  # 351/3, 1000003/3, 22/3 to the hundredth
