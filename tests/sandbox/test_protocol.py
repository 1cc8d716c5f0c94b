"""The sandbox's wire protocol without Docker: the read loop over a real socket pair standing in for
the engine's attach stream, the conversation of one job, and the interpretation of what came back
as a result. The frame reader's own rules are in test_frames.py and test_display_frames.py."""

from __future__ import annotations

import json
import logging
import socket
import struct
import threading
import time
from typing import Any, Optional

import pytest

from jupyter_exec_ext.sandbox.limits import Limits
from jupyter_exec_ext.sandbox.live import CANCEL_GRACE_S, LiveControl
from jupyter_exec_ext.sandbox.models import CheckOutcome, CheckResult, Status
from jupyter_exec_ext.sandbox.protocol import (
    MAX_FRAME_BYTES,
    MAX_RUNNER_STDERR,
    RUNNER_FAILED,
    STREAM_STDERR,
    STREAM_STDOUT,
    Exchange,
    FrameReader,
    check_result,
    converse,
    ended_cleanly,
    engine_lost,
    interpret,
    needs_engine_state,
    read_frames,
)

NONCE = "c0ffee" * 5 + "00"
CONTAINER = "0123456789abcdef0123456789abcdef"


class Channel:
    """An attach stream as the read loop sees it: here one end of a socket pair."""

    def __init__(self, raw: Any):
        self.container_id = CONTAINER
        self.raw = raw
        self.mux = bytearray()
        self.received = 0
        self.reader: Optional[FrameReader] = None


@pytest.fixture
def pair():
    """(our channel, the runner's end of the socket)."""
    ours, theirs = socket.socketpair()
    yield Channel(ours), theirs
    ours.close()
    theirs.close()


def muxed(stream: int, payload: bytes) -> bytes:
    """One chunk of the engine's multiplexed attach stream: stream byte, three zeros, size."""
    return struct.pack(">BxxxL", stream, len(payload)) + payload


def line(obj: dict, nonce: str = NONCE) -> bytes:
    return f"{nonce} {json.dumps(obj)}\n".encode()


def out(text: str, stream: str = "stdout") -> bytes:
    return muxed(STREAM_STDOUT, line({"type": "output", "stream": stream, "data": text}))


RESULT = {
    "type": "result",
    "status": "ok",
    "exit_code": 0,
    "duration_ms": 7,
    "truncated": False,
    "message": "",
}


def reader_for(exchange: Optional[Exchange] = None, **kw: Any) -> FrameReader:
    return FrameReader(NONCE, exchange or Exchange(), 1 << 16, **kw)


def has_result(reader: FrameReader):
    return lambda: reader.exchange.result is not None


def later(delay: float, action) -> threading.Thread:
    """Runs ``action`` on a thread after ``delay`` seconds (the runner writing while we read)."""

    def run():
        time.sleep(delay)
        action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


# -- read_frames ---------------------------------------------------------------------------------


def test_stdout_chunks_go_to_the_frame_reader_and_stderr_chunks_to_the_runner_log(pair):
    live, peer = pair
    reader = reader_for()
    peer.sendall(
        out("hello ")
        + muxed(STREAM_STDERR, b"runner: warming up\n")
        + out("oops", "stderr")
        + muxed(3, b"a stream the engine never sends\n")
        + muxed(STREAM_STDERR, b"runner: done\n")
        + out("world")
        + muxed(STREAM_STDOUT, line(RESULT))
    )
    read_frames(live, reader, time.monotonic() + 5, has_result(reader))
    ex = reader.exchange
    assert ex.stdout == ["hello ", "world"] and ex.stderr == ["oops"]
    assert bytes(ex.runner_stderr) == b"runner: warming up\nrunner: done\n"
    assert ex.result == RESULT
    assert not (ex.host_timeout or ex.overflow or ex.host_cancelled or ex.protocol_error)
    assert live.mux == bytearray()


def test_the_runners_stderr_is_kept_up_to_its_cap_and_no_further(pair):
    live, peer = pair
    reader = reader_for()
    first = b"a" * (MAX_RUNNER_STDERR - 10)
    peer.sendall(
        muxed(STREAM_STDERR, first)
        + muxed(STREAM_STDERR, b"b" * 30)  # 10 of these fit
        + muxed(STREAM_STDERR, b"c" * 5)  # none of these
        + muxed(STREAM_STDOUT, line(RESULT))
    )
    read_frames(live, reader, time.monotonic() + 5, has_result(reader))
    assert bytes(reader.exchange.runner_stderr) == first + b"b" * 10
    assert reader.exchange.result == RESULT


def test_a_chunk_split_across_reads_is_put_together(pair):
    live, peer = pair
    reader = reader_for()
    whole = out("split in three") + muxed(STREAM_STDOUT, line(RESULT))
    sizes = []

    class Recording:
        """The real socket; remembers what each recv returned."""

        def settimeout(self, value):
            live_socket.settimeout(value)

        def recv(self, n):
            data = live_socket.recv(n)
            sizes.append(len(data))
            return data

    live_socket, live.raw = live.raw, Recording()
    peer.sendall(whole[:3])  # part of the header
    later(0.05, lambda: peer.sendall(whole[3:20]))  # the rest of it and part of the frame
    later(0.15, lambda: peer.sendall(whole[20:]))
    read_frames(live, reader, time.monotonic() + 5, has_result(reader))
    assert reader.exchange.stdout == ["split in three"] and reader.exchange.result == RESULT
    assert len(sizes) >= 3 and sum(sizes) == len(whole) == live.received


def test_frames_sent_before_the_read_starts_are_read_from_mux_first(pair):
    live, peer = pair
    reader = reader_for()
    live.mux += out("kept from last time") + muxed(STREAM_STDOUT, line(RESULT))
    read_frames(live, reader, time.monotonic() + 5, has_result(reader))
    assert reader.exchange.stdout == ["kept from last time"] and live.received == 0


def test_an_empty_chunk_is_a_chunk(pair):
    live, peer = pair
    reader = reader_for()
    peer.sendall(muxed(STREAM_STDOUT, b"") + out("after it") + muxed(STREAM_STDERR, b""))
    peer.shutdown(socket.SHUT_WR)
    read_frames(live, reader, time.monotonic() + 5, has_result(reader))
    assert reader.exchange.stdout == ["after it"] and reader.exchange.runner_stderr == b""
    assert live.mux == bytearray()  # the last, empty chunk was taken too


def test_a_chunk_of_more_than_16_mib_is_read_whole(pair):
    live, peer = pair
    reader = reader_for()
    reader.budget = 64 << 20
    piece = line({"type": "output", "stream": "stdout", "data": "y" * 60000})
    payload = piece * ((16 << 20) // len(piece) + 2)  # its size needs all four bytes
    assert len(payload) >= 1 << 24
    later(
        0, lambda: peer.sendall(muxed(STREAM_STDOUT, payload) + muxed(STREAM_STDOUT, line(RESULT)))
    )
    read_frames(live, reader, time.monotonic() + 20, has_result(reader))
    ex = reader.exchange
    assert ex.result == RESULT and not ex.protocol_error and ex.kept["stdout"] == 1 << 16


def test_bytes_past_the_awaited_frame_wait_in_mux_for_the_next_read(pair):
    live, peer = pair
    reader = reader_for()
    ready = muxed(STREAM_STDOUT, line({"type": "ready"}))
    peer.sendall(out("x") + muxed(STREAM_STDOUT, line(RESULT)) + ready)
    read_frames(live, reader, time.monotonic() + 5, has_result(reader))
    assert reader.exchange.result == RESULT and reader.exchange.after == ""
    assert bytes(live.mux) == ready
    # The next read (a reused container's "ready" after the result) starts from them.
    read_frames(live, reader, time.monotonic() + 5, lambda: bool(reader.exchange.after))
    assert reader.exchange.after == "ready" and live.mux == bytearray()


def test_a_read_that_is_already_done_reads_nothing(pair):
    live, peer = pair
    reader = reader_for()
    peer.sendall(out("not read"))
    read_frames(live, reader, time.monotonic() + 5, lambda: True)
    assert reader.exchange.stdout == [] and live.received == 0
    assert not reader.exchange.host_timeout


def test_eof_ends_the_read_quietly_and_keeps_what_came(pair):
    live, peer = pair
    reader = reader_for()
    peer.sendall(out("last words") + muxed(STREAM_STDERR, b"Traceback ...\n"))
    peer.shutdown(socket.SHUT_WR)
    read_frames(live, reader, time.monotonic() + 5, has_result(reader))
    ex = reader.exchange
    assert ex.stdout == ["last words"] and bytes(ex.runner_stderr) == b"Traceback ...\n"
    assert ex.result is None and not ex.host_timeout and not ex.overflow


def test_a_reset_connection_ends_the_read_like_eof():
    ours, theirs = tcp_pair()
    try:
        theirs.sendall(out("before the reset"))
        live, reader = Channel(ours), reader_for()
        read_frames(live, reader, time.monotonic() + 5, lambda: bool(reader.exchange.stdout))
        reset(theirs)
        time.sleep(0.05)
        read_frames(live, reader, time.monotonic() + 5, has_result(reader))
        ex = reader.exchange
        assert ex.stdout == ["before the reset"] and ex.result is None
        assert not ex.host_timeout and not ex.overflow
    finally:
        ours.close()
        theirs.close()


def test_the_deadline_ends_the_read_as_a_host_timeout(pair):
    live, peer = pair
    reader = reader_for()
    peer.sendall(out("started"))
    started = time.monotonic()
    read_frames(live, reader, started + 0.3, has_result(reader))
    assert reader.exchange.host_timeout and reader.exchange.stdout == ["started"]
    assert time.monotonic() - started >= 0.3


def test_a_deadline_already_past_reads_nothing_more(pair):
    live, peer = pair
    reader = reader_for()
    peer.sendall(out("unread"))
    read_frames(live, reader, time.monotonic() - 1, has_result(reader))
    assert reader.exchange.host_timeout and reader.exchange.stdout == [] and live.received == 0


def test_a_live_run_keeps_reading_after_short_waits_until_its_deadline(pair):
    live, peer = pair
    reader = reader_for()
    control = LiveControl()
    # The live loop waits 0.1 s at a time; a frame after several waits is still read ...
    later(0.35, lambda: peer.sendall(out("slow")))
    started = time.monotonic()
    read_frames(live, reader, started + 0.6, has_result(reader), control)
    # ... and the deadline still ends it.
    assert reader.exchange.stdout == ["slow"] and reader.exchange.host_timeout
    assert not reader.exchange.host_cancelled
    assert time.monotonic() - started >= 0.6


def test_more_bytes_than_the_budget_is_an_overflow(pair):
    live, peer = pair
    reader = reader_for()
    chunk = out("x" * 50)
    reader.budget = len(chunk) - 1
    peer.sendall(chunk + muxed(STREAM_STDOUT, line(RESULT)))
    read_frames(live, reader, time.monotonic() + 5, has_result(reader))
    ex = reader.exchange
    assert ex.overflow and ex.stdout == [] and ex.result is None and not ex.host_timeout
    assert live.received > reader.budget and live.mux == bytearray()


def test_exactly_the_budget_is_no_overflow(pair):
    live, peer = pair
    reader = reader_for()
    chunk = out("x" * 50) + muxed(STREAM_STDOUT, line(RESULT))
    reader.budget = len(chunk)
    live.received = 0
    peer.sendall(chunk)
    read_frames(live, reader, time.monotonic() + 5, has_result(reader))
    assert not reader.exchange.overflow and reader.exchange.result == RESULT
    assert live.received == len(chunk)


def test_the_budget_counts_every_chunk_of_the_job(pair):
    live, peer = pair
    reader = reader_for()
    first = out("a" * 40)
    reader.budget = len(first) + 10
    peer.sendall(first)
    later(0.1, lambda: peer.sendall(out("b" * 40)))
    read_frames(live, reader, time.monotonic() + 5, has_result(reader))
    assert reader.exchange.overflow and reader.exchange.stdout == ["a" * 40]


def test_a_cancel_the_runner_did_not_answer_in_time_ends_the_read(pair):
    live, peer = pair
    reader = reader_for()
    control = LiveControl()
    control.cancel()
    control.cancelled_at = time.monotonic() - CANCEL_GRACE_S - 0.01  # its grace is over
    live.mux += out("before the cancel")  # received already: still read
    read_frames(live, reader, time.monotonic() + 5, has_result(reader), control)
    ex = reader.exchange
    assert ex.host_cancelled and not ex.host_timeout
    assert ex.stdout == ["before the cancel"]
    control.detach()


def test_a_cancel_is_waited_for_only_until_its_grace_ends(pair):
    live, peer = pair
    reader = reader_for()
    control = LiveControl()
    control.cancel()
    control.cancelled_at = time.monotonic() - CANCEL_GRACE_S + 0.2  # 0.2 s of grace left
    started = time.monotonic()
    read_frames(live, reader, started + 30, has_result(reader), control)
    took = time.monotonic() - started
    assert reader.exchange.host_cancelled and not reader.exchange.host_timeout
    # Not the run's deadline: the loop looks at the cancel every 0.1 s.
    assert 0.2 <= took < 1.05
    control.detach()


def test_a_cancel_answered_in_time_is_the_runners_report(pair):
    live, peer = pair
    reader = reader_for()
    control = LiveControl()
    control.cancel()
    cancelled = dict(RESULT, status="cancelled")
    peer.sendall(muxed(STREAM_STDOUT, line(cancelled)))
    read_frames(live, reader, time.monotonic() + 5, has_result(reader), control)
    assert reader.exchange.result == cancelled and not reader.exchange.host_cancelled
    control.detach()


def test_unframed_lines_are_counted_logged_and_reset(pair, caplog):
    live, peer = pair
    reader = reader_for()
    peer.sendall(
        muxed(STREAM_STDOUT, b"print from the runner\n")
        + out("framed")
        + muxed(STREAM_STDOUT, b"another\n" + line(RESULT, nonce="0" * 32))
        + muxed(STREAM_STDOUT, line(RESULT))
    )
    with caplog.at_level(logging.WARNING, logger="jupyter_exec_ext.sandbox.protocol"):
        read_frames(live, reader, time.monotonic() + 5, has_result(reader))
    assert reader.exchange.stdout == ["framed"] and reader.stray == 0
    assert [r.getMessage() for r in caplog.records] == [
        f"container {CONTAINER[:12]} wrote 3 unframed line(s) on the result channel"
    ]
    caplog.clear()
    read_frames(live, reader, time.monotonic() + 5, has_result(reader))
    assert caplog.records == []  # nothing stray this time: nothing logged


def tcp_pair():
    """A connected TCP pair: unlike a socket pair, its peer can reset the connection."""
    server = socket.create_server(("127.0.0.1", 0))
    ours = socket.create_connection(server.getsockname())
    theirs, _ = server.accept()
    server.close()
    return ours, theirs


def reset(sock: socket.socket) -> None:
    """An abortive close: the other end's next recv raises ConnectionResetError."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.parametrize(
    "end", ["done", "eof", "reset", "deadline passed", "no answer", "overflow", "cancel"]
)
def test_unframed_lines_are_logged_however_the_read_ends(end, caplog):
    ours, theirs = tcp_pair()
    live, reader, control = Channel(ours), reader_for(), None
    live.mux += muxed(STREAM_STDOUT, b"stray\n")  # already received: read first
    deadline = time.monotonic() + 5
    if end == "done":
        live.mux += muxed(STREAM_STDOUT, line(RESULT))
    elif end == "eof":
        theirs.shutdown(socket.SHUT_WR)
    elif end == "reset":
        reset(theirs)
        time.sleep(0.05)
    elif end == "deadline passed":
        deadline = time.monotonic() - 1
    elif end == "no answer":
        deadline = time.monotonic() + 0.2
    elif end == "overflow":
        reader.budget = 10
        theirs.sendall(out("more than ten bytes"))
    else:
        control = LiveControl()
        control.cancel()
        control.cancelled_at = time.monotonic() - CANCEL_GRACE_S - 1
    try:
        with caplog.at_level(logging.WARNING, logger="jupyter_exec_ext.sandbox.protocol"):
            read_frames(live, reader, deadline, has_result(reader), control)
    finally:
        ours.close()
        theirs.close()
        if control is not None:
            control.detach()
    ex = reader.exchange
    assert (ex.result is not None, ex.host_timeout, ex.overflow, ex.host_cancelled) == (
        end == "done",
        end in ("deadline passed", "no answer"),
        end == "overflow",
        end == "cancel",
    )
    assert [r.getMessage() for r in caplog.records] == [
        f"container {CONTAINER[:12]} wrote 1 unframed line(s) on the result channel"
    ]


# -- converse ------------------------------------------------------------------------------------


def receive_line(sock: socket.socket, timeout: float = 5) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while not data.endswith(b"\n"):
        part = sock.recv(65536)
        if not part:
            break
        data += part
    return data


def test_converse_sends_the_job_and_returns_at_the_result(pair):
    live, peer = pair
    job = b'{"code": "print(1)"}\n'
    reader = reader_for()
    live.received = 12345  # the last job's count
    got = []

    def runner():
        got.append(receive_line(peer))
        peer.sendall(out("1\n") + muxed(STREAM_STDOUT, line(RESULT)))

    thread = later(0, runner)
    ex = converse(live, job, reader, time.monotonic() + 5)
    thread.join(5)
    assert got == [job]
    assert ex is reader.exchange and ex.result == RESULT and ex.stdout == ["1\n"]
    assert live.reader is reader
    assert live.received == len(out("1\n") + muxed(STREAM_STDOUT, line(RESULT)))
    assert not ex.host_timeout


def test_converse_reads_what_a_runner_said_before_it_closed(pair):
    live, peer = pair
    reader = reader_for()
    peer.sendall(out("bye") + muxed(STREAM_STDOUT, line(dict(RESULT, status="runtime_error"))))
    peer.close()  # the container ended: sending the job fails
    ex = converse(live, b"{}\n", reader, time.monotonic() + 5)
    assert ex.stdout == ["bye"] and ex.result["status"] == "runtime_error"
    assert not ex.host_timeout and live.reader is reader


def test_converse_gives_up_when_the_job_cannot_be_sent_in_time(pair):
    live, peer = pair
    reader = reader_for()
    peer.sendall(muxed(STREAM_STDOUT, line(RESULT)))  # said, but never read: sending failed
    job = b"x" * (16 << 20)  # the runner reads none of it: the send blocks
    started = time.monotonic()
    ex = converse(live, job, reader, started - 10)  # past deadline: half a second to send
    assert ex.host_timeout and ex.result is None and live.reader is None
    assert time.monotonic() - started < 1.4  # half a second, not the time left (none)


def test_converse_passes_a_live_runs_input_after_the_job_and_stops_it_after(pair):
    live, peer = pair
    reader = reader_for()
    control = LiveControl()
    control.send_stdin("typed early\n")  # before the container was ready: it waits

    def runner():
        peer.settimeout(5)
        data = b""
        while data.count(b"\n") < 2:
            data += peer.recv(65536)
        received.append(data)
        peer.sendall(muxed(STREAM_STDOUT, line(RESULT)))

    received: list = []
    thread = later(0, runner)
    ex = converse(live, b"JOB\n", reader, time.monotonic() + 5, control)
    thread.join(5)
    assert ex.result == RESULT
    job, stdin = received[0].split(b"\n")[:2]
    assert job == b"JOB" and json.loads(stdin) == {"type": "stdin", "data": "typed early\n"}
    # The run is over: later input goes nowhere.
    control.send_stdin("too late\n")
    peer.settimeout(0.3)
    with pytest.raises(socket.timeout):
        peer.recv(65536)


def test_converse_of_a_live_run_watches_its_cancel(pair):
    live, peer = pair
    reader = reader_for()
    control = LiveControl()
    control.cancel()
    control.cancelled_at = time.monotonic() - CANCEL_GRACE_S - 1
    ex = converse(live, b"JOB\n", reader, time.monotonic() + 30, control)
    assert ex.host_cancelled and not ex.host_timeout and live.reader is reader
    assert receive_line(peer, 1).startswith(b"JOB\n")


# -- interpret -----------------------------------------------------------------------------------

LIMITS = Limits(memory_mb=128, time_s=2.5)
MEMORY = "memory limit of 128 MiB exceeded; the program was stopped"
STOPPED = "the run was stopped"


def exchange(result: Optional[dict] = None, **kw: Any) -> Exchange:
    ex = Exchange(**kw)
    ex.result = result
    return ex


def reported(status: str, **kw: Any) -> dict:
    return dict(RESULT, status=status, **kw)


def cancelled_control() -> LiveControl:
    control = LiveControl()
    control.cancel()
    return control


def test_a_reported_ok_is_the_runners_result_with_what_was_printed():
    ex = exchange(reported("ok", exit_code=0, duration_ms=42, message="fine"))
    ex.stdout, ex.stderr = ["a", "b"], ["c", "d"]
    ex.displays = [{"mime": "image/png", "data": "AAAA"}]
    result = interpret(ex, {}, LIMITS, 999)
    assert result.status is Status.OK
    assert (result.stdout, result.stderr) == ("ab", "cd")
    assert (result.exit_code, result.duration_ms, result.message) == (0, 42, "fine")
    assert result.truncated is False and result.limits is LIMITS and result.checks == []
    assert result.displays == ex.displays and result.displays is not ex.displays


@pytest.mark.parametrize("status", [s for s in Status if s not in (Status.CANCELLED,)])
def test_each_reported_status_is_taken(status):
    ex = exchange(reported(status.value, exit_code=3, duration_ms=11, message="said"))
    result = interpret(ex, {}, LIMITS, 999)
    assert result.status is status
    assert (result.exit_code, result.duration_ms) == (3, 11)
    assert result.message == (MEMORY if status is Status.MEMORY_LIMIT else "said")


def test_the_out_of_memory_killer_decides_over_any_report_but_ok():
    for frame in (reported("runtime_error", exit_code=-9), None, reported("bogus")):
        result = interpret(exchange(frame), {"OOMKilled": True, "ExitCode": 137}, LIMITS, 50)
        assert result.status is Status.MEMORY_LIMIT and result.message == MEMORY


def test_an_ok_run_with_a_process_killed_for_memory_says_so_without_checks():
    state = {"OOMKilled": True}
    result = interpret(exchange(reported("ok", message="")), state, LIMITS, 50)
    assert result.status is Status.OK
    assert result.message == "a process of the program was stopped at the memory limit"
    # With checks, that was a check's process: its own outcome says so, not the run's.
    result = interpret(exchange(reported("ok", message="")), state, LIMITS, 50, checks=1)
    assert result.status is Status.OK and result.message == ""
    # Not killed: nothing said.
    result = interpret(exchange(reported("ok", message="")), {"OOMKilled": False}, LIMITS, 50)
    assert result.message == ""


def test_an_overflow_is_an_output_limit():
    ex = exchange(reported("ok", message="said"), overflow=True)
    ex.stdout = ["partial"]
    result = interpret(ex, {}, LIMITS, 50)
    assert result.status is Status.OUTPUT_LIMIT and result.truncated is True
    assert result.message == "output limit exceeded; the rest was cut"
    assert result.stdout == "partial"


def test_an_unknown_status_is_the_runner_failing():
    result = interpret(exchange(reported("passed", exit_code=0)), {"ExitCode": 0}, LIMITS, 50)
    assert result.status is Status.INTERNAL_ERROR and result.exit_code == 0


def test_a_host_timeout_is_a_timeout_of_the_time_it_took():
    result = interpret(exchange(None, host_timeout=True), {}, LIMITS, 2600)
    assert result.status is Status.TIMEOUT and result.duration_ms == 2600
    assert result.message == "time limit of 2.5 s exceeded; the sandbox was stopped"
    result = interpret(exchange(None, host_timeout=True), {}, Limits(time_s=30), 31000)
    assert result.message == "time limit of 30 s exceeded; the sandbox was stopped"


def test_a_report_within_the_deadline_wins_over_the_host_timeout():
    result = interpret(exchange(reported("ok", duration_ms=5), host_timeout=True), {}, LIMITS, 9)
    assert result.status is Status.OK and result.duration_ms == 5


def test_a_host_cancel_is_a_cancelled_run_of_the_time_it_took():
    control = cancelled_control()
    result = interpret(exchange(None, host_cancelled=True), {}, LIMITS, 1234, control=control)
    assert result.status is Status.CANCELLED and result.duration_ms == 1234
    assert result.message == STOPPED


def test_a_host_cancel_comes_before_a_host_timeout():
    ex = exchange(None, host_cancelled=True, host_timeout=True)
    result = interpret(ex, {}, LIMITS, 77, control=cancelled_control())
    assert result.status is Status.CANCELLED and result.duration_ms == 77


@pytest.mark.parametrize(
    "ex, said",
    [
        (
            exchange(None, protocol_error="the runner sent a frame that is not JSON"),
            "runner failure: the runner sent a frame that is not JSON; runner stderr: ",
        ),
        (
            exchange(None, runner_stderr=bytearray(b"Traceback: boom")),
            "runner failure: no result frame; runner stderr: Traceback: boom",
        ),
    ],
)
def test_a_runner_that_broke_the_protocol_or_complained_failed(ex, said, caplog):
    with caplog.at_level(logging.ERROR, logger="jupyter_exec_ext.sandbox.protocol"):
        result = interpret(ex, {"ExitCode": 1}, LIMITS, 50)
    assert result.status is Status.INTERNAL_ERROR and result.message == RUNNER_FAILED
    assert result.exit_code is None and result.duration_ms == 50
    assert [r.getMessage() for r in caplog.records] == [said]


def test_the_log_of_a_runner_failure_keeps_the_end_of_its_stderr(caplog):
    stderr = ("x" * 5000 + "the last words é").encode()
    ex = exchange(None, protocol_error="p", runner_stderr=bytearray(stderr + b"\xff"))
    with caplog.at_level(logging.ERROR, logger="jupyter_exec_ext.sandbox.protocol"):
        interpret(ex, {}, LIMITS, 50)
    [record] = caplog.records
    kept = (stderr.decode() + "\ufffd")[-4000:]
    assert record.getMessage() == f"runner failure: p; runner stderr: {kept}"


def test_a_runner_that_vanished_takes_the_containers_exit_code(caplog):
    with caplog.at_level(logging.ERROR, logger="jupyter_exec_ext.sandbox.protocol"):
        result = interpret(exchange(None), {"ExitCode": 137}, LIMITS, 50)
    assert result.status is Status.INTERNAL_ERROR and result.exit_code == 137
    assert result.message == (
        "the sandbox runner ended before it reported; the admin can find details in the server log"
    )
    assert [r.getMessage() for r in caplog.records] == [
        "runner of a run ended without a result (container exit code 137)"
    ]
    assert interpret(exchange(None), {}, LIMITS, 50).exit_code is None


def test_fields_of_the_wrong_type_in_a_report_are_not_taken():
    frame = reported("ok", exit_code="0", duration_ms=1.5, truncated="yes", message=["m"])
    result = interpret(exchange(frame), {}, LIMITS, 321)
    assert result.exit_code is None and result.duration_ms == 321
    assert result.truncated is False and result.message == ""
    assert interpret(exchange(reported("ok", truncated=True)), {}, LIMITS, 1).truncated is True
    assert interpret(exchange(reported("ok"), truncated=True), {}, LIMITS, 1).truncated is True


def test_each_check_gets_a_result_and_a_missing_one_did_not_run():
    ex = exchange(reported("ok"))
    ex.checks = {
        0: {"type": "check", "index": 0, "outcome": "completed", "stdout": "5\n"},
        2: {"type": "check", "index": 2, "outcome": "raised"},
    }
    result = interpret(ex, {}, LIMITS, 1, checks=4)
    assert [c.outcome for c in result.checks] == [
        CheckOutcome.COMPLETED,
        CheckOutcome.NOT_RUN,
        CheckOutcome.RAISED,
        CheckOutcome.NOT_RUN,
    ]
    assert result.checks[0].stdout == "5\n"
    assert interpret(ex, {}, LIMITS, 1).checks == []


def test_a_cancel_nobody_asked_for_is_the_runner_failing(caplog):
    for control in (None, LiveControl()):
        with caplog.at_level(logging.ERROR, logger="jupyter_exec_ext.sandbox.protocol"):
            result = interpret(exchange(reported("cancelled")), {}, LIMITS, 5, control=control)
        assert result.status is Status.INTERNAL_ERROR and result.message == RUNNER_FAILED
        assert [r.getMessage() for r in caplog.records] == [
            "the runner reported a cancelled run that nobody cancelled"
        ]
        caplog.clear()


def test_a_cancel_the_runner_answered_is_its_report():
    frame = reported("cancelled", duration_ms=300, message="stopped by you")
    result = interpret(exchange(frame), {}, LIMITS, 900, control=cancelled_control())
    assert result.status is Status.CANCELLED
    assert (result.duration_ms, result.message) == (300, "stopped by you")


@pytest.mark.parametrize(
    "ex",
    [
        exchange(reported("timeout", duration_ms=3)),
        exchange(reported("internal_error", duration_ms=3)),
        exchange(None, host_timeout=True),
        exchange(None),
    ],
)
def test_a_cancelled_run_that_timed_out_or_failed_on_the_way_is_cancelled(ex):
    result = interpret(ex, {}, LIMITS, 444, control=cancelled_control())
    assert result.status is Status.CANCELLED
    assert (result.duration_ms, result.message) == (444, STOPPED)
    # Without the cancel, each stays what it was.
    assert interpret(ex, {}, LIMITS, 444, control=LiveControl()).status is not Status.CANCELLED


@pytest.mark.parametrize("status", ["ok", "runtime_error", "memory_limit", "output_limit"])
def test_a_run_that_ended_its_own_way_before_the_cancel_keeps_its_status(status):
    ex = exchange(reported(status, duration_ms=3, message="m"))
    result = interpret(ex, {}, LIMITS, 444, control=cancelled_control())
    assert result.status is Status(status) and result.duration_ms == 3


# -- engine_lost ---------------------------------------------------------------------------------


def test_a_run_the_engine_went_away_under_is_an_internal_error_keeping_its_output():
    ex = exchange(reported("ok", exit_code=0, duration_ms=5))
    ex.stdout, ex.stderr, ex.truncated = ["so far"], ["warn"], True
    ex.checks = {0: {"type": "check", "index": 0, "outcome": "completed"}}
    result = engine_lost(ex, LIMITS, 2222, checks=2)
    assert result.status is Status.INTERNAL_ERROR
    assert (result.stdout, result.stderr, result.truncated) == ("so far", "warn", True)
    assert result.exit_code is None and result.duration_ms == 2222
    assert result.message == (
        "the Docker engine stopped or restarted during the run, so it was cut short; "
        "the output printed until then is shown; run it again"
    )
    assert [c.outcome for c in result.checks] == [CheckOutcome.COMPLETED, CheckOutcome.NOT_RUN]
    assert result.limits is LIMITS
    assert engine_lost(exchange(None), LIMITS, 1).checks == []


# -- check_result --------------------------------------------------------------------------------


def test_a_missing_check_frame_did_not_run():
    assert check_result(None) == CheckResult(outcome=CheckOutcome.NOT_RUN)
    assert check_result({}) == CheckResult(outcome=CheckOutcome.NOT_RUN)


def test_a_check_frame_is_taken_field_by_field():
    frame = {
        "type": "check",
        "index": 0,
        "outcome": "raised",
        "stdout": "out",
        "stderr": "err",
        "duration_ms": 17,
        "message": "m",
        "error": {
            "type": "AssertionError",
            "message": "1 != 2",
            "traceback": "Traceback ...",
            "assertion": True,
            "extra": "dropped",
        },
    }
    assert check_result(frame) == CheckResult(
        outcome=CheckOutcome.RAISED,
        stdout="out",
        stderr="err",
        error={
            "type": "AssertionError",
            "message": "1 != 2",
            "traceback": "Traceback ...",
            "assertion": True,
        },
        duration_ms=17,
        message="m",
    )


def test_an_unknown_check_outcome_is_a_protocol_error():
    for outcome in ("passed", None, 3):
        frame = {"outcome": outcome, "stdout": "x"}
        assert check_result(frame) == CheckResult(outcome=CheckOutcome.PROTOCOL_ERROR)


def test_check_fields_of_the_wrong_type_are_dropped():
    frame = {
        "outcome": "completed",
        "stdout": 5,
        "stderr": None,
        "duration_ms": "17",
        "message": ["m"],
        "error": "boom",
    }
    assert check_result(frame) == CheckResult(outcome=CheckOutcome.COMPLETED)
    assert check_result(dict(frame, duration_ms=1.5)).duration_ms == 0


def test_a_check_error_is_normalized():
    frame = {"outcome": "raised", "error": {"assertion": 1, "message": 3, "type": ""}}
    assert check_result(frame).error == {
        "type": "Exception",
        "message": "3",
        "traceback": "",
        "assertion": False,
    }
    assert check_result({"outcome": "raised", "error": {}}).error == {
        "type": "Exception",
        "message": "",
        "traceback": "",
        "assertion": False,
    }


def test_a_check_message_is_cut_at_2000_characters():
    assert check_result({"outcome": "timeout", "message": "m" * 2001}).message == "m" * 2000
    assert check_result({"outcome": "timeout", "message": "m" * 2000}).message == "m" * 2000


# -- needs_engine_state, ended_cleanly -----------------------------------------------------------


def test_the_engine_is_asked_how_a_run_ended_only_when_the_runner_could_not_tell():
    assert needs_engine_state(exchange(None))
    for flag in ("host_timeout", "overflow", "host_cancelled"):
        assert needs_engine_state(exchange(reported("ok"), **{flag: True})), flag
    # SIGKILL of the program: the OOM killer or something else, only the engine knows.
    assert needs_engine_state(exchange(reported("runtime_error", exit_code=-9)))
    assert not needs_engine_state(exchange(reported("runtime_error", exit_code=1)))
    assert not needs_engine_state(exchange(reported("runtime_error", exit_code=9)))
    assert not needs_engine_state(exchange(reported("timeout", exit_code=-9)))
    assert not needs_engine_state(exchange(reported("ok")))
    assert not needs_engine_state(exchange(reported("ok"), protocol_error="late junk"))


def test_a_run_ended_cleanly_only_when_the_runner_reported_and_the_host_never_stepped_in():
    assert ended_cleanly(exchange(reported("runtime_error", exit_code=1)))
    assert not ended_cleanly(exchange(None))
    for field_, value in (
        ("host_timeout", True),
        ("overflow", True),
        ("protocol_error", "bad frame"),
        ("host_cancelled", True),
    ):
        assert not ended_cleanly(exchange(reported("ok"), **{field_: value})), field_


# -- FrameReader.budget --------------------------------------------------------------------------


def test_the_budget_is_every_cap_of_an_honest_runner_at_its_worst():
    reader = FrameReader(NONCE, Exchange(), 1000, display_limit=3, display_bytes=5000)
    # Both streams full of characters JSON writes six bytes for, one whole frame more, the
    # displays in base64 with their frame lines around them.
    assert reader.budget == 2 * 1000 * 6 + MAX_FRAME_BYTES + 2 * 5000 + 64 * 3
    assert FrameReader(NONCE, Exchange(), 2000).budget == (
        2 * 2000 * 6 + MAX_FRAME_BYTES + 2 * (2 * 1024 * 1024) + 64 * 10
    )


def test_an_honest_runner_at_every_cap_stays_within_the_budget(pair):
    live, peer = pair
    cap = 3000
    reader = FrameReader(NONCE, Exchange(), cap, display_limit=2, display_bytes=3000)
    worst = "\x00" * cap  # JSON writes each as \u0000
    png = "A" * 2000  # base64 of 1500 bytes: two fit in 3000
    display = muxed(STREAM_STDOUT, line({"type": "display", "mime": "image/png", "data": png}))
    frames = [
        out(worst),
        out(worst, "stderr"),
        display,
        display,
        muxed(STREAM_STDOUT, line(RESULT)),
    ]
    data = b"".join(frames)
    peer.sendall(data)
    read_frames(live, reader, time.monotonic() + 5, has_result(reader))
    ex = reader.exchange
    assert not ex.overflow and ex.result == RESULT and len(ex.displays) == 2
    assert live.received == len(data) <= reader.budget
