"""The host's reading of the runner's frames: at most one verdict per test, in order, before the
result, well formed; anything else makes that test a protocol error, never a pass. Output within
the host's own cap, the events of a live run, the result and what follows it, and the frame size
cap."""

from __future__ import annotations

import json
import logging

import pytest

from jupyter_exec_ext.sandbox.models import CheckOutcome
from jupyter_exec_ext.sandbox.protocol import (
    MAX_FRAME_BYTES,
    MAX_PROMPT_CHARS,
    Exchange,
    FrameReader,
    check_result,
)

NONCE = "f" * 32


def check(index, outcome="completed", **extra):
    frame = {
        "type": "check",
        "index": index,
        "outcome": outcome,
        "stdout": "5\n",
        "stderr": "",
        "error": None,
        "duration_ms": 1,
        "message": "",
    }
    frame.update(extra)
    return frame


def read(*frames, checks=3):
    exchange = Exchange()
    reader = FrameReader(NONCE, exchange, 1 << 20, checks)
    reader.feed(b"".join(f"{NONCE} {json.dumps(f)}\n".encode() for f in frames))
    return exchange, [check_result(exchange.checks.get(i)).outcome for i in range(checks)]


RESULT = {
    "type": "result",
    "status": "ok",
    "exit_code": 0,
    "duration_ms": 1,
    "truncated": False,
    "message": "",
}


def test_one_frame_per_check_in_order_is_taken():
    _, outcomes = read(check(0), check(1, "raised"), check(2), RESULT)
    assert outcomes == [CheckOutcome.COMPLETED, CheckOutcome.RAISED, CheckOutcome.COMPLETED]


def test_a_duplicate_makes_that_check_a_protocol_error_whichever_came_first():
    _, outcomes = read(check(0, "raised"), check(0), check(1), check(2), RESULT)
    assert outcomes[0] is CheckOutcome.PROTOCOL_ERROR
    assert outcomes[1:] == [CheckOutcome.COMPLETED, CheckOutcome.COMPLETED]


def test_a_frame_out_of_order_is_a_protocol_error_and_the_skipped_ones_did_not_run():
    _, outcomes = read(check(2), check(0), RESULT)
    assert outcomes == [
        CheckOutcome.PROTOCOL_ERROR,
        CheckOutcome.NOT_RUN,
        CheckOutcome.PROTOCOL_ERROR,
    ]


def test_unknown_indexes_are_refused_and_noted():
    exchange, outcomes = read(check(7), check(-1), check("0"), check(0), RESULT)
    assert exchange.protocol_error
    assert outcomes[0] is CheckOutcome.COMPLETED


def test_malformed_frames_are_protocol_errors():
    _, outcomes = read(check(0, "passed"), check(1, stdout=["x"]), check(2, error="boom"), RESULT)
    assert outcomes == [CheckOutcome.PROTOCOL_ERROR] * 3


def test_a_frame_after_the_result_is_a_protocol_error():
    _, outcomes = read(check(0), RESULT, check(1), checks=2)
    assert outcomes == [CheckOutcome.COMPLETED, CheckOutcome.PROTOCOL_ERROR]


def test_frames_without_the_nonce_are_ignored():
    exchange = Exchange()
    reader = FrameReader(NONCE, exchange, 1 << 20, 1)
    reader.feed(("0" * 32 + " " + json.dumps(check(0)) + "\n").encode())
    reader.feed((json.dumps(check(0)) + "\n").encode())
    assert exchange.checks == {} and reader.stray == 2


def test_a_check_in_the_wrong_place_is_logged_and_reads_as_a_protocol_error(caplog):
    with caplog.at_level(logging.WARNING, logger="jupyter_exec_ext.sandbox.protocol"):
        _, outcomes = read(check(1), RESULT, check(2), checks=3)
    assert [r.getMessage() for r in caplog.records] == [
        "check 1: frame out of protocol (expected check 0)",
        "check 2: frame out of protocol (expected check 2, after the result)",
    ]
    exchange, _ = read(check(1), checks=2)
    assert check_result(exchange.checks[1]).message == (
        "the sandbox reported this test in a way that breaks its protocol"
    )


def test_check_indexes_are_whole_numbers_below_the_count():
    exchange, outcomes = read(check(3), checks=3)
    assert exchange.checks == {} and outcomes == [CheckOutcome.NOT_RUN] * 3
    assert exchange.protocol_error == "the runner sent a check frame for no check"
    exchange, _ = read(check(True), checks=3)  # a bool is no index
    assert exchange.checks == {} and exchange.protocol_error
    exchange, outcomes = read(check(0), checks=1)
    assert outcomes == [CheckOutcome.COMPLETED] and not exchange.protocol_error
    exchange = Exchange()
    FrameReader(NONCE, exchange, 100).feed(frame(check(0)))  # a run without checks
    assert exchange.checks == {} and exchange.protocol_error


def test_a_check_frame_may_leave_out_its_texts_and_carry_an_error_object():
    bare = {"type": "check", "index": 0, "outcome": "raised", "error": {"type": "E"}}
    _, outcomes = read(bare, check(1, message=5), checks=2)
    assert outcomes == [CheckOutcome.RAISED, CheckOutcome.PROTOCOL_ERROR]
    _, outcomes = read(check(0, stderr=None), check(1, message="m"), checks=2)
    assert outcomes == [CheckOutcome.PROTOCOL_ERROR, CheckOutcome.COMPLETED]


# -- output, events, the result and what follows it, the frame size ------------------------------


def frame(obj) -> bytes:
    return f"{NONCE} {json.dumps(obj)}\n".encode()


def output(data, stream="stdout") -> bytes:
    return frame({"type": "output", "stream": stream, "data": data})


def test_output_is_kept_per_stream_up_to_the_hosts_cap():
    ex = Exchange()
    reader = FrameReader(NONCE, ex, 10)
    reader.feed(output("12345") + output("0123456789", "stderr") + output("67890"))
    assert ex.stdout == ["12345", "67890"] and ex.stderr == ["0123456789"]
    assert ex.kept == {"stdout": 10, "stderr": 10} and ex.truncated is False
    reader.feed(output("x") + output("", "stderr"))
    assert ex.stdout[-1] == "" and ex.stderr[-1] == "" and ex.truncated is True
    assert ex.kept == {"stdout": 10, "stderr": 10}


def test_output_cut_at_the_cap_is_cut_at_a_whole_character():
    ex = Exchange()
    reader = FrameReader(NONCE, ex, 5)
    reader.feed(output("abcd\u00e9f"))  # é is two bytes: only its first would fit
    assert ex.stdout == ["abcd"] and ex.kept["stdout"] == 4 and ex.truncated
    reader.feed(output("e"))
    assert ex.stdout == ["abcd", "e"] and ex.kept["stdout"] == 5


def test_output_counts_bytes_and_takes_any_text_json_carries():
    ex = Exchange()
    reader = FrameReader(NONCE, ex, 100)
    reader.feed(output("\u00e9\ud800"))  # a lone surrogate: JSON can carry one
    assert ex.stdout == ["\u00e9\ud800"] and ex.kept["stdout"] == 3 and not ex.truncated


def test_output_frames_that_are_not_output_are_ignored():
    ex = Exchange()
    reader = FrameReader(NONCE, ex, 100)
    reader.feed(output("x", "stdin") + output(5) + frame({"type": "output", "stream": "stdout"}))
    assert ex.stdout == [] and ex.stderr == [] and not ex.protocol_error


def test_a_live_run_gets_each_event_as_it_comes_and_none_after_the_result():
    events = []
    ex = Exchange()
    reader = FrameReader(NONCE, ex, 4, on_event=events.append, display_limit=1)
    png = {"type": "display", "mime": "image/png", "data": "AAAA"}
    reader.feed(
        output("ab")
        + frame({"type": "input_request", "prompt": "name? "})
        + output("cdef", "stderr")
        + output("cdef")  # only "cd" fits
        + output("gh")  # nothing fits: no event
        + frame(png)
        + frame(png)  # beyond the host's cap: no event
        + frame({"type": "input_request", "prompt": 5})
        + frame({"type": "input_request", "prompt": "p" * (MAX_PROMPT_CHARS + 1)})
        + frame(RESULT)
        + output("late")
        + frame({"type": "input_request", "prompt": "late? "})
    )
    assert events == [
        {"type": "output", "stream": "stdout", "data": "ab"},
        {"type": "input_request", "prompt": "name? "},
        {"type": "output", "stream": "stderr", "data": "cdef"},
        {"type": "output", "stream": "stdout", "data": "cd"},
        {"type": "display", "mime": "image/png", "data": "AAAA"},
        {"type": "input_request", "prompt": ""},
        {"type": "input_request", "prompt": "p" * MAX_PROMPT_CHARS},
    ]
    assert ex.result == RESULT and ex.display_bytes == 3


def test_a_failing_event_callback_is_logged_and_the_run_goes_on(caplog):
    seen = []

    def callback(event):
        seen.append(event["data"])
        if len(seen) == 1:
            raise ConnectionError("client gone")

    ex = Exchange()
    reader = FrameReader(NONCE, ex, 100, on_event=callback)
    with caplog.at_level(logging.ERROR, logger="jupyter_exec_ext.sandbox.protocol"):
        reader.feed(output("a") + output("b") + frame(RESULT))
    assert seen == ["a", "b"] and ex.stdout == ["a", "b"] and ex.result == RESULT
    assert [r.getMessage() for r in caplog.records] == ["a live run's event callback failed"]
    reader.emit({"type": "output"})  # after the result: not called
    assert seen == ["a", "b"]


def test_the_first_result_counts():
    ex = Exchange()
    FrameReader(NONCE, ex, 100).feed(frame(RESULT) + frame(dict(RESULT, status="timeout")))
    assert ex.result == RESULT and not ex.protocol_error


@pytest.mark.parametrize(
    "after, reason, said",
    [("ready", None, ""), ("retired", "too many runs", "too many runs"), ("retired", 5, "5")],
)
def test_what_a_kept_container_says_after_the_result_is_taken_once(after, reason, said):
    ex = Exchange()
    reader = FrameReader(NONCE, ex, 100)
    reader.feed(frame({"type": "retired", "reason": "early"}))  # before the result: ignored
    assert ex.after == ""
    reader.feed(frame(RESULT) + frame({"type": after, "reason": reason}))
    reader.feed(frame({"type": "retired", "reason": "twice"}))
    assert (ex.after, ex.retired_reason) == (after, said)


def test_frames_that_are_not_json_objects_are_protocol_errors():
    for line, error in (
        (f"{NONCE} {{not json\n", "the runner sent a frame that is not JSON"),
        (f"{NONCE} [1, 2]\n", "the runner sent a frame that is not an object"),
    ):
        ex = Exchange()
        FrameReader(NONCE, ex, 100).feed(line.encode() + frame(RESULT))
        assert ex.protocol_error == error and ex.result == RESULT  # the next frame still counts


def test_a_frame_longer_than_the_cap_is_a_protocol_error_and_dropped():
    ex = Exchange()
    reader = FrameReader(NONCE, ex, 100, display_bytes=1024)
    assert reader.max_frame == MAX_FRAME_BYTES
    reader.feed(b"x" * MAX_FRAME_BYTES)  # at the cap, its end still to come: waits
    assert not ex.protocol_error and len(reader.pending) == MAX_FRAME_BYTES
    reader.feed(b"x")
    assert ex.protocol_error == "a frame from the runner exceeded the size cap"
    assert reader.pending == bytearray()


def test_the_frame_cap_grows_with_the_display_cap():
    reader = FrameReader(NONCE, Exchange(), 100, display_bytes=6 * 1024 * 1024 + 1)
    # one whole image in base64 with the frame around it, in whole bytes
    assert reader.max_frame == (4 * (6 * 1024 * 1024 + 1)) // 3 + 4096 == 8 * 1024 * 1024 + 4097


def test_empty_lines_are_stray_and_the_frames_after_them_count():
    ex = Exchange()
    reader = FrameReader(NONCE, ex, 100)
    reader.feed(b"\n\n" + frame(RESULT))
    assert ex.result == RESULT and reader.stray == 2 and reader.pending == bytearray()
