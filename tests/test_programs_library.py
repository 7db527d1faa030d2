"""The built-in program library across real MPyC processes (three compute parties, one process each,
via the launcher), on known answers: sum, mean, HHI of one market, pay gap. Each answer is written
out by hand, and also checked against the program's own plaintext reference.

Five MPyC runs in all (one per program, and the pay gap again with the spec's params).
"""

from __future__ import annotations

import sys
import threading
from fractions import Fraction
from math import isqrt
from pathlib import Path

import localnet
import pytest

from mpc_federation.launcher import MPCJob, run_mpc
from mpc_federation.programs import ProgramError, check_aggregate, load_program
from mpc_federation.sharing import decode, rational, recombine, split

REPO = Path(__file__).resolve().parents[1]
PROGRAMS = REPO / "include" / "programs"


@pytest.fixture(autouse=True)
def _plain_tcp(monkeypatch):
    monkeypatch.delenv("MPC_TLS_DIR", raising=False)


def load(name: str):
    loaded = load_program(PROGRAMS / f"{name}.py")
    return loaded.program, sys.modules[loaded.program.compute.__module__]


def run_program(path: Path, dims: dict[str, list[str]], parties: dict[str, dict[str, list[int]]],
                params: dict | None = None, m: int = 3, t: int = 1) -> dict:
    """Share every party's input vectors, run the program on m MPyC processes, recombine and decode.

    :param parties: {input party: {input name: vector}}, in roster order.
    """
    program = load_program(path).program
    shares: list[dict] = [{} for _ in range(m)]
    for party, vectors in parties.items():
        for i in range(m):
            shares[i][party] = {}
        for spec_input in program.inputs:
            rows = split(program.field, vectors[spec_input.name], t, m)
            for i in range(m):
                shares[i][party][spec_input.name] = rows[i]
    endpoints = [f"127.0.0.1:{localnet.free_port()}" for _ in range(m)]
    results, errors = {}, {}

    def compute_party(i: int) -> None:
        job = MPCJob(program=str(path), party_index=i, endpoints=endpoints, threshold=t, roster=list(parties),
                     shares=shares[i], input_lengths=program.input_lengths(dims),
                     output_lengths=program.output_lengths(dims),
                     output_kinds={o.name: o.kind for o in program.outputs}, params=params or {})
        try:
            results[i] = run_mpc(job, connect_timeout=60, run_timeout=180)
        except Exception as exc:  # reported below with every party's error
            errors[i] = exc

    threads = [threading.Thread(target=compute_party, args=(i,)) for i in range(m)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    values = recombine(program.field, {i: r.shares for i, r in results.items()}, t)
    return decode(program, dims, values)


def as_python(decoded: dict) -> dict:
    """Decoded outputs as Fractions (ratios, None kept) and ints."""
    return {name: [None if x is None else (Fraction(x) if out["kind"] == "ratio" else int(x))
                   for x in out["exact"]] for name, out in decoded.items()}


def by_party(cells: dict[str, list[tuple]], names: tuple[str, ...]) -> dict[str, dict[str, list[int]]]:
    """{cell: [per party (v1, v2, ...)]} -> {party: {name: [value per cell]}}."""
    labels = list(cells)
    n_parties = len(cells[labels[0]])
    return {f"company_{chr(ord('a') + i)}": {name: [cells[label][i][k] for label in labels]
                                             for k, name in enumerate(names)} for i in range(n_parties)}


# -- sum ------------------------------------------------------------------------------------------------
def test_sum_known_answers():
    program, module = load("sum")
    top = module.MAX_ABS_VALUE
    cells = {  # per market: the value of each of three companies
        "all": [(120,), (30,), (50,)],
        "negative": [(-7,), (3,), (1,)],
        "cancels_to_zero": [(5,), (-2,), (-3,)],  # a true zero total is revealed as 0, not suppressed
        "one_zero": [(10,), (0,), (20,)],  # two contributors < k = 3: suppressed
        "all_zero": [(0,), (0,), (0,)],
        "max": [(top,), (top,), (top,)],
        "min": [(-top,), (-top,), (-top,)],
    }
    dims = {"market": list(cells)}
    parties = by_party(cells, ("value",))
    got = as_python(run_program(PROGRAMS / "sum.py", dims, parties))
    assert got == {
        "total": [200, -3, 0, None, None, 3 * top, -3 * top],
        "suppressed": [0, 0, 0, 1, 1, 0, 0],
    }
    assert got == module.plaintext(list(parties.values()))


# -- mean -----------------------------------------------------------------------------------------------
def test_mean_known_answers():
    _, module = load("mean")
    top_sum, top_count = module.MAX_ABS_SUM, module.MAX_COUNT
    cells = {  # per market: (value_sum, count) of each of three companies
        "all": [(100, 2), (200, 2), (300, 2)],  # 600 / 6
        "fraction": [(10, 1), (20, 3), (3, 3)],  # 33 / 7, n = 5 met
        "negative": [(-10, 2), (-1, 2), (0, 1)],  # exactly n = 5 records
        "four_records": [(1, 1), (1, 1), (1, 2)],  # fewer than n = 5: suppressed
        "two_parties": [(50, 10), (0, 0), (70, 10)],  # one party without records: k = 3 not met
        "extremes": [(top_sum, 1), (top_sum, top_count), (-top_sum, top_count)],
    }
    dims = {"market": list(cells)}
    parties = by_party(cells, ("value_sum", "count"))
    got = as_python(run_program(PROGRAMS / "mean.py", dims, parties))
    assert got == {
        "mean": [Fraction(100), Fraction(33, 7), Fraction(-11, 5), None, None,
                 Fraction(top_sum, 1 + 2 * top_count)],
        "suppressed": [0, 0, 0, 1, 1, 0],
    }
    assert got == module.plaintext(list(parties.values()))


# -- HHI of one market ------------------------------------------------------------------------------------
def test_hhi_single_known_answer():
    program, module = load("hhi_single")
    assert [(i.name, i.dim) for i in program.inputs] == [("revenue_cents", None)]
    assert program.input_lengths({"market": ["all"]}) == {"revenue_cents": 1}
    revenues = [5, 4, 3, 2, 1]  # ../shared/known_answers/hhi.json: revenues_5_4_3_2_1 -> 22000/9
    parties = {f"firm_{i}": {"revenue_cents": [r * 10**11]} for i, r in enumerate(revenues)}
    decoded = run_program(PROGRAMS / "hhi_single.py", {}, parties)
    assert decoded["hhi"]["labels"] == ["hhi"]
    assert decoded["hhi"]["exact"] == ["22000/9"]
    assert as_python(decoded) == module.plaintext(list(parties.values())) == {"hhi": [Fraction(22000, 9)]}


def test_hhi_single_refuses_a_vector():
    """The taxi job writes revenue per market; the one-market program names the mismatch."""
    program, _ = load("hhi_single")
    aggregate = {"format": "mpc-aggregate/1", "party": "company_a", "dimensions": {"market": ["all", "2024-01"]},
                 "values": {"revenue_cents": [300, 300]}}
    with pytest.raises(ProgramError, match=r"input 'revenue_cents' at revenue_cents: \[300, 300\] is not an integer"):
        check_aggregate(program, aggregate, {"market": ["all", "2024-01"]}, "company_a")
    aggregate["values"]["revenue_cents"] = 300
    assert check_aggregate(program, aggregate, {"market": ["all", "2024-01"]}, "company_a") == {"revenue_cents": [300]}


# -- pay gap --------------------------------------------------------------------------------------------------
PAY_GAP_NAMES = ("salary_sum_men", "salary_sum_women", "count_men", "count_women")


def pay_gap_cells(module) -> dict[str, list[tuple]]:
    top_sum, top_count, top_salary = module.MAX_SUM_CENTS, module.MAX_EMPLOYEES, module.MAX_SALARY_CENTS
    return {  # per level: (Sm, Sw, Cm, Cw) of each of three companies
        "all": [(200, 180, 2, 2), (200, 180, 2, 2), (200, 90, 2, 1)],  # 600/6 - 450/5 = 10; 9/10; Cw = n
        "thirds": [(100, 100, 1, 1), (200, 101, 2, 2), (301, 300, 3, 3)],  # 601/6 - 501/6 = 50/3; 501/601
        "women_paid_more": [(200, 220, 2, 2), (100, 220, 1, 2), (200, 220, 2, 2)],  # 100 - 110 = -10; 11/10
        "equal_pay": [(300, 200, 3, 2), (100, 200, 1, 2), (100, 100, 1, 1)],  # 100 - 100 = 0 (revealed)
        "few_women": [(500, 100, 5, 1), (500, 100, 5, 1), (500, 200, 5, 2)],  # Cw = 4 < n = 5
        "women_in_two_companies": [(500, 300, 5, 3), (500, 300, 5, 3), (500, 0, 5, 0)],  # k = 3 not met
        "nobody": [(0, 0, 0, 0)] * 3,
        "men_unpaid": [(0, 100, 2, 2), (0, 100, 2, 2), (0, 100, 2, 2)],  # gap -50, ratio undefined
        "at_max": [(top_sum, top_count, top_count, top_count), (top_sum, 0, top_count, 1),
                   (top_salary, top_sum, 1, top_count)],
    }


def test_pay_gap_known_answers():
    _, module = load("pay_gap")
    cells = pay_gap_cells(module)
    dims = {"level": list(cells), "market": ["all"]}
    parties = by_party(cells, PAY_GAP_NAMES)
    decoded = run_program(PROGRAMS / "pay_gap.py", dims, parties)
    got = as_python(decoded)
    top_sum, top_count, top_salary = module.MAX_SUM_CENTS, module.MAX_EMPLOYEES, module.MAX_SALARY_CENTS
    sm, cm = 2 * top_sum + top_salary, 2 * top_count + 1  # the at_max column, pooled
    sw, cw = top_count + top_sum, 2 * top_count + 1
    assert got == {
        "mean_gap_cents": [Fraction(10), Fraction(50, 3), Fraction(-10), Fraction(0), None, None, None,
                           Fraction(-50), Fraction(sm, cm) - Fraction(sw, cw)],
        "women_to_men_ratio": [Fraction(9, 10), Fraction(501, 601), Fraction(11, 10), Fraction(1), None, None,
                               None, None, Fraction(sw * cm, sm * cw)],
        "suppressed": [0, 0, 0, 0, 1, 1, 1, 0, 0],
    }
    assert got == module.plaintext(list(parties.values()))
    assert decoded["suppressed"]["labels"] == list(cells)
    assert decoded["mean_gap_cents"]["exact"][:4] == ["10", "50/3", "-10", "0"]
    assert decoded["mean_gap_cents"]["value"][1] == pytest.approx(16.666667)


def test_pay_gap_params_from_the_spec():
    """k and n come from the spec's program.params: with k=2, n=4 the two small groups are revealed."""
    _, module = load("pay_gap")
    cells = {k: v for k, v in pay_gap_cells(module).items() if k in ("few_women", "women_in_two_companies")}
    parties = by_party(cells, PAY_GAP_NAMES)
    params = {"k": 2, "n": 4}
    got = as_python(run_program(PROGRAMS / "pay_gap.py", {"level": list(cells)}, parties, params=params))
    assert got == {
        "mean_gap_cents": [Fraction(100) - Fraction(400, 4), Fraction(100) - Fraction(100)],
        "women_to_men_ratio": [Fraction(1), Fraction(1)],
        "suppressed": [0, 0],
    }
    assert got == module.plaintext(list(parties.values()), params)


@pytest.mark.parametrize("params, words", [
    ({"k": 0}, "params.k must be an integer from 1 to 100, got 0"),
    ({"n": "5"}, "params.n must be an integer from 1 to 1000000, got '5'"),
    ({"k": True}, "params.k must be"),
    ({"min_group": 5}, "unknown params ['min_group']"),
])
def test_pay_gap_bad_params(params, words):
    _, module = load("pay_gap")
    with pytest.raises(ValueError) as info:
        module.settings(params)
    assert words in str(info.value)
    assert module.settings({}) == {"k": 3, "n": 5} and module.settings({"n": 10}) == {"k": 3, "n": 10}


def test_field_bounds_at_declared_maxima():
    """Every fraction a program can produce within its declared ranges reconstructs exactly:
    |num|, den < sqrt(p/2), where p has bit_length + 32 bits."""
    program, module = load("pay_gap")
    assert program.modulus.bit_length() == program.bit_length + 32 == 192
    bound = isqrt(program.modulus // 2)
    worst = module.worst_case()
    assert max(worst.values()) == 10**27 < bound
    # Declared ranges agree with the constants, and the comparisons' bit lengths hold the counts.
    ranges = {i.name: (i.low, i.high) for i in program.inputs}
    assert ranges["salary_sum_men"] == (0, module.MAX_SALARY_CENTS * module.MAX_EMPLOYEES)
    assert ranges["count_women"] == (0, module.MAX_EMPLOYEES)
    assert module.MAX_PARTIES * module.MAX_EMPLOYEES < 2 ** (module.COUNT_BITS - 1)
    assert module.MAX_PARTIES * module.MAX_SUM_CENTS < 2 ** (module.SUM_BITS - 1)
    # The worst cases survive masking by a random rho and reconstruction (extreme signs too).
    p = program.modulus
    rho = 0xD1CE_5EED_0000_0001_2345_6789_ABCD_EF01 % p
    for num, den in [(worst["gap_num"], worst["gap_den"]), (-worst["gap_num"], worst["gap_den"]),
                     (worst["ratio_num"], worst["ratio_den"]), (1, worst["ratio_den"]),
                     (worst["ratio_num"] - 1, worst["ratio_num"])]:
        assert rational(rho * num % p, rho * den % p, p) == Fraction(num, den)

    for name, worst_num, worst_den in [
        ("mean", 100 * 10**15, 100 * 10**9), ("sum", 100 * 10**15, 1),
        ("hhi_single", 10000 * 100 * (10**12) ** 2, (100 * 10**12) ** 2),
    ]:
        other, _ = load(name)
        assert max(worst_num, worst_den) < isqrt(other.modulus // 2), name
