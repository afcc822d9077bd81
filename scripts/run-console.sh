#!/usr/bin/env bash
# Runs the whole console on one machine: web (uvicorn, ASGI), Celery worker, Celery beat
# and the OpenAI simulator. Ctrl-C stops all of them.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
SIM_PORT=${SIM_PORT:-8765}

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo "Stopping console…"
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

if $PY manage.py help openai_simulator >/dev/null 2>&1; then
  $PY manage.py openai_simulator --host 127.0.0.1 --port "$SIM_PORT" & pids+=($!)
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
$PY -m celery -A platformadmin worker --loglevel=INFO --concurrency=2 & pids+=($!)
$PY -m celery -A platformadmin beat --loglevel=INFO & pids+=($!)
$PY -m uvicorn platformadmin.asgi:application --lifespan off --host "$HOST" --port "$PORT" & pids+=($!)

echo "Console: http://$HOST:$PORT/  (Django admin: http://$HOST:$PORT/admin/)"
wait -n
