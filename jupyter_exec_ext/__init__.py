"""jupyter-exec-ext: run and grade students' Python code in hardened Docker containers from Jupyter."""

__version__ = "0.1.0"
