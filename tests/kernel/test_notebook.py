"""A sample exercise notebook executed end to end by nbclient in a real kernel: the student loads
the extension, shows the widget, and submits the reference solution with ``%%submit``."""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

from .conftest import EXERCISES, LiveServer

pytestmark = pytest.mark.docker

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def student_notebook(path: Path) -> nbformat.NotebookNode:
    """The exercise as a student would work it: ``%load_ext`` first, the widget, and the solution
    cell turned into a ``%%submit`` of the same code."""
    nb = copy.deepcopy(nbformat.read(str(path), as_version=4))
    exercise_id = nb.metadata["jupyter_exec"]["exercise_id"]
    for cell in nb.cells:
        if cell.metadata.get("jupyter_exec", {}).get("role") == "solution":
            cell.source = f"%%submit {exercise_id}\n" + cell.source
    nb.cells[:0] = [
        new_code_cell("%load_ext jupyter_exec_ext"),
        new_code_cell(
            f"from jupyter_exec_ext.kernel import ExerciseWidget\nExerciseWidget({exercise_id!r})"
        ),
    ]
    return nb


@pytest.mark.parametrize("name", ["01-strings-palindrome.ipynb", "07-class-shopping-cart.ipynb"])
def test_exercise_notebook_runs_end_to_end_with_full_score(
    name: str, live_server: LiveServer, tmp_path: Path, monkeypatch, no_leaks
) -> None:
    # nbclient's kernel inherits this process's environment, as a kernel inherits the server's.
    for key, value in live_server.kernel_env().items():
        monkeypatch.setenv(key, value)
    nb = student_notebook(EXERCISES / name)
    NotebookClient(
        nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(tmp_path)}}
    ).execute()

    submit = next(c for c in nb.cells if c.cell_type == "code" and c.source.startswith("%%submit"))
    data = submit.outputs[0]["data"]
    tests = nbformat.read(str(EXERCISES / name), as_version=4).metadata["jupyter_exec"]["tests"]
    total = sum(t.get("points", 1) for t in tests)
    assert f"score: {total:g} / {total:g} (graded in the sandbox)" in data["text/plain"]
    assert "<table" in data["text/html"] and "failed" not in data["text/plain"]
    widget = nb.cells[1].outputs[0]["data"]
    assert WIDGET_MIME in widget  # the widget was displayed (its view lives in the front end)
