"""Scale-out for real: two replicas of the executor service on two Docker engines behind HAProxy
(deploy/haproxy/haproxy.cfg, as shipped), sharing one Redis (run caps, submission limits) and one
PostgreSQL (the gradebook), authenticated by a real JupyterHub whose ``exec`` service is the
balancer.

Replica 1 uses the system's engine; replica 2 the tests' own second engine (tests/second_engine.py:
its own data root, exec root, pid file and socket, no bridge, no iptables). The tests show that
the users' runs spread over both engines, that each user's runs reuse one container on one engine,
that the per-user cap holds across replicas, that a replica or its engine stopping mid-load loses
no submission record while new runs go to the other replica, and that nothing is left on either
engine. The last test runs a student's own single-user server (remote mode) through the hub's
proxy and the balancer.

One deployment per module: starting a hub, two replicas, an engine and HAProxy is slow on a small
machine. Under CI=true a missing part fails these tests.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import docker
import pytest
import requests

from jupyter_exec_ext.gradebook.store import GradebookStore

from .conftest import REDIS_SERVER, TEST_OWNER, RedisServer, our_containers, require
from .grading.notebooks import exercise_notebook, write_notebook
from .second_engine import DATA_ROOT, SecondEngine, running_engine

pytestmark = [
    pytest.mark.docker,
    pytest.mark.hub,
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.timeout(900),
]

REPO = Path(__file__).resolve().parents[1]
HAPROXY_CONFIG = REPO / "deploy" / "haproxy" / "haproxy.cfg"
VENV_BIN = Path(sys.executable).parent
PREFIX = "/services/exec/"
API = PREFIX + "api/exec/v1/"
ADMIN_TOKEN = "pytest-scaleout-admin-token-0123456789"
SERVICE_TOKEN = "pytest-scaleout-service-token-0123456789"
SOLUTION = "def add(a, b):\n    return a + b\n"
#: Graded submissions per user and exercise in the window (shared across the replicas).
SUBMIT_LIMIT = 2
#: Seconds a stopped replica's runs and ungraded submissions keep counting.
LEASE_S = 2.0
#: Prints where the run's container is: the path of its /etc/hostname on the engine's data root
#: (``/var/lib/docker/containers/<id>/hostname`` on the system's engine).
WHERE = (
    "print([l.split()[3] for l in open('/proc/self/mountinfo') "
    "if l.split()[4] == '/etc/hostname'][0])"
)
#: A submission of the 'slow' exercise takes this long to grade.
SLOW = "def slow():\n    import time\n    time.sleep(8)\n    return 1\n"

SERVICE_CONFIG = """
c.ExecServiceApp.image = {image!r}
c.ExecServiceApp.owner = {owner!r}
c.ExecServiceApp.exercises_dir = {exercises!r}
c.ExecServiceApp.db_url = {db_url!r}
c.ExecServiceApp.shared_state_url = {redis_url!r}
c.ExecServiceApp.shared_state_prefix = "scaleout:"
c.ExecServiceApp.shared_state_lease = {lease}
c.ExecServiceApp.cache_enabled = False
c.ExecServiceApp.time_limit = 20.0
c.ExecServiceApp.max_time_limit = 20.0
c.ExecServiceApp.pool_size = 0
c.ExecServiceApp.reuse_idle = 300.0
c.ExecServiceApp.reap_interval = 2.0
c.ExecServiceApp.max_concurrent_runs = 4
c.ExecServiceApp.max_runs_per_user = 2
c.ExecServiceApp.submit_rate_limit = {submit_limit}
c.ExecServiceApp.submit_rate_window = 3600.0
c.ExecServiceApp.stop_timeout = 30.0
c.ExecServiceApp.trusted_proxies = ["127.0.0.1"]
"""

HUB_CONFIG = '''
import os
from jupyterhub.spawner import SimpleLocalProcessSpawner, set_user_setuid


class NobodySpawner(SimpleLocalProcessSpawner):
    """Students' servers run as nobody: not root, not in the docker group."""

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
c.ConfigurableHTTPProxy.auth_token = "pytest-scaleout-proxy-token"
c.JupyterHub.db_url = "sqlite:///" + settings["dir"] + "/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = settings["dir"] + "/cookie_secret"
c.JupyterHub.pid_file = settings["dir"] + "/jupyterhub.pid"
c.JupyterHub.cleanup_servers = True
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = NobodySpawner
c.SimpleLocalProcessSpawner.home_dir_template = settings["dir"] + "/home/{{username}}"
c.Spawner.cmd = settings["singleuser"]
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
c.Spawner.args = ["--ExecExtApp.backend=remote"]
c.Spawner.environment = {{
    "JUPYTER_CONFIG_DIR": settings["dir"] + "/user-config",
    "JUPYTER_EXEC_SERVICE_URL": settings["service_api"],
}}
c.Spawner.server_token_scopes = [
    "access:servers!server", "users:activity!user", "access:services!service=exec",
]
c.JupyterHub.load_roles = [
    {{"name": "user", "scopes": ["self", "access:services!service=exec"]}},
    {{"name": "admin", "services": ["pytest-admin"]}},
]
# docs/hub.md, "More than one machine": the service is the balancer; the hub starts no replica.
c.JupyterHub.services = [
    {{"name": "exec", "url": settings["balancer"], "api_token": settings["service_token"]}},
    {{"name": "pytest-admin", "api_token": settings["admin_token"]}},
]
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.2)


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


class Replica:
    """One ``jupyter-exec-service`` process behind the balancer, on its own Docker engine."""

    def __init__(self, name: str, root: Path, env: dict) -> None:
        self.name, self.root, self.env = name, root, env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / f"{name}.log"
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [
                    str(VENV_BIN / "jupyter-exec-service"),
                    "--config",
                    str(self.root / "service.py"),
                    "--ip",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                cwd=self.root,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_healthy(self) -> None:
        def healthy() -> bool:
            assert self.process.poll() is None, f"{self.name} exited:\n{self.tail()}"
            try:
                answer = requests.get(self.url + API + "health", timeout=5)
            except requests.RequestException:
                return False
            return answer.status_code == 200 and answer.json()["status"] == "ok"

        wait_until(healthy, f"{self.name} is healthy")

    def kill(self) -> None:
        """Stops the replica at once, as a crash or a lost machine would."""
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        """SIGTERM: finishes its runs, removes its pool and kept containers, exits."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


class Balancer:
    """HAProxy with the shipped configuration, plus a stats socket to read the replicas' state."""

    def __init__(self, root: Path, replicas: list[Replica]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.socket = root / "haproxy.sock"
        extra = root / "haproxy-stats.cfg"
        extra.write_text(f"global\n    stats socket {self.socket} mode 600 level admin\n")
        env = {
            **os.environ,
            "EXEC_LB_BIND": f"127.0.0.1:{self.port}",
            "EXEC_SERVICE_PREFIX": PREFIX,
            "EXEC_REPLICA_1": f"127.0.0.1:{replicas[0].port}",
            "EXEC_REPLICA_2": f"127.0.0.1:{replicas[1].port}",
        }
        self.log = root / "haproxy.log"
        check = subprocess.run(
            ["haproxy", "-c", "-f", str(HAPROXY_CONFIG), "-f", str(extra)],
            env=env,
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, check.stdout + check.stderr
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                ["haproxy", "-db", "-f", str(HAPROXY_CONFIG), "-f", str(extra)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def state(self) -> dict[str, str]:
        """Each replica's state as the balancer sees it: ``UP``, ``DOWN``, ..."""
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.socket))
            s.sendall(b"show stat\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        rows = [
            line.split(",")
            for line in data.decode().splitlines()
            if line and not line.startswith("#")
        ]
        return {
            row[1]: row[17].split(" ")[0]
            for row in rows
            if row[0] == "exec_replicas" and row[1] not in ("BACKEND",)
        }

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


@dataclass
class Deployment:
    root: Path
    hub_url: str
    hub: subprocess.Popen
    hub_log: Path
    engine: SecondEngine
    replicas: list[Replica]
    balancer: Balancer
    db_url: str
    redis: RedisServer
    image: str
    tokens: dict[str, str] = field(default_factory=dict)

    def hub_api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(
            method,
            f"{self.hub_url}/hub/api/{path}",
            timeout=60,
            headers={"Authorization": f"token {ADMIN_TOKEN}"},
            **kwargs,
        )

    def token(self, user: str) -> str:
        """A hub token of ``user`` (made on first use) that may use the exec service."""
        if user not in self.tokens:
            made = self.hub_api("POST", f"users/{user}")
            assert made.status_code in (201, 409), made.text
            made = self.hub_api(
                "POST", f"users/{user}/tokens", json={"note": "pytest", "expires_in": 3600}
            )
            assert made.status_code == 201, made.text
            self.tokens[user] = made.json()["token"]
        return self.tokens[user]

    def call(
        self, user: str, method: str, route: str, body: Any = None, base: Optional[str] = None
    ) -> requests.Response:
        """A request of ``user`` to the service: through the balancer, or ``base`` (a replica)."""
        return requests.request(
            method,
            (base or self.balancer.url) + API + route,
            timeout=120,
            headers={"Authorization": f"token {self.token(user)}"},
            data=None if body is None else json.dumps(body),
        )

    def run(self, user: str, code: str, base: Optional[str] = None) -> requests.Response:
        return self.call(user, "POST", "execute", {"code": code, "use_cache": False}, base)

    def submit(
        self, user: str, exercise: str, code: str, base: Optional[str] = None
    ) -> requests.Response:
        return self.call(user, "POST", f"exercises/{exercise}/submit", {"code": code}, base)

    def records(self, user: str) -> list[dict]:
        store = GradebookStore(self.db_url, migrate_schema=False)
        try:
            return store.list(user=user, limit=1000)[1]
        finally:
            store.close()

    def engine_of(self, where: str) -> str:
        """``system`` or ``second``: whose data root a container's hostname file is on."""
        if where.startswith(str(DATA_ROOT)):
            return "second"
        assert where.startswith("/var/lib/docker/containers/"), where
        return "system"


def hub_singleuser_command() -> list[str]:
    from .hub.test_hub import python_for_nobody

    python = python_for_nobody()
    require(python is not None, "no Python interpreter that the user nobody may run")
    return [
        str(python),
        "-S",
        "-c",
        "import site, sys; site.addsitedir(sys.argv.pop(1)); "
        "from jupyterhub.singleuser import main; sys.exit(main())",
        sysconfig.get_paths()["purelib"],
    ]


@pytest.fixture(scope="module")
def deployment(executor_image, postgres_cluster):
    require(
        shutil.which("haproxy") is not None,
        "haproxy is not installed (Debian package haproxy; scripts/provision.sh installs it)",
    )
    chp = shutil.which("configurable-http-proxy")
    require(chp is not None, "configurable-http-proxy is not installed (scripts/provision.sh)")
    require(os.access(REDIS_SERVER, os.X_OK), "redis-server is not installed")
    require(os.geteuid() == 0, "the scale-out test runs a second Docker engine, which needs root")
    pwd.getpwnam("nobody")

    root = Path(tempfile.mkdtemp(prefix="exec-scaleout-"))
    root.chmod(0o755)
    (root / "home").mkdir(mode=0o755)
    (root / "user-config").mkdir(mode=0o755)
    (root / "user-config" / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": {"jupyter_exec_ext": True}}})
    )
    exercises = root / "exercises"
    write_notebook(exercises / "add.ipynb", exercise_notebook("add", solution=SOLUTION))
    write_notebook(
        exercises / "slow.ipynb",
        exercise_notebook(
            "slow",
            solution=SLOW,
            starter="def slow():\n    pass\n",
            tests=[{"name": "slow", "test_code": "assert slow() == 1", "timeout": 15}],
        ),
    )
    redis_server = RedisServer(root, password="pytest-scaleout-redis-password")
    redis_server.start()
    db_url = postgres_cluster.new_database()
    (root / "service.py").write_text(
        SERVICE_CONFIG.format(
            image=executor_image,
            owner=TEST_OWNER,
            exercises=str(exercises),
            db_url=db_url,
            redis_url=redis_server.url,
            lease=LEASE_S,
            submit_limit=SUBMIT_LIMIT,
        )
    )

    with running_engine(executor_image) as engine:
        hub_port = free_port()
        base_env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
        base_env.update(
            {
                "PATH": f"{VENV_BIN}:{base_env.get('PATH', '')}",
                "JUPYTERHUB_API_TOKEN": SERVICE_TOKEN,
                "JUPYTERHUB_API_URL": f"http://127.0.0.1:{hub_port}/hub/api",
                "JUPYTERHUB_SERVICE_NAME": "exec",
                "JUPYTERHUB_SERVICE_PREFIX": PREFIX,
            }
        )
        replicas = [
            Replica("replica-1", root, base_env),
            Replica("replica-2", root, {**base_env, "DOCKER_HOST": engine.base_url}),
        ]
        balancer = Balancer(root, replicas)
        port = free_port()
        settings = {
            "port": port,
            "hub_port": hub_port,
            "proxy_api_port": free_port(),
            "dir": str(root),
            "chp": chp,
            "singleuser": hub_singleuser_command(),
            "balancer": balancer.url,
            "service_token": SERVICE_TOKEN,
            "admin_token": ADMIN_TOKEN,
            "service_api": f"http://127.0.0.1:{port}{API}",
        }
        (root / "jupyterhub_config.py").write_text(HUB_CONFIG.format(settings=settings))
        hub_log = root / "jupyterhub.log"
        with open(hub_log, "wb") as out:
            hub = subprocess.Popen(
                [str(VENV_BIN / "jupyterhub"), "-f", str(root / "jupyterhub_config.py")],
                cwd=root,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=base_env,
                start_new_session=True,
            )
        deployment = Deployment(
            root,
            f"http://127.0.0.1:{port}",
            hub,
            hub_log,
            engine,
            replicas,
            balancer,
            db_url,
            redis_server,
            executor_image,
        )
        try:
            # Both at once, as an orchestrator starts them: the first migrates the empty database
            # while the other waits for it.
            for replica in replicas:
                replica.start()
            for replica in replicas:
                replica.wait_healthy()
            wait_until(lambda: answers(f"{deployment.hub_url}/hub/api/"), "the hub answers")
            wait_until(
                lambda: balancer.state() == {"exec1": "UP", "exec2": "UP"},
                "the balancer sees both replicas up",
            )
            yield deployment
        except BaseException:
            for log in (hub_log, balancer.log, *[r.log for r in replicas]):
                print(
                    f"--- {log.name}\n{log.read_text(errors='replace')[-4000:] if log.exists() else ''}"
                )
            raise
        finally:
            for replica in replicas:
                replica.stop()
            balancer.stop()
            hub.send_signal(signal.SIGINT)
            try:
                hub.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(hub.pid, signal.SIGKILL)
            redis_server.kill()
            # The system engine: nothing of ours (the second engine is checked on leaving `with`).
            client = docker.from_env(timeout=60)
            left = our_containers(client)
            for c in left:
                client.api.remove_container(c["Id"], force=True)
            client.close()
            shutil.rmtree(root, ignore_errors=True)
            assert not left, f"{len(left)} sandbox container(s) left on the system engine"


def where_runs(d: Deployment, user: str) -> str:
    answer = d.run(user, WHERE)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "ok", answer.json()
    return answer.json()["stdout"].strip()


def resets_done(d: Deployment) -> bool:
    """Whether no replica is resetting a container for its user's next run (a run that comes
    during a long reset may get a new container: that is the sandbox's rule, not the balancer's)."""
    return all(
        d.call("status-reader", "GET", "docker/status", base=r.url).json()["docker"]["reuse"][
            "resetting"
        ]
        == 0
        for r in d.replicas
    )


def test_runs_of_many_users_spread_over_both_engines_and_each_keeps_one_container(
    deployment,
) -> None:
    d = deployment
    users = [f"spread-{i}" for i in range(8)]
    for user in users:
        d.token(user)
    found: dict[str, list[str]] = {user: [] for user in users}
    for _ in range(3):  # the class presses Run three times, all at once each time
        threads = [
            threading.Thread(target=lambda u=u: found[u].append(where_runs(d, u))) for u in users
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wait_until(lambda: resets_done(d), "the replicas have reset the containers")
    engines = {}
    for user, paths in found.items():
        # Three runs in a row, one container (reset in between), on one engine.
        assert len(paths) == 3 and len(set(paths)) == 1, (user, paths)
        engines[user] = d.engine_of(paths[0])
    assert set(engines.values()) == {"system", "second"}, engines
    # Each container is where the path says: on that engine, and only there.
    system, second = docker.from_env(timeout=60), d.engine.client()
    try:
        on = {
            "system": {c["Id"] for c in our_containers(system)},
            "second": {c["Id"] for c in our_containers(second, owner=None)},
        }
    finally:
        system.close()
        second.close()
    for user, paths in found.items():
        container = Path(paths[0]).parent.name
        assert container in on[engines[user]], (user, engines[user])
        assert not any(container in ids for name, ids in on.items() if name != engines[user])


def test_the_per_user_cap_holds_across_replicas(deployment) -> None:
    d = deployment
    one, two = (r.url for r in d.replicas)
    slow = "import time\ntime.sleep(6)\nprint('done')\n"
    answers_: dict[str, requests.Response] = {}
    held = [
        threading.Thread(
            target=lambda base=base, key=key: answers_.__setitem__(key, d.run("capped", slow, base))
        )
        for key, base in (("one", one), ("two", two))
    ]
    for t in held:
        t.start()
    try:
        # One run in progress on each replica: the user's cap of 2 is reached, on both.
        wait_until(
            lambda: all(
                requests.get(
                    r.url + API + "docker/status",
                    timeout=10,
                    headers={"Authorization": f"token {d.token('capped')}"},
                ).json()["runs"]["in_flight"]
                >= 1
                for r in d.replicas
            ),
            "each replica runs one of the user's runs",
        )
        for base in (one, two, None):
            refused = d.run("capped", "print('one too many')", base)
            assert refused.status_code == 429, refused.text
            assert "you already have 2 run(s) in progress" in refused.json()["message"]
        assert d.run("someone-else", "print('fine')").json()["stdout"] == "fine\n"
    finally:
        for t in held:
            t.join()
    assert [answers_[k].json()["stdout"] for k in ("one", "two")] == ["done\n", "done\n"]
    assert d.run("capped", "print('again')").json()["stdout"] == "again\n"


@dataclass
class Answer:
    user: str
    kind: str
    started: float
    status: int
    body: dict


def load(
    d: Deployment, users: list[str], stop: threading.Event, code: str
) -> tuple[list[Answer], list[threading.Thread]]:
    """Each user, in a thread, submits 'add' (at most the limit) and runs code until ``stop``;
    the answers so far, and the threads to join."""
    answers_: list[Answer] = []
    lock = threading.Lock()

    def student(user: str) -> None:
        submitted = 0
        while not stop.is_set():
            for kind in ("submit", "run", "run"):
                started = time.monotonic()
                try:
                    if kind == "submit":
                        if submitted >= SUBMIT_LIMIT:
                            continue
                        submitted += 1
                        answer = d.submit(user, "add", SOLUTION)
                    else:
                        answer = d.run(user, code)
                    status, body = answer.status_code, answer.json()
                except requests.RequestException as e:
                    status, body = 0, {"message": str(e)}
                with lock:
                    answers_.append(Answer(user, kind, started, status, body))

    threads = [threading.Thread(target=student, args=(u,)) for u in users]
    for u in users:
        d.token(u)
    for t in threads:
        t.start()
    return answers_, threads


def finish(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.join(timeout=120)


def check_records(d: Deployment, answers_: list[Answer]) -> None:
    """Every submission answered as graded is in the gradebook, once. A record beyond those can
    only be a submission whose answer was lost with its replica (recorded, then the replica
    stopped before answering): at most one per such lost submission."""
    for user in {a.user for a in answers_}:
        mine = [a for a in answers_ if a.user == user and a.kind == "submit"]
        graded = [
            a.body["submission_id"]
            for a in mine
            if a.status == 200 and a.body["status"] != "internal_error"
        ]
        assert None not in graded
        recorded = sorted(r["id"] for r in d.records(user))
        assert set(graded) <= set(recorded) and len(set(recorded)) == len(recorded), user
        lost = [a for a in mine if a.status != 200]
        assert len(recorded) - len(graded) <= len(lost), (user, recorded, graded)


def test_a_replica_stopping_mid_load_loses_no_submission_record_and_new_runs_go_to_the_other(
    deployment,
) -> None:
    d = deployment
    one, two = d.replicas
    # A student the balancer sends to replica 2, with a long run in progress there.
    stranded = next(
        u for u in (f"stranded-{i}" for i in range(20)) if d.engine_of(where_runs(d, u)) == "second"
    )
    stranded_answer: list[requests.Response] = []
    stranded_thread = threading.Thread(
        target=lambda: stranded_answer.append(d.run(stranded, "import time\ntime.sleep(15)\n"))
    )
    stranded_thread.start()

    def in_flight_on_two() -> int:
        return d.call(stranded, "GET", "docker/status", base=two.url).json()["runs"]["in_flight"]

    wait_until(lambda: in_flight_on_two() >= 1, "replica 2 runs the stranded student's run")
    # zoe's submission is being graded on replica 2 when it goes away.
    cut: list[requests.Response | Exception] = []

    def zoe() -> None:
        try:
            cut.append(d.submit("zoe", "slow", SLOW, base=two.url))
        except requests.RequestException as e:
            cut.append(e)

    zoe_thread = threading.Thread(target=zoe)
    zoe_thread.start()
    wait_until(lambda: in_flight_on_two() >= 2, "replica 2 grades zoe's submission")
    stop = threading.Event()
    answers_, threads = load(
        d, [f"crash-{i}" for i in range(8)], stop, "import time\ntime.sleep(0.3)\nprint('ok')\n"
    )
    time.sleep(4)
    two.kill()
    killed_at = time.monotonic()
    wait_until(
        lambda: d.balancer.state()["exec2"] == "DOWN", "the balancer marks replica 2 down", 30
    )
    down_at = time.monotonic()
    time.sleep(5)
    stop.set()
    finish(threads)
    zoe_thread.join(timeout=60)
    stranded_thread.join(timeout=60)
    # Through the balancer, the run lost with its replica says so, in the API's JSON shape; the
    # student's next run goes to the other replica.
    lost_run = stranded_answer[0]
    assert lost_run.status_code == 502 and lost_run.headers["Content-Type"] == "application/json"
    assert lost_run.json()["reason"] == "replica_lost"
    assert lost_run.json()["message"].startswith(
        "the executor replica running this request stopped"
    )
    assert d.engine_of(where_runs(d, stranded)) == "system"

    # Only requests in progress on the stopped replica were lost, with the balancer's JSON error.
    lost = [a for a in answers_ if a.status != 200]
    assert all(
        a.status == 502 and a.body["reason"] == "replica_lost" and a.started < killed_at
        for a in lost
    ), lost
    assert len(lost) <= 8
    after = [a for a in answers_ if a.started > down_at]
    assert after and all(a.status == 200 for a in after), after
    assert all(a.body["status"] == "ok" for a in after if a.kind == "run")
    check_records(d, answers_)
    # zoe's submission was cut short: not recorded, and once its lease lapses it uses up nothing
    # of her allowance of SUBMIT_LIMIT.
    assert isinstance(cut[0], Exception), cut[0].text
    assert d.records("zoe") == []
    time.sleep(LEASE_S + 0.5)
    graded = [d.submit("zoe", "slow", SLOW) for _ in range(SUBMIT_LIMIT)]
    assert [g.status_code for g in graded] == [200] * SUBMIT_LIMIT, [g.text for g in graded]
    assert d.submit("zoe", "slow", SLOW).status_code == 429
    assert len(d.records("zoe")) == SUBMIT_LIMIT

    # Back on its feet (as an orchestrator restarts it), replica 2 removes what its crash left.
    two.start()
    two.wait_healthy()
    wait_until(lambda: d.balancer.state()["exec2"] == "UP", "the balancer takes replica 2 back", 30)


def test_an_engine_stopping_mid_load_loses_no_submission_record_and_new_runs_go_to_the_other(
    deployment,
) -> None:
    d = deployment
    stop = threading.Event()
    answers_, threads = load(
        d, [f"engine-{i}" for i in range(8)], stop, "import time\ntime.sleep(0.3)\nprint('ok')\n"
    )
    time.sleep(4)
    d.engine.stop()
    wait_until(
        lambda: d.balancer.state()["exec2"] == "DOWN", "the balancer marks replica 2 down", 60
    )
    down_at = time.monotonic()
    time.sleep(5)
    stop.set()
    finish(threads)
    # Requests in progress on the stopped engine answered, each with a clear error; a run cut
    # short says so, a submission cut short is not a grade.
    for a in answers_:
        if a.status == 200:
            if a.body["status"] == "internal_error":
                assert a.started < down_at and a.body["message"], a
        else:
            assert a.status == 503 and a.started < down_at, a
            assert a.body["reason"] in ("docker_unavailable", "sandbox_unavailable"), a
    after = [a for a in answers_ if a.started > down_at]
    assert after and all(a.status == 200 and a.body["status"] == "ok" for a in after), after
    check_records(d, answers_)
    d.engine.start()
    wait_until(lambda: d.balancer.state()["exec2"] == "UP", "replica 2 is back with its engine", 60)


def test_a_student_server_runs_and_submits_through_the_hubs_proxy_and_the_balancer(
    deployment,
) -> None:
    d = deployment
    user = "hub-student"
    d.token(user)
    started = d.hub_api("POST", f"users/{user}/server")
    assert started.status_code in (201, 202), started.text
    try:
        wait_until(
            lambda: d.hub_api("GET", f"users/{user}").json()["servers"].get("", {}).get("ready"),
            "the student's server is ready",
            180,
        )
        headers = {"Authorization": f"token {d.token(user)}"}
        base = f"{d.hub_url}/user/{user}/api/exec/v1/"
        ran = requests.post(
            base + "execute",
            headers=headers,
            timeout=120,
            data=json.dumps({"code": "print(6 * 7)", "use_cache": False}),
        )
        assert ran.status_code == 200 and ran.json()["stdout"] == "42\n", ran.text
        graded = requests.post(
            base + "exercises/add/submit",
            headers=headers,
            timeout=120,
            data=json.dumps({"code": SOLUTION}),
        )
        assert graded.status_code == 200, graded.text
        assert graded.json()["score"] == graded.json()["max_score"] > 0
        assert [r["id"] for r in d.records(user)] == [graded.json()["submission_id"]]
    finally:
        d.hub_api("DELETE", f"users/{user}/server")


def test_nothing_is_left_on_either_engine(deployment) -> None:
    d = deployment
    for replica in d.replicas:
        replica.stop()
        assert replica.process.returncode == 0, replica.tail()
    system, second = docker.from_env(timeout=60), d.engine.client()
    try:
        assert our_containers(system) == []
        # What the crashed replica left was removed by its successor's reaper.
        assert our_containers(second, owner=None) == []
    finally:
        system.close()
        second.close()
