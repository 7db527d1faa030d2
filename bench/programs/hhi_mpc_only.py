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

from mpc_federation.programs import Input, Output, SecureProgram

MAX_FARE_CENTS = 10**6


def hhi_from_trips(mpc, secint, inputs, params):
    companies = params["companies"]
    months = int(params["months"])
    names = list(dict.fromkeys(companies))
    fares = {c: [] for c in names}
    columns = {c: [[] for _ in range(months)] for c in names}
    for index, chunk in enumerate(inputs["fare_cents"]):
        company = companies[index]
        fares[company].extend(chunk)
        if "month" in inputs:
            for month in inputs["month"][index]:
                unit = mpc.unit_vector(month, months)
                for m in range(months):
                    columns[company][m].append(unit[m])
        else:
            bits = inputs["month_onehot"][index]
            for j in range(len(chunk)):
                for m in range(months):
                    columns[company][m].append(bits[j * months + m])
    revenue = {c: [mpc.sum(fares[c])] + [mpc.in_prod(fares[c], columns[c][m]) for m in range(months)]
               for c in names}
    ratios = []
    for k in range(months + 1):
        column = [revenue[c][k] for c in names]
        total = mpc.sum(column)
        squares = mpc.in_prod(column, column)
        ratios.append((10000 * squares, total * total))
    return {"hhi": ratios}


PROGRAM = SecureProgram(
    name="hhi_mpc_only",
    description="bench only: the HHI per market computed inside MPC from every trip's fare and month",
    inputs=(Input("fare_cents", low=0, high=MAX_FARE_CENTS, dim="trip"),
            Input("month", low=0, high=599, dim="trip"),
            Input("month_onehot", low=0, high=1, dim="trip")),
    outputs=(Output("hhi", kind="ratio", dim="market"),),
    compute=hhi_from_trips,
    bit_length=224,  # the same field as the HHI program: exact fractions
    min_input_parties=1,
)
