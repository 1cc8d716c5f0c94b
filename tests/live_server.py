"""Real Jupyter servers with the extension, for the tests that need a separate process: a
``jupyter server`` or ``jupyter lab`` subprocess on a free loopback port, with its own token,
base_url and config, runtime and data folders, waited for (bounded) until its API answers.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parents[1]
EXERCISES = REPO / "exercises"
#: What the extension writes for kernels; a server under test must not inherit the test's own.
KERNEL_VARIABLES = ("JUPYTER_EXEC_EXT_URL", "JUPYTER_EXEC_EXT_TOKEN")


@dataclass
class LiveServer:
    """A running server process and how to reach it."""

    process: subprocess.Popen
    base: str  # http://127.0.0.1:PORT/BASE_URL/
    token: str
    base_url: str
    port: int
    runtime_dir: Path
    log_path: Path

    @property
    def api(self) -> str:
        """The REST API's base URL, with a trailing slash."""
        return self.base + "api/exec/v1/"

    def kernel_env(self) -> dict[str, str]:
        """What the extension puts into the environment of kernels its server starts."""
        return {"JUPYTER_EXEC_EXT_URL": self.api, "JUPYTER_EXEC_EXT_TOKEN": self.token}

    def stop(self) -> None:
        """Stops the server the way an admin would (SIGTERM), so the extension drains its pool."""
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(
    workdir: Path,
    traits: dict[str, Any],
    *,
    app: str = "server",
    token: str = "test-token",
    base_url: str = "/",
    root_dir: Optional[Path] = None,
    env: Optional[dict[str, str]] = None,
    timeout: float = 90.0,
) -> LiveServer:
    """Starts a server with the extension and waits until ``health`` answers.

    Args:
        workdir: folder for the config, runtime and data folders and the log (``server.log``).
        traits: ``ExecExtApp`` traits.
        app: ``"server"`` (jupyter_server) or ``"lab"`` (JupyterLab with the lab extension).
        root_dir: the server's root directory (default ``workdir/root``).
        env: more environment variables for the server.

    Raises:
        AssertionError: the server exited or did not answer within ``timeout``; the message ends
            with the server's log.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    root = root_dir or workdir / "root"
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = workdir / "jupyter_server_config.json"
    config.write_text(
        json.dumps(
            {
                "ServerApp": {"jpserver_extensions": {"jupyter_exec_ext": True}},
                "ExecExtApp": traits,
            }
        )
    )
    runtime_dir = workdir / "runtime"
    server_env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(workdir / "config"),
        JUPYTER_RUNTIME_DIR=str(runtime_dir),
        JUPYTER_DATA_DIR=str(workdir / "data"),
        **(env or {}),
    )
    for name in KERNEL_VARIABLES:
        server_env.pop(name, None)
    command = (
        [sys.executable, "-m", "jupyter_server"]
        if app == "server"
        else [sys.executable, "-m", "jupyter", "lab"]
    )
    log_path = workdir / "server.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [
                *command,
                f"--config={config}",
                f"--port={port}",
                "--ip=127.0.0.1",
                "--no-browser",
                "--allow-root",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={token}",
                f"--ServerApp.base_url={base_url}",
                f"--ServerApp.root_dir={root}",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=server_env,
            cwd=workdir,
        )
    server = LiveServer(
        process, f"http://127.0.0.1:{port}{base_url}", token, base_url, port, runtime_dir, log_path
    )
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(server.api + "health", timeout=5) as response:
                if response.status == 200:
                    return server
        except (urllib.error.URLError, ConnectionError):
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise AssertionError("the server did not start:\n" + log_path.read_text()[-4000:])
        time.sleep(0.2)
