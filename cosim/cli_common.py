"""Helpers every ``rramsim`` command shares: provenance, tables, threads, datasets, errors.

Exit codes (all commands): 0 success, :data:`EXIT_FAILED` (1) the command failed, with one
``rramsim COMMAND: error: ...`` line on stderr; :data:`EXIT_USAGE` (2) the command line
itself was wrong (argparse's own exit); :data:`EXIT_INTERRUPTED` (130) Ctrl-C.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_USAGE",
    "command_line",
    "dataset_names",
    "fail",
    "load_table",
    "set_threads",
]

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def command_line(args: argparse.Namespace | None = None) -> str:
    """The command that is running, for provenance: ``args.argv``, the command line that
    ``main`` parsed. A command called from Python (its namespace built without ``main``)
    has no command line of its own (``sys.argv`` is the calling program's): it is recorded
    as called from Python, with the namespace's values."""
    argv = getattr(args, "argv", None)
    if argv is not None:
        return "rramsim " + " ".join(shlex.quote(str(a)) for a in argv)
    if args is None:
        return "rramsim (called from Python)"
    values = {k: v for k, v in sorted(vars(args).items()) if k not in ("argv", "command") and not callable(v)}
    command = getattr(args, "command", None)
    return (
        f"rramsim{' ' + command if command else ''} (called from Python: "
        + ", ".join(f"{k}={v!r}" for k, v in values.items())
        + ")"
    )


def load_table(path: str | None):
    """``(DeviceTable, name for reports)`` of the table at ``path``, or the shipped default table."""
    from rramsim.devices import DeviceTable, load_default_table

    if path:
        if not Path(path).is_file():
            raise FileNotFoundError(f"device table {path!r} does not exist (make one with `rramsim characterize`)")
        return DeviceTable.load(path), str(path)
    return load_default_table(), "shipped default table (rramsim.devices.load_default_table)"


def set_threads(n: int | None) -> None:
    """``--threads N``: torch's CPU threads (None: leave torch's default)."""
    if n is None:
        return
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"--threads must be a positive integer, got {n}")
    import torch

    torch.set_num_threads(int(n))


def dataset_names() -> list[str]:
    """The datasets a command may name (``rramsim.models.data.DATASETS``, listed without
    importing torch: the parser stays fast)."""
    from rramsim.models import DATASET_NAMES

    return sorted(DATASET_NAMES)


def fail(args: argparse.Namespace, message: str) -> int:
    """Print ``rramsim COMMAND: error: message`` to stderr and return :data:`EXIT_FAILED`."""
    command = getattr(args, "command", None)
    print(f"rramsim{' ' + command if command else ''}: error: {message}", file=sys.stderr)
    return EXIT_FAILED
