"""Herfindahl-Hirschman Index per market, rounded inside the MPC to a declared precision.

Each input party is one firm and contributes its revenue per market in integer cents. For every
market the recipients learn HHI = 10000 * sum(r_i^2) / (sum r_i)^2, rounded to ``decimals``
decimal places (default 2: an integer number of hundredths of a point, ties rounded up), where at
least ``k`` firms of the roster have revenue in the market; any other market is reported as
suppressed (``hhi`` None, ``suppressed`` 1). Revenues are checked inside the MPC to lie in
[0, 2**40 - 1] cents, and "has revenue" is a verified indicator, so no input can switch the floor
off or push the division outside its proven range.

What a recipient learns per market: the rounded HHI and whether it was suppressed; not the
market's size, not any firm's share. With two firms the HHI gives both shares away (HHI =
10000 (s^2 + (1-s)^2)), hence k >= 3 by default; firms colluding with the recipient can still
solve for the rest when they are k - 1 of k (see the README's threat model).
"""

from mpc_federation.arith import DivisionSize, at_least, plain_round_div, round_div
from mpc_federation.programs import Input, Output, SecureProgram, fixed

REVENUE_BITS = 40  # per firm and market: at most 2**40 - 1 cents (about $11 billion)
MAX_PARTIES = 100
DEFAULTS = {"k": 3, "decimals": 2}
MAX_DECIMALS = 4
PARTY_BITS = MAX_PARTIES.bit_length() + 2  # (firms with revenue) - k: 9 bits, [-256, 256), for 100 firms


def settings(params: dict | None) -> dict:
    """The program's parameters: the spec's ``program.params`` over the defaults, checked."""
    merged = {**DEFAULTS, **(params or {})}
    unknown = sorted(set(merged) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"program hhi: unknown params {unknown} (allowed: {sorted(DEFAULTS)})")
    for name, low, high in (("k", 2, MAX_PARTIES), ("decimals", 0, MAX_DECIMALS)):
        v = merged[name]
        if not isinstance(v, int) or isinstance(v, bool) or not low <= v <= high:
            raise ValueError(f"program hhi: params.{name} must be an integer from {low} to {high}, got {v!r}")
    return merged


def division(decimals: int, firms: int = MAX_PARTIES) -> DivisionSize:
    """10**(4+d) * sum r^2 / (sum r)^2 over ``firms`` firms (a public number): denominators below
    (firms * 2**40)**2, i.e. below 2**94 for 100 firms and 2**86 for 5; the secure comparisons and bit
    decompositions cost one step per bit, so a smaller roster pays for fewer bits."""
    return DivisionSize(
        den_bits=2 * (REVENUE_BITS + firms.bit_length()), quotient_bits=(10 ** (4 + decimals)).bit_length()
    )


def hhi(mpc, secint, inputs, params):
    p = settings(params)
    if inputs.parties > MAX_PARTIES:
        raise ValueError(f"program hhi: {inputs.parties} firms, at most {MAX_PARTIES} are supported")
    revenue = inputs["revenue_cents"]  # (firms, markets)
    firms = inputs.nonzero["revenue_cents"].sum(axis=0)
    ok = at_least(mpc, firms, p["k"], PARTY_BITS)
    num = 10 ** (4 + p["decimals"]) * (revenue * revenue).sum(axis=0)
    total = revenue.sum(axis=0)  # round_div divides 0 by 1 where not ok
    size = division(p["decimals"], inputs.parties)
    return {"hhi": round_div(mpc, num, total * total, size, root=total, valid=ok), "suppressed": 1 - ok}


def plaintext(parties: list[dict[str, list[int]]], params: dict | None = None) -> dict[str, list]:
    """The insecure reference over the firms' revenue vectors: what the recipients must learn."""
    p = settings(params)
    out: dict[str, list] = {"hhi": [], "suppressed": []}
    for column in zip(*(x["revenue_cents"] for x in parties)):
        ok = sum(1 for r in column if r) >= p["k"]
        q = plain_round_div(10 ** (4 + p["decimals"]) * sum(r * r for r in column), sum(column) ** 2) if ok else None
        out["hhi"].append(None if q is None else fixed(q, p["decimals"]))
        out["suppressed"].append(0 if ok else 1)
    return out


PROGRAM = SecureProgram(
    name="hhi",
    description="Herfindahl-Hirschman Index of each market (0..10000), rounded in the MPC, thin markets suppressed",
    inputs=(Input("revenue_cents", low=0, high=2**REVENUE_BITS - 1, dim="market", nonzero=True),),
    outputs=(
        Output(
            "hhi",
            dim="market",
            decimals="decimals",
            suppressed_by="suppressed",
            description="10000 * sum of squared revenues / squared total revenue, rounded",
        ),
        Output(
            "suppressed", dim="market", description="1 where fewer than k firms of the roster had revenue in the market"
        ),
    ),
    compute=hhi,
    bit_length=division(MAX_DECIMALS).secint_bits,  # the largest federation: 100 firms, 4 decimals
    sizing=lambda p, firms: division(p["decimals"], min(firms, MAX_PARTIES)).secint_bits,
    min_input_parties=3,
    settings=settings,
)
