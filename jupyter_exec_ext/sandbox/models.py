"""The one request shape and the one result shape of the sandbox."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from typing import Any, Optional, Tuple

from .limits import Limits
from .policy import CodePolicy

#: What a data file may be called: a plain name in the working directory, no folders.
DATA_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")


class Status(str, enum.Enum):
    """How a run ended. Student code failing is a status, never an exception."""

    OK = "ok"
    RUNTIME_ERROR = "runtime_error"
    SYNTAX_ERROR = "syntax_error"
    TIMEOUT = "timeout"
    MEMORY_LIMIT = "memory_limit"
    OUTPUT_LIMIT = "output_limit"
    POLICY_VIOLATION = "policy_violation"
    INTERNAL_ERROR = "internal_error"
    CANCELLED = "cancelled"  # a live run stopped by its user (or its client went away)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Check:
    """A test's code, run after the program by the trusted harness against a fresh run of it.

    Args:
        code: Python source; names it uses but does not define are looked up in the program
            (plain data is copied, other objects are reached through calls).
        timeout_s: wall-clock limit of this snippet alone.
    """

    code: str
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not isinstance(self.code, str):
            raise TypeError(f"check code must be a string, got {type(self.code).__name__}")
        if not self.timeout_s > 0:
            raise ValueError(f"check timeout must be positive, got {self.timeout_s!r}")


class CheckOutcome(str, enum.Enum):
    """How one check ended, as observed by the runner (never as claimed by the checked code)."""

    COMPLETED = "completed"  # its code returned normally
    RAISED = "raised"  # its code raised; see ``error``
    TIMEOUT = "timeout"
    MEMORY_LIMIT = "memory_limit"
    OUTPUT_LIMIT = "output_limit"
    EXITED = "exited"  # the code's process ended before the test finished (sys.exit, crash)
    PROTOCOL_ERROR = (
        "protocol_error"  # the code answered the test nonsense, or a frame broke the protocol
    )
    NOT_RUN = "not_run"  # the program never got ready, or its process is gone

    def __str__(self) -> str:
        return self.value


@dataclass
class CheckResult:
    """What one check did. ``error`` has ``type``, ``message``, ``traceback``, ``assertion``;
    ``message`` says why a check ended as it did when that is not an error of the test's code."""

    outcome: CheckOutcome
    stdout: str = ""
    stderr: str = ""
    error: Optional[dict] = None
    duration_ms: int = 0
    message: str = ""


@dataclass(frozen=True)
class DataFile:
    """A file the program finds, read-only, in its working directory (an exercise's data)."""

    name: str
    data: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not DATA_FILE_NAME.match(self.name):
            raise ValueError(
                f"data file name {self.name!r} must be a plain file name (letters, digits, "
                "'.', '_', '-'; no folders)"
            )
        if not isinstance(self.data, bytes):
            raise TypeError(f"data file {self.name!r}: data must be bytes")


@dataclass(frozen=True)
class ExecutionRequest:
    """One piece of Python source to run, with what it reads on stdin and what it may use.

    Args:
        code: the Python source.
        stdin: text the program reads on standard input.
        limits: resource limits; the sandbox clamps them to its admin maxima.
        policy: an optional code policy checked before anything runs (pedagogical, not security).
        checks: tests to run after the program, each in the trusted harness against a fresh run of it.
        reuse_key: who the run is for (a user name). Runs with the same key may run one after
            another in one container, reset in between; a run with checks (a grading) may take
            that user's reset container but never leaves one for later. None gets a container
            that ran nothing before.
        files: data files placed read-only in the program's working directory (and the tests').
    """

    code: str
    stdin: str = ""
    limits: Limits = field(default_factory=Limits)
    policy: Optional[CodePolicy] = None
    checks: Tuple[Check, ...] = ()
    reuse_key: Optional[str] = None
    files: Tuple[DataFile, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.code, str):
            raise TypeError(f"code must be a string, got {type(self.code).__name__}")
        if not isinstance(self.stdin, str):
            raise TypeError(f"stdin must be a string, got {type(self.stdin).__name__}")


@dataclass
class ExecutionResult:
    """What happened: status, the output that was kept, and the limits the run actually had.

    ``message`` explains a status other than ``ok`` in words a student can act on; ``truncated`` says
    that output was cut at the per-stream cap.
    """

    status: Status
    stdout: str = ""
    stderr: str = ""
    exit_code: Optional[int] = None
    duration_ms: int = 0
    truncated: bool = False
    message: str = ""
    limits: Optional[Limits] = None
    cached: bool = False
    checks: list = field(default_factory=list)
    #: Images the program showed (``plt.show()``, figures open at its end): ``{"mime", "data"}``
    #: with base64 data, in order.
    displays: list = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "exit_code": self.exit_code,
            "duration_ms": self.duration_ms,
            "truncated": self.truncated,
            "message": self.message,
            "cached": self.cached,
            "limits": self.limits.to_dict() if self.limits else None,
            **({"displays": [dict(d) for d in self.displays]} if self.displays else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExecutionResult:
        limits = data.get("limits")
        return cls(
            status=Status(data["status"]),
            stdout=data.get("stdout", ""),
            stderr=data.get("stderr", ""),
            exit_code=data.get("exit_code"),
            duration_ms=int(data.get("duration_ms", 0)),
            truncated=bool(data.get("truncated", False)),
            message=data.get("message", ""),
            limits=Limits.from_mapping(limits) if limits else None,
            cached=bool(data.get("cached", False)),
            displays=[
                {"mime": str(d["mime"]), "data": str(d["data"])}
                for d in data.get("displays") or []
                if isinstance(d, dict)
            ],
        )
