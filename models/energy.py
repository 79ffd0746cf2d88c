"""Periphery energy per conversion: the one source of the ADC and DAC figures.

An ``b``-bit ADC conversion costs ``ADC_ENERGY_8BIT * 2^(b - 8)``: the energy of an
8-bit conversion, halved for every bit less and doubled for every bit more (a modelling
assumption; the 8-bit figure is ISAAC's). A 1-bit DAC conversion (one input bit on one
row) costs ``DAC_ENERGY_1BIT``. :class:`rramsim.models.CrossbarConfig` takes its defaults
from here, and the cost model (:class:`rramsim.models.cost.CostModel`, which the published
methods extend) prices conversions with :func:`adc_conversion_energy`. A digital
multiply-accumulate beside the crossbars costs ``DIGITAL_MAC_ENERGY`` where a method
prices one (docs/DESIGN.md, "Reference numbers").
"""

from __future__ import annotations

import math

__all__ = ["ADC_ENERGY_8BIT", "DAC_ENERGY_1BIT", "DIGITAL_MAC_ENERGY", "adc_conversion_energy"]

#: J per 8-bit ADC conversion (ISAAC)
ADC_ENERGY_8BIT = 1.67e-12
#: J per 1-bit DAC conversion (ISAAC)
DAC_ENERGY_1BIT = 0.42e-12
#: J per digital integer multiply-accumulate (an assumed 40 nm figure)
DIGITAL_MAC_ENERGY = 0.1e-12


def adc_conversion_energy(bits: int, energy_8bit: float = ADC_ENERGY_8BIT) -> float:
    """Energy (J) of one ``bits``-bit ADC conversion, from the energy of an 8-bit one."""
    if isinstance(bits, bool) or int(bits) != bits or bits < 1:
        raise ValueError(f"ADC bits must be a positive integer, got {bits!r}")
    if not (math.isfinite(energy_8bit) and energy_8bit >= 0):
        raise ValueError(f"ADC energy per 8-bit conversion must be a finite number >= 0 J, got {energy_8bit!r}")
    return energy_8bit * 2.0 ** (bits - 8)
