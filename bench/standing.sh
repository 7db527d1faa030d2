#!/usr/bin/env bash
# Every target of "Performance, round two" measured one after the other in one sitting, then the
# table and plot of where each stands (bench/standing.py). 40 minutes or more on 2 cores (each step
# first waits, at most 2 minutes, for the 1-minute load to fall below 3).
#   bash bench/standing.sh [OUT_DIR]      (default bench/results/standing-<UTC time>)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/bench/results/standing-$(date -u +%Y%m%dT%H%M%S)}"
out="$(mkdir -p "$out" && cd "$out" && pwd)"
bash "$root/scripts/setup.sh"
py="$root/.venv/bin/python"
cd "$root"
quiet() {  # wait (at most 2 minutes) until the 1-minute load is below 3: a step should not pay for the last
    for _ in $(seq 60); do
        awk '{ exit !($1 < 3) }' /proc/loadavg && return
        sleep 2
    done
}
step() {  # step NAME ARGS...: one benchmark, its log and JSON in OUT_DIR, the time and load noted
    local name="$1"
    shift
    quiet
    echo "[standing $(date -u +%H:%M:%S)] $name (load $(cut -d' ' -f1-3 /proc/loadavg))" | tee -a "$out/steps.log"
    # A step that fails leaves its rows out; the sitting goes on.
    "$py" "$@" --json "$out/$name.json" >"$out/$name.log" 2>&1 || echo "  $name failed ($?): see $out/$name.log" | tee -a "$out/steps.log"
}
step night_near_1 bench/coordination.py --wait-in-task near
step night_near_2 bench/coordination.py --wait-in-task near
step night_tasks_1 bench/coordination.py --wait-in-task True
step night_sensors_1 bench/coordination.py --wait-in-task False
step night_sensors_2 bench/coordination.py --wait-in-task False
step targets bench/targets.py --wait-in-task --repeat 3 --only "5 inputs, 3 compute, 2" \
    --only "100 inputs" --only "7 inputs" --only "3,000"
step targets_1000 bench/targets.py --wait-in-task --only "1,000"
step targets_wan bench/targets.py --wait-in-task --rtt-ms 50 --repeat 2 --only "3,000" --only "5 inputs, 3 compute, 2"
step program_100k bench/mpcprogram.py --markets 100000
step fieldcosts bench/fieldcosts.py --markets 3000
step divisionsteps bench/divisionsteps.py --markets 3000
step sparkrows bench/sparkrows.py --trips 50000000  # the issue's 50 M trips (generated once, 30-50 s)
quiet
echo "[standing $(date -u +%H:%M:%S)] table1 (load $(cut -d' ' -f1-3 /proc/loadavg))" | tee -a "$out/steps.log"
"$py" bench/run.py --scale default --sections table1 --repeat 2 --no-profile --out "$out/table1" >"$out/table1.log" 2>&1 ||
    echo "  table1 failed ($?): see $out/table1.log" | tee -a "$out/steps.log"
echo "[standing $(date -u +%H:%M:%S)] done" | tee -a "$out/steps.log"
"$py" bench/standing.py "$out" "$out/plots"
