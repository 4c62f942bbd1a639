# Sourced by bench/soak.sh and bench/paced.sh: a scratch DATA_DIR provisioned with the bench key ($KEY) and
# the harness's nginx mock on core 1 (port 18080, 50 chunks per stream). Sets ROOT, HARNESS, WORK, KEY and
# pids (what `stop` kills on exit). Needs ../shared/bench/setup.sh once (nginx, wrk, /tmp/bench-venv).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HARNESS="${BENCH_HARNESS:-$ROOT/../shared/bench}"
WORK="$(mktemp -d "/tmp/gateway-$(basename "$0" .sh).XXXXXX")"
chmod 755 "$WORK"  # nginx workers read the mock bodies from here
export DATA_DIR="$WORK/data" SESSION_SECRET="bench-session-secret"
mkdir -p "$DATA_DIR"
pids=()
stop() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap stop EXIT

KEY="$("$ROOT/.venv/bin/python" "$ROOT/bench/provision.py")"
/tmp/bench-venv/bin/python -c "import sys; sys.path.insert(0, '$HARNESS/mock'); import nginx_conf; \
open('$WORK/nginx.conf', 'w').write(nginx_conf.render('$WORK', 18080, 50))"
taskset -c 1 nginx -c "$WORK/nginx.conf" -p "$WORK" & pids+=($!)  # the harness's conf runs nginx in the foreground
