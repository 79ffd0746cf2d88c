"""Write-verify campaigns in ngspice: convergence, spread, seeds, failures."""

import numpy as np
import pytest

from rramsim.circuits.testbenches import Device, builtin_device
from rramsim.cosim.campaign import device_params, run_campaign
from rramsim.cosim.characterize import Characterization, characterize
from rramsim.cosim.ngspice import SimulationError
from rramsim.cosim.writeverify import BatchSpec, WriteVerifyScheme, run_batch, timing
from rramsim.devices import preset

TARGETS = np.array([10e-6, 25e-6, 45e-6, 70e-6])


def _campaign(scale=1.0, seed=0, n=6, batch_size=3, targets=TARGETS):
    model, var = preset("hfox")
    var = var.scaled(scale)
    scheme = WriteVerifyScheme()
    cells = device_params(model, var, n, seed)
    return run_campaign(
        builtin_device(model.params()), cells, targets, scheme, seed, batch_size, workers=1, progress=False
    )


def test_nominal_device_reaches_every_target_within_tolerance():
    model, _ = preset("hfox-ideal")
    scheme = WriteVerifyScheme()
    res = run_batch(BatchSpec(0, builtin_device(model.params()), [None], TARGETS, scheme, [[0]]))
    g = res.g_final[:, 0]
    assert res.converged.all()
    assert np.all(np.abs(g - TARGETS) <= scheme.tolerance * TARGETS)
    assert np.all(res.pulses >= 2) and np.all(res.energy > 0)
    # energy is integrated from the simulation: more pulses cost more at a level
    assert res.time[0, 0] == pytest.approx(res.pulses[0, 0] * timing(scheme).period)


def test_monte_carlo_spread_is_nonzero_and_grows_with_variability():
    none = _campaign(scale=0.0)
    assert np.all(np.ptp(none.g_final, axis=1) <= 1e-12 * none.g_final.max()) and np.all(
        np.ptp(none.pulses, axis=1) == 0
    )
    small = _campaign(scale=0.3)
    large = _campaign(scale=2.0)
    spread_small = small.pulses.std() + small.g_final.std(axis=1).mean()
    assert small.g_final.std(axis=1).min() > 0
    assert np.std(large.pulses) > np.std(small.pulses)
    assert large.pulses.std() + large.g_final.std(axis=1).mean() > spread_small


def test_same_seed_same_table_other_seed_different(small_spec, small_table):
    again = characterize(small_spec, workers=2, progress=False, command="pytest small_table")
    for name in (
        "g_final",
        "pulses",
        "energy",
        "time",
        "converged",
        "read_g",
        "read_sigma",
        "iv_current",
        "retention_ratio",
    ):
        np.testing.assert_array_equal(getattr(again, name), getattr(small_table, name), err_msg=name)
    import dataclasses

    other = characterize(dataclasses.replace(small_spec, seed=small_spec.seed + 1), workers=1, progress=False)
    assert not np.array_equal(other.g_final, small_table.g_final)


def test_batching_does_not_change_devices_parameters():
    model, var = preset("hfox")
    a = device_params(model, var, 10, 5)
    b = device_params(model, var, 4, 5)
    assert a[:4] == b


def test_non_convergent_deck_raises_with_deck_name_and_log():
    # a device whose current explodes: every rung of the retry ladder fails
    bad = Device("boom", ".subckt boom p n\nBm p n I=1e-3*V(x)\nBx 0 x I=1e15*V(x)*V(x)\nCx x 0 1 ic=1\n.ends boom")
    spec = BatchSpec(7, bad, [None], np.array([1e-5]), WriteVerifyScheme(), [[0]])
    with pytest.raises(SimulationError) as err:
        run_batch(spec)
    text = str(err.value)
    assert "write-verify batch 7" in text and "every solver option set" in text
    assert "end of ngspice log" in text


def test_scheme_rejects_bad_settings():
    with pytest.raises(ValueError, match="tolerance"):
        WriteVerifyScheme(tolerance=1.5)
    with pytest.raises(ValueError, match="max_pulses"):
        WriteVerifyScheme(max_pulses=0)
    with pytest.raises(ValueError, match="read_voltage"):
        WriteVerifyScheme(read_voltage=1.2)
    with pytest.raises(ValueError, match="v_step"):
        WriteVerifyScheme(v_step="nan")
    with pytest.raises(ValueError, match="n_devices"):
        model, var = preset("hfox")
        Characterization.builtin(model, n_devices=0)
