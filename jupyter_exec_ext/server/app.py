"""The jupyter_server extension: configuration traits, the sandbox and scheduler, the reaper, and
the environment variables that let kernels reach the REST API.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Optional

from jupyter_server.extension.application import ExtensionApp
from jupyter_server.utils import url_path_join
from tornado.ioloop import PeriodicCallback
from traitlets import Bool, Float, Integer, TraitError, Unicode, default, validate

from .. import __version__
from ..grading import ExerciseRegistry, Grader
from ..sandbox import (
    CacheConfig,
    CachingSandbox,
    DockerSandbox,
    LimitError,
    Limits,
    SandboxConfig,
    SandboxError,
)
from ..sandbox.limits import parse_memory_mb
from .handlers import (
    BOUNDS_KEY,
    EXERCISES_DIR_KEY,
    GRADER_KEY,
    REGISTRY_KEY,
    NAMESPACE,
    ROUTES,
    SANDBOX_KEY,
    SCHEDULER_KEY,
)
from .payloads import RequestBounds
from .scheduler import RunScheduler

log = logging.getLogger(__name__)

#: Environment variables the extension sets for kernels started after it (documented in README).
KERNEL_URL_ENV = "JUPYTER_EXEC_EXT_URL"
KERNEL_TOKEN_ENV = "JUPYTER_EXEC_EXT_TOKEN"


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


class ExecExtApp(ExtensionApp):
    """Runs students' Python code in hardened Docker containers behind ``{base_url}api/exec/v1/``.

    Every knob below is a ``config=True`` trait (``c.ExecExtApp.time_limit = 10``). Sandbox settings
    default to the seed's ``DOCKER_EXECUTOR_*`` environment variables, then to built-in values.
    """

    name = "jupyter_exec_ext"
    description = "Run and grade students' Python code in hardened Docker containers"
    version = __version__

    # -- sandbox (seed variables) ---------------------------------------------------------------
    enabled = Bool(help="Run code at all. When false every run answers 503. "
                        "Default: DOCKER_EXECUTOR_ENABLED, else true.").tag(config=True)
    image = Unicode(help="Executor image (built by `jupyter exec-ext build-image`). "
                         "Default: DOCKER_EXECUTOR_IMAGE, else jupyter-exec-ext-executor:<version>."
                    ).tag(config=True)
    network = Unicode(help="Docker network of the containers; keep 'none' (no network). "
                           "Default: DOCKER_EXECUTOR_NETWORK, else none.").tag(config=True)
    runtime = Unicode(None, allow_none=True,
                      help="OCI runtime, e.g. 'runsc' (gVisor); None for the engine's default. "
                           "Default: DOCKER_EXECUTOR_RUNTIME.").tag(config=True)
    owner = Unicode(help="Names this server on its containers (label jupyter-exec-ext.owner), so "
                         "its reaper never touches another server's runs in progress. "
                         "Default: DOCKER_EXECUTOR_OWNER, else <hostname>-<pid>.").tag(config=True)
    memory_limit = Unicode(help="Memory of a run that asks for none: '256m', '1g' or MiB. "
                                "Default: DOCKER_EXECUTOR_MEMORY_LIMIT, else 256m.").tag(config=True)
    cpu_limit = Float(help="CPUs of a run that asks for none. "
                           "Default: DOCKER_EXECUTOR_CPU_LIMIT, else 0.5.").tag(config=True)
    time_limit = Float(help="Wall-clock seconds of a run that asks for none. "
                            "Default: DOCKER_EXECUTOR_TIME_LIMIT, else 30.").tag(config=True)
    pids_limit = Integer(help="Processes and threads of a run. "
                              "Default: DOCKER_EXECUTOR_PIDS_LIMIT, else 50.").tag(config=True)
    nofile_limit = Integer(help="Open files of a run. "
                                "Default: DOCKER_EXECUTOR_NOFILE_LIMIT, else 1024.").tag(config=True)
    max_memory_limit = Unicode(help="Admin maximum of memory_limit; requests above it are clamped. "
                                    "Default: 1g, or the default memory if higher.").tag(config=True)
    max_cpu_limit = Float(help="Admin maximum of cpu_limit. Default: 1, or the default if higher."
                          ).tag(config=True)
    max_time_limit = Float(help="Admin maximum of time_limit in seconds; requests above it are "
                                "clamped. Default: 120, or the default if higher.").tag(config=True)
    max_pids_limit = Integer(help="Admin maximum of pids_limit. Default: 256, or the default if "
                                  "higher.").tag(config=True)
    max_nofile_limit = Integer(help="Admin maximum of nofile_limit. Default: 4096, or the default "
                                    "if higher.").tag(config=True)
    output_limit_bytes = Integer(1024 * 1024, help="Cap on stdout and on stderr of a run, in bytes; "
                                 "beyond it the status is output_limit.").tag(config=True)

    # -- REST API -------------------------------------------------------------------------------
    max_code_bytes = Integer(64 * 1024, help="Largest `code` a request may send, in UTF-8 bytes "
                             "(413 above it).").tag(config=True)
    max_stdin_bytes = Integer(64 * 1024, help="Largest `stdin` a request may send, in UTF-8 bytes "
                              "(413 above it).").tag(config=True)
    max_concurrent_runs = Integer(4, help="Runs executing at once on this server; more wait in a "
                                  "queue. Each run holds one thread and one container."
                                  ).tag(config=True)
    max_runs_per_user = Integer(2, help="Runs one user may have executing or queued at once; "
                                "one more is answered 429.").tag(config=True)
    reap_interval = Float(300.0, help="Seconds between sweeps that remove abandoned sandbox "
                          "containers (one also runs at start-up); 0 turns the periodic sweep off."
                          ).tag(config=True)
    exercises_dir = Unicode(help="Directory of the authoritative exercise notebooks. Default: "
                            "`exercises/` under the server's root_dir if it exists, else none."
                            ).tag(config=True)

    # -- warm pool and result cache -------------------------------------------------------------
    pool_size = Integer(2, help="Started containers kept waiting for runs with the default limits "
                        "(each serves one run, then is destroyed); 0 turns the pool off. "
                        "Default: DOCKER_EXECUTOR_POOL_SIZE, else 2.").tag(config=True)
    cache_enabled = Bool(help="Answer repeated runs of the same deterministic code from the result "
                         "cache (submissions never are). Default: DOCKER_EXECUTOR_CACHE_ENABLED, "
                         "else true.").tag(config=True)
    redis_url = Unicode(None, allow_none=True, help="Redis for the result cache, e.g. "
                        "redis://127.0.0.1:6379/0; None keeps the cache in this process. "
                        "Default: DOCKER_EXECUTOR_REDIS_URL.").tag(config=True)
    cache_ttl = Float(help="Seconds a cached result lives. Default: DOCKER_EXECUTOR_CACHE_TTL, "
                      "else 3600.").tag(config=True)

    # -- defaults from the environment ----------------------------------------------------------

    def _env_config(self) -> SandboxConfig:
        """The sandbox settings the ``DOCKER_EXECUTOR_*`` variables describe (read once)."""
        cached: Optional[SandboxConfig] = getattr(self, "_env_config_cache", None)
        if cached is None:
            try:
                cached = SandboxConfig.from_env()
            except LimitError as e:
                raise TraitError(f"invalid environment for jupyter_exec_ext: {e}") from None
            self._env_config_cache = cached
        return cached

    @default("enabled")
    def _default_enabled(self) -> bool:
        return self._env_config().enabled

    @default("image")
    def _default_image(self) -> str:
        return self._env_config().image

    @default("network")
    def _default_network(self) -> str:
        return self._env_config().network

    @default("runtime")
    def _default_runtime(self) -> Optional[str]:
        return self._env_config().runtime

    @default("owner")
    def _default_owner(self) -> str:
        return self._env_config().owner

    @default("memory_limit")
    def _default_memory_limit(self) -> str:
        return f"{self._env_config().default_limits.memory_mb}m"

    @default("cpu_limit")
    def _default_cpu_limit(self) -> float:
        return self._env_config().default_limits.cpus

    @default("time_limit")
    def _default_time_limit(self) -> float:
        return self._env_config().default_limits.time_s

    @default("pids_limit")
    def _default_pids_limit(self) -> int:
        return self._env_config().default_limits.pids

    @default("nofile_limit")
    def _default_nofile_limit(self) -> int:
        return self._env_config().default_limits.nofile

    @default("max_memory_limit")
    def _default_max_memory_limit(self) -> str:
        return f"{self._env_config().max_limits.memory_mb}m"

    @default("max_cpu_limit")
    def _default_max_cpu_limit(self) -> float:
        return self._env_config().max_limits.cpus

    @default("max_time_limit")
    def _default_max_time_limit(self) -> float:
        return self._env_config().max_limits.time_s

    @default("max_pids_limit")
    def _default_max_pids_limit(self) -> int:
        return self._env_config().max_limits.pids

    @default("max_nofile_limit")
    def _default_max_nofile_limit(self) -> int:
        return self._env_config().max_limits.nofile

    def _env_cache_config(self) -> CacheConfig:
        cached: Optional[CacheConfig] = getattr(self, "_env_cache_cache", None)
        if cached is None:
            try:
                cached = CacheConfig.from_env()
            except (LimitError, ValueError) as e:
                raise TraitError(f"invalid environment for jupyter_exec_ext: {e}") from None
            self._env_cache_cache = cached
        return cached

    @default("pool_size")
    def _default_pool_size(self) -> int:
        raw = os.environ.get("DOCKER_EXECUTOR_POOL_SIZE")
        if raw is None or not raw.strip():
            return 2
        if not raw.strip().isdigit():
            raise TraitError(f"DOCKER_EXECUTOR_POOL_SIZE must be a whole number, got {raw!r}")
        return int(raw)

    @default("cache_enabled")
    def _default_cache_enabled(self) -> bool:
        return self._env_cache_config().enabled

    @default("redis_url")
    def _default_redis_url(self) -> Optional[str]:
        return self._env_cache_config().redis_url

    @default("cache_ttl")
    def _default_cache_ttl(self) -> float:
        return self._env_cache_config().ttl_s

    @default("exercises_dir")
    def _default_exercises_dir(self) -> str:
        root = getattr(self.serverapp, "root_dir", "") or os.getcwd()
        candidate = Path(root) / "exercises"
        return str(candidate) if candidate.is_dir() else ""

    # -- validation: a bad value stops the server with a message naming the trait ---------------

    @validate("memory_limit", "max_memory_limit")
    def _valid_memory(self, proposal: Any) -> str:
        parse_memory_mb(proposal["value"], f"ExecExtApp.{proposal['trait'].name}")
        return proposal["value"]

    @validate("cpu_limit", "time_limit", "max_cpu_limit", "max_time_limit")
    def _valid_positive_float(self, proposal: Any) -> float:
        if not proposal["value"] > 0:
            raise TraitError(f"ExecExtApp.{proposal['trait'].name} must be positive, "
                             f"got {proposal['value']!r}")
        return proposal["value"]

    @validate("pids_limit", "nofile_limit", "max_pids_limit", "max_nofile_limit", "output_limit_bytes",
              "max_code_bytes", "max_stdin_bytes", "max_concurrent_runs", "max_runs_per_user")
    def _valid_positive_int(self, proposal: Any) -> int:
        if proposal["value"] < 1:
            raise TraitError(f"ExecExtApp.{proposal['trait'].name} must be at least 1, "
                             f"got {proposal['value']!r}")
        return proposal["value"]

    @validate("pool_size")
    def _valid_pool_size(self, proposal: Any) -> int:
        if proposal["value"] < 0:
            raise TraitError(f"ExecExtApp.pool_size must be 0 (off) or more, got {proposal['value']!r}")
        return proposal["value"]

    @validate("cache_ttl")
    def _valid_cache_ttl(self, proposal: Any) -> float:
        if not proposal["value"] > 0:
            raise TraitError(f"ExecExtApp.cache_ttl must be positive, got {proposal['value']!r}")
        return proposal["value"]

    @validate("reap_interval")
    def _valid_reap_interval(self, proposal: Any) -> float:
        if proposal["value"] < 0:
            raise TraitError(f"ExecExtApp.reap_interval must be 0 (off) or positive, "
                             f"got {proposal['value']!r}")
        return proposal["value"]

    # -- assembling the parts -------------------------------------------------------------------

    def sandbox_config(self) -> SandboxConfig:
        """The sandbox settings the traits describe.

        Raises:
            LimitError: a limit trait holds a value that is not a sensible limit.
        """
        defaults = Limits.from_mapping({
            "memory_limit": self.memory_limit, "cpu_limit": self.cpu_limit,
            "time_limit": self.time_limit, "pids_limit": self.pids_limit,
            "nofile_limit": self.nofile_limit})
        maxima = Limits.from_mapping({
            "memory_limit": self.max_memory_limit, "cpu_limit": self.max_cpu_limit,
            "time_limit": self.max_time_limit, "pids_limit": self.max_pids_limit,
            "nofile_limit": self.max_nofile_limit})
        _, lowered = defaults.clamped(maxima)
        for note in lowered:
            log.warning("default %s (set a max_* trait to raise the maximum)", note)
        return SandboxConfig(
            enabled=self.enabled, image=self.image, network=self.network,
            runtime=self.runtime or None, default_limits=defaults, max_limits=maxima,
            output_limit_bytes=self.output_limit_bytes, owner=self.owner)

    def initialize_settings(self) -> None:
        """Builds the sandbox, the scheduler and the request bounds (the one place they are made),
        publishes the API's address to kernels, and starts the reaper."""
        self._forward_logs()
        config = self.sandbox_config()
        self.docker_sandbox = DockerSandbox(config)
        # Executions go through the cache; submissions always run fresh, so the grader gets the
        # sandbox itself.
        self.caching_sandbox = CachingSandbox(self.docker_sandbox, CacheConfig.from_env(
            enabled=self.cache_enabled, redis_url=self.redis_url or None, ttl_s=self.cache_ttl))
        self.scheduler = RunScheduler(self.max_concurrent_runs, self.max_runs_per_user)
        exercises = Path(self.exercises_dir) if self.exercises_dir else None
        if exercises is not None and not exercises.is_dir():
            log.warning("exercise directory %s does not exist", exercises)
        self.settings.update({
            SANDBOX_KEY: self.caching_sandbox,
            REGISTRY_KEY: ExerciseRegistry(exercises) if exercises is not None else None,
            GRADER_KEY: Grader(self.docker_sandbox, config.default_limits),
            SCHEDULER_KEY: self.scheduler,
            BOUNDS_KEY: RequestBounds(
                max_code_bytes=self.max_code_bytes, max_stdin_bytes=self.max_stdin_bytes,
                default_limits=config.default_limits, max_limits=config.max_limits),
            EXERCISES_DIR_KEY: exercises,
        })
        self._publish_for_kernels()
        self._start_reaper()
        if self.pool_size > 0:
            # Starting containers talks to Docker: never on the event loop, never delaying start-up.
            self.scheduler.submit_query(lambda: self.docker_sandbox.start_pool(self.pool_size))
        log.info("jupyter_exec_ext %s: image %s, %d run(s) at once, %d per user, exercises in %s",
                 __version__, config.image, self.max_concurrent_runs, self.max_runs_per_user,
                 exercises or "(none)")

    def initialize_handlers(self) -> None:
        """Adds the route table; ExtensionApp prefixes every pattern with the server's base_url."""
        self.handlers.extend(ROUTES)

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        """Called once the server listens: its port is final now (port_retries may have moved it)."""
        self._publish_for_kernels()

    async def stop_extension(self) -> None:
        """Stops the reaper and the pools, closes the engine connection, restores the environment."""
        reaper: Optional[PeriodicCallback] = getattr(self, "_reaper", None)
        if reaper is not None:
            reaper.stop()
        scheduler: Optional[RunScheduler] = getattr(self, "scheduler", None)
        if scheduler is not None:
            scheduler.shutdown()
        sandbox: Optional[CachingSandbox] = getattr(self, "caching_sandbox", None)
        if sandbox is not None:
            sandbox.close()  # drains the warm pool and finishes container removals
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

    def _publish_for_kernels(self) -> None:
        """Puts the API URL and a token into ``os.environ``; kernels started later inherit them.

        The token is the server's own: a kernel runs as the same user, who can already read it
        from the server's runtime file (``list_running_servers()``), so it grants nothing new.
        """
        if getattr(self.serverapp, "sock", ""):
            log.info("the server listens on a Unix socket; kernels find it through "
                     "list_running_servers(), not %s", KERNEL_URL_ENV)
            return
        if not hasattr(self, "_environ_before"):
            self._environ_before = {name: os.environ.get(name)
                                    for name in (KERNEL_URL_ENV, KERNEL_TOKEN_ENV)}
        os.environ[KERNEL_URL_ENV] = self.api_url()
        os.environ[KERNEL_TOKEN_ENV] = self.serverapp.identity_provider.token or ""

    def _start_reaper(self) -> None:
        """Sweeps abandoned containers now, in a thread (start-up never waits for Docker), and then
        every ``reap_interval`` seconds."""
        self.scheduler.submit_query(self._reap)
        if self.reap_interval > 0:
            self._reaper = PeriodicCallback(lambda: self.scheduler.submit_query(self._reap),
                                            self.reap_interval * 1000)
            self._reaper.start()

    def _reap(self) -> None:
        """One sweep, on a worker thread; a failure is logged, never raised into the server."""
        if self.scheduler.busy:
            # reap() also removes this server's *ended* containers, and a run in flight may have one
            # it is still reading. Runs remove their own containers; crash leftovers carry an expiry
            # and wait for a quiet moment.
            log.debug("reaper: runs in progress, sweep postponed")
            return
        try:
            removed = self.docker_sandbox.reap()  # logs at INFO what it removed
        except SandboxError as e:
            log.warning("reaper: %s", e)
        except Exception:  # a sweep must never take the server down; the next one retries
            log.exception("reaper failed")
        else:
            log.debug("reaper: %d container(s) removed", len(removed))

    def _forward_logs(self) -> None:
        """Sends the package's log records (``jupyter_exec_ext.*``) to the server's log."""
        package_log = logging.getLogger("jupyter_exec_ext")
        self._log_level_before = package_log.level
        self._log_forwarder = _ForwardToServerLog(self.serverapp.log)
        package_log.addHandler(self._log_forwarder)
        if package_log.level == logging.NOTSET:
            package_log.setLevel(self.serverapp.log.level)
