#!/usr/bin/env bash
# Paced c=1 (bench/paced.py) from core 1: the harness's nginx mock directly, the bare floor (uvicorn) and one
# uvicorn worker of ours per settlement mode, SETTLE_AFTER_ANSWER=true (the default) and false, each pinned
# to core 0. Needs ../shared/bench/setup.sh and the bare floor's venv (bench/run.sh makes /tmp/bare-venv).
#   bench/paced.sh            # PACED_ARGS="--requests 5000 --pause-ms 20" bench/paced.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/scratch.sh"
PORT=3000

paced() {  # name url
  echo "$1: $(taskset -c 1 "$ROOT/.venv/bin/python" "$ROOT/bench/paced.py" "$2" "$KEY" ${PACED_ARGS:-})"
}
until curl -sf -o /dev/null -d '{}' "http://127.0.0.1:18080/v1/chat/completions"; do sleep 0.3; done
paced direct "http://127.0.0.1:18080/v1/chat/completions"
(cd "$HARNESS" && BARE_VENV="${BARE_VENV:-/tmp/bare-venv}" exec taskset -c 0 peers/bare/start.sh django uvicorn "$PORT" aiohttp) &
server=$!
until curl -sf -o /dev/null -d '{}' "http://127.0.0.1:$PORT/v1/chat/completions"; do sleep 0.3; done
paced "bare floor" "http://127.0.0.1:$PORT/v1/chat/completions"
kill "$server"; wait "$server" || true
for mode in true false; do
  (cd "$ROOT" && SETTLE_AFTER_ANSWER=$mode exec taskset -c 0 scripts/serve.sh uvicorn 127.0.0.1 "$PORT") &
  server=$!
  until curl -sf -o /dev/null "http://127.0.0.1:$PORT/api/status"; do sleep 0.3; done
  paced "ours, SETTLE_AFTER_ANSWER=$mode" "http://127.0.0.1:$PORT/v1/chat/completions"
  kill "$server"; wait "$server" || true
done
