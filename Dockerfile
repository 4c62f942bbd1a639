# syntax=docker/dockerfile:1
# Multi-stage build: wheels are compiled in `builder` (mysqlclient needs a compiler and the MariaDB
# headers); the runtime stage gets only the MariaDB client library and the installed packages.
#   docker build -t llm-gateway .
#   docker run -p 3000:3000 -v gateway-data:/data -e SESSION_SECRET=... llm-gateway
# Roles (see deploy/entrypoint.sh): web (default), worker, beat, migrate, check, manage ARGS.

FROM python:3.11-slim AS builder
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev libmariadb-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /build
# Runtime packages only: the test tools are in requirements-test.txt.
COPY requirements.txt .
RUN pip wheel --no-cache-dir --wheel-dir /wheels -r requirements.txt \
    && cp requirements.txt /wheels/

FROM python:3.11-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmariadb3 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid gateway --home-dir /app --no-create-home gateway \
    && mkdir /data && chown gateway:gateway /data
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /wheels -r /wheels/requirements.txt
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DATA_DIR=/data \
    PORT=3000
WORKDIR /app
# Application code stays owned by root: the gateway user can read it, not change it.
COPY . /app
RUN python -m compileall -q /app
# No USER: the entrypoint starts as root only to give /data to `gateway` (a bind-mounted host directory is
# usually root's), then runs every role as `gateway`. `docker run --user 10001:10001` works too.
VOLUME ["/data"]
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/api/status' % os.environ.get('PORT', '3000'), timeout=4)"
ENTRYPOINT ["bash", "/app/deploy/entrypoint.sh"]
CMD ["web"]
