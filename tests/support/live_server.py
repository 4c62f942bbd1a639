"""Start a real ASGI server (daphne through our launcher, uvicorn or granian, as scripts/serve.sh starts them) on
a free port against the test database.

A server settles its charges the way the test process does (tests/conftest.py: before the answer) unless a
test passes SETTLE_AFTER_ANSWER=true, the production default; such a test waits for the ledger with
`wait_until` or `consume_logs`."""

import contextlib
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import httpx
from django.conf import settings
from django.db import connection

from billing.models import Log
from tests.support.relay_client import HELLO

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_env() -> dict[str, str]:
    """Environment that points a server process at the database this test process uses."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return {"SQL_DSN": "", "SQLITE_PATH": str(db["NAME"])}
    scheme = "postgres" if connection.vendor == "postgresql" else "mysql"
    auth = quote(db["USER"] or "", safe="") + (":" + quote(db["PASSWORD"], safe="") if db["PASSWORD"] else "")
    return {"SQL_DSN": f"{scheme}://{auth}@{db['HOST']}:{database_port()}/{db['NAME']}"}


def database_port() -> int:
    default = 5432 if connection.vendor == "postgresql" else 3306
    return int(connection.settings_dict["PORT"] or default)


def wait_until(predicate, timeout: float = 20, what: str = "condition not reached in time"):
    """Poll a predicate (it may query the database) until it gives a true value, and return that value."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, what
        time.sleep(0.05)
    return value


def consume_logs(count: int, **filters) -> list[Log]:
    """The consume logs matching `filters`, oldest first, once a server has written at least `count`."""

    def enough() -> list[Log] | None:
        logs = list(Log.objects.filter(type="consume", **filters).order_by("id"))
        return logs if len(logs) >= count else None

    return wait_until(enough)


def set_prices(server_url: str, access_token: str, models: list[str], **ratios: float) -> None:
    """The operator's prices for `models` through the management API: each ratio by its new-api name
    (model_ratio, completion_ratio, cache_ratio, create_cache_ratio, create_cache_ratio_1h, ...)."""
    prices = {name: dict.fromkeys(models, ratio) for name, ratio in ratios.items()}
    answer = httpx.patch(f"{server_url}/api/pricing", json=prices, headers={"Authorization": f"Bearer {access_token}"})
    assert answer.status_code == 200, answer.text


def child_pids(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        return [int(child) for child in children.read().split()]


class LiveGateway:
    def __init__(self, extra_env: dict[str, str] | None = None, server: str = "daphne") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            **database_env(),
            "REDIS_CONN_STRING": settings.REDIS_CONN_STRING,
            "SESSION_SECRET": settings.SECRET_KEY,
            "SYNC_FREQUENCY": "1",
            "SETTLE_AFTER_ANSWER": str(settings.SETTLE_AFTER_ANSWER).lower(),
            "SETTLEMENT_JOURNAL_DIR": str(settings.SETTLEMENT_JOURNAL_DIR),
            **(extra_env or {}),
        }
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 -- as long as the server runs; stop() closes it
        self.process = subprocess.Popen(
            [ROOT / "scripts" / "serve.sh", server, "127.0.0.1", str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            # A file, not a pipe: a pipe nobody reads fills with the server's log and then stops the server.
            stderr=self.log,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.log_text()[-2000:]}")
            try:
                httpx.get(f"{self.url}/v1/models", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("gateway did not start in time")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()

    def log_text(self) -> str:
        """What the server wrote to stderr so far."""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def memory_bytes(self) -> int:
        """Resident memory of the server and its worker processes (granian serves from a child) (Linux)."""
        total = 0
        for pid in [self.process.pid, *child_pids(self.process.pid)]:
            with open(f"/proc/{pid}/status") as status:
                total += next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))
        return total

    def open_fds(self) -> int:
        """File descriptors the server process holds (Linux)."""
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def connections_to(self, port: int) -> int:
        """The server's TCP connections to 127.0.0.1:`port`, in any state but TIME_WAIT (Linux)."""
        inodes = {target[8:-1] for target in self.fd_targets() if target.startswith("socket:[")}
        connected = set()  # of inodes: a table read while connections come and go can list a row twice
        with open(f"/proc/{self.process.pid}/net/tcp") as table:
            for row in list(table)[1:]:
                fields = row.split()
                remote_port = int(fields[2].split(":")[1], 16)
                if remote_port == port and fields[9] in inodes:
                    connected.add(fields[9])
        return len(connected)

    def database_connections(self) -> int:
        """Connections the server holds to the test database: to its port, or handles of the SQLite file."""
        if connection.vendor == "sqlite":
            return self.fd_targets().count(str(connection.settings_dict["NAME"]))
        return self.connections_to(database_port())

    def fd_targets(self) -> list[str]:
        """What the file descriptors of the server and its worker processes point at (Linux)."""
        targets = []
        for pid in [self.process.pid, *child_pids(self.process.pid)]:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    targets.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        return targets


SYNC_FREQUENCY = 1  # what LiveGateway sets


def chat(gateway: LiveGateway, key: str) -> int:
    return httpx.post(
        f"{gateway.url}/v1/chat/completions", json=HELLO, headers={"Authorization": f"Bearer {key}"}, timeout=10
    ).status_code


def status_within(gateway: LiveGateway, key: str, expected: int, seconds: float) -> float:
    """Seconds until `gateway` answers `expected`; fails after `seconds`."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if chat(gateway, key) == expected:
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"still not {expected} after {seconds} s")
