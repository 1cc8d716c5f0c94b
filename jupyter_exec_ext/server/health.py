"""The engine's status as health probes see it: asked at most once a moment, answered in time."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any, Awaitable, Callable, Optional

#: A health probe answers within this long whatever the engine does (a probe's own timeout is
#: typically 1 to 10 s); an engine slower than that counts as down.
HEALTH_DEADLINE_S = 1.0
#: What a probe sees of an engine that did not answer in time.
NO_ANSWER = {
    "enabled": True,
    "reachable": False,
    "error": "the Docker engine did not answer in time",
}


class EngineSnapshot:
    """The engine's status as health probes see it: asked at most once per ``max_age_s``, and
    shared by the probes that arrive while it is being asked. The route is open to anyone; a
    flood of probes must not become a flood of engine calls."""

    def __init__(self, max_age_s: float = 2.0, deadline_s: float = HEALTH_DEADLINE_S) -> None:
        self.max_age_s = max_age_s
        self.deadline_s = deadline_s
        self._taken = -math.inf
        self._value: Optional[dict] = None
        self._source: Any = None
        self._pending: Optional[asyncio.Future] = None

    async def get(self, sandbox: Any, ask: Callable[[], Awaitable[dict]]) -> dict:
        """The engine's status; ``NO_ANSWER`` when the engine does not answer within
        ``deadline_s`` (a frozen or restarting engine), while the question goes on for later
        probes."""
        fresh = time.monotonic() - self._taken < self.max_age_s
        if fresh and self._source is sandbox and self._value is not None:
            return self._value
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._ask(sandbox, ask))
        try:
            return await asyncio.wait_for(asyncio.shield(self._pending), self.deadline_s)
        except asyncio.TimeoutError:
            return NO_ANSWER

    async def _ask(self, sandbox: Any, ask: Callable[[], Awaitable[dict]]) -> dict:
        try:
            self._value = await ask()
            self._taken, self._source = time.monotonic(), sandbox
        finally:
            self._pending = None
        return self._value
