"""convert_to_analog / conversion_report / to_digital / register_converter with real torch."""

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from rramsim.models import (
    AnalogConv1d,
    AnalogConv2d,
    AnalogLinear,
    CrossbarConfig,
    analog_layers,
    conversion_report,
    convert_to_analog,
    register_converter,
    to_digital,
)
from rramsim.models import convert as convert_mod
from tables import synthetic_table

CFG = CrossbarConfig(tile_rows=16, tile_cols=8)


@pytest.fixture(scope="module")
def table():
    return synthetic_table(n_levels=16, seed=1)


class Mixed(nn.Module):
    """A bit of everything: convertible layers and weight-bearing modules that stay digital."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(10, 8)
        self.conv1 = nn.Conv1d(8, 8, 3, padding=1)
        self.dw = nn.Conv2d(4, 4, 3, groups=4, padding="same", padding_mode="reflect")
        self.vol = nn.Conv3d(1, 2, 1)
        self.pair = nn.Bilinear(8, 8, 2)
        self.up = nn.ConvTranspose2d(2, 2, 2)
        self.head = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))

    def forward(self, tokens):
        h = self.embed(tokens)  # [B, T, 8]
        h = self.conv1(h.transpose(1, 2)).transpose(1, 2)
        h = h + self.dw(h.reshape(h.shape[0], 4, -1, 2)).reshape(h.shape)
        return self.head(h)


def test_mixed_model_converts_what_it_can_and_reports_the_rest(table):
    model = Mixed()
    with pytest.warns(UserWarning, match="stay digital"):
        a = convert_to_analog(model, table, CFG)
    assert isinstance(a.conv1, AnalogConv1d) and isinstance(a.dw, AnalogConv2d)
    assert isinstance(a.head[0], AnalogLinear) and isinstance(a.head[2], AnalogLinear)
    rep = conversion_report(a)
    analog = {r.name for r in rep.analog}
    digital = {r.name: r.note for r in rep.digital}
    assert analog == {"conv1", "dw", "head.0", "head.2"}
    assert set(digital) == {"embed", "vol", "pair", "up"}
    assert "lookup" in digital["embed"] and "register_converter" in digital["vol"]
    assert rep.analog_params == sum(p.numel() for n in ("conv1", "dw", "head") for p in getattr(a, n).parameters())
    text = str(rep)
    assert "DIGITAL" in text and "head.2" in text and "weights on crossbars" in text
    tokens = torch.randint(0, 10, (2, 8))
    with torch.no_grad():
        assert a(tokens).shape == model(tokens).shape


def test_strict_names_every_digital_module_and_exclude_leaves_modules_digital(table):
    with pytest.raises(ValueError, match=r"(?s)'embed' \(Embedding\).*'vol' \(Conv3d\).*'pair' \(Bilinear\).*'up'"):
        convert_to_analog(Mixed(), table, CFG, strict=True)
    a = convert_to_analog(Mixed(), table, CFG, strict=True, exclude=("embed", "vol", "pair", "up", "head.*"))
    assert isinstance(a.head[0], nn.Linear) and not isinstance(a.head[0], AnalogLinear)
    assert isinstance(a.conv1, AnalogConv1d)
    notes = {r.name: r.note for r in conversion_report(a).digital}
    assert notes["head.0"] == "excluded by 'head.*'" and notes["embed"] == "excluded by 'embed'"
    with pytest.raises(ValueError, match="match no module"):
        convert_to_analog(Mixed(), table, CFG, exclude=("heads.*",))


def test_nothing_convertible_is_an_error(table):
    with pytest.raises(ValueError, match=r"(?s)nothing.*'0' \(Embedding\)"):
        convert_to_analog(nn.Sequential(nn.Embedding(4, 3), nn.ReLU()), table, CFG)
    with pytest.raises(ValueError, match="no weight layers"):
        convert_to_analog(nn.Sequential(nn.ReLU()), table, CFG)
    with pytest.raises(ValueError, match="excluded"):
        convert_to_analog(nn.Sequential(nn.Linear(3, 2)), table, CFG, exclude=("0",))


def test_conversion_is_atomic_and_errors_name_the_module(table):
    model = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.Conv2d(2, 2, 3), nn.Linear(4, 2)))
    before = [id(m) for m in model.modules()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model[1][1].weight[0, 0] = float("nan")  # fails when programming, after the swap
    with pytest.raises(ValueError, match=r"'1\.1' \(AnalogLinear\).*NaN"):
        convert_to_analog(model, table, CFG, inplace=True)
    assert [id(m) for m in model.modules()] == before
    assert not any(isinstance(m, AnalogLinear) for m in model.modules())
    assert not hasattr(model, "program")
    uneven = synthetic_table(n_levels=8, seed=3)
    uneven.targets = np.geomspace(5e-6, 150e-6, 8)
    uneven.g_final = uneven.targets[:, None] * np.ones((1, uneven.g_final.shape[1]))
    uneven.iv_current = uneven.targets[:, None] * uneven.iv_v[None, :]
    uneven.validate()
    model[1][1].weight.data[0, 0] = 0.0
    with pytest.raises(ValueError, match=r"cannot convert '0' \(Linear\).*evenly spaced"):
        convert_to_analog(model, uneven, CrossbarConfig(mapping="bit_sliced"), inplace=True)
    assert [id(m) for m in model.modules()] == before
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items() if k != "1.1.weight")


def test_shared_modules_and_tied_weights_stay_shared(table):
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(6, 4)
            self.out = nn.Linear(4, 6, bias=False)
            self.out.weight = self.embed.weight  # weight tying
            self.block = nn.Linear(4, 4)
            self.again = self.block  # one module under two names

        def forward(self, t):
            return self.out(self.again(self.block(self.embed(t))))

    with pytest.warns(UserWarning, match="embed"):
        a = convert_to_analog(Tied(), table, CFG)
    assert a.block is a.again and isinstance(a.block, AnalogLinear)
    assert a.out.weight is a.embed.weight
    assert len(analog_layers(a)) == 2
    assert "also as 'again'" in [r for r in conversion_report(a).analog if r.name == "block"][0].note
    d = to_digital(a)
    assert d.block is d.again and d.out.weight is d.embed.weight and type(d.out) is nn.Linear


def test_to_digital_gives_plain_torch_with_the_float_weights(table):
    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, groups=3, padding="same", padding_mode="circular"),
        nn.ReLU(),
        nn.Conv2d(6, 4, 3, stride=2),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 5),
    )
    a = convert_to_analog(model, table, CFG, seed=2)
    d = to_digital(a)
    assert [type(m) for m in d.modules()] == [type(m) for m in model.modules()]
    assert d[0].padding_mode == "circular" and d[0].groups == 3 and d[0].padding == "same"
    assert not hasattr(d, "program")
    fresh = nn.Sequential(
        nn.Conv2d(3, 6, 3, groups=3, padding="same", padding_mode="circular"),
        nn.ReLU(),
        nn.Conv2d(6, 4, 3, stride=2),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 5),
    )
    fresh.load_state_dict(d.state_dict())  # strict: no analog extra state left
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(fresh(x), model(x))
    assert isinstance(a[0], AnalogConv2d)  # the analog model is untouched


def test_register_converter_for_a_new_type(table):
    class Gain(nn.Module):
        """y = x W^T: a weight matrix in a module torch does not know as a layer."""

        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.randn(3, 5))

        def forward(self, x):
            return x @ self.weight.T

    model = nn.Sequential(Gain())
    with pytest.raises(ValueError, match="(?s)nothing.*Gain"):
        convert_to_analog(model, table, CFG)

    def factory(module, table, config, name):
        lin = nn.Linear(5, 3, bias=False)
        lin.weight = module.weight
        return AnalogLinear.from_linear(lin, table, config, program=False)

    saved = convert_mod.registered_converters()
    try:
        register_converter(Gain, factory)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            a = convert_to_analog(model, table, CFG)
        assert isinstance(a[0], AnalogLinear) and a[0].is_programmed
    finally:
        convert_mod._CONVERTERS[:] = saved
    with pytest.raises(TypeError, match="nn.Module subclass"):
        register_converter(int, factory)


def test_subclass_with_its_own_forward_is_not_converted_silently(table):
    class Clipped(nn.Linear):
        def forward(self, x):
            return super().forward(x).clamp(-1, 1)

    class Plain(nn.Linear):
        pass

    with pytest.warns(UserWarning, match="Clipped"):
        a = convert_to_analog(nn.Sequential(Clipped(3, 3), Plain(3, 2)), table, CFG)
    assert type(a[0]) is Clipped and isinstance(a[1], AnalogLinear)


def test_attention_without_a_converter_stays_digital_as_a_whole(table):
    """nn.MultiheadAttention reads out_proj.weight itself: converting out_proj alone would
    leave the layer digital while reporting it analog. Without a converter for it, the
    whole module stays digital and is reported."""
    saved = convert_mod.registered_converters()
    try:
        convert_mod._CONVERTERS[:] = [(t, f) for t, f in saved if t is not nn.MultiheadAttention]
        model = nn.ModuleDict({"attn": nn.MultiheadAttention(8, 2, batch_first=True), "fc": nn.Linear(8, 2)})
        with pytest.warns(UserWarning, match="in_proj_weight"):
            a = convert_to_analog(model, table, CFG)
        assert not isinstance(a["attn"].out_proj, AnalogLinear)
        assert [r.name for r in conversion_report(a).digital] == ["attn"]
    finally:
        convert_mod._CONVERTERS[:] = saved


def test_conversion_keeps_each_modules_mode():
    """An eval-mode model converts to eval-mode analog layers (train-mode layers would draw
    a fresh programming on every forward with gradients on)."""
    from rramsim.devices import load_default_table
    from rramsim.models import convert_to_analog

    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3)).eval()
    analog = convert_to_analog(model, load_default_table())
    assert not any(m.training for m in analog.modules())
    assert all(m.training for m in convert_to_analog(model.train(), load_default_table()).modules())


def test_strict_accepts_elementwise_parameters_and_refuses_weight_matrices(table):
    """The shipped ViT adds a learned position embedding [1, tokens, dim] to its patch
    embeddings: elementwise digital work, not a weight matrix, so strict conversion
    accepts the model and the report counts it apart from the weights."""
    from rramsim.models.networks import VisionTransformer

    torch.manual_seed(0)
    vit = VisionTransformer(dim=16, depth=1, heads=2, mlp_dim=32).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is said to stay digital
        a = convert_to_analog(vit, table, CFG, strict=True)
    rep = conversion_report(a)
    assert rep.digital == [] and rep.digital_params == 0
    (pos,) = rep.elementwise
    assert pos.name == "<model>" and pos.params == vit.pos.numel() and "pos [1, 16, 16]" in pos.note
    norms = sum(p.numel() for m in vit.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters())
    assert rep.elementwise_params == norms
    assert rep.to_dict()["elementwise_params"] == norms + vit.pos.numel()
    assert "not weight matrices" in str(rep) and "DIGITAL" not in str(rep)
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        assert a(x).shape == (2, 10)

    class Scaled(nn.Module):
        """A [1, 4] gain (elementwise), and optionally a [3, 4] matrix multiplied in the forward."""

        def __init__(self, mix: bool):
            super().__init__()
            self.gain = nn.Parameter(torch.ones(1, 4))
            self.mix = nn.Parameter(torch.randn(3, 4)) if mix else None
            self.fc = nn.Linear(4 if self.mix is None else 3, 2)

        def forward(self, x):
            x = x * self.gain
            return self.fc(x if self.mix is None else x @ self.mix.T)

    with pytest.raises(ValueError, match=r"(?s)strict.*'<model>' \(Scaled\)"):
        convert_to_analog(Scaled(mix=True), table, CFG, strict=True)
    ok = convert_to_analog(Scaled(mix=False), table, CFG, strict=True)
    assert [r.name for r in conversion_report(ok).elementwise] == ["<model>"]
    assert conversion_report(ok).digital == []


def test_conversion_inside_inference_mode(table):
    """Converting inside torch.inference_mode() gives ordinary tensors: the model runs there
    and afterwards, reprograms when its weights change, and trains with gradients; a model
    whose own parameters are inference tensors is converted as a copy, never in place."""
    torch.manual_seed(5)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 4))
    x = torch.rand(2, 1, 6, 6)
    quiet = CFG.replace(read_noise="off")  # outputs comparable call by call
    reference = convert_to_analog(model, table, quiet, seed=3)
    with torch.inference_mode():
        a = convert_to_analog(model, table, quiet, seed=3)
        y_inside = a(x)
    assert not any(p.is_inference() for p in a.parameters())
    with torch.no_grad():
        assert torch.equal(a(x), reference(x)) and y_inside.shape == (2, 4)
        a[3].weight.mul_(-1)  # reprograms on the next forward
        assert not torch.allclose(a(x), reference(x))
    a.train()
    a(x).square().sum().backward()
    assert a[0].weight.grad is not None and a[3].weight.grad.abs().sum() > 0
    with torch.inference_mode():
        frozen = nn.Sequential(nn.Linear(4, 3))  # parameters are inference tensors
        with pytest.raises(ValueError, match="inference tensors.*inplace=False"):
            convert_to_analog(frozen, table, CFG, inplace=True)
        copy_ = convert_to_analog(frozen, table, CFG)
        assert copy_(torch.rand(2, 4)).shape == (2, 3)
    assert not copy_[0].weight.is_inference()
