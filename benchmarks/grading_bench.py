"""Benchmark of grading through the REST API against the real engine: how a graded submission's
latency grows with the number of tests in the exercise (N = 1, 10, 50, 100), on a warm pool, next
to a baseline measured in the same run (a cold hardened ``docker run``). A measurement, not a
test: it prints p50, p95, the cost of one more test and ratios, and it counts every submission
that did not score full marks as an error (their latency is left out of the figures).

    .venv/bin/python benchmarks/grading_bench.py [--quick] [--repeat 15] [--sizes 1,10,50,100]
                                                 [--pool-size 4] [--json FILE]

The image is ``DOCKER_EXECUTOR_IMAGE`` (else the default tag), as for the server. Meant to be run
before and after a change to the grading path with the same arguments, on a tag nothing rebuilds
meanwhile, e.g. ``DOCKER_EXECUTOR_IMAGE=jupyter-exec-ext-executor:before-harness``.

It starts its own ``jupyter server`` with the extension (``rest_bench.Server``, so both
benchmarks measure the same server set-up), with synthetic exercise notebooks in a temporary
exercise directory; every container it makes carries the owner label ``bench-<pid>`` and is gone
afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

# The server, the baseline and the statistics are rest_bench's: one way to start the benchmark
# server, one baseline, one percentile, so the two benchmarks' figures compare.
from rest_bench import OWNER, REPO, Server, docker_run_hello, pct  # noqa: E402  (sets sys.path)

from jupyter_exec_ext.grading import METADATA_KEY, ExerciseTest, load_exercise  # noqa: E402
from jupyter_exec_ext.sandbox import SandboxConfig  # noqa: E402

SOLUTION = "def add(a, b):\n    return a + b\n"
STUDENT = "student0"  # one student submitting again and again, as rest_bench's submit row does


def exercise_id(n_tests: int) -> str:
    return f"bench-add-{n_tests}"


def synthetic_tests(n_tests: int) -> list[ExerciseTest]:
    """``n_tests`` tests of ``add``, output-style and assert-style alternating, every tenth one
    hidden (so N=10 has the shape of rest_bench's 10-test exercise: 9 visible, 1 hidden)."""
    tests = []
    for i in range(n_tests):
        hidden = i % 10 == 9
        if i % 2 == 0:
            tests.append(ExerciseTest(name=f"output {i}", test_code=f"print(add({i}, 1))",
                                      expected_output=str(i + 1), hidden=hidden))
        else:
            tests.append(ExerciseTest(name=f"assert {i}", test_code=f"assert add({i}, 3) == {i + 3}",
                                      hidden=hidden))
    return tests


def write_exercise(folder: Path, n_tests: int) -> Path:
    """An exercise notebook with ``n_tests`` tests, written with the package's own test model
    (``ExerciseTest.to_metadata``) and read back with its loader, so a notebook the schema or the
    loader refuses stops the benchmark here rather than as a 4xx during the measurement."""
    nb = new_notebook()
    nb.metadata[METADATA_KEY] = {
        "exercise_id": exercise_id(n_tests), "title": f"Add ({n_tests} tests)",
        "limits": {"time_limit": 10},
        "tests": [t.to_metadata() for t in synthetic_tests(n_tests)],
    }
    nb.cells = [new_markdown_cell("Write `add(a, b)`.", metadata={METADATA_KEY: {"role": "prompt"}}),
                new_code_cell("def add(a, b):\n    pass\n", metadata={METADATA_KEY: {"role": "starter"}}),
                new_code_cell(SOLUTION, metadata={METADATA_KEY: {"role": "solution"}})]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{exercise_id(n_tests)}.ipynb"
    nbformat.write(nb, str(path))
    exercise = load_exercise(path)
    assert len(exercise.tests) == n_tests and exercise.max_score == n_tests, exercise
    return path


def wrong_answer(n_tests: int, status: int, answer) -> str:
    """Why a submission of the correct solution did not score full marks ("" when it did)."""
    if status != 200 or not isinstance(answer, dict):
        return f"HTTP {status}: {json.dumps(answer)[:300]}"
    tests = answer.get("tests") or []
    failing = [t for t in tests if t.get("status") != "passed"]
    if (answer.get("status") == "ok" and answer.get("score") == answer.get("max_score") == n_tests
            and len(tests) == n_tests and not failing):
        return ""
    shown = "; ".join(f"{t.get('name')}: {t.get('status')} {t.get('message', '')[:80]!r}" for t in failing[:3])
    return (f"status {answer.get('status')}, score {answer.get('score')}/{answer.get('max_score')}, "
            f"{len(tests)} test results, {len(failing)} not passed{': ' + shown if shown else ''}")


def wait_pool(server: Server, size: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while server.pool_idle() < size and time.monotonic() < deadline:
        time.sleep(0.05)


def loadavg() -> list:
    return [float(v) for v in open("/proc/loadavg").read().split()[:3]]


def git_commit() -> str:
    return subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip() or "?"


def image_id(image: str) -> str:
    out = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", image],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"image {image} is not on the engine: {out.stderr.strip()}")
    return out.stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 submissions per size instead of 15")
    parser.add_argument("--repeat", "-k", type=int, help="timed submissions per size (default 15, --quick 5)")
    parser.add_argument("--sizes", default="1,10,50,100", help="numbers of tests, comma-separated")
    parser.add_argument("--pool-size", type=int, default=4,
                        help="the server's warm pool; every submission waits for it to be full")
    parser.add_argument("--concurrent", type=int, default=2, help="the server's max_concurrent_runs")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also save the results (raw samples included)")
    args = parser.parse_args()
    repeat = args.repeat or (5 if args.quick else 15)
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    if repeat < 1 or not sizes or sizes[0] < 1:
        parser.error("--repeat and every size must be at least 1")
    image = SandboxConfig.from_env().image
    image_sha = image_id(image)

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    engine = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True,
                            text=True).stdout.strip()
    load_start = loadavg()
    print(f"machine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, "
          f"Docker engine {engine}, load {' '.join(map(str, load_start))}")
    print(f"image {image} ({image_sha[:19]}), commit {git_commit()}")
    print(f"server: pool_size={args.pool_size}, max_concurrent_runs={args.concurrent}; sizes {sizes}, "
          f"{repeat} timed submissions each (sequential, one warm-up each, sizes interleaved)\n")

    latency: dict = {n: [] for n in sizes}
    # The answer's duration_ms: on the runner of 2026-11 the student's code up to the tests, tests
    # not included. Kept to see where a change moves the time; its meaning is the runner's.
    graded_ms: dict = {n: [] for n in sizes}
    errors: dict = {n: [] for n in sizes}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for n in sizes:
            write_exercise(workdir / "exercises", n)
        server = Server(workdir, args.pool_size, args.concurrent)
        try:
            served = server.call("GET", "docker/status")[1]["docker"]
            if served.get("image") != image or served.get("image_id") not in (None, image_sha):
                raise SystemExit(f"the server runs image {served.get('image')} ({served.get('image_id')}), "
                                 f"not {image} ({image_sha})")
            wait_pool(server, args.pool_size, 120)
            # Baseline: a cold hardened docker run, sequential, with the pool full and idle.
            baseline = [docker_run_hello(image) for _ in range(max(5, repeat // 3))]

            def submit(n: int, timed: bool) -> None:
                wait_pool(server, args.pool_size, 30)  # each submission takes a container that ran nothing
                ms, status, answer = server.timed("POST", f"exercises/{exercise_id(n)}/submit",
                                                  {"code": SOLUTION}, user=STUDENT)
                why = wrong_answer(n, status, answer)
                if why:
                    errors[n].append(why)
                    print(f"  WRONG SCORE, N={n}: {why}")
                elif timed:
                    latency[n].append(ms)
                    graded_ms[n].append(float(answer.get("duration_ms") or 0))

            # Rounds over the sizes rather than one size after the other: a shared machine's load
            # changes over minutes, and should not fall on one size only.
            for n in sizes:
                submit(n, timed=False)  # warm-up: the registry loads the notebook, the server's code paths
            for _ in range(repeat):
                for n in sizes:
                    submit(n, timed=True)
        finally:
            server.stop()
            left = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=jupyter-exec-ext.owner={OWNER}"],
                                  capture_output=True, text=True).stdout.split()
            if left:
                subprocess.run(["docker", "rm", "-f", *left], stdout=subprocess.DEVNULL)

    load_end = loadavg()
    base = statistics.median(baseline)
    first = sizes[0]
    p50 = {n: statistics.median(v) for n, v in latency.items() if v}
    p95 = {n: pct(v, 0.95) for n, v in latency.items() if v}
    print(f"cold docker run (CLI), the baseline: p50 {base:7.1f} ms   p95 {pct(baseline, 0.95):7.1f} ms   "
          f"n={len(baseline)}\n")
    print(f"{'REST submit, warm pool':24} {'p50':>9} {'p95':>9} {'duration_ms':>11} {'n':>4} {'wrong':>6}"
          f" {'vs docker run':>14} {f'vs N={first}':>8}")
    for n in sizes:
        if n not in p50:
            print(f"{f'N={n} tests':24} {'-':>9} {'-':>9} {'-':>11} {0:4d} {len(errors[n]):6d}")
            continue
        vs_first = f"{p50[n] / p50[first]:7.2f}x" if first in p50 else "-"
        print(f"{f'N={n} tests':24} {p50[n]:6.1f} ms {p95[n]:6.1f} ms {statistics.median(graded_ms[n]):8.1f} ms "
              f"{len(latency[n]):4d} {len(errors[n]):6d} {p50[n] / base:13.2f}x {vs_first:>8}")
    lo, hi = (10, 100) if {10, 100} <= set(p50) else (min(p50, default=0), max(p50, default=0))
    slope = (p50[hi] - p50[lo]) / (hi - lo) if hi > lo else None
    if slope is not None:
        print(f"\nper-test cost (p50 slope N={lo} -> N={hi}): {slope:.2f} ms per test "
              f"({slope / base * 100:.1f}% of a cold docker run)")
    print("columns: p50/p95 of the client's round trip (the figures to compare); duration_ms: p50 of the "
          "answer's duration_ms field (what the runner reports, currently the student's code before the tests); "
          "wrong: submissions without full marks (not in the figures); vs docker run: p50 / the baseline's p50 "
          "(above 1: slower than a cold docker run)")
    total_errors = sum(len(v) for v in errors.values())
    print(f"load average at start {' '.join(map(str, load_start))}, at end {' '.join(map(str, load_end))}")
    print(f"containers of this benchmark left on the engine: {len(left)}")
    if total_errors:
        print(f"\nERRORS: {total_errors} submissions of the correct solution did not score full marks; "
              f"their latency is not in the figures above")

    if args.json is not None:
        args.json.write_text(json.dumps({
            "benchmark": "grading_bench", "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "commit": git_commit(), "image": image, "image_id": image_sha, "engine": engine,
            "cores": os.cpu_count(), "load_start": load_start, "load_end": load_end,
            "pool_size": args.pool_size, "max_concurrent_runs": args.concurrent, "repeat": repeat,
            "baseline_ms": {"p50": base, "p95": pct(baseline, 0.95), "samples": baseline},
            "sizes": {str(n): {"p50_ms": p50.get(n), "p95_ms": p95.get(n),
                               "duration_ms_p50": statistics.median(graded_ms[n]) if graded_ms[n] else None,
                               "ratio_vs_docker_run": p50[n] / base if n in p50 else None,
                               "ratio_vs_first": p50[n] / p50[first] if n in p50 and first in p50 else None,
                               "samples_ms": latency[n], "duration_ms": graded_ms[n], "errors": errors[n]}
                      for n in sizes},
            "per_test_ms": slope, "slope_between": [lo, hi], "errors": total_errors,
        }, indent=2) + "\n")
        print(f"results saved to {args.json}")
    return 1 if total_errors else 0


if __name__ == "__main__":
    sys.exit(main())
