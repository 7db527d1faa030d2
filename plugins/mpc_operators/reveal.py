"""MPCRevealOperator: reconstruct the result, on a recipient only."""

from __future__ import annotations

from typing import Any

from mpc_operators.base import MPCBaseOperator, final_errors


class MPCRevealOperator(MPCBaseOperator):
    """Gather the output shares sealed to this recipient, check they agree on the roster and on
    one polynomial, reconstruct the declared outputs, write a result record and return it
    as XCom. Only parties with the recipient role can run it.

    :param results_dir: local folder for result records (``<computation>/<run>/result.json``).
    """

    template_fields = (*MPCBaseOperator.template_fields, "results_dir")
    ui_color = "#dff2d9"

    def __init__(self, *, results_dir: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.results_dir = results_dir

    def execute(self, context: Any) -> dict:
        from mpc_federation import stages

        run = self.party_run(context)
        with final_errors():
            result = stages.reveal(run, self.results_dir)
        for name, output in result["outputs"].items():
            for label, exact in zip(output["labels"], output["exact"]):
                self.log.info("%s[%s] = %s", name, label, exact)
        return result
