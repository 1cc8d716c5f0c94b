"""``{base_url}api/exec/v1/execute/ws``: live runs over a WebSocket (protocol in README, "Live runs").

The client sends ``run``, ``stdin`` and ``cancel`` messages; the server streams ``started``,
``output``, ``input_request`` (and whatever else the sandbox streams, such as ``display``) and
exactly one ``result`` per run, with the fields of ``POST execute``'s answer. One run per socket at
a time; a socket may do several runs in a row. Closing the socket cancels its run.

The run goes through the same scheduler as ``POST execute`` (the per-user and global caps), on a
worker thread. Events cross to the event loop with ``call_soon_threadsafe``; the queue between
them holds at most ``MAX_QUEUED_BYTES``: beyond that the worker waits (the program then waits on
its own writes), so a client that stops reading holds the run back instead of filling the server's
memory; the run still ends at its time limit (the host's deadline), and a closed socket cancels it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
import time
from typing import Any, Optional

import tornado.ioloop
import tornado.web
import tornado.websocket
from jupyter_core.utils import ensure_async
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.extension.handler import ExtensionHandlerMixin

from ..grading import DataFilesError, ExerciseNotFound
from ..sandbox import DockerUnavailableError, LimitError, SandboxUnavailableError
from ..sandbox.live import LiveControl
from .errors import ApiError, BadRequestError, RateLimitedError
from .handlers import NAMESPACE, UNAVAILABLE_REASONS, ExecAPIHandler, ExecRouteBase
from .payloads import execute_reply, parse_execute, type_name

log = logging.getLogger(__name__)
security_log = logging.getLogger("jupyter_exec_ext.security")

ROUTE = f"{NAMESPACE}/execute/ws"
#: Client message types and what they may carry.
MESSAGE_TYPES = ("run", "stdin", "cancel")
RUN_FIELDS = ("type", "code", "stdin", "limits", "exercise_id")
LIMIT_FIELDS = ("time_limit", "memory_limit")
#: Events waiting for a slow client, in bytes of their JSON; beyond it the run's thread waits.
MAX_QUEUED_BYTES = 1024 * 1024
#: A run's thread waits for a slow client at most this long past its time limit.
QUEUE_GRACE_S = 10.0


class LiveRun:
    """One run of a socket: its control (stdin, cancel) and the flow control of its events."""

    def __init__(self, socket: LiveRoute, max_stdin_bytes: int) -> None:
        self.socket = socket
        self.control = LiveControl(max_stdin_bytes)
        self.loop = asyncio.get_running_loop()
        self.deadline = float("inf")  # set once it started: the time limit plus a grace
        self.dropped = False

    def on_event(self, event: dict) -> None:
        """Called on the run's thread for each event: hands it to the loop, waiting while the
        client is behind by more than MAX_QUEUED_BYTES (until it catches up, the run is cancelled
        or the socket closed, or the run's deadline passed: then the event is dropped; the result
        still has the whole output)."""
        if event.get("type") == "started":
            self.deadline = time.monotonic() + float(event.get("time_limit_s") or 0) + QUEUE_GRACE_S
        data = json.dumps(event)
        flow = self.socket.flow
        with flow:
            while (
                self.socket.queued_bytes > MAX_QUEUED_BYTES
                and not self.socket.closed
                and not self.control.cancelled
            ):
                remaining = self.deadline - time.monotonic()
                if remaining <= 0:
                    break
                flow.wait(min(remaining, 0.1))
            if self.socket.closed or self.socket.queued_bytes > MAX_QUEUED_BYTES:
                self.dropped = True
                return
            self.socket.queued_bytes += len(data)
        self.loop.call_soon_threadsafe(self.socket.enqueue, data)


class LiveRoute(ExecRouteBase, tornado.websocket.WebSocketHandler):
    """``GET execute/ws`` (WebSocket): live runs; the binding supplies the authentication
    (``check_live_access``)."""

    route = "execute/ws"

    # -- connection ------------------------------------------------------------------------------

    async def check_live_access(self) -> None:
        """Raises HTTPError(403) unless the caller may run code (the binding decides)."""
        raise tornado.web.HTTPError(403)

    def run_started(self) -> None:
        """A run of this socket was admitted (the service counts it as a request in progress)."""

    def run_ended(self) -> None:
        """That run ended (answered or refused)."""

    async def get(self, *args: Any, **kwargs: Any) -> None:
        await self.check_live_access()
        self.require_upgrade()
        await super().get(*args, **kwargs)

    def require_upgrade(self) -> None:
        """A plain GET gets a JSON 400 that says what the route is (tornado's own is a text line)."""
        headers = self.request.headers
        if (
            headers.get("Upgrade", "").lower() != "websocket"
            or "upgrade" not in headers.get("Connection", "").lower()
        ):
            raise BadRequestError(
                "execute/ws is a WebSocket: connect with a WebSocket client (Upgrade: websocket)"
            )

    @property
    def max_message_size(self) -> int:
        # Messages up to twice the request bound are read and refused with an error message;
        # larger ones close the socket (1009), before they are buffered.
        return 2 * self.bounds.max_body_bytes

    def open(self, *args: Any, **kwargs: Any) -> None:
        self.closed = False
        self.current: Optional[LiveRun] = None
        self.flow = threading.Condition()
        self.queued_bytes = 0
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.writer = asyncio.ensure_future(self._write_loop())
        # Events are small and come one after another: Nagle's algorithm would hold each behind
        # the client's delayed ACK of the one before (40 ms).
        self.set_nodelay(True)
        log.info("execute/ws opened user=%s", self.principal)
        return super().open(*args, **kwargs)

    def on_close(self) -> None:
        if getattr(self, "closed", True):
            return
        self.closed = True
        run = self.current
        if run is not None:
            log.info("execute/ws closed during a run: cancelling it (user=%s)", self.principal)
            run.control.cancel()
        with self.flow:
            self.flow.notify_all()
        self.outbox.put_nowait(None)

    # -- sending ---------------------------------------------------------------------------------

    def enqueue(self, data: str) -> None:
        """On the loop: one event's JSON for the client (counted in queued_bytes)."""
        self.outbox.put_nowait(data)

    def send(self, message: dict) -> None:
        """On the loop: a message of the server's own (error, result), never held back."""
        data = json.dumps(message)
        with self.flow:
            self.queued_bytes += len(data)
        self.outbox.put_nowait(data)

    def error(self, message: str, reason: Optional[str] = None) -> None:
        self.send({"type": "error", "message": message, **({"reason": reason} if reason else {})})

    async def _write_loop(self) -> None:
        while True:
            data = await self.outbox.get()
            if data is None:
                return
            try:
                if not self.closed:
                    await self.write_message(data)
            except tornado.websocket.WebSocketClosedError:
                self.on_close()
            finally:
                with self.flow:
                    self.queued_bytes -= len(data)
                    self.flow.notify_all()

    # -- receiving -------------------------------------------------------------------------------

    def on_message(self, message: Any) -> None:
        try:
            data = self._parse(message)
            kind = data["type"]
            if kind == "run":
                self._start_run(data)
            elif kind == "stdin":
                self._stdin(data)
            else:
                self._cancel(data)
        except (ApiError, LimitError) as e:
            self.error(f"{e}", getattr(e, "reason", None) or "bad_message")

    def _parse(self, message: Any) -> dict:
        if isinstance(message, bytes):
            raise BadRequestError("messages must be JSON text, not binary")
        size = len(message.encode("utf-8", "surrogatepass"))
        if size > self.bounds.max_body_bytes:
            security_log.warning(
                "security: user %r sent an oversized message to execute/ws", self.principal
            )
            raise BadRequestError(
                f"message of {size} bytes is over the limit of {self.bounds.max_body_bytes} bytes"
            )
        try:
            data = json.loads(message)
        except RecursionError:
            raise BadRequestError("message nests JSON too deeply") from None
        except ValueError as e:
            raise BadRequestError(f"message is not valid JSON: {e}") from None
        if not isinstance(data, dict):
            raise BadRequestError(f"message must be a JSON object, got {type_name(data)}")
        kind = data.get("type")
        if kind not in MESSAGE_TYPES:
            raise BadRequestError(
                f"unknown message type {kind!r}; known types: {', '.join(MESSAGE_TYPES)}"
            )
        return data

    def _start_run(self, data: dict) -> None:
        if self.current is not None:
            raise BadRequestError(
                "a run is already in progress on this socket; wait for its result or send cancel"
            )
        for key in data:
            if key not in RUN_FIELDS:
                raise BadRequestError(
                    f"run: unknown field {key!r}; known fields: {', '.join(RUN_FIELDS[1:])}"
                )
        limits = data.get("limits", {})
        if not isinstance(limits, dict):
            raise BadRequestError(f"run: limits must be an object, got {type_name(limits)}")
        for key in limits:
            if key not in LIMIT_FIELDS:
                raise BadRequestError(
                    f"run: unknown limit {key!r}; known limits: {', '.join(LIMIT_FIELDS)}"
                )
        exercise_id = data.get("exercise_id")
        if exercise_id is not None and not isinstance(exercise_id, str):
            raise BadRequestError(
                f"run: exercise_id must be a string, got {type_name(exercise_id)}"
            )
        body = {k: data[k] for k in ("code", "stdin") if k in data}
        payload = parse_execute({**body, **limits}, self.bounds)
        run = LiveRun(self, self.bounds.max_stdin_bytes)
        self.current = run
        # Kept: the event loop holds only a weak reference to a task.
        self.run_task = asyncio.ensure_future(self._run(run, payload, exercise_id))

    async def _run(self, run: LiveRun, payload: Any, exercise_id: Optional[str] = None) -> None:
        sandbox = self.context.sandbox  # a live run is never served from the cache
        # One user's runs may follow each other in one container (reset in between), as through
        # POST execute; never another's.
        request = dataclasses.replace(payload.request, reuse_key=self.principal)
        if exercise_id is not None:
            # A run from an exercise notebook gets the exercise's data files (read off the loop).
            try:
                exercise = await self.exercise(exercise_id)
                cap = self.data_files_cap
                files = await self.scheduler.query(lambda: exercise.read_data_files(cap))
            except ExerciseNotFound:
                self.current = None
                self.error(f"the run did not start: unknown exercise {exercise_id!r}", "not_found")
                return
            except (DataFilesError, ApiError) as e:
                self.current = None
                self.error(
                    f"the run did not start: {e}", getattr(e, "reason", None) or "data_files"
                )
                return
            request = dataclasses.replace(request, files=files)
        self.run_started()
        try:
            result = await self.scheduler.run(
                self.principal,
                lambda: sandbox.run(request, on_event=run.on_event, control=run.control),
            )
        except (ApiError, SandboxUnavailableError) as e:
            reason = (
                "rate_limited"
                if isinstance(e, RateLimitedError)
                else getattr(e, "reason", None)
                or next(
                    (word for kind, word in UNAVAILABLE_REASONS if isinstance(e, kind)), "refused"
                )
            )
            message = "Docker not available" if isinstance(e, DockerUnavailableError) else str(e)
            self.current = None
            self.error(f"the run did not start: {message}", reason)
            return
        except Exception:
            log.exception("a live run failed")
            self.current = None
            self.error(
                "internal error in the exec extension; the admin can find details in the "
                "server log",
                "internal_error",
            )
            return
        finally:
            self.run_ended()
        if self.metrics is not None:
            self.metrics.execution(result)
        reply = execute_reply(result, payload.notes)
        if run.dropped:
            reply["dropped"] = True  # events the client was too slow for; the result has them
        log.info(
            "execute/ws run user=%s status=%s duration_ms=%d",
            self.principal,
            result.status,
            result.duration_ms,
        )
        self.current = None
        self.send({"type": "result", **reply})

    def _stdin(self, data: dict) -> None:
        run = self.current
        if run is None:
            raise BadRequestError("stdin: no run is in progress on this socket")
        for key in data:
            if key not in ("type", "data", "eof"):
                raise BadRequestError(f"stdin: unknown field {key!r}; known fields: data, eof")
        if data.get("eof") is True and "data" not in data:
            run.control.send_eof()
            return
        if "eof" in data:
            raise BadRequestError("stdin: send either data (a string) or eof: true")
        text = data.get("data")
        if not isinstance(text, str):
            raise BadRequestError(f"stdin: data must be a string, got {type_name(text)}")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise BadRequestError(
                f"stdin: data is not valid Unicode text (lone surrogate at position {e.start})"
            ) from None
        try:
            run.control.send_stdin(text)
        except ValueError as e:
            raise BadRequestError(f"stdin: {e}") from None

    def _cancel(self, data: dict) -> None:
        for key in data:
            if key != "type":
                raise BadRequestError(f"cancel: unknown field {key!r}; cancel has no fields")
        run = self.current
        if run is None:
            raise BadRequestError("cancel: no run is in progress on this socket")
        run.control.cancel()


class ExecLiveHandler(WebSocketMixin, LiveRoute, ExtensionHandlerMixin, JupyterHandler):
    """The live route as the jupyter_server extension serves it: authenticated as jupyter_server's
    own kernel WebSocket is (a token in ``?token=`` or ``Authorization``, or the login cookie,
    which is how a hub-served lab connects), authorized as ``POST execute`` (``write`` on
    ``exec``), the origin checked as for every WebSocket of the server."""

    auth_resource = "exec"
    principal = ExecAPIHandler.principal

    def set_default_headers(self) -> None:
        """JupyterHandler's headers make no sense for a WebSocket (as jupyter_server's own)."""

    async def check_live_access(self) -> None:
        user = self.current_user
        if user is None:
            security_log.warning(
                "security: refused execute/ws from %s (not authenticated)", self.request.remote_ip
            )
            raise tornado.web.HTTPError(403)
        if not await ensure_async(self.authorizer.is_authorized(self, user, "write", "exec")):
            security_log.warning(
                "security: refused execute/ws for %r (not authorized)", self.user_name
            )
            raise tornado.web.HTTPError(403)


#: The live route of the jupyter_server extension (local mode).
LIVE_ROUTES: list[tuple[str, type]] = [(ROUTE, ExecLiveHandler)]


#: Results (whole output, figures) may be large; the service is trusted, the cap is a backstop.
UPSTREAM_MAX_MESSAGE_BYTES = 256 * 1024 * 1024


class RemoteLiveHandler(ExecLiveHandler):
    """``execute/ws`` in remote mode: authenticated here as in local mode, then joined to the
    executor service's socket with the user's hub token; messages pass both ways unchanged (the
    service checks them), and a closed socket on either side closes the other (which cancels)."""

    upstream: Optional[tornado.websocket.WebSocketClientConnection] = None
    upstream_error: Optional[ApiError] = None

    async def get(self, *args: Any, **kwargs: Any) -> None:
        await self.check_live_access()
        self.require_upgrade()
        remote = self.context.remote
        try:
            self.upstream = await remote.connect("execute/ws", UPSTREAM_MAX_MESSAGE_BYTES)
        except ApiError as e:
            self.upstream_error = e  # said on the socket: a browser cannot read a refused upgrade
        await tornado.websocket.WebSocketHandler.get(self, *args, **kwargs)

    def open(self, *args: Any, **kwargs: Any) -> None:
        if self.ping_interval > 0:  # pings as WebSocketMixin.open starts them, without LiveRoute's
            loop = tornado.ioloop.IOLoop.current()
            self.last_ping = self.last_pong = loop.time()
            self.ping_callback = tornado.ioloop.PeriodicCallback(self.send_ping, self.ping_interval)
            self.ping_callback.start()
        if self.upstream is None:
            error = self.upstream_error
            self.write_message(
                json.dumps(
                    {
                        "type": "error",
                        "message": f"the run cannot start: {error}",
                        "reason": getattr(error, "reason", None) or "service_unreachable",
                    }
                )
            )
            self.close(1011, "executor service unreachable")
            return
        self.set_nodelay(True)  # as LiveRoute.open, both ways
        stream = getattr(self.upstream, "stream", None)
        if stream is not None:
            stream.set_nodelay(True)
        log.info("execute/ws opened user=%s (forwarded to the executor service)", self.principal)
        self.pump = asyncio.ensure_future(self._pump())

    async def _pump(self) -> None:
        upstream = self.upstream
        while True:
            message = await upstream.read_message()
            if message is None:
                break
            try:
                await self.write_message(message, binary=isinstance(message, bytes))
            except tornado.websocket.WebSocketClosedError:
                break
        upstream.close()
        if self.ws_connection is not None:
            self.close(1011 if upstream.close_code not in (None, 1000) else 1000)

    def on_message(self, message: Any) -> None:
        if self.upstream is not None:
            self.upstream.write_message(message, binary=isinstance(message, bytes))

    def on_close(self) -> None:
        if self.upstream is not None:
            self.upstream.close()


#: The live route of remote mode.
REMOTE_LIVE_ROUTES: list[tuple[str, type]] = [(ROUTE, RemoteLiveHandler)]
