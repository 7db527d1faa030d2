"""A test program: ``arith.trunc`` of ``a = hi * 2**60 + lo`` (a 121-bit signed value) by several
shifts, revealed, so that a test can check each against ``floor(a / 2**f)`` and the declared error."""

from mpc_federation.arith import trunc
from mpc_federation.programs import Input, Output, SecureProgram

SHIFTS = (1, 30, 61, 119)
BITS = 122  # -2**121 <= a < 2**121


async def probe(mpc, secint, inputs, params):
    a = inputs["hi"].sum(axis=0) * 2**60 + inputs["lo"].sum(axis=0)
    return {f"shift_{f}": trunc(mpc, a, f, BITS) for f in SHIFTS}


PROGRAM = SecureProgram(
    name="trunc_probe",
    inputs=(Input("hi", low=-(2**60), high=2**60 - 1, dim="cell"), Input("lo", low=0, high=2**60 - 1, dim="cell")),
    outputs=tuple(Output(f"shift_{f}", dim="cell") for f in SHIFTS),
    compute=probe,
    bit_length=124,
    min_input_parties=1,
)
