"""The grader: a submission and an exercise in, a scored result out.

The student's code runs once in the sandbox; each test's code then runs in a trusted harness
process (another uid) against a fresh run of the student's code, reaching it only through calls
that return plain data, with its own timeout (the sandbox's "checks"). Expected outputs stay on the
host and are compared here, so they never enter the container; hidden tests report only pass or
fail. Requirement rules (how the exercise must be solved) are checked here on the code's AST and
reported as visible tests of their own.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any, Optional, Protocol

from ..sandbox.limits import Limits
from ..sandbox.models import (
    Check,
    CheckOutcome,
    CheckResult,
    ExecutionRequest,
    ExecutionResult,
    Status,
)
from .compare import describe_mismatch, outputs_match
from .exercise import Exercise, ExerciseTest, RequirementTest, _points

log = logging.getLogger(__name__)

PASSED, FAILED, ERROR, TIMEOUT, MEMORY_LIMIT = (
    "passed",
    "failed",
    "error",
    "timeout",
    "memory_limit",
)
MAX_ACTUAL_SHOWN = 10_000


class SandboxLike(Protocol):
    def run(self, request: ExecutionRequest) -> ExecutionResult: ...


@dataclass
class TestResult:
    """The verdict on one test, as a student may see it (hidden tests carry no details)."""

    __test__ = False  # not a pytest test class, whatever its name says

    name: str
    status: str
    points: float
    max_points: float
    hidden: bool
    message: str = ""
    expected: Optional[str] = None
    actual: Optional[str] = None

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "status": self.status,
            "points": self.points,
            "max_points": self.max_points,
            "hidden": self.hidden,
            "message": self.message,
        }
        if not self.hidden and self.expected is not None:
            data["expected"] = self.expected
            data["actual"] = self.actual
        return data


def redact(test: TestResult) -> TestResult:
    """What a student may see of a verdict: a hidden test's pass or fail and points only (a
    message, an exception or an output could reveal the hidden test); a visible test as is."""
    if not test.hidden:
        return test
    passed = test.status == PASSED
    return TestResult(
        name=test.name,
        status=PASSED if passed else FAILED,
        points=test.points,
        max_points=test.max_points,
        hidden=True,
        message="hidden test passed" if passed else "hidden test failed",
    )


@dataclass
class GradeResult:
    """A graded submission. ``status`` is how the student's code itself ran (``ok`` when it
    defined everything without error); each test has its own status."""

    exercise_id: str
    status: Status
    score: float
    max_score: float
    tests: list = field(default_factory=list)
    stdout: str = ""
    stderr: str = ""
    duration_ms: int = 0
    message: str = ""

    def redacted(self) -> GradeResult:
        """The result as a student may see it (``redact`` on every test)."""
        return dataclasses.replace(self, tests=[redact(t) for t in self.tests])

    @property
    def all_passed(self) -> bool:
        return bool(self.tests) and all(t.status == PASSED for t in self.tests)

    def to_dict(self) -> dict[str, Any]:
        return {
            "exercise_id": self.exercise_id,
            "status": self.status.value,
            "score": self.score,
            "max_score": self.max_score,
            "tests": [t.to_dict() for t in self.tests],
            "stdout": self.stdout,
            "stderr": self.stderr,
            "duration_ms": self.duration_ms,
            "message": self.message,
        }


class Grader:
    """Grades submissions in a sandbox (blocking: call it from a worker thread on a server).

    Args:
        sandbox: anything with ``run(ExecutionRequest) -> ExecutionResult`` (the Docker sandbox).
        default_limits: the base an exercise's own limits are laid over.
    """

    def __init__(
        self,
        sandbox: SandboxLike,
        default_limits: Optional[Limits] = None,
        data_files_bytes: Optional[int] = None,
    ):
        self.sandbox = sandbox
        self.default_limits = default_limits or Limits()
        self.data_files_bytes = data_files_bytes

    def grade(
        self,
        exercise: Exercise,
        code: str,
        *,
        reveal_hidden: bool = False,
        user: Optional[str] = None,
    ) -> GradeResult:
        """Runs ``code`` against every test of ``exercise`` and scores it.

        Args:
            reveal_hidden: give hidden tests' details too (instructor tools only, never students).
            user: who submits; the sandbox may grade in this user's own container, reset since
                their last run (never another user's). None: a container that ran nothing before.

        Raises:
            SandboxUnavailableError: the sandbox cannot run anything (the caller answers 503).
            ExerciseError: a data file of the exercise is missing or too big.
        """
        request = ExecutionRequest(
            code=code,
            files=exercise.read_data_files(self.data_files_bytes),
            limits=exercise.resolved_limits(self.default_limits),
            policy=exercise.policy,
            checks=tuple(Check(code=t.test_code, timeout_s=t.timeout) for t in exercise.tests),
            reuse_key=user,
        )
        run = self.sandbox.run(request)
        # Every test gets a verdict, also when the sandbox reported fewer checks than were asked.
        checks = list(run.checks) + [CheckResult(outcome=CheckOutcome.NOT_RUN)] * (
            len(exercise.tests) - len(run.checks)
        )
        tests = [
            self._judge(test, check, run, reveal_hidden)
            for test, check in zip(exercise.tests, checks)
        ]
        tests.extend(self._judge_requirement(req, code) for req in exercise.requirements)
        score = _points(sum(t.points for t in tests))
        return GradeResult(
            exercise_id=exercise.id,
            status=run.status,
            score=score,
            max_score=exercise.max_score,
            tests=tests,
            stdout=run.stdout,
            stderr=run.stderr,
            duration_ms=run.duration_ms,
            message=run.message,
        )

    def _judge(
        self, test: ExerciseTest, check: CheckResult, run: ExecutionResult, reveal_hidden: bool
    ) -> TestResult:
        status, message = self._verdict(test, check, run)
        result = TestResult(
            name=test.name,
            status=status,
            points=test.points if status == PASSED else 0.0,
            max_points=test.points,
            hidden=test.hidden,
            message=message,
        )
        if test.expected_output is not None and check.outcome is CheckOutcome.COMPLETED:
            result.expected = test.expected_output
            result.actual = check.stdout[:MAX_ACTUAL_SHOWN]
        return result if reveal_hidden else redact(result)

    @staticmethod
    def _judge_requirement(req: RequirementTest, code: str) -> TestResult:
        # Decided on the host from the submitted text: nothing the code does at run time changes it.
        broken = req.requirement.check(code)
        return TestResult(
            name=req.name,
            status=FAILED if broken else PASSED,
            points=0.0 if broken else req.points,
            max_points=req.points,
            hidden=False,
            message=broken or "passed",
        )

    def _verdict(
        self, test: ExerciseTest, check: CheckResult, run: ExecutionResult
    ) -> tuple[str, str]:
        outcome = check.outcome
        if outcome is CheckOutcome.COMPLETED:
            if test.expected_output is None:
                return PASSED, "passed"
            if outputs_match(test.expected_output, check.stdout, test.compare, test.tolerance):
                return PASSED, "passed"
            return FAILED, describe_mismatch(test.expected_output, check.stdout, test.compare)
        if outcome is CheckOutcome.RAISED:
            error = check.error or {}
            summary = f"{error.get('type', 'Exception')}: {error.get('message', '')}".rstrip(": ")
            if error.get("assertion"):
                return FAILED, f"assertion failed: {error.get('message') or test.test_code.strip()}"
            return ERROR, (error.get("traceback") or summary).strip()
        if outcome is CheckOutcome.TIMEOUT:
            return TIMEOUT, f"the test took longer than its time limit of {test.timeout:g} s"
        if outcome is CheckOutcome.MEMORY_LIMIT:
            return MEMORY_LIMIT, "the test ran out of memory"
        if outcome is CheckOutcome.OUTPUT_LIMIT:
            return FAILED, "the test printed more output than allowed"
        if outcome is CheckOutcome.EXITED:
            return ERROR, check.message or (
                "the test ended before it finished: does the code call "
                "sys.exit(), os._exit() or crash the interpreter?"
            )
        if outcome is CheckOutcome.PROTOCOL_ERROR:
            return ERROR, (
                "the test could not be judged: the code's process broke the test's "
                "connection to it" + (f" ({check.message})" if check.message else "")
            )
        reason = f"{run.status.value}: {run.message}" if run.message else run.status.value
        return ERROR, f"not run: the submitted code did not run to the end ({reason})"
