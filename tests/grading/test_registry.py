"""The exercise registry: lookup by id, live reloading, duplicates named."""

import os

import pytest

from jupyter_exec_ext.grading import ExerciseError, ExerciseNotFound, ExerciseRegistry

from .notebooks import exercise_notebook, write_notebook


def test_lookup_list_and_live_changes(tmp_path):
    write_notebook(tmp_path / "a.ipynb", exercise_notebook("alpha"))
    registry = ExerciseRegistry(tmp_path, rescan_interval=0)
    assert [e.id for e in registry.list()] == ["alpha"]
    assert registry.get("alpha").title == "Alpha"
    with pytest.raises(ExerciseNotFound, match="beta"):
        registry.get("beta")

    # Added without a restart.
    write_notebook(tmp_path / "sub" / "b.ipynb", exercise_notebook("beta"))
    assert registry.get("beta").id == "beta"

    # Changed without a restart (a new title), even within the same second.
    nb = exercise_notebook("alpha")
    nb.metadata["jupyter_exec"]["title"] = "Alpha, revised"
    path = write_notebook(tmp_path / "a.ipynb", nb)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert registry.get("alpha").title == "Alpha, revised"

    # Removed.
    (tmp_path / "sub" / "b.ipynb").unlink()
    with pytest.raises(ExerciseNotFound):
        registry.get("beta")


def test_duplicate_ids_name_both_files(tmp_path):
    write_notebook(tmp_path / "one.ipynb", exercise_notebook("same"))
    write_notebook(tmp_path / "two.ipynb", exercise_notebook("same"))
    write_notebook(tmp_path / "other.ipynb", exercise_notebook("other"))
    registry = ExerciseRegistry(tmp_path, rescan_interval=0)
    with pytest.raises(ExerciseError) as err:
        registry.get("same")
    assert "one.ipynb" in str(err.value) and "two.ipynb" in str(err.value)
    assert [e.id for e in registry.list()] == ["other"]
    assert any("'same'" in p for p in registry.problems())


def test_broken_notebooks_are_problems_not_crashes(tmp_path):
    write_notebook(tmp_path / "good.ipynb", exercise_notebook("good"))
    (tmp_path / "broken.ipynb").write_text("{")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    write_notebook(
        tmp_path / ".ipynb_checkpoints" / "good-checkpoint.ipynb", exercise_notebook("good")
    )
    registry = ExerciseRegistry(tmp_path, rescan_interval=0)
    assert [e.id for e in registry.list()] == ["good"]
    assert len(registry.problems()) == 1 and "broken.ipynb" in registry.problems()[0]


def test_missing_directory_is_empty(tmp_path):
    assert ExerciseRegistry(tmp_path / "nope").list() == []


def test_student_copies_in_the_tree_are_not_definitions(tmp_path):
    """A release into a folder under the exercise directory leaves every exercise usable."""
    from jupyter_exec_ext.grading import release

    write_notebook(tmp_path / "add.ipynb", exercise_notebook("add"))
    release(tmp_path / "add.ipynb", tmp_path / "student")
    release(tmp_path / "add.ipynb", tmp_path / "week1" / "copies" / "add-again.ipynb")
    registry = ExerciseRegistry(tmp_path, rescan_interval=0)
    exercise = registry.get("add")
    assert exercise.path == tmp_path / "add.ipynb"
    assert exercise.student_copy is False and exercise.solution_code  # the authoritative copy
    assert [t.name for t in exercise.tests if t.hidden] == ["big numbers"]
    assert [e.id for e in registry.list()] == ["add"] and registry.problems() == []

    # Only student copies of an exercise: it is not defined on this server.
    (tmp_path / "add.ipynb").unlink()
    with pytest.raises(ExerciseNotFound):
        registry.get("add")


def test_load_notebooks_keeps_the_first_definition_of_an_id_and_names_the_rest(tmp_path):
    """What `validate` reports: a notebook that does not load, and a later definition of an id
    (naming the first); student copies share their exercise's id without being definitions."""
    from jupyter_exec_ext.grading import release
    from jupyter_exec_ext.grading.registry import load_notebooks

    write_notebook(tmp_path / "a.ipynb", exercise_notebook("same"))
    write_notebook(tmp_path / "b.ipynb", exercise_notebook("same"))
    (tmp_path / "broken.ipynb").write_text("{")
    release(tmp_path / "a.ipynb", tmp_path / "copy.ipynb")
    paths = [tmp_path / n for n in ("a.ipynb", "copy.ipynb", "b.ipynb", "broken.ipynb", "a.ipynb")]
    found = load_notebooks(paths)
    assert [n.exercise is not None for n in found] == [True, True, False, False, False]
    assert found[1].exercise.student_copy and found[1].problem == ""
    assert found[2].problem == (
        f"{tmp_path / 'b.ipynb'}: exercise id 'same' is also used by {tmp_path / 'a.ipynb'}"
    )
    assert "broken.ipynb" in found[3].problem
    # The same notebook named twice defines its id twice.
    assert found[4].problem.endswith(f"is also used by {tmp_path / 'a.ipynb'}")
