"""A test program: MPyC's ``np_random_bits`` as the MPyC process runs it (``mpyc_compat``'s bulk
random signs), revealed, so that a test can check that the bits are bits and look random. MPyC's
own protocol draws each sender's sign with ``secrets.randbits``: the probe takes that call away
from MPyC first, so the run fails if MPyC's own ``np_random_bits`` is what ran."""

import secrets

from mpc_federation.programs import Input, Output, SecureProgram


class _WithoutRandbits:
    """``secrets`` for MPyC's runtime, without ``randbits``."""

    def __getattr__(self, name):
        if name == "randbits":
            raise AssertionError("MPyC's own np_random_bits ran, not the bulk one")
        return getattr(secrets, name)


async def probe(mpc, secint, inputs, params):
    import mpyc.runtime

    mpyc.runtime.secrets = _WithoutRandbits()
    n = inputs["x"].shape[1]
    return {"bits": mpc.np_random_bits(secint, n), "signs": mpc.np_random_bits(secint, n, signed=True)}


PROGRAM = SecureProgram(
    name="random_bits_probe",
    inputs=(Input("x", low=0, high=1, dim="cell"),),
    outputs=(Output("bits", dim="cell"), Output("signs", dim="cell")),
    compute=probe,
    bit_length=64,
    min_input_parties=1,
)
