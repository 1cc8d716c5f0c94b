"""The run scheduler on its own: caps per user, counting, and the security log of policy violations."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from jupyter_exec_ext.sandbox import (
    PROFILES,
    DockerSandbox,
    ExecutionRequest,
    SandboxConfig,
    SandboxUnavailableError,
)
from jupyter_exec_ext.server.errors import RateLimitedError
from jupyter_exec_ext.server.scheduler import RunScheduler

from ..conftest import TEST_OWNER


def test_the_per_user_cap_refuses_one_user_and_not_another() -> None:
    scheduler = RunScheduler(max_in_flight=2, max_per_user=1)
    release = threading.Event()

    async def scenario() -> None:
        held = asyncio.ensure_future(scheduler.run("ada", release.wait))
        while scheduler.snapshot()["in_flight"] < 1:
            await asyncio.sleep(0.01)
        with pytest.raises(RateLimitedError, match="you already have 1 run"):
            await scheduler.run("ada", lambda: "never runs")
        assert await scheduler.run("bob", lambda: "bob ran") == "bob ran"
        release.set()
        assert await held is True

    try:
        asyncio.run(scenario())
    finally:
        scheduler.shutdown()
    runs = scheduler.snapshot()
    assert runs["rate_limited"] == 1 and runs["completed"] == 2 and runs["users_with_runs"] == 0


def test_failures_are_counted_and_raised() -> None:
    scheduler = RunScheduler(max_in_flight=1, max_per_user=1)

    def unavailable() -> None:
        raise SandboxUnavailableError("the sandbox is disabled")

    async def scenario() -> None:
        with pytest.raises(SandboxUnavailableError):
            await scheduler.run("ada", unavailable)
        with pytest.raises(ZeroDivisionError):
            await scheduler.run("ada", lambda: 1 / 0)

    try:
        asyncio.run(scenario())
    finally:
        scheduler.shutdown()
    assert scheduler.snapshot()["by_status"] == {"sandbox_unavailable": 1, "error": 1}


def test_a_policy_violation_is_a_security_event_without_the_code(caplog) -> None:
    caplog.set_level(logging.INFO)
    # The policy is checked before any container exists, so this real sandbox needs no engine.
    sandbox = DockerSandbox(SandboxConfig(owner=TEST_OWNER))
    request = ExecutionRequest(code="import os  # CODE_MARKER", policy=PROFILES["safe"])
    scheduler = RunScheduler(max_in_flight=1, max_per_user=1)
    try:
        result = asyncio.run(scheduler.run("ada", lambda: sandbox.run(request)))
    finally:
        scheduler.shutdown()
    assert result.status.value == "policy_violation"
    events = [r for r in caplog.records if r.name == "jupyter_exec_ext.security"]
    assert len(events) == 1 and events[0].levelno == logging.WARNING
    assert "code policy violation by user 'ada'" in events[0].getMessage()
    assert "importing 'os' is not allowed" in events[0].getMessage()
    assert not [r for r in caplog.records if "CODE_MARKER" in r.getMessage()]
