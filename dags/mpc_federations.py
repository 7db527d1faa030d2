"""Airflow DAG file: this party's federated MPC DAGs, one per federation spec it belongs to.

The party is named by the deployment (MPC_PARTY_ID); see mpc_federation.render for the
rest of its configuration. Parsing reads local files only: no network, Spark or MPyC.
"""

from mpc_federation.render import dags_for_party

globals().update(dags_for_party())
