"""Inference benchmark: crossbar-simulated LeNet-5 against plain torch, and the IR-drop solvers.

Run: ``.venv/bin/python bench/inference.py`` (about a minute; ``--quick`` for fewer repeats).

1. LeNet-5, batch 256, 128x128 tiles, programming + read noise + 8-bit DAC/ADC, no IR
   drop, timed interleaved with the same plain torch model (median of the repeats); read
   noise both ``per_read`` (the default, one draw per cell and input vector) and
   ``per_forward`` (one draw per cell per forward pass).
2. IR drop ``exact`` with linear cells: the one-time cost per 128x128 tile (block
   elimination) against scipy's sparse direct solve of the same network and against
   ngspice on one input vector; then 256 input vectors through the tile and the LeNet-5
   forward with ``exact`` against ``off`` (same weights).
3. Nonlinear I-V: the exact solver's fixed-point iteration on one 128x128 tile with 256
   vectors, and the LeNet-5 forward with the polynomial I-V (no IR drop).

Both sides of every ratio use one torch thread (this machine's cores are shared; more
threads made both sides noisier, not faster). Uses the shipped default table when there
is one, else the synthetic table of the tests.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse.linalg as spla
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]


def lenet5() -> nn.Module:
    try:
        from rramsim.models.networks import LeNet5
        return LeNet5()
    except ImportError:  # the networks module is not there: the classic LeNet-5
        return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


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


def interleaved(fns: dict, repeats: int) -> dict:
    """Median seconds of each callable, run in turn ``repeats`` times after a warm-up."""
    times = {k: [] for k in fns}
    for f in fns.values():
        f()
    for _ in range(repeats):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def timed(f, repeats: int = 1) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--table", help="a DeviceTable HDF5 file (default: the shipped one, else a synthetic one)")
    args = ap.parse_args()
    reps = 7 if args.quick else 25
    torch.set_num_threads(1)
    from rramsim.models import CrossbarConfig, TileSolver, convert_to_analog, nodal_matrix

    table, table_name = load_table(args.table)
    print(f"rramsim inference benchmark ({table_name}); torch {torch.__version__}, 1 thread")
    torch.manual_seed(0)
    plain = lenet5().eval()
    x = torch.rand(256, 1, 28, 28)
    lines = []

    def out(s: str = "") -> None:
        print(s)
        lines.append(s)

    # ---------------------------------------------------------------- 1. LeNet-5 no IR drop
    models = {"plain torch": plain}
    for mode in ("per_forward", "per_read"):
        models[f"analog, read noise {mode}" + (" (default)" if mode == "per_forward" else "")] = convert_to_analog(plain, table, CrossbarConfig(read_noise=mode),
                                                                  seed=1).eval()
    models["analog, nonlinear I-V (per_forward)"] = convert_to_analog(
        plain, table, CrossbarConfig(read_noise="per_forward", nonlinear_iv=True), seed=1).eval()
    with torch.no_grad():
        t = interleaved({k: (lambda m=m: m(x)) for k, m in models.items()}, reps)
    out("LeNet-5, batch 256, 128x128 tiles, differential pairs, 8-bit DAC/ADC, no IR drop "
        f"(median of {reps}, interleaved)")
    base = t["plain torch"]
    for k, v in t.items():
        out(f"  {k:<40} {v * 1e3:8.2f} ms   {v / base:5.2f}x plain torch")

    # ---------------------------------------------------------------- 2. exact IR drop, linear cells
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
    err = {name: float(np.abs(m.T @ v - exact_i).max() / np.abs(exact_i).max())
           for name, m in (("ideal", g), ("approx", approx_transfer(torch.from_numpy(g), r).numpy()))}
    Tt = torch.from_numpy(T).float()
    vt = torch.from_numpy(v.T).float()
    t_mm = timed(lambda: vt @ Tt.T, 20)
    out("")
    out(f"IR drop, exact, linear cells, one 128x128 tile, wire {r} ohm/segment:")
    out(f"  one-time transfer matrix (block elimination, torch f64) {t_block * 1e3:9.1f} ms")
    out(f"  scipy sparse LU (splu) + 128 solves, same network      {t_scipy * 1e3:9.1f} ms "
        f"({t_scipy / t_block:.1f}x the block solver)")
    out(f"  ngspice op (KLU), ONE input vector                      {t_spice * 1e3:9.1f} ms")
    out(f"  256 input vectors after the one-time cost (matmul)      {t_mm * 1e3:9.3f} ms "
        f"(ngspice would need ~{256 * t_spice:.0f} s)")
    out(f"  ir_drop='approx' (no solve)                             {t_approx * 1e3:9.1f} ms, max error "
        f"{100 * err['approx']:.1f}% of the largest column current (no IR drop: {100 * err['ideal']:.0f}%)")

    ir_models = {"ir_drop off": convert_to_analog(plain, table, CrossbarConfig(read_noise="per_forward"), seed=1),
                 "ir_drop exact": None}
    t0 = time.perf_counter()
    ir_models["ir_drop exact"] = convert_to_analog(
        plain, table, CrossbarConfig(read_noise="per_forward", ir_drop="exact", wire_resistance=r), seed=1)
    t_prog = time.perf_counter() - t0
    n_tiles = sum(m.geometry()["tiles"] for m in ir_models["ir_drop exact"].modules() if hasattr(m, "geometry"))
    with torch.no_grad():
        t = interleaved({k: (lambda m=m.eval(): m(x)) for k, m in ir_models.items()}, reps)
    out(f"  LeNet-5 programming with exact IR drop ({n_tiles} tiles): {t_prog:.2f} s one-time")
    out(f"  LeNet-5 forward, batch 256: exact {t['ir_drop exact'] * 1e3:.2f} ms vs off "
        f"{t['ir_drop off'] * 1e3:.2f} ms = {t['ir_drop exact'] / t['ir_drop off']:.2f}x")

    # ---------------------------------------------------------------- 3. nonlinear I-V, exact
    from rramsim.models.programming import fit_iv
    coef_l = fit_iv(table, 0.2)
    coef = coef_l[rng.integers(0, table.n_levels, (128, 128))]
    solver = TileSolver(g, r)
    t0 = time.perf_counter()
    _, iters = solver.currents_nonlinear(v, coef, method="fixed-point")   # the linearized default: bench/array.py
    t_nl = time.perf_counter() - t0
    out("")
    out("Nonlinear I-V (table's I-V, cubic fit per level):")
    out(f"  exact IR drop, one 128x128 tile, 256 vectors: {t_nl:.2f} s ({iters} fixed-point iterations "
        f"on the one factorization), against {t_mm * 1e3:.3f} ms for linear cells")
    out("  without IR drop: 'analog, nonlinear I-V' above (one matmul per tile on [v, v^2, v^3], 3x the rows)")

    results = ROOT / "bench" / "RESULTS.md"
    write_section(results, "Inference", lines)
    print(f"\nwrote section 'Inference' of {results}")


def write_section(path: Path, title: str, lines: list[str]) -> None:
    """Replace (or append) the ``## title`` section of ``path``, leaving other sections alone."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    body = (f"## {title}\n\nMeasured by `bench/inference.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}."
            "\n\n```\n" + "\n".join(lines) + "\n```\n")
    parts = text.split("\n## ")
    head, sections = parts[0], parts[1:]
    new, found = [], False
    for sec in sections:
        if sec.split("\n", 1)[0].strip() == title:
            new.append(body[3:].rstrip("\n") + "\n")
            found = True
        else:
            new.append(sec)
    if not found:
        new.append(body[3:].rstrip("\n") + "\n")
    path.write_text(head.rstrip("\n") + "\n\n## " + "\n## ".join(s.rstrip("\n") + "\n" for s in new).rstrip("\n")
                    + "\n")


if __name__ == "__main__":
    main()
