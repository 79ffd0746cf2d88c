"""Programming outcomes, costs, read noise and drift from the table."""

import numpy as np
import pytest
import torch

from rramsim.models import AnalogLinear, CrossbarConfig
from rramsim.models.programming import DevicePhysics, combined_latency, fit_iv, tile_latencies
from tables import synthetic_table


@pytest.fixture(scope="module")
def table():
    return synthetic_table(seed=3)


def _sample(phys, level, seed, on=0.0, off=0.0):
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(level.shape, generator=g, dtype=torch.float64)
    f = torch.rand(level.shape, generator=g, dtype=torch.float64)
    return phys.sample(level, u, f, on, off)


def test_sampled_conductances_follow_the_table(table):
    phys = DevicePhysics(table, 0.2)
    for lvl in (1, 4):  # fully converged levels: inverse CDF of the samples
        res = _sample(phys, torch.full((20000,), lvl), seed=1)
        g = res["g"].numpy()
        ref = table.g_final[lvl]
        assert g.min() >= ref.min() - 1e-15 and g.max() <= ref.max() + 1e-15
        assert g.mean() == pytest.approx(ref.mean(), rel=2e-3)
        assert g.std() == pytest.approx(ref.std(), rel=0.1)
        assert not res["stuck"].any()
        assert res["pulses"].mean().item() == pytest.approx(table.pulses[lvl].mean(), rel=0.05)


def test_nonconverged_devices_become_stuck(table):
    phys = DevicePhysics(table, 0.2)
    res = _sample(phys, torch.zeros(20000, dtype=torch.long), seed=2)
    frac = 1 - table.converged[0].mean()
    assert frac > 0
    assert res["stuck"].double().mean().item() == pytest.approx(frac, abs=0.03)
    stuck_g = res["g"][res["stuck"]].numpy()
    assert np.all(np.isin(stuck_g, table.g_final[0][~table.converged[0]]))


def test_stuck_at_faults_and_seed(table):
    phys = DevicePhysics(table, 0.2)
    level = torch.full((50000,), 3)
    res = _sample(phys, level, seed=5, on=0.1, off=0.05)
    g = res["g"]
    assert (g == table.targets[-1]).double().mean().item() == pytest.approx(0.1, abs=0.01)
    assert (g == table.targets[0]).double().mean().item() == pytest.approx(0.05, abs=0.01)
    again = _sample(phys, level, seed=5, on=0.1, off=0.05)
    assert torch.equal(g, again["g"])
    assert not torch.equal(g, _sample(phys, level, seed=6, on=0.1, off=0.05)["g"])


def test_read_sigma_matches_table(table):
    phys = DevicePhysics(table, 0.2)
    g = np.linspace(1e-6, 200e-6, 57)
    assert np.allclose(phys.sigma(torch.tensor(g)).numpy(), table.read_sigma_at(g))


def test_drift_with_retention_group(table):
    phys = DevicePhysics(table, 0.2)
    level = torch.arange(table.n_levels)
    z = torch.zeros(table.n_levels, dtype=torch.float64)
    t = table.retention_t[2]
    f = phys.drift_factor(t, level, z, 0.0, 0.0, 1.0).numpy()
    assert np.allclose(f, table.retention_ratio[:, 2])
    assert np.allclose(phys.drift_factor(0.0, level, z, 0.0, 0.0, 1.0).numpy(), 1.0)
    later = phys.drift_factor(table.retention_t[-1] * 100, level, z, 0.0, 0.0, 1.0).numpy()
    assert np.all(later < table.retention_ratio[:, -1])  # power-law extrapolation keeps falling


def test_drift_default_power_law():
    table = synthetic_table(retention=False)
    phys = DevicePhysics(table, 0.2)
    level = torch.zeros(4, dtype=torch.long)
    z = torch.zeros(4, dtype=torch.float64)
    f = phys.drift_factor(1e4, level, z, 0.01, 0.0, 1.0)
    assert torch.allclose(f, torch.full((4,), 1e4**-0.01, dtype=torch.float64))
    assert torch.allclose(phys.drift_factor(0.5, level, z, 0.01, 0.0, 1.0), torch.ones(4, dtype=torch.float64))


def test_iv_fit_normalized_at_read_voltage(table):
    coef = fit_iv(table, 0.2)
    vr = table.scheme["read_voltage"]
    assert np.allclose(coef[:, 0] * vr + coef[:, 1] * vr**2 + coef[:, 2] * vr**3, vr)
    assert np.all(coef[:, 2] > 0)  # sinh-like: superlinear
    with pytest.raises(ValueError, match="read_voltage"):
        fit_iv(table, 1.0)  # beyond the I-V data


def test_programming_latency_models():
    t = torch.zeros(2, 3, 4, dtype=torch.float64)
    t[0, :, 0] = 1.0
    t[1, 0, :] = 2.0
    assert tile_latencies(t, "cell").tolist() == pytest.approx([3.0, 8.0])  # every cell in turn
    assert tile_latencies(t, "row").tolist() == pytest.approx([3.0, 2.0])  # a row takes its slowest cell
    assert combined_latency(tile_latencies(t, "row"), parallel=True) == pytest.approx(3.0)
    assert combined_latency(tile_latencies(t, "row"), parallel=False) == pytest.approx(5.0)
    assert combined_latency([], parallel=True) == 0.0


@pytest.mark.parametrize("parallelism", ["row", "cell"])
def test_layer_latency_follows_the_parallelism(table, parallelism):
    cfg = CrossbarConfig(tile_rows=4, tile_cols=4, program_parallelism=parallelism)

    def programmed(c):
        torch.manual_seed(0)  # same weights every time
        return AnalogLinear(10, 6, table, c, seed=0).program(seed=3)

    par, ser = programmed(cfg), programmed(cfg.replace(parallel_tile_writes=False))
    assert par["latency"] == pytest.approx(max(par["tile_latency"]))
    assert ser["latency"] == pytest.approx(sum(ser["tile_latency"])) and ser["latency"] > par["latency"]
    if parallelism == "cell":
        row = programmed(cfg.replace(program_parallelism="row"))
        assert par["latency"] > 1.5 * row["latency"]  # 4 columns: written one by one
        assert par["energy"] == row["energy"]  # same cells, same pulses


def test_layer_programming_cost_sums_the_cells(table):
    layer = AnalogLinear(10, 6, table, CrossbarConfig(tile_rows=4, tile_cols=4), seed=0)
    st = layer.program(seed=3)
    assert st["cells"] == 10 * 12 and st["tiles"] == 3 * 3
    per_cell_e = table.energy.mean()
    assert st["energy"] == pytest.approx(per_cell_e * 120, rel=0.3)
    assert st["latency"] <= st["cells"] * table.time.max()
    again = layer.program(seed=3)
    assert again["energy"] == st["energy"] and again["stuck"] == st["stuck"]
    assert layer.program(seed=4)["energy"] != st["energy"]


def test_table_without_usable_iv_data_is_refused_when_needed():
    t = synthetic_table(retention=False)
    t.iv_v = np.array([0.0, 0.2])
    t.iv_current = t.targets[:, None] * t.iv_v[None, :]
    with pytest.raises(ValueError, match="/iv"):
        AnalogLinear(4, 2, t, CrossbarConfig(nonlinear_iv=True))
    AnalogLinear(4, 2, t, CrossbarConfig(nonlinear_iv=False)).program()  # linear cells do not need it


def _engine_cells(engine, key):
    """Per-cell ``key`` [S, P, out, rows] re-derived block by block (reference layout)."""
    m = engine.mapping
    out = torch.zeros(engine._level.shape, dtype=torch.float64)
    for s in range(m.n_slices):
        for p in range(m.planes):
            res = engine._cells_of(engine._level[s, p], engine.seed, 0, s, p, torch.float64, True, False, False)
            out[s, p] = res[key]
    return out


@pytest.mark.parametrize(
    "cfg",
    [
        CrossbarConfig(tile_rows=16, tile_cols=8),
        CrossbarConfig(
            tile_rows=8, tile_cols=6, program_parallelism="cell", stuck_on=0.05, stuck_off=0.05, drift_time=100.0
        ),
        CrossbarConfig(tile_rows=16, tile_cols=16, mapping="offset"),
    ],
)
def test_programming_blocks_are_rederived_alone(table, cfg, monkeypatch):
    """Block size changes nothing: every cell draws from its own stream position; the
    per-tile costs reduced on the fly equal those of the whole per-cell layout."""
    from rramsim.models import tile

    torch.manual_seed(1)
    lin = torch.nn.Linear(37, 22)
    ref = AnalogLinear.from_linear(lin, table, cfg, seed=5)
    monkeypatch.setattr(tile, "CHUNK_CELLS", 50)  # a few outputs per block
    small = AnalogLinear.from_linear(lin, table, cfg, seed=5)
    a, b = ref.engine.compiled, small.engine.compiled
    assert torch.equal(a.mats[0], b.mats[0]) and torch.equal(a.noise_mat, b.noise_mat)
    assert torch.equal(a.full_scale, b.full_scale)
    for key in ("pulses", "energy", "stuck", "latency"):
        assert ref.program_stats[key] == pytest.approx(small.program_stats[key], rel=1e-12)
    eng = small.engine
    time = eng._tiles(_engine_cells(eng, "time"))
    assert np.allclose(eng.program_stats["tile_latency"], tile_latencies(time, cfg.program_parallelism).numpy())
    energy = eng._tiles(_engine_cells(eng, "energy")).sum(dim=(1, 2)).numpy()
    assert np.allclose(eng.program_stats["tile_energy"], energy)
    # the block-wise compile equals the whole-layer one built from the re-derived cells
    whole = eng.compile(g=eng.conductances(dtype=torch.float32))
    assert torch.allclose(whole.mats[0], b.mats[0], rtol=1e-5, atol=1e-12)
    assert torch.allclose(whole.noise_mat, b.noise_mat, rtol=1e-5, atol=1e-20)


def test_programmed_layer_keeps_no_per_cell_floats(table):
    """A programmed cell costs one level byte; the compiled tiles one signal and one noise
    variance (float32) per weight: a regression to per-cell float64 state fails here. (Ohmic
    cells without IR drop: the realistic default's per-programming IR-drop model adds its own
    matrices, a few floats per cell.)"""
    layer = AnalogLinear(512, 96, table, CrossbarConfig.ohmic(), seed=0)
    layer.program(seed=1)
    per_weight = layer.engine.storage_bytes() / layer.weight.numel()
    assert per_weight <= 11.0, per_weight
    g = layer.conductances()  # re-derived on demand, same cells
    assert torch.equal(g, layer.conductances()) and g.shape == (1, 2, 96, 512)


def _outcome_quantiles(table, lvl, m=100_000):
    """The programming model of one level written out in numpy (reference): the quantile
    at u of the sorted samples, linear between two converged neighbours, else the device
    at the nearest rank (half to even) with the conductance it reached; and whether that
    device is stuck (did not converge)."""
    order = np.argsort(table.g_final[lvl], kind="stable")
    g, conv = table.g_final[lvl][order], table.converged[lvl][order]
    r = (np.arange(m) + 0.5) / m * (g.size - 1)
    lo = np.floor(r).astype(int)
    hi = np.minimum(lo + 1, g.size - 1)
    both = conv[lo] & conv[hi]
    dev = np.round(r).astype(int)
    return np.where(both, g[lo] + (r - lo) * (g[hi] - g[lo]), g[dev]), ~conv[dev]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_programmed_layer_follows_the_table_level_by_level(table, dtype):
    """The whole programming path (row encoding, outcome keys, one gather per quantity)
    gives every level the table's mean and spread, and the table's non-converged devices
    come out stuck at their rate."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(256, 160)
    with torch.no_grad():
        lin.weight.uniform_(-1, 1)
    layer = AnalogLinear.from_linear(lin, table, CrossbarConfig(), seed=7)
    g = layer.engine.conductances(dtype=dtype).reshape(-1).double()
    lv = layer.engine.level.reshape(-1)
    for lvl in range(table.n_levels):
        cells, (ref, _) = g[lv == lvl].numpy(), _outcome_quantiles(table, lvl)
        assert cells.size > 2000
        assert cells.min() >= ref.min() * (1 - 1e-6) and cells.max() <= ref.max() * (1 + 1e-6)
        assert abs(cells.mean() - ref.mean()) < 4 * ref.std() / np.sqrt(cells.size)
        assert cells.std() == pytest.approx(ref.std(), rel=0.06)
    rate = np.array([_outcome_quantiles(table, lvl)[1].mean() for lvl in range(table.n_levels)])
    counts = torch.bincount(lv, minlength=table.n_levels).double().numpy()
    expected, sd = (counts * rate).sum(), np.sqrt((counts * rate * (1 - rate)).sum())
    assert expected > 100 and abs(layer.program_stats["stuck"] - expected) < 5 * sd


def test_programming_on_threads_changes_nothing(table, monkeypatch):
    """Rows encoded and blocks programmed on several threads (costs merged in block order)
    give bit for bit the levels, tiles and costs of one thread."""
    from rramsim.models import WeightMapping, tile

    monkeypatch.setattr(tile, "CHUNK_CELLS", 300)  # many blocks, rows split for encoding
    monkeypatch.setattr(WeightMapping, "THRESHOLD_MIN_WEIGHTS", 0)
    torch.manual_seed(2)
    lin = torch.nn.Linear(37, 50)
    threads = torch.get_num_threads()
    made = {}
    try:
        for n in (1, 3):
            torch.set_num_threads(n)
            monkeypatch.setattr(tile, "_block_threads", lambda n=n: n)  # whatever the machine's load
            for par in ("row", "cell"):
                cfg = CrossbarConfig(tile_rows=16, tile_cols=8, program_parallelism=par, stuck_on=0.02)
                made[n, par] = AnalogLinear.from_linear(lin, table, cfg, seed=5)
    finally:
        torch.set_num_threads(threads)
    for par in ("row", "cell"):
        a, b = made[1, par], made[3, par]
        assert torch.equal(a.engine._level, b.engine._level)
        assert torch.equal(a.engine.compiled.mats[0], b.engine.compiled.mats[0])
        assert torch.equal(a.engine.compiled.noise_mat, b.engine.compiled.noise_mat)
        assert torch.equal(a.engine.compiled.full_scale, b.engine.compiled.full_scale)
        for key in ("pulses", "energy", "stuck", "latency"):
            assert a.program_stats[key] == b.program_stats[key]
        assert np.array_equal(a.program_stats["tile_energy"], b.program_stats["tile_energy"])
        assert np.array_equal(a.program_stats["tile_latency"], b.program_stats["tile_latency"])


def test_block_threads_follow_torch_unless_the_cores_are_busy(monkeypatch):
    from rramsim.models import tile

    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        monkeypatch.setattr(tile.os, "cpu_count", lambda: 8)
        monkeypatch.setattr(tile.os, "getloadavg", lambda: (1.0, 1.0, 1.0))
        assert tile._block_threads() == 2
        monkeypatch.setattr(tile.os, "getloadavg", lambda: (7.5, 7.0, 7.0))  # fewer than one core idle
        assert tile._block_threads() == 1
    finally:
        torch.set_num_threads(threads)
