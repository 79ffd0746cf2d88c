"""Programming at scale: memory and time of ``convert_to_analog`` on large MLPs.

Each case runs in a fresh child process (so one case's allocations never count for the
next). What is counted, per weight of the float model:

* ``peak``: the child's peak resident set (``ru_maxrss``) during ``convert_to_analog``
  minus its resident set with the float model built (torch imported, weights allocated);
* ``steady``: the resident set after conversion (garbage collected, freed heap returned
  to the system with ``malloc_trim``), the converted model held, before any forward,
  minus the same float-model baseline;
* ``tensors``: the bytes of tensor storage the crossbar engines hold (programmed cells
  and compiled tiles), counted directly;
* ``rate``: weights programmed per second of wall time, printed with the machine's
  1-minute load average at the start of the case (other processes on the cores slow it
  down); ``threads``: torch's CPU threads (``BENCH_THREADS`` sets them) and, after the
  slash, the threads the blocks of cells ran on (one while the cores are busy, see
  ``rramsim.models.tile._block_threads``); ``cpu s``: the CPU time the conversion used
  (all threads), which other processes change much less.

The conversion runs with ``inplace=True`` so the float weights themselves (4 bytes per
weight, the user's model) are in the baseline and not counted; ``inplace=False`` copies
the model first and adds those 4 bytes on top. Default config (differential mapping,
programming spread, no drift, IR drop off, linear I-V).

    python bench/convert_scale.py                 # the 33.6 M-weight two-layer MLP
    python bench/convert_scale.py --cases mlp33 mlp100
    python bench/convert_scale.py --cases mlp8    # a quick 8.4 M-weight check
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import resource
import subprocess
import sys
import time

CASES = {  # name -> layer widths (Linear(a, b) for consecutive pairs)
    "mlp8": [2048, 2048, 2048],  # 2 x 2048x2048 = 8.4 M weights (quick check)
    "mlp33": [4096, 4096, 4096],  # 2 x 4096x4096 = 33.6 M weights
    "mlp100": [4096, 8192, 8192],  # 4096x8192 + 8192x8192 = 100.7 M weights
}
TARGETS = {"peak": 24.0, "steady": 12.0, "rate": 5e6}


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _trim() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def child(case: str, seed: int) -> dict:
    import torch
    from torch import nn

    from rramsim.devices import load_default_table
    from rramsim.models import convert_to_analog
    from rramsim.models.convert import analog_layers
    from rramsim.models.tile import _block_threads

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", torch.get_num_threads())))
    table = load_default_table()
    widths = CASES[case]
    torch.manual_seed(0)
    layers = []
    for a, b in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    model = nn.Sequential(*layers[:-1]).eval()
    n_w = sum(m.weight.numel() for m in model if isinstance(m, nn.Linear))
    load = os.getloadavg()[0]
    blocks = _block_threads()
    _trim()
    base = _rss()
    t0, c0 = time.perf_counter(), time.process_time()
    analog = convert_to_analog(model, table, seed=seed, inplace=True)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    _trim()
    steady = _rss()
    tensors = 0
    for _, layer in analog_layers(analog):
        tensors += layer.engine.storage_bytes()
    return {
        "case": case,
        "weights": n_w,
        "seconds": dt,
        "rate": n_w / dt,
        "load": load,
        "cpu": cpu,
        "blocks": blocks,
        "peak": (peak - base) / n_w,
        "steady": (steady - base) / n_w,
        "tensors": tensors / n_w,
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", nargs="+", default=["mlp33"], choices=sorted(CASES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.seed)))
        return
    print(
        f"{'case':8s} {'weights':>9s} {'seconds':>8s} {'M w/s':>7s} {'peak B/w':>9s} {'steady B/w':>11s} "
        f"{'tensors B/w':>12s} {'threads':>8s} {'load':>5s} {'cpu s':>6s}"
    )
    for case in args.cases:
        out = subprocess.run(
            [sys.executable, "-P", __file__, "--child", case, "--seed", str(args.seed)], capture_output=True, text=True
        )
        if out.returncode:
            sys.exit(f"{case} failed:\n{out.stderr}")
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{case:8s} {r['weights'] / 1e6:8.1f}M {r['seconds']:8.2f} {r['rate'] / 1e6:7.2f} "
            f"{r['peak']:9.1f} {r['steady']:11.1f} {r['tensors']:12.1f} {str(r['threads']) + '/' + str(r['blocks']):>8s} {r['load']:5.2f} {r['cpu']:6.2f}",
            flush=True,
        )
    print(
        f"targets: peak <= {TARGETS['peak']:.0f} B/weight, steady <= {TARGETS['steady']:.0f} B/weight, "
        f">= {TARGETS['rate'] / 1e6:.0f} M weights/s (float weights not counted: inplace conversion)"
    )


if __name__ == "__main__":
    main()
