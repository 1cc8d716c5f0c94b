"""A real jupyter_server with the extension, driven through pytest-jupyter's ``jp_fetch``.

pytest-jupyter's fixtures are imported here rather than registered as a plugin in the root
conftest, so their autouse fixtures (an event loop and a ServerApp clean-up per test) stay out of
the sandbox tests. The server runs with pytest-jupyter's non-default base_url (``/a%40b/``).
Tests that run code also request ``executor_image`` and ``no_leaks``: under CI=true they fail when
Docker or the image is missing.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Callable

import pytest
from pytest_jupyter.jupyter_server import *  # noqa: F401,F403  (fixtures and hooks, this folder only)
from traitlets.config import Config

from jupyter_exec_ext.sandbox import CacheConfig, CachingSandbox, SandboxConfig
from jupyter_exec_ext.server.context import CONTEXT_KEY

from ..conftest import TEST_OWNER, release_server_sandbox

API = ("api", "exec", "v1")


@pytest.fixture
def exec_ext_config() -> dict[str, Any]:
    """ExecExtApp traits of the server under test; a test parametrizes this name to change them."""
    return {}


@pytest.fixture
def jp_server_config(exec_ext_config: dict[str, Any]) -> Config:
    traits = {
        # The image the executor_image fixture checks; containers carry this session's owner.
        "image": SandboxConfig.from_env(owner=TEST_OWNER).image,
        "owner": TEST_OWNER,
        # Keeps runs that ask for more short, so a mistake cannot stall the suite.
        "time_limit": 10.0,
        "max_time_limit": 10.0,
        "reap_interval": 0.0,
        # Most tests want every run cold and fresh; the pool and cache tests turn them on.
        "pool_size": 0,
        "cache_enabled": False,
        **exec_ext_config,
    }
    return Config(
        {
            "ServerApp": {"jpserver_extensions": {"jupyter_exec_ext": True}},
            "ExecExtApp": traits,
        }
    )


@pytest.fixture
def no_leaks(no_leaks, jp_serverapp):
    """The root leak check, after the server's sandbox removed what it handed to its background
    remover (a run answers before its container is gone) and the containers it kept for users'
    next runs (kept by design while the server lives; the test's server is done)."""
    yield
    release_server_sandbox(jp_serverapp)


@pytest.fixture
def api(jp_fetch) -> Callable[..., Any]:
    """Calls a route of the REST API and returns ``(status, json_body, response)``.

    ``body`` may be a dict (sent as JSON) or raw bytes/str (sent as is); ``token=False`` sends no
    credentials.
    """

    async def call(
        method: str, route: str, body: Any = None, *, token: bool = True, timeout: float = 120
    ) -> tuple[int, Any, Any]:
        kwargs: dict[str, Any] = {
            "method": method,
            "raise_error": False,
            "request_timeout": timeout,
        }
        if body is not None:
            kwargs["body"] = body if isinstance(body, (bytes, str)) else json.dumps(body)
        elif method == "POST":
            kwargs["body"] = b""
        if not token:
            kwargs["headers"] = {"Authorization": ""}
        route, _, query = route.partition("?")
        if query:  # "submissions?user=bob": a query string, not part of the path
            kwargs["params"] = dict(part.split("=", 1) for part in query.split("&"))
        response = await jp_fetch(*API, *route.split("/"), **kwargs)
        try:
            data = json.loads(response.body) if response.body else None
        except ValueError:
            data = response.body
        return response.code, data, response

    return call


@pytest.fixture
def settings(jp_serverapp) -> dict[str, Any]:
    """The tornado settings the handlers read (the sandbox can be swapped here)."""
    return jp_serverapp.web_app.settings


@pytest.fixture
def context(settings):
    """The parts the routes share (``ExecContext``); a test may replace one of them here."""
    return settings[CONTEXT_KEY]


@pytest.fixture
def scheduler(context):
    return context.scheduler


@pytest.fixture
def swap_sandbox(context) -> Callable[[Any], None]:
    """Replaces the object that runs code, behind a result cache that is off (the server's own
    sandbox is still closed when the server stops)."""

    def swap(sandbox: Any) -> None:
        context.sandbox = sandbox
        context.runner = CachingSandbox(sandbox, CacheConfig(enabled=False))

    return swap


async def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Yields to the event loop (which serves the requests) until ``condition`` holds.

    This waits for a state, never for a fixed time: ``timeout`` only ends a test that would hang.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.02)
