"""Prometheus metrics of a server that runs code: executions by status and their latency,
submissions by exercise and status (counted as they happen), and the cache, container and pool
counters (read from the parts at scrape time, so the sandbox needs no knowledge of Prometheus).
"""

from __future__ import annotations

from typing import Any, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..sandbox import CachingSandbox, ExecutionResult

#: The exposition format's content type.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Seconds; runs are capped by time limits of at most a few minutes.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, float("inf"))


class _PartsCollector:
    """Reads the counters the sandbox, pool and cache keep. Never talks to Docker or Redis."""

    def __init__(self, sandbox: CachingSandbox) -> None:
        self.sandbox = sandbox

    def collect(self) -> Iterator[Any]:
        docker_sandbox = self.sandbox.sandbox
        cache = self.sandbox.cache_status()
        hits = CounterMetricFamily("exec_cache_hits", "Runs answered from the result cache")
        hits.add_metric([], cache["hits"])
        misses = CounterMetricFamily("exec_cache_misses", "Cache look-ups that found nothing")
        misses.add_metric([], cache["misses"])
        rejected = CounterMetricFamily(
            "exec_cache_rejected",
            "Cache entries ignored because they claim the cache's key and fail its check (forged)",
        )
        rejected.add_metric([], cache["rejected"])
        created = CounterMetricFamily("exec_containers_created", "Sandbox containers created")
        created.add_metric([], docker_sandbox.containers_created)
        removed = CounterMetricFamily("exec_containers_removed", "Sandbox containers removed")
        removed.add_metric([], docker_sandbox.containers_removed)
        pool = docker_sandbox.pool.status() if docker_sandbox.pool is not None else None
        size = GaugeMetricFamily("exec_pool_size", "Warm pool: configured size")
        size.add_metric([], pool["size"] if pool else 0)
        idle = GaugeMetricFamily(
            "exec_pool_idle", "Warm pool: started containers waiting for a run"
        )
        idle.add_metric([], pool["idle"] if pool else 0)
        reuse = docker_sandbox.reuse.status() if docker_sandbox.reuse is not None else None
        kept = GaugeMetricFamily(
            "exec_reuse_kept", "Containers kept, reset, for their users' next runs"
        )
        kept.add_metric([], reuse["kept"] if reuse else 0)
        served = CounterMetricFamily("exec_reuse_served", "Runs served by a user's kept container")
        served.add_metric([], reuse["served"] if reuse else 0)
        yield from (hits, misses, rejected, created, removed, size, idle, kept, served)


class ExecMetrics:
    """The metrics of one server, in a registry of its own (two servers in one process, as in
    the tests, never mix their counts)."""

    def __init__(self, sandbox: CachingSandbox) -> None:
        self.registry = CollectorRegistry()
        self.executions = Counter(
            "exec_executions", "Executions by result status", ["status"], registry=self.registry
        )
        self.latency = Histogram(
            "exec_execution_seconds",
            "Run time of executions not answered from the cache",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.submissions = Counter(
            "exec_submissions",
            "Graded submissions by exercise and status",
            ["exercise", "status"],
            registry=self.registry,
        )
        self.submissions_limited = Counter(
            "exec_submissions_rate_limited",
            "Submissions refused by the per-user, per-exercise submission limit (not graded)",
            ["exercise"],
            registry=self.registry,
        )
        self.registry.register(_PartsCollector(sandbox))

    def execution(self, result: ExecutionResult) -> None:
        self.executions.labels(status=result.status.value).inc()
        if not result.cached:
            self.latency.observe(result.duration_ms / 1000)

    def submission(self, exercise_id: str, status: Any) -> None:
        self.submissions.labels(exercise=exercise_id, status=getattr(status, "value", status)).inc()

    def submission_limited(self, exercise_id: str) -> None:
        self.submissions_limited.labels(exercise=exercise_id).inc()

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)
