"""Inference cost report."""

import copy
import math

import numpy as np

import pytest
import torch
from torch import nn

from rramsim.models import CrossbarConfig, convert_to_analog, cost_report, format_cost_report
from rramsim.models.convert import analog_layers
from tables import synthetic_table


@pytest.fixture(scope="module")
def table():
    return synthetic_table(seed=4)


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))


def test_counts_of_a_small_network(table):
    cfg = CrossbarConfig(tile_rows=64, tile_cols=16, dac_bits=4, bit_serial=True, adc_bits=6)
    a = convert_to_analog(_net(), table, cfg, seed=0).eval()
    x = torch.rand(3, 1, 8, 8)
    rep = cost_report(a, x)
    conv, fc = rep.layers
    assert conv.vectors == 36 and fc.vectors == 1
    assert conv.cycles == 4 and fc.cycles == 4
    # conv: 9 rows -> 1 row tile, 8 physical columns -> 1 tile; fc: 144 rows -> 3 row tiles, 20 cols -> 2 col tiles
    assert conv.tiles == 1 and fc.tiles == 6 and rep.crossbars_needed == 7
    assert conv.adc_conversions == 36 * 4 * 4 * 1
    assert fc.adc_conversions == 1 * 4 * 10 * 3
    assert fc.dac_conversions == 4 * 144 * 2
    assert fc.adc_energy == pytest.approx(fc.adc_conversions * 1.67e-12 * 2 ** (6 - 8))
    assert fc.dac_energy == pytest.approx(fc.dac_conversions * 0.42e-12)
    assert conv.latency == pytest.approx(36 * 4 * 100e-9)
    g_sum = float(a[3].conductances().sum())
    assert 0 < fc.read_energy < 0.2**2 * g_sum * 100e-9 * 4  # below the all-rows-on bound
    assert rep.fits and rep.reprogram_rounds == 1
    assert rep.program_energy > 0 and rep.program_pulses > 0 and rep.program_latency > 0
    assert rep.energy == pytest.approx(sum(l.energy for l in rep.layers))


def test_reprogramming_when_the_network_does_not_fit(table):
    cfg = CrossbarConfig(tile_rows=64, tile_cols=16, n_crossbars=3)
    a = convert_to_analog(_net(), table, cfg, seed=0).eval()
    rep = cost_report(a, torch.rand(2, 1, 8, 8), batch_size=4)
    assert not rep.fits
    assert rep.reprogram_rounds == math.ceil(7 / 3)
    assert rep.reprogram_energy == pytest.approx(rep.program_energy)
    tiles = [t for _, l in analog_layers(a) for t in l.program_stats["tile_latency"]]
    rounds = [max(tiles[k : k + 3]) for k in range(0, 7, 3)]  # tiles of a round written together
    assert rep.reprogram_latency == pytest.approx(sum(rounds))
    assert rep.program_latency == pytest.approx(max(tiles))
    assert rep.program_latency < rep.reprogram_latency
    serial = cost_report(
        convert_to_analog(_net(), table, cfg.replace(parallel_tile_writes=False), seed=0).eval(),
        torch.rand(2, 1, 8, 8),
        batch_size=4,
    )
    assert serial.reprogram_latency == pytest.approx(serial.program_latency) == pytest.approx(sum(tiles))
    fit = cost_report(
        convert_to_analog(_net(), table, cfg.replace(n_crossbars=None), seed=0).eval(),
        torch.rand(2, 1, 8, 8),
        batch_size=4,
    )
    assert rep.energy == pytest.approx(fit.energy + rep.reprogram_energy / 4, rel=0.05)
    # the FC layer's 6 tiles on 3 crossbars: its vectors pass twice; the 1-tile conv once
    assert rep.layers[0].latency == pytest.approx(fit.layers[0].latency)
    assert rep.layers[1].latency == pytest.approx(2 * fit.layers[1].latency)
    text = format_cost_report(rep)
    assert "reprogramming rounds" in text and "total per sample" in text


def test_report_without_example_uses_the_last_forward(table):
    """Without an example input the last forward's record is used, and said so."""
    a = convert_to_analog(_net(), table, CrossbarConfig(), seed=0).eval()
    with pytest.raises(ValueError, match="example_input"):
        cost_report(a)
    with torch.no_grad():
        a(torch.rand(2, 1, 8, 8))
    rep = cost_report(a)
    assert rep.layers[0].vectors == 36
    assert "statistics not measured" in str(rep)
    with pytest.raises(ValueError, match="analog"):
        cost_report(_net())


def test_adc_clipping_is_reported(table):
    lin = nn.Linear(9, 4, bias=False)
    with torch.no_grad():
        lin.weight.fill_(0.5)  # a short column of same-sign weights
    x = torch.tensor([[1.0] * 4 + [0.5] * 5]).repeat(16, 1)  # 72% of the column's worst case
    for adc_range, clipped in ((0.5, True), (1.0, False)):
        cfg = CrossbarConfig(adc_bits=8, adc_range=adc_range, read_noise="off")
        a = convert_to_analog(nn.Sequential(lin), table, cfg, seed=0).eval()
        rep = cost_report(a, x)
        assert (analog_layers(a)[0][1].usage["adc_clipped"] > 0.5) == clipped
        assert any("clipped" in n and "adc_range" in n for n in rep.notes) == clipped


# ---------------------------------------------------------------------- measured vectors, digital work
def test_vectors_scale_with_sequence_length(table):
    torch.manual_seed(0)
    a = convert_to_analog(nn.Sequential(nn.Linear(8, 4)), table, CrossbarConfig(), seed=0).eval()
    short = cost_report(a, torch.rand(2, 5, 8)).layers[0]
    long = cost_report(a, torch.rand(2, 50, 8)).layers[0]
    assert short.vectors == 5 and long.vectors == 50
    assert long.adc_conversions == 10 * short.adc_conversions
    assert long.dac_conversions == 10 * short.dac_conversions
    assert long.latency == pytest.approx(10 * short.latency)
    assert long.macs == 50 * 8 * 4
    # per sample: the batch size does not change it
    assert cost_report(a, torch.rand(7, 5, 8)).layers[0].vectors == 5


def test_recurrent_gate_matrices_count_every_time_step(table):
    """An LSTM (sequence first, so the samples are given): both gate matrices process one
    vector per time step, and the gate arithmetic is listed as digital."""
    torch.manual_seed(0)
    a = convert_to_analog(nn.Sequential(nn.LSTM(6, 5)), table, CrossbarConfig(), seed=0).eval()
    rep = cost_report(a, torch.rand(9, 2, 6), samples=2)
    assert {l.name.rsplit(".", 1)[-1]: l.vectors for l in rep.layers} == {"ih_l0": 9, "hh_l0": 9}
    assert rep.digital_elements > 0 and any(d.name == "0" for d in rep.digital)
    with pytest.raises(ValueError, match="samples"):
        cost_report(a, torch.rand(9, 2, 6), samples=0)


def test_sequence_first_inputs_count_every_vector_per_sample(table):
    """[T, B, D] inputs (batch_first=False transformer layers, time-major LSTMs): every
    crossbar layer processes T vectors per sample, measured or from the last forward, and
    the samples are the batch the sequence-first layers read (dimension 1), found without
    being told; the costs equal those of the same layer fed [B, T, D]."""
    T, B, D = 6, 3, 8
    x = torch.rand(T, B, D)
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(D, 2, 16, dropout=0.0, batch_first=False)
    seq_first = convert_to_analog(nn.Sequential(layer), table, CrossbarConfig(), seed=0).eval()
    layer.self_attn.batch_first = True  # the same weights, batch first
    batch_first = convert_to_analog(nn.Sequential(layer), table, CrossbarConfig(), seed=0).eval()
    with torch.no_grad():
        seq_first(x)
    assert [l.vectors for l in cost_report(seq_first).layers] == [T] * 6  # the last forward
    rep = cost_report(seq_first, x)
    assert rep.samples == B and any("dimension 1" in n for n in rep.notes)
    assert [l.vectors for l in rep.layers] == [T] * 6
    counts = lambda r: [(l.vectors, l.adc_conversions, l.dac_conversions, l.macs, l.latency) for l in r.layers]  # noqa: E731
    assert counts(rep) == counts(cost_report(seq_first, x, samples=B))
    assert counts(rep) == counts(cost_report(batch_first, x.transpose(0, 1).contiguous()))

    lstm = convert_to_analog(nn.Sequential(nn.LSTM(D, 5)), table, CrossbarConfig(), seed=0).eval()
    with torch.no_grad():
        lstm(x)
    assert [l.vectors for l in cost_report(lstm).layers] == [T, T]  # input and state matrix
    rep = cost_report(lstm, x)
    assert rep.samples == B and [l.vectors for l in rep.layers] == [T, T]

    class TwoBatches(nn.Module):
        """Sequence-first layers reading batches of two sizes: the samples are ambiguous."""

        def __init__(self):
            super().__init__()
            self.a, self.b = nn.LSTM(D, 4), nn.LSTM(D, 4)

        def forward(self, x):
            return self.a(x)[0].sum() + self.b(x[:, :2])[0].sum()

    two = convert_to_analog(TwoBatches(), table, CrossbarConfig(), seed=0).eval()
    with pytest.raises(ValueError, match=r"batches of \[2, 3\]; pass samples"):
        cost_report(two, torch.rand(5, 3, D))
    assert cost_report(two, torch.rand(5, 3, D), samples=3).samples == 3


def _digital_net():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 3, padding=1)
            self.bn = nn.BatchNorm2d(2)
            self.act = nn.ReLU()
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.head = nn.Linear(2, 3)

        def forward(self, x):
            y = self.act(self.bn(self.conv(x))) + x  # a residual addition written inline
            return self.head(torch.flatten(self.pool(y), 1))

    torch.manual_seed(0)
    return Block().eval()


def test_digital_work_is_listed(table):
    a = convert_to_analog(_digital_net(), table, CrossbarConfig(), seed=0, exclude=["head"]).eval()
    rep = cost_report(a, torch.rand(4, 2, 6, 6))
    work = {(d.name, d.op): (d.count, d.unit) for d in rep.digital}
    n = 2 * 6 * 6
    assert work[("bn", "forward")] == (n, "elements")
    assert work[("act", "forward")] == (n, "elements")
    assert work[("<model>", "add")] == (n, "elements")
    assert work[("pool", "forward")] == (n, "elements")
    assert work[("head", "forward")] == (2 * 3, "macs")  # the excluded layer, left digital
    assert ("<model>", "flatten") not in work  # a view: no arithmetic
    assert rep.digital_macs == 6 and rep.analog_macs == 36 * 18 * 2
    text = str(rep)
    assert "Digital work per sample" in text and "BatchNorm2d" in text and "head" in text


def test_attention_products_are_digital_work(table):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    a = convert_to_analog(nn.Sequential(layer), table, CrossbarConfig(), seed=0).eval()
    T = 5
    with torch.inference_mode():
        rep = cost_report(a, torch.rand(3, T, 8))
    ops = {d.op: d.count for d in rep.digital}
    assert ops["attention_scores_macs"] == ops["attention_values_macs"] == T * T * 8
    assert any(d.kind == "LayerNorm" for d in rep.digital)
    assert all(l.vectors == T for l in rep.layers)  # every projection ran, once per token
    assert not rep.never_ran


def test_layers_that_never_ran_are_reported(table):
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Linear(4, 4)
            self.unused = nn.Linear(4, 2)

        def forward(self, x):
            return self.body(x)

    a = convert_to_analog(TwoHeads(), table, CrossbarConfig(), seed=0).eval()
    with pytest.warns(RuntimeWarning, match="unused"):
        rep = cost_report(a, torch.rand(2, 4))
    assert rep.never_ran == ["unused"]
    assert any("never ran" in n and "unused" in n for n in rep.notes)
    unused = rep.layers[1]
    assert unused.vectors == 0 and unused.energy == 0 and unused.tiles == 1
    assert rep.crossbars_needed == 2


def test_grouped_convolutions_cost_one_block_of_tiles_per_group(table):
    cfg = CrossbarConfig(tile_rows=64, tile_cols=16)
    x = torch.rand(2, 4, 8, 8)
    reps = {}
    for groups in (1, 2, 4):
        torch.manual_seed(0)
        conv = nn.Conv2d(4, 8, 3, groups=groups)
        reps[groups] = cost_report(convert_to_analog(nn.Sequential(conv), table, cfg, seed=0).eval(), x).layers[0]
    for groups, l in reps.items():
        rows = 4 // groups * 9  # rows of one group's MVM
        assert l.tiles == groups  # 8/groups outputs x 2 cells fit one 64x16 tile per group
        assert l.groups == groups and l.vectors == 36
        assert l.dac_conversions == 36 * rows * groups
        assert l.adc_conversions == 36 * 8
        assert l.macs == 36 * rows * 8
    depthwise = convert_to_analog(nn.Sequential(nn.Conv2d(4, 4, 3, groups=4)), table, cfg, seed=0).eval()
    rep = cost_report(depthwise, x)
    assert rep.crossbars_needed == 4 and rep.layers[0].dac_conversions == 36 * 9 * 4


def test_crossbar_budget_must_be_one_system(table):
    a = convert_to_analog(_net(), table, CrossbarConfig(n_crossbars=8), seed=0).eval()
    fc = a[3]
    fc.set_hardware(fc.table, fc.config.replace(n_crossbars=2))
    with pytest.raises(ValueError, match=r"n_crossbars.*8: 0.*2: 3"):
        cost_report(a, torch.rand(2, 1, 8, 8))


def test_evaluate_names_the_hardware_effects_on_and_off(table):
    from rramsim.cosim.cli_inference import hardware_effects

    on, off, _ = hardware_effects(CrossbarConfig(), table)
    assert "programming spread" in on and "stuck cells" in on and "read noise (per_forward)" in on
    assert "DAC 8 bits" in on and "ADC 8 bits" in on
    # the default is the realistic case: the table's I-V and exact IR drop (per-programming model)
    assert "IR drop (exact, 1 ohm" in on and "per-programming model" in on and "I-V nonlinearity (the table" in on
    assert "drift" in off
    on, off, _ = hardware_effects(CrossbarConfig.ohmic(), table)
    assert "IR drop" in off and "I-V nonlinearity" in off
    # the per-vector solve draws per-forward read noise per read: named, for every layer or the ones that fell back
    on, _, _ = hardware_effects(CrossbarConfig(ir_drop_solver="per_vector"), table)
    assert "read noise (per_forward; per read in the layers solved per vector: every layer)" in on
    on, _, _ = hardware_effects(CrossbarConfig(), table, 2e-3, ["fc1"])
    assert "solved per vector: fc1" in on and "over 0.1%, so solved per vector: fc1" in on
    no_iv = copy.deepcopy(table)
    no_iv.iv_v, no_iv.iv_current = np.zeros(0), np.zeros((table.n_levels, 0))
    on, off, _ = hardware_effects(CrossbarConfig(), no_iv)
    assert "the table has no I-V data" in off and "I-V nonlinearity" not in on
    cfg = CrossbarConfig(
        ideal_programming=True,
        read_noise="off",
        ir_drop="exact",
        nonlinear_iv=True,
        drift_time=10.0,
        dac_bits=None,
        adc_bits=None,
    )
    on, off, _ = hardware_effects(cfg, table)
    assert "programming spread" in off and "stuck cells" in off and "read noise (off)" in off
    assert "DAC quantization" in off and "ADC quantization" in off
    assert "IR drop (exact" in on and "I-V nonlinearity (the table" in on and "drift (10 s" in on


def test_a_shared_layer_counts_every_call_and_compiled_models_are_measured_eagerly(table):
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(torch.relu(self.fc(x)))

    a = convert_to_analog(Twice(), table, CrossbarConfig(), seed=0).eval()
    rep = cost_report(a, torch.rand(3, 4))
    assert len(rep.layers) == 1 and rep.layers[0].vectors == 2 and rep.crossbars_needed == 1
    assert [(d.name, d.op) for d in rep.digital] == [("<model>", "relu")]
    compiled = torch.compile(a)  # not called: measured on the eager model inside
    assert cost_report(compiled, torch.rand(3, 4)).layers[0].vectors == 2


def test_the_measurement_leaves_a_training_model_as_it_was(table):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(0.5))
    a = convert_to_analog(net, table, CrossbarConfig(), seed=0).train()
    stats = a[1].running_mean.clone()
    cost_report(a, torch.rand(8, 4) * 5)
    assert torch.equal(a[1].running_mean, stats) and all(m.training for m in a.modules())


def test_one_cost_model_prices_every_design(table):
    """CostModel: the prices of a config's events (ADC per resolution, DAC per bit, cycles),
    the accounting cost_report runs per layer, and the streamed sum(G) of its read energy."""
    from rramsim.models.cost import CostModel

    m = CostModel(CrossbarConfig(adc_bits=6, dac_bits=4, cycle_time=20e-9, adc_energy=2e-12, dac_energy=1e-12))
    assert m.cycles_per_mvm == 1
    cost = m.price(cycles=10, adc_conversions=3, dac_conversions=5, read_energy=1e-15)
    assert cost.latency == pytest.approx(10 * 20e-9)
    assert cost.adc_energy == pytest.approx(3 * 2e-12 / 4) and cost.dac_energy == pytest.approx(5 * 4 * 1e-12)
    assert cost.energy == pytest.approx(1e-15 + 1.5e-12 + 20e-12)
    serial = CostModel(CrossbarConfig(bit_serial=True, dac_bits=4, adc_bits=None))
    assert serial.cycles_per_mvm == 4 and serial.dac_conversion_energy == pytest.approx(0.42e-12)
    assert serial.price(adc_conversions=100).adc_energy == 0.0  # an ideal ADC costs nothing
    with pytest.raises(TypeError, match="CrossbarConfig"):
        CostModel({"adc_bits": 8})
    # cost_report's rows are the model's accounting of each layer
    cfg = CrossbarConfig(tile_rows=64, tile_cols=16, dac_bits=4, bit_serial=True, adc_bits=6)
    a = convert_to_analog(_net(), table, cfg, seed=0).eval()
    rep = cost_report(a, torch.rand(3, 1, 8, 8))
    fc = a[3]
    g_sum = fc.conductance_sum()
    assert g_sum == pytest.approx(float(fc.conductances().sum()), rel=1e-12)  # streamed, same sum
    row = CostModel(cfg).layer_cost("3", "AnalogLinear", fc.geometry(), 1, g_sum, fc.usage["mean_v2"])
    assert row == rep.layers[1]


def test_a_cost_model_keeps_its_own_config():
    """Changing the config a cost model was given, later, moves none of its prices."""
    from rramsim.models.cost import CostModel

    cfg = CrossbarConfig(adc_bits=8, cycle_time=50e-9)
    m = CostModel(cfg)
    before = m.price(cycles=4, adc_conversions=10, dac_conversions=3)
    cfg.adc_energy, cfg.cycle_time, cfg.adc_bits = 5e-12, 1e-6, 4
    assert m.price(cycles=4, adc_conversions=10, dac_conversions=3) == before
    assert m.config is not cfg and m.config == CrossbarConfig(adc_bits=8, cycle_time=50e-9)
