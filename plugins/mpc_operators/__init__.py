"""Airflow operators for the stages of a federated MPC run."""

from mpc_operators.aggregate import MPCAggregateOperator
from mpc_operators.compute import MPCComputeOperator
from mpc_operators.reveal import MPCRevealOperator
from mpc_operators.share import MPCShareOperator

__all__ = ["MPCAggregateOperator", "MPCComputeOperator", "MPCRevealOperator", "MPCShareOperator"]
