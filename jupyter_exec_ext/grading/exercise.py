"""Exercise notebooks <-> the exercise model: metadata ``jupyter_exec`` and cell roles.

A notebook's metadata ``jupyter_exec`` holds ``exercise_id``, ``title``, ``limits``, ``policy``,
``tests``, ``requirements`` (how it must be solved), ``wrong_solutions`` (for validation) and
``data_files`` (read-only files beside the notebook that the programs read); cell metadata
``jupyter_exec.role`` marks ``prompt``, ``starter``, ``solution`` (the reference, stripped on
release) and ``student`` cells. The JSON schema shipped next to this
module is the authority on the metadata's shape.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional, Sequence, Tuple, Union

import jsonschema
import nbformat

from ..sandbox.errors import LimitError
from ..sandbox.limits import Limits
from ..sandbox.models import DataFile
from ..sandbox.policy import CodePolicy, Requirement

METADATA_KEY = "jupyter_exec"
ROLES = ("prompt", "starter", "solution", "student")
COMPARE_MODES = ("exact", "strip", "float", "regex")
DEFAULT_TEST_TIMEOUT = 5.0
DEFAULT_TOLERANCE = 1e-6
SCHEMA_PATH = Path(__file__).with_name("exercise.schema.json")


class ExerciseError(ValueError):
    """An exercise notebook is unusable; the message names the notebook, the test and the field."""


class DataFilesError(ExerciseError):
    """An exercise's data file is missing, unreadable or too big: the instructor must fix it."""


class ExerciseNotFound(KeyError):
    """No exercise has the requested id."""

    def __init__(self, exercise_id: str):
        self.exercise_id = exercise_id
        super().__init__(exercise_id)

    def __str__(self) -> str:
        return f"no exercise with id {self.exercise_id!r}"


@lru_cache(maxsize=1)
def schema() -> dict:
    """The JSON schema of the ``jupyter_exec`` notebook metadata."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class ExerciseTest:
    """One test: code run after the student's code, and what it must print (or not raise).

    ``expected_output`` None means an assert-style test: it passes when its code raises nothing.
    """

    name: str
    test_code: str
    expected_output: Optional[str] = None
    points: float = 1.0
    hidden: bool = False
    timeout: float = DEFAULT_TEST_TIMEOUT
    compare: str = "strip"
    tolerance: float = DEFAULT_TOLERANCE

    def to_metadata(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "test_code": self.test_code,
            "expected_output": self.expected_output,
            "points": self.points,
            "hidden": self.hidden,
            "timeout": self.timeout,
            "compare": self.compare,
        }
        if self.compare == "float":
            data["tolerance"] = self.tolerance
        return data

    def public_dict(self) -> dict[str, Any]:
        """What a student may see of a visible test."""
        return {
            "name": self.name,
            "test_code": self.test_code,
            "expected_output": self.expected_output,
            "points": self.points,
            "compare": self.compare,
        }


@dataclass(frozen=True)
class RequirementTest:
    """A requirement rule graded like a visible test: its own name and points, its verdict from
    the code's AST on the host."""

    __test__ = False  # not a pytest test class, whatever its name says

    name: str
    requirement: Requirement
    points: float = 1.0

    def public_dict(self) -> dict[str, Any]:
        return {"name": self.name, "rule": self.requirement.description, "points": self.points}


@dataclass(frozen=True)
class WrongSolution:
    """A plausible wrong answer the tests must catch; only validation uses it."""

    name: str
    code: str
    reason: str = ""


@dataclass(frozen=True)
class Exercise:
    """An exercise as the grader and the REST API see it."""

    id: str
    title: str
    prompt: str = ""
    starter_code: str = ""
    solution_code: Optional[str] = None
    limits: dict = field(default_factory=dict)
    policy: Optional[CodePolicy] = None
    tests: Tuple[ExerciseTest, ...] = ()
    path: Optional[Path] = None
    student_copy: bool = False
    requirements: Tuple[RequirementTest, ...] = ()
    wrong_solutions: Tuple[WrongSolution, ...] = ()
    #: Course rules of the exercise's own; None means the server's default (``CourseRules``).
    due: Optional[datetime] = None
    late_policy: Optional[str] = None
    max_attempts: Optional[int] = None
    score_rule: Optional[str] = None

    @property
    def version(self) -> str:
        """A hash of what grades the exercise (its tests and requirements): two submissions with
        the same version were graded by the same tests."""
        graded = {
            "tests": [t.to_metadata() for t in self.tests],
            "requirements": [
                {"name": r.name, "rule": r.requirement.description, "points": r.points}
                for r in self.requirements
            ],
        }
        return hashlib.sha256(json.dumps(graded, sort_keys=True).encode()).hexdigest()[:16]

    #: Names of data files beside the notebook, given read-only in the runs' working directory.
    data_files: Tuple[str, ...] = ()

    def data_file_paths(self) -> list[Path]:
        folder = self.path.parent if self.path is not None else Path(".")
        return [folder / name for name in self.data_files]

    def read_data_files(self, max_bytes: Optional[int] = None) -> Tuple[DataFile, ...]:
        """The data files' contents, from beside the notebook.

        Raises:
            DataFilesError: a file is missing or unreadable, or together they pass ``max_bytes``;
                the message names the file, the exercise and the cap.
        """
        files, total = [], 0
        for name, path in zip(self.data_files, self.data_file_paths()):
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                raise DataFilesError(
                    f"exercise {self.id!r}: data file {name!r} is missing (it belongs "
                    f"beside the exercise notebook {self.path.name if self.path else ''})"
                ) from None
            except OSError as e:
                raise DataFilesError(
                    f"exercise {self.id!r}: data file {name!r} cannot be read "
                    f"({e.strerror or type(e).__name__})"
                ) from None
            total += len(data)
            if max_bytes is not None and total > max_bytes:
                raise DataFilesError(
                    f"exercise {self.id!r}: data file {name!r} brings the data files to "
                    f"{total} bytes, above the cap of {max_bytes} bytes "
                    "(DOCKER_EXECUTOR_DATA_FILES_BYTES)"
                )
            files.append(DataFile(name=name, data=data))
        return tuple(files)

    @property
    def max_score(self) -> float:
        return _points(sum(t.points for t in self.tests) + sum(r.points for r in self.requirements))

    @property
    def visible_tests(self) -> list[ExerciseTest]:
        return [t for t in self.tests if not t.hidden]

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "max_score": self.max_score}

    def public_dict(self, limits: Optional[Limits] = None) -> dict[str, Any]:
        """Everything a student may see: never hidden tests (beyond their count) or the solution.

        Args:
            limits: the limits a submission actually gets (the server's defaults and maxima
                applied); without it, the exercise's own limits as written.
        """
        hidden = [t for t in self.tests if t.hidden]
        run_limits = limits if limits is not None else self.resolved_limits()
        return {
            "id": self.id,
            "title": self.title,
            "prompt": self.prompt,
            "starter_code": self.starter_code,
            "limits": limits.to_dict() if limits is not None else dict(self.limits),
            "policy": self.policy.to_dict() if self.policy else None,
            "max_score": self.max_score,
            "tests": [t.public_dict() for t in self.visible_tests],
            "requirements": [r.public_dict() for r in self.requirements],
            "data_files": list(self.data_files),
            "hidden_tests": len(hidden),
            "hidden_points": _points(sum(t.points for t in hidden)),
            # The longest a grading can run in the sandbox (the code's time limit, then each test's
            # own timeout): clients size their HTTP timeouts by it. Hidden tests count only here.
            "grading_time_limit": round(run_limits.time_s + sum(t.timeout for t in self.tests), 3),
        }

    def resolved_limits(self, base: Optional[Limits] = None) -> Limits:
        return Limits.from_mapping(self.limits, base=base)


def _points(value: float) -> float:
    return round(float(value), 4)


def _cell_role(cell: Any) -> Optional[str]:
    meta = cell.get("metadata", {}).get(METADATA_KEY)
    return meta.get("role") if isinstance(meta, dict) else None


def _describe(
    path: Union[Path, str], error: jsonschema.ValidationError, tests: Sequence[Any]
) -> str:
    location = list(error.absolute_path)
    where = f"metadata {METADATA_KEY}"
    if len(location) >= 2 and location[0] == "tests" and isinstance(location[1], int):
        index = location[1]
        test = tests[index] if index < len(tests) and isinstance(tests[index], dict) else {}
        name = test.get("name") if isinstance(test.get("name"), str) else None
        where = f"test {name!r} (tests[{index}])" if name else f"tests[{index}]"
        location = location[2:]
    elif location:
        where += f" field {'.'.join(str(p) for p in location)!r}"
        location = []
    if error.validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        detail = f"missing required field {missing[0]!r}" if missing else error.message
    elif error.validator == "additionalProperties":
        detail = error.message.replace("Additional properties are not allowed", "unknown field(s)")
    else:
        detail = error.message
    field_name = f" field {'.'.join(str(p) for p in location)!r}" if location else ""
    return f"{path}: {where}{field_name}: {detail}"


def exercise_from_notebook(nb: Any, path: Union[Path, str] = "<notebook>") -> Exercise:
    """Builds an exercise from a loaded notebook.

    Raises:
        ExerciseError: the metadata is missing or invalid; the message names the notebook,
            the test and the field.
    """
    meta = nb.get("metadata", {}).get(METADATA_KEY)
    if meta is None:
        raise ExerciseError(
            f"{path}: not an exercise notebook (no '{METADATA_KEY}' in the notebook metadata)"
        )
    meta = json.loads(json.dumps(meta))  # plain dicts and lists, whatever nbformat wrapped them in
    tests_field = meta.get("tests") if isinstance(meta, dict) else None
    tests_raw: list[Any] = tests_field if isinstance(tests_field, list) else []
    errors = sorted(
        jsonschema.Draft202012Validator(schema()).iter_errors(meta),
        key=lambda e: list(map(str, e.absolute_path)),
    )
    if errors:
        raise ExerciseError(_describe(path, errors[0], tests_raw))

    tests = []
    seen = set()
    for index, raw in enumerate(tests_raw):
        where = f"{path}: test {raw['name']!r} (tests[{index}])"
        if raw["name"] in seen:
            raise ExerciseError(f"{where}: field 'name': another test has the same name")
        seen.add(raw["name"])
        try:
            compile(raw["test_code"], raw["name"], "exec")
        except SyntaxError as e:
            raise ExerciseError(
                f"{where}: field 'test_code': not valid Python ({e.msg}, line {e.lineno})"
            ) from None
        compare = raw.get("compare", "strip")
        if compare == "regex":
            if raw.get("expected_output") is None:
                raise ExerciseError(
                    f"{where}: field 'expected_output': compare 'regex' needs a pattern"
                )
            try:
                re.compile(raw["expected_output"])
            except re.error as e:
                raise ExerciseError(
                    f"{where}: field 'expected_output': not a valid regular expression ({e})"
                ) from None
        tests.append(
            ExerciseTest(
                name=raw["name"],
                test_code=raw["test_code"],
                expected_output=raw.get("expected_output"),
                points=float(raw.get("points", 1)),
                hidden=bool(raw.get("hidden", False)),
                timeout=float(raw.get("timeout", DEFAULT_TEST_TIMEOUT)),
                compare=compare,
                tolerance=float(raw.get("tolerance", DEFAULT_TOLERANCE)),
            )
        )

    requirements = []
    for index, raw in enumerate(meta.get("requirements") or []):
        try:
            rule = Requirement(
                rule=raw["rule"],
                function=raw.get("function"),
                construct=raw.get("construct"),
                exception=raw.get("exception"),
                why=raw.get("why", ""),
            )
        except ValueError as e:
            raise ExerciseError(
                f"{path}: metadata {METADATA_KEY} field 'requirements[{index}]': {e}"
            ) from None
        name = raw.get("name") or rule.default_name()
        if name in seen:
            raise ExerciseError(
                f"{path}: metadata {METADATA_KEY} field 'requirements[{index}]': "
                f"name {name!r} is also the name of a test or another requirement"
            )
        seen.add(name)
        requirements.append(
            RequirementTest(name=name, requirement=rule, points=float(raw.get("points", 1)))
        )
    wrong_solutions: list[WrongSolution] = []
    for index, raw in enumerate(meta.get("wrong_solutions") or []):
        if any(w.name == raw["name"] for w in wrong_solutions):
            raise ExerciseError(
                f"{path}: metadata {METADATA_KEY} field 'wrong_solutions[{index}]': "
                f"another wrong solution is named {raw['name']!r}"
            )
        wrong_solutions.append(
            WrongSolution(name=raw["name"], code=raw["code"], reason=raw.get("reason", ""))
        )

    limits = meta.get("limits") or {}
    try:
        Limits.from_mapping(limits)
    except LimitError as e:
        raise ExerciseError(f"{path}: metadata {METADATA_KEY} field 'limits': {e}") from None
    policy = None
    if meta.get("policy"):
        try:
            policy = CodePolicy.from_mapping(meta["policy"])
        except ValueError as e:
            raise ExerciseError(f"{path}: metadata {METADATA_KEY} field 'policy': {e}") from None

    due = None
    if meta.get("due") is not None:
        try:
            due = parse_due(meta["due"])
        except ValueError as e:
            raise ExerciseError(f"{path}: metadata {METADATA_KEY} field 'due': {e}") from None

    cells = nb.get("cells", [])
    by_role: dict[str, list[str]] = {role: [] for role in ROLES}
    for cell in cells:
        role = _cell_role(cell)
        if role is not None and role not in ROLES:
            raise ExerciseError(
                f"{path}: a cell has unknown role {role!r} (known roles: {', '.join(ROLES)})"
            )
        if role:
            by_role[role].append(cell.get("source", ""))
    prompt_cells = by_role["prompt"] or [
        c.get("source", "") for c in cells if c.get("cell_type") == "markdown"
    ]
    starter = "\n\n".join(by_role["starter"] or by_role["student"])
    solution = "\n\n".join(by_role["solution"]) if by_role["solution"] else None
    return Exercise(
        id=meta["exercise_id"],
        title=meta.get("title") or meta["exercise_id"],
        prompt="\n\n".join(prompt_cells).strip(),
        starter_code=starter,
        solution_code=solution,
        limits=dict(limits),
        policy=policy,
        tests=tuple(tests),
        path=Path(path) if not isinstance(path, Path) else path,
        student_copy=bool(meta.get("student_copy", False)),
        requirements=tuple(requirements),
        wrong_solutions=tuple(wrong_solutions),
        due=due,
        late_policy=meta.get("late"),
        max_attempts=meta.get("max_attempts"),
        score_rule=meta.get("score_rule"),
        data_files=tuple(meta.get("data_files") or ()),
    )


def parse_due(text: str) -> datetime:
    """An ISO 8601 time with a time zone (``Z`` or an offset).

    Raises:
        ValueError: not such a time; the message names the value and the expected form.
    """
    raw = text.strip()
    try:
        moment = datetime.fromisoformat(raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO 8601 time (e.g. 2026-12-01T23:59:00+01:00)"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{text!r} has no time zone; add one, e.g. {raw}Z for UTC or {raw}+01:00")
    return moment


def load_exercise(path: Union[Path, str]) -> Exercise:
    """Reads an exercise notebook from disk.

    Raises:
        ExerciseError: the file is not a readable notebook or not a valid exercise.
    """
    path = Path(path)
    try:
        nb = nbformat.read(str(path), as_version=4)
    except FileNotFoundError:
        raise ExerciseError(f"{path}: no such file") from None
    except Exception as e:  # nbformat raises many kinds for a file that is not a notebook
        raise ExerciseError(f"{path}: not a readable notebook ({type(e).__name__}: {e})") from None
    return exercise_from_notebook(nb, path)
