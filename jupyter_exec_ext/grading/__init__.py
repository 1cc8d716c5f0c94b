"""Exercise notebooks -> tests -> scored results.

Imports the sandbox, never the server: the REST API and the CLI both stand on this package.
"""

from .exercise import (
    METADATA_KEY,
    DataFilesError,
    Exercise,
    ExerciseError,
    ExerciseNotFound,
    ExerciseTest,
    exercise_from_notebook,
    load_exercise,
    schema,
)
from .grader import Grader, GradeResult, TestResult
from .registry import ExerciseRegistry
from .release import WorkspaceChange, release, student_copy, update_workspace

__all__ = [
    "METADATA_KEY",
    "DataFilesError",
    "Exercise",
    "ExerciseError",
    "ExerciseNotFound",
    "ExerciseRegistry",
    "ExerciseTest",
    "GradeResult",
    "Grader",
    "TestResult",
    "exercise_from_notebook",
    "load_exercise",
    "release",
    "schema",
    "student_copy",
    "update_workspace",
    "WorkspaceChange",
]
