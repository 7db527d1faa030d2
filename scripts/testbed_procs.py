"""The testbed's processes (psutil): what one party runs, its memory, and stopping what is left.

A party's Airflow is an ``airflow standalone`` tree, but its task processes (Spark, MPyC) run in
sessions of their own: they are found by their ``AIRFLOW_HOME``, which is the party's own.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil

_GONE = (psutil.NoSuchProcess, psutil.ZombieProcess)


def alive(pid: int) -> bool:
    """True while process ``pid`` runs; an exited but unreaped (zombie) process counts as gone."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except _GONE:
        return False


def read_pid(path: Path) -> int | None:
    """The pid in a pid file, or None if there is none."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def command_line(pid: int) -> str:
    """The command line of ``pid`` ("" when it is gone or not ours to read)."""
    try:
        return " ".join(psutil.Process(pid).cmdline())
    except (*_GONE, psutil.AccessDenied):
        return ""


def party_processes(home: Path, leader: int | None = None) -> set[int]:
    """Live processes of one party: the standalone tree below ``leader``, and every process whose
    AIRFLOW_HOME is the party's.

    :param home: the party's AIRFLOW_HOME.
    :param leader: pid of its ``airflow standalone``, if known.
    """
    found: set[int] = set()
    if leader and alive(leader):
        try:
            found |= {leader, *(child.pid for child in psutil.Process(leader).children(recursive=True))}
        except _GONE:
            pass
    home_str, me = str(home), os.getpid()
    for proc in psutil.process_iter():
        if proc.pid == me:
            continue
        try:
            if proc.environ().get("AIRFLOW_HOME") == home_str:
                found.add(proc.pid)
        except (*_GONE, psutil.AccessDenied):
            continue
    return {pid for pid in found if alive(pid)}


def memory_of(pids: set[int]) -> dict[str, int]:
    """Resident (RSS) and proportional (PSS: shared pages split among sharers) memory, in KiB."""
    rss = pss = 0
    for pid in pids:
        try:
            info = psutil.Process(pid).memory_full_info()
        except (*_GONE, psutil.AccessDenied):
            continue
        rss += info.rss // 1024
        pss += getattr(info, "pss", info.rss) // 1024
    return {"rss_kib": rss, "pss_kib": pss, "processes": len(pids)}


def _signal_all(pids: set[int], kill: bool) -> None:
    for pid in pids:
        try:
            process = psutil.Process(pid)
            if kill:
                process.kill()
            else:
                process.terminate()
        except _GONE:
            pass


def terminate(pids: set[int], grace: float = 15) -> set[int]:
    """SIGTERM, then SIGKILL to what still runs after ``grace`` seconds; returns the pids that still live."""
    _signal_all(pids, kill=False)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.2)
    _signal_all({p for p in pids if alive(p)}, kill=True)
    time.sleep(0.3)
    return {p for p in pids if alive(p)}
