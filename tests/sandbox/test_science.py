"""numpy, pandas and matplotlib in the sandbox: figures come back as PNG display images, capped,
on a channel the program cannot forge; nothing of them is loaded unless the program imports it;
the standard-library-only image still works. Real engine, real executor image."""

from __future__ import annotations

import base64
import struct

import docker
import pytest

from jupyter_exec_ext.sandbox import DockerSandbox, ExecutionRequest, SandboxConfig, Status
from jupyter_exec_ext.sandbox.image import (
    FLAVOUR_LABEL,
    OFFLINE_BASE_IMAGES,
    build_executor_image,
    make_offline_base,
)

from ..conftest import TEST_OWNER, require

pytestmark = pytest.mark.docker
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def science_image(docker_client, executor_image) -> str:
    labels = docker_client.api.inspect_image(executor_image)["Config"].get("Labels") or {}
    require(
        labels.get(FLAVOUR_LABEL) == "science",
        f"executor image {executor_image} is not the scientific flavour (jupyter exec-ext build-image)",
    )
    return executor_image


@pytest.fixture
def science(science_image, no_leaks):
    box = DockerSandbox(SandboxConfig(image=science_image, owner=TEST_OWNER))
    yield box
    box.close()


def sandbox_with(image: str, **config) -> DockerSandbox:
    return DockerSandbox(SandboxConfig(image=image, owner=TEST_OWNER, **config))


def png_size(display: dict) -> tuple[int, int]:
    """Width and height of a display image, from its PNG header (IHDR)."""
    assert display["mime"] == "image/png"
    data = base64.b64decode(display["data"], validate=True)
    assert data.startswith(PNG)
    return struct.unpack(">II", data[16:24])


SHOW_AND_LEAVE_OPEN = """
import matplotlib.pyplot as plt
import numpy as np
x = np.linspace(0, 2 * np.pi, 50)
plt.figure(figsize=(4, 3))
plt.plot(x, np.sin(x))
plt.show()
print("shown")
plt.figure(figsize=(2, 2))
plt.bar(["a", "b"], [1, 2])
print("left open")
"""


def test_plt_show_and_a_figure_left_open_come_back_as_png_displays(science):
    result = science.run(ExecutionRequest(code=SHOW_AND_LEAVE_OPEN))
    assert result.status is Status.OK, result
    assert result.stdout == "shown\nleft open\n"
    # The Agg backend at 100 dpi: the shown 4x3 in figure first, the one left open (2x2 in) second.
    assert [png_size(d) for d in result.displays] == [(400, 300), (200, 200)]
    assert "Matplotlib" not in result.stderr  # no font-cache build, no backend warning
    assert result.to_dict()["displays"] == result.displays


def test_pandas_and_numpy_work_with_one_blas_thread(science):
    code = (
        "import numpy as np, pandas as pd, threading, os\n"
        "df = pd.DataFrame({'x': np.arange(5), 'y': np.arange(5) ** 2})\n"
        "print(df['y'].sum(), df['y'].mean())\n"
        "print(len(os.listdir('/proc/self/task')))\n"
    )
    result = science.run(ExecutionRequest(code=code))
    assert result.status is Status.OK, result
    total, mean, threads = result.stdout.split()
    assert (total, mean) == ("30", "6.0")
    assert threads == "1"  # OPENBLAS_NUM_THREADS=1: no thread per core against the pids limit


def test_a_program_that_imports_nothing_loads_nothing_of_the_stack(science):
    code = (
        "import sys, os\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'pandas', 'matplotlib', "
        "'jupyter_exec_display')))\n"
        "print(sorted(os.listdir('.')))\n"
    )
    result = science.run(ExecutionRequest(code=code))
    assert result.status is Status.OK, result
    assert result.stdout == "[]\n[]\n"  # and no matplotlib folder in the working directory
    assert result.displays == []
    assert "displays" not in result.to_dict()


def test_more_figures_than_the_cap_give_a_note_not_a_crash(science_image, no_leaks):
    code = (
        "import matplotlib.pyplot as plt\n"
        "for i in range(5):\n"
        "    plt.figure(figsize=(1, 1)); plt.plot([0, i]); plt.show()\n"
        "print('done')\n"
    )
    with sandbox_with(science_image, display_limit=2) as box:
        result = box.run(ExecutionRequest(code=code))
    assert result.status is Status.OK, result
    assert result.stdout == "done\n"
    assert [png_size(d) for d in result.displays] == [(100, 100), (100, 100)]
    assert result.stderr.count("further figures were not shown: at most 2 figure(s)") == 1


def test_a_figure_over_the_byte_cap_is_dropped_with_a_note(science_image, no_leaks):
    code = (
        "import matplotlib.pyplot as plt, numpy as np\n"
        "plt.figure(figsize=(1, 1)); plt.plot([0, 1]); plt.show()\n"
        "plt.figure(figsize=(20, 20), dpi=100)\n"
        "plt.imshow(np.random.default_rng(1).random((400, 400)))\n"  # noise compresses badly
        "plt.show()\n"
        "print('done')\n"
    )
    with sandbox_with(science_image, display_bytes=200_000) as box:
        result = box.run(ExecutionRequest(code=code))
    assert result.status is Status.OK, result
    assert [png_size(d) for d in result.displays] == [(100, 100)]
    assert "further figures were not shown" in result.stderr


FORGERIES = r"""
import os, sys, json, subprocess
import base64
png = b"\x89PNG\r\n\x1a\n" + b"\0" * 32
frame = json.dumps({"type": "display", "mime": "image/png", "data": base64.b64encode(png).decode()})
# 1. frame-looking lines on stdout and stderr, with guessed nonces
for nonce in ("", "0" * 32, "f" * 32, "deadbeef" * 4):
    print(nonce, frame, flush=True)
    print(nonce, frame, file=sys.stderr, flush=True)
fd = int(os.environ["EXEC_DISPLAY_FD"])
# 2. a header announcing 4 GiB, then garbage, on the display pipe itself
os.write(fd, b"\xff\xff\xff\xff" + b"x" * 1000)
# 3. a child that keeps writing well-formed records long after the cap
pid = os.fork()
if pid == 0:
    for _ in range(2000):
        try:
            os.write(fd, len(png).to_bytes(4, "big") + png)
        except OSError:
            break
    os._exit(0)
os.waitpid(pid, 0)
print("still here")
"""


def test_forged_displays_are_not_images(science):
    result = science.run(ExecutionRequest(code=FORGERIES))
    assert result.status is Status.OK, result
    assert result.displays == []
    assert "still here" in result.stdout
    assert result.stdout.count('"type": "display"') == 4  # printed as text, never taken as a frame
    assert result.stderr.count("further figures were not shown") == 1


def test_non_png_data_on_the_display_pipe_is_dropped(science):
    code = (
        "import os\n"
        "fd = int(os.environ['EXEC_DISPLAY_FD'])\n"
        "os.write(fd, (5).to_bytes(4, 'big') + b'hello')\n"
        "print('ok')\n"
    )
    result = science.run(ExecutionRequest(code=code))
    assert result.status is Status.OK, result
    assert result.displays == []
    assert "the display channel carries PNG images only" in result.stderr


def test_figures_in_grading_are_not_sent_and_do_not_disturb_the_tests(science):
    from jupyter_exec_ext.sandbox import Check

    code = (
        "import matplotlib.pyplot as plt\n"
        "def area(w, h):\n"
        "    plt.figure(); plt.plot([0, w], [0, h]); plt.show()\n"
        "    return w * h\n"
        "print(area(2, 3))\n"
    )
    result = science.run(ExecutionRequest(code=code, checks=(Check("assert area(4, 5) == 20"),)))
    assert result.status is Status.OK, result
    assert len(result.displays) == 1  # the program's own run shows its figure
    assert result.checks[0].outcome.value == "completed", result.checks[0]


@pytest.fixture(scope="module")
def stdlib_image(docker_client) -> str:
    """The standard-library-only flavour, built (idempotently) from the stdlib offline base."""
    base = OFFLINE_BASE_IMAGES["stdlib"]
    try:
        docker_client.api.inspect_image(base)
    except docker.errors.ImageNotFound:
        try:
            make_offline_base(base, flavour="stdlib", say=lambda line: None)
        except Exception as e:  # not root, no debootstrap, no mirror
            require(False, f"the stdlib offline base {base} is missing and cannot be made: {e}")
    tag = SandboxConfig.from_env().image + "-stdlib"
    build_executor_image(docker_client, tag, base, flavour="stdlib", say=lambda line: None)
    return tag


def test_the_stdlib_only_flavour_still_runs_code_and_has_no_numpy(stdlib_image, no_leaks):
    with sandbox_with(stdlib_image) as box:
        ok = box.run(
            ExecutionRequest(code="import json, statistics\nprint(statistics.mean([1, 2, 3]))")
        )
        missing = box.run(ExecutionRequest(code="import numpy"))
    assert ok.status is Status.OK and ok.stdout == "2\n", ok
    assert missing.status is Status.RUNTIME_ERROR
    assert "ModuleNotFoundError: No module named 'numpy'" in missing.stderr


def test_numbers_from_numpy_are_graded_with_the_exercises_tolerance(science, tmp_path):
    """The example exercise (pandas on its CSV, numpy): right answers pass, answers off by less
    than the tolerance pass, answers off by more fail, in the real sandbox."""
    import shutil
    from pathlib import Path

    from jupyter_exec_ext.grading import Grader, load_exercise

    source = Path(__file__).resolve().parents[2] / "exercises"
    for name in ("25-pandas-temperatures.ipynb", "temperatures.csv"):
        shutil.copy(source / name, tmp_path / name)
    exercise = load_exercise(tmp_path / "25-pandas-temperatures.ipynb")
    grader = Grader(science)
    close = exercise.solution_code.replace("float(np.std(values))", "float(np.std(values)) + 1e-9")
    far = exercise.solution_code.replace("float(np.std(values))", "float(np.std(values)) + 1e-3")
    scores = {
        name: grader.grade(exercise, code)
        for name, code in (("right", exercise.solution_code), ("close", close), ("far", far))
    }
    assert scores["right"].score == scores["right"].max_score == 7, scores["right"]
    assert scores["close"].score == 7, scores["close"]
    failed = [t.name for t in scores["far"].tests if t.status != "passed"]
    assert failed == [
        "spread is the population standard deviation",
        "spread of a city's week",
        "a single value has no spread",
    ], scores["far"]


def test_the_fingerprint_follows_the_flavour_and_every_file_of_the_image(tmp_path):
    import shutil

    from jupyter_exec_ext.sandbox.image import RUNNER_FILES, executor_image_dir, fingerprint

    context = tmp_path / "context"
    shutil.copytree(executor_image_dir(), context)
    base = fingerprint(context, "sha256:base", "science")
    assert fingerprint(context, "sha256:base", "stdlib") != base
    assert fingerprint(context, "sha256:other", "science") != base
    assert {"display.py", "workfiles.py", "backend/jupyter_exec_display.py"} <= set(RUNNER_FILES)
    for name in RUNNER_FILES:
        path = context / name
        original = path.read_bytes()
        path.write_bytes(original + b"\n# changed\n")
        assert fingerprint(context, "sha256:base", "science") != base, name
        path.write_bytes(original)
    assert fingerprint(context, "sha256:base", "science") == base


def test_an_up_to_date_image_is_not_rebuilt_and_says_its_flavour(docker_client, stdlib_image):
    from jupyter_exec_ext.sandbox.image import OFFLINE_BASE_IMAGES

    said = []
    image_id = build_executor_image(
        docker_client,
        stdlib_image,
        OFFLINE_BASE_IMAGES["stdlib"],
        flavour="stdlib",
        say=said.append,
    )
    assert said == [f"executor image {stdlib_image} is up to date ({image_id[:19]})"]
    labels = docker_client.api.inspect_image(stdlib_image)["Config"]["Labels"]
    assert labels[FLAVOUR_LABEL] == "stdlib"


def test_the_status_names_the_images_flavour(science):
    assert science.status()["image_flavour"] == "science"
