"""Soak: many consecutive simulations in one ngspice shared session, memory must stay flat.

Runs N (default 10,000) short pulse + read transients through one session (load, run,
read, ``destroy all`` each time) and prints the resident set size at the start, after
the first 10%, and at the end.

    python bench/soak.py [--runs 10000]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from rramsim.circuits.testbenches import builtin_device, write_verify_deck
from rramsim.cosim.ngspice import Session
from rramsim.cosim.writeverify import WriteVerifyScheme, timing
from rramsim.devices import CompactModel


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=10_000)
    args = ap.parse_args()
    scheme = WriteVerifyScheme()
    device = builtin_device(CompactModel().params())
    session = Session.get()
    rng = np.random.default_rng(0)
    start = rss_mib()
    t0 = time.perf_counter()
    marks = {}
    for k in range(args.runs):
        deck = write_verify_deck(device, [{"x0": float(rng.uniform(0.3, 1.6))}], timing(scheme))
        deck = deck.replace("Va0 a0 0 dc 0", f"Va0 a0 0 dc {float(rng.uniform(-1.4, 1.4))!r}")
        out = session.simulate(deck, f"tran 1e-9 {timing(scheme).stop_time(0)!r}", ["i(vs0)", "v(d0)"], name="soak")
        assert np.isfinite(out["i(vs0)"][-1])
        if k + 1 == max(1, args.runs // 10):
            marks["after 10%"] = rss_mib()
    dt = time.perf_counter() - t0
    end = rss_mib()
    print(f"{args.runs} simulations in one ngspice session in {dt:.1f} s ({args.runs / dt:.0f}/s)")
    print(
        f"RSS start {start:.1f} MiB, after 10% {marks.get('after 10%', end):.1f} MiB, end {end:.1f} MiB "
        f"(growth after warm-up: {end - marks.get('after 10%', start):+.1f} MiB)"
    )


if __name__ == "__main__":
    main()
