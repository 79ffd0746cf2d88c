"""Checks of a characterization's outcome that stop a useless table from being written.

A device whose read conductance no pulse of either polarity moved has not been
characterized: its table would record 0% converged levels and a flat I-V with no word
why. The usual causes are a model that keeps its state in a variable (simulators keep no
variables between time steps: the state must be a node) and thresholds or switching times
beyond the programming scheme's pulses.
"""
from __future__ import annotations

import numpy as np

from rramsim.circuits.testbenches import Device

#: Relative spread of a device's verify reads below which it counts as never switched.
STUCK_RTOL = 1e-4


class DeviceError(ValueError):
    """The device did not behave as a programmable memory; the message says why and what to do."""


def stuck_devices(reads: list, rtol: float = STUCK_RTOL) -> list[int]:
    """Indices of the devices whose verify reads never moved by more than ``rtol`` (relative)."""
    out = []
    for d, g in enumerate(reads):
        g = np.asarray(g, dtype=float)
        if g.size >= 2 and np.all(np.isfinite(g)) and np.ptp(g) <= rtol * max(np.max(np.abs(g)), 1e-30):
            out.append(d)
    return out


def _span(amplitudes) -> str:
    a = np.asarray(amplitudes, dtype=float)
    parts = []
    if np.any(a > 0):
        parts.append(f"SET up to +{a.max():.3g} V")
    if np.any(a < 0):
        parts.append(f"RESET down to {a.min():.3g} V")
    return " and ".join(parts) or "no pulse at all"


def check_device_switches(campaign, device: Device | None = None) -> None:
    """Refuse (:class:`DeviceError`) when a device's conductance never changed for any pulse.

    ``campaign`` is a :class:`rramsim.cosim.campaign.CampaignResult` (its ``reads``: the
    verify read after every pulse period of each device; ``amplitudes``: the pulses).
    """
    converged = np.asarray(campaign.converged, dtype=bool)
    stuck = [d for d in stuck_devices(campaign.reads) if not converged[:, d].all()]   # in range as it was: fine
    if not stuck:
        return
    d = stuck[0]
    g = float(np.median(campaign.reads[d]))
    pulses = sum(1 for a in campaign.amplitudes[d] if a != 0)
    which = "the device" if len(campaign.reads) == 1 else \
        f"{len(stuck)} of {len(campaign.reads)} devices (the first: device {d})"
    compiled = bool(device is not None and device.osdi)
    state_hint = ("its state in a variable (x = x + rate*dt, a time step kept in another variable): OpenVAF keeps "
                  "no variables between time steps, so make the state a node ('electrical x;' with "
                  "'I(x) <+ ddt(V(x)) - rate;' or 'V(x) <+ idt(rate, x0);')" if compiled else
                  "its state outside a capacitor-like node (the state must be a node voltage that a capacitor "
                  "integrates, e.g. 'Cx x 0 1' charged by 'Bx 0 x I=rate')")
    raise DeviceError(
        f"{which} never changed conductance: {pulses} programming pulses ({_span(campaign.amplitudes[d])}) left "
        f"its read conductance at {g * 1e6:.4g} uS (within {STUCK_RTOL:.0e}), so no table is written. Either the "
        f"model keeps {state_hint}, or it needs larger or longer pulses than these (raise the pulse amplitudes "
        "or the pulse width).")
