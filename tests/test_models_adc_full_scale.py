"""The ADC full scale of every tile column is the designer's calibration: the sum over the
tile's rows of |ideal signal| (target conductances, signs and offset of the mapping), times
``adc_range * read_voltage``. A layer that fits one tile (no row padding) and one that spans
several row tiles must both get it, or the ADC clips every output."""

import pytest
import torch
from torch import nn

from rramsim.devices import DeviceTable, default_table_path
from rramsim.models import CrossbarConfig, convert_to_analog


@pytest.fixture(scope="module")
def table():
    return DeviceTable.load(default_table_path())


def _expected_full_scale(engine, config):
    m = engine.mapping
    level = engine.level  # [S, P, out, rows]
    target = engine.physics.levels.to(torch.float64)[level]
    signs = torch.as_tensor(m.signs, dtype=torch.float64).view(1, -1, 1, 1)
    sig = (target * signs).sum(1) - m.offset  # [S, out, rows]
    rows = sig.shape[-1]
    n_tr = engine.compiled.full_scale.shape[0]
    R = config.tile_rows if n_tr > 1 else rows
    sig = torch.nn.functional.pad(sig.abs(), (0, n_tr * R - rows))
    col = sig.reshape(sig.shape[0], sig.shape[1], n_tr, R).sum(-1)  # [S, out, n_tr]
    return config.adc_range * config.read_voltage * col.permute(2, 1, 0).reshape(n_tr, -1)


@pytest.mark.parametrize("rows", [64, 300])
def test_adc_full_scale_is_the_sum_of_the_ideal_signal_magnitudes(table, rows):
    torch.manual_seed(0)
    config = CrossbarConfig()
    layer = convert_to_analog(nn.Linear(rows, 10), table, config=config, seed=0)
    x = torch.rand(8, rows)
    with torch.no_grad():
        y = layer(x)
    fs = layer.engine.compiled.full_scale.double()
    expected = _expected_full_scale(layer.engine, config)
    assert fs.shape == expected.shape
    assert torch.allclose(fs, expected, rtol=1e-5), (fs, expected)
    assert y.shape == (8, 10)


@pytest.mark.parametrize("rows", [64, 300])
def test_a_layer_of_one_or_several_row_tiles_stays_near_float(table, rows):
    torch.manual_seed(1)
    lin = nn.Linear(rows, 10)
    # Ohmic cells without IR drop: what is checked is the ADC's range (the realistic default's wires
    # and I-V move the currents by more than this bound at 128 rows)
    layer = convert_to_analog(lin, table, CrossbarConfig.ohmic(), seed=0)
    x = torch.rand(32, rows)
    with torch.no_grad():
        err = float((layer(x) - lin(x)).norm() / lin(x).norm())
    assert err < 0.2, f"relative error {err:.3f}: the ADC clips (full scale wrong?)"
