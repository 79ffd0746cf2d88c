"""rramsim.models: torch crossbar layers that read a DeviceTable (imports rramsim.devices only).

Entry points: :func:`convert_to_analog` (swap every nn.Linear/nn.Conv2d for a programmed
crossbar layer), :class:`CrossbarConfig` (the hardware), :func:`cost_report` (inference
cost) and :func:`program_analog` (program again with another seed).

The names below are imported on first use (``from rramsim.models import convert_to_analog``
works as usual), so importing the package, or a light module of it, does not import torch:
the command line's help and parser stay fast. Converting a model, or importing
:mod:`rramsim.models.convert`, registers every built-in converter (linear, convolutions,
attention, transformer layers, LSTM, GRU) and allowlists rramsim's module classes for
whole-model ``torch.load``.
"""

from __future__ import annotations

import importlib

#: the shipped networks (built by :func:`rramsim.models.networks.build_network`), listed
#: here so the command line offers them without importing torch
NETWORK_NAMES = ("ds-cnn", "lenet5", "lstm", "resnet-small", "vit")
#: the datasets of :data:`rramsim.models.data.DATASETS`, likewise
DATASET_NAMES = ("fashion-mnist", "mnist")

# public name -> the module of rramsim.models that defines it
_EXPORTS = {
    "CrossbarConfig": "config",
    **dict.fromkeys(
        [
            "ConversionReport",
            "analog_layers",
            "conversion_report",
            "convert_to_analog",
            "program_analog",
            "programming_summary",
            "register_converter",
            "register_safe_globals",
            "set_drift_time",
            "to_digital",
        ],
        "convert",
    ),
    **dict.fromkeys(
        ["CostModel", "CostReport", "LayerCost", "PeripheryCost", "cost_report", "format_cost_report"], "cost"
    ),
    **dict.fromkeys(["TileSolver", "approx_transfer", "nodal_matrix"], "irdrop"),
    **dict.fromkeys(
        ["AnalogConv1d", "AnalogConv2d", "AnalogLayerMixin", "AnalogLinear", "table_fingerprint"], "layers"
    ),
    **dict.fromkeys(
        ["BitSlicedMapping", "DifferentialMapping", "OffsetMapping", "WeightMapping", "make_mapping", "mapping_class"],
        "mapping",
    ),
    "DevicePhysics": "programming",
    "TileEngine": "tile",
    **dict.fromkeys(
        [
            "AnalogMultiheadAttention",
            "AnalogTransformerEncoderLayer",
            "AnalogTransformerDecoderLayer",
            "AnalogTransformerEncoder",
        ],
        "attention",
    ),
    **dict.fromkeys(["AnalogLSTM", "AnalogGRU"], "recurrent"),
}

__all__ = ["NETWORK_NAMES", "DATASET_NAMES", *_EXPORTS]


def __getattr__(name: str):
    """Import a public name, or a submodule (``rramsim.models.layers``), on first use."""
    if name in _EXPORTS:
        module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
        if _EXPORTS[name] != "config":
            importlib.import_module(f"{__name__}.convert")  # registers the converters
        value = getattr(module, name)
        globals()[name] = value
        return value
    if not name.startswith("_"):
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
