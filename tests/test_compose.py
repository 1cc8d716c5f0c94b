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

import pytest
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
    require(bool(command), "no compose binary (Debian package docker-compose, or docker compose v2)")
    env = dict(os.environ, BASE_IMAGE=OFFLINE_BASE, EXEC_SERVICE_TOKEN="compose-test-token")
    run = subprocess.run([*command, "--profile", profile, "config"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return yaml.safe_load(run.stdout)


def sockets(service: dict) -> list:
    return [v for v in service.get("volumes", [])
            if SOCKET in (v if isinstance(v, str) else v.get("source", ""))]


def in_profile(stack: dict, profile: str) -> dict:
    # docker-compose 1.x prints every service; profiles say which ones the stack starts.
    return {name: s for name, s in stack["services"].items() if profile in s.get("profiles", [profile])}


def test_the_dev_stack_validates_and_builds_from_the_repository_on_the_base_image() -> None:
    stack = in_profile(resolved("dev"), "dev")
    assert set(stack) == {"lab", "redis", "executor-image"}
    for name in ("lab", "redis", "executor-image"):
        assert stack[name]["build"]["args"]["BASE_IMAGE"] == OFFLINE_BASE
    assert Path(stack["lab"]["build"]["context"]).resolve() == REPO
    assert stack["lab"]["environment"]["DOCKER_EXECUTOR_REDIS_URL"] == "redis://redis:6379/0"
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
