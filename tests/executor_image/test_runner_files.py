"""The runner and the programs it forks into are real modules: each is in the image, in the image's
fingerprint and in the runner version of the result cache's keys (no Docker needed)."""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pytest

from jupyter_exec_ext.sandbox.image import (
    RUNNER_FILES,
    executor_image_dir,
    fingerprint,
    runner_digest,
)

CONTEXT = executor_image_dir()
MODULES = sorted(
    str(p.relative_to(CONTEXT)) for p in CONTEXT.rglob("*.py") if "__pycache__" not in p.parts
)


def test_every_module_of_the_runner_is_a_runner_file():
    assert {"runner.py", "zygote.py", "student.py", "harness.py", "wire.py"} <= set(MODULES)
    assert [m for m in MODULES if m not in RUNNER_FILES] == []


def test_the_dockerfile_copies_every_runner_module_into_the_image():
    copied = set()
    for line in (CONTEXT / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"]:
            destination = words[-1].rstrip("/")
            assert destination.startswith("/opt/jupyter-exec-ext"), line
            for source in words[1:-1]:
                # Copied into a folder: it keeps its name, under the folder's part past /opt/….
                folder = destination[len("/opt/jupyter-exec-ext") :].strip("/")
                name = Path(source).name
                assert Path(source).parent == Path(folder), (line, source)
                copied.add(f"{folder}/{name}" if folder else name)
    assert sorted(m for m in MODULES if m not in copied) == []


def test_a_change_to_any_runner_file_changes_the_runner_version_and_the_image(tmp_path):
    context = tmp_path / "context"
    shutil.copytree(CONTEXT, context, ignore=shutil.ignore_patterns("__pycache__"))
    digest, image = runner_digest(context), fingerprint(context, "sha256:base")
    assert digest == runner_digest(CONTEXT)
    for name in RUNNER_FILES:
        path = context / name
        original = path.read_bytes()
        path.write_bytes(original + b"\n# changed\n")
        assert runner_digest(context) != digest, name
        assert fingerprint(context, "sha256:base") != image, name
        path.write_bytes(original)
    assert runner_digest(context) == digest


def _program_strings(path: Path) -> list[str]:
    """String constants of a module that are themselves Python programs (a definition or an
    import inside), as a child program written in a string would be."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.count("\n") >= 2
        ):
            try:
                inner = ast.parse(node.value)
            except (SyntaxError, ValueError):
                continue
            if any(
                isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom))
                for n in ast.walk(inner)
            ):
                found.append(node.value.splitlines()[0][:60])
    return found


@pytest.mark.parametrize("module", MODULES)
def test_no_runner_module_carries_a_program_in_a_string(module):
    # A program in a string is not linted, not type-checked, and easy to leave out of the hash.
    assert _program_strings(CONTEXT / module) == []
    assert not re.search(r"""["']-c["']""", (CONTEXT / module).read_text()), "a `python -c` child"


def test_the_check_finds_a_child_program_in_a_string(tmp_path):
    # The shape the runner's child once had: a bootstrap string handed to a fresh interpreter.
    module = tmp_path / "runner.py"
    module.write_text(
        'CHILD_BOOTSTRAP = """\nimport sys\n\ndef main():\n    print(sys.argv)\n"""\n'
        '"""A docstring of prose,\nover three lines,\nis not a program."""\n'
    )
    assert _program_strings(module) == [""]
