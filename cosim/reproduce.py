"""``rramsim reproduce {lowbit,forms,basisn}``: the published methods on rramsim's layers.

Each writes a markdown report (``-o REPORT.md``) with the paper's numbers beside ours,
the command, seed, device table and runtime. ``--small`` is the CI-sized version.
"""
from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from rramsim.cosim.argtypes import positive_int

__all__ = ["add_commands", "cmd_reproduce", "METHODS"]

METHODS = ("lowbit", "forms", "basisn")


def _command_line(args: argparse.Namespace) -> str:
    argv = getattr(args, "argv", None)
    if argv is None:
        argv = sys.argv[1:]
    return "rramsim " + " ".join(shlex.quote(str(a)) for a in argv)


def _load_table(path: str | None):
    from rramsim.devices import DeviceTable, load_default_table

    if path:
        if not Path(path).is_file():
            raise FileNotFoundError(f"device table {path!r} does not exist (make one with `rramsim characterize`)")
        return DeviceTable.load(path), str(path)
    return load_default_table(), "shipped default table (rramsim.devices.load_default_table)"


def cmd_reproduce(args: argparse.Namespace) -> int:
    import torch

    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(int(args.threads))
    out = Path(args.output)
    if out.parent and not out.parent.exists():
        raise ValueError(f"report folder {out.parent} does not exist; create it or choose another -o path")
    table, name = _load_table(args.table)
    log = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    common = dict(table_name=name, small=args.small, seed=args.seed, command=_command_line(args), log=log)
    t0 = time.perf_counter()
    if args.method == "lowbit":
        from rramsim.models.methods.lowbit import reproduce_lowbit
        rep = reproduce_lowbit(table, epochs=args.epochs, **common)
    elif args.method == "forms":
        from rramsim.models.methods.forms import reproduce_forms
        rep = reproduce_forms(table, epochs=args.epochs, **common)
    else:
        from rramsim.models.methods.basisn import reproduce_basisn
        rep = reproduce_basisn(table, epochs=args.epochs, n_bases=args.bases, coef_bits=args.coef_bits,
                               quant=args.quant, **common)
    rep.write(out)
    print(f"rramsim reproduce {args.method}: wrote {out} ({time.perf_counter() - t0:.1f} s)")
    return 0


def add_commands(subparsers) -> None:
    """Register ``reproduce {lowbit,forms,basisn}``."""
    p = subparsers.add_parser("reproduce", help="reproduce a published CIM method and write a markdown report")
    sub = p.add_subparsers(dest="method", metavar="METHOD")
    sub.required = True
    helps = {"lowbit": "1-bit weights / 2-bit activations LeNet-5 on a 7-rows-per-read macro (Weinstock 2023)",
             "forms": "polarized fragments by ADMM, sign-per-fragment mapping (FORMS, Yuan 2021)",
             "basisn": "global basis kernels written once vs reprogramming (BasisN, Eldebiky 2024)"}
    for m in METHODS:
        q = sub.add_parser(m, help=helps[m])
        q.add_argument("--small", action="store_true", help="the CI-sized version (a minute or less)")
        q.add_argument("-o", "--output", default=f"{m}.md", metavar="REPORT.md", help="markdown report to write")
        q.add_argument("--table", metavar="FILE", default=None, help="DeviceTable (default: the shipped table)")
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--epochs", type=positive_int, default=None, help="training epochs (default: per method)")
        q.add_argument("--threads", type=int, default=None, help="torch CPU threads")
        q.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
        if m == "basisn":
            q.add_argument("--bases", type=positive_int, default=9, help="global 3x3 basis kernels (1..9, default 9)")
            q.add_argument("--coef-bits", type=positive_int, default=4, help="coefficient bits (default 4)")
            q.add_argument("--quant", choices=["int", "pow2", "none"], default="int",
                           help="coefficient quantization (default int)")
        q.set_defaults(func=cmd_reproduce)
