#!/usr/bin/env bash
# The tests: set up everything (idempotent), check lint and types, then run the whole suite.
# Arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
bash "$root/scripts/setup_system.sh"
cd "$root"
# Lint, format and types (settings in pyproject.toml): any finding fails the run before the tests.
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy plugins
exec .venv/bin/python -m pytest tests -ra "$@"
