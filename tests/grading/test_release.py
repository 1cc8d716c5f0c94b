"""The student copy: no hidden tests, no reference solution, nothing overwritten by accident."""

import nbformat
import pytest

from jupyter_exec_ext.grading import ExerciseError, load_exercise, release

from .notebooks import exercise_notebook, write_notebook


def test_student_copy_strips_hidden_tests_and_solutions(tmp_path):
    nb = exercise_notebook()
    nb.cells[2].outputs = []  # the solution cell
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="1000000000001\n")]
    src = write_notebook(tmp_path / "src" / "add.ipynb", nb)
    written = release(src, tmp_path / "out")
    assert written == [tmp_path / "out" / "add.ipynb"]
    text = written[0].read_text()
    for secret in ("big numbers", "10**12", "1000000000001", "return a + b"):
        assert secret not in text, secret
    copy = load_exercise(written[0])
    assert copy.id == "add" and copy.student_copy is True
    assert [t.name for t in copy.tests] == ["small numbers", "negatives"]
    assert copy.solution_code is None
    assert copy.starter_code == "def add(a, b):\n    pass\n"
    roles = [c.metadata.get("jupyter_exec", {}).get("role") for c in nbformat.read(str(written[0]), 4).cells]
    assert roles == ["prompt", "student"]


def test_directory_is_mirrored_and_nothing_is_overwritten(tmp_path):
    write_notebook(tmp_path / "src" / "a.ipynb", exercise_notebook("a"))
    write_notebook(tmp_path / "src" / "week2" / "b.ipynb", exercise_notebook("b"))
    out = tmp_path / "out"
    assert sorted(p.relative_to(out).as_posix() for p in release(tmp_path / "src", out)) == [
        "a.ipynb", "week2/b.ipynb"]
    with pytest.raises(FileExistsError, match="pass --force"):
        release(tmp_path / "src", out)
    assert len(release(tmp_path / "src", out, force=True)) == 2
    with pytest.raises(ValueError, match="overwrite its source"):
        release(tmp_path / "src" / "a.ipynb", tmp_path / "src" / "a.ipynb", force=True)


def test_invalid_source_writes_nothing(tmp_path):
    write_notebook(tmp_path / "src" / "a.ipynb", exercise_notebook("a"))
    write_notebook(tmp_path / "src" / "z.ipynb", exercise_notebook("z", tests=[{"name": "t"}]))
    with pytest.raises(ExerciseError, match="z.ipynb"):
        release(tmp_path / "src", tmp_path / "out")
    assert not (tmp_path / "out").exists()
