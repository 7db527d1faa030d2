"""Herfindahl-Hirschman Index of one market, exact.

Each input party is one firm and contributes one number: its revenue in the market, in integer
cents (a scalar input: no dimension). The recipients learn HHI = 10000 * sum(r_i^2) / (sum r_i)^2
as an exact fraction, and nothing else: not the market's size, not any firm's share. For the HHI of
every month as well, use ``hhi.py`` (a vector over ``market``).

Reveal policy: every recipient learns ``hhi``; the roster has at least ``min_input_parties`` (3)
firms. A market without revenue has no HHI (None).
"""

from fractions import Fraction

from mpc_federation.programs import Input, Output, SecureProgram

MAX_REVENUE_CENTS = 10**12  # per firm
MAX_PARTIES = 100


def hhi(mpc, secint, inputs, params):
    if params:
        raise ValueError(f"program hhi_single takes no params, got {sorted(params)}")
    revenues = [firm[0] for firm in inputs["revenue_cents"]]  # one scalar per firm
    if len(revenues) > MAX_PARTIES:
        raise ValueError(f"program hhi_single: {len(revenues)} firms, at most {MAX_PARTIES} are supported")
    total = mpc.sum(revenues)
    squares = mpc.in_prod(revenues, revenues)
    return {"hhi": [(10000 * squares, total * total)]}


def plaintext(parties: list[dict[str, list[int]]], params: dict | None = None) -> dict[str, list]:
    """The insecure reference: what the recipients must learn."""
    r = [p["revenue_cents"][0] for p in parties]
    return {"hhi": [Fraction(10000 * sum(x * x for x in r), sum(r) ** 2) if sum(r) else None]}


# Field: numerator <= 10000 * 100 * (10**12)**2 = 10**30 and denominator <= (100 * 10**12)**2 = 10**28
# must lie below sqrt(p/2). SecInt(224) has a 256-bit prime, sqrt(p/2) ~ 2.4e38 (as in hhi.py).
PROGRAM = SecureProgram(
    name="hhi_single",
    description="Herfindahl-Hirschman Index of one market (0..10000), exact",
    inputs=(Input("revenue_cents", low=0, high=MAX_REVENUE_CENTS),),
    outputs=(Output("hhi", kind="ratio",
                    description="10000 * sum of squared revenues / squared total revenue"),),
    compute=hhi,
    bit_length=224,
    min_input_parties=3,
)
