"""Programming schemes as objects: ISPP, IGVVA (1T1R), pulse-width; v1 tables; honest read G."""

import dataclasses

import h5py
from pathlib import Path

import numpy as np
import pytest

from rramsim.circuits.testbenches import T_READ, Device, builtin_device
from rramsim.cosim.cli import main
from rramsim.cosim.writeverify import BatchSpec, run_batch, timing
from rramsim.devices import DeviceTable, default_table_path, preset
from rramsim.devices.schemes import IGVVA, ISPP, SCHEMES, PulseWidth, make_scheme, scheme_from_attrs

TARGETS = np.array([15e-6, 50e-6])


def _cells(n, seed=1):
    model, var = preset("hfox")
    rng = np.random.default_rng(seed)
    nominal = dict(model.params(), c2c=0.0, x0=model.g_max)
    return model, [nominal] + [dict(p, c2c=var.c2c, x0=model.g_max) for p in var.sample(model, n - 1, rng)]


@pytest.mark.parametrize(
    "scheme,cell", [(ISPP(verify_reads=2), "1R"), (IGVVA(), "1T1R"), (PulseWidth(max_pulses=60), "1R")]
)
def test_each_scheme_converges_on_the_builtin_device(scheme, cell):
    model, cells = _cells(3)
    res = run_batch(BatchSpec(0, builtin_device(model.params(), cell), cells, TARGETS, scheme, [[0], [1], [2]]))
    assert res.converged.all(), (scheme.name, res.g_final)
    assert np.all(np.abs(res.g_final - TARGETS[:, None]) <= scheme.tolerance * TARGETS[:, None])
    assert np.all(res.energy > 0)
    per_pulse = timing(scheme).cell_time(scheme.set_width)  # the cell's own pulses and reads
    assert timing(scheme).read_time == pytest.approx(scheme.verify_reads * T_READ)
    assert res.time.min() >= 2 * per_pulse * 0.99
    first = res.amplitudes[0][0]
    assert first == -scheme.erase  # every level starts with the erase pulse
    if scheme.gate_control:  # the word line climbs while the bit line is fixed
        sets = [g for a, g in zip(res.amplitudes[0], res.gates[0]) if a > 0]
        assert set(a for a in res.amplitudes[0] if a > 0) == {scheme.v_set} and max(sets) > scheme.vg_start
    if isinstance(scheme, PulseWidth):  # widths grow geometrically at a fixed amplitude
        widths = sorted(set(w for a, w in zip(res.amplitudes[0], res.widths[0]) if a > 0))
        assert len(widths) >= 3 and widths[1] / widths[0] == pytest.approx(scheme.width_factor)


def test_igvva_trajectory_climbs_without_overshooting():
    """The nominal device under IGVVA: each gate step raises G a little, never jumps past
    the window (ISPP on 1R jumps far above the first target in one pulse)."""
    model, cells = _cells(1)
    igvva = run_batch(BatchSpec(0, builtin_device(model.params(), "1T1R"), cells[:1], TARGETS, IGVVA(), [[0]]))
    reads, amps = np.array(igvva.reads[0]), np.array(igvva.amplitudes[0])
    sets = np.flatnonzero(amps > 0)
    runs = np.split(sets, np.flatnonzero(np.diff(sets) > 1) + 1)
    for run in runs:
        g = reads[run]
        assert np.all(np.diff(g) >= -0.01 * g[:-1]), g  # monotone within 1%
        assert np.all(np.diff(g) < 0.25 * TARGETS[0])  # small steps: no jump across the window
    assert reads.max() < 1.2 * TARGETS[-1]
    ispp = run_batch(BatchSpec(0, builtin_device(model.params(), "1R"), cells[:1], TARGETS, ISPP(), [[0]]))
    assert max(ispp.reads[0]) > 3 * TARGETS[-1]  # the runaway IGVVA avoids


def test_scheme_records_round_trip_and_validation():
    for name, cls in SCHEMES.items():
        s = cls()
        assert scheme_from_attrs(s.attrs()) == s and s.attrs()["scheme"] == name
    s = make_scheme("pulse-width", width_start=1e-6, width_max=1e-3, reset_width=1e-3, polarity=-1)
    assert s.longest_pulse == 1e-3 and s.step_cap == pytest.approx(1e-4)
    assert s.set_pulse(2).amplitude == -s.v_set and s.set_pulse(2).width == pytest.approx(4e-6)
    assert s.erase_pulse().amplitude == s.erase  # RESET is opposite to a negative SET
    with pytest.raises(ValueError, match="between 100 ps and 1 s"):
        ISPP(pulse_width=2.0)
    with pytest.raises(ValueError, match="vg_start"):
        IGVVA(vg_start=3.0)
    with pytest.raises(ValueError, match="polarity"):
        ISPP(polarity=0)
    with pytest.raises(ValueError, match="has no parameter"):
        make_scheme("ispp", vg_step=0.1)
    with pytest.raises(ValueError, match="unknown programming scheme"):
        make_scheme("ispva")
    with pytest.raises(ValueError, match="1T1R"):
        run_batch(BatchSpec(0, builtin_device(preset("hfox")[0].params(), "1R"), [None], TARGETS, IGVVA(), [[0]]))


def test_version_1_tables_still_load(small_table_file, tmp_path):
    v1 = tmp_path / "v1.h5"
    v1.write_bytes(small_table_file.read_bytes())
    with h5py.File(v1, "a") as f:  # the layout version 1 wrote: ISPP under its own names
        f.attrs["format_version"] = 1
        p = f["programming"].attrs
        old = {
            "scheme": "ispp",
            "v_start": 1.0,
            "v_step": 0.04,
            "v_max": 1.6,
            "v_reset_start": 1.0,
            "v_reset_max": 1.6,
            "v_erase": 1.6,
            "pulse_width": 50e-9,
            "read_voltage": 0.2,
            "tolerance": 0.05,
            "max_pulses": 40,
            "max_step": 5e-9,
        }
        for k in list(p):
            del p[k]
        for k, v in old.items():
            p[k] = v
    shipped_v1 = Path(__file__).parent / "data" / "default_v1.h5"  # the table version 1 shipped
    for path in (v1, shipped_v1):
        table = DeviceTable.load(path)
        scheme = scheme_from_attrs(table.scheme)
        assert isinstance(scheme, ISPP) and scheme.reset_start == 1.0 and scheme.erase == 1.6
    assert DeviceTable.load(v1).format_version == 1
    again = DeviceTable.load(DeviceTable.load(v1).save(tmp_path / "v2.h5"))
    assert again.format_version == 2 and again.scheme == DeviceTable.load(v1).scheme


def test_read_conductance_is_the_state_write_verify_reached(small_table):
    """Read G, read noise and I-V come from the nominal device at the very period each
    level converged: read G is within the write-verify tolerance of its target."""
    t, tol = small_table, small_table.scheme["tolerance"]
    assert np.all(np.abs(t.read_g - t.targets) <= tol * t.targets)
    vr = t.scheme["read_voltage"]
    g_iv = np.array([np.interp(vr, t.iv_v, row) for row in t.iv_current]) / vr
    np.testing.assert_allclose(g_iv, t.read_g, rtol=0.01)
    assert np.all(t.read_sigma > 0) and np.all(t.read_sigma < 0.1 * t.read_g)
    assert t.trace_gate is not None and t.trace_width.shape == t.trace_g.shape


SWAPPED = """* the built-in model with its ports swapped: it SETs with a negative voltage on port p
.subckt negset p n
Xd n p 0 0 rram
.ends negset
"""


def test_negative_set_device_with_polarity_minus_one(tmp_path):
    model, _ = preset("hfox-ideal")
    inner = builtin_device(model.params())
    dev = Device("negset", inner.definition + "\n" + SWAPPED)
    res = run_batch(BatchSpec(0, dev, [None], TARGETS, ISPP(polarity=-1), [[0]]))
    assert res.converged.all() and max(res.amplitudes[0]) > 0 and min(a for a in res.amplitudes[0] if a) < 0
    assert all(a < 0 for a, r0, r1 in zip(res.amplitudes[0][1:], res.reads[0], res.reads[0][1:]) if r1 > 1.5 * r0)


def test_cli_scheme_flags(tmp_path, capsys):
    out = tmp_path / "g.h5"
    assert (
        main(
            [
                "characterize",
                "--scheme",
                "igvva",
                "--cell",
                "1T1R",
                "--devices",
                "2",
                "--targets",
                "15u,40u",
                "--retention-time",
                "0",
                "--workers",
                "1",
                "--vg-step",
                "0.05",
                "-q",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    table = DeviceTable.load(out)
    assert table.scheme["scheme"] == "igvva" and table.scheme["vg_step"] == 0.05 and table.converged.all()
    assert "vg_start" in capsys.readouterr().out
    assert main(["characterize", "--scheme", "igvva", "--devices", "1", "-q", "-o", str(tmp_path / "x.h5")]) == 1
    assert "1T1R" in capsys.readouterr().err
    assert main(["characterize", "--scheme", "ispp", "--vg-step", "0.1", "-o", str(tmp_path / "x.h5")]) == 1
    assert "scheme ispp has no parameter --vg-step" in capsys.readouterr().err
    assert dataclasses.asdict(ISPP()) == dataclasses.asdict(scheme_from_attrs(ISPP().attrs()))
