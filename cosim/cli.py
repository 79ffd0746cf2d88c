"""The ``rramsim`` command line: the parser of every command and :func:`main`.

The device-table commands (characterize, table show/validate, plot) live here; the others
register themselves from their modules (``add_commands``). Shared helpers and the exit
codes: :mod:`rramsim.cosim.cli_common`.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from rramsim.cosim.argtypes import number, positive_int, targets
from rramsim.cosim.cli_common import EXIT_INTERRUPTED, command_line, fail


def _ports(text: str) -> list[str]:
    ports = [p.strip() for p in text.split(",")]
    if len(ports) != 2 or not all(ports):
        raise argparse.ArgumentTypeError(f"--ports takes two port names A,B, got {text!r}")
    return ports


def _vary(text: str) -> tuple[str, float]:
    name, sep, spread = text.partition("=")
    try:
        sigma = float(spread)
    except ValueError:
        sigma = float("nan")
    if not sep or not name.strip() or not np.isfinite(sigma) or sigma <= 0:
        raise argparse.ArgumentTypeError(f"--vary takes NAME=SPREAD with SPREAD > 0 (sigma of ln NAME), got {text!r}")
    return name.strip().lower(), sigma


def cmd_characterize(args) -> int:
    from rramsim.circuits.user_netlist import load_user_netlist
    from rramsim.cosim.characterize import Characterization, characterize
    from rramsim.cosim.device_checks import DeviceError
    from rramsim.devices import Variability, preset

    model, variability = preset(args.preset)
    calibrated = None
    if args.variability:  # the built-in model's spread as rramsim calibrate wrote it
        from rramsim.cosim.calibrate import load_calibrated

        if args.netlist or args.veriloga or args.vary:
            raise ValueError(
                "--variability sets the built-in model's calibrated spread; it does not combine "
                "with --netlist, --veriloga or --vary"
            )
        model, variability, tolerance, calibrated = load_calibrated(args.variability, args.preset)
        if args.scheme_tolerance is None:
            args.scheme_tolerance = tolerance
    if args.c2c_vary and not args.netlist:
        raise ValueError(
            "--c2c-vary applies to a --netlist device; the built-in model's cycle-to-cycle spread "
            "is its preset's (scale it with --variability-scale)"
        )
    if args.vary and not (args.netlist or args.veriloga):  # the built-in model: --vary sets those spreads
        variability = Variability({**variability.d2d, **dict(args.vary)}, variability.c2c)
    if args.variability_scale != 1.0:
        variability = variability.scaled(args.variability_scale)
    if args.veriloga or args.module:
        if not args.veriloga:
            raise ValueError("--module names a module of a --veriloga file: give the file too")
        from rramsim.cosim.osdi import only_module, va_device

        args.module = args.module or only_module(args.veriloga)
        if args.c2c_vary or args.ports or args.dialect != "auto":
            raise ValueError(
                "--c2c-vary, --ports and --dialect apply to --netlist devices; a Verilog-A module "
                "is characterized as written (--vary sets a spread of its parameters)"
            )
        device, model = va_device(args.veriloga, args.module, args.cell), None
        variability = Variability()
        if args.vary:  # module parameters, per cell: exactly these vary
            from rramsim.circuits.user_netlist import vary_module_parameters

            vary = {k: s * args.variability_scale for k, s in args.vary}
            source = Path(args.veriloga).read_text(encoding="utf-8", errors="replace")
            device, nominal = vary_module_parameters(device, source, args.module, vary, args.veriloga)
            variability = Variability({k: vary[k.lower()] for k in nominal}, 0.0, nominal)
    elif args.netlist or args.subckt:
        if not args.netlist:
            raise ValueError("--subckt names a subcircuit of a --netlist file: give the file too")
        scale = args.variability_scale
        vary = {k: s * scale for k, s in args.vary or []}
        c2c = {k: s * scale for k, s in args.c2c_vary or [] if s * scale > 0}
        user = load_user_netlist(args.netlist, args.subckt, args.cell, args.dialect, args.ports, vary, c2c)
        args.subckt = user.name  # the file's only subcircuit when --subckt was left out
        if user.ignored:  # a whole deck: say loudly what was left out
            print("rramsim: " + user.deck_report(args.netlist), file=sys.stderr)
        device, model = user.device, None
        # a user's device varies in exactly what --vary/--c2c-vary name, and in nothing else
        variability = Variability(
            {k: vary[k.lower()] for k in user.nominal},
            0.0,
            user.nominal,
            {k: user.ranges[k.lower()] for k in user.nominal if k.lower() in user.ranges},
            user.c2c,
        )
    elif args.ports or args.dialect != "auto":
        raise ValueError("--ports and --dialect apply to a device file given with --netlist/--subckt")
    else:
        from rramsim.cosim.osdi import builtin_device_for

        device = builtin_device_for(args.backend, model.params(), args.cell)
    out = Path(args.output)
    if not out.parent.exists():
        raise ValueError(f"output folder {out.parent} does not exist")
    from rramsim.cosim.probe import plan

    scheme, planned = plan(args, device, model)  # a user's device without scheme flags is probed first
    spec = Characterization(
        device=device,
        model=model,
        variability=variability,
        scheme=scheme,
        **planned,
        n_devices=args.devices,
        seed=args.seed,
        batch_size=args.batch_size,
        retention_time=args.retention_time,
    )
    command = command_line(args)
    parts = out.with_name(out.name + ".parts")  # finished batches, kept until the table is written
    client = None
    if args.scheduler:
        try:
            from dask.distributed import Client
        except ImportError:
            raise ValueError("--scheduler needs dask.distributed: pip install 'rramsim[dask]'") from None
        try:
            client = Client(args.scheduler, timeout=30)
        except (OSError, TimeoutError) as exc:
            raise ValueError(f"cannot reach the Dask scheduler at {args.scheduler}: {exc}") from None
    try:
        table = characterize(
            spec,
            executor=client.get_executor() if client else None,
            workers=args.workers,
            progress=not args.quiet,
            command=command,
            checkpoint=parts,
            resume=args.resume,
        )
    except DeviceError:
        shutil.rmtree(parts, ignore_errors=True)  # batches of a device that never switched: nothing to resume
        raise
    finally:
        if client is not None:
            client.close()
    if calibrated is not None:
        table.provenance.update(calibrated["provenance"])
    table.save(out)
    shutil.rmtree(parts, ignore_errors=True)
    print(table.summary())
    from rramsim.devices.params import describe_variability

    print("  " + describe_variability(table.variability))
    print(f"wrote {out}")
    return 0


def cmd_table_show(args) -> int:
    from rramsim.devices import DeviceTable
    from rramsim.devices.params import describe_variability

    table = DeviceTable.load(args.file)
    print(table.summary())
    print("  " + describe_variability(table.variability))
    return 0


def cmd_table_validate(args) -> int:
    from rramsim.devices import DeviceTable

    table = DeviceTable.load(args.file)
    print(
        f"{args.file}: valid rramsim device table (format version {table.format_version}, {table.n_levels} levels x "
        f"{table.n_devices} devices)"
    )
    return 0


def cmd_plot(args) -> int:
    from rramsim.cosim.plots import PLOTS
    from rramsim.devices import DeviceTable

    path = PLOTS[args.kind](DeviceTable.load(args.file), args.output)
    print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from rramsim import __version__
    from rramsim.devices import PRESETS

    p = argparse.ArgumentParser(prog="rramsim", description="SPICE-calibrated RRAM compute-in-memory co-simulation")
    p.add_argument("--version", action="version", version=f"rramsim {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("characterize", help="run the ngspice benches and write a device table (HDF5)")
    c.add_argument("--preset", default="hfox", choices=sorted(PRESETS), help="built-in compact model preset")
    c.add_argument("--netlist", help="your netlist file holding the device subcircuit")
    c.add_argument("--subckt", help="name of the device subcircuit in --netlist (left out: the file's only one)")
    c.add_argument(
        "--dialect",
        default="auto",
        choices=["auto", "ngspice", "ltspice", "pspice", "hspice"],
        help="simulator the --netlist file was written for (auto: detected); ngspice runs it in its "
        "compatibility mode and rramsim translates the rest (sdt, table, constants, ...)",
    )
    c.add_argument(
        "--ports",
        type=_ports,
        metavar="A,B",
        help="the two device terminals of a --subckt with more ports (top electrode first; the "
        "others, e.g. a state-probe port XSV, are left open through 1 TOhm)",
    )
    c.add_argument(
        "--vary",
        type=_vary,
        action="append",
        metavar="NAME=SPREAD",
        help="device-to-device log-normal spread (sigma of ln) of a subcircuit or module parameter; "
        "repeatable. "
        "The table records exactly these; without it a --netlist device has no spread",
    )
    c.add_argument(
        "--c2c-vary",
        type=_vary,
        action="append",
        metavar="NAME=SPREAD",
        help="cycle-to-cycle log-normal factor (sigma of ln), drawn afresh every pulse period, on a "
        "--netlist subcircuit parameter used in its source expressions; repeatable",
    )
    c.add_argument("--veriloga", metavar="FILE.va", help="your Verilog-A device (compiled to OSDI by OpenVAF)")
    c.add_argument(
        "--module",
        help="name of the module in --veriloga (2 ports, or 4 with c2c/noise ports); may be left out when the file defines one module",
    )
    c.add_argument(
        "--backend",
        default="auto",
        choices=["auto", "behavioural", "osdi"],
        help="built-in model as compiled Verilog-A (osdi: same physics, 4-7x faster) or as a B-source "
        "netlist (behavioural); auto (default): osdi when OpenVAF is installed, else behavioural",
    )
    c.add_argument("--cell", default="1R", choices=["1R", "1T1R"])
    c.add_argument("--devices", type=positive_int, default=100, help="Monte Carlo devices (default 100)")
    c.add_argument(
        "--targets",
        type=targets,
        default=None,
        help="target conductances LO:HI:COUNT or comma list (default 10u:80u:8; for your own device "
        "without scheme flags, the probe's)",
    )
    c.add_argument(
        "--max-voltage", type=number, default=5.0, help="largest pulse the probe of your own device tries (default 5 V)"
    )
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--variability-scale", type=float, default=1.0, help="multiply every spread of the preset")
    c.add_argument(
        "--variability",
        metavar="FILE.json",
        help="the built-in model's spread, relaxation rate and "
        "tolerance as rramsim calibrate wrote them (OUTPUT.variability.json)",
    )
    from rramsim.cosim.writeverify import add_scheme_arguments

    add_scheme_arguments(c)  # --scheme ispp|igvva|pulse-width and its parameters
    c.add_argument("--retention-time", type=number, default=1e5, help="s; 0 skips retention")
    c.add_argument("--batch-size", type=positive_int, default=40, help="cells per transient")
    c.add_argument("--workers", type=positive_int, default=2, help="worker processes")
    c.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run the batches on a Dask cluster (e.g. tcp://host:8786) instead of local processes",
    )
    c.add_argument("-o", "--output", required=True, help="output HDF5 file")
    c.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted campaign from OUTPUT.parts/ (finished batches are kept there)",
    )
    c.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    c.set_defaults(func=cmd_characterize)

    t = sub.add_parser("table", help="inspect device tables")
    tsub = t.add_subparsers(dest="table_command", required=True)
    s = tsub.add_parser("show", help="readable summary")
    s.add_argument("file")
    s.set_defaults(func=cmd_table_show)
    v = tsub.add_parser("validate", help="check a table file; exit 1 if it is not valid")
    v.add_argument("file")
    v.set_defaults(func=cmd_table_validate)
    from rramsim.cosim import table_commands  # import, compare, export

    table_commands.add_commands(tsub)

    pl = sub.add_parser("plot", help="plots of a device table (PNG)")
    plsub = pl.add_subparsers(dest="plot_kind", required=True)
    for kind, help_ in (
        ("iv", "I-V hysteresis and per-level read I-V"),
        ("levels", "conductance histograms"),
        ("writeverify", "write-verify trajectories"),
    ):
        k = plsub.add_parser(kind, help=help_)
        k.add_argument("file")
        k.add_argument("-o", "--output", required=True)
        k.set_defaults(func=cmd_plot, kind=kind)

    from rramsim.cosim import validate_array  # validate array

    validate_array.add_commands(sub)
    from rramsim.cosim import cli_inference  # data, train, evaluate, plot accuracy

    cli_inference.add_commands(sub)
    from rramsim.cosim import reproduce

    reproduce.add_commands(sub)
    from rramsim.cosim import calibrate

    calibrate.add_commands(sub)
    from rramsim.cosim import probe  # probe a device, propose a scheme

    probe.add_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit code (:mod:`rramsim.cosim.cli_common`): 0 done, 1 the command
    failed (one ``rramsim COMMAND: error: ...`` line, the error's own further lines after it),
    2 usage (argparse exits), 130 interrupted."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = argv
    from rramsim.cosim.ngspice import SimulationError
    from rramsim.devices import TableError

    try:
        return int(args.func(args) or 0)
    except (TableError, SimulationError, ValueError, OSError, subprocess.TimeoutExpired) as exc:
        from rramsim.cosim.probe import device_failure_hint

        hint = device_failure_hint(exc.message) if isinstance(exc, SimulationError) else ""
        first, _, rest = str(exc).partition("\n")  # the hint joins the error's own paragraph
        return fail(args, first + (f" {hint}" if hint else "") + (f"\n{rest}" if rest else ""))
    except KeyboardInterrupt:
        print("rramsim: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
