"""Shared fixtures: the real Docker engine, a check that no test leaves a container behind, and
redis-server instances of a test's own.

Tests that need Docker or Redis fail, never skip, under ``CI=true`` when the engine, the executor
image or redis-server is missing: a skipped safety test would be a hidden failure. Elsewhere they
skip with the reason.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Optional

import docker
import pytest
import redis

from jupyter_exec_ext.sandbox import LABEL, DockerSandbox, SandboxConfig
from jupyter_exec_ext.sandbox.config import OWNER_LABEL

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
#: Containers of this test session carry this owner, so parallel sessions never see each other's.
TEST_OWNER = os.environ.get("DOCKER_EXECUTOR_OWNER") or f"pytest-{os.getpid()}"


def require(condition: bool, reason: str) -> None:
    """Fails under CI, skips elsewhere, when a real part the test needs is missing."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: a missing part is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


def our_containers(client: docker.DockerClient, owner: str = TEST_OWNER) -> list:
    """This session's sandbox containers (all sessions' with ``owner=None``)."""
    label = LABEL if owner is None else f"{OWNER_LABEL}={owner}"
    return client.api.containers(all=True, filters={"label": label})


@pytest.fixture(scope="session")
def docker_client():
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except Exception as e:  # any failure to reach the engine means the same thing here
        require(False, f"Docker engine not reachable: {e}")
    yield client
    client.close()


@pytest.fixture(scope="session")
def executor_image(docker_client) -> str:
    image = SandboxConfig.from_env(owner=TEST_OWNER).image
    try:
        docker_client.api.inspect_image(image)
    except docker.errors.ImageNotFound:
        require(False, f"executor image {image} is missing; run `jupyter exec-ext build-image`")
    return image


#: Run inside a container by ``signal_runner``: finds the runner by its command line.
_SIGNAL_RUNNER = (
    "import os, sys\n"
    "for pid in os.listdir('/proc'):\n"
    "    if pid.isdigit() and open('/proc/%s/cmdline' % pid, 'rb').read().split(b'\\0')[-2:-1] == "
    "[b'/opt/jupyter-exec-ext/runner.py']:\n"
    "        os.kill(int(pid), int(sys.argv[1]))\n"
)


def signal_runner(client: docker.DockerClient, container_id: str, signum: int) -> None:
    """Sends a signal to a container's runner from outside (the program inside cannot: the runner
    runs as another uid): how tests make a runner die or freeze."""
    exec_id = client.api.exec_create(
        container_id, ["python3", "-c", _SIGNAL_RUNNER, str(signum)], user="0:0"
    )
    client.api.exec_start(exec_id)


def signal_runner_once_running(
    client: docker.DockerClient, signum: int, delay: float = 0.5
) -> threading.Thread:
    """Starts a thread that waits for this session's first running container, lets its run begin
    (``delay``), then signals its runner from outside; join it after the run."""

    def act() -> None:
        for _ in range(100):
            running = [c for c in our_containers(client) if c["State"] == "running"]
            if running:
                time.sleep(delay)
                signal_runner(client, running[0]["Id"], signum)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=act)
    thread.start()
    return thread


def release_server_sandbox(serverapp) -> None:
    """Has a test server's sandbox remove what it handed to its background remover (a run answers
    before its container is gone) and the containers it kept for users' next runs (kept by design
    while the server lives): then a leak check sees only what was really left behind."""
    from jupyter_exec_ext.server.context import CONTEXT_KEY

    context = serverapp.web_app.settings.get(CONTEXT_KEY)
    inner = getattr(context, "sandbox", None)
    if getattr(inner, "reuse", None) is not None:
        inner.reuse.drain()
    if hasattr(inner, "flush"):
        inner.flush()


@pytest.fixture
def no_leaks(docker_client):
    """Asserts that the test left none of our containers on the engine."""
    before = {c["Id"] for c in our_containers(docker_client)}
    yield
    left = [c for c in our_containers(docker_client) if c["Id"] not in before]
    for c in left:
        try:
            docker_client.api.remove_container(c["Id"], force=True)
        except docker.errors.APIError:
            pass  # already being removed: it is still reported as left behind
    assert not left, f"test leaked {len(left)} sandbox container(s): {[c['Id'][:12] for c in left]}"


@pytest.fixture
def sandbox(executor_image, no_leaks):
    """A sandbox on the real engine with the default (seed) configuration."""
    box = DockerSandbox(SandboxConfig(image=executor_image, owner=TEST_OWNER))
    yield box
    box.close()


def pytest_sessionfinish(session, exitstatus):
    """The whole run must end with none of our containers on the engine."""
    try:
        client = docker.from_env(timeout=10)
        left = our_containers(client)
    except Exception:
        return  # no engine: nothing can have leaked
    if left:
        print(f"\nLEAK: {len(left)} sandbox container(s) left after the test run")
        for c in left:
            client.api.remove_container(c["Id"], force=True)
        session.exitstatus = 1


REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class FreezableProcess:
    """A server process of a test's own that the test may freeze: SIGSTOP leaves its socket
    accepting connections with nothing answering, as a hung server does."""

    process: Optional[subprocess.Popen] = None
    frozen = False

    def freeze(self) -> None:
        os.kill(self.process.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)
        self.frozen = False


class RedisServer(FreezableProcess):
    """A redis-server of one test on a free loopback port, which the test may kill, freeze and
    restart on the same port. Never the shared one on 6379."""

    def __init__(self, workdir: Path, password: Optional[str] = None):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.password = password
        auth = f":{password}@" if password else ""
        self.url = f"redis://{auth}127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.process: Optional[subprocess.Popen] = None
        self.frozen = False

    def start(self) -> None:
        """Starts the server (no persistence: a restart comes back empty) and waits until it answers."""
        log_file = self.workdir / f"redis-{self.port}.log"
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--logfile",
                str(log_file),
                "--protected-mode",
                "yes",
                *(["--requirepass", self.password] if self.password else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        probe = redis.Redis.from_url(self.url, socket_timeout=1)
        try:
            for _ in range(100):
                try:
                    probe.ping()
                    return
                except redis.ConnectionError:
                    if self.process.poll() is not None:
                        break
                    time.sleep(0.05)
        finally:
            probe.close()
        self.kill()
        log = log_file.read_text() if log_file.exists() else ""
        raise RuntimeError(f"redis-server on port {self.port} did not start: {log[-2000:]}")

    def kill(self) -> None:
        """Kills the server at once (SIGKILL), as a crash would."""
        if self.process is not None:
            if self.frozen:
                self.thaw()
            self.process.kill()
            self.process.wait()
            self.process = None

    def client(self) -> redis.Redis:
        """A plain client with the password, to look at (or tamper with) what the cache wrote."""
        return redis.Redis.from_url(self.url, socket_timeout=5)


@pytest.fixture
def redis_server(tmp_path):
    """A running redis-server of this test alone; killed afterwards."""
    require(
        os.access(REDIS_SERVER, os.X_OK),
        "redis-server is not installed (Debian package redis-server)",
    )
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def protected_redis_server(tmp_path):
    """As ``redis_server``, with a password (``requirepass``) and protected mode on, as the admin
    guide configures the shared cache."""
    require(
        os.access(REDIS_SERVER, os.X_OK),
        "redis-server is not installed (Debian package redis-server)",
    )
    server = RedisServer(tmp_path, password="pytest-redis-password")
    server.start()
    yield server
    server.kill()


def postgres_bin() -> Optional[Path]:
    """The folder of Debian's PostgreSQL programs (the newest version installed), or None."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


class PostgresServer:
    """A throwaway PostgreSQL cluster of the tests on a free loopback port: initdb into a
    temporary folder as the ``postgres`` user (PostgreSQL refuses to run as root), pg_ctl start,
    and a test may stop it at once (``kill``, as a crash) and start it again on the same port
    with its data. Never a cluster of the machine's own."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.root = Path(tempfile.mkdtemp(prefix="exec-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self._as = {}
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self._as = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        done = subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
            **self._as,
        )
        if done.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{args[0]} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}{log}")

    def init(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            timeout=120,
        )

    def start(self) -> None:
        # fsync off: a crash of the server (kill) keeps what it committed, only a crash of the
        # machine would not. synchronous_commit stays on: an acknowledged row must survive kill.
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off "
            "-c full_page_writes=off"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
            timeout=90,
        )

    def kill(self) -> None:
        """Stops the server at once (immediate mode: no checkpoint, clients cut off)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def new_database(self) -> str:
        """A fresh, empty database; its SQLAlchemy URL."""
        import psycopg

        name = f"t{uuid.uuid4().hex[:12]}"
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def remove(self) -> None:
        if self.running():
            try:
                self.kill()
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres() -> PostgresServer:
    """A started throwaway cluster; fails under CI, skips elsewhere, without PostgreSQL."""
    bindir = postgres_bin()
    require(
        bindir is not None and (bindir / "pg_ctl").exists(),
        "PostgreSQL is not installed (Debian package postgresql; scripts/provision.sh installs it)",
    )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            require(False, "no postgres user to run PostgreSQL as (the Debian package makes it)")
    server = PostgresServer(bindir)
    try:
        server.init()
        server.start()
    except BaseException:
        server.remove()
        raise
    return server


class RunningPostgres:
    """The throwaway cluster scripts/test.sh started (``JUPYTER_EXEC_EXT_TEST_POSTGRES``)."""

    def __init__(self, url: str) -> None:
        from sqlalchemy.engine import make_url

        self.url = url
        self.port = make_url(url).port
        self.new_database = PostgresServer.new_database.__get__(self)


@pytest.fixture(scope="session")
def postgres_cluster():
    """A throwaway PostgreSQL cluster for the session (the test command's, else one started
    here); each test takes a database of its own."""
    if os.environ.get("JUPYTER_EXEC_EXT_TEST_POSTGRES"):
        yield RunningPostgres(os.environ["JUPYTER_EXEC_EXT_TEST_POSTGRES"])
        return
    server = start_postgres()
    yield server
    server.remove()


@pytest.fixture
def postgres_server():
    """A throwaway PostgreSQL cluster of one test, which it may kill and restart."""
    server = start_postgres()
    yield server
    server.remove()
