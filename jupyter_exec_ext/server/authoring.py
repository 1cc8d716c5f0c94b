"""Routes of the authoring UI under ``{base_url}api/exec/v1/authoring/``: the server's mode for
every user, and, in instructor mode only, validate, preview and release of an exercise notebook.

The notebook is named by its path under the server's root directory (as the Contents API names
it) and read from disk, so the instructor saves before asking. Local mode only: on a hub, the
executor service owns the exercise directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import nbformat
import tornado.web
from jupyter_server.auth.decorator import authorized

from ..grading import ExerciseError, load_exercise, schema, student_copy, update_workspace
from ..grading.validation import check_exercise
from .errors import ApiError
from .handlers import NAMESPACE, ExecAPIHandler

INSTRUCTOR_HINT = (
    "authoring is for instructor mode only (start the server with "
    "`bash scripts/run.sh --instructor`, or c.ExecExtApp.instructor = True)"
)


class AuthoringHandler(ExecAPIHandler):
    """Shared by the authoring routes: instructor mode and the notebook a request names."""

    @property
    def instructor(self) -> bool:
        return self.context.instructor

    def require_instructor(self) -> None:
        if not self.instructor:
            raise ApiError(INSTRUCTOR_HINT, status=403)

    def notebook_path(self) -> Path:
        """The file a request's ``path`` names, under the server's root directory.

        Raises:
            ApiError: no ``path``, a path outside the root directory, not a notebook, or no such file.
        """
        raw = self.json_body().get("path")
        if not isinstance(raw, str) or not raw.strip():
            raise ApiError("field 'path' is required: the notebook's path, e.g. 'week1/add.ipynb'")
        root = Path(self.settings["server_root_dir"]).resolve()
        try:
            path = (root / raw.lstrip("/")).resolve()
        except (OSError, ValueError):  # e.g. a NUL byte, a loop of links
            raise ApiError(f"field 'path': {raw!r} is not a usable path") from None
        if not path.is_relative_to(root):
            raise ApiError(f"field 'path': {raw!r} is outside the server's root directory")
        if path.suffix != ".ipynb":
            raise ApiError(f"field 'path': {raw!r} is not a notebook (.ipynb)")
        if not path.is_file():
            raise ApiError(f"field 'path': no notebook {raw!r}", status=404)
        return path

    async def exercise_at(self, path: Path) -> Any:
        try:
            exercise = await self.scheduler.query(lambda: load_exercise(path))
        except ExerciseError as e:
            raise ApiError(self.relative(str(e))) from None
        if exercise.student_copy:
            raise ApiError(
                f"{self.relative(str(path))} is a student copy; open the exercise itself"
            )
        return exercise

    async def requested_exercise(self) -> tuple[Path, Any]:
        """Instructor mode only: the notebook the request names and its exercise (an ApiError
        otherwise)."""
        self.require_instructor()
        path = self.notebook_path()
        return path, await self.exercise_at(path)

    def relative(self, text: str) -> str:
        """Messages name files as the instructor sees them in JupyterLab, not by host path."""
        return text.replace(str(Path(self.settings["server_root_dir"]).resolve()) + "/", "")


class ModeRoute(AuthoringHandler):
    """``GET authoring/mode``: ``{mode: student | instructor}``, so the UI shows what fits."""

    route = "authoring/mode"

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        self.finish(
            {
                "mode": "instructor" if self.instructor else "student",
                "instructor": self.is_instructor,
            }
        )


class SchemaRoute(AuthoringHandler):
    """``GET authoring/schema``: the JSON schema the Exercise panel enforces as the instructor types."""

    route = "authoring/schema"

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        self.require_instructor()
        self.finish(schema())


class ValidateRoute(AuthoringHandler):
    """``POST authoring/validate`` ``{path}``: the reference solution and the starter code graded
    in the sandbox, every test's result (hidden ones in full)."""

    route = "authoring/validate"

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        _, exercise = await self.requested_exercise()
        grader = self.context.grader
        check = await self.scheduler.run(self.principal, lambda: check_exercise(grader, exercise))
        self.finish(check.to_dict())


class PreviewRoute(AuthoringHandler):
    """``POST authoring/preview`` ``{path}``: the student copy release would write, as notebook JSON."""

    route = "authoring/preview"

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        path, _ = await self.requested_exercise()

        def preview() -> dict:
            return json.loads(
                nbformat.writes(student_copy(nbformat.read(str(path), as_version=4), path))
            )

        self.finish({"notebook": await self.scheduler.query(preview)})


class ReleaseRoute(AuthoringHandler):
    """``POST authoring/release`` ``{path}``: writes the student copy into the students' workspace
    (where student mode serves it), never over a student's edited copy."""

    route = "authoring/release"

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        path, _ = await self.requested_exercise()
        exercises = self.context.exercises_dir or ""
        workspace = self.context.workspace_dir or ""
        if not workspace:
            raise ApiError(
                "this server has no students' workspace to release into "
                "(c.ExecExtApp.workspace_dir)",
                status=409,
            )
        # Resolving a configured directory (as notebook_path() does) is a few stats: no thread.
        if not exercises or not path.is_relative_to(Path(exercises).resolve()):  # noqa: ASYNC240
            raise ApiError(
                f"{self.relative(str(path))} is not in the exercise directory, so the "
                "grader would not know it; move it there first",
                status=409,
            )
        [change] = await self.scheduler.query(
            lambda: update_workspace(exercises, workspace, sources=[path])
        )
        if change.action == "skipped":
            raise ApiError(self.relative(change.message))
        self.finish(
            {"action": change.action, "path": change.path.relative_to(Path(workspace)).as_posix()}
        )


AUTHORING_ROUTES = [
    (f"{NAMESPACE}/authoring/mode", ModeRoute),
    (f"{NAMESPACE}/authoring/schema", SchemaRoute),
    (f"{NAMESPACE}/authoring/validate", ValidateRoute),
    (f"{NAMESPACE}/authoring/preview", PreviewRoute),
    (f"{NAMESPACE}/authoring/release", ReleaseRoute),
]
