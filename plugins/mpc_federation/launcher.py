"""Start one compute party's MPyC process with deadlines, and collect its output shares.

The process can start before its job is known (``start_mpc``): Python, MPyC and the program load
and the compute parties connect while the stage still fixes the roster and reads the shares; the
job then goes in through ``MPCProcess.run``. ``run_mpc`` does both at once.

MPyC retries connecting to its peers forever, so the launcher owns the clock: the peers must
connect within ``connect_timeout`` and the whole run must end within ``run_timeout``, or the
process group is killed and the caller gets an error that says which stage ran out of time.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mpc_federation.tls import write_mpyc_config
from mpc_federation.worker import CONNECTED, HUNG_UP, REFUSED

PLUGINS_DIR = Path(__file__).resolve().parents[1]
HUNG_UP_PATIENCE = 3.0  # s: how long to wait for the reason of a peer that hung up (it publishes it next)
_BYTES_SENT = re.compile(r"bytes sent: (\d+)")


class MPCRunError(RuntimeError):
    """The MPyC process failed or ran out of time."""


class MPCRefused(MPCRunError):
    """The compute parties refused the attempt inside the MPC (``reason`` says why); nothing was revealed."""

    def __init__(self, reason: str):
        super().__init__(f"refused by the compute parties: {reason}")
        self.reason = reason


@dataclass
class MPCJob:
    """Everything one compute party's MPyC process needs.

    :param program: path of the program module.
    :param party_index: this party's MPyC index (0-based, in the spec's order of compute parties).
    :param endpoints: host:port of every compute party, in that order.
    :param threshold: Shamir degree t, with 2t < number of compute parties.
    :param roster: included input parties, in the order the program sees them.
    :param shares: this party's shares: {input party: {"values": {input name: packed},
        "witness": {input name: packed}}}, as the input party packed them (``sharing.pack``; see
        ``witnesses``).
    :param dims: the run's dimension labels (to place withheld cells).
    :param session: what every compute party must agree on before computing (spec, program,
        run, attempt, roster); checked inside the MPC right after connecting.
    :param tls_key: PEM of this party's TLS key; with ``certificates`` turns on MPyC's mutual TLS.
    :param certificates: every compute party's pinned certificate, in order (None: plain TCP).
    :param agreement: this party's view (what it saw and will do), checked against every other
        compute party's view inside the MPC by ``mpc_federation.agreement.check``.
    :param names: the compute parties' ids, in MPyC party order (for reasons).
    :param withheld: ``[dimension, label]`` pairs whose outputs are withheld (revealed as 0,
        marked withheld): released before, see the disclosure ledger.
    :param bit_length: the ``SecInt`` of this federation (``SecureProgram.for_federation``); None:
        the program's own.
    """

    program: str
    party_index: int
    endpoints: list[str]
    threshold: int
    roster: list[str]
    shares: dict[str, dict[str, dict[str, str]]]
    input_lengths: dict[str, int]
    output_lengths: dict[str, int]
    dims: dict[str, list[str]]
    params: dict = field(default_factory=dict)
    session: str = ""
    tls_key: bytes | None = field(default=None, repr=False)
    certificates: list[str] | None = None
    agreement: dict = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    withheld: list[list[str | None]] = field(default_factory=list)
    bit_length: int | None = None

    @classmethod
    def for_program(cls, secure_program, dims: dict[str, list[str]], /, **fields) -> MPCJob:
        """A job whose input and output lengths and field are those of ``secure_program`` (a loaded
        ``SecureProgram``, maybe ``for_federation``; ``program`` in ``fields`` is its path) over the
        run's ``dims``."""
        lengths = {
            "input_lengths": secure_program.input_lengths(dims),
            "output_lengths": secure_program.output_lengths(dims),
        }
        if fields.setdefault("bit_length", secure_program.bit_length) != secure_program.bit_length:
            raise ValueError(
                f"a seat in SecInt({fields['bit_length']}) for a program in SecInt({secure_program.bit_length})"
            )
        return cls(**lengths, dims=dims, **fields)


@dataclass
class MPCResult:
    shares: list[int]
    connect_seconds: float  # from the job's hand-over until connected (0 if it was connected before)
    total_seconds: float  # from the job's hand-over to the output
    log_tail: str
    bytes_sent: int | None = None
    tls: bool = False  # MPyC reported its channels up over TLS


WORK_ROOT = Path(tempfile.gettempdir()) / f"mpc-federation-{os.getuid()}"
_LIVE: set[int] = set()  # process groups of MPyC processes this process started and has not reaped


def stop_all() -> None:
    """Kill every MPyC process this process started (the operator's ``on_kill``)."""
    for pgid in list(_LIVE):
        _kill_group(pgid)


def sweep_leftovers(root: Path = WORK_ROOT) -> list[Path]:
    """Remove what a killed launcher left behind: its MPyC process (if still running) and its
    working folder with the TLS private key and this party's shares. A folder belongs to a dead
    launcher when the process named in its name (``run-<pid>-...``) is gone."""
    import shutil

    import psutil

    removed = []
    for folder in sorted(root.glob("run-*")) if root.is_dir() else []:
        try:
            launcher = int(folder.name.split("-")[1])  # run-<launcher pid>-<random>
        except (IndexError, ValueError):
            launcher = -1
        if launcher > 0 and psutil.pid_exists(launcher):
            continue
        try:
            worker = int((folder / "worker.pid").read_text())
            if psutil.pid_exists(worker) and "mpc_federation.worker" in " ".join(psutil.Process(worker).cmdline()):
                _kill_group(worker)
        except (OSError, ValueError, psutil.Error):
            pass
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _LIVE.discard(pgid)


def run_mpc(job: MPCJob, **kwargs) -> MPCResult:
    """Start the MPyC process and run ``job`` on it (see ``MPCProcess.run`` for the arguments)."""
    with start_mpc(**seat_of(job)) as process:
        return process.run(job, **kwargs)


def start_mpc(
    *,
    program: str,
    party_index: int,
    endpoints: list[str],
    threshold: int,
    tls_key: bytes | None = None,
    certificates: list[str] | None = None,
    names: list[str] | tuple[str, ...] = (),
    bit_length: int | None = None,
) -> MPCProcess:
    """Start this party's MPyC process ahead of its job: it imports, loads the program in its
    federation's field (``bit_length``; None: the program's own), connects to the other compute
    parties and checks their certificates, then waits for the job on its standard input. Nothing
    of the run's data is in it until ``MPCProcess.run``; a stage that fails before that stops the
    process (use it as a context manager)."""
    sweep_leftovers()
    WORK_ROOT.mkdir(mode=0o700, exist_ok=True)
    folder = tempfile.TemporaryDirectory(prefix=f"run-{os.getpid()}-", dir=WORK_ROOT)
    work_dir = Path(folder.name)
    try:
        _write_private(
            work_dir / "seat.json",
            {"program": program, "names": list(names), "certificates": certificates, "bit_length": bit_length},
        )
        tls = tls_key is not None and certificates is not None
        if tls_key is not None and certificates is not None:
            write_mpyc_config(work_dir, party_index, tls_key, certificates)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(PLUGINS_DIR), os.environ.get("PYTHONPATH", "")]),
            "MPC_LAUNCHER_PID": str(os.getpid()),
        }
        proc = _spawn(_command(work_dir, party_index, endpoints, threshold, tls), work_dir, env)
    except BaseException:
        folder.cleanup()
        raise
    return MPCProcess(
        proc, folder, seat={"program": program, "party_index": party_index, "bit_length": bit_length, "tls": tls}
    )


# A compute party's seat, what its process needs before it connects (who it is, whom it talks to,
# and how): the parameters of ``start_mpc``, listed there only. ``computing.mpyc_seat`` builds a
# seat from a party's run, and ``computing.mpc_job`` builds the job from that seat.
SEAT_FIELDS = tuple(inspect.signature(start_mpc).parameters)


def seat_of(job: MPCJob) -> dict:
    """The seat of a job: the arguments of ``start_mpc`` that run it."""
    return {name: getattr(job, name) for name in SEAT_FIELDS}


def _command(work_dir: Path, party_index: int, endpoints: list[str], threshold: int, tls: bool) -> list[str]:
    """The worker's command line: its files, then MPyC's own options."""
    cmd = [sys.executable, "-m", "mpc_federation.worker"]
    cmd += ["--seat", str(work_dir / "seat.json"), "--job", str(work_dir / "job.json")]
    cmd += ["--out", str(work_dir / "out.json")]
    cmd += ["-M", str(len(endpoints)), "-I", str(party_index), "-T", str(threshold), "--log-level", "INFO"]
    cmd += ["--no-prss"]  # interactive randomness: about 40 % less CPU than PRSS here
    for i, endpoint in enumerate(endpoints):
        # MPyC marks its own entry by an empty host; it listens on its port on all interfaces.
        cmd += ["-P", f":{endpoint.rsplit(':', 1)[1]}" if i == party_index else endpoint]
    return cmd + ["--ssl"] if tls else cmd


def _spawn(cmd: list[str], cwd: Path, env: dict) -> subprocess.Popen:
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    _LIVE.add(proc.pid)
    (cwd / "worker.pid").write_text(str(proc.pid))
    return proc


def _write_private(path: Path, data: dict) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        _write_json(f, data, depth=2)


def _write_json(f, value, depth: int) -> None:
    """``json.dump(value, f)``, each piece ``depth`` levels down (a job's shares of one input party)
    encoded by one ``json.dumps``: ``json.dump`` runs the pure-Python encoder piece by piece, while
    one ``json.dumps`` of a whole job would hold all of its text (over 100 MB per input party at
    100,000 markets) at once."""
    if depth == 0 or not isinstance(value, dict):
        f.write(json.dumps(value))
        return
    f.write("{")
    for i, (key, item) in enumerate(value.items()):
        f.write((", " if i else "") + json.dumps(str(key)) + ": ")
        _write_json(f, item, depth - 1)
    f.write("}")


class MPCProcess:
    """One compute party's MPyC process, started by ``start_mpc`` and given its job by ``run``.

    Its working folder (0700: the TLS key, then this party's shares) is removed when the process
    is stopped; if this process is killed, the MPyC process dies with it and the next start removes
    the folder."""

    def __init__(self, proc: subprocess.Popen, folder: tempfile.TemporaryDirectory, seat: dict):
        self._proc = proc
        self._folder = folder
        self.work_dir = Path(folder.name)
        self.seat = seat
        self.started = time.monotonic()

    def __enter__(self) -> MPCProcess:
        return self

    def running(self) -> bool:
        """Whether the process has not exited (a process waiting for its job exits on a broken seat)."""
        return self._proc.poll() is None

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        """Kill the process group (if still running) and remove the working folder."""
        proc = self._proc
        try:
            if proc.poll() is None:
                _kill_group(proc.pid)
                proc.wait()
            _LIVE.discard(proc.pid)
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    try:
                        pipe.close()
                    except OSError:  # the worker is gone: a broken pipe has nothing left to flush
                        pass
        finally:
            self._folder.cleanup()

    def run(
        self,
        job: MPCJob,
        *,
        connect_timeout: float,
        run_timeout: float,
        stop_reason: Callable[[], str | None] | None = None,
        poll_seconds: float = 2.0,
    ) -> MPCResult:
        """Hand ``job`` to the process and supervise it to completion, or kill it at the first
        deadline it misses or as soon as ``stop_reason()`` (polled every ``poll_seconds``) gives a
        reason to stop. Both deadlines count from this call; the process is stopped at the end.

        :raises MPCRefused: the compute parties refused the attempt inside the MPC.
        :raises MPCRunError: the process failed or ran out of time.
        """
        seat = (self.seat["program"], self.seat["party_index"], self.seat["bit_length"])
        if (job.program, job.party_index, job.bit_length) != seat:
            raise ValueError("this MPyC process was started for another program, field or seat")
        try:
            _write_private(self.work_dir / "job.json", {k: v for k, v in job.__dict__.items() if k != "tls_key"})
            try:
                assert self._proc.stdin is not None  # stdin=PIPE
                self._proc.stdin.write(b"go\n")
                self._proc.stdin.close()
            except BrokenPipeError:  # it already exited: supervising reports why
                pass
            return _supervise(
                self._proc,
                self.work_dir / "out.json",
                connect_timeout,
                run_timeout,
                stop_reason,
                poll_seconds,
                tls=self.seat["tls"],
            )
        finally:
            self.stop()


def _supervise(proc, out_file, connect_timeout, run_timeout, stop_reason, poll_seconds, *, tls) -> MPCResult:
    """Read the worker's output until it exits, enforcing the deadlines and polling ``stop_reason``."""
    start = time.monotonic()
    next_poll = start + poll_seconds
    log: list[str] = []
    connected_at = None
    assert proc.stdout is not None  # stdout=PIPE
    fd = proc.stdout.fileno()
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    eof, pending = False, b""
    try:
        while not (eof and proc.poll() is not None):
            now = time.monotonic()
            _check_deadlines(now - start, connected_at is not None, connect_timeout, run_timeout, log)
            if stop_reason is not None and now >= next_poll:
                next_poll = now + poll_seconds
                reason = stop_reason()
                if reason:
                    raise MPCRunError(f"stopped: {reason}")
            if eof:
                time.sleep(0.05)
            elif sel.select(timeout=0.2):
                # Unbuffered reads: a buffered readline could hold the "connected" line back until the
                # worker prints again, and a long silent MPC would then look like a failed connection.
                chunk = os.read(fd, 65536)
                eof = not chunk
                *lines, pending = (pending + chunk).split(b"\n") if chunk else (pending.split(b"\n") + [b""])
                texts = [line.decode(errors="replace").rstrip() for line in lines]
                log += texts
                if connected_at is None and any(text.startswith(CONNECTED) for text in texts):
                    connected_at = time.monotonic()
        return _outcome(proc, out_file, log, (connected_at or time.monotonic()) - start, start, tls, stop_reason)
    finally:
        sel.close()


def _check_deadlines(elapsed: float, connected: bool, connect_timeout: float, run_timeout: float, log) -> None:
    if not connected and elapsed > connect_timeout:
        raise MPCRunError(
            f"compute parties did not all connect within {connect_timeout:.0f} s "
            f"(is every compute party's MPC task running?)\n{_tail(log)}"
        )
    if elapsed > run_timeout:
        raise MPCRunError(f"MPC did not finish within {run_timeout:.0f} s\n{_tail(log)}")


def _outcome(
    proc, out_file: Path, log: list[str], connect_seconds: float, start: float, tls: bool, stop_reason=None
) -> MPCResult:
    """The exited worker's result: a refusal, a failure, or this party's output shares.

    A compute party that gives up publishes why, then stops its MPyC process; the connections it
    closes can end this process before the next poll of ``stop_reason``, so a process that failed
    (not one killed by a signal) is explained by that reason when there is one, not by the crash
    it caused."""
    refusals = [line[len(REFUSED) :].strip() for line in log if line.startswith(REFUSED)]
    if refusals:
        raise MPCRefused(refusals[0])
    if proc.returncode != 0:
        hung_up = [line[len(HUNG_UP) :].strip() for line in log if line.startswith(HUNG_UP)]
        reason = _published_reason(stop_reason, patient=bool(hung_up)) if proc.returncode > 0 else None
        if reason:
            raise MPCRunError(f"stopped: {reason}")
        cause = f": {hung_up[0]}" if hung_up else ""
        raise MPCRunError(f"MPyC process exited with code {proc.returncode}{cause}\n{_tail(log)}")
    shares = json.loads(out_file.read_text())["shares"]
    sent = [int(m.group(1)) for line in log for m in [_BYTES_SENT.search(line)] if m]
    return MPCResult(
        shares,
        connect_seconds,
        time.monotonic() - start,
        _tail(log),
        sent[-1] if sent else None,
        tls and any("connected via SSL" in line for line in log),
    )


def _published_reason(stop_reason: Callable[[], str | None] | None, *, patient: bool) -> str | None:
    """Why another compute party gave up, if it said so. A peer whose MPyC process hung up (killed,
    or its stage failed and stopped it) publishes its reason moments later: ``patient`` waits for
    it a little."""
    if stop_reason is None:
        return None
    until = time.monotonic() + (HUNG_UP_PATIENCE if patient else 0)
    while not (reason := stop_reason()) and time.monotonic() < until:
        time.sleep(0.25)
    return reason


def _tail(lines: list[str], n: int = 30) -> str:
    return "\n".join(lines[-n:])
