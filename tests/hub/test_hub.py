"""The hub deployment end to end: a real JupyterHub (DummyAuthenticator, configurable-http-proxy),
the executor service as a hub-managed service on the real Docker engine with its result cache in a
real, password-protected Redis, and single-user servers in remote mode running as ``nobody``, who
cannot open the Docker socket. The callers: students alice and bob and instructor carol (hub group
``instructors``), each with a server; instructor erin (hub role ``course-instructor``), a user named
``*``, a metrics scraper service, an admin service, and the hub's own admin service, which has no
grant on the executor service.

One hub per module (starting it and two user servers is slow on a small machine). Under CI=true a
missing jupyterhub, configurable-http-proxy, Docker engine or executor image fails these tests.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Optional

import pytest

from ..conftest import REDIS_SERVER, TEST_OWNER, RedisServer, our_containers, require
from ..grading.notebooks import exercise_notebook, write_notebook

pytestmark = [pytest.mark.docker, pytest.mark.hub]

VENV_BIN = Path(sys.executable).parent
SERVICE = "exec"
ADMIN_TOKEN = "pytest-hub-admin-token-0123456789"
#: Hub services with exec access: a scraper with a metrics grant, and one with an admin grant.
SERVICE_TOKENS = {
    "prometheus": "pytest-prometheus-token-0123456789",
    "gradebook": "pytest-gradebook-token-0123456789",
}
USERS = ("alice", "bob", "carol")
#: Users with a token and no server: an instructor by hub role and a user named "*".
TOKEN_ONLY_USERS = ("erin", "*")
SOLUTION = "def add(a, b):\n    return a + b\n"
#: Graded submissions per user and exercise per hour on the service.
SUBMIT_LIMIT = 6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


HUB_CONFIG = '''
import os
import jupyterhub.services.service as hub_services
from jupyterhub.spawner import SimpleLocalProcessSpawner, set_user_setuid
from traitlets import Integer


# As the admin guide says (docs/hub.md, "When the service stops"): the hub notices that a managed
# service exited when it polls its process, every 30 s unless told otherwise.
class QuickPollServiceSpawner(hub_services._ServiceSpawner):
    poll_interval = Integer(2)


hub_services._ServiceSpawner = QuickPollServiceSpawner

class NobodySpawner(SimpleLocalProcessSpawner):
    """Local servers run as nobody, as a student's server would run as an unprivileged user:
    not root and not in the docker group."""

    def make_preexec_fn(self, name):
        home = self.home_dir
        drop = set_user_setuid("nobody", chdir=False)

        def preexec():
            os.makedirs(home, 0o700, exist_ok=True)
            os.chown(home, 65534, 65534)
            os.chdir(home)
            drop()

        return preexec

settings = {settings!r}
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = settings["port"]
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = settings["hub_port"]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:%d" % settings["proxy_api_port"]
c.ConfigurableHTTPProxy.command = [settings["chp"]]
c.ConfigurableHTTPProxy.auth_token = "pytest-proxy-token"
c.JupyterHub.db_url = "sqlite:///" + settings["dir"] + "/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = settings["dir"] + "/cookie_secret"
c.JupyterHub.pid_file = settings["dir"] + "/jupyterhub.pid"
c.JupyterHub.cleanup_servers = True
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True

c.JupyterHub.spawner_class = NobodySpawner
c.SimpleLocalProcessSpawner.home_dir_template = settings["dir"] + "/home/{{username}}"
c.Spawner.cmd = settings["singleuser"]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
# As the admin guide says (docs/hub.md): remote mode, the service through the hub's proxy.
c.Spawner.args = ["--ExecExtApp.backend=remote"]
c.Spawner.environment = {{
    "JUPYTER_CONFIG_DIR": settings["dir"] + "/user-config",
    "JUPYTER_EXEC_SERVICE_URL": settings["service_api"],
}}

# From the admin guide (docs/hub.md): users may reach the service, and so may their servers'
# tokens (which kernels inherit as JUPYTERHUB_API_TOKEN).
c.Spawner.server_token_scopes = [
    "access:servers!server", "users:activity!user", "access:services!service=exec",
]
c.JupyterHub.load_roles = [
    {{"name": "user", "scopes": ["self", "access:services!service=exec"]}},
    {{"name": "admin", "services": ["pytest-admin"]}},
    {{"name": "pytest-admin-exec", "services": ["pytest-admin"],
      "scopes": ["access:services!service=exec"]}},
    {{"name": "exec-clients", "services": list(settings["service_tokens"]),
      "scopes": ["access:services!service=exec"]}},
    # As the admin guide says (docs/hub.md, "Who is an instructor"): the service asks the hub for
    # a user's groups and roles with its own token.
    {{"name": "exec-service", "services": ["exec"],
      "scopes": ["read:users:groups", "read:roles:users"]}},
    {{"name": "course-instructor", "users": ["erin"],
      "scopes": ["self", "access:services!service=exec"]}},
]
c.JupyterHub.load_groups = {{"instructors": {{"users": ["carol"]}}}}
c.JupyterHub.services = [
    {{"name": "exec", "url": "http://127.0.0.1:%d" % settings["service_port"],
      "command": [settings["service"], "--config", settings["dir"] + "/exec_service_config.py"],
      "environment": {{"DOCKER_EXECUTOR_OWNER": settings["owner"]}}}},
    {{"name": "pytest-admin", "api_token": settings["admin_token"]}},
] + [{{"name": name, "api_token": token}} for name, token in settings["service_tokens"].items()]
'''

SERVICE_CONFIG = """
c.ExecServiceApp.image = {image!r}
c.ExecServiceApp.owner = {owner!r}
c.ExecServiceApp.exercises_dir = {exercises!r}
c.ExecServiceApp.db_path = {db!r}
c.ExecServiceApp.time_limit = 10.0
c.ExecServiceApp.max_time_limit = 10.0
c.ExecServiceApp.pool_size = 0
# Containers kept for a user's next run go soon after the test's last run; each test checks for leaks.
c.ExecServiceApp.reuse_idle = 2.0
c.ExecServiceApp.reap_interval = 0.0
# Low enough for the limit test to reach, high enough for the other tests' submissions of 'add'
# (at most 5 per user); the limit test adapts to what bob already used.
c.ExecServiceApp.submit_rate_limit = {submit_limit}
c.ExecServiceApp.submit_rate_window = 3600.0
# Who is what (docs/hub.md, "Who is an admin"): nobody but these.
c.ExecServiceApp.admin_groups = ["instructors"]
c.ExecServiceApp.admin_roles = ["course-instructor"]
c.ExecServiceApp.admin_services = ["gradebook"]
c.ExecServiceApp.metrics_readers = ["prometheus"]
c.ExecServiceApp.redis_url = {redis_url!r}
"""


class Hub:
    """The running hub of this module and the HTTP calls the tests make through its proxy."""

    def __init__(self, root: Path, port: int, process: subprocess.Popen, log: Path) -> None:
        import requests

        self.root, self.port, self.process, self.log = root, port, process, log
        self.url = f"http://127.0.0.1:{port}"
        self.http = requests.Session()
        self.tokens: dict[str, str] = {}

    def hub_api(self, method: str, path: str, **kwargs: Any):
        return self.http.request(
            method,
            f"{self.url}/hub/api/{path}",
            timeout=60,
            headers={"Authorization": f"token {ADMIN_TOKEN}"},
            **kwargs,
        )

    def call(self, method: str, url: str, token: Optional[str], body: Any = None):
        headers = {"Authorization": f"token {token}"} if token else {}
        return self.http.request(
            method,
            self.url + url,
            headers=headers,
            timeout=120,
            data=None if body is None else json.dumps(body),
            allow_redirects=False,
        )

    def user_api(self, user: str, method: str, route: str, body: Any = None, token: str = ""):
        """A route of ``user``'s own single-user server (remote mode)."""
        return self.call(
            method, f"/user/{user}/api/exec/v1/{route}", token if token else self.tokens[user], body
        )

    def service_api(self, method: str, route: str, token: Optional[str], body: Any = None):
        """A route of the executor service, through the hub's proxy."""
        return self.call(method, f"/services/{SERVICE}/api/exec/v1/{route}", token, body)

    def wait(self, ready, what: str, limit_s: float = 180) -> Any:
        deadline = time.monotonic() + limit_s
        while True:
            value = ready()
            if value:
                return value
            assert self.process.poll() is None, f"the hub exited:\n{self.log.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"{what}:\n{self.log.read_text()[-4000:]}"
            time.sleep(0.5)


def _others_can_run(path: Path) -> bool:
    """Whether a user outside root's groups can execute ``path`` (every folder on the way open)."""
    path = path.resolve()
    return all(p.stat().st_mode & 0o001 for p in [path, *path.parents])


def python_for_nobody() -> Optional[Path]:
    """An interpreter of this Python version that ``nobody`` may run: the venv's own may live in
    root's private folder (pyenv under /root), then the system's of the same version will do,
    loading the venv's packages (same ABI)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (
        Path(sys.executable),
        Path("/usr/bin") / version,
        Path("/usr/local/bin") / version,
    ):
        if candidate.exists() and _others_can_run(candidate):
            return candidate
    return None


def service_pid(config: Path) -> Optional[int]:
    """The executor service's process (started by the hub with this config file)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if str(config).encode() in cmdline and any(
                b"jupyter-exec-service" in a for a in cmdline
            ):
                return int(entry.name)
    return None


@pytest.fixture(scope="module")
def hub(executor_image: str):
    try:
        import jupyterhub  # noqa: F401
    except ImportError:
        require(False, "jupyterhub is not installed (pip install -e '.[test]')")
    chp = shutil.which("configurable-http-proxy")
    require(
        chp is not None,
        "configurable-http-proxy is not installed "
        "(npm install -g configurable-http-proxy; scripts/provision.sh does)",
    )
    require(os.geteuid() == 0, "the hub test runs user servers as nobody, which needs root")
    pwd.getpwnam("nobody")
    python = python_for_nobody()
    require(python is not None, "no Python interpreter that the user nobody may run")
    require(
        os.access(REDIS_SERVER, os.X_OK),
        "redis-server is not installed (Debian package redis-server)",
    )

    # Not under pytest's tmp folder: that one is private to root, and nobody must read the
    # config and own its home here.
    root = Path(tempfile.mkdtemp(prefix="exec-hub-"))
    root.chmod(0o755)
    (root / "home").mkdir(mode=0o755)
    (root / "user-config").mkdir(mode=0o755)
    exercises = root / "exercises"
    write_notebook(exercises / "add.ipynb", exercise_notebook("add", solution=SOLUTION))
    (root / "user-config" / "jupyter_server_config.json").write_text(
        json.dumps(
            {
                "ServerApp": {"jpserver_extensions": {"jupyter_exec_ext": True}},
            }
        )
    )
    redis_server = RedisServer(root, password="pytest-hub-redis-password")
    redis_server.start()
    (root / "exec_service_config.py").write_text(
        SERVICE_CONFIG.format(
            image=executor_image,
            owner=TEST_OWNER,
            exercises=str(exercises),
            db=str(root / "submissions.sqlite"),
            submit_limit=SUBMIT_LIMIT,
            redis_url=redis_server.url,
        )
    )
    port, service_port = _free_port(), _free_port()
    settings = {
        "port": port,
        "hub_port": _free_port(),
        "proxy_api_port": _free_port(),
        "service_port": service_port,
        "dir": str(root),
        "chp": chp,
        "owner": TEST_OWNER,
        # -S: none of the system's site-packages (Debian's python3-* modules would shadow the
        # venv's), only the venv's, with its .pth files (the editable install).
        "singleuser": [
            str(python),
            "-S",
            "-c",
            "import site, sys; site.addsitedir(sys.argv.pop(1)); "
            "from jupyterhub.singleuser import main; sys.exit(main())",
            sysconfig.get_paths()["purelib"],
        ],
        "service": str(VENV_BIN / "jupyter-exec-service"),
        "admin_token": ADMIN_TOKEN,
        "service_tokens": SERVICE_TOKENS,
        # Through the proxy, as a user's server on another machine would reach it.
        "service_api": f"http://127.0.0.1:{port}/services/{SERVICE}/api/exec/v1/",
    }
    config = root / "jupyterhub_config.py"
    config.write_text(HUB_CONFIG.format(settings=settings))
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    log = root / "jupyterhub.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(VENV_BIN / "jupyterhub"), "-f", str(config)],
            cwd=root,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    hub = Hub(root, port, process, log)
    hub.service_config = root / "exec_service_config.py"
    hub.service_port = service_port
    hub.redis = redis_server
    hub.tokens.update(SERVICE_TOKENS)
    try:
        try:
            hub.wait(lambda: _answers(hub, "/hub/api/"), "the hub did not answer")
            for user in USERS:
                assert hub.hub_api("POST", f"users/{user}").status_code in (201, 409)
                started = hub.hub_api("POST", f"users/{user}/server")
                assert started.status_code in (201, 202), started.text
            for user in USERS:
                hub.wait(
                    lambda: (
                        hub.hub_api("GET", f"users/{user}")
                        .json()["servers"]
                        .get("", {})
                        .get("ready")
                    ),
                    f"{user}'s server did not start",
                )
                made = hub.hub_api(
                    "POST", f"users/{user}/tokens", json={"note": "pytest", "expires_in": 3600}
                )
                assert made.status_code == 201, made.text
                hub.tokens[user] = made.json()["token"]
            for user in TOKEN_ONLY_USERS:
                quoted = "%2A" if user == "*" else user
                made = hub.hub_api("POST", f"users/{quoted}")
                assert made.status_code in (201, 409), made.text
                made = hub.hub_api(
                    "POST", f"users/{quoted}/tokens", json={"note": "pytest", "expires_in": 3600}
                )
                assert made.status_code == 201, made.text
                hub.tokens[user] = made.json()["token"]
            hub.wait(
                lambda: _answers(hub, f"/services/{SERVICE}/api/exec/v1/health"),
                "the executor service did not answer",
            )
        except BaseException:
            print(log.read_text()[-8000:])  # shown with the failure: why the hub did not come up
            raise
        yield hub
    finally:
        for user in USERS:
            try:
                hub.hub_api("DELETE", f"users/{user}/server")
            except Exception:  # the hub may already be gone; the process group goes below
                pass
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        print(log.read_text()[-20000:])  # the hub's and the servers' log, shown when a test failed
        redis_server.kill()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def no_leaks(no_leaks, docker_client):
    """The root leak check, once the service removed the containers of the test's runs: it
    answers before its background remover is done, and runs in another process, so the test
    cannot flush it as the in-process server tests do."""
    before = {c["Id"] for c in our_containers(docker_client)}
    yield
    deadline = time.monotonic() + 60
    while (
        any(c["Id"] not in before for c in our_containers(docker_client))
        and time.monotonic() < deadline
    ):
        time.sleep(0.5)


def _answers(hub: Hub, path: str) -> bool:
    import requests

    try:
        return hub.http.get(hub.url + path, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def test_a_user_runs_and_submits_through_their_own_server(hub: Hub, no_leaks) -> None:
    ran = hub.user_api("alice", "POST", "execute", {"code": "print(6 * 7)"})
    assert ran.status_code == 200, ran.text
    assert ran.json()["status"] == "ok" and ran.json()["stdout"] == "42\n"

    listed = hub.user_api("alice", "GET", "exercises")
    assert listed.status_code == 200 and [e["id"] for e in listed.json()] == ["add"]
    view = hub.user_api("alice", "GET", "exercises/add")
    assert view.status_code == 200 and "return a + b" not in json.dumps(view.json())

    graded = hub.user_api("alice", "POST", "exercises/add/submit", {"code": SOLUTION})
    assert graded.status_code == 200, graded.text
    result = graded.json()
    assert result["score"] == result["max_score"] > 0
    assert all(t["status"] == "passed" for t in result["tests"])

    status = hub.user_api("alice", "GET", "docker/status")
    assert status.status_code == 200 and status.json()["docker"]["reachable"] is True

    # The service recorded the submission for alice, with each test's status.
    mine = hub.service_api("GET", "submissions", hub.tokens["alice"]).json()["submissions"]
    assert mine[0]["user"] == "alice" and mine[0]["exercise_id"] == "add"
    assert mine[0]["score"] == result["score"] and mine[0]["id"] == result["submission_id"]
    full = hub.user_api("alice", "GET", f"submissions/{mine[0]['id']}").json()
    assert [t["status"] for t in full["tests"]] == [t["status"] for t in result["tests"]]
    assert full["code"] == {"code": SOLUTION}


WHERE = "print(open('/proc/self/cgroup').read().strip().split('/')[-1][:12])"


def test_a_users_runs_reuse_their_own_container_and_never_another_users(hub: Hub, no_leaks) -> None:
    """Through the hub, the proxy, the user's server in remote mode and the service: alice's next
    run finds her container again, reset; bob's run never does."""

    def where(user: str, extra: str = "") -> list:
        answer = hub.user_api(user, "POST", "execute", {"code": WHERE + extra, "use_cache": False})
        assert answer.status_code == 200 and answer.json()["status"] == "ok", answer.text
        return answer.json()["stdout"].splitlines()

    first = where("alice", "\nopen('/tmp/alice-was-here', 'w').write('x')")
    deadline = time.monotonic() + 10
    while True:  # the reset happens after the answer
        reuse = hub.user_api("alice", "GET", "docker/status").json()["docker"]["reuse"]
        if reuse["kept"] >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    again = where("alice", "\nimport os\nprint(os.listdir('/tmp'))")
    assert again == [first[0], "[]"], (first, again)
    assert where("bob")[0] != first[0]


def test_a_user_cannot_read_another_users_submissions(hub: Hub, no_leaks) -> None:
    wrong = hub.user_api(
        "bob", "POST", "exercises/add/submit", {"code": "def add(a, b):\n    return 0\n"}
    )
    assert wrong.status_code == 200 and wrong.json()["score"] < wrong.json()["max_score"]

    bobs = hub.service_api("GET", "submissions", hub.tokens["bob"]).json()["submissions"]
    assert bobs and {s["user"] for s in bobs} == {"bob"}
    alices = hub.service_api("GET", "submissions", hub.tokens["alice"]).json()["submissions"]
    assert {s["user"] for s in alices} <= {"alice"}
    # Through bob's own server (remote mode forwards the caller's own).
    forwarded = hub.user_api("bob", "GET", "submissions")
    assert forwarded.status_code == 200 and forwarded.json()["submissions"] == bobs

    peek = hub.service_api("GET", "submissions?user=bob", hub.tokens["alice"])
    assert peek.status_code == 403 and "your own" in peek.json()["message"]
    everyone = hub.service_api("GET", "submissions?user=*", hub.tokens["alice"])
    assert everyone.status_code == 403
    # Through her server the service decides the same.
    assert hub.user_api("alice", "GET", "submissions?user=bob").status_code == 403


def test_an_unauthenticated_call_to_the_service_is_refused(hub: Hub) -> None:
    for token in (None, "not-a-hub-token"):
        run = hub.service_api("POST", "execute", token, {"code": "print(1)"})
        assert run.status_code == 403, run.text
        assert hub.service_api("GET", "submissions", token).status_code == 403
        assert hub.service_api("GET", "exercises", token).status_code == 403
        assert hub.service_api("GET", "metrics", token).status_code == 403
    # Probes need no token and learn nothing but the state.
    assert set(hub.service_api("GET", "health", None).json()) == {"status"}


def test_the_service_exposes_metrics_to_admins_only(hub: Hub, no_leaks) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    assert hub.user_api("alice", "POST", "execute", {"code": "print(1)"}).json()["status"] == "ok"
    assert (
        hub.user_api("alice", "POST", "execute", {"code": "1/0"}).json()["status"]
        == "runtime_error"
    )
    assert (
        hub.user_api("alice", "POST", "exercises/add/submit", {"code": SOLUTION}).status_code == 200
    )

    assert hub.service_api("GET", "metrics", hub.tokens["alice"]).status_code == 403
    scraped = hub.service_api("GET", "metrics", SERVICE_TOKENS["prometheus"])
    assert scraped.status_code == 200 and scraped.headers["Content-Type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(scraped.text)
        for s in family.samples
    }
    assert samples[("exec_executions_total", (("status", "ok"),))] >= 1
    assert samples[("exec_executions_total", (("status", "runtime_error"),))] >= 1
    assert samples[("exec_execution_seconds_count", ())] >= 2
    assert samples[("exec_submissions_total", (("exercise", "add"), ("status", "ok")))] >= 1
    # Each execution and each submission's run started a container (the pool is off here), or
    # found its user's kept one.
    assert (
        samples[("exec_containers_created_total", ())] + samples[("exec_reuse_served_total", ())]
        >= 3
    )
    assert ("exec_reuse_kept", ()) in samples
    assert ("exec_containers_removed_total", ()) in samples
    assert ("exec_cache_hits_total", ()) in samples and ("exec_cache_misses_total", ()) in samples
    assert ("exec_cache_rejected_total", ()) in samples
    assert samples[("exec_pool_size", ())] == 0


def test_a_users_server_has_no_access_to_the_docker_socket(hub: Hub) -> None:
    state = hub.hub_api("GET", "users/alice").json()["servers"][""]["state"]
    pid = state["pid"]
    status = Path(f"/proc/{pid}/status").read_text()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1:] == ["65534"] * 4, uid_line  # nobody, real and effective
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert not any(v.startswith(b"DOCKER_HOST=") for v in environ)

    # As that user, connecting to the engine's socket is refused by the kernel.
    probe = subprocess.run(
        [
            str(python_for_nobody()),
            "-c",
            "import socket; s = socket.socket(socket.AF_UNIX); s.connect('/var/run/docker.sock')",
        ],
        user=65534,
        group=65534,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode != 0 and "PermissionError" in probe.stderr, probe.stderr


def test_the_submission_limit_reaches_the_student_through_their_server(hub: Hub, no_leaks) -> None:
    """The service counts bob's submissions of 'add' (whatever earlier tests used); the one over
    the limit comes back through his server in remote mode as 429 with Retry-After and the
    service's message, to a plain HTTP client and to the kernel's client alike."""
    from prometheus_client.parser import text_string_to_metric_families

    from jupyter_exec_ext.kernel.client import ExecClient, RateLimitedError

    answers = []
    for _ in range(SUBMIT_LIMIT + 1):
        answers.append(hub.user_api("bob", "POST", "exercises/add/submit", {"code": SOLUTION}))
        if answers[-1].status_code != 200:
            break
    refused = answers[-1]
    assert refused.status_code == 429, refused.text
    assert all(a.status_code == 200 and a.json()["score"] == 4 for a in answers[:-1])
    retry = int(refused.headers["Retry-After"])
    assert 1 <= retry <= 3600
    message = refused.json()["message"]
    assert message.startswith("you can submit 'add' again in "), message
    assert message.endswith(f"(at most {SUBMIT_LIMIT} submissions per 1 h)")

    client = ExecClient(f"{hub.url}/user/bob/api/exec/v1/", hub.tokens["bob"])
    with pytest.raises(RateLimitedError) as caught:
        client.submit("add", SOLUTION, exercise={"grading_time_limit": 40})
    assert str(caught.value).startswith("you can submit 'add' again in ")
    assert 1 <= caught.value.retry_after_s <= retry

    scraped = hub.service_api("GET", "metrics", SERVICE_TOKENS["prometheus"])
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(scraped.text)
        for s in family.samples
    }
    assert samples[("exec_submissions_rate_limited_total", (("exercise", "add"),))] >= 2
    status = hub.user_api("bob", "GET", "docker/status").json()
    assert status["submissions"]["limit"] == SUBMIT_LIMIT and status["submissions"]["refused"] >= 2


def test_the_service_keeps_the_submission_records_across_a_restart(hub: Hub, no_leaks) -> None:
    graded = hub.user_api("alice", "POST", "exercises/add/submit", {"code": SOLUTION})
    assert graded.status_code == 200
    before = hub.service_api("GET", "submissions", hub.tokens["alice"]).json()["submissions"]

    old = service_pid(hub.service_config)
    assert old is not None
    os.kill(old, signal.SIGKILL)  # a crash: nothing is flushed on the way out
    # The hub restarts a managed service that exits.
    hub.wait(
        lambda: (
            service_pid(hub.service_config) not in (None, old)
            and _answers(hub, f"/services/{SERVICE}/api/exec/v1/health")
        ),
        "the hub did not restart the executor service",
    )

    after = hub.service_api("GET", "submissions", hub.tokens["alice"])
    assert after.status_code == 200 and after.json()["submissions"] == before
    assert before[0]["score"] == graded.json()["score"]


def test_each_caller_gets_what_the_service_grants_and_nothing_else(hub: Hub, no_leaks) -> None:
    """A student, an instructor, a metrics scraper, an admin service, the hub's own admin service
    (no grant here) and a user named "*": only explicit grants open anyone's records."""
    # Someone else's record: the instructor tries the exercise (straight at the service; students'
    # submissions of 'add' are counted by the submission limit of other tests).
    tried = hub.service_api("POST", "exercises/add/submit", hub.tokens["carol"], {"code": SOLUTION})
    assert tried.status_code == 200, tried.text

    def submissions(token: str, query: str = ""):
        return hub.service_api("GET", "submissions" + query, token)

    # A user named "*" is refused, and never reads the record of everyone.
    for route, body in (("submissions", None), ("execute", {"code": "print(1)"})):
        star = hub.service_api("POST" if body else "GET", route, hub.tokens["*"], body)
        assert star.status_code == 403, star.text
        assert "'*' contains '*', which the exec service reserves" in star.json()["message"]
        assert "carol" not in star.text
    peek = submissions(hub.tokens["alice"], "?user=carol")
    assert peek.status_code == 403 and "carol" not in peek.text

    # The instructor (hub group "instructors") reads everyone's, a page at a time, and metrics.
    everyone = submissions(hub.tokens["carol"], "?user=*")
    assert everyone.status_code == 200
    assert {"carol", "bob"} <= {s["user"] for s in everyone.json()["submissions"]}
    total = everyone.json()["total"]
    first = submissions(hub.tokens["carol"], "?user=*&limit=1").json()
    assert len(first["submissions"]) == 1 and first["total"] == total
    if total > 1:
        second = submissions(hub.tokens["carol"], f"?user=*&limit=1&offset={first['next_offset']}")
        assert int(second.json()["submissions"][0]["id"]) < int(first["submissions"][0]["id"])
    bobs = submissions(hub.tokens["carol"], "?user=bob").json()["submissions"]
    assert bobs and {s["user"] for s in bobs} == {"bob"}
    assert hub.service_api("GET", "metrics", hub.tokens["carol"]).status_code == 200
    bad = submissions(hub.tokens["carol"], "?user=a%2Cb")
    assert bad.status_code == 400 and "user 'a,b' contains ','" in bad.json()["message"]
    bad = submissions(hub.tokens["carol"], "?user=*&limit=5000")
    assert bad.status_code == 400 and "limit must be from 1 to 1000" in bad.json()["message"]

    # The scraper reads metrics and nothing else.
    scraper = SERVICE_TOKENS["prometheus"]
    assert hub.service_api("GET", "metrics", scraper).status_code == 200
    for method, route, body in (
        ("GET", "submissions?user=*", None),
        ("GET", "submissions", None),
        ("POST", "execute", {"code": "print(1)"}),
        ("POST", "exercises/add/submit", {"code": SOLUTION}),
    ):
        refused = hub.service_api(method, route, scraper, body)
        assert refused.status_code == 403 and "metrics only" in refused.json()["message"], route

    # The hub's admin service may access the service, and is granted nothing here.
    for method, route, body in (
        ("GET", "submissions?user=*", None),
        ("GET", "metrics", None),
        ("POST", "execute", {"code": "print(1)"}),
    ):
        refused = hub.service_api(method, route, ADMIN_TOKEN, body)
        assert refused.status_code == 403 and "no grant" in refused.json()["message"], route

    # A service named in admin_services is an admin.
    gradebook = submissions(SERVICE_TOKENS["gradebook"], "?user=*")
    assert gradebook.status_code == 200 and gradebook.json()["total"] == total


WRONG_BIG = "def add(a, b):\n    return a + b if abs(a) < 1000 else 0\n"


def test_students_never_read_each_others_records_or_hidden_details(hub: Hub, no_leaks) -> None:
    """alice fails the hidden test; bob, a student too, learns nothing of her record through
    the service or his server, and alice sees her hidden test as pass or fail only."""
    graded = hub.user_api("alice", "POST", "exercises/add/submit", {"code": WRONG_BIG})
    assert graded.status_code == 200, graded.text
    ident = graded.json()["submission_id"]
    hidden = [t for t in graded.json()["tests"] if t["hidden"]]
    assert hidden and all(
        t["message"] in ("hidden test passed", "hidden test failed") for t in hidden
    )

    own = hub.user_api("alice", "GET", f"submissions/{ident}")
    assert own.status_code == 200 and own.json()["code"] == {"code": WRONG_BIG}
    assert own.json()["tests"] == graded.json()["tests"]
    assert "expected" not in json.dumps([t for t in own.json()["tests"] if t["hidden"]])

    for call in (
        lambda route: hub.user_api("bob", "GET", route),
        lambda route: hub.service_api("GET", route, hub.tokens["bob"]),
    ):
        peek = call(f"submissions/{ident}")
        assert peek.status_code == 404 and WRONG_BIG not in peek.text, peek.text
        for route in (
            "submissions?user=alice",
            "submissions?user=*",
            "gradebook",
            "gradebook?format=csv",
            "exercises/add/stats",
        ):
            refused = call(route)
            assert refused.status_code == 403 and "alice" not in refused.text, (route, refused.text)
        mine = call("submissions?exercise=add").json()["submissions"]
        assert {s["user"] for s in mine} <= {"bob"}
        assert call("authoring/mode").json() == {"mode": "student", "instructor": False}
    progress = hub.user_api("alice", "GET", "exercises/add/progress").json()
    assert progress["attempts"] >= 1 and progress["last"] == graded.json()["score"]


def test_the_instructor_group_reads_the_gradebook_through_her_own_server(
    hub: Hub, no_leaks
) -> None:
    """carol is an instructor because the hub lists her in the group the service names: her own
    server's token cannot show her groups, so the service asks the hub with its own token."""
    graded = hub.user_api("alice", "POST", "exercises/add/submit", {"code": WRONG_BIG})
    assert graded.status_code == 200, graded.text
    assert hub.user_api("carol", "GET", "authoring/mode").json() == {
        "mode": "student",
        "instructor": True,
    }
    full = hub.user_api("carol", "GET", f"submissions/{graded.json()['submission_id']}")
    assert full.status_code == 200 and full.json()["user"] == "alice"
    hidden = [t for t in full.json()["tests"] if t["hidden"]]
    assert hidden and hidden[0]["message"] not in ("hidden test passed", "hidden test failed")
    assert hidden[0]["expected"] == "1000000000001"

    book = hub.user_api("carol", "GET", "gradebook")
    assert book.status_code == 200, book.text
    rows = {(r["user"], r["exercise_id"]): r for r in book.json()["rows"]}
    assert {"alice", "bob"} <= set(book.json()["users"]) and book.json()["exercises"] == ["add"]
    assert rows[("alice", "add")]["last"] == graded.json()["score"]
    assert rows[("alice", "add")]["attempts"] >= 2
    exported = hub.user_api("carol", "GET", "gradebook?format=csv")
    assert exported.status_code == 200 and exported.headers["Content-Type"].startswith("text/csv")
    assert exported.headers["Content-Disposition"] == 'attachment; filename="grades.csv"'
    lines = exported.text.splitlines()
    assert lines[0] == "user,exercise_id,score,best,last,max_score,attempts,late,last_at"
    assert any(line.startswith("alice,add,") for line in lines[1:])

    stats = hub.user_api("carol", "GET", "exercises/add/stats")
    assert stats.status_code == 200, stats.text
    big = next(t for t in stats.json()["tests"] if t["name"] == "big numbers")
    assert big["hidden"] is True and big["attempted_students"] >= 1 and big["failures"] == []
    alices = hub.user_api("carol", "GET", "submissions?user=alice&exercise=add").json()
    assert alices["total"] >= 2 and {s["user"] for s in alices["submissions"]} == {"alice"}


def test_a_hub_role_named_in_the_config_makes_an_instructor(hub: Hub) -> None:
    """erin holds the hub role course-instructor (admin_roles); a student holds none."""
    assert hub.service_api("GET", "gradebook", hub.tokens["erin"]).status_code == 200
    assert hub.service_api("GET", "authoring/mode", hub.tokens["erin"]).json()["instructor"] is True
    assert hub.service_api("GET", "gradebook", hub.tokens["alice"]).status_code == 403


def test_a_cache_entry_written_into_redis_by_someone_else_is_never_served(
    hub: Hub, no_leaks
) -> None:
    """A kernel that reaches the cache's Redis (here: with its password even) rewrites alice's
    cached output; bob's run of the same code gets the real output."""
    code = "print('the real output', 6 * 7)"
    first = hub.user_api("alice", "POST", "execute", {"code": code})
    assert first.status_code == 200 and first.json()["stdout"] == "the real output 42\n"
    client = hub.redis.client()
    keys = list(client.scan_iter(match="jupyter-exec-ext:result:*"))
    assert keys, "the service cached nothing in Redis"
    poisoned = json.dumps(
        {"status": "ok", "stdout": "POISONED by alice's kernel\n", "stderr": "", "exit_code": 0}
    ).encode()
    for key in keys:
        # Keeps the entry's key id and HMAC, as someone who can read the entries would.
        client.set(key, client.get(key)[: 16 + 64] + poisoned)
    client.close()

    bobs = hub.user_api("bob", "POST", "execute", {"code": code})
    assert bobs.status_code == 200, bobs.text
    assert (bobs.json()["stdout"], bobs.json()["cached"]) == ("the real output 42\n", False)
    status = hub.service_api("GET", "docker/status", hub.tokens["carol"]).json()
    assert status["docker"]["cache"]["backend"] == "redis"
    assert status["docker"]["cache"]["rejected"] >= 1

    # Without the password, Redis answers nothing at all.
    import redis

    anonymous = redis.Redis(host="127.0.0.1", port=hub.redis.port, socket_timeout=5)
    with pytest.raises(redis.AuthenticationError):
        anonymous.keys("*")
    anonymous.close()


def test_forwarded_address_headers_from_a_caller_are_not_believed(hub: Hub) -> None:
    """Straight to the service's port, past the proxy, with a made-up client address: refused,
    and the log names the real peer, never the claimed one."""
    import requests

    spoofed = "203.0.113.77"
    answer = requests.post(
        f"http://127.0.0.1:{hub.service_port}/services/{SERVICE}/api/exec/v1/execute",
        data=json.dumps({"code": "print(1)"}),
        timeout=30,
        headers={"X-Real-Ip": spoofed, "X-Forwarded-For": spoofed},
    )
    assert answer.status_code == 403
    hub.wait(
        lambda: "refused POST execute from 127.0.0.1" in hub.log.read_text(),
        "the service did not log the refusal",
        limit_s=10,
    )
    assert spoofed not in hub.log.read_text()


def _running(pid: int) -> bool:
    """Whether the process is alive (an exited child the hub has not reaped yet is not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def test_a_stopping_service_finishes_its_runs_and_servers_answer_json_until_it_is_back(
    hub: Hub, no_leaks
) -> None:
    """SIGTERM during alice's run: she gets her result; new runs are refused at once; until the
    hub has restarted the service, users' servers answer a JSON 503 naming the cause, and health
    says down."""
    old = service_pid(hub.service_config)
    assert old is not None
    answers: dict = {}
    slow = "import time\ntime.sleep(4)\nprint('finished')"
    alice = threading.Thread(
        target=lambda: answers.setdefault(
            "alice", hub.user_api("alice", "POST", "execute", {"code": slow, "use_cache": False})
        )
    )
    alice.start()
    hub.wait(
        lambda: (
            hub.service_api("GET", "docker/status", hub.tokens["carol"]).json()["runs"]["in_flight"]
            >= 1
        ),
        "alice's run did not start",
        limit_s=60,
    )
    os.kill(old, signal.SIGTERM)
    hub.wait(lambda: _refuses_connections(hub.service_port), "the service kept listening", 10)

    def unreachable_as_json(reasons: tuple = ("service_unreachable",)) -> None:
        refused = hub.user_api("bob", "POST", "execute", {"code": "print(1)"})
        assert refused.status_code == 503, refused.text
        assert refused.headers["Content-Type"].startswith("application/json")
        assert refused.json()["reason"] in reasons
        if refused.json()["reason"] == "service_unreachable":
            assert refused.json()["message"].startswith("the executor service is unreachable (")
        health = hub.user_api("bob", "GET", "health")
        assert health.status_code == 200 and health.json() == {"status": "down"}

    # While alice's run finishes: new connections are refused (the proxy answers its error page);
    # a request on a connection the proxy kept alive is refused by the stopping service itself.
    unreachable_as_json(("service_unreachable", "service_stopping"))
    alice.join(60)
    assert answers["alice"].status_code == 200, answers["alice"].text
    assert answers["alice"].json()["stdout"] == "finished\n"
    hub.wait(lambda: not _running(old), "the service did not exit after its last run", 60)
    exited = time.monotonic()
    unreachable_as_json()  # after it exited, before the hub restarted it

    hub.wait(
        lambda: (
            service_pid(hub.service_config) not in (None, old)
            and hub.user_api("bob", "GET", "health").json() == {"status": "ok"}
        ),
        "the hub did not restart the executor service",
    )
    # Reported, not asserted: docs/hub.md quotes it.
    print(f"\nexecutor service answered again {time.monotonic() - exited:.1f} s after it exited")
    assert "stopping: no new runs" in hub.log.read_text()


async def _live(url: str, token: Optional[str]):
    """A WebSocket to ``execute/ws`` at ``url`` (through the hub's proxy) with ``token``."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    headers = {"Authorization": f"token {token}"} if token else {}
    return await websocket_connect(
        HTTPRequest(url, headers=headers, connect_timeout=60, request_timeout=60)
    )


async def _until(conn, kind: str) -> list:
    import asyncio

    seen = []
    while True:
        raw = await asyncio.wait_for(conn.read_message(), 60)
        assert raw is not None, f"the socket closed before a {kind} message: {seen}"
        seen.append(json.loads(raw))
        if seen[-1]["type"] == kind:
            return seen


def test_a_live_run_through_the_users_server_and_the_hubs_proxy(hub: Hub, no_leaks) -> None:
    """The lab's path on a hub: the user's server (remote mode) joins its execute/ws to the
    service's through the hub's proxy with the user's token; input and cancel go through."""
    import asyncio

    async def session() -> None:
        conn = await _live(
            f"ws://127.0.0.1:{hub.port}/user/alice/api/exec/v1/execute/ws", hub.tokens["alice"]
        )
        try:
            conn.write_message(
                json.dumps(
                    {"type": "run", "code": "print('hi', flush=True)\nprint(input('Name? ') * 2)\n"}
                )
            )
            seen = await _until(conn, "input_request")
            assert [m["type"] for m in seen][0] == "started"
            assert seen[-1]["prompt"] == "Name? "
            assert "".join(m["data"] for m in seen if m["type"] == "output") == "hi\n"
            conn.write_message(json.dumps({"type": "stdin", "data": "ab\n"}))
            result = (await _until(conn, "result"))[-1]
            assert (result["status"], result["stdout"]) == ("ok", "hi\nabab\n"), result
            conn.write_message(json.dumps({"type": "run", "code": "while True:\n    pass\n"}))
            await _until(conn, "started")
            conn.write_message(json.dumps({"type": "cancel"}))
            assert (await _until(conn, "result"))[-1]["status"] == "cancelled"
            conn.write_message("not json")
            error = (await _until(conn, "error"))[-1]
            assert "not valid JSON" in error["message"]
        finally:
            conn.close()

    asyncio.run(session())


def test_the_services_live_socket_needs_a_hub_token(hub: Hub) -> None:
    import asyncio

    from tornado.httpclient import HTTPClientError

    url = f"ws://127.0.0.1:{hub.port}/services/{SERVICE}/api/exec/v1/execute/ws"
    for token in (None, "not-a-hub-token", SERVICE_TOKENS["prometheus"]):
        with pytest.raises(HTTPClientError) as refused:
            asyncio.run(_live(url, token))
        assert refused.value.code == 403, token
    with pytest.raises(HTTPClientError) as refused:  # and so does the user's server
        asyncio.run(_live(f"ws://127.0.0.1:{hub.port}/user/alice/api/exec/v1/execute/ws", None))
    assert refused.value.code in (302, 403)
