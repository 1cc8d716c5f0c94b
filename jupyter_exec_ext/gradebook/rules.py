"""Course rules of an exercise: when it is due, what happens to a late submission, how many
attempts a student has and which score counts. An exercise's metadata sets its own; the server's
configuration sets the defaults."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Optional

from ..grading.exercise import parse_due

ACCEPT, REFUSE = "accept", "refuse"
BEST, LAST = "best", "last"


class PastDueError(Exception):
    """A submission after the due time of an exercise that refuses late ones."""

    status = 409
    reason = "past_due"


class AttemptsExhaustedError(Exception):
    """A submission beyond the exercise's ``max_attempts``."""

    status = 429
    reason = "attempts_exhausted"


@dataclass(frozen=True)
class CourseRules:
    """The rules one exercise is graded by."""

    due: Optional[datetime] = None
    late_policy: str = ACCEPT
    max_attempts: Optional[int] = None
    score_rule: str = BEST

    @classmethod
    def defaults(
        cls, due: str = "", late_policy: str = ACCEPT, max_attempts: int = 0, score_rule: str = BEST
    ) -> CourseRules:
        """The server's defaults from its traits (empty ``due`` and ``max_attempts`` 0: none).

        Raises:
            ValueError: ``due`` is not an ISO time with a zone.
        """
        return cls(
            due=parse_due(due) if due else None,
            late_policy=late_policy,
            max_attempts=max_attempts or None,
            score_rule=score_rule,
        )

    def for_exercise(self, exercise: Any) -> CourseRules:
        """These defaults with the exercise's own rules laid over them."""

        def own(name: str, fallback: Any) -> Any:
            value = getattr(exercise, name, None)
            return fallback if value is None else value

        return CourseRules(
            due=own("due", self.due),
            late_policy=own("late_policy", self.late_policy),
            max_attempts=own("max_attempts", self.max_attempts),
            score_rule=own("score_rule", self.score_rule),
        )

    def is_late(self, when: Optional[datetime] = None) -> bool:
        if self.due is None:
            return False
        return (when or datetime.now(timezone.utc)) > self.due

    def due_iso(self) -> Optional[str]:
        if self.due is None:
            return None
        return (
            self.due.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
        )

    def check(self, exercise_id: str, attempts: int, when: Optional[datetime] = None) -> bool:
        """Whether a submission now is late; raises when it must be refused.

        Raises:
            PastDueError: past due and late submissions are refused.
            AttemptsExhaustedError: ``attempts`` already reached ``max_attempts``.
        """
        late = self.is_late(when)
        if late and self.late_policy == REFUSE:
            raise PastDueError(
                f"{exercise_id!r} was due {self.due_iso()}; late submissions are "
                "not accepted for it"
            )
        if self.max_attempts is not None and attempts >= self.max_attempts:
            raise AttemptsExhaustedError(
                f"you have used all {self.max_attempts} attempt(s) at {exercise_id!r}; no more "
                "submissions are graded (ask your instructor if you need another)"
            )
        return late

    def score(self, best: Optional[float], last: Optional[float]) -> Optional[float]:
        return last if self.score_rule == LAST else best
