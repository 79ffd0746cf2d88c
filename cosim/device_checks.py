"""Checks of a characterization's outcome that stop a useless table from being written.

A device whose read conductance no pulse of either polarity moved has not been
characterized: its table would record 0% converged levels and a flat I-V with no word
why. The usual causes are a model that keeps its state in a variable (simulators keep no
variables between time steps: the state must be a node) and thresholds or switching times
beyond the programming scheme's pulses.

Neither has a campaign in which write-verify reached no target on any device: a device
that switched once and then stopped moving (a published model whose state is clamped
after its integral, so one strong pulse winds the integral far past the clamp and the
opposite pulses cannot bring it back), or one that jumps across every target in one
pulse. :func:`check_levels_reached` says which, from the verify reads.
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
    stuck = [d for d in stuck_devices(campaign.reads) if not converged[:, d].all()]  # in range as it was: fine
    if not stuck:
        return
    d = stuck[0]
    g = float(np.median(campaign.reads[d]))
    pulses = sum(1 for a in campaign.amplitudes[d] if a != 0)
    which = (
        "the device"
        if len(campaign.reads) == 1
        else f"{len(stuck)} of {len(campaign.reads)} devices (the first: device {d})"
    )
    compiled = bool(device is not None and device.osdi)
    state_hint = (
        "its state in a variable (x = x + rate*dt, a time step kept in another variable): OpenVAF keeps "
        "no variables between time steps, so make the state a node ('electrical x;' with "
        "'I(x) <+ ddt(V(x)) - rate;' or 'V(x) <+ idt(rate, x0);')"
        if compiled
        else "its state outside a capacitor-like node (the state must be a node voltage that a capacitor "
        "integrates, e.g. 'Cx x 0 1' charged by 'Bx 0 x I=rate')"
    )
    raise DeviceError(
        f"{which} never changed conductance: {pulses} programming pulses ({_span(campaign.amplitudes[d])}) left "
        f"its read conductance at {g * 1e6:.4g} uS (within {STUCK_RTOL:.0e}), so no table is written. Either the "
        f"model keeps {state_hint}, or it needs larger or longer pulses than these (raise the pulse amplitudes "
        "or the pulse width)."
    )


def _stuck_tail(g: np.ndarray, rtol: float = STUCK_RTOL) -> int:
    """Index of the first read from which ``g`` no longer moved (by more than ``rtol``)."""
    k = len(g) - 1
    while k > 0 and abs(g[k - 1] - g[-1]) <= rtol * max(abs(g[-1]), 1e-30):
        k -= 1
    return k


def check_levels_reached(campaign, device: Device | None = None) -> None:
    """Refuse (:class:`DeviceError`) a campaign in which no device reached any target level.

    Such a table holds nothing a network can be mapped on; the message tells what the
    verify reads of the first device did instead."""
    converged = np.asarray(campaign.converged, dtype=bool)
    if converged.size == 0 or converged.any() or not len(campaign.reads):
        return
    targets = np.asarray(campaign.targets, dtype=float)
    g = np.asarray(campaign.reads[0], dtype=float)
    a = np.asarray(campaign.amplitudes[0], dtype=float)
    n = min(len(g), len(a))
    g, a = g[:n], a[:n]
    span = f"{targets.min() * 1e6:.4g}-{targets.max() * 1e6:.4g} uS"
    head = (
        f"write-verify reached none of the {len(targets)} targets ({span}) on any of the {len(campaign.reads)} "
        f"device{'s' * (len(campaign.reads) != 1)}, so no table is written."
    )
    if n == 0:
        raise DeviceError(f"{head} The first device recorded no verify read.")
    k = _stuck_tail(g)
    rest = a[k + 1 :]
    lifted = bool(device is not None and any("lifted to the internal node" in note for note in device.notes))
    if len(rest) >= 3 and np.any(np.sign(rest) == -np.sign(a[k])):  # pulses of the other polarity did nothing
        story = (
            f"The first device's read conductance last moved at pulse {k + 1} ({a[k]:+.3g} V, to "
            f"{g[k] * 1e6:.4g} uS); the {len(rest)} pulses after it ({_span(rest)}) left it there."
        )
        if lifted:
            why = (
                " Its model clamps a state after integrating it (rewritten with the integral on a node, as the "
                "published text computes it): the integral itself is not clamped, so a pulse that drives the "
                "state past a clamp winds the integral far beyond it, and the opposite pulses must undo that "
                "excess before the conductance moves again. Program it with pulses just above its thresholds "
                "(smaller --v-max/--v-set and --erase/--reset-max, longer --reset-width), or in a 1T1R cell "
                "whose compliance stops the SET (--cell 1T1R)."
            )
        else:
            why = (
                " The device stopped responding to the scheme's pulses: give pulses of the opposite polarity "
                "more amplitude or width (--erase, --reset-max, --reset-width), or smaller SET pulses."
            )
        raise DeviceError(f"{head} {story}{why}")
    low, high = float(np.min(g)), float(np.max(g))
    if low < targets.min() and high > targets.max():
        jumps = np.abs(np.diff(g)) > 0.5 * (targets.max() - targets.min())
        story = (
            f"The first device's verify reads ranged {low * 1e6:.4g}-{high * 1e6:.4g} uS"
            + (f", jumping across the targets in a single pulse {int(jumps.sum())} times" if jumps.any() else "")
            + ", and never landed within the tolerance of a target: it switches too abruptly for this scheme."
        )
        raise DeviceError(
            f"{head} {story} Use finer steps or shorter pulses (--v-step, --pulse-width), the "
            "pulse-width scheme, or a 1T1R cell with IGVVA (--cell 1T1R --scheme igvva), whose gate "
            "sets the compliance."
        )
    side = "below the lowest" if high < targets.min() else "above the highest" if low > targets.max() else "around the"
    raise DeviceError(
        f"{head} The first device's verify reads stayed between {low * 1e6:.4g} and {high * 1e6:.4g} "
        f"uS, {side} target{'s' if side == 'around the' else ''}: choose targets within the window "
        "the device reaches (--targets), or pulses that move it further."
    )
