"""Benchmark: programming schemes side by side on the built-in model (hfox preset).

ISPP on a 1R cell, ISPP on a 1T1R cell (word line fixed at the cell's gate voltage) and
IGVVA on a 1T1R cell, same devices (same seed, same variability), same targets. Printed
per scheme: pulses per level, sigma of the reached conductance per level (relative to the
target), energy per level, convergence, and the spread of the trajectories: the largest
single-pulse jump of G and how far above the highest target the verify reads went.

    python bench/schemes.py [--devices 40] [--workers 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from rramsim.circuits.testbenches import builtin_device
from rramsim.cosim.campaign import device_params, run_campaign
from rramsim.devices import preset
from rramsim.devices.schemes import IGVVA, ISPP

TARGETS = np.linspace(10e-6, 80e-6, 8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=40)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=20)
    ap.add_argument("--v-gate", type=float, default=1.2, help="word line of the ISPP 1T1R cell (V)")
    args = ap.parse_args()
    model, var = preset("hfox")
    cells = device_params(model, var, args.devices, 0)
    ispp_1t1r = ISPP(
        reset_width=IGVVA.reset_width, max_step=IGVVA.max_step
    )  # a 1T1R RESET needs IGVVA's longer RESET pulses
    runs = [
        ("ISPP 1R", ISPP(), builtin_device(model.params(), "1R")),
        (
            f"ISPP 1T1R (word line {args.v_gate:g} V)",
            ispp_1t1r,
            builtin_device(model.params(), "1T1R", v_gate=args.v_gate),
        ),
        ("ISPP 1T1R (word line 2.5 V)", ispp_1t1r, builtin_device(model.params(), "1T1R", v_gate=2.5)),
        ("IGVVA 1T1R", IGVVA(), builtin_device(model.params(), "1T1R")),
    ]
    print(
        f"hfox preset, {args.devices} devices x {TARGETS.size} levels ({TARGETS[0] * 1e6:g}-{TARGETS[-1] * 1e6:g} uS), "
        "tolerance 5%, seed 0"
    )
    print(
        "| scheme | converged | pulses/level | sigma(G)/target | energy/level [pJ] | time/level [us] "
        "| largest jump [uS] | peak read / top target | runtime [s] |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    per_level = []
    for label, scheme, device in runs:
        t0 = time.perf_counter()
        res = run_campaign(device, cells, TARGETS, scheme, 0, args.batch_size, workers=args.workers, progress=False)
        wall = time.perf_counter() - t0
        ok = res.converged
        rel = np.array(
            [res.g_final[lv][ok[lv]].std() / TARGETS[lv] if ok[lv].any() else np.nan for lv in range(TARGETS.size)]
        )
        jumps = [np.max(np.diff(r)) for r in res.reads if len(r) > 1]
        peak = max(max(r) for r in res.reads) / TARGETS[-1]
        print(
            f"| {label} | {ok.mean():.1%} | {res.pulses.mean():.1f} ({res.pulses.mean(1).min():.1f}-"
            f"{res.pulses.mean(1).max():.1f}) | {np.nanmean(rel):.2%} ({np.nanmin(rel):.2%}-{np.nanmax(rel):.2%}) "
            f"| {res.energy.mean() * 1e12:.0f} | {res.time.mean() * 1e6:.2f} | {np.median(jumps) * 1e6:.1f} (median), "
            f"{np.max(jumps) * 1e6:.1f} (max) | {peak:.2f} | {wall:.0f} |",
            flush=True,
        )
        per_level.append((label, res.pulses.mean(1), rel, res.energy.mean(1), ok.mean(1)))
    print("\nper level (target uS: pulses / sigma(G)/target / energy pJ / converged)")
    print("| scheme | " + " | ".join(f"{t * 1e6:.0f}" for t in TARGETS) + " |")
    print("|---|" + "---|" * TARGETS.size)
    for label, pulses, rel, energy, conv in per_level:
        print(
            f"| {label} | "
            + " | ".join(
                f"{p:.1f} / {r:.2%} / {e * 1e12:.0f} / {c:.0%}" for p, r, e, c in zip(pulses, rel, energy, conv)
            )
            + " |"
        )


if __name__ == "__main__":
    main()
