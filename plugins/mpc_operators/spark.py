"""The Spark secret of an oblivious local stage, for MPCAggregateOperator(oblivious=True).

``aggregation.oblivious: true`` in a federation spec runs the job with ``--oblivious`` and Spark's
own encryption of shuffle files and RPC (``spark.io.encryption.enabled``,
``spark.network.crypto.enabled``, ``spark.authenticate``; docs/oblivious.md). On a cluster,
``spark.authenticate`` needs a shared secret: it is the password of the party's Airflow
connection ``mpc_spark_secret`` (or its secrets backend), read here **at execution time** only,
never at DAG parse time and never in a template, so it is in no rendered field and no DAG file.

It reaches spark-submit in a properties file readable by the task's user only (mode 0600, in a
private temporary folder removed when the task ends), not on the command line (where ``ps`` on
a shared host would show it), and is registered with Airflow's secrets masker, so no task log
line shows it. Spark redacts ``*secret*`` properties in its own UI and event log. A
``--properties-file`` replaces spark-defaults.conf, so the file starts with a copy of the
party's spark-defaults.conf (``$SPARK_CONF_DIR`` or ``$SPARK_HOME/conf``), if any.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from airflow.sdk.exceptions import AirflowFailException

SPARK_SECRET_CONN_ID = "mpc_spark_secret"
MIN_SECRET_CHARS = 16


def spark_defaults_text(env: Mapping[str, str] | None = None) -> str:
    """The text of the spark-defaults.conf spark-submit would read without --properties-file."""
    environ: Mapping[str, str] = os.environ if env is None else env
    folders = [environ.get("SPARK_CONF_DIR")]
    if environ.get("SPARK_HOME"):
        folders.append(os.path.join(environ["SPARK_HOME"], "conf"))
    for folder in filter(None, folders):
        path = os.path.join(folder, "spark-defaults.conf")
        if os.path.isfile(path):
            with open(path) as f:
                text = f.read()
            return text if text.endswith("\n") or not text else text + "\n"
    return ""


def check_secret(secret: str | None, conn_id: str) -> str:
    """The secret as Spark will read it from a properties file; refuse one unfit for that.

    :raises AirflowFailException: missing, too short, or with whitespace or control characters
    """
    if not secret:
        raise AirflowFailException(
            f"oblivious local stage: connection {conn_id!r} has no password; it must hold "
            f"the Spark authentication secret (spark.authenticate.secret)"
        )
    if len(secret) < MIN_SECRET_CHARS or any(c.isspace() or not c.isprintable() for c in secret):
        raise AirflowFailException(
            f"oblivious local stage: the password of connection {conn_id!r} must be at "
            f"least {MIN_SECRET_CHARS} printable characters without spaces"
        )
    return secret


def write_secret_properties(folder: str, secret: str, defaults: str = "") -> str:
    """Write ``folder/spark-auth.properties`` (mode 0600): the defaults, then the secret.

    Java properties escaping: a backslash is written as two.
    """
    path = os.path.join(folder, "spark-auth.properties")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(defaults)
        f.write("spark.authenticate.secret " + secret.replace("\\", "\\\\") + "\n")
    return path


@contextmanager
def secret_properties(secret_conn_id: str = SPARK_SECRET_CONN_ID) -> Iterator[str]:
    """The path of a private properties file (0600, in a 0700 folder) holding the party's
    spark-defaults.conf and ``spark.authenticate.secret`` from ``secret_conn_id``; removed on exit.

    Reads the connection here, at execution time, and registers the secret with the masker.

    :raises AirflowFailException: the connection is missing, or its password is unfit
    """
    from airflow.sdk import BaseHook
    from airflow.sdk.log import mask_secret

    try:
        password = BaseHook.get_connection(secret_conn_id).password
    except Exception as e:  # noqa: BLE001 - AirflowNotFoundException, or a secrets backend error
        raise AirflowFailException(
            f"oblivious local stage: cannot read connection {secret_conn_id!r} "
            f"(the Spark authentication secret): {type(e).__name__}"
        ) from None
    secret = check_secret(password, secret_conn_id)
    mask_secret(secret)
    folder = tempfile.mkdtemp(prefix="mpc-spark-auth-")  # mode 0700
    try:
        yield write_secret_properties(folder, secret, spark_defaults_text())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
