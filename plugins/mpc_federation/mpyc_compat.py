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
