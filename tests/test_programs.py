"""Program modules: loading and declaration checks, and checking a party's aggregate against them."""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path

import pytest

from mpc_federation.programs import ProgramError, SecureProgram, check_aggregate, load_program

REPO = Path(__file__).resolve().parents[1]
HHI_PATH = REPO / "include" / "programs" / "hhi.py"
DIMS = {"market": ["all", "2024-01", "2024-02", "2024-03"]}


@pytest.fixture(scope="module")
def hhi():
    return load_program(HHI_PATH).program


def good() -> dict:
    return {
        "format": "mpc-aggregate/1",
        "party": "company_a",
        "dimensions": {"market": list(DIMS["market"])},
        "values": {"revenue_cents": [600, 100, 200, 300]},
    }


def test_load_hhi():
    loaded = load_program(HHI_PATH)
    program = loaded.program
    assert isinstance(program, SecureProgram)
    assert loaded.path == HHI_PATH.resolve()
    assert program.name == "hhi"
    assert [(i.name, i.low, i.high, i.dim, i.nonzero) for i in program.inputs] == [
        ("revenue_cents", 0, 2**40 - 1, "market", True)
    ]
    assert [(o.name, o.dim, o.decimals, o.suppressed_by) for o in program.outputs] == [
        ("hhi", "market", "decimals", "suppressed"),
        ("suppressed", "market", 0, None),
    ]
    assert program.params(None) == {"k": 3, "decimals": 2}
    assert program.decimals(program.outputs[0], program.params({"decimals": 3})) == 3
    assert program.bit_length == 124 and program.min_input_parties == 3
    assert program.input_lengths(DIMS) == {"revenue_cents": 4}
    assert program.output_lengths(DIMS) == {"hhi": 4, "suppressed": 4}
    assert load_program(HHI_PATH).program is program  # imported once


def test_good_aggregate(hhi):
    assert check_aggregate(hhi, good(), DIMS, "company_a") == {"revenue_cents": [600, 100, 200, 300]}
    edge = good()
    edge["values"]["revenue_cents"] = [0, 2**40 - 1, 0, 2**40 - 1]
    assert check_aggregate(hhi, edge, DIMS, "company_a")["revenue_cents"] == [0, 2**40 - 1, 0, 2**40 - 1]


def bad(edit):
    aggregate = copy.deepcopy(good())
    edit(aggregate)
    return aggregate


@pytest.mark.parametrize(
    "aggregate, words",
    [
        (bad(lambda a: a.update(format="mpc-aggregate/2")), ["company_a", "mpc-aggregate/1"]),
        ([1, 2, 3], ["mpc-aggregate/1"]),
        (bad(lambda a: a.update(party="company_b")), ["written for party 'company_b'"]),
        (bad(lambda a: a.pop("values")), ["'values'"]),
        (bad(lambda a: a["values"].pop("revenue_cents")), ["missing input 'revenue_cents'", "hhi"]),
        (bad(lambda a: a["values"].update(trips=[1, 2, 3, 4])), ["['trips']", "not inputs of program hhi"]),
        (
            bad(lambda a: a["dimensions"].update(market=["all", "2024-02", "2024-03", "2024-04"])),
            ["market labels", "2024-04"],
        ),
        (bad(lambda a: a.pop("dimensions")), ["market labels None"]),
        (bad(lambda a: a["values"].update(revenue_cents=[1, 2, 3])), ["has 3 values, expected 4"]),
        (bad(lambda a: a["values"].update(revenue_cents=5)), ["must be a list over market"]),
        (bad(lambda a: a["values"].update(revenue_cents=[1, 2.5, 3, 4])), ["at 2024-01", "2.5 is not an integer"]),
        (bad(lambda a: a["values"].update(revenue_cents=[1, 2, "3", 4])), ["at 2024-02", "'3' is not an integer"]),
        (bad(lambda a: a["values"].update(revenue_cents=[1, 2, 3, True])), ["at 2024-03", "not an integer"]),
        (bad(lambda a: a["values"].update(revenue_cents=[1, -1, 3, 4])), ["at 2024-01", "-1", "outside", "[0, "]),
        (
            bad(lambda a: a["values"].update(revenue_cents=[2**40, 0, 0, 0])),
            ["at all", str(2**40), "outside", str(2**40 - 1)],
        ),
    ],
)
def test_bad_aggregate(hhi, aggregate, words):
    with pytest.raises(ProgramError) as info:
        check_aggregate(hhi, aggregate, DIMS, "company_a")
    msg = str(info.value)
    assert "aggregate of company_a" in msg
    for word in words:
        assert word in msg, msg


def write_program(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text("from mpc_federation.programs import Input, Output, SecureProgram\n" + textwrap.dedent(body))
    return path


def test_module_without_program(tmp_path):
    path = write_program(tmp_path, "empty", "X = 1\n")
    with pytest.raises(ProgramError, match="must define PROGRAM = SecureProgram"):
        load_program(path)
    path = write_program(tmp_path, "wrong_type", "PROGRAM = {'name': 'x'}\n")
    with pytest.raises(ProgramError, match="must define PROGRAM"):
        load_program(path)


def test_module_that_fails_to_import(tmp_path):
    path = write_program(tmp_path, "broken", "raise RuntimeError('boom')\n")
    with pytest.raises(RuntimeError, match="boom"):
        load_program(path)
    with pytest.raises(RuntimeError, match="boom"):  # not half-imported and cached
        load_program(path)


def test_scalar_input_program(tmp_path):
    path = write_program(
        tmp_path,
        "scalar",
        """
        PROGRAM = SecureProgram(name="count", inputs=(Input("n", 0, 9),), outputs=(Output("total"),),
                                compute=lambda mpc, secint, inputs, params: {"total": inputs["n"].sum(axis=0)})
    """,
    )
    program = load_program(path).program
    aggregate = {"format": "mpc-aggregate/1", "party": "p", "values": {"n": 4}}
    assert check_aggregate(program, aggregate, DIMS, "p") == {"n": [4]}
    assert program.input_lengths(DIMS) == {"n": 1}
    with pytest.raises(ProgramError, match="'n' at n: 10 is outside"):
        check_aggregate(program, {**aggregate, "values": {"n": 10}}, DIMS, "p")


@pytest.mark.parametrize(
    "declaration, words",
    [
        ('inputs=(Input("x", 0, 9),), outputs=(Output("x"),)', ["names must be distinct"]),
        ('inputs=(Input("x", 0, 9), Input("x", 0, 9)), outputs=(Output("y"),)', ["names must be distinct"]),
        ('inputs=(Input("x", 9, 0),), outputs=(Output("y"),)', ["input x", "low 9 > high 0"]),
        ('inputs=(Input("x", 0, 2**64),), outputs=(Output("y"),)', ["input x", "SecInt(64)"]),
        ('inputs=(Input("x", -2**70, 0),), outputs=(Output("y"),), bit_length=64', ["SecInt(64)"]),
        ('inputs=(Input("x", 0, 9),), outputs=(Output("y", decimals=13),)', ["output y", "decimals", "0 to 12"]),
        ('inputs=(Input("x", 0, 9),), outputs=(Output("y", decimals="places"),)', ["output y", "names no parameter"]),
        ('inputs=(Input("x", 0, 9),), outputs=(Output("y", suppressed_by="z"),)', ["output y", "suppressed_by"]),
        ('inputs=(Input("x", 0, 9),), outputs=(Output("y"),), min_input_parties=0', ["min_input_parties"]),
    ],
)
def test_declaration_errors(tmp_path, declaration, words):
    name = f"decl_{abs(hash(declaration))}"
    path = write_program(tmp_path, name, f"PROGRAM = SecureProgram(name='d', compute=None, {declaration})\n")
    with pytest.raises(ProgramError) as info:
        load_program(path)
    msg = str(info.value)
    assert str(path) in msg
    for word in words:
        assert word in msg, msg


def test_a_federation_computes_in_the_field_its_params_and_input_parties_need():
    """``SecureProgram.for_federation``: the HHI declares the field of its largest federation (100
    firms, 4 decimals) and sizes it down from the spec's params and declared input parties, which
    every party reads alike; every roster of that federation fits its field; a program without
    ``sizing`` keeps its own; a field wider than declared, or too narrow for the inputs, is refused."""
    from datetime import UTC, datetime

    from mpc_federation.party import PartyRun
    from mpc_federation.spec import load_spec

    loaded = load_program(HHI_PATH)
    program, division = loaded.program, loaded.module.division
    assert program.bit_length == division(4, 100).secint_bits == 124
    five = program.for_federation(None, 5)
    assert five.bit_length == division(2, 5).secint_bits == 109
    assert (five.modulus.bit_length(), program.modulus.bit_length()) == (141, 156)
    assert program.for_federation({"decimals": 4}, 100).bit_length == 124
    assert program.for_federation({"decimals": 4}, 250).bit_length == 124  # the program refuses > 100 firms itself
    for declared in (3, 5, 17, 64, 100):
        for decimals in range(5):
            bits = program.for_federation({"decimals": decimals}, declared).bit_length
            assert all(division(decimals, firms).secint_bits <= bits for firms in range(3, declared + 1))
    spec = load_spec(REPO / "include" / "federations" / "taxi_hhi.yaml")
    run = PartyRun(spec, "company_a", datetime(2024, 4, 1, tzinfo=UTC), None, None)
    assert run.program.bit_length == division(2, len(spec.input_parties)).secint_bits < program.bit_length
    sum_program = load_program(REPO / "include" / "programs" / "sum.py").program
    assert sum_program.for_federation(None, 5) is sum_program
    with pytest.raises(ProgramError, match=r"SecInt\(125\) is outside the sizes it allows \(41 to 124\)"):
        program.with_bit_length(125)
    with pytest.raises(ProgramError, match=r"SecInt\(40\) is outside"):  # revenues have 40 bits
        program.with_bit_length(40)
    assert program.with_bit_length(41).bit_length == 41


def test_the_prime_is_mpycs():
    """``blum_prime_below`` finds the prime MPyC's ``find_prime_root(bits, n=2)`` picks, at every
    field size a program can ask for (a secure integer's bits plus the statistical margin)."""
    from mpyc.finfields import find_prime_root

    from mpc_federation.programs import blum_prime_below

    for bits in range(8, 300):
        assert blum_prime_below(bits) == find_prime_root(bits, n=2)[0], bits
