#!/usr/bin/env bash
# Benchmark this gateway with the shared harness (../shared/bench), side by side with the bare floor
# (Django async view + daphne + httpx over aiohttp) and, when installed, LiteLLM.
#   bench/run.sh [harness options, e.g. --quick, --rounds 3, --scenarios S1,S2]
# Results: bench/results/ours.json and .md; copy the table into bench/RESULTS.md with the command line.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HARNESS="${BENCH_HARNESS:-$ROOT/../shared/bench}"
export DATA_DIR="${BENCH_DATA_DIR:-/tmp/gateway-bench-data}"
export SESSION_SECRET="bench-session-secret"
rm -rf "$DATA_DIR" && mkdir -p "$DATA_DIR"
KEY="$("$ROOT/.venv/bin/python" "$ROOT/bench/provision.py")"

BARE_VENV="${BARE_VENV:-/tmp/bare-venv}"
if [ ! -x "$BARE_VENV/bin/daphne" ]; then
  python3 -m venv "$BARE_VENV"
  "$BARE_VENV/bin/pip" install -q -r <(grep -iE '^(django|daphne|httpx|httpx-aiohttp|aiohttp|orjson)==' "$ROOT/requirements.txt")
fi
SERVER="${GATEWAY_SERVER:-daphne}"
case "$SERVER" in
  daphne) GW="exec $ROOT/.venv/bin/daphne -b 127.0.0.1 -p 3000 gateway_project.asgi:application" ;;
  *) echo "unknown GATEWAY_SERVER $SERVER" >&2; exit 2 ;;
esac
targets=(
  --target "ours=http://127.0.0.1:3000/v1,$KEY,cd $ROOT && DATA_DIR=$DATA_DIR $GW"
  --target "bare=http://127.0.0.1:3001/v1,none,BARE_VENV=$BARE_VENV exec peers/bare/start.sh django daphne 3001 aiohttp"
)
if [ -x "${LITELLM_VENV:-/tmp/litellm-venv}/bin/litellm" ]; then
  targets+=(--target "litellm=http://127.0.0.1:4000/v1,sk-bench-litellm-master-0000,exec peers/litellm/start.sh 4000 1")
fi
exec "$HARNESS/run.sh" "${targets[@]}" --ref bare --out "$ROOT/bench/results/ours.json" "$@"
