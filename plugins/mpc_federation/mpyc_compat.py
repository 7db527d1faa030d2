"""The one place that uses MPyC internals, checked against the MPyC version it was written for.

Output sharings are re-randomised before they are released to recipients, so that the shares a
recipient gets are a fresh random sharing of the outputs, independent of how they were computed.
MPyC does this inside every multiplication (``_reshare``) but has no public call for it.
"""

from __future__ import annotations

import mpyc

WRITTEN_FOR = ("0.11",)


def check_version() -> None:
    if mpyc.__version__ not in WRITTEN_FOR:
        raise RuntimeError(f"mpc_federation uses MPyC internals written for MPyC {', '.join(WRITTEN_FOR)}; "
                           f"this is MPyC {mpyc.__version__}: check mpyc_compat.rerandomize against it")


def rerandomize(mpc, x):
    """A fresh random degree-t sharing of the secure array ``x`` (MPyC's resharing protocol)."""
    check_version()
    return mpc._reshare(x)


def _bulk_randoms(order: int, count: int) -> list[int]:
    """``count`` uniform integers below ``order`` from one call to the OS's CSPRNG: 64 extra bits per
    value make the bias of the reduction negligible (below 2**-64)."""
    import os

    width = (order.bit_length() + 64 + 7) // 8
    stream = os.urandom(width * count)
    return [int.from_bytes(stream[i:i + width], "little") % order for i in range(0, width * count, width)]


def install_fast_random_split() -> None:
    """Replace MPyC's ``thresha.np_random_split`` (one ``secrets.randbelow`` call per coefficient,
    most of the CPU time of a large vectorised program without PRSS) by the same Shamir split with
    its random coefficients drawn in bulk from ``os.urandom``."""
    check_version()
    import numpy as np
    from mpyc import thresha

    if getattr(thresha.np_random_split, "_bulk", False):
        return

    def np_random_split(field, s, t, m):
        p = field.modulus
        if not isinstance(p, int) or field.order != p:
            return original(field, s, t, m)
        if isinstance(s, field.array):
            s = s.value
        n = len(s)
        c = np.array(_bulk_randoms(p, t * n) if t * n else [], dtype=object).reshape(t, n)
        v = np.vander(np.array(list(range(1, m + 1)), dtype=object), N=t + 1, increasing=True)
        return (v @ np.concatenate((s.reshape(1, n), c))) % p

    original = thresha.np_random_split
    np_random_split._bulk = True
    thresha.np_random_split = np_random_split
