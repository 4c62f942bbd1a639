#!/usr/bin/env bash
# Open-loop streams (bench/open_streams.py) from core 1: straight to the harness's stream mock (port 18081,
# 100 ms to the first chunk, 50 chunks 20 ms apart), then through one worker of ours per server on core 0.
# Needs ../shared/bench/setup.sh once (/tmp/bench-venv has the harness client's httptools and uvloop).
#   bench/open_streams.sh        # OPEN_ARGS="--concurrency 200 --duration 20" GATEWAY_SERVERS="uvicorn daphne"
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/scratch.sh"
PORT=3000
taskset -c 1 /tmp/bench-venv/bin/python "$HARNESS/mock/stream_mock.py" --port 18081 >/dev/null & pids+=($!)

open_streams() {  # name url
  echo "$1: $(BENCH_HARNESS="$HARNESS" taskset -c 1 /tmp/bench-venv/bin/python "$ROOT/bench/open_streams.py" \
    "$2" "$KEY" ${OPEN_ARGS:-})"
}
until curl -sf -o /dev/null "http://127.0.0.1:18081/health"; do sleep 0.3; done
open_streams direct "http://127.0.0.1:18081/v1/chat/completions"
for server in ${GATEWAY_SERVERS:-uvicorn daphne}; do
  (cd "$ROOT" && exec taskset -c 0 scripts/serve.sh "$server" 127.0.0.1 "$PORT") >"$WORK/$server.log" 2>&1 &
  server_pid=$!
  until curl -sf -o /dev/null "http://127.0.0.1:$PORT/api/status"; do sleep 0.3; done
  open_streams "ours, $server" "http://127.0.0.1:$PORT/v1/chat/completions"
  kill "$server_pid"; wait "$server_pid" || true
done
