"""Benchmark of the REST API against the real engine: cold vs warm vs cached execute, graded
submissions, sustained throughput and a burst of submissions, each next to a baseline measured in
the same run (a cold hardened ``docker run``). A measurement, not a test: it prints medians, p95
and ratios.

    .venv/bin/python benchmarks/rest_bench.py [--quick] [--pool-size 4] [--clients 8]

It starts its own ``jupyter server`` with the extension on a free loopback port and stops it at
the end; every container it makes carries the owner label ``bench-<pid>`` and is gone afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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
    tests = [{"name": f"square of {i}", "test_code": f"print(square({i}))", "expected_output": str(i * i)}
             for i in range(9)]
    tests.append({"name": "hidden", "test_code": "assert square(-3) == 9", "hidden": True})
    nb = new_notebook()
    nb.metadata["jupyter_exec"] = {"exercise_id": "bench-square", "title": "Square", "tests": tests,
                                   "limits": {"time_limit": 10}}
    nb.cells = [new_markdown_cell("square(x)", metadata={"jupyter_exec": {"role": "prompt"}}),
                new_code_cell("def square(x):\n    pass\n", metadata={"jupyter_exec": {"role": "starter"}}),
                new_code_cell("def square(x):\n    return x * x\n", metadata={"jupyter_exec": {"role": "solution"}})]
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(folder / "bench-square.ipynb"))


class Server:
    """A real ``jupyter server`` with the extension, started for the benchmark."""

    def __init__(self, workdir: Path, pool_size: int, concurrent: int):
        self.port = free_port()
        self.api = f"http://127.0.0.1:{self.port}/api/exec/v1/"
        config = workdir / "config.json"
        config.write_text(json.dumps({
            "ServerApp": {"jpserver_extensions": {"jupyter_exec_ext": True}},
            "ExecExtApp": {"owner": OWNER, "pool_size": pool_size, "cache_enabled": True,
                           "max_concurrent_runs": concurrent, "max_runs_per_user": 1000,
                           "exercises_dir": str(workdir / "exercises"), "reap_interval": 0},
        }))
        env = dict(os.environ, JUPYTER_CONFIG_DIR=str(workdir / "cfg"),
                   JUPYTER_RUNTIME_DIR=str(workdir / "rt"), JUPYTER_DATA_DIR=str(workdir / "data"),
                   PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
        self.log = open(workdir / "server.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_server", f"--config={config}", f"--port={self.port}",
             "--ip=127.0.0.1", "--no-browser", "--allow-root", "--ServerApp.port_retries=0",
             "--ServerApp.identity_provider_class=bench_identity.BenchIdentityProvider",
             f"--ServerApp.root_dir={workdir}"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
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

    def call(self, method: str, route: str, body=None, timeout: float = 120, user: str = "student0"):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.api + route, data=data, method=method,
                                         headers={"Authorization": f"token {TOKEN_PREFIX}{user}"})
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
        ["docker", "run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/tmp:rw,noexec,nosuid,size=64m",
         "--user", "10001:10001", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
         "--pids-limit", "50", "--memory", "256m", "--memory-swap", "256m", "--cpus", "0.5",
         "--label", f"jupyter-exec-ext.owner={OWNER}", "--label", "jupyter-exec-ext.managed=true",
         image, "python3", "-c", "print('hello')"],
        check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - started) * 1000


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples, 15 s instead of 60 s")
    parser.add_argument("--pool-size", type=int, default=4)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--concurrent", type=int, default=6, help="the server's max_concurrent_runs")
    args = parser.parse_args()
    n = 10 if args.quick else 30
    sustain = 15.0 if args.quick else 60.0
    image = SandboxConfig.from_env().image

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    engine = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True,
                            text=True).stdout.strip()
    print(f"machine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, "
          f"Docker engine {engine}, image {image}")
    print(f"server: pool_size={args.pool_size}, max_concurrent_runs={args.concurrent}; clients={args.clients}\n")

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        ten_test_exercise(workdir / "exercises")
        server = Server(workdir, args.pool_size, args.concurrent)
        try:
            # Baseline: a cold hardened docker run, sequential.
            rows["docker run (cold, CLI)"] = [docker_run_hello(image) for _ in range(max(5, n // 3))]
            # Through REST, cold: limits other than the pool's profile always start a container.
            # Each by another student, so no container is theirs yet.
            rows["REST execute, cold"] = [server.timed("POST", "execute", {
                "code": "print('hello')", "memory_limit": "255m", "use_cache": False}, user=f"cold{i}")[0]
                for i in range(max(5, n // 3))]
            # Warm: default limits; between requests the pool is allowed to refill. Each run is
            # a different student's first, so each gets a pooled container that ran nothing.
            warm = []
            for i in range(n):
                deadline = time.monotonic() + 10
                while server.pool_idle() < args.pool_size and time.monotonic() < deadline:
                    time.sleep(0.05)
                ms, status, answer = server.timed("POST", "execute", {"code": "print('hello')", "use_cache": False},
                                                  user=f"first{i}")
                assert status == 200 and answer["stdout"] == "hello\n", answer
                warm.append(ms)
            rows["REST execute, warm pool"] = warm
            # One student pressing Run again: their container, reset since their last run.
            again = []
            for i in range(n):
                deadline = time.monotonic() + 10
                while server.resetting() > 0 and time.monotonic() < deadline:
                    time.sleep(0.01)
                ms, status, answer = server.timed("POST", "execute", {"code": f"print('hello {i}')", "use_cache": False},
                                                  user="student0")
                assert status == 200 and answer["stdout"] == f"hello {i}\n", answer
                again.append(ms)
            rows["REST execute, same student again"] = again
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
                ms, status, answer = server.timed("POST", "exercises/bench-square/submit",
                                                  {"code": "def square(x):\n    return x * x\n"})
                assert status == 200 and answer["score"] == answer["max_score"] == 10, answer
                subs.append(ms)
            rows["REST submit, 10 tests, warm"] = subs

            print(f"{'latency':34} {'':>8}")
            base = statistics.median(rows["docker run (cold, CLI)"])
            for name, values in rows.items():
                ratio = base / statistics.median(values)
                print(f"{name:34} {summary(values)}   {ratio:7.1f}x faster than docker run")

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
                status, answer = server.call("POST", "execute", {"code": f"print({i} * 2)", "use_cache": False},
                                             user=f"student{client}")
                return status == 200 and answer.get("stdout") == f"{i * 2}\n"

            cold_done, cold_err, cold_rate = throughput(cold_work, args.clients, sustain / 2)
            rest_done, rest_err, rest_rate = throughput(rest_work, args.clients, sustain)
            print(f"\nthroughput, {args.clients} clients (each a student of its own):")
            print(f"  cold docker run     {cold_rate:6.1f} runs/s  ({cold_done} runs, {cold_err} errors, {sustain / 2:.0f} s)")
            print(f"  REST execute        {rest_rate:6.1f} runs/s  ({rest_done} runs, {rest_err} errors, {sustain:.0f} s)"
                  f"   {rest_rate / cold_rate:4.1f}x the cold saturation")

            # A class submitting at once: 100 students, each submission in a fresh container.
            def submit(i):
                ms, status, answer = server.timed("POST", "exercises/bench-square/submit",
                                                  {"code": "def square(x):\n    return x * x\n"}, user=f"class{i}")
                return ms, status == 200 and answer.get("score") == 10
            with ThreadPoolExecutor(max_workers=100) as burst:
                results = list(burst.map(submit, range(100)))
            correct = sum(ok for _, ok in results)
            print(f"\nburst of 100 concurrent submissions: {correct}/100 graded correctly, "
                  f"{summary([ms for ms, _ in results])}")
        finally:
            server.stop()
            left = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=jupyter-exec-ext.owner={OWNER}"],
                                  capture_output=True, text=True).stdout.split()
            if left:
                subprocess.run(["docker", "rm", "-f", *left], stdout=subprocess.DEVNULL)
            print(f"\ncontainers of this benchmark left on the engine: {len(left)}")


if __name__ == "__main__":
    main()
