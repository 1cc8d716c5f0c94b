"""Comparison of a test's expected output with what the student's code printed (on the host)."""

from __future__ import annotations

import difflib
import math
import re
from typing import Optional

MAX_SHOWN = 2000


def normalize_strip(text: str) -> str:
    """Leading/trailing blank space of the whole output and trailing spaces of each line do not count."""
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def _as_float(token: str) -> Optional[float]:
    try:
        return float(token)
    except ValueError:
        return None


def outputs_match(expected: str, actual: str, mode: str = "strip", tolerance: float = 1e-6) -> bool:
    """Whether ``actual`` matches ``expected`` under ``mode``.

    Modes: ``exact`` (byte for byte), ``strip`` (see :func:`normalize_strip`), ``float`` (tokens
    equal, numbers within ``tolerance``, absolute or relative), ``regex`` (the stripped output
    matches the pattern in full).
    """
    if mode == "exact":
        return actual == expected
    if mode == "strip":
        return normalize_strip(actual) == normalize_strip(expected)
    if mode == "float":
        want, got = expected.split(), actual.split()
        if len(want) != len(got):
            return False
        for w, g in zip(want, got):
            if w == g:
                continue
            fw, fg = _as_float(w), _as_float(g)
            if (
                fw is None
                or fg is None
                or not math.isclose(fw, fg, rel_tol=tolerance, abs_tol=tolerance)
            ):
                return False
        return True
    if mode == "regex":
        return re.fullmatch(expected, actual.strip(), re.DOTALL) is not None
    raise ValueError(f"unknown compare mode {mode!r}")


def _shorten(text: str) -> str:
    return (
        text
        if len(text) <= MAX_SHOWN
        else text[:MAX_SHOWN] + f"… ({len(text) - MAX_SHOWN} more characters)"
    )


def describe_mismatch(expected: str, actual: str, mode: str) -> str:
    """A student-readable message: expected vs actual, or a diff when either spans several lines."""
    if mode == "regex":
        return f"output does not match the pattern {_shorten(expected)!r}; got {_shorten(actual)!r}"
    if not actual.strip():
        return f"expected {_shorten(expected.strip())!r} but nothing was printed"
    if "\n" not in expected.strip() and "\n" not in actual.strip():
        return f"expected {_shorten(expected.strip())!r} but got {_shorten(actual.strip())!r}"
    diff = difflib.unified_diff(
        expected.strip().splitlines(),
        actual.strip().splitlines(),
        "expected",
        "actual",
        lineterm="",
        n=2,
    )
    return "output differs from the expected output:\n" + _shorten("\n".join(diff))
