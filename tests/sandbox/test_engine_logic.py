"""The engine facade's removal modes, retries, reaper and status without Docker: a fake low-level
client stands in for the engine's answers, and a real client on a socket that does not exist for
an engine that is not there. (The Docker-marked tests prove the same calls on the real engine.)"""

from __future__ import annotations

import datetime
import socket
import threading
import time
from typing import Optional

import docker
import docker.errors
import pytest

from jupyter_exec_ext.sandbox import containers
from jupyter_exec_ext.sandbox.config import EXPIRES_LABEL, LABEL, OWNER_LABEL, SandboxConfig
from jupyter_exec_ext.sandbox.containers import Container, Engine
from jupyter_exec_ext.sandbox.errors import DockerUnavailableError, ExecutorImageMissingError
from jupyter_exec_ext.sandbox.image import FLAVOUR_LABEL
from jupyter_exec_ext.sandbox.limits import Limits

from .fakes import wait_for

OWNER = "server-a"
IMAGE = "jupyter-exec-ext-executor:logic-test"
LIMITS = Limits(memory_mb=128, cpus=0.5, time_s=10.0, pids=40, nofile=256)
#: Where no engine listens.
NOWHERE = "unix:///nonexistent/docker.sock"


class FakeAPI:
    """The few calls of ``docker.APIClient`` the facade makes, answered from the test's script."""

    def __init__(self):
        self.calls: list[tuple] = []
        #: Raised, one each, by the next ``remove_container`` calls.
        self.remove_errors: list[BaseException] = []
        #: While cleared, ``remove_container`` waits (``removing`` says one does).
        self.remove_gate = threading.Event()
        self.remove_gate.set()
        self.removing = threading.Event()
        #: What ``containers()`` lists, and each one's ``State.FinishedAt``.
        self.listed: list[dict] = []
        self.finished: dict[str, str] = {}
        #: ``inspect_image``'s answer; None: the image is missing.
        self.image: Optional[dict] = {"Id": "sha256:feed", "Config": {"Labels": {}}}
        self.version_error: Optional[BaseException] = None
        self.sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def _record(self, *call) -> None:
        with self._lock:
            self.calls.append(call)

    def removals(self, container_id: Optional[str] = None) -> list[tuple]:
        with self._lock:
            return [
                c for c in self.calls if c[0] == "remove_container" and container_id in (None, c[1])
            ]

    # -- removal -------------------------------------------------------------------------------

    def remove_container(self, container_id, force=False, v=False):
        self._record("remove_container", container_id, force, v)
        self.removing.set()
        assert self.remove_gate.wait(timeout=10), "a held removal was never released"
        with self._lock:
            error = self.remove_errors.pop(0) if self.remove_errors else None
        if error is not None:
            raise error

    # -- the reaper ------------------------------------------------------------------------------

    def containers(self, all=False, filters=None):
        self._record("containers", all, filters)
        return list(self.listed)

    def inspect_container(self, container_id):
        if container_id not in self.finished:
            raise docker.errors.NotFound(f"no such container: {container_id}")
        return {"State": {"Status": "exited", "FinishedAt": self.finished[container_id]}}

    # -- status ----------------------------------------------------------------------------------

    def version(self):
        if self.version_error is not None:
            raise self.version_error
        return {"Version": "27.3.1", "ApiVersion": "1.47"}

    def inspect_image(self, name):
        self._record("inspect_image", name)
        if self.image is None:
            raise docker.errors.ImageNotFound(f"No such image: {name}")
        return self.image

    # -- launching -------------------------------------------------------------------------------

    def create_host_config(self, **options):
        return dict(options)

    def create_container_config(self, **options):
        return dict(options)

    def create_container_from_config(self, config, name):
        self._record("create", config)
        return {"Id": f"{len(self.calls):064x}"}

    def attach_socket(self, container_id, params=None):
        host, runner = socket.socketpair()
        self.sockets += [host, runner]
        return host

    def start(self, container_id):
        self._record("start", container_id)


class FakeClient:
    def __init__(self, api: FakeAPI):
        self.api = api
        self.closed = False

    def close(self):
        self.closed = True


class Factory:
    """A client factory the test can turn off (the engine unreachable) and on again."""

    def __init__(self, api: FakeAPI):
        self.api = api
        self.reachable = True
        self.made: list[FakeClient] = []

    def __call__(self):
        if not self.reachable:
            raise docker.errors.DockerException(
                "Error while fetching server API version: connection refused"
            )
        client = FakeClient(self.api)
        self.made.append(client)
        return client


@pytest.fixture
def api():
    fake = FakeAPI()
    yield fake
    fake.remove_gate.set()
    for sock in fake.sockets:
        sock.close()


@pytest.fixture
def factory(api):
    return Factory(api)


@pytest.fixture
def engine(factory):
    facade = Engine(SandboxConfig(image=IMAGE, owner=OWNER), client_factory=factory)
    yield facade
    facade.flush()


def handle(engine: Engine, api: FakeAPI) -> Container:
    """A started container (through the facade's own launch)."""
    live = engine.launch(LIMITS)
    assert ("start", live.container_id) in api.calls
    return live


# -- removal -------------------------------------------------------------------------------------


def test_now_removes_on_the_callers_thread_forcibly_with_its_volumes(engine, api):
    live = handle(engine, api)
    engine.remove(live, "now")
    assert api.removals() == [("remove_container", live.container_id, True, True)]
    assert live.closed and not live.alive()
    assert (engine.created, engine.removed) == (1, 1)
    engine.remove("an-id-only", "now")
    assert api.removals("an-id-only") == [("remove_container", "an-id-only", True, True)]
    assert engine.removed == 2


def test_soon_removes_in_the_background_and_flush_waits_for_it(engine, api):
    live = handle(engine, api)
    api.remove_gate.clear()
    engine.remove(live, "soon")  # returns while the engine still works on it
    assert live.closed
    assert api.removing.wait(timeout=10)
    assert engine.removed == 0
    flushing = threading.Thread(target=engine.flush)
    flushing.start()
    assert flushing.is_alive()
    api.remove_gate.set()
    flushing.join(timeout=10)
    assert not flushing.is_alive()
    assert engine.removed == 1
    assert api.removals() == [("remove_container", live.container_id, True, True)]


def test_calm_waits_while_a_run_is_in_flight_and_goes_after_it(engine, api):
    live = handle(engine, api)
    engine.begin_run()
    engine.remove(live, "calm")
    assert engine.waiting_removal() == [live.container_id]
    assert not live.closed and live.alive()  # its runner waits, idle, for EOF
    assert api.removals() == []
    engine.end_run()
    wait_for(lambda: engine.waiting_removal() == [] and engine.removed == 1, "it is removed")
    assert live.closed
    assert api.removals() == [("remove_container", live.container_id, True, True)]


def test_calm_with_no_run_in_flight_goes_at_once(engine, api):
    live = handle(engine, api)
    engine.remove(live, "calm")
    wait_for(lambda: engine.removed == 1, "it is removed")
    assert engine.waiting_removal() == []


def test_calm_waits_at_most_max_linger_s(engine, api, monkeypatch):
    monkeypatch.setattr(containers, "MAX_LINGER_S", 0.2)
    live = handle(engine, api)
    engine.begin_run()
    try:
        engine.remove(live, "calm")
        wait_for(lambda: engine.removed == 1, "it is removed while the run goes on")
    finally:
        engine.end_run()
    assert engine.waiting_removal() == []


def test_beyond_max_lingering_the_oldest_waiting_goes(engine, api, monkeypatch):
    monkeypatch.setattr(containers, "MAX_LINGERING", 2)
    first, second, third = (handle(engine, api) for _ in range(3))
    engine.begin_run()
    try:
        for live in (first, second, third):
            engine.remove(live, "calm")
        wait_for(lambda: engine.removed == 1, "one is removed")
        assert engine.waiting_removal() == [second.container_id, third.container_id]
        assert api.removals() == [("remove_container", first.container_id, True, True)]
    finally:
        engine.end_run()


def test_flush_removes_the_waiting_ones_even_while_a_run_is_in_flight(engine, api):
    live = handle(engine, api)
    engine.begin_run()
    try:
        engine.remove(live, "calm")
        engine.flush()
        assert engine.waiting_removal() == [] and engine.removed == 1 and live.closed
    finally:
        engine.end_run()


def test_calm_for_a_closed_container_does_not_wait(engine, api):
    live = handle(engine, api)
    live.close()  # its stream is gone: there is nothing to wait for
    engine.begin_run()
    try:
        engine.remove(live, "calm")
        assert engine.waiting_removal() == []
        engine.flush()
        assert engine.removed == 1
    finally:
        engine.end_run()


# -- failed removals -----------------------------------------------------------------------------


def test_a_failed_removal_is_kept_and_retried(engine, api):
    live = handle(engine, api)
    api.remove_errors.append(docker.errors.APIError("500 Server Error: engine busy"))
    engine.remove(live, "now")  # never raises
    assert engine.removed == 0 and engine._unremoved == {live.container_id}
    engine.retry_unremoved()
    assert engine.removed == 1 and engine._unremoved == set()
    assert len(api.removals(live.container_id)) == 2
    engine.retry_unremoved()  # nothing left to do
    assert len(api.removals(live.container_id)) == 2


def test_a_later_successful_launch_removes_what_could_not_be_removed(engine, api):
    failed = handle(engine, api)
    api.remove_errors.append(docker.errors.APIError("500 Server Error: engine restarting"))
    engine.remove(failed, "now")
    assert engine._unremoved == {failed.container_id}
    handle(engine, api)  # the engine answers again
    engine.flush()
    assert engine._unremoved == set() and engine.removed == 1
    assert len(api.removals(failed.container_id)) == 2


def test_a_container_already_gone_is_not_retried_nor_counted(engine, api):
    api.remove_errors.append(docker.errors.NotFound("no such container"))
    engine.remove("gone", "now")
    assert engine.removed == 0 and engine._unremoved == set()
    # One whose removal failed, then went meanwhile (the reaper of another instance took it).
    api.remove_errors += [
        docker.errors.APIError("500 Server Error: engine busy"),
        docker.errors.NotFound("no such container"),
    ]
    engine.remove("taken", "now")
    assert engine._unremoved == {"taken"}
    engine.retry_unremoved()
    assert engine.removed == 0 and engine._unremoved == set()
    engine.retry_unremoved()
    assert len(api.removals("taken")) == 2


def test_an_unreachable_engine_at_removal_keeps_the_container_for_later(engine, api, factory):
    live = handle(engine, api)
    engine.forget_client()
    factory.reachable = False
    engine.remove(live, "now")  # never raises
    assert live.closed  # its runner ends anyway
    assert engine._unremoved == {live.container_id} and api.removals() == []
    engine.retry_unremoved()  # still unreachable: never raises
    assert engine._unremoved == {live.container_id}
    factory.reachable = True
    engine.retry_unremoved()
    assert engine._unremoved == set() and engine.removed == 1
    assert api.removals() == [("remove_container", live.container_id, True, True)]


def test_an_engine_that_does_not_answer_at_removal_keeps_it_for_later():
    """A real client on a socket where no engine listens: the connection error is caught."""
    engine = Engine(
        SandboxConfig(image=IMAGE, owner=OWNER),
        client_factory=lambda: docker.DockerClient(base_url=NOWHERE, version="1.43"),
    )
    try:
        engine.remove("c0ffee", "now")
        engine.remove("decaf", "soon")
        engine.flush()
        assert engine._unremoved == {"c0ffee", "decaf"} and engine.removed == 0
        engine.retry_unremoved()
        assert engine._unremoved == {"c0ffee", "decaf"}
    finally:
        engine.forget_client()


def test_close_finishes_removals_retries_and_drops_the_connection(engine, api, factory):
    live = handle(engine, api)
    api.remove_errors.append(docker.errors.APIError("500 Server Error: engine busy"))
    engine.remove(live, "soon")
    engine.close()
    assert engine.removed == 1 and engine._unremoved == set()
    assert factory.made[0].closed
    engine.api()  # usable after: a new connection
    assert len(factory.made) == 2


# -- the reaper ----------------------------------------------------------------------------------


def stamp(seconds_ago: float) -> str:
    """The engine's RFC 3339 time with nanoseconds."""
    moment = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=seconds_ago)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"


def listed(container_id: str, state: str, owner: str, expires_in: float = 3600.0) -> dict:
    return {
        "Id": container_id,
        "State": state,
        "Labels": {
            LABEL: "true",
            OWNER_LABEL: owner,
            EXPIRES_LABEL: str(int(time.time() + expires_in)),
        },
    }


@pytest.fixture
def crowd(api):
    """Containers of this instance and another, in every state the reaper tells apart."""
    api.listed = [
        listed("expired-running-other", "running", "server-b", expires_in=-5),
        listed("mine-exited", "exited", OWNER),
        listed("mine-dead", "dead", OWNER),
        listed("mine-running", "running", OWNER),
        listed("other-running", "running", "server-b"),
        listed("other-ended-long-ago", "exited", "server-b"),
        listed("other-just-ended", "exited", "server-b"),
        listed("other-ended-unknown", "exited", "server-b"),  # inspect says: no such container
    ]
    api.finished = {"other-ended-long-ago": stamp(60), "other-just-ended": stamp(1)}
    return [c["Id"] for c in api.listed]


def test_reap_takes_the_abandoned_and_leaves_runs_and_just_ended_others(engine, api, crowd):
    removed = engine.reap(ended_grace_s=15.0)
    assert removed == ["expired-running-other", "mine-exited", "mine-dead", "other-ended-long-ago"]
    assert [c[1] for c in api.removals()] == removed
    assert ("containers", True, {"label": LABEL}) in api.calls
    assert engine.removed == 4


def test_reap_of_everything_takes_all_of_ours(engine, api, crowd):
    assert engine.reap(everything=True) == crowd
    assert engine.removed == len(crowd)


def test_reap_with_a_short_grace_takes_the_just_ended(engine, api, crowd):
    assert "other-just-ended" in engine.reap(ended_grace_s=0.0)


def test_reap_takes_a_container_whose_expiry_label_is_unreadable(engine, api):
    api.listed = [listed("garbled", "running", "server-b")]
    api.listed[0]["Labels"][EXPIRES_LABEL] = "soon-ish"
    assert engine.reap() == ["garbled"]


def test_reap_with_the_engine_unreachable_says_so():
    engine = Engine(
        SandboxConfig(image=IMAGE, owner=OWNER),
        client_factory=lambda: docker.DockerClient(base_url=NOWHERE, version="1.43"),
    )
    with pytest.raises(DockerUnavailableError, match="Docker not available"):
        engine.reap()
    assert engine._client is None  # the broken connection is dropped


# -- status --------------------------------------------------------------------------------------


def test_status_of_a_reachable_engine_with_the_image(engine, api):
    api.image = {"Id": "sha256:c0ffee", "Config": {"Labels": {FLAVOUR_LABEL: "science"}}}
    assert engine.status() == {
        "reachable": True,
        "engine_version": "27.3.1",
        "api_version": "1.47",
        "image": IMAGE,
        "image_present": True,
        "image_id": "sha256:c0ffee",
        "image_flavour": "science",
        "runtime": None,
        "error": None,
    }


def test_status_when_the_image_is_missing_names_it_and_how_to_build_it(engine, api):
    api.image = None
    status = engine.status()
    assert (status["reachable"], status["image_present"], status["image_id"]) == (True, False, None)
    assert status["error"] == str(ExecutorImageMissingError(IMAGE))
    assert IMAGE in status["error"] and "build-image" in status["error"]


def test_status_when_the_client_cannot_be_made(engine, factory):
    factory.reachable = False
    status = engine.status()
    assert (status["reachable"], status["engine_version"], status["image_present"]) == (
        False,
        None,
        False,
    )
    assert status["error"].startswith("Docker not available: ")
    assert "connection refused" in status["error"]


def test_status_when_no_engine_answers_drops_the_connection_and_tries_again_next_time():
    made = []

    def factory():
        made.append(docker.DockerClient(base_url=NOWHERE, version="1.43"))
        return made[-1]

    engine = Engine(SandboxConfig(image=IMAGE, owner=OWNER), client_factory=factory)
    first = engine.status()
    assert first["reachable"] is False and first["error"].startswith("Docker not available: ")
    engine.status()
    assert len(made) == 2  # a new connection each time, not a broken one kept


def test_status_when_the_engine_answers_with_an_error(engine, api):
    api.version_error = docker.errors.APIError("500 Server Error", explanation="engine is starting")
    status = engine.status()
    assert status["reachable"] is False
    assert status["error"] == "the Docker engine answered with an error: engine is starting"
