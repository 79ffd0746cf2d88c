"""CrossbarConfig defaults and validation."""

import numpy as np
import pytest
import torch

from rramsim.models import CrossbarConfig
from rramsim.models.mapping import BitSlicedMapping, DifferentialMapping, OffsetMapping, WeightMapping, make_mapping


def test_defaults_follow_design():
    c = CrossbarConfig()
    assert (c.tile_rows, c.tile_cols) == (128, 128)
    assert c.mapping == "differential"
    # realistic by default: the table's I-V with exact IR drop (per-programming model), 1 ohm wires
    assert (c.ir_drop, c.nonlinear_iv, c.ir_drop_solver, c.wire_resistance) == ("exact", True, "per_programming", 1.0)
    o = CrossbarConfig.ohmic(adc_bits=4)
    assert (o.ir_drop, o.nonlinear_iv, o.adc_bits) == ("off", False, 4)
    for clash in (dict(ir_drop="approx"), dict(nonlinear_iv=True), dict(wire_resistance=5.0)):
        with pytest.raises(ValueError, match="ohmic"):
            CrossbarConfig.ohmic(**clash)
    assert c.cycle_time == pytest.approx(100e-9)
    assert c.adc_energy == pytest.approx(1.67e-12) and c.dac_energy == pytest.approx(0.42e-12)
    assert c.columns_per_weight == 2


def test_round_trip_dict():
    c = CrossbarConfig(adc_bits=5, mapping="bit_sliced", cells_per_weight=2, bits_per_cell=2)
    assert CrossbarConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown CrossbarConfig field"):
        CrossbarConfig.from_dict({**c.to_dict(), "bogus": 1})


@pytest.mark.parametrize(
    "field,value",
    [
        ("tile_rows", 0),
        ("tile_cols", -4),
        ("tile_rows", 2.5),
        ("adc_bits", 0),
        ("dac_bits", -1),
        ("bits_per_cell", 0),
        ("cells_per_weight", 0),
        ("n_crossbars", 0),
        ("mapping", "polar"),
        ("ir_drop", "yes"),
        ("read_voltage", 0.0),
        ("read_voltage", float("nan")),
        ("wire_resistance", -1.0),
        ("stuck_on", 1.5),
        ("drift_time", -1.0),
        ("adc_range", 0.0),
        ("weight_scaling", "row"),
        ("read_noise", True),
        ("program_parallelism", "all"),
        ("cycle_time", float("inf")),
    ],
)
def test_bad_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        CrossbarConfig(**{field: value})


def test_cross_field_checks():
    with pytest.raises(ValueError, match="tile_cols"):
        CrossbarConfig(tile_cols=127)  # a differential pair needs 2 columns
    with pytest.raises(ValueError, match="wire_resistance"):
        CrossbarConfig(ir_drop="exact", wire_resistance=0.0)
    with pytest.raises(ValueError, match="stuck_on"):
        CrossbarConfig(stuck_on=0.6, stuck_off=0.6)
    with pytest.raises(ValueError, match="bit_serial"):
        CrossbarConfig(bit_serial=True, dac_bits=None)


class _MirroredMapping(WeightMapping):
    """A mapping of the test's own: one cell per weight, the sign carried by a second plane."""

    name = "test_mirrored"
    signs = (1.0, -1.0)

    def encode(self, w):
        idx = self._nearest(self.g_min + w.to(torch.float64).abs() * (self.g_max - self.g_min))
        return torch.stack([idx * (w > 0), idx * (w < 0)]).unsqueeze(0)


def test_a_mapping_class_of_ones_own_is_accepted_and_kept_by_name():
    c = CrossbarConfig(mapping=_MirroredMapping, tile_cols=64)
    assert c.mapping == "test_mirrored" and c.columns_per_weight == 2
    assert CrossbarConfig.from_dict(c.to_dict()) == c == CrossbarConfig(mapping="test_mirrored", tile_cols=64)
    assert isinstance(make_mapping(c, np.array([1e-5, 2e-5, 4e-5])), _MirroredMapping)
    # the built-in classes stand for their names
    assert CrossbarConfig(mapping=DifferentialMapping).mapping == "differential"
    b = CrossbarConfig(mapping=BitSlicedMapping, cells_per_weight=2)
    assert b.mapping == "bit_sliced" and b.columns_per_weight == 4
    with pytest.raises(ValueError, match="tile_cols=7 must be a multiple of the 2 cells"):
        CrossbarConfig(mapping=_MirroredMapping, tile_cols=7)


def test_what_is_not_a_mapping_is_refused_by_name():
    class Unnamed(DifferentialMapping):
        pass

    with pytest.raises(ValueError, match="not an instance"):
        CrossbarConfig(mapping=OffsetMapping(np.array([1e-5, 2e-5])))
    with pytest.raises(ValueError, match="has no name of its own"):
        CrossbarConfig(mapping=Unnamed)
    with pytest.raises(ValueError, match="WeightMapping subclass or the name of one, got the class dict"):
        CrossbarConfig(mapping=dict)
    with pytest.raises(ValueError, match="must be one of .*'differential'.* got 'polar'"):
        CrossbarConfig(mapping="polar")
    with pytest.raises(TypeError, match="name 'offset' is taken"):
        type("Another", (WeightMapping,), {"name": "offset"})


class _WideSliced(BitSlicedMapping):
    """A bit slicing of the test's own (under a name of its own)."""

    name = "test_wide_sliced"


def test_the_bit_slicing_limit_holds_for_subclasses_of_their_own_name():
    with pytest.raises(ValueError, match="cells_per_weight \\* bits_per_cell must be at most 24 bits"):
        CrossbarConfig(mapping="bit_sliced", cells_per_weight=13, bits_per_cell=2, tile_cols=26)
    with pytest.raises(ValueError, match="at most 24 bits with mapping='test_wide_sliced'"):
        CrossbarConfig(mapping=_WideSliced, cells_per_weight=13, bits_per_cell=2, tile_cols=26)
    c = CrossbarConfig(mapping=_WideSliced, cells_per_weight=12, bits_per_cell=2, tile_cols=24)
    assert c.mapping == "test_wide_sliced" and c.columns_per_weight == 24


def test_a_read_only_config_refuses_changes_and_copies_plainly():
    import dataclasses

    from rramsim.models.config import ReadOnlyCrossbarConfig

    shared = ReadOnlyCrossbarConfig(adc_bits=6, mapping=OffsetMapping)
    assert (
        shared == CrossbarConfig(adc_bits=6, mapping="offset")
        and CrossbarConfig(adc_bits=6, mapping="offset") == shared
    )
    with pytest.raises(dataclasses.FrozenInstanceError, match=r"read-only .* cannot set adc_bits; make a copy"):
        shared.adc_bits = 4
    with pytest.raises(dataclasses.FrozenInstanceError):
        del shared.adc_bits
    shared.validate()  # validating changes nothing
    copy = shared.replace(adc_bits=4)
    assert type(copy) is CrossbarConfig and copy.adc_bits == 4 and shared.adc_bits == 6
    copy.adc_bits = 5  # a plain copy is changeable
