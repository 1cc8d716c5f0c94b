"""Request parsing rules: every refusal names the field, sizes are UTF-8 bytes, limits are clamped."""

from __future__ import annotations

import pytest

from jupyter_exec_ext.sandbox import ExecutionResult, LimitError, Limits, Status
from jupyter_exec_ext.server.errors import BadRequestError, PayloadTooLargeError
from jupyter_exec_ext.server.payloads import (
    RequestBounds,
    execute_reply,
    health_status,
    parse_execute,
    parse_json_object,
    parse_submit,
    type_name,
)

BOUNDS = RequestBounds(
    max_code_bytes=100,
    max_stdin_bytes=50,
    default_limits=Limits(),
    max_limits=Limits(memory_mb=512, time_s=60),
)


@pytest.mark.parametrize(
    "body, words",
    [
        (b"", "empty"),
        (b"   ", "empty"),
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[1, 2]", "must be a JSON object, got array"),
        (b'"code"', "must be a JSON object, got string"),
        (b"null", "must be a JSON object, got null"),
    ],
)
def test_body_that_is_not_a_json_object_is_refused(body: bytes, words: str) -> None:
    with pytest.raises(BadRequestError, match=words):
        parse_json_object(body, 1000)


@pytest.mark.parametrize(
    "body",
    [
        b'{"code": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b"{" + b'"a": {' * 100_000 + b"}" * 100_001,
    ],
)
def test_deeply_nested_body_is_refused_not_a_crash(body: bytes) -> None:
    with pytest.raises(
        BadRequestError, match="request body nests JSON arrays or objects too deeply"
    ):
        parse_json_object(body, 1_000_000)


def test_body_over_the_cap_is_refused_before_parsing() -> None:
    with pytest.raises(
        PayloadTooLargeError, match="request body of 1001 bytes is over the limit of 1000"
    ):
        parse_json_object(b" " * 1001, 1000)


@pytest.mark.parametrize(
    "data, words",
    [
        ({}, "code is required"),
        ({"code": 1}, "code must be a string, got number"),
        ({"code": None}, "code must be a string, got null"),
        ({"code": "x", "stdin": ["a"]}, "stdin must be a string, got array"),
        ({"code": "x", "use_cache": "yes"}, "use_cache must be a boolean, got string"),
        ({"code": "x", "use_cache": 1}, "use_cache must be a boolean, got number"),
        ({"code": "x", "timelimit": 3}, "unknown field 'timelimit'"),
        ({"code": "x", "cpu_limit": 1}, "unknown field 'cpu_limit'"),
        ({"code": "\ud800"}, r"code is not valid Unicode text \(lone surrogate at position 0\)"),
        ({"code": "x", "stdin": "ab\udfff"}, "stdin is not valid Unicode text"),
    ],
)
def test_bad_fields_are_named(data: dict, words: str) -> None:
    with pytest.raises(BadRequestError, match=words):
        parse_execute(data, BOUNDS)


@pytest.mark.parametrize(
    "data, words",
    [
        ({"code": "x", "time_limit": 0}, "time_limit must be positive"),
        ({"code": "x", "time_limit": True}, "time_limit must be a number"),
        ({"code": "x", "time_limit": None}, "time_limit must be a positive number"),
        ({"code": "x", "memory_limit": "lots"}, "memory_limit must be a positive size"),
        ({"code": "x", "memory_limit": 4}, "memory_limit of 4 MiB is below the minimum"),
    ],
)
def test_nonsense_limits_are_limit_errors_naming_the_field(data: dict, words: str) -> None:
    with pytest.raises(LimitError, match=words):
        parse_execute(data, BOUNDS)


def test_sizes_are_counted_in_utf8_bytes() -> None:
    assert parse_execute({"code": "x" * 100}, BOUNDS).request.code == "x" * 100
    with pytest.raises(
        PayloadTooLargeError, match="code is 101 bytes, over the limit of 100 bytes"
    ):
        parse_execute({"code": "x" * 101}, BOUNDS)
    # 51 characters, 102 bytes: characters would pass, bytes do not.
    with pytest.raises(PayloadTooLargeError, match="code is 102 bytes"):
        parse_execute({"code": "é" * 51}, BOUNDS)
    with pytest.raises(PayloadTooLargeError, match="stdin is 51 bytes, over the limit of 50 bytes"):
        parse_execute({"code": "", "stdin": "s" * 51}, BOUNDS)


def test_limits_start_from_the_defaults_and_are_clamped_with_notes() -> None:
    plain = parse_execute({"code": "pass"}, BOUNDS)
    assert plain.request.limits == Limits()
    assert plain.notes == () and plain.use_cache is True and plain.request.stdin == ""

    asked = parse_execute(
        {"code": "pass", "time_limit": "5s", "memory_limit": "128m", "use_cache": False}, BOUNDS
    )
    assert (asked.request.limits.time_s, asked.request.limits.memory_mb) == (5.0, 128)
    assert asked.notes == () and asked.use_cache is False

    greedy = parse_execute({"code": "pass", "time_limit": 600, "memory_limit": "2g"}, BOUNDS)
    assert (greedy.request.limits.time_s, greedy.request.limits.memory_mb) == (60.0, 512)
    assert greedy.notes == (
        "memory_limit 2048 MiB is above the admin maximum of 512 MiB; using 512",
        "time_limit 600 s is above the admin maximum of 60 s; using 60",
    )


@pytest.mark.parametrize(
    "engine, saturated, expected",
    [
        ({"enabled": True, "reachable": True, "image_present": True}, False, "ok"),
        ({"enabled": True, "reachable": True, "image_present": True}, True, "degraded"),
        ({"enabled": True, "reachable": True, "image_present": False}, False, "down"),
        ({"enabled": True, "reachable": False, "image_present": False}, False, "down"),
        ({"enabled": False, "reachable": True, "image_present": True}, False, "down"),
    ],
)
def test_health_status(engine: dict, saturated: bool, expected: str) -> None:
    assert health_status(engine, saturated) == expected


# -- what a request keeps, and the exact edges ------------------------------------------------------


def test_a_body_of_exactly_the_cap_is_parsed() -> None:
    body = b'{"code": "' + b"x" * 990 + b'"}'
    assert len(body) == 1002
    assert parse_json_object(body, 1002) == {"code": "x" * 990}
    with pytest.raises(PayloadTooLargeError):
        parse_json_object(body, 1001)


@pytest.mark.parametrize(
    "body, message",
    [
        (b" \n", "request body is empty; expected a JSON object"),
        (b"\xff", "request body is not UTF-8 text"),
        (
            b"[" * 100_000,
            "request body nests JSON arrays or objects too deeply; expected an object of "
            "plain fields",
        ),
    ],
)
def test_refusals_of_a_body_say_what_was_expected(body: bytes, message: str) -> None:
    with pytest.raises(BadRequestError) as err:
        parse_json_object(body, 1_000_000)
    assert str(err.value) == message


def test_types_outside_json_are_named_by_their_python_name() -> None:
    assert [type_name(v) for v in ({}, [], "", True, 1, 1.5, None)] == [
        "object",
        "array",
        "string",
        "boolean",
        "number",
        "number",
        "null",
    ]
    assert type_name(b"x") == "bytes" and type_name({1}) == "set"


def test_an_unknown_field_lists_the_known_ones() -> None:
    with pytest.raises(BadRequestError) as err:
        parse_execute({"code": "x", "timeout": 3}, BOUNDS)
    assert str(err.value) == (
        "unknown field 'timeout'; known fields: code, stdin, time_limit, "
        "memory_limit, use_cache, exercise_id"
    )


def test_stdin_and_the_exercise_go_into_the_request() -> None:
    payload = parse_execute(
        {"code": "print(input())", "stdin": "4\n", "exercise_id": "squares"}, BOUNDS
    )
    assert payload.request.stdin == "4\n" and payload.request.code == "print(input())"
    assert payload.exercise_id == "squares"
    assert parse_execute({"code": "x", "exercise_id": ""}, BOUNDS).exercise_id is None
    assert parse_execute({"code": "x"}, BOUNDS).exercise_id is None


def test_the_exercise_id_is_at_most_256_bytes_and_a_string() -> None:
    assert parse_execute({"code": "x", "exercise_id": "e" * 256}, BOUNDS).exercise_id == "e" * 256
    with pytest.raises(
        PayloadTooLargeError, match="^exercise_id is 257 bytes, over the limit of 256 bytes$"
    ):
        parse_execute({"code": "x", "exercise_id": "e" * 257}, BOUNDS)
    with pytest.raises(BadRequestError, match="^exercise_id must be a string, got number$"):
        parse_execute({"code": "x", "exercise_id": 7}, BOUNDS)


def test_the_admins_default_limits_are_the_start() -> None:
    defaults = Limits(memory_mb=200, cpus=0.25, time_s=7, pids=20, nofile=64)
    bounds = RequestBounds(
        max_code_bytes=100,
        max_stdin_bytes=50,
        default_limits=defaults,
        max_limits=Limits(memory_mb=512, time_s=60),
    )
    assert parse_execute({"code": "pass"}, bounds).request.limits == defaults
    asked = parse_execute({"code": "pass", "time_limit": 9}, bounds).request.limits
    assert asked == Limits(memory_mb=200, cpus=0.25, time_s=9, pids=20, nofile=64)


def test_a_submission_is_only_its_code() -> None:
    assert parse_submit({"code": "print(1)"}, BOUNDS) == "print(1)"
    with pytest.raises(BadRequestError, match="^code is required$"):
        parse_submit({}, BOUNDS)
    with pytest.raises(BadRequestError, match="^unknown field 'stdin'; known fields: code$"):
        parse_submit({"code": "x", "stdin": "1"}, BOUNDS)
    with pytest.raises(
        PayloadTooLargeError, match="^code is 101 bytes, over the limit of 100 bytes$"
    ):
        parse_submit({"code": "x" * 101}, BOUNDS)


def test_the_reply_is_the_result_with_the_notes() -> None:
    result = ExecutionResult(Status.OK, stdout="hi\n", exit_code=0)
    reply = execute_reply(result, ("time_limit lowered",))
    assert reply == {**result.to_dict(), "notes": ["time_limit lowered"]}
