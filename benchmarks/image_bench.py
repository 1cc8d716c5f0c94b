"""Benchmark of the scientific executor image (numpy, pandas, matplotlib) against the
standard-library-only one, in the same process, against the real engine: cold start (a fresh
container per run) and warm start (a pre-started container from the pool) of a program that
imports nothing, p50 of the wall-clock time of ``DockerSandbox.run``; and, in the scientific image,
what ``import numpy`` / ``import pandas`` / ``import matplotlib.pyplot`` cost inside the program
(p50 of the runner's own ``duration_ms``, against ``print`` alone). A measurement, not a test.

    .venv/bin/python benchmarks/image_bench.py [--repeat 15] [--science IMAGE] [--stdlib IMAGE] [--json FILE]

Defaults: ``DOCKER_EXECUTOR_IMAGE`` (else the default tag) is the scientific image and the same tag
with ``-stdlib`` the standard-library-only one (``jupyter exec-ext build-image --flavour stdlib
--tag …``). The two images are measured in alternation, round after round, so that a machine
getting busier or calmer weighs on both alike. Every container carries the owner label
``bench-<pid>`` and is gone afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from jupyter_exec_ext.sandbox import DockerSandbox, ExecutionRequest, SandboxConfig, Status  # noqa: E402

OWNER = f"bench-{os.getpid()}"
NOTHING = "print('hi')"
IMPORTS = {
    "print only": NOTHING,
    "import numpy": "import numpy",
    "import pandas": "import pandas",
    "import matplotlib.pyplot": "import matplotlib.pyplot",
    "plt.plot + plt.show (one PNG)": "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.show()",
}


def p50(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def run_ok(box: DockerSandbox, code: str) -> tuple[float, int]:
    started = time.perf_counter()
    result = box.run(ExecutionRequest(code=code))
    wall = (time.perf_counter() - started) * 1000
    if result.status is not Status.OK:
        raise SystemExit(
            f"benchmark program failed ({result.status}): {result.stderr or result.message}"
        )
    return wall, result.duration_ms


def wait_pool_full(box: DockerSandbox, size: int, settle: float, timeout: float = 60.0) -> None:
    """Until the pool holds a started container again, then ``settle`` seconds more: the engine
    is still removing the last run's container and starting others, and a warm run measured in the
    middle of that measures the engine's background work, not the image."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        pool = box.status().get("pool") or {}
        if pool.get("idle", 0) >= size:
            time.sleep(settle)
            return
        time.sleep(0.1)
    raise SystemExit("the warm pool did not fill up within a minute")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = SandboxConfig.from_env().image
    parser.add_argument("--science", default=default, help=f"scientific image (default {default})")
    parser.add_argument("--stdlib", default=default + "-stdlib", help="standard-library-only image")
    parser.add_argument("--repeat", type=int, default=15, help="runs per figure (default 15)")
    parser.add_argument(
        "--settle", type=float, default=1.0, help="seconds of calm before each warm run (default 1)"
    )
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    boxes = {
        name: DockerSandbox(SandboxConfig.from_env(image=image, owner=OWNER, reuse_runs=0))
        for name, image in (("stdlib", args.stdlib), ("science", args.science))
    }
    cold = {name: [] for name in boxes}
    warm = {name: [] for name in boxes}
    inside = {label: [] for label in IMPORTS}
    try:
        for box in boxes.values():
            run_ok(box, NOTHING)  # the first run of an image pays for its layers once: not counted
        for _ in range(args.repeat):
            for name, box in boxes.items():
                cold[name].append(run_ok(box, NOTHING)[0])
        for box in boxes.values():
            box.start_pool(1)
        for _ in range(args.repeat):
            for name, box in boxes.items():
                wait_pool_full(box, 1, args.settle)
                warm[name].append(run_ok(box, NOTHING)[0])
        science = boxes["science"]
        for _ in range(args.repeat):
            for label, code in IMPORTS.items():
                wait_pool_full(science, 1, args.settle)
                inside[label].append(run_ok(science, code)[1])
    finally:
        for box in boxes.values():
            box.close()

    figures = {
        "machine": f"{platform.node()} ({os.cpu_count()} CPUs)",
        "repeat": args.repeat,
        "images": {"science": args.science, "stdlib": args.stdlib},
        "cold_p50_ms": {k: round(p50(v), 1) for k, v in cold.items()},
        "warm_p50_ms": {k: round(p50(v), 1) for k, v in warm.items()},
        "in_program_p50_ms": {k: round(p50(v), 1) for k, v in inside.items()},
    }
    print(f"{args.repeat} runs per figure, p50 (ms); images {args.stdlib} / {args.science}")
    print(f"{'':36} {'stdlib':>10} {'science':>10} {'ratio':>7}")
    for row, data in (
        ("cold start, program imports nothing", cold),
        ("warm start, program imports nothing", warm),
    ):
        a, b = p50(data["stdlib"]), p50(data["science"])
        print(f"{row:36} {a:10.1f} {b:10.1f} {b / a:7.2f}")
    print("inside the program (scientific image, the runner's duration_ms):")
    for label, values in inside.items():
        print(f"  {label:34} {p50(values):10.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
