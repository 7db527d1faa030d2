"""Sum per market across the input parties, exact, with thin cells suppressed.

Each input party contributes one integer per market (``all``, then each month of the period), e.g.
a revenue in cents or a number of trips. For every market the recipients learn the total over the
roster, exactly (the declared precision of a sum is its unit), but only where at least ``k``
parties contributed a non-zero value (a verified indicator, checked inside the MPC); any other
cell is reported as suppressed (``total`` None, ``suppressed`` 1), never as zero.

What a recipient learns: the exact pooled total of each unsuppressed cell. A total is exact by
design, so k - 1 parties colluding with the recipient learn the remaining party's value when
they are k - 1 of k contributors; choose k accordingly (README's threat model).
"""

from mpc_federation.arith import at_least
from mpc_federation.programs import Input, Output, SecureProgram

VALUE_BITS = 50  # every input lies in [-2**50, 2**50 - 1]
MAX_PARTIES = 100
DEFAULTS = {"k": 3}


def settings(params: dict | None) -> dict:
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
    if inputs.parties > MAX_PARTIES:
        raise ValueError(f"program sum: {inputs.parties} input parties, at most {MAX_PARTIES} are supported")
    ok = at_least(mpc, inputs.nonzero["value"].sum(axis=0), k, 9)
    return {"total": ok * inputs["value"].sum(axis=0), "suppressed": 1 - ok}


def plaintext(parties: list[dict[str, list[int]]], params: dict | None = None) -> dict[str, list]:
    """The insecure reference over the parties' input vectors: what the recipients must learn."""
    k = settings(params)["k"]
    totals, suppressed = [], []
    for column in zip(*(p["value"] for p in parties)):
        ok = sum(1 for x in column if x != 0) >= k
        totals.append(sum(column) if ok else None)
        suppressed.append(0 if ok else 1)
    return {"total": totals, "suppressed": suppressed}


PROGRAM = SecureProgram(
    name="sum",
    description="Total per market over the input parties, cells with fewer than k contributors suppressed",
    inputs=(Input("value", low=-(2**VALUE_BITS), high=2**VALUE_BITS - 1, dim="market", nonzero=True),),
    outputs=(
        Output(
            "total",
            dim="market",
            suppressed_by="suppressed",
            description="sum over the roster (an integer; None where suppressed)",
        ),
        Output("suppressed", dim="market", description="1 where fewer than k parties contributed a non-zero value"),
    ),
    compute=secure_sum,
    bit_length=64,
    min_input_parties=3,
    settings=settings,
)
