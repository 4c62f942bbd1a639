"""Dockerfile, compose file, entrypoint and nginx config: what can be checked without a Docker engine."""

import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.support.live_server import free_port
from tests.support.redis_dbs import redis_url

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OUR_SERVICES = ("gateway", "worker", "beat")
# Variables for the interpreter, not the gateway.
RUNTIME_VARIABLES = {"PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"}


def load_yaml(path: Path) -> dict:
    """PyYAML is not a dependency of the gateway: use it when importable here or in the system python3."""
    try:
        import yaml
    except ImportError:
        system_python = shutil.which("python3", path="/usr/bin:/bin")
        script = "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)"
        if system_python is None:
            pytest.skip("PyYAML is not installed (neither in the virtualenv nor for /usr/bin/python3)")
        done = subprocess.run([system_python, "-c", script, str(path)], capture_output=True, text=True)
        if done.returncode != 0 and "No module named 'yaml'" in done.stderr:
            pytest.skip("PyYAML is not installed (neither in the virtualenv nor for /usr/bin/python3)")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)
    return yaml.safe_load(path.read_text())


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def instructions(name: str) -> list[str]:
    return [args for instruction, args in dockerfile() if instruction == name]


def read_by_settings(name: str) -> bool:
    sources = (ROOT / "gateway_project" / "settings.py", ROOT / "gateway_project" / "env.py")
    return any(f'"{name}"' in source.read_text() for source in sources)


def read_by_entrypoint(name: str) -> bool:
    return f"${{{name}" in (DEPLOY / "entrypoint.sh").read_text()


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_yaml(DEPLOY / "docker-compose.yml")


def test_compose_file_runs_gateway_worker_beat_postgres_and_redis(compose):
    services = compose["services"]
    assert set(services) == {*OUR_SERVICES, "postgres", "redis"}
    for name, role in zip(OUR_SERVICES, ("web", "worker", "beat"), strict=True):
        service = services[name]
        assert service["command"][0] == role
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        assert service["image"] == services["gateway"]["image"]
        assert {"SQL_DSN", "REDIS_CONN_STRING", "SESSION_SECRET"} <= set(service["environment"])
        assert service["volumes"] == ["gateway-data:/data"]
    assert services["gateway"]["environment"]["SQL_DSN"].startswith("postgres://gateway:")
    assert "@postgres:5432/gateway" in services["gateway"]["environment"]["SQL_DSN"]
    assert services["gateway"]["environment"]["REDIS_CONN_STRING"].startswith("redis://redis:6379/")
    assert set(services["gateway"]["depends_on"]) == {"postgres", "redis"}
    for name in ("worker", "beat"):  # the web service migrates; the others wait for it
        assert services[name]["depends_on"]["gateway"]["condition"] == "service_healthy"
    assert services["postgres"]["healthcheck"] and services["redis"]["healthcheck"]


def test_every_variable_the_deploy_files_set_is_read(compose):
    from_compose = {name for service in OUR_SERVICES for name in compose["services"][service]["environment"]}
    from_dockerfile = {match for args in instructions("ENV") for match in re.findall(r"(\w+)=", args)}
    assert {"SQL_DSN", "DATA_DIR", "PORT"} <= from_compose | from_dockerfile
    unread = {
        name
        for name in (from_compose | from_dockerfile) - RUNTIME_VARIABLES
        if not (read_by_settings(name) or read_by_entrypoint(name))
    }
    assert not unread, f"set by the deploy files but read by nothing: {sorted(unread)}"


def test_dockerfile_is_multi_stage_non_root_with_a_health_check():
    stages = instructions("FROM")
    assert len(stages) == 2 and all(stage.startswith("python:3.11-slim") for stage in stages)
    runtime = [args for instruction, args in dockerfile()[_last_from() :] if instruction == "RUN"]
    assert not any("gcc" in args or "-dev" in args for args in runtime), "compilers stay in the builder stage"
    assert "libmariadb3" in " ".join(runtime)
    # Root only until the entrypoint has given /data to the gateway user (test_entrypoint_gives_*).
    assert not instructions("USER")
    assert "--uid 10001" in " ".join(instructions("RUN")) and "setpriv" in (DEPLOY / "entrypoint.sh").read_text()
    (health,) = instructions("HEALTHCHECK")
    assert "/api/status" in health and "urllib" in health
    assert instructions("EXPOSE") == ["3000"] and '"/data"' in instructions("VOLUME")[0]
    assert "deploy/entrypoint.sh" in instructions("ENTRYPOINT")[0]
    assert "DATA_DIR=/data" in " ".join(instructions("ENV"))
    # The image gets the runtime packages only; test tools live in requirements-test.txt.
    builder = " ".join(args for instruction, args in dockerfile()[: _last_from()] if instruction in ("COPY", "RUN"))
    assert "requirements.txt" in builder and "requirements-test.txt" not in builder
    assert "pytest" not in (ROOT / "requirements.txt").read_text()


def _last_from() -> int:
    return max(i for i, (instruction, _) in enumerate(dockerfile()) if instruction == "FROM")


def docker_ignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` out of the build context, read as Docker reads it: the last matching
    line wins, `!` keeps, `**` spans directories, `*` and `?` stay inside one, and a directory's match
    covers everything under it."""
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for line in (line for line in lines if line and not line.startswith("#")):
        pattern = dockerignore_regex(line.removeprefix("!"))
        if any(pattern.fullmatch(prefix) for prefix in prefixes):
            ignored = not line.startswith("!")
    return ignored


def dockerignore_regex(pattern: str) -> re.Pattern:
    wildcards = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    pieces = re.split(r"(\*\*/|\*\*|\*|\?)", pattern)
    return re.compile("".join(wildcards.get(piece) or re.escape(piece) for piece in pieces))


@pytest.mark.parametrize(
    "path",
    [".git/config", ".venv/bin/python", "data/gateway.sqlite3", "session_secret", "tests/conftest.py"]
    + [".env", ".env.local", "deploy/.env", "deploy/.env.production", "some/where/deep/.env"],
)
def test_dockerignore_keeps_local_state_and_secrets_out(path):
    assert docker_ignored(path)


@pytest.mark.parametrize("path", ["deploy/.env.example", "deploy/entrypoint.sh", "gateway_project/settings.py"])
def test_dockerignore_keeps_what_the_image_needs(path):
    assert not docker_ignored(path)


def test_no_environment_file_in_the_checkout_reaches_the_image():
    found = [
        str(path.relative_to(ROOT))
        for path in ROOT.rglob(".env*")
        if path.relative_to(ROOT).parts[0] not in (".venv", ".git")
    ]
    assert not [path for path in found if not path.endswith(".env.example") and not docker_ignored(path)]


def entrypoint_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """A standalone SQLite deployment in `data_dir`, whatever database the test run itself uses."""
    env = {k: v for k, v in os.environ.items() if k not in ("SQLITE_PATH", "SESSION_SECRET")}
    env.update(
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
        DATA_DIR=str(data_dir),
        SQL_DSN="",
        REDIS_CONN_STRING="",
        CELERY_BROKER_URL="",
    )
    return {**env, **extra}


def entrypoint(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(DEPLOY / "entrypoint.sh"), *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_entrypoint_migrates_and_checks_outside_docker(tmp_path):
    env = entrypoint_env(tmp_path)
    first = entrypoint("migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert "created the first admin" in first.stdout
    assert (tmp_path / "gateway.sqlite3").is_file() and (tmp_path / "session_secret").is_file()
    credentials = tmp_path / "initial_admin.txt"
    assert credentials.stat().st_mode & 0o777 == 0o600
    assert "username: admin" in credentials.read_text() and credentials.read_text() in first.stdout
    again = entrypoint("migrate", env=env)
    assert again.returncode == 0 and "users exist: no admin created" in again.stdout
    assert credentials.read_text() in first.stdout  # written once, with the first admin
    check = entrypoint("check", env=env)
    assert check.returncode == 0 and "no issues" in check.stdout
    passthrough = entrypoint("manage", "import_oneapi", "--help", env=env)
    assert passthrough.returncode == 0 and "--dry-run" in passthrough.stdout


@pytest.mark.parametrize("server", ["uvicorn", "daphne", "granian"])
def test_web_role_serves_and_passes_the_image_health_check(tmp_path, server):
    port = free_port()
    env = entrypoint_env(tmp_path, PORT=str(port), SERVER=server)
    web = subprocess.Popen(
        ["bash", str(DEPLOY / "entrypoint.sh"), "web"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        status = wait_for_status(web, port)
        assert (status["database"], status["cache"], status["task_runner"]) == ("sqlite", "memory", "embedded")
        (health,) = instructions("HEALTHCHECK")
        command = health.split(" CMD ", 1)[1]
        probe = subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True, timeout=30)
        assert probe.returncode == 0, probe.stderr
        assert (tmp_path / "static" / "admin").is_dir()  # collected for nginx
    finally:
        web.send_signal(signal.SIGTERM)  # the entrypoint exec'd the server: this is the server's pid
        web.wait(20)
    refused = subprocess.run(["sh", "-c", command], env=env, capture_output=True, timeout=30)
    assert refused.returncode != 0  # the probe does fail when nothing answers


def wait_for_status(process: subprocess.Popen, port: int, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"web role exited: {process.stdout.read().decode()[-3000:]}")
        try:
            return httpx.get(f"http://127.0.0.1:{port}/api/status", timeout=2).json()
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError("web role did not answer /api/status in time")


def redis_reachable() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.mark.skipif(not redis_reachable(), reason="no Redis on 127.0.0.1:6379 for the Celery broker")
@pytest.mark.parametrize(
    ("role", "args", "started"),
    [
        # Its own queue: this worker must not take tasks meant for another test run's worker.
        ("worker", ["--pool", "solo", "--queues", f"deploy-test-{os.getpid()}"], "ready."),
        # Logged once the schedule is open: a SIGTERM before that sends celery beat into a loop.
        ("beat", ["--loglevel", "DEBUG"], "beat: Ticking with max interval"),
    ],
)
def test_celery_roles_start_outside_docker(tmp_path, role, args, started):
    env = entrypoint_env(tmp_path, CELERY_BROKER_URL=redis_url(11))
    process = subprocess.Popen(
        ["bash", str(DEPLOY / "entrypoint.sh"), role, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            line = process.stdout.readline()
            seen.append(line)
            if started in line:
                break
        assert any(started in line for line in seen), "".join(seen)[-3000:]
        if role == "beat":
            assert list(tmp_path.glob("celerybeat-schedule*"))  # kept in DATA_DIR
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed here")
def test_nginx_config_passes_nginx_t(tmp_path):
    (tmp_path / "logs").mkdir()
    wrapper = tmp_path / "nginx.conf"
    wrapper.write_text(f"events {{}}\nhttp {{ include {DEPLOY / 'nginx.conf'}; }}\n")
    done = subprocess.run(
        ["nginx", "-t", "-p", str(tmp_path), "-c", str(wrapper), "-g", f"pid {tmp_path}/nginx.pid; error_log stderr;"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert "proxy_buffering off" in (DEPLOY / "nginx.conf").read_text()


root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root, as the container starts")


@pytest.fixture
def root_owned_data_dir():
    """A directory as a bind mount from the host usually is: root's, mode 755."""
    path = Path(tempfile.mkdtemp(prefix="gateway-data-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@root_only
def test_entrypoint_gives_a_root_owned_data_dir_to_the_gateway_user_and_runs_as_it(root_owned_data_dir):
    (root_owned_data_dir / "left-by-root").write_text("")
    outside = root_owned_data_dir.with_name(root_owned_data_dir.name + "-outside")
    outside.write_text("")
    (root_owned_data_dir / "link").symlink_to(outside)
    nobody = pwd.getpwnam("nobody")
    env = entrypoint_env(root_owned_data_dir, GATEWAY_USER="nobody")
    # A shell command as the role: this machine's Python lives where only root may read.
    done = entrypoint("sh", "-c", 'id -u && echo written >"$DATA_DIR/by-the-role"', env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(nobody.pw_uid)
    owners = {path.lstat().st_uid for path in [root_owned_data_dir, *root_owned_data_dir.iterdir()]}
    assert owners == {nobody.pw_uid} and (root_owned_data_dir / "by-the-role").is_file()
    assert outside.stat().st_uid == 0  # a link is given away, never what it points at
    outside.unlink()


@root_only
def test_entrypoint_started_as_another_user_says_how_to_fix_the_data_dir(root_owned_data_dir):
    env = entrypoint_env(root_owned_data_dir)
    as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    done = subprocess.run(
        [*as_nobody, "bash", str(DEPLOY / "entrypoint.sh"), "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    nobody = pwd.getpwnam("nobody")
    assert done.returncode != 0
    assert (
        f"sudo chown -R {nobody.pw_uid}:{nobody.pw_gid} <the directory mounted at {root_owned_data_dir}>" in done.stderr
    )
    assert not list(root_owned_data_dir.iterdir())
