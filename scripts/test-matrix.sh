#!/usr/bin/env bash
# The whole suite on SQLite without Redis, then the database- and cache-sensitive tests (marker
# `backend`) on SQLite+Redis, PostgreSQL and MariaDB, each with and without Redis.
# A backend whose server does not answer is skipped with a message; in CI they all answer.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTEST=".venv/bin/pytest"
PG_DSN="${TEST_PG_DSN:-postgres://postgres@127.0.0.1:5432/test}"
MARIADB_DSN="${TEST_MARIADB_DSN:-mysql://root@127.0.0.1:3306/test}"
REDIS_URL="${TEST_REDIS_URL:-redis://127.0.0.1:6379/15}"
failed=()

reachable() {  # host port
  timeout 2 bash -c ">/dev/tcp/$1/$2" 2>/dev/null
}

leg() {  # name, env assignments..., -- pytest args...
  local name=$1; shift
  local envs=()
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  echo "=== $name"
  if ! env "${envs[@]}" "$PYTEST" "$@"; then failed+=("$name"); fi
}

leg "sqlite, memory cache (whole suite)" SQL_DSN= REDIS_CONN_STRING= -- -q
if reachable 127.0.0.1 6379; then
  leg "sqlite + redis" SQL_DSN= REDIS_CONN_STRING="$REDIS_URL" -- -q -m cache
else
  echo "=== SKIPPED redis legs: nothing answers on 127.0.0.1:6379"
fi
if reachable 127.0.0.1 5432; then
  leg "postgresql, memory cache" SQL_DSN="$PG_DSN" REDIS_CONN_STRING= -- -q -m backend
  reachable 127.0.0.1 6379 && leg "postgresql + redis" SQL_DSN="$PG_DSN" REDIS_CONN_STRING="$REDIS_URL" -- -q -m cache
else
  echo "=== SKIPPED postgresql legs: nothing answers on 127.0.0.1:5432"
fi
if reachable 127.0.0.1 3306; then
  leg "mariadb, memory cache" SQL_DSN="$MARIADB_DSN" REDIS_CONN_STRING= -- -q -m backend
  reachable 127.0.0.1 6379 && leg "mariadb + redis" SQL_DSN="$MARIADB_DSN" REDIS_CONN_STRING="$REDIS_URL" -- -q -m cache
else
  echo "=== SKIPPED mariadb legs: nothing answers on 127.0.0.1:3306"
fi

if [ ${#failed[@]} -gt 0 ]; then
  printf 'FAILED legs: %s\n' "${failed[*]}"
  exit 1
fi
echo "all matrix legs passed"
