"""Programming inside an array: write disturb, far vs near cost, throughput, LeNet-5 accuracy.

Run: ``.venv/bin/python bench/array_program.py --size 16`` (minutes per configuration on
one core; each run checkpoints after every cell under ``--work`` and resumes).

For each configuration of the built-in device (``1R V/2`` and ``1R V/3``: the 1R test
table, ISPP; ``1T1R``: the shipped default table, 1T1R cells, IGVVA, word-line selection),
an N x N array, 1 ohm per segment, random levels (seed 0) is written cell by cell in
ngspice (``rramsim characterize-array``) and reports:

* write disturb: relative conductance change of a cell from the end of its own write to
  the end of the array's write (mean, sigma, worst), and per half-select event;
* cost factors against the isolated cell (same device, cell, scheme) in the near quarter
  of positions (next to the drivers) and the far quarter, and at the two corners;
* cell-pulses per second of the array write against the isolated-cell engine;
* LeNet-5/MNIST accuracy (``rramsim evaluate``, same trials and subset) on the table
  without and with its /array group (the disturb and position cost applied in torch).

Writes the section "Programming inside an array, NxN" of bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import time
from pathlib import Path

from results import write_section

ROOT = Path(__file__).resolve().parents[1]

CONFIGS = {
    "1R V/2": ("tests/data/default_v1.h5", "1R", "V/2"),
    "1R V/3": ("tests/data/default_v1.h5", "1R", "V/3"),
    "1T1R": ("devices/data/default.h5", "1T1R", "word-line"),
}


def tag_of(name: str, size: int, order: str) -> str:
    return f"{name.replace(' ', '_').replace('/', '')}_{size}" + ("" if order == "cell" else f"_{order}")


def run_config(name: str, size: int, work: Path, order: str = "row") -> dict:
    from rramsim.cosim import array_program as ap
    from rramsim.devices import DeviceTable

    path, cell, bias = CONFIGS[name]
    tag = tag_of(name, size, order)
    out_json, out_table = work / f"{tag}.json", work / f"{tag}.h5"
    if out_json.is_file() and out_table.is_file():
        return json.loads(out_json.read_text())
    table = DeviceTable.load(ROOT / path)
    spec = ap.ArrayWrite(table, size, size, cell, bias, 1.0, seed=0, write_order=order)
    res = ap.run_write(spec, checkpoint=work / f"{tag}.npz", progress=True)
    print(ap.summary(res), flush=True)
    ap.with_array(table, ap.array_group(res, command=f"bench/array_program.py --size {size} --order {order}")).save(
        out_table
    )
    fig = ap.to_json(res)
    iso_pulses = float(sum(res.isolated["pulses"]))
    fig.update(
        name=name,
        table=path,
        isolated_pulses_per_s=iso_pulses / res.times["isolated cell"],
        array_pulses_per_s=res.times["cell-pulses"] / res.times["array write"],
        order=order,
    )
    out_json.write_text(json.dumps(fig, indent=2) + "\n")
    return fig


def accuracy(table: Path, trials: int, subset: int) -> tuple[float, float, float, float]:
    """Mean and sigma (percent) of LeNet-5's accuracy over ``trials`` programmings, and the
    programming cost evaluate reports (pulses, uJ)."""
    cmd = [
        str(ROOT / ".venv/bin/rramsim"),
        "evaluate",
        "--table",
        str(table),
        "--trials",
        str(trials),
        "--subset",
        str(subset),
        "--threads",
        "1",
        "-q",
        "--no-fetch",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    m = re.search(r"^accuracy\s+([\d.]+)\s*±\s*([\d.]+)\s*%", out, re.MULTILINE)
    e = re.search(r"^programming \(once\): ([\d.e+-]+) pulses, ([\d.e+-]+) uJ", out, re.MULTILINE)
    if not m or not e:
        raise RuntimeError(f"cannot read the accuracy and programming cost from rramsim evaluate's output:\n{out}")
    return float(m.group(1)), float(m.group(2)), float(e.group(1)), float(e.group(2))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=16)
    p.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated: " + ", ".join(CONFIGS))
    p.add_argument("--work", default=str(ROOT / "demo-out" / "array_program"))
    p.add_argument("--trials", type=int, default=3)
    p.add_argument("--subset", type=int, default=1000)
    p.add_argument(
        "--order",
        choices=["row", "cell"],
        default="row",
        help="row: each row written in parallel (default); cell: cell by cell, row-major",
    )
    p.add_argument(
        "--compare-cell",
        action="store_true",
        help="also write the same arrays cell by cell (or take those runs from --work) and compare "
        "the cell-pulses per second of both orders with the isolated-cell engine",
    )
    p.add_argument("--no-accuracy", action="store_true")
    p.add_argument("--no-results", action="store_true", help="do not write bench/RESULTS.md")
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    figs = [run_config(n.strip(), args.size, work, args.order) for n in args.configs.split(",")]
    for f in figs:  # per-event disturb, averaged over the array's cells
        lv = f["per_level"]
        for kind in ("half", "other"):
            f[f"{kind}_event_mean"] = sum(m * c for m, c in zip(lv[f"disturb_{kind}_mean"], lv["disturb_cells"])) / sum(
                lv["disturb_cells"]
            )
    how = {
        "row": "row-parallel write-verify (each row's cells together, every column its own pulses, finished "
        "columns inhibited)",
        "cell": "row-major cell-by-cell write-verify",
    }[args.order]
    lines = [
        f"{args.size}x{args.size} arrays of the built-in device, 1 ohm/segment, random levels (seed 0), "
        f"{how} in ngspice (OSDI build of the model)",
        "disturb: relative dG of a cell from its own write to the end of the array's write",
        "cost factors: array / isolated cell (same device, cell, scheme); near/far: quarter of positions "
        "closest to / farthest from the drivers",
        "",
        f"{'config':<8} {'scheme':<6} {'disturb mean':>12} {'sigma':>8} {'worst':>8} {'per half-sel':>12} "
        f"{'per other':>10} "
        f"{'pulses near/far':>15} {'energy near/far':>15} {'conv':>6} {'array cp/s':>10} {'isolated cp/s':>13}",
    ]
    for f in figs:
        lines.append(
            f"{f['name']:<8} {f['scheme']:<6} {100 * f['disturb_mean']:+11.3f}% {100 * f['disturb_std']:7.3f}% "
            f"{100 * f['disturb_max_abs']:7.3f}% {100 * f['half_event_mean']:+11.4f}% "
            f"{100 * f['other_event_mean']:+9.5f}% "
            f"{f['pulses_near']:7.3f}/{f['pulses_far']:.3f} {f['energy_near']:7.3f}/{f['energy_far']:.3f} "
            f"{100 * f['converged']:5.1f}% {f['array_pulses_per_s']:10.1f} {f['isolated_pulses_per_s']:13.1f}"
        )
    if args.order == "row":
        lines.append(
            "per half-sel: per later row written (pulses on the cell's column); per other: the rest of "
            "the cell's own row after its column was inhibited"
        )
    lines.append("")
    lines.append(
        "corners (pulses, energy factor): "
        + "; ".join(
            f"{f['name']} near {f['pulses_near_corner']:.2f}/{f['energy_near_corner']:.2f} far "
            f"{f['pulses_far_corner']:.2f}/{f['energy_far_corner']:.2f}"
            for f in figs
        )
    )
    if args.compare_cell:
        other = "cell" if args.order == "row" else "row"
        lines += [
            "",
            f"write throughput, cell-pulses/s ({args.size}x{args.size}, same schemes): {args.order} order vs "
            f"{other} order vs the isolated-cell engine (one cell, every level)",
        ]
        for f in figs:
            g = run_config(f["name"], args.size, work, other)
            lines.append(
                f"  {f['name']:<8} {args.order} {f['array_pulses_per_s']:7.1f}   {other} "
                f"{g['array_pulses_per_s']:7.1f}   isolated {f['isolated_pulses_per_s']:6.1f}   "
                f"({args.order}/{other} x{f['array_pulses_per_s'] / g['array_pulses_per_s']:.1f}, "
                f"{args.order}/isolated x{f['array_pulses_per_s'] / f['isolated_pulses_per_s']:.2f}; "
                f"disturb mean {100 * f['disturb_mean']:+.3f}% vs {100 * g['disturb_mean']:+.3f}%)"
            )
    if not args.no_accuracy:
        lines += [
            "",
            f"LeNet-5/MNIST accuracy, rramsim evaluate --trials {args.trials} --subset {args.subset} "
            "(mean +- sigma over programmings): the table alone vs with its /array group",
        ]
        done = {}
        for f in figs:
            t0 = time.time()
            if f["table"] not in done:
                done[f["table"]] = accuracy(ROOT / f["table"], args.trials, args.subset)
            base = done[f["table"]]
            tag = tag_of(f["name"], args.size, args.order)
            acc = accuracy(work / f"{tag}.h5", args.trials, args.subset)
            lines.append(
                f"  {f['name']:<8} {base[0]:.2f} +- {base[1]:.2f}% -> {acc[0]:.2f} +- {acc[1]:.2f}% "
                f"({acc[0] - base[0]:+.2f} pp); programming {base[3]:.4g} -> {acc[3]:.4g} uJ, "
                f"{base[2]:.4g} -> {acc[2]:.4g} pulses   [{time.time() - t0:.0f} s]"
            )
            print(lines[-1], flush=True)
    print("\n".join(lines))
    if not args.no_results:
        write_section(
            ROOT / "bench" / "RESULTS.md",
            f"Programming inside an array, {args.size}x{args.size}",
            lines,
            "bench/array_program.py",
        )


if __name__ == "__main__":
    main()
