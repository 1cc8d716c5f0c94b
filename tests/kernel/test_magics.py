"""``%%sandbox``, ``%%submit`` and ``%sandbox_status`` in a real IPython kernel that found the live
server through the variables the extension sets for kernels."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from .conftest import EXERCISES, LiveKernel, kernel_environment

pytestmark = pytest.mark.docker

PALINDROME = nbformat.read(str(EXERCISES / "01-strings-palindrome.ipynb"), as_version=4)


def role_source(nb: nbformat.NotebookNode, role: str) -> str:
    """The source of the exercise notebook's cell with that ``jupyter_exec.role``."""
    return next(
        c.source for c in nb.cells if c.metadata.get("jupyter_exec", {}).get("role") == role
    )


@pytest.fixture(scope="module")
def loaded(kernel: LiveKernel) -> LiveKernel:
    out = kernel.run("%load_ext jupyter_exec_ext")
    assert out.error is None and not out.stderr, out
    return kernel


def test_sandbox_cell_runs_in_the_container_not_in_the_kernel(loaded: LiveKernel, no_leaks) -> None:
    probe = "import os, socket\nprint(os.getuid(), socket.gethostname())"
    kernel_self = loaded.run(probe).stdout.strip()
    out = loaded.run("%%sandbox --no-cache\n" + probe)
    assert out.error is None, out.error
    assert out.stdout.splitlines()[0] == "10001 sandbox"
    assert kernel_self != "10001 sandbox"  # the kernel is another user on another host
    assert out.stdout.splitlines()[-1].startswith("[ran in the sandbox: ok, ")


def test_sandbox_stdin_stderr_and_options(loaded: LiveKernel, no_leaks) -> None:
    out = loaded.run(
        '%%sandbox --stdin "3\\n4" --time-limit 3 --memory-limit "64m"\n'
        "import sys\nprint(int(input()) + int(input()))\nprint('careful', file=sys.stderr)"
    )
    assert out.error is None, out.error
    assert out.stdout.splitlines()[0] == "7" and out.stderr == "careful\n"
    assert "[ran in the sandbox: ok" in out.stdout


def test_kernel_variables_are_not_visible_and_the_error_says_so(
    loaded: LiveKernel, no_leaks
) -> None:
    loaded.run("secret_number = 42")
    out = loaded.run("%%sandbox\nprint(secret_number)")
    assert out.error is None  # failing student code is a result, not a kernel error
    assert "NameError: name 'secret_number' is not defined" in out.stderr
    assert "the sandbox does not see variables defined in your kernel" in out.stderr
    assert "[ran in the sandbox: runtime_error" in out.stdout


def test_timeout_shows_the_status_and_why(loaded: LiveKernel, no_leaks) -> None:
    out = loaded.run(
        "%%sandbox --time-limit 1\nprint('started', flush=True)\nwhile True:\n    pass"
    )
    assert out.stdout.startswith("started\n")
    status = out.stdout.splitlines()[-1]
    assert status.startswith("[ran in the sandbox: timeout") and " — " in status


def test_help_of_each_magic_runs_nothing(loaded: LiveKernel) -> None:
    sandbox = loaded.run("%%sandbox --help\nprint('this must not run')")
    assert "%%sandbox [--time-limit S] [--memory-limit M] [--stdin TEXT]" in sandbox.stdout
    assert "does NOT see variables" in sandbox.stdout and "this must not run" not in sandbox.stdout
    submit = loaded.run("%%submit --help\npass")
    assert "%%submit [-h] [exercise_id]" in submit.stdout and not submit.displays
    status = loaded.run("%sandbox_status --help")
    assert "%sandbox_status [-h]" in status.stdout and "Docker engine: " not in status.stdout
    # Without a cell body: the one-% form shows the help, and otherwise says how the magic is meant.
    assert "%%submit [-h] [exercise_id]" in loaded.run("%submit --help").stdout
    assert "%%sandbox [--time-limit S]" in loaded.run("%sandbox -h").stdout
    misuse = loaded.run("%sandbox print(1)")
    assert (
        "put %%sandbox (two %) on the first line of a cell" in misuse.stderr and not misuse.stdout
    )


def test_submit_wrong_then_right_solution(loaded: LiveKernel, no_leaks) -> None:
    wrong = loaded.run("%%submit strings-palindrome\n" + role_source(PALINDROME, "starter"))
    assert wrong.error is None, wrong.error
    text = wrong.text()
    assert "score: 0 / 7 (graded in the sandbox)" in text
    assert "a simple palindrome" in text and "punctuation is ignored (hidden)" in text
    rows = text.splitlines()[1:7]
    assert len(rows) == 6 and not any("  passed  " in row for row in rows), text
    html = wrong.text("text/html")
    assert "<table" in html and "color:#cf222e" in html and "color:#1a7f37" not in html

    right = loaded.run("%%submit strings-palindrome\n" + role_source(PALINDROME, "solution"))
    text = right.text()
    assert "score: 7 / 7 (graded in the sandbox)" in text
    rows = text.splitlines()[1:7]
    assert len(rows) == 6 and all("  passed  " in row for row in rows), text
    # Passed tests say so once, in the status column, not again in the message column.
    assert all(row.count("passed") == 1 for row in rows), text
    html = right.text("text/html")
    assert html.count(">passed<") == 6 and "hidden test passed" not in html
    # Left-aligned, whatever the notebook's table style, with the four columns in order.
    assert "<table class='jupyter-exec-results' style='margin-left:0;margin-right:auto'>" in html
    heads = re.findall(r"<th style='text-align:left;vertical-align:top'>(\w+)</th>", html)
    assert heads == ["test", "status", "points", "message"]
    assert html.count("<td style='text-align:left") == 24
    assert "color:#1a7f37" in right.text("text/html") and "color:#cf222e" not in right.text(
        "text/html"
    )


def test_unknown_exercise_is_a_one_line_error(loaded: LiveKernel) -> None:
    out = loaded.run("%%submit no-such-exercise\npass")
    assert out.error is not None
    assert out.error["traceback"] == [
        "ExerciseNotFoundError: unknown exercise 'no-such-exercise': no exercise of that id on the "
        "server (ask your instructor for the id)"
    ]


def test_sandbox_status(loaded: LiveKernel) -> None:
    out = loaded.run("%sandbox_status")
    assert "Docker engine: reachable, version " in out.stdout
    assert "executor image: jupyter-exec-ext-executor:" in out.stdout and "(present)" in out.stdout


def test_widget_handlers_in_the_kernel(loaded: LiveKernel, no_leaks) -> None:
    code = role_source(PALINDROME, "solution") + "print(is_palindrome('abba'))\n"
    out = loaded.run(
        "from jupyter_exec_ext.kernel import ExerciseWidget\n"
        "w = ExerciseWidget('strings-palindrome')\n"
        f"w.code.value = {code!r}\n"
        "w.on_run(); print(w.output.value)\n"
        'w.on_submit(); print(w.score.value); print(w.results.value.count("font-weight:bold\'>passed<"))'
    )
    assert out.error is None, out.error
    lines = out.stdout.splitlines()
    assert (
        "<pre class='stdout'>True\n</pre>" in out.stdout and "[ran in the sandbox: ok" in lines[1]
    )
    assert "score: 7 / 7" in lines[-2] and lines[-1] == "6"


def test_kernel_without_a_server_gets_a_clear_error(tmp_path: Path) -> None:
    """A kernel with none of the variables and no running server: the message says what was tried."""
    empty_runtime = tmp_path / "runtime"
    empty_runtime.mkdir()
    lone = LiveKernel(kernel_environment({"JUPYTER_RUNTIME_DIR": str(empty_runtime)}), tmp_path)
    try:
        assert lone.run("%load_ext jupyter_exec_ext").error is None
        out = lone.run("%%sandbox\nprint(1)")
        assert out.error is not None and len(out.error["traceback"]) == 1
        message = out.error["traceback"][0]
        assert message.startswith("ServerNotFoundError: cannot find the Jupyter server")
        assert "JUPYTER_EXEC_EXT_URL is not set" in message and "list_running_servers()" in message
    finally:
        lone.shutdown()
