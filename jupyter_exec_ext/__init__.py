"""jupyter-exec-ext: run and grade students' Python code in hardened Docker containers from Jupyter."""

from typing import Any

__version__ = "0.1.0"


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """Tells jupyter_server where the extension app is (imported only when the server loads it,
    so the sandbox and the command line stay free of Jupyter imports)."""
    from .server.app import ExecExtApp

    return [{"module": "jupyter_exec_ext.server.app", "app": ExecExtApp}]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyter_exec_ext``: registers ``%%sandbox``, ``%%submit``, ``%sandbox_status``
    and ``%sandbox_connect``, and says which server the kernel will use and how it was found.

    Imports the magics only now, so importing the package stays light.

    Args:
        ipython: the running InteractiveShell.
    """
    from .kernel.magics import SandboxMagics, announce

    magics = SandboxMagics(ipython)
    ipython.register_magics(magics)
    announce(magics)
