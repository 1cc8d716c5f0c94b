"""runc and gVisor (runsc) side by side, through the sandbox itself (no REST): a cold run (a new
container), a warm run (a pooled container), a reuse run (the same user's container, reset), and
the throughput of cold runs, each next to the baseline measured in the same process (a cold
hardened ``docker run`` of hello under runc). A measurement, not a test: it prints medians and
ratios.

    .venv/bin/python benchmarks/runtime_bench.py [--quick] [--runtimes runc,runsc]

Needs what the test command provisions, and runsc registered with the engine
(``JUPYTER_EXEC_EXT_RUNTIME=runsc bash scripts/provision.sh``). Every container it makes carries
the owner label ``bench-<pid>`` and is gone at the end.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.rest_bench import OWNER, docker_run_hello, pct  # noqa: E402
from jupyter_exec_ext.sandbox import (  # noqa: E402
    DockerSandbox,
    ExecutionRequest,
    Limits,
    SandboxConfig,
    Status,
)

HELLO = "print('hello')"


def timed(box: DockerSandbox, request: ExecutionRequest) -> float:
    started = time.perf_counter()
    result = box.run(request)
    took = (time.perf_counter() - started) * 1000
    if result.status is not Status.OK or result.stdout != "hello\n":
        raise SystemExit(f"a run answered {result.status}: {result.message} {result.stderr[-300:]}")
    return took


def line(name: str, values: list[float], baseline: float) -> str:
    p50 = statistics.median(values)
    return (
        f"  {name:<34} p50 {p50:8.1f} ms   p95 {pct(values, 0.95):8.1f} ms   "
        f"{baseline / p50:5.2f}x the cold docker run   n={len(values)}"
    )


def measure(runtime: str, image: str, samples: int, seconds: float, baseline: float) -> dict:
    config = SandboxConfig(image=image, owner=OWNER, runtime=runtime)
    figures: dict = {}
    # Cold: limits other than the pool's, no reuse key, so each run makes its container.
    cold_limits = Limits.from_mapping({"time_limit": 29})
    box = DockerSandbox(config)
    try:
        timed(box, ExecutionRequest(code=HELLO, limits=cold_limits))  # the image in the page cache
        figures["cold"] = [
            timed(box, ExecutionRequest(code=HELLO, limits=cold_limits)) for _ in range(samples)
        ]
        box.flush()

        box.start_pool(2)
        warm = []
        for _ in range(samples):
            deadline = time.monotonic() + 60
            while box.pool.status()["idle"] < 2:  # each run gets a container that waited
                if time.monotonic() > deadline:
                    raise SystemExit(f"{runtime}: the pool did not refill: {box.pool.status()}")
                time.sleep(0.01)
            warm.append(timed(box, ExecutionRequest(code=HELLO)))
        figures["warm"] = warm

        reuse = []
        timed(box, ExecutionRequest(code=HELLO, reuse_key="alice"))
        for _ in range(samples):
            deadline = time.monotonic() + 60
            while box.reuse.status()["kept"] < 1:  # the reset is done: the next run is served
                if time.monotonic() > deadline:
                    raise SystemExit(f"{runtime}: the container was not kept: {box.reuse.status()}")
                time.sleep(0.005)
            reuse.append(timed(box, ExecutionRequest(code=HELLO, reuse_key="alice")))
        figures["reuse"] = reuse
    finally:
        box.close()

    # Throughput of cold runs: 2 workers (the cores), as many as finish in ``seconds``.
    box = DockerSandbox(config)
    try:
        end = time.monotonic() + seconds
        done = [0, 0]

        def worker(index: int) -> None:
            while time.monotonic() < end:
                timed(box, ExecutionRequest(code=HELLO, limits=cold_limits))
                done[index] += 1

        started = time.monotonic()
        with ThreadPoolExecutor(2) as workers:
            list(workers.map(worker, range(2)))
        figures["throughput"] = sum(done) / (time.monotonic() - started)
    finally:
        box.close()
    print(f"{runtime}:")
    for name, label in (
        ("cold", "cold run (a new container)"),
        ("warm", "warm run (pooled container)"),
        ("reuse", "the same user again (reset)"),
    ):
        print(line(label, figures[name], baseline))
    print(f"  {'cold runs per second, 2 workers':<34} {figures['throughput']:8.2f} runs/s")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer samples, 10 s throughput phases"
    )
    parser.add_argument("--runtimes", default="runc,runsc")
    args = parser.parse_args()
    samples, seconds = (10, 10.0) if args.quick else (30, 30.0)
    image = SandboxConfig.from_env(owner=OWNER).image
    print(
        f"{platform.node()}: {os.cpu_count()} cores, image {image}, {time.strftime('%Y-%m-%d %H:%M')}"
    )
    docker_run_hello(image)
    baseline_runs = [docker_run_hello(image) for _ in range(samples)]
    baseline = statistics.median(baseline_runs)
    print(
        f"baseline: cold hardened `docker run` (runc, CLI)  p50 {baseline:8.1f} ms   "
        f"p95 {pct(baseline_runs, 0.95):8.1f} ms"
    )
    results = {
        runtime: measure(runtime, image, samples, seconds, baseline)
        for runtime in args.runtimes.split(",")
    }
    if {"runc", "runsc"} <= set(results):
        print("runsc / runc (p50):")
        for name in ("cold", "warm", "reuse"):
            ratio = statistics.median(results["runsc"][name]) / statistics.median(
                results["runc"][name]
            )
            print(f"  {name:<6} {ratio:5.2f}x")
        print(
            f"  throughput {results['runsc']['throughput'] / results['runc']['throughput']:5.2f}x"
        )


if __name__ == "__main__":
    main()
