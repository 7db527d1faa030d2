"""Sum per market across the input parties, exact, with thin cells suppressed.

Each input party contributes one integer per market (``all``, then each month of the period), e.g.
a revenue in cents or a number of trips. For every market the recipients learn the total over the
roster, exactly, but only where at least ``k`` parties contributed a non-zero value; any other cell
is reported as suppressed (``total`` None, ``suppressed`` 1), never as zero.

Reveal policy: every recipient of the spec learns ``total`` and ``suppressed``; the roster has at
least ``min_input_parties`` (3) input parties; per cell at least ``k`` (spec ``program.params.k``,
default 3) non-zero contributions.
"""

from fractions import Fraction

from mpc_federation.programs import Input, Output, SecureProgram

MAX_ABS_VALUE = 10**15  # per party and market
MAX_PARTIES = 100
DEFAULTS = {"k": 3}
VALUE_BITS = 52  # every input lies in [-2**51, 2**51): enough for the secure zero test
PARTY_BITS = 16  # (number of contributing parties) - k lies in [-2**15, 2**15)


def settings(params: dict | None) -> dict:
    """The program's parameters: the spec's ``program.params`` over the defaults, checked."""
    merged = {**DEFAULTS, **(params or {})}
    unknown = sorted(set(merged) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"program sum: unknown params {unknown} (allowed: {sorted(DEFAULTS)})")
    k = merged["k"]
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_PARTIES:
        raise ValueError(f"program sum: params.k must be an integer from 1 to {MAX_PARTIES}, got {k!r}")
    return merged


def secure_sum(mpc, secint, inputs, params):
    k = settings(params)["k"]
    values = inputs["value"]  # one vector per party, roster order
    if len(values) > MAX_PARTIES:
        raise ValueError(f"program sum: {len(values)} input parties, at most {MAX_PARTIES} are supported")
    totals, suppressed = [], []
    for j in range(len(values[0])):
        column = [party[j] for party in values]
        total = mpc.sum(column)
        contributors = mpc.sum([1 - mpc.sgn(x, l=VALUE_BITS, EQ=True) for x in column])
        ok = 1 - mpc.sgn(contributors - k, l=PARTY_BITS, LT=True)  # 1 iff contributors >= k
        # An integer revealed as the ratio total/1: a suppressed cell becomes (0, 0), which the
        # recipient decodes as None, so it can never be mistaken for a total of zero.
        totals.append((ok * total, ok))
        suppressed.append(1 - ok)
    return {"total": totals, "suppressed": suppressed}


def plaintext(parties: list[dict[str, list[int]]], params: dict | None = None) -> dict[str, list]:
    """The insecure reference over the parties' input vectors: what the recipients must learn."""
    k = settings(params)["k"]
    totals, suppressed = [], []
    for column in zip(*(p["value"] for p in parties)):
        ok = sum(1 for x in column if x != 0) >= k
        totals.append(Fraction(sum(column)) if ok else None)
        suppressed.append(0 if ok else 1)
    return {"total": totals, "suppressed": suppressed}


# Field: |total| <= 100 * 10**15 = 10**17 must lie below sqrt(p/2) for the ratio total/1 to be
# reconstructed. SecInt(96) has a 128-bit prime, sqrt(p/2) ~ 1.3e19: a factor 130 to spare.
PROGRAM = SecureProgram(
    name="sum",
    description="Total per market over the input parties, cells with fewer than k contributors suppressed",
    inputs=(Input("value", low=-MAX_ABS_VALUE, high=MAX_ABS_VALUE, dim="market"),),
    outputs=(Output("total", kind="ratio", dim="market",
                    description="sum over the roster (an integer; None where suppressed)"),
             Output("suppressed", kind="int", dim="market",
                    description="1 where fewer than k parties contributed a non-zero value")),
    compute=secure_sum,
    bit_length=96,
    min_input_parties=3,
)
