"""``jupyter-exec-service``: the REST API as a JupyterHub-managed service. It owns the Docker
socket, the authoritative exercise directory, the result cache and the record of submissions;
single-user servers in remote mode forward to it with their user's token.

Every caller is authenticated by the hub (``HubAuth``: a server's or a kernel's
``JUPYTERHUB_API_TOKEN`` in ``Authorization: token …``); the hub has already checked that the token
may access this service (scope ``access:services!service=<name>``). What a caller may do here is
granted explicitly (``ServiceAccess``): users run code and read their own submissions; admins are
the users and groups, and the hub services, that the configuration names; a scraper reads metrics.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Union
from urllib.parse import urlparse

import tornado.web
from jupyter_server.utils import url_path_join
from jupyterhub.services.auth import HubAuth, HubAuthenticated, UserNotAllowed
from traitlets import Float, Integer, List, TraitError, Unicode, default, validate
from traitlets.config import Application, catch_config_error

from .. import __version__
from .config import ExecSettings
from .context import CONTEXT_KEY, ExecContext, build_context
from .errors import ApiError
from .gradebook_routes import (  # noqa: F401 (RESERVED_NAME_CHARACTERS: API)
    RESERVED_NAME_CHARACTERS,
    GradebookRoute,
    ProgressRoute,
    StatsRoute,
    SubmissionRoute,
    SubmissionsRoute,
    check_user_name,
)
from .handlers import (
    NAMESPACE,
    DockerStatusRoute,
    ExecRouteBase,
    ExecuteRoute,
    ExerciseRoute,
    ExercisesRoute,
    HealthRoute,
    SubmitRoute,
)
from .live import ROUTE as LIVE_ROUTE
from .live import LiveRoute
from .metrics import CONTENT_TYPE, ExecMetrics
from .roles import HubRoles

log = logging.getLogger(__name__)
security_log = logging.getLogger("jupyter_exec_ext.security")


@dataclass(frozen=True)
class ServiceAccess:
    """Who may do what on the service: only what the configuration grants by name.

    Args:
        admin_users: hub users who are admins of the service (everyone's submissions, metrics).
        admin_groups: hub groups whose members are admins (e.g. ``instructors``).
        admin_roles: hub roles whose holders are admins (e.g. ``instructor``).
        admin_services: hub services that are admins (e.g. a gradebook exporter).
        metrics_readers: hub services that may read ``metrics`` and nothing else (a scraper).
    """

    admin_users: frozenset[str] = frozenset()
    admin_groups: frozenset[str] = frozenset()
    admin_services: frozenset[str] = frozenset()
    metrics_readers: frozenset[str] = frozenset()
    admin_roles: frozenset[str] = frozenset()

    @property
    def needs_membership(self) -> bool:
        """Whether roles depend on hub groups or roles (asked of the hub)."""
        return bool(self.admin_groups or self.admin_roles)

    def role(self, model: dict, groups: Iterable[str] = (), roles: Iterable[str] = ()) -> str:
        """``admin`` (an instructor: everyone's records, the gradebook, metrics), ``user`` (runs
        code, reads their own record), ``metrics`` (reads metrics only) or ``none`` for the hub's
        model of the caller, with the ``groups`` and ``roles`` the hub lists for them. Being a
        hub admin grants nothing here, and neither does being a hub service: only the lists
        above do."""
        name = model.get("name", "")
        if model.get("kind", "user") == "service":
            if name in self.admin_services:
                return "admin"
            return "metrics" if name in self.metrics_readers else "none"
        if (
            name in self.admin_users
            or self.admin_groups.intersection(groups)
            or self.admin_roles.intersection(roles)
        ):
            return "admin"
        return "user"


Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


def parse_networks(entries: Iterable[str], what: str) -> tuple[Network, ...]:
    """``10.0.0.5`` or ``10.0.0.0/8`` entries as networks.

    Raises:
        ValueError: an entry is neither an address nor a network; the message names it.
    """
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{what}: {entry!r} is not an IP address or network") from None
    return tuple(networks)


def client_ip(peer: str, headers: Any, trusted: tuple[Network, ...]) -> str:
    """The caller's address: the peer's, unless the peer is a trusted proxy; then the nearest
    address in ``X-Forwarded-For`` that is not a trusted proxy (else ``X-Real-Ip``). Headers
    from anyone else are ignored: a caller could write any address there."""

    def is_trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in trusted)

    if not trusted or not is_trusted(peer):
        return peer
    hops = [h.strip() for h in headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # a forged or broken header: the proxy's address is what we know
    real = headers.get("X-Real-Ip", "").strip()
    try:
        return str(ipaddress.ip_address(real)) if real else peer
    except ValueError:
        return peer


def readable_by_others(directory: Path) -> list[Path]:
    """The directory and the notebooks in it that any user of the machine may read (o+r): under
    LocalProcessSpawner students are such users, and these files hold the hidden tests and the
    reference solutions."""
    if not directory.is_dir():
        return []
    found = [directory] if directory.stat().st_mode & 0o004 else []
    for path in sorted(directory.rglob("*.ipynb")):
        try:
            if path.stat().st_mode & 0o004:
                found.append(path)
        except OSError:
            continue
    return found


class OpenRequests:
    """Counts the requests being answered, so a stopping service can wait for their answers."""

    def __init__(self) -> None:
        self.count = 0

    async def wait_until_none(self, timeout_s: float, poll_s: float = 0.1) -> bool:
        """Waits until no request is open, for at most ``timeout_s``; says whether none is."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.count > 0:
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(poll_s)
        return True


@dataclass(eq=False)
class HubParts:
    """The service's own parts, next to the shared ones (``ExecContext.hub``): who the hub says
    the caller is, what the configuration grants them, and the requests being answered."""

    auth: HubAuth
    roles: HubRoles
    access: ServiceAccess
    trusted_proxies: tuple[Network, ...] = ()
    open_requests: OpenRequests = field(default_factory=OpenRequests)


class _HubAuthorized:
    """The ``authorizer`` of the shared routes: ``ServiceHandler.prepare`` has already refused
    callers without a grant for the route."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return True


class ServiceHandler(HubAuthenticated, ExecRouteBase):
    """Base of the service's routes: the caller is whoever the hub says the token belongs to, and
    may do what ``ServiceAccess`` grants them."""

    authorizer = _HubAuthorized()
    #: The roles that may use the route (``HealthRoute`` is open to anyone).
    roles: frozenset[str] = frozenset({"admin", "user"})

    @property
    def hub(self) -> HubParts:
        return self.context.hub

    @property
    def hub_auth(self) -> HubAuth:
        return self.hub.auth

    async def prepare(self) -> None:
        """Asks the hub who the caller is (asynchronously: a hub round trip must not stall the
        loop), once per request, then refuses callers without a grant for this route; routes see
        ``current_user`` as a hub model or None."""
        self.hub.open_requests.count += 1
        self._counted = True
        self.request.remote_ip = client_ip(
            self.request.remote_ip, self.request.headers, self.hub.trusted_proxies
        )
        try:
            model = await self.hub_auth.get_user(self, sync=False)
        except Exception as e:  # the hub is down or answered nonsense: nobody can be identified
            log.warning("could not ask the hub who the caller is: %s", e)
            raise ApiError(
                "the hub cannot check your token right now; try again in a minute", status=503
            ) from None
        user = None
        if model:
            try:
                user = self.check_hub_user(model)
            except UserNotAllowed:
                user = None
        self.current_user = user
        self._role = await self._resolve_role(user)
        if isinstance(self, HealthRoute):
            if self.scheduler.stopping:  # a probe on a kept-alive connection while stopping
                self.finish({"status": "down"})
            return
        if user is None:
            return  # no token: the route's own @authenticated answers 403
        kind, name = user.get("kind", "user"), user.get("name", "")
        if kind == "user":
            try:
                check_user_name(name, "your hub user name")
            except ValueError as e:
                security_log.warning("security: refused hub user %r: reserved name", name)
                raise ApiError(
                    f"{e}; ask the hub admin to rename the account", status=403
                ) from None
        if self.role not in self.roles:
            security_log.warning(
                "security: %s %r (role %s) refused on %s", kind, name, self.role, self.route
            )
            if self.role == "metrics":
                raise ApiError(f"hub service {name!r} may read metrics only", status=403)
            if self.role == "none":
                raise ApiError(
                    f"hub service {name!r} has no grant on the exec service (the admin "
                    "lists services in admin_services or metrics_readers)",
                    status=403,
                )
            raise ApiError(
                "only admins of the exec service and metrics readers may read this", status=403
            )

    async def _resolve_role(self, user: Optional[dict]) -> str:
        """The caller's role; a user's groups and roles come from the hub's API, asked with the
        service's own token (scopes read:users:groups and read:roles:users), not from what the
        caller's token may see of itself."""
        if not isinstance(user, dict):
            return "none"
        access: ServiceAccess = self.hub.access
        groups: Iterable[str] = ()
        roles: Iterable[str] = ()
        if user.get("kind", "user") == "user" and access.needs_membership:
            hub_roles: HubRoles = self.hub.roles
            try:
                groups, roles = await hub_roles.membership(user.get("name", ""))
            except Exception as e:  # the hub is down: nobody is an instructor meanwhile
                log.warning(
                    "could not ask the hub for %r's groups and roles: %s", user.get("name"), e
                )
        return access.role(user, groups, roles)

    def on_finish(self) -> None:
        if getattr(self, "_counted", False):
            self.hub.open_requests.count -= 1
            self._counted = False
        super().on_finish()

    def get_login_url(self) -> str:
        # An API answers a missing or refused token with 403; it never redirects to a login page.
        raise tornado.web.HTTPError(403)

    @property
    def user_name(self) -> str:
        user = self.current_user
        return user.get("name", "-") if isinstance(user, dict) else "-"

    @property
    def role(self) -> str:
        """The caller's role (``ServiceAccess.role``, resolved in ``prepare``); ``none`` without
        a caller."""
        return getattr(self, "_role", "none")

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_instructor(self) -> bool:
        return self.is_admin

    @property
    def gradebook_user(self) -> str:
        return self.user_name


class ModeHandler(ServiceHandler):
    """``GET authoring/mode``: ``{mode: student, instructor}``; authoring is single-server only,
    and ``instructor`` tells the lab whether to offer the gradebook."""

    route = "authoring/mode"

    @tornado.web.authenticated
    async def get(self) -> None:
        self.finish({"mode": "student", "instructor": self.is_instructor})


class MetricsHandler(ServiceHandler):
    """``GET metrics``: Prometheus text format; for admins and the services in metrics_readers."""

    route = "metrics"
    roles = frozenset({"admin", "metrics"})

    @tornado.web.authenticated
    async def get(self) -> None:
        metrics: ExecMetrics = self.metrics
        self.set_header("Content-Type", CONTENT_TYPE)
        self.finish(metrics.exposition())


class LiveServiceHandler(LiveRoute, ServiceHandler):
    """``GET execute/ws`` (WebSocket): live runs for hub users, as in the extension; each run
    counts as a request in progress, so a stopping service waits for it."""

    async def check_live_access(self) -> None:
        if self.current_user is None:
            security_log.warning(
                "security: refused execute/ws from %s (no valid hub token)", self.request.remote_ip
            )
            raise tornado.web.HTTPError(403)

    def run_started(self) -> None:
        self.hub.open_requests.count += 1

    def run_ended(self) -> None:
        self.hub.open_requests.count -= 1


# -- the shared routes, authenticated by the hub --------------------------------------------------


class ExecuteServiceHandler(ExecuteRoute, ServiceHandler):
    """``POST execute`` on the executor service."""


class DockerStatusServiceHandler(DockerStatusRoute, ServiceHandler):
    """``GET docker/status`` on the executor service."""


class HealthServiceHandler(HealthRoute, ServiceHandler):
    """``GET health`` on the executor service."""


class ExercisesServiceHandler(ExercisesRoute, ServiceHandler):
    """``GET exercises`` on the executor service."""


class ExerciseServiceHandler(ExerciseRoute, ServiceHandler):
    """``GET exercises/{id}`` on the executor service."""


class SubmitServiceHandler(SubmitRoute, ServiceHandler):
    """``POST exercises/{id}/submit`` on the executor service."""


class SubmissionsServiceHandler(SubmissionsRoute, ServiceHandler):
    """``GET submissions`` on the executor service."""


class SubmissionServiceHandler(SubmissionRoute, ServiceHandler):
    """``GET submissions/{id}`` on the executor service."""


class GradebookServiceHandler(GradebookRoute, ServiceHandler):
    """``GET gradebook`` on the executor service."""


class StatsServiceHandler(StatsRoute, ServiceHandler):
    """``GET exercises/{id}/stats`` on the executor service."""


class ProgressServiceHandler(ProgressRoute, ServiceHandler):
    """``GET exercises/{id}/progress`` on the executor service."""


#: The service's route table, relative to its prefix: the shared API plus its own routes.
SERVICE_ROUTES: list[tuple[str, type]] = [
    (f"{NAMESPACE}/execute", ExecuteServiceHandler),
    (f"{NAMESPACE}/docker/status", DockerStatusServiceHandler),
    (f"{NAMESPACE}/health", HealthServiceHandler),
    (f"{NAMESPACE}/exercises", ExercisesServiceHandler),
    (rf"{NAMESPACE}/exercises/(?P<exercise_id>[^/]+)", ExerciseServiceHandler),
    (rf"{NAMESPACE}/exercises/(?P<exercise_id>[^/]+)/submit", SubmitServiceHandler),
    (f"{NAMESPACE}/submissions", SubmissionsServiceHandler),
    (rf"{NAMESPACE}/submissions/(?P<submission_id>[^/]+)", SubmissionServiceHandler),
    (f"{NAMESPACE}/gradebook", GradebookServiceHandler),
    (rf"{NAMESPACE}/exercises/(?P<exercise_id>[^/]+)/stats", StatsServiceHandler),
    (rf"{NAMESPACE}/exercises/(?P<exercise_id>[^/]+)/progress", ProgressServiceHandler),
    (f"{NAMESPACE}/authoring/mode", ModeHandler),
    (f"{NAMESPACE}/metrics", MetricsHandler),
    (LIVE_ROUTE, LiveServiceHandler),
]


class ExecServiceApp(ExecSettings, Application):
    """The executor service. Configure it with ``--config=file.py`` (``c.ExecServiceApp.…``) or
    on the command line (``--ExecServiceApp.db_path=…``); sandbox knobs as for the extension."""

    name = "jupyter-exec-service"
    description = __doc__
    version = __version__

    aliases = {
        "config": "ExecServiceApp.config_file",
        "ip": "ExecServiceApp.ip",
        "port": "ExecServiceApp.port",
        "db": "ExecServiceApp.db_path",
        "exercises": "ExecServiceApp.exercises_dir",
    }

    config_file = Unicode("", help="Python config file to load (c.ExecServiceApp.…).").tag(
        config=True
    )
    ip = Unicode(
        help="Address to listen on. Default: the host of JUPYTERHUB_SERVICE_URL, else 127.0.0.1."
    ).tag(config=True)
    port = Integer(
        help="Port to listen on. Default: the port of JUPYTERHUB_SERVICE_URL, else 10101."
    ).tag(config=True)
    base_url = Unicode(
        help="Path prefix of every route. Default: JUPYTERHUB_SERVICE_PREFIX "
        "(/services/<name>/ behind the hub's proxy), else /."
    ).tag(config=True)
    db_path = Unicode(
        help="SQLite file of the gradebook (every graded submission, kept across "
        "restarts) unless db_url names another database. Default: "
        "JUPYTER_EXEC_SERVICE_DB, else exec-submissions.sqlite in the working "
        "directory. A file of an older version is upgraded in place on start."
    ).tag(config=True)
    admin_users = List(
        Unicode(),
        help="Hub users who are admins of the service: they may list "
        "anyone's submissions and read the metrics. Being a hub admin is not enough.",
    ).tag(config=True)
    admin_groups = List(
        Unicode(),
        help="Hub groups whose members are admins of the service "
        "(instructors: the gradebook, everyone's submissions, metrics), e.g. "
        "['instructors']. The service asks the hub for a user's groups with its "
        "own token: grant it the scope read:users:groups.",
    ).tag(config=True)
    admin_roles = List(
        Unicode(),
        help="Hub roles whose holders are admins of the service, e.g. "
        "['instructor']; grant the service the scope read:roles:users.",
    ).tag(config=True)
    membership_ttl = Float(
        30.0,
        help="Seconds the service keeps the hub's answer about a user's "
        "groups and roles before asking again.",
    ).tag(config=True)
    admin_services = List(
        Unicode(),
        help="Hub services that are admins of the service. Any other "
        "hub service is refused, unless metrics_readers names it.",
    ).tag(config=True)
    metrics_readers = List(
        Unicode(),
        help="Hub services that may read GET metrics and nothing "
        "else (a Prometheus scraper's service).",
    ).tag(config=True)
    trusted_proxies = List(
        Unicode(),
        help="Addresses or networks (10.0.0.0/8) of the proxies in "
        "front of the service, whose X-Forwarded-For and X-Real-Ip are believed "
        "for the client's address in logs; from anyone else these headers are "
        "ignored. Default: none.",
    ).tag(config=True)
    stop_timeout = Float(
        None,
        allow_none=True,
        help="On SIGTERM, seconds to wait for the "
        "requests in progress to finish before exiting. Default: the longest a "
        "request can run (max_time_limit for a run; for a submission, the longest "
        "exercise's time limit plus its tests' timeouts) plus 30 s for starting "
        "and removing containers.",
    ).tag(config=True)

    def _service_url(self):
        return urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", ""))

    @default("ip")
    def _default_ip(self) -> str:
        return self._service_url().hostname or "127.0.0.1"

    @default("port")
    def _default_port(self) -> int:
        return self._service_url().port or 10101

    @default("base_url")
    def _default_base_url(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")

    @default("db_path")
    def _default_db_path(self) -> str:
        return os.environ.get("JUPYTER_EXEC_SERVICE_DB", "exec-submissions.sqlite")

    @validate("admin_users")
    def _valid_admin_users(self, proposal: Any) -> list[str]:
        for name in proposal["value"]:
            try:
                check_user_name(name, "ExecServiceApp.admin_users: user")
            except ValueError as e:
                raise TraitError(str(e)) from None
        return proposal["value"]

    @validate("stop_timeout")
    def _valid_stop_timeout(self, proposal: Any) -> Optional[float]:
        if proposal["value"] is not None and proposal["value"] < 0:
            raise TraitError(
                f"ExecServiceApp.stop_timeout must be 0 (no wait) or more, got "
                f"{proposal['value']!r}"
            )
        return proposal["value"]

    @validate("trusted_proxies")
    def _valid_trusted_proxies(self, proposal: Any) -> list[str]:
        try:
            parse_networks(proposal["value"], "ExecServiceApp.trusted_proxies")
        except ValueError as e:
            raise TraitError(str(e)) from None
        return proposal["value"]

    def longest_request_s(self, context: ExecContext) -> float:
        """The longest a request in progress can still run: a run's ``max_time_limit``, or the
        grading of the slowest exercise (its time limit as clamped, then each test's timeout), plus
        30 s for starting and removing containers. Reads notebooks: call it off the event loop."""
        longest = self.max_time_limit
        registry = context.registry
        if registry is not None:
            bounds = context.bounds
            try:
                exercises = registry.list()
            except Exception as e:  # an unreadable directory must not stop the shutdown
                log.warning("could not read the exercises to bound the shutdown wait: %s", e)
                exercises = []
            for exercise in exercises:
                limits, _ = exercise.resolved_limits(bounds.default_limits).clamped(
                    bounds.max_limits
                )
                longest = max(longest, limits.time_s + sum(t.timeout for t in exercise.tests))
        return longest + 30.0

    def access(self) -> ServiceAccess:
        """The grants the configuration names."""
        return ServiceAccess(
            admin_users=frozenset(self.admin_users),
            admin_groups=frozenset(self.admin_groups),
            admin_roles=frozenset(self.admin_roles),
            admin_services=frozenset(self.admin_services),
            metrics_readers=frozenset(self.metrics_readers),
        )

    @catch_config_error
    def initialize(self, argv: Optional[list[str]] = None) -> None:
        super().initialize(argv)
        if self.config_file:
            self.load_config_file(self.config_file)
            self.update_config(self.cli_config)  # the command line wins over the file

    def make_app(self) -> tornado.web.Application:
        """Builds the parts and the tornado application around them."""
        if self.exercises_dir:
            exposed = readable_by_others(Path(self.exercises_dir))
            if exposed:
                security_log.warning(
                    "security: %d of the exercise files are readable by every user of this machine "
                    "(e.g. %s): students could read hidden tests and solutions. Run "
                    "`chmod -R o-rwx %s` (docs/hub.md, security checklist)",
                    len(exposed),
                    exposed[0],
                    self.exercises_dir,
                )
        self.context = build_context(self, gradebook_sqlite=Path(self.db_path), metrics=True)
        hub_auth = HubAuth()  # reads JUPYTERHUB_API_TOKEN / _API_URL / _SERVICE_NAME
        self.context.hub = HubParts(
            auth=hub_auth,
            roles=HubRoles(hub_auth.api_url, hub_auth.api_token, self.membership_ttl),
            access=self.access(),
            trusted_proxies=parse_networks(self.trusted_proxies, "ExecServiceApp.trusted_proxies"),
        )
        handlers = [
            (url_path_join(self.base_url, pattern), handler) for pattern, handler in SERVICE_ROUTES
        ]
        return tornado.web.Application(handlers, **{CONTEXT_KEY: self.context})

    async def serve(self) -> None:
        """Listens until SIGTERM or SIGINT; then takes no new runs, lets the runs in flight
        finish (for at most ``stop_timeout``), answers them, and stops the parts (drains the
        pool)."""
        app = self.make_app()
        # xheaders off: the client address comes from trusted proxies only (ServiceHandler.prepare).
        server = app.listen(self.port, self.ip, xheaders=False)
        context: ExecContext = app.settings[CONTEXT_KEY]
        context.start()
        log.info(
            "jupyter-exec-service %s on http://%s:%d%s, image %s",
            __version__,
            self.ip,
            self.port,
            self.base_url,
            self.image,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        # New connections are refused (the proxy and remote mode answer "unreachable"); a new
        # request on an open connection is refused with 503; runs in flight go on.
        context.scheduler.stop_admitting()
        server.stop()
        open_requests: OpenRequests = context.hub.open_requests
        wait_s = self.stop_timeout
        if wait_s is None:
            wait_s = await asyncio.get_running_loop().run_in_executor(
                None, self.longest_request_s, context
            )
        log.info(
            "jupyter-exec-service stopping: no new runs; waiting up to %.0f s for %d "
            "request(s) in progress",
            wait_s,
            open_requests.count,
        )
        if not await open_requests.wait_until_none(wait_s):
            log.warning(
                "%d request(s) still in progress after %.0f s; stopping anyway (the reaper "
                "of the next start removes their containers)",
                open_requests.count,
                wait_s,
            )
        try:  # idle keep-alive connections; every answer has been written
            await asyncio.wait_for(server.close_all_connections(), timeout=5)
        except asyncio.TimeoutError:
            pass
        await asyncio.get_running_loop().run_in_executor(None, context.close)
        shared_state = getattr(self, "shared_state", None)
        if shared_state is not None:  # its runs have ended: nothing is left to renew
            await shared_state.close()
        log.info("jupyter-exec-service stopped")

    def start(self) -> None:
        asyncio.run(self.serve())


def main(argv: Optional[list[str]] = None) -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="[%(levelname)1.1s %(asctime)s %(name)s] %(message)s",
    )
    app = ExecServiceApp.instance()
    app.initialize(argv)
    app.start()


if __name__ == "__main__":
    main()
