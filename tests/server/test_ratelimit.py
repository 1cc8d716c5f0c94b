"""The submission limiter on a fake clock: exact sliding window, the wait it names, refusals and
cancellations that do not count, and memory that holds only the last window's submitters."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from jupyter_exec_ext.server.ratelimit import (
    SubmissionLimitedError,
    SubmissionRateLimiter,
    describe_seconds,
)


class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Awaited:
    """The limiter with its coroutines awaited in place (it holds nothing tied to a loop)."""

    def __init__(self, limiter: SubmissionRateLimiter) -> None:
        self.limiter = limiter

    def __getattr__(self, name: str):
        value = getattr(self.limiter, name)
        if inspect.iscoroutinefunction(value):
            return lambda *args: asyncio.run(value(*args))
        return value


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_the_limit_admits_n_then_refuses_with_the_wait(clock) -> None:
    limiter = Awaited(SubmissionRateLimiter(3, 600, clock=clock))
    for _ in range(3):
        limiter.admit("alice", "add")
        clock.advance(10)
    # Submissions at 0, 10 and 20 s; now 30 s: the first leaves the window at 600 s.
    with pytest.raises(SubmissionLimitedError) as refused:
        limiter.admit("alice", "add")
    assert refused.value.status == 429
    assert refused.value.retry_after_s == 570
    assert (
        str(refused.value)
        == "you can submit 'add' again in 9 min 30 s (at most 3 submissions per 10 min)"
    )
    assert limiter.refused == 1


def test_the_wait_is_rounded_up_to_whole_seconds(clock) -> None:
    limiter = Awaited(SubmissionRateLimiter(1, 60, clock=clock))
    limiter.admit("alice", "add")
    clock.advance(17.25)
    with pytest.raises(SubmissionLimitedError) as refused:
        limiter.admit("alice", "add")
    assert refused.value.retry_after_s == 43  # 42.75 s left
    assert (
        str(refused.value) == "you can submit 'add' again in 43 s (at most 1 submission per 1 min)"
    )


def test_a_submission_is_admitted_again_exactly_when_the_wait_is_over(clock) -> None:
    limiter = Awaited(SubmissionRateLimiter(2, 100, clock=clock))
    limiter.admit("alice", "add")
    clock.advance(30)
    limiter.admit("alice", "add")
    clock.advance(1)
    with pytest.raises(SubmissionLimitedError) as refused:
        limiter.admit("alice", "add")
    clock.advance(refused.value.retry_after_s - 0.5)
    with pytest.raises(SubmissionLimitedError):
        limiter.admit("alice", "add")
    clock.advance(0.5)
    limiter.admit("alice", "add")  # the first left the window; the second still counts
    with pytest.raises(SubmissionLimitedError) as again:
        limiter.admit("alice", "add")
    assert again.value.retry_after_s == 30


def test_refusals_do_not_count(clock) -> None:
    """Asking again and again while refused never pushes the next admission further away."""
    limiter = Awaited(SubmissionRateLimiter(1, 60, clock=clock))
    limiter.admit("alice", "add")
    for _ in range(50):
        clock.advance(1)
        with pytest.raises(SubmissionLimitedError):
            limiter.admit("alice", "add")
    clock.advance(10)
    limiter.admit("alice", "add")
    assert limiter.refused == 50


def test_users_and_exercises_have_their_own_allowance(clock) -> None:
    limiter = Awaited(SubmissionRateLimiter(1, 60, clock=clock))
    limiter.admit("alice", "add")
    limiter.admit("alice", "square")
    limiter.admit("bob", "add")
    for user, exercise in (("alice", "add"), ("alice", "square"), ("bob", "add")):
        with pytest.raises(SubmissionLimitedError):
            limiter.admit(user, exercise)


def test_a_cancelled_admission_does_not_count(clock) -> None:
    limiter = Awaited(SubmissionRateLimiter(1, 60, clock=clock))
    admission = limiter.admit("alice", "add")
    limiter.cancel(admission)
    assert limiter.tracked() == 0
    limiter.admit("alice", "add")
    with pytest.raises(SubmissionLimitedError):
        limiter.admit("alice", "add")


def test_cancelling_after_the_window_is_harmless(clock) -> None:
    limiter = Awaited(SubmissionRateLimiter(1, 60, clock=clock))
    old = limiter.admit("alice", "add")
    clock.advance(61)
    limiter.admit("alice", "add")
    limiter.cancel(old)  # already forgotten: the newer admission still counts
    with pytest.raises(SubmissionLimitedError):
        limiter.admit("alice", "add")


def test_zero_turns_the_limit_off(clock) -> None:
    limiter = Awaited(SubmissionRateLimiter(0, 60, clock=clock))
    for _ in range(1000):
        limiter.admit("alice", "add")
    assert not limiter.enabled and limiter.tracked() == 0 and limiter.refused == 0


def test_memory_keeps_only_the_last_windows_submitters(clock) -> None:
    limiter = Awaited(SubmissionRateLimiter(5, 60, clock=clock))
    for n in range(2000):
        limiter.admit(f"student{n}", f"exercise{n % 7}")
    assert limiter.tracked() == 2000
    clock.advance(61)
    limiter.admit("late", "add")  # any admission after a window sweeps the pairs that went quiet
    assert limiter.tracked() == 1
    # Each pair holds at most ``limit`` times, however often it is refused.
    for _ in range(100):
        try:
            limiter.admit("late", "add")
        except SubmissionLimitedError:
            pass
    assert len(limiter._admitted[("late", "add")]) == 5


@pytest.mark.parametrize(
    "limit, window, words",
    [
        (-1, 60, "submission limit must be 0 \\(off\\) or more, got -1"),
        (3, 0, "submission window must be a positive number of seconds, got 0"),
        (3, -5.0, "submission window must be a positive number of seconds, got -5.0"),
    ],
)
def test_bad_settings_are_refused(limit, window, words) -> None:
    with pytest.raises(ValueError, match=words):
        SubmissionRateLimiter(limit, window)


@pytest.mark.parametrize(
    "seconds, text",
    [
        (0, "0 s"),
        (0.2, "1 s"),
        (42, "42 s"),
        (60, "1 min"),
        (200, "3 min 20 s"),
        (600, "10 min"),
        (3600, "1 h"),
        (3601, "1 h 1 min"),
        (5400, "1 h 30 min"),
        (86400, "24 h"),
    ],
)
def test_spans_read_at_a_glance(seconds, text) -> None:
    assert describe_seconds(seconds) == text
