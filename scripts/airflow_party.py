"""One party's Airflow deployed as a real one would be: separate processes on the CeleryExecutor.

Per party: ``airflow api-server``, ``scheduler``, ``dag-processor`` and ``triggerer`` (the control
plane: one Airflow home, its SQLite metadata database, the REST and execution APIs), and Celery
workers, each in a private folder of its own (its own AIRFLOW_HOME, HOME, TMPDIR, working
directory, Spark scratch space and ``[mpc] ledger_uri``), as if on hosts of their own. Workers
never open the metadata database: Airflow 3 workers reach it only through the API server's
execution API. The broker and the Celery result backend are one ``redis-server`` (per test)
started by :class:`Redis` on a free loopback port, one Redis database number per party.

A compute party's ``compute`` task goes to the queue ``[mpc] compute_queue`` (here
``mpc-compute-<party>``): the worker at the party's MPC endpoint listens on it alone, and a
second worker takes the default queue (aggregate, share, the sensors, reveal). Every worker
names itself in task instance records (``hostname``) through :func:`worker_hostname`. Workers
run with ``--skip-serve-logs`` (two log servers on one host would share a port): their task logs
stay in their own folders, where a test reads them; the UI cannot fetch them.

Used by tests/test_celery_night.py; the pieces of a local federation (S3 server, keys, spec,
party environment) come from localnet, the REST API client and process cleanup from testbed.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from localnet import REPO, VENV_BIN, LocalParty, free_ports

try:  # the testbed in small modules
    from testbed_api import PartyAPI
    from testbed_party import LEAN_SETTINGS
    from testbed_procs import party_processes, terminate
except ImportError:  # the testbed in one module
    from testbed import LEAN_SETTINGS, PartyAPI, party_processes, terminate

HOSTNAME_VARIABLE = "MPC_WORKER_HOSTNAME"
CONTROL_PLANE = ("api-server", "scheduler", "dag-processor", "triggerer")


def worker_hostname() -> str:
    """``[core] hostname_callable`` of the harness's workers: the name the worker was given
    (``MPC_WORKER_HOSTNAME``), so task instance records say which worker ran a task although all
    run on one machine; the machine's name elsewhere."""
    return os.environ.get(HOSTNAME_VARIABLE) or socket.getfqdn()


@dataclass
class Redis:
    """A ``redis-server`` on a free loopback port, without persistence, started and stopped by us.

    :param root: folder for its log (and its working directory).
    """

    root: Path
    port: int = field(default_factory=lambda: free_ports(1)[0])
    proc: subprocess.Popen | None = None

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self, timeout: float = 20) -> Redis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (scripts/setup_system.sh installs it)")
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "redis.log", "ab") as log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.root),
                    "--databases",
                    "32",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited; see {self.root / 'redis.log'}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout} s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            terminate({self.proc.pid}, grace=10)


@dataclass
class Worker:
    """One Celery worker of a party, in a private folder.

    :param name: its Celery hostname, and the ``hostname`` of the task instances it runs.
    :param queues: the Airflow queues it consumes.
    :param folder: its private folder: AIRFLOW_HOME, HOME, TMPDIR, working directory, ledger.
    """

    name: str
    queues: list[str]
    folder: Path
    proc: subprocess.Popen | None = None

    @property
    def airflow_home(self) -> Path:
        return self.folder / "airflow"

    @property
    def log(self) -> Path:
        return self.folder / "worker.log"


@dataclass
class PartyDeployment:
    """A party's Airflow as separate processes on the CeleryExecutor (see the module docstring).

    :param party: the party (home, spec, data, keys, S3 server) from localnet.
    :param redis: the broker and result backend.
    :param redis_db: this party's Redis database number (another party's tasks never reach it).
    :param compute_queue: ``[mpc] compute_queue``; a compute party's first worker listens on it
        alone. Empty: one worker per entry of ``workers`` on the default queue.
    :param workers: how many Celery workers (at least two for a compute party).
    """

    party: LocalParty
    redis: Redis
    redis_db: int
    compute_queue: str = ""
    workers: int = 2
    api_port: int = 0
    trigger_log_port: int = 0
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    worker_list: list[Worker] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.api_port:
            self.api_port, self.trigger_log_port = free_ports(2)
        default = "default"
        queues = [[self.compute_queue]] if self.compute_queue else []
        queues += [[default]] * (self.workers - len(queues))
        self.worker_list = [
            Worker(f"{self.party.id}-w{i}", q, self.party.home / "workers" / f"w{i}") for i, q in enumerate(queues)
        ]

    # -- environments -------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def airflow_home(self) -> Path:
        return self.party.home / "airflow"

    def env(self) -> dict[str, str]:
        """The control plane's environment: the party's (localnet), on Celery, with its ``[mpc]`` settings."""
        env = self.party.env()
        env.update(LEAN_SETTINGS)
        env.update(
            {
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CELERY__BROKER_URL": self.redis.url(self.redis_db),
                "AIRFLOW__CELERY__RESULT_BACKEND": self.redis.url(self.redis_db),
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": "1",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__API_AUTH__JWT_SECRET": self.jwt_secret,
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.trigger_log_port),
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # runs start only when triggered
                "AIRFLOW__MPC__PARTY_ID": self.party.id,
                "AIRFLOW__MPC__SPEC_DIR": str(self.party.spec_dir),
                "AIRFLOW__MPC__DATA_URI": str(self.party.data_dir),
                "AIRFLOW__MPC__COMPUTE_QUEUE": self.compute_queue,
                "AIRFLOW__MPC__RESULTS_URI": "",  # the result is the reveal task's XCom only
                "AIRFLOW__MPC__AGGREGATE_URI": "",  # the aggregate is the aggregate task's XCom
                "AIRFLOW__MPC__ALLOW_TEST_KEYS": str(self.party.allow_test_keys),
            }
        )
        return env

    def worker_env(self, worker: Worker) -> dict[str, str]:
        """A worker's environment: the control plane's settings, with everything local in its folder."""
        env = self.env()
        tmp = worker.folder / "tmp"
        env.update(
            {
                "AIRFLOW_HOME": str(worker.airflow_home),
                "HOME": str(worker.folder),
                "TMPDIR": str(tmp),
                "SPARK_LOCAL_DIRS": str(tmp),
                "AIRFLOW__MPC__LEDGER_URI": str(worker.folder / "ledger"),
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{__name__}.worker_hostname",
                HOSTNAME_VARIABLE: worker.name,
                "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), str(REPO / "scripts")]),
            }
        )
        for key in ("AIRFLOW__API_AUTH__JWT_SECRET",):  # a worker holds no secret of the control plane
            env.pop(key)
        return env

    # -- processes ----------------------------------------------------------------------------------------
    def _spawn(self, name: str, args: list[str], env: dict[str, str], cwd: Path, log: Path) -> None:
        with open(log, "ab") as out:
            self.procs[name] = subprocess.Popen(
                [str(VENV_BIN / "airflow"), *args],
                env=env,
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start(self) -> PartyDeployment:
        """Start the control plane and the workers (the metadata database must be migrated:
        localnet.prepare_airflow_homes)."""
        env = self.env()
        for component in CONTROL_PLANE:
            self._spawn(component, [component], env, self.airflow_home, self.airflow_home / f"{component}.log")
        for worker in self.worker_list:
            for sub in ("airflow", "tmp", "work"):
                (worker.folder / sub).mkdir(parents=True, exist_ok=True)
            self._spawn(
                worker.name,
                [
                    "celery",
                    "worker",
                    "--celery-hostname",
                    worker.name,
                    "--queues",
                    ",".join(worker.queues),
                    "--concurrency",
                    "1",
                    "--skip-serve-logs",
                    "--without-gossip",
                    "--without-mingle",
                ],
                self.worker_env(worker),
                worker.folder,
                worker.log,
            )
        return self

    def check_alive(self) -> None:
        """:raises RuntimeError: naming a process of this party that exited, with its log's tail."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                worker = next((w for w in self.worker_list if w.name == name), None)
                log = worker.log if worker else self.airflow_home / f"{name}.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"{self.party.id}: airflow {name} exited ({proc.returncode}); {log}:\n{tail}")

    def entry(self) -> dict:
        """The party as testbed's REST helpers (PartyAPI, wait_ready, wait_runs) know it."""
        return {
            "id": self.party.id,
            "url": self.url,
            "airflow_home": str(self.airflow_home),
            "pid": self.procs["api-server"].pid if "api-server" in self.procs else None,
        }

    def api(self) -> PartyAPI:
        return PartyAPI(self.entry())

    def worker_ready(self, worker: Worker) -> bool:
        """The worker's Celery consumer is up (it logs ``<name> ready.``)."""
        return worker.log.exists() and f"{worker.name} ready." in worker.log.read_text(errors="replace")

    def stop(self) -> set[int]:
        """Stop every process of this party: each process group, then whatever still runs with one
        of the party's Airflow homes (task processes, Spark and MPyC have sessions of their own).
        Returns the pids that survived."""
        homes = [self.airflow_home, *(w.airflow_home for w in self.worker_list)]
        tracked = {pid for home in homes for pid in party_processes(home)}
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, 15)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(p.poll() is None for p in self.procs.values()):
            time.sleep(0.3)
        for proc in self.procs.values():
            try:
                os.killpg(proc.pid, 9)
            except ProcessLookupError:
                pass
            proc.wait()
        left = tracked | {pid for home in homes for pid in party_processes(home)}
        return terminate(left, grace=5) if left else set()
