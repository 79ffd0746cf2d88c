"""CrossbarConfig defaults and validation."""
import pytest

from rramsim.models import CrossbarConfig


def test_defaults_follow_design():
    c = CrossbarConfig()
    assert (c.tile_rows, c.tile_cols) == (128, 128)
    assert c.mapping == "differential" and c.ir_drop == "off"
    assert c.cycle_time == pytest.approx(100e-9)
    assert c.adc_energy == pytest.approx(1.67e-12) and c.dac_energy == pytest.approx(0.42e-12)
    assert c.columns_per_weight == 2


def test_round_trip_dict():
    c = CrossbarConfig(adc_bits=5, mapping="bit_sliced", cells_per_weight=2, bits_per_cell=2)
    assert CrossbarConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown CrossbarConfig field"):
        CrossbarConfig.from_dict({**c.to_dict(), "bogus": 1})


@pytest.mark.parametrize("field,value", [
    ("tile_rows", 0), ("tile_cols", -4), ("tile_rows", 2.5), ("adc_bits", 0), ("dac_bits", -1),
    ("bits_per_cell", 0), ("cells_per_weight", 0), ("n_crossbars", 0), ("mapping", "polar"),
    ("ir_drop", "yes"), ("read_voltage", 0.0), ("read_voltage", float("nan")), ("wire_resistance", -1.0),
    ("stuck_on", 1.5), ("drift_time", -1.0), ("adc_range", 0.0), ("weight_scaling", "row"),
    ("read_noise", True), ("program_parallelism", "all"), ("cycle_time", float("inf")),
])
def test_bad_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        CrossbarConfig(**{field: value})


def test_cross_field_checks():
    with pytest.raises(ValueError, match="tile_cols"):
        CrossbarConfig(tile_cols=127)                       # a differential pair needs 2 columns
    with pytest.raises(ValueError, match="wire_resistance"):
        CrossbarConfig(ir_drop="exact", wire_resistance=0.0)
    with pytest.raises(ValueError, match="stuck_on"):
        CrossbarConfig(stuck_on=0.6, stuck_off=0.6)
    with pytest.raises(ValueError, match="bit_serial"):
        CrossbarConfig(bit_serial=True, dac_bits=None)
