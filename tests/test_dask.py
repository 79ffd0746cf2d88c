"""The campaign takes any concurrent.futures Executor: a Dask LocalCluster gives the same table."""

import numpy as np
import pytest

from rramsim.circuits.testbenches import builtin_device
from rramsim.cosim.campaign import device_params, run_campaign
from rramsim.cosim.writeverify import WriteVerifyScheme
from rramsim.devices import preset

distributed = pytest.importorskip("distributed", reason="dask.distributed is an optional extra (rramsim[dask])")


def test_dask_localcluster_matches_the_local_run():
    model, var = preset("hfox")
    scheme = WriteVerifyScheme()
    cells = device_params(model, var, 6, 11)
    targets = np.array([15e-6, 50e-6])
    device = builtin_device(model.params())
    local = run_campaign(device, cells, targets, scheme, 11, batch_size=2, workers=1, progress=False)
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        remote = run_campaign(
            device, cells, targets, scheme, 11, batch_size=2, executor=client.get_executor(), progress=False
        )
        workers_used = len(client.scheduler_info()["workers"])
    assert workers_used == 2
    for name in ("g_final", "pulses", "energy", "time", "converged"):
        np.testing.assert_array_equal(getattr(remote, name), getattr(local, name), err_msg=name)
