#!/usr/bin/env bash
# Memory soak: one uvicorn worker on core 0 under `wrk -c32` non-stream and `wrk -c8` stream requests (the
# harness's nginx mock, 50 chunks per stream) from core 1 for SOAK_SECONDS (600); prints the worker's RSS
# every 30 s, then both wrk summaries. Needs ../shared/bench/setup.sh once (nginx, wrk, /tmp/bench-venv).
#   bench/soak.sh            # SOAK_SECONDS=60 bench/soak.sh for a short check
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/scratch.sh"
SECONDS_TOTAL="${SOAK_SECONDS:-600}"
PORT=3000
(cd "$ROOT" && exec taskset -c 0 scripts/serve.sh uvicorn 127.0.0.1 "$PORT") & pids+=($!)

printf '{"model":"bench-fast","messages":[{"role":"user","content":"Say hello."}]}' >"$WORK/whole.json"
printf '{"model":"bench-fast","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Say hello."}]}' >"$WORK/stream.json"
until curl -sf -o /dev/null -H "Authorization: Bearer $KEY" -d @"$WORK/whole.json" \
  "http://127.0.0.1:$PORT/v1/chat/completions"; do sleep 0.5; done
worker="$(pgrep -f "uvicorn gateway_project" | head -1)"
rss() { awk '/VmRSS/ {printf "%.1f MB", $2 / 1024}' "/proc/$worker/status"; }
echo "idle RSS after the first request: $(rss)"

url="http://127.0.0.1:$PORT/v1/chat/completions"
for kind in whole:32 stream:8; do
  BENCH_BODY_FILE="$WORK/${kind%%:*}.json" BENCH_KEY="$KEY" taskset -c 1 wrk -t1 -c"${kind##*:}" \
    -d"${SECONDS_TOTAL}s" --timeout 30s -s "$HARNESS/load/post.lua" "$url" >"$WORK/wrk-${kind%%:*}.txt" &
  pids+=($!)
done
for ((t = 30; t <= SECONDS_TOTAL; t += 30)); do
  sleep 30
  echo "RSS at ${t} s: $(rss)"
done
wait "${pids[-1]}" "${pids[-2]}"
for kind in whole stream; do echo "$kind: $(grep -E 'requests in|Non-2xx|Socket errors' "$WORK/wrk-$kind.txt" | tr '\n' ' ')"; done
echo "RSS at the end, idle: $(rss)"
