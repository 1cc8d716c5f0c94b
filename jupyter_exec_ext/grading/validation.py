"""Checking an exercise in the real sandbox before students see it: the reference solution must
pass every test (hidden ones included), the starter code should not, and every wrong solution the
exercise carries must lose points."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from .exercise import DataFilesError, Exercise, WrongSolution
from .grader import Grader, GradeResult


@dataclass
class WrongSolutionCheck:
    """One wrong solution graded: which tests catch it (fail on it), and whether a visible one does."""

    wrong: WrongSolution
    result: GradeResult

    @property
    def caught_by(self) -> list:
        return [t for t in self.result.tests if not t.passed and t.max_points > 0]

    @property
    def caught(self) -> bool:
        """It loses points (a failing test worth nothing does not count)."""
        return self.result.score < self.result.max_score

    @property
    def caught_by_visible(self) -> bool:
        return any(not t.hidden for t in self.caught_by)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.wrong.name,
            "reason": self.wrong.reason,
            "score": self.result.score,
            "max_score": self.result.max_score,
            "status": self.result.status.value,
            "caught": self.caught,
            "caught_by_visible": self.caught_by_visible,
            "caught_by": [
                {"name": t.name, "hidden": t.hidden, "status": t.status} for t in self.caught_by
            ],
        }


@dataclass
class ExerciseCheck:
    """The outcome of :func:`check_exercise`: ``problem`` is what makes the exercise unusable,
    ``warning`` what an instructor should look at."""

    exercise: Exercise
    solution: Optional[GradeResult] = None
    starter: Optional[GradeResult] = None
    problem: str = ""
    warning: str = ""
    wrong_solutions: list = field(default_factory=list)

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

        return {
            "exercise_id": self.exercise.id,
            "ok": self.ok,
            "problem": self.problem,
            "warning": self.warning,
            "solution": graded(self.solution),
            "starter": graded(self.starter),
            "wrong_solutions": [w.to_dict() for w in self.wrong_solutions],
        }


def check_exercise(grader: Grader, exercise: Exercise, *, workers: int = 4) -> ExerciseCheck:
    """Grades the reference solution (revealing hidden tests) and, if it passes, the starter and
    each wrong solution; a wrong solution that scores full marks is a problem.

    Args:
        workers: wrong solutions graded at once (each is a sandbox run of its own; most of a run is
            waiting for the engine, so a few at a time cut the wall-clock time several-fold).

    Raises:
        SandboxUnavailableError: the sandbox cannot run anything.
    """
    check = ExerciseCheck(exercise)
    try:
        exercise.read_data_files(getattr(grader, "data_files_bytes", None))
    except DataFilesError as e:
        check.problem = str(e)
        return check
    if not exercise.solution_code:
        check.problem = "no reference solution (a code cell with role 'solution')"
        return check
    check.solution = grader.grade(exercise, exercise.solution_code, reveal_hidden=True)
    if not check.solution.all_passed:
        failed = sum(t.status != "passed" for t in check.solution.tests)
        check.problem = (
            f"the reference solution fails {failed} of {len(check.solution.tests)} tests "
            f"(status {check.solution.status})"
        )
        return check
    check.starter = grader.grade(exercise, exercise.starter_code, reveal_hidden=True)
    if check.starter.all_passed:
        check.warning = "the starter code already passes every test"
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = pool.map(
            lambda w: grader.grade(exercise, w.code, reveal_hidden=True), exercise.wrong_solutions
        )
        check.wrong_solutions = [
            WrongSolutionCheck(w, r) for w, r in zip(exercise.wrong_solutions, results)
        ]
    uncaught = [w.wrong.name for w in check.wrong_solutions if not w.caught]
    if uncaught:
        check.problem = (
            f"{len(uncaught)} of {len(check.wrong_solutions)} wrong solutions score full marks "
            f"(no test catches them): " + ", ".join(repr(n) for n in uncaught)
        )
    return check
