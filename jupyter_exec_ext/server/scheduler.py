"""Runs blocking sandbox work off the tornado event loop: a bounded pool, queueing, per-user caps.

Docker's API is blocking HTTP over a socket, so every call into the sandbox goes through here. Runs
take a slot of a fixed-size thread pool (the global cap on runs in flight); the rest wait in the
pool's queue. A user who already has ``max_per_user`` runs in flight or queued is refused at once
(HTTP 429), so one student cannot fill the queue for everyone; the count is this server's own
(``LocalRunCap``) or, for replicas behind a load balancer, shared in Redis (``shared_state``).
Short engine queries (status, reaper) use a separate small pool, so they are never stuck behind
long runs.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol, TypeVar

from ..sandbox import SandboxUnavailableError
from .errors import ApiError, RateLimitedError

log = logging.getLogger(__name__)
security_log = logging.getLogger("jupyter_exec_ext.security")

T = TypeVar("T")


class StoppingError(ApiError):
    """The server is stopping: it finishes the runs it has and takes no new ones (503)."""

    status = 503
    reason = "service_stopping"


@dataclass(frozen=True)
class RunTicket:
    """One admitted run of ``user``; ``lease`` names its entry in the shared count, if any."""

    user: str
    lease: Optional[str] = None


class RunCap(Protocol):
    """Counts each user's runs in flight or queued and refuses one past ``max_per_user``."""

    max_per_user: int

    async def acquire(self, user: str) -> Optional[RunTicket]:
        """A ticket for one more run of ``user``, or None when they are at the cap."""

    async def release(self, ticket: RunTicket) -> None:
        """The run ended (or was never queued): it no longer counts."""

    def users_with_runs(self) -> int:
        """Users with a run in flight or queued on this server."""


class LocalRunCap:
    """The per-user cap of one server, counted in its memory (the event loop's only)."""

    def __init__(self, max_per_user: int) -> None:
        self.max_per_user = max_per_user
        self._per_user: Counter[str] = Counter()

    async def acquire(self, user: str) -> Optional[RunTicket]:
        return self._take(user, None)

    async def release(self, ticket: RunTicket) -> None:
        self._per_user[ticket.user] -= 1
        if self._per_user[ticket.user] <= 0:
            del self._per_user[ticket.user]

    def users_with_runs(self) -> int:
        return len(self._per_user)

    def _take(self, user: str, lease: Optional[str]) -> Optional[RunTicket]:
        """Counts the run here; refuses it (None) past the cap unless ``lease`` says the shared
        count admitted it."""
        if lease is None and self._per_user[user] >= self.max_per_user:
            return None
        self._per_user[user] += 1
        return RunTicket(user, lease)


class RunScheduler:
    """Admits, queues and runs blocking sandbox work on threads, and counts how runs ended.

    Args:
        max_in_flight: runs executing at once (threads of the run pool); more wait in a queue.
        max_per_user: runs one user may have in flight or queued at once.
        user_cap: what counts them; default a ``LocalRunCap`` of ``max_per_user`` (this server
            alone), ``shared_state.SharedRunCap`` for replicas.
    """

    def __init__(
        self, max_in_flight: int, max_per_user: int, user_cap: Optional[RunCap] = None
    ) -> None:
        if max_in_flight < 1 or max_per_user < 1:
            raise ValueError("max_in_flight and max_per_user must be at least 1")
        self.max_in_flight = max_in_flight
        self.max_per_user = max_per_user
        self._runs = ThreadPoolExecutor(
            max_workers=max_in_flight, thread_name_prefix="exec-ext-run"
        )
        # Engine queries (status, health, reaper) are short; two threads keep them independent of runs.
        self._queries = ThreadPoolExecutor(max_workers=2, thread_name_prefix="exec-ext-query")
        # Counters are touched from the event loop (admission) and from worker threads (start, end).
        self._lock = threading.Lock()
        self.user_cap: RunCap = user_cap if user_cap is not None else LocalRunCap(max_per_user)
        self._queued = 0
        self._in_flight = 0
        self._by_status: Counter[str] = Counter()
        self._rate_limited = 0
        self._stopping = False

    async def run(self, user: str, work: Callable[[], T]) -> T:
        """Runs ``work`` on the run pool once a slot is free, on behalf of ``user``.

        Args:
            user: who asked; the per-user cap counts their runs in flight and queued.
            work: a blocking call, e.g. ``lambda: sandbox.run(request)``.

        Returns:
            What ``work`` returned. A result with a ``status`` attribute is counted by status.

        Raises:
            RateLimitedError: ``user`` is at the per-user cap; nothing was queued.
            Exception: whatever ``work`` raised (e.g. SandboxUnavailableError), counted.
        """
        if self._stopping:
            raise StoppingError("the code execution service is restarting; try again in a minute")
        ticket = await self.user_cap.acquire(user)
        with self._lock:
            if ticket is None:
                self._rate_limited += 1
            else:
                self._queued += 1
        if ticket is None:
            security_log.warning(
                "security: user %r refused a run: already %d in flight or queued",
                user,
                self.max_per_user,
            )
            raise RateLimitedError(
                f"you already have {self.max_per_user} run(s) in progress; wait for one to finish"
            )
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._runs, self._execute, user, work
            )
        finally:
            await self.user_cap.release(ticket)

    def _execute(self, user: str, work: Callable[[], T]) -> T:
        """Worker-thread side of ``run``: moves the run from queued to in flight and counts its end."""
        with self._lock:
            self._queued -= 1
            self._in_flight += 1
        outcome = "error"
        try:
            result = work()
            status = getattr(result, "status", None)
            outcome = str(status) if status is not None else "done"
            if outcome == "policy_violation":
                # The message names the rule and the line, never the code itself.
                security_log.warning(
                    "security: code policy violation by user %r: %s",
                    user,
                    getattr(result, "message", ""),
                )
            return result
        except SandboxUnavailableError:
            outcome = "sandbox_unavailable"
            raise
        finally:
            with self._lock:
                self._in_flight -= 1
                self._by_status[outcome] += 1

    async def query(self, work: Callable[[], T]) -> T:
        """Runs a short blocking engine query (status, reaper) on the query pool."""
        return await asyncio.get_running_loop().run_in_executor(self._queries, work)

    def stop_admitting(self) -> None:
        """From now on every new run is refused (503); runs in flight or queued go on."""
        self._stopping = True

    @property
    def stopping(self) -> bool:
        """Whether new runs are refused because the server is stopping."""
        return self._stopping

    def submit_query(self, work: Callable[[], Any]) -> None:
        """Starts a blocking engine query without waiting for it (works before the loop runs)."""
        self._queries.submit(work)

    @property
    def busy(self) -> bool:
        """True while any run is in flight or queued."""
        with self._lock:
            return self._in_flight > 0 or self._queued > 0

    @property
    def saturated(self) -> bool:
        """True when every slot is busy and runs are waiting for one."""
        with self._lock:
            return self._queued > 0 and self._in_flight >= self.max_in_flight

    def snapshot(self) -> dict[str, Any]:
        """Runs in flight and queued, the caps, and counts of ended runs by status."""
        with self._lock:
            return {
                "in_flight": self._in_flight,
                "queued": self._queued,
                "max_in_flight": self.max_in_flight,
                "max_per_user": self.max_per_user,
                "users_with_runs": self.user_cap.users_with_runs(),
                "by_status": dict(self._by_status),
                "completed": sum(self._by_status.values()),
                "rate_limited": self._rate_limited,
            }

    def shutdown(self) -> None:
        """Stops accepting work; queued runs are dropped, runs in progress finish in their threads."""
        self._runs.shutdown(wait=False, cancel_futures=True)
        self._queries.shutdown(wait=False, cancel_futures=True)
