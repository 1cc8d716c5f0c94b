"""Request parsing rules: every refusal names the field, sizes are UTF-8 bytes, limits are clamped."""

from __future__ import annotations

import pytest

from jupyter_exec_ext.sandbox import LimitError, Limits
from jupyter_exec_ext.server.errors import BadRequestError, PayloadTooLargeError
from jupyter_exec_ext.server.payloads import (
    RequestBounds,
    health_status,
    parse_execute,
    parse_json_object,
)

BOUNDS = RequestBounds(max_code_bytes=100, max_stdin_bytes=50, default_limits=Limits(),
                       max_limits=Limits(memory_mb=512, time_s=60))


@pytest.mark.parametrize("body, words", [
    (b"", "empty"),
    (b"   ", "empty"),
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe", "not UTF-8"),
    (b"[1, 2]", "must be a JSON object, got array"),
    (b'"code"', "must be a JSON object, got string"),
    (b"null", "must be a JSON object, got null"),
])
def test_body_that_is_not_a_json_object_is_refused(body: bytes, words: str) -> None:
    with pytest.raises(BadRequestError, match=words):
        parse_json_object(body, 1000)


@pytest.mark.parametrize("body", [
    b'{"code": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b"{" + b'"a": {' * 100_000 + b"}" * 100_001,
])
def test_deeply_nested_body_is_refused_not_a_crash(body: bytes) -> None:
    with pytest.raises(BadRequestError, match="request body nests JSON arrays or objects too deeply"):
        parse_json_object(body, 1_000_000)


def test_body_over_the_cap_is_refused_before_parsing() -> None:
    with pytest.raises(PayloadTooLargeError, match="request body of 1001 bytes is over the limit of 1000"):
        parse_json_object(b" " * 1001, 1000)


@pytest.mark.parametrize("data, words", [
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
])
def test_bad_fields_are_named(data: dict, words: str) -> None:
    with pytest.raises(BadRequestError, match=words):
        parse_execute(data, BOUNDS)


@pytest.mark.parametrize("data, words", [
    ({"code": "x", "time_limit": 0}, "time_limit must be positive"),
    ({"code": "x", "time_limit": True}, "time_limit must be a number"),
    ({"code": "x", "time_limit": None}, "time_limit must be a positive number"),
    ({"code": "x", "memory_limit": "lots"}, "memory_limit must be a positive size"),
    ({"code": "x", "memory_limit": 4}, "memory_limit of 4 MiB is below the minimum"),
])
def test_nonsense_limits_are_limit_errors_naming_the_field(data: dict, words: str) -> None:
    with pytest.raises(LimitError, match=words):
        parse_execute(data, BOUNDS)


def test_sizes_are_counted_in_utf8_bytes() -> None:
    assert parse_execute({"code": "x" * 100}, BOUNDS).request.code == "x" * 100
    with pytest.raises(PayloadTooLargeError, match="code is 101 bytes, over the limit of 100 bytes"):
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

    asked = parse_execute({"code": "pass", "time_limit": "5s", "memory_limit": "128m",
                           "use_cache": False}, BOUNDS)
    assert (asked.request.limits.time_s, asked.request.limits.memory_mb) == (5.0, 128)
    assert asked.notes == () and asked.use_cache is False

    greedy = parse_execute({"code": "pass", "time_limit": 600, "memory_limit": "2g"}, BOUNDS)
    assert (greedy.request.limits.time_s, greedy.request.limits.memory_mb) == (60.0, 512)
    assert greedy.notes == (
        "memory_limit 2048 MiB is above the admin maximum of 512 MiB; using 512",
        "time_limit 600 s is above the admin maximum of 60 s; using 60",
    )


@pytest.mark.parametrize("engine, saturated, expected", [
    ({"enabled": True, "reachable": True, "image_present": True}, False, "ok"),
    ({"enabled": True, "reachable": True, "image_present": True}, True, "degraded"),
    ({"enabled": True, "reachable": True, "image_present": False}, False, "down"),
    ({"enabled": True, "reachable": False, "image_present": False}, False, "down"),
    ({"enabled": False, "reachable": True, "image_present": True}, False, "down"),
])
def test_health_status(engine: dict, saturated: bool, expected: str) -> None:
    assert health_status(engine, saturated) == expected
