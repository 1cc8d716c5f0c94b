"""A small client of the extension's REST API and live-run WebSocket, for code running in a
notebook kernel.

The REST calls use the standard library's ``urllib`` rather than ``requests``: a handful of JSON
calls need nothing more, and ``%load_ext`` (in every student kernel) imports quickly. Live runs use
``websocket-client``'s synchronous client, imported on first use: a magic runs on the kernel's
thread, and the kernel's interrupt must reach it as a ``KeyboardInterrupt``. The server is found
from the environment (see ``ExecClient.discover``) or chosen with ``ExecClient.connect``.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Mapping, Optional

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
#: How long an interrupted live run waits for the server's cancelled result (Stop takes ≤ 1 s).
CANCEL_WAIT_S = 5.0


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


class APINotFoundError(ExecClientError):
    """404 on a route of the API itself: the URL is not the extension's API (often the server's
    base URL instead of ``…/api/exec/v1/``), or the extension is not enabled there."""

    status = 404


class LiveUnavailableError(ExecClientError):
    """The live-run WebSocket could not be opened (an older server, a proxy without WebSocket
    support…); the caller falls back to ``POST execute``."""


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

    def __init__(
        self,
        base_url: str,
        token: str = "",
        *,
        source: str = "arguments",
        origin: str = "arguments",
        timeout_margin_s: float = DEFAULT_TIMEOUT_MARGIN_S,
        query_timeout_s: float = QUERY_TIMEOUT_S,
    ) -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.token = token
        self.source = source
        #: How the server was found: "environment", "hub", "running-servers", "connect" or
        #: "arguments"; error messages word their fix for it.
        self.origin = origin
        #: Other servers that were also candidates (``describe()`` names them).
        self.also_found: list[str] = []
        #: Why the live-run socket could not be used, once it failed (then runs use POST).
        self.live_unavailable: Optional[str] = None
        self.timeout_margin_s = timeout_margin_s
        self.query_timeout_s = query_timeout_s
        self._server_limits: Optional[dict[str, Any]] = None

    def __repr__(self) -> str:
        return f"ExecClient({self.base_url!r}, source={self.source!r})"  # never the token

    # -- finding the server -------------------------------------------------------------------

    @classmethod
    def discover(cls, environ: Optional[Mapping[str, str]] = None) -> ExecClient:
        """Finds the server the kernel belongs to, in this order:

        0. the server chosen with ``%sandbox_connect`` in this kernel (only when ``environ`` is
           not given);
        1. ``JUPYTER_EXEC_EXT_URL`` and ``JUPYTER_EXEC_EXT_TOKEN``, which the extension sets for
           the kernels its server starts (and a user sets for a kernel VS Code starts);
        2. JupyterHub's ``JUPYTERHUB_API_TOKEN`` with ``JUPYTERHUB_SERVICE_PREFIX`` (the
           single-user server's path), reached at ``JUPYTERHUB_SERVICE_URL``'s host (where the
           single-user server listens) or else the host of ``JUPYTERHUB_PUBLIC_URL`` or
           ``JUPYTERHUB_API_URL``;
        3. ``jupyter_server.serverapp.list_running_servers()``: the first server whose
           ``health`` route answers (so only one with the extension).

        An explicit choice (0 or 1) wins over a server that merely runs on this machine; the
        running servers it passed over are listed in ``also_found`` so ``describe()`` says so.

        Args:
            environ: the environment to read (default ``os.environ``).

        Returns:
            A client for the server found.

        Raises:
            ServerNotFoundError: none of the three gave a server; the message says what was tried
                and what to do in this kind of environment.
        """
        if environ is None and _connected is not None:
            return _connected
        env = os.environ if environ is None else environ
        url = env.get(URL_ENV, "").strip()
        if url:
            client = cls(
                url,
                env.get(TOKEN_ENV, ""),
                source=f"{URL_ENV} and {TOKEN_ENV}",
                origin="environment",
            )
            client.also_found = [
                u for u in cls._running_server_urls(env) if not client.base_url.startswith(u)
            ]
            return client
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
            "that answers the extension's health route. " + not_found_fix(env)
        )

    def describe(self) -> str:
        """One or two lines for ``%load_ext``: which server, found how, and what it passed over."""
        how = {
            "environment": f"from the environment ({URL_ENV} and {TOKEN_ENV})",
            "hub": f"from JupyterHub's environment ({self.source})",
            "running-servers": f"from jupyter_server's list of running servers ({self.source})",
            "connect": "with %sandbox_connect",
        }.get(self.origin, f"from {self.source}")
        text = f"jupyter_exec_ext: using the server at {self.base_url}, found {how}."
        if self.also_found:
            text += (
                "\n  A local Jupyter server is also running ("
                + ", ".join(self.also_found)
                + f"); the explicit environment wins. Unset {URL_ENV} to use it instead."
            )
        return text

    @classmethod
    def _from_jupyterhub(cls, env: Mapping[str, str]) -> Optional[ExecClient]:
        token, prefix = (
            env.get("JUPYTERHUB_API_TOKEN", ""),
            env.get("JUPYTERHUB_SERVICE_PREFIX", ""),
        )
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
                return cls(
                    base,
                    token,
                    source=f"JUPYTERHUB_API_TOKEN, JUPYTERHUB_SERVICE_PREFIX and {name}",
                    origin="hub",
                )
        return None

    @classmethod
    def _from_running_servers(cls, env: Mapping[str, str]) -> Optional[ExecClient]:
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
            client = cls(
                base + API_PATH,
                info.get("token", ""),
                source=f"list_running_servers() (server pid {info.get('pid')})",
                origin="running-servers",
            )
            try:
                client._request("GET", "health", timeout=PROBE_TIMEOUT_S)
            except ExecClientError as e:
                log.debug("running server at %s does not serve the extension: %s", base, e)
                continue
            return client
        return None

    @staticmethod
    def _running_server_urls(env: Mapping[str, str]) -> list[str]:
        """The base URLs in jupyter_server's list of running servers (read from files, not probed)."""
        try:
            from jupyter_server.serverapp import list_running_servers
        except ImportError:
            return []
        urls = []
        for info in list_running_servers(runtime_dir=env.get("JUPYTER_RUNTIME_DIR") or None):
            base = info.get("url", "")
            if base:
                urls.append(base if base.endswith("/") else base + "/")
        return urls

    # -- connecting by hand (%sandbox_connect) ------------------------------------------------

    @classmethod
    def locate_api(cls, url: str, *, timeout: float = PROBE_TIMEOUT_S) -> str:
        """The extension's API URL for what a user pasted: a server's base URL (with or without
        a front-end path such as ``/lab/tree/x.ipynb``), the API URL itself, or a JupyterHub
        user URL (``https://hub/user/NAME/…``).

        Each candidate is probed at its ``health`` route, which answers without a token, and
        accepted only if the answer is the extension's (``{"status": "ok"|"degraded"|"down"}``).

        Raises:
            BadRequestError: not an http(s) URL.
            ServerNotFoundError: no candidate answered as the extension; says what was tried.
        """
        tried = []
        for candidate in api_candidates(url):
            tried.append(candidate)
            probe = cls(candidate, source="%sandbox_connect", origin="connect")
            try:
                answer = probe._request("GET", "health", timeout=timeout)
            except ExecClientError as e:
                log.debug("%s: %s", candidate, e)
                continue
            if isinstance(answer, dict) and answer.get("status") in ("ok", "degraded", "down"):
                return candidate
        raise ServerNotFoundError(
            f"no jupyter_exec_ext API answers at {url} (tried {', '.join(t + 'health' for t in tried)}). "
            "Check the URL: use the address of your Jupyter server (as in the browser, e.g. "
            "http://127.0.0.1:8888/ or https://HUB/user/NAME/) and that the server is running "
            "with the extension enabled (`jupyter server extension list`; on JupyterHub, start "
            "your server at /hub/home first)."
        )

    @classmethod
    def connect(cls, url: str, token: str) -> ExecClient:
        """A client for the API at ``url`` (any form ``locate_api`` accepts) with ``token``,
        checked with one authenticated call; it becomes what ``discover()`` answers.

        Raises:
            ServerNotFoundError: no API at that URL.
            AuthenticationError: the token was refused (the message says where to get one).
        """
        client = cls(
            cls.locate_api(url), token.strip(), source="%sandbox_connect", origin="connect"
        )
        client.status()  # raises AuthenticationError with the fix for a bad token
        use_client(client)
        return client

    # -- the routes ---------------------------------------------------------------------------

    def execute(
        self,
        code: str,
        *,
        stdin: Optional[str] = None,
        time_limit: Optional[float] = None,
        memory_limit: Optional[str] = None,
        use_cache: bool = True,
    ) -> dict[str, Any]:
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

    def run_live(
        self,
        code: str,
        *,
        stdin: Optional[str] = None,
        time_limit: Optional[float] = None,
        memory_limit: Optional[str] = None,
        on_output: Callable[[str, str], None],
        on_input: Optional[Callable[[str], Optional[str]]] = None,
        on_display: Optional[Callable[[str, str], None]] = None,
        on_started: Optional[Callable[[float], None]] = None,
        on_note: Optional[Callable[[str], None]] = None,
        exercise_id: Optional[str] = None,
    ) -> dict[str, Any]:
        """Runs ``code`` over the live-run WebSocket (``execute/ws``): output arrives as it is
        printed, the program's ``input()`` is answered by ``on_input``, and a
        ``KeyboardInterrupt`` (the kernel's interrupt) cancels the run.

        Args:
            code, time_limit, memory_limit: as for ``execute``.
            stdin: given up front; its end is the end of input (as with ``execute``), so no
                ``input_request`` follows.
            on_output: called with ``(stream, text)`` for each piece of output.
            on_input: called with the prompt when the program waits for a line; answers the line
                (without its newline) or None for end of input. None: end of input at once.
            on_display: called with ``(mime, base64 data)`` for each figure.
            on_started: called with the run's time limit once it is in a container.
            on_note: called with a line of the client's own for the student (a message of ours
                the server could not use); default: ``on_output("stderr", …)``.
            exercise_id: the run belongs to this exercise (its data files are in the run's
                working directory on a server that has them).

        Returns:
            The result, with the fields of ``execute``'s answer; ``status`` is ``cancelled``
            after an interrupt.

        Raises:
            LiveUnavailableError: the socket could not be opened (then nothing ran; use
                ``execute``).
            ExecClientError: the server reported an error, or the connection broke mid-run.
        """
        import websocket  # websocket-client; imported here so %load_ext stays light

        url = "ws" + self.base_url[len("http") :] + "execute/ws"
        headers = [f"Authorization: token {self.token}"] if self.token else []
        timeout = self._run_timeout(time_limit)
        try:
            # No Origin header: jupyter_server then treats the socket as a non-browser client.
            ws = websocket.create_connection(
                url,
                header=headers,
                timeout=PROBE_TIMEOUT_S * 2,
                suppress_origin=True,
                enable_multithread=True,
            )
        except (websocket.WebSocketException, OSError) as e:
            self.live_unavailable = f"{url}: {e}"
            raise LiveUnavailableError(f"cannot open {url}: {e}") from e
        try:
            ws.settimeout(timeout)
            message: dict[str, Any] = {"type": "run", "code": code}
            if stdin is not None:
                message["stdin"] = stdin
            limits = {
                k: v
                for k, v in (("time_limit", time_limit), ("memory_limit", memory_limit))
                if v is not None
            }
            if limits:
                message["limits"] = limits
            if exercise_id is not None:
                message["exercise_id"] = exercise_id
            ws.send(json.dumps(message))
            if stdin is not None:
                ws.send(json.dumps({"type": "stdin", "eof": True}))
            note = on_note if on_note is not None else (lambda text: on_output("stderr", text))
            try:
                return self._live_events(ws, on_output, on_input, on_display, on_started, note)
            except KeyboardInterrupt:
                return self._cancel(ws, on_output, on_display)
        finally:
            ws.close()

    def _live_events(
        self,
        ws: Any,
        on_output: Callable[[str, str], None],
        on_input: Optional[Callable[[str], Optional[str]]],
        on_display: Optional[Callable[[str, str], None]],
        on_started: Optional[Callable[[float], None]],
        on_note: Optional[Callable[[str], None]] = None,
        answer_input: bool = True,
        started: bool = False,
    ) -> dict[str, Any]:
        """Reads the run's events up to its result. An ``error`` before the run started means it
        will not start (raised); after, it concerns a message of ours and the run goes on."""
        import websocket

        asked: Optional[str] = None  # the prompt of the line just sent, until the run goes on

        def answer(prompt: str) -> None:
            nonlocal asked
            line = on_input(prompt) if on_input is not None else None
            ws.send(
                json.dumps(
                    {"type": "stdin", "eof": True}
                    if line is None
                    else {"type": "stdin", "data": line + "\n"}
                )
            )
            asked = None if line is None else prompt

        while True:
            try:
                raw = ws.recv()
            except websocket.WebSocketTimeoutException as e:
                raise RequestTimeoutError(
                    f"the live run at {self.base_url}execute/ws sent nothing "
                    f"for {ws.gettimeout():g} s"
                ) from e
            except (websocket.WebSocketException, OSError) as e:
                raise ExecClientError(
                    f"the live run's connection to {self.base_url} broke: {e}"
                ) from e
            if not raw:
                raise ExecClientError(
                    f"the server at {self.base_url} closed the live run before its result"
                )
            try:
                event = json.loads(raw)
                kind = event.get("type")
            except (ValueError, AttributeError) as e:
                raise ExecClientError(
                    f"bad message from {self.base_url}execute/ws (not the "
                    f"extension's live-run protocol): {raw[:200]!r}"
                ) from e
            if kind != "error":
                asked = None
            if kind == "output":
                on_output(event.get("stream", "stdout"), event.get("data", ""))
            elif kind == "input_request":
                if answer_input:
                    answer(event.get("prompt", ""))
            elif kind == "display":
                if on_display is not None:
                    on_display(event.get("mime", ""), event.get("data", ""))
            elif kind == "started":
                started = True
                if on_started is not None:
                    on_started(float(event.get("time_limit_s", 0)))
            elif kind == "result":
                return event
            elif kind == "error":
                refusal = self._live_refusal(event, started)
                if refusal is not None:
                    raise refusal
                # A message of ours the server could not use: the run goes on, the student is told.
                if on_note is not None:
                    on_note(f"[sandbox: {event.get('message')}]\n")
                if asked is not None and answer_input:
                    answer(asked)  # the line was refused: the program still waits, so ask again

    @staticmethod
    def _live_refusal(event: dict[str, Any], started: bool) -> Optional[ExecClientError]:
        """The error a live run's ``error`` event stands for when the run did not or will not
        start (the same exceptions and words as ``POST execute``'s refusals), else None."""
        message = str(event.get("message", ""))
        prefix = "the run did not start: "
        if started and not message.startswith(prefix):
            return None
        detail, reason = message.removeprefix(prefix), event.get("reason")
        if reason == "rate_limited":
            return RateLimitedError(detail)
        if reason in ("docker_unavailable", "image_missing", "sandbox_unavailable"):
            return SandboxUnavailableError(
                "Sandbox unavailable: "
                + ("Docker is not running" if detail == "Docker not available" else detail)
            )
        if "over the limit" in detail:
            return PayloadTooLargeError(f"too big for the sandbox: {detail}")
        if reason in ("bad_message", "bad_request") or not message.startswith(prefix):
            return BadRequestError(f"the server refused the request: {detail}")
        return ExecClientError(f"the server did not run the code: {detail}")

    def _cancel(
        self,
        ws: Any,
        on_output: Callable[[str, str], None],
        on_display: Optional[Callable[[str, str], None]],
    ) -> dict[str, Any]:
        """After an interrupt: asks the server to cancel and waits (bounded) for the result.
        A second interrupt, or no answer, closes the socket, which cancels the run too."""
        try:
            ws.send(json.dumps({"type": "cancel"}))
            ws.settimeout(CANCEL_WAIT_S)
            return self._live_events(
                ws, on_output, None, on_display, None, answer_input=False, started=True
            )
        except (ExecClientError, KeyboardInterrupt) as e:
            log.info("no result after cancel: %s", e)
            return {
                "status": "cancelled",
                "duration_ms": 0,
                "stdout": "",
                "stderr": "",
                "message": "interrupted; the connection was closed, which stops the run",
            }

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
        return self._request(
            "GET",
            f"exercises/{urllib.parse.quote(exercise_id, safe='')}",
            timeout=self.query_timeout_s,
        )

    def submit(
        self, exercise_id: str, code: str, exercise: Optional[Mapping[str, Any]] = None
    ) -> dict[str, Any]:
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
            grading_s = float(
                view.get("limits", {}).get("time_limit", FALLBACK_TIME_LIMIT_S)
            ) + 5.0 * (len(view.get("tests", [])) + int(view.get("hidden_tests", 0)))
        return self._request(
            "POST",
            f"exercises/{urllib.parse.quote(exercise_id, safe='')}/submit",
            {"code": code},
            timeout=float(grading_s) + self.timeout_margin_s,
        )

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
        data = (
            json.dumps(body).encode("utf-8")
            if body is not None
            else (b"" if method == "POST" else None)
        )
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
            raise RequestTimeoutError(
                f"the server at {self.base_url} did not answer {method} {route} "
                f"within {timeout:g} s"
            ) from e
        except urllib.error.URLError as e:
            if isinstance(e.reason, (socket.timeout, TimeoutError)):
                raise RequestTimeoutError(
                    f"the server at {self.base_url} did not answer {method} "
                    f"{route} within {timeout:g} s"
                ) from e
            raise ServerUnreachableError(
                f"cannot reach the jupyter_exec_ext server at {self.base_url} "
                f"(found through {self.source}): {e.reason}; " + self._unreachable_fix()
            ) from e
        except (ConnectionError, ValueError) as e:
            # A connection dropped mid-answer, or an answer that is not JSON (not our server?).
            raise ExecClientError(
                f"bad answer from {self.base_url}{route} (found through {self.source}): {e}"
            ) from e

    def _http_error(self, error: urllib.error.HTTPError, route: str) -> ExecClientError:
        """The exception for an error answer, with the server's message."""
        try:
            server_message = json.loads(error.read().decode("utf-8")).get("message")
        except (ValueError, AttributeError, OSError):
            server_message = None
        message = server_message or error.reason
        status = error.code
        if status in (401, 403):
            return AuthenticationError(self._auth_message(status, message), status)
        if status == 400:
            return BadRequestError(f"the server refused the request: {message}")
        if status == 404:
            if route.startswith("exercises/"):
                return ExerciseNotFoundError(
                    f"{message}: no exercise of that id on the server "
                    "(ask your instructor for the id)"
                )
            return APINotFoundError(self._not_found_message(route))
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

    def _auth_message(self, status: int, message: str) -> str:
        """Why the server refused us, and the fix for how this client was set up."""
        token_page = hub_token_page(self.base_url)
        if not self.token:
            fix = {
                "environment": f"{TOKEN_ENV} is empty or not set: set it to the server's token "
                "(`jupyter server list` shows it after ?token=), or run "
                "%sandbox_connect URL, which asks for it",
                "connect": "no token was typed: run %sandbox_connect again and paste the token"
                + (f" (make one at {token_page})" if token_page else ""),
            }.get(self.origin, "pass the server's token")
            return (
                f"the server at {self.base_url} needs a token and none was given "
                f"(HTTP {status} {message}): {fix}"
            )
        fix = {
            "environment": f"{TOKEN_ENV} is not this server's token (a restarted server has a new "
            "one; `jupyter server list` shows the current one)"
            + (f"; on JupyterHub make a token at {token_page}" if token_page else ""),
            "hub": "this kernel's JupyterHub token is no longer accepted: stop and start your "
            "server from the hub's control panel (/hub/home), then restart the kernel",
            "connect": "the token typed at %sandbox_connect was refused: run it again with a "
            "current one"
            + (
                f" (make one at {token_page})"
                if token_page
                else " (`jupyter server list` shows the server's token)"
            ),
            "running-servers": "the token in jupyter_server's runtime file is stale: restart that "
            "server, or set JUPYTER_EXEC_EXT_URL and JUPYTER_EXEC_EXT_TOKEN",
        }.get(self.origin, "is the token current?")
        return (
            f"the server at {self.base_url} refused the credentials found through "
            f"{self.source} (HTTP {status} {message}): {fix}"
        )

    def _unreachable_fix(self) -> str:
        """What to do when nothing answers at the URL, for how the client was set up."""
        return {
            "environment": f"is that server running? A restarted server may listen on another port "
            f"(`jupyter server list` shows it): update {URL_ENV}, or run "
            "%sandbox_connect with its address",
            "hub": "your server on the hub may have stopped: start it at /hub/home, then restart "
            "the kernel",
            "connect": "is that server still running? Run %sandbox_connect again with its address",
            "running-servers": "the server stopped after this kernel found it: start it again and "
            "restart the kernel",
        }.get(self.origin, "is the server running?")

    def _not_found_message(self, route: str) -> str:
        """A 404 on the API's own route: say whether the URL is the server's base URL."""
        where = f"{self.base_url}{route} not found"
        if not self.base_url.endswith(API_PATH):
            try:
                # The same class's own method, on a probe client for the API's URL.
                ExecClient(self.base_url + API_PATH)._request(  # noqa: SLF001
                    "GET", "health", timeout=PROBE_TIMEOUT_S
                )
            except ExecClientError:
                pass
            else:
                fix = (
                    f"set {URL_ENV} to {self.base_url}{API_PATH}"
                    if self.origin == "environment"
                    else f"use {self.base_url}{API_PATH}"
                )
                return (
                    f"{where}: {self.base_url} is the Jupyter server's base URL, not the "
                    f"extension's API URL; {fix} (or run %sandbox_connect {self.base_url}, "
                    "which works the API path out)"
                )
        return (
            f"{where}: no jupyter_exec_ext API answers at {self.base_url} (found through "
            f"{self.source}). The API URL ends in /{API_PATH}; check that the extension is "
            "enabled on that server (`jupyter server extension list`), or run "
            "%sandbox_connect with the server's address"
        )


#: The client ``%sandbox_connect`` made; ``ExecClient.discover()`` answers it from then on.
_connected: Optional[ExecClient] = None


def use_client(client: Optional[ExecClient]) -> None:
    """Makes ``client`` what ``ExecClient.discover()`` answers in this process (None: forget it)."""
    global _connected
    _connected = client


#: Path segments where a front end's page starts in a URL copied from the browser.
_FRONT_END_SEGMENTS = ("lab", "tree", "notebooks", "doc", "edit", "view", "files", "voila", "hub")


def api_candidates(url: str) -> list[str]:
    """API URLs to probe for what a user pasted, most likely first (see ``locate_api``).

    Raises:
        BadRequestError: not an http(s) URL with a host.
    """
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadRequestError(
            f"{url!r} is not a server address: give one like "
            "http://127.0.0.1:8888/ or https://HUB/user/NAME/"
        )
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path or "/"
    marker = "/" + API_PATH.rstrip("/")
    if marker in path + "/":
        return [origin + path[: path.index(marker)] + "/" + API_PATH]
    segments = [s for s in path.split("/") if s]
    if "user" in segments and segments.index("user") + 1 < len(segments):
        i = segments.index("user")  # a hub user's server: /PREFIX/user/NAME/…
        return [origin + "/" + "/".join(segments[: i + 2]) + "/" + API_PATH]
    for i, segment in enumerate(segments):
        if segment in _FRONT_END_SEGMENTS:
            segments = segments[:i]
            break
    # The longest prefix first: a server's base_url may have several segments.
    return [
        origin + "/" + "".join(s + "/" for s in segments[:n]) + API_PATH
        for n in range(len(segments), -1, -1)
    ]


def hub_token_page(api_url: str) -> Optional[str]:
    """``https://HUB/hub/token`` for an API URL of a hub user's server, else None."""
    parts = urllib.parse.urlsplit(api_url)
    segments = [s for s in parts.path.split("/") if s]
    if "user" not in segments:
        return None
    prefix = "/".join(segments[: segments.index("user")])
    return f"{parts.scheme}://{parts.netloc}/" + (prefix + "/" if prefix else "") + "hub/token"


def running_in_vscode(env: Mapping[str, str]) -> bool:
    """VS Code's Jupyter extension starts kernels with VS Code's environment (``VSCODE_PID``…)."""
    return any(k.startswith("VSCODE_") for k in env)


def not_found_fix(env: Mapping[str, str]) -> str:
    """What to do when no server was found, worded for the front end that started the kernel."""
    connect = (
        "run `%sandbox_connect URL` with your Jupyter server's address (it asks for the "
        "token), or set JUPYTER_EXEC_EXT_URL and JUPYTER_EXEC_EXT_TOKEN"
    )
    if running_in_vscode(env):
        return (
            "This kernel was started by VS Code, not by a Jupyter server: "
            + connect
            + " in the .env file VS Code reads (python.envFile), or connect VS Code to a "
            "running Jupyter server (Select Kernel > Existing Jupyter Server). See docs/vscode.md."
        )
    return (
        "This kernel was not started by a Jupyter server with the extension. Open the notebook "
        "in one (JupyterLab, Notebook 7, or a JupyterHub server), or, for a kernel started "
        "elsewhere (VS Code, nbconvert or papermill without a server), "
        + connect
        + " in its environment. See docs/vscode.md."
    )
