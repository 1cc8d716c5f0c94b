"""Exercise data files: declared in the metadata, beside the notebook, read-only in the runs'
working directory for grading (whatever the code does to them), checked by validate, copied by
release and update-workspace."""

from __future__ import annotations

from pathlib import Path

import pytest

from jupyter_exec_ext.grading import (
    DataFilesError,
    ExerciseError,
    Grader,
    load_exercise,
    release,
    update_workspace,
)
from jupyter_exec_ext.grading.validation import check_exercise
from jupyter_exec_ext.sandbox import Status

from .notebooks import exercise_notebook, write_notebook

NUMBERS = b"1\n2\n3\n"
SOLUTION = (
    "def average_file(path):\n"
    "    values = [float(line) for line in open(path)]\n"
    "    return sum(values) / len(values)\n"
)
#: Right only for a file whose lines are all equal: the first value.
FIRST_VALUE = "def average_file(path):\n    return float(open(path).readline())\n"
TESTS = [
    {
        "name": "average of the data file",
        "test_code": "print(average_file('numbers.txt'))",
        "expected_output": "2.0",
    },
    {
        "name": "the file is the instructor's",
        "hidden": True,
        "test_code": "assert open('/tmp/numbers.txt', 'rb').read() == b'1\\n2\\n3\\n'",
    },
]


def data_exercise(folder: Path, data: bytes | None = NUMBERS, name: str = "numbers.txt") -> Path:
    path = write_notebook(
        folder / "average.ipynb",
        exercise_notebook(
            "average-file",
            tests=TESTS,
            solution=SOLUTION,
            starter="def average_file(path):\n    pass\n",
            data_files=[name],
        ),
    )
    if data is not None:
        (folder / name).write_bytes(data)
    return path


def test_the_schema_takes_plain_file_names_only(tmp_path):
    for bad in ("../secret.txt", "data/numbers.txt", "/etc/passwd", ".hidden"):
        write_notebook(tmp_path / "bad.ipynb", exercise_notebook(data_files=[bad]))
        with pytest.raises(ExerciseError, match="data_files"):
            load_exercise(tmp_path / "bad.ipynb")


def test_a_missing_or_too_big_data_file_is_named(tmp_path):
    exercise = load_exercise(data_exercise(tmp_path, data=None))
    with pytest.raises(DataFilesError, match="data file 'numbers.txt' is missing .*average.ipynb"):
        exercise.read_data_files()
    (tmp_path / "numbers.txt").write_bytes(b"1\n" * 100)
    with pytest.raises(DataFilesError, match="200 bytes, above the cap of 50 bytes"):
        exercise.read_data_files(max_bytes=50)
    assert [f.name for f in exercise.read_data_files(max_bytes=200)] == ["numbers.txt"]


def test_validate_fails_an_exercise_whose_data_file_is_missing(tmp_path):
    exercise = load_exercise(data_exercise(tmp_path, data=None))
    check = check_exercise(
        Grader(sandbox=None), exercise
    )  # nothing runs: the file is checked first
    assert not check.ok and "data file 'numbers.txt' is missing" in check.problem


def test_release_copies_the_data_files_beside_the_student_copy(tmp_path):
    source = data_exercise(tmp_path / "course")
    written = release(source, tmp_path / "out")
    assert sorted(p.name for p in written) == ["average.ipynb", "numbers.txt"]
    assert (tmp_path / "out" / "numbers.txt").read_bytes() == NUMBERS
    assert load_exercise(tmp_path / "out" / "average.ipynb").data_files == ("numbers.txt",)
    # Again: the same data file is no conflict; another one is, unless forced.
    release(source, tmp_path / "out", force=True)
    (tmp_path / "out" / "numbers.txt").write_bytes(b"changed\n")
    (tmp_path / "out" / "average.ipynb").unlink()
    with pytest.raises(FileExistsError, match="numbers.txt exists with other content"):
        release(source, tmp_path / "out")
    assert not (tmp_path / "out" / "average.ipynb").exists()  # nothing written
    release(source, tmp_path / "out", force=True)
    assert (tmp_path / "out" / "numbers.txt").read_bytes() == NUMBERS


def test_release_writes_nothing_when_a_data_file_is_missing(tmp_path):
    source = data_exercise(tmp_path / "course", data=None)
    with pytest.raises(DataFilesError):
        release(source, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_update_workspace_adds_data_files_and_keeps_a_students_edit(tmp_path):
    course, workspace = tmp_path / "course", tmp_path / "workspace"
    data_exercise(course)
    update_workspace(course, workspace)
    assert (workspace / "numbers.txt").read_bytes() == NUMBERS
    (course / "numbers.txt").write_bytes(b"4\n5\n")
    update_workspace(course, workspace)
    assert (workspace / "numbers.txt").read_bytes() == b"4\n5\n"  # untouched copy: updated
    (workspace / "numbers.txt").write_bytes(b"mine\n")
    (course / "numbers.txt").write_bytes(b"6\n")
    update_workspace(course, workspace)
    assert (workspace / "numbers.txt").read_bytes() == b"mine\n"  # the student's edit stays


#: Tries every way to change the data file before and during the tests, so that a wrong answer
#: (the first value) would look right: the file made all 2s.
TAMPERING = (
    FIRST_VALUE
    + r"""
import os, shutil
attempts = []
def attempt(name, action):
    try:
        action()
        attempts.append(name + ": worked")
    except OSError as e:
        attempts.append(name + ": " + type(e).__name__)
def overwrite():
    with open("numbers.txt", "w") as f:
        f.write("2\n2\n2\n")
def replace():
    with open("fake.txt", "w") as f:
        f.write("2\n2\n2\n")
    os.replace("fake.txt", "numbers.txt")
def append():
    with open("numbers.txt", "a") as f:
        f.write("2\n")
attempt("overwrite", overwrite)
attempt("append", append)
attempt("chmod", lambda: os.chmod("numbers.txt", 0o666))
attempt("delete", lambda: os.unlink("numbers.txt"))
attempt("rename away", lambda: os.rename("numbers.txt", "gone.txt"))
attempt("replace", replace)
attempt("symlink over", lambda: os.symlink("/tmp/fake.txt", "numbers.txt"))
attempt("remove folder", lambda: shutil.rmtree("/tmp"))
print("\n".join(attempts))
print(open("numbers.txt").read().split())
"""
)


@pytest.mark.docker
def test_tampering_with_a_data_file_changes_nothing_for_the_tests(sandbox, tmp_path):
    exercise = load_exercise(data_exercise(tmp_path))
    grader = Grader(sandbox)
    honest_wrong = grader.grade(exercise, FIRST_VALUE)
    attacked = grader.grade(exercise, TAMPERING)
    right = grader.grade(exercise, SOLUTION)
    assert right.score == right.max_score == 2, right
    assert honest_wrong.score == 1  # the hidden check of the file passes; the average does not
    assert attacked.status is Status.OK, attacked
    assert attacked.score <= honest_wrong.score, attacked
    assert "worked" not in attacked.stdout, attacked.stdout
    assert "['1', '2', '3']" in attacked.stdout
    tests = {t.name: t for t in attacked.tests}
    assert tests["average of the data file"].actual == "1.0\n"
    assert tests["the file is the instructor's"].status == "passed"


@pytest.mark.docker
def test_a_reused_container_forgets_the_last_runs_data_files(sandbox):
    from jupyter_exec_ext.sandbox import DataFile, ExecutionRequest

    look = (
        "import os\nprint(open('/proc/self/cgroup').read().strip().split('/')[-1][-12:], "
        "sorted(os.listdir('.')))\n"
    )
    first = sandbox.run(
        ExecutionRequest(code=look, reuse_key="alice", files=(DataFile("numbers.txt", NUMBERS),))
    )
    assert first.status is Status.OK and first.stdout.split()[1:] == ["['numbers.txt']"], first
    from ..sandbox.test_reuse import wait_until_kept

    wait_until_kept(sandbox)  # the reset happens after the answer
    second = sandbox.run(ExecutionRequest(code=look, reuse_key="alice"))
    assert second.status is Status.OK and second.stdout.split()[1:] == ["[]"], second
    assert second.stdout.split()[0] == first.stdout.split()[0]  # the same container
