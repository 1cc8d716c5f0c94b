"""The gradebook as the servers use it: every database call in threads of its own (the event loop
never waits on the database), and a backlog that keeps submissions while the database is out.

A submission's answer never depends on the database: ``record`` writes the record if the database
answers within ``wait_s`` and otherwise keeps it in a bounded backlog, retried in the background
(with a logged warning) until the database takes it. Records beyond the bound are the only ones
that can be lost, and each is logged in full (user, exercise, score, time) when dropped.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional, TypeVar

from .store import GradebookStore, StoreError, SubmissionRecord, describe_url, iso_time

log = logging.getLogger(__name__)
T = TypeVar("T")


class GradebookUnavailable(StoreError):
    """A read found the database out (the REST API answers 503)."""


class GradebookRecorder:
    """Async front of a ``GradebookStore``.

    Args:
        store: the database.
        backlog_max: records kept while the database is out; beyond it the oldest is dropped
            (and logged in full).
        wait_s: how long ``record`` waits for the database before it queues the record.
        retry_s: first pause between retries of the backlog (doubling up to ``retry_max_s``).
    """

    def __init__(
        self,
        store: GradebookStore,
        backlog_max: int = 10_000,
        wait_s: float = 2.0,
        retry_s: float = 1.0,
        retry_max_s: float = 30.0,
        threads: int = 4,
    ) -> None:
        self.store = store
        self.backlog_max = backlog_max
        self.wait_s = wait_s
        self.retry_s = retry_s
        self.retry_max_s = retry_max_s
        self.backlog: collections.deque[SubmissionRecord] = collections.deque()
        self.dropped = 0
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="gradebook")
        self._retrying: Optional[asyncio.Task] = None

    async def call(self, work: Callable[[GradebookStore], T]) -> T:
        """Runs ``work(store)`` on a gradebook thread.

        Raises:
            GradebookUnavailable: the database is out.
        """
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, work, self.store)
        except GradebookUnavailable:
            raise
        except StoreError as e:
            raise GradebookUnavailable(str(e)) from None

    async def record(self, record: SubmissionRecord) -> Optional[int]:
        """Stores ``record``; its id, or None when it was queued (the database is out or slow)."""
        if self.backlog:  # the database is known to be out: do not make this student wait on it
            self._queue(record)
            return None
        loop = asyncio.get_running_loop()
        future = self._executor.submit(self.store.record, record)

        def queue_on_failure(done: Any) -> None:
            if done.exception() is not None:
                loop.call_soon_threadsafe(self._write_failed, record, done.exception())

        future.add_done_callback(queue_on_failure)
        waited = asyncio.wrap_future(future)
        # Its failure is handled above; never reported again as an exception nobody retrieved.
        waited.add_done_callback(lambda f: f.cancelled() or f.exception())
        done, _ = await asyncio.wait({waited}, timeout=self.wait_s)
        if not done:
            # Still being written: it lands when the database answers, or queue_on_failure keeps it.
            log.warning(
                "gradebook: the database did not take %s's submission of %r within "
                "%.1f s; it is written when the database answers",
                record.user,
                record.exercise_id,
                self.wait_s,
            )
            return None
        return None if waited.exception() is not None else waited.result()

    def _write_failed(self, record: SubmissionRecord, error: BaseException) -> None:
        level = logging.WARNING if isinstance(error, StoreError) else logging.ERROR
        log.log(
            level,
            "gradebook: could not record %s's submission of %r (%s); kept in the "
            "backlog and retried",
            record.user,
            record.exercise_id,
            error,
            exc_info=None if isinstance(error, StoreError) else error,
        )
        self._queue(record)

    def _queue(self, record: SubmissionRecord) -> None:
        if len(self.backlog) >= self.backlog_max:
            lost = self.backlog.popleft()
            self.dropped += 1
            log.error(
                "gradebook: backlog full (%d records, database %s out); dropped the oldest: "
                "user=%s exercise=%s score=%g/%g late=%s at %s",
                self.backlog_max,
                describe_url(self.store.url),
                lost.user,
                lost.exercise_id,
                lost.score,
                lost.max_score,
                lost.late,
                iso_time(lost.submitted_at),
            )
        self.backlog.append(record)
        if self._retrying is None or self._retrying.done():
            self._retrying = asyncio.get_running_loop().create_task(self._retry())

    async def _retry(self) -> None:
        """Writes the backlog, oldest first, until it is empty; pauses longer after each
        failure."""
        pause = self.retry_s
        loop = asyncio.get_running_loop()
        while self.backlog:
            batch = list(self.backlog)[:100]
            try:
                await loop.run_in_executor(self._executor, self.store.record_many, batch)
            except Exception as e:
                log.warning(
                    "gradebook: database %s still out (%s); %d submission(s) waiting, next "
                    "try in %.0f s",
                    describe_url(self.store.url),
                    e,
                    len(self.backlog),
                    pause,
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, self.retry_max_s)
                continue
            for _ in batch:
                if self.backlog:
                    self.backlog.popleft()
            pause = self.retry_s
            log.info(
                "gradebook: recorded %d submission(s) from the backlog; %d waiting",
                len(batch),
                len(self.backlog),
            )

    def pending(self, user: str, exercise_id: str) -> int:
        """Records of ``user``'s submissions of ``exercise_id`` still in the backlog."""
        return sum(1 for r in self.backlog if r.user == user and r.exercise_id == exercise_id)

    def snapshot(self) -> dict[str, Any]:
        return {
            "backend": self.store.backend,
            "backlog": len(self.backlog),
            "dropped": self.dropped,
        }

    def close(self, flush_timeout_s: float = 10.0) -> None:
        """Writes what the backlog holds if the database answers, then stops (blocking)."""
        task = self._retrying
        if task is not None and not task.done():
            try:
                task.get_loop().call_soon_threadsafe(task.cancel)  # called off the loop
            except RuntimeError:
                pass  # the loop is closed: the task runs no more
        if self.backlog:
            try:
                self._executor.submit(self.store.record_many, list(self.backlog)).result(
                    flush_timeout_s
                )
                self.backlog.clear()
            except Exception as e:
                for lost in self.backlog:
                    log.error(
                        "gradebook: stopping with the database out (%s); not recorded: "
                        "user=%s exercise=%s score=%g/%g late=%s at %s",
                        e,
                        lost.user,
                        lost.exercise_id,
                        lost.score,
                        lost.max_score,
                        lost.late,
                        iso_time(lost.submitted_at),
                    )
        self._executor.shutdown(wait=True)
        self.store.close()
