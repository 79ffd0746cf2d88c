"""Inference cost report."""
import math

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
    g_sum = float(a[3]._conductances().sum())
    assert 0 < fc.read_energy < 0.2 ** 2 * g_sum * 100e-9 * 4      # below the all-rows-on bound
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
    rounds = [max(tiles[k:k + 3]) for k in range(0, 7, 3)]       # tiles of a round written together
    assert rep.reprogram_latency == pytest.approx(sum(rounds))
    assert rep.program_latency == pytest.approx(max(tiles))
    assert rep.program_latency < rep.reprogram_latency
    serial = cost_report(convert_to_analog(_net(), table, cfg.replace(parallel_tile_writes=False), seed=0).eval(),
                         torch.rand(2, 1, 8, 8), batch_size=4)
    assert serial.reprogram_latency == pytest.approx(serial.program_latency) == pytest.approx(sum(tiles))
    fit = cost_report(convert_to_analog(_net(), table, cfg.replace(n_crossbars=None), seed=0).eval(),
                      torch.rand(2, 1, 8, 8), batch_size=4)
    assert rep.energy == pytest.approx(fit.energy + rep.reprogram_energy / 4, rel=0.05)
    # the FC layer's 6 tiles on 3 crossbars: its vectors pass twice; the 1-tile conv once
    assert rep.layers[0].latency == pytest.approx(fit.layers[0].latency)
    assert rep.layers[1].latency == pytest.approx(2 * fit.layers[1].latency)
    text = format_cost_report(rep)
    assert "reprogramming rounds" in text and "total per sample" in text


def test_report_without_example_uses_the_last_forward(table):
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
        lin.weight.fill_(0.5)                  # a short column of same-sign weights
    x = torch.tensor([[1.0] * 4 + [0.5] * 5]).repeat(16, 1)     # 72% of the column's worst case
    for adc_range, clipped in ((0.5, True), (1.0, False)):
        cfg = CrossbarConfig(adc_bits=8, adc_range=adc_range, read_noise="off")
        a = convert_to_analog(nn.Sequential(lin), table, cfg, seed=0).eval()
        rep = cost_report(a, x)
        assert (analog_layers(a)[0][1].usage["adc_clipped"] > 0.5) == clipped
        assert any("clipped" in n and "adc_range" in n for n in rep.notes) == clipped
