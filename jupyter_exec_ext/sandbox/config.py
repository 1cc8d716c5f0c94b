"""Sandbox settings, with the seed's ``DOCKER_EXECUTOR_*`` environment variables as one source."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from .. import __version__
from .errors import LimitError
from .limits import Limits, parse_positive_float, parse_positive_int

DEFAULT_IMAGE = f"jupyter-exec-ext-executor:{__version__}"
#: Label on every container, image and build this project makes; the reaper looks for it.
LABEL = "jupyter-exec-ext.managed"
#: Epoch seconds after which a labelled container is certainly abandoned.
EXPIRES_LABEL = "jupyter-exec-ext.expires-at"
#: Which sandbox instance (server process, test session) made the container.
OWNER_LABEL = "jupyter-exec-ext.owner"


def _default_owner() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


#: The seccomp profile shipped with the package: the engine default's allow list less what student
#: Python never needs (ptrace, io_uring, bpf, keyrings, mounts, namespaces …; see docs/internals.md).
BUILTIN_SECCOMP = Path(__file__).with_name("seccomp.json")
#: ``seccomp`` values: our profile, or the engine's own default profile (the way off ours).
SECCOMP_BUILTIN, SECCOMP_ENGINE = "builtin", "engine"

ENV_PREFIX = "DOCKER_EXECUTOR_"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def parse_env_bool(value: str, name: str) -> bool:
    """Reads an on/off environment variable (``true``/``false``, ``1``/``0``, ``yes``/``no``, ``on``/``off``).

    Raises:
        LimitError: the value is none of these; the message names the variable.
    """
    lowered = value.strip().lower()
    if lowered not in _TRUE + _FALSE:
        raise LimitError(f"{name} must be true or false, got {value!r}")
    return lowered in _TRUE


@dataclass(frozen=True)
class SandboxConfig:
    """How the sandbox runs containers. Admins set it through traits or environment variables.

    Args:
        enabled: when false, nothing is run and the sandbox reports itself unavailable.
        image: executor image (built by ``jupyter exec-ext build-image``).
        network: ``"none"`` (default: no network at all) or the name of a Docker network.
        runtime: an OCI runtime name such as ``runsc`` (gVisor); None for the engine's default.
        default_limits: limits of a run that asks for none.
        max_limits: admin maxima; requests above them are clamped.
        output_limit_bytes: cap per stream (stdout, stderr); beyond it the status is output_limit.
        tmpfs_mb: size of the only writable place, ``/tmp`` (also the largest file one can write).
        user: uid:gid the student's code runs as; never root.
        harness_user: uid:gid the instructors' tests run as (grading); never root, never ``user``.
            The container itself starts as root with only the capabilities that hand out these
            two identities; see ``executor_image/runner.py``.
        startup_grace_s: host-side slack over the time limit for container start and teardown.
        owner: names this sandbox instance on its containers, so the reaper and leak checks of one
            server or test session never touch another's runs in progress.
        reuse_runs: runs one container may serve for one user (``ExecutionRequest.reuse_key``),
            reset between them; 1 or less turns reuse off.
        reuse_idle_s: a container kept for a user's next run is removed after this long unused.
        reuse_kept: containers kept for all users together (the one unused longest goes first);
            on a hub, about the number of students working at once.
        grade_in_own_container: a submission (a run with checks and a ``reuse_key``) may be
            graded in that user's own container, reset since their last run, instead of one that
            ran nothing before; it is never kept after grading. Off: every grading gets a fresh
            container.
        seccomp: the containers' seccomp profile: ``"builtin"`` (this package's, the default),
            ``"engine"`` (the Docker engine's own default profile) or the path of a JSON profile.
        display_limit: figures (PNG images) one run may show; past it, a note on stderr.
        display_bytes: their total size in bytes (before base64); also the largest one figure.
        data_files_bytes: total size of an exercise's data files (they live in ``/tmp``, so it is
            kept well under ``tmpfs_mb``).
    """

    enabled: bool = True
    image: str = DEFAULT_IMAGE
    network: str = "none"
    runtime: Optional[str] = None
    default_limits: Limits = field(default_factory=Limits)
    max_limits: Limits = field(
        default_factory=lambda: Limits(
            memory_mb=1024, cpus=1.0, time_s=120.0, pids=256, nofile=4096
        )
    )
    output_limit_bytes: int = 1024 * 1024
    tmpfs_mb: int = 64
    user: str = "10001:10001"
    harness_user: str = "10002:10002"
    startup_grace_s: float = 10.0
    owner: str = field(default_factory=_default_owner)
    reuse_runs: int = 50
    reuse_idle_s: float = 60.0
    reuse_kept: int = 128
    grade_in_own_container: bool = True
    seccomp: str = SECCOMP_BUILTIN
    display_limit: int = 10
    display_bytes: int = 2 * 1024 * 1024
    data_files_bytes: int = 8 * 1024 * 1024

    def __post_init__(self) -> None:
        for name, value in (("user", self.user), ("harness_user", self.harness_user)):
            uid, _, gid = value.partition(":")
            if (
                not (uid.isdigit() and (gid or uid).isdigit())
                or int(uid) == 0
                or int(gid or uid) == 0
            ):
                raise ValueError(
                    f"the sandbox {name} must be a numeric uid:gid other than root, got {value!r}"
                )
        if self.user.partition(":")[0] == self.harness_user.partition(":")[0]:
            raise ValueError(
                "the sandbox user and harness_user must be different uids: the tests "
                "must not run as the student's code does"
            )
        # Defaults never exceed the maxima (from_env raises the maxima instead when the admin sets
        # a default above them through the environment).
        object.__setattr__(self, "default_limits", self.default_limits.clamped(self.max_limits)[0])

    @classmethod
    def from_env(
        cls, environ: Optional[Mapping[str, str]] = None, **overrides: object
    ) -> SandboxConfig:
        """Reads the seed's variables: ``DOCKER_EXECUTOR_ENABLED``, ``_IMAGE``, ``_NETWORK``,
        ``_MEMORY_LIMIT``, ``_CPU_LIMIT``, ``_TIME_LIMIT``, and also ``_PIDS_LIMIT``,
        ``_NOFILE_LIMIT``, ``_RUNTIME``, ``_OWNER``, ``_REUSE_RUNS``, ``_REUSE_IDLE``, ``_REUSE_KEPT``,
        ``_GRADE_IN_OWN_CONTAINER``, ``_SECCOMP``, ``_DISPLAY_LIMIT``, ``_DISPLAY_BYTES``, ``_DATA_FILES_BYTES``.

        Raises:
            LimitError: a variable holds a value that makes no sense; the message names it.
        """
        env = os.environ if environ is None else environ
        get = lambda name: env.get(ENV_PREFIX + name) or None  # noqa: E731
        config = cls()
        changes: dict = {}
        enabled = get("ENABLED")
        if enabled is not None:
            changes["enabled"] = parse_env_bool(enabled, ENV_PREFIX + "ENABLED")
        own = get("GRADE_IN_OWN_CONTAINER")
        if own is not None:
            changes["grade_in_own_container"] = parse_env_bool(
                own, ENV_PREFIX + "GRADE_IN_OWN_CONTAINER"
            )
        for name, attr in (
            ("IMAGE", "image"),
            ("NETWORK", "network"),
            ("RUNTIME", "runtime"),
            ("OWNER", "owner"),
            ("SECCOMP", "seccomp"),
        ):
            value = get(name)
            if value:
                changes[attr] = value.strip()
        for name, attr in (
            ("REUSE_RUNS", "reuse_runs"),
            ("REUSE_KEPT", "reuse_kept"),
            ("DISPLAY_LIMIT", "display_limit"),
            ("DISPLAY_BYTES", "display_bytes"),
            ("DATA_FILES_BYTES", "data_files_bytes"),
        ):
            value = get(name)
            if value is not None:
                if not value.strip().isdigit():
                    hint = " (0 turns reuse off)" if name.startswith("REUSE") else ""
                    raise LimitError(
                        f"{ENV_PREFIX}{name} must be a whole number{hint}, got {value!r}"
                    )
                changes[attr] = int(value)
        idle = get("REUSE_IDLE")
        if idle is not None:
            try:
                changes["reuse_idle_s"] = float(idle)
            except ValueError:
                changes["reuse_idle_s"] = -1.0
            if not changes["reuse_idle_s"] > 0:
                raise LimitError(
                    f"{ENV_PREFIX}REUSE_IDLE must be a number of seconds above 0, got {idle!r}"
                )
        limit_values = {}
        for key in ("memory_limit", "cpu_limit", "time_limit", "pids_limit", "nofile_limit"):
            value = get(key.upper())
            if value is None:
                continue
            try:
                Limits.from_mapping({key: value})
            except LimitError as e:
                raise LimitError(f"{ENV_PREFIX}{key.upper()}: {e}") from None
            limit_values[key] = value
        if limit_values:
            defaults = Limits.from_mapping(limit_values)
            changes["default_limits"] = defaults
            # A default set above the built-in maxima is the admin's intent: the maxima follow it.
            changes["max_limits"] = Limits(
                **{
                    f.name: max(getattr(defaults, f.name), getattr(config.max_limits, f.name))
                    for f in fields(Limits)
                }
            )
        changes.update(overrides)
        return replace(config, **changes)


def seccomp_security_opt(setting: str) -> Optional[str]:
    """The ``security_opt`` entry for a ``seccomp`` setting; None leaves the engine's default.

    Raises:
        LimitError: the setting names a file that cannot be read or is not a seccomp profile.
    """
    if setting == SECCOMP_ENGINE:
        return None
    path = BUILTIN_SECCOMP if setting == SECCOMP_BUILTIN else Path(setting)
    try:
        text = path.read_text(encoding="utf-8")
        profile = json.loads(text)
    except (OSError, ValueError) as e:
        raise LimitError(
            f"seccomp profile {str(path)!r} cannot be used ({e}); give 'builtin', "
            f"'engine' or the path of a JSON seccomp profile"
        ) from None
    if not isinstance(profile, dict) or "defaultAction" not in profile:
        raise LimitError(
            f"seccomp profile {str(path)!r} is not a seccomp profile: it has no defaultAction"
        )
    # The engine takes the profile itself, not a path (the docker CLI reads the file the same way).
    return "seccomp=" + json.dumps(profile, separators=(",", ":"))


#: Environment variable with the result cache's Redis URL (the seed's ``DOCKER_EXECUTOR_`` family).
REDIS_URL_ENV = ENV_PREFIX + "REDIS_URL"
#: Environment variable with the key that authenticates result cache entries.
CACHE_SECRET_ENV = ENV_PREFIX + "CACHE_SECRET"


@dataclass(frozen=True)
class CacheConfig:
    """How results are cached. Admins set it through traits or environment variables.

    Args:
        enabled: when false, every run goes to the sandbox.
        redis_url: ``redis://[:password@]host:port/db`` (also ``rediss://``, ``unix://``); None
            keeps the cache in this process only.
        ttl_s: how long an entry lives, in seconds.
        max_entries: bound of the in-process LRU (embedded default and Redis fallback).
        max_bytes: bound of the in-process LRU's total size.
        max_entry_bytes: a result larger than this (serialized) is not cached.
        redis_timeout_s: connect and read timeout of every Redis call, so a dead or frozen Redis
            delays a run by at most this much once per retry interval.
        retry_initial_s: after a Redis failure, wait this long before trying Redis again.
        retry_max_s: the wait doubles per failed try up to this.
        image_id_ttl_s: how long the executor image id is trusted before it is read again
            (a rebuilt image is noticed within this time).
        secret: the key that authenticates entries (HMAC-SHA256 over key and value); None makes
            a random one per process, so entries written before a restart become misses. Set it
            when several servers share one Redis, or to keep entries across restarts.
    """

    enabled: bool = True
    redis_url: Optional[str] = None
    ttl_s: float = 3600.0
    max_entries: int = 1024
    max_bytes: int = 64 * 1024 * 1024
    max_entry_bytes: int = 256 * 1024
    redis_timeout_s: float = 0.5
    retry_initial_s: float = 1.0
    retry_max_s: float = 30.0
    image_id_ttl_s: float = 30.0
    secret: Optional[bytes] = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.secret is not None and len(self.secret) < 16:
            raise ValueError(
                "the result cache secret must be at least 16 bytes (e.g. `openssl rand -hex 32`)"
            )
        for name in (
            "ttl_s",
            "redis_timeout_s",
            "retry_initial_s",
            "retry_max_s",
            "image_id_ttl_s",
        ):
            parse_positive_float(getattr(self, name), name)
        for name in ("max_entries", "max_bytes", "max_entry_bytes"):
            parse_positive_int(getattr(self, name), name)

    @classmethod
    def from_env(cls, environ: Optional[Mapping[str, str]] = None, **overrides: Any) -> CacheConfig:
        """Reads ``DOCKER_EXECUTOR_REDIS_URL``, ``_CACHE_ENABLED``, ``_CACHE_TTL`` (seconds),
        ``_CACHE_MAX_ENTRIES`` and ``_CACHE_SECRET``; ``overrides`` win.

        Raises:
            ValueError: a variable holds a value that makes no sense; the message names it.
        """
        env = os.environ if environ is None else environ
        changes: dict[str, Any] = {}
        url = (env.get(REDIS_URL_ENV) or "").strip()
        if url:
            changes["redis_url"] = url
        secret = (env.get(CACHE_SECRET_ENV) or "").strip()
        if secret:
            changes["secret"] = secret.encode()
        readers: dict[str, tuple[str, Callable[[str, str], Any]]] = {
            "CACHE_ENABLED": ("enabled", parse_env_bool),
            "CACHE_TTL": ("ttl_s", lambda v, n: parse_positive_float(v, n, seconds=True)),
            "CACHE_MAX_ENTRIES": ("max_entries", parse_positive_int),
        }
        for suffix, (attr, parse) in readers.items():
            value = env.get(ENV_PREFIX + suffix)
            if value:
                changes[attr] = parse(value, ENV_PREFIX + suffix)
        changes.update(overrides)
        return cls(**changes)
