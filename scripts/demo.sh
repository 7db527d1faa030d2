#!/usr/bin/env bash
# The main job: set up everything (idempotent), then run the five-company HHI night on this machine.
# Extra arguments go to scripts/demo.py (e.g. --trips 1000000, --date 2024-07-01); with
# --federation pay_equity it runs the pay-equity night instead (five payrolls, an equality office).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
exec "$root/.venv/bin/python" "$root/scripts/demo.py" "$@"
