"""Every knob the jupyter_server extension and the executor service share, as ``config=True``
traits, and their defaults from the ``DOCKER_EXECUTOR_*`` environment variables (read in one
place, ``EnvironmentDefaults``).

Traits only: nothing here builds or stops anything (``context.build_context`` does, from these
values). ``ExecSettings`` is a base of ``ExecExtApp`` and ``ExecServiceApp`` so that
``c.ExecExtApp.…``, ``c.ExecServiceApp.…`` and ``c.ExecSettings.…`` keep naming these traits.
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any, Callable, Optional

from traitlets import Bool, Enum, Float, Integer, TraitError, Unicode, validate
from traitlets.config import LoggingConfigurable
from traitlets.traitlets import DefaultHandler

from ..gradebook.rules import CourseRules
from ..sandbox import CacheConfig, LimitError, Limits, SandboxConfig
from ..sandbox.config import seccomp_security_opt
from ..sandbox.limits import parse_memory_mb
from .payloads import RequestBounds
from .shared_state import SharedStateSettings

log = logging.getLogger(__name__)


def _whole_number(name: str, fallback: int) -> int:
    """``DOCKER_EXECUTOR_<name>`` as a whole number of 0 or more, ``fallback`` when unset."""
    raw = os.environ.get(f"DOCKER_EXECUTOR_{name}")
    if raw is None or not raw.strip():
        return fallback
    if not raw.strip().isdigit():
        raise TraitError(f"DOCKER_EXECUTOR_{name} must be a whole number, got {raw!r}")
    return int(raw)


def _seconds(name: str, fallback: float) -> float:
    """``DOCKER_EXECUTOR_<name>`` as a number of seconds above 0, ``fallback`` when unset."""
    raw = os.environ.get(f"DOCKER_EXECUTOR_{name}")
    if raw is None or not raw.strip():
        return fallback
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise TraitError(
            f"DOCKER_EXECUTOR_{name} must be a finite number of seconds above 0, got {raw!r}"
        )
    return value


def _secret_text(secret: Optional[bytes]) -> Optional[str]:
    return secret.decode() if secret is not None else None


class EnvironmentDefaults:
    """The defaults the ``DOCKER_EXECUTOR_*`` variables give the traits: the one place they are
    read. The sandbox and cache variables are parsed by ``SandboxConfig.from_env`` and
    ``CacheConfig.from_env`` (each once, when a trait first needs it); a bad value raises
    ``TraitError`` naming the variable.
    """

    #: trait name -> its default, from the parsed sandbox settings.
    SANDBOX: dict[str, Callable[[SandboxConfig], Any]] = {
        "enabled": lambda c: c.enabled,
        "image": lambda c: c.image,
        "network": lambda c: c.network,
        "runtime": lambda c: c.runtime,
        "owner": lambda c: c.owner,
        "seccomp": lambda c: c.seccomp,
        "memory_limit": lambda c: f"{c.default_limits.memory_mb}m",
        "cpu_limit": lambda c: c.default_limits.cpus,
        "time_limit": lambda c: c.default_limits.time_s,
        "pids_limit": lambda c: c.default_limits.pids,
        "nofile_limit": lambda c: c.default_limits.nofile,
        "max_memory_limit": lambda c: f"{c.max_limits.memory_mb}m",
        "max_cpu_limit": lambda c: c.max_limits.cpus,
        "max_time_limit": lambda c: c.max_limits.time_s,
        "max_pids_limit": lambda c: c.max_limits.pids,
        "max_nofile_limit": lambda c: c.max_limits.nofile,
        "display_limit": lambda c: c.display_limit,
        "display_bytes": lambda c: c.display_bytes,
        "data_files_bytes": lambda c: c.data_files_bytes,
        "reuse_runs": lambda c: c.reuse_runs,
        "reuse_kept": lambda c: c.reuse_kept,
        "reuse_idle": lambda c: c.reuse_idle_s,
        "grade_in_own_container": lambda c: c.grade_in_own_container,
    }
    #: trait name -> its default, from the parsed result cache settings.
    CACHE: dict[str, Callable[[CacheConfig], Any]] = {
        "cache_enabled": lambda c: c.enabled,
        "redis_url": lambda c: c.redis_url,
        "cache_ttl": lambda c: c.ttl_s,
        "cache_secret": lambda c: _secret_text(c.secret),
    }
    #: trait name -> its default, from a variable of its own.
    OWN: dict[str, Callable[[], Any]] = {
        "db_url": lambda: os.environ.get("DOCKER_EXECUTOR_DB_URL", ""),
        "shared_state_url": lambda: os.environ.get("DOCKER_EXECUTOR_SHARED_STATE_URL") or None,
        "pool_size": lambda: _whole_number("POOL_SIZE", 2),
        "pool_max_size": lambda: _whole_number("POOL_MAX_SIZE", 32),
        "pool_memory_budget": lambda: _whole_number("POOL_MEMORY_BUDGET", 1024),
        "pool_shrink_after": lambda: _seconds("POOL_SHRINK_AFTER", 120.0),
        "submit_rate_limit": lambda: _whole_number("SUBMIT_RATE_LIMIT", 20),
        "submit_rate_window": lambda: _seconds("SUBMIT_RATE_WINDOW", 600.0),
    }
    TRAITS: tuple[str, ...] = (*SANDBOX, *CACHE, *OWN)

    def __init__(self) -> None:
        self._sandbox: Optional[SandboxConfig] = None
        self._cache: Optional[CacheConfig] = None

    def sandbox(self) -> SandboxConfig:
        if self._sandbox is None:
            try:
                self._sandbox = SandboxConfig.from_env()
            except LimitError as e:
                raise TraitError(f"invalid environment for jupyter_exec_ext: {e}") from None
        return self._sandbox

    def cache(self) -> CacheConfig:
        if self._cache is None:
            try:
                self._cache = CacheConfig.from_env()
            except (LimitError, ValueError) as e:
                raise TraitError(f"invalid environment for jupyter_exec_ext: {e}") from None
        return self._cache

    def value(self, trait: str) -> Any:
        """The default of ``trait`` (one of ``TRAITS``) that the environment gives."""
        if trait in self.SANDBOX:
            return self.SANDBOX[trait](self.sandbox())
        if trait in self.CACHE:
            return self.CACHE[trait](self.cache())
        return self.OWN[trait]()


class _from_environment(DefaultHandler):
    """``@default`` for several traits at once: each one's default is ``func(self, name)``."""

    def __init__(self, *names: str) -> None:
        super().__init__(names[0])
        self.trait_names = names

    def class_init(self, cls: Any, name: Optional[str]) -> None:
        super().class_init(cls, name)
        for trait in self.trait_names:
            cls._trait_default_generators[trait] = functools.partial(self._generate, trait)

    def _generate(self, trait: str, obj: Any) -> Any:
        return self.func(obj, trait)


class ExecSettings(SharedStateSettings, LoggingConfigurable):
    """Sandbox, limits, scheduling, pool, cache and gradebook settings (traits only).

    A base of ``ExecExtApp`` (``c.ExecExtApp.…``) and ``ExecServiceApp`` (``c.ExecServiceApp.…``);
    ``c.ExecSettings.…`` sets both. Sandbox settings default to the seed's ``DOCKER_EXECUTOR_*``
    environment variables, then to built-in values.
    """

    # -- sandbox (seed variables) ---------------------------------------------------------------
    enabled = Bool(
        help="Run code at all. When false every run answers 503. "
        "Default: DOCKER_EXECUTOR_ENABLED, else true."
    ).tag(config=True)
    image = Unicode(
        help="Executor image (built by `jupyter exec-ext build-image`). "
        "Default: DOCKER_EXECUTOR_IMAGE, else jupyter-exec-ext-executor:<version>."
    ).tag(config=True)
    network = Unicode(
        help="Docker network of the containers; keep 'none' (no network). "
        "Default: DOCKER_EXECUTOR_NETWORK, else none."
    ).tag(config=True)
    runtime = Unicode(
        None,
        allow_none=True,
        help="OCI runtime, e.g. 'runsc' (gVisor); None for the engine's default. "
        "Default: DOCKER_EXECUTOR_RUNTIME.",
    ).tag(config=True)
    owner = Unicode(
        help="Names this server on its containers (label jupyter-exec-ext.owner), so "
        "its reaper never touches another server's runs in progress. "
        "Default: DOCKER_EXECUTOR_OWNER, else <hostname>-<pid>."
    ).tag(config=True)
    seccomp = Unicode(
        help="Seccomp profile of the containers: 'builtin' (this package's: the "
        "engine default less ptrace, io_uring, bpf, keyrings, mounts, namespaces "
        "…), 'engine' (the Docker engine's own default, the way off ours) or the "
        "path of a JSON profile. Default: DOCKER_EXECUTOR_SECCOMP, else builtin."
    ).tag(config=True)
    memory_limit = Unicode(
        help="Memory of a run that asks for none: '256m', '1g' or MiB. "
        "Default: DOCKER_EXECUTOR_MEMORY_LIMIT, else 256m."
    ).tag(config=True)
    cpu_limit = Float(
        help="CPUs of a run that asks for none. Default: DOCKER_EXECUTOR_CPU_LIMIT, else 0.5."
    ).tag(config=True)
    time_limit = Float(
        help="Wall-clock seconds of a run that asks for none. "
        "Default: DOCKER_EXECUTOR_TIME_LIMIT, else 30."
    ).tag(config=True)
    pids_limit = Integer(
        help="Processes and threads of a run. Default: DOCKER_EXECUTOR_PIDS_LIMIT, else 50."
    ).tag(config=True)
    nofile_limit = Integer(
        help="Open files of a run. Default: DOCKER_EXECUTOR_NOFILE_LIMIT, else 1024."
    ).tag(config=True)
    max_memory_limit = Unicode(
        help="Admin maximum of memory_limit; requests above it are clamped. "
        "Default: 1g, or the default memory if higher."
    ).tag(config=True)
    max_cpu_limit = Float(
        help="Admin maximum of cpu_limit. Default: 1, or the default if higher."
    ).tag(config=True)
    max_time_limit = Float(
        help="Admin maximum of time_limit in seconds; requests above it are "
        "clamped. Default: 120, or the default if higher."
    ).tag(config=True)
    max_pids_limit = Integer(
        help="Admin maximum of pids_limit. Default: 256, or the default if higher."
    ).tag(config=True)
    max_nofile_limit = Integer(
        help="Admin maximum of nofile_limit. Default: 4096, or the default if higher."
    ).tag(config=True)
    output_limit_bytes = Integer(
        1024 * 1024,
        help="Cap on stdout and on stderr of a run, in bytes; "
        "beyond it the status is output_limit.",
    ).tag(config=True)
    display_limit = Integer(
        help="Figures (PNG images: plt.show(), figures open at the end) one run "
        "may show; past it a note on stderr. 0 shows none. Default: "
        "DOCKER_EXECUTOR_DISPLAY_LIMIT, else 10."
    ).tag(config=True)
    display_bytes = Integer(
        help="Total size of a run's figures in bytes (before base64), also the "
        "largest one figure. Default: DOCKER_EXECUTOR_DISPLAY_BYTES, else 2 MiB."
    ).tag(config=True)
    data_files_bytes = Integer(
        help="Largest total size of an exercise's data files in bytes (they "
        "are placed in the run's /tmp). Default: "
        "DOCKER_EXECUTOR_DATA_FILES_BYTES, else 8 MiB."
    ).tag(config=True)

    # -- REST API -------------------------------------------------------------------------------
    max_code_bytes = Integer(
        64 * 1024, help="Largest `code` a request may send, in UTF-8 bytes (413 above it)."
    ).tag(config=True)
    max_stdin_bytes = Integer(
        64 * 1024, help="Largest `stdin` a request may send, in UTF-8 bytes (413 above it)."
    ).tag(config=True)
    max_concurrent_runs = Integer(
        4,
        help="Runs executing at once on this server; more wait in a "
        "queue. Each run holds one thread and one container.",
    ).tag(config=True)
    max_runs_per_user = Integer(
        2, help="Runs one user may have executing or queued at once; one more is answered 429."
    ).tag(config=True)
    reap_interval = Float(
        30.0,
        help="Seconds between sweeps that remove abandoned sandbox "
        "containers (one also runs at start-up); 0 turns the periodic sweep off.",
    ).tag(config=True)
    exercises_dir = Unicode(
        help="Directory of the authoritative exercise notebooks; empty for none. "
        "The extension's default: `exercises/` under the server's root_dir if "
        "it exists."
    ).tag(config=True)
    submit_rate_limit = Integer(
        20,
        help="Graded submissions one user may make of one exercise in any "
        "submit_rate_window seconds; one more is answered 429 with "
        "Retry-After and is not graded. Slows down learning hidden tests "
        "by trial. 0 turns the limit off. In remote mode the executor "
        "service's setting applies. Default: "
        "DOCKER_EXECUTOR_SUBMIT_RATE_LIMIT, else 20.",
    ).tag(config=True)
    submit_rate_window = Float(
        600.0,
        help="Seconds of the window submit_rate_limit counts in. "
        "Default: DOCKER_EXECUTOR_SUBMIT_RATE_WINDOW, else 600 (10 min).",
    ).tag(config=True)

    # -- gradebook and course rules -------------------------------------------------------------
    db_url = Unicode(
        help="Database of the gradebook (every graded submission), as an SQLAlchemy "
        "URL: postgresql+psycopg://user:password@host:5432/db for PostgreSQL, or "
        "sqlite:////path/file.sqlite. Default: DOCKER_EXECUTOR_DB_URL, else a SQLite "
        "file (the extension: gradebook.sqlite in the Jupyter data directory; the "
        "service: its db_path)."
    ).tag(config=True)
    gradebook_backlog = Integer(
        10_000,
        help="Graded submissions kept in memory while the "
        "gradebook's database is out, written when it is back; beyond "
        "it the oldest is dropped and logged in full.",
    ).tag(config=True)
    due = Unicode(
        "",
        help="Default due time of exercises that set none, ISO 8601 with a time "
        "zone (2026-12-01T23:59:00+01:00); empty for none.",
    ).tag(config=True)
    late_policy = Enum(
        ["accept", "refuse"],
        "accept",
        help="Default for exercises that set no "
        "'late': 'accept' grades a submission after due and marks it late, "
        "'refuse' answers 409.",
    ).tag(config=True)
    max_attempts = Integer(
        0,
        help="Default graded submissions per student and exercise for "
        "exercises that set none; one more is answered 429. 0: no limit.",
    ).tag(config=True)
    score_rule = Enum(
        ["best", "last"],
        "best",
        help="Default for exercises that set no "
        "score_rule: which submission's score counts in the gradebook.",
    ).tag(config=True)

    @validate("due")
    def _valid_due(self, proposal: Any) -> str:
        try:
            CourseRules.defaults(due=proposal["value"])
        except ValueError as e:
            raise TraitError(f"{type(self).__name__}.due: {e}") from None
        return proposal["value"]

    @validate("max_attempts", "gradebook_backlog")
    def _valid_course_count(self, proposal: Any) -> int:
        if proposal["value"] < 0:
            raise TraitError(
                f"{type(self).__name__}.{proposal['trait'].name} must be 0 or more, "
                f"got {proposal['value']!r}"
            )
        return proposal["value"]

    # -- warm pool and result cache -------------------------------------------------------------
    pool_size = Integer(
        2,
        help="Started containers kept waiting for runs with the default limits "
        "(each serves one run, then is destroyed); 0 turns the pool off. "
        "Default: DOCKER_EXECUTOR_POOL_SIZE, else 2.",
    ).tag(config=True)
    pool_max_size = Integer(
        32,
        help="The most containers the warm pool grows to when runs find it "
        "empty (each such miss adds one); it shrinks back to pool_size when no "
        "run misses for pool_shrink_after seconds. pool_size or less keeps the "
        "pool at pool_size. Default: DOCKER_EXECUTOR_POOL_MAX_SIZE, else 32.",
    ).tag(config=True)
    pool_memory_budget = Integer(
        1024,
        help="MiB the warm pool's waiting containers may hold together "
        "(about 20 MiB each); growth stops there (pool_size is always "
        "kept). Default: DOCKER_EXECUTOR_POOL_MEMORY_BUDGET, else 1024.",
    ).tag(config=True)
    pool_shrink_after = Float(
        120.0,
        help="Seconds without a miss after which a grown warm pool sheds "
        "half of its growth (again after each such period). Default: "
        "DOCKER_EXECUTOR_POOL_SHRINK_AFTER, else 120.",
    ).tag(config=True)
    grade_in_own_container = Bool(
        help="Grade a submission in its student's own container, reset "
        "since their last run (never another student's, never kept "
        "after), when there is one; else in a container that ran nothing "
        "before. Default: DOCKER_EXECUTOR_GRADE_IN_OWN_CONTAINER, else "
        "true."
    ).tag(config=True)
    reuse_runs = Integer(
        help="Runs one container may serve for the same user, one after another "
        "(reset in between: every process killed, /tmp and the other writable "
        "places emptied, a fresh interpreter); a submission may be graded in it "
        "(grade_in_own_container), which ends its reuse. 0 or 1 turns reuse "
        "off. Default: DOCKER_EXECUTOR_REUSE_RUNS, else 50."
    ).tag(config=True)
    reuse_idle = Float(
        60.0,
        help="Seconds a container kept for its user's next run may wait unused "
        "before it is removed. Default: DOCKER_EXECUTOR_REUSE_IDLE, else 60.",
    ).tag(config=True)
    cache_enabled = Bool(
        help="Answer repeated runs of the same deterministic code from the result "
        "cache (submissions never are). Default: DOCKER_EXECUTOR_CACHE_ENABLED, "
        "else true."
    ).tag(config=True)
    redis_url = Unicode(
        None,
        allow_none=True,
        help="Redis for the result cache, e.g. "
        "redis://127.0.0.1:6379/0; None keeps the cache in this process. "
        "Default: DOCKER_EXECUTOR_REDIS_URL.",
    ).tag(config=True)
    cache_ttl = Float(
        help="Seconds a cached result lives. Default: DOCKER_EXECUTOR_CACHE_TTL, else 3600."
    ).tag(config=True)
    cache_secret = Unicode(
        None,
        allow_none=True,
        help="Key that authenticates result cache "
        "entries (HMAC), at least 16 characters; entries without a valid HMAC "
        "are ignored. None: a random key per start (Redis entries of an earlier "
        "start become misses). Default: DOCKER_EXECUTOR_CACHE_SECRET.",
    ).tag(config=True)

    reuse_kept = Integer(
        help="Containers kept for their users' next runs, all users together (the "
        "one unused longest goes first; each holds about 18 MiB); on a hub, about "
        "the number of students working at once. 0 turns reuse off. Default: "
        "DOCKER_EXECUTOR_REUSE_KEPT, else 128."
    ).tag(config=True)

    # -- defaults from the environment: one generator for every trait a variable describes --------

    @_from_environment(*EnvironmentDefaults.TRAITS)
    def _environment_default(self, trait: str) -> Any:
        environment: Optional[EnvironmentDefaults] = getattr(self, "_environment", None)
        if environment is None:
            environment = self._environment = EnvironmentDefaults()
        return environment.value(trait)

    @validate("cache_secret")
    def _valid_cache_secret(self, proposal: Any) -> Optional[str]:
        if proposal["value"] is not None and len(proposal["value"].encode()) < 16:
            raise TraitError(
                f"{type(self).__name__}.cache_secret must be at least 16 characters "
                "(e.g. `openssl rand -hex 32`)"
            )
        return proposal["value"]

    # -- validation: a bad value stops the server with a message naming the trait ---------------

    @validate("memory_limit", "max_memory_limit")
    def _valid_memory(self, proposal: Any) -> str:
        parse_memory_mb(proposal["value"], f"{type(self).__name__}.{proposal['trait'].name}")
        return proposal["value"]

    @validate("seccomp")
    def _valid_seccomp(self, proposal: Any) -> str:
        try:
            seccomp_security_opt(proposal["value"])
        except LimitError as e:
            raise TraitError(f"{type(self).__name__}.seccomp: {e}") from None
        return proposal["value"]

    @validate(
        "cpu_limit", "time_limit", "max_cpu_limit", "max_time_limit", "cache_ttl", "reuse_idle"
    )
    def _valid_positive_float(self, proposal: Any) -> float:
        if not proposal["value"] > 0:
            raise TraitError(
                f"{type(self).__name__}.{proposal['trait'].name} must be positive, "
                f"got {proposal['value']!r}"
            )
        return proposal["value"]

    @validate(
        "pids_limit",
        "nofile_limit",
        "max_pids_limit",
        "max_nofile_limit",
        "output_limit_bytes",
        "max_code_bytes",
        "max_stdin_bytes",
        "max_concurrent_runs",
        "max_runs_per_user",
    )
    def _valid_positive_int(self, proposal: Any) -> int:
        if proposal["value"] < 1:
            raise TraitError(
                f"{type(self).__name__}.{proposal['trait'].name} must be at least 1, "
                f"got {proposal['value']!r}"
            )
        return proposal["value"]

    @validate("pool_shrink_after")
    def _valid_pool_shrink_after(self, proposal: Any) -> float:
        if not 0 < proposal["value"] < float("inf"):
            raise TraitError(
                f"{type(self).__name__}.pool_shrink_after must be a positive, finite "
                f"number of seconds, got {proposal['value']!r}"
            )
        return proposal["value"]

    @validate(
        "pool_size",
        "pool_max_size",
        "pool_memory_budget",
        "reuse_runs",
        "reuse_kept",
        "submit_rate_limit",
        "display_limit",
        "display_bytes",
        "data_files_bytes",
    )
    def _valid_zero_or_more(self, proposal: Any) -> int:
        if proposal["value"] < 0:
            raise TraitError(
                f"{type(self).__name__}.{proposal['trait'].name} must be 0 (off) or more, "
                f"got {proposal['value']!r}"
            )
        return proposal["value"]

    @validate("submit_rate_window")
    def _valid_submit_rate_window(self, proposal: Any) -> float:
        # A window of forever would keep every submitter in memory for the server's lifetime.
        if not 0 < proposal["value"] < float("inf"):
            raise TraitError(
                f"{type(self).__name__}.submit_rate_window must be a positive, finite "
                f"number of seconds, got {proposal['value']!r}"
            )
        return proposal["value"]

    @validate("reap_interval")
    def _valid_reap_interval(self, proposal: Any) -> float:
        if proposal["value"] < 0:
            raise TraitError(
                f"{type(self).__name__}.reap_interval must be 0 (off) or positive, "
                f"got {proposal['value']!r}"
            )
        return proposal["value"]

    # -- the values the traits describe ------------------------------------------------------------

    def sandbox_config(self) -> SandboxConfig:
        """The sandbox settings the traits describe.

        Raises:
            LimitError: a limit trait holds a value that is not a sensible limit.
        """
        defaults = Limits.from_mapping(
            {
                "memory_limit": self.memory_limit,
                "cpu_limit": self.cpu_limit,
                "time_limit": self.time_limit,
                "pids_limit": self.pids_limit,
                "nofile_limit": self.nofile_limit,
            }
        )
        maxima = Limits.from_mapping(
            {
                "memory_limit": self.max_memory_limit,
                "cpu_limit": self.max_cpu_limit,
                "time_limit": self.max_time_limit,
                "pids_limit": self.max_pids_limit,
                "nofile_limit": self.max_nofile_limit,
            }
        )
        _, lowered = defaults.clamped(maxima)
        for note in lowered:
            log.warning("default %s (set a max_* trait to raise the maximum)", note)
        return SandboxConfig(
            enabled=self.enabled,
            image=self.image,
            network=self.network,
            runtime=self.runtime or None,
            default_limits=defaults,
            max_limits=maxima,
            output_limit_bytes=self.output_limit_bytes,
            owner=self.owner,
            reuse_runs=self.reuse_runs,
            reuse_idle_s=self.reuse_idle,
            reuse_kept=self.reuse_kept,
            seccomp=self.seccomp,
            display_limit=self.display_limit,
            display_bytes=self.display_bytes,
            data_files_bytes=self.data_files_bytes,
            grade_in_own_container=self.grade_in_own_container,
        )

    def cache_config(self) -> CacheConfig:
        """The result cache settings the traits describe (the rest from the environment)."""
        return CacheConfig.from_env(
            enabled=self.cache_enabled,
            redis_url=self.redis_url or None,
            ttl_s=self.cache_ttl,
            secret=self.cache_secret.encode() if self.cache_secret else None,
        )

    def course_rules(self) -> CourseRules:
        """The course rules of exercises that set none of their own."""
        return CourseRules.defaults(
            due=self.due,
            late_policy=self.late_policy,
            max_attempts=self.max_attempts,
            score_rule=self.score_rule,
        )

    def request_bounds(self, config: SandboxConfig) -> RequestBounds:
        """What a request may ask for: sizes from the traits, limits from ``config``."""
        return RequestBounds(
            max_code_bytes=self.max_code_bytes,
            max_stdin_bytes=self.max_stdin_bytes,
            default_limits=config.default_limits,
            max_limits=config.max_limits,
        )
