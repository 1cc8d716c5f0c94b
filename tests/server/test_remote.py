"""Remote mode when the executor service is down: every route answers a JSON 503 whose reason
says the service is unreachable, with a message a student can act on, whether nothing listens or
the hub's proxy answers with its own error page; and the server never built a sandbox of its own
(no Docker socket use).

Forwarding to a live service is tested end to end with a real hub in ``tests/hub``.
"""

from __future__ import annotations

import json
import socket
import threading

import pytest
import tornado.web
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop

from jupyter_exec_ext.server.context import CONTEXT_KEY
from jupyter_exec_ext.server.remote import loopback_mismatch


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DOWN = {
    "backend": "remote",
    "service_url": f"http://127.0.0.1:{_closed_port()}/services/exec/api/exec/v1/",
    "service_token": "a-user-token",
}


@pytest.mark.parametrize("exec_ext_config", [DOWN])
@pytest.mark.parametrize(
    "method, route, body",
    [
        ("POST", "execute", {"code": "print(1)"}),
        ("POST", "exercises/add/submit", {"code": "x = 1"}),
        ("GET", "exercises", None),
        ("GET", "exercises/add", None),
        ("GET", "docker/status", None),
    ],
)
async def test_a_service_that_is_down_answers_503_with_a_readable_message(api, method, route, body):
    status, data, _ = await api(method, route, body)
    assert status == 503 and data["reason"] == "service_unreachable"
    assert "the executor service is unreachable (" in data["message"] and "admin" in data["message"]


class ProxyErrorPage(tornado.web.RequestHandler):
    """What the hub's proxy answers while the service is down or restarting: an HTML page."""

    def prepare(self) -> None:
        self.set_status(int(self.request.path.split("/")[1]))
        self.set_header("Content-Type", "text/html")
        self.finish("<html><body><h1>503 Service Unavailable</h1></body></html>")


@pytest.fixture(scope="module")
def proxy_error_pages():
    """A real HTTP server on its own loop and thread that answers /<status>/… with that status and
    an HTML page, as configurable-http-proxy does for a target that is down."""
    port = _closed_port()
    loop: list = []
    started = threading.Event()

    def serve() -> None:
        io_loop = IOLoop(make_current=False)

        async def listen() -> None:
            HTTPServer(tornado.web.Application([(r"/.*", ProxyErrorPage)])).listen(
                port, "127.0.0.1"
            )
            started.set()

        io_loop.run_sync(listen)
        loop.append(io_loop)
        io_loop.start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    started.wait(10)
    yield port
    loop[0].add_callback(loop[0].stop)
    thread.join(10)


@pytest.fixture
def exec_ext_config(request, proxy_error_pages) -> dict:
    status = request.param
    return {
        "backend": "remote",
        "service_token": "a-user-token",
        "service_url": f"http://127.0.0.1:{proxy_error_pages}/{status}/api/exec/v1/",
    }


@pytest.mark.parametrize("exec_ext_config", [502, 503, 504], indirect=True)
async def test_the_proxys_error_page_becomes_a_json_503_and_health_down(api, exec_ext_config):
    status, data, response = await api("POST", "execute", {"code": "print(1)"})
    assert status == 503 and response.headers["Content-Type"].startswith("application/json")
    code = exec_ext_config["service_url"].split("/")[3]
    assert data["reason"] == "service_unreachable"
    assert (
        f"the executor service is unreachable (the hub's proxy answered {code})" in data["message"]
    )
    status, data, _ = await api("GET", "health", token=False)
    assert status == 200 and data == {"status": "down"}


@pytest.mark.parametrize("exec_ext_config", [DOWN])
async def test_health_reports_the_service_down_without_a_token(api):
    status, data, _ = await api("GET", "health", token=False)
    assert status == 200 and data == {"status": "down"}


@pytest.mark.parametrize("exec_ext_config", [DOWN])
async def test_remote_mode_builds_no_sandbox_and_keeps_the_routes(api, settings):
    assert settings[CONTEXT_KEY].sandbox is None and settings[CONTEXT_KEY].scheduler is None
    # Same methods as locally: a GET on execute is 405, not forwarded.
    status, _, response = await api("GET", "execute")
    assert status == 405 and response.headers["Allow"] == "POST"
    # Credentials are still checked here first.
    status, _, _ = await api("POST", "execute", {"code": "print(1)"}, token=False)
    assert status == 403


@pytest.mark.parametrize("exec_ext_config", [DOWN])
async def test_the_gradebook_routes_are_forwarded_to_the_service(jp_fetch):
    """The service decides what the caller may read (an instructor may ask for ?user=); this
    server keeps no gradebook of its own."""
    for route, params in (
        (("submissions",), {"user": "bob"}),
        (("submissions",), {"limit": "5"}),
        (("submissions", "12"), {}),
        (("gradebook",), {"format": "csv"}),
        (("exercises", "add", "stats"), {}),
        (("exercises", "add", "progress"), {}),
        (("authoring", "mode"), {}),
    ):
        response = await jp_fetch("api", "exec", "v1", *route, params=params, raise_error=False)
        data = json.loads(response.body)
        assert response.code == 503 and data["reason"] == "service_unreachable", route


@pytest.mark.parametrize(
    "service_url, hub_api_url, warned",
    [
        # DockerSpawner: the hub is another container; 127.0.0.1 is the user's own.
        (
            "http://127.0.0.1:8000/services/exec/api/exec/v1/",
            "http://jupyterhub:8081/hub/api",
            True,
        ),
        ("http://localhost:8000/services/exec/api/exec/v1/", "http://10.0.0.2:8081/hub/api", True),
        # LocalProcessSpawner: the same machine; and a proper internal name.
        (
            "http://127.0.0.1:8000/services/exec/api/exec/v1/",
            "http://127.0.0.1:8081/hub/api",
            False,
        ),
        (
            "http://jupyterhub:8000/services/exec/api/exec/v1/",
            "http://jupyterhub:8081/hub/api",
            False,
        ),
        ("http://127.0.0.1:8000/services/exec/api/exec/v1/", "", False),
    ],
)
def test_a_loopback_service_url_on_a_hub_elsewhere_is_named(
    service_url, hub_api_url, warned
) -> None:
    warning = loopback_mismatch(service_url, hub_api_url)
    assert (warning is not None) == warned
    if warned:
        assert "JUPYTER_EXEC_SERVICE_URL" in warning and service_url in warning
