"""A Docker engine of the tests' own, which they may stop, restart and freeze while a sandbox
uses it: never the system's engine, which other work shares.

It has its own data root, exec root, pid file and Unix socket, no bridge and no iptables rules;
its data root is kept between sessions so the executor image is loaded into it only once, and a
lock on it makes a second test session wait rather than start a second engine on the same root.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Iterator

import docker
import pytest

from jupyter_exec_ext.sandbox import DockerSandbox, SandboxConfig

from .conftest import TEST_OWNER, FreezableProcess, our_containers, require

DATA_ROOT = Path("/var/lib/jupyter-exec-ext-test-engine")
EXEC_ROOT = Path("/run/jupyter-exec-ext-test-engine")
SOCKET = EXEC_ROOT / "docker.sock"
PIDFILE = EXEC_ROOT / "docker.pid"


class SecondEngine(FreezableProcess):
    """Starts, stops (as a restart or upgrade does: SIGTERM), freezes and thaws its dockerd."""

    base_url = f"unix://{SOCKET}"

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.frozen = False

    def client(self, timeout: int = 60) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.base_url, version="auto", timeout=timeout)

    def start(self) -> None:
        DATA_ROOT.mkdir(parents=True, exist_ok=True)
        (EXEC_ROOT / "exec").mkdir(parents=True, exist_ok=True)
        log = open(DATA_ROOT / "dockerd.log", "ab")
        self.process = subprocess.Popen(
            [
                "dockerd",
                "--data-root",
                str(DATA_ROOT / "data"),
                "--exec-root",
                str(EXEC_ROOT / "exec"),
                "--pidfile",
                str(PIDFILE),
                "-H",
                self.base_url,
                "--bridge=none",
                "--iptables=false",
                "--ip-masq=false",
                "--ip-forward=false",
            ],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 60
        while True:
            try:
                client = self.client(timeout=5)
                client.ping()
                client.close()
                return
            except Exception as e:  # not listening yet, in any of several ways
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.process.kill()
                    tail = (DATA_ROOT / "dockerd.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"the test engine did not start ({e}): {tail}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        """Stops the engine as a restart does (SIGTERM): it stops its containers and exits."""
        if self.process is None:
            return
        if self.frozen:
            self.thaw()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def a_container_has(self, path: str) -> bool:
        """Whether one of our containers on this engine holds ``path`` (a program's sign that it
        got that far)."""
        client = self.client()
        try:
            for c in our_containers(client, owner=None):
                try:
                    probe = client.api.exec_create(c["Id"], ["test", "-e", path])
                    client.api.exec_start(probe)
                    if client.api.exec_inspect(probe)["ExitCode"] == 0:
                        return True
                except docker.errors.APIError:
                    pass  # not running (yet, or any more)
            return False
        finally:
            client.close()

    def load_image(self, image: str) -> None:
        """Copies the executor image from the system engine, unless this engine has the same."""
        system, client = docker.from_env(timeout=60), self.client()
        try:
            wanted = system.api.inspect_image(image)["Id"]
            try:
                if client.api.inspect_image(image)["Id"] == wanted:
                    return
            except docker.errors.ImageNotFound:
                pass
        finally:
            system.close()
            client.close()
        save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
        subprocess.run(
            ["docker", "-H", self.base_url, "load", "-q"],
            stdin=save.stdout,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        save.stdout.close()
        if save.wait() != 0:
            raise RuntimeError(f"`docker save {image}` failed")


def second_engine_available() -> None:
    """Fails under CI, skips elsewhere, when this machine cannot run a second engine."""
    require(
        shutil.which("dockerd") is not None, "dockerd is not installed (Debian package docker.io)"
    )
    require(os.geteuid() == 0, "a second Docker engine needs root")


def sandbox_on(engine: SecondEngine, image: str, **config) -> DockerSandbox:
    """A sandbox of this test session on ``engine``."""
    return DockerSandbox(
        SandboxConfig(image=image, owner=TEST_OWNER, **config),
        client_factory=lambda: engine.client(),
    )


def our_containers_on(engine: SecondEngine) -> set:
    """The ids of every sandbox container (any owner) on ``engine``."""
    client = engine.client()
    try:
        return {c["Id"] for c in our_containers(client, owner=None)}
    finally:
        client.close()


@contextlib.contextmanager
def running_engine(image: str) -> Iterator[SecondEngine]:
    """The tests' own engine, started (waiting for another session's to stop) with ``image``
    loaded; at the end it must hold none of our containers, and it is stopped."""
    second_engine_available()
    DATA_ROOT.mkdir(parents=True, exist_ok=True)
    lock = open(DATA_ROOT / "lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed, whatever happens
    engine = SecondEngine()
    try:
        engine.start()
        engine.load_image(image)
        yield engine
        if engine.process is None:
            engine.start()
        client = engine.client()
        left = our_containers(client, owner=None)
        for c in left:
            client.api.remove_container(c["Id"], force=True)
        client.close()
        assert not left, (
            f"{len(left)} sandbox container(s) left on the engine: {[c['Status'] for c in left]}"
        )
    finally:
        engine.stop()
        lock.close()


@pytest.fixture
def engine(executor_image, no_leaks):
    """A started engine of this test alone, with the executor image; at the end it must hold
    none of our containers."""
    with running_engine(executor_image) as started:
        yield started
