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
    spec = Characterization(
        device=device,
        model=model,
        variability=variability,
        targets=np.array([20e-6, 60e-6]),
        retention_time=1e4,
        retention_devices=3,
    )
    times, ratio, sigma = measure_retention(spec)
    assert times[-1] == pytest.approx(1e4)
    assert ratio.shape == (2, times.size) and sigma.shape == ratio.shape
    # the state relaxes: by the last read G has fallen, and not below half
    assert np.all(ratio[:, -1] < ratio[:, 0] - 5e-3)
    assert np.all((ratio[:, -1] < 0.995) & (ratio[:, -1] > 0.5))
    assert np.all(sigma[:, -1] > 0)  # device-to-device relaxation rates differ


def test_retention_deck_reads_at_sample_times_with_controls_grounded():
    from rramsim.circuits.retention import read_starts, retention_analysis, retention_deck, sample_times
    from rramsim.circuits.testbenches import builtin_device

    model, _ = preset("hfox")
    times = [1.0, 10.0, 100.0]
    deck = retention_deck(builtin_device(model.params()), [dict(model.params(), noise=0.0)] * 2, times, 0.2)
    pwl = next(line for line in deck.splitlines() if line.startswith("Vd d 0 pwl("))
    values = np.array(pwl[len("Vd d 0 pwl(") : -1].split(), dtype=float).reshape(-1, 2)
    drive = np.interp(sample_times(times), values[:, 0], values[:, 1])
    assert np.all(drive == 0.2)  # every sample on a read plateau
    between = np.interp(read_starts(times)[1:] - 0.1, values[:, 0], values[:, 1])
    assert np.all(between == 0.0)  # unbiased between reads
    assert deck.count("Xc0 t0 0 0 0 rram") == 1 and deck.count("Xc1 t1 0 0 0 rram") == 1  # c, n grounded
    stop = float(retention_analysis(times).split()[2])
    assert stop > sample_times(times)[-1]


def _relaxing_spec(
    decay: float,
    targets,
    retention_time: float,
    n: int = 4,
    r_ret: float | None = None,
    devices: int = 3,
    amplitude: float = 0.004,
):
    from rramsim.devices import Variability
    from rramsim.devices.params import Relaxation
    from rramsim.devices.schemes import ISPP

    model, _ = preset("hfox")
    if r_ret is not None:
        model = model.replace(r_ret=r_ret)
    variability = Variability({}, 0.0, relaxation=Relaxation(amplitude, decay, 1e-6, 0.75))
    return Characterization.builtin(
        model,
        variability=variability,
        scheme=ISPP(tolerance=0.02),
        targets=np.asarray(targets),
        n_devices=devices,
        retention_time=retention_time,
        retention_devices=n,
    )


def test_relaxation_follows_its_time_law_at_two_retention_times():
    """Every cell's G(t)/G(0) is exp(-delta ln(1 + t/tau) / g0) (the slow relaxation made
    negligible): the bench's ratio mean and spread match that law at 1 s and at 1e4 s."""
    from rramsim.cosim.characterize import relaxation_draws

    spec = _relaxing_spec(0.2, [10e-6, 40e-6], 1e4, r_ret=1e-12, amplitude=0.001)
    times, ratio, sigma = measure_retention(spec)
    model, relax = spec.model, spec.variability.relaxation
    gaps = -model.g0 * np.log(spec.targets * 0.2 / (model.i0 * np.sinh(0.2 / model.v0)))
    delta = relax.sigma_gap(gaps)[:, None] * relaxation_draws(spec.seed, 2, 4)
    for t in (1.0, 1e4):
        k = int(np.argmin(abs(times - t)))
        expect = np.exp(-delta * relax.law(t) / model.g0)
        np.testing.assert_allclose(ratio[:, k], expect.mean(axis=1), rtol=1e-3)
        np.testing.assert_allclose(sigma[:, k], expect.std(axis=1), rtol=5e-3)
    # the law, not a linear one: where the spread is small (40 uS) it grows as
    # ln(1 + 1e4/tau) / ln(1 + 1/tau) = 1.67 from 1 s to 1e4 s
    assert sigma[1, 0] < 0.03
    assert sigma[1, -1] / sigma[1, 0] == pytest.approx(relax.law(1e4) / relax.law(1.0), rel=0.02)


def test_relaxation_spread_falls_with_g_for_a_short_decay_and_rises_for_a_long_one():
    """2 levels, 3 devices, read at 1 s (the table's "1 s" holds that second's relaxation):
    the absolute spread goes as G^(1 - g0/decay), g0 = 0.25 nm."""
    from rramsim.cosim.characterize import characterize
    from rramsim.cosim.compare import sigma_at

    spread = {}
    for decay in (0.1, 0.6):
        table = characterize(_relaxing_spec(decay, [10e-6, 40e-6], 1.0), workers=1, progress=False)
        assert table.retention_t.tolist() == [1.0]
        spread[decay] = sigma_at(table, 1.0)[1]
        assert np.all(spread[decay] > table.g_final.std(axis=1))  # wider than the write-verify read
        # inference draws a cell's G at 1 s from the same numbers: the group's first column
        import torch

        from rramsim.models.programming import DevicePhysics

        z = torch.linspace(-2, 2, 5, dtype=torch.float64)
        for level in range(2):
            f = DevicePhysics(table, 0.2).drift_factor(1.0, torch.full((5,), level), z, 0.0, 0.0, 1.0)
            want = table.retention_ratio[level, 0] + table.retention_sigma[level, 0] * z.numpy()
            np.testing.assert_allclose(f.numpy(), np.maximum(want, 0), rtol=1e-12)
    assert spread[0.1][1] < 0.5 * spread[0.1][0]  # G^-1.5: 4x G, 1/8 of the spread
    assert spread[0.6][1] > 1.5 * spread[0.6][0]  # G^+0.58: 4x G, 2.2x the spread
