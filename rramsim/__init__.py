"""rramsim: SPICE-calibrated co-simulation of RRAM compute-in-memory.

Subpackages: ``rramsim.circuits`` (netlists), ``rramsim.devices`` (compact-model
parameters and the DeviceTable), ``rramsim.cosim`` (ngspice runs, campaigns, fitting,
CLI) and ``rramsim.models`` (torch inference on device tables).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rramsim")
except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = "0.0.0+unknown"
