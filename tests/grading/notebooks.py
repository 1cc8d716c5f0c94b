"""Builds exercise notebooks for tests, the way an instructor's notebook looks on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook


def exercise_notebook(
    exercise_id: str = "add",
    tests: Optional[list] = None,
    solution: str = "def add(a, b):\n    return a + b\n",
    starter: str = "def add(a, b):\n    pass\n",
    prompt: str = "Write `add(a, b)` that returns the sum of `a` and `b`.",
    **meta: Any,
):
    tests = (
        tests
        if tests is not None
        else [
            {"name": "small numbers", "test_code": "print(add(2, 3))", "expected_output": "5"},
            {"name": "negatives", "test_code": "assert add(-2, -3) == -5", "points": 2},
            {
                "name": "big numbers",
                "test_code": "print(add(10**12, 1))",
                "expected_output": "1000000000001",
                "hidden": True,
            },
        ]
    )
    nb = new_notebook()
    nb.metadata["jupyter_exec"] = {
        "exercise_id": exercise_id,
        "title": exercise_id.title(),
        "tests": tests,
        **meta,
    }
    nb.cells = [
        new_markdown_cell(prompt, metadata={"jupyter_exec": {"role": "prompt"}}),
        new_code_cell(starter, metadata={"jupyter_exec": {"role": "starter"}}),
        new_code_cell(solution, metadata={"jupyter_exec": {"role": "solution"}}),
    ]
    return nb


def write_notebook(path: Path, nb) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path
