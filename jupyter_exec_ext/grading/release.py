"""The student copy of an exercise notebook: hidden tests and reference solutions removed."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Union

import nbformat

from .exercise import METADATA_KEY, _cell_role, exercise_from_notebook


def student_copy(nb: Any, path: Union[str, Path] = "<notebook>") -> Any:
    """Returns the student copy of an (already valid) exercise notebook.

    Solution cells are dropped; starter cells become the ``student`` cells students edit; every
    code cell loses its outputs (they could show what the solution prints); the metadata keeps
    the id, title, limits, policy and the visible tests only.

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
    meta["student_copy"] = True
    return out


def release(src: Union[str, Path], dst: Union[str, Path], *, force: bool = False) -> list[Path]:
    """Writes student copies of ``src`` (a notebook or a directory of them) to ``dst``.

    A directory is mirrored; a file goes to ``dst`` if it ends in ``.ipynb``, else into the
    directory ``dst``. Nothing is
    overwritten without ``force``, and a source is never its own destination.

    Returns:
        The files written.

    Raises:
        ExerciseError: a source notebook is not a valid exercise (nothing is written then).
        FileExistsError: a destination file exists and ``force`` is not set.
        ValueError: the destination is the source.
    """
    src, dst = Path(src), Path(dst)
    if src.is_dir():
        pairs = [(p, dst / p.relative_to(src)) for p in sorted(src.rglob("*.ipynb"))
                 if ".ipynb_checkpoints" not in p.parts]
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
        copies.append((target, student_copy(nbformat.read(str(source), as_version=4), source)))
    for target, nb in copies:
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(target))
    return [t for t, _ in copies]
