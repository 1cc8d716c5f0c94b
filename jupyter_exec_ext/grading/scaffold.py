"""A new exercise notebook to start from: every role, one example test, valid as written."""

from __future__ import annotations

import re
from typing import Any, Optional

from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from .exercise import METADATA_KEY, exercise_from_notebook, schema


def new_exercise(exercise_id: str, title: Optional[str] = None) -> Any:
    """An exercise notebook with a prompt, a starter cell, a reference solution and one visible
    test, which the reference passes and the starter fails.

    Raises:
        ValueError: ``exercise_id`` is not a valid id (the message says what is allowed).
    """
    pattern = schema()["properties"]["exercise_id"]["pattern"]
    if not re.fullmatch(pattern, exercise_id):
        raise ValueError(
            f"exercise id {exercise_id!r} is not valid: use lowercase letters, digits, "
            "'-' and '_', starting with a letter or digit, at most 64 characters"
        )
    title = title or exercise_id.replace("-", " ").replace("_", " ").capitalize()
    nb = new_notebook()
    nb.metadata["kernelspec"] = {
        "display_name": "Python 3",
        "language": "python",
        "name": "python3",
    }
    nb.metadata[METADATA_KEY] = {
        "exercise_id": exercise_id,
        "title": title,
        "tests": [
            {
                "name": "greets Ada",
                "test_code": 'print(greet("Ada"))\n',
                "expected_output": "Hello, Ada!",
                "points": 1,
                "hidden": False,
            }
        ],
    }
    nb.cells = [
        new_markdown_cell(
            f"# {title}\n\nWrite a function `greet(name)` that returns the text `Hello, NAME!`, "
            'for instance `greet("Ada")` returns `"Hello, Ada!"`.\n\n'
            "*(Replace this prompt, the starter, the reference solution and the test with your own.)*",
            metadata={METADATA_KEY: {"role": "prompt"}},
        ),
        new_code_cell(
            "def greet(name):\n    # Write your code here.\n    pass\n",
            metadata={METADATA_KEY: {"role": "starter"}},
        ),
        new_code_cell(
            'def greet(name):\n    return f"Hello, {name}!"\n',
            metadata={METADATA_KEY: {"role": "solution"}},
        ),
    ]
    exercise_from_notebook(nb, f"<new exercise {exercise_id}>")  # the scaffold itself is valid
    return nb
