"""A test program: MPyC's ``np_random_bits`` as the MPyC process runs it (``mpyc_compat``'s bulk
random signs), revealed, so that a test can check that the bits are bits and look random; ``bulk``
is 1 where the process runs the replacement."""

from mpc_federation.programs import Input, Output, SecureProgram


async def probe(mpc, secint, inputs, params):
    n = inputs["x"].shape[1]
    bulk = int(getattr(type(mpc).np_random_bits, "_bulk", False))
    return {
        "bits": mpc.np_random_bits(secint, n),
        "signs": mpc.np_random_bits(secint, n, signed=True),
        "bulk": inputs["x"].sum(axis=0) * 0 + bulk,
    }


PROGRAM = SecureProgram(
    name="random_bits_probe",
    inputs=(Input("x", low=0, high=1, dim="cell"),),
    outputs=(Output("bits", dim="cell"), Output("signs", dim="cell"), Output("bulk", dim="cell")),
    compute=probe,
    bit_length=32,
    min_input_parties=1,
)
