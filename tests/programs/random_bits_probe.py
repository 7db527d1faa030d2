"""A test program: MPyC's ``np_random_bits`` and ``_np_randoms`` as the MPyC process runs them
(``mpyc_compat``'s bulk random signs and masks), revealed, so that a test can check that the bits
are bits and the masks lie below their bound, and that both look random. MPyC's own protocols draw
each sender's sign with ``secrets.randbits`` and each mask with ``secrets.randbelow``: the probe
takes those calls away from MPyC first, so the run fails if MPyC's own is what ran."""

import secrets

from mpc_federation.programs import Input, Output, SecureProgram

MASK_BOUND = 2**20


class _WithoutRandbits:
    """``secrets`` for MPyC's runtime, without ``randbits`` and ``randbelow``."""

    def __getattr__(self, name):
        if name in ("randbits", "randbelow"):
            raise AssertionError(f"MPyC's own random draws ran (secrets.{name}), not the bulk ones")
        return getattr(secrets, name)


async def probe(mpc, secint, inputs, params):
    import mpyc.runtime

    mpyc.runtime.secrets = _WithoutRandbits()
    n = inputs["x"].shape[1]
    return {
        "bits": mpc.np_random_bits(secint, n),
        "signs": mpc.np_random_bits(secint, n, signed=True),
        "masks": mpc._np_randoms(secint, n, MASK_BOUND),  # the sum of t + 1 senders' draws below MASK_BOUND
    }


PROGRAM = SecureProgram(
    name="random_bits_probe",
    inputs=(Input("x", low=0, high=1, dim="cell"),),
    outputs=(Output("bits", dim="cell"), Output("signs", dim="cell"), Output("masks", dim="cell")),
    compute=probe,
    bit_length=64,
    min_input_parties=1,
)
