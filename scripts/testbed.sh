#!/usr/bin/env bash
# The local multi-party testbed: one real `airflow standalone` per party of a federation spec.
#   bash scripts/testbed.sh start [--spec include/federations/taxi_hhi.yaml] [--root .testbed]
#   bash scripts/testbed.sh trigger --date 2024-04-01
#   bash scripts/testbed.sh status
#   bash scripts/testbed.sh stop
# Sets up everything first (idempotent); see docs/testbed.md and scripts/testbed.py --help.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
exec "$root/.venv/bin/python" "$root/scripts/testbed.py" "$@"
