"""The per-user, per-exercise submission limit: at most ``limit`` graded submissions of one exercise
by one user in any ``window_s`` seconds. It slows down a student who learns the hidden tests'
inputs from which of them pass; it does not stop one (README, "Submission rate limit").

A sliding-window log: each (user, exercise) keeps the times of its admitted submissions in the
last window, at most ``limit`` of them, so the limit is exact ("at most 5 per 10 min" means that,
with no burst allowance a token bucket would add) and the wait is known to the second. Not
thread-safe: admissions and cancellations happen on the event loop only. Its methods are
coroutines because the submit route also awaits the limiter that replicas share in Redis
(``shared_state.SharedSubmissionLimiter``), which has the same ones.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Optional

from .errors import RateLimitedError

security_log = logging.getLogger("jupyter_exec_ext.security")


def describe_seconds(seconds: float) -> str:
    """A span a student reads at a glance: ``42 s``, ``3 min 20 s``, ``10 min``, ``1 h 30 min``
    (from an hour on, to the minute, rounded up)."""
    whole = max(0, math.ceil(seconds))
    if whole >= 3600:
        hours, minutes = divmod(math.ceil(whole / 60), 60)
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    minutes, secs = divmod(whole, 60)
    if not minutes:
        return f"{secs} s"
    return f"{minutes} min {secs} s" if secs else f"{minutes} min"


class SubmissionLimitedError(RateLimitedError):
    """A submission refused because its user used up the exercise's allowance (429).

    Attributes:
        exercise_id: the exercise.
        retry_after_s: whole seconds until one more submission is admitted (rounded up, at least 1).
    """

    def __init__(self, exercise_id: str, retry_after_s: int, limit: int, window_s: float) -> None:
        noun = "submission" if limit == 1 else "submissions"
        super().__init__(
            f"you can submit {exercise_id!r} again in {describe_seconds(retry_after_s)} "
            f"(at most {limit} {noun} per {describe_seconds(window_s)})",
            retry_after_s=retry_after_s,
        )
        self.exercise_id = exercise_id


@dataclass(frozen=True)
class Admission:
    """One admitted submission, which ``SubmissionRateLimiter.cancel`` can take back."""

    user: str
    exercise_id: str
    at: float
    #: The admission's entry in the shared count (``shared_state``); None when counted here.
    lease: Optional[str] = None


class SubmissionRateLimiter:
    """Admits at most ``limit`` submissions per user per exercise in any ``window_s`` seconds.

    Args:
        limit: submissions admitted per window; 0 turns the limit off (every one is admitted).
        window_s: the window's length in seconds.
        clock: monotonic seconds; tests pass a fake one.

    Raises:
        ValueError: ``limit`` below 0 or ``window_s`` not positive.
    """

    def __init__(
        self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if limit < 0:
            raise ValueError(f"submission limit must be 0 (off) or more, got {limit!r}")
        if not window_s > 0:
            raise ValueError(
                f"submission window must be a positive number of seconds, got {window_s!r}"
            )
        self.limit = limit
        self.window_s = float(window_s)
        self._clock = clock
        self._admitted: dict[tuple[str, str], deque[float]] = {}
        self._next_sweep = -math.inf
        self.refused = 0

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    async def admit(self, user: str, exercise_id: str) -> Admission:
        """Counts one submission of ``exercise_id`` by ``user``, or refuses it without counting it.

        Returns:
            The admission; pass it to ``cancel`` if the submission is then not graded after all.

        Raises:
            SubmissionLimitedError: ``user`` already had ``limit`` submissions of the exercise
                admitted in the last ``window_s`` seconds; says when the next one will be.
        """
        now = self._clock()
        if not self.enabled:
            return Admission(user, exercise_id, now)
        self._sweep(now)
        key = (user, exercise_id)
        times = self._admitted.get(key)
        if times is None:
            times = self._admitted[key] = deque()
        self._forget_old(times, now)
        if len(times) >= self.limit:
            self.refused += 1
            wait = max(1, math.ceil(times[0] + self.window_s - now))
            security_log.warning(
                "security: user %r reached the submission limit of %r (%d per %g s)",
                user,
                exercise_id,
                self.limit,
                self.window_s,
            )
            raise SubmissionLimitedError(exercise_id, wait, self.limit, self.window_s)
        times.append(now)
        return Admission(user, exercise_id, now)

    async def graded(self, admission: Admission) -> None:
        """The submission was graded: its admission counts until it leaves the window (here it
        already does; the shared limiter stops renewing its lease)."""

    async def cancel(self, admission: Admission) -> None:
        """Takes back an admission whose submission was not graded (the sandbox was down, the user
        had too many runs at once): only graded submissions use up the allowance."""
        times = self._admitted.get((admission.user, admission.exercise_id))
        if times is None:
            return
        try:
            times.remove(admission.at)
        except ValueError:
            return  # already out of the window and forgotten
        if not times:
            del self._admitted[(admission.user, admission.exercise_id)]

    def tracked(self) -> int:
        """(user, exercise) pairs in memory: those with a submission in the last window, and
        those whose last one left it since the latest sweep (at most one window ago)."""
        return len(self._admitted)

    def snapshot(self) -> dict:
        """The settings and counters, for ``docker/status``."""
        return {
            "limit": self.limit,
            "window_s": self.window_s,
            "refused": self.refused,
            "tracked": self.tracked(),
        }

    def _forget_old(self, times: deque[float], now: float) -> None:
        while times and times[0] <= now - self.window_s:
            times.popleft()

    def _sweep(self, now: float) -> None:
        """Drops every pair whose submissions all left the window, at most once per window, so
        memory holds only the submitters of the last two windows (at most ``limit`` times each)."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.window_s
        for key in [
            k
            for k, times in self._admitted.items()
            if not times or times[-1] <= now - self.window_s
        ]:
            del self._admitted[key]
