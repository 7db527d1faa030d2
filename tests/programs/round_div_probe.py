"""A test program: ``arith.round_div`` with a validity mask, revealed without suppression, so that
a test can check the raw quotients: exact where ``flag`` is 1, and exactly 0 where it is 0, whatever
the numerator and denominator there (0 included). On ``den`` itself, given its root, and in chunks."""

from mpc_federation.arith import DivisionSize, at_least, round_div
from mpc_federation.programs import Input, Output, SecureProgram

NUM_BITS, ROOT_BITS = 40, 10  # |num| <= 2**40, den = root**2 < 2**20
SIZE = DivisionSize(den_bits=2 * ROOT_BITS, quotient_bits=NUM_BITS + 1)


async def probe(mpc, secint, inputs, params):
    num, root = inputs["num"].sum(axis=0), inputs["root"].sum(axis=0)
    valid = at_least(mpc, inputs["flag"].sum(axis=0), 1, 3)
    den = root * root
    return {
        "plain": round_div(mpc, num, den, SIZE, valid=valid),
        "rooted": round_div(mpc, num, den, SIZE, root=root, valid=valid),
        "chunked": round_div(mpc, num, den, SIZE, root=root, valid=valid, chunk=7),
    }


PROGRAM = SecureProgram(
    name="round_div_probe",
    inputs=(
        Input("num", low=-(2**NUM_BITS), high=2**NUM_BITS, dim="cell"),
        Input("root", low=0, high=2**ROOT_BITS - 1, dim="cell"),
        Input("flag", low=0, high=1, dim="cell"),
    ),
    outputs=(Output("plain", dim="cell"), Output("rooted", dim="cell"), Output("chunked", dim="cell")),
    compute=probe,
    bit_length=SIZE.secint_bits,
    min_input_parties=1,
)
