"""Programming inside an array: write-verify in real ngspice, write disturb, the /array group."""
import dataclasses
from pathlib import Path

import h5py
import numpy as np
import pytest

from rramsim.circuits.array_write import line_voltages, write_deck
from rramsim.circuits.testbenches import Device
from rramsim.cosim import array_program as ap
from rramsim.devices import DeviceTable, TableError
from rramsim.devices.schemes import ISPP

DEFAULT = str(Path(__file__).resolve().parents[1] / "devices" / "data" / "default.h5")   # 1T1R, igvva
BUILTIN_1R = str(Path(__file__).resolve().parent / "data" / "default_v1.h5")            # 1R, ispp


@pytest.fixture(scope="module")
def table_1t1r():
    return DeviceTable.load(DEFAULT)


@pytest.fixture(scope="module")
def table_1r():
    return DeviceTable.load(BUILTIN_1R)


@pytest.fixture(scope="module")
def isolated_1t1r(table_1t1r):
    spec = ap.ArrayWrite(table_1t1r, 1, 1)
    return ap.isolated_costs(spec, ap.write_device(spec)[0])


def test_bias_voltages():
    v = line_voltages("1R", 0.5, 1.2)
    assert v == {"row": 1.2, "rows": 0.6, "col": 0.0, "cols": 0.6}
    v = line_voltages("1R", 1 / 3, -1.2)                   # 1R: signed, half-selected see V/3
    assert v["row"] - v["cols"] == pytest.approx(-0.4) and v["rows"] - v["col"] == pytest.approx(-0.4)
    v = line_voltages("1T1R", 0.0, -1.6, gate=2.6)         # RESET: every line raised, nothing below ground
    assert min(v.values()) >= 0 and v["row"] - v["col"] == pytest.approx(-1.6) and v["gate"] == pytest.approx(4.2)
    with pytest.raises(ValueError, match="half_select"):
        line_voltages("1R", 0.7, 1.0)


def test_write_deck_drives_the_selected_lines():
    dev = Device("lincell", ".subckt lincell te be params: gc=1e-5\nR1 te be {1/gc}\n.ends lincell", ("gc",))
    from rramsim.cosim.writeverify import timing
    deck = write_deck(dev, np.full((3, 4), 1e-5), 2.0, (1, 2), timing(ISPP()), ISPP().set_pulse(0),
                      state_param="gc", read_node="x")
    assert "Rd1 ds r1_0 2.0" in deck and "Rd0 du r0_0 2.0" in deck
    assert "Vcol2 s2 cs dc 0" in deck and "Vcol0 s0 cu dc 0" in deck
    with pytest.raises(ValueError, match="outside"):
        write_deck(dev, np.full((3, 4), 1e-5), 2.0, (3, 0), timing(ISPP()), ISPP().set_pulse(0), state_param="gc")


def test_disturb_is_zero_without_half_select_voltage_and_grows_with_it(table_1t1r, isolated_1t1r):
    """1T1R, word-line selection: cells on other word lines sit behind off transistors. With
    the unselected bit lines at 0 the half-selected cells see nothing; raising them to a
    fraction of the pulse disturbs the cells on the selected word line."""
    levels = np.array([[0, 2, 1], [2, 0, 1]])
    worst = {}
    for h in (0.0, 0.25, 0.5):
        res = ap.run_write(ap.ArrayWrite(table_1t1r, 2, 3, bias=h, levels=levels), isolated=isolated_1t1r)
        assert res.converged.all()
        worst[h] = float(np.abs(res.disturb).max())
        assert res.disturb[-1, -1] == 0.0                  # the last cell written sees no later write
    assert worst[0.0] < 1e-5
    assert 1e-5 < worst[0.25] < worst[0.5]
    assert worst[0.5] > 1e-3


def test_far_cell_needs_at_least_the_pulses_and_energy_of_the_near_cell(table_1t1r, isolated_1t1r):
    """A lone cell written at the near corner (next to the drivers) and at the far corner of
    a fresh array with resistive lines: the far one sees less of every pulse."""
    out = {}
    for name, cell in (("near", (3, 0)), ("far", (0, 3))):
        spec = ap.ArrayWrite(table_1t1r, 4, 4, wire_resistance=100.0, levels=np.full((4, 4), 4), cells=[cell])
        res = ap.run_write(spec, isolated=isolated_1t1r)
        out[name] = {k: float(getattr(res, k)[cell]) for k in ("pulses", "energy", "g_verify", "g_after")}
        assert res.converged[cell]
        with pytest.raises(ValueError, match="whole array"):
            ap.array_group(res)
    assert out["far"]["pulses"] >= out["near"]["pulses"]
    assert out["far"]["energy"] >= out["near"]["energy"]
    # the verify read sees the line drop too: the far cell ends further above what it read
    over = {k: v["g_after"] / v["g_verify"] for k, v in out.items()}
    assert over["far"] > over["near"] > 1.0


def test_1r_v2_array_writes_and_the_group_round_trips(table_1r, tmp_path):
    spec = ap.ArrayWrite(table_1r, 3, 3, bias="V/2", seed=2)
    ck = tmp_path / "write.npz"
    res = ap.run_write(spec, checkpoint=ck)
    assert ck.is_file() and res.converged.mean() >= 0.8
    assert np.all(res.pulses >= 2) and np.all(res.energy > 0)
    # V/2: the half-selected cells see -0.8 V of every erase: the earlier cells lose conductance
    assert res.disturb[0, 0] < -1e-4 and res.disturb[-1, -1] == 0.0
    # resume: a finished checkpoint runs nothing again and gives the same numbers
    again = ap.run_write(spec, checkpoint=ck, isolated=res.isolated)
    assert np.array_equal(again.pulses, res.pulses) and np.allclose(again.g_end, res.g_end)
    assert again.times["array write"] == pytest.approx(res.times["array write"], rel=0.2)   # the run's own time
    with pytest.raises(ValueError, match="another array write"):
        ap.run_write(dataclasses.replace(spec, seed=3, levels=None), checkpoint=ck)
    group = ap.array_group(res, command="pytest")
    assert group.stats["disturb_cells"].sum() == 9
    assert group.stats["disturb_half_mean"][spec.levels[0, 0]] < 0
    assert np.all(group.stats["disturb_other_mean"] == 0)     # V/2 puts no voltage off the selected lines
    table = ap.with_array(table_1r, group)
    path = table.save(tmp_path / "with_array.h5")
    back = DeviceTable.load(path)
    assert back == table and back.array == group
    assert "array: 3x3 1R V/2" in back.summary()


def test_old_tables_load_and_a_broken_group_is_refused(table_1r, tmp_path):
    assert table_1r.array is None and DeviceTable.load(DEFAULT).array is None
    L = table_1r.n_levels
    group = ap.ArrayGroup({"rows": 2, "cols": 2, "cell": "1R", "bias": "V/2", "half_select": 0.5,
                           "wire_resistance": 1.0, "scheme": "ispp", "write_order": "row-major"},
                          {"level": np.zeros((2, 2)), "pulses_factor": np.ones((2, 2)),
                           "energy_factor": np.ones((2, 2)), "time_factor": np.ones((2, 2)),
                           "disturb": np.zeros((2, 2))},
                          {n: np.zeros(L) for n in ap.ARRAY_STATS})
    path = ap.with_array(table_1r, group).save(tmp_path / "t.h5")
    with h5py.File(path, "r+") as f:
        del f["array/energy_factor"]
        f["array"].create_dataset("energy_factor", data=np.zeros((2, 2)))
    with pytest.raises(TableError, match="energy_factor must be positive"):
        DeviceTable.load(path)
    with pytest.raises(TableError, match="level"):
        dataclasses.replace(table_1r, array=dataclasses.replace(group, maps={**group.maps, "level": np.full((2, 2), L)}))


def _group(table, half_mean=0.0, half_std=0.0, other_mean=0.0, pulses=None, energy=None):
    L = table.n_levels
    i, j = np.meshgrid(np.arange(4), np.arange(4), indexing="ij")
    dist = (3 - i) + j
    stats = {n: np.zeros(L) for n in ap.ARRAY_STATS}
    stats.update(disturb_half_mean=np.full(L, half_mean), disturb_half_std=np.full(L, half_std),
                 disturb_other_mean=np.full(L, other_mean), disturb_cells=np.full(L, 2.0))
    return ap.ArrayGroup({"rows": 4, "cols": 4, "cell": "1R", "bias": "V/2", "half_select": 0.5,
                          "wire_resistance": 1.0, "scheme": "ispp", "write_order": "row-major"},
                         {"level": np.zeros((4, 4)), "disturb": np.zeros((4, 4)),
                          "pulses_factor": pulses if pulses is not None else np.ones((4, 4)),
                          "energy_factor": energy if energy is not None else 1 + 0.1 * dist,
                          "time_factor": np.ones((4, 4))}, stats)


def test_torch_programming_applies_the_array_group(one_thread):
    """Disturb in write order and position-dependent cost, in the torch layer."""
    import torch
    from tables import synthetic_table
    from rramsim.models import AnalogLinear, CrossbarConfig
    from rramsim.models.array_effects import later_writes, tile_factors
    table = synthetic_table(retention=False)
    cfg = CrossbarConfig(tile_rows=4, tile_cols=4, stuck_on=0.0, stuck_off=0.0)

    def programmed(t):
        torch.manual_seed(0)
        layer = AnalogLinear(4, 2, t, cfg, seed=0)
        st = layer.program(seed=3)
        return layer.engine.conductances(drift=False)[0, 0].T, st           # [rows, out] of slice 0, plane 0
    g0, st0 = programmed(table)
    g1, st1 = programmed(dataclasses.replace(table, array=_group(table, half_mean=-0.01)))
    # no spread: every cell lost exactly 1% per later write on its row or column of its tile
    rows, cols = torch.meshgrid(torch.arange(4), torch.arange(2) * 2, indexing="ij")   # 2 planes per weight
    nh, _ = later_writes(rows, cols, 4, 4)
    assert torch.allclose(g1 / g0, torch.exp(-0.01 * nh.double()), rtol=1e-5)
    # position-dependent energy: the mean factor of 1 + 0.1 * distance over the measured array
    assert tile_factors(_group(table))["energy"] == pytest.approx(1.3)
    assert st1["energy"] == pytest.approx(1.3 * st0["energy"]) and st1["pulses"] == pytest.approx(st0["pulses"])
    # a spread draws a different disturb per cell, reproducibly
    g2, _ = programmed(dataclasses.replace(table, array=_group(table, half_std=0.02)))
    g3, _ = programmed(dataclasses.replace(table, array=_group(table, half_std=0.02)))
    assert torch.equal(g2, g3) and not torch.allclose(g2, g0)
