"""Herfindahl-Hirschman Index of one market, rounded inside the MPC to a declared precision.

Each input party is one firm and contributes one number: its revenue in the market, in integer
cents (a scalar input). The recipients learn HHI = 10000 * sum(r_i^2) / (sum r_i)^2 rounded to
``decimals`` places (default 2), or ``suppressed`` = 1 when fewer than ``k`` firms (default 3)
had revenue; not the market's size, not any firm's share. For the HHI of every month as well,
use ``hhi.py`` (a vector over ``market``), which this program computes for one market.
"""

from mpc_federation.arith import DivisionSize, at_least, plain_round_div, round_div
from mpc_federation.programs import Input, Output, SecureProgram, fixed

REVENUE_BITS = 40
MAX_PARTIES = 100
DEFAULTS = {"k": 3, "decimals": 2}


def settings(params: dict | None) -> dict:
    merged = {**DEFAULTS, **(params or {})}
    if sorted(merged) != sorted(DEFAULTS) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in merged.values()
    ):
        raise ValueError(f"program hhi_single: params must be integers among {sorted(DEFAULTS)}, got {params}")
    if not 2 <= merged["k"] <= MAX_PARTIES or not 0 <= merged["decimals"] <= 4:
        raise ValueError(f"program hhi_single: params.k must be 2..{MAX_PARTIES} and decimals 0..4, got {params}")
    return merged


def hhi(mpc, secint, inputs, params):
    p = settings(params)
    revenue = inputs["revenue_cents"]  # (firms, 1)
    ok = at_least(mpc, inputs.nonzero["revenue_cents"].sum(axis=0), p["k"], 9)
    total = revenue.sum(axis=0)  # round_div divides 0 by 1 where suppressed
    num = 10 ** (4 + p["decimals"]) * (revenue * revenue).sum(axis=0)
    size = DivisionSize(2 * (REVENUE_BITS + 7), (10 ** (4 + p["decimals"])).bit_length())
    return {"hhi": round_div(mpc, num, total * total, size, root=total, valid=ok), "suppressed": 1 - ok}


def plaintext(parties: list[dict[str, list[int]]], params: dict | None = None) -> dict[str, list]:
    p = settings(params)
    r = [x["revenue_cents"][0] for x in parties]
    ok = sum(1 for x in r if x) >= p["k"]
    q = plain_round_div(10 ** (4 + p["decimals"]) * sum(x * x for x in r), sum(r) ** 2) if ok else None
    return {"hhi": [None if q is None else fixed(q, p["decimals"])], "suppressed": [0 if ok else 1]}


PROGRAM = SecureProgram(
    name="hhi_single",
    description="Herfindahl-Hirschman Index of one market (0..10000), rounded in the MPC",
    inputs=(Input("revenue_cents", low=0, high=2**REVENUE_BITS - 1, nonzero=True),),
    outputs=(
        Output(
            "hhi",
            decimals="decimals",
            suppressed_by="suppressed",
            description="10000 * sum of squared revenues / squared total revenue, rounded",
        ),
        Output("suppressed", description="1 where fewer than k firms had revenue"),
    ),
    compute=hhi,
    bit_length=DivisionSize(2 * (REVENUE_BITS + 7), (10**8).bit_length()).secint_bits,
    min_input_parties=3,
    settings=settings,
)
