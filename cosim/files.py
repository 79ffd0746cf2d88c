"""Files written atomically: a reader sees the old file or the whole new one, never a part.

Everything the command-line tools write (exports, reports, plots, campaign batches) goes
through :func:`atomic_write`: the data go to a temporary file in the same folder, which
then replaces the target with ``os.replace``; on any error the temporary file is removed
and the target is left as it was.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def atomic_write(path: str | os.PathLike, data: bytes | str | Callable[[str], None], fsync: bool = False) -> Path:
    """Write ``data`` (bytes, text, or a function that writes the file at the path it is
    given, e.g. ``fig.savefig``) to ``path`` atomically; returns the path.

    The folder must exist (a ``ValueError`` names it otherwise). The new file gets the
    usual mode (0644 less the umask), not the 0600 of a temporary file.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ValueError(f"cannot write {path}: folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=folder)
    try:
        if callable(data):
            os.close(fd)
            data(tmp)
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data.encode() if isinstance(data, str) else data)
                if fsync:
                    fh.flush()
                    os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
