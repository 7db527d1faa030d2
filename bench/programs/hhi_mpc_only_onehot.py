"""Bench only: the "MPC only" HHI with each trip's month given as secret one-hot bits (the
``onehot`` variant of ``hhi_mpc_only.py``, which has the computation and the explanation)."""

from pathlib import Path

from mpc_federation.programs import Input, import_file

_base = import_file(Path(__file__).with_name("hhi_mpc_only.py"), "bench_hhi_mpc_only")

PROGRAM = _base.declare(Input("month_onehot", low=0, high=1, dim="trip"), "hhi_mpc_only_onehot")
