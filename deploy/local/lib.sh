# Shared helpers for the local-service scripts in deploy/local/.
# Sourced, never run. Everything lives under $PARPULSE_HOME (default: <repo>/.parpulse),
# which .gitignore keeps out of the repository; services listen on loopback only.

set -euo pipefail

PARPULSE_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PARPULSE_HOME="${PARPULSE_HOME:-$PARPULSE_REPO/.parpulse}"
mkdir -p "$PARPULSE_HOME"

KAFKA_PORT="${PARPULSE_LOCAL_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${PARPULSE_LOCAL_KAFKA_CONTROLLER_PORT:-9093}"
CLICKHOUSE_HTTP_PORT="${PARPULSE_LOCAL_CLICKHOUSE_HTTP_PORT:-8123}"
CLICKHOUSE_TCP_PORT="${PARPULSE_LOCAL_CLICKHOUSE_TCP_PORT:-9000}"

log() { printf '[parpulse-local] %s\n' "$*" >&2; }
die() { printf '[parpulse-local] ERROR: %s\n' "$*" >&2; exit 1; }

# pid_alive PIDFILE -> 0 when the process named in PIDFILE runs.
pid_alive() {
  local pidfile="$1"
  [[ -f "$pidfile" ]] || return 1
  local pid
  pid="$(cat "$pidfile" 2>/dev/null || true)"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}

# port_open PORT -> 0 when something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# wait_until SECONDS DESCRIPTION LOGFILE PIDFILE COMMAND... : polls COMMAND every
# half second; fails with the log's tail when the process dies or time runs out.
wait_until() {
  local seconds="$1" what="$2" logfile="$3" pidfile="$4"
  shift 4
  local deadline=$((SECONDS + seconds))
  until "$@"; do
    if ! pid_alive "$pidfile"; then
      tail -n 30 "$logfile" >&2 || true
      die "$what exited during start-up; full log: $logfile"
    fi
    if (( SECONDS >= deadline )); then
      tail -n 30 "$logfile" >&2 || true
      die "$what not ready after ${seconds}s; full log: $logfile"
    fi
    sleep 0.5
  done
}

# stop_pid NAME PIDFILE: TERM, wait up to 30 s, then KILL.
stop_pid() {
  local name="$1" pidfile="$2"
  if ! pid_alive "$pidfile"; then
    rm -f "$pidfile"
    log "$name: not running"
    return 0
  fi
  local pid
  pid="$(cat "$pidfile")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name: still running after 30 s, sending KILL"
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
  log "$name: stopped"
}
