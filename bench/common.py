"""What every benchmark section shares: paths, timers, Spark submission, the machine's load, and the
instruments around the real MPyC processes (peak RSS, bytes sent, optional cProfile).

Nothing here changes the protocol code: the instruments wrap ``mpc_federation.launcher`` from the
outside (the stages import ``run_mpc`` from that module at call time).
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
VENV_BIN = Path(sys.executable).parent
for _folder in (REPO / "plugins", REPO / "scripts", BENCH):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

TAXI_TEMPLATE = REPO / "include" / "federations" / "taxi_hhi.yaml"
TAXI_JOB = REPO / "include" / "jobs" / "taxi_revenue.py"
POOLED_JOB = BENCH / "jobs" / "pooled_hhi.py"
SCAN_JOB = BENCH / "jobs" / "scan_columns.py"  # Spark's floor: the taxi job's two columns, read once
ARROW_IN_SPARK_JOB = BENCH / "jobs" / "arrow_in_spark.py"  # the same sums, each task reading with pyarrow
MPC_ONLY_PROGRAM = BENCH / "programs" / "hhi_mpc_only.py"


def hhi_reference(columns: list[list[int]]) -> list[str | None]:
    """What the recipient must see for markets given as columns of the firms' revenues: the HHI
    program's own plaintext reference (rounded as declared, thin markets None), as strings."""
    from mpc_federation.programs import load_program

    reference = load_program(REPO / "include" / "programs" / "hhi.py").module
    hhi = reference.plaintext([{"revenue_cents": list(firm)} for firm in zip(*columns)])["hhi"]
    return [None if x is None else str(x) for x in hhi]


def datagen():
    from mpc_federation.programs import import_file

    return import_file(REPO / "include" / "datagen" / "taxi_trips.py")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- the machine -----------------------------------------------------------------------------------------
def load_average() -> tuple[float, float, float]:
    return tuple(round(x, 2) for x in os.getloadavg())


def machine_info() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    import psutil

    versions = {}
    for package in ("pyspark", "mpyc", "pyarrow", "apache-airflow", "gmpy2", "numpy"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "?"
    java = subprocess.run(["java", "-version"], capture_output=True, text=True)
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "java": (java.stderr or java.stdout).splitlines()[0] if (java.stderr or java.stdout) else "?",
        "versions": versions,
    }


@dataclass
class LoadLog:
    """The 1-minute load average at the start and end of every section (the machine is shared)."""

    entries: list[dict] = field(default_factory=list)
    after_section: Callable[[], None] | None = None  # e.g. save the results measured so far

    @contextmanager
    def section(self, name: str):
        start = load_average()
        t0 = time.monotonic()
        log(f"{name}: start (load {start[0]:.2f} {start[1]:.2f} {start[2]:.2f})")
        try:
            yield
        finally:
            end = load_average()
            self.entries.append(
                {"section": name, "load_start": start, "load_end": end, "seconds": round(time.monotonic() - t0, 1)}
            )
            log(f"{name}: done in {time.monotonic() - t0:.1f} s (load {end[0]:.2f})")
            if self.after_section is not None:
                self.after_section()


def wait_for_quiet(max_load: float, max_wait: float) -> float:
    """Wait (up to max_wait s) until the 1-minute load average is below max_load; returns it."""
    deadline = time.monotonic() + max_wait
    while True:
        now = os.getloadavg()[0]
        if now <= max_load or time.monotonic() >= deadline:
            return round(now, 2)
        log(f"load average {now:.2f} > {max_load}: waiting for a quieter machine")
        time.sleep(min(30.0, max(1.0, deadline - time.monotonic())))


# -- Spark ---------------------------------------------------------------------------------------------------
@dataclass
class SparkRun:
    seconds: float
    returncode: int
    output: str


def spark_submit(
    application: Path, args: list[str], master: str, log_file: Path | None = None, conf: dict | None = None
) -> SparkRun:
    """spark-submit as the DAG's SparkSubmitOperator does it (same conf, and ``conf`` besides), timed
    from the outside."""
    env = dict(
        os.environ,
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        PYSPARK_PYTHON=sys.executable,
        PYSPARK_DRIVER_PYTHON=sys.executable,
    )
    cmd = [
        str(VENV_BIN / "spark-submit"),
        "--master",
        master,
        "--conf",
        "spark.ui.enabled=false",
        "--conf",
        "spark.sql.session.timeZone=UTC",
        *[x for key, value in (conf or {}).items() for x in ("--conf", f"{key}={value}")],
        str(application),
        *args,
    ]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.monotonic() - t0
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log_file.write_text(proc.stdout)
    if proc.returncode != 0:
        raise RuntimeError(f"spark-submit {application.name} failed ({proc.returncode}):\n{proc.stdout[-3000:]}")
    return SparkRun(seconds, proc.returncode, proc.stdout)


# -- the MPyC processes ------------------------------------------------------------------------------------
_BYTES = re.compile(r"bytes sent: (\d+)")
_WORKER_TIMINGS = re.compile(
    r"timings connect=([\d.]+)s (?:idle=([\d.]+)s )?mpc=([\d.]+)s(?: checks=([\d.]+)s program=([\d.]+)s)?"
)


def parse_worker_log(text: str) -> dict:
    out = {}
    m = _BYTES.search(text)
    if m:
        out["bytes_sent"] = int(m.group(1))
    m = _WORKER_TIMINGS.search(text)
    if m:
        # connect: from the MPyC start to connected; idle: connected, waiting for the job
        out["worker_connect_s"], out["worker_mpc_s"] = float(m.group(1)), float(m.group(3))
        out["worker_idle_s"] = float(m.group(2) or 0)
        if m.group(4):  # the input checks inside the MPC, then the program (floors, rounding, output)
            out["worker_checks_s"], out["worker_program_s"] = float(m.group(4)), float(m.group(5))
    return out


def _hwm_kib(pid: int) -> int | None:
    """The kernel's peak RSS (VmHWM) of a live process, in KiB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class WorkerMonitor:
    """Polls this process's MPyC worker children (``-m mpc_federation.worker``): the peak RSS of each
    (the kernel's VmHWM, so short spikes between polls are not missed) keyed by its MPyC index, and
    its CPU time. The workers it knows are read every ``interval``; the process tree (which psutil
    finds by reading every process's ``/proc`` entry, CPU the measured run would otherwise lose) is
    searched for new ones every ``scan_interval``."""

    def __init__(self, interval: float = 0.02, scan_interval: float = 0.25):
        self.interval = interval
        self.scan_interval = scan_interval
        self.peak_kib: dict[int, int] = {}
        self.cpu_seconds: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._workers: dict = {}  # psutil.Process -> MPyC index
        self._seen: set[int] = set()
        self._own_cmdline: list[str] = []

    def __enter__(self) -> WorkerMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _scan(self, me) -> None:
        import psutil

        try:
            children = me.children(recursive=True)
        except psutil.Error:
            return
        for child in children:
            if child.pid in self._seen:
                continue
            try:
                cmd = child.cmdline()
                if cmd == self._own_cmdline:  # forked, not yet exec'd: look again at the next scan
                    continue
                self._seen.add(child.pid)
                if "mpc_federation.worker" in cmd:
                    self._workers[child] = int(cmd[cmd.index("-I") + 1])
            except (psutil.Error, ValueError, IndexError):
                continue

    def _loop(self) -> None:
        import psutil

        me, scanned = psutil.Process(), float("-inf")
        self._own_cmdline = me.cmdline()
        while not self._stop.is_set():
            if time.monotonic() - scanned >= self.scan_interval:
                self._scan(me)
                scanned = time.monotonic()
            for child, index in list(self._workers.items()):
                try:
                    hwm = _hwm_kib(child.pid)
                    if hwm is not None:
                        self.peak_kib[index] = max(self.peak_kib.get(index, 0), hwm)
                    times = child.cpu_times()
                    self.cpu_seconds[index] = max(self.cpu_seconds.get(index, 0.0), times.user + times.system)
                except psutil.Error:
                    del self._workers[child]  # exited
            self._stop.wait(self.interval)

    def peak_mib(self) -> dict[int, float]:
        return {i: round(k / 1024, 1) for i, k in sorted(self.peak_kib.items())}


class MPCRecorder:
    """Wraps ``launcher.MPCProcess.run`` to keep every compute party's MPCResult (log tail: bytes sent,
    the worker's own timings). With ``profile_dir``, each worker runs under cProfile (``-m cProfile -o``)."""

    def __init__(self, profile_dir: Path | None = None):
        self.profile_dir = profile_dir
        self.results: dict[int, dict] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> MPCRecorder:
        from mpc_federation import launcher

        self._launcher = launcher
        self._run, self._spawn = launcher.MPCProcess.run, launcher._spawn
        recorder = self

        def run(process, job, **kwargs):
            t0 = time.monotonic()
            result = recorder._run(process, job, **kwargs)
            t1 = time.monotonic()
            with recorder._lock:
                recorder.results[job.party_index] = {
                    "launcher_connect_s": result.connect_seconds,
                    "launcher_total_s": result.total_seconds,
                    "wall_s": t1 - t0,
                    "started_at": process.started,
                    "launched_at": t0,
                    "finished_at": t1,
                    **parse_worker_log(result.log_tail),
                }
            return result

        def spawn(cmd, *args, **kwargs):
            if recorder.profile_dir is not None:
                index = cmd[cmd.index("-I") + 1]
                recorder.profile_dir.mkdir(parents=True, exist_ok=True)
                out = recorder.profile_dir / f"worker-{index}.prof"
                pos = cmd.index("-m")
                cmd = [*cmd[:pos], "-m", "cProfile", "-o", str(out), *cmd[pos:]]
            return recorder._spawn(cmd, *args, **kwargs)

        launcher.MPCProcess.run = run
        launcher._spawn = spawn
        return self

    def __exit__(self, *exc) -> None:
        self._launcher.MPCProcess.run = self._run
        self._launcher._spawn = self._spawn


def profile_summary(path: Path, limit: int = 18) -> str:
    """The top functions of a cProfile file by cumulative and by own time, as text."""
    import io
    import pstats

    buf = io.StringIO()
    stats = pstats.Stats(str(path), stream=buf)
    stats.strip_dirs().sort_stats("cumulative").print_stats(limit)
    stats.sort_stats("tottime").print_stats(limit)
    return buf.getvalue()


def all_at_once(target: Callable, calls: list[tuple]) -> float:
    """``target(*args)`` for every ``args`` of ``calls``, each in a thread of its own, all at once (as the
    parties run); returns the wall seconds until the last one ended.

    :param target: catches its own exceptions (the threads' are not collected).
    """
    threads = [threading.Thread(target=target, args=args) for args in calls]
    t0 = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return time.monotonic() - t0


def fmt_s(seconds: float | None, digits: int = 2) -> str:
    return "–" if seconds is None else f"{seconds:,.{digits}f}"


def request_kind(operation: str) -> str:
    """An S3 call's kind in the reports: LIST, GET (GetObject, HeadObject), PUT, else its name."""
    for prefix, kind in (("List", "LIST"), ("Get", "GET"), ("Head", "GET"), ("Put", "PUT")):
        if operation.startswith(prefix):
            return kind
    return operation


class S3Requests:
    """Counts S3 calls by kind (``request_kind``), from botocore's ``before-call`` event.

    By default every call of every boto3 client created after ``__enter__`` counts, under "all".
    With ``per_reader``, the calls of each read-only ``RunReader`` created meanwhile (a trigger's or
    a sensor's) count under the party it reads for.
    ``snapshot()`` returns the counts so far by party; ``since(snapshot)`` the counts after it."""

    def __init__(self, *, per_reader: bool = False):
        self.per_reader = per_reader
        self.counts: dict[str, Counter] = defaultdict(Counter)
        self._lock = threading.Lock()

    def _hook(self, party: str):
        def count(model, **_):
            with self._lock:
                self.counts[party][request_kind(model.name)] += 1

        return count

    def __enter__(self) -> S3Requests:
        if not self.per_reader:
            import boto3

            self._events = boto3._get_default_session().events
            self._events.register("before-call.s3", self._hook("all"), unique_id="bench-s3-requests")
            return self
        from mpc_federation import channel

        self._init = init = channel.RunReader.__init__

        def counted_init(reader, spec, run, store, viewer=None):
            init(reader, spec, run, store, viewer)
            if type(reader) is channel.RunReader and viewer is not None:
                for client in store.clients():
                    client.meta.events.register("before-call.s3", self._hook(viewer))

        channel.RunReader.__init__ = counted_init
        return self

    def __exit__(self, *exc) -> None:
        if not self.per_reader:
            self._events.unregister("before-call.s3", unique_id="bench-s3-requests")
            return
        from mpc_federation import channel

        channel.RunReader.__init__ = self._init

    def snapshot(self) -> dict[str, Counter]:
        with self._lock:
            return {party: Counter(c) for party, c in self.counts.items()}

    def since(self, snapshot: dict[str, Counter], party: str = "all") -> dict[str, int]:
        """The calls of ``party`` after ``snapshot``, by kind."""
        now, before = self.snapshot().get(party, Counter()), snapshot.get(party, Counter())
        return {k: now[k] - before[k] for k in sorted(now) if now[k] - before[k]}
