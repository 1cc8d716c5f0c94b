"""Checking an exercise in the real sandbox before students see it: the reference solution must
pass every test (hidden ones included) and the starter code should not."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional

from .exercise import Exercise
from .grader import GradeResult, Grader


@dataclass
class ExerciseCheck:
    """The outcome of :func:`check_exercise`: ``problem`` is what makes the exercise unusable,
    ``warning`` what an instructor should look at."""

    exercise: Exercise
    solution: Optional[GradeResult] = None
    starter: Optional[GradeResult] = None
    problem: str = ""
    warning: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem

    def to_dict(self) -> dict[str, Any]:
        """For the instructor: hidden tests' expected and actual outputs included."""
        def graded(result: Optional[GradeResult]) -> Optional[dict]:
            if result is None:
                return None
            data = result.to_dict()
            data["tests"] = [asdict(t) for t in result.tests]
            return data

        return {"exercise_id": self.exercise.id, "ok": self.ok, "problem": self.problem,
                "warning": self.warning, "solution": graded(self.solution), "starter": graded(self.starter)}


def check_exercise(grader: Grader, exercise: Exercise) -> ExerciseCheck:
    """Grades the reference solution (revealing hidden tests) and, if it passes, the starter.

    Raises:
        SandboxUnavailableError: the sandbox cannot run anything.
    """
    check = ExerciseCheck(exercise)
    if not exercise.solution_code:
        check.problem = "no reference solution (a code cell with role 'solution')"
        return check
    check.solution = grader.grade(exercise, exercise.solution_code, reveal_hidden=True)
    if not check.solution.all_passed:
        failed = sum(t.status != "passed" for t in check.solution.tests)
        check.problem = (f"the reference solution fails {failed} of {len(check.solution.tests)} tests "
                         f"(status {check.solution.status})")
        return check
    check.starter = grader.grade(exercise, exercise.starter_code, reveal_hidden=True)
    if check.starter.all_passed:
        check.warning = "the starter code already passes every test"
    return check
