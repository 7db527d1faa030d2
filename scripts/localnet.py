"""A federation on one machine: a local S3 API server (moto), party keys, a rendered spec with
those keys and free ports, and one Airflow home with its own identity per party.

Used by the demo, the end-to-end tests and the local testbed. The S3 server and the proxy
listen on loopback only; MPyC binds its port on every interface (it takes no host for its own
entry), and accepts only peers that present the certificates pinned in the spec.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO / "plugins"))

from mpc_federation.envelope import PartyKeys  # noqa: E402


def test_keys(party: str) -> PartyKeys:
    """Keys for a local federation (demo, testbed, tests): marked as test keys, which a party's
    Airflow refuses unless its settings allow them (AIRFLOW__MPC__ALLOW_TEST_KEYS, LocalParty.settings)."""
    return PartyKeys.generate(party, test_only=True)


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """n distinct free loopback ports (all held open while choosing, so two picks never collide)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


S3_KINDS = ("moto", "rclone")


@dataclass
class S3Server:
    """A local S3 API server on loopback, started and stopped by us.

    :param kind: ``moto`` (default) or ``rclone`` (``rclone serve s3`` over a folder); the tests'
        switch is the environment variable ``MPC_TEST_S3``. rclone ignores conditional writes, so its
        connection opts in to ``conditional_writes: emulated`` (docs/stores.md).
    """

    root: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    kind: str = field(default_factory=lambda: os.environ.get("MPC_TEST_S3") or "moto")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def conditional_writes(self) -> str:
        return "emulated" if self.kind == "rclone" else "required"

    def _command(self) -> list[str]:
        if self.kind == "moto":
            return [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)]
        if self.kind == "rclone":
            data = self.root / "rclone-data"
            data.mkdir(parents=True, exist_ok=True)
            return [
                str(VENV_BIN / "rclone"),
                "serve",
                "s3",
                "--config",
                "",
                "--auth-key",
                "testing,testing",
                "--addr",
                f"127.0.0.1:{self.port}",
                str(data),
            ]
        raise ValueError(f"unknown S3 server kind {self.kind!r}; expected one of {', '.join(S3_KINDS)}")

    def _answers(self) -> bool:
        if self.kind == "moto":
            urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1)
            return True
        with socket.create_connection(("127.0.0.1", self.port), timeout=1):
            return True

    def start(self, timeout: float = 30) -> S3Server:
        self.root.mkdir(parents=True, exist_ok=True)
        log = open(self.root / "s3-server.log", "ab")
        self.proc = subprocess.Popen(self._command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self._answers():
                    return self
            except OSError as exc:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the {self.kind} S3 server exited; see {self.root / 's3-server.log'}") from exc
                time.sleep(0.2)
        raise RuntimeError(f"the {self.kind} S3 server did not answer on {self.url} within {timeout} s")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def connection(self) -> dict:
        """The ``mpc_coordination`` connection (JSON form, type ``aws``) for this server."""
        extra: dict = {"endpoint_url": self.url, "region_name": "us-east-1"}
        if self.conditional_writes != "required":
            extra["conditional_writes"] = self.conditional_writes
        return {"conn_type": "aws", "login": "testing", "password": "testing", "extra": extra}

    def s3a_settings(self) -> dict:
        """The same server as Hadoop's s3a settings (what a party puts in spark-defaults.conf, with
        ``spark.hadoop.`` before each name): the taxi job's arrow engine reads ``s3a://`` with them."""
        keys = {"fs.s3a.access.key": "testing", "fs.s3a.secret.key": "testing"}
        return {"fs.s3a.endpoint": self.url, "fs.s3a.path.style.access": "true", **keys}

    def spark_conf(self) -> dict:
        """The s3a settings as Spark conf (``spark.hadoop.`` before each name): for ``--conf`` or
        spark-defaults.conf."""
        return {f"spark.hadoop.{key}": value for key, value in self.s3a_settings().items()}

    def store_config(self, bucket: str):
        """The same store from plain values (tests and benchmarks without Airflow)."""
        from mpc_federation.store import StoreConfig

        return StoreConfig(
            bucket=bucket,
            endpoint_url=self.url,
            region_name="us-east-1",
            access_key="testing",
            secret_key="testing",
            conditional_writes=self.conditional_writes,
        )


def render_spec(
    template: Path,
    out_dir: Path,
    keys: dict[str, PartyKeys],
    *,
    parties: list[dict] | None = None,
    overrides: dict | None = None,
) -> Path:
    """Copy a spec with absolute file paths, free MPyC ports and every party's public keys."""
    raw = yaml.safe_load(template.read_text())
    raw["program"]["file"] = str((template.parent / raw["program"]["file"]).resolve())
    if "job" in raw.get("aggregation", {}):
        raw["aggregation"]["job"] = str((template.parent / raw["aggregation"]["job"]).resolve())
    if parties is not None:
        raw["parties"] = parties
    computes = [p["id"] for p in raw["parties"] if "compute" in p["roles"]]
    ports = iter(free_ports(len(computes)))
    for party in raw["parties"]:
        if "compute" in party["roles"]:
            party["endpoint"] = f"127.0.0.1:{next(ports)}"
        if party["id"] in keys:
            index = computes.index(party["id"]) if party["id"] in computes else None
            party["keys"] = keys[party["id"]].public_entry(index)
    raw.update(overrides or {})
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / template.name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def outside_environ() -> dict[str, str]:
    """This process's environment without any Airflow or MPC setting (a party gets only its own),
    with the project's virtualenv first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MPC_"))}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


@dataclass
class LocalParty:
    """One party's Airflow home and environment: the one builder of a local party's settings (the
    demo, the tests and the testbed use it; infra/scripts/bootstrap_party.sh writes the same names
    on an EC2 host)."""

    id: str
    home: Path
    spec_dir: Path
    data_dir: Path
    keys: PartyKeys
    s3: S3Server
    spark_master: str = "local[*]"
    allow_test_keys: bool = True  # a local federation runs on test keys; a production party never sets this

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    @property
    def work_dir(self) -> Path:
        return self.home / "work"

    def settings(self) -> dict[str, str]:
        """The party's configuration without its secrets: Airflow's folders, the ``[mpc]`` section
        (``AIRFLOW__MPC__*``, see plugins/mpc_operators/settings.py) and the Spark connection."""
        settings = {
            "AIRFLOW_HOME": str(self.airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True",  # the sensors wait in the triggerer
            "AIRFLOW__MPC__PARTY_ID": self.id,
            "AIRFLOW__MPC__SPEC_DIR": str(self.spec_dir),
            "AIRFLOW__MPC__DATA_URI": str(self.data_dir),
            "AIRFLOW__MPC__LEDGER_URI": str(self.work_dir / "ledger"),
            "AIRFLOW__MPC__RESULTS_URI": str(self.work_dir),
            "AIRFLOW__MPC__ALLOW_TEST_KEYS": str(self.allow_test_keys),
            "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps({"conn_type": "spark", "host": self.spark_master}),
            "PYSPARK_PYTHON": sys.executable,
            "PYTHONPATH": str(REPO / "plugins"),
        }
        return settings

    def connections(self) -> dict[str, str]:
        """The party's secret connections: the coordination bucket and its own keys."""
        return {
            "AIRFLOW_CONN_MPC_COORDINATION": json.dumps(self.s3.connection()),
            "AIRFLOW_CONN_MPC_PARTY_KEYS": json.dumps({"conn_type": "generic", "password": self.keys.to_json()}),
        }

    def env(self) -> dict[str, str]:
        """The whole environment of a process of this party (``airflow dags test``, the demo)."""
        return {**outside_environ(), **self.settings(), **self.connections()}


def prepare_airflow_homes(parties: list[LocalParty], template_home: Path) -> None:
    """Migrate one metadata database and copy it to every party (much faster than N migrations)."""
    template_db = template_home / "airflow.db"
    if not template_db.exists():
        template_home.mkdir(parents=True, exist_ok=True)
        env = {**parties[0].env(), "AIRFLOW_HOME": str(template_home)}
        subprocess.run(
            [str(VENV_BIN / "airflow"), "db", "migrate"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    for party in parties:
        home = party.airflow_home
        home.mkdir(parents=True, exist_ok=True)
        if not (home / "airflow.db").exists():
            shutil.copy(template_db, home / "airflow.db")
        party.work_dir.mkdir(parents=True, exist_ok=True)


def run_dags_test(
    parties: list[LocalParty], dag_id: str, date: str, timeout: float, *, airflow: list[str] | None = None, env_of=None
) -> dict[str, int]:
    """``airflow dags test`` for every party at once (log: ``<home>/dags-test-<date>.log``); returns
    each party's exit code.

    :param airflow: the command that runs Airflow's CLI (default: this project's venv).
    :param env_of: a party's environment (default: ``LocalParty.env``).
    """
    procs = {}
    for party in parties:
        log = open(party.home / f"dags-test-{date}.log", "wb")
        procs[party.id] = (
            subprocess.Popen(
                [*(airflow or [str(VENV_BIN / "airflow")]), "dags", "test", dag_id, date],
                env=(env_of or LocalParty.env)(party),
                cwd=party.home,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            ),
            log,
        )
    deadline = time.monotonic() + timeout
    codes = {}
    for pid, (proc, log) in procs.items():
        try:
            codes[pid] = proc.wait(max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            codes[pid] = proc.wait()
        log.close()
    return codes


def metadata(party: LocalParty, sql: str, *args) -> list[tuple]:
    """Rows of a query on the party's own Airflow metadata database (SQLite, read-only)."""
    import sqlite3

    db = sqlite3.connect(f"file:{party.airflow_home / 'airflow.db'}?mode=ro", uri=True)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def xcom(party: LocalParty, dag_id: str, task_id: str):
    """The newest ``return_value`` XCom of a task in the party's Airflow (what the task handed on)."""
    rows = metadata(
        party,
        "SELECT value FROM xcom WHERE dag_id = ? AND task_id = ? AND key = 'return_value' "
        "ORDER BY timestamp DESC LIMIT 1",
        dag_id,
        task_id,
    )
    return json.loads(rows[0][0]) if rows else None


class TcpProxy:
    """A loopback TCP forwarder that can make its target unreachable for a while (fault injection)."""

    def __init__(self, target_port: int, port: int | None = None):
        import threading

        self.target_port = target_port
        self.port = port or free_port()
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._server: socket.socket | None = None
        self._threading = threading

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TcpProxy:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self._server = server
        self._threading.Thread(target=self._accept, args=(server,), daemon=True).start()
        return self

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                self._threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        """Refuse new connections and drop open ones: the bucket is unreachable."""
        if self._server is not None:
            self._server.close()
            self._server = None
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()

    def restore(self) -> None:
        self.start()
