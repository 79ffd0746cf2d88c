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


def test_retention_deck_reads_at_sample_times_with_controls_grounded():
    from rramsim.circuits.retention import read_starts, retention_analysis, retention_deck, sample_times
    from rramsim.circuits.testbenches import builtin_device

    model, _ = preset("hfox")
    times = [1.0, 10.0, 100.0]
    deck = retention_deck(builtin_device(model.params()), [dict(model.params(), noise=0.0)] * 2, times, 0.2)
    pwl = next(line for line in deck.splitlines() if line.startswith("Vd d 0 pwl("))
    values = np.array(pwl[len("Vd d 0 pwl("):-1].split(), dtype=float).reshape(-1, 2)
    drive = np.interp(sample_times(times), values[:, 0], values[:, 1])
    assert np.all(drive == 0.2)                                  # every sample on a read plateau
    between = np.interp(read_starts(times)[1:] - 0.1, values[:, 0], values[:, 1])
    assert np.all(between == 0.0)                                # unbiased between reads
    assert deck.count("Xc0 t0 0 0 0 rram") == 1 and deck.count("Xc1 t1 0 0 0 rram") == 1   # c, n grounded
    stop = float(retention_analysis(times).split()[2])
    assert stop > sample_times(times)[-1]
