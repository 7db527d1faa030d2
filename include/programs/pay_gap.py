"""Gender pay gap across companies: the pooled difference and ratio of the mean salaries of men and
women, overall and per job level, rounded inside the MPC, with small groups suppressed.

Each input party is one company. Its local Spark job (``include/jobs/payroll_sums.py``) sums its
own payroll, per job level (``all`` = the whole company, then each level of the spec's ``level``
dimension): the salaries of men and of women in integer cents, and the number of men and of women.
Across companies the compute parties add these up (Sm, Sw, Cm, Cw per level) and reveal, per level,

    mean_gap_cents      = Sm/Cm - Sw/Cw, in whole cents                      (men's mean minus women's)
    women_to_men_ratio  = (Sw/Cw) / (Sm/Cm), in basis points (4 decimals)

each rounded inside the MPC (ties up); never the pooled sums or counts, which an exact fraction
would give away.

Reveal policy (the same for every recipient of the spec):
  * the roster has at least ``min_input_parties`` (3) companies;
  * a level is revealed only if at least ``k`` companies have men in it, at least ``k`` companies
    have women in it, and it pools at least ``n`` men and at least ``n`` women (spec
    ``program.params``; defaults k=3, n=5). The floors apply to each gender separately because the
    two outputs together determine both pooled means (mean_men = gap / (1 - ratio)).
  * a level that fails is reported as suppressed: ``suppressed`` = 1 and both values None
    (zero inside the MPC), never as a zero gap. Counts and "company has men/women" are checked and
    verified inside the MPC, so a company's input cannot switch the floors off.
A revealed level has suppressed = 0; its ratio is None only when the men's salaries are all zero.
"""

from mpc_federation.arith import DivisionSize, at_least, plain_round_div, round_div
from mpc_federation.programs import Input, Output, SecureProgram, fixed

SUM_BITS = 54  # per company, level and gender: salary sums up to 2**54 - 1 cents
COUNT_BITS = 24  # per company, level and gender: up to 2**24 - 1 employees
# The payroll job's per-employee maximum (include/jobs/payroll_sums.py --max-salary-cents): with at
# most 2**24 - 1 employees per company, level and gender, every sum stays within SUM_BITS.
MAX_SALARY_CENTS = 10**9
assert MAX_SALARY_CENTS * (2**COUNT_BITS - 1) < 2**SUM_BITS
MAX_PARTIES = 100
MAX_N = 10**6
DEFAULTS = {"k": 3, "n": 5}
RATIO_DECIMALS = 4  # basis points
INPUTS = ("salary_sum_men", "salary_sum_women", "count_men", "count_women")
# Pooled over at most 100 (< 2**7) companies: sums below 2**61, counts below 2**31.
GAP = DivisionSize(den_bits=62, quotient_bits=62)  # Cm*Cw; |gap| below the largest pooled sum
RATIO = DivisionSize(den_bits=92, quotient_bits=61 + 31 + 14)  # Sm*Cw; 10**4 * Sw*Cm / (Sm*Cw)


def settings(params: dict | None) -> dict:
    """The program's parameters: the spec's ``program.params`` over the defaults, checked."""
    merged = {**DEFAULTS, **(params or {})}
    unknown = sorted(set(merged) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"program pay_gap: unknown params {unknown} (allowed: {sorted(DEFAULTS)})")
    for name, top in (("k", MAX_PARTIES), ("n", MAX_N)):
        v = merged[name]
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= top:
            raise ValueError(f"program pay_gap: params.{name} must be an integer from 1 to {top}, got {v!r}")
    return merged


def pay_gap(mpc, secint, inputs, params):
    p = settings(params)
    if inputs.parties > MAX_PARTIES:
        raise ValueError(f"program pay_gap: {inputs.parties} companies, at most {MAX_PARTIES} are supported")
    sm, sw, cm, cw = (inputs[name].sum(axis=0) for name in INPUTS)
    firms_m, firms_w = inputs.nonzero["count_men"].sum(axis=0), inputs.nonzero["count_women"].sum(axis=0)
    paid_m = inputs.nonzero["salary_sum_men"].sum(axis=0)
    floors = at_least(
        mpc, mpc.np_stack((firms_m - p["k"], firms_w - p["k"], cm - p["n"], cw - p["n"], paid_m - 1)), 0, COUNT_BITS + 9
    )
    ok = floors[0] * floors[1] * floors[2] * floors[3]
    defined = ok * floors[4]  # men's salaries all zero: the ratio is undefined (None), not an error
    gap = round_div(mpc, sm * cw - sw * cm, cm * cw, GAP, valid=ok)
    ratio = round_div(mpc, 10**RATIO_DECIMALS * sw * cm, sm * cw, RATIO, valid=defined)
    return {"mean_gap_cents": gap, "women_to_men_ratio": ratio, "ratio_suppressed": 1 - defined, "suppressed": 1 - ok}


def plaintext(parties: list[dict[str, list[int]]], params: dict | None = None) -> dict[str, list]:
    """The insecure reference over the companies' input vectors: what the recipients must learn."""
    p = settings(params)
    out: dict[str, list] = {"mean_gap_cents": [], "women_to_men_ratio": [], "ratio_suppressed": [], "suppressed": []}
    for j in range(len(parties[0]["count_men"])):
        sm, sw, cm, cw = (sum(x[name][j] for x in parties) for name in INPUTS)
        firms_m = sum(1 for x in parties if x["count_men"][j] > 0)
        firms_w = sum(1 for x in parties if x["count_women"][j] > 0)
        ok = firms_m >= p["k"] and firms_w >= p["k"] and cm >= p["n"] and cw >= p["n"]
        out["mean_gap_cents"].append(plain_round_div(sm * cw - sw * cm, cm * cw) if ok else None)
        ratio = plain_round_div(10**RATIO_DECIMALS * sw * cm, sm * cw) if ok and sm else None
        out["women_to_men_ratio"].append(None if ratio is None else fixed(ratio, RATIO_DECIMALS))
        out["ratio_suppressed"].append(0 if ratio is not None else 1)
        out["suppressed"].append(0 if ok else 1)
    return out


PROGRAM = SecureProgram(
    name="pay_gap",
    description="Difference and ratio of mean salaries of men and women per job level, rounded, "
    "small groups suppressed",
    inputs=(
        Input("salary_sum_men", low=0, high=2**SUM_BITS - 1, dim="level", nonzero=True),
        Input("salary_sum_women", low=0, high=2**SUM_BITS - 1, dim="level"),
        Input("count_men", low=0, high=2**COUNT_BITS - 1, dim="level", nonzero=True),
        Input("count_women", low=0, high=2**COUNT_BITS - 1, dim="level", nonzero=True),
    ),
    outputs=(
        Output(
            "mean_gap_cents",
            dim="level",
            suppressed_by="suppressed",
            description="mean salary of men minus mean salary of women, in whole cents",
        ),
        Output(
            "women_to_men_ratio",
            dim="level",
            decimals=RATIO_DECIMALS,
            suppressed_by="ratio_suppressed",
            description="mean salary of women / mean salary of men, to 4 decimals (basis points)",
        ),
        Output(
            "ratio_suppressed",
            dim="level",
            description="1 where the ratio is not revealed: the level is suppressed, or men's salaries are all zero",
        ),
        Output(
            "suppressed",
            dim="level",
            description="1 where the level has fewer than k companies or n employees per gender",
        ),
    ),
    compute=pay_gap,
    bit_length=max(GAP.secint_bits, RATIO.secint_bits),
    min_input_parties=3,
    settings=settings,
)
