"""Remote mode when the executor service is down: every route answers 503 with a message a
student can act on, and the server never built a sandbox of its own (no Docker socket use).

Forwarding to a live service is tested end to end with a real hub in ``tests/hub``.
"""

from __future__ import annotations

import socket

import pytest

from jupyter_exec_ext.server.handlers import SANDBOX_KEY, SCHEDULER_KEY


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DOWN = {"backend": "remote",
        "service_url": f"http://127.0.0.1:{_closed_port()}/services/exec/api/exec/v1/",
        "service_token": "a-user-token"}


@pytest.mark.parametrize("exec_ext_config", [DOWN])
@pytest.mark.parametrize("method, route, body", [
    ("POST", "execute", {"code": "print(1)"}),
    ("POST", "exercises/add/submit", {"code": "x = 1"}),
    ("GET", "exercises", None),
    ("GET", "exercises/add", None),
    ("GET", "docker/status", None),
])
async def test_a_service_that_is_down_answers_503_with_a_readable_message(api, method, route, body):
    status, data, _ = await api(method, route, body)
    assert status == 503
    assert "not reachable" in data["message"] and "admin" in data["message"]


@pytest.mark.parametrize("exec_ext_config", [DOWN])
async def test_health_reports_the_service_down_without_a_token(api):
    status, data, _ = await api("GET", "health", token=False)
    assert status == 200 and data == {"status": "down"}


@pytest.mark.parametrize("exec_ext_config", [DOWN])
async def test_remote_mode_builds_no_sandbox_and_keeps_the_routes(api, settings):
    assert SANDBOX_KEY not in settings and SCHEDULER_KEY not in settings
    # Same methods as locally: a GET on execute is 405, not forwarded.
    status, _, response = await api("GET", "execute")
    assert status == 405 and response.headers["Allow"] == "POST"
    # Credentials are still checked here first.
    status, _, _ = await api("POST", "execute", {"code": "print(1)"}, token=False)
    assert status == 403
