#!/usr/bin/env bash
# Prepare and start one MPC party's Airflow. The same file runs on an EC2 party host (called by the
# mpc-airflow systemd unit that cloud-init installs, see infra/terraform/modules/party) and on a
# developer machine (the local multi-party testbed calls it once per party, each with its own
# AIRFLOW_HOME and ports).
#
# Steps: run scripts/setup.sh (idempotent), write $AIRFLOW_HOME/party.env (mode 600) with the
# party's identity, Airflow settings and connections, then start `airflow standalone` in the
# background with that environment: pid in $AIRFLOW_HOME/airflow.pid, output in
# $AIRFLOW_HOME/standalone.log. Secrets (the party's keys) go only into party.env, never to
# stdout/stderr.
#
# party.env uses the names of the local federations' one builder, LocalParty.settings() in
# scripts/localnet.py: the [mpc] section as AIRFLOW__MPC__PARTY_ID, _SPEC_DIR, _DATA_URI, _LEDGER_URI
# and _ALLOW_TEST_KEYS (plugins/mpc_operators/settings.py). The options below also read those
# names from the environment.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: bootstrap_party.sh [options]

Every option can also be given by the environment variable in brackets (the first one set).

  --party-id ID               party id from the federation spec             [AIRFLOW__MPC__PARTY_ID]      
                                                                            (required)
  --repo-dir DIR              project checkout                              [MPC_REPO_DIR] (default: this script's repo)
  --spec-dir DIR              folder with the federation spec YAMLs         [AIRFLOW__MPC__SPEC_DIR]      
                                                                            (default: REPO/include/federations)
  --data-dir DIR|URI          the party's input data root (a local folder   [AIRFLOW__MPC__DATA_URI]      
                              is created; a URI is passed to Spark as is)   (default: AIRFLOW_HOME/data)
  --work-dir DIR              the party's local work folder                 [MPC_WORK_DIR] (default: AIRFLOW_HOME/work)
  --ledger-uri DIR|URI        the disclosure ledger                         [AIRFLOW__MPC__LEDGER_URI] (default: WORK/ledger)
  --airflow-home DIR          Airflow home of this party                    [AIRFLOW_HOME] (default: ~/airflow)
  --host ADDR                 address the Airflow API server/UI binds to    [MPC_AIRFLOW_HOST] (default: 127.0.0.1)
  --port PORT                 Airflow API server/UI port                    [MPC_AIRFLOW_PORT] (default: 8080)
  --worker-log-port PORT      Airflow worker log server port                [MPC_WORKER_LOG_PORT] (default: PORT+1000)
  --trigger-log-port PORT     Airflow triggerer log server port             [MPC_TRIGGER_LOG_PORT] (default: PORT+2000)
  --coordination-conn JSON    Airflow connection of the coordination bucket [MPC_COORDINATION_CONN]
  --coordination-conn-file F  ... read from a file instead                  [MPC_COORDINATION_CONN_FILE]
  --keys-from-ssm PARAM       read the party's keys connection from this SSM SecureString
                              (aws ssm get-parameter --with-decryption)     [MPC_KEYS_SSM_PARAMETER]
  --keys-file FILE            read the party's keys connection from FILE    [MPC_KEYS_FILE]
  --region REGION             AWS region for --keys-from-ssm                [MPC_AWS_REGION]
  --compute-queue NAME        Airflow queue of the compute task, consumed by the workers at the
                              party's MPyC endpoint ([mpc] compute_queue)   [AIRFLOW__MPC__COMPUTE_QUEUE] (default: none)
  --env NAME=VALUE            extra variable for party.env (repeatable)
  --skip-setup                do not run scripts/setup.sh                   [MPC_SKIP_SETUP=1]
  --no-start                  only prepare (setup and party.env), do not start Airflow
  --wait SECONDS              after starting, wait up to SECONDS for the API server's health
                              endpoint; fail if it does not answer       [MPC_WAIT_SECONDS] (default: 0)
  --stop                      stop this party's Airflow (AIRFLOW_HOME/airflow.pid) and exit
  -h, --help                  this text

A coordination connection is required unless --stop. The keys are optional (a party without keys
cannot sign or open coordination objects); give at most one of --keys-from-ssm and --keys-file.
EOF
}

die() {
  echo "bootstrap_party: $*" >&2
  exit 1
}

log() {
  echo "bootstrap_party: $*"
}

# Value of the option in $1, given as $2; fails if it is missing.
opt_value() {
  [ $# -ge 2 ] || die "$1 needs a value (see --help)"
  printf '%s' "$2"
}

is_port() {
  case "$1" in
    '' | *[!0-9]*) return 1 ;;
  esac
  [ "$1" -ge 1 ] && [ "$1" -le 65535 ]
}

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_dir="${MPC_REPO_DIR:-}"
party_id="${AIRFLOW__MPC__PARTY_ID:-}"
spec_dir="${AIRFLOW__MPC__SPEC_DIR:-}"
data_dir="${AIRFLOW__MPC__DATA_URI:-}"
work_dir="${MPC_WORK_DIR:-}"
ledger_uri="${AIRFLOW__MPC__LEDGER_URI:-}"
airflow_home="${AIRFLOW_HOME:-}"
api_host="${MPC_AIRFLOW_HOST:-127.0.0.1}"
api_port="${MPC_AIRFLOW_PORT:-8080}"
worker_log_port="${MPC_WORKER_LOG_PORT:-}"
trigger_log_port="${MPC_TRIGGER_LOG_PORT:-}"
coordination_conn="${MPC_COORDINATION_CONN:-}"
coordination_conn_file="${MPC_COORDINATION_CONN_FILE:-}"
keys_ssm_parameter="${MPC_KEYS_SSM_PARAMETER:-}"
keys_file="${MPC_KEYS_FILE:-}"
aws_region="${MPC_AWS_REGION:-}"
compute_queue="${AIRFLOW__MPC__COMPUTE_QUEUE:-}"
skip_setup="${MPC_SKIP_SETUP:-0}"
wait_seconds="${MPC_WAIT_SECONDS:-0}"
start=1
stop=0
extra_env=()

while [ $# -gt 0 ]; do
  case "$1" in
    --party-id) party_id="$(opt_value "$@")"; shift 2 ;;
    --repo-dir) repo_dir="$(opt_value "$@")"; shift 2 ;;
    --spec-dir) spec_dir="$(opt_value "$@")"; shift 2 ;;
    --data-dir) data_dir="$(opt_value "$@")"; shift 2 ;;
    --work-dir) work_dir="$(opt_value "$@")"; shift 2 ;;
    --ledger-uri) ledger_uri="$(opt_value "$@")"; shift 2 ;;
    --airflow-home) airflow_home="$(opt_value "$@")"; shift 2 ;;
    --host) api_host="$(opt_value "$@")"; shift 2 ;;
    --port) api_port="$(opt_value "$@")"; shift 2 ;;
    --worker-log-port) worker_log_port="$(opt_value "$@")"; shift 2 ;;
    --trigger-log-port) trigger_log_port="$(opt_value "$@")"; shift 2 ;;
    --coordination-conn) coordination_conn="$(opt_value "$@")"; shift 2 ;;
    --coordination-conn-file) coordination_conn_file="$(opt_value "$@")"; shift 2 ;;
    --keys-from-ssm) keys_ssm_parameter="$(opt_value "$@")"; shift 2 ;;
    --keys-file) keys_file="$(opt_value "$@")"; shift 2 ;;
    --region) aws_region="$(opt_value "$@")"; shift 2 ;;
    --compute-queue) compute_queue="$(opt_value "$@")"; shift 2 ;;
    --env) extra_env+=("$(opt_value "$@")"); shift 2 ;;
    --skip-setup) skip_setup=1; shift ;;
    --no-start) start=0; shift ;;
    --wait) wait_seconds="$(opt_value "$@")"; shift 2 ;;
    --stop) stop=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

# Everything this script creates is private to the party's user: party.env holds the keys and
# standalone.log holds the UI password that airflow standalone generates.
umask 077

[ -n "$airflow_home" ] || airflow_home="${HOME:?HOME is not set}/airflow"
mkdir -p "$airflow_home"
airflow_home="$(cd "$airflow_home" && pwd)"
pid_file="$airflow_home/airflow.pid"
log_file="$airflow_home/standalone.log"
env_file="$airflow_home/party.env"

# True while process $1 exists; an exited but unreaped (zombie) process counts as gone.
is_alive() {
  local state
  kill -0 "$1" 2>/dev/null || return 1
  state="$(ps -o stat= -p "$1" 2>/dev/null || true)"
  case "$state" in
    Z*) return 1 ;;
  esac
  return 0
}

# True while a process of the process group $1 exists (zombies count as gone).
group_alive() {
  ps -e -o pgid=,stat= 2>/dev/null | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { found = 1 } END { exit !found }'
}

# Pid of this party's running Airflow, or nothing.
running_pid() {
  local pid
  [ -f "$pid_file" ] || return 0
  pid="$(cat "$pid_file" 2>/dev/null || true)"
  case "$pid" in
    '' | *[!0-9]*) return 0 ;;
  esac
  if is_alive "$pid"; then
    printf '%s' "$pid"
  fi
}

if [ "$stop" = 1 ]; then
  pid="$(running_pid)"
  if [ -z "$pid" ]; then
    log "no running Airflow for $airflow_home"
    rm -f "$pid_file"
    exit 0
  fi
  # airflow standalone runs in its own session: signal its whole process group (scheduler,
  # API server, triggerer, DAG processor), then the leader alone if there is no such group.
  # Wait for the whole group, not just the leader: the components shut down after it exits.
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do
    is_alive "$pid" || group_alive "$pid" || break
    sleep 1
  done
  if is_alive "$pid" || group_alive "$pid"; then
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pid_file"
  log "stopped Airflow (pid $pid) of $airflow_home"
  exit 0
fi

# ---------------------------------------------------------------- check the inputs

[ -n "$party_id" ] || die "--party-id (or AIRFLOW__MPC__PARTY_ID) is required"
[[ "$party_id" =~ ^[a-z][a-z0-9_]{0,30}$ ]] || die "party id must match ^[a-z][a-z0-9_]{0,30}\$: $party_id"
is_port "$api_port" || die "--port must be a TCP port: $api_port"
[ -n "$worker_log_port" ] || worker_log_port=$((api_port + 1000))
[ -n "$trigger_log_port" ] || trigger_log_port=$((api_port + 2000))
is_port "$worker_log_port" || die "--worker-log-port must be a TCP port: $worker_log_port"
is_port "$trigger_log_port" || die "--trigger-log-port must be a TCP port: $trigger_log_port"
case "$wait_seconds" in
  '' | *[!0-9]*) die "--wait needs a number of seconds: $wait_seconds" ;;
esac
case "$skip_setup" in
  0 | 1) ;;
  *) die "MPC_SKIP_SETUP must be 0 or 1" ;;
esac

# Where this host's own processes (task runners, the health check) reach the API server: the bound
# address itself, or loopback when it binds every interface.
case "$api_host" in
  0.0.0.0 | '::' | '[::]' | '') local_host=127.0.0.1 ;;
  *:*) local_host="[$api_host]" ;;
  *) local_host="$api_host" ;;
esac

[ -n "$repo_dir" ] || repo_dir="$script_dir/../.."
[ -d "$repo_dir" ] || die "repo dir not found: $repo_dir"
repo_dir="$(cd "$repo_dir" && pwd)"
[ -n "$spec_dir" ] || spec_dir="$repo_dir/include/federations"
[ -n "$data_dir" ] || data_dir="$airflow_home/data"
[ -n "$work_dir" ] || work_dir="$airflow_home/work"
[ -n "$ledger_uri" ] || ledger_uri="$work_dir/ledger"
[ -d "$spec_dir" ] || die "spec dir not found: $spec_dir"
spec_dir="$(cd "$spec_dir" && pwd)"

if [ -n "$coordination_conn_file" ]; then
  [ -z "$coordination_conn" ] || die "give either --coordination-conn or --coordination-conn-file, not both"
  [ -r "$coordination_conn_file" ] || die "cannot read coordination connection file: $coordination_conn_file"
  coordination_conn="$(cat "$coordination_conn_file")"
fi
[ -n "$coordination_conn" ] || die "a coordination connection is required (--coordination-conn or --coordination-conn-file)"
case "$coordination_conn" in
  '{'*'}' | *://*) ;;
  *) die "the coordination connection must be a JSON object or a connection URI" ;;
esac

[[ "$compute_queue" =~ ^([A-Za-z0-9][A-Za-z0-9_.-]{0,99})?$ ]] || die "--compute-queue must be a queue name of A-Z, a-z, 0-9, _ . -: $compute_queue"

if [ -n "$keys_ssm_parameter" ] && [ -n "$keys_file" ]; then
  die "give at most one of --keys-from-ssm and --keys-file"
fi

for assignment in ${extra_env[@]+"${extra_env[@]}"}; do
  [[ "$assignment" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--env needs NAME=VALUE, got: ${assignment%%=*}"
done

# ---------------------------------------------------------------- install

if [ "$skip_setup" = 0 ]; then
  log "installing the project's pinned dependencies (scripts/setup.sh)"
  "$repo_dir/scripts/setup.sh"
fi
airflow_bin="$repo_dir/.venv/bin/airflow"
if [ "$start" = 1 ] && [ ! -x "$airflow_bin" ]; then
  die "$airflow_bin not found: run scripts/setup.sh (or drop --skip-setup)"
fi

mkdir -p "$work_dir"
case "$data_dir" in
  *://*) ;; # object storage or HDFS: Spark reads it as it is
  *) mkdir -p "$data_dir" ;;
esac

# ---------------------------------------------------------------- the party's keys

keys_conn=""
if [ -n "$keys_ssm_parameter" ]; then
  command -v aws >/dev/null 2>&1 || die "--keys-from-ssm needs the AWS CLI (aws) on PATH"
  region_args=()
  [ -z "$aws_region" ] || region_args=(--region "$aws_region")
  # Only the value goes to the variable; aws prints errors (never the value) to stderr.
  if ! keys_conn="$(aws ssm get-parameter ${region_args[@]+"${region_args[@]}"} --name "$keys_ssm_parameter" \
    --with-decryption --query Parameter.Value --output text)"; then
    die "could not read SSM parameter $keys_ssm_parameter (does it exist, and may this host's role read it?)"
  fi
  log "read the party's keys from SSM parameter $keys_ssm_parameter"
elif [ -n "$keys_file" ]; then
  [ -r "$keys_file" ] || die "cannot read keys file: $keys_file"
  keys_conn="$(cat "$keys_file")"
  log "read the party's keys from $keys_file"
else
  log "no keys given (--keys-from-ssm or --keys-file): the party's keys connection is left unset"
fi

# ---------------------------------------------------------------- party.env

# One `export NAME=value` line, the value quoted for bash.
env_line() {
  printf 'export %s=%q\n' "$1" "$2"
}

tmp_env="$(mktemp "$airflow_home/.party.env.XXXXXX")"
trap 'rm -f "$tmp_env"' EXIT
{
  echo "# Environment of MPC party $party_id, written by infra/scripts/bootstrap_party.sh. Secret: mode 600."
  env_line AIRFLOW_HOME "$airflow_home"
  env_line AIRFLOW__CORE__DAGS_FOLDER "$repo_dir/dags"
  env_line AIRFLOW__CORE__PLUGINS_FOLDER "$repo_dir/plugins"
  env_line AIRFLOW__CORE__LOAD_EXAMPLES False
  env_line AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE True
  env_line AIRFLOW__API__HOST "$api_host"
  env_line AIRFLOW__API__PORT "$api_port"
  env_line AIRFLOW__CORE__EXECUTION_API_SERVER_URL "http://$local_host:$api_port/execution/"
  env_line AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT "$worker_log_port"
  env_line AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT "$trigger_log_port"
  env_line AIRFLOW__MPC__PARTY_ID "$party_id"
  env_line AIRFLOW__MPC__SPEC_DIR "$spec_dir"
  env_line AIRFLOW__MPC__DATA_URI "$data_dir"
  env_line AIRFLOW__MPC__LEDGER_URI "$ledger_uri"
  if [ -n "$compute_queue" ]; then
    env_line AIRFLOW__MPC__COMPUTE_QUEUE "$compute_queue"
  fi
  env_line AIRFLOW_CONN_MPC_COORDINATION "$coordination_conn"
  if [ -n "$keys_conn" ]; then
    env_line AIRFLOW_CONN_MPC_PARTY_KEYS "$keys_conn"
  fi
  env_line AIRFLOW_CONN_SPARK_DEFAULT '{"conn_type":"spark","host":"local[*]"}'
  env_line PATH "$repo_dir/.venv/bin:$PATH"
  # Keys marked as test keys are refused, whatever the calling shell sets; only a local testbed
  # passes --env AIRFLOW__MPC__ALLOW_TEST_KEYS=True (it runs on test keys).
  env_line AIRFLOW__MPC__ALLOW_TEST_KEYS False
  for assignment in ${extra_env[@]+"${extra_env[@]}"}; do
    env_line "${assignment%%=*}" "${assignment#*=}"
  done
} >"$tmp_env"
chmod 600 "$tmp_env"
mv -f "$tmp_env" "$env_file"
trap - EXIT
log "wrote $env_file"

if [ "$start" = 0 ]; then
  log "prepared party $party_id (--no-start): start it with $0 without --no-start"
  exit 0
fi

# ---------------------------------------------------------------- start

pid="$(running_pid)"
if [ -n "$pid" ]; then
  log "Airflow of party $party_id is already running (pid $pid); stop it first with --stop to apply changes"
  exit 0
fi
rm -f "$pid_file"

touch "$log_file"
chmod 600 "$log_file"
launcher=()
if command -v setsid >/dev/null 2>&1; then
  launcher=(setsid)
fi
# The child records its own pid (exec keeps it for airflow) so that the pid file is right
# whether or not setsid had to fork.
# shellcheck disable=SC2016 # expanded by the child shell, not here
nohup ${launcher[@]+"${launcher[@]}"} bash -c '
  set -a
  . "$1"
  set +a
  echo "$$" >"$2"
  cd "$AIRFLOW_HOME"
  exec "$3" standalone
' bootstrap-airflow "$env_file" "$pid_file" "$airflow_bin" >>"$log_file" 2>&1 </dev/null &

for _ in $(seq 1 50); do
  [ -s "$pid_file" ] && break
  sleep 0.2
done
pid="$(running_pid)"
[ -n "$pid" ] || die "airflow standalone did not start; see $log_file"
log "started airflow standalone for party $party_id (pid $pid, UI http://$api_host:$api_port, log $log_file)"

if [ "$wait_seconds" -gt 0 ]; then
  health_url="http://$local_host:$api_port/api/v2/monitor/health"
  deadline=$((SECONDS + wait_seconds))
  until "$repo_dir/.venv/bin/python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)' "$health_url" 2>/dev/null; do
    is_alive "$pid" || die "airflow standalone exited during start-up; see $log_file"
    [ "$SECONDS" -lt "$deadline" ] || die "Airflow API server not healthy after ${wait_seconds}s; see $log_file"
    sleep 2
  done
  log "Airflow of party $party_id is up at http://$api_host:$api_port"
fi
