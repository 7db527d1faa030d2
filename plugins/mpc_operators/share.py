"""MPCShareOperator: secret-share this party's local aggregate to the compute parties."""

from __future__ import annotations

from typing import Any

from mpc_operators.base import MPCBaseOperator, final_errors


class MPCShareOperator(MPCBaseOperator):
    """Check the local aggregate against the program's declared inputs, split it into Shamir
    shares and publish one sealed, signed object per compute party. The aggregate itself
    never leaves the party; nothing is uploaded if any check fails.

    :param aggregate_path: the aggregate file written by the local (Spark) stage.
    """

    template_fields = (*MPCBaseOperator.template_fields, "aggregate_path")
    ui_color = "#d9ecf2"

    def __init__(self, *, aggregate_path: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.aggregate_path = aggregate_path

    def execute(self, context: Any) -> dict:
        from mpc_federation import stages

        run = self.party_run(context)
        with final_errors():
            aggregate = stages.read_aggregate(self.aggregate_path)
            result = stages.share(run, aggregate)
        self.log.info("Run %s: %s", result["run"], result["status"])
        return result
