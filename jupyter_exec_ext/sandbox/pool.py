"""The warm pool: started, hardened containers whose runner already waits for a job.

A pooled container serves exactly one job (of one user) and is then destroyed, like a cold one; it
just skips the ~150 ms of create and start on the request's path. The pool refills in the
background, discards containers that died or idled too long, and is drained on shutdown.

It sizes itself within bounds: each run that finds it empty (a miss) raises its size by one, up to
``max_size`` and to what ``memory_budget_mb`` holds (CONTAINER_MB each); once it has waited full
for ``shrink_after_s`` without a miss it sheds half of what it grew, and so on back to the
configured size.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any, Optional

from .containers import Container, Launcher
from .limits import Limits

log = logging.getLogger(__name__)

#: What one waiting container holds (its runner, the two zygotes and the harness; measured
#: 18 MiB in ``docker stats``), with a margin: the pool's memory budget counts this per container.
CONTAINER_MB = 20


class WarmPool:
    """Keeps ``size`` containers of one limit profile started and waiting.

    Args:
        launcher: makes and removes the containers (the engine's, with the sandbox's flags).
        size: containers kept waiting.
        profile: their limits. A run fits when ``profile.can_serve`` its limits: memory, CPU,
            processes and open files equal, and its time limit not above the profile's (the
            runner enforces the run's own).
        max_idle_s: a container waiting longer is replaced (images change, engines restart).
        workers: threads starting containers in parallel when the pool runs low.
        refill_delay_s: while some containers still wait, a refill starts this much later, so it
            does not compete for the CPU with the run that just took one.
        max_size: the most containers it grows to on misses (``size`` or less: a fixed size).
        memory_budget_mb: what its waiting containers may hold together (CONTAINER_MB each);
            growth stops there. None: no budget but ``max_size``. The configured ``size`` is
            always kept.
        shrink_after_s: a grown pool sheds half of its growth after waiting full this long
            without a miss.
    """

    def __init__(
        self,
        launcher: Launcher,
        size: int,
        profile: Limits,
        max_idle_s: float = 300.0,
        workers: int = 2,
        refill_delay_s: float = 0.1,
        max_size: Optional[int] = None,
        memory_budget_mb: Optional[int] = None,
        shrink_after_s: float = 120.0,
    ):
        self.launcher = launcher
        self.min_size = size
        ceiling = max_size if max_size is not None else size
        if memory_budget_mb is not None:
            ceiling = min(ceiling, memory_budget_mb // CONTAINER_MB)
        self.max_size = max(size, ceiling)
        self.size = size  # the current target, between min_size and max_size
        self.shrink_after_s = shrink_after_s
        self._last_change = time.monotonic()  # the last miss, refill or shrink
        self.profile = profile
        self.max_idle_s = max_idle_s
        self.workers = workers
        self.refill_delay_s = refill_delay_s
        self._idle: collections.deque = collections.deque()
        self._starting = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._failing_since: Optional[float] = None
        self.counters = {
            "served": 0,
            "created": 0,
            "discarded": 0,
            "misses": 0,
            "errors": 0,
            "grown": 0,
            "shrunk": 0,
        }

    def start(self) -> None:
        for i in range(self.workers):
            t = threading.Thread(target=self._refill, name=f"sandbox-pool-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def take(self, limits: Limits) -> Optional[Container]:
        """A live container for a run with these limits, or None (the caller starts one cold)."""
        if not self.profile.can_serve(limits):
            return None
        with self._cond:
            while self._idle:
                live = self._idle.popleft()
                self._cond.notify()
                if self._usable(live):
                    self.counters["served"] += 1
                    return live
                self._remove(live)
            self.counters["misses"] += 1
            self._last_change = time.monotonic()
            if self.size < self.max_size:
                self.size += 1
                self.counters["grown"] += 1
                self._cond.notify()
            return None

    def _usable(self, live: Container) -> bool:
        return time.monotonic() - live.started < self.max_idle_s and live.alive()

    def _remove(self, live: Container) -> None:
        """Removes a container that will not serve (counted as discarded), in the background."""
        self.counters["discarded"] += 1
        self.launcher.remove(live, "soon")

    def _refill(self) -> None:
        backoff = 1.0
        while True:
            with self._cond:
                while not self._stopping and len(self._idle) + self._starting >= self.size:
                    self._cond.wait(timeout=min(5.0, self.max_idle_s, self.shrink_after_s))
                    for live in [x for x in self._idle if not self._usable(x)]:
                        self._idle.remove(live)
                        self._remove(live)
                    self._shrink_when_idle()
                if self._stopping:
                    return
                if self._idle and self.refill_delay_s > 0:
                    # Starting a container loads both cores for a moment; a run that just took a
                    # pooled container finishes first (it needs only milliseconds).
                    self._cond.wait(timeout=self.refill_delay_s)
                    if self._stopping:
                        return
                    if len(self._idle) + self._starting >= self.size:
                        continue
                self._starting += 1
            live = None
            try:
                live = self.launcher.launch(self.profile, idle_s=self.max_idle_s)
                self.counters["created"] += 1
                if self._failing_since is not None:
                    log.info("warm pool is filling again")
                self._failing_since, backoff = None, 1.0
            except Exception as e:  # engine down, image missing …: runs fall back to cold starts
                self.counters["errors"] += 1
                if self._failing_since is None:
                    self._failing_since = time.monotonic()
                    log.warning(
                        "warm pool cannot start containers (%s); retrying in the background", e
                    )
            with self._cond:
                self._starting -= 1
                if live is not None and not self._stopping:
                    self._idle.append(live)
                    live = None
                    self._last_change = time.monotonic()  # idleness counts from a full pool
                elif live is None and not self._stopping:
                    self._cond.wait(timeout=backoff)
                    backoff = min(backoff * 2, 30.0)
            if live is not None:  # stopped while it was starting
                self._remove(live)

    def _shrink_when_idle(self) -> None:
        """Under the lock: after ``shrink_after_s`` without a miss, sheds half of the growth
        (at least one) and the waiting containers beyond the new size, the oldest first."""
        now = time.monotonic()
        if self.size <= self.min_size or now - self._last_change < self.shrink_after_s:
            return
        self.size -= max(1, (self.size - self.min_size) // 2)
        self.counters["shrunk"] += 1
        self._last_change = now
        while len(self._idle) > self.size:
            self._remove(self._idle.popleft())

    def drain(self) -> None:
        """Stops refilling and removes every waiting container; leaves nothing behind."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=30)
        with self._cond:
            idle, self._idle = list(self._idle), collections.deque()
        for live in idle:
            self.launcher.remove(live)

    def waiting(self) -> list[Container]:
        """The containers waiting for a run now, the oldest first."""
        with self._cond:
            return list(self._idle)

    def status(self) -> dict[str, Any]:
        with self._cond:
            return {
                "size": self.size,
                "min_size": self.min_size,
                "max_size": self.max_size,
                "idle": len(self._idle),
                "starting": self._starting,
                "profile": self.profile.to_dict(),
                **self.counters,
            }
