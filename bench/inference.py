"""Inference benchmark: networks on simulated crossbars against plain torch, torch.compile,
read-noise modes and the IR-drop solvers.

Run: ``.venv/bin/python bench/inference.py`` (a few minutes, most of it torch.compile's
first calls; ``--quick`` for fewer repeats, ``--networks lenet5,vit`` for some networks,
``--write`` to record the figures in the ``Inference`` section of bench/RESULTS.md; without
it nothing is written).

1. Networks side by side (LeNet-5, the small ResNet with batch norm and residual adds, the
   ViT and the row-by-row LSTM of :mod:`rramsim.models.networks`), batch 256: plain torch,
   analog on Ohmic crossbars, ``CrossbarConfig.ohmic()`` (programming spread, per-forward read noise, 8-bit
   DAC/ADC, 128x128 tiles, linear cells, no IR drop: the engine's own overhead) and the same analog model under ``torch.compile``
   (its first call, which compiles, timed apart). Each model is timed interleaved with
   the others (median of the repeats). The compiled model is checked to draw fresh read
   noise on every call and not to program again. Targets: analog <= 1.5x plain (LeNet-5),
   <= 2x (ResNet, ViT); compiled within 1.5x of the eager analog model or faster.
2. LeNet-5 read noise ``per_read`` (one draw per cell and input vector) and ``per_forward``
   (the default, one draw per cell per forward pass), and the polynomial I-V.
3. IR drop ``exact`` with linear cells: the one-time cost per 128x128 tile (block
   elimination) against scipy's sparse direct solve of the same network and against
   ngspice on one input vector; then 256 input vectors through the tile and the LeNet-5
   forward with ``exact`` against ``off`` (same weights).
4. Nonlinear I-V: the exact solver's fixed-point iteration on one 128x128 tile with 256
   vectors.

Both sides of every ratio use the same torch threads (one by default: this machine's cores
are shared; more threads made both sides noisier, not faster). The load average of the
machine is printed beside the figures. Uses the shipped default table when there is one,
else the synthetic table of the tests.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

from results import write_section


import numpy as np
import scipy.sparse.linalg as spla
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]


def load_table(path: str | None = None):
    from rramsim.devices import DeviceTable, TableError, load_default_table

    if path:
        return DeviceTable.load(path), f"table {path}"
    try:
        return load_default_table(), "default table (devices/data/default.h5)"
    except (TableError, FileNotFoundError, OSError):
        sys.path.insert(0, str(ROOT / "tests"))
        from tables import synthetic_table

        return synthetic_table(n_levels=16), "synthetic table (tests/tables.py, 16 levels)"


CLOCK = time.process_time  # the clock of every figure (--clock): CPU time of this process, or wall time


def interleaved(fns: dict, repeats: int, budget: float = float("inf"), clock=None) -> dict:
    """Median seconds of each callable, run in turn ``repeats`` times after a warm-up (at
    least 3 rounds; fewer than ``repeats`` once ``budget`` seconds of wall time are spent).
    ``clock``: ``time.perf_counter`` (wall) or ``time.process_time`` (this process's CPU
    time, which the other loads of a shared machine disturb less)."""
    clock = CLOCK if clock is None else clock
    times = {k: [] for k in fns}
    for f in fns.values():
        f()
    start = time.perf_counter()
    for i in range(repeats):
        for k, f in fns.items():
            t = clock()
            f()
            times[k].append(clock() - t)
        if i >= 2 and time.perf_counter() - start > budget:
            break
    return {k: statistics.median(v) for k, v in times.items()}


def timed(f, repeats: int = 1) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = CLOCK()
        f()
        best = min(best, CLOCK() - t)
    return best


TARGETS = {"lenet5": 1.5, "resnet-small": 2.0, "vit": 2.0}  # analog / plain torch
COMPILED_TARGET = 1.5  # compiled / eager analog
BATCH = 256


def machine_load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} cores"


def available_networks() -> list[str]:
    """The networks of section 1 that rramsim.models.networks has (by default)."""
    from rramsim.models.networks import network_names

    names = network_names()
    return [n for n in ("lenet5", "resnet-small", "vit", "lstm") if n in names]


def compiled_checks(analog, compiled, x) -> tuple[bool, bool]:
    """(fresh read noise on every call, no programming during the calls) of ``compiled``."""
    from rramsim.models import analog_layers

    engines = [layer.engine for _, layer in analog_layers(analog)]
    before = [e.compiled for e in engines]
    with torch.no_grad():
        a, b = compiled(x), compiled(x)
    return (not torch.equal(a, b)), all(e.compiled is c for e, c in zip(engines, before))


def bench_networks(names: list[str], table, reps: int, budget: float, compile_: bool, device: str, out) -> dict:
    """Section 1: plain vs analog vs compiled analog for each network; returns the ratios."""
    from rramsim.models import CrossbarConfig, convert_to_analog
    from rramsim.models.networks import build_network

    cuda = device.startswith("cuda")
    clock = CLOCK
    what = "CPU time of this process" if clock is time.process_time else "wall-clock time"
    out(
        f"Networks, batch {BATCH}, Ohmic config (128x128 tiles, differential pairs, programming spread, "
        f"read noise per_forward, 8-bit DAC/ADC, no IR drop); {what}, median of up to {reps} interleaved repeats"
    )
    head = (
        f"  {'network':<12} {'plain ms':>9} {'analog ms':>10} {'compiled ms':>12} {'analog/plain':>13} "
        f"{'target':>7} {'':<6} {'compiled/analog':>16} {'':<6} compile (first call, wall time)"
    )
    out(head)
    results = {}
    for name in names:
        torch.manual_seed(0)
        plain = build_network(name).to(device).eval()
        x = torch.rand(BATCH, 1, 28, 28, device=device)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            analog = convert_to_analog(plain, table, CrossbarConfig.ohmic(), seed=1).eval()
        fns = {"plain": plain, "analog": analog}
        t_compile, checks = float("nan"), None
        if compile_:
            torch._dynamo.reset()
            compiled = torch.compile(analog)
            t0 = time.perf_counter()
            with torch.no_grad():
                compiled(x)
            t_compile = time.perf_counter() - t0
            checks = compiled_checks(analog, compiled, x)
            fns["compiled"] = compiled

        def call(m):
            m(x)
            if cuda:
                torch.cuda.synchronize()

        with torch.no_grad():
            t = interleaved({k: (lambda m=m: call(m)) for k, m in fns.items()}, reps, budget, clock)
        r = t["analog"] / t["plain"]
        rc = t.get("compiled", float("nan")) / t["analog"]
        target = TARGETS.get(name)
        met = "" if target is None else ("met" if r <= target else "MISSED")
        cmet = "" if not compile_ else ("met" if rc <= COMPILED_TARGET else "MISSED")
        note = ""
        if checks is not None:
            note = (
                f"{t_compile:.0f} s; fresh noise {'yes' if checks[0] else 'NO'}, "
                f"programmed again {'no' if checks[1] else 'YES'}"
            )
        tgt = "" if target is None else f"<={target:g}x"
        out(
            f"  {name:<12} {t['plain'] * 1e3:>9.1f} {t['analog'] * 1e3:>10.1f} "
            f"{t.get('compiled', float('nan')) * 1e3:>12.1f} {r:>12.2f}x {tgt:>7} {met:<6} {rc:>15.2f}x {cmet:<6} {note}"
        )
        results[name] = {
            "plain": t["plain"],
            "analog": t["analog"],
            "compiled": t.get("compiled"),
            "ratio": r,
            "compiled_ratio": rc,
            "compile_s": t_compile,
            "checks": checks,
        }
    out(
        f"  targets: analog/plain <= 1.5x LeNet-5, <= 2x ResNet and ViT (the LSTM has none); compiled/analog "
        f"<= {COMPILED_TARGET:g}x"
    )
    return results


def bench_breakdown(names: list[str], table, reps: int, budget: float, out) -> None:
    """Where the analog forward's time goes: the same network with one part of the
    periphery made ideal at a time (CPU time, ratios to plain torch)."""
    from rramsim.models import CrossbarConfig, convert_to_analog
    from rramsim.models.networks import build_network

    variants = {
        "ohmic": {},
        "read noise off": {"read_noise": "off"},
        "ideal DAC": {"dac_bits": None},
        "ideal ADC": {"adc_bits": None},
        "ideal DAC+ADC, no noise": {"dac_bits": None, "adc_bits": None, "read_noise": "off"},
    }
    out(
        f"Breakdown, batch {BATCH}: CPU time of the analog forward with parts of the periphery ideal, "
        "as multiples of plain torch"
    )
    out(
        "  "
        + f"{'network':<12} {'plain ms':>9} "
        + " ".join(f"{v:>{max(len(v), 6)}}" for v in variants)
        + "  plain, no fused attention"
    )
    for name in names:
        torch.manual_seed(0)
        plain = build_network(name).eval()
        x = torch.rand(BATCH, 1, 28, 28)
        fns = {"plain": plain}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for v, kw in variants.items():
                fns[v] = convert_to_analog(plain, table, CrossbarConfig.ohmic(**kw), seed=1).eval()
        slow = None
        if any(isinstance(m, nn.MultiheadAttention) for m in plain.modules()):

            def slow_path(m=plain):
                torch.backends.mha.set_fastpath_enabled(False)
                try:
                    m(x)
                finally:
                    torch.backends.mha.set_fastpath_enabled(True)

            slow = slow_path
        calls = {k: (lambda m=m: m(x)) for k, m in fns.items()}
        if slow is not None:
            calls["slow"] = slow
        with torch.no_grad():
            t = interleaved(calls, reps, budget)
        base = t["plain"]
        cells = " ".join(f"{t[v] / base:>{max(len(v), 6)}.2f}x" for v in variants)
        out(f"  {name:<12} {base * 1e3:>9.1f} {cells}  " + (f"{t['slow'] / base:.2f}x" if "slow" in t else "-"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--table", help="a DeviceTable HDF5 file (default: the shipped one, else a synthetic one)")
    ap.add_argument(
        "--networks",
        default=None,
        help="comma-separated networks of section 1 (default: lenet5,resnet-small,vit,lstm; also ds-cnn)",
    )
    ap.add_argument(
        "--sections",
        default="networks,noise,solvers",
        help="comma-separated sections to run: networks (1), noise (2), solvers (3 and 4); default "
        "those three; 'breakdown' (the periphery's share of the analog time per network) on request",
    )
    ap.add_argument("--no-compile", dest="compile", action="store_false", help="leave torch.compile out")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--device", default="cpu", help="torch device of section 1 (cpu, cuda)")
    ap.add_argument(
        "--clock",
        choices=["cpu", "wall"],
        default="cpu",
        help="time CPU time of this process (default; steadier on a shared machine) or wall-clock "
        "time (always wall on CUDA)",
    )
    ap.add_argument(
        "--write", action="store_true", help="record the output in the 'Inference' section of bench/RESULTS.md"
    )
    args = ap.parse_args()
    reps = 7 if args.quick else 25
    budget = 20.0 if args.quick else 60.0
    sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    unknown = sections - {"networks", "noise", "solvers", "breakdown"}
    if unknown:
        ap.error(f"unknown section(s) {sorted(unknown)}; choose from networks, noise, solvers, breakdown")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error("--device cuda: torch sees no CUDA device here")
    names = available_networks()
    if args.networks:
        from rramsim.models.networks import canonical_name

        try:
            names = [canonical_name(n) for n in args.networks.split(",") if n.strip()]
        except ValueError as exc:
            ap.error(f"--networks: {exc}")
    torch.set_num_threads(args.threads)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" and not args.device.startswith("cuda") else time.perf_counter
    from rramsim.models import CrossbarConfig, TileSolver, convert_to_analog, nodal_matrix

    table, table_name = load_table(args.table)
    lines = []

    def out(s: str = "") -> None:
        print(s, flush=True)
        lines.append(s)

    out(
        f"rramsim inference benchmark ({table_name}); torch {torch.__version__}, {args.threads} thread(s), "
        f"device {args.device}; times are "
        + ("CPU time of this process" if CLOCK is time.process_time else "wall-clock time")
    )
    out(f"machine at start: {machine_load()}")
    out("")
    if "networks" in sections:
        bench_networks(names, table, reps, budget, args.compile, args.device, out)
        out("")
    if "breakdown" in sections:
        bench_breakdown(names, table, reps, budget, out)
        out("")
    from rramsim.models.networks import LeNet5

    torch.manual_seed(0)
    plain = LeNet5().eval()
    x = torch.rand(256, 1, 28, 28)

    # ---------------------------------------------------------------- 2. LeNet-5 read-noise modes, I-V
    if "noise" in sections:
        models = {"plain torch": plain}
        for mode in ("per_forward", "per_read"):
            label = f"analog, read noise {mode}" + (" (default)" if mode == "per_forward" else "")
            models[label] = convert_to_analog(plain, table, CrossbarConfig.ohmic(read_noise=mode), seed=1).eval()
        models["analog, nonlinear I-V (per_forward)"] = convert_to_analog(
            plain, table, CrossbarConfig(read_noise="per_forward", nonlinear_iv=True, ir_drop="off"), seed=1
        ).eval()
        with torch.no_grad():
            t = interleaved({k: (lambda m=m: m(x)) for k, m in models.items()}, reps, budget)
        out(
            "LeNet-5, batch 256, 128x128 tiles, differential pairs, 8-bit DAC/ADC, no IR drop "
            f"(median of up to {reps}, interleaved)"
        )
        base = t["plain torch"]
        for k, v in t.items():
            out(f"  {k:<40} {v * 1e3:8.2f} ms   {v / base:5.2f}x plain torch")
        out("")
    if "solvers" not in sections:
        finish(args, lines, out)
        return

    # ---------------------------------------------------------------- 3. exact IR drop, linear cells
    rng = np.random.default_rng(0)
    g = rng.uniform(table.g_min, table.g_max, (128, 128))
    r = 1.0
    v = rng.uniform(0, 0.2, (128, 256))
    t_block = timed(lambda: TileSolver(g, r).transfer(), 2)

    def scipy_direct():
        A, drive, sense = nodal_matrix(g, r)
        b = np.zeros((A.shape[0], 128))
        b[drive, np.arange(128)] = 1 / r
        return spla.splu(A).solve(b)[sense] / r

    t_scipy = timed(scipy_direct, 1)
    t_spice = float("nan")
    try:
        from rramsim.circuits.crossbar import column_vectors, crossbar_deck
        from rramsim.cosim.ngspice import Session

        deck = crossbar_deck(g, v[:, 0], r)
        session = Session.get()
        t_spice = timed(lambda: session.simulate(deck, "op", column_vectors(128), name="crossbar"), 2)
    except Exception as exc:  # noqa: BLE001 - report, keep benchmarking
        out(f"  (ngspice not available: {exc})")
    T = TileSolver(g, r).transfer()
    from rramsim.models import approx_transfer

    t_approx = timed(lambda: approx_transfer(torch.from_numpy(g), r), 3)
    exact_i = T @ v
    err = {
        name: float(np.abs(m.T @ v - exact_i).max() / np.abs(exact_i).max())
        for name, m in (("ideal", g), ("approx", approx_transfer(torch.from_numpy(g), r).numpy()))
    }
    Tt = torch.from_numpy(T).float()
    vt = torch.from_numpy(v.T).float()
    t_mm = timed(lambda: vt @ Tt.T, 20)
    out(f"IR drop, exact, linear cells, one 128x128 tile, wire {r} ohm/segment:")
    out(f"  one-time transfer matrix (block elimination, torch f64) {t_block * 1e3:9.1f} ms")
    out(
        f"  scipy sparse LU (splu) + 128 solves, same network      {t_scipy * 1e3:9.1f} ms "
        f"({t_scipy / t_block:.1f}x the block solver)"
    )
    out(f"  ngspice op (KLU), ONE input vector                      {t_spice * 1e3:9.1f} ms")
    out(
        f"  256 input vectors after the one-time cost (matmul)      {t_mm * 1e3:9.3f} ms "
        f"(ngspice would need ~{256 * t_spice:.0f} s)"
    )
    out(
        f"  ir_drop='approx' (no solve)                             {t_approx * 1e3:9.1f} ms, max error "
        f"{100 * err['approx']:.1f}% of the largest column current (no IR drop: {100 * err['ideal']:.0f}%)"
    )

    ir_models = {
        "ir_drop off": convert_to_analog(plain, table, CrossbarConfig.ohmic(read_noise="per_forward"), seed=1),
        "ir_drop exact": None,
    }
    t0 = CLOCK()
    ir_models["ir_drop exact"] = convert_to_analog(
        plain,
        table,
        CrossbarConfig(read_noise="per_forward", ir_drop="exact", nonlinear_iv=False, wire_resistance=r),
        seed=1,
    )
    t_prog = CLOCK() - t0
    n_tiles = sum(m.geometry()["tiles"] for m in ir_models["ir_drop exact"].modules() if hasattr(m, "geometry"))
    with torch.no_grad():
        t = interleaved({k: (lambda m=m.eval(): m(x)) for k, m in ir_models.items()}, reps)
    out(f"  LeNet-5 programming with exact IR drop ({n_tiles} tiles): {t_prog:.2f} s one-time")
    out(
        f"  LeNet-5 forward, batch 256: exact {t['ir_drop exact'] * 1e3:.2f} ms vs off "
        f"{t['ir_drop off'] * 1e3:.2f} ms = {t['ir_drop exact'] / t['ir_drop off']:.2f}x"
    )

    # ---------------------------------------------------------------- 4. nonlinear I-V, exact
    from rramsim.models.programming import fit_iv

    coef_l = fit_iv(table, 0.2)
    coef = coef_l[rng.integers(0, table.n_levels, (128, 128))]
    solver = TileSolver(g, r)
    t0 = CLOCK()
    _, iters = solver.currents_nonlinear(v, coef, method="fixed-point")  # the linearized default: bench/array_read.py
    t_nl = CLOCK() - t0
    from rramsim.models.irdrop import ESCALATED_RANK, cheapest_cut, programmed_model, truncate

    solver.currents_nonlinear(v, coef)  # the per-vector solve: build once, then time a call
    t_pv = timed(lambda: solver.currents_nonlinear(v, coef), 3)
    t0 = CLOCK()
    built = programmed_model(g, r, coef, 0.2, rank=ESCALATED_RANK)
    t_build = CLOCK() - t0
    cut = cheapest_cut([built])  # what a layer of this one tile runs
    model = truncate(built, *cut)
    from array_read import model_call

    t_pp = timed(model_call(model, v), 5)
    out("")
    out("Nonlinear I-V (table's I-V, cubic fit per level):")
    out(
        f"  exact IR drop, one 128x128 tile, 256 vectors: fixed point {t_nl:.2f} s ({iters} iterations on the one "
        f"factorization); per-vector solve {t_pv * 1e3:.1f} ms; per-programming model {t_pp * 1e3:.2f} ms "
        f"(torch f32, the engine's work: {cut[0]} input forms per column"
        f"{'' if cut[1] else ', the leading one with its functionals'}; built once in {t_build:.2f} s with its probe checks, "
        f"error {100 * model['error']:.3f}% of full scale); linear cells {t_mm * 1e3:.3f} ms"
    )
    out("  without IR drop: 'analog, nonlinear I-V' above (one matmul per tile on [v, v^2, v^3], 3x the rows)")
    nl = {}
    prog = {}
    for name, kw in (
        ("off", {"ir_drop": "off"}),
        ("exact, per_vector", {"ir_drop": "exact", "ir_drop_solver": "per_vector"}),
        ("exact, per_programming", {"ir_drop": "exact", "ir_drop_solver": "per_programming"}),
    ):
        t0 = CLOCK()
        nl[name] = convert_to_analog(
            plain, table, CrossbarConfig(read_noise="per_forward", nonlinear_iv=True, wire_resistance=r, **kw), seed=1
        ).eval()
        prog[name] = CLOCK() - t0
    with torch.no_grad():  # the slow solve a few times, the two fast ones interleaved over more rounds
        t = interleaved({k: (lambda m=m: m(x)) for k, m in nl.items() if k != "exact, per_vector"}, 15, budget)
        t["exact, per_vector"] = interleaved({0: lambda: nl["exact, per_vector"](x)}, 3, budget)[0]
    bound = max(m.engine.ir_drop_error for m in nl["exact, per_programming"].modules() if hasattr(m, "engine"))
    out(
        f"  LeNet-5, batch 256, nonlinear cells, read noise per_forward, {r:g} ohm/segment (median of up to 15, "
        "off and per_programming interleaved; per_vector of 3):"
    )
    for k in nl:
        out(
            f"    ir_drop {k:<24} forward {t[k] * 1e3:8.1f} ms = {t[k] / t['off']:5.2f}x off; programming "
            f"{prog[k]:6.2f} s"
            + (f"; largest tile error {100 * bound:.3f}% of full scale" if k.endswith("per_programming") else "")
        )

    finish(args, lines, out)


def finish(args, lines: list[str], out) -> None:
    out("")
    out(f"machine at end: {machine_load()}")
    if args.write:
        results = ROOT / "bench" / "RESULTS.md"
        write_section(results, "Inference", lines, "bench/inference.py")
        print(f"\nwrote section 'Inference' of {results}")


if __name__ == "__main__":
    main()
