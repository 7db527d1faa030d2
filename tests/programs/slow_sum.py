"""A test program: the sum of one value per party, after an optional pause inside the MPC
(so that faults can be injected while the compute parties are connected and working)."""

import asyncio

from mpc_federation.programs import Input, Output, SecureProgram


async def total(mpc, secint, inputs, params):
    await asyncio.sleep(params.get("delay", 0))
    return {"total": inputs["value"].sum(axis=0)}


PROGRAM = SecureProgram(
    name="slow_sum",
    inputs=(Input("value", low=0, high=2**30 - 1),),
    outputs=(Output("total"),),
    compute=total,
    bit_length=64,
    min_input_parties=1,
    settings=lambda params: {"delay": 0, **(params or {})},
)
