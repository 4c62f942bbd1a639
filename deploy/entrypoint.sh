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
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."

prepare() {
  python manage.py migrate --noinput
  python manage.py bootstrap_admin --port "${PORT:-3000}"
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
      --schedule "${DATA_DIR:-data}/celerybeat-schedule" "$@"
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
