"""Benchmark of the result cache: a cache hit next to an uncached run of the same code, in one process.

    .venv/bin/python benchmarks/cache_bench.py                      # embedded (memory) cache
    .venv/bin/python benchmarks/cache_bench.py --redis-url redis://127.0.0.1:6379/0

Prints p50, p95 and mean of each, and how many times faster a hit is. A measurement, not a test:
nothing here passes or fails on a number. Each uncached run starts a real container.

Every target answers ``execute(code, use_cache) -> cached``; the in-process target calls the cache
layer directly. A REST target (``--url``, POST ``api/exec/v1/execute`` with ``use_cache``, reading
``cached`` from the answer) plugs in as one more class next to ``InProcessTarget``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from typing import Callable, Optional

from jupyter_exec_ext.sandbox import CacheConfig, CachingSandbox, DockerSandbox, ExecutionRequest

DEFAULT_CODE = "print(sum(i * i for i in range(1000)))\n"


class InProcessTarget:
    """The cache layer called in this process, in front of the real Docker sandbox.

    Args:
        redis_url: Redis to use; None for the embedded in-process cache.
    """

    def __init__(self, redis_url: Optional[str]):
        self.cache = CachingSandbox(DockerSandbox(), CacheConfig.from_env(redis_url=redis_url))

    def describe(self) -> str:
        section = self.cache.cache_status()
        where = section["redis_url"] or "in-process LRU"
        return f"in-process CachingSandbox, backend {section['backend']} ({where})"

    def execute(self, code: str, use_cache: bool) -> bool:
        """Runs ``code`` through the layer and returns whether the answer came from the cache."""
        return self.cache.run(ExecutionRequest(code=code), use_cache=use_cache).cached

    def close(self) -> None:
        self.cache.close()


def percentile(samples: list[float], p: float) -> float:
    """Nearest-rank percentile (no interpolation, so p95 of 20 samples is a sample actually seen)."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def timed(call: Callable[[], bool], times: int, expect_cached: bool) -> list[float]:
    """Milliseconds per call; stops with a message if a call was (or was not) served from the cache."""
    samples = []
    for _ in range(times):
        start = time.perf_counter()
        cached = call()
        samples.append((time.perf_counter() - start) * 1000)
        if cached is not expect_cached:
            sys.exit(
                f"expected cached={expect_cached}, got cached={cached}: the numbers would mislead"
            )
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "n": len(samples),
        "p50_ms": statistics.median(samples),
        "p95_ms": percentile(samples, 95),
        "mean_ms": statistics.fmean(samples),
    }


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("DOCKER_EXECUTOR_REDIS_URL"),
        help="Redis URL (default: $DOCKER_EXECUTOR_REDIS_URL, else the in-process cache)",
    )
    parser.add_argument("--hits", type=int, default=500, help="cache hits to time (default 500)")
    parser.add_argument(
        "--uncached",
        type=int,
        default=10,
        help="uncached runs to time, one container each (default 10)",
    )
    parser.add_argument("--code", default=DEFAULT_CODE, help="the program (must be deterministic)")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args(argv)

    target = InProcessTarget(args.redis_url)
    try:
        target.execute(args.code, use_cache=True)  # fills the cache (or finds it filled)
        hits = summary(
            timed(lambda: target.execute(args.code, True), args.hits, expect_cached=True)
        )
        uncached = summary(
            timed(lambda: target.execute(args.code, False), args.uncached, expect_cached=False)
        )
        described = target.describe()
    finally:
        target.close()
    report = {
        "target": described,
        "cpus": os.cpu_count(),
        "hit": hits,
        "uncached": uncached,
        "p50_ratio": uncached["p50_ms"] / hits["p50_ms"],
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(report["target"])
    print(f"{'':10} {'n':>5} {'p50 ms':>10} {'p95 ms':>10} {'mean ms':>10}")
    for name in ("hit", "uncached"):
        row = report[name]
        print(
            f"{name:10} {row['n']:>5} {row['p50_ms']:>10.3f} {row['p95_ms']:>10.3f} {row['mean_ms']:>10.3f}"
        )
    print(f"a hit's median is {report['p50_ratio']:.0f}x faster than an uncached run's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
