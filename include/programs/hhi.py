"""Herfindahl-Hirschman Index per market, exact.

Each input party is one firm and contributes its revenue per market in integer cents.
For every market the recipients learn HHI = 10000 * sum(r_i^2) / (sum r_i)^2 as an exact
fraction, and nothing else: not the total market size, not any firm's share.
"""

from mpc_federation.programs import Input, Output, SecureProgram

MAX_REVENUE_CENTS = 10**12  # per party and market
MAX_PARTIES = 100


def hhi(mpc, secint, inputs, params):
    revenues = inputs["revenue_cents"]  # one vector per firm
    markets = len(revenues[0])
    ratios = []
    for k in range(markets):
        column = [firm[k] for firm in revenues]
        total = mpc.sum(column)
        squares = mpc.in_prod(column, column)  # one resharing for all firms
        ratios.append((10000 * squares, total * total))
    return {"hhi": ratios}


# With l = 224 the field has ~256 bits: 10000 * 100 * (10**12)**2 and (100 * 10**12)**2 stay far
# below sqrt(p/2), so the recipient reconstructs the exact fraction.
PROGRAM = SecureProgram(
    name="hhi",
    description="Herfindahl-Hirschman Index of each market (0..10000), exact",
    inputs=(Input("revenue_cents", low=0, high=MAX_REVENUE_CENTS, dim="market"),),
    outputs=(Output("hhi", kind="ratio", dim="market",
                    description="10000 * sum of squared revenues / squared total revenue"),),
    compute=hhi,
    bit_length=224,
    min_input_parties=3,
)
