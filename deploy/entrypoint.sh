#!/usr/bin/env bash
# Start one role of the gateway. The Docker image's entrypoint; works the same from a checkout with the
# virtualenv on PATH (`PATH=.venv/bin:$PATH deploy/entrypoint.sh check`).
#
#   web      migrate + create the first admin (unless RUN_MIGRATIONS=false), collect static files into
#            DATA_DIR/static, then serve on 0.0.0.0:$PORT (3000) with $SERVER (uvicorn; or daphne,
#            granian: scripts/serve.sh) in $WEB_WORKERS processes (1). Extra arguments go to the server.
#   worker   celery -A gateway_project worker (extra arguments go to celery)
#   beat     celery -A gateway_project beat, schedule file in DATA_DIR
#   migrate  migrate + create the first admin, then exit
#   check    Django's system checks, then exit
#   manage   python manage.py ARGS...
#   other    run as given (e.g. `bash`)
#
# Started as root (the image's default), it gives DATA_DIR to $GATEWAY_USER (gateway, uid 10001) -- a
# bind-mounted host directory is usually root's -- and runs the role as that user. Started as another
# user (docker run --user), it checks that DATA_DIR is writable and otherwise says what to run on the host.
set -euo pipefail
script="$(readlink -f "$0")"
cd "$(dirname "$script")/.."

data_dir="${DATA_DIR:-data}"
gateway_user="${GATEWAY_USER:-gateway}"

if [ "$(id -u)" = 0 ] && id "$gateway_user" >/dev/null 2>&1; then
  mkdir -p "$data_dir"
  # -h: a symbolic link in DATA_DIR is given away itself, never what it points at.
  find "$data_dir" \! -user "$gateway_user" -exec chown -h "$gateway_user:$(id -gn "$gateway_user")" {} +
  exec setpriv --reuid="$gateway_user" --regid="$(id -g "$gateway_user")" --init-groups -- bash "$script" "$@"
fi

if ! { mkdir -p "$data_dir" && [ -w "$data_dir" ]; } 2>/dev/null; then
  echo "error: $data_dir is not writable by uid $(id -u) (gid $(id -g)), the user this container runs as." >&2
  echo "  On the host: sudo chown -R $(id -u):$(id -g) <the directory mounted at $data_dir>" >&2
  echo "  or start the container as root (the image's default): it then fixes the ownership itself." >&2
  exit 1
fi

prepare() {
  python manage.py migrate --noinput
  local said
  said="$(python manage.py bootstrap_admin --port "${PORT:-3000}")"
  printf '%s\n' "$said"
  if [[ "$said" == *"created the first admin"* ]]; then
    # The log may be gone by the time someone looks (a recreated container starts a new one).
    (umask 077 && printf '%s\n' "$said" >"$data_dir/initial_admin.txt")
    echo "the first admin's credentials are also in $data_dir/initial_admin.txt (mode 600): delete it once read"
  fi
}

role="${1:-web}"
if [ $# -gt 0 ]; then shift; fi

case "$role" in
  web)
    if [ "${RUN_MIGRATIONS:-true}" = true ]; then prepare; fi
    python manage.py collectstatic --noinput -v0
    exec scripts/serve.sh "${SERVER:-uvicorn}" 0.0.0.0 "${PORT:-3000}" "$@"
    ;;
  worker)
    exec celery -A gateway_project worker --loglevel "${LOG_LEVEL:-INFO}" "$@"
    ;;
  beat)
    exec celery -A gateway_project beat --loglevel "${LOG_LEVEL:-INFO}" \
      --schedule "$data_dir/celerybeat-schedule" "$@"
    ;;
  migrate)
    prepare
    ;;
  check)
    exec python manage.py check "$@"
    ;;
  manage)
    exec python manage.py "$@"
    ;;
  *)
    exec "$role" "$@"
    ;;
esac
