"""Errors of the REST layer that carry their own HTTP status; the base handler answers them."""

from __future__ import annotations

from typing import Optional


class ApiError(Exception):
    """A request the API refuses, with the HTTP status to answer and a message naming the problem.

    Args:
        message: what is wrong, in words a student or an admin can act on.
        status: the HTTP status; subclasses fix it.
    """

    status: int = 400
    #: A word a client can act on, answered as ``reason`` (None: the HTTP reason phrase).
    reason: Optional[str] = None

    def __init__(self, message: str, *, status: Optional[int] = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class BadRequestError(ApiError):
    """The body is not JSON, not an object, or a field is missing or of the wrong type (400)."""

    status = 400


class PayloadTooLargeError(ApiError):
    """The code, the stdin or the whole body is over its size limit (413)."""

    status = 413


class RateLimitedError(ApiError):
    """The user already has as many runs in flight or queued as the admin allows (429).

    Args:
        message: what limit was hit.
        retry_after_s: a hint for the ``Retry-After`` header.
    """

    status = 429

    def __init__(self, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
