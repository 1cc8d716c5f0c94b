"""The jupyter_server extension: the REST API, served either by a sandbox of its own (``local``) or
by forwarding to the hub's executor service (``remote``), and the environment variables that let
kernels reach the REST API.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Optional

from jupyter_core.paths import jupyter_data_dir
from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join
from traitlets import Bool, Enum, Float, TraitError, Unicode, default, validate

from .. import __version__
from .authoring import AUTHORING_ROUTES
from .config import ExecSettings
from .context import CONTEXT_KEY, ExecContext, build_context, remote_context
from .handlers import NAMESPACE, ROUTES
from .live import LIVE_ROUTES, REMOTE_LIVE_ROUTES
from .remote import REMOTE_ROUTES, RemoteService, loopback_mismatch

log = logging.getLogger(__name__)

#: Environment variables the extension sets for kernels started after it (documented in docs/internals.md).
KERNEL_URL_ENV = "JUPYTER_EXEC_EXT_URL"
KERNEL_TOKEN_ENV = "JUPYTER_EXEC_EXT_TOKEN"
#: Where remote mode finds the executor service when ``service_url`` is not configured.
SERVICE_URL_ENV = "JUPYTER_EXEC_SERVICE_URL"


class _ForwardToServerLog(logging.Handler):
    """Hands this package's log records to the handlers of the server's logger, so they appear in
    the server's output with its format, wherever the server sends its log.

    The records still propagate to the root logger as usual; the server's logger does not (traitlets
    sets ``propagate=False`` on it), so nothing is printed twice.
    """

    def __init__(self, target: logging.Logger) -> None:
        super().__init__()
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        for handler in self.target.handlers:
            if record.levelno >= handler.level:
                handler.handle(record)


class ExecExtApp(ExecSettings, ExtensionApp):
    """Runs students' Python code in hardened Docker containers behind ``{base_url}api/exec/v1/``.

    Every knob is a ``config=True`` trait (``c.ExecExtApp.time_limit = 10``); the sandbox knobs
    are shared with the executor service (``config.ExecSettings``). The parts the routes share are
    one ``ExecContext`` (``context.build_context``), under one tornado settings key.
    """

    name = "jupyter_exec_ext"
    description = "Run and grade students' Python code in hardened Docker containers"
    version = __version__

    # -- where code runs ------------------------------------------------------------------------
    backend = Enum(
        ["local", "remote"],
        "local",
        help="'local': this server talks to Docker itself "
        "(a single-user machine). 'remote': every route is forwarded to the executor "
        "service at service_url with the user's hub token; this server never opens "
        "the Docker socket (JupyterHub).",
    ).tag(config=True)
    service_url = Unicode(
        help="Base URL of the executor service's REST API in remote mode, e.g. "
        "http://hub:8000/services/exec/api/exec/v1/. "
        "Default: JUPYTER_EXEC_SERVICE_URL."
    ).tag(config=True)
    service_token = Unicode(
        help="Token sent to the executor service in remote mode. Default: "
        "JUPYTERHUB_API_TOKEN, the user's server token on a hub (the service "
        "sees the user it belongs to)."
    ).tag(config=True)
    service_timeout = Float(
        300.0,
        help="Seconds a forwarded request may take (a submission runs "
        "every test) before the answer is 504.",
    ).tag(config=True)

    # -- who the served notebooks are for ------------------------------------------------------
    instructor = Bool(
        False,
        help="Instructor mode: the server's root holds the authoritative "
        "exercise notebooks, and the authoring routes (validate, preview, release) "
        "answer. Off, the root must be a students' workspace of released copies, "
        "and the authoring routes answer 403.",
    ).tag(config=True)
    workspace_dir = Unicode(
        help="The students' workspace that Release writes student copies into "
        "(command 1 serves it as the root directory in student mode); empty "
        "for none."
    ).tag(config=True)

    @default("service_url")
    def _default_service_url(self) -> str:
        return os.environ.get(SERVICE_URL_ENV, "")

    @default("service_token")
    def _default_service_token(self) -> str:
        return os.environ.get("JUPYTERHUB_API_TOKEN", "")

    @validate("service_timeout")
    def _valid_service_timeout(self, proposal: Any) -> float:
        if not proposal["value"] > 0:
            raise TraitError(
                f"ExecExtApp.service_timeout must be positive, got {proposal['value']!r}"
            )
        return proposal["value"]

    @default("exercises_dir")
    def _default_exercises_dir(self) -> str:
        root = getattr(self.serverapp, "root_dir", "") or os.getcwd()
        candidate = Path(root) / "exercises"
        return str(candidate) if candidate.is_dir() else ""

    # -- assembling the parts -------------------------------------------------------------------

    #: The parts the routes share, once ``initialize_settings`` built them.
    context: Optional[ExecContext] = None

    def initialize_settings(self) -> None:
        """Builds the parts of the chosen backend, publishes the API's address to kernels, and
        (locally) starts the reaper and the warm pool."""
        self._forward_logs()
        if self.backend == "remote":
            if not self.service_url:
                raise TraitError(
                    "ExecExtApp.backend is 'remote' but no service_url is set "
                    f"(nor {SERVICE_URL_ENV})"
                )
            mismatch = loopback_mismatch(self.service_url, os.environ.get("JUPYTERHUB_API_URL", ""))
            if mismatch:
                log.warning("%s", mismatch)
            # Nothing here touches Docker: the service owns the socket.
            self.context = remote_context(
                self, RemoteService(self.service_url, self.service_token, self.service_timeout)
            )
            self.settings[CONTEXT_KEY] = self.context
            self._publish_for_kernels()
            log.info(
                "jupyter_exec_ext %s: forwarding to the executor service at %s",
                __version__,
                self.service_url,
            )
            return
        self.context = build_context(
            self,
            gradebook_sqlite=Path(jupyter_data_dir()) / "jupyter_exec_ext" / "gradebook.sqlite",
            instructor=self.instructor,
            workspace_dir=self.workspace_dir,
        )
        self.settings[CONTEXT_KEY] = self.context
        self._warn_if_exercises_are_served()
        self._publish_for_kernels()
        self.context.start()
        log.info(
            "jupyter_exec_ext %s: image %s, %d run(s) at once, %d per user, exercises in %s",
            __version__,
            self.image,
            self.max_concurrent_runs,
            self.max_runs_per_user,
            self.exercises_dir or "(none)",
        )

    def initialize_handlers(self) -> None:
        """Adds the route table; ExtensionApp prefixes every pattern with the server's base_url."""
        self.handlers.extend(
            REMOTE_ROUTES + REMOTE_LIVE_ROUTES
            if self.backend == "remote"
            else ROUTES + AUTHORING_ROUTES + LIVE_ROUTES
        )

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        """Called once the server listens: its port is final now (port_retries may have moved it)."""
        self._publish_for_kernels()

    async def stop_extension(self) -> None:
        """Stops the reaper and the pools, closes the engine connection, restores the environment."""
        if self.context is not None:
            self.context.close()
        for name, value in getattr(self, "_environ_before", {}).items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        forwarder = getattr(self, "_log_forwarder", None)
        if forwarder is not None:
            package_log = logging.getLogger("jupyter_exec_ext")
            package_log.removeHandler(forwarder)
            package_log.setLevel(self._log_level_before)

    # -- helpers --------------------------------------------------------------------------------

    def api_url(self) -> str:
        """The REST API's base URL as a process on this machine reaches it."""
        server = self.serverapp
        host = server.ip
        if host in ("", "*", "0.0.0.0", "localhost"):
            host = "127.0.0.1"
        elif host == "::":
            host = "[::1]"
        elif ":" in host:
            host = f"[{host}]"
        scheme = "https" if server.certfile else "http"
        return f"{scheme}://{host}:{server.port}" + url_path_join(server.base_url, NAMESPACE) + "/"

    def _warn_if_exercises_are_served(self) -> None:
        """Outside instructor mode, an exercise directory under the root directory hands every
        reference solution and hidden test to the Contents API: say so at start-up."""
        root = getattr(self.serverapp, "root_dir", "")
        if self.instructor or not self.exercises_dir or not root:
            return
        if Path(self.exercises_dir).resolve().is_relative_to(Path(root).resolve()):
            log.warning(
                "the exercise directory %s is inside the server's root directory %s: students "
                "can open its reference solutions and hidden tests. Serve a workspace of "
                "released copies instead (`jupyter exec-ext update-workspace`), or set "
                "c.ExecExtApp.instructor = True if this server is an instructor's.",
                self.exercises_dir,
                root,
            )

    def _publish_for_kernels(self) -> None:
        """Puts the API URL and a token into ``os.environ``; kernels started later inherit them.

        The token is the server's own: a kernel runs as the same user, who can already read it
        from the server's runtime file (``list_running_servers()``), so it grants nothing new.
        """
        if getattr(self.serverapp, "sock", ""):
            log.info(
                "the server listens on a Unix socket; kernels find it through "
                "list_running_servers(), not %s",
                KERNEL_URL_ENV,
            )
            return
        if not hasattr(self, "_environ_before"):
            self._environ_before = {
                name: os.environ.get(name) for name in (KERNEL_URL_ENV, KERNEL_TOKEN_ENV)
            }
        os.environ[KERNEL_URL_ENV] = self.api_url()
        os.environ[KERNEL_TOKEN_ENV] = self.serverapp.identity_provider.token or ""

    def _forward_logs(self) -> None:
        """Sends the package's log records (``jupyter_exec_ext.*``) to the server's log."""
        package_log = logging.getLogger("jupyter_exec_ext")
        self._log_level_before = package_log.level
        self._log_forwarder = _ForwardToServerLog(self.serverapp.log)
        package_log.addHandler(self._log_forwarder)
        if package_log.level == logging.NOTSET:
            package_log.setLevel(self.serverapp.log.level)
