"""Airflow DAG file: a report DAG per federation this party receives results of, scheduled on the
result asset that the ``reveal`` task emits (``mpc_operators.reveal.result_asset``).

An example of what a recipient builds on its results (a report, a dashboard refresh): each DAG
runs when a new result is revealed, takes the run from the asset event and the result record from
the reveal task's XCom, and logs it as a table. Parties that receive no results get no DAG here.
"""

from mpc_federation.spec import party_specs
from mpc_operators.reveal import result_asset
from mpc_operators.settings import MPCSettings


def report_dag(computation: str):
    from airflow.sdk import DAG, task

    with DAG(dag_id=f"{computation}_report", schedule=[result_asset(computation)], catchup=False,
             tags=["mpc", computation, "report"], doc_md=__doc__) as dag:

        @task
        def report(triggering_asset_events=None, ti=None) -> list[str]:
            """One line per revealed output and label, for each result that triggered this run."""
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


_settings = MPCSettings.load(require_party=False)  # a missing party_id is reported by mpc_federations.py
for _spec in (party_specs(_settings.spec_dir, _settings.party_id) if _settings.party_id else {}).values():
    if _spec.party(_settings.party_id).has("recipient"):
        globals()[f"{_spec.computation}_report"] = report_dag(_spec.computation)
