"""The testbed's state file (``<root>/testbed.json``), its parties' addresses, and its output."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

STATE_FILE = "testbed.json"


def say(text: str = "") -> None:
    print(text, flush=True)


def load_state(root: Path) -> dict:
    path = root / STATE_FILE
    if not path.is_file():
        raise SystemExit(f"testbed: no testbed at {root} (start one with: scripts/testbed.sh start --root {root})")
    return json.loads(path.read_text())


def save_state(root: Path, state: dict) -> None:
    """Write the state atomically, private to the user (it names every party's home)."""
    path = root / STATE_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def loopback_host(index: int, same_host: bool) -> str:
    """Party ``index``'s address: a loopback address of its own on Linux (browsers keep cookies per
    host name, so parties on one address would log each other out), else 127.0.0.1."""
    return "127.0.0.1" if same_host or not sys.platform.startswith("linux") else f"127.0.0.{index + 2}"


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def port_bindable(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False
