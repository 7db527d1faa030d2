"""The one place that finds the coordination sensor's package (plugins/sensors/).

A cloned project imports that folder as ``sensors`` (the plugins folder is on sys.path); the
installed distribution ships it as ``mpc_sensors``, so that it never shadows a user's own
``sensors``. This picks the copy that sits next to this very ``mpc_operators``, so a clone with the
wheel also installed never mixes the two.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any


def sensors_package() -> str:
    """``mpc_sensors`` when this ``mpc_operators`` is the installed one, else ``sensors``."""
    return "mpc_sensors" if (Path(__file__).resolve().parents[1] / "mpc_sensors").is_dir() else "sensors"


def coordination_sensor_class() -> Any:
    """The class ``MPCCoordinationSensor`` (plugins/sensors/coordination.py)."""
    return importlib.import_module(f"{sensors_package()}.coordination").MPCCoordinationSensor


def coordination_trigger_class() -> Any:
    """The class ``CoordinationTrigger`` (plugins/sensors/triggers.py)."""
    return importlib.import_module(f"{sensors_package()}.triggers").CoordinationTrigger
