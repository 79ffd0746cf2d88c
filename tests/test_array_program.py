"""Programming inside an array: write-verify in real ngspice, write disturb, the /array group."""

import dataclasses
from pathlib import Path

import h5py
import numpy as np
import pytest

from rramsim.circuits import array_write as aw
from rramsim.circuits.array_write import line_voltages, write_deck
from rramsim.circuits.testbenches import Device
from rramsim.cosim import array_program as ap
from rramsim.devices import DeviceTable, TableError
from rramsim.devices.schemes import ISPP, Pulse

DEFAULT = str(Path(__file__).resolve().parents[1] / "devices" / "data" / "default.h5")  # 1T1R, igvva
BUILTIN_1R = str(Path(__file__).resolve().parent / "data" / "default_v1.h5")  # 1R, ispp


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
    v = line_voltages("1R", 1 / 3, -1.2)  # 1R: signed, half-selected see V/3
    assert v["row"] - v["cols"] == pytest.approx(-0.4) and v["rows"] - v["col"] == pytest.approx(-0.4)
    v = line_voltages("1T1R", 0.0, -1.6, gate=2.6)  # RESET: every line raised, nothing below ground
    assert min(v.values()) >= 0 and v["row"] - v["col"] == pytest.approx(-1.6) and v["gate"] == pytest.approx(4.2)
    with pytest.raises(ValueError, match="half_select"):
        line_voltages("1R", 0.7, 1.0)


def test_write_deck_drives_the_selected_lines():
    dev = Device("lincell", ".subckt lincell te be params: gc=1e-5\nR1 te be {1/gc}\n.ends lincell", ("gc",))
    from rramsim.cosim.writeverify import timing

    deck = write_deck(
        dev, np.full((3, 4), 1e-5), 2.0, (1, 2), timing(ISPP()), ISPP().set_pulse(0), state_param="gc", read_node="x"
    )
    assert "Rd1 ds r1_0 2.0" in deck and "Rd0 du r0_0 2.0" in deck
    assert "Vcol2 s2 cs dc 0" in deck and "Vcol0 s0 cu dc 0" in deck
    with pytest.raises(ValueError, match="outside"):
        write_deck(dev, np.full((3, 4), 1e-5), 2.0, (3, 0), timing(ISPP()), ISPP().set_pulse(0), state_param="gc")


@pytest.mark.parametrize("order", ["cell", "row"])
def test_disturb_is_zero_without_half_select_voltage_and_grows_with_it(table_1t1r, isolated_1t1r, order):
    """1T1R, word-line selection: cells on other word lines sit behind off transistors. With
    the unselected bit lines at 0 the half-selected cells see nothing; raising them to a
    fraction of the pulse disturbs the cells on the selected word line. Row-parallel: the
    inhibited columns' word lines are off, so a cell whose column finished early sees
    nothing more while the rest of its row is written."""
    levels = np.array([[0, 2, 1], [2, 0, 1]])
    worst = {}
    for h in (0.0, 0.25, 0.5):
        res = ap.run_write(
            ap.ArrayWrite(table_1t1r, 2, 3, bias=h, levels=levels, write_order=order), isolated=isolated_1t1r
        )
        assert res.converged.all()
        worst[h] = float(np.abs(res.disturb).max())
        if order == "cell":
            assert res.disturb[-1, -1] == 0.0  # the last cell written sees no later write
        else:  # the last row: in-row inhibition only
            assert np.abs(res.disturb[-1]).max() < 1e-5
    assert worst[0.0] < 1e-5
    assert 1e-5 < worst[0.25] < worst[0.5]
    assert worst[0.5] > 1e-3


def test_far_cell_needs_at_least_the_pulses_and_energy_of_the_near_cell(table_1t1r, isolated_1t1r):
    """A lone cell written at the near corner (next to the drivers) and at the far corner of
    a fresh array with resistive lines: the far one sees less of every pulse."""
    out = {}
    for name, cell in (("near", (3, 0)), ("far", (0, 3))):
        spec = ap.ArrayWrite(
            table_1t1r, 4, 4, wire_resistance=100.0, levels=np.full((4, 4), 4), cells=[cell], write_order="cell"
        )
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
    spec = ap.ArrayWrite(table_1r, 3, 3, bias="V/2", seed=2, write_order="cell")
    ck = tmp_path / "write.npz"
    res = ap.run_write(spec, checkpoint=ck)
    assert ck.is_file() and res.converged.mean() >= 0.8
    assert np.all(res.pulses >= 2) and np.all(res.energy > 0)
    # V/2: the half-selected cells see -0.8 V of every erase: the earlier cells lose conductance
    assert res.disturb[0, 0] < -1e-4 and res.disturb[-1, -1] == 0.0
    # resume: a finished checkpoint runs nothing again and gives the same numbers
    again = ap.run_write(spec, checkpoint=ck, isolated=res.isolated)
    assert np.array_equal(again.pulses, res.pulses) and np.allclose(again.g_end, res.g_end)
    assert again.times["array write"] == pytest.approx(res.times["array write"], rel=0.2)  # the run's own time
    with pytest.raises(ValueError, match="another array write"):
        ap.run_write(dataclasses.replace(spec, seed=3, levels=None), checkpoint=ck)
    group = ap.array_group(res, command="pytest")
    assert group.stats["disturb_cells"].sum() == 9
    assert group.stats["disturb_half_mean"][spec.levels[0, 0]] < 0
    assert np.all(group.stats["disturb_other_mean"] == 0)  # V/2 puts no voltage off the selected lines
    table = ap.with_array(table_1r, group)
    path = table.save(tmp_path / "with_array.h5")
    back = DeviceTable.load(path)
    assert back == table and back.array == group
    assert "array: 3x3 1R V/2" in back.summary()


def test_old_tables_load_and_a_broken_group_is_refused(table_1r, tmp_path):
    assert table_1r.array is None and DeviceTable.load(DEFAULT).array is None
    L = table_1r.n_levels
    group = ap.ArrayGroup(
        {
            "rows": 2,
            "cols": 2,
            "cell": "1R",
            "bias": "V/2",
            "half_select": 0.5,
            "wire_resistance": 1.0,
            "scheme": "ispp",
            "write_order": "row-major",
        },
        {
            "level": np.zeros((2, 2)),
            "pulses_factor": np.ones((2, 2)),
            "energy_factor": np.ones((2, 2)),
            "time_factor": np.ones((2, 2)),
            "disturb": np.zeros((2, 2)),
        },
        {n: np.zeros(L) for n in ap.ARRAY_STATS},
    )
    path = ap.with_array(table_1r, group).save(tmp_path / "t.h5")
    with h5py.File(path, "r+") as f:
        del f["array/energy_factor"]
        f["array"].create_dataset("energy_factor", data=np.zeros((2, 2)))
    with pytest.raises(TableError, match="energy_factor must be positive"):
        DeviceTable.load(path)
    with pytest.raises(TableError, match="level"):
        dataclasses.replace(
            table_1r, array=dataclasses.replace(group, maps={**group.maps, "level": np.full((2, 2), L)})
        )


def _group(table, half_mean=0.0, half_std=0.0, other_mean=0.0, pulses=None, energy=None):
    L = table.n_levels
    i, j = np.meshgrid(np.arange(4), np.arange(4), indexing="ij")
    dist = (3 - i) + j
    stats = {n: np.zeros(L) for n in ap.ARRAY_STATS}
    stats.update(
        disturb_half_mean=np.full(L, half_mean),
        disturb_half_std=np.full(L, half_std),
        disturb_other_mean=np.full(L, other_mean),
        disturb_cells=np.full(L, 2.0),
    )
    return ap.ArrayGroup(
        {
            "rows": 4,
            "cols": 4,
            "cell": "1R",
            "bias": "V/2",
            "half_select": 0.5,
            "wire_resistance": 1.0,
            "scheme": "ispp",
            "write_order": "row-major",
        },
        {
            "level": np.zeros((4, 4)),
            "disturb": np.zeros((4, 4)),
            "pulses_factor": pulses if pulses is not None else np.ones((4, 4)),
            "energy_factor": energy if energy is not None else 1 + 0.1 * dist,
            "time_factor": np.ones((4, 4)),
        },
        stats,
    )


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
        return layer.engine.conductances(drift=False)[0, 0].T, st  # [rows, out] of slice 0, plane 0

    g0, st0 = programmed(table)
    g1, st1 = programmed(dataclasses.replace(table, array=_group(table, half_mean=-0.01)))
    # no spread: every cell lost exactly 1% per later write on its row or column of its tile
    rows, cols = torch.meshgrid(torch.arange(4), torch.arange(2) * 2, indexing="ij")  # 2 planes per weight
    nh, _ = later_writes(rows, cols, 4, 4)
    assert torch.allclose(g1 / g0, torch.exp(-0.01 * nh.double()), rtol=1e-5)
    # position-dependent energy: the mean factor of 1 + 0.1 * distance over the measured array
    assert tile_factors(_group(table))["energy"] == pytest.approx(1.3)
    assert st1["energy"] == pytest.approx(1.3 * st0["energy"]) and st1["pulses"] == pytest.approx(st0["pulses"])
    # a spread draws a different disturb per cell, reproducibly
    g2, _ = programmed(dataclasses.replace(table, array=_group(table, half_std=0.02)))
    g3, _ = programmed(dataclasses.replace(table, array=_group(table, half_std=0.02)))
    assert torch.equal(g2, g3) and not torch.allclose(g2, g0)


def test_row_round_voltages():
    """One round of a row-parallel write: the selected row at the largest amplitude, active
    columns below it by their own amplitude, inhibited columns at the half-select level."""
    v = aw.row_line_voltages("1R", 0.5, [1.2, None, 1.0])
    assert v["row"] == 1.2 and v["rows"] == pytest.approx(0.6)
    seen = [v["row"] - c for c in v["cols"]]
    assert seen == pytest.approx([1.2, 0.6, 1.0])  # own pulse, V/2 inhibit, own pulse
    v = aw.row_line_voltages("1R", 1 / 3, [None, -1.5])
    assert [v["row"] - c for c in v["cols"]] == pytest.approx([-0.5, -1.5])
    assert v["rows"] - v["cols"][0] == pytest.approx(0.5)  # unselected row, inhibited column: (2h - 1) A
    v = aw.row_line_voltages("1T1R", 0.0, [-1.6, None, -1.0], [2.6, None, 2.6], 1.2)
    assert min(v["row"], v["rows"], *v["cols"]) >= 0  # RESET: raised, nothing below ground
    assert [v["row"] - c for c in v["cols"]] == pytest.approx([-1.6, -1.6, -1.0])
    assert v["gates"][1] == 0.0 and v["gates"][0] - v["cols"][0] == pytest.approx(2.6)
    with pytest.raises(ValueError, match="sign"):
        aw.row_line_voltages("1R", 0.5, [1.0, -1.0])
    with pytest.raises(ValueError, match="at least one"):
        aw.row_line_voltages("1R", 0.5, [None, None])


def test_row_write_deck_drives_every_column():
    dev = Device("lincell", ".subckt lincell te be params: gc=1e-5\nR1 te be {1/gc}\n.ends lincell", ("gc",))
    from rramsim.cosim.writeverify import timing

    p = ISPP().set_pulse(0)
    deck = aw.row_write_deck(dev, np.full((3, 4), 1e-5), 2.0, 1, timing(ISPP()), [p, None, p, p], state_param="gc")
    assert "Rd1 ds r1_0 2.0" in deck and "Rd2 du r2_0 2.0" in deck
    assert all(f"Vcol{j} s{j} cd{j} dc 0" in deck for j in range(4)) and "Vpc3 cd3 0 pulse(" in deck
    with pytest.raises(ValueError, match="width"):
        aw.row_write_deck(
            dev, np.full((3, 4), 1e-5), 2.0, 1, timing(ISPP()), [p, Pulse(1.0, 20e-9), p, p], state_param="gc"
        )


def test_row_parallel_reaches_the_levels_of_the_cell_by_cell_write(table_1t1r, isolated_1t1r):
    """1T1R row-parallel and cell by cell (no half-select voltage, so no disturb): every cell
    converges, both orders reach the same states within the scheme's tolerance, with the
    same pulses per cell up to the line drop."""
    levels = np.array([[6, 1, 3], [0, 7, 4]])
    out = {
        o: ap.run_write(ap.ArrayWrite(table_1t1r, 2, 3, levels=levels, write_order=o), isolated=isolated_1t1r)
        for o in ("row", "cell")
    }
    tol = table_1t1r.scheme["tolerance"]
    targets = table_1t1r.targets[levels]
    for res in out.values():
        assert res.converged.all()
        assert np.all(np.abs(res.g_verify / targets - 1) <= tol)
    assert np.all(np.abs(out["row"].g_after / out["cell"].g_after - 1) <= 2 * tol)
    assert np.abs(out["row"].pulses - out["cell"].pulses).max() <= 2
    # the rounds of a row share one clock: each cell's time is at least its own pulses' time
    assert np.all(out["row"].time >= 0.99 * out["cell"].time)


def test_row_parallel_1r_inhibited_cells_see_only_the_half_select(table_1r, tmp_path):
    """1R V/2 row-parallel: a cell whose column finished is held at the half-select voltage
    while its row goes on, so its change after its own write is the half-select disturb
    (a fraction of a percent per event), not a programming step (the scheme's steps move a
    cell by tens of percent); the group records the row-parallel order and round-trips."""
    spec = ap.ArrayWrite(table_1r, 3, 3, bias="V/2", seed=2)
    assert spec.write_order == "row"
    ck = tmp_path / "row.npz"
    res = ap.run_write(spec, checkpoint=ck)
    assert res.converged.all() and np.all(res.pulses >= 2)
    assert np.abs(res.disturb[-1]).max() < 0.01  # the last row: in-row inhibition only
    assert res.disturb[0].mean() < res.disturb[-1].mean() - 1e-4  # later rows' erase half-selects the first
    again = ap.run_write(spec, checkpoint=ck, isolated=res.isolated)
    assert np.array_equal(again.pulses, res.pulses)
    group = ap.array_group(res, command="pytest")
    assert group.attrs["write_order"] == "row-parallel"
    back = DeviceTable.load(ap.with_array(table_1r, group).save(tmp_path / "t.h5"))
    assert back.array == group
    with pytest.raises(ValueError, match="write_order='cell'"):
        ap.ArrayWrite(table_1r, 3, 3, cells=[(0, 0)])


def test_isolated_reference_starts_every_level_erased(table_1t1r, isolated_1t1r):
    """A 1x1 array with 1 ohm lines is the isolated cell: same pulses and energy per level
    (the isolated reference writes each level into an erased cell, as the array does)."""
    for lv in (2, 7):
        res = ap.run_write(ap.ArrayWrite(table_1t1r, 1, 1, levels=np.array([[lv]])), isolated=isolated_1t1r)
        assert res.pulses[0, 0] == isolated_1t1r["pulses"][lv]
        assert res.factors()["energy_factor"][0, 0] == pytest.approx(1.0, abs=0.003)


def test_torch_row_parallel_disturb_counts_later_rows():
    import torch
    from rramsim.models.array_effects import later_writes

    i, j = torch.meshgrid(torch.arange(4), torch.arange(3), indexing="ij")
    half, other = later_writes(i, j, 4, 3, "row-parallel")
    assert torch.equal(half, 3 - i) and torch.equal(other, torch.ones_like(i))
    nh, no = ap.later_writes(4, 3, "row")
    assert np.array_equal(nh, half.numpy()) and np.array_equal(no, other.numpy())
    with pytest.raises(ValueError, match="write_order"):
        later_writes(i, j, 4, 3, "column-major")


def test_column_energy_splits_the_drivers_energy_by_column():
    """Two columns, one selected row fed through 1 ohm segments: each column's energy is its
    selected cell's current times the row-to-column voltage plus its unselected-row current
    times the unselected rows' voltage."""
    t = np.linspace(0.0, 1e-8, 11)
    ones = np.ones_like(t)
    i_sel, i_uns = np.array([2e-4, 1e-4]), np.array([3e-6, 5e-6])
    r = 1.0
    v_ds = 1.0 * ones
    v_row = np.array([v_ds - r * i_sel.sum(), v_ds - r * i_sel.sum() - r * i_sel[1]])
    e = ap.column_energy(t, v_ds, 0.5 * ones, v_row, (i_sel + i_uns)[:, None] * ones, np.zeros((2, 11)), r)
    assert e == pytest.approx((1.0 * i_sel + 0.5 * i_uns) * 1e-8, rel=1e-9)


def test_a_part_filled_tile_is_written_as_its_used_block():
    """A 9-input layer on 128x128 tiles: its cells sit in a 9-row block (next to the sense
    amplifiers) of as many columns as it uses, and the later writes that disturb a cell are
    counted in that block only (8 - i later rows written row-parallel, not 127 - i)."""
    import torch

    from rramsim.models import CrossbarConfig
    from rramsim.models.array_effects import later_writes, tile_positions
    from rramsim.models.layers import AnalogLinear

    layer = AnalogLinear(9, 3, DeviceTable.load(DEFAULT), CrossbarConfig.ohmic(tile_cols=4), seed=0)  # 6 columns
    i, j, rows, cols = tile_positions(layer.engine, 0, 3, 0, 0)  # differential pair, G+ plane
    assert rows.unique().tolist() == [9] and i[0].tolist() == list(range(9))
    assert j[:, 0].tolist() == [0, 2, 0] and cols[:, 0].tolist() == [4, 4, 2]  # the third output: a 2-column tile
    half, _ = later_writes(i, j, rows, cols, "row-parallel")
    assert half[0].tolist() == list(range(8, -1, -1))
    half, other = later_writes(i, j, rows, cols, "row-major")
    assert int(half[2, 0]) == (2 - 1 - 0) + (9 - 1 - 0) and int(half[2, 0] + other[2, 0]) == 9 * 2 - 1
    assert torch.equal(half + other, rows * cols - 1 - (i * cols + j))
