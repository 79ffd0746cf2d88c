"""What a device is: compact-model parameters, variability, and the fitted DeviceTable."""

from .params import PRESETS, CompactModel, Variability, preset
from .table import FORMAT, FORMAT_VERSION, DeviceTable, TableError

__all__ = [
    "CompactModel",
    "Variability",
    "PRESETS",
    "preset",
    "DeviceTable",
    "TableError",
    "FORMAT",
    "FORMAT_VERSION",
    "default_table_path",
    "load_default_table",
]


def default_table_path():
    """Path of the default table shipped with rramsim (package data)."""
    from importlib.resources import files

    return files(__name__) / "data" / "default.h5"


def load_default_table() -> DeviceTable:
    """The shipped default table (made by ``rramsim characterize``; see its ``command`` attr)."""
    return DeviceTable.load(default_table_path())
