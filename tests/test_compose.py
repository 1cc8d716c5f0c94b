"""docker-compose.yml: both stacks validate with a real compose binary, build from this repository
on BASE_IMAGE, and only the executor service (and the single-user dev Lab) get the Docker socket.

Under CI=true a missing compose binary fails the validation test (scripts/provision.sh installs
Debian's docker-compose).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

from .conftest import require

REPO = Path(__file__).resolve().parents[1]
SOCKET = "/var/run/docker.sock"
OFFLINE_BASE = "jupyter-exec-ext-base:bookworm"


def compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
    return ["docker", "compose"] if probe.returncode == 0 else []


def resolved(profile: str) -> dict:
    """The stack of ``profile`` as the compose binary resolves it (variables, anchors, profiles)."""
    command = compose_command()
    require(
        bool(command), "no compose binary (Debian package docker-compose, or docker compose v2)"
    )
    env = dict(
        os.environ,
        BASE_IMAGE=OFFLINE_BASE,
        EXEC_SERVICE_TOKEN="compose-test-token",
        REDIS_PASSWORD="compose-redis-password",
        DEMO_PASSWORD="compose-demo-password",
        DEMO_USERS="ada,grace",
    )
    env.pop("HUB_BIND", None)
    run = subprocess.run(
        [*command, "--profile", profile, "config"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    return yaml.safe_load(run.stdout)


def sockets(service: dict) -> list:
    return [
        v
        for v in service.get("volumes", [])
        if SOCKET in (v if isinstance(v, str) else v.get("source", ""))
    ]


def in_profile(stack: dict, profile: str) -> dict:
    # docker-compose 1.x prints every service; profiles say which ones the stack starts.
    return {
        name: s for name, s in stack["services"].items() if profile in s.get("profiles", [profile])
    }


def test_the_dev_stack_validates_and_builds_from_the_repository_on_the_base_image() -> None:
    stack = in_profile(resolved("dev"), "dev")
    assert set(stack) == {"lab", "redis", "executor-image"}
    for name in ("lab", "redis", "executor-image"):
        assert stack[name]["build"]["args"]["BASE_IMAGE"] == OFFLINE_BASE
    assert Path(stack["lab"]["build"]["context"]).resolve() == REPO
    assert (
        stack["lab"]["environment"]["DOCKER_EXECUTOR_REDIS_URL"]
        == "redis://:compose-redis-password@redis:6379/0"
    )
    assert sockets(stack["lab"])


def test_the_hub_stack_gives_the_docker_socket_to_the_executor_service_only() -> None:
    stack = in_profile(resolved("hub"), "hub")
    assert set(stack) == {"hub", "exec-service", "redis", "executor-image"}
    assert sockets(stack["exec-service"]) and not sockets(stack["hub"])
    assert stack["hub"]["build"]["target"] == "hub"
    assert stack["exec-service"]["environment"]["JUPYTERHUB_API_TOKEN"] == "compose-test-token"
    assert stack["exec-service"]["environment"]["JUPYTERHUB_SERVICE_PREFIX"] == "/services/exec/"


def test_the_hub_config_points_user_servers_at_the_service() -> None:
    # The config the hub image carries: remote mode, and tokens that may reach the service.
    text = (REPO / "deploy" / "jupyterhub_config.py").read_text()
    assert "--ExecExtApp.backend=remote" in text
    assert '"access:services!service=exec"' in text and "server_token_scopes" in text
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert compose["services"]["hub"]["profiles"] == ["hub"]


def test_the_stacks_have_no_default_secrets_and_redis_asks_for_its_password() -> None:
    """The security checklist of docs/hub.md, as the compose binary resolves the hub stack."""
    command = compose_command()
    require(
        bool(command), "no compose binary (Debian package docker-compose, or docker compose v2)"
    )
    for missing in ("EXEC_SERVICE_TOKEN", "REDIS_PASSWORD", "DEMO_PASSWORD", "DEMO_USERS"):
        env = dict(
            os.environ,
            BASE_IMAGE=OFFLINE_BASE,
            EXEC_SERVICE_TOKEN="t",
            REDIS_PASSWORD="r",
            DEMO_PASSWORD="d",
            DEMO_USERS="ada",
        )
        del env[missing]
        run = subprocess.run(
            [*command, "--profile", "hub", "config"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode != 0 and missing in run.stderr, (missing, run.stderr)

    stack = in_profile(resolved("hub"), "hub")
    redis_command = " ".join(stack["redis"]["command"])
    assert "--protected-mode yes" in redis_command and "--requirepass" in redis_command
    assert stack["exec-service"]["environment"]["DOCKER_EXECUTOR_REDIS_URL"].startswith(
        "redis://:compose-redis-password@"
    )
    # Redis is on a network of its own that the hub container (where user servers run) is not on.
    networks = lambda name: set(stack[name].get("networks") or {"default"})  # noqa: E731
    assert "hub" not in {n for n in stack if networks(n) & networks("redis")} - {"redis"}
    assert networks("redis") <= networks("exec-service")
    # User servers reach the service through the hub's proxy by the hub's name, not 127.0.0.1.
    assert stack["hub"]["environment"]["HUB_INTERNAL_URL"] == "http://hub:8000"
    config = (REPO / "deploy" / "jupyterhub_config.py").read_text()
    assert "http://127.0.0.1" not in config and "change-me" not in config
    assert 'os.environ["DEMO_PASSWORD"]' in config


def test_the_service_config_of_the_stack_loads_and_grants_by_name() -> None:
    from jupyter_exec_ext.server.service import ExecServiceApp

    app = ExecServiceApp()
    app.load_config_file(str(REPO / "deploy" / "exec_service_config.py"))
    assert app.admin_groups == ["instructors"] and app.admin_services == []
    assert app.metrics_readers == ["prometheus"] and app.trusted_proxies == []


def test_the_hub_listens_on_loopback_and_every_service_declares_a_health_check() -> None:
    stack = in_profile(resolved("hub"), "hub")
    ports = stack["hub"]["ports"]
    assert len(ports) == 1
    port = ports[0]
    host_ip = port.get("host_ip") if isinstance(port, dict) else port.rsplit(":", 2)[0]
    assert host_ip == "127.0.0.1", port
    for name in ("hub", "exec-service", "redis"):
        assert stack[name]["healthcheck"]["test"], name
    # The executor image's service only builds the image and exits: the service waits for that.
    assert (
        stack["exec-service"]["depends_on"]["executor-image"]["condition"]
        == "service_completed_successfully"
    )
    assert stack["hub"]["depends_on"]["exec-service"]["condition"] == "service_healthy"
    assert stack["exec-service"]["depends_on"]["redis"]["condition"] == "service_healthy"

    # The authoritative exercises reach the service only; no image carries them.
    def mounts(name):
        return [
            v if isinstance(v, str) else v.get("target") for v in stack[name].get("volumes", [])
        ]

    assert any("/srv/exercises" in str(m) for m in mounts("exec-service"))
    assert not any("exercises" in str(m) for m in mounts("hub"))
    assert "exercises" in (REPO / ".dockerignore").read_text().split()


def test_the_demo_login_allows_listed_users_only_with_no_deprecated_password() -> None:
    text = (REPO / "deploy" / "jupyterhub_config.py").read_text()
    assert "DummyAuthenticator" not in text and "allow_all = True" not in text
    assert '"shared-password"' in text and "allowed_users" in text
    assert 'c.JupyterHub.spawner_class = "localprocess"' in text
