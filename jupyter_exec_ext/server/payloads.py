"""Turns untrusted JSON request bodies into sandbox requests (errors name the bad field), and
results into replies.

Kept apart from the handlers so that the rules (sizes, types, limit clamping) are read and tested in
one place, and so the exercise routes reuse the same checks for their ``code`` field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from ..sandbox import ExecutionRequest, ExecutionResult, Limits
from .errors import BadRequestError, PayloadTooLargeError

#: Fields ``POST execute`` accepts; anything else is a 400, so a typo never passes silently.
EXECUTE_FIELDS = ("code", "stdin", "time_limit", "memory_limit", "use_cache", "exercise_id")
#: Fields ``POST exercises/{id}/submit`` accepts.
SUBMIT_FIELDS = ("code",)
#: Limits a request may ask for (the others are the admin's alone).
REQUESTABLE_LIMITS = ("time_limit", "memory_limit")
_TYPE_NAMES = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "number",
    float: "number",
    type(None): "null",
}


@dataclass(frozen=True)
class RequestBounds:
    """What a request may ask for.

    Args:
        max_code_bytes: largest ``code`` in UTF-8 bytes (413 above it).
        max_stdin_bytes: largest ``stdin`` in UTF-8 bytes (413 above it).
        default_limits: limits of a run that asks for none.
        max_limits: admin maxima; requested limits above them are clamped, with a note.
    """

    max_code_bytes: int
    max_stdin_bytes: int
    default_limits: Limits
    max_limits: Limits

    @property
    def max_body_bytes(self) -> int:
        """Cap on a raw body, checked before parsing: JSON escaping can grow text up to six-fold
        (``\\u00e9``), and the other fields are small."""
        return 6 * (self.max_code_bytes + self.max_stdin_bytes) + 16 * 1024


@dataclass(frozen=True)
class ExecutePayload:
    """A validated ``POST execute`` body.

    Args:
        request: what the sandbox runs, limits already clamped to the admin maxima.
        notes: one sentence per limit that was lowered to its maximum (reported to the client).
        use_cache: whether the client accepts a cached result; honoured once the cache layer lands.
    """

    request: ExecutionRequest
    notes: tuple[str, ...]
    use_cache: bool
    #: The exercise notebook the run comes from: its data files go into the run (resolved by the
    #: server from the exercise, never from a path the client sends).
    exercise_id: Optional[str] = None


def type_name(value: Any) -> str:
    """The JSON name of a parsed value's type, for error messages."""
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def parse_json_object(body: bytes, max_bytes: int) -> dict[str, Any]:
    """Parses a request body that must be one JSON object.

    Args:
        body: the raw body.
        max_bytes: larger bodies are refused before parsing.

    Returns:
        The object.

    Raises:
        PayloadTooLargeError: the body is over ``max_bytes``.
        BadRequestError: the body is empty, not UTF-8, not JSON, nested too deeply, or not an
            object.
    """
    if len(body) > max_bytes:
        raise PayloadTooLargeError(
            f"request body of {len(body)} bytes is over the limit of {max_bytes} bytes"
        )
    if not body.strip():
        raise BadRequestError("request body is empty; expected a JSON object")
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequestError("request body is not UTF-8 text") from None
    except ValueError as e:
        raise BadRequestError(f"request body is not valid JSON: {e}") from None
    except RecursionError:
        # The decoder recurses once per level: thousands of nested [ or { end its stack.
        raise BadRequestError(
            "request body nests JSON arrays or objects too deeply; expected an "
            "object of plain fields"
        ) from None
    if not isinstance(data, dict):
        raise BadRequestError(f"request body must be a JSON object, got {type_name(data)}")
    return data


def text_field(data: Mapping[str, Any], name: str, max_bytes: int, *, required: bool) -> str:
    """Reads a string field, checking its type, its size in UTF-8 bytes and that it is valid text.

    Returns:
        The text; ``""`` when the field is optional and absent.

    Raises:
        BadRequestError: missing when required, not a string, or holding a lone surrogate.
        PayloadTooLargeError: longer than ``max_bytes`` once encoded.
    """
    if name not in data:
        if required:
            raise BadRequestError(f"{name} is required")
        return ""
    value = data[name]
    if not isinstance(value, str):
        raise BadRequestError(f"{name} must be a string, got {type_name(value)}")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as e:
        # JSON can spell a lone surrogate (\ud800) that no program can read or print.
        raise BadRequestError(
            f"{name} is not valid Unicode text (lone surrogate at position {e.start})"
        ) from None
    if size > max_bytes:
        raise PayloadTooLargeError(f"{name} is {size} bytes, over the limit of {max_bytes} bytes")
    return value


def bool_field(data: Mapping[str, Any], name: str, default: bool) -> bool:
    """Reads an optional boolean field.

    Raises:
        BadRequestError: the field is present and not ``true``/``false``.
    """
    if name not in data:
        return default
    value = data[name]
    if not isinstance(value, bool):
        raise BadRequestError(f"{name} must be a boolean, got {type_name(value)}")
    return value


def reject_unknown_fields(data: Mapping[str, Any], known: tuple[str, ...]) -> None:
    """Raises BadRequestError naming the first field not in ``known``."""
    for key in data:
        if key not in known:
            raise BadRequestError(f"unknown field {key!r}; known fields: {', '.join(known)}")


def requested_limits(
    data: Mapping[str, Any], bounds: RequestBounds
) -> tuple[Limits, tuple[str, ...]]:
    """The limits a body asks for, on top of the defaults, clamped to the admin maxima.

    Clamping (rather than refusing) keeps a notebook written for a generous server working on a
    stricter one; the notes tell the student what was lowered.

    Returns:
        The limits to run with, and one note per limit that was lowered.

    Raises:
        LimitError: a value that is not a sensible limit; the message names the field.
    """
    asked = {key: data[key] for key in REQUESTABLE_LIMITS if key in data}
    limits = Limits.from_mapping(asked, base=bounds.default_limits)
    clamped, notes = limits.clamped(bounds.max_limits)
    return clamped, tuple(notes)


def parse_execute(data: Mapping[str, Any], bounds: RequestBounds) -> ExecutePayload:
    """Validates a ``POST execute`` body.

    Args:
        data: the parsed JSON object.
        bounds: sizes and limits the admin allows.

    Returns:
        The sandbox request, the clamping notes and the cache choice.

    Raises:
        BadRequestError: unknown field, missing ``code``, or a field of the wrong type.
        PayloadTooLargeError: ``code`` or ``stdin`` over its size limit.
        LimitError: ``time_limit`` or ``memory_limit`` is not a sensible value.
    """
    reject_unknown_fields(data, EXECUTE_FIELDS)
    code = text_field(data, "code", bounds.max_code_bytes, required=True)
    stdin = text_field(data, "stdin", bounds.max_stdin_bytes, required=False)
    use_cache = bool_field(data, "use_cache", default=True)
    exercise_id = text_field(data, "exercise_id", 256, required=False) or None
    limits, notes = requested_limits(data, bounds)
    return ExecutePayload(
        ExecutionRequest(code=code, stdin=stdin, limits=limits), notes, use_cache, exercise_id
    )


def parse_submit(data: Mapping[str, Any], bounds: RequestBounds) -> str:
    """Validates a ``POST exercises/{id}/submit`` body and returns its ``code``.

    Raises:
        BadRequestError: unknown field, missing ``code``, or not a string.
        PayloadTooLargeError: ``code`` over its size limit.
    """
    reject_unknown_fields(data, SUBMIT_FIELDS)
    return text_field(data, "code", bounds.max_code_bytes, required=True)


def execute_reply(result: ExecutionResult, notes: tuple[str, ...]) -> dict[str, Any]:
    """The ``POST execute`` answer: the result's fields plus the clamping ``notes``."""
    reply = result.to_dict()
    reply["notes"] = list(notes)
    return reply


def health_status(engine: Mapping[str, Any], saturated: bool) -> str:
    """``down`` when nothing can run (sandbox disabled, engine unreachable, image missing),
    ``degraded`` when runs are waiting for a free slot, ``ok`` otherwise.

    Args:
        engine: what ``DockerSandbox.status()`` reported.
        saturated: every run slot is busy and runs are queued.
    """
    if not (engine.get("enabled") and engine.get("reachable") and engine.get("image_present")):
        return "down"
    return "degraded" if saturated else "ok"
