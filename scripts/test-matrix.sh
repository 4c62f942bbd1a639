#!/usr/bin/env bash
# The whole suite on SQLite without Redis, the database-sensitive tests (marker `backend`) on PostgreSQL
# and MariaDB, and the cache-sensitive ones (marker `cache`) on each database with Redis.
# Two lanes run at once, one per core: SQLite's legs, and the PostgreSQL and MariaDB legs. Each lane has its
# own Redis databases (TEST_REDIS_DB_OFFSET, tests/support/redis_dbs.py); each leg's output is printed when its
# lane ends. A database or Redis server that does not answer fails the run (CI must test every backend);
# on a machine without them, ALLOW_MISSING_BACKENDS=true skips those legs with a message instead.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTEST=".venv/bin/pytest"
PG_DSN="${TEST_PG_DSN:-postgres://postgres@127.0.0.1:5432/test}"
MARIADB_DSN="${TEST_MARIADB_DSN:-mysql://root@127.0.0.1:3306/test}"
REDIS="${TEST_REDIS:-redis://127.0.0.1:6379}"
LOGS="$(mktemp -d /tmp/gateway-test-matrix.XXXXXX)"

reachable() {  # host port
  timeout 2 bash -c ">/dev/tcp/$1/$2" 2>/dev/null
}

missing() {  # what: a leg whose server does not answer fails the matrix unless ALLOW_MISSING_BACKENDS=true
  if [ "${ALLOW_MISSING_BACKENDS:-false}" = true ]; then
    echo "=== SKIPPED $1 (ALLOW_MISSING_BACKENDS=true)"
  else
    echo "=== MISSING $1: start it, or run with ALLOW_MISSING_BACKENDS=true to skip it"
    echo "$1 (server missing)" >>"$LOGS/failed"
  fi
}

leg() {  # name, env assignments..., -- pytest args...
  local name=$1; shift
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  local started=$SECONDS
  echo "=== $name"
  if ! env "${envs[@]}" "$PYTEST" "$@"; then echo "$name" >>"$LOGS/failed"; fi
  echo "=== $name: $((SECONDS - started)) s"
}

sqlite_lane() {  # Redis databases 15 (cache), 14, 12 (Celery tests)
  leg "sqlite, memory cache (whole suite)" SQL_DSN= REDIS_CONN_STRING= -- -q --durations=15
  if reachable 127.0.0.1 6379; then
    leg "sqlite + redis" SQL_DSN= REDIS_CONN_STRING="$REDIS/15" -- -q --durations=15 -m cache
  else
    missing "sqlite + redis: nothing answers on 127.0.0.1:6379"
  fi
}

server_lane() {  # Redis databases 10 (cache), 9, 7 (Celery tests); half the fuzz examples of SQLite's leg
  export TEST_REDIS_DB_OFFSET=5 FUZZ_SCALE=0.5
  local backend name dsn port
  for backend in "postgresql $PG_DSN 5432" "mariadb $MARIADB_DSN 3306"; do
    read -r name dsn port <<<"$backend"
    if ! reachable 127.0.0.1 "$port"; then
      missing "$name legs: nothing answers on 127.0.0.1:$port"
      continue
    fi
    leg "$name, memory cache" SQL_DSN="$dsn" REDIS_CONN_STRING= -- -q --durations=15 -m backend
    if reachable 127.0.0.1 6379; then
      leg "$name + redis" SQL_DSN="$dsn" REDIS_CONN_STRING="$REDIS/10" -- -q --durations=15 -m cache
    else
      missing "$name + redis: nothing answers on 127.0.0.1:6379"
    fi
  done
}

started=$SECONDS
sqlite_lane >"$LOGS/sqlite.log" 2>&1 &
sqlite=$!
server_lane >"$LOGS/servers.log" 2>&1 &
servers=$!
wait "$sqlite" "$servers"
cat "$LOGS/sqlite.log" "$LOGS/servers.log"
echo "=== matrix: $((SECONDS - started)) s"
if [ -s "$LOGS/failed" ]; then
  printf 'FAILED legs: %s\n' "$(paste -sd, "$LOGS/failed")"
  exit 1
fi
echo "all matrix legs passed"
