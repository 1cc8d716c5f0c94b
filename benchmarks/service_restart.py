"""How long the executor service is away when it stops: a real JupyterHub manages the service,
the script stops it (SIGTERM, as for an upgrade, or SIGKILL, as a crash) and times, through the
hub's proxy, how long until ``health`` answers again.

    .venv/bin/python benchmarks/service_restart.py                 # JupyterHub's own poll (30 s)
    .venv/bin/python benchmarks/service_restart.py --poll 2        # docs/hub.md's shorter poll
    .venv/bin/python benchmarks/service_restart.py --runs 5 --signal KILL

Prints each stop's time to exit and time until the service answered again, and their range. A
measurement, not a test: nothing passes or fails on a number. Needs jupyterhub,
configurable-http-proxy and a Docker engine (the service's start-up talks to it); no user servers
and no containers are started.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import requests

VENV_BIN = Path(sys.executable).parent

HUB_CONFIG = """
import jupyterhub.services.service as hub_services
from traitlets import Integer

poll = {poll!r}
if poll:
    class QuickPollServiceSpawner(hub_services._ServiceSpawner):
        poll_interval = Integer(poll)

    hub_services._ServiceSpawner = QuickPollServiceSpawner

c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.ConfigurableHTTPProxy.auth_token = "restart-measure-proxy-token"
c.JupyterHub.db_url = "sqlite:///{root}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{root}/cookie_secret"
c.JupyterHub.pid_file = "{root}/jupyterhub.pid"
c.JupyterHub.authenticator_class = "dummy"
c.JupyterHub.services = [{{
    "name": "exec", "url": "http://127.0.0.1:{service_port}",
    "command": [{service!r}, "--config", "{root}/exec_service_config.py"],
}}]
"""

SERVICE_CONFIG = """
c.ExecServiceApp.db_path = "{root}/submissions.sqlite"
c.ExecServiceApp.owner = "restart-measure"
c.ExecServiceApp.pool_size = 0
c.ExecServiceApp.reap_interval = 0.0
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def service_pid(config: Path) -> Optional[int]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state != "Z" and str(config).encode() in cmdline:
                return int(entry.name)
    return None


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).json() == {"status": "ok"}
    except (requests.RequestException, ValueError):
        return False


def wait_for(condition, limit_s: float, what: str) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > limit_s:
            raise SystemExit(f"gave up: {what} after {limit_s:.0f} s")
        time.sleep(0.05)
    return time.monotonic()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--poll",
        type=int,
        default=0,
        help="seconds between the hub's polls of the service (0: JupyterHub's own)",
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--signal", choices=("TERM", "KILL"), default="TERM")
    args = parser.parse_args()
    chp = shutil.which("configurable-http-proxy")
    if chp is None:
        raise SystemExit("configurable-http-proxy is not installed (scripts/provision.sh does)")

    root = Path(tempfile.mkdtemp(prefix="exec-restart-"))
    port, service_port = free_port(), free_port()
    (root / "exec_service_config.py").write_text(SERVICE_CONFIG.format(root=root))
    config = root / "jupyterhub_config.py"
    config.write_text(
        HUB_CONFIG.format(
            poll=args.poll,
            port=port,
            hub_port=free_port(),
            proxy_api_port=free_port(),
            chp=chp,
            root=root,
            service_port=service_port,
            service=str(VENV_BIN / "jupyter-exec-service"),
        )
    )
    env = dict(os.environ, PATH=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
    log = open(root / "jupyterhub.log", "wb")
    hub = subprocess.Popen(
        [str(VENV_BIN / "jupyterhub"), "-f", str(config)],
        cwd=root,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    health = f"http://127.0.0.1:{port}/services/exec/api/exec/v1/health"
    service_config = root / "exec_service_config.py"
    try:
        wait_for(lambda: answers(health), 120, "the hub and the service did not come up")
        exits, backs = [], []
        for run in range(args.runs):
            pid = service_pid(service_config)
            stopped = time.monotonic()
            os.kill(pid, getattr(signal, f"SIG{args.signal}"))
            exited = wait_for(
                lambda: service_pid(service_config) != pid, 60, "the service did not exit"
            )
            back = wait_for(
                lambda: service_pid(service_config) not in (None, pid) and answers(health),
                120,
                "the hub did not restart the service",
            )
            exits.append(exited - stopped)
            backs.append(back - stopped)
            print(
                f"run {run + 1}: SIG{args.signal}, exited after {exits[-1]:.2f} s, answered "
                f"again after {backs[-1]:.1f} s"
            )
            time.sleep(1 + run * 7 % 11)  # stops land at different points of the poll cycle
        poll = f"{args.poll} s" if args.poll else "JupyterHub's default"
        print(
            f"poll {poll}: away {min(backs):.1f}-{max(backs):.1f} s over {args.runs} stops "
            f"(exit {min(exits):.2f}-{max(exits):.2f} s)"
        )
    finally:
        os.killpg(hub.pid, signal.SIGTERM)
        try:
            hub.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(hub.pid, signal.SIGKILL)
            hub.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
