"""Benchmark of grading through the REST API against the real engine: how a graded submission's
latency grows with the number of tests in the exercise (N = 1, 10, 50, 100), on a warm pool, next
to a baseline measured in the same run (a cold hardened ``docker run``). A measurement, not a
test: it prints p50, p95, the cost of one more test (the slope of the p50s, and the median over
rounds of (t_N - t_1) / (N - 1)) and ratios, and it counts every submission
that did not score full marks as an error (their latency is left out of the figures).

    .venv/bin/python benchmarks/grading_bench.py [--quick] [--repeat 15] [--sizes 1,10,50,100]
                                                 [--pool-size 4] [--json FILE]
    .venv/bin/python benchmarks/grading_bench.py --direct [--images TAG_A,TAG_B] [--sizes 1,10,50,100]

With ``--direct`` it measures the cost of a submission's tests inside the container, without the
server: ``DockerSandbox.run`` on a warm (pooled) container, the wall time, the container's own CPU
time (its cgroup's ``cpuacct.usage`` before and after the job) and the time the kernel held it back
for its CPU quota (``cpu.stat``), and the cost of each extra test: for every round, (x_N - x_1) /
(N - 1), then the median over rounds. ``--images`` measures several executor images in alternation
in the same process (each with its ratio to the first), so a change to the image is compared
against a baseline measured under the same load. It also times the host's frame reader on
synthetic check frames (what each extra test costs the server). The cold ``docker run`` baseline is
measured in the same process in both modes.

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
from typing import Optional

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from jupyter_exec_ext.grading import METADATA_KEY, ExerciseTest, load_exercise  # noqa: E402
from jupyter_exec_ext.sandbox import SandboxConfig  # noqa: E402

# The server, the baseline and the statistics are rest_bench's: one way to start the benchmark
# server, one baseline, one percentile, so the two benchmarks' figures compare.
from rest_bench import OWNER, REPO, Server, docker_run_hello, pct  # noqa: E402  (sets sys.path)

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
            tests.append(
                ExerciseTest(
                    name=f"output {i}",
                    test_code=f"print(add({i}, 1))",
                    expected_output=str(i + 1),
                    hidden=hidden,
                )
            )
        else:
            tests.append(
                ExerciseTest(
                    name=f"assert {i}", test_code=f"assert add({i}, 3) == {i + 3}", hidden=hidden
                )
            )
    return tests


def write_exercise(folder: Path, n_tests: int) -> Path:
    """An exercise notebook with ``n_tests`` tests, written with the package's own test model
    (``ExerciseTest.to_metadata``) and read back with its loader, so a notebook the schema or the
    loader refuses stops the benchmark here rather than as a 4xx during the measurement."""
    nb = new_notebook()
    nb.metadata[METADATA_KEY] = {
        "exercise_id": exercise_id(n_tests),
        "title": f"Add ({n_tests} tests)",
        "limits": {"time_limit": 10},
        "tests": [t.to_metadata() for t in synthetic_tests(n_tests)],
    }
    nb.cells = [
        new_markdown_cell("Write `add(a, b)`.", metadata={METADATA_KEY: {"role": "prompt"}}),
        new_code_cell("def add(a, b):\n    pass\n", metadata={METADATA_KEY: {"role": "starter"}}),
        new_code_cell(SOLUTION, metadata={METADATA_KEY: {"role": "solution"}}),
    ]
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
    if (
        answer.get("status") == "ok"
        and answer.get("score") == answer.get("max_score") == n_tests
        and len(tests) == n_tests
        and not failing
    ):
        return ""
    shown = "; ".join(
        f"{t.get('name')}: {t.get('status')} {t.get('message', '')[:80]!r}" for t in failing[:3]
    )
    return (
        f"status {answer.get('status')}, score {answer.get('score')}/{answer.get('max_score')}, "
        f"{len(tests)} test results, {len(failing)} not passed{': ' + shown if shown else ''}"
    )


def wait_pool(server: Server, size: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while server.pool_idle() < size and time.monotonic() < deadline:
        time.sleep(0.05)


def loadavg() -> list:
    return [float(v) for v in open("/proc/loadavg").read().split()[:3]]


def git_commit() -> str:
    return (
        subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        or "?"
    )


def image_id(image: str) -> str:
    out = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", image], capture_output=True, text=True
    )
    if out.returncode != 0:
        raise SystemExit(f"image {image} is not on the engine: {out.stderr.strip()}")
    return out.stdout.strip()


def cgroup_file(container_id: str, name: str) -> Optional[str]:
    """A file of the container's cgroup (v1, cgroupfs driver), or None where it is not found."""
    for controller in ("cpuacct", "cpu,cpuacct", "cpu"):
        path = Path("/sys/fs/cgroup") / controller / "docker" / container_id / name
        if path.exists():
            return path.read_text()
    return None


def container_cpu(container_id: str) -> tuple:
    """(CPU time in ms, throttled time in ms) the container used so far; None for what is unknown."""
    usage = cgroup_file(container_id, "cpuacct.usage")
    stat = cgroup_file(container_id, "cpu.stat") or ""
    throttled = next(
        (int(line.split()[1]) for line in stat.splitlines() if line.startswith("throttled_time ")),
        None,
    )
    return (int(usage) / 1e6 if usage else None, throttled / 1e6 if throttled is not None else None)


def shim_of(container_id: str) -> Optional[int]:
    """The pid of the container's containerd-shim (its relay of the attach stream), if visible."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline and b"containerd-shim" in cmdline[0] and container_id.encode() in cmdline:
            return int(entry)
    return None


def on_cpu_ms(pid: Optional[int]) -> Optional[float]:
    """A process's time on the CPU so far, all its threads (``/proc/<pid>/task/*/schedstat``, in
    ns: finer than the 10 ms ticks of ``stat``), in ms."""
    if pid is None:
        return None
    try:
        return (
            sum(
                int((task / "schedstat").read_text().split()[0])
                for task in Path(f"/proc/{pid}/task").iterdir()
            )
            / 1e6
        )
    except (OSError, ValueError, IndexError):
        return None


def per_extra_test(rounds: list, sizes: list, key: int) -> dict:
    """Median over rounds of (x_N - x_first) / (N - first): what one more test costs."""
    first = sizes[0]
    out = {}
    for n in sizes[1:]:
        slopes = [
            (r[n][key] - r[first][key]) / (n - first)
            for r in rounds
            if r.get(n) and r.get(first) and r[n][key] is not None and r[first][key] is not None
        ]
        out[n] = statistics.median(slopes) if slopes else None
    return out


def frame_reader_cost(counts=(10, 100, 1000), repeat: int = 20) -> dict:
    """Host side: microseconds per check frame to parse N check frames (as the runner sends them)
    with the sandbox's own frame reader; flat across N means O(1) per frame."""
    from jupyter_exec_ext.sandbox.protocol import Exchange, FrameReader

    nonce = "0" * 32
    out = {}
    for n in counts:
        frames = b"".join(
            (
                nonce
                + " "
                + json.dumps(
                    {
                        "type": "check",
                        "index": i,
                        "outcome": "completed",
                        "stdout": f"{i}\n",
                        "stderr": "",
                        "error": None,
                        "duration_ms": 3,
                        "message": "",
                    }
                )
                + "\n"
            ).encode()
            for i in range(n)
        )
        chunks = [frames[i : i + 65536] for i in range(0, len(frames), 65536)]
        samples = []
        for _ in range(repeat):
            exchange = Exchange()
            reader = FrameReader(nonce, exchange, 1 << 20, n)
            started = time.perf_counter()
            for chunk in chunks:
                reader.feed(chunk)
            samples.append((time.perf_counter() - started) * 1e6 / n)
            assert len(exchange.checks) == n and not exchange.protocol_error
        out[n] = statistics.median(samples)
    return out


#: Run inside the image: the CPU time of fork + exit of a process holding what the student zygote
#: holds (its modules, frozen by gc.freeze as the zygote does), parent and child, per fork. No
#: test's process can cost less: it is this, plus the work it does.
FORK_FLOOR = r"""
import gc, json, os, resource, sys
sys.path.insert(0, "/opt/jupyter-exec-ext")
import zygote  # noqa: F401  (the zygote's modules, as in the container)
gc.freeze()
def cpu(who):
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime, r.ru_minflt
samples = []
for _ in range(7):
    p0, c0 = cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN)
    for _ in range(100):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    p1, c1 = cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN)
    samples.append(((p1[0] - p0[0]) * 10, (c1[0] - c0[0]) * 10, (c1[1] - c0[1]) / 100))
samples.sort(key=lambda s: s[0] + s[1])
print(json.dumps(samples[len(samples) // 2]))
"""


def fork_floor(image: str) -> dict:
    """Median CPU ms of one fork + exit from the zygote's modules in ``image``, under the default
    CPU limit (0.5): parent, child, and the child's page faults."""
    out = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--network",
            "none",
            "--cpus",
            "0.5",
            "--label",
            f"jupyter-exec-ext.owner={OWNER}",
            "--entrypoint",
            "python3",
            image,
            "-I",
            "-B",
            "-c",
            FORK_FLOOR,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if out.returncode != 0:
        return {"error": out.stderr.strip()[-300:]}
    parent, child, faults = json.loads(out.stdout)
    return {
        "parent_ms": parent,
        "child_ms": child,
        "total_ms": parent + child,
        "child_faults": faults,
    }


def baseline_run(image: str, attempts: int = 3) -> float:
    """One cold ``docker run`` (rest_bench's), tried again if something outside ended it (another
    user of the engine removing containers): a lost sample, not a failed benchmark."""
    for _ in range(attempts):
        try:
            return docker_run_hello(image)
        except subprocess.CalledProcessError as e:
            print(f"  baseline docker run failed (exit {e.returncode}); again")
    raise SystemExit("the baseline docker run failed every time")


class _Handed:
    """Stands in for the warm pool: hands ``run`` the one container started for it."""

    def __init__(self, live):
        self.live = live

    def take(self, limits):
        live, self.live = self.live, None
        return live

    def status(self) -> dict:
        return {"size": 1, "idle": int(self.live is not None)}

    def drain(self) -> None:
        pass


def direct(args, sizes: list, repeat: int) -> int:
    """The ``--direct`` measurement (see the module's docstring)."""
    from jupyter_exec_ext.sandbox import Check, DockerSandbox, ExecutionRequest

    images = [
        i.strip() for i in (args.images or SandboxConfig.from_env().image).split(",") if i.strip()
    ]
    shas = {image: image_id(image) for image in images}
    load_start = loadavg()
    load_text = " ".join(map(str, load_start))
    print(
        f"machine: {os.cpu_count()} cores, {platform.system()} {platform.release()}, load {load_text}"
    )
    print(f"images: {', '.join(f'{i} ({shas[i][7:19]})' for i in images)}; commit {git_commit()}")
    print(
        f"sizes {sizes}, {repeat} rounds (one warm-up), images and sizes alternating; each job on a "
        f"container started {args.settle:g} s before it (as a pooled one), default limits\n"
    )
    checks = {n: tuple(Check(t.test_code, timeout_s=10) for t in synthetic_tests(n)) for n in sizes}
    expected = {n: [t.expected_output for t in synthetic_tests(n)] for n in sizes}
    # An owner label per image: each image's pooled container is found by its label alone.
    owners = {image: f"{OWNER}-{k}" for k, image in enumerate(images)}
    boxes = {
        image: DockerSandbox(SandboxConfig(image=image, owner=owners[image])) for image in images
    }
    rounds: dict = {image: [] for image in images}
    errors = 0
    try:
        baseline = [baseline_run(images[0]) for _ in range(max(5, repeat // 3))]
        for r in range(repeat + 1):
            for image, box in boxes.items():
                row = {}
                for n in sizes:
                    # A container started beforehand, as the warm pool's are, and nothing else
                    # going on in this process meanwhile: no pool refill, no removal of the last
                    # job's container (the pool would start one while the job runs).
                    box.flush()
                    live = box.engine.launch(box.config.default_limits)
                    time.sleep(args.settle)  # its runner, zygotes and harness start and wait
                    box.pool = _Handed(live)
                    shim = shim_of(live.container_id)
                    shim_before = on_cpu_ms(shim)
                    before = container_cpu(live.container_id)
                    started = time.perf_counter()
                    try:
                        result = box.run(ExecutionRequest(code=SOLUTION, checks=checks[n]))
                    finally:
                        box.pool = None
                    wall = (time.perf_counter() - started) * 1000
                    after = container_cpu(live.container_id)
                    shim_after = on_cpu_ms(shim)
                    outputs = [c.stdout.strip() for c in result.checks]
                    ok = (
                        result.status.value == "ok"
                        and len(result.checks) == n
                        and all(c.outcome.value == "completed" for c in result.checks)
                        and all(not e or o == e for o, e in zip(outputs, expected[n]))
                    )
                    if not ok:
                        errors += 1
                        print(
                            f"  WRONG, {image} N={n}: {result.status} {[c.outcome.value for c in result.checks][:5]}"
                        )
                        continue
                    cpu = after[0] - before[0] if None not in (after[0], before[0]) else None
                    throttled = after[1] - before[1] if None not in (after[1], before[1]) else None
                    relay = (
                        shim_after - shim_before if None not in (shim_before, shim_after) else None
                    )
                    row[n] = (wall, cpu, throttled, relay)
                if r:
                    rounds[image].append(row)
    finally:
        for box in boxes.values():
            box.close()
        left = []
        for owner in [OWNER, *owners.values()]:
            left += subprocess.run(
                ["docker", "ps", "-aq", "--filter", f"label=jupyter-exec-ext.owner={owner}"],
                capture_output=True,
                text=True,
            ).stdout.split()
        if left:
            subprocess.run(["docker", "rm", "-f", *left], stdout=subprocess.DEVNULL)
    base = statistics.median(baseline)
    print(f"cold docker run (CLI), the baseline: p50 {base:7.1f} ms   n={len(baseline)}\n")
    summary: dict = {}
    first_image = images[0]
    for image in images:
        summary[image] = {}
        print(image)
        print(
            f"  {'N tests':>8} {'wall p50':>10} {'CPU p50':>10} {'throttled':>10} {'shim':>10} {'n':>4}   "
            f"{'per extra test: wall':>20} {'CPU':>8}"
            + ("" if image == first_image else f"   {'wall vs ' + first_image.split(':')[-1]:>14}")
        )
        wall_slope = per_extra_test(rounds[image], sizes, 0)
        cpu_slope = per_extra_test(rounds[image], sizes, 1)
        for n in sizes:
            vals = [row[n] for row in rounds[image] if n in row]
            med = lambda k: (  # noqa: E731
                statistics.median([v[k] for v in vals if v[k] is not None])
                if any(v[k] is not None for v in vals)
                else None
            )  # noqa: E731
            w, c, t, sh = med(0), med(1), med(2), med(3)
            summary[image][n] = {
                "wall_ms": w,
                "cpu_ms": c,
                "throttled_ms": t,
                "shim_ms": sh,
                "n": len(vals),
                "wall_per_extra_test_ms": wall_slope.get(n),
                "cpu_per_extra_test_ms": cpu_slope.get(n),
            }
            fmt = lambda v, unit=" ms": f"{v:7.1f}{unit}" if v is not None else f"{'-':>10}"  # noqa: E731
            ratio = ""
            if image != first_image and summary[first_image].get(n, {}).get("wall_ms") and w:
                ratio = f"   {w / summary[first_image][n]['wall_ms']:13.2f}x"
            slope_w = wall_slope.get(n)
            slope_c = cpu_slope.get(n)
            print(
                f"  {n:8d} {fmt(w)} {fmt(c)} {fmt(t)} {fmt(sh)} {len(vals):4d}   "
                f"{(f'{slope_w:8.2f} ms' if slope_w is not None else '-'):>20} "
                f"{(f'{slope_c:5.2f} ms' if slope_c is not None else '-'):>8}{ratio}"
            )
        print()
    host = frame_reader_cost()
    print(
        "host frame reader, per check frame: "
        + ", ".join(f"{n} frames {us:.1f} us" for n, us in host.items())
    )
    floors = {image: fork_floor(image) for image in images}
    for image, floor in floors.items():
        if "error" in floor:
            print(f"fork floor, {image}: could not measure: {floor['error']}")
            continue
        print(
            f"fork floor, {image}: one fork + exit of a process with the zygote's modules costs "
            f"{floor['total_ms']:.2f} ms of CPU (parent {floor['parent_ms']:.2f}, child {floor['child_ms']:.2f}, "
            f"{floor['child_faults']:.0f} page faults in the child); at the default 0.5 CPU that is "
            f"{2 * floor['total_ms']:.2f} ms of wall time once the quota binds"
        )
    load_end = loadavg()
    print(
        "columns: wall = DockerSandbox.run on a warm container (the job's round trip); CPU = the container's "
        "cgroup CPU time for the job (runner, zygotes, harness, every test's process); throttled = time "
        "the kernel held the container back for its CPU quota; shim = the container's containerd-shim "
        "(which relays its frames to the engine) on the CPU during the job; per extra test = median over rounds of "
        "(x_N - x_first) / (N - first)"
    )
    print(
        f"load average at start {' '.join(map(str, load_start))}, at end {' '.join(map(str, load_end))}"
    )
    print(f"containers of this benchmark left on the engine: {len(left)}")
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "benchmark": "grading_bench --direct",
                    "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "commit": git_commit(),
                    "images": {i: shas[i] for i in images},
                    "cores": os.cpu_count(),
                    "load_start": load_start,
                    "load_end": load_end,
                    "repeat": repeat,
                    "sizes": sizes,
                    "baseline_ms": {"p50": base, "samples": baseline},
                    "summary": summary,
                    "rounds": {
                        i: [{str(n): v for n, v in row.items()} for row in rows]
                        for i, rows in rounds.items()
                    },
                    "host_frame_reader_us_per_frame": host,
                    "fork_floor": floors,
                    "errors": errors,
                },
                indent=2,
            )
            + "\n"
        )
        print(f"results saved to {args.json}")
    if errors:
        print(f"\nERRORS: {errors} jobs of the correct solution did not pass every test")
    return 1 if errors else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 submissions per size instead of 15")
    parser.add_argument(
        "--repeat", "-k", type=int, help="timed submissions per size (default 15, --quick 5)"
    )
    parser.add_argument("--sizes", default="1,10,50,100", help="numbers of tests, comma-separated")
    parser.add_argument(
        "--pool-size",
        type=int,
        default=4,
        help="the server's warm pool; every submission waits for it to be full",
    )
    parser.add_argument(
        "--concurrent", type=int, default=2, help="the server's max_concurrent_runs"
    )
    parser.add_argument(
        "--json", type=Path, metavar="FILE", help="also save the results (raw samples included)"
    )
    parser.add_argument(
        "--direct",
        action="store_true",
        help="measure inside the container (DockerSandbox on a warm container, no server)",
    )
    parser.add_argument(
        "--images", metavar="A,B", help="with --direct: executor images to compare, in alternation"
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=1.0,
        help="with --direct: seconds a started container waits before its job (default 1)",
    )
    args = parser.parse_args()
    repeat = args.repeat or (5 if args.quick else 15)
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    if repeat < 1 or not sizes or sizes[0] < 1:
        parser.error("--repeat and every size must be at least 1")
    if args.direct:
        return direct(args, sizes, repeat)
    image = SandboxConfig.from_env().image
    image_sha = image_id(image)

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
    load_start = loadavg()
    print(
        f"machine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, "
        f"Docker engine {engine}, load {' '.join(map(str, load_start))}"
    )
    print(f"image {image} ({image_sha[:19]}), commit {git_commit()}")
    print(
        f"server: pool_size={args.pool_size}, max_concurrent_runs={args.concurrent}; sizes {sizes}, "
        f"{repeat} timed submissions each (sequential, one warm-up each, sizes interleaved)\n"
    )

    latency: dict = {n: [] for n in sizes}
    # The answer's duration_ms: on the runner of 2026-11 the student's code up to the tests, tests
    # not included. Kept to see where a change moves the time; its meaning is the runner's.
    graded_ms: dict = {n: [] for n in sizes}
    errors: dict = {n: [] for n in sizes}
    rounds: list = []  # per round, N -> (ms,): the cost of one more test is taken within a round
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for n in sizes:
            write_exercise(workdir / "exercises", n)
        server = Server(workdir, args.pool_size, args.concurrent)
        try:
            served = server.call("GET", "docker/status")[1]["docker"]
            if served.get("image") != image or served.get("image_id") not in (None, image_sha):
                raise SystemExit(
                    f"the server runs image {served.get('image')} ({served.get('image_id')}), "
                    f"not {image} ({image_sha})"
                )
            wait_pool(server, args.pool_size, 120)
            # Baseline: a cold hardened docker run, sequential, with the pool full and idle.
            baseline = [docker_run_hello(image) for _ in range(max(5, repeat // 3))]

            def submit(n: int, timed: bool, row: Optional[dict] = None) -> None:
                wait_pool(
                    server, args.pool_size, 30
                )  # each submission takes a container that ran nothing
                ms, status, answer = server.timed(
                    "POST", f"exercises/{exercise_id(n)}/submit", {"code": SOLUTION}, user=STUDENT
                )
                why = wrong_answer(n, status, answer)
                if why:
                    errors[n].append(why)
                    print(f"  WRONG SCORE, N={n}: {why}")
                elif timed:
                    latency[n].append(ms)
                    graded_ms[n].append(float(answer.get("duration_ms") or 0))
                    if row is not None:
                        row[n] = (ms,)

            # Rounds over the sizes rather than one size after the other: a shared machine's load
            # changes over minutes, and should not fall on one size only.
            for n in sizes:
                submit(
                    n, timed=False
                )  # warm-up: the registry loads the notebook, the server's code paths
            for _ in range(repeat):
                row: dict = {}
                for n in sizes:
                    submit(n, timed=True, row=row)
                rounds.append(row)
        finally:
            server.stop()
            left = subprocess.run(
                ["docker", "ps", "-aq", "--filter", f"label=jupyter-exec-ext.owner={OWNER}"],
                capture_output=True,
                text=True,
            ).stdout.split()
            if left:
                subprocess.run(["docker", "rm", "-f", *left], stdout=subprocess.DEVNULL)

    load_end = loadavg()
    base = statistics.median(baseline)
    first = sizes[0]
    p50 = {n: statistics.median(v) for n, v in latency.items() if v}
    p95 = {n: pct(v, 0.95) for n, v in latency.items() if v}
    print(
        f"cold docker run (CLI), the baseline: p50 {base:7.1f} ms   p95 {pct(baseline, 0.95):7.1f} ms   "
        f"n={len(baseline)}\n"
    )
    print(
        f"{'REST submit, warm pool':24} {'p50':>9} {'p95':>9} {'duration_ms':>11} {'n':>4} {'wrong':>6}"
        f" {'vs docker run':>14} {f'vs N={first}':>8}"
    )
    for n in sizes:
        if n not in p50:
            print(f"{f'N={n} tests':24} {'-':>9} {'-':>9} {'-':>11} {0:4d} {len(errors[n]):6d}")
            continue
        vs_first = f"{p50[n] / p50[first]:7.2f}x" if first in p50 else "-"
        print(
            f"{f'N={n} tests':24} {p50[n]:6.1f} ms {p95[n]:6.1f} ms {statistics.median(graded_ms[n]):8.1f} ms "
            f"{len(latency[n]):4d} {len(errors[n]):6d} {p50[n] / base:13.2f}x {vs_first:>8}"
        )
    lo, hi = (10, 100) if {10, 100} <= set(p50) else (min(p50, default=0), max(p50, default=0))
    slope = (p50[hi] - p50[lo]) / (hi - lo) if hi > lo else None
    if slope is not None:
        print(
            f"\nper-test cost (p50 slope N={lo} -> N={hi}): {slope:.2f} ms per test "
            f"({slope / base * 100:.1f}% of a cold docker run)"
        )
    extra = per_extra_test(rounds, sizes, 0)
    if any(v is not None for v in extra.values()):
        print(
            f"one more test, median over rounds of (t_N - t_{first}) / (N - {first}): "
            + ", ".join(
                f"N={n} {v:.2f} ms ({v / base * 100:.1f}% of a cold docker run)"
                for n, v in extra.items()
                if v is not None
            )
        )
    print(
        "columns: p50/p95 of the client's round trip (the figures to compare); duration_ms: p50 of the "
        "answer's duration_ms field (what the runner reports, currently the student's code before the tests); "
        "wrong: submissions without full marks (not in the figures); vs docker run: p50 / the baseline's p50 "
        "(above 1: slower than a cold docker run)"
    )
    total_errors = sum(len(v) for v in errors.values())
    print(
        f"load average at start {' '.join(map(str, load_start))}, at end {' '.join(map(str, load_end))}"
    )
    print(f"containers of this benchmark left on the engine: {len(left)}")
    if total_errors:
        print(
            f"\nERRORS: {total_errors} submissions of the correct solution did not score full marks; "
            f"their latency is not in the figures above"
        )

    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "benchmark": "grading_bench",
                    "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "commit": git_commit(),
                    "image": image,
                    "image_id": image_sha,
                    "engine": engine,
                    "cores": os.cpu_count(),
                    "load_start": load_start,
                    "load_end": load_end,
                    "pool_size": args.pool_size,
                    "max_concurrent_runs": args.concurrent,
                    "repeat": repeat,
                    "baseline_ms": {"p50": base, "p95": pct(baseline, 0.95), "samples": baseline},
                    "sizes": {
                        str(n): {
                            "p50_ms": p50.get(n),
                            "p95_ms": p95.get(n),
                            "duration_ms_p50": statistics.median(graded_ms[n])
                            if graded_ms[n]
                            else None,
                            "ratio_vs_docker_run": p50[n] / base if n in p50 else None,
                            "ratio_vs_first": p50[n] / p50[first]
                            if n in p50 and first in p50
                            else None,
                            "samples_ms": latency[n],
                            "duration_ms": graded_ms[n],
                            "errors": errors[n],
                        }
                        for n in sizes
                    },
                    "per_test_ms": slope,
                    "slope_between": [lo, hi],
                    "per_extra_test_ms": {str(n): v for n, v in extra.items()},
                    "errors": total_errors,
                },
                indent=2,
            )
            + "\n"
        )
        print(f"results saved to {args.json}")
    return 1 if total_errors else 0


if __name__ == "__main__":
    sys.exit(main())
