"""A recipient's report DAG, scheduled on the result asset that the ``reveal`` task emits.

An example of what a recipient builds on its results (a report, a dashboard refresh): the DAG runs
when a new result is revealed, takes the run from the asset event and the result record from the
reveal task's XCom, and logs one line per output and label (and returns them as its XCom).
"""

from __future__ import annotations

from mpc_operators.reveal import result_asset


def report_dag(computation: str):
    """The DAG ``<computation>_report``, scheduled on ``result_asset(computation)``."""
    from airflow.sdk import DAG, task

    with DAG(
        dag_id=f"{computation}_report",
        schedule=[result_asset(computation)],
        catchup=False,
        tags=["mpc", computation, "report"],
        doc_md=__doc__,
    ) as dag:

        @task
        def report(triggering_asset_events=None, ti=None) -> list[str]:
            lines = []
            for event in (triggering_asset_events or {}).get(result_asset(computation), []):
                result = ti.xcom_pull(dag_id=event.source_dag_id, run_id=event.source_run_id, task_ids="reveal")
                for name, output in (result or {}).get("outputs", {}).items():
                    for label, value in zip(output["labels"], output["exact"]):
                        lines.append(f"{result['run']} {name}[{label}] = {value}")
            for line in lines:
                print(line)
            return lines

        report()
    return dag
