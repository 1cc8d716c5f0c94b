"""The REST client in-process against a live server: finding the server from each kind of
environment, and every error mapped to a readable exception."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from jupyter_exec_ext.kernel.client import (
    AuthenticationError,
    BadRequestError,
    ExecClient,
    ExerciseNotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    RequestTimeoutError,
    SandboxUnavailableError,
    ServerNotFoundError,
    ServerUnreachableError,
)

from ..live_server import EXERCISES, LiveServer, free_port

pytestmark = pytest.mark.docker


def test_client_reads_the_variables_the_server_writes() -> None:
    # Defined twice on purpose (the kernel side must not import the server); they must agree.
    from jupyter_exec_ext.kernel import client
    from jupyter_exec_ext.server import app

    assert (client.URL_ENV, client.TOKEN_ENV) == (app.KERNEL_URL_ENV, app.KERNEL_TOKEN_ENV)


def test_found_from_the_variables_the_extension_sets(live_server: LiveServer) -> None:
    client = ExecClient.discover(live_server.kernel_env())
    assert client.base_url == live_server.api and "JUPYTER_EXEC_EXT_URL" in client.source
    ids = [e["id"] for e in client.exercises()]
    assert len(ids) == len(list(EXERCISES.glob("*.ipynb"))) >= 12 and "strings-palindrome" in ids


def test_found_from_jupyterhub_variables(live_server: LiveServer) -> None:
    # A single-user server binds every interface; the client connects over loopback.
    client = ExecClient.discover(
        {
            "JUPYTERHUB_API_TOKEN": live_server.token,
            "JUPYTERHUB_SERVICE_PREFIX": live_server.base_url,
            "JUPYTERHUB_SERVICE_URL": f"http://0.0.0.0:{live_server.port}{live_server.base_url}",
            "JUPYTERHUB_API_URL": "http://127.0.0.1:1/hub/api",  # the hub: not where the API is
        }
    )
    assert client.base_url == live_server.api
    assert "JUPYTERHUB_SERVICE_URL" in client.source
    assert client.exercise("strings-palindrome")["title"] == "Strings: palindromes"


def test_found_from_list_running_servers(live_server: LiveServer) -> None:
    client = ExecClient.discover({"JUPYTER_RUNTIME_DIR": str(live_server.runtime_dir)})
    assert client.base_url == live_server.api and "list_running_servers" in client.source
    assert client.status()["docker"]["reachable"] is True


def test_no_server_found_names_what_was_tried(tmp_path: Path) -> None:
    with pytest.raises(ServerNotFoundError) as caught:
        ExecClient.discover({"JUPYTER_RUNTIME_DIR": str(tmp_path)})
    message = str(caught.value)
    for tried in ("JUPYTER_EXEC_EXT_URL", "JUPYTERHUB_API_TOKEN", "list_running_servers()"):
        assert tried in message


def test_wrong_token_is_refused_with_the_source_named(live_server: LiveServer) -> None:
    client = ExecClient.discover(
        {"JUPYTER_EXEC_EXT_URL": live_server.api, "JUPYTER_EXEC_EXT_TOKEN": "wrong"}
    )
    with pytest.raises(AuthenticationError) as caught:
        client.exercises()
    assert caught.value.status == 403
    assert "refused the credentials" in str(caught.value) and "JUPYTER_EXEC_EXT_TOKEN" in str(
        caught.value
    )


def test_unreachable_server_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/api/exec/v1/"  # nothing listens there
    with pytest.raises(ServerUnreachableError) as caught:
        ExecClient(url, source="a test").exercises()
    assert url in str(caught.value) and "a test" in str(caught.value)
    from_env = ExecClient.discover({"JUPYTER_EXEC_EXT_URL": url, "JUPYTER_EXEC_EXT_TOKEN": "t"})
    with pytest.raises(ServerUnreachableError) as caught:
        from_env.exercises()
    assert "update JUPYTER_EXEC_EXT_URL" in str(caught.value) and "jupyter server list" in str(
        caught.value
    )


def test_client_errors_are_readable(live_server: LiveServer) -> None:
    client = ExecClient(live_server.api, live_server.token)
    with pytest.raises(ExerciseNotFoundError, match="unknown exercise 'nope'"):
        client.exercise("nope")
    with pytest.raises(BadRequestError, match="time_limit must be positive"):
        client.execute("print(1)", time_limit=-1)
    with pytest.raises(PayloadTooLargeError, match="over the limit of 65536 bytes"):
        client.execute("#" * 70000)


def test_no_answer_ends_in_a_timeout_error(silent_url: str) -> None:
    client = ExecClient(silent_url, query_timeout_s=0.3, timeout_margin_s=0.2)
    # The server's limits cannot be read either, so the run's own limit sizes the wait.
    with pytest.raises(RequestTimeoutError, match=r"did not answer POST execute within 1.2 s"):
        client.execute("print(1)", time_limit=1)


def test_docker_down_is_sandbox_unavailable(docker_down_server: LiveServer) -> None:
    client = ExecClient(docker_down_server.api, docker_down_server.token)
    with pytest.raises(SandboxUnavailableError) as caught:
        client.execute("print(1)")
    assert str(caught.value) == "Sandbox unavailable: Docker is not running"
    assert caught.value.status == 503


class _ProxyRateLimit(BaseHTTPRequestHandler):
    """A proxy in front of the server that answers 429 with a page of its own, no JSON."""

    def do_POST(self) -> None:
        self.send_response(429)
        self.send_header("Content-Type", "text/html")
        self.send_header("Retry-After", "3")
        self.end_headers()
        self.wfile.write(b"<html><body>slow down</body></html>")

    def log_message(self, *args) -> None:
        pass


def test_a_429_without_the_servers_message_still_says_when() -> None:
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _ProxyRateLimit)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        client = ExecClient(f"http://127.0.0.1:{proxy.server_port}/api/exec/v1/")
        with pytest.raises(RateLimitedError) as refused:
            client.submit("add", "x = 1", exercise={"grading_time_limit": 5})
        assert str(refused.value) == "too many requests; try again in 3 s"
        assert refused.value.retry_after_s == 3.0
    finally:
        proxy.shutdown()
        proxy.server_close()
