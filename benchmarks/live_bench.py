"""Benchmark of live runs (``execute/ws``) against the real engine, next to baselines measured in
the same process: warm ``POST execute`` (streaming must not cost it) and a cold hardened
``docker run``. A measurement, not a test: it prints medians, p95 and ratios.

    .venv/bin/python benchmarks/live_bench.py [--quick] [--pool-size 8]

- first output: from sending ``run`` of ``print('a', flush=True); time.sleep(2)`` to the first
  ``output`` message at the client, on a warm pool (each sample a student's first run), and the
  part of it after the ``started`` message (the program's start and the way back);
- Stop: from sending ``cancel`` to the ``result`` (status ``cancelled``) of a busy loop.

It starts its own ``jupyter server`` (benchmarks/rest_bench.py's) on a free loopback port; every
container carries the owner label ``bench-<pid>`` and is gone afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from jupyter_exec_ext.sandbox import SandboxConfig  # noqa: E402
from rest_bench import TOKEN_PREFIX, Server, docker_run_hello, summary, ten_test_exercise  # noqa: E402

FIRST_OUTPUT = "import time\nprint('a', flush=True)\ntime.sleep(2)\n"
BUSY = "print('busy', flush=True)\nwhile True:\n    pass\n"


async def connect(server: Server, user: str):
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    url = server.api.replace("http://", "ws://") + "execute/ws"
    return await websocket_connect(
        HTTPRequest(url, headers={"Authorization": f"token {TOKEN_PREFIX}{user}"})
    )


async def until(conn, kind: str) -> dict:
    while True:
        raw = await asyncio.wait_for(conn.read_message(), 60)
        assert raw is not None, "the server closed the socket"
        message = json.loads(raw)
        if message["type"] == kind:
            return message


async def first_output(server: Server, user: str) -> tuple[float, float]:
    """(run sent → first output, started → first output) in ms."""
    conn = await connect(server, user)
    try:
        sent = time.perf_counter()
        conn.write_message(json.dumps({"type": "run", "code": FIRST_OUTPUT}))
        await until(conn, "started")
        started = time.perf_counter()
        first = await until(conn, "output")
        arrived = time.perf_counter()
        assert first["data"].startswith("a"), first
        conn.write_message(json.dumps({"type": "cancel"}))  # no need to wait out the sleep
        await until(conn, "result")
        return (arrived - sent) * 1000, (arrived - started) * 1000
    finally:
        conn.close()


async def stop_to_result(server: Server, user: str) -> float:
    conn = await connect(server, user)
    try:
        conn.write_message(json.dumps({"type": "run", "code": BUSY}))
        await until(conn, "output")
        asked = time.perf_counter()
        conn.write_message(json.dumps({"type": "cancel"}))
        result = await until(conn, "result")
        done = time.perf_counter()
        assert result["status"] == "cancelled", result
        return (done - asked) * 1000
    finally:
        conn.close()


def wait_for_pool(server: Server, size: int) -> None:
    deadline = time.monotonic() + 20
    while server.pool_idle() < size and time.monotonic() < deadline:
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    parser.add_argument("--pool-size", type=int, default=8)
    args = parser.parse_args()
    n = 10 if args.quick else 30
    image = SandboxConfig.from_env().image
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in open("/proc/cpuinfo")
            if line.startswith("model name")
        ),
        "?",
    )
    engine = subprocess.run(
        ["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True
    ).stdout.strip()
    print(
        f"machine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, "
        f"Docker engine {engine}, image {image}, load {os.getloadavg()[0]:.1f}"
    )
    print(f"server: pool_size={args.pool_size}\n")

    rows: dict[str, list] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        ten_test_exercise(workdir / "exercises")
        server = Server(workdir, args.pool_size, 6)
        try:
            wait_for_pool(server, args.pool_size)
            rows["docker run (cold, CLI), baseline"] = [
                docker_run_hello(image) for _ in range(max(5, n // 3))
            ]
            warm = []
            for i in range(n):
                wait_for_pool(server, args.pool_size)
                ms, status, answer = server.timed(
                    "POST",
                    "execute",
                    {"code": "print('hello')", "use_cache": False},
                    user=f"rest{i}",
                )
                assert status == 200 and answer["stdout"] == "hello\n", answer
                warm.append(ms)
            rows["POST execute, warm pool"] = warm
            sent_to_first, started_to_first, stops = [], [], []
            for i in range(n):
                wait_for_pool(server, args.pool_size)
                total, after_start = asyncio.run(first_output(server, f"ws{i}"))
                sent_to_first.append(total)
                started_to_first.append(after_start)
            rows["WS first output, run sent → output"] = sent_to_first
            rows["WS first output, started → output"] = started_to_first
            for i in range(n):
                wait_for_pool(server, args.pool_size)
                stops.append(asyncio.run(stop_to_result(server, f"stop{i}")))
            rows["WS Stop → result (cancelled)"] = stops
        finally:
            server.stop()

    base = statistics.median(rows["docker run (cold, CLI), baseline"])
    for name, values in rows.items():
        ratio = base / statistics.median(values)
        print(f"{name:38} {summary(values)}   {ratio:6.1f}x faster than docker run")


if __name__ == "__main__":
    main()
