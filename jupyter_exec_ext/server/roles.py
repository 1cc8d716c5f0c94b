"""Who is an instructor on a hub: the executor service asks the hub's REST API for a user's
groups and roles with its own token, and keeps each answer for a short while.

The caller's own token cannot be trusted to tell: a single-user server's token may not carry the
scopes that show its user's groups, and a token's view of itself is the token's, not the hub's.
The service's token needs the scopes ``read:users:groups`` and ``read:roles:users`` (docs/hub.md).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Optional
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

log = logging.getLogger(__name__)


class HubRoles:
    """A user's hub groups and roles, asked of the hub (asynchronously) and kept ``ttl_s``.

    Args:
        api_url: the hub's API, e.g. ``http://127.0.0.1:8081/hub/api``.
        token: the service's own API token.
        ttl_s: how long an answer is kept.
    """

    def __init__(self, api_url: str, token: str, ttl_s: float = 30.0) -> None:
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.ttl_s = ttl_s
        self._cache: dict[str, tuple[float, tuple[frozenset, frozenset]]] = {}
        self._warned_scopes = False

    async def membership(self, name: str) -> tuple[frozenset[str], frozenset[str]]:
        """``name``'s groups and roles.

        Raises:
            OSError, ValueError, RuntimeError: the hub did not answer, or answered an error.
        """
        now = time.monotonic()
        cached = self._cache.get(name)
        if cached is not None and now - cached[0] < self.ttl_s:
            return cached[1]
        request = HTTPRequest(
            f"{self.api_url}/users/{quote(name, safe='')}",
            headers={"Authorization": f"token {self.token}"},
            request_timeout=10,
            connect_timeout=5,
        )
        response = await AsyncHTTPClient().fetch(request, raise_error=False)
        if response.code == 404:
            answer: tuple[frozenset, frozenset] = (frozenset(), frozenset())
        elif response.code != 200:
            raise RuntimeError(
                f"the hub answered {response.code} for user {name!r}"
                + (
                    " (grant the service the scopes read:users:groups and read:roles:users)"
                    if response.code == 403
                    else ""
                )
            )
        else:
            model = json.loads(response.body)
            if "groups" not in model and "roles" not in model and not self._warned_scopes:
                self._warned_scopes = True
                log.warning(
                    "the hub shows the executor service no user's groups or roles: grant "
                    "it the scopes read:users:groups and read:roles:users, or no hub "
                    "group or role makes anyone an instructor"
                )
            answer = (frozenset(model.get("groups") or ()), frozenset(model.get("roles") or ()))
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[name] = (now, answer)
        return answer

    def forget(self, name: Optional[str] = None) -> None:
        """Drops what is kept about ``name`` (everyone with None)."""
        if name is None:
            self._cache.clear()
        else:
            self._cache.pop(name, None)
