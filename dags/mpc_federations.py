"""Airflow DAG file: this party's federated MPC DAGs, one per federation spec it belongs to.

The party is named by the deployment (``[mpc] party_id``; see ``mpc_operators.settings``).
Parsing reads local files only: no network, Spark or MPyC. A DAG file of your own can build
one federation's DAG with ``mpc_operators.dag.federation_dag`` and your DAG arguments.
"""

from mpc_operators.dag import party_dags

globals().update(party_dags())
