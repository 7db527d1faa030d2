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
        raise RuntimeError(
            f"mpc_federation uses MPyC internals written for MPyC {', '.join(WRITTEN_FOR)}; "
            f"this is MPyC {mpyc.__version__}: check mpyc_compat.rerandomize against it"
        )


def rerandomize(mpc, x):
    """A fresh random degree-t sharing of the secure array ``x`` (MPyC's resharing protocol)."""
    check_version()
    return mpc._reshare(x)


def bulk_randoms(order: int, count: int) -> list[int]:
    """``count`` uniform integers below ``order`` from one call to the OS's CSPRNG: 64 extra bits per
    value make the bias of the reduction negligible (below 2**-64)."""
    import os

    width = (order.bit_length() + 64 + 7) // 8
    stream = os.urandom(width * count)
    return [int.from_bytes(stream[i : i + width], "little") % order for i in range(0, width * count, width)]


def install_fast_random_split() -> None:
    """Replace MPyC's ``thresha.np_random_split`` (one ``secrets.randbelow`` call per coefficient and
    an object-array matrix product: a third of the CPU time of a large vectorised program without
    PRSS, which reshares every product) by the same Shamir split, its random coefficients drawn in
    bulk from ``os.urandom`` and the polynomials evaluated by Horner's rule at the small points."""
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
        s = np.asarray(s, dtype=object).reshape(n)
        if t == 0:
            return np.stack([s % p] * m)
        c = np.array(bulk_randoms(p, t * n), dtype=object).reshape(t, n)
        rows = []
        if t == 1:  # s + c x at x = 1, 2, ...: one addition per point
            y = s
            for _ in range(m):
                y = (y + c[0]) % p
                rows.append(y)
            return np.stack(rows)
        for x in range(1, m + 1):  # Horner: s + c_1 x + ... + c_t x**t, elementwise (small x)
            y = c[t - 1]
            for j in range(t - 2, -1, -1):
                y = y * x + c[j]
            rows.append((y * x + s) % p)
        return np.stack(rows)

    original = thresha.np_random_split
    np_random_split._bulk = True  # type: ignore[attr-defined]  # marks the patch as applied
    thresha.np_random_split = np_random_split


def cache_ssl_contexts() -> None:
    """Build each kind of TLS context once per process. MPyC creates a fresh default context (which
    loads the system's CA store, ~30 ms) for every connection attempt while its peers are not up
    yet, retrying every 0.1 s; it then loads the same certificate, key and CA file into it, so
    handing it the same context again changes nothing but the time. Only for the MPyC process."""
    import functools
    import ssl

    if getattr(ssl.create_default_context, "_cached", False):
        return
    cached = functools.lru_cache(maxsize=4)(ssl.create_default_context)
    cached._cached = True  # type: ignore[attr-defined]  # marks the patch as applied
    ssl.create_default_context = cached  # type: ignore[assignment]  # the same call, cached
