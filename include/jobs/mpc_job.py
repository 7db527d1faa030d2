"""What every aggregation job of a federation shares: arguments, locations, the Spark session,
turning Spark's errors into one clear line, and writing the aggregate.

The jobs (taxi_revenue.py, payroll_sums.py, and any job written for the program library) import
this module. The Airflow aggregate task ships it with ``--py-files`` (mpc_operators.aggregate); a
job run alone through spark-submit finds it next to itself.

Locations are URIs passed to Spark unchanged: a local path, ``file:///data/trips``,
``s3a://bucket/trips``, ``hdfs://nn:8020/trips``, ... (never through pathlib, which would fold
``s3a://b`` into ``s3a:/b``). The aggregate is written by the driver: a local path atomically
(temporary file and rename), any other URI with fsspec (``fsspec.open(uri, "w")``; the scheme's
fsspec implementation, e.g. s3fs for ``s3a://``, must be installed where the driver runs).

Errors: bad arguments or bad data raise :class:`InputError`. An error Spark raises while reading
or aggregating (on the driver or on an executor: a file an executor cannot see or read, a file that
is not Parquet) becomes an InputError naming the input and Spark's own reason, in one line, instead
of a Java stack trace. :func:`main` prints that line on stderr as ``<job>: error: <message>`` and
exits with code 2.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
from urllib.parse import urlparse

FORMAT = "mpc-aggregate/1"  # mpc_federation.programs.AGGREGATE_FORMAT (jobs run where plugins are not)
_MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


class InputError(Exception):
    """Bad input or arguments: reported as one line, exit code 2."""


# --- arguments --------------------------------------------------------------------------


def parse_months(text: str) -> list[str]:
    """'2024-01,2024-02' -> ['2024-01', '2024-02'], in the given order.

    :param text: comma-separated 'YYYY-MM' months, no duplicates
    :raises InputError: if empty, malformed or duplicated
    """
    months = [m.strip() for m in (text or "").split(",") if m.strip()]
    if not months:
        raise InputError("--months is empty; give months like 2024-01,2024-02")
    bad = [m for m in months if not _MONTH_RE.match(m)]
    if bad:
        raise InputError(f"--months has malformed month {bad[0]!r}; expected YYYY-MM like 2024-01")
    dupes = sorted({m for m in months if months.count(m) > 1})
    if dupes:
        raise InputError(f"--months lists {dupes[0]} more than once")
    return months


def parse_party(text: str) -> str:
    """The party id as given (federation ids are names like 'company_a'); never empty."""
    if not text.strip():
        raise InputError("--party is empty")
    return text.strip()


def add_common_arguments(parser, engines: tuple[str, ...] = ("spark",)) -> None:
    """The arguments every aggregation job takes (the Airflow task passes them).

    :param engines: who may read the rows (``--engine``, the spec's ``aggregation.engine``): ``spark``
        (Spark SQL) first, and ``arrow`` (pyarrow in Spark's tasks, mpc_arrow.py) where the job has it
    """
    parser.add_argument(
        "--input", required=True, help="Parquet dataset: a local path or a URI (file://, s3a://, hdfs://)"
    )
    parser.add_argument("--output", required=True, help="JSON file to write: a local path or a URI")
    parser.add_argument("--party", required=True, help="party id, echoed in the output")
    parser.add_argument("--months", required=True, help="comma-separated YYYY-MM months")
    parser.add_argument(
        "--oblivious",
        action="store_true",
        help="aggregate through a padded, keyed, encrypted shuffle (include/jobs/mpc_oblivious.py)",
    )
    parser.add_argument(
        "--engine",
        choices=engines,
        default=engines[0],
        help="who reads the rows: spark (Spark SQL) or arrow (pyarrow in Spark's tasks; local files and S3)",
    )


# --- locations ----------------------------------------------------------------------------


def local_path(uri: str) -> str | None:
    """The local path of ``uri`` (a plain path or ``file:``), or None for any other scheme."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return parsed.path
    if parsed.scheme == "" or len(parsed.scheme) == 1:  # one letter: a Windows drive
        return uri
    return None


def check_locations(input_uri: str, output_uri: str) -> None:
    """Fail before starting Spark when a local input is missing or a local output is a folder.

    Only what the driver can see: an executor that cannot see the input fails later, through
    :func:`spark_errors`, with a message as clear.
    """
    local_input = local_path(input_uri)
    if local_input is not None and not os.path.exists(local_input):
        raise InputError(f"input path does not exist: {input_uri}")
    local_output = local_path(output_uri)
    if local_output is not None and os.path.isdir(local_output):
        raise InputError(f"output is a directory, expected a file path: {output_uri}")


def write_atomic(path: str, doc: dict) -> None:
    """Write JSON to a temp file next to ``path``, then rename: readers see old or new, never half."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes it owner-only; the folder decides who reads it (the Airflow task's is private)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_output(uri: str, doc: dict) -> None:
    """Write the aggregate to ``uri``: a local path atomically, any other URI with fsspec (an
    object store's put is all or nothing)."""
    path = local_path(uri)
    if path is not None:
        write_atomic(path, doc)
        return
    import fsspec

    try:
        with fsspec.open(uri, "w") as f:
            f.write(json.dumps(doc, indent=2) + "\n")
    except (ImportError, ValueError) as e:  # no fsspec implementation for the scheme
        raise InputError(f"cannot write the output {uri}: {e}") from None
    except OSError as e:
        raise InputError(f"cannot write the output {uri}: {type(e).__name__}: {e}") from None


# --- Spark ----------------------------------------------------------------------------------


def session(app_name: str, oblivious: bool, conf: dict[str, str] | None = None):
    """The job's SparkSession (no master: spark-submit's --master decides where it runs).

    :param app_name: e.g. ``taxi_revenue[company_a]``
    :param oblivious: add mpc_oblivious.SPARK_CONF (docs/oblivious.md)
    :param conf: the job's own settings
    """
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name).config("spark.ui.enabled", "false")
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    if oblivious:
        for key, value in oblivious_module().SPARK_CONF.items():
            builder = builder.config(key, value)
    spark = builder.getOrCreate()
    if not spark.sparkContext.getConf().contains("spark.log.level"):
        spark.sparkContext.setLogLevel("WARN")  # keep task logs readable unless the caller chose a level
    if oblivious:
        ship_module(spark, oblivious_module())
    return spark


def ship_module(spark, module) -> None:
    """Make a helper module (mpc_oblivious, mpc_arrow) importable on the executors unless
    spark-submit already ships it (``--py-files``), so that a job still runs alone."""
    path = os.path.abspath(module.__file__)
    shipped = spark.sparkContext.getConf().get("spark.submit.pyFiles", "") or ""
    if os.path.basename(path) not in {os.path.basename(p) for p in shipped.split(",") if p}:
        spark.sparkContext.addPyFile(path)


def helper_module(name: str):
    """A helper module of the jobs (include/jobs/NAME.py): shipped with --py-files, or found next
    to this file."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        sys.path.append(os.path.dirname(os.path.abspath(__file__)))
        return importlib.import_module(name)


def oblivious_module():
    """include/jobs/mpc_oblivious.py (docs/oblivious.md)."""
    return helper_module("mpc_oblivious")


def arrow_module():
    """include/jobs/mpc_arrow.py: the revenue job's ``--engine arrow``."""
    return helper_module("mpc_arrow")


def read_error(e, uri: str) -> InputError:
    """The InputError for Spark's AnalysisException on reading ``uri``."""
    cond = e.getCondition() or ""
    if cond == "UNABLE_TO_INFER_SCHEMA":
        return InputError(f"no Parquet data found in {uri}")
    if cond == "PATH_NOT_FOUND":
        return InputError(f"input path does not exist: {uri}")
    return InputError(f"cannot read Parquet at {uri}: {str(e).splitlines()[0]}")


_NOISE = re.compile(r"^(Job aborted due to stage failure: .*?most recent failure: .*?\): )")


def spark_reason(e: BaseException) -> str:
    """Spark's reason for a failed job in one line: the innermost cause of the Java exception
    (e.g. ``... is not a Parquet file``, ``File ... does not exist``), not its stack trace."""
    java = getattr(e, "java_exception", None)
    if java is None:
        text = str(e)
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return _NOISE.sub("", lines[0]) if lines else type(e).__name__
    messages = []
    seen = 0
    while java is not None and seen < 20:
        message = java.getMessage()
        if message:
            messages.append(str(message).splitlines()[0].strip())
        cause = java.getCause()
        java = None if cause is None or cause.equals(java) else cause
        seen += 1
    if not messages:
        return type(e).__name__
    return _NOISE.sub("", messages[-1])


@contextlib.contextmanager
def spark_errors(input_uri: str):
    """Turn any error Spark raises inside the block (driver or executor side) into one InputError
    naming the input; an InputError raised by the job itself passes unchanged."""
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    try:
        yield
    except InputError:
        raise
    except (Py4JError, PySparkException) as e:
        raise InputError(f"cannot read the input {input_uri}: {spark_reason(e)}") from None


# --- the job's main -------------------------------------------------------------------------


def report_error(prog: str, message: str) -> None:
    """Print ``<prog>: error: <message>`` on stderr: spark-submit's stderr when running under it.

    spark-submit merges the Python driver's stderr into its own *stdout*, so under spark-submit
    (PYSPARK_GATEWAY_PORT is set) the line goes through the JVM's System.err.
    """
    line = f"{prog}: error: {message}"
    if os.environ.get("PYSPARK_GATEWAY_PORT"):
        try:
            from pyspark import SparkContext

            SparkContext._ensure_initialized()  # connects to spark-submit's JVM; cheap, no Spark start
            err = SparkContext._jvm.java.lang.System.err
            err.println(line)
            err.flush()
            return
        except Exception:  # noqa: BLE001, S110 - never lose the message: fall back to our own stderr
            pass
    print(line, file=sys.stderr, flush=True)


def main(prog: str, run, args, done_lines) -> int:
    """Run a job: ``run(args)`` returns the document written; ``done_lines(doc)`` the lines to log.

    :return: the exit code (0, or 2 after one error line)
    """
    try:
        doc = run(args)
    except InputError as e:
        report_error(prog, str(e))
        return 2
    for line in done_lines(doc):
        print(line, flush=True)
    return 0
