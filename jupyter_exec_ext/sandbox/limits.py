"""Resource limits of one run: parsing from user or admin input, validation, clamping to maxima."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

from .errors import LimitError

MIN_MEMORY_MB = 16
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_UNIT_MB = {"": 1.0, "k": 1 / 1024, "m": 1.0, "g": 1024.0, "t": 1024.0 * 1024.0}
_SECONDS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*s?\s*$", re.IGNORECASE)


def _reject_bool(field: str, value: Any) -> None:
    if isinstance(value, bool):
        raise LimitError(f"{field} must be a number, got {value!r}")


def parse_memory_mb(value: Any, field: str = "memory_limit") -> int:
    """Parses a memory size into MiB: ``"256m"``, ``"1g"``, ``"512MiB"``, or a plain number of MiB.

    Raises:
        LimitError: the value is not a positive size, or is below the minimum Docker accepts.
    """
    _reject_bool(field, value)
    if isinstance(value, (int, float)):
        mb = float(value)
    elif isinstance(value, str) and (m := _SIZE.match(value)):
        mb = float(m.group(1)) * _UNIT_MB[m.group(2).lower()]
    else:
        raise LimitError(
            f"{field} must be a positive size such as '256m', '1g' or a number of MiB, got {value!r}"
        )
    if not math.isfinite(mb) or mb <= 0:
        raise LimitError(f"{field} must be positive, got {value!r}")
    mb_int = int(math.ceil(mb))
    if mb_int < MIN_MEMORY_MB:
        raise LimitError(f"{field} of {mb_int} MiB is below the minimum of {MIN_MEMORY_MB} MiB")
    return mb_int


def parse_positive_float(value: Any, field: str, *, seconds: bool = False) -> float:
    """Parses a positive number (``"0.5"``, ``2``; with ``seconds``, also ``"30s"``)."""
    _reject_bool(field, value)
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        m = _SECONDS.match(value) if seconds else None
        try:
            number = float(m.group(1)) if m else float(value)
        except ValueError:
            raise LimitError(f"{field} must be a positive number, got {value!r}") from None
    else:
        raise LimitError(f"{field} must be a positive number, got {value!r}")
    if not math.isfinite(number) or number <= 0:
        raise LimitError(f"{field} must be positive, got {value!r}")
    return number


def parse_positive_int(value: Any, field: str) -> int:
    """Parses a positive whole number (``50``, ``"1024"``)."""
    _reject_bool(field, value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int):
        raise LimitError(f"{field} must be a positive whole number, got {value!r}")
    if value <= 0:
        raise LimitError(f"{field} must be positive, got {value!r}")
    return value


# Public field name (REST API, exercise metadata, config) -> (attribute, parser).
_FIELDS = {
    "memory_limit": ("memory_mb", parse_memory_mb),
    "cpu_limit": ("cpus", lambda v, f: parse_positive_float(v, f)),
    "time_limit": ("time_s", lambda v, f: parse_positive_float(v, f, seconds=True)),
    "pids_limit": ("pids", parse_positive_int),
    "nofile_limit": ("nofile", parse_positive_int),
}
_UNITS = {
    "memory_mb": "MiB",
    "cpus": "CPU",
    "time_s": "s",
    "pids": "processes",
    "nofile": "open files",
}


@dataclass(frozen=True)
class Limits:
    """What one run may use. Defaults are the seed's: 256 MiB, 0.5 CPU, 30 s, 50 processes, 1024 files."""

    memory_mb: int = 256
    cpus: float = 0.5
    time_s: float = 30.0
    pids: int = 50
    nofile: int = 1024

    def __post_init__(self) -> None:
        for public, (attr, parse) in _FIELDS.items():
            object.__setattr__(self, attr, parse(getattr(self, attr), public))

    def can_serve(self, run: Limits) -> bool:
        """Whether a container made with these limits may serve a run with ``run``'s: the limits
        the engine set on the container (memory, CPU, processes, open files) must be the run's
        exactly, and the run's time limit not above the container's (the runner enforces the
        run's own; the container's sets its expiry)."""
        return (self.memory_mb, self.cpus, self.pids, self.nofile) == (
            run.memory_mb,
            run.cpus,
            run.pids,
            run.nofile,
        ) and run.time_s <= self.time_s

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, base: Limits | None = None) -> Limits:
        """Builds limits from public field names, starting from ``base`` (defaults if None).

        Raises:
            LimitError: an unknown field, or a value that is not sensible; the message names it.
        """
        base = base or cls()
        if not data:
            return base
        if not isinstance(data, Mapping):
            raise LimitError(f"limits must be an object, got {type(data).__name__}")
        changes: dict[str, Any] = {}
        for key, value in data.items():
            if key not in _FIELDS:
                raise LimitError(f"unknown limit {key!r}; known limits: {', '.join(_FIELDS)}")
            attr, parse = _FIELDS[key]
            changes[attr] = parse(value, key)
        return replace(base, **changes)

    def clamped(self, maxima: Limits) -> tuple[Limits, list[str]]:
        """Returns these limits with every value lowered to the admin maximum, and a note per change."""
        changes, notes = {}, []
        for f in fields(self):
            value, top = getattr(self, f.name), getattr(maxima, f.name)
            if value > top:
                changes[f.name] = top
                public = next(k for k, (a, _) in _FIELDS.items() if a == f.name)
                notes.append(
                    f"{public} {value:g} {_UNITS[f.name]} is above the admin maximum of "
                    f"{top:g} {_UNITS[f.name]}; using {top:g}"
                )
        return replace(self, **changes), notes

    def to_dict(self) -> dict[str, Any]:
        """Public field names with canonical values; ``Limits.from_mapping`` reads it back."""
        return {
            "memory_limit": f"{self.memory_mb}m",
            "cpu_limit": self.cpus,
            "time_limit": self.time_s,
            "pids_limit": self.pids,
            "nofile_limit": self.nofile,
        }
