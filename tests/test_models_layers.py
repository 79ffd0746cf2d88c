"""AnalogLinear / AnalogConv2d / convert_to_analog with real torch."""

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rramsim.models import (
    AnalogConv2d,
    AnalogLinear,
    CrossbarConfig,
    analog_layers,
    convert_to_analog,
    program_analog,
    set_drift_time,
    to_digital,
)
from rramsim.models.tile import TileEngine, weight_key
from tables import synthetic_table

IDEAL = dict(read_noise="off", dac_bits=None, adc_bits=None)


@pytest.fixture(scope="module")
def table():
    return synthetic_table(n_levels=16, seed=1)


@pytest.fixture(scope="module")
def tight_table():
    """Programming lands on target (tiny spread, all converged): isolates the mapping."""
    t = synthetic_table(n_levels=64, seed=2, nonconverged=0.0)
    t.g_final = t.targets[:, None] * (1 + 1e-6 * np.random.default_rng(0).standard_normal(t.g_final.shape))
    t.validate()
    return t


def _net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 5, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(5, 4, 3, stride=2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 7),
        nn.ReLU(),
        nn.Linear(7, 3),
    )


def _rel(a, b):
    return float((a - b).norm() / b.norm())


def test_convert_swaps_every_layer_and_is_programmed(table):
    net = _net().eval()
    a = convert_to_analog(net, table, CrossbarConfig(tile_rows=16, tile_cols=8), seed=1)
    kinds = [type(m).__name__ for _, m in analog_layers(a)]
    assert kinds == ["AnalogConv2d", "AnalogConv2d", "AnalogLinear", "AnalogLinear"]
    assert not analog_layers(net)  # the float model is left alone
    assert all(m._programmed_key is not None for _, m in analog_layers(a))
    x = torch.randn(4, 2, 8, 8)
    with torch.no_grad():
        assert _rel(a(x), net(x)) < 0.3
    assert torch.equal(a[0].weight, net[0].weight)  # float weights are kept


def test_ideal_hardware_equals_quantized_float(tight_table):
    torch.manual_seed(1)
    lin = nn.Linear(300, 20)
    cfg = CrossbarConfig.ohmic(tile_rows=64, tile_cols=16, **IDEAL)
    a = AnalogLinear.from_linear(lin, tight_table, cfg)
    x = torch.randn(8, 300)
    with torch.no_grad():
        err = _rel(a(x), lin(x))
    assert err < 0.02  # 63-step levels, exact cells


@pytest.mark.parametrize("mapping", ["differential", "offset", "bit_sliced"])
def test_mappings_agree_with_float(tight_table, mapping):
    torch.manual_seed(2)
    lin = nn.Linear(40, 6)
    cfg = CrossbarConfig.ohmic(
        mapping=mapping, cells_per_weight=2, bits_per_cell=3, tile_rows=16, tile_cols=12, **IDEAL
    )
    a = AnalogLinear.from_linear(lin, tight_table, cfg)
    x = torch.rand(5, 40)
    with torch.no_grad():
        assert _rel(a(x), lin(x)) < 0.03


def test_conv_equals_unfolded_linear(table):
    torch.manual_seed(3)
    conv = nn.Conv2d(3, 4, 3, padding=1, stride=2)
    cfg = CrossbarConfig.ohmic(tile_rows=10, tile_cols=8, **IDEAL)  # tiles split the 27 rows mid-channel
    ac = AnalogConv2d.from_conv(conv, table, cfg, seed=4)
    lin = nn.Linear(27, 4)
    with torch.no_grad():
        lin.weight.copy_(conv.weight.reshape(4, -1))
        lin.bias.copy_(conv.bias)
    al = AnalogLinear.from_linear(lin, table, cfg, seed=4)
    x = torch.rand(2, 3, 7, 7)
    with torch.no_grad():
        y = ac(x)
        cols = F.unfold(x, 3, padding=1, stride=2).transpose(1, 2)  # [B, L, 27]
        ref = al(cols.reshape(-1, 27)).reshape(2, -1, 4)
    assert torch.allclose(y.reshape(2, 4, -1).transpose(1, 2), ref, rtol=1e-4, atol=1e-5)


def test_read_noise_every_forward_and_seeded(table):
    lin = nn.Linear(50, 10)
    x = torch.rand(16, 50)
    for mode in ("per_read", "per_forward"):
        a = AnalogLinear.from_linear(lin, table, CrossbarConfig(read_noise=mode), seed=7)
        with torch.no_grad():
            y1, y2 = a(x), a(x)
            assert not torch.equal(y1, y2)
            a.program(seed=7)
            assert torch.equal(a(x), y1)  # same seed, same programming and noise
    off = AnalogLinear.from_linear(lin, table, CrossbarConfig(read_noise="off"), seed=7)
    with torch.no_grad():
        assert torch.equal(off(x), off(x))


def test_read_noise_magnitude_matches_table(table):
    torch.manual_seed(5)
    lin = nn.Linear(64, 8, bias=False)
    cfg = CrossbarConfig(read_noise="per_read", dac_bits=None, adc_bits=None)
    a = AnalogLinear.from_linear(lin, table, cfg, seed=1)
    x = torch.ones(4000, 64)
    with torch.no_grad():
        std = a(x).std(dim=0)
    g = a.conductances()  # [1, 2, 8, 64]
    sig2 = torch.as_tensor(table.read_sigma_at(g.numpy())) ** 2
    expect = sig2.sum(dim=(0, 1)).sum(-1).sqrt() / (table.targets[-1] - table.targets[0]) * a.engine.w_scale
    assert torch.allclose(std.double(), expect, rtol=0.1)


def test_adc_clips_and_quantizes(table):
    lin = nn.Linear(32, 4, bias=False)
    with torch.no_grad():
        lin.weight.fill_(0.5)
    x = torch.ones(1, 32)
    base = dict(read_noise="off", dac_bits=None, tile_rows=32, tile_cols=8)
    full = AnalogLinear.from_linear(lin, table, CrossbarConfig(adc_bits=None, **base), seed=0)
    clip = AnalogLinear.from_linear(lin, table, CrossbarConfig(adc_bits=8, adc_range=0.25, **base), seed=0)
    coarse = AnalogLinear.from_linear(lin, table, CrossbarConfig(adc_bits=2, adc_range=1.0, **base), seed=0)
    with torch.no_grad():
        y_full, y_clip, y_coarse = full(x), clip(x), coarse(x)
    assert torch.all(y_clip < 0.6 * y_full)  # clipped at a quarter of the worst case
    assert len(torch.unique(y_coarse)) == 1  # 2-bit ADC: one level
    assert not torch.allclose(y_coarse, y_full)


def test_bit_serial_equals_parallel_dac_with_ideal_adc(table):
    lin = nn.Linear(20, 5)
    x = torch.randn(6, 20)
    # Ohmic cells: with the table's I-V a multi-bit DAC's amplitudes meet the curvature, bit-serial
    # pulses (all at the read voltage) do not
    kw = dict(read_noise="off", adc_bits=None, dac_bits=5)
    a = AnalogLinear.from_linear(lin, table, CrossbarConfig.ohmic(**kw), seed=2)
    b = AnalogLinear.from_linear(lin, table, CrossbarConfig.ohmic(bit_serial=True, **kw), seed=2)
    with torch.no_grad():
        assert torch.allclose(a(x), b(x), rtol=1e-4, atol=1e-6)


def test_drift_lowers_outputs(table):
    lin = nn.Linear(30, 4, bias=False)
    with torch.no_grad():
        lin.weight.abs_()
    a = AnalogLinear.from_linear(lin, table, CrossbarConfig(**IDEAL), seed=3)
    x = torch.rand(3, 30)
    with torch.no_grad():
        y0 = a(x)
        set_drift_time(a, 1e5)
        y1 = a(x)
    assert torch.all(y1 < y0)
    with pytest.raises(ValueError, match="drift"):
        a.set_drift_time(-1.0)


def test_ir_drop_modes(table):
    torch.manual_seed(4)
    lin = nn.Linear(48, 12, bias=False)
    with torch.no_grad():
        lin.weight.abs_()
    x = torch.rand(5, 48)
    out = {}
    for mode in ("off", "approx", "exact"):
        cfg = CrossbarConfig(ir_drop=mode, wire_resistance=2.0, tile_rows=32, tile_cols=16, **IDEAL)
        with torch.no_grad():
            out[mode] = AnalogLinear.from_linear(lin, table, cfg, seed=5)(x)
    assert torch.all(out["exact"] < out["off"])  # wires lose current
    assert _rel(out["approx"], out["exact"]) < 0.5 * _rel(out["off"], out["exact"])


def test_exact_ir_drop_with_nonlinear_cells(table):
    lin = nn.Linear(20, 4, bias=False)
    x = torch.rand(3, 20)
    kw = dict(wire_resistance=2.0, tile_rows=16, tile_cols=8, **IDEAL)
    lin_cells = AnalogLinear.from_linear(lin, table, CrossbarConfig(ir_drop="exact", nonlinear_iv=False, **kw), seed=1)
    nl_cells = AnalogLinear.from_linear(lin, table, CrossbarConfig(ir_drop="exact", nonlinear_iv=True, **kw), seed=1)
    nl_ideal = AnalogLinear.from_linear(lin, table, CrossbarConfig(ir_drop="off", nonlinear_iv=True, **kw), seed=1)
    with torch.no_grad():
        a, b, c = lin_cells(x), nl_cells(x), nl_ideal(x)
    assert 0 < _rel(b, a) < 0.2 and 0 < _rel(b, c) < 0.2


def test_gradients_flow_and_training_injects_noise(table):
    net = convert_to_analog(_net(), table, CrossbarConfig(tile_rows=16, tile_cols=8), seed=0)
    net.train()
    x = torch.randn(4, 2, 8, 8, requires_grad=True)
    y = net(x)
    y.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for _, m in analog_layers(net):
        assert m.weight.grad is not None and m.weight.grad.abs().sum() > 0
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    opt.step()  # weights change -> reprogram before eval
    net.eval()
    with torch.no_grad():
        net(x)
    for _, m in analog_layers(net):
        assert m._programmed_key == weight_key(m.weight)


def _count_calls(monkeypatch, *names) -> dict:
    calls = {n: 0 for n in names}
    for n in names:
        real = getattr(TileEngine, n)

        def counted(self, *args, _real=real, _n=n, **kw):
            calls[_n] += 1
            return _real(self, *args, **kw)

        monkeypatch.setattr(TileEngine, n, counted)
    return calls


def test_training_programs_again_only_after_the_weights_change(table, monkeypatch):
    """Trainable weights, an optimizer step between forwards: no programming between forwards
    with the same weights, one per layer after each step, new Parameters or ``.data`` assigned,
    and the crossbars then hold what a fresh conversion of the new weights holds."""
    cfg = CrossbarConfig(tile_rows=16, tile_cols=8, read_noise="off")
    net = convert_to_analog(_net(), table, cfg, seed=3).eval()  # eval: e.g. fine-tuning, frozen norms
    layers = [m for _, m in analog_layers(net)]
    calls = _count_calls(monkeypatch, "program", "encode")
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    x = torch.randn(4, 2, 8, 8)
    y1, y2 = net(x), net(x)
    assert calls["program"] == 0 and torch.equal(y1, y2)
    y2.square().sum().backward()
    opt.step()
    opt.zero_grad()
    y3 = net(x)
    assert calls["program"] == len(layers)
    assert torch.equal(net(x), y3) and calls["program"] == len(layers)
    fresh = convert_to_analog(to_digital(net), table, cfg, seed=3).eval()
    with torch.no_grad():
        assert torch.equal(fresh(x), net(x))  # the stepped weights are on the crossbars
        assert not torch.allclose(y3, y1)
        calls["program"] = 0
        layers[0].weight.data = layers[0].weight.data * 0.5  # .data assigned: programmed again
        net(x)
        assert calls["program"] == 1
    layers[1].weight = nn.Parameter(layers[1].weight.detach().clone())  # a new Parameter, same values
    net(x)
    assert calls["program"] == 2

    opt = torch.optim.SGD(net.parameters(), lr=0.05)  # (holding the new Parameter)
    net.train()  # noise injection: a fresh draw per forward,
    calls.update(program=0, encode=0)  # the weights encoded once per change
    compiled = [m.engine.compiled for m in layers]
    ya, yb = net(x), net(x)
    assert not torch.equal(ya, yb) and calls["encode"] == len(layers) and calls["program"] == 0
    yb.square().sum().backward()
    opt.step()
    net(x)
    assert calls["encode"] == 2 * len(layers) and calls["program"] == 0
    assert all(m.engine.compiled is c for m, c in zip(layers, compiled))  # programmed cells untouched
    net.eval()
    with torch.no_grad():
        net(x)
    assert calls["program"] == len(layers)


def test_convolution_in_blocks_equals_one_pass(table, monkeypatch):
    """A convolution's batch taken in blocks (cache-sized) gives the one-pass output: the same
    read-noise draw for every block of a forward, the DAC scale per sample."""
    import rramsim.models.tile as tile

    cfg = CrossbarConfig(tile_rows=16, tile_cols=8)  # per-forward read noise, 8-bit DAC/ADC
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 5, 3, padding=1)
    a = AnalogConv2d.from_conv(conv, table, cfg, seed=5).eval()
    b = AnalogConv2d.from_conv(conv, table, cfg, seed=5).eval()
    x = torch.rand(7, 6, 8, 8)
    with torch.no_grad():
        one = [a(x), a(x)]
        monkeypatch.setattr(tile, "BLOCK_ELEMENTS", 2 * 6 * 8 * 8)  # blocks of 2 samples
        blocks = [b(x), b(x)]

    def differing(u, v):
        return float(((u - v).abs() > 1e-5 * float(u.abs().max())).float().mean())

    assert differing(one[0], blocks[0]) < 0.01 and differing(one[1], blocks[1]) < 0.01
    assert differing(one[0], one[1]) > 0.5  # (another noise draw differs everywhere)


def test_state_dict_keeps_config_and_programming(table):
    cfg = CrossbarConfig(adc_bits=5, tile_rows=16, tile_cols=8)
    a = convert_to_analog(_net(), table, cfg, seed=9).eval()
    x = torch.randn(2, 2, 8, 8)
    with torch.no_grad():
        y = a(x)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    b = convert_to_analog(_net(), table, CrossbarConfig(), seed=0).eval()
    b.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    assert all(m.config == cfg for _, m in analog_layers(b))
    with torch.no_grad():
        assert torch.equal(b(x), y)


def test_model_program_method(table):
    a = convert_to_analog(_net(), table, CrossbarConfig(tile_rows=16, tile_cols=8), seed=0)
    total = a.program(seed=3)
    assert total["cells"] > 0 and total["energy"] > 0 and total["latency"] > 0
    assert program_analog(a, 3)["energy"] == total["energy"]


def test_bad_inputs(table):
    lin = AnalogLinear(10, 3, table)
    with pytest.raises(ValueError, match="in_features=10"):
        lin(torch.randn(2, 11))
    conv = AnalogConv2d(3, 2, 3, table)
    with pytest.raises(ValueError, match="in_channels=3"):
        conv(torch.randn(1, 2, 8, 8))
    with pytest.raises(ValueError, match="in_features"):
        AnalogLinear(0, 3, table)
    bad = nn.Linear(4, 2)
    with torch.no_grad():
        bad.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        convert_to_analog(bad, table)
    with pytest.raises(TypeError, match="DeviceTable"):
        convert_to_analog(nn.Linear(3, 2), None)
    with pytest.raises(ValueError, match="read_voltage"):
        convert_to_analog(nn.Linear(3, 2), table, CrossbarConfig(nonlinear_iv=True, read_voltage=0.9))
    with pytest.raises(ValueError, match="seed"):
        convert_to_analog(nn.Linear(3, 2), table, seed=-1)


def test_dtype_change_follows_the_model(table):
    a = convert_to_analog(_net(), table, CrossbarConfig(tile_rows=16, tile_cols=8, read_noise="off"), seed=0).eval()
    x = torch.randn(3, 2, 8, 8)
    with torch.no_grad():
        y = a(x)
        a.double()
        y64 = a(x.double())
    assert y64.dtype == torch.float64
    assert torch.allclose(y64.float(), y, rtol=1e-3, atol=1e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_follows_the_model(table):
    a = convert_to_analog(_net(), table, CrossbarConfig(tile_rows=16, tile_cols=8), seed=0).eval()
    x = torch.randn(3, 2, 8, 8)
    with torch.no_grad():
        y_cpu = a(x)
        a.to("cuda")
        y_gpu = a(x.cuda())
    assert y_gpu.device.type == "cuda"
    assert _rel(y_gpu.cpu(), y_cpu) < 0.1


def test_real_characterized_table_end_to_end(small_table):
    """The session's small real characterization (ngspice) drives a converted network."""
    real = small_table
    from rramsim.models import cost_report

    a = convert_to_analog(_net(), real, CrossbarConfig(tile_rows=16, tile_cols=8), seed=0).eval()
    x = torch.randn(2, 2, 8, 8)
    with torch.no_grad():
        y = a(x)
        ref = _net().eval()(x)
    assert torch.isfinite(y).all() and _rel(y, ref) < 0.5
    rep = cost_report(a, x)
    assert rep.program_energy > 0 and rep.energy > 0


def test_polynomial_iv_agrees_with_the_exact_nonlinear_solver(table):
    """Without wires the exact solver's nonlinear cells and the fast polynomial path agree,
    for the linear and the convolution layer (each input sample is scaled to full voltage
    by the DAC, so the I-V's curvature matters)."""
    torch.manual_seed(6)
    conv = nn.Conv2d(2, 3, 3)
    lin = nn.Linear(18, 3)
    kw = dict(nonlinear_iv=True, tile_rows=8, tile_cols=6, **IDEAL)
    fast = CrossbarConfig(ir_drop="off", **kw)
    exact = CrossbarConfig(ir_drop="exact", ir_drop_solver="per_vector", wire_resistance=1e-7, **kw)
    ohm = CrossbarConfig.ohmic(tile_rows=8, tile_cols=6, **IDEAL)
    x = torch.rand(2, 2, 5, 5)
    v = torch.rand(7, 18)
    with torch.no_grad():
        y = {
            name: (
                AnalogConv2d.from_conv(conv, table, cfg, seed=2)(x),
                AnalogLinear.from_linear(lin, table, cfg, seed=2)(v),
            )
            for name, cfg in (("fast", fast), ("exact", exact), ("ohm", ohm))
        }
    for k in (0, 1):
        assert _rel(y["fast"][k], y["exact"][k]) < 1e-4
        assert _rel(y["fast"][k], y["ohm"][k]) > 1e-3  # the I-V does change the result


# ---------------------------------------------------------------------- every layer type, grouped convs
from rramsim.devices import load_default_table  # noqa: E402

# exact cells, 8-bit bit-sliced weights, ideal periphery: what is left is the mapping's own error
IDEAL_BS = dict(mapping="bit_sliced", ideal_programming=True, ir_drop="off", nonlinear_iv=False, **IDEAL)


@pytest.fixture(scope="module")
def default_table():
    return load_default_table()


def _module(kind: str) -> tuple[nn.Module, torch.Tensor]:
    """A float layer of each kind with an input of its shape (small tiles: several row tiles)."""
    torch.manual_seed(11)
    layers = {
        "linear_3d": (nn.Linear(40, 6), torch.randn(3, 5, 40)),
        "conv1d": (nn.Conv1d(4, 6, 5, stride=2, padding=2), torch.randn(2, 4, 17)),
        "conv1d_same_reflect": (nn.Conv1d(4, 6, 4, padding="same", padding_mode="reflect"), torch.randn(2, 4, 12)),
        "conv1d_depthwise": (nn.Conv1d(4, 8, 3, groups=4, padding=1, padding_mode="circular"), torch.randn(2, 4, 9)),
        "conv2d": (nn.Conv2d(3, 5, 3, padding=1, stride=2), torch.rand(2, 3, 9, 9)),
        "conv2d_groups": (nn.Conv2d(6, 4, 3, groups=2, padding=1), torch.randn(2, 6, 7, 7)),
        "conv2d_depthwise": (
            nn.Conv2d(5, 5, 3, groups=5, padding=1, padding_mode="replicate"),
            torch.randn(2, 5, 6, 6),
        ),
        "conv2d_same_even": (
            nn.Conv2d(3, 4, (2, 4), padding="same", padding_mode="reflect", dilation=(1, 2)),
            torch.randn(2, 3, 8, 9),
        ),
        "conv2d_same_zeros_multiplier": (nn.Conv2d(4, 8, 4, padding="same", groups=4), torch.randn(2, 4, 7, 6)),
        "conv2d_valid_dilated": (
            nn.Conv2d(4, 6, 3, padding="valid", dilation=2, stride=(1, 2), groups=2),
            torch.randn(2, 4, 10, 11),
        ),
    }
    return layers[kind]


KINDS = [
    "linear_3d",
    "conv1d",
    "conv1d_same_reflect",
    "conv1d_depthwise",
    "conv2d",
    "conv2d_groups",
    "conv2d_depthwise",
    "conv2d_same_even",
    "conv2d_same_zeros_multiplier",
    "conv2d_valid_dilated",
]
SMALL_TILES = dict(tile_rows=8, tile_cols=16)


def _analog(module: nn.Module, table, cfg, seed=0) -> nn.Module:
    return convert_to_analog(nn.Sequential(module), table, cfg, seed=seed)[0]


@pytest.mark.parametrize("kind", KINDS)
def test_every_layer_kind_is_analog_and_matches_float_with_ideal_cells(default_table, kind):
    """Default table, bit slicing 4 x 2 bits, exact cells, ideal DAC/ADC: within 1e-2 of float."""
    module, x = _module(kind)
    a = _analog(module, default_table, CrossbarConfig(**IDEAL_BS, **SMALL_TILES))
    assert type(a).__name__.startswith("Analog")
    with torch.no_grad():
        ref, y = module(x), a(x)
    assert y.shape == ref.shape
    assert _rel(y, ref) < 1e-2
    assert a.geometry()["groups"] == getattr(module, "groups", 1)
    assert a.geometry()["tiles"] >= getattr(module, "groups", 1)  # every group on tiles of its own


@pytest.mark.parametrize("kind", KINDS)
def test_harsh_config_changes_every_layer_kind_and_gradients_flow(default_table, kind):
    module, x = _module(kind)
    ideal = _analog(module, default_table, CrossbarConfig(**IDEAL_BS, **SMALL_TILES))
    harsh = _analog(module, default_table, CrossbarConfig(adc_bits=2, dac_bits=2, **SMALL_TILES))
    with torch.no_grad():
        assert _rel(harsh(x), ideal(x)) > 0.05
    xg = x.clone().requires_grad_(True)
    harsh.train()
    harsh(xg).square().sum().backward()
    assert xg.grad is not None and xg.grad.abs().sum() > 0
    assert harsh.weight.grad is not None and harsh.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", KINDS)
def test_state_dict_round_trip_is_bit_identical(table, kind):
    module, x = _module(kind)
    cfg = CrossbarConfig(adc_bits=6, **SMALL_TILES)
    a = _analog(module, table, cfg, seed=5).eval()
    with torch.no_grad():
        y = a(x)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    other, _ = _module(kind)
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(0.5)
    b = _analog(other, table, CrossbarConfig(), seed=1).eval()
    b.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    with torch.no_grad():
        assert torch.equal(b(x), y)


def test_grouped_conv_unfolded_matches_per_group_linears(table):
    """A grouped convolution is its groups' patches through each group's own tiles."""
    torch.manual_seed(4)
    conv = nn.Conv2d(4, 6, 3, groups=2, padding=1)
    cfg = CrossbarConfig.ohmic(tile_rows=8, tile_cols=8, ideal_programming=True, **IDEAL)  # same cells both ways
    ac = AnalogConv2d.from_conv(conv, table, cfg, seed=3)
    x = torch.rand(2, 4, 5, 5)
    with torch.no_grad():
        y = ac(x)
        for g in range(2):
            lin = nn.Linear(18, 3)
            lin.weight.copy_(conv.weight[3 * g : 3 * g + 3].reshape(3, -1))
            lin.bias.copy_(conv.bias[3 * g : 3 * g + 3])
            al = AnalogLinear.from_linear(lin, table, cfg, seed=3)
            cols = F.unfold(x[:, 2 * g : 2 * g + 2], 3, padding=1).transpose(1, 2)
            ref = al(cols.reshape(-1, 18)).reshape(2, -1, 3)
            got = y[:, 3 * g : 3 * g + 3].reshape(2, 3, -1).transpose(1, 2)
            assert _rel(got, ref) < 1e-4


def test_exact_solver_agrees_with_polynomial_path_for_grouped_conv(table):
    torch.manual_seed(7)
    conv = nn.Conv2d(4, 4, 3, groups=2)
    kw = dict(nonlinear_iv=True, tile_rows=8, tile_cols=6, **IDEAL)
    x = torch.rand(2, 4, 5, 5)
    with torch.no_grad():
        fast = AnalogConv2d.from_conv(conv, table, CrossbarConfig(ir_drop="off", **kw), seed=2)(x)
        exact = AnalogConv2d.from_conv(
            conv,
            table,
            CrossbarConfig(ir_drop="exact", ir_drop_solver="per_vector", wire_resistance=1e-7, **kw),
            seed=2,
        )(x)
    assert _rel(fast, exact) < 1e-4


def test_ideal_programming_puts_every_cell_on_target(table):
    cfg = CrossbarConfig(ideal_programming=True, stuck_on=0.2, tile_rows=16, tile_cols=8)
    a = AnalogLinear.from_linear(nn.Linear(20, 4), table, cfg)
    g = a.conductances()
    assert torch.equal(g, a.physics.levels[a.engine.level])
    assert a.program_stats["stuck"] == 0 and a.program_stats["pulses"] > 0


def test_bit_slicing_on_uneven_levels_is_refused_by_name():
    uneven = synthetic_table(n_levels=8, seed=3)
    uneven.targets = np.geomspace(5e-6, 150e-6, 8)
    uneven.g_final = uneven.targets[:, None] * np.ones((1, uneven.g_final.shape[1]))
    uneven.iv_current = uneven.targets[:, None] * np.ones((1, uneven.iv_v.size)) * uneven.iv_v
    uneven.validate()
    with pytest.raises(ValueError, match="evenly spaced.*bits_per_cell=1"):
        AnalogLinear(4, 2, uneven, CrossbarConfig(mapping="bit_sliced", bits_per_cell=2))


# ---------------------------------------------------------------------- state: table fingerprint, pickles
from rramsim.models import table_fingerprint  # noqa: E402


def test_state_dict_from_another_table_is_refused(table):
    a = convert_to_analog(_net(), table, CrossbarConfig(tile_rows=16, tile_cols=8), seed=0)
    other = synthetic_table(n_levels=16, seed=2)
    b = convert_to_analog(_net(), other, CrossbarConfig(tile_rows=16, tile_cols=8), seed=0)
    state = a.state_dict()
    assert state["0._extra_state"]["table_fingerprint"] == table_fingerprint(table) != table_fingerprint(other)
    with pytest.raises(ValueError, match=f"device table {table_fingerprint(table)}.*{table_fingerprint(other)}"):
        b.load_state_dict(state)


def test_table_fingerprint_is_the_content(table, tmp_path):
    path = table.save(tmp_path / "t.h5")
    again = type(table).load(path)
    assert table_fingerprint(again) == table_fingerprint(table)
    again.read_sigma = again.read_sigma * 1.01
    assert table_fingerprint(again) != table_fingerprint(table)


def test_whole_model_pickle_loads_with_weights_only(table):
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, groups=2, padding="same", padding_mode="reflect"),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 25, 3),
    )
    a = convert_to_analog(model, table, CrossbarConfig(tile_rows=16, tile_cols=8), seed=4).eval()
    x = torch.randn(2, 2, 5, 5)
    with torch.no_grad():
        y = a(x)
    buf = io.BytesIO()
    torch.save(a, buf)
    b = torch.load(io.BytesIO(buf.getvalue()))  # torch's default: weights_only=True
    assert type(b[0]) is AnalogConv2d and table_fingerprint(b[0].table) == table_fingerprint(table)
    with torch.no_grad():
        assert torch.equal(b(x), y)  # programmed again with the same seed
    assert b.program(seed=1)["cells"] == a.program(seed=1)["cells"]


# ---------------------------------------------------------------------- torch.compile
def test_compiled_model_draws_fresh_noise_and_programs_only_when_weights_change(table, monkeypatch):
    from rramsim.models.tile import TileEngine

    cfg = CrossbarConfig(tile_rows=16, tile_cols=8)
    a = convert_to_analog(_net(), table, cfg, seed=0).eval()
    twin = convert_to_analog(_net(), table, cfg, seed=0).eval()
    programs = []
    real = TileEngine.program
    monkeypatch.setattr(TileEngine, "program", lambda self, *args, **kw: programs.append(1) or real(self, *args, **kw))
    # aot_eager: dynamo and AOT autograd as in the default backend, without code generation (fast); a layer
    # whose weight-version check and noise draw are traced into the graph reprograms on every call and
    # repeats one noise draw under it
    compiled = torch.compile(a, backend="aot_eager")
    x = torch.randn(3, 2, 8, 8)
    with torch.no_grad():
        y1, y2, y3 = compiled(x), compiled(x), compiled(x)
        assert not torch.equal(y1, y2) and not torch.equal(y2, y3)  # fresh read noise every call
        for y in (y1, y2, y3):  # the eager model's noise stream
            assert torch.allclose(y, twin(x), rtol=1e-5, atol=1e-6)
        assert programs == []
        a[0].weight.mul_(0.5)  # new weights: programmed once
        compiled(x)
        compiled(x)
    assert len(programs) == 1


# ---------------------------------------------------------------------- costs of the wrappers
def test_depthwise_conv_costs_a_block_of_tiles_per_group(table):
    from rramsim.models import cost_report

    conv = nn.Conv2d(5, 5, 3, groups=5, padding=1)
    a = _analog(conv, table, CrossbarConfig(mapping="bit_sliced", tile_rows=8, tile_cols=16))
    g = a.geometry()
    # 9 rows per group on 8-row tiles: 2 row tiles; 1 output x 4 slices x 2 cells = 8 columns: 1 column tile
    assert (g["groups"], g["row_tiles"], g["col_tiles"], g["tiles"], g["rows"]) == (5, 2, 1, 10, 45)
    rep = cost_report(nn.Sequential(a), torch.randn(2, 5, 6, 6))
    layer = rep.layers[0]
    assert layer.vectors == 36 and layer.tiles == 10
    assert layer.adc_conversions == 36 * 5 * 4 * 2 and layer.dac_conversions == 36 * 45


def test_linear_on_sequences_counts_every_token(table):
    from rramsim.models import cost_report

    a = _analog(nn.Linear(6, 4), table, CrossbarConfig(tile_rows=16, tile_cols=8))
    short = cost_report(nn.Sequential(a), torch.randn(2, 5, 6)).layers[0]
    long = cost_report(nn.Sequential(a), torch.randn(2, 50, 6)).layers[0]
    assert (short.vectors, long.vectors) == (5, 50)
    assert long.energy == pytest.approx(10 * short.energy, rel=0.2)


@pytest.mark.parametrize(
    "periphery", [dict(dac_bits=None, adc_bits=None), dict(dac_bits=2, bit_serial=True, adc_bits=16, adc_range=1.0)]
)
def test_per_programming_ir_drop_model_follows_the_per_vector_solve_in_a_grouped_conv(table, periphery):
    # the model's cross term through the convolution path: groups, two row tiles, differential pairs,
    # the ADC gain and bit-serial planes folded in the same way as the per-vector solve sees them
    torch.manual_seed(3)
    conv = nn.Conv2d(4, 6, 3, padding=1, groups=2)
    kw = dict(nonlinear_iv=True, tile_rows=12, tile_cols=12, read_noise="off", wire_resistance=3.0, **periphery)
    x = torch.rand(2, 4, 6, 6)
    with torch.no_grad():
        y = {
            k: AnalogConv2d.from_conv(conv, table, CrossbarConfig(**kw, **extra), seed=2)
            for k, extra in (
                ("off", {"ir_drop": "off"}),
                ("per_vector", {"ir_drop": "exact", "ir_drop_solver": "per_vector"}),
                ("per_programming", {"ir_drop": "exact", "ir_drop_solver": "per_programming"}),
            )
        }
        out = {k: m(x) for k, m in y.items()}
    engine = y["per_programming"].engine
    assert engine.compiled.cross is not None and not engine.ir_drop_fallback
    assert 0 < engine.ir_drop_error < 1e-3
    err = _rel(out["per_programming"], out["per_vector"])
    assert err < 0.05 * _rel(out["off"], out["per_vector"]) and err < 1e-3


@pytest.mark.parametrize(
    "physics",
    [
        dict(ir_drop="exact"),  # per-programming model of the nonlinear cells
        dict(ir_drop="exact", ir_drop_solver="per_vector"),
        dict(ir_drop="exact", nonlinear_iv=False),
        dict(ir_drop="approx"),
    ],
)
def test_a_layer_filling_part_of_a_tile_sits_next_to_its_drivers_and_sense_amplifiers(table, physics):
    """A layer of 20 inputs and 5 outputs on 32x16 tiles uses the rows nearest the sense
    amplifiers and the columns nearest the drivers: the wire beyond is open-ended, so it gives
    what a tile of exactly its size gives (with the unused rows between its cells and the
    sense amplifiers, their wire would add series resistance to every column)."""
    torch.manual_seed(11)
    kw = dict(wire_resistance=3.0, read_noise="off", dac_bits=None, adc_bits=None, tile_cols=16, **physics)
    lin = nn.Linear(20, 5)
    x = torch.rand(4, 20)
    with torch.no_grad():
        part = AnalogLinear.from_linear(lin, table, CrossbarConfig(tile_rows=32, **kw), seed=3)(x)
        fitted = AnalogLinear.from_linear(lin, table, CrossbarConfig(tile_rows=20, **kw), seed=3)(x)
        no_wires = AnalogLinear.from_linear(
            lin, table, CrossbarConfig(tile_rows=32, **{**kw, "ir_drop": "off"}), seed=3
        )
        ideal = no_wires(x)
    assert _rel(part, fitted) < 1e-5, physics
    assert _rel(part, ideal) > 1e-3  # the wires are on
