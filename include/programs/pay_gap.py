"""Gender pay gap across companies: the pooled difference and ratio of the mean salaries of men and
women, overall and per job level, exact, with small groups suppressed.

Each input party is one company. Its local Spark job (``include/jobs/payroll_sums.py``) sums its
own payroll, per job level (``all`` = the whole company, then each level of the spec's ``level``
dimension): the salaries of men and of women in integer cents, and the number of men and of women.
Across companies the compute parties add these up (Sm, Sw, Cm, Cw per level) and reveal, per level,

    mean_gap_cents      = Sm/Cm - Sw/Cw = (Sm*Cw - Sw*Cm) / (Cm*Cw)   (men's mean minus women's)
    women_to_men_ratio  = (Sw/Cw) / (Sm/Cm) = (Sw*Cm) / (Sm*Cw)

as exact fractions, without secure division: each is a (numerator, denominator) pair that the
worker masks with a fresh secret random factor, and the recipient reconstructs the fraction.

Reveal policy (the same for every recipient of the spec):
  * the roster has at least ``min_input_parties`` (3) companies;
  * a level is revealed only if at least ``k`` companies have men in it, at least ``k`` companies
    have women in it, and it pools at least ``n`` men and at least ``n`` women (spec
    ``program.params``; defaults k=3, n=5). The floors apply to each gender separately because the
    two outputs together determine both pooled means (mean_men = gap / (1 - ratio)).
  * a level that fails is reported as suppressed: ``suppressed`` = 1 and both fractions None
    (masked to (0, 0) inside the MPC), never as a zero gap. The secure comparisons behind this
    (C >= n, C_i >= 1) are MPyC comparisons on secret integers; only the 0/1 outcome per level is
    revealed.
A revealed level has suppressed = 0; its ratio is None only when the men's mean salary is zero.
"""

from fractions import Fraction

from mpc_federation.programs import Input, Output, SecureProgram

MAX_SALARY_CENTS = 10**9  # one employee's yearly salary: at most $10,000,000.00
MAX_EMPLOYEES = 10**7  # per company, level and gender
MAX_SUM_CENTS = MAX_SALARY_CENTS * MAX_EMPLOYEES  # 10**16 per company, level and gender
MAX_PARTIES = 100
MAX_N = 10**6
DEFAULTS = {"k": 3, "n": 5}
COUNT_BITS = 34  # per company counts - 1 and pooled counts - n (<= 100 * 10**7) lie in [-2**33, 2**33)
SUM_BITS = 62  # pooled salary sums (<= 100 * 10**16 < 2**60) lie in [-2**61, 2**61)

INPUTS = ("salary_sum_men", "salary_sum_women", "count_men", "count_women")


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
    sm, sw, cm, cw = (inputs[name] for name in INPUTS)  # each: one vector per company, roster order
    if len(sm) > MAX_PARTIES:
        raise ValueError(f"program pay_gap: {len(sm)} companies, at most {MAX_PARTIES} are supported")

    def at_least(x, bound):  # secure x >= bound (a 0/1 secret), for x - bound in [-2**33, 2**33)
        return 1 - mpc.sgn(x - bound, l=COUNT_BITS, LT=True)

    gaps, ratios, suppressed = [], [], []
    for j in range(len(sm[0])):
        s_men, s_women = mpc.sum([c[j] for c in sm]), mpc.sum([c[j] for c in sw])
        men = [c[j] for c in cm]
        women = [c[j] for c in cw]
        c_men, c_women = mpc.sum(men), mpc.sum(women)
        companies_men = mpc.sum([at_least(c, 1) for c in men])
        companies_women = mpc.sum([at_least(c, 1) for c in women])
        ok = mpc.prod([at_least(companies_men, p["k"]), at_least(companies_women, p["k"]),
                       at_least(c_men, p["n"]), at_least(c_women, p["n"])])
        # Men's salaries all zero: the ratio is undefined; reveal (0, 0) (None), not an error.
        defined = ok * (1 - mpc.sgn(s_men, l=SUM_BITS, EQ=True))
        gaps.append((ok * (s_men * c_women - s_women * c_men), ok * (c_men * c_women)))
        ratios.append((defined * (s_women * c_men), defined * (s_men * c_women)))
        suppressed.append(1 - ok)
    return {"mean_gap_cents": gaps, "women_to_men_ratio": ratios, "suppressed": suppressed}


def plaintext(parties: list[dict[str, list[int]]], params: dict | None = None) -> dict[str, list]:
    """The insecure reference over the companies' input vectors: what the recipients must learn."""
    p = settings(params)
    out = {"mean_gap_cents": [], "women_to_men_ratio": [], "suppressed": []}
    for j in range(len(parties[0]["count_men"])):
        sm, sw, cm, cw = (sum(x[name][j] for x in parties) for name in INPUTS)
        firms_m = sum(1 for x in parties if x["count_men"][j] > 0)
        firms_w = sum(1 for x in parties if x["count_women"][j] > 0)
        ok = firms_m >= p["k"] and firms_w >= p["k"] and cm >= p["n"] and cw >= p["n"]
        out["mean_gap_cents"].append(Fraction(sm, cm) - Fraction(sw, cw) if ok else None)
        out["women_to_men_ratio"].append(Fraction(sw * cm, sm * cw) if ok and sm else None)
        out["suppressed"].append(0 if ok else 1)
    return out


def worst_case() -> dict[str, int]:
    """The largest |numerator| and denominator the program can produce within its declared ranges."""
    s, c = MAX_PARTIES * MAX_SUM_CENTS, MAX_PARTIES * MAX_EMPLOYEES  # pooled sums and counts
    return {"gap_num": s * c, "gap_den": c * c, "ratio_num": s * c, "ratio_den": s * c}


# Field size. Pooled over at most 100 companies: S <= 100 * 10**16 = 10**18 cents, C <= 10**9.
# The largest numerator or denominator is S * C <= 10**27 (about 2**90). Rational reconstruction needs
# |num|, den < sqrt(p/2), so p > 2 * 10**54 (about 2**181). MPyC's SecInt(l) uses a prime of
# l + 32 bits: l = 160 gives a 192-bit prime with sqrt(p/2) ~ 5.6e28, 56 times the worst case, and
# every product above (< 2**91) is exact in the field. The comparisons only need 34 bits (COUNT_BITS).
PROGRAM = SecureProgram(
    name="pay_gap",
    description="Difference and ratio of mean salaries of men and women per job level, small groups suppressed",
    inputs=(Input("salary_sum_men", low=0, high=MAX_SUM_CENTS, dim="level"),
            Input("salary_sum_women", low=0, high=MAX_SUM_CENTS, dim="level"),
            Input("count_men", low=0, high=MAX_EMPLOYEES, dim="level"),
            Input("count_women", low=0, high=MAX_EMPLOYEES, dim="level")),
    outputs=(Output("mean_gap_cents", kind="ratio", dim="level",
                    description="mean salary of men minus mean salary of women, in cents (exact)"),
             Output("women_to_men_ratio", kind="ratio", dim="level",
                    description="mean salary of women / mean salary of men (exact)"),
             Output("suppressed", kind="int", dim="level",
                    description="1 where the level has fewer than k companies or n employees per gender")),
    compute=pay_gap,
    bit_length=160,
    min_input_parties=3,
)
