"""Runs student code in one hardened, throw-away Docker container per run.

Every call here blocks (Docker's API is HTTP over a socket); callers on an event loop run it in a
thread pool.
"""

from __future__ import annotations

import atexit
import base64
import collections
import datetime
import json
import logging
import math
import secrets
import select
import socket
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import docker
import docker.errors
import requests.exceptions
from docker.types import LogConfig, Ulimit

from .config import EXPIRES_LABEL, LABEL, OWNER_LABEL, SandboxConfig, seccomp_security_opt
from .errors import (
    DockerUnavailableError,
    ExecutorImageMissingError,
    LimitError,
    SandboxUnavailableError,
)
from .image import FLAVOUR_LABEL
from .limits import Limits
from .live import LiveControl
from .models import CheckOutcome, CheckResult, ExecutionRequest, ExecutionResult, Status
from .reuse import ReuseStore

log = logging.getLogger(__name__)

#: One frame line from the runner can never be longer than this; a longer one is a protocol error.
MAX_FRAME_BYTES = 4 * 1024 * 1024
#: The runner's own diagnostics (its stderr) kept for the log.
MAX_RUNNER_STDERR = 64 * 1024
_STREAM_STDOUT, _STREAM_STDERR = 1, 2
#: All the runner (uid 0) holds; the student's and the harness's processes drop them all.
RUNNER_CAPABILITIES = ("SETUID", "SETGID", "SETPCAP", "KILL")
_KNOWN_STATUSES = {s.value for s in Status}

#: Under gVisor (runtime ``runsc``) the engine's pids limit counts the sandbox kernel's host
#: threads, not the sandboxed processes (each of which costs several of them); reaching it kills
#: the whole sandbox with no output. There RLIMIT_NPROC, which gVisor's kernel enforces per uid
#: inside the sandbox, caps the processes at ``limits.pids`` (fork fails with EAGAIN, as under
#: runc), and the engine's limit is only a backstop this far above it.
GVISOR_HOST_PIDS_PER_PROCESS = 12
GVISOR_HOST_PIDS_BASE = 100
#: Under gVisor the container's memory also holds the sandbox kernel (its Sentry and the ptrace
#: platform's stubs): about 50 MiB before any job, so a 64 MiB limit would kill even an empty
#: program. The engine's limit there is the run's limit plus this; messages name the run's limit.
GVISOR_MEMORY_OVERHEAD_MB = 64

#: How long another instance's ended container is left for it to read its state before the
#: reaper takes it (that instance reads it within moments; this covers a slow engine).
ENDED_GRACE_S = 15.0

#: Containers whose run is over wait this long at most, and this many at most, for their removal
#: while runs are in flight: removing one costs the engine CPU that a busy moment (a class
#: submitting at once) needs for new containers. Each waits with only its idle runner (~10 MB).
MAX_LINGERING = 64
MAX_LINGER_S = 30.0

#: Sandboxes with containers waiting for removal; a process that ends without close() still
#: removes them (the teardown thread is a daemon and would not).
_WAITING_REMOVAL: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _remove_waiting_containers_at_exit() -> None:
    for sandbox in list(_WAITING_REMOVAL):
        sandbox.flush()


#: Longest prompt of an input_request frame passed on to a live run's client.
MAX_PROMPT_CHARS = 4096
#: A frame of a live run goes to this callback as a dict (``output``, ``input_request``, …).
EventCallback = Callable[[dict], None]

#: Everything that means "the engine is not there" rather than "the engine said no".
_UNREACHABLE = (requests.exceptions.ConnectionError, ConnectionError, FileNotFoundError)


@dataclass
class _Exchange:
    """What came back over the attach socket of one container."""

    stdout: list = field(default_factory=list)
    stderr: list = field(default_factory=list)
    kept: dict = field(default_factory=lambda: {"stdout": 0, "stderr": 0})
    truncated: bool = False
    result: Optional[dict] = None
    checks: dict = field(default_factory=dict)
    runner_stderr: bytearray = field(default_factory=bytearray)
    host_timeout: bool = False
    overflow: bool = False
    protocol_error: str = ""
    #: A live run the host stopped itself: the runner did not report within CANCEL_GRACE_S.
    host_cancelled: bool = False
    #: Images the program showed, ``{"mime", "data"}`` (base64), within the host's caps.
    displays: list = field(default_factory=list)
    display_bytes: int = 0
    #: After a job that asked to keep the container: "ready" or "retired" (with the reason).
    after: str = ""
    retired_reason: str = ""


class _Live:
    """A started container with its attach socket; its runner waits for (or works on) a job."""

    def __init__(
        self,
        container_id: str,
        sock: Any,
        limits: Limits,
        started: float,
        expires_at: float = math.inf,
    ):
        self.container_id = container_id
        self.sock = sock
        self.raw = getattr(sock, "_sock", sock)
        self.limits = limits
        self.started = started
        self.expires_at = expires_at  # epoch seconds of its expiry label: the reaper's deadline
        self.closed = False
        #: Jobs it served, and (between jobs of a reused container) the attach stream's unread bytes.
        self.runs = 0
        self.mux = bytearray()
        self.received = 0
        self.last_used = started
        self.reader: Optional[_FrameReader] = None  # the last job's, read on for "ready"

    def alive(self) -> bool:
        """An idle runner sends nothing: a readable socket means the container ended (EOF)."""
        if self.closed:
            return False
        try:
            readable, _, _ = select.select([self.raw], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass


def _needs_engine_state(exchange: _Exchange) -> bool:
    """Whether the run's end must be read from Docker (kill, wait, inspect) rather than the runner.

    A result frame says everything, except when the program died by SIGKILL and the runner could
    not tell whether the OOM killer did it: then ``State.OOMKilled`` decides.
    """
    frame = exchange.result
    if frame is None or exchange.host_timeout or exchange.overflow or exchange.host_cancelled:
        return True
    return frame.get("status") == Status.RUNTIME_ERROR.value and frame.get("exit_code") == -9


def _clean(exchange: _Exchange) -> bool:
    """Whether a run ended in an orderly way: the runner reported, the host never had to step in."""
    return (
        exchange.result is not None
        and not exchange.host_timeout
        and not exchange.overflow
        and not exchange.protocol_error
        and not exchange.host_cancelled
    )


_CHECK_OUTCOMES = {o.value for o in CheckOutcome}
#: Stands in the exchange for a check whose frames broke the protocol.
_ANOMALY = {
    "type": "check",
    "outcome": CheckOutcome.PROTOCOL_ERROR.value,
    "message": "the sandbox reported this test in a way that breaks its protocol",
}


class _FrameReader:
    """Parses the runner's stdout: lines ``<nonce> <json>``; anything else is ignored and logged.

    Check frames must come one per check, in order, before the result, well formed: anything else
    (a duplicate, an unknown index, one out of order or after the result, a malformed one) makes
    that check a protocol error, never a pass.

    With ``on_event`` (a live run), each output frame (as kept under the host's cap), each display
    (within the host's caps) and each input_request goes to it as it arrives, before the result;
    ``emit`` is the one way there.
    """

    def __init__(
        self,
        nonce: str,
        exchange: _Exchange,
        output_cap: int,
        checks: int = 0,
        on_event: Optional[EventCallback] = None,
        display_limit: int = 10,
        display_bytes: int = 2 * 1024 * 1024,
    ):
        self.prefix = (nonce + " ").encode("ascii")
        self.exchange = exchange
        self.on_event = on_event
        self.cap = output_cap
        self.display_limit = display_limit
        self.display_cap = display_bytes
        # One display frame carries one whole image in base64 (4/3 of its bytes).
        self.max_frame = max(MAX_FRAME_BYTES, display_bytes * 4 // 3 + 4096)
        self.pending = bytearray()
        self.stray = 0
        self.checks = checks
        self.next_check = 0

    def feed(self, data: bytes) -> None:
        self.pending += data
        while True:
            end = self.pending.find(b"\n")
            if end < 0:
                if len(self.pending) > self.max_frame:
                    self.exchange.protocol_error = "a frame from the runner exceeded the size cap"
                    self.pending.clear()
                return
            line = bytes(self.pending[:end])
            del self.pending[: end + 1]
            self._line(line)

    def _line(self, line: bytes) -> None:
        if not line.startswith(self.prefix):
            self.stray += 1
            return
        try:
            frame = json.loads(line[len(self.prefix) :])
        except ValueError:
            self.exchange.protocol_error = "the runner sent a frame that is not JSON"
            return
        if not isinstance(frame, dict):
            self.exchange.protocol_error = "the runner sent a frame that is not an object"
            return
        kind = frame.get("type")
        if (
            kind == "output"
            and frame.get("stream") in ("stdout", "stderr")
            and isinstance(frame.get("data"), str)
        ):
            self._output(frame["stream"], frame["data"])
        elif kind == "check":
            self._check(frame)
        elif kind == "input_request" and self.exchange.result is None:
            prompt = frame.get("prompt")
            self.emit(
                {
                    "type": "input_request",
                    "prompt": prompt[:MAX_PROMPT_CHARS] if isinstance(prompt, str) else "",
                }
            )
        elif kind == "display":
            self._display(frame)
        elif kind == "result" and self.exchange.result is None:
            self.exchange.result = frame
        elif (
            kind in ("ready", "retired")
            and self.exchange.result is not None
            and not self.exchange.after
        ):
            self.exchange.after = kind
            self.exchange.retired_reason = str(frame.get("reason") or "")

    def _check(self, frame: dict) -> None:
        index = frame.get("index")
        checks = self.exchange.checks
        if type(index) is not int or not 0 <= index < self.checks:
            self.exchange.protocol_error = "the runner sent a check frame for no check"
            return
        well_formed = (
            frame.get("outcome") in _CHECK_OUTCOMES
            and all(isinstance(frame.get(k, ""), str) for k in ("stdout", "stderr", "message"))
            and (frame.get("error") is None or isinstance(frame.get("error"), dict))
        )
        if (
            index != self.next_check
            or index in checks
            or self.exchange.result is not None
            or not well_formed
        ):
            log.warning(
                "check %d: frame out of protocol (expected check %d%s)",
                index,
                self.next_check,
                ", after the result" if self.exchange.result else "",
            )
            checks[index] = _ANOMALY
        else:
            checks[index] = frame
        self.next_check = max(self.next_check, index + 1)

    def _display(self, frame: dict) -> None:
        """An image the program showed. The runner checked and capped it already; the host keeps
        its own caps (count, decoded bytes) and drops what breaks them. The one place a display
        is accepted: a per-event hook (streaming) goes here."""
        mime, data = frame.get("mime"), frame.get("data")
        if mime != "image/png" or not isinstance(data, str):
            self.exchange.protocol_error = "the runner sent a malformed display frame"
            return
        size = len(data) * 3 // 4
        ex = self.exchange
        if len(ex.displays) >= self.display_limit or ex.display_bytes + size > self.display_cap:
            log.warning("display frame beyond the host's caps dropped")
            return
        ex.display_bytes += size
        ex.displays.append({"mime": mime, "data": data})
        self.emit({"type": "display", "mime": mime, "data": data})

    def _output(self, stream: str, text: str) -> None:
        # The runner caps output already; the host keeps its own cap so a broken runner cannot flood it.
        room = self.cap - self.exchange.kept[stream]
        encoded = text.encode("utf-8", "replace")
        if len(encoded) > room:
            text = encoded[: max(room, 0)].decode("utf-8", "ignore")
            encoded = text.encode("utf-8")
            self.exchange.truncated = True
        self.exchange.kept[stream] += len(encoded)
        getattr(self.exchange, stream).append(text)
        if text:
            self.emit({"type": "output", "stream": stream, "data": text})

    def emit(self, event: dict) -> None:
        """Hands one event of a live run to its callback (nothing without one). A failing
        callback (a client gone) never breaks the run."""
        if self.on_event is None or self.exchange.result is not None:
            return
        try:
            self.on_event(event)
        except Exception:  # the callback's own problem; the run and its result go on
            log.exception("a live run's event callback failed")


class DockerSandbox:
    """Runs one ``ExecutionRequest`` per fresh container and returns an ``ExecutionResult``.

    Args:
        config: settings; read from the ``DOCKER_EXECUTOR_*`` environment when omitted.
        client_factory: makes a ``docker.DockerClient``; the default talks to the local engine
            (``DOCKER_HOST`` or the Unix socket).
    """

    def __init__(
        self,
        config: Optional[SandboxConfig] = None,
        client_factory: Optional[Callable[[], docker.DockerClient]] = None,
    ):
        self.config = config or SandboxConfig.from_env()
        seccomp = seccomp_security_opt(self.config.seccomp)
        self._security_opt = ["no-new-privileges"] + ([seccomp] if seccomp else [])
        self._client_factory = client_factory or (
            lambda: docker.DockerClient.from_env(timeout=60, max_pool_size=64)
        )
        self._client: Optional[docker.DockerClient] = None
        self._lock = threading.Lock()
        self._remover: Optional[ThreadPoolExecutor] = None
        self._removals: set = set()
        # Ended runs' containers waiting for a calmer moment to be removed, and runs in flight.
        self._lingering: collections.deque = collections.deque()
        self._linger_cond = threading.Condition()
        self._in_flight = 0
        self._tearing = 0  # containers taken off _lingering whose removal is not done yet
        self._teardown: Optional[threading.Thread] = None
        self.pool: Optional[Any] = None  # a WarmPool once start_pool() ran
        self.reuse: Optional[ReuseStore] = (
            ReuseStore(
                self,
                self.config.reuse_runs,
                self.config.reuse_idle_s,
                max_total=self.config.reuse_kept,
            )
            if self.config.reuse_runs > 1 and self.config.reuse_kept > 0
            else None
        )
        self._closed = False
        #: Containers this instance created and removed (metrics read them; never reset).
        self.containers_created = 0
        self.containers_removed = 0
        self._counts_lock = threading.Lock()
        #: Containers whose removal failed (engine down or restarting): close() tries again.
        self._unremoved: set = set()

    # -- engine connection -------------------------------------------------------------------

    def _api(self) -> docker.APIClient:
        with self._lock:
            if self._client is None:
                try:
                    self._client = self._client_factory()
                except (docker.errors.DockerException, *_UNREACHABLE) as e:
                    raise DockerUnavailableError(_short(e)) from e
            return self._client.api

    def _forget_client(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except (
                Exception
            ):  # closing a broken connection may fail in many ways; it is gone either way
                pass

    def close(self) -> None:
        """Drains the warm pool, finishes pending removals, closes the connection to the engine.

        The sandbox stays usable: a later call opens a new connection; a pool is never started
        again (a start_pool() still on its way, say from a server's start-up, does nothing).
        """
        with self._lock:
            self._closed = True
            pool, self.pool = self.pool, None
        if pool is not None:
            pool.drain()
        if self.reuse is not None:
            self.reuse.drain()
        self.flush()
        self._remove_unremoved()
        self._forget_client()

    def __enter__(self) -> DockerSandbox:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def flush(self) -> None:
        """Waits until every container this sandbox handed to the background remover, or kept
        waiting for its removal, is gone."""
        while True:
            with self._linger_cond:
                if not self._lingering:
                    while self._tearing:  # the background thread's removal in progress
                        self._linger_cond.wait(timeout=1.0)
                    break
                live, _ = self._lingering.popleft()
                self._tearing += 1
            self._tear_down(live)
        with self._lock:
            remover, self._remover = self._remover, None
        if remover is not None:
            remover.shutdown(wait=True)

    def _linger(self, live: _Live) -> None:
        """Keeps an ended run's container (its runner waits for EOF) until the engine is idle,
        more than MAX_LINGERING wait, or one waited MAX_LINGER_S; then removes it."""
        _WAITING_REMOVAL.add(self)
        with self._linger_cond:
            self._lingering.append((live, time.monotonic()))
            self._linger_cond.notify_all()
            if self._teardown is None or not self._teardown.is_alive():
                self._teardown = threading.Thread(
                    target=self._tear_down_when_calm, name="sandbox-teardown", daemon=True
                )
                self._teardown.start()

    def _tear_down_when_calm(self) -> None:
        while True:
            with self._linger_cond:
                while True:
                    if not self._lingering:
                        if not self._linger_cond.wait(timeout=10.0) and not self._lingering:
                            self._teardown = None
                            return  # nothing for a while: the next _linger starts a new thread
                        continue
                    oldest = time.monotonic() - self._lingering[0][1]
                    if (
                        self._in_flight == 0
                        or len(self._lingering) > MAX_LINGERING
                        or oldest >= MAX_LINGER_S
                    ):
                        live, _ = self._lingering.popleft()
                        self._tearing += 1
                        break
                    self._linger_cond.wait(timeout=max(0.05, MAX_LINGER_S - oldest))
            self._tear_down(live)

    def _drop(self, live: _Live, later: bool = False) -> None:
        """Closes a started container's socket (EOF: its runner ends) and removes it, now or
        through the background remover. Never raises: the reaper removes what is left."""
        live.close()
        try:
            if later:
                self._remove_later(self._api(), live.container_id)
            else:
                self._remove(self._api(), live.container_id)
        except Exception as e:  # engine gone: the reaper removes it once it is back
            log.warning("could not remove container %s: %s", live.container_id[:12], _short(e))

    def _tear_down(self, live: _Live) -> None:
        """Removes a container taken off _lingering (counted in _tearing)."""
        try:
            self._drop(live)
        finally:
            with self._linger_cond:
                self._tearing -= 1
                self._linger_cond.notify_all()

    def _run_started(self) -> None:
        with self._linger_cond:
            self._in_flight += 1

    def _run_ended(self) -> None:
        with self._linger_cond:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._linger_cond.notify_all()

    def _remove_later(self, api: docker.APIClient, container_id: str) -> None:
        with self._lock:
            if self._remover is None:
                self._remover = ThreadPoolExecutor(
                    max_workers=2, thread_name_prefix="sandbox-remove"
                )
            remover = self._remover
        try:
            remover.submit(self._remove, api, container_id)
        except RuntimeError:  # shut down meanwhile by close(): remove it here and now
            self._remove(api, container_id)

    # -- warm pool -------------------------------------------------------------------------------

    def start_pool(
        self, size: int, profile: Optional[Limits] = None, max_idle_s: float = 300.0, **sizing: Any
    ) -> None:
        """Keeps ``size`` started containers for ``profile`` (default limits) waiting for jobs.

        A run whose limits fit the profile gets a pooled container, which serves that one job and
        is then destroyed; other runs start cold. 0 disables the pool. ``sizing``: WarmPool's
        ``max_size``, ``memory_budget_mb`` and ``shrink_after_s`` (it grows on misses).
        """
        from .pool import WarmPool

        with self._lock:
            if self._closed:
                return
            old, self.pool = self.pool, None
            if size > 0:
                self.pool = WarmPool(
                    self, size, profile or self.config.default_limits, max_idle_s, **sizing
                )
                self.pool.start()
        if old is not None:
            old.drain()

    def _take_warm(self, limits: Limits) -> Optional[_Live]:
        return self.pool.take(limits) if self.pool is not None else None

    def _take_spare(self, limits: Limits) -> Optional[_Live]:
        """A pooled container for a user whose own is still being reset, only if one waits now:
        rather than start a container, the run waits for the reset (milliseconds). The pool's
        miss counter (its demand) is left alone."""
        pool = self.pool
        if pool is None or not pool.profile.can_serve(limits) or not pool.status().get("idle"):
            return None
        return pool.take(limits)

    # -- running -------------------------------------------------------------------------------

    def run(
        self,
        request: ExecutionRequest,
        on_event: Optional[EventCallback] = None,
        control: Optional[LiveControl] = None,
    ) -> ExecutionResult:
        """Runs the request in a new container and removes the container on every path.

        A live run (``control`` given; never with checks) streams: ``on_event`` receives each
        event as a dict while the program runs (``started`` once the job is in a container, then
        ``output`` and ``input_request`` frames, and whatever else the runner streams); the
        program's stdin stays open for ``control.send_stdin`` until ``control.send_eof``; and
        ``control.cancel`` ends the run within a second with status ``cancelled``. The callback
        runs on this thread and must not block.

        Raises:
            DockerUnavailableError: the engine cannot be reached ("Docker not available").
            ExecutorImageMissingError: the executor image has not been built.
            SandboxUnavailableError: the sandbox is disabled or the engine refused the container.
        """
        if not self.config.enabled:
            raise SandboxUnavailableError(
                "the sandbox is disabled by the admin (DOCKER_EXECUTOR_ENABLED)"
            )
        limits, _ = request.limits.clamped(self.config.max_limits)
        files_size = sum(len(f.data) for f in request.files)
        if files_size > self.config.data_files_bytes:
            raise LimitError(
                f"the data files take {files_size} bytes, above the sandbox's cap of "
                f"{self.config.data_files_bytes} bytes (DOCKER_EXECUTOR_DATA_FILES_BYTES)"
            )
        if request.policy is not None:
            violations = request.policy.check(request.code)
            if violations:
                return ExecutionResult(
                    status=Status.POLICY_VIOLATION,
                    stderr="".join(f"{v}\n" for v in violations),
                    message=str(violations[0]),
                    limits=limits,
                    checks=[CheckResult(outcome=CheckOutcome.NOT_RUN) for _ in request.checks],
                )
        if control is not None and request.checks:
            raise ValueError("a live run cannot have checks")
        if control is not None and control.cancelled:
            return _cancelled(ExecutionResult(status=Status.CANCELLED, limits=limits))
        api = self._api()
        nonce = secrets.token_hex(16)
        # A user's plain runs share a container, one after the other. A submission may be graded
        # in its user's own container, reset since their last run (never another user's); no
        # container is kept after a grading.
        reuse_key = request.reuse_key if (self.reuse is not None and not request.checks) else None
        grade_key = (
            request.reuse_key
            if (self.reuse is not None and request.checks and self.config.grade_in_own_container)
            else None
        )
        job = {
            "nonce": nonce,
            "code": request.code,
            "stdin": request.stdin,
            "time_limit": limits.time_s,
            "output_limit": self.config.output_limit_bytes,
            "checks": [{"code": c.code, "timeout": c.timeout_s} for c in request.checks],
            "display_limit": self.config.display_limit,
            "display_bytes": self.config.display_bytes,
        }
        if control is not None:
            job["interactive"] = True
        if request.files:
            job["files"] = [
                {"name": f.name, "data": base64.b64encode(f.data).decode("ascii")}
                for f in request.files
            ]
        # Each check may also run the program again before its test (the runner allows it twice
        # the program's first run, plus a second); the runner enforces the real limits.
        budget_s = limits.time_s + sum(
            c.timeout_s + 1.0 + 2 * limits.time_s for c in request.checks
        )
        live: Optional[_Live] = None
        exchange: Optional[_Exchange] = None
        keep = settled = False
        engine_lost: Optional[BaseException] = None
        started = time.monotonic()
        self._run_started()
        try:
            if reuse_key is not None:
                assert self.reuse is not None  # a reuse key is set only with a reuse store
                live = self.reuse.take(reuse_key, limits, spare=lambda: self._take_spare(limits))
            elif grade_key is not None:
                live = self._take_own(grade_key, limits, budget_s)
            live = live or self._take_warm(limits) or self._launch(api, limits)
            keep = (
                reuse_key is not None
                and self.reuse is not None
                and self.reuse.may_keep(live, limits)
            )
            # A container that is not kept waits (its program's processes killed) for a calmer
            # moment to be removed; see MAX_LINGERING.
            job.update(keep=keep, linger=not keep)
            if on_event is not None:
                _safe_call(on_event, {"type": "started", "time_limit_s": limits.time_s})
            started = time.monotonic()
            exchange = self._converse(
                live,
                (json.dumps(job) + "\n").encode("utf-8"),
                nonce,
                started + budget_s + self.config.startup_grace_s,
                len(request.checks),
                on_event,
                control,
            )
            live.runs += 1
            if _needs_engine_state(exchange):
                if exchange.host_timeout or exchange.overflow or exchange.host_cancelled:
                    # Nothing more is read: closing the stream keeps the engine from blocking
                    # (kill, wait) on a runner whose output nobody takes (a live run's client
                    # held it back).
                    try:
                        live.raw.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    live.close()
                elif not live.closed:
                    try:
                        live.raw.shutdown(
                            socket.SHUT_WR
                        )  # EOF: the runner ends, so does the container
                    except OSError:
                        pass
                settled = True
                state = self._settle(api, live.container_id, exchange)
            else:
                state = {}
        except _UNREACHABLE as e:
            self._forget_client()
            if exchange is None:
                raise DockerUnavailableError(_short(e)) from e
            engine_lost = e  # mid-run: the program's output so far is still the student's
        except docker.errors.ImageNotFound as e:
            raise ExecutorImageMissingError(self.config.image) from e
        except docker.errors.APIError as e:
            if exchange is None or exchange.result is not None or not e.is_server_error():
                raise SandboxUnavailableError(
                    f"the Docker engine refused to run the sandbox: {e.explanation or e}"
                ) from e
            engine_lost = e  # e.g. "daemon is shutting down" while the run was going on
        finally:
            if control is not None:
                control.detach()
            orderly = exchange is not None and _clean(exchange) and not settled
            if live is not None:
                if orderly and keep and not live.closed:
                    # It waits for the runner's word that the container is as new, off this path.
                    assert (
                        self.reuse is not None and reuse_key is not None and exchange is not None
                    )  # keep
                    self.reuse.recycle(live, reuse_key, exchange)
                elif orderly and not live.closed:
                    self._linger(live)
                else:
                    live.close()
                    # The answer is complete; removing the container need not delay it.
                    self._remove_later(api, live.container_id)
            self._run_ended()
        elapsed_ms = int((time.monotonic() - started) * 1000)
        if engine_lost is not None:
            return self._engine_lost(exchange, engine_lost, limits, elapsed_ms, len(request.checks))
        result = self._interpret(exchange, state, limits, elapsed_ms, bool(request.checks))
        result.checks = [_check_result(exchange.checks.get(i)) for i in range(len(request.checks))]
        if result.status is Status.CANCELLED and (control is None or not control.cancelled):
            # Only the host cancels; a runner that says so unasked is broken.
            log.error("the runner reported a cancelled run that nobody cancelled")
            result.status = Status.INTERNAL_ERROR
            result.message = (
                "the sandbox runner failed; the admin can find details in the server log"
            )
        elif exchange.host_cancelled or (
            control is not None
            and control.cancelled
            and result.status in (Status.TIMEOUT, Status.INTERNAL_ERROR)
        ):
            # The runner did not answer the cancel in time (or the host's kill came first).
            result.status = Status.CANCELLED
            result.duration_ms = elapsed_ms
            _cancelled(result)
        return result

    def _take_own(self, key: str, limits: Limits, budget_s: float) -> Optional[_Live]:
        """``key``'s own reset container for a grading of ``budget_s`` at most, or None: it must
        stay well before its expiry label (the reaper's deadline) for the whole grading."""
        assert self.reuse is not None  # a grade key is set only with a reuse store
        live = self.reuse.take(key, limits)
        if (
            live is not None
            and time.time() + budget_s + self.config.startup_grace_s + 60 >= live.expires_at
        ):
            self.reuse.retire(live, "too close to its expiry for a grading")
            return None
        return live

    def _launch(self, api: docker.APIClient, limits: Limits, idle_s: float = 0.0) -> _Live:
        """Creates, attaches to and starts one hardened container; its runner then waits for a job."""
        container_id, expires_at = self._create(api, limits, idle_s)
        try:
            sock = api.attach_socket(
                container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
            )
        except BaseException:
            self._remove(api, container_id)
            raise
        live = _Live(container_id, sock, limits, time.monotonic(), expires_at)
        try:
            api.start(container_id)
        except BaseException:
            live.close()
            self._remove(api, container_id)
            raise
        return live

    def _create(
        self, api: docker.APIClient, limits: Limits, idle_s: float = 0.0
    ) -> tuple[str, float]:
        """Creates (does not start) one hardened container; returns its id and expiry (epoch s)."""
        cfg = self.config
        cpu_seconds = int(math.ceil(limits.time_s)) + 1
        tmpfs_bytes = cfg.tmpfs_mb * 1024 * 1024
        ulimits = [
            Ulimit(name="cpu", soft=cpu_seconds, hard=cpu_seconds + 1),
            Ulimit(name="nofile", soft=limits.nofile, hard=limits.nofile),
            Ulimit(name="fsize", soft=tmpfs_bytes, hard=tmpfs_bytes),
            Ulimit(name="core", soft=0, hard=0),
        ]
        pids_limit = limits.pids
        memory_mb = limits.memory_mb
        if cfg.runtime == "runsc":
            memory_mb += GVISOR_MEMORY_OVERHEAD_MB
            # See GVISOR_HOST_PIDS_PER_PROCESS. Under runc RLIMIT_NPROC would count uid 10001's
            # processes in every container on the host together, so there the engine's limit rules.
            ulimits.append(Ulimit(name="nproc", soft=limits.pids, hard=limits.pids))
            pids_limit = limits.pids * GVISOR_HOST_PIDS_PER_PROCESS + GVISOR_HOST_PIDS_BASE
        host_config = api.create_host_config(
            network_mode=cfg.network,
            read_only=True,
            tmpfs={"/tmp": f"rw,noexec,nosuid,nodev,size={cfg.tmpfs_mb}m,mode=1777"},
            # The runner starts as root with just enough to hand out two identities (the code's
            # and the tests') and to stop the code's processes; both give up every capability.
            cap_drop=["ALL"],
            cap_add=list(RUNNER_CAPABILITIES),
            # Our seccomp profile denies what student Python never needs (ptrace, io_uring, bpf,
            # keyrings, mounts, namespaces …); see docs/internals.md, "Seccomp".
            security_opt=list(self._security_opt),
            pids_limit=pids_limit,
            mem_limit=f"{memory_mb}m",
            memswap_limit=f"{memory_mb}m",
            nano_cpus=int(limits.cpus * 1_000_000_000),
            ulimits=ulimits,
            ipc_mode="private",
            init=True,
            runtime=cfg.runtime,
            log_config=LogConfig(type=LogConfig.types.NONE),
            privileged=False,
        )
        # Generous: checks add their own timeouts to a run, and a pooled container may idle first.
        expires = int(time.time() + idle_s + 2 * limits.time_s + cfg.startup_grace_s + 600)
        config = api.create_container_config(
            image=cfg.image,
            command=None,  # type: ignore[arg-type]  # docker-py takes None for the image's own command
            user="0:0",
            environment={"EXEC_STUDENT_ID": cfg.user, "EXEC_HARNESS_ID": cfg.harness_user},
            stdin_open=True,
            network_disabled=cfg.network == "none",
            hostname="sandbox",
            working_dir="/tmp",
            labels={LABEL: "true", EXPIRES_LABEL: str(expires), OWNER_LABEL: cfg.owner},
            host_config=host_config,
        )
        # The engine closes the runner's stdin when our attach connection goes, even if this
        # process dies without a word (SIGKILL): the runner sees EOF once its run is over and
        # ends, so a crashed server leaves stopped containers for the reaper, never running ones.
        config["StdinOnce"] = True
        created = api.create_container_from_config(config, None)
        with self._counts_lock:
            self.containers_created += 1
        return created["Id"], float(expires)

    def _converse(
        self,
        live: _Live,
        job: bytes,
        nonce: str,
        deadline: float,
        checks: int = 0,
        on_event: Optional[EventCallback] = None,
        control: Optional[LiveControl] = None,
    ) -> _Exchange:
        """Sends the job to a started container and reads frames until the runner's result or the
        host deadline. Output received before a kill is kept. The attach socket stays open: the
        runner ends (or serves the next job) once the caller says so."""
        exchange = _Exchange()
        reader = _FrameReader(
            nonce,
            exchange,
            self.config.output_limit_bytes,
            checks,
            on_event,
            self.config.display_limit,
            self.config.display_bytes,
        )
        raw = live.raw
        live.received = 0
        raw.settimeout(max(0.5, deadline - time.monotonic()))
        try:
            raw.sendall(job)
        except socket.timeout:
            exchange.host_timeout = True
            return exchange
        except OSError:
            pass  # the container already ended; what it said is still readable
        if control is not None:
            control.attach(raw.sendall)
        try:
            self._read_frames(live, reader, deadline, lambda: exchange.result is not None, control)
        finally:
            if control is not None:
                control.detach()
        live.reader = reader
        return exchange

    def _read_frames(
        self,
        live: _Live,
        reader: _FrameReader,
        deadline: float,
        done: Callable[[], bool],
        control: Optional[LiveControl] = None,
    ) -> None:
        """Demultiplexes the attach stream into ``reader`` until ``done()``, EOF or the deadline
        (a live run's: until CANCEL_GRACE_S after a cancel that the runner did not answer)."""
        exchange = reader.exchange
        # JSON escaping can grow output six-fold; anything beyond this is not an honest runner.
        budget = (
            2 * self.config.output_limit_bytes * 6
            + MAX_FRAME_BYTES
            + 2 * self.config.display_bytes
            + 64 * self.config.display_limit
        )
        raw, pending = live.raw, live.mux
        while True:
            # Complete frames already received first: one chunk may hold the result and more.
            while len(pending) >= 8 and not done():
                size = int.from_bytes(pending[4:8], "big")
                if len(pending) < 8 + size:
                    break
                stream, payload = pending[0], bytes(pending[8 : 8 + size])
                del pending[: 8 + size]
                if stream == _STREAM_STDOUT:
                    reader.feed(payload)
                elif stream == _STREAM_STDERR:
                    room = MAX_RUNNER_STDERR - len(exchange.runner_stderr)
                    exchange.runner_stderr += payload[: max(room, 0)]
            if done():
                break  # the frame awaited: no need to wait for more (or for the container to exit)
            now = time.monotonic()
            if (
                control is not None
                and control.cancel_deadline is not None
                and now >= control.cancel_deadline
            ):
                exchange.host_cancelled = True
                break
            remaining = deadline - now
            if remaining <= 0:
                exchange.host_timeout = True
                break
            if control is not None:
                remaining = min(remaining, 0.1)  # looks at a cancel's deadline this often
            raw.settimeout(remaining)
            try:
                chunk = raw.recv(65536)
            except socket.timeout:
                if control is not None and time.monotonic() < deadline:
                    continue
                exchange.host_timeout = True
                break
            except OSError:  # reset: the engine died rather than closed the stream; the same as EOF
                break
            if not chunk:
                break
            live.received += len(chunk)
            if live.received > budget:
                exchange.overflow = True
                break
            pending += chunk
        if reader.stray:
            log.warning(
                "container %s wrote %d unframed line(s) on the result channel",
                live.container_id[:12],
                reader.stray,
            )
            reader.stray = 0

    def _settle(self, api: docker.APIClient, container_id: str, exchange: _Exchange) -> dict:
        """Stops the container if the host gave up on it, waits for it to end, returns its State."""
        stopping = exchange.host_timeout or exchange.overflow or exchange.host_cancelled
        if stopping:
            try:
                api.kill(container_id)
            except docker.errors.APIError:
                pass  # it ended on its own meanwhile (or the engine is slow to see it go)
        try:
            api.wait(container_id, timeout=15)
        except requests.exceptions.ReadTimeout:
            try:
                api.kill(container_id)
                api.wait(container_id, timeout=15)
            except (docker.errors.APIError, requests.exceptions.ReadTimeout):
                if not stopping:
                    raise
                return {}  # the host gave up on the run already: its answer does not need the state
        try:
            return api.inspect_container(container_id)["State"]
        except docker.errors.NotFound:
            return {}  # removed meanwhile (a reaper's grace is long past): its state is unknown

    def _remove(self, api: docker.APIClient, container_id: str) -> None:
        try:
            api.remove_container(container_id, force=True, v=True)
        except docker.errors.NotFound:
            with self._counts_lock:
                self._unremoved.discard(container_id)
        except (
            Exception
        ) as e:  # retried by close() and the reaper; the run's answer must not be lost
            log.warning("could not remove container %s: %s", container_id[:12], _short(e))
            with self._counts_lock:
                self._unremoved.add(container_id)
        else:
            with self._counts_lock:
                self.containers_removed += 1
                self._unremoved.discard(container_id)

    def _remove_unremoved(self) -> None:
        """Tries again to remove the containers whose removal failed (say, the engine was down
        or restarting then). Never raises: what is still left is the reaper's."""
        with self._counts_lock:
            left = list(self._unremoved)
        if not left:
            return
        try:
            api = self._api()
        except DockerUnavailableError as e:
            log.warning(
                "%d container(s) could not be removed, the engine is unreachable (%s); "
                "the reaper removes them later",
                len(left),
                e,
            )
            return
        for container_id in left:
            self._remove(api, container_id)

    def _engine_lost(
        self, ex: _Exchange, error: BaseException, limits: Limits, elapsed_ms: int, checks: int
    ) -> ExecutionResult:
        """The answer to a run the engine went away under: an internal error that says so, with
        what the program printed before. Its container is removed once the engine is back."""
        log.error("the Docker engine went away during a run: %s", _short(error))
        result = self._interpret(ex, {}, limits, elapsed_ms, checks > 0)
        result.status = Status.INTERNAL_ERROR
        result.exit_code = None
        result.duration_ms = elapsed_ms
        result.message = (
            "the Docker engine stopped or restarted during the run, so it was cut "
            "short; the output printed until then is shown; run it again"
        )
        result.checks = [_check_result(ex.checks.get(i)) for i in range(checks)]
        return result

    def _interpret(
        self, ex: _Exchange, state: dict, limits: Limits, elapsed_ms: int, has_checks: bool = False
    ) -> ExecutionResult:
        frame = ex.result or {}
        duration, message = frame.get("duration_ms"), frame.get("message")
        result = ExecutionResult(
            status=Status.INTERNAL_ERROR,
            stdout="".join(ex.stdout),
            stderr="".join(ex.stderr),
            exit_code=frame.get("exit_code") if isinstance(frame.get("exit_code"), int) else None,
            duration_ms=duration if isinstance(duration, int) else elapsed_ms,
            truncated=ex.truncated or frame.get("truncated") is True,
            message=message if isinstance(message, str) else "",
            limits=limits,
            displays=list(ex.displays),
        )
        reported = frame.get("status") if frame.get("status") in _KNOWN_STATUSES else None
        if state.get("OOMKilled") and reported != Status.OK.value:
            result.status = Status.MEMORY_LIMIT
            result.message = (
                f"memory limit of {limits.memory_mb} MiB exceeded; the program was stopped"
            )
        elif ex.overflow:
            result.status = Status.OUTPUT_LIMIT
            result.truncated = True
            result.message = "output limit exceeded; the rest was cut"
        elif reported is not None:
            result.status = Status(reported)
            if result.status is Status.MEMORY_LIMIT:
                result.message = (
                    f"memory limit of {limits.memory_mb} MiB exceeded; the program was stopped"
                )
        elif ex.host_cancelled:
            result.status = Status.CANCELLED
            result.duration_ms = elapsed_ms
            result.message = "the run was stopped"
        elif ex.host_timeout:
            result.status = Status.TIMEOUT
            result.duration_ms = elapsed_ms
            result.message = f"time limit of {limits.time_s:g} s exceeded; the sandbox was stopped"
        elif ex.protocol_error or ex.runner_stderr:
            result.message = (
                "the sandbox runner failed; the admin can find details in the server log"
            )
            log.error(
                "runner failure: %s; runner stderr: %s",
                ex.protocol_error or "no result frame",
                ex.runner_stderr.decode("utf-8", "replace")[-4000:],
            )
        else:
            # The runner vanished without a word. The program cannot do that (the runner runs as
            # another uid), so something outside it did: the sandbox failed, not the program.
            result.exit_code = state.get("ExitCode")
            result.message = (
                "the sandbox runner ended before it reported; the admin can find "
                "details in the server log"
            )
            log.error(
                "runner of a run ended without a result (container exit code %s)",
                state.get("ExitCode"),
            )
        # With checks, an out-of-memory check is that check's outcome, not the program's.
        if result.status is Status.OK and state.get("OOMKilled") and not has_checks:
            result.message = "a process of the program was stopped at the memory limit"
        return result

    # -- engine state ----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Engine reachable, its version, the executor image and its id. Never raises."""
        info: dict[str, Any] = {
            "enabled": self.config.enabled,
            "reachable": False,
            "engine_version": None,
            "api_version": None,
            "image": self.config.image,
            "image_present": False,
            "image_id": None,
            "image_flavour": None,
            "runtime": self.config.runtime,
            "pool": self.pool.status() if self.pool is not None else None,
            "reuse": self.reuse.status() if self.reuse is not None else None,
            "error": None,
        }
        try:
            api = self._api()
            version = api.version()
            info.update(
                reachable=True,
                engine_version=version.get("Version"),
                api_version=version.get("ApiVersion"),
            )
            try:
                image = api.inspect_image(self.config.image)
                info["image_id"] = image["Id"]
                info["image_present"] = True
                # science (numpy, pandas, matplotlib) or stdlib; None for an image built elsewhere
                info["image_flavour"] = ((image.get("Config") or {}).get("Labels") or {}).get(
                    FLAVOUR_LABEL
                )
            except docker.errors.ImageNotFound:
                info["error"] = str(ExecutorImageMissingError(self.config.image))
        except DockerUnavailableError as e:
            info["error"] = str(e)
        except _UNREACHABLE as e:
            self._forget_client()
            info["error"] = str(DockerUnavailableError(_short(e)))
        except docker.errors.APIError as e:
            info["error"] = f"the Docker engine answered with an error: {e.explanation or e}"
        return info

    def reap(self, *, everything: bool = False, ended_grace_s: float = ENDED_GRACE_S) -> list[str]:
        """Removes our abandoned containers. Returns the ids removed.

        Removed: any past its expiry label; this instance's ended ones; another instance's that
        ended more than ``ended_grace_s`` ago. A crashed instance's containers end by themselves
        once their run is over (see ``StdinOnce`` in ``_create``), so the next sweep after that
        takes them. Left alone: runs in progress, and another instance's just-ended containers,
        whose state it may still be reading. With ``everything``, all of our containers go.

        Raises:
            DockerUnavailableError: the engine cannot be reached.
        """
        api = self._api()
        now = time.time()
        removed = []
        try:
            containers = api.containers(all=True, filters={"label": LABEL})
        except _UNREACHABLE as e:
            self._forget_client()
            raise DockerUnavailableError(_short(e)) from e
        for c in containers:
            labels = c.get("Labels") or {}
            try:
                expires = float(labels.get(EXPIRES_LABEL, 0))
            except ValueError:
                expires = 0.0
            mine = labels.get(OWNER_LABEL, "") == self.config.owner
            ended = c.get("State") in ("exited", "dead")
            if (
                everything
                or expires < now
                or (mine and ended)
                or (ended and not mine and self._ended_before(api, c["Id"], now - ended_grace_s))
            ):
                self._remove(api, c["Id"])
                removed.append(c["Id"])
        if removed:
            log.info("reaper removed %d abandoned sandbox container(s)", len(removed))
        return removed

    def _ended_before(self, api: docker.APIClient, container_id: str, moment: float) -> bool:
        try:
            finished = api.inspect_container(container_id)["State"].get("FinishedAt") or ""
        except docker.errors.NotFound:
            return False
        return _epoch(finished) < moment


def _epoch(stamp: str) -> float:
    """The engine's RFC 3339 time (nanoseconds, ``Z``) as epoch seconds; unreadable ones as now."""
    try:
        head, _, fraction = stamp.rstrip("Z").partition(".")
        moment = datetime.datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(
            tzinfo=datetime.timezone.utc
        )
        return moment.timestamp() + (float("0." + fraction[:6]) if fraction[:6].isdigit() else 0.0)
    except ValueError:
        return time.time()


def _cancelled(result: ExecutionResult) -> ExecutionResult:
    result.message = "the run was stopped"
    return result


def _safe_call(callback: EventCallback, event: dict) -> None:
    try:
        callback(event)
    except Exception:  # the callback's own problem; the run goes on
        log.exception("a live run's event callback failed")


def _check_result(frame: Optional[dict]) -> CheckResult:
    """A check frame from the runner, validated; a missing one means the check never ran."""
    if not frame:
        return CheckResult(outcome=CheckOutcome.NOT_RUN)
    try:
        outcome = CheckOutcome(frame.get("outcome"))
    except ValueError:
        return CheckResult(outcome=CheckOutcome.PROTOCOL_ERROR)
    error = frame.get("error") if isinstance(frame.get("error"), dict) else None
    if error is not None:
        error = {
            "type": str(error.get("type") or "Exception"),
            "message": str(error.get("message") or ""),
            "traceback": str(error.get("traceback") or ""),
            "assertion": error.get("assertion") is True,
        }

    def text(key: str) -> str:
        value = frame.get(key)
        return value if isinstance(value, str) else ""

    duration = frame.get("duration_ms")
    return CheckResult(
        outcome=outcome,
        stdout=text("stdout"),
        stderr=text("stderr"),
        error=error,
        duration_ms=duration if isinstance(duration, int) else 0,
        message=text("message")[:2000],
    )


def _short(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text if len(text) <= 300 else text[:300] + "…"
