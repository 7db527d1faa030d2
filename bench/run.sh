#!/usr/bin/env bash
# The benchmarks (see docs/benchmarks.md): set up .venv as the tests do, then run bench/run.py.
#   bash bench/run.sh [--scale tiny|small|default] [--sections table1,scaling,coordination,local] [--publish] ...
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
exec "$root/.venv/bin/python" "$root/bench/run.py" "$@"
