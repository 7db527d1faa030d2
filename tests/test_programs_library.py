"""The built-in program library across real MPyC processes (three compute parties, one process each,
via the launcher), on known answers: sum, mean, HHI of one market, pay gap. Each answer is written
out by hand (rounded at the declared precision inside the MPC), and also checked against the
program's own plaintext reference.
"""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

import pytest
from mpcrun import run_program

from mpc_federation.arith import plain_round_div
from mpc_federation.programs import ProgramError, check_aggregate, load_program

REPO = Path(__file__).resolve().parents[1]
PROGRAMS = REPO / "include" / "programs"


def load(name: str):
    loaded = load_program(PROGRAMS / f"{name}.py")
    return loaded.program, sys.modules[loaded.program.compute.__module__]


def as_python(decoded: dict) -> dict:
    """Decoded outputs as Decimals (declared decimals > 0) or ints, None kept."""
    return {
        name: [None if x is None else (Decimal(x) if out["decimals"] else int(x)) for x in out["exact"]]
        for name, out in decoded.items()
    }


def by_party(cells: dict[str, list[tuple]], names: tuple[str, ...]) -> dict[str, dict[str, list[int]]]:
    """{cell: [per party (v1, v2, ...)]} -> {party: {name: [value per cell]}}."""
    labels = list(cells)
    n_parties = len(cells[labels[0]])
    return {
        f"company_{chr(ord('a') + i)}": {name: [cells[label][i][k] for label in labels] for k, name in enumerate(names)}
        for i in range(n_parties)
    }


# -- sum ------------------------------------------------------------------------------------------------
def test_sum_known_answers():
    program, module = load("sum")
    top, bottom = 2**module.VALUE_BITS - 1, -(2**module.VALUE_BITS)
    cells = {  # per market: the value of each of three companies
        "all": [(120,), (30,), (50,)],
        "negative": [(-7,), (3,), (1,)],
        "cancels_to_zero": [(5,), (-2,), (-3,)],  # a true zero total is revealed as 0, not suppressed
        "one_zero": [(10,), (0,), (20,)],  # two contributors < k = 3: suppressed
        "all_zero": [(0,), (0,), (0,)],
        "max": [(top,), (top,), (top,)],
        "min": [(bottom,), (bottom,), (bottom,)],
    }
    dims = {"market": list(cells)}
    parties = by_party(cells, ("value",))
    got = as_python(run_program(PROGRAMS / "sum.py", dims, parties))
    assert got == {
        "total": [200, -3, 0, None, None, 3 * top, 3 * bottom],
        "suppressed": [0, 0, 0, 1, 1, 0, 0],
    }
    assert got == module.plaintext(list(parties.values()))


# -- mean -----------------------------------------------------------------------------------------------
def test_mean_known_answers():
    _, module = load("mean")
    top_sum, top_count = 2**module.SUM_BITS - 1, 2**module.COUNT_BITS - 1
    cells = {  # per market: (value_sum, count) of each of three companies
        "all": [(100, 2), (200, 2), (300, 2)],  # 600 / 6 = 100
        "fraction": [(10, 1), (20, 3), (3, 3)],  # 33 / 7 = 4.71 -> 5
        "negative": [(-10, 2), (-1, 2), (0, 1)],  # -11 / 5 = -2.2 -> -2; exactly n = 5 records
        "tie": [(4, 2), (4, 2), (1, 2)],  # 9 / 6 = 1.5 -> 2 (ties round up)
        "negative_tie": [(-4, 2), (-4, 2), (-1, 2)],  # -1.5 -> -1 (up, towards plus infinity)
        "four_records": [(1, 1), (1, 1), (1, 2)],  # fewer than n = 5: suppressed
        "two_parties": [(50, 10), (0, 0), (70, 10)],  # one party without records: k = 3 not met
        "extremes": [(top_sum, 1), (top_sum, top_count), (-top_sum - 1, top_count)],
    }
    dims = {"market": list(cells)}
    parties = by_party(cells, ("value_sum", "count"))
    got = as_python(run_program(PROGRAMS / "mean.py", dims, parties))
    assert got == {
        "mean": [100, 5, -2, 2, -1, None, None, plain_round_div(top_sum - 1, 1 + 2 * top_count)],
        "suppressed": [0, 0, 0, 0, 0, 1, 1, 0],
    }
    assert got == module.plaintext(list(parties.values()))
    cents = as_python(
        run_program(
            PROGRAMS / "mean.py",
            {"market": ["fraction"]},
            by_party({"fraction": cells["fraction"]}, ("value_sum", "count")),
            params={"decimals": 2},
        )
    )
    assert cents["mean"] == [Decimal("4.71")]  # 33/7 = 4.714...


# -- HHI of one market ------------------------------------------------------------------------------------
def test_hhi_single_known_answer():
    program, module = load("hhi_single")
    assert [(i.name, i.dim) for i in program.inputs] == [("revenue_cents", None)]
    assert program.input_lengths({"market": ["all"]}) == {"revenue_cents": 1}
    revenues = [5, 4, 3, 2, 1]  # tests/data/hhi_known_answers.json: revenues_5_4_3_2_1 -> 22000/9
    parties = {f"firm_{i}": {"revenue_cents": [r * 10**11]} for i, r in enumerate(revenues)}
    decoded = run_program(PROGRAMS / "hhi_single.py", {}, parties)
    assert decoded["hhi"]["labels"] == ["hhi"]
    assert decoded["hhi"]["exact"] == ["2444.44"]  # 2444.444... to the hundredth
    assert (
        as_python(decoded)
        == module.plaintext(list(parties.values()))
        == {"hhi": [Decimal("2444.44")], "suppressed": [0]}
    )


def test_hhi_single_refuses_a_vector():
    """The taxi job writes revenue per market; the one-market program names the mismatch."""
    program, _ = load("hhi_single")
    aggregate = {
        "format": "mpc-aggregate/1",
        "party": "company_a",
        "dimensions": {"market": ["all", "2024-01"]},
        "values": {"revenue_cents": [300, 300]},
    }
    with pytest.raises(ProgramError, match=r"input 'revenue_cents' at revenue_cents: \[300, 300\] is not an integer"):
        check_aggregate(program, aggregate, {"market": ["all", "2024-01"]}, "company_a")
    aggregate["values"]["revenue_cents"] = 300
    assert check_aggregate(program, aggregate, {"market": ["all", "2024-01"]}, "company_a") == {"revenue_cents": [300]}


# -- pay gap --------------------------------------------------------------------------------------------------
PAY_GAP_NAMES = ("salary_sum_men", "salary_sum_women", "count_men", "count_women")


def pay_gap_cells(module) -> dict[str, list[tuple]]:
    top_sum, top_count = 2**module.SUM_BITS - 1, 2**module.COUNT_BITS - 1
    return {  # per level: (Sm, Sw, Cm, Cw) of each of three companies
        "all": [(200, 180, 2, 2), (200, 180, 2, 2), (200, 90, 2, 1)],  # 600/6 - 450/5 = 10; 9/10; Cw = n
        "thirds": [(100, 100, 1, 1), (200, 101, 2, 2), (301, 300, 3, 3)],  # 601/6 - 501/6 = 16.67; 501/601
        "women_paid_more": [(200, 220, 2, 2), (100, 220, 1, 2), (200, 220, 2, 2)],  # 100 - 110 = -10; 11/10
        "equal_pay": [(300, 200, 3, 2), (100, 200, 1, 2), (100, 100, 1, 1)],  # 100 - 100 = 0 (revealed)
        "few_women": [(500, 100, 5, 1), (500, 100, 5, 1), (500, 200, 5, 2)],  # Cw = 4 < n = 5
        "women_in_two_companies": [(500, 300, 5, 3), (500, 300, 5, 3), (500, 0, 5, 0)],  # k = 3 not met
        "nobody": [(0, 0, 0, 0)] * 3,
        "men_unpaid": [(0, 100, 2, 2), (0, 100, 2, 2), (0, 100, 2, 2)],  # gap -50, ratio undefined
        "at_max": [(top_sum, top_count, top_count, top_count), (top_sum, 0, top_count, 1), (1, top_sum, 1, top_count)],
    }


def test_pay_gap_known_answers():
    _, module = load("pay_gap")
    cells = pay_gap_cells(module)
    dims = {"level": list(cells), "market": ["all"]}
    parties = by_party(cells, PAY_GAP_NAMES)
    decoded = run_program(PROGRAMS / "pay_gap.py", dims, parties)
    got = as_python(decoded)
    top_sum, top_count = 2**module.SUM_BITS - 1, 2**module.COUNT_BITS - 1
    sm, cm = 2 * top_sum + 1, 2 * top_count + 1  # the at_max column, pooled
    sw, cw = top_count + top_sum, 2 * top_count + 1
    assert got == {
        "mean_gap_cents": [10, 17, -10, 0, None, None, None, -50, plain_round_div(sm * cw - sw * cm, cm * cw)],
        "women_to_men_ratio": [
            Decimal("0.9000"),
            Decimal("0.8336"),
            Decimal("1.1000"),
            Decimal("1.0000"),
            None,
            None,
            None,
            None,
            Decimal(plain_round_div(10**4 * sw * cm, sm * cw)).scaleb(-4),
        ],
        "ratio_suppressed": [0, 0, 0, 0, 1, 1, 1, 1, 0],
        "suppressed": [0, 0, 0, 0, 1, 1, 1, 0, 0],
    }
    assert got == module.plaintext(list(parties.values()))
    assert decoded["suppressed"]["labels"] == list(cells)
    assert decoded["mean_gap_cents"]["exact"][:4] == ["10", "17", "-10", "0"]


def test_pay_gap_params_from_the_spec():
    """k and n come from the spec's program.params: with k=2, n=4 the two small groups are revealed."""
    _, module = load("pay_gap")
    cells = {k: v for k, v in pay_gap_cells(module).items() if k in ("few_women", "women_in_two_companies")}
    parties = by_party(cells, PAY_GAP_NAMES)
    params = {"k": 2, "n": 4}
    got = as_python(run_program(PROGRAMS / "pay_gap.py", {"level": list(cells)}, parties, params=params))
    assert got == {
        "mean_gap_cents": [0, 0],
        "women_to_men_ratio": [Decimal("1.0000"), Decimal("1.0000")],
        "ratio_suppressed": [0, 0],
        "suppressed": [0, 0],
    }
    assert got == module.plaintext(list(parties.values()), params)


@pytest.mark.parametrize(
    "params, words",
    [
        ({"k": 0}, "params.k must be an integer from 1 to 100, got 0"),
        ({"n": "5"}, "params.n must be an integer from 1 to 1000000, got '5'"),
        ({"k": True}, "params.k must be"),
        ({"min_group": 5}, "unknown params ['min_group']"),
    ],
)
def test_pay_gap_bad_params(params, words):
    _, module = load("pay_gap")
    with pytest.raises(ValueError) as info:
        module.settings(params)
    assert words in str(info.value)
    assert module.settings({}) == {"k": 3, "n": 5} and module.settings({"n": 10}) == {"k": 3, "n": 10}


@pytest.mark.parametrize("name", ["hhi", "hhi_single", "mean", "pay_gap", "sum"])
def test_field_holds_every_intermediate_value(name):
    """Each program's SecInt is large enough for its divisions and its inputs' ranges."""
    program, module = load(name)
    for size in [getattr(module, a) for a in ("GAP", "RATIO") if hasattr(module, a)] + (
        [module.division(d) for d in range(0, 5)] if hasattr(module, "division") else []
    ):
        assert size.secint_bits <= program.bit_length, (name, size)
    for i in program.inputs:
        assert max(abs(i.low), abs(i.high)).bit_length() < program.bit_length
