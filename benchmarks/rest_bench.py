"""Benchmark of the REST API against the real engine: cold vs warm vs cached execute, graded
submissions, sustained throughput and a burst of submissions, each next to a baseline measured in
the same run (a cold hardened ``docker run``). A measurement, not a test: it prints medians, p95
and ratios.

    .venv/bin/python benchmarks/rest_bench.py [--quick] [--pool-size 48] [--clients 8] [--profile DIR] [--bursts]
    .venv/bin/python benchmarks/rest_bench.py --run-all [--rounds 20] [--pool-size 2] [--profile DIR]

``--bursts``: only the bursts of 100 submissions (the server's default settings, then
``--pool-size``), each from students who ran nothing before and from students who each ran once.

It starts its own ``jupyter server`` with the extension on a free loopback port and stops it at
the end; every container it makes carries the owner label ``bench-<pid>`` and is gone afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from jupyter_exec_ext.sandbox import SandboxConfig  # noqa: E402

OWNER = f"bench-{os.getpid()}"
#: Each client is a student of its own (benchmarks/bench_identity.py maps the token to a user).
TOKEN_PREFIX = "bench-token-"


def pct(values: list, q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summary(values: list) -> str:
    return f"p50 {statistics.median(values):8.1f} ms   p95 {pct(values, 0.95):8.1f} ms   n={len(values)}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ten_test_exercise(folder: Path) -> None:
    tests = [
        {
            "name": f"square of {i}",
            "test_code": f"print(square({i}))",
            "expected_output": str(i * i),
        }
        for i in range(9)
    ]
    tests.append({"name": "hidden", "test_code": "assert square(-3) == 9", "hidden": True})
    nb = new_notebook()
    nb.metadata["jupyter_exec"] = {
        "exercise_id": "bench-square",
        "title": "Square",
        "tests": tests,
        "limits": {"time_limit": 10},
    }
    nb.cells = [
        new_markdown_cell("square(x)", metadata={"jupyter_exec": {"role": "prompt"}}),
        new_code_cell("def square(x):\n    pass\n", metadata={"jupyter_exec": {"role": "starter"}}),
        new_code_cell(
            "def square(x):\n    return x * x\n", metadata={"jupyter_exec": {"role": "solution"}}
        ),
    ]
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(folder / "bench-square.ipynb"))


class Server:
    """A real ``jupyter server`` with the extension, started for the benchmark."""

    def __init__(self, workdir: Path, pool_size: Optional[int], concurrent: Optional[int]):
        self.port = free_port()
        self.api = f"http://127.0.0.1:{self.port}/api/exec/v1/"
        config = workdir / "config.json"
        settings = {
            "owner": OWNER,
            "pool_size": pool_size,
            "cache_enabled": True,
            "max_concurrent_runs": concurrent,
            "max_runs_per_user": 1000,
            "exercises_dir": str(workdir / "exercises"),
            "reap_interval": 0,
        }
        config.write_text(
            json.dumps(
                {
                    "ServerApp": {"jpserver_extensions": {"jupyter_exec_ext": True}},
                    # None: the server's default
                    "ExecExtApp": {k: v for k, v in settings.items() if v is not None},
                }
            )
        )
        env = dict(
            os.environ,
            JUPYTER_CONFIG_DIR=str(workdir / "cfg"),
            JUPYTER_RUNTIME_DIR=str(workdir / "rt"),
            JUPYTER_DATA_DIR=str(workdir / "data"),
            PYTHONPATH=os.pathsep.join(
                [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
            ),
        )
        self.log = open(workdir / "server.log", "wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_server",
                f"--config={config}",
                f"--port={self.port}",
                "--ip=127.0.0.1",
                "--no-browser",
                "--allow-root",
                "--ServerApp.port_retries=0",
                "--ServerApp.identity_provider_class=bench_identity.BenchIdentityProvider",
                f"--ServerApp.root_dir={workdir}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.call("GET", "health")[0] == 200:
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the server did not start; see " + str(workdir / "server.log"))
            time.sleep(0.2)

    def call(
        self, method: str, route: str, body=None, timeout: float = 120, user: str = "student0"
    ):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.api + route,
            data=data,
            method=method,
            headers={"Authorization": f"token {TOKEN_PREFIX}{user}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def timed(self, method: str, route: str, body=None, user: str = "student0"):
        started = time.perf_counter()
        status, answer = self.call(method, route, body, user=user)
        return (time.perf_counter() - started) * 1000, status, answer

    def pool_idle(self) -> int:
        pool = self.call("GET", "docker/status")[1]["docker"].get("pool") or {}
        return pool.get("idle", 0)

    def resetting(self) -> int:
        """Containers being reset after a run, before they wait for their user's next run."""
        reuse = self.call("GET", "docker/status")[1]["docker"].get("reuse") or {}
        return reuse.get("resetting", 0)

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def docker_run_hello(image: str) -> float:
    """One cold hardened ``docker run`` of hello: the baseline every ratio is against."""
    started = time.perf_counter()
    subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--network",
            "none",
            "--read-only",
            "--tmpfs",
            "/tmp:rw,noexec,nosuid,size=64m",
            "--user",
            "10001:10001",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--pids-limit",
            "50",
            "--memory",
            "256m",
            "--memory-swap",
            "256m",
            "--cpus",
            "0.5",
            "--label",
            f"jupyter-exec-ext.owner={OWNER}",
            "--label",
            "jupyter-exec-ext.managed=true",
            # Without an expiry label any reaper on the engine (another server's) may remove it mid-run.
            "--label",
            f"jupyter-exec-ext.expires-at={int(time.time()) + 600}",
            image,
            "python3",
            "-c",
            "print('hello')",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return (time.perf_counter() - started) * 1000


class CpuSplit:
    """Where the machine's CPU went during a phase, by process name, from /proc: the engine
    (dockerd, containerd, shims), the kernel's workers, the server, the containers' Pythons.
    Processes that ended during the phase (runc, a container's interpreter) are counted in
    "ended processes" as the part of /proc/stat's total no live process accounts for."""

    HZ = os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _per_process() -> dict:
        """pid -> (name, CPU ticks). Keyed by pid alone: a kernel worker renames itself with the
        work it is doing, and must not look like a new process that used all its ticks now."""
        out = {}
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                stat = open(f"/proc/{pid}/stat").read()
            except OSError:
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            out[pid] = (name, int(fields[11]) + int(fields[12]))
        return out

    @staticmethod
    def _busy() -> int:
        values = [int(v) for v in open("/proc/stat").readline().split()[1:]]
        return sum(values) - values[3] - values[4]  # all but idle and iowait

    def __enter__(self) -> CpuSplit:
        self.before, self.busy_before = self._per_process(), self._busy()
        return self

    def __exit__(self, *exc) -> None:
        after, busy = self._per_process(), self._busy()
        self.total = (busy - self.busy_before) / self.HZ
        by_name: dict = {}
        for pid, (name, ticks) in after.items():
            name = "kernel workers (kworker)" if name.startswith("kworker") else name
            used = ticks - self.before.get(pid, (name, 0))[1]
            by_name[name] = by_name.get(name, 0) + max(used, 0) / self.HZ
        self.by_name = by_name

    def report(self, runs: int, top: int = 8) -> str:
        lines = [f"  CPU busy {self.total:.1f} s = {1000 * self.total / runs:.0f} ms per run:"]
        for name, seconds in sorted(self.by_name.items(), key=lambda kv: -kv[1])[:top]:
            lines.append(f"    {name:36} {1000 * seconds / runs:6.1f} ms/run")
        rest = self.total - sum(self.by_name.values())
        lines.append(
            f"    {'ended processes (runc, containers)':36} {1000 * max(rest, 0) / runs:6.1f} ms/run"
        )
        return "\n".join(lines)


class Profile:
    """``py-spy record`` of the server process during a phase (if py-spy is installed), saved as
    collapsed stacks; prints the functions where the server's Python spent its CPU. The profiler
    itself costs CPU: figures of a phase that was profiled are not the ones to quote."""

    def __init__(self, pid: int, path: Optional[Path]):
        self.pid, self.path, self.proc = pid, path, None

    def __enter__(self) -> Profile:
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if self.path is not None and os.access(spy, os.X_OK):
            # --gil: only samples of a thread holding the GIL, i.e. where the server's Python
            # spends CPU (a thread waiting on a socket or a lock is not charged);
            # --nonblocking: the server is not paused to be sampled.
            self.proc = subprocess.Popen(
                [
                    spy,
                    "record",
                    "--pid",
                    str(self.pid),
                    "--rate",
                    "100",
                    "--gil",
                    "--nonblocking",
                    "--format",
                    "raw",
                    "--output",
                    str(self.path),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(0.5)  # attached before the phase starts
        elif self.path is not None:
            print("  (py-spy is not installed: `pip install py-spy` for a profile of the server)")
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=60)

    def report(self, top: int = 10) -> str:
        if self.proc is None or not self.path.exists():
            return ""
        leaf: dict = {}
        total = 0
        for line in self.path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            frames = stack.split(";")
            total += int(count)
            # Charge the sample to the innermost frame of our code or of a library we call.
            key = next((f for f in reversed(frames) if "jupyter_exec_ext" in f), frames[-1])
            leaf[key] = leaf.get(key, 0) + int(count)
        lines = [
            f"  server profile ({total} samples holding the GIL at 100 Hz = {total / 100:.1f} s of "
            f"the server's Python, saved to {self.path}); innermost frame of ours:"
        ]
        for frame, count in sorted(leaf.items(), key=lambda kv: -kv[1])[:top]:
            lines.append(f"    {100 * count / max(total, 1):5.1f}%  {frame[:110]}")
        return "\n".join(lines)


def throughput(work, clients: int, seconds: float) -> tuple[int, int, float]:
    """Runs ``work(client)`` from ``clients`` threads for ``seconds``; returns (done, errors, per second)."""
    stop = time.monotonic() + seconds
    done, errors = [0], [0]
    lock = threading.Lock()

    def client(index: int):
        while time.monotonic() < stop:
            ok = work(index)
            with lock:
                done[0] += 1
                errors[0] += 0 if ok else 1

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done[0], errors[0], done[0] / (time.monotonic() - started)


def run_all_phase(
    server: Server, image: str, rounds: int, profile_dir: Optional[Path] = None
) -> None:
    """One student's *Run All*: 10 distinct runs back to back (each sent as soon as the last one
    answered), repeated ``rounds`` times, beside the same student's runs at a human pace (the warm
    floor) and a cold hardened ``docker run`` measured here too. Prints medians and ratios."""

    def execute(code: str, user: str) -> float:
        ms, status, answer = server.timed(
            "POST", "execute", {"code": code, "use_cache": False}, user=user
        )
        assert status == 200 and answer["stdout"] == code[7:-2] + "\n", (status, answer)
        return ms

    def settle(seconds: float = 10.0) -> None:
        deadline = time.monotonic() + seconds
        while (
            server.resetting() > 0 or server.pool_idle() < server.pool_size
        ) and time.monotonic() < deadline:
            time.sleep(0.02)

    settle(120)
    baseline = [docker_run_hello(image) for _ in range(5)]
    execute("print('first run')", "pace")  # the student's own container from now on
    human = []
    for i in range(max(10, rounds)):
        time.sleep(0.3 + 0.7 * (i % 8) / 7)  # 0.3-1 s between runs: a person reading the answer
        human.append(execute(f"print('run {i}')", "pace"))
    settle()
    execute("print('first run')", "runall")
    per_run, whole = [], []
    with (
        CpuSplit() as cpu,
        Profile(server.proc.pid, profile_dir and profile_dir / "run_all.txt") as prof,
    ):
        for r in range(rounds):
            settle()  # each Run All starts from a server at rest, the pool full
            started = time.perf_counter()
            per_run += [execute(f"print('cell {cell} of run {r}')", "runall") for cell in range(10)]
            whole.append((time.perf_counter() - started) * 1000)
    base = statistics.median(baseline)
    print(f"{'Run All (one student)':38}")
    for name, values in (
        ("docker run (cold, CLI), baseline", baseline),
        ("warm execute, human pace (0.3-1 s)", human),
        ("Run All, each of 10 runs in a row", per_run),
    ):
        print(
            f"{name:38} {summary(values)}   {base / statistics.median(values):6.1f}x faster than docker run"
        )
    print(
        f"{'a whole Run All of 10 runs':38} {summary(whole)}   "
        f"{10 * base / statistics.median(whole):6.1f}x faster than 10 docker runs"
    )
    reuse = server.call("GET", "docker/status")[1]["docker"].get("reuse") or {}
    print(
        f"reuse: {reuse.get('served')} runs served by a kept container, {reuse.get('spares')} by a pooled "
        f"one while the user's was reset, {reuse.get('kept')} kept now"
    )
    print(cpu.report(len(per_run)))
    if prof.report():
        print(prof.report())


def run_all_main(args: argparse.Namespace) -> None:
    """``--run-all``: only the Run All phase, on a server of its own (its pool at the server's
    default size, 2, unless --pool-size says otherwise)."""
    if not any(a.startswith("--pool-size") for a in sys.argv[1:]):
        args.pool_size = 2
    image = SandboxConfig.from_env().image
    print(
        f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, image {image}, "
        f"runtime {SandboxConfig.from_env().runtime or 'default'}; server pool_size={args.pool_size}\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        server = Server(workdir, args.pool_size, args.concurrent)
        server.pool_size = args.pool_size
        try:
            if args.profile is not None:
                args.profile.mkdir(parents=True, exist_ok=True)
            run_all_phase(server, image, args.rounds, args.profile)
        finally:
            server.stop()
            left = subprocess.run(
                ["docker", "ps", "-aq", "--filter", f"label=jupyter-exec-ext.owner={OWNER}"],
                capture_output=True,
                text=True,
            ).stdout.split()
            if left:
                subprocess.run(["docker", "rm", "-f", *left], stdout=subprocess.DEVNULL)
            print(f"\ncontainers of this benchmark left on the engine: {len(left)}")


def our_container_count() -> int:
    return len(
        subprocess.run(
            ["docker", "ps", "-aq", "--filter", f"label=jupyter-exec-ext.owner={OWNER}"],
            capture_output=True,
            text=True,
        ).stdout.split()
    )


def bursts(
    label: str,
    pool_size: Optional[int],
    concurrent: Optional[int],
    image: str,
    base_ms: float,
    students: int = 100,
    profile_dir: Optional[Path] = None,
) -> None:
    """A class's burst of submissions against a server of its own (None: the server's default
    setting), twice: from students who ran nothing before (each submission then needs a
    container that ran nothing, pooled or new), and from students who each ran their code once
    just before, as a class does (each may be graded in their own container, reset since).
    Prints p50/p95 of each, next to ``base_ms`` (a cold ``docker run`` measured in this process),
    with the machine's CPU split and how many were graded in the student's own container."""
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        ten_test_exercise(workdir / "exercises")
        server = Server(workdir, pool_size, concurrent)
        try:
            docker = server.call("GET", "docker/status")[1]["docker"]
            size = (docker.get("pool") or {}).get("size", 0)
            print(
                f"\n{label}: pool_size={size}, max_concurrent_runs="
                f"{concurrent if concurrent is not None else 'default'}, reuse_kept="
                f"{(docker.get('reuse') or {}).get('max_kept', 0)}; load {os.getloadavg()[0]:.1f}"
            )

            def calm(kept: int = 0) -> None:
                # The pool full and every removal of the phase before done: the burst comes to an
                # idle server, as a class's does.
                deadline = time.monotonic() + 180
                while time.monotonic() < deadline and (
                    server.pool_idle()
                    < server.call("GET", "docker/status")[1]["docker"]["pool"]["size"]
                    or server.resetting() > 0
                    or our_container_count() > server.pool_idle() + kept
                ):
                    time.sleep(0.5)

            def burst(name: str, prefix: str) -> None:
                # The machine's load changes over minutes (other work on it): a baseline of its
                # own right before each burst, besides the run's.
                samples = []
                for _ in range(5):
                    try:
                        samples.append(docker_run_hello(image))
                    except (
                        subprocess.CalledProcessError
                    ) as e:  # killed by something else on the machine
                        print(f"  (a baseline docker run failed: exit {e.returncode}; left out)")
                near = statistics.median(samples) if samples else base_ms
                served_before = server.call("GET", "docker/status")[1]["docker"]["reuse"]["served"]

                def submit(i: int):
                    ms, status, answer = server.timed(
                        "POST",
                        "exercises/bench-square/submit",
                        {"code": "def square(x):\n    return x * x\n"},
                        user=f"{prefix}{i}",
                    )
                    ok = status == 200 and answer.get("score") == 10
                    if not ok:
                        why = answer.get("message") if isinstance(answer, dict) else answer
                        print(f"  a submission failed: {status} {str(why)[:300]}")
                    return ms, ok

                with (
                    CpuSplit() as cpu,
                    Profile(server.proc.pid, profile_dir and profile_dir / f"{prefix}.txt") as prof,
                    ThreadPoolExecutor(max_workers=students) as pool,
                ):
                    started = time.monotonic()
                    results = list(pool.map(submit, range(students)))
                    wall = time.monotonic() - started
                own = (
                    server.call("GET", "docker/status")[1]["docker"]["reuse"]["served"]
                    - served_before
                )
                times = [ms for ms, _ in results]
                print(
                    f"burst of {students} submissions, {name}: {sum(ok for _, ok in results)}/{students} graded "
                    f"correctly, {summary(times)}, all done in {wall:.1f} s; p95 = "
                    f"{pct(times, 0.95) / base_ms:.1f}x the run's cold docker run, "
                    f"{pct(times, 0.95) / near:.1f}x the {near:.0f} ms of one just before (load "
                    f"{os.getloadavg()[0]:.1f}); {own} graded in the student's own reset container"
                )
                print(cpu.report(students))
                if prof.report():
                    print(prof.report())

            calm()
            burst("nobody ran before", f"{label}fresh")
            # The class runs its code (each student once, a few at a time), then submits at once.
            # A container is kept reuse_idle (60 s by default) after its student's run: on a very
            # busy machine the class's runs can take longer than that, and their containers go.
            warm_started = time.monotonic()
            with ThreadPoolExecutor(max_workers=8) as pool:
                ran = list(
                    pool.map(
                        lambda i: (
                            server.call(
                                "POST",
                                "execute",
                                {
                                    "code": "def square(x):\n    return x * x\nprint(square(3))",
                                    "use_cache": False,
                                },
                                user=f"{label}ran{i}",
                            )[0]
                            == 200
                        ),
                        range(students),
                    )
                )
            assert all(ran), "a student's run failed"
            kept = server.call("GET", "docker/status")[1]["docker"]["reuse"]["max_kept"]
            calm(min(kept, students))
            print(
                f"  (the class's runs and the calm after them took {time.monotonic() - warm_started:.0f} s)"
            )
            burst("each ran their code just before", f"{label}ran")
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples, 15 s instead of 60 s")
    parser.add_argument(
        "--pool-size",
        type=int,
        default=48,
        help="the server's warm pool (each waiting container holds about 13 MB)",
    )
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument(
        "--concurrent", type=int, default=6, help="the server's max_concurrent_runs"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="also record the server with py-spy during the throughput and burst phases",
    )
    parser.add_argument(
        "--run-all",
        action="store_true",
        help="only the Run All phase: one student's 10 runs back to back, repeated",
    )
    parser.add_argument("--rounds", type=int, default=20, help="Run Alls in the --run-all phase")
    parser.add_argument(
        "--targets",
        metavar="URL,URL|start",
        help="scale-out: measure throughput and a burst of submissions through a "
        "balancer (one API URL) or spread over replicas (several), or 'start' "
        "two replicas on two engines behind HAProxy here (see scaleout())",
    )
    parser.add_argument(
        "--tokens",
        type=Path,
        metavar="FILE",
        help="with --targets URL: hub tokens, one per line, one per student",
    )
    parser.add_argument(
        "--bursts",
        action="store_true",
        help="only the bursts of 100 submissions: the server's default settings beside "
        "--pool-size (each from students who ran nothing before and who each ran once)",
    )
    args = parser.parse_args()
    if args.run_all:
        return run_all_main(args)
    if args.targets:
        scaleout(args)
        return
    n = 10 if args.quick else 30
    sustain = 15.0 if args.quick else 60.0
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
        f"Docker engine {engine}, image {image}"
    )
    print(
        f"server: pool_size={args.pool_size}, max_concurrent_runs={args.concurrent}; clients={args.clients}\n"
    )

    if args.bursts:
        try:
            base = [docker_run_hello(image) for _ in range(max(5, n // 3))]
            print(f"{'docker run (cold, CLI)':34} {summary(base)}   the baseline")
            if args.profile is not None:
                args.profile.mkdir(parents=True, exist_ok=True)
            bursts("default", None, None, image, statistics.median(base), profile_dir=args.profile)
            bursts(
                f"pool{args.pool_size}",
                args.pool_size,
                args.concurrent,
                image,
                statistics.median(base),
                profile_dir=args.profile,
            )
        finally:
            left = subprocess.run(
                ["docker", "ps", "-aq", "--filter", f"label=jupyter-exec-ext.owner={OWNER}"],
                capture_output=True,
                text=True,
            ).stdout.split()
            if left:
                subprocess.run(["docker", "rm", "-f", *left], stdout=subprocess.DEVNULL)
            print(f"\ncontainers of this benchmark left on the engine: {len(left)}")
        return

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        ten_test_exercise(workdir / "exercises")
        server = Server(workdir, args.pool_size, args.concurrent)
        try:
            # Every phase starts with the pool full: filling it loads the engine meanwhile.
            deadline = time.monotonic() + 120
            while server.pool_idle() < args.pool_size and time.monotonic() < deadline:
                time.sleep(0.2)
            # Baseline: a cold hardened docker run, sequential.
            rows["docker run (cold, CLI)"] = [
                docker_run_hello(image) for _ in range(max(5, n // 3))
            ]
            # Through REST, cold: limits other than the pool's profile always start a container.
            # Each by another student, so no container is theirs yet.
            rows["REST execute, cold"] = [
                server.timed(
                    "POST",
                    "execute",
                    {"code": "print('hello')", "memory_limit": "255m", "use_cache": False},
                    user=f"cold{i}",
                )[0]
                for i in range(max(5, n // 3))
            ]
            # Warm: default limits; between requests the pool is allowed to refill. Each run is
            # a different student's first, so each gets a pooled container that ran nothing.
            warm = []
            for i in range(n):
                deadline = time.monotonic() + 10
                while server.pool_idle() < args.pool_size and time.monotonic() < deadline:
                    time.sleep(0.05)
                ms, status, answer = server.timed(
                    "POST",
                    "execute",
                    {"code": "print('hello')", "use_cache": False},
                    user=f"first{i}",
                )
                assert status == 200 and answer["stdout"] == "hello\n", answer
                warm.append(ms)
            rows["REST execute, warm pool"] = warm
            # One student pressing Run again: their container, reset since their last run.
            again = []
            for i in range(n):
                deadline = time.monotonic() + 10
                while server.resetting() > 0 and time.monotonic() < deadline:
                    time.sleep(0.01)
                ms, status, answer = server.timed(
                    "POST",
                    "execute",
                    {"code": f"print('hello {i}')", "use_cache": False},
                    user="student0",
                )
                assert status == 200 and answer["stdout"] == f"hello {i}\n", answer
                again.append(ms)
            rows["REST execute, same student again"] = again
            # Run All: one student's ten cells back to back, none waiting for the previous reset.
            run_all, run_all_totals = [], []
            for r in range(max(3, n // 3)):
                deadline = time.monotonic() + 10
                while server.resetting() > 0 and time.monotonic() < deadline:
                    time.sleep(0.01)
                started = time.perf_counter()
                for cell in range(10):
                    ms, status, answer = server.timed(
                        "POST",
                        "execute",
                        {"code": f"print('cell {cell} of run {r}')", "use_cache": False},
                        user="runall",
                    )
                    assert status == 200 and answer["stdout"] == f"cell {cell} of run {r}\n", answer
                    run_all.append(ms)
                run_all_totals.append((time.perf_counter() - started) * 1000)
            rows["REST execute, Run All, 10 in a row"] = run_all
            server.call("POST", "execute", {"code": "print('cached hello')"})
            hits = []
            for _ in range(n * 5):
                ms, _, answer = server.timed("POST", "execute", {"code": "print('cached hello')"})
                assert answer["cached"] is True, answer
                hits.append(ms)
            rows["REST execute, cache hit"] = hits
            subs = []
            for _ in range(n):
                while server.pool_idle() < args.pool_size:
                    time.sleep(0.05)
                ms, status, answer = server.timed(
                    "POST",
                    "exercises/bench-square/submit",
                    {"code": "def square(x):\n    return x * x\n"},
                )
                assert status == 200 and answer["score"] == answer["max_score"] == 10, answer
                subs.append(ms)
            rows["REST submit, 10 tests, warm"] = subs

            print(f"{'latency':34} {'':>8}")
            base = statistics.median(rows["docker run (cold, CLI)"])
            for name, values in rows.items():
                ratio = base / statistics.median(values)
                print(f"{name:34} {summary(values)}   {ratio:7.1f}x faster than docker run")
            print(f"{'  a whole Run All of 10 runs':34} {summary(run_all_totals)}")

            # Saturation of cold docker runs vs sustained distinct executions through REST.
            counter = iter(range(10**9))
            lock = threading.Lock()

            def cold_work(_client: int) -> bool:
                try:
                    docker_run_hello(image)
                    return True
                except subprocess.CalledProcessError:
                    return False

            def rest_work(client: int) -> bool:
                # Distinct code every time (no cache hit), each client a student of its own.
                with lock:
                    i = next(counter)
                status, answer = server.call(
                    "POST",
                    "execute",
                    {"code": f"print({i} * 2)", "use_cache": False},
                    user=f"student{client}",
                )
                return status == 200 and answer.get("stdout") == f"{i * 2}\n"

            cold_done, cold_err, cold_rate = throughput(cold_work, args.clients, sustain / 2)
            profile_dir = args.profile
            if profile_dir is not None:
                profile_dir.mkdir(parents=True, exist_ok=True)
            with (
                CpuSplit() as rest_cpu,
                Profile(
                    server.proc.pid, profile_dir and profile_dir / "sustained.txt"
                ) as rest_prof,
            ):
                rest_done, rest_err, rest_rate = throughput(rest_work, args.clients, sustain)
            print(f"\nthroughput, {args.clients} clients (each a student of its own):")
            print(
                f"  cold docker run     {cold_rate:6.1f} runs/s  ({cold_done} runs, {cold_err} errors, "
                f"{sustain / 2:.0f} s)"
            )
            print(
                f"  REST execute        {rest_rate:6.1f} runs/s  ({rest_done} runs, {rest_err} errors, {sustain:.0f} s)"
                f"   {rest_rate / cold_rate:4.1f}x the cold saturation"
            )
            print(rest_cpu.report(rest_done))
            if rest_prof.report():
                print(rest_prof.report())

            # A class submitting at once to a server that was idle just before (its pool full):
            # 100 students, each submission in a container that ran nothing before.
            deadline = time.monotonic() + 120
            while server.pool_idle() < args.pool_size and time.monotonic() < deadline:
                time.sleep(0.2)
            print(f"\nbefore the burst: {server.pool_idle()} pooled containers waiting")

            def submit(i):
                ms, status, answer = server.timed(
                    "POST",
                    "exercises/bench-square/submit",
                    {"code": "def square(x):\n    return x * x\n"},
                    user=f"class{i}",
                )
                return ms, status == 200 and answer.get("score") == 10

            with (
                CpuSplit() as burst_cpu,
                Profile(server.proc.pid, profile_dir and profile_dir / "burst.txt") as burst_prof,
                ThreadPoolExecutor(max_workers=100) as burst,
            ):
                started = time.monotonic()
                results = list(burst.map(submit, range(100)))
                wall = time.monotonic() - started
            correct = sum(ok for _, ok in results)
            print(
                f"burst of 100 concurrent submissions: {correct}/100 graded correctly, "
                f"{summary([ms for ms, _ in results])}, all done in {wall:.1f} s "
                f"({100 / wall:.1f} submissions/s; each needs a container that ran nothing before)"
            )
            print(burst_cpu.report(100))
            if burst_prof.report():
                print(burst_prof.report())
            # The same class against a server with the default settings (and again from students
            # who each ran their code once before).
            server.stop()
            bursts("default", None, None, image, base, profile_dir=profile_dir)
        finally:
            server.stop()
            left = subprocess.run(
                ["docker", "ps", "-aq", "--filter", f"label=jupyter-exec-ext.owner={OWNER}"],
                capture_output=True,
                text=True,
            ).stdout.split()
            if left:
                subprocess.run(["docker", "rm", "-f", *left], stdout=subprocess.DEVNULL)
            print(f"\ncontainers of this benchmark left on the engine: {len(left)}")


# -- scale-out: replicas behind a balancer ---------------------------------------------------------


class Target:
    """A running REST API (a replica or a balancer): ``url`` ends in ``api/exec/v1/``; each
    student calls it with a token of their own (bench tokens unless a hub's are given)."""

    def __init__(self, url: str, tokens: Optional[list] = None) -> None:
        self.api = url if url.endswith("/") else url + "/"
        self.tokens = tokens

    def call(self, method: str, route: str, body=None, timeout: float = 120, user: int = 0):
        token = self.tokens[user % len(self.tokens)] if self.tokens else f"{TOKEN_PREFIX}s{user}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.api + route, data=data, method=method, headers={"Authorization": f"token {token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as e:
            try:
                return e.code, json.loads(e.read() or b"null")
            except ValueError:
                return e.code, None
        except OSError as e:
            return 0, {"message": str(e)}


def measure_spread(
    targets: list,
    clients: int,
    seconds: float,
    burst: int,
    exercise: str,
    solution: str,
    first_student: int,
) -> dict:
    """Sustained distinct runs from ``clients`` students, then ``burst`` submissions at once by
    as many other students (each a container that ran nothing before); students are spread over
    ``targets`` by number (one target: a balancer spreads them)."""
    counter = iter(range(10**9))
    lock = threading.Lock()

    def run(client: int) -> bool:
        with lock:
            i = next(counter)
        student = first_student + client
        status, answer = targets[student % len(targets)].call(
            "POST", "execute", {"code": f"print({i} * 2)", "use_cache": False}, user=student
        )
        return status == 200 and (answer or {}).get("stdout") == f"{i * 2}\n"

    done, errors, rate = throughput(run, clients, seconds)

    def submit(i: int):
        student = first_student + 1000 + i
        started = time.perf_counter()
        status, answer = targets[student % len(targets)].call(
            "POST", f"exercises/{exercise}/submit", {"code": solution}, user=student
        )
        ok = status == 200 and (answer or {}).get("score") == (answer or {}).get("max_score")
        if not ok:
            why = (answer or {}).get("message") or (answer or {}).get("status")
            failures.append(f"HTTP {status}: {why}"[:200])
        return (time.perf_counter() - started) * 1000, ok

    failures: list = []
    with ThreadPoolExecutor(max_workers=burst) as pool:
        started = time.monotonic()
        results = list(pool.map(submit, range(burst)))
        wall = time.monotonic() - started
    return {
        "runs": done,
        "run_errors": errors,
        "runs_per_s": rate,
        "burst_ok": sum(ok for _, ok in results),
        "burst_ms": [ms for ms, _ in results],
        "burst_wall_s": wall,
        "burst_per_s": burst / wall,
        "burst_failures": failures,
    }


class ReplicaServer(Server):
    """A ``jupyter server`` with the extension as one replica: its own engine (``docker_host``),
    the run caps and submission limits shared in Redis (``shared_state_url``)."""

    def __init__(
        self,
        workdir: Path,
        pool_size: int,
        concurrent: int,
        docker_host: Optional[str],
        redis_url: str,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.api = f"http://127.0.0.1:{self.port}/api/exec/v1/"
        config = workdir / "config.json"
        config.write_text(
            json.dumps(
                {
                    # The balancer's health check names its own Host, which jupyter_server would refuse
                    # as a DNS-rebinding attempt; the server still listens on loopback only.
                    "ServerApp": {
                        "jpserver_extensions": {"jupyter_exec_ext": True},
                        "allow_remote_access": True,
                    },
                    "ExecExtApp": {
                        "owner": OWNER,
                        "pool_size": pool_size,
                        "cache_enabled": False,
                        "max_concurrent_runs": concurrent,
                        "max_runs_per_user": 1000,
                        "submit_rate_limit": 0,
                        "shared_state_url": redis_url,
                        "exercises_dir": str(workdir.parent / "exercises"),
                        "reap_interval": 0,
                    },
                }
            )
        )
        env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
        env.update(
            JUPYTER_CONFIG_DIR=str(workdir / "cfg"),
            JUPYTER_RUNTIME_DIR=str(workdir / "rt"),
            JUPYTER_DATA_DIR=str(workdir / "data"),
            PYTHONPATH=os.pathsep.join(
                [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
            ),
        )
        if docker_host:
            env["DOCKER_HOST"] = docker_host
        self.log = open(workdir / "server.log", "wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_server",
                f"--config={config}",
                f"--port={self.port}",
                "--ip=127.0.0.1",
                "--no-browser",
                "--allow-root",
                "--ServerApp.port_retries=0",
                "--ServerApp.identity_provider_class=bench_identity.BenchIdentityProvider",
                f"--ServerApp.root_dir={workdir}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                if self.call("GET", "health", timeout=5)[0] == 200:
                    break
            except OSError:
                pass  # not listening yet
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"a replica did not start; see {workdir / 'server.log'}")
            time.sleep(0.2)

    def completed(self) -> int:
        return self.call("GET", "docker/status")[1]["runs"]["completed"]


def scaleout(args: argparse.Namespace) -> None:
    """``--targets URL[,URL]``: throughput and a burst of submissions against running replicas or
    a balancer (the exercise ``bench-square`` must be on them; hub tokens from ``--tokens``).

    ``--targets start``: starts here two replicas of the REST API (the extension's server, one on
    the system's engine, one on the tests' second engine), sharing a redis-server of its own,
    behind HAProxy with deploy/haproxy/haproxy.cfg; measures one replica alone first (the
    baseline, in the same process), then both through the balancer, and says how the work
    spread. On one small machine both engines share its cores: this shows the spread, not a
    speed-up; a replica per machine multiplies the fresh containers per second.
    """
    seconds = 15.0 if args.quick else 45.0
    burst = 100
    solution = "def square(x):\n    return x * x\n"
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at the start")
    if args.targets != "start":
        tokens = (
            [t.strip() for t in args.tokens.read_text().splitlines() if t.strip()]
            if args.tokens
            else None
        )
        targets = [Target(url, tokens) for url in args.targets.split(",")]
        got = measure_spread(targets, args.clients, seconds, burst, "bench-square", solution, 0)
        print(
            f"{len(targets)} target(s): {got['runs_per_s']:.1f} runs/s ({got['runs']} runs, "
            f"{got['run_errors']} errors); burst of {burst} submissions: {got['burst_ok']} graded, "
            f"{summary(got['burst_ms'])}, {got['burst_wall_s']:.1f} s = {got['burst_per_s']:.1f}/s"
        )
        return

    sys.path.insert(0, str(REPO))
    from tests.conftest import RedisServer
    from tests.second_engine import running_engine

    image = SandboxConfig.from_env().image
    with tempfile.TemporaryDirectory() as tmp, running_engine(image) as engine:
        root = Path(tmp)
        ten_test_exercise(root / "exercises")
        redis_server = RedisServer(root)
        redis_server.start()
        replicas: list = []
        balancer = None
        try:
            replicas = [
                ReplicaServer(root / "r1", args.pool_size, args.concurrent, None, redis_server.url),
                ReplicaServer(
                    root / "r2", args.pool_size, args.concurrent, engine.base_url, redis_server.url
                ),
            ]
            lb_port = free_port()
            env = dict(
                os.environ,
                EXEC_LB_BIND=f"127.0.0.1:{lb_port}",
                EXEC_SERVICE_PREFIX="/",
                EXEC_REPLICA_1=f"127.0.0.1:{replicas[0].port}",
                EXEC_REPLICA_2=f"127.0.0.1:{replicas[1].port}",
            )
            balancer = subprocess.Popen(
                ["haproxy", "-db", "-f", str(REPO / "deploy/haproxy/haproxy.cfg")],
                env=env,
                stdout=open(root / "haproxy.log", "wb"),
                stderr=subprocess.STDOUT,
            )
            through = Target(f"http://127.0.0.1:{lb_port}/api/exec/v1/")
            deadline = time.monotonic() + 60
            while through.call("GET", "health")[0] != 200:
                if time.monotonic() > deadline:
                    raise SystemExit(
                        "the balancer found no healthy replica:\n"
                        + (root / "haproxy.log").read_text()[-2000:]
                    )
                time.sleep(0.2)

            def pools_full() -> None:
                deadline = time.monotonic() + 180
                while (
                    min(r.pool_idle() for r in replicas) < args.pool_size
                    and time.monotonic() < deadline
                ):
                    time.sleep(0.2)

            print(
                f"two replicas (pool_size={args.pool_size}, max_concurrent_runs={args.concurrent} "
                f"each), {args.clients} clients, bursts of {burst} submissions\n"
            )
            pools_full()
            alone = measure_spread(
                [Target(replicas[0].api)], args.clients, seconds, burst, "bench-square", solution, 0
            )
            pools_full()
            before = [r.completed() for r in replicas]
            both = measure_spread(
                [through], args.clients, seconds, burst, "bench-square", solution, 5000
            )
            spread = [r.completed() - b for r, b in zip(replicas, before)]
            if both["burst_ok"] == 0 or both["run_errors"] > both["runs"] // 2:
                raise SystemExit(
                    f"requests through the balancer failed: {both['run_errors']} runs, "
                    f"{burst - both['burst_ok']} submissions; see {root}"
                )
            for name, got in (
                ("replica 1 alone (baseline)", alone),
                ("2 replicas through HAProxy", both),
            ):
                print(
                    f"{name:28} runs {got['runs_per_s']:5.1f}/s ({got['run_errors']} errors)   "
                    f"burst {got['burst_ok']}/{burst} graded in {got['burst_wall_s']:5.1f} s = "
                    f"{got['burst_per_s']:5.1f} fresh containers/s   {summary(got['burst_ms'])}"
                )
            for name, got in (("alone", alone), ("through HAProxy", both)):
                for failure in sorted(set(got["burst_failures"])):
                    print(f"  a submission not graded in full ({name}): {failure}")
            print(
                f"ratio, two replicas / one: runs {both['runs_per_s'] / alone['runs_per_s']:.2f}x, "
                f"burst {both['burst_per_s'] / alone['burst_per_s']:.2f}x"
            )
            print(
                f"requests answered by replica 1 / replica 2 (engine 1 / engine 2): {spread[0]} / {spread[1]}"
            )
            print(f"load average at the end {os.getloadavg()[0]:.1f}")
        finally:
            if balancer is not None:
                balancer.terminate()
                balancer.wait(timeout=30)
            for replica in replicas:
                replica.stop()
            redis_server.kill()
            left = subprocess.run(
                ["docker", "ps", "-aq", "--filter", f"label=jupyter-exec-ext.owner={OWNER}"],
                capture_output=True,
                text=True,
            ).stdout.split()
            if left:
                subprocess.run(["docker", "rm", "-f", *left], stdout=subprocess.DEVNULL)
            print(f"containers of this benchmark left on the system engine: {len(left)}")


if __name__ == "__main__":
    main()
