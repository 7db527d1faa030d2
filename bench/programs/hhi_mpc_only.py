"""Bench only: "MPC only" - the whole HHI query inside MPyC, starting from every single trip.

This is what the mixed-mode design avoids; the benchmark runs it at a small number of trips and
extrapolates linearly (see bench/table1.py). It is NOT a federation program (no spec uses it).

What goes into the MPC, per trip, as secret inputs (Shamir shares made by the trip's company):

* ``fare_cents``: the trip's fare in integer cents;
* ``month``: the index (0..M-1) of the trip's pickup month within the period (variant
  ``secret-month``, the default: the month of a trip is private too), or
* ``month_onehot``: M secret bits, 1 for the trip's month (variant ``onehot``: the company encodes
  the month locally; a floor for any MPC-only design, since the MPC then only sums).

What the MPC computes:

1. (``secret-month`` only) for every trip the one-hot vector of its secret month
   (``mpc.unit_vector``: a secure bit decomposition of the month, then products of the bits);
2. per company and month, revenue = inner product of the fares with the month's indicator column
   (one resharing per company and month), and the whole period's revenue = the sum of the fares;
3. per market the HHI exactly as ``include/programs/hhi.py`` does it (10000 * sum r^2, (sum r)^2,
   masked by the worker with a fresh random rho).

Rows are fed as "chunks": the worker sees one roster entry per chunk of ``chunk`` trips of one
company (``params["companies"]`` names each chunk's company, in roster order; padding rows have
fare 0, so they change nothing).
"""

from pathlib import Path

from mpc_federation.programs import Input, SecureProgram, load_program

MAX_FARE_CENTS = 2**20 - 1


def _hhi_program():
    """The federation's HHI program (include/programs/hhi.py): step 3 is exactly its computation."""
    return load_program(Path(__file__).resolve().parents[2] / "include" / "programs" / "hhi.py").module


def hhi_from_trips(mpc, secint, inputs, params):
    from mpc_federation.programs import ProgramInputs

    companies = params["companies"]
    months = int(params["months"])
    names = list(dict.fromkeys(companies))
    fares = {c: [] for c in names}
    columns = {c: [[] for _ in range(months)] for c in names}
    chunks = inputs["fare_cents"].shape[0]
    for index in range(chunks):
        company = companies[index]
        chunk = mpc.np_tolist(inputs["fare_cents"][index])
        fares[company].extend(chunk)
        if "month" in inputs.values:
            for month in mpc.np_tolist(inputs["month"][index]):
                unit = mpc.unit_vector(month, months)
                for m in range(months):
                    columns[company][m].append(unit[m])
        else:
            bits = mpc.np_tolist(inputs["month_onehot"][index])
            for j in range(len(chunk)):
                for m in range(months):
                    columns[company][m].append(bits[j * months + m])
    revenue = [[mpc.sum(fares[c])] + [mpc.in_prod(fares[c], columns[c][m]) for m in range(months)] for c in names]
    matrix = mpc.np_fromlist([r for row in revenue for r in row]).reshape((len(names), months + 1))
    nonzero = 1 - mpc.np_sgn(matrix, l=40, EQ=True)  # the floor: firms with revenue in the market
    hhi = _hhi_program()
    return hhi.hhi(
        mpc,
        secint,
        ProgramInputs({"revenue_cents": matrix}, {"revenue_cents": nonzero}, len(names)),
        {"k": 3, "decimals": 2},
    )


def declare(month_input: Input, name: str) -> SecureProgram:
    return SecureProgram(
        name=name,
        description="bench only: the HHI per market computed inside MPC from every trip's fare and month",
        inputs=(Input("fare_cents", low=0, high=MAX_FARE_CENTS, dim="trip"), month_input),
        outputs=_hhi_program().PROGRAM.outputs,
        compute=hhi_from_trips,
        bit_length=_hhi_program().PROGRAM.bit_length,  # the same field and rounding as the HHI program
        min_input_parties=1,
        settings=lambda params: {"decimals": 2, **(params or {})},
    )


PROGRAM = declare(Input("month", low=0, high=2**10 - 1, dim="trip"), "hhi_mpc_only")
