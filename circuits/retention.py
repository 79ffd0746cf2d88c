"""Retention bench: programmed cells left at 0 V and read at log-spaced times.

Every cell sits between the shared drive ``d`` and ground behind its own 0 V sense source
``vs<k>``. The drive is 0 V except for short reads at ``read_voltage``: a reference read
early on (its conductance is G(0)) and one at each retention time, so ``G(t)/G(0)`` is the
device's own relaxation while unbiased. The reads are microseconds long, far too short to
move the state; the time step is a fraction of the whole run and the reads' corners are
breakpoints, so one run covers seconds to days.

With the post-programming relaxation (``rramsim.devices.params.Relaxation``) the cells are
:func:`relaxing_device` instances: programming ends at :data:`RELAX_START`, the end of the
reference read, so G(0) is the state write-verify read and every later read sees the
relaxation since then (a read "at t" has relaxed for t - 12 us: 1.2e-5 of t at 1 s).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from rramsim.circuits.compact_model import INSTANCE_PARAMS, RELAX_PARAMS, rram_subckt
from rramsim.circuits.render import number
from rramsim.circuits.testbenches import OPTIONS, Device

T_REFERENCE = 1e-5  # s, start of the reference read (G(0)), before any relaxation shows
READ_RISE = 1e-6  # s, rise (and fall) of every read
READ_PLATEAU = 2e-6  # s, flat top of every read; G is sampled at its middle
RUN_TAIL = 5e-6  # s, the run ends this long after the last read starts (read + 1 us of quiet)
FIRST_STEP_DIVISOR = 1e4  # first time step: the last read's start over this
MAX_STEP_DIVISOR = 100  # largest time step: the last read's start over this

# offsets of a read's corners from its start (summed once, so every read has the same shape)
_PLATEAU_START = READ_RISE
_PLATEAU_END = READ_RISE + READ_PLATEAU
_READ_END = 2 * READ_RISE + READ_PLATEAU
_SAMPLE = READ_RISE + READ_PLATEAU / 2
#: s, where the post-programming relaxation starts: the end of the reference read (a breakpoint)
RELAX_START = T_REFERENCE + _READ_END


def relaxing_device(model_params: Mapping[str, float]) -> Device:
    """The built-in model (1R) with the post-programming relaxation source: its cells take
    ``relax`` (nm), ``relax_t0`` and ``relax_tau`` (s) besides the usual instance parameters."""
    return Device(
        "rram",
        rram_subckt(dict(model_params), relaxation=True),
        tuple(model_params) + INSTANCE_PARAMS + RELAX_PARAMS,
        "1R",
        controls=True,
    )


def retention_times(t_max: float) -> np.ndarray:
    """Log-spaced read times from 1 s to ``t_max``, two a decade."""
    return np.logspace(0, np.log10(t_max), int(round(2 * np.log10(t_max))) + 1)


def read_starts(times: Sequence[float]) -> np.ndarray:
    """Start of every read: the reference read, then one at each retention time."""
    return np.concatenate([[T_REFERENCE], np.asarray(times, dtype=float)])


def sample_times(times: Sequence[float]) -> np.ndarray:
    """Where each read's conductance is taken (middle of its plateau), reference read first."""
    return read_starts(times) + _SAMPLE


def retention_deck(
    device: Device,
    cell_params: Sequence[Mapping[str, float]],
    times: Sequence[float],
    read_voltage: float,
    extra_options: str = "",
) -> str:
    """Cells of ``cell_params`` (each with its own state ``x0``) read at ``times``.

    Only the cells' two terminals are driven: the built-in model's control ports are
    grounded, so there is no cycle-to-cycle draw and no read noise (the noise port at
    0 V multiplies the read current by exactly 1). The current of cell k is ``i(vs<k>)``.
    """
    vr = float(number(read_voltage, "read_voltage"))
    pwl = [(0.0, 0.0)]
    for ts in read_starts(times):
        pwl += [(ts, 0.0), (ts + _PLATEAU_START, vr), (ts + _PLATEAU_END, vr), (ts + _READ_END, 0.0)]
    lines = [
        "* rramsim retention",
        OPTIONS,
        extra_options,
        device.header(),
        "Vd d 0 pwl(" + " ".join(f"{number(t, 'time')} {number(v, 'v')}" for t, v in pwl) + ")",
    ]
    for k, p in enumerate(cell_params):
        lines += [f"Vs{k} d t{k} dc 0", device.instance(f"c{k}", f"t{k}", p, c2c_node="0", noise_node="0")]
    lines += [".save time " + " ".join(f"i(vs{k})" for k in range(len(cell_params))), ".end"]
    return "\n".join(lines)


def retention_analysis(times: Sequence[float]) -> str:
    """The transient analysis that runs :func:`retention_deck` through its last read."""
    last = float(read_starts(times)[-1])
    return f"tran {last / FIRST_STEP_DIVISOR!r} {last + RUN_TAIL!r} 0 {last / MAX_STEP_DIVISOR!r} uic"
