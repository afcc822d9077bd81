#!/usr/bin/env bash
# Runs the whole console on one machine: web (uvicorn, ASGI), Celery worker, Celery beat
# and the OpenAI simulator. Ctrl-C stops all of them.
#
#   HOST (127.0.0.1) and PORT (8000): where the console listens;
#   SIM_PORT (8765): the simulator's port on 127.0.0.1 (the demo keys point at it).
#
# The ports are checked before anything starts. Celery's output (banners included) goes to
# log files under the var directory, so what is printed last, once the web server answers
# /healthz, is the address and the demo users with their passwords.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
SIM_PORT=${SIM_PORT:-8765}
export HOST PORT SIM_PORT

HOST="$HOST" PORT="$PORT" SIM_PORT="$SIM_PORT" $PY scripts/check_ports.py || exit 1

# The var directory as the settings see it: the environment, else .env, else ./var.
VAR_DIR=${CONSOLE_VAR_DIR-$(sed -n 's/^CONSOLE_VAR_DIR=//p' .env 2>/dev/null | tail -n 1)}
VAR_DIR=${VAR_DIR:-var}
mkdir -p "$VAR_DIR/log"

pids=()
names=()
cleanup() {
  trap - INT TERM EXIT
  echo "Stopping console…"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'cleanup; exit 0' INT TERM  # Ctrl-C is how one stops it: not an error for make

start() {  # start NAME COMMAND…: in the background, remembered for cleanup
  local name=$1
  shift
  "$@" &
  pids+=($!)
  names+=("$name")
}
log_to() {  # log_to FILE COMMAND…: the command, all its output appended to FILE (exec: same pid)
  local file=$1
  shift
  exec "$@" >>"$file" 2>&1
}

if $PY manage.py help openai_simulator >/dev/null 2>&1; then
  start simulator $PY manage.py openai_simulator --host 127.0.0.1 --port "$SIM_PORT"
  # The server's outgoing requests go only to public addresses (platformadmin/netguard.py);
  # the simulator listens on loopback, so exactly its origin is allowed, added to what the
  # environment or .env already lists.
  SIM_ORIGIN="http://127.0.0.1:$SIM_PORT"
  allowed=${OUTBOUND_ALLOWED_ORIGINS-$(sed -n 's/^OUTBOUND_ALLOWED_ORIGINS=//p' .env 2>/dev/null | tail -n 1)}
  case ",$allowed," in
    *",$SIM_ORIGIN,"*) ;;
    *) allowed="${allowed:+$allowed,}$SIM_ORIGIN" ;;
  esac
  export OUTBOUND_ALLOWED_ORIGINS="$allowed"
fi
WORKER_LOG="$VAR_DIR/log/celery-worker.log"
BEAT_LOG="$VAR_DIR/log/celery-beat.log"
start "celery worker" log_to "$WORKER_LOG" $PY -m celery -A platformadmin worker --loglevel=INFO --concurrency=2
start "celery beat" log_to "$BEAT_LOG" $PY -m celery -A platformadmin beat --loglevel=INFO
start "web server" $PY -m uvicorn platformadmin.asgi:application --lifespan off --host "$HOST" --port "$PORT"

# Wait for the web server to answer /healthz (any HTTP answer), while every process lives.
case "$HOST" in 0.0.0.0|::|"[::]") PROBE=127.0.0.1 ;; *) PROBE=$HOST ;; esac
case "$PROBE" in *:*) PROBE="[$PROBE]" ;; esac
HEALTH="http://$PROBE:$PORT/healthz"
for _ in $(seq 1 240); do
  for i in "${!pids[@]}"; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      echo "The ${names[$i]} stopped while starting (see its output above, or $VAR_DIR/log/). Stopping the rest." >&2
      exit 1
    fi
  done
  if $PY -c 'import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=1)
except urllib.error.HTTPError:
    pass  # it answered
except OSError:
    sys.exit(1)' "$HEALTH" 2>/dev/null; then
    up=1
    break
  fi
  sleep 0.25
done
if [ -z "${up:-}" ]; then
  echo "The web server did not answer $HEALTH within 60 s. Stopping." >&2
  exit 1
fi

credentials=$($PY manage.py seed_demo --credentials 2>/dev/null) ||
  credentials="(The demo passwords could not be read: run \`$PY manage.py seed_demo --credentials\`.)"
echo
echo "Console: http://$HOST:$PORT/  (Django admin: http://$HOST:$PORT/admin/, simulator: http://127.0.0.1:$SIM_PORT/v1)"
echo "$credentials"
echo "Celery logs: $WORKER_LOG, $BEAT_LOG. Ctrl-C stops everything."
echo
wait -n
