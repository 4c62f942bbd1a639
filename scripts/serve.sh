#!/usr/bin/env bash
# Serve the gateway in the foreground with one of the supported ASGI servers:
#   scripts/serve.sh daphne|uvicorn|granian HOST PORT [more arguments for the server]
# daphne is what `make run` starts, through gateway_project/daphne_server.py (daphne refusing oversized bodies
# as they arrive and waiting for slow readers); uvicorn (uvloop + httptools) is the production server of the Docker
# image: measured faster on the full request path (bench/RESULTS.md).
# WEB_WORKERS=N (uvicorn, granian): N processes on one port; give each a core of its own.
# PROXY_HEADERS=true: take the client address from X-Forwarded-For, only behind a proxy that overwrites it
# (client addresses decide key IP allow-lists).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
BIN=.venv/bin
[ -x "$BIN/daphne" ] || BIN="$(dirname "$(command -v python)")"
server=$1 host=$2 port=$3
shift 3
workers=${WEB_WORKERS:-1}
proxy=${PROXY_HEADERS:-false}
app=gateway_project.asgi:application
case "$server" in
  daphne)
    flags=(); [ "$proxy" = true ] && flags=(--proxy-headers)
    exec "$BIN/python" -m gateway_project.daphne_server -b "$host" -p "$port" "${flags[@]}" "$@" "$app" ;;
  uvicorn)
    flags=(--no-proxy-headers); [ "$proxy" = true ] && flags=(--proxy-headers --forwarded-allow-ips '*')
    exec "$BIN/uvicorn" "$app" --host "$host" --port "$port" --workers "$workers" --loop uvloop --http httptools \
      --lifespan on --no-access-log --log-level warning "${flags[@]}" "$@" ;;
  granian)
    exec "$BIN/granian" --interface asgi --host "$host" --port "$port" --workers "$workers" --loop uvloop \
      --no-ws --log-level warning "$@" "$app" ;;
  *) echo "unknown server $server (daphne, uvicorn or granian)" >&2; exit 2 ;;
esac
