"""1,000 runs through a real server process: every one answered right, the server's memory
bounded (its RSS before and after is printed), and nothing left on the engine when it stops."""

from __future__ import annotations

import json
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ..conftest import TEST_OWNER, our_containers
from ..live_server import start_server

pytestmark = pytest.mark.docker

RUNS = 1000
WARM_UP = 100
#: What the server may grow by over 900 runs after its warm-up: allocator noise and caches that
#: fill once, not a per-run leak (one leaked result of ~1 KiB per run would be ~1 MiB here;
#: a leaked thread, socket buffer or container record per run far more).
RSS_GROWTH_BOUND_MIB = 24


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def test_a_thousand_runs_leave_no_container_and_bounded_memory(
    tmp_path: Path, executor_image, docker_client, no_leaks
):
    server = start_server(
        tmp_path,
        {"image": executor_image, "owner": TEST_OWNER, "pool_size": 2, "reap_interval": 0.0},
    )

    def execute(i: int) -> tuple[int, str, str]:
        body = json.dumps({"code": f"print({i} * 2)"}).encode()
        request = urllib.request.Request(
            server.api + "execute",
            data=body,
            method="POST",
            headers={"Authorization": f"token {server.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = json.load(response)
        return i, answer["status"], answer["stdout"]

    try:
        # Two at a time: the per-user cap of the server's one user (its token).
        with ThreadPoolExecutor(2) as workers:
            warm = list(workers.map(execute, range(WARM_UP)))
            before = rss_mib(server.process.pid)
            rest = list(workers.map(execute, range(WARM_UP, RUNS)))
            after = rss_mib(server.process.pid)
    finally:
        server.stop()
    left = our_containers(docker_client)
    print(
        f"server RSS after {WARM_UP} runs: {before:.1f} MiB; after {RUNS}: {after:.1f} MiB "
        f"({after - before:+.1f} MiB)"
    )
    wrong = [
        (i, status, out) for i, status, out in warm + rest if (status, out) != ("ok", f"{i * 2}\n")
    ]
    assert not wrong, f"{len(wrong)} run(s) answered wrong, first: {wrong[:3]}"
    assert after - before < RSS_GROWTH_BOUND_MIB, (
        f"RSS grew {after - before:.1f} MiB over {RUNS - WARM_UP} runs"
    )
    assert not left, f"{len(left)} container(s) left after the server stopped"
