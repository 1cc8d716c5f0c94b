"""The wire protocol between the host and the runner in a container, without Docker.

The runner (``executor_image/runner.py``) answers a job line with frames on its stdout, each a
line ``<nonce> <json>``; the engine's attach stream multiplexes that stdout with the runner's
stderr in 8-byte-headed chunks. Here: the exchange of one job (what came back), the frame reader
that validates each frame, the read loop over an attach socket (any object with ``raw``, ``mux``,
``received`` and ``container_id``: see ``Channel``), and the interpretation of an exchange as an
``ExecutionResult``. Nothing here imports Docker, so all of it is tested with socket pairs.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol

from .limits import Limits
from .live import LiveControl
from .models import CheckOutcome, CheckResult, ExecutionResult, Status

log = logging.getLogger(__name__)

#: One frame line from the runner can never be longer than this; a longer one is a protocol error.
MAX_FRAME_BYTES = 4 * 1024 * 1024
#: The runner's own diagnostics (its stderr) kept for the log.
MAX_RUNNER_STDERR = 64 * 1024
#: Stream numbers in the header of the engine's multiplexed attach stream.
STREAM_STDOUT, STREAM_STDERR = 1, 2
_KNOWN_STATUSES = {s.value for s in Status}
#: Longest prompt of an input_request frame passed on to a live run's client.
MAX_PROMPT_CHARS = 4096
#: A frame of a live run goes to this callback as a dict (``output``, ``input_request``, …).
EventCallback = Callable[[dict], None]
#: What the runner failing looks like to a student; the details go to the server log.
RUNNER_FAILED = "the sandbox runner failed; the admin can find details in the server log"


@dataclass
class Exchange:
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


class Channel(Protocol):
    """The attach stream of one started container, as the read loop needs it."""

    container_id: str
    #: The connected socket (stdin to the runner; its stdout and stderr, multiplexed, back).
    raw: Any
    #: Bytes received and not yet demultiplexed (kept between the jobs of a reused container).
    mux: bytearray
    #: Bytes received for the current job (its budget counts them).
    received: int
    #: The last job's frame reader, read on after the result for "ready".
    reader: Optional[FrameReader]


def needs_engine_state(exchange: Exchange) -> bool:
    """Whether the run's end must be read from Docker (kill, wait, inspect) rather than the runner.

    A result frame says everything, except when the program died by SIGKILL and the runner could
    not tell whether the OOM killer did it: then ``State.OOMKilled`` decides.
    """
    frame = exchange.result
    if frame is None or exchange.host_timeout or exchange.overflow or exchange.host_cancelled:
        return True
    return frame.get("status") == Status.RUNTIME_ERROR.value and frame.get("exit_code") == -9


def ended_cleanly(exchange: Exchange) -> bool:
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


class FrameReader:
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
        exchange: Exchange,
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
        # JSON escaping can grow output six-fold; anything beyond this is not an honest runner.
        self.budget = 2 * output_cap * 6 + MAX_FRAME_BYTES + 2 * display_bytes + 64 * display_limit

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


def read_frames(
    live: Channel,
    reader: FrameReader,
    deadline: float,
    done: Callable[[], bool],
    control: Optional[LiveControl] = None,
) -> None:
    """Demultiplexes the attach stream into ``reader`` until ``done()``, EOF or the deadline
    (a live run's: until CANCEL_GRACE_S after a cancel that the runner did not answer).

    Sets ``host_timeout`` (deadline), ``overflow`` (more bytes than ``reader.budget``) or
    ``host_cancelled`` on the reader's exchange; EOF and a reset end it quietly (the result frame
    then decides). Bytes past the awaited frame stay in ``live.mux`` for the next read.
    """
    exchange = reader.exchange
    budget = reader.budget
    raw, pending = live.raw, live.mux
    while True:
        # Complete frames already received first: one chunk may hold the result and more.
        while len(pending) >= 8 and not done():
            size = int.from_bytes(pending[4:8], "big")
            if len(pending) < 8 + size:
                break
            stream, payload = pending[0], bytes(pending[8 : 8 + size])
            del pending[: 8 + size]
            if stream == STREAM_STDOUT:
                reader.feed(payload)
            elif stream == STREAM_STDERR:
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


def converse(
    live: Channel,
    job: bytes,
    reader: FrameReader,
    deadline: float,
    control: Optional[LiveControl] = None,
) -> Exchange:
    """Sends the job line to a started container's runner and reads frames until its result or
    the host deadline. Output received before a kill is kept. The socket stays open: the runner
    ends (or serves the next job) once the caller says so."""
    exchange = reader.exchange
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
        read_frames(live, reader, deadline, lambda: exchange.result is not None, control)
    finally:
        if control is not None:
            control.detach()
    live.reader = reader
    return exchange


def _outcome(
    ex: Exchange, state: dict, limits: Limits, elapsed_ms: int, has_checks: bool
) -> ExecutionResult:
    """The run's own result (not its checks'), from the runner's result frame, what the host did
    and the container's end ``state`` (Docker's ``State``; empty when it was not needed)."""
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
        result.message = f"memory limit of {limits.memory_mb} MiB exceeded; the program was stopped"
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
        result.message = RUNNER_FAILED
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


def interpret(
    ex: Exchange,
    state: dict,
    limits: Limits,
    elapsed_ms: int,
    checks: int = 0,
    control: Optional[LiveControl] = None,
) -> ExecutionResult:
    """The ``ExecutionResult`` of one exchange: the run's outcome and one ``CheckResult`` per check
    (``not_run`` for a check with no frame). ``state`` is the container's end state from the
    engine (``OOMKilled``, ``ExitCode``), needed only when ``needs_engine_state``; ``control`` is
    the live run's, if any: only the host cancels, so a runner that reports ``cancelled`` unasked
    is broken, and a cancel the runner did not answer in time still ends as ``cancelled``."""
    result = _outcome(ex, state, limits, elapsed_ms, checks > 0)
    result.checks = [check_result(ex.checks.get(i)) for i in range(checks)]
    if result.status is Status.CANCELLED and (control is None or not control.cancelled):
        log.error("the runner reported a cancelled run that nobody cancelled")
        result.status = Status.INTERNAL_ERROR
        result.message = RUNNER_FAILED
    elif ex.host_cancelled or (
        control is not None
        and control.cancelled
        and result.status in (Status.TIMEOUT, Status.INTERNAL_ERROR)
    ):
        # The runner did not answer the cancel in time (or the host's kill came first).
        result.status = Status.CANCELLED
        result.duration_ms = elapsed_ms
        result.message = "the run was stopped"
    return result


def engine_lost(ex: Exchange, limits: Limits, elapsed_ms: int, checks: int = 0) -> ExecutionResult:
    """The answer to a run the engine went away under: an internal error that says so, with what
    the program printed before, and each check as far as it got."""
    result = _outcome(ex, {}, limits, elapsed_ms, checks > 0)
    result.status = Status.INTERNAL_ERROR
    result.exit_code = None
    result.duration_ms = elapsed_ms
    result.message = (
        "the Docker engine stopped or restarted during the run, so it was cut "
        "short; the output printed until then is shown; run it again"
    )
    result.checks = [check_result(ex.checks.get(i)) for i in range(checks)]
    return result


def check_result(frame: Optional[dict]) -> CheckResult:
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
