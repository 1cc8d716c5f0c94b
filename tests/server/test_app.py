"""The extension app: enabled on install, configuration from traits and the environment, the
exercise directory, the variables kernels inherit, and the reaper."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time

import pytest
from traitlets import TraitError
from traitlets.config import Config

from jupyter_exec_ext.sandbox import LABEL
from jupyter_exec_ext.sandbox.config import EXPIRES_LABEL, OWNER_LABEL
from jupyter_exec_ext.server import KERNEL_TOKEN_ENV, KERNEL_URL_ENV, ExecExtApp
from jupyter_exec_ext.server.context import CONTEXT_KEY

from ..conftest import TEST_OWNER, our_containers
from .conftest import wait_until


def test_the_extension_is_enabled_on_install() -> None:
    listing = subprocess.run(
        [sys.executable, "-m", "jupyter_server.extension.serverextension", "list"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = re.sub(r"\x1b\[[0-9;]*m", "", listing.stdout + listing.stderr)  # drop colours
    assert re.search(r"^\s*jupyter_exec_ext enabled$", output, re.MULTILINE), output
    assert re.search(r"^\s*jupyter_exec_ext 0\.1\.0 OK$", output, re.MULTILINE), output


def test_traits_default_to_the_seed_environment(monkeypatch) -> None:
    monkeypatch.setenv("DOCKER_EXECUTOR_IMAGE", "my-executor:7")
    monkeypatch.setenv("DOCKER_EXECUTOR_MEMORY_LIMIT", "128m")
    monkeypatch.setenv("DOCKER_EXECUTOR_TIME_LIMIT", "7")
    monkeypatch.setenv("DOCKER_EXECUTOR_ENABLED", "false")
    app = ExecExtApp()
    assert (app.image, app.memory_limit, app.time_limit, app.enabled) == (
        "my-executor:7",
        "128m",
        7.0,
        False,
    )
    assert (app.cpu_limit, app.pids_limit, app.nofile_limit, app.network) == (0.5, 50, 1024, "none")
    config = app.sandbox_config()
    assert config.image == "my-executor:7" and config.enabled is False
    assert (config.default_limits.memory_mb, config.default_limits.time_s) == (128, 7.0)
    assert config.max_limits.time_s == 120.0


def test_config_wins_over_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("DOCKER_EXECUTOR_TIME_LIMIT", "7")
    app = ExecExtApp(
        config=Config(
            {"ExecExtApp": {"time_limit": 9.0, "max_time_limit": 20.0, "max_memory_limit": "2g"}}
        )
    )
    config = app.sandbox_config()
    assert config.default_limits.time_s == 9.0 and config.max_limits.time_s == 20.0
    assert config.max_limits.memory_mb == 2048


def test_a_default_above_the_maximum_is_lowered(caplog) -> None:
    app = ExecExtApp(config=Config({"ExecExtApp": {"time_limit": 300.0, "max_time_limit": 60.0}}))
    assert app.sandbox_config().default_limits.time_s == 60.0
    assert any(
        "time_limit 300 s is above the admin maximum of 60 s" in r.getMessage()
        for r in caplog.records
    )


@pytest.mark.parametrize(
    "traits, words",
    [
        ({"memory_limit": "0"}, "ExecExtApp.memory_limit must be positive"),
        ({"max_memory_limit": "huge"}, "ExecExtApp.max_memory_limit must be a positive size"),
        ({"time_limit": -1.0}, "ExecExtApp.time_limit must be positive"),
        ({"max_concurrent_runs": 0}, "ExecExtApp.max_concurrent_runs must be at least 1"),
        ({"max_runs_per_user": 0}, "ExecExtApp.max_runs_per_user must be at least 1"),
        ({"reap_interval": -5.0}, "ExecExtApp.reap_interval must be 0"),
        ({"pool_size": -1}, "ExecExtApp.pool_size must be 0 \\(off\\) or more"),
        ({"reuse_runs": -1}, "ExecExtApp.reuse_runs must be 0 \\(off\\) or more"),
        ({"reuse_kept": -2}, "ExecExtApp.reuse_kept must be 0 \\(off\\) or more"),
        ({"reuse_idle": 0.0}, "ExecExtApp.reuse_idle must be positive"),
        ({"cache_ttl": -1.0}, "ExecExtApp.cache_ttl must be positive"),
        ({"submit_rate_limit": -1}, "ExecExtApp.submit_rate_limit must be 0 \\(off\\) or more"),
        (
            {"submit_rate_window": 0.0},
            "ExecExtApp.submit_rate_window must be a positive, finite number",
        ),
        (
            {"submit_rate_window": float("inf")},
            "ExecExtApp.submit_rate_window must be a positive, finite",
        ),
        (
            {"seccomp": "/nowhere/profile.json"},
            "ExecExtApp.seccomp: seccomp profile '/nowhere/profile.json' cannot be used",
        ),
    ],
)
def test_bad_trait_values_are_refused_naming_the_trait(traits: dict, words: str) -> None:
    with pytest.raises((TraitError, ValueError), match=words):
        ExecExtApp(config=Config({"ExecExtApp": traits}))


def test_the_seccomp_profile_is_ours_unless_the_admin_says_otherwise(monkeypatch) -> None:
    assert ExecExtApp().sandbox_config().seccomp == "builtin"
    monkeypatch.setenv("DOCKER_EXECUTOR_SECCOMP", "engine")
    assert ExecExtApp().sandbox_config().seccomp == "engine"
    app = ExecExtApp(config=Config({"ExecExtApp": {"seccomp": "builtin"}}))
    assert app.sandbox_config().seccomp == "builtin"  # config wins


def test_a_bad_environment_variable_is_named(monkeypatch) -> None:
    monkeypatch.setenv("DOCKER_EXECUTOR_TIME_LIMIT", "soon")
    with pytest.raises(TraitError, match="DOCKER_EXECUTOR_TIME_LIMIT"):
        ExecExtApp().time_limit  # noqa: B018 (reading the trait raises)


def test_the_submission_limit_is_on_by_default() -> None:
    app = ExecExtApp()
    assert (app.submit_rate_limit, app.submit_rate_window) == (20, 600.0)


def test_the_submission_limit_comes_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("DOCKER_EXECUTOR_SUBMIT_RATE_LIMIT", "5")
    monkeypatch.setenv("DOCKER_EXECUTOR_SUBMIT_RATE_WINDOW", "3600")
    app = ExecExtApp()
    assert (app.submit_rate_limit, app.submit_rate_window) == (5, 3600.0)
    monkeypatch.setenv("DOCKER_EXECUTOR_SUBMIT_RATE_LIMIT", "0")
    assert ExecExtApp().submit_rate_limit == 0  # off
    app = ExecExtApp(config=Config({"ExecExtApp": {"submit_rate_limit": 3}}))
    assert app.submit_rate_limit == 3  # config wins


@pytest.mark.parametrize(
    "name, value, words",
    [
        (
            "SUBMIT_RATE_LIMIT",
            "-1",
            "DOCKER_EXECUTOR_SUBMIT_RATE_LIMIT must be a whole number, got '-1'",
        ),
        (
            "SUBMIT_RATE_LIMIT",
            "five",
            "DOCKER_EXECUTOR_SUBMIT_RATE_LIMIT must be a whole number, got 'five'",
        ),
        (
            "SUBMIT_RATE_WINDOW",
            "10min",
            "DOCKER_EXECUTOR_SUBMIT_RATE_WINDOW must be a finite number of "
            "seconds above 0, got '10min'",
        ),
        ("SUBMIT_RATE_WINDOW", "0", "DOCKER_EXECUTOR_SUBMIT_RATE_WINDOW must be a finite number"),
        ("SUBMIT_RATE_WINDOW", "inf", "DOCKER_EXECUTOR_SUBMIT_RATE_WINDOW must be a finite number"),
    ],
)
def test_a_bad_submission_limit_variable_is_named(monkeypatch, name, value, words) -> None:
    monkeypatch.setenv(f"DOCKER_EXECUTOR_{name}", value)
    with pytest.raises(TraitError, match=re.escape(words)):
        getattr(ExecExtApp(), name.lower())


@pytest.fixture
def root_exercises(jp_root_dir):
    """An ``exercises/`` folder in the server's root_dir, made before the server starts."""
    folder = jp_root_dir / "exercises"
    folder.mkdir()
    return folder


async def test_exercise_directory_defaults_to_exercises_under_root(root_exercises, jp_serverapp):
    assert jp_serverapp.web_app.settings[CONTEXT_KEY].exercises_dir == root_exercises


async def test_exercise_directory_is_none_without_one(jp_serverapp):
    assert jp_serverapp.web_app.settings[CONTEXT_KEY].exercises_dir is None


@pytest.mark.parametrize("exec_ext_config", [{"exercises_dir": "/srv/course/exercises"}])
async def test_exercise_directory_is_configurable(jp_serverapp):
    assert str(jp_serverapp.web_app.settings[CONTEXT_KEY].exercises_dir) == "/srv/course/exercises"


KERNEL_SCRIPT = """
import json, os, urllib.request
url, token = os.environ["JUPYTER_EXEC_EXT_URL"], os.environ["JUPYTER_EXEC_EXT_TOKEN"]
request = urllib.request.Request(url + "docker/status", headers={"Authorization": "token " + token})
with urllib.request.urlopen(request, timeout=30) as response:
    print(json.dumps({"url": url, "code": response.status, "body": json.load(response)}))
"""


async def test_a_process_started_later_reaches_the_api_from_its_environment(
    jp_fetch, jp_serverapp, jp_base_url
):
    url = os.environ[KERNEL_URL_ENV]
    assert url == f"http://127.0.0.1:{jp_serverapp.port}{jp_base_url}api/exec/v1/"
    assert os.environ[KERNEL_TOKEN_ENV] == jp_serverapp.identity_provider.token
    # Like a kernel: a new process that only inherits the environment (jp_fetch's fixture chain
    # serves HTTP on the port). The event loop keeps serving while the child runs.
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        KERNEL_SCRIPT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(child.communicate(), 60)
    assert child.returncode == 0, err.decode()
    answer = json.loads(out)
    assert answer["code"] == 200 and "docker" in answer["body"] and "runs" in answer["body"]


async def test_the_environment_is_restored_when_the_extension_stops(jp_serverapp):
    extension = jp_serverapp.web_app.settings["jupyter_exec_ext"]
    await extension.stop_extension()
    assert KERNEL_URL_ENV not in os.environ and KERNEL_TOKEN_ENV not in os.environ


def _leftover(docker_client, image: str) -> str:
    """A sandbox container as a crashed server leaves it: labelled, expired, never removed."""
    created = docker_client.api.create_container(
        image,
        command=["true"],
        labels={LABEL: "true", OWNER_LABEL: TEST_OWNER, EXPIRES_LABEL: str(int(time.time()) - 1)},
    )
    return created["Id"]


@pytest.fixture
def leftover_before_start(docker_client, executor_image, no_leaks):
    return _leftover(docker_client, executor_image)


@pytest.mark.docker
@pytest.mark.parametrize("exec_ext_config", [{"reap_interval": 0.2}])
async def test_the_reaper_sweeps_at_start_up_and_periodically(
    leftover_before_start, jp_serverapp, docker_client, executor_image
):
    def present(container_id: str) -> bool:
        return any(c["Id"] == container_id for c in our_containers(docker_client))

    gone: dict[str, bool] = {}

    async def watch(container_id: str) -> None:
        gone[container_id] = not await asyncio.to_thread(present, container_id)

    # Checking presence blocks, so it runs in a thread while the server's loop keeps going.
    await wait_until_async(
        lambda: watch(leftover_before_start),
        lambda: gone.get(leftover_before_start, False),
        "the start-up sweep",
    )
    later = await asyncio.to_thread(_leftover, docker_client, executor_image)
    await wait_until_async(lambda: watch(later), lambda: gone.get(later, False), "a periodic sweep")


async def wait_until_async(step, condition, what: str, timeout: float = 30.0) -> None:
    """Runs the coroutine ``step()`` until ``condition()`` holds (bounded only against hangs)."""
    deadline = time.monotonic() + timeout
    while True:
        await step()
        if condition():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
def engine_unreachable(monkeypatch):
    """Points the Docker client at a socket that does not exist, before the server starts."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")


async def test_start_up_does_not_wait_for_an_unreachable_engine(engine_unreachable, api, caplog):
    # The server came up (the fixture chain started it); the first sweep failed in its thread.
    status, body, _ = await api("GET", "health")
    assert status == 200 and body == {"status": "down"}
    status, reply, _ = await api("POST", "execute", {"code": "print(1)"})
    assert status == 503 and reply["message"] == "Docker not available"
    # The sweep may report while the fixtures still set up or while the test runs.
    await wait_until(
        lambda: any(
            r.getMessage().startswith("reaper: Docker not available")
            for r in caplog.get_records("setup") + caplog.records
        ),
        "the start-up sweep reported the engine",
    )
