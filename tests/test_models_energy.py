"""Periphery energy per conversion: one source for the ADC and DAC figures."""

from __future__ import annotations

import pytest

from rramsim.models.config import CrossbarConfig
from rramsim.models.energy import ADC_ENERGY_8BIT, DAC_ENERGY_1BIT, DIGITAL_MAC_ENERGY, adc_conversion_energy
from rramsim.models.methods.basisn import basisn_cost
from rramsim.models.methods.forms import COST_CROSSBAR
from rramsim.models.methods.lowbit import MacroConfig


def test_adc_energy_scales_by_two_per_bit_from_the_8_bit_figure():
    assert adc_conversion_energy(8) == ADC_ENERGY_8BIT == pytest.approx(1.67e-12)
    assert adc_conversion_energy(4) == pytest.approx(1.67e-12 / 16)
    assert adc_conversion_energy(10, 1e-12) == pytest.approx(4e-12)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="ADC bits"):
            adc_conversion_energy(bad)
    with pytest.raises(ValueError, match="finite"):
        adc_conversion_energy(8, float("nan"))


def test_config_and_methods_take_their_defaults_from_one_place():
    c = CrossbarConfig()
    assert (c.adc_energy, c.dac_energy) == (ADC_ENERGY_8BIT, DAC_ENERGY_1BIT)
    # the methods price through CrossbarConfig: FORMS' crossbars, the low-bit macro's
    assert (COST_CROSSBAR.adc_energy, COST_CROSSBAR.dac_energy) == (ADC_ENERGY_8BIT, DAC_ENERGY_1BIT)
    macro = MacroConfig().crossbar()
    assert (macro.adc_energy, macro.dac_energy, macro.adc_bits) == (ADC_ENERGY_8BIT, 0.0, 3)
    assert basisn_cost.__defaults__[-1] == DIGITAL_MAC_ENERGY
