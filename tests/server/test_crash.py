"""A server SIGKILLed in the middle of a run: the next server on the engine removes what the dead
one left (its run's container, its warm pool) within the run's time limit plus the reaper's grace
and one sweep, and itself leaves nothing when it stops."""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from jupyter_exec_ext.sandbox.containers import ENDED_GRACE_S

from ..conftest import TEST_OWNER, our_containers
from ..live_server import start_server

pytestmark = pytest.mark.docker

TIME_LIMIT = 6.0
REAP_INTERVAL = 1.0


def _post_execute(server, code: str, time_limit: float) -> None:
    body = json.dumps({"code": code, "time_limit": time_limit}).encode()
    request = urllib.request.Request(
        server.api + "execute",
        data=body,
        method="POST",
        headers={"Authorization": f"token {server.token}", "Content-Type": "application/json"},
    )
    try:
        urllib.request.urlopen(request, timeout=60).read()
    except (urllib.error.URLError, ConnectionError, OSError):
        pass  # the server is killed under this request: no answer is the expected outcome


def test_a_killed_servers_containers_are_removed_by_the_next_server_within_the_bound(
    tmp_path: Path, executor_image, docker_client, no_leaks
):
    dead_owner, next_owner = f"{TEST_OWNER}-killed", f"{TEST_OWNER}-next"
    traits = {
        "image": executor_image,
        "time_limit": TIME_LIMIT,
        "max_time_limit": TIME_LIMIT,
        "pool_size": 2,
        "reap_interval": REAP_INTERVAL,
    }
    dead = start_server(tmp_path / "dead", dict(traits, owner=dead_owner), token="dead-token")
    survivor = None
    try:
        request = threading.Thread(
            target=_post_execute,
            daemon=True,
            args=(dead, "import time\nprint('working', flush=True)\ntime.sleep(60)\n", TIME_LIMIT),
        )
        request.start()
        # Killed once the run is in a container and the pool has its waiting ones.
        deadline = time.monotonic() + 60
        while True:
            left = our_containers(docker_client, owner=dead_owner)
            running = [c for c in left if c["State"] == "running"]
            if len(running) >= 3:
                break
            assert time.monotonic() < deadline, (
                f"the dead server never had its run and pool: {left}"
            )
            time.sleep(0.1)
        dead.process.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        dead.process.wait(timeout=30)
        request.join(timeout=30)
        assert our_containers(docker_client, owner=dead_owner), (
            "nothing to reap: the test proves nothing"
        )

        survivor = start_server(
            tmp_path / "next", dict(traits, owner=next_owner), token="next-token"
        )
        bound = TIME_LIMIT + ENDED_GRACE_S + REAP_INTERVAL + 10.0  # + the engine's own latency
        while our_containers(docker_client, owner=dead_owner):
            waited = time.monotonic() - killed_at
            assert waited < bound, (
                f"{len(our_containers(docker_client, owner=dead_owner))} container(s) of the killed "
                f"server still there {waited:.1f} s after the kill (bound {bound:.0f} s)"
            )
            time.sleep(0.2)
        print(
            f"the killed server's containers were gone {time.monotonic() - killed_at:.1f} s after "
            f"the kill (bound {bound:.0f} s: time limit {TIME_LIMIT:.0f} + grace {ENDED_GRACE_S:.0f} "
            f"+ sweep {REAP_INTERVAL:.0f} + 10)"
        )
        survivor.stop()
        left_by_next = our_containers(docker_client, owner=next_owner)
    finally:
        if dead.process.poll() is None:
            dead.process.kill()
        if survivor is not None and survivor.process.poll() is None:
            survivor.stop()
        for owner in (dead_owner, next_owner):  # no_leaks watches TEST_OWNER only
            for c in our_containers(docker_client, owner=owner):
                docker_client.api.remove_container(c["Id"], force=True)
    assert not left_by_next, (
        f"the next server left {len(left_by_next)} container(s) when it stopped"
    )
