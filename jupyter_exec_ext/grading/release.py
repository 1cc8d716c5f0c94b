"""The student copy of an exercise notebook (hidden tests and reference solutions removed), and the
students' workspace that holds such copies."""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import nbformat

from .exercise import METADATA_KEY, ExerciseError, _cell_role, exercise_from_notebook

log = logging.getLogger(__name__)


def student_copy(nb: Any, path: Union[str, Path] = "<notebook>") -> Any:
    """Returns the student copy of an (already valid) exercise notebook.

    Solution cells are dropped; starter cells become the ``student`` cells students edit; every
    code cell loses its outputs (they could show what the solution prints); the metadata keeps
    the id, title, limits, policy, requirement rules and the visible tests only (wrong solutions
    are dropped: they are answers too, and some are nearly right).

    Raises:
        ExerciseError: the notebook is not a valid exercise.
    """
    exercise = exercise_from_notebook(nb, path)
    out = copy.deepcopy(nb)
    cells = []
    for cell in out.cells:
        role = _cell_role(cell)
        if role == "solution":
            continue
        if role == "starter":
            cell.metadata[METADATA_KEY]["role"] = "student"
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cells.append(cell)
    out.cells = cells
    meta = out.metadata[METADATA_KEY]
    meta["tests"] = [t.to_metadata() for t in exercise.visible_tests]
    meta.pop("wrong_solutions", None)
    meta["student_copy"] = True
    return out


def release(src: Union[str, Path], dst: Union[str, Path], *, force: bool = False) -> list[Path]:
    """Writes student copies of ``src`` (a notebook or a directory of them) to ``dst``, each with
    its exercise's data files beside it.

    A directory is mirrored; a file goes to ``dst`` if it ends in ``.ipynb``, else into the
    directory ``dst``. Nothing is overwritten without ``force`` (a data file that is already there
    with the same content is fine), and a source is never its own destination.

    Returns:
        The files written.

    Raises:
        ExerciseError: a source notebook is not a valid exercise, or a data file it declares is
            missing (nothing is written then).
        FileExistsError: a destination file exists and ``force`` is not set.
        ValueError: the destination is the source.
    """
    src, dst = Path(src), Path(dst)
    if src.is_dir():
        pairs = [
            (p, dst / p.relative_to(src))
            for p in sorted(src.rglob("*.ipynb"))
            if ".ipynb_checkpoints" not in p.parts
        ]
    else:
        # A destination that is not a notebook path is a directory, existing or not.
        target = dst if dst.suffix == ".ipynb" and not dst.is_dir() else dst / src.name
        pairs = [(src, target)]
    copies = []
    for source, target in pairs:
        if target.resolve() == source.resolve():
            raise ValueError(f"{target}: the student copy would overwrite its source")
        if target.exists() and not force:
            raise FileExistsError(f"{target} exists; pass --force to overwrite it")
        nb = nbformat.read(str(source), as_version=4)
        copy_nb = student_copy(nb, source)
        files = [
            (target.parent / f.name, f.data)
            for f in exercise_from_notebook(nb, source).read_data_files()
        ]
        for path, data in files:
            if path.exists() and not force and path.read_bytes() != data:
                raise FileExistsError(
                    f"{path} exists with other content; pass --force to overwrite it"
                )
        copies.append((target, copy_nb, files))
    written = []
    for target, nb, files in copies:
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(target))
        written.append(target)
        for path, data in files:
            if not path.exists() or path.read_bytes() != data:
                _write_atomic(path, data)
                written.append(path)
    return written


#: In the workspace: what each student copy looked like when it was written (hidden from Jupyter,
#: which serves no dotfiles), so an update can tell a student's edits from an untouched copy.
WORKSPACE_RECORD = ".jupyter-exec-release.json"


@dataclass(frozen=True)
class WorkspaceChange:
    """What :func:`update_workspace` did with one authoritative notebook.

    ``action`` is ``added`` (new exercise), ``updated`` (an untouched copy replaced by the new
    version), ``added beside`` (the student edited the old copy: it stays, the new version is
    ``path``), ``unchanged``, or ``skipped`` (not a valid exercise; ``message`` says why).
    """

    source: Path
    path: Optional[Path]
    action: str
    message: str = ""


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _update_data_file(workspace: Path, path: Path, data: bytes, record: dict[str, str]) -> None:
    """A data file beside a student copy: written when absent or as the last release left it; a
    file the student changed stays theirs (the sandbox always uses the exercise's own)."""
    rel = path.relative_to(workspace).as_posix()
    new = _digest(data)
    if not path.exists() or _digest(path.read_bytes()) == record.get(rel):
        if not path.exists() or _digest(path.read_bytes()) != new:
            _write_atomic(path, data)
        record[rel] = new


def _beside(target: Path) -> Path:
    n = 2
    while True:
        candidate = target.with_name(f"{target.stem} (version {n}){target.suffix}")
        if not candidate.exists():
            return candidate
        n += 1


def authoritative_notebooks(
    directory: Union[str, Path], exclude: Optional[Path] = None
) -> list[Path]:
    """The notebooks under ``directory`` except checkpoints, dot folders and ``exclude``."""
    directory = Path(directory)
    found = []
    for path in sorted(directory.rglob("*.ipynb")):
        rel = path.relative_to(directory)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if exclude is not None and path.resolve().is_relative_to(exclude.resolve()):
            continue
        found.append(path)
    return found


def update_workspace(
    src: Union[str, Path], workspace: Union[str, Path], sources: Optional[list[Path]] = None
) -> list[WorkspaceChange]:
    """Brings a students' workspace up to date with the authoritative notebooks under ``src``,
    never overwriting a student's work.

    Each exercise's student copy goes to the same relative path in ``workspace``. A new exercise
    is added; an updated one replaces its copy only if the student has not changed that copy since
    it was written, else the new version is written beside it (``name (version 2).ipynb``).
    Notebooks that are not valid exercises, and student copies, are skipped (their changes say
    why); a workspace inside ``src`` is not read as a source.

    Args:
        src: the exercise directory (authoritative notebooks).
        workspace: the folder students work in.
        sources: only these notebooks under ``src`` (default: all of them).

    Raises:
        ValueError: the workspace is the exercise directory itself.
    """
    src, workspace = Path(src), Path(workspace)
    if workspace.resolve() == src.resolve():
        raise ValueError(f"{workspace}: the workspace cannot be the exercise directory itself")
    record_path = workspace / WORKSPACE_RECORD
    try:
        record: dict[str, str] = json.loads(record_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        record = {}
    except ValueError:
        log.warning(
            "%s is not valid JSON; every edited copy counts as a student's work", record_path
        )
        record = {}
    changes = []
    for source in (
        sources if sources is not None else authoritative_notebooks(src, exclude=workspace)
    ):
        rel = source.resolve().relative_to(src.resolve()).as_posix()
        try:
            nb = nbformat.read(str(source), as_version=4)
            if nb.metadata.get(METADATA_KEY, {}).get("student_copy"):
                changes.append(
                    WorkspaceChange(
                        source, None, "skipped", f"{source}: a student copy, not an exercise"
                    )
                )
                continue
            data = nbformat.writes(student_copy(nb, source)).encode("utf-8") + b"\n"
            data_files = exercise_from_notebook(nb, source).read_data_files()
        except ExerciseError as e:
            changes.append(WorkspaceChange(source, None, "skipped", str(e)))
            continue
        except Exception as e:  # nbformat raises many kinds for a file that is not a notebook
            changes.append(
                WorkspaceChange(
                    source,
                    None,
                    "skipped",
                    f"{source}: not a readable notebook ({type(e).__name__}: {e})",
                )
            )
            continue
        new, target = _digest(data), workspace / rel
        if not target.exists():
            _write_atomic(target, data)
            action = "added"
        else:
            current = _digest(target.read_bytes())
            if current == new or record.get(rel) == new:
                action = "unchanged"  # also when the student edited a copy of this same version
            elif current == record.get(rel):
                _write_atomic(target, data)
                action = "updated"
            else:
                target = _beside(target)
                _write_atomic(target, data)
                action = "added beside"
        record[rel] = new
        changes.append(WorkspaceChange(source, target, action))
        for f in data_files:
            _update_data_file(workspace, target.parent / f.name, f.data, record)
    if changes:
        _write_atomic(record_path, json.dumps(record, indent=1, sort_keys=True).encode("utf-8"))
    return changes
