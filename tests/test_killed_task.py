"""A killed compute task leaves no secret behind: its MPyC process dies with it, and the working
folder with the TLS private key and this party's shares is removed at the next start; ``on_kill``
stops the MPyC process group. Real processes, a real MPyC worker, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import psutil
import pytest

from mpc_federation import launcher
from mpc_federation.envelope import PartyKeys

REPO = Path(__file__).resolve().parents[1]
SLOW = REPO / "tests" / "programs" / "slow_sum.py"

TASK = textwrap.dedent("""
    import sys
    sys.path[:0] = [{plugins!r}, {tests!r}, {scripts!r}]
    from mpc_federation.launcher import MPCJob, run_mpc
    from mpc_federation.programs import load_program
    from mpc_federation.sharing import input_payloads
    from mpc_federation.tls import certificate
    import localnet
    program = load_program({program!r}).program
    key = bytes.fromhex({key!r})
    job = MPCJob(program={program!r}, party_index=0, endpoints=[f"127.0.0.1:{{localnet.free_port()}}"],
                 threshold=0, roster=["p"], shares={{"p": input_payloads(program, {{"value": [5]}}, 0, 1)[0]}},
                 input_lengths={{"value": 1}}, output_lengths={{"total": 1}}, dims={{}}, params={{"delay": 120}},
                 names=["p"], tls_key=key, certificates=[certificate(key, 0, "p")])
    run_mpc(job, connect_timeout=60, run_timeout=300)
""")


def folders(root: Path) -> list[Path]:
    return sorted(root.glob("run-*")) if root.is_dir() else []


def wait_for(condition, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_a_sigkilled_task_leaves_no_mpyc_process_and_its_secrets_are_swept(tmp_path):
    root = tmp_path / f"mpc-federation-{os.getuid()}"
    key = PartyKeys.generate("p", test_only=True).tls_key
    script = TASK.format(
        plugins=str(REPO / "plugins"),
        tests=str(REPO / "tests"),
        scripts=str(REPO / "scripts"),
        program=str(SLOW),
        key=key.hex(),
    )
    task = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "TMPDIR": str(tmp_path)})
    try:
        assert wait_for(lambda: any((f / "worker.pid").exists() for f in folders(root))), "no MPyC process started"
        folder = folders(root)[0]
        worker = int((folder / "worker.pid").read_text())
        assert (folder / "job.json").exists() and (folder / ".config" / "party_0.key").exists()
        assert "mpc_federation.worker" in " ".join(psutil.Process(worker).cmdline())
        task.send_signal(signal.SIGKILL)
        task.wait(10)
        assert wait_for(lambda: not psutil.pid_exists(worker) or psutil.Process(worker).status() == "zombie", 10), (
            "the MPyC process outlived the killed task"
        )
        assert (folder / ".config" / "party_0.key").exists()  # SIGKILL: nothing could clean up yet
        assert launcher.sweep_leftovers(root) == [folder]  # the next start removes it
        assert folders(root) == []
    finally:
        if task.poll() is None:
            task.kill()


def test_sweep_keeps_the_folders_of_running_launchers(tmp_path):
    root = tmp_path / "root"
    mine = root / f"run-{os.getpid()}-live"
    mine.mkdir(parents=True)
    dead = root / "run-999999999-dead"
    dead.mkdir()
    assert launcher.sweep_leftovers(root) == [dead]
    assert folders(root) == [mine]


def test_on_kill_stops_the_mpyc_process_group(tmp_path, monkeypatch):
    """What MPCComputeOperator.on_kill calls: every MPyC process of this task process is killed and
    the run fails at once, its folder removed."""
    import localnet

    from mpc_federation.launcher import MPCJob, MPCRunError, run_mpc
    from mpc_federation.programs import load_program
    from mpc_federation.sharing import input_payloads
    from mpc_operators.compute import MPCComputeOperator

    monkeypatch.setattr(launcher, "WORK_ROOT", tmp_path / "root")
    program = load_program(SLOW).program
    job = MPCJob(
        program=str(SLOW),
        party_index=0,
        endpoints=[f"127.0.0.1:{localnet.free_port()}"],
        threshold=0,
        roster=["p"],
        shares={"p": input_payloads(program, {"value": [5]}, 0, 1)[0]},
        input_lengths={"value": 1},
        output_lengths={"total": 1},
        dims={},
        params={"delay": 120},
        names=["p"],
    )
    outcome: dict = {}

    def run():
        try:
            outcome["result"] = run_mpc(job, connect_timeout=60, run_timeout=300)
        except Exception as exc:  # noqa: BLE001
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    assert wait_for(lambda: bool(launcher._LIVE))
    worker = next(iter(launcher._LIVE))
    start = time.monotonic()
    MPCComputeOperator(task_id="compute", spec_path="unused.yaml", party_id="p").on_kill()
    thread.join(30)
    assert time.monotonic() - start < 10
    assert isinstance(outcome.get("error"), MPCRunError)
    assert not psutil.pid_exists(worker) or psutil.Process(worker).status() == "zombie"
    assert folders(tmp_path / "root") == []
    with pytest.raises(KeyError):
        outcome["result"]


def lone_process() -> launcher.MPCProcess:
    """A one-party MPyC process over TLS, started ahead of its job (``launcher.start_mpc``)."""
    import localnet

    from mpc_federation.tls import certificate

    key = PartyKeys.generate("p", test_only=True).tls_key
    return launcher.start_mpc(
        program=str(SLOW),
        party_index=0,
        endpoints=[f"127.0.0.1:{localnet.free_port()}"],
        threshold=0,
        tls_key=key,
        certificates=[certificate(key, 0, "p")],
        names=["p"],
    )


def test_a_process_started_ahead_holds_no_job_and_is_stopped_with_its_stage(tmp_path, monkeypatch):
    """``start_mpc`` runs MPyC before the roster is final: until ``run`` its folder holds the seat
    (program, names, certificates, TLS key) but no job and no shares; a stage that fails before the
    hand-over kills the process and removes the folder."""
    monkeypatch.setattr(launcher, "WORK_ROOT", tmp_path / "root")
    with pytest.raises(RuntimeError, match="the roster could not be fixed"):
        with lone_process() as process:
            worker = process._proc.pid
            assert wait_for(lambda: "mpc_federation.worker" in " ".join(psutil.Process(worker).cmdline()))
            (folder,) = folders(tmp_path / "root")
            assert (folder / "seat.json").exists() and not (folder / "job.json").exists()
            raise RuntimeError("the roster could not be fixed")
    assert not psutil.pid_exists(worker) or psutil.Process(worker).status() == "zombie"
    assert folders(tmp_path / "root") == []
    assert worker not in launcher._LIVE


def test_a_process_started_ahead_is_handed_over_only_while_it_runs_and_is_recent(tmp_path, monkeypatch):
    """``computing.EarlyStart.take``: a process started while the task waited is the stage's if it
    still runs and is younger than ``EARLY_SECONDS``; one that died, or waited longer (its idle
    connections may be gone), is stopped, its folder removed, and the stage starts afresh."""
    from mpc_federation import computing

    monkeypatch.setattr(launcher, "WORK_ROOT", tmp_path / "root")
    with computing.EarlyStart(run=None) as early:
        early.process = lone_process()
        assert early.take() is early.process and early.process.running()  # running and recent
        monkeypatch.setattr(computing, "EARLY_SECONDS", 0.0)
        old = early.process
        assert early.take() is None
        assert not old.running() and not old.work_dir.exists()  # stopped, the TLS key removed
        monkeypatch.setattr(computing, "EARLY_SECONDS", 120.0)
        early.process = dead = lone_process()
        os.killpg(dead._proc.pid, signal.SIGKILL)
        assert wait_for(lambda: not dead.running())
        assert early.take() is None and not dead.work_dir.exists()
    assert folders(tmp_path / "root") == []


def test_a_process_started_for_one_field_refuses_a_job_in_another(tmp_path, monkeypatch):
    """The federation's field is part of the seat (``SecureProgram.for_federation``): a process
    started ahead in the program's own field is not handed a job in another, and nothing of the job
    reaches its folder."""
    from mpc_federation.launcher import MPCJob
    from mpc_federation.programs import load_program
    from mpc_federation.sharing import input_payloads

    monkeypatch.setattr(launcher, "WORK_ROOT", tmp_path / "root")
    program = load_program(SLOW).program
    with lone_process() as process:
        narrow = program.with_bit_length(program.bit_length - 8)
        job = MPCJob.for_program(
            narrow,
            {},
            program=str(SLOW),
            party_index=0,
            endpoints=["127.0.0.1:1"],  # not reached: the seat is checked first
            threshold=0,
            roster=["p"],
            shares={"p": input_payloads(narrow, {"value": [5]}, 0, 1)[0]},
            params={"delay": 0},
            names=["p"],
        )
        assert job.bit_length == program.bit_length - 8
        with pytest.raises(ValueError, match="started for another program, field or seat"):
            process.run(job, connect_timeout=30, run_timeout=60)
        (folder,) = folders(tmp_path / "root")
        assert not (folder / "job.json").exists()
    assert folders(tmp_path / "root") == []
