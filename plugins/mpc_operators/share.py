"""MPCShareOperator: secret-share this party's local aggregate to the compute parties."""

from __future__ import annotations

import json
from typing import Any

from mpc_operators.base import MPCBaseOperator, final_errors


class MPCShareOperator(MPCBaseOperator):
    """Check the local aggregate against the program's declared inputs, split it into Shamir
    shares and publish one sealed, signed object per compute party. The aggregate itself
    never leaves the party; nothing is uploaded if any check fails.

    The aggregate is the XCom of ``aggregate_task_id`` (what ``MPCAggregateOperator`` returns),
    or, for a pipeline of your own, a JSON document at ``aggregate_uri``.

    :param aggregate_task_id: the task whose XCom ``return_value`` is the aggregate.
    :param aggregate_uri: read the aggregate from this location instead (a local path or an
        object-storage URI, through Airflow's ``ObjectStoragePath``).
    :param aggregate_conn_id: connection for ``aggregate_uri`` on an object store.
    """

    template_fields = (*MPCBaseOperator.template_fields, "aggregate_uri")
    ui_color = "#d9ecf2"

    def __init__(
        self,
        *,
        aggregate_task_id: str = "aggregate",
        aggregate_uri: str | None = None,
        aggregate_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.aggregate_task_id = aggregate_task_id
        self.aggregate_uri = aggregate_uri
        self.aggregate_conn_id = aggregate_conn_id

    def execute(self, context: Any) -> dict:
        from mpc_federation import stages

        run = self.party_run(context)
        with final_errors():
            result = stages.share(run, self.aggregate(context))
        self.log.info("Run %s: %s", result["run"], result["status"])
        return result

    def aggregate(self, context: Any) -> dict:
        """The local aggregate, from XCom or from ``aggregate_uri``."""
        from mpc_federation.stages import StageError

        if self.aggregate_uri:
            return read_document(self.aggregate_uri, self.aggregate_conn_id, what="aggregate")
        aggregate = context["ti"].xcom_pull(task_ids=self.aggregate_task_id)
        if not isinstance(aggregate, dict):
            raise StageError(
                f"no aggregate in the XCom of task {self.aggregate_task_id!r} (did the local "
                f"aggregation task run and return it?); got {type(aggregate).__name__}"
            )
        return aggregate


def read_document(uri: str, conn_id: str | None, *, what: str) -> dict:
    """A JSON document at a local path or an object-storage URI.

    :raises StageError: missing, or not JSON (the message names the location).
    """
    from airflow.sdk import ObjectStoragePath

    from mpc_federation.stages import StageError

    path = ObjectStoragePath(uri, conn_id=conn_id)
    if not path.is_file():
        raise StageError(f"{what} {uri} not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise StageError(f"{what} {uri} is not valid JSON: {exc}") from None
