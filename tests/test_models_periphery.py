"""DAC codes, ADC levels, and the engine's ADC against a reference computed in amperes."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rramsim.models import AnalogConv2d, AnalogLinear, CrossbarConfig
from rramsim.models.periphery import adc_levels, dac_codes, input_scale
from tables import synthetic_table


@pytest.fixture(scope="module")
def table():
    return synthetic_table(n_levels=16, seed=1)


def test_dac_levels_and_codes():
    x = torch.tensor([[0.0, 0.5, 1.0], [-1.0, 0.25, 0.5]])
    codes, levels, scale = dac_codes(x, 4)
    assert levels.flatten().tolist() == [15.0, 7.0]  # unsigned / signed sample
    assert scale.flatten().tolist() == [1.0, 1.0]
    assert codes[0].tolist() == [0.0, 8.0, 15.0] and codes[1].tolist() == [-7.0, 2.0, 4.0]
    assert input_scale(torch.zeros(1, 3)).item() == 1.0
    assert [adc_levels(b) for b in (1, 2, 5, 8)] == [1.0, 1.0, 15.0, 127.0]


def _reference(engine, rows: torch.Tensor, bias: torch.Tensor, xm: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Output [n, out] of row vectors ``rows`` [n, rows] with DAC scales ``xm`` [n] (ideal DAC),
    from freshly compiled tiles in amperes: per row tile, current / full scale -> clip to
    +-levels -> round -> back to weight units, summed over row tiles and slices, in float64;
    and the fraction of clipped conversions."""
    c = engine.config
    comp = engine.compile(dtype=torch.float64)
    xm = xm.double()[:, None]
    volts = rows.double() / xm * c.read_voltage
    n_tr, R, cols = comp.mats[0].shape
    cur = torch.einsum("ntr,trc->ntc", F.pad(volts, (0, n_tr * R - volts.shape[1])).reshape(-1, n_tr, R), comp.mats[0])
    n = adc_levels(c.adc_bits)
    fs = comp.full_scale.double()
    q = torch.round(torch.clamp(cur / fs * n, -n, n))
    y = (q * fs / n).sum(1) * comp.col_scale.double() * xm
    y = y.reshape(y.shape[0], -1, engine.mapping.n_slices).sum(-1)
    return y + bias.double(), float((cur.abs() > fs).double().mean())


@pytest.mark.parametrize("mapping", ["differential", "bit_sliced"])
def test_engine_adc_matches_the_reference_in_amperes(table, mapping):
    """Linear (3 row tiles) and convolution (2 row tiles), with bias: the forward pass with the
    ADC's gain folded into the tile matrices gives the reference's codes."""
    cfg = CrossbarConfig.ohmic(
        read_noise="off",
        dac_bits=None,
        adc_bits=5,
        adc_range=0.04,
        tile_rows=128,
        tile_cols=16,
        mapping=mapping,
        bits_per_cell=2,
        cells_per_weight=2,
    )
    torch.manual_seed(0)
    lin = AnalogLinear.from_linear(nn.Linear(300, 6), table, cfg, seed=4).eval()
    assert lin.geometry()["row_tiles"] == 3
    x = torch.randn(8, 300)
    with torch.no_grad():
        y = lin(x)
    ref, clipped = _reference(lin.engine, x, lin.bias.detach(), x.abs().amax(dim=1))
    assert 0.01 < clipped < 0.9  # the clip is exercised
    assert torch.allclose(y.double(), ref, rtol=1e-5, atol=1e-6 * float(ref.abs().max()))

    conv = AnalogConv2d.from_conv(nn.Conv2d(20, 5, 3, padding=1), table, cfg, seed=5).eval()
    assert conv.geometry()["row_tiles"] == 2
    xc = torch.randn(2, 20, 6, 6)
    with torch.no_grad():
        yc = conv(xc)
    patches = F.unfold(xc, 3, padding=1).transpose(1, 2).reshape(-1, 180)  # [B*H*W, rows]
    xm = xc.abs().amax(dim=(1, 2, 3)).repeat_interleave(36)  # the DAC scale is per sample
    ref, clipped = _reference(conv.engine, patches, conv.bias.detach(), xm)
    assert 0.01 < clipped < 0.9
    ref = ref.reshape(2, 6, 6, 5).permute(0, 3, 1, 2)
    assert torch.allclose(yc.double(), ref, rtol=1e-5, atol=1e-6 * float(ref.abs().max()))
