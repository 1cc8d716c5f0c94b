"""Benchmark of the gradebook, on SQLite and on PostgreSQL. A measurement, not a test: it prints
medians and the differences against a baseline measured in the same process.

1. What recording adds to ``POST exercises/{id}/submit``: the same submissions through the same
   tornado routes over HTTP, alternately to an app with the gradebook and to one without it. The
   sandbox answers a canned result at once, so the difference is the recording alone (grading
   itself is measured by grading_bench.py and rest_bench.py, and costs the same either way).
2. ``GET gradebook`` (JSON) for 300 students x 20 exercises x 10 attempts: 60,000 submissions,
   seeded here.

    .venv/bin/python benchmarks/gradebook_bench.py [--quick] [--pg-url URL]

Without ``--pg-url`` it starts a throwaway PostgreSQL cluster (Debian's, as the tests do; root
runs it as the postgres user) and removes it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import tornado.web  # noqa: E402
from tornado.httpclient import AsyncHTTPClient  # noqa: E402

from jupyter_exec_ext.gradebook.recorder import GradebookRecorder  # noqa: E402
from jupyter_exec_ext.gradebook.rules import CourseRules  # noqa: E402
from jupyter_exec_ext.gradebook.store import GradebookStore, sqlite_url, submissions  # noqa: E402
from jupyter_exec_ext.grading import ExerciseRegistry, Grader  # noqa: E402
from jupyter_exec_ext.sandbox import Limits  # noqa: E402
from jupyter_exec_ext.sandbox.models import (  # noqa: E402
    CheckOutcome,
    CheckResult,
    ExecutionResult,
    Status,
)
from jupyter_exec_ext.server.context import CONTEXT_KEY, ExecContext  # noqa: E402
from jupyter_exec_ext.server.handlers import ROUTES, ExecRouteBase  # noqa: E402
from jupyter_exec_ext.server.payloads import RequestBounds  # noqa: E402
from jupyter_exec_ext.server.scheduler import RunScheduler  # noqa: E402

STUDENTS, EXERCISES, ATTEMPTS = 300, 20, 10
SOLUTION = "def add(a, b):\n    return a + b\n"


class CannedSandbox:
    """Answers every grading at once: each test printed what it expects."""

    def __init__(self, outputs: list) -> None:
        self.outputs = outputs

    def run(self, request: Any) -> ExecutionResult:
        return ExecutionResult(
            status=Status.OK,
            duration_ms=1,
            checks=[
                CheckResult(outcome=CheckOutcome.COMPLETED, stdout=(o or "") + "\n")
                for o in self.outputs
            ],
        )


class _AllowAll:
    def is_authorized(self, *_: Any) -> bool:
        return True


class BenchBase(ExecRouteBase):
    """The caller is whoever ``X-Bench-User`` names; ``X-Bench-Instructor: 1`` makes an
    instructor (the benchmark measures the routes, not an authentication)."""

    authorizer = _AllowAll()

    def get_current_user(self) -> Any:
        return {"name": self.request.headers.get("X-Bench-User", "student")}

    @property
    def principal(self) -> str:
        return self.current_user["name"]

    @property
    def is_instructor(self) -> bool:
        return self.request.headers.get("X-Bench-Instructor") == "1"

    def get_login_url(self) -> str:
        raise tornado.web.HTTPError(403)


def notebook(folder: Path) -> Path:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook()
    nb.metadata["jupyter_exec"] = {
        "exercise_id": "add",
        "title": "Add",
        "tests": [
            {"name": f"t{i}", "test_code": f"print(add({i}, 1))", "expected_output": str(i + 1)}
            for i in range(5)
        ],
    }
    nb.cells = [new_code_cell(SOLUTION, metadata={"jupyter_exec": {"role": "solution"}})]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "add.ipynb"
    nbformat.write(nb, str(path))
    return path


def make_app(exercises: Path, recorder: Optional[GradebookRecorder]) -> tornado.web.Application:
    registry = ExerciseRegistry(exercises)
    exercise = registry.get("add")
    context = ExecContext(
        scheduler=RunScheduler(4, 1000),
        bounds=RequestBounds(
            max_code_bytes=65536,
            max_stdin_bytes=65536,
            default_limits=Limits(),
            max_limits=Limits(),
        ),
        registry=registry,
        grader=Grader(CannedSandbox([t.expected_output for t in exercise.tests])),
        rules=CourseRules(),
        gradebook=recorder,
    )
    # The extension's routes with the benchmark's authentication in place of jupyter_server's.
    routes = [
        ("/" + pattern, type("Bench" + handler.__name__, (handler.__bases__[0], BenchBase), {}))
        for pattern, handler in ROUTES
    ]
    return tornado.web.Application(routes, **{CONTEXT_KEY: context})


def seed(store: GradebookStore) -> float:
    """60,000 submissions: each student tries each exercise 10 times; seconds it took."""
    rng = random.Random(20261130)
    tests = json.dumps(
        [
            {
                "name": f"t{i}",
                "status": "passed",
                "points": 1.0,
                "max_points": 1.0,
                "hidden": i == 4,
                "message": "passed",
            }
            for i in range(5)
        ]
    )
    started = time.perf_counter()
    store.ensure_schema()
    now = time.time()
    with store.engine.begin() as connection:
        rows = []
        for s in range(STUDENTS):
            for e in range(EXERCISES):
                for a in range(ATTEMPTS):
                    rows.append(
                        {
                            "user_name": f"student{s:03d}",
                            "exercise_id": f"ex{e:02d}",
                            "exercise_version": "v1",
                            "submitted_at": now - 86400 + a * 60,
                            "status": "ok",
                            "score": float(rng.randint(0, 5)),
                            "max_score": 5.0,
                            "tests": tests,
                            "code": SOLUTION,
                            "stdout": "",
                            "stderr": "",
                            "message": "",
                            "duration_ms": rng.randint(20, 80),
                            "late": a == 9,
                        }
                    )
                if len(rows) >= 5000:
                    connection.execute(submissions.insert(), rows)
                    rows = []
        if rows:
            connection.execute(submissions.insert(), rows)
    # Rows written around record(): the gradebook's per-student rows are computed from them.
    store.rebuild_grades()
    if store.backend == "postgresql":
        with store.engine.begin() as connection:
            connection.exec_driver_sql("ANALYZE submissions")
            connection.exec_driver_sql("ANALYZE grades")
    return time.perf_counter() - started


async def time_submits(port_with: int, port_without: int, rounds: int) -> tuple[list, list]:
    client = AsyncHTTPClient()
    body = json.dumps({"code": SOLUTION})
    with_store, without = [], []
    for i in range(rounds):
        for port, bucket in ((port_with, with_store), (port_without, without))[
            :: 1 if i % 2 else -1
        ]:
            started = time.perf_counter()
            answer = await client.fetch(
                f"http://127.0.0.1:{port}/api/exec/v1/exercises/add/submit",
                method="POST",
                body=body,
                headers={"X-Bench-User": f"student{i % 50:03d}"},
            )
            bucket.append((time.perf_counter() - started) * 1000)
            assert json.loads(answer.body)["score"] == 5.0
    return with_store, without


async def time_gradebook(port: int, rounds: int) -> list:
    client = AsyncHTTPClient()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        answer = await client.fetch(
            f"http://127.0.0.1:{port}/api/exec/v1/gradebook",
            headers={"X-Bench-User": "teacher", "X-Bench-Instructor": "1"},
            request_timeout=120,
        )
        times.append((time.perf_counter() - started) * 1000)
    book = json.loads(answer.body)
    seeded = [r for r in book["rows"] if r["exercise_id"] != "add"]  # not the timed submits'
    assert len(seeded) == STUDENTS * EXERCISES and all(r["attempts"] == ATTEMPTS for r in seeded)
    return times


def listen(app: tornado.web.Application) -> int:
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    app.listen(port, "127.0.0.1")
    return port


async def bench(name: str, url: str, exercises: Path, rounds: int, gb_rounds: int) -> dict:
    store = GradebookStore(url)
    recorder = GradebookRecorder(store)
    port_with = listen(make_app(exercises, recorder))
    port_without = listen(make_app(exercises, None))
    await time_submits(port_with, port_without, 20)  # warm-up: connections, caches, JIT of SQL
    with_store, without = await time_submits(port_with, port_without, rounds)
    added = statistics.median(with_store) - statistics.median(without)
    print(
        f"{name:10s} submit p50 with the gradebook {statistics.median(with_store):6.2f} ms, "
        f"without {statistics.median(without):6.2f} ms: recording adds {added:5.2f} ms "
        f"(n={rounds} each)"
    )
    seconds = await asyncio.get_running_loop().run_in_executor(None, seed, store)
    print(f"{name:10s} seeded {STUDENTS * EXERCISES * ATTEMPTS:,} submissions in {seconds:.1f} s")
    times = await time_gradebook(port_with, gb_rounds)
    print(
        f"{name:10s} GET gradebook ({STUDENTS} x {EXERCISES} rows from "
        f"{STUDENTS * EXERCISES * ATTEMPTS:,} submissions): p50 {statistics.median(times):6.1f} ms,"
        f" min {min(times):6.1f} ms (n={gb_rounds})"
    )
    await asyncio.get_running_loop().run_in_executor(None, recorder.close)
    return {"added_ms": added, "gradebook_ms": statistics.median(times)}


def start_cluster() -> Any:
    from tests.conftest import PostgresServer, postgres_bin

    bindir = postgres_bin()
    if bindir is None:
        sys.exit("PostgreSQL is not installed (Debian package postgresql), or pass --pg-url")
    server = PostgresServer(bindir)
    server.init()
    server.start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--pg-url", help="an empty PostgreSQL database to use")
    args = parser.parse_args()
    rounds, gb_rounds = (100, 5) if args.quick else (400, 15)
    cluster = None
    with tempfile.TemporaryDirectory(prefix="gradebook-bench-") as tmp:
        exercises = Path(tmp) / "exercises"
        notebook(exercises)
        results = {
            "sqlite": asyncio.run(
                bench("sqlite", sqlite_url(Path(tmp) / "g.sqlite"), exercises, rounds, gb_rounds)
            )
        }
        try:
            if args.pg_url:
                url = args.pg_url
            else:
                cluster = start_cluster()
                url = cluster.new_database()
            results["postgresql"] = asyncio.run(
                bench("postgresql", url, exercises, rounds, gb_rounds)
            )
        finally:
            if cluster is not None:
                cluster.remove()
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPU(s)")
    print(
        "\n| database | recording adds to submit (p50) | GET gradebook, 60,000 submissions (p50) |"
    )
    print("| --- | --- | --- |")
    for name, r in results.items():
        print(f"| {name} | {r['added_ms']:.2f} ms | {r['gradebook_ms']:.0f} ms |")


if __name__ == "__main__":
    main()
