"""Scale-out benchmark: the same campaign with 1 and 2 local workers and on a Dask LocalCluster.

Prints cell-pulses per second of each, side by side in one run, and Dask's overhead
against the local pool with the same number of workers (the tables are identical).

    python bench/scale.py [--devices 120]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from rramsim.circuits.testbenches import builtin_device
from rramsim.cosim.campaign import device_params, run_campaign
from rramsim.cosim.writeverify import WriteVerifyScheme
from rramsim.devices import preset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--devices", type=int, default=120)
    ap.add_argument("--batch-size", type=int, default=20)
    args = ap.parse_args()
    from dask.distributed import Client, LocalCluster

    model, var = preset("hfox")
    scheme = WriteVerifyScheme()
    cells = device_params(model, var, args.devices, 0)
    targets = np.linspace(10e-6, 80e-6, 8)
    device = builtin_device(model.params())
    rates, tables = {}, {}

    def timed(name, **kw):
        t0 = time.perf_counter()
        res = run_campaign(device, cells, targets, scheme, 0, args.batch_size, progress=False, **kw)
        dt = time.perf_counter() - t0
        rates[name], tables[name] = res.pulses.sum() / dt, res
        print(f"{name:28s} {dt:7.1f} s  {rates[name]:7.0f} cell-pulses/s", flush=True)

    timed("local, 1 worker", workers=1)
    timed("local, 2 workers", workers=2)
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        timed("dask LocalCluster, 2 workers", executor=client.get_executor())
    print(
        f"2 workers / 1 worker: {rates['local, 2 workers'] / rates['local, 1 worker']:.2f}x; "
        f"dask overhead vs local pool: {rates['local, 2 workers'] / rates['dask LocalCluster, 2 workers'] - 1:+.1%}"
    )
    same = all(np.array_equal(tables[k].g_final, tables["local, 1 worker"].g_final) for k in tables)
    print(f"identical tables across all three: {same}")


if __name__ == "__main__":
    main()
