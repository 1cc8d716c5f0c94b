"""Our containers in the Docker engine: the handle of a started one, and the engine facade that
launches, removes, settles, reports on and reaps them.

``Engine`` is the only place that talks to the engine about containers; the warm pool and the
per-user store see it only as a ``Launcher`` (launch, remove). Every call here blocks (Docker's
API is HTTP over a socket); callers on an event loop run it in a thread pool.
"""

from __future__ import annotations

import atexit
import collections
import datetime
import logging
import math
import select
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Literal, Optional, Protocol, Union

import docker
import docker.errors
import requests.exceptions
from docker.types import LogConfig, Ulimit

from .config import EXPIRES_LABEL, LABEL, OWNER_LABEL, SandboxConfig, seccomp_security_opt
from .errors import DockerUnavailableError, ExecutorImageMissingError
from .image import FLAVOUR_LABEL
from .limits import Limits
from .protocol import FrameReader

log = logging.getLogger(__name__)

#: All the runner (uid 0) holds; the student's and the harness's processes drop them all.
RUNNER_CAPABILITIES = ("SETUID", "SETGID", "SETPCAP", "KILL")

#: Under gVisor (runtime ``runsc``) the engine's pids limit counts the sandbox kernel's host
#: threads, not the sandboxed processes (each of which costs several of them); reaching it kills
#: the whole sandbox with no output. There RLIMIT_NPROC, which gVisor's kernel enforces per uid
#: inside the sandbox, caps the processes at ``limits.pids`` (fork fails with EAGAIN, as under
#: runc), and the engine's limit is only a backstop this far above it.
GVISOR_HOST_PIDS_PER_PROCESS = 12
GVISOR_HOST_PIDS_BASE = 100
#: Under gVisor the container's memory also holds the sandbox kernel (its Sentry and the ptrace
#: platform's stubs): about 50 MiB before any job, so a 64 MiB limit would kill even an empty
#: program. The engine's limit there is the run's limit plus this; messages name the run's limit.
GVISOR_MEMORY_OVERHEAD_MB = 64

#: How long another instance's ended container is left for it to read its state before the
#: reaper takes it (that instance reads it within moments; this covers a slow engine).
ENDED_GRACE_S = 15.0

#: Containers whose run is over wait this long at most, and this many at most, for their removal
#: while runs are in flight: removing one costs the engine CPU that a busy moment (a class
#: submitting at once) needs for new containers. Each waits with only its idle runner (~10 MB).
MAX_LINGERING = 64
MAX_LINGER_S = 30.0

#: Everything that means "the engine is not there" rather than "the engine said no".
UNREACHABLE = (requests.exceptions.ConnectionError, ConnectionError, FileNotFoundError)

#: When ``remove`` removes: ``now`` on the caller's thread; ``soon`` on a background thread (the
#: caller's answer need not wait for it); ``calm`` once no run is in flight (or too many or too
#: old wait; see MAX_LINGERING), its runner idle meanwhile.
When = Literal["now", "soon", "calm"]

#: Engines with containers waiting for removal; a process that ends without close() still
#: removes them (the teardown thread is a daemon and would not).
_WAITING_REMOVAL: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _remove_waiting_containers_at_exit() -> None:
    for engine in list(_WAITING_REMOVAL):
        engine.flush()


class Container:
    """A started container with its attach socket; its runner waits for (or works on) a job."""

    def __init__(
        self,
        container_id: str,
        sock: Any,
        limits: Limits,
        started: float,
        expires_at: float = math.inf,
    ):
        self.container_id = container_id
        self.sock = sock
        self.raw = getattr(sock, "_sock", sock)
        self.limits = limits
        self.started = started
        self.expires_at = expires_at  # epoch seconds of its expiry label: the reaper's deadline
        self.closed = False
        #: Jobs it served, and (between jobs of a reused container) the attach stream's unread bytes.
        self.runs = 0
        self.mux = bytearray()
        self.received = 0
        self.last_used = started
        self.reader: Optional[FrameReader] = None  # the last job's, read on for "ready"

    def alive(self) -> bool:
        """An idle runner sends nothing: a readable socket means the container ended (EOF)."""
        if self.closed:
            return False
        try:
            readable, _, _ = select.select([self.raw], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    def close(self) -> None:
        """Closes the attach socket: the engine closes the runner's stdin, so the runner ends."""
        if not self.closed:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass


class Launcher(Protocol):
    """What the warm pool and the per-user store need of the engine."""

    def launch(self, limits: Limits, idle_s: float = 0.0) -> Container:
        """A started container whose runner waits for a job (raises when the engine cannot)."""
        ...  # pragma: no cover

    def remove(self, target: Union[Container, str], when: When = "now") -> None:
        """Ends and removes a container; never raises."""
        ...  # pragma: no cover


class Engine:
    """Our containers in one Docker engine.

    Args:
        config: the sandbox's settings (image, runtime, flags, owner).
        client_factory: makes a ``docker.DockerClient``; the default talks to the local engine
            (``DOCKER_HOST`` or the Unix socket).
    """

    def __init__(
        self,
        config: SandboxConfig,
        client_factory: Optional[Callable[[], docker.DockerClient]] = None,
    ):
        self.config = config
        seccomp = seccomp_security_opt(config.seccomp)
        self._security_opt = ["no-new-privileges"] + ([seccomp] if seccomp else [])
        self._client_factory = client_factory or (
            lambda: docker.DockerClient.from_env(timeout=60, max_pool_size=64)
        )
        self._client: Optional[docker.DockerClient] = None
        self._lock = threading.Lock()
        self._remover: Optional[ThreadPoolExecutor] = None
        # Ended runs' containers waiting for a calmer moment to be removed, and runs in flight.
        self._lingering: collections.deque = collections.deque()
        self._linger_cond = threading.Condition()
        self._in_flight = 0
        self._tearing = 0  # containers taken off _lingering whose removal is not done yet
        self._teardown: Optional[threading.Thread] = None
        #: Containers this engine facade created and removed (metrics read them; never reset).
        self.created = 0
        self.removed = 0
        self._counts_lock = threading.Lock()
        #: Containers whose removal failed (engine down or restarting): tried again later.
        self._unremoved: set = set()

    # -- connection ------------------------------------------------------------------------------

    def api(self) -> docker.APIClient:
        """The engine's low-level client, connecting on first use.

        Raises:
            DockerUnavailableError: the engine cannot be reached.
        """
        with self._lock:
            if self._client is None:
                try:
                    self._client = self._client_factory()
                except (docker.errors.DockerException, *UNREACHABLE) as e:
                    raise DockerUnavailableError(short(e)) from e
            return self._client.api

    def forget_client(self) -> None:
        """Drops the connection (the engine went away); the next call opens a new one."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # closing a broken connection may fail in many ways; it is gone
                pass

    def close(self) -> None:
        """Finishes pending removals, retries failed ones, closes the connection. Usable after."""
        self.flush()
        self.retry_unremoved()
        self.forget_client()

    # -- launching -------------------------------------------------------------------------------

    def launch(self, limits: Limits, idle_s: float = 0.0) -> Container:
        """Creates, attaches to and starts one hardened container; its runner then waits for a
        job. ``idle_s``: how long it may wait for one (its expiry label allows for it)."""
        api = self.api()
        container_id, expires_at = self._create(api, limits, idle_s)
        try:
            sock = api.attach_socket(
                container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
            )
        except BaseException:
            self._delete(api, container_id)
            raise
        container = Container(container_id, sock, limits, time.monotonic(), expires_at)
        try:
            api.start(container_id)
        except BaseException:
            container.close()
            self._delete(api, container_id)
            raise
        if self._unremoved:
            # The engine answers again: containers it could not remove meanwhile (an engine
            # restart stops and leaves every container) go now, off the caller's path.
            self._background(self.retry_unremoved)
        return container

    def _create(
        self, api: docker.APIClient, limits: Limits, idle_s: float = 0.0
    ) -> tuple[str, float]:
        """Creates (does not start) one hardened container; returns its id and expiry (epoch s)."""
        cfg = self.config
        cpu_seconds = int(math.ceil(limits.time_s)) + 1
        tmpfs_bytes = cfg.tmpfs_mb * 1024 * 1024
        ulimits = [
            Ulimit(name="cpu", soft=cpu_seconds, hard=cpu_seconds + 1),
            Ulimit(name="nofile", soft=limits.nofile, hard=limits.nofile),
            Ulimit(name="fsize", soft=tmpfs_bytes, hard=tmpfs_bytes),
            Ulimit(name="core", soft=0, hard=0),
        ]
        pids_limit = limits.pids
        memory_mb = limits.memory_mb
        if cfg.runtime == "runsc":
            memory_mb += GVISOR_MEMORY_OVERHEAD_MB
            # See GVISOR_HOST_PIDS_PER_PROCESS. Under runc RLIMIT_NPROC would count uid 10001's
            # processes in every container on the host together, so there the engine's limit rules.
            ulimits.append(Ulimit(name="nproc", soft=limits.pids, hard=limits.pids))
            pids_limit = limits.pids * GVISOR_HOST_PIDS_PER_PROCESS + GVISOR_HOST_PIDS_BASE
        host_config = api.create_host_config(
            network_mode=cfg.network,
            read_only=True,
            tmpfs={"/tmp": f"rw,noexec,nosuid,nodev,size={cfg.tmpfs_mb}m,mode=1777"},
            # The runner starts as root with just enough to hand out two identities (the code's
            # and the tests') and to stop the code's processes; both give up every capability.
            cap_drop=["ALL"],
            cap_add=list(RUNNER_CAPABILITIES),
            # Our seccomp profile denies what student Python never needs (ptrace, io_uring, bpf,
            # keyrings, mounts, namespaces …); see docs/internals.md, "Seccomp".
            security_opt=list(self._security_opt),
            pids_limit=pids_limit,
            mem_limit=f"{memory_mb}m",
            memswap_limit=f"{memory_mb}m",
            nano_cpus=int(limits.cpus * 1_000_000_000),
            ulimits=ulimits,
            ipc_mode="private",
            init=True,
            runtime=cfg.runtime,
            log_config=LogConfig(type=LogConfig.types.NONE),
            privileged=False,
        )
        # Generous: checks add their own timeouts to a run, and a pooled container may idle first.
        expires = int(time.time() + idle_s + 2 * limits.time_s + cfg.startup_grace_s + 600)
        config = api.create_container_config(
            image=cfg.image,
            command=None,  # type: ignore[arg-type]  # docker-py takes None for the image's own command
            user="0:0",
            environment={"EXEC_STUDENT_ID": cfg.user, "EXEC_HARNESS_ID": cfg.harness_user},
            stdin_open=True,
            network_disabled=cfg.network == "none",
            hostname="sandbox",
            working_dir="/tmp",
            labels={LABEL: "true", EXPIRES_LABEL: str(expires), OWNER_LABEL: cfg.owner},
            host_config=host_config,
        )
        # The engine closes the runner's stdin when our attach connection goes, even if this
        # process dies without a word (SIGKILL): the runner sees EOF once its run is over and
        # ends, so a crashed server leaves stopped containers for the reaper, never running ones.
        config["StdinOnce"] = True
        created = api.create_container_from_config(config, None)
        with self._counts_lock:
            self.created += 1
        return created["Id"], float(expires)

    # -- the end of a run ------------------------------------------------------------------------

    def settle(self, container_id: str, stopping: bool) -> dict:
        """Waits for a container to end (killing it first when ``stopping``: the host gave up on
        its run) and returns its engine ``State``; ``{}`` when that cannot be known."""
        api = self.api()
        if stopping:
            try:
                api.kill(container_id)
            except docker.errors.APIError:
                pass  # it ended on its own meanwhile (or the engine is slow to see it go)
        try:
            api.wait(container_id, timeout=15)
        except requests.exceptions.ReadTimeout:
            try:
                api.kill(container_id)
                api.wait(container_id, timeout=15)
            except (docker.errors.APIError, requests.exceptions.ReadTimeout):
                if not stopping:
                    raise
                return {}  # the host gave up on the run already: its answer does not need the state
        try:
            return api.inspect_container(container_id)["State"]
        except docker.errors.NotFound:
            return {}  # removed meanwhile (a reaper's grace is long past): its state is unknown

    def begin_run(self) -> None:
        """A run is in flight: containers removed ``calm`` wait until none is."""
        with self._linger_cond:
            self._in_flight += 1

    def end_run(self) -> None:
        with self._linger_cond:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._linger_cond.notify_all()

    # -- removal ---------------------------------------------------------------------------------

    def remove(self, target: Union[Container, str], when: When = "now") -> None:
        """Ends and removes a container (a handle: its socket is closed first, so its runner
        ends; or an id). ``when``: see ``When``. Never raises: what the engine cannot remove now
        is tried again later (``retry_unremoved``), and the reaper takes what is left."""
        if when == "calm" and isinstance(target, Container) and not target.closed:
            self._linger(target)
            return
        container_id = target if isinstance(target, str) else target.container_id
        if isinstance(target, Container):
            target.close()
        try:
            api = self.api()
        except DockerUnavailableError as e:  # engine gone: tried again once it is back
            log.warning("could not remove container %s: %s", container_id[:12], e)
            with self._counts_lock:
                self._unremoved.add(container_id)
            return
        if when == "now":
            self._delete(api, container_id)
        else:
            self._background(self._delete, api, container_id)

    def waiting_removal(self) -> list[str]:
        """The ids of the containers removed ``calm`` that still wait for a calm moment."""
        with self._linger_cond:
            return [c.container_id for c, _ in self._lingering]

    def flush(self) -> None:
        """Waits until every container handed to ``remove`` (at any ``when``) is gone."""
        while True:
            with self._linger_cond:
                if not self._lingering:
                    while self._tearing:  # the background thread's removal in progress
                        self._linger_cond.wait(timeout=1.0)
                    break
                container, _ = self._lingering.popleft()
                self._tearing += 1
            self._tear_down(container)
        with self._lock:
            remover, self._remover = self._remover, None
        if remover is not None:
            remover.shutdown(wait=True)

    def retry_unremoved(self) -> None:
        """Tries again to remove the containers whose removal failed (say, the engine was down
        or restarting then). Never raises: what is still left is the reaper's."""
        with self._counts_lock:
            left = list(self._unremoved)
        if not left:
            return
        try:
            api = self.api()
        except DockerUnavailableError as e:
            log.warning(
                "%d container(s) could not be removed, the engine is unreachable (%s); "
                "the reaper removes them later",
                len(left),
                e,
            )
            return
        for container_id in left:
            self._delete(api, container_id)

    def _delete(self, api: docker.APIClient, container_id: str) -> None:
        """The engine call behind every removal; a failure is kept for ``retry_unremoved``."""
        try:
            api.remove_container(container_id, force=True, v=True)
        except docker.errors.NotFound:
            with self._counts_lock:
                self._unremoved.discard(container_id)
        except (
            Exception
        ) as e:  # retried by close() and the reaper; the run's answer must not be lost
            log.warning("could not remove container %s: %s", container_id[:12], short(e))
            with self._counts_lock:
                self._unremoved.add(container_id)
        else:
            with self._counts_lock:
                self.removed += 1
                self._unremoved.discard(container_id)

    def _background(self, fn: Callable[..., None], *args: Any) -> None:
        with self._lock:
            if self._remover is None:
                self._remover = ThreadPoolExecutor(
                    max_workers=2, thread_name_prefix="sandbox-remove"
                )
            remover = self._remover
        try:
            remover.submit(fn, *args)
        except RuntimeError:  # shut down meanwhile by flush(): here and now
            fn(*args)

    def _linger(self, container: Container) -> None:
        """Keeps an ended run's container (its runner waits for EOF) until the engine is idle,
        more than MAX_LINGERING wait, or one waited MAX_LINGER_S; then removes it."""
        _WAITING_REMOVAL.add(self)
        with self._linger_cond:
            self._lingering.append((container, time.monotonic()))
            self._linger_cond.notify_all()
            if self._teardown is None or not self._teardown.is_alive():
                self._teardown = threading.Thread(
                    target=self._tear_down_when_calm, name="sandbox-teardown", daemon=True
                )
                self._teardown.start()

    def _tear_down_when_calm(self) -> None:
        while True:
            with self._linger_cond:
                while True:
                    if not self._lingering:
                        if not self._linger_cond.wait(timeout=10.0) and not self._lingering:
                            self._teardown = None
                            return  # nothing for a while: the next _linger starts a new thread
                        continue
                    oldest = time.monotonic() - self._lingering[0][1]
                    if (
                        self._in_flight == 0
                        or len(self._lingering) > MAX_LINGERING
                        or oldest >= MAX_LINGER_S
                    ):
                        container, _ = self._lingering.popleft()
                        self._tearing += 1
                        break
                    self._linger_cond.wait(timeout=max(0.05, MAX_LINGER_S - oldest))
            self._tear_down(container)

    def _tear_down(self, container: Container) -> None:
        """Removes a container taken off _lingering (counted in _tearing)."""
        try:
            self.remove(container, "now")
        finally:
            with self._linger_cond:
                self._tearing -= 1
                self._linger_cond.notify_all()

    # -- engine state ----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Engine reachable, its version, the executor image and its id. Never raises."""
        info: dict[str, Any] = {
            "reachable": False,
            "engine_version": None,
            "api_version": None,
            "image": self.config.image,
            "image_present": False,
            "image_id": None,
            "image_flavour": None,
            "runtime": self.config.runtime,
            "error": None,
        }
        try:
            api = self.api()
            version = api.version()
            info.update(
                reachable=True,
                engine_version=version.get("Version"),
                api_version=version.get("ApiVersion"),
            )
            try:
                image = api.inspect_image(self.config.image)
                info["image_id"] = image["Id"]
                info["image_present"] = True
                # science (numpy, pandas, matplotlib) or stdlib; None for an image built elsewhere
                info["image_flavour"] = ((image.get("Config") or {}).get("Labels") or {}).get(
                    FLAVOUR_LABEL
                )
            except docker.errors.ImageNotFound:
                info["error"] = str(ExecutorImageMissingError(self.config.image))
        except DockerUnavailableError as e:
            info["error"] = str(e)
        except UNREACHABLE as e:
            self.forget_client()
            info["error"] = str(DockerUnavailableError(short(e)))
        except docker.errors.APIError as e:
            info["error"] = f"the Docker engine answered with an error: {e.explanation or e}"
        return info

    def reap(self, *, everything: bool = False, ended_grace_s: float = ENDED_GRACE_S) -> list[str]:
        """Removes our abandoned containers. Returns the ids removed.

        Removed: any past its expiry label; this instance's ended ones; another instance's that
        ended more than ``ended_grace_s`` ago. A crashed instance's containers end by themselves
        once their run is over (see ``StdinOnce`` in ``_create``), so the next sweep after that
        takes them. Left alone: runs in progress, and another instance's just-ended containers,
        whose state it may still be reading. With ``everything``, all of our containers go.

        Raises:
            DockerUnavailableError: the engine cannot be reached.
        """
        api = self.api()
        now = time.time()
        removed = []
        try:
            containers = api.containers(all=True, filters={"label": LABEL})
        except UNREACHABLE as e:
            self.forget_client()
            raise DockerUnavailableError(short(e)) from e
        for c in containers:
            labels = c.get("Labels") or {}
            try:
                expires = float(labels.get(EXPIRES_LABEL, 0))
            except ValueError:
                expires = 0.0
            mine = labels.get(OWNER_LABEL, "") == self.config.owner
            ended = c.get("State") in ("exited", "dead")
            if (
                everything
                or expires < now
                or (mine and ended)
                or (ended and not mine and self._ended_before(api, c["Id"], now - ended_grace_s))
            ):
                self._delete(api, c["Id"])
                removed.append(c["Id"])
        if removed:
            log.info("reaper removed %d abandoned sandbox container(s)", len(removed))
        return removed

    def _ended_before(self, api: docker.APIClient, container_id: str, moment: float) -> bool:
        try:
            finished = api.inspect_container(container_id)["State"].get("FinishedAt") or ""
        except docker.errors.NotFound:
            return False
        return _epoch(finished) < moment


def _epoch(stamp: str) -> float:
    """The engine's RFC 3339 time (nanoseconds, ``Z``) as epoch seconds; unreadable ones as now."""
    try:
        head, _, fraction = stamp.rstrip("Z").partition(".")
        moment = datetime.datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(
            tzinfo=datetime.timezone.utc
        )
        return moment.timestamp() + (float("0." + fraction[:6]) if fraction[:6].isdigit() else 0.0)
    except ValueError:
        return time.time()


def short(error: BaseException) -> str:
    """An error as one short line for a message or the log."""
    text = str(error).strip() or type(error).__name__
    return text if len(text) <= 300 else text[:300] + "…"
