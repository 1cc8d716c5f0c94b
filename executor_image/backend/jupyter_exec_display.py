"""The sandbox's matplotlib backend: Agg, with ``plt.show()`` and the figures still open when the
program ends sent to the runner as PNG images.

Loaded by matplotlib only when a program draws (``MPLBACKEND=module://jupyter_exec_display``), so a
program that does not use matplotlib imports nothing of it. Images go to the display pipe whose
descriptor is in ``EXEC_DISPLAY_FD`` (the runner checks and caps what arrives there); without one,
as in a test's process, figures are closed and nothing is sent.
"""

import atexit
import io
import os

from matplotlib._pylab_helpers import Gcf
from matplotlib.backend_bases import _Backend
from matplotlib.backends.backend_agg import _BackendAgg


def _display_fd():
    try:
        return int(os.environ.get("EXEC_DISPLAY_FD", ""))
    except ValueError:
        return None


def send_png(data):
    """Writes one image record; False when the runner no longer listens."""
    fd = _display_fd()
    if fd is None:
        return False
    view = memoryview(len(data).to_bytes(4, "big") + data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError:
        return False
    return True


def show_all():
    """Sends every open figure, oldest first, then closes them (as a GUI window's show would)."""
    for manager in Gcf.get_all_fig_managers():
        buffer = io.BytesIO()
        try:
            manager.canvas.figure.savefig(buffer, format="png")
        except Exception as e:  # a figure that cannot be drawn says why, the others still come
            import sys

            print(
                "figure %s could not be drawn: %s: %s" % (manager.num, type(e).__name__, e),
                file=sys.stderr,
            )
            continue
        send_png(buffer.getvalue())
    Gcf.destroy_all()


@_Backend.export
class _BackendSandbox(_BackendAgg):
    @staticmethod
    def show(*args, **kwargs):
        show_all()


atexit.register(show_all)  # figures left open when the program ends come back too
