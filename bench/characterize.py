"""Benchmark: the campaign engine against a plain one-cell-per-transient loop.

Both run the same ISPP write-verify on the same devices (built-in ``hfox`` preset, same
seeds). The plain loop is what one writes first: for every pulse, render a one-cell deck
that starts from the cell's current gap (``x0``), load it, run pulse + read, read G, the
energy and the new gap. The engine keeps 25-50 cells in one paused-and-resumed transient
per batch and spreads batches over worker processes. Printed: cell-pulses per second of
each, measured side by side in one run, and their ratio; ``--full`` also times a
1000-device x 8-level campaign.

    python bench/characterize.py [--devices 200] [--plain-devices 20] [--full]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from rramsim.circuits.testbenches import builtin_device, write_verify_deck
from rramsim.cosim.campaign import device_params, run_campaign
from rramsim.cosim.ngspice import Session
from rramsim.cosim.writeverify import WriteVerifyScheme, timing

TARGETS = np.linspace(10e-6, 80e-6, 8)
#: The state node the plain loop reads back: the gap (behavioural) or gap - x0 (Verilog-A).
STATE = {False: "v(xc0.x)", True: "n.xc0.n1#y"}


def plain_loop(device, cells, targets, scheme, seed):
    """One cell per transient, one transient per pulse; returns (cell-pulses, g_final)."""
    session = Session.get()
    tm = timing(scheme)
    pulses = 0
    g_final = np.zeros((len(targets), len(cells)))
    for d, p in enumerate(cells):
        rng = np.random.default_rng([seed, d, 0xC2C])
        gap = p["x0"]
        for lv, target in enumerate(targets):
            lo, hi = target * (1 - scheme.tolerance), target * (1 + scheme.tolerance)
            pulse, count, direction, streak = scheme.erase_pulse(), 0, 0, 0
            while True:
                deck = write_verify_deck(device, [dict(p, x0=gap)], tm, first=[pulse])
                z = rng.standard_normal()
                deck = deck.replace("Vk0 k0 0 dc 0", f"Vk0 k0 0 dc {z!r}").replace(
                    ".save time", f".save time {STATE[device.osdi != ()]}"
                )
                step = scheme.step_cap
                out = session.simulate(
                    deck,
                    f"tran {step!r} {tm.stop_time(0)!r} 0 {step!r} uic",
                    ["time", "i(vs0)", "v(d0)", STATE[device.osdi != ()]],
                    name="plain",
                )
                g = out["i(vs0)"][-1] / out["v(d0)"][-1]
                gap = float(out[STATE[device.osdi != ()]][-1]) + (gap if device.osdi else 0.0)
                np.trapezoid(out["v(d0)"] * out["i(vs0)"], out["time"])  # energy, as the engine does
                count += 1
                pulses += 1
                if (count > 1 and lo <= g <= hi) or count >= scheme.max_pulses:
                    g_final[lv, d] = g
                    break
                pulse, direction, streak = scheme.next_pulse(g, lo, hi, direction, streak)
    return pulses, g_final


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--plain-devices", type=int, default=20, help="devices for the (slow) plain loop")
    ap.add_argument("--batch-size", type=int, default=40)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--full", action="store_true", help="also time 1000 devices x 8 levels")
    ap.add_argument(
        "--backend",
        default="behavioural",
        choices=["behavioural", "osdi"],
        help="built-in model as B-source netlist or compiled Verilog-A, for both ways",
    )
    ap.add_argument(
        "--max-step",
        type=float,
        default=WriteVerifyScheme().step_cap,
        help="simulator step cap for both ways (default: the scheme's)",
    )
    args = ap.parse_args()
    model, var = __import__("rramsim.devices", fromlist=["preset"]).preset("hfox")
    scheme = WriteVerifyScheme(max_step=args.max_step)
    if args.backend == "osdi":
        from rramsim.cosim.osdi import builtin_va_device

        device = builtin_va_device(model.params())
    else:
        device = builtin_device(model.params())
    seed = 0
    print(
        f"ISPP write-verify, hfox preset, {len(TARGETS)} levels, max step {scheme.step_cap * 1e9:g} ns, "
        f"{args.backend} model"
    )
    cells = device_params(model, var, args.devices, seed)
    Session.get()

    t0 = time.perf_counter()
    n_plain, g_plain = plain_loop(device, cells[: args.plain_devices], TARGETS, scheme, seed)
    t_plain = time.perf_counter() - t0

    t0 = time.perf_counter()
    res = run_campaign(device, cells, TARGETS, scheme, seed, args.batch_size, workers=args.workers, progress=False)
    t_engine = time.perf_counter() - t0
    n_engine = int(res.pulses.sum())

    r_plain, r_engine = n_plain / t_plain, n_engine / t_engine
    print(
        f"plain loop : {args.plain_devices:5d} devices x {len(TARGETS)} levels  {n_plain:7d} cell-pulses "
        f"in {t_plain:7.1f} s  -> {r_plain:8.0f} cell-pulses/s"
    )
    print(
        f"engine     : {args.devices:5d} devices x {len(TARGETS)} levels  {n_engine:7d} cell-pulses "
        f"in {t_engine:7.1f} s  -> {r_engine:8.0f} cell-pulses/s  ({args.workers} workers, "
        f"{args.batch_size} cells/transient)"
    )
    print(f"ratio engine/plain: {r_engine / r_plain:.1f}x")
    k = args.plain_devices
    print(
        f"same devices, same physics: mean |G_plain - G_engine| / G = "
        f"{np.mean(np.abs(g_plain - res.g_final[:, :k]) / res.g_final[:, :k]):.3%}; "
        f"pulses/level {res.pulses.mean():.1f}, converged {res.converged.mean():.1%}"
    )
    if args.full:
        cells = device_params(model, var, 1000, seed)
        t0 = time.perf_counter()
        res = run_campaign(device, cells, TARGETS, scheme, seed, args.batch_size, workers=args.workers, progress=False)
        t_full = time.perf_counter() - t0
        print(
            f"full campaign: 1000 devices x {len(TARGETS)} levels, {int(res.pulses.sum())} cell-pulses "
            f"in {t_full:.1f} s ({res.pulses.sum() / t_full:.0f} cell-pulses/s)"
        )


if __name__ == "__main__":
    main()
