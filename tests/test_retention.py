"""Retention of the built-in model: the same relaxation whatever backend or cell the
campaign used (the deck runs the bare device's netlist)."""
import numpy as np
import pytest

from rramsim.cosim import osdi
from rramsim.cosim.characterize import Characterization, measure_retention
from rramsim.devices import preset


@pytest.mark.parametrize("backend,cell", [("behavioural", "1R"), ("osdi", "1R"), ("osdi", "1T1R")])
def test_retention_runs_for_every_backend_and_cell(backend, cell):
    if backend == "osdi" and not osdi.available():
        pytest.skip("no OpenVAF compiler here")
    model, variability = preset("hfox")
    device = osdi.builtin_device_for(backend, model.params(), cell)
    spec = Characterization(device=device, model=model, variability=variability,
                            targets=np.array([20e-6, 60e-6]), retention_time=1e4, retention_devices=3)
    times, ratio, sigma = measure_retention(spec)
    assert times[-1] == pytest.approx(1e4)
    assert ratio.shape == (2, times.size) and sigma.shape == ratio.shape
    # the state relaxes: by the last read G has fallen, and not below half
    assert np.all(ratio[:, -1] < ratio[:, 0] - 5e-3)
    assert np.all((ratio[:, -1] < 0.995) & (ratio[:, -1] > 0.5))
    assert np.all(sigma[:, -1] > 0)        # device-to-device relaxation rates differ
