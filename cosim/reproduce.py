"""``rramsim reproduce METHOD``: the published methods on rramsim's layers.

Each writes a markdown report (``-o REPORT.md``) with the paper's numbers beside ours,
the command, seed, device table and runtime. ``--small`` is the CI-sized version.

The methods are registered in :data:`METHODS`: a new one is one more entry (its help line,
its ``reproduce_NAME`` function as ``"module:function"``, and any arguments of its own),
nothing else of this module changes.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from rramsim.cosim.argtypes import positive_int
from rramsim.cosim.cli_common import command_line, fail, load_table, set_threads

__all__ = ["METHODS", "Method", "add_commands", "cmd_reproduce"]


@dataclass(frozen=True)
class Method:
    """A reproducible method: ``run`` names ``reproduce_NAME(table, *, table_name, small, seed,
    epochs, command, log, **options)``; ``add_arguments(parser)`` declares its own options and
    ``options(args)`` turns them into keyword arguments of ``run``. ``datasets`` are fetched
    first when they are missing."""

    help: str
    run: str
    datasets: tuple[str, ...] = ()
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None
    options: Callable[[argparse.Namespace], dict] = field(default=lambda args: {})

    def function(self) -> Callable:
        module, _, name = self.run.partition(":")
        return getattr(importlib.import_module(module), name)


def _basisn_arguments(q: argparse.ArgumentParser) -> None:
    q.add_argument("--bases", type=positive_int, default=9, help="global 3x3 basis kernels (1..9, default 9)")
    q.add_argument("--coef-bits", type=positive_int, default=4, help="coefficient bits (default 4)")
    q.add_argument(
        "--quant", choices=["int", "pow2", "none"], default="int", help="coefficient quantization (default int)"
    )


METHODS: dict[str, Method] = {
    "lowbit": Method(
        help="1-bit weights / 2-bit activations LeNet-5 on a 7-rows-per-read macro (Weinstock 2023)",
        run="rramsim.models.methods.lowbit:reproduce_lowbit",
        datasets=("mnist",),
    ),
    "forms": Method(
        help="polarized fragments by ADMM, sign-per-fragment mapping (FORMS, Yuan 2021)",
        run="rramsim.models.methods.forms:reproduce_forms",
        datasets=("mnist",),
    ),
    "basisn": Method(
        help="global basis kernels written once vs reprogramming (BasisN, Eldebiky 2024)",
        run="rramsim.models.methods.basisn:reproduce_basisn",
        datasets=("fashion-mnist",),
        add_arguments=_basisn_arguments,
        options=lambda args: {"n_bases": args.bases, "coef_bits": args.coef_bits, "quant": args.quant},
    ),
}


def cmd_reproduce(args: argparse.Namespace) -> int:
    set_threads(args.threads)
    out = Path(args.output)
    if out.parent and not out.parent.exists():
        raise ValueError(f"report folder {out.parent} does not exist; create it or choose another -o path")
    method = METHODS[args.method]
    table, name = load_table(args.table)
    if method.datasets:
        from rramsim.cosim.data_fetch import ensure
        from rramsim.models.data import DatasetError

        try:
            for dataset in method.datasets:
                ensure(dataset)
        except DatasetError as exc:
            return fail(args, str(exc))
    log = (lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    rep = method.function()(
        table,
        table_name=name,
        small=args.small,
        seed=args.seed,
        epochs=args.epochs,
        command=command_line(args),
        log=log,
        **method.options(args),
    )
    rep.write(out)
    print(f"rramsim reproduce {args.method}: wrote {out} ({time.perf_counter() - t0:.1f} s)")
    return 0


def add_commands(subparsers) -> None:
    """Register ``reproduce METHOD`` for every method of :data:`METHODS`."""
    p = subparsers.add_parser("reproduce", help="reproduce a published CIM method and write a markdown report")
    sub = p.add_subparsers(dest="method", metavar="METHOD")
    sub.required = True
    for name, method in METHODS.items():
        q = sub.add_parser(name, help=method.help)
        q.add_argument("--small", action="store_true", help="the CI-sized version (a minute or less)")
        q.add_argument("-o", "--output", default=f"{name}.md", metavar="REPORT.md", help="markdown report to write")
        q.add_argument("--table", metavar="FILE", default=None, help="DeviceTable (default: the shipped table)")
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--epochs", type=positive_int, default=None, help="training epochs (default: per method)")
        q.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
        q.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
        if method.add_arguments is not None:
            method.add_arguments(q)
        q.set_defaults(func=cmd_reproduce)
