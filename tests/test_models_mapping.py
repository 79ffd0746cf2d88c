"""Weight <-> conductance mappings."""
import numpy as np
import pytest
import torch

from rramsim.models import BitSlicedMapping, CrossbarConfig, DifferentialMapping, OffsetMapping, make_mapping

LEVELS = np.linspace(5e-6, 150e-6, 16)


def _ideal(mapping, w):
    idx = mapping.encode(w)
    g = torch.as_tensor(mapping.levels)[idx]
    return idx, mapping.decode(g)


@pytest.mark.parametrize("mapping,step", [
    (DifferentialMapping(LEVELS), 1 / 15),
    (OffsetMapping(LEVELS), 2 / 15),
    (BitSlicedMapping(LEVELS, cells_per_weight=3, bits_per_cell=2), 1 / 63),
])
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
