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
    roles = [
        c.metadata.get("jupyter_exec", {}).get("role")
        for c in nbformat.read(str(written[0]), 4).cells
    ]
    assert roles == ["prompt", "student"]


def test_directory_is_mirrored_and_nothing_is_overwritten(tmp_path):
    write_notebook(tmp_path / "src" / "a.ipynb", exercise_notebook("a"))
    write_notebook(tmp_path / "src" / "week2" / "b.ipynb", exercise_notebook("b"))
    out = tmp_path / "out"
    assert sorted(p.relative_to(out).as_posix() for p in release(tmp_path / "src", out)) == [
        "a.ipynb",
        "week2/b.ipynb",
    ]
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


def _actions(changes):
    return {c.source.name: (c.action, c.path.name if c.path else None) for c in changes}


def test_workspace_is_updated_without_losing_student_work(tmp_path):
    """Command 1 runs this at every start: new exercises are added, an untouched copy follows its
    exercise, an edited copy stays and the new version goes beside it."""
    from jupyter_exec_ext.grading import update_workspace

    src, ws = tmp_path / "exercises", tmp_path / "workspace"
    write_notebook(src / "a.ipynb", exercise_notebook("a"))
    write_notebook(src / "b.ipynb", exercise_notebook("b"))
    (src / "broken.ipynb").write_text("{")
    assert _actions(update_workspace(src, ws)) == {
        "a.ipynb": ("added", "a.ipynb"),
        "b.ipynb": ("added", "b.ipynb"),
        "broken.ipynb": ("skipped", None),
    }
    assert "return a + b" not in (ws / "a.ipynb").read_text()
    assert load_exercise(ws / "a.ipynb").student_copy

    # The student works on a; nothing changed on the instructor's side: a rerun touches nothing.
    student = nbformat.read(str(ws / "a.ipynb"), 4)
    student.cells[1].source = "def add(a, b):\n    return 42  # my attempt\n"
    nbformat.write(student, str(ws / "a.ipynb"))
    assert _actions(update_workspace(src, ws))["a.ipynb"] == ("unchanged", "a.ipynb")
    assert "my attempt" in (ws / "a.ipynb").read_text()

    # The instructor updates both exercises and adds one.
    for name in ("a", "b"):
        write_notebook(src / f"{name}.ipynb", exercise_notebook(name, prompt="Revised prompt."))
    write_notebook(src / "week2" / "c.ipynb", exercise_notebook("c"))
    assert _actions(update_workspace(src, ws)) == {
        "a.ipynb": ("added beside", "a (version 2).ipynb"),  # the student's edit is kept
        "b.ipynb": ("updated", "b.ipynb"),  # untouched: replaced
        "c.ipynb": ("added", "c.ipynb"),
        "broken.ipynb": ("skipped", None),
    }
    assert "my attempt" in (ws / "a.ipynb").read_text()
    assert "Revised prompt." in (ws / "a (version 2).ipynb").read_text()
    assert "Revised prompt." in (ws / "b.ipynb").read_text()
    assert (ws / "week2" / "c.ipynb").exists()
    # And once more: nothing new.
    assert {a for a, _ in _actions(update_workspace(src, ws)).values()} == {"unchanged", "skipped"}


def test_workspace_inside_the_exercise_directory(tmp_path):
    """A workspace under the exercise directory is not read back as exercises, and its copies are
    never sources; the exercise directory itself is refused as a workspace."""
    from jupyter_exec_ext.grading import update_workspace

    src = tmp_path / "exercises"
    write_notebook(src / "a.ipynb", exercise_notebook("a"))
    update_workspace(src, src / "student")
    write_notebook(src / "copies" / "a.ipynb", nbformat.read(str(src / "student" / "a.ipynb"), 4))
    changes = update_workspace(src, src / "student")
    assert [(c.source.relative_to(src).as_posix(), c.action) for c in changes] == [
        ("a.ipynb", "unchanged"),
        ("copies/a.ipynb", "skipped"),
    ]
    assert "a student copy" in changes[1].message
    assert not (src / "student" / "student").exists()
    with pytest.raises(ValueError, match="cannot be the exercise directory"):
        update_workspace(src, src)


def test_wrong_solutions_are_never_released(tmp_path):
    from jupyter_exec_ext.grading import update_workspace

    wrong = [
        {
            "name": "off by one",
            "code": "def add(a, b):\n    return a + b + 1  # WRONG-MARKER\n",
            "reason": "REASON-MARKER",
        }
    ]
    src = write_notebook(tmp_path / "src" / "add.ipynb", exercise_notebook(wrong_solutions=wrong))
    assert load_exercise(src).wrong_solutions[0].name == "off by one"
    released = release(src, tmp_path / "out")[0]
    update_workspace(tmp_path / "src", tmp_path / "workspace")
    for copy in (released, tmp_path / "workspace" / "add.ipynb"):
        text = copy.read_text()
        for secret in ("wrong_solutions", "off by one", "WRONG-MARKER", "REASON-MARKER"):
            assert secret not in text, (copy, secret)
        assert load_exercise(copy).wrong_solutions == ()
