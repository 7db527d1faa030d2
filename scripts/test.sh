#!/usr/bin/env bash
# The tests: set up everything (idempotent), then run the whole suite. Arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
bash "$root/scripts/setup_system.sh"
cd "$root"
exec .venv/bin/python -m pytest tests -ra "$@"
