"""Shared fixtures: the real Docker engine, and a check that no test leaves a container behind.

Tests that need Docker fail, never skip, under ``CI=true`` when the engine or the executor image is
missing: a skipped safety test would be a hidden failure. Elsewhere they skip with the reason.
"""

from __future__ import annotations

import os

import docker
import pytest

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
