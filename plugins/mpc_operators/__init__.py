"""Airflow operators for the stages of a federated MPC run.

The operator classes are imported on first use (PEP 562): Airflow imports this package while it is
still reading its own configuration (the provider entry point ``mpc_operators.provider``), when
the Spark provider's modules cannot be imported yet.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mpc_operators.aggregate import MPCAggregateOperator
    from mpc_operators.compute import MPCComputeOperator
    from mpc_operators.reveal import MPCRevealOperator
    from mpc_operators.share import MPCShareOperator

_MODULES = {
    "MPCAggregateOperator": "aggregate",
    "MPCComputeOperator": "compute",
    "MPCRevealOperator": "reveal",
    "MPCShareOperator": "share",
}
__all__ = ["MPCAggregateOperator", "MPCComputeOperator", "MPCRevealOperator", "MPCShareOperator"]


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
