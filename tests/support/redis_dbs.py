"""Redis databases the tests use for themselves. scripts/test-matrix.sh runs two lanes at once, each with
its own range of databases (TEST_REDIS_DB_OFFSET), so their Celery queues never meet."""

import os

OFFSET = int(os.environ.get("TEST_REDIS_DB_OFFSET", "0"))
SERVER = os.environ.get("TEST_REDIS", "redis://127.0.0.1:6379")  # as scripts/test-matrix.sh reads it


def redis_url(db: int) -> str:
    return f"{SERVER}/{db - OFFSET}"
