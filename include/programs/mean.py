"""Pooled mean per market across the input parties, exact, with small groups suppressed.

Each input party contributes, per market (``all``, then each month of the period), the sum of some
integer quantity over its records (``value_sum``, e.g. fares in cents) and the number of records
(``count``). Recipients learn the pooled mean sum(value_sum) / sum(count) as an exact fraction,
but only where at least ``k`` parties have records in the cell and the cell pools at least ``n``
records; any other cell is reported as suppressed (``mean`` None, ``suppressed`` 1).

Reveal policy: every recipient learns ``mean`` and ``suppressed``; the roster has at least
``min_input_parties`` (3) parties; per cell at least ``k`` parties with count > 0 (default 3) and
at least ``n`` records in all (default 5), both from the spec's ``program.params``.
"""

from fractions import Fraction

from mpc_federation.programs import Input, Output, SecureProgram

MAX_ABS_SUM = 10**15  # per party and market
MAX_COUNT = 10**9  # per party and market
MAX_PARTIES = 100
MAX_N = 10**6
DEFAULTS = {"k": 3, "n": 5}
COUNT_BITS = 40  # counts (<= 100 * 10**9) and count - n lie in [-2**39, 2**39)


def settings(params: dict | None) -> dict:
    """The program's parameters: the spec's ``program.params`` over the defaults, checked."""
    merged = {**DEFAULTS, **(params or {})}
    unknown = sorted(set(merged) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"program mean: unknown params {unknown} (allowed: {sorted(DEFAULTS)})")
    for name, top in (("k", MAX_PARTIES), ("n", MAX_N)):
        v = merged[name]
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= top:
            raise ValueError(f"program mean: params.{name} must be an integer from 1 to {top}, got {v!r}")
    return merged


def pooled_mean(mpc, secint, inputs, params):
    p = settings(params)
    sums, counts = inputs["value_sum"], inputs["count"]
    if len(sums) > MAX_PARTIES:
        raise ValueError(f"program mean: {len(sums)} input parties, at most {MAX_PARTIES} are supported")

    def at_least(x, bound):  # secure x >= bound, for x - bound in [-2**39, 2**39)
        return 1 - mpc.sgn(x - bound, l=COUNT_BITS, LT=True)

    means, suppressed = [], []
    for j in range(len(sums[0])):
        total = mpc.sum([party[j] for party in sums])
        column = [party[j] for party in counts]
        n_records = mpc.sum(column)
        with_records = mpc.sum([at_least(c, 1) for c in column])
        ok = at_least(with_records, p["k"]) * at_least(n_records, p["n"])
        means.append((ok * total, ok * n_records))  # (0, 0), decoded as None, when suppressed
        suppressed.append(1 - ok)
    return {"mean": means, "suppressed": suppressed}


def plaintext(parties: list[dict[str, list[int]]], params: dict | None = None) -> dict[str, list]:
    """The insecure reference over the parties' input vectors: what the recipients must learn."""
    p = settings(params)
    means, suppressed = [], []
    for sums, counts in zip(zip(*(x["value_sum"] for x in parties)), zip(*(x["count"] for x in parties))):
        ok = sum(1 for c in counts if c > 0) >= p["k"] and sum(counts) >= p["n"]
        means.append(Fraction(sum(sums), sum(counts)) if ok else None)
        suppressed.append(0 if ok else 1)
    return {"mean": means, "suppressed": suppressed}


# Field: the mean's numerator |sum| <= 100 * 10**15 = 10**17 and denominator <= 100 * 10**9 must lie
# below sqrt(p/2) for rational reconstruction. SecInt(96) has a 128-bit prime, sqrt(p/2) ~ 1.3e19.
PROGRAM = SecureProgram(
    name="mean",
    description="Pooled mean per market, cells with fewer than k parties or n records suppressed",
    inputs=(Input("value_sum", low=-MAX_ABS_SUM, high=MAX_ABS_SUM, dim="market"),
            Input("count", low=0, high=MAX_COUNT, dim="market")),
    outputs=(Output("mean", kind="ratio", dim="market",
                    description="sum of value_sum / sum of count (exact; None where suppressed)"),
             Output("suppressed", kind="int", dim="market",
                    description="1 where fewer than k parties had records or fewer than n records in all")),
    compute=pooled_mean,
    bit_length=96,
    min_input_parties=3,
)
