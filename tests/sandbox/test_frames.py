"""The host's reading of the runner's frames: at most one verdict per test, in order, before the
result, well formed; anything else makes that test a protocol error, never a pass."""

from __future__ import annotations

import json

from jupyter_exec_ext.sandbox.models import CheckOutcome
from jupyter_exec_ext.sandbox.protocol import Exchange, FrameReader, check_result

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
