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

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_USAGE", "command_line", "dataset_names", "fail",
           "load_table", "set_threads"]

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def command_line(args: argparse.Namespace | None = None) -> str:
    """The command that is running, for provenance (``args.argv`` when ``main`` set it)."""
    argv = getattr(args, "argv", None)
    if argv is None:
        argv = sys.argv[1:]
    return "rramsim " + " ".join(shlex.quote(str(a)) for a in argv)


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
