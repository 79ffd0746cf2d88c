"""Weight <-> conductance mappings."""

import numpy as np
import pytest
import torch

from rramsim.models import (
    BitSlicedMapping,
    CrossbarConfig,
    DifferentialMapping,
    OffsetMapping,
    WeightMapping,
    make_mapping,
)

LEVELS = np.linspace(5e-6, 150e-6, 16)


def _ideal(mapping, w):
    idx = mapping.encode(w)
    g = torch.as_tensor(mapping.levels)[idx]
    return idx, mapping.decode(g)


@pytest.mark.parametrize(
    "mapping,step",
    [
        (DifferentialMapping(LEVELS), 1 / 15),
        (OffsetMapping(LEVELS), 2 / 15),
        (BitSlicedMapping(LEVELS, cells_per_weight=3, bits_per_cell=2), 1 / 63),
    ],
)
def test_decode_of_encode_is_within_half_a_step(mapping, step):
    w = torch.linspace(-1, 1, 301, dtype=torch.float64).reshape(7, 43)
    idx, back = _ideal(mapping, w)
    assert idx.shape == (mapping.n_slices, mapping.planes, 7, 43)
    assert idx.min() >= 0 and idx.max() < LEVELS.size
    assert torch.max(torch.abs(back - w)) <= step / 2 + 1e-9


def test_differential_uses_one_cell_of_the_pair():
    m = DifferentialMapping(LEVELS)
    idx = m.encode(torch.tensor([[0.5, -0.5, 0.0]], dtype=torch.float64))
    pos, neg = idx[0, 0, 0], idx[0, 1, 0]
    assert pos[0] > 0 and neg[0] == 0
    assert pos[1] == 0 and neg[1] > 0
    assert pos[2] == 0 and neg[2] == 0


def test_offset_zero_weight_sits_mid_range():
    m = OffsetMapping(LEVELS)
    g = LEVELS[m.encode(torch.zeros(1, 1, dtype=torch.float64))[0, 0, 0, 0]]
    assert abs(g - m.offset) <= (LEVELS[1] - LEVELS[0]) / 2 + 1e-12


def test_bit_sliced_needs_enough_levels():
    with pytest.raises(ValueError, match="bits_per_cell"):
        BitSlicedMapping(np.linspace(5e-6, 150e-6, 3), cells_per_weight=2, bits_per_cell=2)


def test_make_mapping_picks_the_class():
    assert isinstance(make_mapping(CrossbarConfig(mapping="offset"), LEVELS), OffsetMapping)
    m = make_mapping(CrossbarConfig(mapping="bit_sliced", cells_per_weight=2, bits_per_cell=1), LEVELS)
    assert isinstance(m, BitSlicedMapping) and m.n_slices == 2 and m.base == 2


def test_bit_slicing_uses_an_exactly_even_ladder_of_the_default_table():
    """The default table's 8 levels (10-80 uS): 2 bits per cell take 10, 30, 50, 70 uS
    (digits exactly 0, 1, 2, 3), not the levels nearest a 10-80 uS grid (0, 0.86, 2.14, 3)."""
    from rramsim.devices import load_default_table

    levels = load_default_table().targets
    m = BitSlicedMapping(levels, cells_per_weight=4, bits_per_cell=2)
    g = levels[m.digit_levels]
    digits = (g - g[0]) / m.g_step
    assert np.allclose(digits, [0, 1, 2, 3], atol=1e-9)
    w = torch.linspace(-1, 1, 511, dtype=torch.float64).reshape(7, 73)
    back = m.decode(torch.as_tensor(levels)[m.encode(w)])
    assert torch.max(torch.abs(back - w)) <= 0.5 / 255 + 1e-12  # 8-bit weights, exact digits
    assert np.array_equal(BitSlicedMapping(levels, 2, 3).digit_levels, np.arange(8))


def test_even_ladder_prefers_the_widest_span_and_rejects_uneven_levels():
    from rramsim.models.mapping import even_ladder

    levels = np.array([1.0, 2.0, 3.0, 4.5, 5.0, 7.0]) * 1e-5
    assert list(even_ladder(levels, 4, 1e-3)) == [0, 2, 4, 5]  # 1, 3, 5, 7
    assert even_ladder(np.geomspace(1e-6, 1e-4, 8), 4, 1e-3) is None
    assert list(even_ladder(np.geomspace(1e-6, 1e-4, 8), 2, 1e-3)) == [0, 7]


def _distance_nearest(levels, g):
    """Reference: the nearest level by comparing the two distances (ties: the lower)."""
    lv = torch.as_tensor(levels, dtype=torch.float64)
    idx = torch.searchsorted(lv, g.contiguous()).clamp(1, lv.numel() - 1)
    lower = (g - lv[idx - 1]).abs() <= (lv[idx] - g).abs()
    return torch.where(lower, idx - 1, idx)


@pytest.mark.parametrize("levels", [LEVELS, np.linspace(1e-5, 8e-5, 8), np.geomspace(1e-6, 1e-4, 40)])
def test_nearest_level_cuts_decide_like_the_distances(levels):
    """The float64 decision points reproduce the two-distance comparison bit for bit,
    at the points themselves and one float64 step either side (ties included)."""
    m = DifferentialMapping(levels)
    cuts = torch.as_tensor(m._cuts, dtype=torch.float64)
    mids = torch.as_tensor((levels[1:] + levels[:-1]) / 2)
    g = torch.cat(
        [
            cuts,
            torch.nextafter(cuts, torch.tensor(np.inf)),
            torch.nextafter(cuts, torch.tensor(-np.inf)),
            mids,
            torch.as_tensor(levels),
            torch.linspace(0, 2 * levels[-1], 5001, dtype=torch.float64),
        ]
    )
    assert torch.equal(m._nearest(g), _distance_nearest(levels, g))


@pytest.mark.parametrize(
    "mapping",
    [
        DifferentialMapping(LEVELS),
        OffsetMapping(LEVELS),
        DifferentialMapping(np.linspace(1e-5, 8e-5, 8)),
        OffsetMapping(np.geomspace(1e-6, 1e-4, 40)),
        BitSlicedMapping(LEVELS, cells_per_weight=3, bits_per_cell=2),
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_row_encoding_equals_the_float64_encoding(mapping, dtype, monkeypatch):
    """encode_rows (per-row float32 thresholds, no float64 copy) gives exactly the levels
    of encode() on the float64 quotient w / scale -- also for weights on every threshold
    and one float32 step either side of it, per-row and layer-wide scales."""
    monkeypatch.setattr(WeightMapping, "THRESHOLD_MIN_WEIGHTS", 0)  # thresholds for a small matrix too
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(12, 300, generator=gen)
    scale = w.abs().amax(1).double()
    scale[3] = 1.0
    if hasattr(mapping, "_target"):
        thr = mapping._row_thresholds(mapping._target, scale, signed=isinstance(mapping, OffsetMapping))
        k = thr.shape[1]
        up, down = torch.nextafter(thr, torch.tensor(np.inf)), torch.nextafter(thr, torch.tensor(-np.inf))
        w[:, : 3 * k] = torch.cat([thr, up, down], 1)
        w[:, 3 * k : 6 * k] = -torch.cat([thr, up, down], 1)
    w = w.to(dtype)
    assert not hasattr(mapping, "_target") or mapping._by_thresholds(w)
    for s in (scale, scale.max().expand(12).clone()):
        out = torch.empty((mapping.n_slices, mapping.planes, *w.shape), dtype=torch.uint8)
        mapping.encode_rows(w, s, out)
        ref = mapping.encode(w.to(torch.float64) / s[:, None])
        assert torch.equal(out.long(), ref)


class _SlicedInInit(DifferentialMapping):
    """Two differential slices set in __init__ without saying so to columns_per_weight."""

    name = "test_sliced_in_init"

    def __init__(self, levels):
        super().__init__(levels)
        self.n_slices = 2
        self.slice_weights = np.array([2.0, 1.0]) / 3 / (self.g_max - self.g_min)

    def encode(self, w):
        return super().encode(w).expand(2, -1, -1, -1)


class _SlicedAndSaysSo(_SlicedInInit):
    name = "test_sliced_and_says_so"

    @classmethod
    def columns_per_weight(cls, config):
        return 4


def test_a_mapping_must_build_the_columns_its_class_announces():
    from rramsim.models.layers import AnalogLinear
    from tables import synthetic_table

    with pytest.raises(
        ValueError,
        match="2 slice\\(s\\) of 2 cell\\(s\\) = 4 columns per weight, but .* says 2.*"
        "must override the classmethod columns_per_weight",
    ):
        make_mapping(CrossbarConfig(mapping=_SlicedInInit), LEVELS)
    with pytest.raises(ValueError, match="must override the classmethod columns_per_weight"):
        AnalogLinear(8, 3, synthetic_table(seed=1), CrossbarConfig(mapping=_SlicedInInit))
    assert make_mapping(CrossbarConfig(mapping=_SlicedAndSaysSo), LEVELS).n_slices == 2


def test_a_mapping_name_belongs_to_one_class():
    """A factory function or type() making a second class under a taken name is refused
    (a config naming it would build the later class); the name must be a str."""
    from rramsim.models.mapping import mapping_class

    def factory():
        class Made(OffsetMapping):
            name = "test_factory_made"

        return Made

    first = factory()
    with pytest.raises(TypeError, match="'test_factory_made' is taken by another class .* same module"):
        factory()
    assert mapping_class("test_factory_made") is first
    typed = type("Typed", (OffsetMapping,), {"name": "test_typed"})
    with pytest.raises(TypeError, match="'test_typed' is taken"):
        type("Typed", (OffsetMapping,), {"name": "test_typed"})
    assert mapping_class("test_typed") is typed
    for bad in (3, None, ""):
        with pytest.raises(TypeError, match="name must be a non-empty str"):
            type("Bad", (OffsetMapping,), {"name": bad})
    with pytest.raises(ValueError, match="must be one of .*'test_typed'.* got 'nope'"):
        mapping_class("nope")


def test_a_module_reloaded_or_imported_again_replaces_its_own_class(tmp_path, monkeypatch):
    import importlib
    import sys

    from rramsim.models.mapping import mapping_class

    (tmp_path / "rramsim_test_user_mapping.py").write_text(
        "from rramsim.models.mapping import OffsetMapping\n\n\n"
        "class UserOffset(OffsetMapping):\n    name = 'test_user_offset'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "rramsim_test_user_mapping", raising=False)
    mod = importlib.import_module("rramsim_test_user_mapping")
    first = mod.UserOffset
    importlib.reload(mod)
    assert mod.UserOffset is not first and mapping_class("test_user_offset") is mod.UserOffset
    del sys.modules["rramsim_test_user_mapping"]
    again = importlib.import_module("rramsim_test_user_mapping")
    assert mapping_class("test_user_offset") is again.UserOffset
    assert CrossbarConfig(mapping="test_user_offset").columns_per_weight == 1
