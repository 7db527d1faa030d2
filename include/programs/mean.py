"""Pooled mean per market across the input parties, rounded inside the MPC, small groups suppressed.

Each input party contributes, per market (``all``, then each month of the period), the sum of some
integer quantity over its records (``value_sum``, e.g. fares in cents) and the number of records
(``count``). Recipients learn the pooled mean sum(value_sum) / sum(count) rounded to ``decimals``
places of the quantity's unit (default 0: whole cents; ties rounded up), but only where at least
``k`` parties have records in the cell and the cell pools at least ``n`` records; any other cell is
reported as suppressed (``mean`` None, ``suppressed`` 1).

What a recipient learns: the rounded mean of each unsuppressed cell, never the pooled sum or
count (an exact fraction would give both away).
"""

from mpc_federation.arith import DivisionSize, at_least, plain_round_div, round_div
from mpc_federation.programs import Input, Output, SecureProgram, fixed

SUM_BITS = 50  # per party and market: value_sum in [-2**50, 2**50 - 1]
COUNT_BITS = 30  # per party and market: count in [0, 2**30 - 1]
MAX_PARTIES = 100
MAX_N = 10**6
DEFAULTS = {"k": 3, "n": 5, "decimals": 0}
MAX_DECIMALS = 4


def settings(params: dict | None) -> dict:
    """The program's parameters: the spec's ``program.params`` over the defaults, checked."""
    merged = {**DEFAULTS, **(params or {})}
    unknown = sorted(set(merged) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"program mean: unknown params {unknown} (allowed: {sorted(DEFAULTS)})")
    for name, low, top in (("k", 1, MAX_PARTIES), ("n", 1, MAX_N), ("decimals", 0, MAX_DECIMALS)):
        v = merged[name]
        if not isinstance(v, int) or isinstance(v, bool) or not low <= v <= top:
            raise ValueError(f"program mean: params.{name} must be an integer from {low} to {top}, got {v!r}")
    return merged


def division(decimals: int) -> DivisionSize:
    """Pooled counts below 2**37; |mean| * 10**d below 2**(57 + bits of 10**d)."""
    return DivisionSize(COUNT_BITS + 7, SUM_BITS + 7 + (10**decimals).bit_length())


def pooled_mean(mpc, secint, inputs, params):
    p = settings(params)
    if inputs.parties > MAX_PARTIES:
        raise ValueError(f"program mean: {inputs.parties} input parties, at most {MAX_PARTIES} are supported")
    total = inputs["value_sum"].sum(axis=0)
    records = inputs["count"].sum(axis=0)
    with_records = inputs.nonzero["count"].sum(axis=0)
    floors = at_least(mpc, mpc.np_stack((with_records - p["k"], records - p["n"])), 0, COUNT_BITS + 9)
    ok = floors[0] * floors[1]
    mean = round_div(mpc, 10 ** p["decimals"] * total, records, division(p["decimals"]), valid=ok)
    return {"mean": mean, "suppressed": 1 - ok}


def plaintext(parties: list[dict[str, list[int]]], params: dict | None = None) -> dict[str, list]:
    """The insecure reference over the parties' input vectors: what the recipients must learn."""
    p = settings(params)
    means, suppressed = [], []
    for sums, counts in zip(zip(*(x["value_sum"] for x in parties)), zip(*(x["count"] for x in parties))):
        ok = sum(1 for c in counts if c > 0) >= p["k"] and sum(counts) >= p["n"]
        q = plain_round_div(10 ** p["decimals"] * sum(sums), sum(counts)) if ok else None
        means.append(None if q is None else fixed(q, p["decimals"]))
        suppressed.append(0 if ok else 1)
    return {"mean": means, "suppressed": suppressed}


PROGRAM = SecureProgram(
    name="mean",
    description="Pooled mean per market, rounded in the MPC, cells with fewer than k parties or n records suppressed",
    inputs=(
        Input("value_sum", low=-(2**SUM_BITS), high=2**SUM_BITS - 1, dim="market"),
        Input("count", low=0, high=2**COUNT_BITS - 1, dim="market", nonzero=True),
    ),
    outputs=(
        Output(
            "mean",
            dim="market",
            decimals="decimals",
            suppressed_by="suppressed",
            description="sum of value_sum / sum of count, rounded (None where suppressed)",
        ),
        Output(
            "suppressed",
            dim="market",
            description="1 where fewer than k parties had records or fewer than n records in all",
        ),
    ),
    compute=pooled_mean,
    bit_length=division(MAX_DECIMALS).secint_bits,
    min_input_parties=3,
    settings=settings,
)
