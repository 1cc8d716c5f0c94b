"""Remote mode of the extension: every route of the REST API forwarded to the hub's executor
service with the user's token, so a single-user server never needs the Docker socket.

Clients (magics, widget, lab extension) keep calling this server's API; only this module knows the
service exists. Requests go out through tornado's AsyncHTTPClient and never block the loop.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any, Optional
from urllib.parse import urlsplit

import tornado.web
from jupyter_server.auth.decorator import allow_unauthenticated, authorized
from jupyter_server.utils import url_path_join
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from .errors import ApiError
from .gradebook_routes import (
    GradebookRoute,
    ProgressRoute,
    StatsRoute,
    SubmissionRoute,
    SubmissionsRoute,
)
from .handlers import (
    NAMESPACE,
    DockerStatusRoute,
    ExecAPIHandler,
    ExecuteRoute,
    ExerciseRoute,
    ExercisesRoute,
    HealthRoute,
    SubmitRoute,
)

log = logging.getLogger(__name__)

#: Answer headers worth passing back to the client; the rest belong to the hop.
_PASSED_HEADERS = ("Content-Type", "Retry-After", "Allow", "Content-Disposition")


class ServiceUnavailableError(ApiError):
    """The executor service cannot be reached (503) or did not answer in time (504)."""

    status = 503
    reason = "service_unreachable"


def _unreachable(cause: str) -> ServiceUnavailableError:
    return ServiceUnavailableError(
        f"the executor service is unreachable ({cause}); try again in a minute, and tell the "
        "course admin if it persists"
    )


class RemoteService:
    """Where the executor service is and how this server proves whose request it forwards.

    Args:
        url: base URL of the service's REST API (``…/api/exec/v1/``).
        token: the user's hub token (the server's ``JUPYTERHUB_API_TOKEN``).
        timeout_s: longest a forwarded request may take.
    """

    def __init__(self, url: str, token: str, timeout_s: float) -> None:
        self.url = url if url.endswith("/") else url + "/"
        self.token = token
        self.timeout_s = timeout_s

    async def forward(
        self, method: str, route: str, query: str, body: Optional[bytes]
    ) -> tuple[int, dict[str, str], bytes]:
        """Sends one request to the service and returns its status, passed headers and body.

        Raises:
            ServiceUnavailableError: the service is down or too slow.
        """
        url = self.url + route + (f"?{query}" if query else "")
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"token {self.token}"
        if body is not None:
            headers["Content-Type"] = "application/json"
        request = HTTPRequest(
            url,
            method=method,
            headers=headers,
            body=body,
            request_timeout=self.timeout_s,
            connect_timeout=10,
            follow_redirects=False,
        )
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except (OSError, HTTPClientError) as e:
            log.warning("executor service at %s unreachable: %s", self.url, e)
            raise _unreachable(getattr(e, "strerror", None) or str(e) or type(e).__name__) from None
        if response.code == 599:  # tornado's code for no HTTP answer: timeout or connection lost
            log.warning("executor service at %s: %s", self.url, response.error)
            if "timeout" in str(response.error).lower():
                slow = ServiceUnavailableError(
                    "the executor service did not answer in time; try again later", status=504
                )
                slow.reason = "service_timeout"
                raise slow from None
            raise _unreachable(str(response.error) or "no answer") from None
        content_type = response.headers.get("Content-Type", "")
        if response.code >= 500 and not content_type.startswith("application/json"):
            # Not the service's answer (its errors are JSON) but the proxy's page: the service is
            # down, restarting or not yet routed.
            log.warning(
                "executor service at %s: HTTP %d from the proxy (%s)",
                self.url,
                response.code,
                content_type or "no content type",
            )
            raise _unreachable(f"the hub's proxy answered {response.code}")
        passed = {
            name: response.headers[name] for name in _PASSED_HEADERS if name in response.headers
        }
        return response.code, passed, response.body or b""

    async def connect(self, route: str, max_message_size: int) -> WebSocketClientConnection:
        """Opens a WebSocket to one route of the service (``http`` becomes ``ws``), with the
        token.

        Raises:
            ServiceUnavailableError: the service is down, refused the socket or did not answer.
        """
        url = (
            "ws" + self.url[len("http") :] + route
            if self.url.startswith("http")
            else self.url + route
        )
        headers = {"Authorization": f"token {self.token}"} if self.token else {}
        request = HTTPRequest(
            url, headers=headers, connect_timeout=10, request_timeout=30, follow_redirects=False
        )
        try:
            return await websocket_connect(request, max_message_size=max_message_size)
        except HTTPClientError as e:
            log.warning("executor service at %s refused %s: %s", self.url, route, e)
            if e.code == 403:
                refused = ServiceUnavailableError(
                    "the executor service refused your token", status=403
                )
                refused.reason = "forbidden"
                raise refused from None
            raise _unreachable(f"it answered {e.code}") from None
        except OSError as e:
            log.warning("executor service at %s unreachable: %s", self.url, e)
            raise _unreachable(getattr(e, "strerror", None) or str(e) or type(e).__name__) from None


def _is_loopback(host: Optional[str]) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def loopback_mismatch(service_url: str, hub_api_url: str) -> Optional[str]:
    """A warning when the service URL is a loopback address but the hub is not: under
    DockerSpawner or KubeSpawner that address is the user's own container, where no service runs.

    Args:
        service_url: where remote mode forwards (``service_url``).
        hub_api_url: how this server reaches the hub (``JUPYTERHUB_API_URL``), empty off a hub.
    """
    service_host = urlsplit(service_url).hostname
    hub_host = urlsplit(hub_api_url).hostname if hub_api_url else None
    if _is_loopback(service_host) and hub_host and not _is_loopback(hub_host):
        return (
            f"the executor service URL {service_url} is a loopback address, but this server "
            f"reaches the hub at {hub_host}: if this server runs in a container of its own "
            "(DockerSpawner, KubeSpawner), nothing answers there. Set JUPYTER_EXEC_SERVICE_URL "
            "to the proxy's internal URL, e.g. http://<hub>:8000/services/exec/api/exec/v1/ "
            "(docs/hub.md)"
        )
    return None


class ForwardRoute(ExecAPIHandler):
    """One route of the API, answered by the executor service. jupyter_server authenticates the
    caller here first; the service then checks the token it receives."""

    #: The methods the route has (the service's), set by each route.
    forwarded_methods: tuple[str, ...] = ()

    @classmethod
    def allowed_methods(cls) -> list[str]:
        return list(cls.forwarded_methods)

    async def _forward(self, query: Optional[str] = None) -> None:
        if self.request.method not in self.forwarded_methods:
            raise tornado.web.HTTPError(405)
        remote: RemoteService = self.context.remote
        prefix = url_path_join(self.base_url, NAMESPACE) + "/"
        route = self.request.path[len(prefix) :]
        body = self.request.body if self.request.method == "POST" else None
        if body is not None and len(body) > self.bounds.max_body_bytes:
            self.json_body()  # raises the same 413 the service would, without the upload
        status, headers, answer = await remote.forward(
            self.request.method, route, self.request.query if query is None else query, body
        )
        self.set_status(status)
        for name, value in headers.items():
            self.set_header(name, value)
        # The service's type (JSON, or CSV for the gradebook export); APIHandler would say JSON.
        self.finish(answer, set_content_type=headers.get("Content-Type", "application/json"))

    @tornado.web.authenticated
    @authorized
    async def get(self, **_: Any) -> None:
        await self._forward()

    @tornado.web.authenticated
    @authorized
    async def post(self, **_: Any) -> None:
        await self._forward()


class OpenForwardRoute(ForwardRoute):
    """``GET health`` forwarded: open to probes, like the local route. With the service out of
    reach it answers ``down`` as the local route does with the engine out of reach, so a probe
    reads one shape whichever way this server runs code."""

    @allow_unauthenticated
    async def get(self, **_: Any) -> None:
        try:
            await self._forward()
        except ServiceUnavailableError:
            self.finish({"status": "down"})


class RemoteModeHandler(ForwardRoute):
    """``GET authoring/mode`` from the service: a student's mode (authoring is single-server only)
    and whether the hub makes the user an instructor (the gradebook)."""

    route = "authoring/mode"
    forwarded_methods = ("GET",)


# -- every route of the API, forwarded (the same patterns and methods as local mode; the gradebook's
# included: the service decides what the caller may read) ---------------------------------------


class RemoteExecuteHandler(ForwardRoute):
    """``POST execute``, forwarded to the executor service."""

    route = ExecuteRoute.route
    forwarded_methods = tuple(ExecuteRoute.allowed_methods())


class RemoteDockerStatusHandler(ForwardRoute):
    """``GET docker/status``, forwarded to the executor service."""

    route = DockerStatusRoute.route
    forwarded_methods = tuple(DockerStatusRoute.allowed_methods())


class RemoteHealthHandler(OpenForwardRoute):
    """``GET health``, forwarded to the executor service."""

    route = HealthRoute.route
    forwarded_methods = tuple(HealthRoute.allowed_methods())


class RemoteExercisesHandler(ForwardRoute):
    """``GET exercises``, forwarded to the executor service."""

    route = ExercisesRoute.route
    forwarded_methods = tuple(ExercisesRoute.allowed_methods())


class RemoteExerciseHandler(ForwardRoute):
    """``GET exercises/{id}``, forwarded to the executor service."""

    route = ExerciseRoute.route
    forwarded_methods = tuple(ExerciseRoute.allowed_methods())


class RemoteSubmitHandler(ForwardRoute):
    """``POST exercises/{id}/submit``, forwarded to the executor service."""

    route = SubmitRoute.route
    forwarded_methods = tuple(SubmitRoute.allowed_methods())


class RemoteSubmissionsHandler(ForwardRoute):
    """``GET submissions``, forwarded to the executor service."""

    route = SubmissionsRoute.route
    forwarded_methods = tuple(SubmissionsRoute.allowed_methods())


class RemoteSubmissionHandler(ForwardRoute):
    """``GET submissions/{id}``, forwarded to the executor service."""

    route = SubmissionRoute.route
    forwarded_methods = tuple(SubmissionRoute.allowed_methods())


class RemoteGradebookHandler(ForwardRoute):
    """``GET gradebook``, forwarded to the executor service."""

    route = GradebookRoute.route
    forwarded_methods = tuple(GradebookRoute.allowed_methods())


class RemoteStatsHandler(ForwardRoute):
    """``GET exercises/{id}/stats``, forwarded to the executor service."""

    route = StatsRoute.route
    forwarded_methods = tuple(StatsRoute.allowed_methods())


class RemoteProgressHandler(ForwardRoute):
    """``GET exercises/{id}/progress``, forwarded to the executor service."""

    route = ProgressRoute.route
    forwarded_methods = tuple(ProgressRoute.allowed_methods())


#: The route table of remote mode: the local table's patterns, and the mode.
REMOTE_ROUTES: list[tuple[str, type[ForwardRoute]]] = [
    (f"{NAMESPACE}/execute", RemoteExecuteHandler),
    (f"{NAMESPACE}/docker/status", RemoteDockerStatusHandler),
    (f"{NAMESPACE}/health", RemoteHealthHandler),
    (f"{NAMESPACE}/exercises", RemoteExercisesHandler),
    (rf"{NAMESPACE}/exercises/(?P<exercise_id>[^/]+)", RemoteExerciseHandler),
    (rf"{NAMESPACE}/exercises/(?P<exercise_id>[^/]+)/submit", RemoteSubmitHandler),
    (f"{NAMESPACE}/submissions", RemoteSubmissionsHandler),
    (rf"{NAMESPACE}/submissions/(?P<submission_id>[^/]+)", RemoteSubmissionHandler),
    (f"{NAMESPACE}/gradebook", RemoteGradebookHandler),
    (rf"{NAMESPACE}/exercises/(?P<exercise_id>[^/]+)/stats", RemoteStatsHandler),
    (rf"{NAMESPACE}/exercises/(?P<exercise_id>[^/]+)/progress", RemoteProgressHandler),
    (f"{NAMESPACE}/authoring/mode", RemoteModeHandler),
]
