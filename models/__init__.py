"""rramsim.models: torch crossbar layers that read a DeviceTable (imports rramsim.devices only).

Entry points: :func:`convert_to_analog` (swap every nn.Linear/nn.Conv2d for a programmed
crossbar layer), :class:`CrossbarConfig` (the hardware), :func:`cost_report` (inference
cost) and :func:`program_analog` (program again with another seed).
"""
from rramsim.models.config import CrossbarConfig
from rramsim.models.convert import (ConversionReport, analog_layers, conversion_report, convert_to_analog,
                                    program_analog, programming_summary, register_converter,
                                    register_safe_globals, set_drift_time, to_digital)
from rramsim.models.cost import CostReport, LayerCost, cost_report, format_cost_report
from rramsim.models.irdrop import TileSolver, approx_transfer, nodal_matrix
from rramsim.models.layers import AnalogConv1d, AnalogConv2d, AnalogLayerMixin, AnalogLinear, table_fingerprint
from rramsim.models.mapping import (BitSlicedMapping, DifferentialMapping, OffsetMapping, WeightMapping,
                                    make_mapping)
from rramsim.models.programming import DevicePhysics
from rramsim.models.tile import TileEngine

__all__ = ["CrossbarConfig", "convert_to_analog", "conversion_report", "ConversionReport", "to_digital",
           "register_converter", "register_safe_globals", "program_analog", "programming_summary", "set_drift_time",
           "analog_layers", "AnalogLinear", "AnalogConv1d", "AnalogConv2d", "AnalogLayerMixin",
           "TileEngine", "table_fingerprint", "cost_report", "CostReport",
           "LayerCost", "format_cost_report", "TileSolver", "approx_transfer", "nodal_matrix", "WeightMapping",
           "DifferentialMapping", "OffsetMapping", "BitSlicedMapping", "make_mapping", "DevicePhysics"]

# attention, transformer layers, LSTM and GRU: AnalogLinear projections and gate matrices
from rramsim.models.attention import CONVERTERS as _ATTENTION_CONVERTERS  # noqa: E402
from rramsim.models.attention import (AnalogMultiheadAttention, AnalogTransformerDecoderLayer,  # noqa: E402
                                      AnalogTransformerEncoder, AnalogTransformerEncoderLayer)
from rramsim.models.recurrent import CONVERTERS as _RECURRENT_CONVERTERS  # noqa: E402
from rramsim.models.recurrent import AnalogGRU, AnalogLSTM  # noqa: E402
from rramsim.models.convert import register_safe_globals as _register_safe_globals  # noqa: E402

for _type, _factory in {**_ATTENTION_CONVERTERS, **_RECURRENT_CONVERTERS}.items():
    register_converter(_type, _factory)
_register_safe_globals()          # whole-model torch.load(weights_only=True) of these too
__all__ += ["AnalogMultiheadAttention", "AnalogTransformerEncoderLayer", "AnalogTransformerDecoderLayer",
            "AnalogTransformerEncoder", "AnalogLSTM", "AnalogGRU"]
