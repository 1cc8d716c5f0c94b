"""The hub stack of docker-compose.yml, for real: built offline (deploy/build-offline.sh, cached),
brought up with the compose binary on a free port under a project name of its own, and driven
through the hub's login, a student's server, the hub's proxy and the executor service as a
student would; then taken down, leaving nothing behind.

It needs the Docker engine, a compose binary, the executor image and, the first time,
debootstrap, PyPI and npm on the host (later runs use the cache). Under CI=true a missing part is
a failure, never a skip.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pytest
import requests

from .conftest import require
from .test_compose import compose_command

REPO = Path(__file__).resolve().parents[1]
STACK_BASE = os.environ.get("STACK_BASE_IMAGE", "jupyter-exec-ext-stack-base:bookworm")
STUDENTS = ("ada", "grace")
SERVICE_API = "/services/exec/api/exec/v1"
PALINDROME = (
    "def is_palindrome(text):\n"
    '    cleaned = "".join(ch.lower() for ch in text if ch.isalnum())\n'
    "    return cleaned == cleaned[::-1]\n"
)

pytestmark = pytest.mark.timeout(1800)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Stack:
    project: str
    url: str
    env: dict
    owner: str
    compose: list
    sessions: dict = field(default_factory=dict)
    tokens: dict = field(default_factory=dict)

    def run(
        self, *args: str, timeout: float = 300, check: bool = True
    ) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [*self.compose, *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check:
            assert done.returncode == 0, f"{' '.join(args)}: {done.stderr[-3000:]}"
        return done

    def containers(self, all_: bool = True) -> list:
        found = subprocess.run(
            [
                "docker",
                "ps",
                "-q",
                *(["-a"] if all_ else []),
                "--filter",
                f"label=com.docker.compose.project={self.project}",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return found.stdout.split()

    def sandboxes(self) -> list:
        found = subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label=jupyter-exec-ext.owner={self.owner}"],
            capture_output=True,
            text=True,
            check=True,
        )
        return found.stdout.split()

    def health(self) -> dict:
        states = {}
        for cid in self.containers():
            inspected = json.loads(
                subprocess.run(
                    ["docker", "inspect", cid], capture_output=True, text=True, check=True
                ).stdout
            )[0]
            service = inspected["Config"]["Labels"].get("com.docker.compose.service")
            state = inspected["State"]
            states[service] = (state.get("Health") or {}).get("Status") or state["Status"]
        return states

    def logs(self) -> str:
        return self.run("logs", "--no-color", "--tail=80", check=False).stdout[-8000:]

    def user(self, name: str, method: str, route: str, body: Any = None) -> requests.Response:
        return requests.request(
            method,
            f"{self.url}/user/{name}/api/exec/v1/{route}",
            headers={"Authorization": f"token {self.tokens[name]}"},
            json=body,
            timeout=120,
        )


def _wait(ready, what: str, limit_s: float, stack: Optional[Stack] = None) -> Any:
    deadline = time.monotonic() + limit_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = ready()
            if last:
                return last
        except (requests.RequestException, OSError) as e:
            last = e
        time.sleep(1)
    raise AssertionError(
        f"{what} within {limit_s:.0f} s (last: {last!r})" + (f"\n{stack.logs()}" if stack else "")
    )


def _login(stack: Stack, name: str, password: str) -> requests.Response:
    """The hub's login form, as a browser sends it: its _xsrf cookie and field."""
    session = requests.Session()
    session.get(f"{stack.url}/hub/login", timeout=30).raise_for_status()
    answer = session.post(
        f"{stack.url}/hub/login",
        data={"username": name, "password": password, "_xsrf": session.cookies.get("_xsrf", "")},
        allow_redirects=False,
        timeout=30,
    )
    answer.session = session  # type: ignore[attr-defined]
    return answer


@pytest.fixture(scope="module")
def stack(docker_client, executor_image):
    command = compose_command()
    require(
        bool(command), "no compose binary (Debian package docker-compose, or docker compose v2)"
    )
    have_base = (
        subprocess.run(["docker", "image", "inspect", STACK_BASE], capture_output=True).returncode
        == 0
    )
    require(
        have_base or (shutil.which("debootstrap") and os.geteuid() == 0),
        f"the stack's base {STACK_BASE} is missing and cannot be made (debootstrap as root)",
    )

    # Offline, cached: the first run makes the base, the wheelhouse and the images; later runs
    # check that each is up to date and take seconds. The executor image is the tests' own.
    started = time.monotonic()
    built = subprocess.run(
        ["bash", str(REPO / "deploy" / "build-offline.sh"), "--no-executor"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1500,
        env=dict(os.environ, STACK_BASE_IMAGE=STACK_BASE),
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    print(f"\nbuild-offline.sh: {time.monotonic() - started:.1f} s\n{built.stdout}")

    project = f"jeestack{uuid.uuid4().hex[:10]}"
    port = _free_port()
    env = dict(
        os.environ,
        BASE_IMAGE=STACK_BASE,
        HUB_PORT=str(port),
        COMPOSE_PROJECT_NAME=project,
        EXEC_SERVICE_TOKEN=secrets.token_hex(32),
        REDIS_PASSWORD=secrets.token_hex(32),
        DEMO_PASSWORD=secrets.token_urlsafe(12),
        DEMO_USERS=",".join(STUDENTS),
        INSTRUCTOR_PASSWORD=secrets.token_urlsafe(32),
        DOCKER_EXECUTOR_IMAGE=executor_image,
        EXEC_SERVICE_OWNER=f"{project}-service",
    )
    env.pop("HUB_BIND", None)
    stack = Stack(
        project=project,
        url=f"http://127.0.0.1:{port}",
        env=env,
        owner=env["EXEC_SERVICE_OWNER"],
        compose=[*command, "--project-name", project, "--profile", "hub"],
    )
    try:
        started = time.monotonic()
        stack.run("up", "-d", "--no-build", timeout=600)
        _wait(
            lambda: (
                all(state in ("healthy", "exited") for state in stack.health().values())
                and len(stack.health()) == 4
            ),
            "every service of the hub stack healthy",
            240,
            stack,
        )
        print(f"up and healthy: {time.monotonic() - started:.1f} s")
        yield stack
    finally:
        stack.run("down", "-v", "--remove-orphans", "--timeout", "20", check=False, timeout=300)
        for leftover in stack.sandboxes():
            subprocess.run(["docker", "rm", "-f", leftover], capture_output=True)


def test_the_hub_answers_on_loopback_only_with_a_healthcheck_for_each_service(stack: Stack) -> None:
    health = stack.health()
    assert health == {
        "hub": "healthy",
        "exec-service": "healthy",
        "redis": "healthy",
        "executor-image": "exited",
    }, health
    hub = stack.run("port", "hub", "8000").stdout.strip()
    assert hub == stack.url.removeprefix("http://"), hub
    assert requests.get(f"{stack.url}/hub/health", timeout=10).status_code == 200
    # The authenticator's configuration is current: nothing deprecated, no warning about it.
    log = stack.run("logs", "--no-color", "hub").stdout
    assert "JupyterHub is now running" in log, log[-3000:]
    assert not [
        line
        for line in log.splitlines()
        if "Authenticator" in line and ("WARN" in line or "deprecated" in line.lower())
    ], log[-3000:]


def test_only_listed_users_log_in_and_the_instructor_needs_their_own_password(stack: Stack) -> None:
    password = stack.env["DEMO_PASSWORD"]
    assert _login(stack, "mallory", password).status_code == 403  # not listed
    assert _login(stack, "ada", "wrong-password").status_code == 403
    assert _login(stack, "instructor", password).status_code == 403  # the shared one is not theirs
    assert _login(stack, "instructor", stack.env["INSTRUCTOR_PASSWORD"]).status_code == 302
    for name in STUDENTS:
        answer = _login(stack, name, password)
        assert answer.status_code == 302, (name, answer.status_code, answer.text[:300])
        session = answer.session  # type: ignore[attr-defined]
        xsrf = session.cookies.get("_xsrf", path="/hub/") or session.cookies.get("_xsrf")
        made = session.post(
            f"{stack.url}/hub/api/users/{name}/tokens",
            json={"note": "stack test"},
            headers={"X-XSRFToken": xsrf},
            timeout=30,
        )
        assert made.status_code == 201, made.text
        stack.sessions[name] = session
        stack.tokens[name] = made.json()["token"]
        started = requests.post(
            f"{stack.url}/hub/api/users/{name}/server",
            timeout=60,
            headers={"Authorization": f"token {stack.tokens[name]}"},
        )
        assert started.status_code in (201, 202), started.text
    for name in STUDENTS:
        _wait(
            lambda: requests.get(
                f"{stack.url}/hub/api/users/{name}",
                timeout=10,
                headers={"Authorization": f"token {stack.tokens[name]}"},
            ).json()["servers"][""]["ready"],
            f"{name}'s server ready",
            180,
            stack,
        )
    # The browser's way in: the session cookie, through the hub's OAuth, to the student's Lab.
    lab = stack.sessions["ada"].get(f"{stack.url}/user/ada/lab", timeout=60)
    assert lab.status_code == 200 and "JupyterLab" in lab.text, lab.status_code


def test_a_student_runs_and_submits_through_the_proxy_and_the_service(stack: Stack) -> None:
    require(bool(stack.tokens), "the login test did not log the students in")
    ran = stack.user("ada", "POST", "execute", {"code": "print(6 * 7)"})
    assert ran.status_code == 200, ran.text
    assert ran.json()["status"] == "ok" and ran.json()["stdout"] == "42\n", ran.json()
    graded = stack.user("ada", "POST", "exercises/strings-palindrome/submit", {"code": PALINDROME})
    assert graded.status_code == 200, graded.text
    assert graded.json()["score"] == graded.json()["max_score"] == 7, graded.json()
    wrong = stack.user(
        "grace",
        "POST",
        "exercises/strings-palindrome/submit",
        {"code": "def is_palindrome(text):\n    return True\n"},
    )
    assert wrong.status_code == 200 and wrong.json()["score"] < 7, wrong.json()
    # The record is the service's: each student sees their own submission only.
    mine = stack.user("ada", "GET", "submissions").json()
    assert [s["user"] for s in mine["submissions"]] == ["ada"], mine
    status = stack.user("ada", "GET", "docker/status").json()
    assert status["docker"]["cache"]["backend"] == "redis", status
    assert "@redis:6379" in status["docker"]["cache"]["redis_url"], status
    assert stack.env["REDIS_PASSWORD"] not in json.dumps(status)


async def _kernel_run(stack: Stack, name: str, code: str) -> str:
    """Runs ``code`` in a new kernel of ``name``'s server (its Jupyter REST and WebSocket APIs,
    through the hub's proxy) and answers what it printed."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    headers = {"Authorization": f"token {stack.tokens[name]}"}
    base = f"{stack.url}/user/{name}/api/kernels"
    kernel = requests.post(base, json={"name": "python3"}, headers=headers, timeout=60)
    assert kernel.status_code == 201, kernel.text
    kernel_id = kernel.json()["id"]
    try:
        ws = await websocket_connect(
            HTTPRequest(f"{base.replace('http://', 'ws://')}/{kernel_id}/channels", headers=headers)
        )
        msg_id = uuid.uuid4().hex
        ws.write_message(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "msg_type": "execute_request",
                        "username": name,
                        "session": uuid.uuid4().hex,
                        "version": "5.3",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "channel": "shell",
                    "content": {
                        "code": code,
                        "silent": False,
                        "store_history": False,
                        "user_expressions": {},
                        "allow_stdin": False,
                    },
                }
            )
        )
        out = []
        while True:
            raw = await asyncio.wait_for(ws.read_message(), 120)
            assert raw is not None, "the kernel's WebSocket closed"
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                raise AssertionError("\n".join(msg["content"]["traceback"]))
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                ws.close()
                return "".join(out)
    finally:
        requests.delete(f"{base}/{kernel_id}", headers=headers, timeout=60)


# What a student's kernel tries: the Docker socket, the hub's secrets and database, the
# authoritative exercises, the other student's home, the hub's environment, and Redis.
PROBE = r"""
import json, os, socket
def attempt(path):
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            open(path, "rb").read(1)
        return "readable"
    except FileNotFoundError:
        return "absent"
    except PermissionError:
        return "denied"
found = {path: attempt(path) for path in (
    "/var/run/docker.sock", "/run/docker.sock", "/srv/jupyterhub", "/srv/jupyterhub/jupyterhub.sqlite",
    "/srv/jupyterhub/jupyterhub_cookie_secret", "/srv/exercises", "/proc/1/environ",
    "/etc/jupyterhub/jupyterhub_config.py", "/home/grace")}
found["uid"] = os.getuid()
found["secrets in env"] = sorted(k for k in os.environ if k in (
    "EXEC_SERVICE_TOKEN", "DEMO_PASSWORD", "INSTRUCTOR_PASSWORD", "REDIS_PASSWORD",
    "CONFIGPROXY_AUTH_TOKEN", "DOCKER_HOST"))
hub_pids = [p for p in os.listdir("/proc") if p.isdigit() and os.stat(f"/proc/{p}").st_uid == 0]
found["root environ readable"] = [p for p in hub_pids if attempt(f"/proc/{p}/environ") == "readable"]
try:
    socket.create_connection(("redis", 6379), timeout=3).close()
    found["redis"] = "reachable"
except OSError as e:
    found["redis"] = type(e).__name__
found["exercise files"] = []
for top in ("/srv", "/opt", "/home", "/etc", "/usr/local", "/tmp"):
    for root, dirs, files in os.walk(top):
        found["exercise files"] += [f for f in files if f.endswith("-palindrome.ipynb")]
print(json.dumps(found))
"""


def test_a_students_kernel_reaches_no_socket_no_hub_secret_no_exercise_and_no_redis(
    stack: Stack,
) -> None:
    require(bool(stack.tokens), "the login test did not log the students in")
    found = json.loads(asyncio.run(_kernel_run(stack, "ada", PROBE)))
    assert found["uid"] >= 1000, found
    assert found["/var/run/docker.sock"] == found["/run/docker.sock"] == "absent", found
    for secret in (
        "/srv/jupyterhub",
        "/srv/jupyterhub/jupyterhub.sqlite",
        "/srv/jupyterhub/jupyterhub_cookie_secret",
        "/proc/1/environ",
        "/etc/jupyterhub/jupyterhub_config.py",
        "/home/grace",
    ):
        assert found[secret] == "denied", (secret, found)
    assert found["/srv/exercises"] == "absent" and found["exercise files"] == [], found
    assert found["secrets in env"] == [] and found["root environ readable"] == [], found
    assert found["redis"] in ("gaierror", "timeout", "TimeoutError", "ConnectionRefusedError"), (
        found
    )
    # The socket is the service's alone, and the exercises are in its container only.
    inspected = {}
    for cid in stack.containers():
        data = json.loads(
            subprocess.run(
                ["docker", "inspect", cid], capture_output=True, text=True, check=True
            ).stdout
        )[0]
        inspected[data["Config"]["Labels"]["com.docker.compose.service"]] = data
    with_socket = {
        name
        for name, data in inspected.items()
        if any("docker.sock" in m["Source"] for m in data["Mounts"])
    }
    assert with_socket == {"exec-service"}, with_socket
    with_exercises = {
        name
        for name, data in inspected.items()
        if any(m["Destination"] == "/srv/exercises" for m in data["Mounts"])
    }
    assert with_exercises == {"exec-service"}, with_exercises


def test_down_leaves_no_stack_container_no_sandbox_and_no_volume(stack: Stack) -> None:
    stack.run("down", "-v", "--remove-orphans", "--timeout", "20", timeout=300)
    assert stack.containers() == [], stack.containers()
    _wait(lambda: stack.sandboxes() == [], "no sandbox container of the stack's service left", 60)
    volumes = subprocess.run(
        [
            "docker",
            "volume",
            "ls",
            "-q",
            "--filter",
            f"label=com.docker.compose.project={stack.project}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    networks = subprocess.run(
        [
            "docker",
            "network",
            "ls",
            "-q",
            "--filter",
            f"label=com.docker.compose.project={stack.project}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert volumes == [] and networks == [], (volumes, networks)
