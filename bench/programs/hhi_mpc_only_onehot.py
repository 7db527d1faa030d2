"""Bench only: the "MPC only" HHI with each trip's month given as secret one-hot bits (the
``onehot`` variant of ``hhi_mpc_only.py``, which has the computation and the explanation)."""

import importlib.util
from pathlib import Path

from mpc_federation.programs import Input

_spec = importlib.util.spec_from_file_location("bench_hhi_mpc_only", Path(__file__).with_name("hhi_mpc_only.py"))
_base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_base)

PROGRAM = _base.declare(Input("month_onehot", low=0, high=1, dim="trip"), "hhi_mpc_only_onehot")
