"""Attention, transformer layers, LSTM and GRU on crossbars (real default table, real torch).

Small random models: each test takes well under a second or two.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from rramsim.devices import load_default_table
from rramsim.models import CrossbarConfig
from rramsim.models.attention import (
    AnalogMultiheadAttention,
    AnalogTransformerDecoderLayer,
    AnalogTransformerEncoder,
    AnalogTransformerEncoderLayer,
    _float_linear,
)
from rramsim.models.layers import AnalogLinear
from rramsim.models.recurrent import AnalogGRU, AnalogLSTM

HARSH = CrossbarConfig(dac_bits=2, adc_bits=2)


@pytest.fixture(scope="module")
def table():
    return load_default_table()


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def ideal_config() -> CrossbarConfig:
    """Ideal periphery, no read noise, Ohmic cells without IR drop, every cell exactly on its
    level's target conductance, weights bit-sliced at 3 bits per cell (all 8 levels of the
    default table, 4 slices)."""
    if "ideal_programming" not in {f.name for f in dataclasses.fields(CrossbarConfig)}:
        pytest.skip("CrossbarConfig has no ideal_programming field")
    return CrossbarConfig.ohmic(
        mapping="bit_sliced", bits_per_cell=3, dac_bits=None, adc_bits=None, read_noise="off", ideal_programming=True
    )


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def digital_glue(module: nn.Module) -> nn.Module:
    """The same module with every crossbar layer swapped for its float nn.Linear: what is left
    is the digital arithmetic around the crossbars, which must be torch's exactly."""
    for sub in list(module.modules()):
        for name, child in list(sub.named_children()):
            if isinstance(child, AnalogLinear):
                setattr(sub, name, _float_linear(child))
    return module


def crossbar_layers(module: nn.Module) -> list[AnalogLinear]:
    return [m for m in module.modules() if isinstance(m, AnalogLinear)]


# --------------------------------------------------------------------------- builders


def make_mha(batch_first=True, **kw):
    torch.manual_seed(0)
    return nn.MultiheadAttention(16, 4, batch_first=batch_first, **kw).eval()


def make_encoder_layer(norm_first=False):
    torch.manual_seed(0)
    return nn.TransformerEncoderLayer(16, 4, 32, dropout=0.1, batch_first=True, norm_first=norm_first).eval()


def run_all(kind: str, module: nn.Module, x: torch.Tensor):
    if kind == "mha":
        return module(x, x, x)[0]
    out = module(x)
    return out[0] if isinstance(out, tuple) else out


CASES = {
    "mha": (lambda: make_mha(), AnalogMultiheadAttention, lambda: torch.randn(3, 5, 16)),
    "encoder_layer": (lambda: make_encoder_layer(), AnalogTransformerEncoderLayer, lambda: torch.randn(3, 5, 16)),
    "lstm": (
        lambda: nn.LSTM(6, 8, num_layers=2, bidirectional=True, batch_first=True).eval(),
        AnalogLSTM,
        lambda: torch.randn(3, 5, 6),
    ),
    "gru": (
        lambda: nn.GRU(6, 8, num_layers=2, bidirectional=True, batch_first=True).eval(),
        AnalogGRU,
        lambda: torch.randn(3, 5, 6),
    ),
}


# --------------------------------------------------------------------------- the digital glue is torch's


@pytest.mark.parametrize(
    "batch_first,kvdim,bias_kv,zero_attn,bias",
    [
        (True, False, False, False, True),
        (False, True, True, True, False),
        (True, True, False, True, True),
        (False, False, True, False, True),
    ],
)
def test_attention_arithmetic_is_torchs(table, batch_first, kvdim, bias_kv, zero_attn, bias):
    torch.manual_seed(1)
    kw = dict(kdim=12, vdim=10) if kvdim else {}
    mha = make_mha(batch_first, add_bias_kv=bias_kv, add_zero_attn=zero_attn, bias=bias, **kw)
    glue = digital_glue(AnalogMultiheadAttention(mha, table, program=False)).eval()
    B, L, S = 3, 5, 7

    def seq(n, d):
        return torch.randn(B, n, d) if batch_first else torch.randn(n, B, d)

    q, k, v = seq(L, 16), seq(S, 12 if kvdim else 16), seq(S, 10 if kvdim else 16)
    kpm = torch.zeros(B, S, dtype=torch.bool)
    kpm[0, -2:] = True
    for kwargs in (
        {},
        {"key_padding_mask": kpm},
        {"attn_mask": torch.randn(L, S)},
        {"attn_mask": torch.randn(B * 4, L, S), "key_padding_mask": kpm.float() * -1e9},
        {"attn_mask": torch.randn(L, S) > 1, "average_attn_weights": False},
        {"need_weights": False},
        {"need_weights": False, "key_padding_mask": kpm},
        {"need_weights": False, "attn_mask": torch.randn(B * 4, L, S)},
        {"need_weights": False, "attn_mask": torch.randn(L, S) > 1, "key_padding_mask": kpm},
    ):
        o1, w1 = mha(q, k, v, **kwargs)
        o2, w2 = glue(q, k, v, **kwargs)
        torch.testing.assert_close(o2, o1, atol=1e-5, rtol=1e-5)
        assert (w1 is None) == (w2 is None)
        if w1 is not None:
            torch.testing.assert_close(w2, w1, atol=1e-6, rtol=1e-5)
    one = (lambda t: t[0]) if batch_first else (lambda t: t[:, 0])  # unbatched
    torch.testing.assert_close(glue(one(q), one(k), one(v))[0], mha(one(q), one(k), one(v))[0], atol=1e-5, rtol=1e-5)
    back = AnalogMultiheadAttention(mha, table, program=False).eval().to_digital()
    torch.testing.assert_close(back(q, k, v)[0], mha(q, k, v)[0])


@pytest.mark.parametrize("norm_first,batch_first", list(itertools.product([False, True], [False, True])))
def test_transformer_arithmetic_is_torchs(table, norm_first, batch_first):
    torch.manual_seed(2)
    enc = nn.TransformerEncoderLayer(
        16, 4, 32, batch_first=batch_first, norm_first=norm_first, activation="gelu"
    ).eval()
    dec = nn.TransformerDecoderLayer(16, 4, 32, batch_first=batch_first, norm_first=norm_first).eval()
    x = torch.randn(3, 5, 16)
    mem = torch.randn(3, 6, 16) if batch_first else torch.randn(6, 5, 16)
    causal = nn.Transformer.generate_square_subsequent_mask(x.shape[1] if batch_first else x.shape[0])
    g_enc = digital_glue(AnalogTransformerEncoderLayer(enc, table, program=False)).eval()
    g_dec = digital_glue(AnalogTransformerDecoderLayer(dec, table, program=False)).eval()
    torch.testing.assert_close(
        g_enc(x, src_mask=causal, is_causal=True), enc(x, src_mask=causal, is_causal=True), atol=1e-5, rtol=1e-5
    )
    torch.testing.assert_close(g_dec(x, mem, tgt_mask=causal), dec(x, mem, tgt_mask=causal), atol=1e-5, rtol=1e-5)
    stack = nn.TransformerEncoder(enc, 2, norm=nn.LayerNorm(16), enable_nested_tensor=False).eval()
    g_stack = digital_glue(AnalogTransformerEncoder(stack, table, program=False)).eval()
    kpm = torch.zeros(
        x.shape[0] if batch_first else x.shape[1], x.shape[1] if batch_first else x.shape[0], dtype=torch.bool
    )
    kpm[0, -1] = True
    torch.testing.assert_close(
        g_stack(x, src_key_padding_mask=kpm), stack(x, src_key_padding_mask=kpm), atol=1e-5, rtol=1e-5
    )


@pytest.mark.parametrize("cls,acls", [(nn.LSTM, AnalogLSTM), (nn.GRU, AnalogGRU)])
@pytest.mark.parametrize("layers,bidirectional,batch_first", [(2, True, True), (1, False, False), (2, False, True)])
def test_recurrent_arithmetic_is_torchs(table, cls, acls, layers, bidirectional, batch_first):
    torch.manual_seed(3)
    rnn = cls(5, 7, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first).eval()
    glue = digital_glue(acls(rnn, table, program=False)).eval()
    D = 2 if bidirectional else 1
    x = torch.randn(3, 6, 5)
    h0 = torch.randn(layers * D, 3 if batch_first else 6, 7)
    hx = (h0, torch.randn_like(h0)) if cls is nn.LSTM else h0
    for args in ((x,), (x, hx)):
        (o1, s1), (o2, s2) = rnn(*args), glue(*args)
        torch.testing.assert_close(o2, o1, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(s2, s1, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(glue(x[0])[0], rnn(x[0])[0], atol=1e-5, rtol=1e-5)  # unbatched
    lens = torch.tensor([3, 6, 1, 4])  # packed, unsorted
    xs = torch.randn(4, 6, 5) if batch_first else torch.randn(6, 4, 5)
    packed = pack_padded_sequence(xs, lens, batch_first=batch_first, enforce_sorted=False)
    (o1, s1), (o2, s2) = rnn(packed), glue(packed)
    assert torch.equal(o1.batch_sizes, o2.batch_sizes) and torch.equal(o1.sorted_indices, o2.sorted_indices)
    torch.testing.assert_close(o2.data, o1.data, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s2, s1, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(acls(rnn, table, program=False).eval().to_digital()(x)[0], rnn(x)[0])


# --------------------------------------------------------------------------- really on crossbars


@pytest.mark.parametrize("kind", sorted(CASES))
def test_every_weight_matrix_is_on_crossbars_and_harsh_config_changes_output(table, kind):
    make, acls, inp = CASES[kind]
    torch.manual_seed(4)
    ref = make()
    x = inp()
    analog = acls.from_module(ref, table, HARSH).eval()
    n_float = sum(p.numel() for n, p in ref.named_parameters() if "weight" in n and "norm" not in n)
    assert sum(m.weight.numel() for m in crossbar_layers(analog)) == n_float
    with torch.no_grad():
        y_f, y_a = run_all(kind, ref, x), run_all(kind, analog, x)
    assert y_a.shape == y_f.shape
    assert rel_err(y_a, y_f) > 0.05
    assert analog.digital_work() and all(v > 0 for v in analog.digital_work().values())


def test_mha_digital_work_counts_the_attention_products(table):
    analog = AnalogMultiheadAttention(make_mha(), table).eval()
    with torch.no_grad():
        analog(torch.randn(2, 5, 16), torch.randn(2, 9, 16), torch.randn(2, 9, 16))
    # 4 heads x 5 queries x 9 keys x head_dim 4
    assert analog.digital_work() == {
        "attention_scores_macs": 720,
        "softmax_elements": 180,
        "attention_values_macs": 720,
    }


@pytest.mark.parametrize("kind", sorted(CASES))
def test_ideal_crossbars_match_float(table, kind):
    make, acls, inp = CASES[kind]
    torch.manual_seed(5)
    ref = make()
    x = inp()
    analog = acls.from_module(ref, table, ideal_config()).eval()
    with torch.no_grad():
        assert rel_err(run_all(kind, analog, x), run_all(kind, ref, x)) < 1e-2


@pytest.mark.parametrize("ctx", [torch.inference_mode, torch.no_grad])
def test_transformer_in_eval_and_inference_mode_runs_on_crossbars(table, ctx):
    """torch's fused encoder fast path (eval + no_grad/inference_mode, batch_first) must not
    bypass the crossbars: the output differs from float with 2-bit DAC/ADC."""
    torch.manual_seed(6)
    stack = nn.TransformerEncoder(make_encoder_layer(), 2).eval()  # nested tensors enabled, as users have it
    analog = AnalogTransformerEncoder(stack, table, HARSH).eval()
    layer = AnalogTransformerEncoderLayer(make_encoder_layer(), table, HARSH).eval()
    x = torch.randn(4, 6, 16)
    kpm = torch.zeros(4, 6, dtype=torch.bool)
    kpm[1, -2:] = True
    with ctx():
        for kw in ({}, {"src_key_padding_mask": kpm}):
            y_f, y_a = stack(x, **kw), analog(x, **kw)
            assert not y_a.is_nested and y_a.shape == y_f.shape
            assert rel_err(y_a[~kpm], y_f[~kpm]) > 0.05
        assert rel_err(layer(x), make_encoder_layer()(x)) > 0.05


@pytest.mark.parametrize("kind", sorted(CASES))
def test_gradients_reach_every_weight_and_the_input(table, kind):
    make, acls, inp = CASES[kind]
    torch.manual_seed(7)
    analog = acls.from_module(make(), table).train()
    x = inp().requires_grad_(True)
    run_all(kind, analog, x).square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, p in analog.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert all(m.weight.grad.abs().sum() > 0 for m in crossbar_layers(analog))


@pytest.mark.parametrize("kind", sorted(CASES))
def test_state_dict_round_trip_is_bit_identical(table, kind):
    make, acls, inp = CASES[kind]
    torch.manual_seed(8)
    a = acls.from_module(make(), table, seed=3).eval()
    torch.manual_seed(9)
    b = acls.from_module(make(), table, seed=11).eval()  # other weights, other seeds
    sd = a.state_dict()
    b.load_state_dict(sd)
    sd_b = b.state_dict()
    assert sd.keys() == sd_b.keys()
    for key in sd:
        if key.endswith("_extra_state"):
            assert sd[key] == sd_b[key], key
        else:
            assert torch.equal(sd[key], sd_b[key]), key
    for m in crossbar_layers(a):  # restart a's noise streams, as the load did for b
        m.program()
    x = inp()
    with torch.no_grad():
        assert torch.equal(run_all(kind, a, x), run_all(kind, b, x))


def test_program_reseeds_every_crossbar_layer(table):
    analog = AnalogLSTM(nn.LSTM(4, 6, num_layers=2, bidirectional=True), table)
    seeds = [m.seed for m in crossbar_layers(analog)]
    assert len(crossbar_layers(analog)) == 8 and len(set(seeds)) == 8
    cost = analog.program(seed=5)
    assert cost["cells"] > 0 and cost["pulses"] > 0
    assert [m.seed for m in crossbar_layers(analog)] != seeds


def test_unsupported_and_bad_inputs_are_refused_by_name(table):
    with pytest.raises(ValueError, match="proj_size"):
        AnalogLSTM(nn.LSTM(4, 6, proj_size=3), table)
    with pytest.raises(TypeError, match="nn.GRU"):
        AnalogGRU(nn.LSTM(4, 6), table)
    lstm = AnalogLSTM(nn.LSTM(4, 6, num_layers=2), table, program=False)
    with pytest.raises(ValueError, match="input_size=4"):
        lstm(torch.randn(5, 2, 3))
    with pytest.raises(ValueError, match="h_0"):
        lstm(torch.randn(5, 2, 4), (torch.zeros(1, 2, 6), torch.zeros(1, 2, 6)))
    mha = AnalogMultiheadAttention(make_mha(), table, program=False)
    x = torch.randn(2, 5, 16)
    with pytest.raises(ValueError, match="attn_mask"):
        mha(x, x, x, attn_mask=torch.zeros(4, 4))
    with pytest.raises(ValueError, match="key_padding_mask"):
        mha(x, x, x, key_padding_mask=torch.zeros(2, 4, dtype=torch.bool))


# --------------------------------------------------------------------------- through convert_to_analog


class SequenceModel(nn.Module):
    """A user's model with every sequence module: encoder stack, decoder layer, bare
    attention, LSTM and GRU (batch first, as users write them)."""

    def __init__(self):
        super().__init__()
        layer = nn.TransformerEncoderLayer(16, 4, 32, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2)
        self.decoder = nn.TransformerDecoderLayer(16, 4, 32, batch_first=True, norm_first=True)
        self.attn = nn.MultiheadAttention(16, 2, batch_first=True, kdim=8, vdim=8)
        self.lstm = nn.LSTM(16, 8, num_layers=2, bidirectional=True, batch_first=True)
        self.gru = nn.GRU(16, 8, batch_first=True)
        self.head = nn.Linear(16 + 8, 3)

    def forward(self, x):
        z = self.encoder(x)
        z = self.decoder(z, x)
        seq, _ = self.lstm(z)
        z = z + self.attn(z, seq[..., :8], seq[..., 8:])[0]
        _, h = self.gru(z)
        return self.head(torch.cat([z.mean(1), h[-1]], dim=-1))


def test_convert_to_analog_leaves_no_sequence_weight_digital(table):
    from rramsim.models import conversion_report, convert_to_analog, to_digital

    torch.manual_seed(10)
    model = SequenceModel().eval()
    x = torch.randn(3, 5, 16)
    analog = convert_to_analog(model, table, HARSH, strict=True)
    assert not conversion_report(analog).digital
    kinds = {type(m) for m in analog.modules()}
    assert {
        AnalogTransformerEncoder,
        AnalogTransformerEncoderLayer,
        AnalogTransformerDecoderLayer,
        AnalogMultiheadAttention,
        AnalogLSTM,
        AnalogGRU,
    } <= kinds
    assert not any(
        type(m) in (nn.MultiheadAttention, nn.LSTM, nn.GRU, nn.TransformerEncoderLayer) for m in analog.modules()
    )
    mine = [
        m
        for m in analog.modules()
        if isinstance(
            m,
            (
                AnalogTransformerEncoder,
                AnalogTransformerEncoderLayer,
                AnalogTransformerDecoderLayer,
                AnalogMultiheadAttention,
                AnalogLSTM,
                AnalogGRU,
            ),
        )
    ]
    assert not any(m.training for m in mine) and not any(m.training for m in crossbar_layers(analog.encoder))
    seeds = [m.seed for m in crossbar_layers(analog)]
    assert len(set(seeds)) == len(seeds)  # one seed per crossbar
    with torch.inference_mode():
        assert rel_err(analog(x), model(x)) > 0.05
    back = to_digital(analog)
    with torch.inference_mode():
        torch.testing.assert_close(back(x), model(x))
    assert back.state_dict().keys() == model.state_dict().keys()


def test_whole_converted_sequence_model_loads_with_weights_only(table, tmp_path):
    from rramsim.models import convert_to_analog
    from rramsim.models.convert import register_safe_globals

    torch.manual_seed(11)
    analog = convert_to_analog(SequenceModel().eval(), table, seed=4)
    torch.save(analog, tmp_path / "model.pt")
    register_safe_globals(SequenceModel)
    loaded = torch.load(tmp_path / "model.pt")  # torch's default weights_only=True
    x = torch.randn(2, 5, 16)
    analog.program(seed=4)
    loaded.program(seed=4)
    with torch.no_grad():
        assert torch.equal(loaded(x), analog(x))


def test_hardware_aware_training_reaches_sequence_weights(table):
    """Float weight-noise training perturbs the attention and LSTM matrices too, and training
    through converted layers copies every trained tensor back into the float network."""
    from rramsim.models import convert_to_analog
    from rramsim.models.training import _weight_matrices, copy_trained_weights

    torch.manual_seed(12)
    model = SequenceModel()
    names = {id(p): n for n, p in model.named_parameters()}
    got = {names[id(p)] for p in _weight_matrices(model)}
    assert {
        "encoder.layers.0.self_attn.in_proj_weight",
        "attn.q_proj_weight",
        "lstm.weight_hh_l1_reverse",
        "gru.weight_ih_l0",
        "decoder.multihead_attn.in_proj_weight",
        "head.weight",
    } <= got
    assert not any("norm" in n or "bias" in n for n in got)
    analog = convert_to_analog(model, table)
    with torch.no_grad():  # stand-in for a training step on the analog copy
        for p in analog.parameters():
            p.add_(0.5)
    copy_trained_weights(analog, model)
    with torch.no_grad():
        torch.testing.assert_close(model.lstm.weight_hh_l1_reverse, analog.lstm.hh_l1_reverse.weight)
        torch.testing.assert_close(
            model.encoder.layers[1].self_attn.in_proj_weight[:16], analog.encoder.layers[1].self_attn.q_proj.weight
        )
        torch.testing.assert_close(model.encoder.layers[0].norm1.weight, analog.encoder.layers[0].norm1.weight)


class _Reader(nn.Module):
    """A recurrence and a head: a sequence classifier as users write it."""

    def __init__(self, cell: type):
        super().__init__()
        torch.manual_seed(14)
        self.rnn = cell(4, 5, num_layers=2, bidirectional=True, batch_first=True)
        self.head = nn.Linear(10, 3)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def test_compiled_recurrence_compiles_once_and_draws_fresh_noise(table):
    """Under torch.compile the recurrence runs eagerly (its per-step loop is never traced):
    new sequence lengths compile nothing again, a new batch size at most once more (a
    third compilation of any frame is an error here), every call equals the eager model's call (same noise stream)
    and two calls of one input draw different read noise."""
    import torch._dynamo

    from rramsim.models import convert_to_analog

    net = _Reader(nn.LSTM).eval()  # the GRU shares the recurrence's forward
    eager = convert_to_analog(net, table, seed=2)
    compiled = torch.compile(convert_to_analog(net, table, seed=2), backend="aot_eager", dynamic=True)
    torch._dynamo.reset()
    try:
        with torch._dynamo.config.patch(recompile_limit=2, fail_on_recompile_limit_hit=True), torch.no_grad():
            for batch, steps in ((3, 5), (2, 7), (4, 3)):
                x = torch.randn(batch, steps, 4)
                torch.testing.assert_close(compiled(x), eager(x), rtol=1e-5, atol=1e-6)
            x = torch.randn(3, 5, 4)
            first, second = compiled(x), compiled(x)
            torch.testing.assert_close((first, second), (eager(x), eager(x)), rtol=1e-5, atol=1e-6)
    finally:
        torch._dynamo.reset()
    assert rel_err(first, second) > 1e-3  # fresh read noise on every call


# --------------------------------------------------------------------------- shipped networks

CHECKPOINTS = Path(__file__).resolve().parent.parent / "models" / "checkpoints"


@pytest.mark.parametrize("ckpt", ["vit_mnist.pt", "lstm_mnist.pt", "dscnn_fashion.pt"])
def test_shipped_network_runs_on_crossbars_near_its_float_accuracy(table, ckpt):
    """The shipped checkpoint converts with every weight matrix on crossbars and keeps its
    accuracy on 300 test images, within what the full test sets measured on Ohmic cells
    without IR drop (examples/reports/networks.md; the realistic default's wires and I-V cost
    more, measured there too)."""
    from rramsim.models import conversion_report, convert_to_analog, data
    from rramsim.models.training import evaluate, load_checkpoint

    model, meta = load_checkpoint(CHECKPOINTS / ckpt)
    assert meta["accuracy"] >= (0.97 if meta["dataset"] == "mnist" else 0.90)
    data.ensure_dataset(meta["dataset"])
    loader = data.get_loader(meta["dataset"], "test", batch_size=300, subset=300, seed=0)
    analog = convert_to_analog(model, table, CrossbarConfig.ohmic(), strict=True)  # every weight matrix on crossbars
    assert conversion_report(analog).digital == []
    float_acc, analog_acc = evaluate(model, loader), evaluate(analog, loader)
    # measured on the full test sets: ViT -0.07 pp, LSTM +0.04 pp, depthwise CNN -4.65 pp
    assert analog_acc >= float_acc - (0.02 if meta["dataset"] == "mnist" else 0.08), (float_acc, analog_acc)


def test_crossbar_aware_depthwise_cnn_recovers_the_float_networks_accuracy(table):
    """The depthwise CNN fine-tuned through the crossbar layers (dscnn_fashion_hw.pt) keeps
    the float-trained network's accuracy on crossbars, where the float-trained one loses
    it (full test set: 90.01% vs 85.43%, float 90.08%; examples/reports/networks.md)."""
    from rramsim.models import convert_to_analog, data
    from rramsim.models.training import evaluate, load_checkpoint

    float_model, _ = load_checkpoint(CHECKPOINTS / "dscnn_fashion.pt")
    hw_model, meta = load_checkpoint(CHECKPOINTS / "dscnn_fashion_hw.pt")
    assert "--hw-aware" in meta["command"]
    data.ensure_dataset("fashion-mnist")
    loader = data.get_loader("fashion-mnist", "test", batch_size=300, subset=300, seed=0)
    float_acc = evaluate(float_model, loader)
    ohmic = CrossbarConfig.ohmic()  # the crossbars it was fine-tuned through
    on_crossbars = evaluate(convert_to_analog(hw_model, table, ohmic), loader)
    float_trained_on_crossbars = evaluate(convert_to_analog(float_model, table, ohmic), loader)
    assert on_crossbars >= float_acc - 0.03, (float_acc, on_crossbars)
    assert on_crossbars > float_trained_on_crossbars + 0.01, (float_trained_on_crossbars, on_crossbars)


def test_depthwise_cnn_fine_tuned_through_the_realistic_crossbars_gets_its_accuracy_back(table):
    """On the realistic default (the table's I-V, exact IR drop at 1 ohm per segment) the
    float-trained depthwise CNN loses half its accuracy; one epoch of fine-tuning through those
    crossbars (dscnn_fashion_realistic.pt) gets it back (2,000 test images, 3 programmings:
    40.5% -> 90.2%, float 90.7%; examples/reports/networks.md)."""
    from rramsim.models import convert_to_analog, data
    from rramsim.models.training import evaluate, load_checkpoint

    float_model, _ = load_checkpoint(CHECKPOINTS / "dscnn_fashion.pt")
    tuned, meta = load_checkpoint(CHECKPOINTS / "dscnn_fashion_realistic.pt")
    trained_on = meta["extra"]["crossbar_config"]
    assert (trained_on["ir_drop"], trained_on["nonlinear_iv"]) == ("exact", True)
    assert CrossbarConfig.from_dict(trained_on) == CrossbarConfig()  # the default it was tuned for
    data.ensure_dataset("fashion-mnist")
    loader = data.get_loader("fashion-mnist", "test", batch_size=300, subset=300, seed=0)
    float_acc = evaluate(float_model, loader)
    on_crossbars = evaluate(convert_to_analog(tuned, table), loader)
    float_trained_on_crossbars = evaluate(convert_to_analog(float_model, table), loader)
    assert on_crossbars >= float_acc - 0.04, (float_acc, on_crossbars)
    assert float_trained_on_crossbars < on_crossbars - 0.3, (float_trained_on_crossbars, on_crossbars)
