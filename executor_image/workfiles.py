"""An exercise's data files in the program's working directory (/tmp), read-only (stdlib only).

The runner (uid 0) writes them before the program starts, owned by root with mode 0444. /tmp is
sticky, so the student's uid can neither write, rename, replace nor delete them (only a file's
owner may), and the zygote's cleaning between tests, which runs as the student's and the harness's
uids, leaves them in place for every test. The runner removes them after the job.
"""

import base64
import os
import re

WORKDIR = "/tmp"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")


def place(files):
    """Writes ``[{"name", "data" (base64)}]`` into the working directory; returns the names.

    Raises:
        ValueError: a name is not a plain file name, or the data is not base64.
        OSError: a file could not be written (the message names it).
    """
    names = []
    for entry in files:
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not NAME.match(name):
            raise ValueError("data file name %r is not a plain file name" % (name,))
        data = base64.b64decode(entry.get("data") or "", validate=True)
        path = os.path.join(WORKDIR, name)
        try:
            os.unlink(path)  # left by an earlier job of this container; ours, as it is root's
        except FileNotFoundError:
            pass
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o444)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, 0o444)
        finally:
            os.close(fd)
        names.append(name)
    return names


def remove(names):
    for name in names:
        try:
            os.unlink(os.path.join(WORKDIR, name))
        except OSError:
            pass
