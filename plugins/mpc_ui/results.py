"""This party's revealed results, read the way the tasks hand them over: the ``reveal`` task's
XCom (``return_value``) in Airflow's metadata database, one per DAG run of the computation's DAG
(its id is the computation). Nothing is read from a results folder.

A record is what ``mpc_federation.stages.reveal`` returns: ``computation``, ``run``,
``attempt``, ``roster``, ``compute_parties`` and ``outputs`` ({name: {labels, exact, value,
decimals}}, a suppressed or withheld cell None).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from mpc_federation.layout import run_key

REVEAL_TASK = "reveal"
CSV_COLUMNS = ("computation", "run", "logical_date", "dag_run_id", "attempt", "output", "label", "value", "exact")


@dataclass(frozen=True)
class Revealed:
    """One revealed result: the record, and the DAG run whose reveal task returned it."""

    computation: str
    run: str
    logical_date: datetime
    dag_run_id: str
    record: dict

    @property
    def outputs(self) -> dict[str, dict]:
        outputs = self.record.get("outputs")
        return outputs if isinstance(outputs, dict) else {}


def revealed(dag_ids: Iterable[str], session=None) -> list[Revealed]:
    """Every revealed result of these DAGs, oldest night first. Only the caller decides which
    DAGs a user may read: pass those only.

    :param session: a SQLAlchemy session of the metadata database (a new one if None).
    """
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    dag_ids = sorted(set(dag_ids))
    if not dag_ids:
        return []
    query = (
        select(XComModel.dag_id, XComModel.value, DagRun.run_id, DagRun.logical_date, DagRun.run_after)
        .join(DagRun, DagRun.id == XComModel.dag_run_id)
        .where(
            XComModel.dag_id.in_(dag_ids),
            XComModel.task_id == REVEAL_TASK,
            XComModel.key == "return_value",
            XComModel.map_index == -1,
        )
    )
    if session is None:
        with create_session() as own:
            rows = own.execute(query).all()
    else:
        rows = session.execute(query).all()
    out = []
    for row in rows:
        record = XComModel.deserialize_value(row)
        date = row.logical_date or row.run_after
        if not isinstance(record, dict) or record.get("computation") != row.dag_id or date is None:
            continue  # not a result record of this computation (e.g. a skipped reveal)
        if record.get("run") != run_key(date):
            continue  # a record of another night than its DAG run: never shown as this night's
        out.append(Revealed(row.dag_id, record["run"], date, row.run_id, record))
    return sorted(out, key=lambda r: (r.logical_date, r.computation))


def by_run(results: Iterable[Revealed], computation: str) -> dict[str, dict]:
    """{run key: record, with the DAG run it came from} of one computation (data.run_overview's input)."""
    return {r.run: {**r.record, "dag_run_id": r.dag_run_id} for r in results if r.computation == computation}


def trend(
    results: Iterable[Revealed], computation: str, output: str = "hhi"
) -> dict[str, list[tuple[datetime, float]]]:
    """{label (market): [(night, value), ...]} of one output over the nights, oldest first;
    suppressed cells are left out (a gap, never a zero)."""
    series: dict[str, list[tuple[datetime, float]]] = {}
    for r in results:
        if r.computation != computation or output not in r.outputs:
            continue
        cells = r.outputs[output]
        for label, value in zip(cells.get("labels", []), cells.get("value", [])):
            series.setdefault(str(label), [])
            if isinstance(value, (int, float)):
                series[str(label)].append((r.logical_date, float(value)))
    return {label: sorted(points) for label, points in series.items() if points}


def csv_text(results: Iterable[Revealed]) -> str:
    """Every cell of every result as CSV (one row per output label); suppressed cells are empty."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for r in results:
        for name, cells in r.outputs.items():
            labels, values, exact = cells.get("labels", []), cells.get("value", []), cells.get("exact", [])
            for i, label in enumerate(labels):
                value = values[i] if i < len(values) else None
                text = exact[i] if i < len(exact) else None
                writer.writerow(
                    [
                        r.computation,
                        r.run,
                        r.logical_date.isoformat(),
                        r.dag_run_id,
                        r.record.get("attempt", ""),
                        name,
                        label,
                        "" if value is None else value,
                        "" if text is None else text,
                    ]
                )
    return buffer.getvalue()
