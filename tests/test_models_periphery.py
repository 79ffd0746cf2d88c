"""DAC/ADC quantizers and their straight-through gradients."""
import torch

from rramsim.models.periphery import adc, adc_scaled_, dac, dac_codes, dac_levels, input_scale


def test_dac_levels_and_codes():
    x = torch.tensor([[0.0, 0.5, 1.0], [-1.0, 0.25, 0.5]])
    n = dac_levels(x, 4)
    assert n.flatten().tolist() == [15.0, 7.0]                 # unsigned / signed sample
    codes, levels, scale = dac_codes(x, 4)
    assert scale.flatten().tolist() == [1.0, 1.0]
    assert codes[0].tolist() == [0.0, 8.0, 15.0] and codes[1].tolist() == [-7.0, 2.0, 4.0]
    assert input_scale(torch.zeros(1, 3)).item() == 1.0


def test_ste_gradients_pass_through():
    v = torch.linspace(-1, 1, 11, requires_grad=True)
    y = dac(v, torch.tensor(3.0))
    assert torch.allclose(y * 3, torch.round(v.detach() * 3))
    y.sum().backward()
    assert torch.equal(v.grad, torch.ones(11))
    s = torch.linspace(-2, 2, 9, requires_grad=True)
    q = adc(s, torch.tensor(1.0), 3)                           # 3 codes per sign, clipped at 1
    assert q.max().item() == 1.0 and q.min().item() == -1.0
    q.sum().backward()
    assert torch.equal(s.grad, torch.ones(9))
    assert adc(s, torch.tensor(1.0), None) is s


def test_inplace_adc_matches_reference():
    s = torch.randn(5, 7)
    fs = torch.rand(7) + 0.5
    ref = adc(s, fs, 5) * 2.0
    assert torch.allclose(adc_scaled_(s.clone(), fs, 5, torch.tensor(2.0)), ref, atol=1e-6)
