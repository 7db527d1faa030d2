"""What Airflow's provider manager learns about this package (entry point ``apache_airflow_provider``):
its operators, sensor, trigger and hooks, connection type, operator link and ``[mpc]`` configuration
section."""

from __future__ import annotations

from typing import Any

PACKAGE = "airflow-mpc-federation"


def get_provider_info() -> dict[str, Any]:
    from mpc_operators.keys import CONN_TYPE, UI_FIELD_BEHAVIOUR
    from mpc_operators.sensor import sensors_package
    from mpc_operators.settings import LITERAL_DEFAULTS, OPTIONS, SECTION, MPCSettings

    sensors = sensors_package()

    return {
        "package-name": PACKAGE,
        "name": "MPC federation",
        "description": "Federated statistics over private data with secure multi-party computation (MPyC): "
        "local Spark aggregation, Shamir shares through an S3 coordination bucket, MPC among "
        "compute parties, results to named recipients only.",
        "versions": [_version()],
        "integrations": [
            {
                "integration-name": "MPC federation",
                "external-doc-url": "https://github.com/lschoe/mpyc",
                "tags": ["protocol"],
            }
        ],
        "operators": [
            {
                "integration-name": "MPC federation",
                "python-modules": [
                    "mpc_operators.aggregate",
                    "mpc_operators.share",
                    "mpc_operators.compute",
                    "mpc_operators.reveal",
                ],
            }
        ],
        "sensors": [{"integration-name": "MPC federation", "python-modules": [f"{sensors}.coordination"]}],
        "triggers": [{"integration-name": "MPC federation", "python-modules": [f"{sensors}.triggers"]}],
        "hooks": [
            {"integration-name": "MPC federation", "python-modules": ["mpc_operators.keys", "mpc_operators.hooks"]}
        ],
        "connection-types": [
            {
                "hook-class-name": "mpc_operators.keys.PartyKeysHook",
                "hook-name": "MPC party keys",
                "connection-type": CONN_TYPE,
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
            }
        ],
        "extra-links": ["mpc_operators.links.MPCRunLink"],
        "config": {
            SECTION: {
                "description": "This party's settings for federated MPC (one Airflow = one party).",
                # MPCSettings.load applies the defaults; the literal ones are the section's too, so
                # `airflow config` shows them. A boolean is one MPCSettings holds as a bool.
                "options": {
                    key: {
                        "description": f"{meaning} Default: {default or '(empty)'}.",
                        "version_added": "0.2.0",
                        "type": "boolean" if MPCSettings.__annotations__.get(key) == "bool" else "string",
                        "example": None,
                        "default": default if key in LITERAL_DEFAULTS else None,
                    }
                    for key, (default, meaning) in OPTIONS.items()
                },
            }
        },
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(PACKAGE)
    except PackageNotFoundError:  # a cloned project, not an installed distribution
        return "0.2.0"
