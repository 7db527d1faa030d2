#!/usr/bin/env bash
# Static security analysis of infra/terraform with checkov, in its own virtualenv (.venv-checkov):
# checkov's dependencies conflict with Airflow's pins in .venv. Creates the virtualenv when it is
# missing or its pins changed (idempotent), then runs checkov. Exits non-zero if any check fails;
# checks skipped in the .tf files (#checkov:skip=ID:reason) are listed as skipped, not failed.
#
# Usage: infra/scripts/checkov.sh [extra checkov arguments, e.g. -o json]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

venv="$root/.venv-checkov"
requirements="infra/requirements-checkov.txt"
constraints="infra/constraints-checkov.txt"

python_bin="${PYTHON:-}"
if [ -z "$python_bin" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python_bin="$candidate"; break; fi
  done
fi
[ -n "$python_bin" ] || { echo "checkov.sh: python3.11 (or python3) is required" >&2; exit 1; }

stamp="$venv/.installed-$(cat "$requirements" "$constraints" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "checkov.sh: installing checkov into $venv" >&2
  [ -x "$venv/bin/python" ] || "$python_bin" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" -c "$constraints" >&2
  rm -f "$venv"/.installed-*
  touch "$stamp"
fi

# --download-external-modules false: every module is local. No network, no telemetry upload:
# BC_SKIP_MAPPING and no API key keep checkov offline.
export BC_SKIP_MAPPING=TRUE
export CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false
exec "$venv/bin/checkov" \
  --directory infra/terraform \
  --framework terraform \
  --download-external-modules false \
  --skip-download \
  --quiet \
  --compact \
  "$@"
