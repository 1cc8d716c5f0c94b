"""Kernel side: a client of the REST API, IPython magics and the ipywidgets exercise widget.

``ExerciseWidget`` is imported lazily, so the client and magics work without ipywidgets loaded.
"""

from typing import Any

from .client import ExecClient, ExecClientError

__all__ = ["ExecClient", "ExecClientError", "ExerciseWidget"]


def __getattr__(name: str) -> Any:
    if name == "ExerciseWidget":
        from .widget import ExerciseWidget

        return ExerciseWidget
    raise AttributeError(name)
