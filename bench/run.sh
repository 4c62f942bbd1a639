#!/usr/bin/env bash
# Benchmark this gateway with the shared harness (../shared/bench), side by side with the bare floor
# (Django async view + httpx over aiohttp, no auth/billing/DB) on the same ASGI server and, when installed,
# LiteLLM.
#   bench/run.sh [harness options, e.g. --quick, --rounds 3, --scenarios S1,S2]
#   GATEWAY_SERVERS="daphne granian uvicorn" bench/run.sh ...   # one target pair per server (default daphne)
# Results: bench/results/${BENCH_NAME:-ours}.json and .md; copy the table into bench/RESULTS.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HARNESS="${BENCH_HARNESS:-$ROOT/../shared/bench}"
export DATA_DIR="${BENCH_DATA_DIR:-/tmp/gateway-bench-data}"
export SESSION_SECRET="bench-session-secret"
rm -rf "$DATA_DIR" && mkdir -p "$DATA_DIR"
KEY="$("$ROOT/.venv/bin/python" "$ROOT/bench/provision.py")"

BARE_VENV="${BARE_VENV:-/tmp/bare-venv}"
if [ ! -x "$BARE_VENV/bin/granian" ]; then
  python3 -m venv "$BARE_VENV"
  "$BARE_VENV/bin/pip" install -q -r <(grep -iE '^(django|daphne|httpx|httpx-aiohttp|aiohttp|orjson|uvicorn|uvloop|httptools|granian)==' "$ROOT/requirements.txt")
fi

targets=()
port=3000
for server in ${GATEWAY_SERVERS:-daphne}; do
  case "$server" in
    daphne|uvicorn|granian) ;;
    *) echo "unknown server $server (daphne, uvicorn or granian)" >&2; exit 2 ;;
  esac
  targets+=(
    --target "ours-$server=http://127.0.0.1:$port/v1,$KEY,cd $ROOT && exec scripts/serve.sh $server 127.0.0.1 $port"
    --target "bare-$server=http://127.0.0.1:$((port + 1))/v1,none,BARE_VENV=$BARE_VENV exec peers/bare/start.sh django $server $((port + 1)) aiohttp"
  )
  port=$((port + 2))
done
first="${GATEWAY_SERVERS:-daphne}"; first="${first%% *}"
if [ -x "${LITELLM_VENV:-/tmp/litellm-venv}/bin/litellm" ]; then
  targets+=(--target "litellm=http://127.0.0.1:4000/v1,sk-bench-litellm-master-0000,exec peers/litellm/start.sh 4000 1")
fi
exec "$HARNESS/run.sh" "${targets[@]}" --ref "bare-$first" --out "$ROOT/bench/results/${BENCH_NAME:-ours}.json" "$@"
