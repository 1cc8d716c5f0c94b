"""A small client of the extension's REST API, for code running in a notebook kernel.

It uses the standard library's ``urllib`` rather than ``requests``: the kernel side then adds no
dependency and imports quickly (``%load_ext`` runs in every student kernel), and a handful of JSON
calls need nothing more. The server is found from the environment (see ``ExecClient.discover``).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Mapping, Optional

log = logging.getLogger(__name__)

#: Set by the server extension for the kernels it starts (``server/app.py`` writes them; not
#: imported from there, so a kernel never loads jupyter_server for two names; a test checks they agree).
URL_ENV = "JUPYTER_EXEC_EXT_URL"
TOKEN_ENV = "JUPYTER_EXEC_EXT_TOKEN"
API_PATH = "api/exec/v1/"
#: Added to the longest the sandbox may take: container start, a queue behind other runs, transfer.
DEFAULT_TIMEOUT_MARGIN_S = 15.0
#: When the server's limits cannot be read: its built-in admin maximum of a run's time.
FALLBACK_TIME_LIMIT_S = 120.0
#: Calls that run nothing (status, exercise lookups).
QUERY_TIMEOUT_S = 30.0
#: A probe of a server found by ``list_running_servers`` (it may be a stale entry).
PROBE_TIMEOUT_S = 3.0


class ExecClientError(Exception):
    """The REST API could not give an answer; ``str()`` is a message a student can act on.

    Attributes:
        status: the HTTP status of the answer (None when there was none).
    """

    status: Optional[int] = None

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status

    def _render_traceback_(self) -> list[str]:
        # IPython shows this instead of a traceback: the student needs the message, not our frames.
        return [f"{type(self).__name__}: {self}"]


class ServerNotFoundError(ExecClientError):
    """No server with the extension could be found from the kernel's environment."""


class ServerUnreachableError(ExecClientError):
    """The server did not accept the connection."""


class AuthenticationError(ExecClientError):
    """The server refused the credentials (401/403)."""


class BadRequestError(ExecClientError):
    """400: a field is wrong (the message names it)."""

    status = 400


class ExerciseNotFoundError(ExecClientError):
    """404: the server has no exercise of that id."""

    status = 404


class PayloadTooLargeError(ExecClientError):
    """413: the code or stdin is over the server's size limit."""

    status = 413


class RateLimitedError(ExecClientError):
    """429: this user already has runs in flight, or used up the submissions of an exercise for
    now; the message is the server's, which says which and when to try again.

    Attributes:
        retry_after_s: what the server's ``Retry-After`` header suggests, if it sent one.
    """

    status = 429

    def __init__(self, message: str, retry_after_s: Optional[float] = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class SandboxUnavailableError(ExecClientError):
    """503: the server cannot run anything now (Docker down, image missing, sandbox disabled)."""

    status = 503


class RequestTimeoutError(ExecClientError):
    """No answer within the HTTP timeout."""


class ExecClient:
    """Calls the REST API under ``base_url`` (ending in ``api/exec/v1/``).

    Args:
        base_url: the API's base URL.
        token: the credential, sent as ``Authorization: token …`` (empty: none).
        source: where URL and token came from, named in error messages.
        timeout_margin_s: added to the longest a run may take in the sandbox to get the HTTP
            timeout of ``execute`` and ``submit``.
        query_timeout_s: HTTP timeout of calls that run nothing (status, exercises).
    """

    def __init__(self, base_url: str, token: str = "", *, source: str = "arguments",
                 timeout_margin_s: float = DEFAULT_TIMEOUT_MARGIN_S,
                 query_timeout_s: float = QUERY_TIMEOUT_S) -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.token = token
        self.source = source
        self.timeout_margin_s = timeout_margin_s
        self.query_timeout_s = query_timeout_s
        self._server_limits: Optional[dict[str, Any]] = None

    def __repr__(self) -> str:
        return f"ExecClient({self.base_url!r}, source={self.source!r})"  # never the token

    # -- finding the server -------------------------------------------------------------------

    @classmethod
    def discover(cls, environ: Optional[Mapping[str, str]] = None) -> "ExecClient":
        """Finds the server the kernel belongs to, in this order:

        1. ``JUPYTER_EXEC_EXT_URL`` and ``JUPYTER_EXEC_EXT_TOKEN``, which the extension sets for
           the kernels its server starts;
        2. JupyterHub's ``JUPYTERHUB_API_TOKEN`` with ``JUPYTERHUB_SERVICE_PREFIX`` (the
           single-user server's path), reached at ``JUPYTERHUB_SERVICE_URL``'s host (where the
           single-user server listens) or else the host of ``JUPYTERHUB_PUBLIC_URL`` or
           ``JUPYTERHUB_API_URL``;
        3. ``jupyter_server.serverapp.list_running_servers()``: the first server whose
           ``health`` route answers (so only one with the extension).

        Args:
            environ: the environment to read (default ``os.environ``).

        Returns:
            A client for the server found.

        Raises:
            ServerNotFoundError: none of the three gave a server; the message says what was tried.
        """
        env = os.environ if environ is None else environ
        url = env.get(URL_ENV, "").strip()
        if url:
            return cls(url, env.get(TOKEN_ENV, ""), source=f"{URL_ENV} and {TOKEN_ENV}")
        hub = cls._from_jupyterhub(env)
        if hub is not None:
            return hub
        found = cls._from_running_servers(env)
        if found is not None:
            return found
        raise ServerNotFoundError(
            "cannot find the Jupyter server with the jupyter_exec_ext extension: "
            f"{URL_ENV} is not set, JupyterHub's JUPYTERHUB_API_TOKEN and JUPYTERHUB_SERVICE_PREFIX "
            "are not both set, and jupyter_server's list_running_servers() found no running server "
            "that answers the extension's health route. Start JupyterLab with the extension "
            "enabled, or set JUPYTER_EXEC_EXT_URL and JUPYTER_EXEC_EXT_TOKEN.")

    @classmethod
    def _from_jupyterhub(cls, env: Mapping[str, str]) -> Optional["ExecClient"]:
        token, prefix = env.get("JUPYTERHUB_API_TOKEN", ""), env.get("JUPYTERHUB_SERVICE_PREFIX", "")
        if not (token and prefix):
            return None
        for name in ("JUPYTERHUB_SERVICE_URL", "JUPYTERHUB_PUBLIC_URL", "JUPYTERHUB_API_URL"):
            parts = urllib.parse.urlsplit(env.get(name, ""))
            if parts.scheme and parts.netloc:
                host = parts.hostname or "127.0.0.1"
                # The single-user server may bind every interface; connect over loopback then.
                if host in ("0.0.0.0", "::", ""):
                    host = "127.0.0.1"
                netloc = f"{host}:{parts.port}" if parts.port else host
                base = f"{parts.scheme}://{netloc}/{prefix.strip('/')}/{API_PATH}"
                return cls(base, token, source=f"JUPYTERHUB_API_TOKEN, JUPYTERHUB_SERVICE_PREFIX and {name}")
        return None

    @classmethod
    def _from_running_servers(cls, env: Mapping[str, str]) -> Optional["ExecClient"]:
        try:
            # Imported here: it is heavy, and only this last resort needs it.
            from jupyter_server.serverapp import list_running_servers
        except ImportError:
            return None
        runtime_dir = env.get("JUPYTER_RUNTIME_DIR") or None
        for info in list_running_servers(runtime_dir=runtime_dir):
            base = info.get("url", "")
            if not base:
                continue
            base = base if base.endswith("/") else base + "/"
            client = cls(base + API_PATH, info.get("token", ""),
                         source=f"list_running_servers() (server pid {info.get('pid')})")
            try:
                client._request("GET", "health", timeout=PROBE_TIMEOUT_S)
            except ExecClientError as e:
                log.debug("running server at %s does not serve the extension: %s", base, e)
                continue
            return client
        return None

    # -- the routes ---------------------------------------------------------------------------

    def execute(self, code: str, *, stdin: Optional[str] = None, time_limit: Optional[float] = None,
                memory_limit: Optional[str] = None, use_cache: bool = True) -> dict[str, Any]:
        """Runs ``code`` in the sandbox (``POST execute``).

        Args:
            code: the program.
            stdin: its standard input.
            time_limit: seconds (the server's default when None; clamped to its maximum).
            memory_limit: a size such as ``"128m"``.
            use_cache: False forces a fresh run.

        Returns:
            The result: ``status``, ``stdout``, ``stderr``, ``duration_ms``, ``limits``, ``notes``…

        Raises:
            ExecClientError: a subclass for each way the call can fail.
        """
        body: dict[str, Any] = {"code": code, "use_cache": use_cache}
        if stdin is not None:
            body["stdin"] = stdin
        if time_limit is not None:
            body["time_limit"] = time_limit
        if memory_limit is not None:
            body["memory_limit"] = memory_limit
        return self._request("POST", "execute", body, timeout=self._run_timeout(time_limit))

    def status(self) -> dict[str, Any]:
        """``GET docker/status``: engine, image, pool, cache, runs in flight, limits."""
        return self._request("GET", "docker/status", timeout=self.query_timeout_s)

    def exercises(self) -> list[dict[str, Any]]:
        """``GET exercises``: ``[{id, title, max_score}]``."""
        return self._request("GET", "exercises", timeout=self.query_timeout_s)

    def exercise(self, exercise_id: str) -> dict[str, Any]:
        """``GET exercises/{id}``: prompt, starter code, visible tests, limits.

        Raises:
            ExerciseNotFoundError: no such exercise.
        """
        return self._request("GET", f"exercises/{urllib.parse.quote(exercise_id, safe='')}",
                             timeout=self.query_timeout_s)

    def submit(self, exercise_id: str, code: str,
               exercise: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
        """Grades ``code`` (``POST exercises/{id}/submit``).

        Args:
            exercise_id: the exercise.
            code: the submission.
            exercise: the exercise's student view if the caller has it (saves one request); its
                ``grading_time_limit`` sizes the HTTP timeout.

        Returns:
            ``{exercise_id, status, score, max_score, tests: [...], stdout, stderr, message}``.

        Raises:
            ExecClientError: a subclass for each way the call can fail.
        """
        view = exercise if exercise is not None else self.exercise(exercise_id)
        grading_s = view.get("grading_time_limit")
        if grading_s is None:  # an older server: the run's limit plus the default 5 s per test
            grading_s = float(view.get("limits", {}).get("time_limit", FALLBACK_TIME_LIMIT_S)) + 5.0 * (
                len(view.get("tests", [])) + int(view.get("hidden_tests", 0)))
        return self._request("POST", f"exercises/{urllib.parse.quote(exercise_id, safe='')}/submit",
                             {"code": code}, timeout=float(grading_s) + self.timeout_margin_s)

    # -- plumbing -----------------------------------------------------------------------------

    def _run_timeout(self, time_limit: Optional[float]) -> float:
        """A little above the longest the run may take: the limit asked for (or the server's
        default), never above the server's maximum, plus the margin."""
        limits = self._limits()
        default = float(limits.get("default", {}).get("time_limit", FALLBACK_TIME_LIMIT_S))
        maximum = float(limits.get("max", {}).get("time_limit", FALLBACK_TIME_LIMIT_S))
        wanted = default if time_limit is None else float(time_limit)
        return min(wanted, maximum) + self.timeout_margin_s

    def _limits(self) -> dict[str, Any]:
        """The server's default and maximum limits, read once from ``docker/status``."""
        if self._server_limits is None:
            try:
                self._server_limits = self.status().get("limits", {})
            except (RequestTimeoutError, ServerUnreachableError, SandboxUnavailableError):
                # Not fatal: the run itself will report the problem; assume the built-in maximum.
                return {}
        return self._server_limits

    def _request(self, method: str, route: str, body: Any = None, *, timeout: float) -> Any:
        """One call; answers the decoded JSON or raises the matching ``ExecClientError``."""
        url = self.base_url + route
        data = json.dumps(body).encode("utf-8") if body is not None else (b"" if method == "POST" else None)
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"token {self.token}"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as e:
            raise self._http_error(e, route) from None
        except (socket.timeout, TimeoutError) as e:
            raise RequestTimeoutError(f"the server at {self.base_url} did not answer {method} {route} "
                                      f"within {timeout:g} s") from e
        except urllib.error.URLError as e:
            if isinstance(e.reason, (socket.timeout, TimeoutError)):
                raise RequestTimeoutError(f"the server at {self.base_url} did not answer {method} "
                                          f"{route} within {timeout:g} s") from e
            raise ServerUnreachableError(f"cannot reach the jupyter_exec_ext server at {self.base_url} "
                                         f"(found through {self.source}): {e.reason}") from e
        except (ConnectionError, ValueError) as e:
            # A connection dropped mid-answer, or an answer that is not JSON (not our server?).
            raise ExecClientError(f"bad answer from {self.base_url}{route} (found through "
                                  f"{self.source}): {e}") from e

    def _http_error(self, error: urllib.error.HTTPError, route: str) -> ExecClientError:
        """The exception for an error answer, with the server's message."""
        try:
            server_message = json.loads(error.read().decode("utf-8")).get("message")
        except (ValueError, AttributeError, OSError):
            server_message = None
        message = server_message or error.reason
        status = error.code
        if status in (401, 403):
            return AuthenticationError(
                f"the server at {self.base_url} refused the credentials found through "
                f"{self.source} (HTTP {status} {message}); is the token current?", status)
        if status == 400:
            return BadRequestError(f"the server refused the request: {message}")
        if status == 404:
            if route.startswith("exercises/"):
                return ExerciseNotFoundError(f"{message}: no exercise of that id on the server "
                                             "(ask your instructor for the id)")
            return ExerciseNotFoundError(f"{self.base_url}{route} not found: is the jupyter_exec_ext "
                                         "extension enabled on this server?")
        if status == 413:
            return PayloadTooLargeError(f"too big for the sandbox: {message}")
        if status == 429:
            retry = error.headers.get("Retry-After") if error.headers else None
            try:
                retry_s = float(retry) if retry else None
            except ValueError:
                retry_s = None
            if server_message:  # it says what limit was hit and when to try again
                return RateLimitedError(server_message, retry_s)
            wait = f"try again in {retry} s" if retry_s is not None else "try again in a moment"
            return RateLimitedError(f"too many requests; {wait}", retry_s)
        if status == 503:
            detail = "Docker is not running" if message == "Docker not available" else message
            return SandboxUnavailableError(f"Sandbox unavailable: {detail}")
        return ExecClientError(f"the server answered HTTP {status}: {message}", status)
