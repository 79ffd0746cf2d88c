"""Low-bit co-design (Weinstock 2023): integer-exact crossbar inference, rename, reorder."""

from __future__ import annotations

import pytest
import torch

from rramsim.devices import load_default_table
from rramsim.models.data import ensure_dataset, load_split
from rramsim.models.methods.lowbit import (
    BinaryLeNet5,
    IntLayer,
    Macro,
    MacroConfig,
    integerize,
    quantize_input,
    rename_rows,
    reorder_rows,
    train_lowbit,
)


@pytest.fixture(scope="module")
def trained():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 shared cores: one thread is many times faster here
    yield _train()
    torch.set_num_threads(n)


def _train():
    ensure_dataset("mnist")
    xi, yl = load_split("mnist", "train")
    xt, yt = load_split("mnist", "test")
    torch.manual_seed(0)
    model = BinaryLeNet5()
    train_lowbit(model, quantize_input(xi[:3000]), yl[:3000], epochs=1, lr=1e-2, seed=0)
    model.eval()
    return model, quantize_input(xt[:200]), yt[:200]


@pytest.fixture(scope="module")
def table():
    return load_default_table()


def test_integer_network_matches_trained_model_and_learns(trained):
    model, x, y = trained
    net = integerize(model)
    with torch.no_grad():
        p_float = model(x).argmax(1)
    p_int = net.predict(x)
    assert float((p_int == p_float).double().mean()) >= 0.99
    assert float((p_int == y).double().mean()) > 0.6  # it learned something in one short epoch
    for layer in net.layers:
        assert set(layer.w.unique().tolist()) <= {-1, 1}


def test_ideal_macro_is_integer_exact_and_sparsity_saves_reads(trained, table):
    model, x, y = trained
    net = integerize(model)
    mac = Macro(table, MacroConfig(), noisy=False)
    assert torch.equal(net.predict(x, mac), net.predict(x))
    # the partial sums themselves, not only the argmax
    layer = net.layers[2]
    v = torch.randint(0, 4, (50, layer.w.shape[1]))
    assert torch.equal(mac(2, layer, v), net.exact_mvm(2, layer, v))
    cost = mac.cost(x.shape[0])
    assert 0 < cost["reads_per_sample"] < cost["dense_reads_per_sample"]


def test_all_zero_input_costs_no_reads(table):
    layer = IntLayer(w=torch.ones(4, 20, dtype=torch.int8), kind="fc")
    mac = Macro(table, noisy=False)
    assert torch.equal(mac(0, layer, torch.zeros(3, 20, dtype=torch.int64)), torch.zeros(3, 4, dtype=torch.int64))
    assert mac.reads == 0


def test_rename_stores_duplicate_and_complement_rows_once(table):
    g = torch.Generator().manual_seed(1)
    base = torch.where(torch.rand(5, 10, generator=g) > 0.5, 1, -1)
    rows = torch.cat([base, base[:2], -base[2:4]])  # 9 logical rows, 5 distinct up to sign
    layer = IntLayer(w=rows.t().contiguous().to(torch.int8), kind="fc")
    x = torch.randint(0, 4, (30, 9))
    ref = IntLayer(w=layer.w.clone(), kind="fc")
    info = rename_rows(layer)
    assert info == {"logical_rows": 9, "physical_rows": 5}
    assert layer.matrix().shape == (5, 10)
    mac = Macro(table, noisy=False)
    assert torch.equal(mac(0, layer, x), Macro.__call__(Macro(table, noisy=False), 1, ref, x))
    assert torch.equal(mac(0, layer, x), x @ rows.to(torch.int64))


def test_reorder_keeps_results_and_is_a_permutation(trained, table):
    model, x, _ = trained
    net = integerize(model)
    before = net.predict(x)
    for strategy in ("balance", "similar"):
        for layer in net.layers:
            perm = reorder_rows(layer, 7, strategy)
            assert sorted(perm.tolist()) == list(range(layer.w[0].numel()))
        assert torch.equal(net.predict(x, Macro(table, noisy=False)), before)
    with pytest.raises(ValueError, match="strategy"):
        reorder_rows(net.layers[0], 7, "random")


def test_noise_changes_counts_only_when_scaled_up(trained, table):
    model, x, _ = trained
    net = integerize(model)
    exact = net.predict(x)
    quiet_mac, loud_mac = (Macro(table, MacroConfig(noise_scale=s), seed=3) for s in (0.0, 20.0))
    quiet, loud = net.predict(x, quiet_mac), net.predict(x, loud_mac)
    assert torch.equal(quiet, exact)
    assert quiet_mac.counts > 0 and quiet_mac.count_errors == 0  # every ADC count exact
    assert float((loud == exact).double().mean()) < 0.98
    assert 0.01 < loud_mac.count_errors / loud_mac.counts < 0.9


@pytest.mark.parametrize(
    "kwargs", [dict(adc_bits=2), dict(max_rows=0), dict(max_rows=200, rows=128), dict(noise_scale=-1.0), dict(rows=1.5)]
)
def test_bad_macro_config_is_a_clear_error(kwargs):
    with pytest.raises(ValueError, match="MacroConfig"):
        MacroConfig(**kwargs)


def test_tie_rows_bounds_the_renamed_rows():
    from torch import nn
    from rramsim.models.methods.lowbit import tie_rows

    torch.manual_seed(0)
    fc = nn.Linear(84, 10, bias=False)
    retie = tie_rows(fc, 46)
    with torch.no_grad():
        fc.weight.add_(torch.randn_like(fc.weight))  # an optimizer step
    retie()
    layer = IntLayer(w=torch.where(fc.weight >= 0, 1, -1).to(torch.int8), kind="fc")
    assert rename_rows(layer)["physical_rows"] <= 46
    with pytest.raises(ValueError, match="keep"):
        tie_rows(fc, 0)


def test_without_sparsity_aware_control_every_window_is_read(trained, table):
    model, x, _ = trained
    net = integerize(model)
    dense = Macro(table, MacroConfig(sparsity_aware=False), noisy=False)
    assert torch.equal(net.predict(x[:50], dense), net.predict(x[:50]))
    assert dense.reads == dense.dense_reads
    sparse = Macro(table, MacroConfig(), noisy=False)
    net.predict(x[:50], sparse)
    assert sparse.reads < dense.reads and sparse.conversions < dense.conversions


def test_macro_cost_is_the_cost_model_on_the_macros_crossbar(table):
    """The macro counts reads and conversions as it runs; rramsim's CostModel prices them on
    MacroConfig.crossbar() (10 ns reads, a 3-bit ADC, no DAC)."""
    from rramsim.models.cost import CostModel

    g = torch.Generator().manual_seed(2)
    layer = IntLayer(w=torch.where(torch.rand(6, 40, generator=g) > 0.5, 1, -1).to(torch.int8), kind="fc")
    mac = Macro(table, MacroConfig(cycle_time=5e-9), noisy=False)
    mac(0, layer, torch.randint(0, 4, (9, 40), generator=g))
    cost = mac.cost(3)
    hw = MacroConfig(cycle_time=5e-9).crossbar()
    assert (hw.tile_rows, hw.adc_bits, hw.cycle_time, hw.dac_energy) == (128, 3, 5e-9, 0.0)
    priced = CostModel(hw).price(cycles=mac.reads / 3, adc_conversions=mac.conversions / 3)
    assert cost["latency_per_sample"] == priced.latency == pytest.approx(mac.reads / 3 * 5e-9)
    assert cost["adc_energy_per_sample"] == priced.adc_energy == pytest.approx(mac.conversions / 3 * 1.67e-12 / 32)
    for bad in (dict(cycle_time=-1e-9), dict(adc_energy=float("nan")), dict(read_voltage=0.0)):
        with pytest.raises(ValueError, match=f"MacroConfig: CrossbarConfig.{next(iter(bad))}"):
            MacroConfig(**bad)
