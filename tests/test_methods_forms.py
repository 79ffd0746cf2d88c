"""FORMS: fragment projection, ADMM polarization, sign-per-fragment mapping, costs."""

from __future__ import annotations


import pytest
import torch
from torch import nn

from rramsim.devices import load_default_table
from rramsim.models.config import CrossbarConfig
from rramsim.models.cost import CostModel
from rramsim.models.data import ensure_dataset, get_dataset
from rramsim.models.methods.forms import (
    COST_CROSSBAR,
    FragmentCost,
    PolarizedLinear,
    PolarizedMapping,
    admm_polarize,
    finetune_masked,
    forms_cost,
    is_polarized,
    project_fragments,
    to_polarized_analog,
)
from rramsim.models.networks import LeNet5


@pytest.mark.parametrize("k", [4, 8, 16])
def test_projection_is_the_nearest_single_sign_point(k):
    g = torch.Generator().manual_seed(k)
    w = torch.randn(3, 2 * k + 3, generator=g)  # a ragged last fragment
    p = project_fragments(w, k)
    assert is_polarized(p, k) and not is_polarized(w, k)
    assert torch.equal(project_fragments(p, k), p)  # idempotent
    # brute force on the first fragment of the first column: every sign pattern's best point
    v = w[0, :k]
    best = min(float(((v - torch.where(v * s > 0, v, torch.zeros_like(v))) ** 2).sum()) for s in (1, -1))
    assert float(((v - p[0, :k]) ** 2).sum()) == pytest.approx(best)


def test_polarized_layer_matches_float_and_refuses_mixed_signs():
    table = load_default_table()
    torch.manual_seed(0)
    lin = nn.Linear(40, 12)
    with torch.no_grad():
        lin.weight.copy_(project_fragments(lin.weight, 8))
    ideal = CrossbarConfig(dac_bits=None, adc_bits=None, read_noise="off")
    model = to_polarized_analog(nn.Sequential(lin), table, 8, ideal)
    x = torch.randn(16, 40)
    with torch.no_grad():
        rel = (model(x) - lin(x)).norm() / lin(x).norm()
    assert rel < 0.1  # only the table's level spacing
    assert isinstance(model[0], PolarizedLinear) and model[0].config.tile_rows == 8
    with pytest.raises(ValueError, match="not polarized"):
        to_polarized_analog(nn.Sequential(nn.Linear(40, 12)), table, 8, ideal)


def test_admm_then_masked_finetune_polarizes_lenet_and_keeps_learning(one_thread):
    ensure_dataset("mnist")
    x, y = get_dataset("mnist", "train", subset=1500, seed=0).tensors
    xt, yt = get_dataset("mnist", "test", subset=300, seed=0).tensors
    torch.manual_seed(0)
    model = LeNet5()
    st = admm_polarize(model, x, y, 8, epochs=1, lr=3e-3, seed=0)
    assert st["rho"] > 5e-3
    finetune_masked(model, x, y, 8, epochs=1, lr=3e-3, seed=0)
    assert all(is_polarized(m.weight.detach(), 8) for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d)))
    model.eval()
    with torch.no_grad():
        acc = float((model(xt).argmax(1) == yt).double().mean())
    assert acc > 0.5
    base = forms_cost(model, xt[:20], None)
    pol = forms_cost(model, xt[:20], 8)
    assert (base["crossbars"], pol["crossbars"]) == (14, 9)
    assert base["cells"] == 2 * pol["cells"]
    assert 0 < pol["skipped_fraction"] < 1 and pol["fragment_cycles"] < pol["cycles"] * 100
    assert pol["energy"] < base["energy"]


@pytest.mark.parametrize("k", [0, -4, 2.5, True])
def test_bad_fragment_size_is_a_clear_error(k):
    with pytest.raises(ValueError, match="fragment size"):
        project_fragments(torch.zeros(2, 8), k)


def test_fragment_cost_is_the_cost_model_counting_per_fragment():
    """FORMS' cost is rramsim's CostModel with its own counting: the fragments' 4-bit ADC
    and the baseline's 8-bit one priced by the config, the crossbars 128 x 128."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 130)).eval()
    with torch.no_grad():
        model[0].weight.copy_(project_fragments(model[0].weight, 8))
    x = torch.rand(5, 256)
    base, pol = forms_cost(model, x, None), forms_cost(model, x, 8)
    assert (base["crossbars"], pol["crossbars"]) == (2 * 3, 2 * 2)  # 260 vs 130 columns of 128
    assert base["adc_conversions"] == 8 * 2 * 130  # every bit, two 128-row columns
    assert base["dac_conversions"] == 8 * 256 * 3
    cost = CostModel(COST_CROSSBAR).price(
        adc_conversions=base["adc_conversions"], dac_conversions=base["dac_conversions"]
    )
    assert (base["adc_energy"], base["dac_energy"], base["energy"]) == (cost.adc_energy, cost.dac_energy, cost.energy)
    fragments = FragmentCost(COST_CROSSBAR.replace(adc_bits=4, mapping=PolarizedMapping), 8)
    assert isinstance(fragments, CostModel) and fragments.network(model, x) == pol
    assert pol["adc_energy"] == pytest.approx(pol["adc_conversions"] * 1.67e-12 / 16)
    assert pol["cycles"] <= 8 and pol["adc_conversions"] <= 8 * 32 * 130
    with pytest.raises(ValueError, match="must divide the crossbar's tile_rows=128"):
        forms_cost(model, x, 12)
    with pytest.raises(ValueError, match="bit_serial=True"):
        forms_cost(model, x, 8, CrossbarConfig())


def test_polarized_layers_name_their_mapping_in_the_config(tmp_path):
    """The config says mapping='polarized' (CrossbarConfig takes the class): a saved model
    loads with it, and a polarized layer refuses another mapping."""
    table = load_default_table()
    torch.manual_seed(1)
    lin = nn.Linear(16, 4)
    with torch.no_grad():
        lin.weight.copy_(project_fragments(lin.weight, 8))
    model = to_polarized_analog(nn.Sequential(lin), table, 8, CrossbarConfig(read_noise="off"))
    assert model[0].config.mapping == "polarized" and isinstance(model[0].mapping, PolarizedMapping)
    x = torch.randn(3, 16)
    with torch.no_grad():
        y = model(x)
    torch.save(model, tmp_path / "m.pt")
    again = torch.load(tmp_path / "m.pt", weights_only=False)
    with torch.no_grad():
        assert torch.equal(again(x), y)  # same config, same seed, same cells
    with pytest.raises(ValueError, match="needs mapping=PolarizedMapping, got mapping='differential'"):
        PolarizedLinear.from_linear(lin, table, CrossbarConfig(tile_rows=8))


def _polarized_lin(seed: int = 2) -> nn.Linear:
    torch.manual_seed(seed)
    lin = nn.Linear(16, 4)
    with torch.no_grad():
        lin.weight.copy_(project_fragments(lin.weight, 8))
    return lin


def test_plain_analog_layers_refuse_the_polarized_mapping():
    """The cells hold |w|: only the polarized layers apply the signs. A plain layer (by a
    config naming the mapping, a polarized layer's config reused, its state dict loaded)
    or a bare engine refuses it instead of computing with |w|."""
    from rramsim.models.convert import convert_to_analog
    from rramsim.models.layers import AnalogConv2d, AnalogLinear
    from rramsim.models.tile import TileEngine

    table = load_default_table()
    lin = _polarized_lin()
    cfg = CrossbarConfig(mapping=PolarizedMapping, read_noise="off")
    with pytest.raises(ValueError, match="compute with \\|w\\|.*to_polarized_analog"):
        convert_to_analog(nn.Sequential(lin), table, cfg)
    with pytest.raises(ValueError, match="to_polarized_analog"):
        AnalogConv2d.from_conv(nn.Conv2d(2, 3, 2), table, cfg)
    forms = to_polarized_analog(nn.Sequential(lin), table, 8, CrossbarConfig(read_noise="off"))
    with pytest.raises(ValueError, match="to_polarized_analog"):
        AnalogLinear.from_linear(lin, table, forms[0].config)
    plain = convert_to_analog(nn.Sequential(lin), table, CrossbarConfig(tile_rows=8, read_noise="off"))
    with pytest.raises(ValueError, match="to_polarized_analog"):
        plain.load_state_dict(forms.state_dict())
    with pytest.raises(ValueError, match="to_polarized_analog"):
        TileEngine(table, forms[0].config, 4, 16)


def test_polarized_layers_saved_with_the_offset_name_still_load():
    """Older rramsim stored polarized layers with mapping='offset' (state dicts and
    pickles): they load as the polarized mapping, with a warning, and compute the same."""
    table = load_default_table()
    lin = _polarized_lin()
    model = to_polarized_analog(nn.Sequential(lin), table, 8, CrossbarConfig(read_noise="off"))
    x = torch.randn(3, 16)
    with torch.no_grad():
        y = model(x)
    old = model.state_dict()
    old["0._extra_state"] = dict(old["0._extra_state"], config={**old["0._extra_state"]["config"], "mapping": "offset"})
    again = to_polarized_analog(nn.Sequential(_polarized_lin(5)), table, 8, CrossbarConfig(read_noise="off"))
    with pytest.warns(UserWarning, match="mapping='offset', as older rramsim versions saved polarized layers"):
        again.load_state_dict(old)
    assert again[0].config.mapping == "polarized" and isinstance(again[0].mapping, PolarizedMapping)
    with torch.no_grad():
        assert torch.equal(again(x), y)
    pickled = model[0].__getstate__()  # what torch.save(model) pickles
    pickled["_rramsim_hardware"]["config"]["mapping"] = "offset"
    layer = PolarizedLinear.__new__(PolarizedLinear)
    with pytest.warns(UserWarning, match="read as mapping='polarized'"):
        layer.__setstate__(pickled)
    with torch.no_grad():
        assert layer.config.mapping == "polarized" and torch.equal(layer(x), y[:, :])


def test_fragment_cost_refuses_mappings_it_cannot_count_and_keeps_its_prices():
    """One ADC conversion per output and row group holds for differential pairs and
    polarized cells only; the shared crossbars are read-only and a cost model keeps its
    own copy of the config."""
    import dataclasses

    for other in (dict(mapping="bit_sliced", cells_per_weight=2, bits_per_cell=1), dict(mapping="offset")):
        with pytest.raises(ValueError, match=f"got mapping='{other['mapping']}'"):
            FragmentCost(COST_CROSSBAR.replace(**other), 8)
    with pytest.raises(dataclasses.FrozenInstanceError, match="read-only"):
        COST_CROSSBAR.adc_energy = 1.0
    assert COST_CROSSBAR == CrossbarConfig(bit_serial=True, dac_bits=8, adc_bits=8)
    mine = COST_CROSSBAR.replace(adc_bits=4, mapping=PolarizedMapping)
    fragments = FragmentCost(mine, 8)
    before = fragments.price(adc_conversions=10).adc_energy
    mine.adc_energy *= 2  # the caller's copy, changed later
    assert fragments.price(adc_conversions=10).adc_energy == before
