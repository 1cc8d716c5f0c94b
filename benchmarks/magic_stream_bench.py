"""What streaming costs a ``%%sandbox`` cell in a real kernel: the same program run as a live run
(``execute/ws``, output streamed into the cell) and through ``POST execute`` (all at the end), in
one kernel of one server, alternating, so both see the same machine.

    DOCKER_EXECUTOR_IMAGE=... .venv/bin/python benchmarks/magic_stream_bench.py [--lines 50000] [--runs 5]

Prints per mode the median wall time of the cell as the front end sees it (execute request to
reply), the median number of stream messages, and the ratio live / POST. Also the time from the
request to the first output for a program that prints once and sleeps. A measurement, not a
test: nothing passes or fails on a number. Needs a Docker engine and the executor image.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from jupyter_client.manager import KernelManager  # noqa: E402

from jupyter_exec_ext.sandbox import SandboxConfig  # noqa: E402
from tests.live_server import EXERCISES, start_server  # noqa: E402

FORCE_POST = (
    "from jupyter_exec_ext.kernel import client as _c\n"
    "def _no_socket(*a, **k):\n    raise _c.LiveUnavailableError('benchmark: POST execute')\n"
    "_c.ExecClient.run_live = _no_socket\n"
)


def run_cell(kc, code: str) -> tuple[float, int, float]:
    """(seconds to the reply, stream messages, seconds to the first stream message)."""
    first: list[float] = []
    count = [0]
    start = time.monotonic()

    def hook(msg: dict) -> None:
        if msg["msg_type"] == "stream":
            count[0] += 1
            if not first:
                first.append(time.monotonic() - start)

    kc.execute_interactive(code, output_hook=hook, timeout=300)
    return time.monotonic() - start, count[0], first[0] if first else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=50000, help="lines the flood program prints")
    parser.add_argument("--runs", type=int, default=5, help="cells per mode")
    args = parser.parse_args()

    image = SandboxConfig.from_env(owner="bench").image
    workdir = Path(tempfile.mkdtemp(prefix="magic-bench-"))
    server = start_server(
        workdir / "server",
        {
            "image": image,
            "owner": "bench",
            "exercises_dir": str(EXERCISES),
            "pool_size": 2,
            "cache_enabled": False,
        },
        token="bench-token",
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("JUPYTER_EXEC_EXT_", "JUPYTERHUB_"))
    }
    env.update(server.kernel_env())
    kernels = {}
    try:
        for mode in ("live", "post"):
            km = KernelManager(kernel_name="python3")
            km.start_kernel(env=env, cwd=str(workdir))
            kc = km.client()
            kc.start_channels()
            kc.wait_for_ready(timeout=60)
            kc.execute_interactive(
                "%load_ext jupyter_exec_ext", timeout=60, output_hook=lambda _m: None
            )
            if mode == "post":
                kc.execute_interactive(FORCE_POST, timeout=60)
            kernels[mode] = (km, kc)
        flood = f"%%sandbox --no-cache\nfor i in range({args.lines}):\n    print(i)\n"
        once = "%%sandbox --no-cache\nimport time\nprint('a', flush=True)\ntime.sleep(2)\n"
        results = {mode: {"flood": [], "messages": [], "first": []} for mode in kernels}
        for _ in range(args.runs):
            for mode, (_km, kc) in kernels.items():
                seconds, messages, _ = run_cell(kc, flood)
                results[mode]["flood"].append(seconds)
                results[mode]["messages"].append(messages)
                results[mode]["first"].append(run_cell(kc, once)[2])
        for mode, r in results.items():
            print(
                f"{mode:5}  flood of {args.lines} lines: median {statistics.median(r['flood']):.2f} s, "
                f"{statistics.median(r['messages']):.0f} stream messages; "
                f"print-then-sleep(2): first output after {statistics.median(r['first']) * 1000:.0f} ms"
            )
        ratio = statistics.median(results["live"]["flood"]) / statistics.median(
            results["post"]["flood"]
        )
        print(f"flood: live / POST = {ratio:.2f}")
    finally:
        for km, kc in kernels.values():
            kc.stop_channels()
            km.shutdown_kernel(now=True)
        server.stop()


if __name__ == "__main__":
    main()
