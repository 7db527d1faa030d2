"""The aggregate task against a real Spark standalone cluster: a master and two workers, started
here with pyspark's own ``spark-class``, each worker with its own work and local folders (so its
executors do not share the driver's working directory, as on a real cluster).

The taxi aggregation runs through MPCAggregateOperator on the cluster (client deploy mode: Spark
standalone runs no Python driver in cluster mode) with a ``file://`` input URI and the spec's
default Spark settings, and must equal the ``local[*]`` run of the same input exactly. An input that
fails on the executors fails the task with the job's own line naming the input, not a Java stack
trace: a file that is not Parquet, and (where this machine lets us make a mount namespace, as root
can) files the driver sees but the executors do not, as when the driver's host has a local folder
the cluster's nodes lack: the workers run with an empty tmpfs over that folder. The cluster is
stopped in a finalizer.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
JOBS = REPO / "include" / "jobs"
BIN = REPO / ".venv" / "bin"
MONTHS = ["2024-01", "2024-02", "2024-03"]
sys.path.insert(0, str(REPO / "scripts"))
from localnet import free_ports  # noqa: E402 - scripts/ is on sys.path from here on


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


taxi = _load(REPO / "include" / "datagen" / "taxi_trips.py", "taxi_trips_cluster")


def _spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def _wait_for(log: Path, text: str, proc: subprocess.Popen, timeout: float = 240) -> None:
    """Wait until ``text`` appears in ``log`` (fail at once if the process died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            pytest.fail(f"{log.name}: the process ended ({proc.returncode}):\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    pytest.fail(f"{log.name}: no {text!r} after {timeout} s:\n{log.read_text()[-3000:]}")


def _stop(procs: list[subprocess.Popen]) -> None:
    """Stop the daemons and their executors (each daemon leads its own process group)."""
    for proc in reversed(procs):
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in reversed(procs):
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, request):
    """spark://127.0.0.1:PORT with two workers of 2 cores and 2 GiB each, own folders each."""
    root = tmp_path_factory.mktemp("cluster")
    home = _spark_home()
    master_port, master_ui, *worker_uis = free_ports(4)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "PYSPARK_"))}
    env.update(
        SPARK_HOME=str(home),
        SPARK_LOCAL_IP="127.0.0.1",
        PYSPARK_PYTHON=sys.executable,
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        SPARK_LOG_DIR=str(root / "logs"),
        SPARK_MASTER_OPTS="-Dspark.master.rest.enabled=false",
    )
    spark_class = str(home / "bin" / "spark-class")
    procs: list[subprocess.Popen] = []
    request.addfinalizer(lambda: _stop(procs))
    # A folder the workers (so their executors) see empty: a tmpfs over it in their own mount namespace.
    hidden = root / "driver-only"
    hidden.mkdir()
    hide = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        'mount -t tmpfs mpc-test "$0" && exec "$@"',
        str(hidden),
    ]
    can_hide = (
        shutil.which("unshare") is not None
        and subprocess.run([*hide, "true"], check=False, capture_output=True).returncode == 0
    )
    hide = hide if can_hide else []

    def start(name: str, args: list[str], extra_env: dict[str, str], wrap=()) -> tuple[subprocess.Popen, Path]:
        log = root / f"{name}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [*wrap, "nice", "-n", "10", spark_class, *args],
                env={**env, **extra_env},
                cwd=root,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        procs.append(proc)
        return proc, log

    master = f"spark://127.0.0.1:{master_port}"
    proc, log = start(
        "master",
        [
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            str(master_port),
            "--webui-port",
            str(master_ui),
        ],
        {},
    )
    _wait_for(log, "I have been elected leader", proc)
    workers = []
    for i, ui in enumerate(worker_uis, 1):
        work, local = root / f"worker{i}" / "work", root / f"worker{i}" / "local"
        work.mkdir(parents=True)
        local.mkdir()
        workers.append(
            (
                work,
                *start(
                    f"worker{i}",
                    [
                        "org.apache.spark.deploy.worker.Worker",
                        "--host",
                        "127.0.0.1",
                        "--cores",
                        "2",
                        "--memory",
                        "2g",
                        "--webui-port",
                        str(ui),
                        "--work-dir",
                        str(work),
                        master,
                    ],
                    {"SPARK_WORKER_DIR": str(work), "SPARK_LOCAL_DIRS": str(local)},
                    hide,
                ),
            )
        )
    for _, proc, log in workers:
        _wait_for(log, "Successfully registered with master", proc)
    return {
        "master": master,
        "root": root,
        "work_dirs": [w for w, _, _ in workers],
        "hidden": hidden if can_hide else None,
    }


def _operator(conn_id: str, input_uri: str, **spark):
    from mpc_federation.spec import SparkSettings
    from mpc_operators.aggregate import JOB_MODULE, MPCAggregateOperator, spark_arguments

    return MPCAggregateOperator(
        task_id="aggregate",
        application=str(JOBS / "taxi_revenue.py"),
        conn_id=conn_id,
        name="taxi_hhi-company_a",
        computation="taxi_hhi",
        party_id="company_a",
        run_key="20240401",
        py_files=str(JOB_MODULE),
        application_args=["--input", input_uri, "--party", "company_a", "--months", ",".join(MONTHS)],
        **spark_arguments(SparkSettings(executor_cores=1, executor_memory="512m", **spark)),
    )


def _run(task):
    try:
        return task.execute({})
    except Exception as e:  # noqa: BLE001 - the test looks at it
        return e


def test_cluster_aggregate_equals_local(cluster, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("PYSPARK_PYTHON", sys.executable)
    monkeypatch.setenv("PYSPARK_DRIVER_PYTHON", sys.executable)
    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")
    monkeypatch.delenv("SPARK_HOME", raising=False)
    for conn_id, host in (("spark_cluster", cluster["master"]), ("spark_local", "local[*]")):
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "spark", "host": host}))
    data = tmp_path / "data"
    taxi.generate(data, ["a"], 2000, seed=17, start=MONTHS[0], end=MONTHS[-1], rows_per_file=250, defects=True)
    trips = data / "a" / "trips"
    bad = tmp_path / "bad"
    bad.mkdir()
    for part in sorted(trips.iterdir())[:2]:
        (bad / part.name).write_bytes(part.read_bytes())
    (bad / "part-99999.parquet").write_text("not parquet at all\n")

    tasks = {
        "cluster": _operator("spark_cluster", trips.as_uri()),
        "local": _operator("spark_local", trips.as_uri()),
        "bad": _operator("spark_cluster", bad.as_uri(), cores_max=1, conf={"spark.task.maxFailures": "2"}),
    }
    if cluster["hidden"] is not None:  # files only the driver sees
        driver_only = cluster["hidden"] / "trips"
        shutil.copytree(trips, driver_only)
        tasks["unseen"] = _operator(
            "spark_cluster", driver_only.as_uri(), cores_max=1, conf={"spark.task.maxFailures": "2"}
        )
    with ThreadPoolExecutor(len(tasks)) as pool:
        done = dict(zip(tasks, pool.map(_run, tasks.values())))

    on_cluster, on_local = done["cluster"], done["local"]
    assert isinstance(on_cluster, dict), on_cluster
    assert on_cluster == on_local  # the same aggregate, stats included, to the cent
    reference = taxi.revenue_cents_by_month(data, "a", MONTHS)
    assert on_cluster["values"]["revenue_cents"] == [reference["all"], *(reference[m] for m in MONTHS)]
    assert on_cluster["stats"]["rows_read"] == 2000

    # The runs went to the cluster: both workers ran executors, each in its own work folder.
    executors = [d for work in cluster["work_dirs"] for app in work.iterdir() for d in app.iterdir()]
    assert {d.parents[1] for d in executors} == set(cluster["work_dirs"])
    assert all((d / "stderr").is_file() for d in executors)

    # The broken file failed on an executor; the task says so in the job's words.
    error = done["bad"]
    first = str(error).splitlines()[0]
    assert first.startswith(f"taxi_revenue: error: cannot read the input {bad.as_uri()}: "), str(error)[-3000:]
    assert "part-99999.parquet is not a Parquet file" in first and "\tat " not in first
    executor_logs = "".join((d / "stderr").read_text(errors="replace") for d in executors)
    assert "part-99999.parquet is not a Parquet file" in executor_logs

    # Files the driver sees and the executors do not: the same, naming the input and the file.
    if cluster["hidden"] is None:
        pytest.skip("no mount namespace here (unshare needs root): the driver-only input was not run")
    first = str(done["unseen"]).splitlines()[0]
    assert first.startswith(f"taxi_revenue: error: cannot read the input {driver_only.as_uri()}: "), first
    assert "does not exist" in first and "part-" in first and "\tat " not in first
