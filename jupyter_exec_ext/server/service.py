"""``jupyter-exec-service``: the REST API as a JupyterHub-managed service. It owns the Docker
socket, the authoritative exercise directory, the result cache and the record of submissions;
single-user servers in remote mode forward to it with their user's token.

Every caller is authenticated by the hub (``HubAuth``: a server's or a kernel's
``JUPYTERHUB_API_TOKEN`` in ``Authorization: token …``); the hub has already checked that the token
may access this service (scope ``access:services!service=<name>``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlparse

import tornado.web
from jupyter_server.utils import url_path_join
from jupyterhub.services.auth import HubAuth, HubAuthenticated, UserNotAllowed
from traitlets import Integer, List, Unicode, default
from traitlets.config import Application, catch_config_error

from .. import __version__
from .errors import ApiError
from .handlers import METRICS_KEY, NAMESPACE, ExecRouteBase, bind_routes
from .metrics import CONTENT_TYPE, ExecMetrics
from .settings import ExecSettings
from .submissions import SubmissionStore

log = logging.getLogger(__name__)

STORE_KEY = "exec_service_store"
ADMINS_KEY = "exec_service_admins"
HUB_AUTH_KEY = "exec_service_hub_auth"


class _HubAuthorized:
    """The ``authorizer`` of the shared routes: the hub already decided (access scope) that the
    caller may use this service, and every user may use every route."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return True


class ServiceHandler(HubAuthenticated, ExecRouteBase):
    """Base of the service's routes: the caller is whoever the hub says the token belongs to."""

    authorizer = _HubAuthorized()

    @property
    def hub_auth(self) -> HubAuth:
        return self.settings[HUB_AUTH_KEY]

    async def prepare(self) -> None:
        """Asks the hub who the caller is (asynchronously: a hub round trip must not stall the
        loop), once per request; routes then see ``current_user`` as a hub user model or None."""
        try:
            model = await self.hub_auth.get_user(self, sync=False)
        except Exception as e:  # the hub is down or answered nonsense: nobody can be identified
            log.warning("could not ask the hub who the caller is: %s", e)
            raise ApiError("the hub cannot check your token right now; try again in a minute",
                           status=503) from None
        user = None
        if model:
            try:
                user = self.check_hub_user(model)
            except UserNotAllowed:
                user = None
        self.current_user = user

    def get_login_url(self) -> str:
        # An API answers a missing or refused token with 403; it never redirects to a login page.
        raise tornado.web.HTTPError(403)

    @property
    def user_name(self) -> str:
        user = self.current_user
        return user.get("name", "-") if isinstance(user, dict) else "-"

    @property
    def is_admin(self) -> bool:
        """A hub admin, a user the service's ``admin_users`` names, or a hub service (Prometheus
        scraping with a service token)."""
        user = self.current_user
        if not isinstance(user, dict):
            return False
        return (user.get("admin") is True or user.get("kind") == "service"
                or user.get("name") in self.settings[ADMINS_KEY])

    async def submission_graded(self, exercise: Any, result: Any) -> None:
        store: SubmissionStore = self.settings[STORE_KEY]
        await self.scheduler.query(lambda: store.record(self.user_name, result))


class SubmissionsHandler(ServiceHandler):
    """``GET submissions``: the caller's own graded submissions, newest first. Admins may ask
    for one user's (``?user=name``) or everyone's (``?user=*``)."""

    route = "submissions"

    @tornado.web.authenticated
    async def get(self) -> None:
        wanted = self.get_query_argument("user", self.user_name)
        if wanted != self.user_name and not self.is_admin:
            raise ApiError("you may only list your own submissions", status=403)
        try:
            limit = max(1, min(int(self.get_query_argument("limit", "100")), 1000))
        except ValueError:
            raise ApiError("limit must be a whole number") from None
        store: SubmissionStore = self.settings[STORE_KEY]
        rows = await self.scheduler.query(
            lambda: store.list(None if wanted == "*" else wanted, limit))
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(rows))


class MetricsHandler(ServiceHandler):
    """``GET metrics``: Prometheus text format; for admins and hub services (a scraper's token)."""

    route = "metrics"

    @tornado.web.authenticated
    async def get(self) -> None:
        if not self.is_admin:
            raise ApiError("metrics are for admins and monitoring services", status=403)
        metrics: ExecMetrics = self.metrics
        self.set_header("Content-Type", CONTENT_TYPE)
        self.finish(metrics.exposition())


#: The service's route table, relative to its prefix: the shared API plus its own routes.
SERVICE_ROUTES: list[tuple[str, type]] = bind_routes(ServiceHandler, "ServiceHandler") + [
    (f"{NAMESPACE}/submissions", SubmissionsHandler),
    (f"{NAMESPACE}/metrics", MetricsHandler),
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

    config_file = Unicode("", help="Python config file to load (c.ExecServiceApp.…).").tag(config=True)
    ip = Unicode(help="Address to listen on. Default: the host of JUPYTERHUB_SERVICE_URL, else "
                 "127.0.0.1.").tag(config=True)
    port = Integer(help="Port to listen on. Default: the port of JUPYTERHUB_SERVICE_URL, else "
                   "10101.").tag(config=True)
    base_url = Unicode(help="Path prefix of every route. Default: JUPYTERHUB_SERVICE_PREFIX "
                       "(/services/<name>/ behind the hub's proxy), else /.").tag(config=True)
    db_path = Unicode(help="SQLite file of the submission record (kept across restarts). "
                      "Default: JUPYTER_EXEC_SERVICE_DB, else exec-submissions.sqlite in the "
                      "working directory.").tag(config=True)
    admin_users = List(Unicode(), help="Users who may list everyone's submissions and read the "
                       "metrics, besides hub admins.").tag(config=True)

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

    @catch_config_error
    def initialize(self, argv: Optional[list[str]] = None) -> None:
        super().initialize(argv)
        if self.config_file:
            self.load_config_file(self.config_file)
            self.update_config(self.cli_config)  # the command line wins over the file

    def make_app(self) -> tornado.web.Application:
        """Builds the parts and the tornado application around them."""
        parts = self.build_parts()
        self.store = SubmissionStore(Path(self.db_path))
        self.metrics = ExecMetrics(self.caching_sandbox)
        settings = {
            **parts,
            STORE_KEY: self.store,
            ADMINS_KEY: set(self.admin_users),
            HUB_AUTH_KEY: HubAuth(),  # reads JUPYTERHUB_API_TOKEN / _API_URL / _SERVICE_NAME
            METRICS_KEY: self.metrics,
        }
        handlers = [(url_path_join(self.base_url, pattern), handler)
                    for pattern, handler in SERVICE_ROUTES]
        return tornado.web.Application(handlers, **settings)

    async def serve(self) -> None:
        """Listens until SIGTERM or SIGINT, then stops the parts (drains the pool)."""
        app = self.make_app()
        server = app.listen(self.port, self.ip, xheaders=True)
        self.start_background()
        log.info("jupyter-exec-service %s on http://%s:%d%s, image %s, submissions in %s",
                 __version__, self.ip, self.port, self.base_url, self.image, self.db_path)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        server.stop()
        await asyncio.get_running_loop().run_in_executor(None, self.stop_parts)
        self.store.close()
        log.info("jupyter-exec-service stopped")

    def start(self) -> None:
        asyncio.run(self.serve())


def main(argv: Optional[list[str]] = None) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="[%(levelname)1.1s %(asctime)s %(name)s] %(message)s")
    app = ExecServiceApp.instance()
    app.initialize(argv)
    app.start()


if __name__ == "__main__":
    main()
