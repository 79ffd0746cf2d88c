"""The behavioural model and the I-V bench, run in ngspice."""

import numpy as np

from rramsim.circuits.testbenches import builtin_device
from rramsim.cosim.characterize import iv_sweep
from rramsim.devices import CompactModel


def _switching_voltages(out):
    v, i = out["v"], out["i"]
    # chord conductance normalised by the sinh I-V shape: changes only when the state does
    shape = np.where(np.abs(v) > 0.3, np.sinh(np.abs(v) / 0.25) / np.maximum(np.abs(v), 1e-9), np.nan)
    state = np.log(np.abs(i) / np.maximum(np.abs(v), 1e-9) / shape)
    step = np.diff(state)
    half = len(v) // 2
    set_idx = np.nanargmax(step[:half])  # fastest rise of G: first (positive) half
    reset_idx = half + np.nanargmin(step[half:])  # fastest fall of G: second (negative) half
    return v[set_idx], v[reset_idx], state


def test_iv_sweep_shows_hysteresis_with_set_positive_reset_negative():
    out = iv_sweep(builtin_device(CompactModel().params()), v_max=1.3)
    v_set, v_reset, g = _switching_voltages(out)
    assert 0.5 < v_set < 1.3, v_set
    assert -1.3 < v_reset < -0.5, v_reset
    # the two branches at +0.3 V differ by orders of magnitude (HRS up, LRS down)
    v, i = out["v"], out["i"]
    rising = np.flatnonzero((np.abs(v - 0.3) < 0.02) & (np.gradient(v) > 0))
    falling = np.flatnonzero((np.abs(v - 0.3) < 0.02) & (np.gradient(v) < 0))
    assert i[falling[0]] / i[rising[0]] > 50


def test_1t1r_compliance_limits_set_current():
    model = CompactModel()
    one_r = iv_sweep(builtin_device(model.params(), "1R"), v_max=1.3)
    one_t = iv_sweep(builtin_device(model.params(), "1T1R"), v_max=1.3)
    assert one_t["i"].max() < 0.5 * one_r["i"].max()
    assert one_t["i"].max() < 1e-3  # the transistor caps the SET current


def test_state_stays_inside_its_bounds_under_extreme_stimulus():
    # 3 V for microseconds would overflow an unclamped model; here G stays at the LRS bound
    model = CompactModel()
    out = iv_sweep(builtin_device(model.params()), v_max=3.0, period=2e-6)
    assert np.all(np.isfinite(out["i"]))
    g_max = model.window_conductance(0.2)[1]
    v, i = out["v"], out["i"]
    near = np.flatnonzero(np.abs(v - 0.2) < 0.01)
    assert np.all(i[near] / v[near] < 1.05 * g_max)


def test_single_pulse_and_read_set_raises_reset_lowers_conductance():
    from rramsim.cosim.characterize import pulse_read

    model = CompactModel()
    device = builtin_device(model.params())
    mid = {"x0": 1.0}
    weak = pulse_read(device, 0.5, params=mid)
    strong = pulse_read(device, 1.3, params=mid)
    reset = pulse_read(device, -1.3, params=mid)
    assert abs(weak["g_after"] / weak["g_before"] - 1) < 0.01  # below threshold: a read, not a write
    assert strong["g_after"] > 2 * strong["g_before"]
    assert reset["g_after"] < 0.5 * reset["g_before"]
    assert strong["g_before"] == reset["g_before"] == weak["g_before"]
    assert strong["energy"] > weak["energy"] > 0


def test_relaxation_off_leaves_the_netlist_as_the_plain_model():
    """The post-programming relaxation is emitted only when asked for: the plain subcircuit
    (every campaign's) has none of it, and the relaxation variant is the plain text plus its
    parameter line and source, with the gap read as V(x)+V(r) and r_ret acting on it."""
    from rramsim.circuits.compact_model import RELAX_PARAMS, rram_subckt
    from rramsim.devices.params import Relaxation, Variability

    p = CompactModel().params()
    plain = rram_subckt(p)
    assert plain == rram_subckt(p, relaxation=False)
    assert "relax=" not in plain and "relax_" not in plain and "V(r)" not in plain and "Br " not in plain
    relaxed = rram_subckt(p, relaxation=True)
    assert all(f"{name}=" in relaxed for name in RELAX_PARAMS)
    back = [line for line in relaxed.splitlines() if not line.startswith(("+ relax=", "* post-programming", "Br r 0"))]
    back = (
        "\n".join(back)
        .replace("Brx x gm I=(V(x)+V(r)-V(gm))*{r_ret}", "Rx x gm {1/r_ret}")
        .replace("(V(x)+V(r))", "V(x)")
    )
    assert back + "\n" == plain
    # off by default, and a variability without it records nothing new in a table
    assert not Variability().relaxation.on and "relaxation" not in Variability({"i0": 0.1}).to_dict()
    on = Variability({"i0": 0.1}, relaxation=Relaxation(0.005, 0.2, 1e-6, 0.75))
    assert Variability.from_dict(on.to_dict()) == on
    assert on.scaled(2).relaxation.amplitude == 0.01


def test_relaxation_parameters_are_checked():
    import pytest

    from rramsim.devices.params import Relaxation, Variability

    for bad in ({"amplitude": -1.0}, {"decay": 0.0}, {"tau": float("nan")}, {"gap_ref": -0.1}):
        with pytest.raises(ValueError, match="Relaxation"):
            Relaxation(**bad)
    with pytest.raises(ValueError, match="user's device has no relaxation"):
        Variability({"a": 0.1}, 0.0, {"a": 1.0}, relaxation=Relaxation(0.01))
    with pytest.raises(ValueError, match="unknown field"):
        Variability.from_dict({"relaxation": {"amplitude": 0.01, "speed": 1}})


def test_plain_netlists_are_the_text_they_were():
    """The plain model's subcircuit, a retention deck of it and rram.va, as they were before
    the post-programming relaxation existed (digests of that text): every campaign
    fingerprint and cached campaign names them, so they must not move while it is off."""
    import hashlib

    from rramsim.circuits.compact_model import rram_subckt
    from rramsim.circuits.retention import retention_deck

    p = CompactModel().params()
    cells = [dict(p, x0=0.8, r_ret=3.1e-7, noise=0.0), dict(p, x0=0.9, noise=0.0)]
    deck = retention_deck(builtin_device(p), cells, [1.0, 10.0], 0.2)
    assert (
        hashlib.sha256(rram_subckt(p).encode()).hexdigest()
        == "cebdf09f10aff9be7ae44ce7322315f8111aef22b9a1ae2719c1d30b1538e83a"
    )
    assert (
        hashlib.sha256(deck.encode()).hexdigest() == "30b5429ced587acc8245dd3381a9e0fe86a4ad93bac611326ae453ccd090295d"
    )
    # the compiled model's source: its digest names the OSDI build in every OSDI campaign
    from importlib.resources import files

    va = (files("rramsim.circuits") / "veriloga" / "rram.va").read_bytes()
    assert hashlib.sha256(va).hexdigest() == "58bd23a5e14d5682eb5d9ab1f3341c38eaccddc4b018359bb3be408cfec04692"
