"""A live ``jupyter server`` process with the extension and a real IPython kernel that reaches it
through the environment the extension documents (``JUPYTER_EXEC_EXT_URL`` / ``_TOKEN``).

Docker-needing fixtures request ``executor_image``, so under CI=true they fail when Docker or the
image is missing. One server serves the whole folder and one kernel a module, to keep start-ups and
containers few on a shared machine.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest
from jupyter_client.manager import KernelManager

from ..conftest import TEST_OWNER, our_containers
from ..live_server import EXERCISES, LiveServer
from ..live_server import start_server as start_live_server


def start_server(
    workdir: Path, image: str, *, env: Optional[dict[str, str]] = None, **traits: Any
) -> LiveServer:
    """A ``jupyter server`` with the extension serving the repository's sample exercises: pool and
    cache off, short runs, this session's owner label."""
    return start_live_server(
        workdir,
        {
            "image": image,
            "owner": TEST_OWNER,
            "time_limit": 5.0,
            "max_time_limit": 10.0,
            "reap_interval": 0.0,
            "exercises_dir": str(EXERCISES),
            "pool_size": 0,
            # Containers kept for a user's next run go 2 s after a test's last run (the leak check
            # after each test waits for them).
            "reuse_idle": 2.0,
            "cache_enabled": False,
            **traits,
        },
        token="kernel-test-token",
        base_url="/k%40/",
        env=env,
    )


@pytest.fixture(scope="package")
def live_server(tmp_path_factory, executor_image: str) -> Iterator[LiveServer]:
    """The module's server: pool off, cache off, 5 s runs, one run per user at a time."""
    server = start_server(tmp_path_factory.mktemp("server"), executor_image, max_runs_per_user=1)
    yield server
    server.stop()


@pytest.fixture(scope="package")
def docker_down_server(tmp_path_factory, executor_image: str) -> Iterator[LiveServer]:
    """A server whose Docker engine is unreachable (a socket path that does not exist)."""
    server = start_server(
        tmp_path_factory.mktemp("down"),
        executor_image,
        env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"},
    )
    yield server
    server.stop()


@dataclass
class CellOutput:
    """What one executed cell showed."""

    stdout: str = ""
    stderr: str = ""
    displays: list = field(default_factory=list)  # data bundles of display_data / execute_result
    error: Optional[dict] = None
    #: (monotonic arrival time, stream name, text) of each stream message, in arrival order.
    streams: list = field(default_factory=list)
    #: The prompts of the kernel's input requests, with whether each was a password box.
    prompts: list = field(default_factory=list)
    #: When the execute_reply (the cell's end) arrived.
    ended_at: float = 0.0

    def text(self, mime: str = "text/plain") -> str:
        return "\n".join(d.get(mime, "") for d in self.displays)


class LiveKernel:
    """A real IPython kernel (ipykernel) driven by jupyter_client."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.manager = KernelManager(kernel_name="python3")
        self.manager.start_kernel(env=env, cwd=str(cwd))
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    def run(
        self,
        code: str,
        timeout: float = 120,
        *,
        answers: Optional[list[str]] = None,
        allow_stdin: bool = True,
        on_stream: Any = None,
    ) -> CellOutput:
        """Executes one cell and collects its outputs (bounded by ``timeout``).

        Args:
            answers: lines typed into the front end's input box, one per input request, in order
                (as a user would); an input request with none left fails the test.
            allow_stdin: False: a front end without input boxes (nbclient, papermill).
            on_stream: called with each stream message's content as it arrives.
        """
        out = CellOutput()
        pending = list(answers or [])

        def stdin_hook(msg: dict) -> None:
            out.prompts.append((msg["content"]["prompt"], msg["content"].get("password", False)))
            assert pending, f"unexpected input request {msg['content']!r}"
            self.client.input(pending.pop(0))

        def hook(msg: dict) -> None:
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out.streams.append((time.monotonic(), content["name"], content["text"]))
                if on_stream is not None:
                    on_stream(content)
                if content["name"] == "stdout":
                    out.stdout += content["text"]
                else:
                    out.stderr += content["text"]
            elif kind in ("display_data", "execute_result"):
                out.displays.append(content["data"])
            elif kind == "error":
                out.error = content

        self.client.execute_interactive(
            code, output_hook=hook, timeout=timeout, allow_stdin=allow_stdin, stdin_hook=stdin_hook
        )
        out.ended_at = time.monotonic()
        return out

    def interrupt(self) -> None:
        """The notebook's ■: interrupts the kernel (SIGINT)."""
        self.manager.interrupt_kernel()

    def shutdown(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


def kernel_environment(extra: dict[str, str]) -> dict[str, str]:
    """The test process's environment without any exec-ext or hub variables, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("JUPYTER_EXEC_EXT_", "JUPYTERHUB_"))
    }
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def kernel(live_server: LiveServer, tmp_path_factory) -> Iterator[LiveKernel]:
    """A kernel started as the server would start it: with the extension's variables."""
    live = LiveKernel(
        kernel_environment(live_server.kernel_env()), tmp_path_factory.mktemp("kernel")
    )
    yield live
    live.shutdown()


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A socket that accepts connections and never answers (a hung server)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/api/exec/v1/"


@pytest.fixture
def no_leaks(no_leaks, docker_client):
    """The root leak check, after the server removed its containers: it answers before a
    container is gone, so wait (bounded) for the removals first."""
    before = {c["Id"] for c in our_containers(docker_client)}
    yield
    deadline = time.monotonic() + 30
    while {c["Id"] for c in our_containers(docker_client)} - before and time.monotonic() < deadline:
        time.sleep(0.1)
