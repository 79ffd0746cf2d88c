"""BasisN: shared bases, quantized coefficients, crossbar basis stage, costs vs reprogramming."""

from __future__ import annotations

import pytest
import torch

from rramsim.devices import load_default_table
from rramsim.models.config import CrossbarConfig
from rramsim.models.data import ensure_dataset, get_dataset
from rramsim.models.training import TensorBatches, evaluate, train
from rramsim.models.methods.basisn import (
    AnalogBases,
    BasisNet,
    ConvNet,
    SharedBases,
    baseline_cost,
    basisn_cost,
    level_grid,
    quantize_coefficients,
    quantize_to_grid,
)


def test_basis_stage_plus_coefficients_equals_the_combined_kernel():
    torch.manual_seed(0)
    net = BasisNet((4, 4, 8, 8), n_bases=5).eval()
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        fast = net(x)
        net.basis_fn = lambda v, conv: conv.basis_stage(v)
        slow = net(x)
    assert torch.allclose(fast, slow, atol=1e-4)
    # all layers share one basis tensor
    assert len({id(c.bases[0].weight) for c in net.convs}) == 1
    assert sum(p.numel() for n, p in net.named_parameters() if "bases" in n) == 5 * 9


def test_quantization_aware_weights_are_what_the_crossbar_holds():
    table = load_default_table()
    grid = level_grid(table)
    assert grid[0] == 0 and grid[-1] == 1 and grid.numel() == table.n_levels
    torch.manual_seed(0)
    w = torch.randn(6, 4, 3, 3, requires_grad=True)
    q = quantize_to_grid(w, grid)
    flat, wf = q.detach().reshape(6, -1), w.detach().reshape(6, -1)
    scale = wf.abs().amax(1, keepdim=True)
    on_grid = (flat.abs() / scale).unsqueeze(-1) - grid.to(flat)
    assert on_grid.abs().amin(-1).max() < 1e-6  # every value is a level
    nz = flat != 0  # small weights round to 0
    assert torch.equal(torch.sign(flat[nz]), torch.sign(wf[nz])) and torch.allclose(flat.abs().amax(1), scale[:, 0])
    q.sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))  # straight-through
    # the analog layer programs exactly these values (no noise): same weights as the quantized net
    from rramsim.models.layers import AnalogLinear

    lin = torch.nn.Linear(9, 5, bias=False)
    analog = AnalogLinear.from_linear(
        lin, table, CrossbarConfig.ohmic(adc_bits=None, dac_bits=None, read_noise="off"), seed=0
    )
    levels = analog.mapping.encode(lin.weight.detach().double() / lin.weight.detach().abs().amax(1, keepdim=True))
    held = (levels[0, 0] - levels[0, 1]).double()  # level-index difference of the pair
    expect = quantize_to_grid(lin.weight.detach(), grid) / lin.weight.detach().abs().amax(1, keepdim=True)
    g = torch.as_tensor(table.targets)
    assert torch.allclose(expect.double(), torch.sign(held) * (g[held.abs().long()] - g[0]) / (g[-1] - g[0]), atol=1e-6)
    net = ConvNet((4, 4, 8, 8))
    net.quantization_aware(grid)
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    bnet = BasisNet((4, 4, 8, 8), n_bases=5)
    bnet.quantization_aware(grid)
    assert not torch.equal(bnet.bases.realized(), bnet.bases.weight)
    bnet.quantization_aware(None)
    assert torch.equal(bnet.bases.realized(), bnet.bases.weight)


def test_coefficient_quantization():
    c = torch.randn(1000)
    q = quantize_coefficients(c, 4, "int")
    assert q.unique().numel() <= 15
    p = quantize_coefficients(c, 4, "pow2")
    nz = p[p != 0].abs()
    assert torch.allclose(torch.log2(nz), torch.round(torch.log2(nz)))
    assert p.unique().numel() <= 2 * 7 + 1
    with pytest.raises(ValueError, match="quantization"):
        quantize_coefficients(c, 4, "float8")
    with pytest.raises(ValueError, match="bits"):
        quantize_coefficients(c, 1, "int")
    with pytest.raises(ValueError, match="n_bases"):
        SharedBases(10)


def test_basisn_trains_on_fashion_mnist_and_runs_its_bases_on_crossbars(one_thread):
    ensure_dataset("fashion-mnist")
    x, y = get_dataset("fashion-mnist", "train", subset=1500, seed=0).tensors
    xt, yt = get_dataset("fashion-mnist", "test", subset=200, seed=0).tensors
    torch.manual_seed(0)
    net = BasisNet((8, 8, 16, 16), n_bases=6)
    train(net, TensorBatches(x, y, 128), epochs=2, lr=3e-2, progress=False)
    test = TensorBatches(xt, yt, 500, shuffle=False)
    acc = evaluate(net, test)
    assert acc > 0.3  # 10% is chance; a short run on 1500 images
    ideal = CrossbarConfig.ohmic(dac_bits=None, adc_bits=None, read_noise="off")
    analog = AnalogBases(net.bases, load_default_table(), ideal)
    conv = net.convs[1]
    h = torch.randn(4, 8, 14, 14)
    with torch.no_grad():
        ref = conv.basis_stage(h)
        rel = float((analog(h, conv) - ref).norm() / ref.norm())
    assert rel < 0.1  # the table's 8 levels per cell, nothing else
    net.basis_fn = analog
    analog.patches = 0
    acc_x = evaluate(net, test)
    assert acc_x > 0.25
    assert net.basis_fn.patches == 200 * (1 * 784 + 8 * 784 + 8 * 196 + 16 * 196)


def test_costs_reprogramming_baseline_versus_bases_written_once():
    table = load_default_table()
    torch.manual_seed(0)
    x = torch.randn(2, 1, 28, 28)
    hw = CrossbarConfig.ohmic(bit_serial=True, dac_bits=8, adc_bits=8)  # costs: the cells' physics does not enter
    conv, bnet = ConvNet((16, 16, 32, 32)), BasisNet((16, 16, 32, 32), n_bases=6)
    fits = baseline_cost(conv, table, 100, hw, x)
    need = fits["crossbars_needed"]
    assert need == 9 and fits["rounds"] == 1 and fits["reprogram_latency"] == 0
    short = baseline_cost(conv, table, 3, hw, x)
    assert short["rounds"] == 3 and short["cycles"] > fits["cycles"] and short["energy"] > fits["energy"]
    cellwise = baseline_cost(conv, table, 3, hw.replace(program_parallelism="cell"), x)
    assert cellwise["reprogram_latency"] > 5 * short["reprogram_latency"]  # cells one by one, not rows
    assert cellwise["reprogram_energy"] == pytest.approx(short["reprogram_energy"])
    few, many = basisn_cost(bnet, table, 2, hw, x), basisn_cost(bnet, table, 6, hw, x)
    assert few["copies_per_crossbar"] == 10
    assert many["cycles"] < few["cycles"] and many["edp"] < few["edp"]
    assert few["program_energy_once"] > 0
    with pytest.raises(ValueError, match="at least 2 crossbars"):
        basisn_cost(bnet, table, 1, hw, x)


def test_network_shape_is_validated_and_sets_the_pixels_streamed_through_the_bases():
    with pytest.raises(ValueError, match="pools must index the 4 convs"):
        ConvNet((4, 4, 8, 8), pools=(4,))
    with pytest.raises(ValueError, match="widths must be"):
        BasisNet((4, 0, 8), n_bases=5)
    with pytest.raises(ValueError, match="in_ch must be a positive integer"):
        ConvNet((4, 4), in_ch=0)
    torch.manual_seed(0)
    net = BasisNet((4, 8, 8, 8), n_bases=5, pools=(0, 1, 2), in_ch=3, num_classes=7).eval()
    seen = []
    net.basis_fn = lambda v, conv: (seen.append(v.shape), conv.basis_stage(v))[1]
    with torch.no_grad():
        assert net(torch.randn(2, 3, 28, 28)).shape == (2, 7)
    assert [s[1:] for s in seen] == [(3, 28, 28), (4, 14, 14), (8, 7, 7), (8, 3, 3)]


def test_early_pooling_makes_reprogramming_dominate_the_baseline():
    """BasisN's cycles follow the pixels x channels streamed through the bases; the
    baseline's reprogramming follows its weights: the same widths pooled early make the
    ratio far smaller (the regime of the paper's large networks)."""
    table = load_default_table()
    x = torch.randn(2, 1, 28, 28)
    hw = CrossbarConfig.ohmic(bit_serial=True, dac_bits=8, adc_bits=8, program_parallelism="cell")  # costs only
    ratio = {}
    for pools in ((1, 3), (0, 1, 2)):
        torch.manual_seed(0)
        conv = ConvNet((32, 64, 128, 128), pools=pools)
        bnet = BasisNet((32, 64, 128, 128), n_bases=9, pools=pools)
        base, basis = baseline_cost(conv, table, 4, hw, x), basisn_cost(bnet, table, 4, hw, x)
        assert base["crossbars_needed"] == 33 and base["rounds"] == 9
        ratio[pools] = basis["cycles"] / base["cycles"]
    assert ratio[(0, 1, 2)] < 0.01 < ratio[(1, 3)]
    assert ratio[(1, 3)] > 3 * ratio[(0, 1, 2)]
