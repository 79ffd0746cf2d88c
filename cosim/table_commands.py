"""``rramsim table import|compare|export``: measured data in, tables side by side, tables out."""

from __future__ import annotations

import shlex
from pathlib import Path

from rramsim.cosim.argtypes import number, targets


def cmd_import(args) -> int:
    from rramsim.cosim.table_import import import_table

    out = Path(args.output)
    if not out.parent.exists():
        raise ValueError(f"output folder {out.parent} does not exist")
    table = import_table(
        args.data,
        targets=args.targets,
        read=args.read,
        read_sigma_rel=args.read_sigma_rel,
        retention=args.retention,
        iv=args.iv,
        read_voltage=args.read_voltage,
        tolerance=args.tolerance,
        command="rramsim " + " ".join(shlex.quote(a) for a in args.argv),
    )
    table.save(out)
    print(table.summary())
    print(f"wrote {out}")
    return 0


def cmd_compare(args) -> int:
    from rramsim.cosim.compare import compare_tables, format_comparison, plot_comparison

    reports, ref = compare_tables(args.tables, args.reference)
    print(format_comparison(reports, ref))
    if args.output:
        print(f"wrote {plot_comparison(reports, ref, args.output)}")
    return 0


def cmd_export(args) -> int:
    from rramsim.cosim.table_export import FORMATS
    from rramsim.devices import DeviceTable

    table = DeviceTable.load(args.file)
    for path in FORMATS[args.format](table, args.file, args.output):
        print(f"wrote {path}")
    return 0


def add_commands(tsub) -> None:
    """Add import, compare and export to the ``rramsim table`` sub-commands."""
    from rramsim.cosim.references import REFERENCES

    i = tsub.add_parser(
        "import",
        help="a device table from measured data (CSV or .npz)",
        description="Programming file: one row per cell, columns target (S) or level, g (S), "
        "optional pulses, energy (J), time (s), converged (0/1).",
    )
    i.add_argument("data", help="programming outcomes, CSV or .npz")
    i.add_argument("-o", "--output", required=True, help="output HDF5 table")
    i.add_argument("--targets", type=targets, help="target conductances for a 'level' column (LO:HI:COUNT or list)")
    i.add_argument("--read", metavar="FILE", help="read noise: columns g,sigma or repeated reads g,read")
    i.add_argument(
        "--read-sigma-rel",
        type=float,
        metavar="REL",
        help="no read-noise data: assume sigma = REL x G (recorded in the table's provenance)",
    )
    i.add_argument("--retention", metavar="FILE", help="retention: target|level, t (s), ratio = G(t)/G(0)[, sigma]")
    i.add_argument("--iv", metavar="FILE", help="I-V per level: target|level, v (V), i (A)")
    i.add_argument("--read-voltage", type=number, help="V at which g was read (needed with --iv)")
    i.add_argument("--tolerance", type=float, help="the write-verify tolerance used (relative), if known")
    i.set_defaults(func=cmd_import)

    c = tsub.add_parser("compare", help="tables side by side per level (KS distance), against published fits")
    c.add_argument("tables", nargs="+", help="device tables (HDF5); the first is the one the others are set against")
    c.add_argument("--reference", choices=sorted(REFERENCES), help="published sigma(G) fits to compare with")
    c.add_argument("-o", "--output", help="plot: sigma(G) and level histograms (PNG)")
    c.set_defaults(func=cmd_compare)

    e = tsub.add_parser(
        "export", help="write a table for other tools (csv: import schema; neurosim: mem_states.csv; aihwkit)"
    )
    e.add_argument("file")
    e.add_argument("--format", required=True, choices=["csv", "neurosim", "aihwkit"])
    e.add_argument(
        "-o",
        "--output",
        required=True,
        help="csv: a folder; neurosim: the states file; aihwkit: a .npz for rramsim.models.aihwkit_noise",
    )
    e.set_defaults(func=cmd_export)
