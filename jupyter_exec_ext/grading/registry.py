"""The directory of authoritative exercise notebooks, looked up by exercise id."""

from __future__ import annotations

import builtins
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Union

from .exercise import Exercise, ExerciseError, ExerciseNotFound, load_exercise

log = logging.getLogger(__name__)


def group_definitions(
    loaded: Iterable[tuple[Path, Exercise]],
) -> dict[str, list[tuple[Path, Exercise]]]:
    """Exercise definitions (notebook and exercise) by id, each id's in the order given. Student
    copies (``student_copy`` set by release) share their exercise's id and are no definitions:
    they are left out. An id with more than one definition is a duplicate."""
    grouped: dict[str, list[tuple[Path, Exercise]]] = {}
    for path, exercise in loaded:
        if not exercise.student_copy:
            grouped.setdefault(exercise.id, []).append((path, exercise))
    return grouped


@dataclass
class LoadedNotebook:
    """One notebook as ``load_notebooks`` found it: its exercise, or the problem that makes it
    unusable (it does not load, or an earlier notebook already defines its id)."""

    path: Path
    exercise: Optional[Exercise] = None
    problem: str = ""


def load_notebooks(paths: Iterable[Path]) -> list[LoadedNotebook]:
    """Loads each notebook in order. The first definition of an id wins, as the instructor reads
    the list; a later one with the same id is a problem naming the first (student copies may
    share an id)."""
    loaded: list[LoadedNotebook] = []
    for path in paths:
        try:
            loaded.append(LoadedNotebook(path, load_exercise(path)))
        except ExerciseError as e:
            loaded.append(LoadedNotebook(path, problem=str(e)))
    definitions = group_definitions((n.path, n.exercise) for n in loaded if n.exercise is not None)
    for notebook in loaded:
        exercise = notebook.exercise
        if exercise is None or exercise.student_copy:
            continue
        first_path, first = definitions[exercise.id][0]
        if first is not exercise:
            notebook.problem = (
                f"{notebook.path}: exercise id {exercise.id!r} is also used by {first_path}"
            )
            notebook.exercise = None
    return loaded


class ExerciseRegistry:
    """Exercise notebooks under a directory, kept current without a restart.

    Each lookup rescans (at most every ``rescan_interval`` seconds): new and changed notebooks are
    loaded, removed ones dropped. Student copies (``student_copy`` set by release) are not
    definitions and are ignored wherever they lie, e.g. a release into a subfolder. A notebook
    that fails to load, or two notebooks with the same id, are problems: they are logged, listed
    by :meth:`problems`, and a lookup of a duplicated id raises an error naming both files.
    Thread-safe.
    """

    def __init__(self, directory: Union[str, Path], rescan_interval: float = 1.0):
        self.directory = Path(directory)
        self.rescan_interval = rescan_interval
        self._lock = threading.Lock()
        self._files: dict[Path, tuple] = {}  # path -> (mtime_ns, size, Exercise | ExerciseError)
        self._by_id: dict[str, Exercise] = {}
        self._duplicates: dict[str, list[Path]] = {}
        self._scanned_at = float("-inf")

    def _notebooks(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        found: list[Path] = []
        for root, dirs, files in os.walk(self.directory):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # skips .ipynb_checkpoints
            found.extend(Path(root) / f for f in sorted(files) if f.endswith(".ipynb"))
        return found

    def refresh(self, force: bool = False) -> None:
        """Rescans the directory (done by every lookup; call it to force one)."""
        with self._lock:
            now = time.monotonic()
            if not force and now - self._scanned_at < self.rescan_interval:
                return
            self._scanned_at = now
            files: dict[Path, tuple] = {}
            for path in self._notebooks():
                try:
                    st = path.stat()
                except OSError:
                    continue
                key = (st.st_mtime_ns, st.st_size)
                old = self._files.get(path)
                if old and old[:2] == key:
                    files[path] = old
                    continue
                try:
                    loaded: Union[Exercise, ExerciseError] = load_exercise(path)
                except ExerciseError as e:
                    loaded = e
                    log.warning("exercise notebook skipped: %s", e)
                files[path] = (*key, loaded)
            by_path = {
                i: [path for path, _ in defined]
                for i, defined in group_definitions(
                    (path, loaded)
                    for path, (_, _, loaded) in files.items()
                    if isinstance(loaded, Exercise)
                ).items()
            }
            self._files = files
            self._duplicates = {i: paths for i, paths in by_path.items() if len(paths) > 1}
            for exercise_id, paths in self._duplicates.items():
                log.warning(
                    "duplicate exercise id %r in %s", exercise_id, " and ".join(map(str, paths))
                )
            self._by_id = {i: files[paths[0]][2] for i, paths in by_path.items() if len(paths) == 1}

    def list(self) -> list[Exercise]:
        """The usable exercises, ordered by id."""
        self.refresh()
        with self._lock:
            return [self._by_id[i] for i in sorted(self._by_id)]

    def get(self, exercise_id: str) -> Exercise:
        """The exercise with this id.

        Raises:
            ExerciseNotFound: no notebook has this id.
            ExerciseError: several notebooks have it (the message names them).
        """
        self.refresh()
        with self._lock:
            if exercise_id in self._duplicates:
                paths = " and ".join(str(p) for p in self._duplicates[exercise_id])
                raise ExerciseError(
                    f"exercise id {exercise_id!r} is used by more than one notebook: {paths}"
                )
            try:
                return self._by_id[exercise_id]
            except KeyError:
                raise ExerciseNotFound(exercise_id) from None

    def problems(self) -> builtins.list[str]:  # plain `list` here is the method above
        """Notebooks that could not be loaded, and duplicated ids, as messages."""
        self.refresh()
        with self._lock:
            found = [
                str(loaded)
                for _, _, loaded in self._files.values()
                if isinstance(loaded, ExerciseError)
            ]
            found += [
                f"exercise id {i!r} is used by more than one notebook: {' and '.join(map(str, p))}"
                for i, p in self._duplicates.items()
            ]
            return found
