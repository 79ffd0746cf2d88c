"""Published RRAM conductance-spread fits, built in for ``rramsim table compare --reference``.

Each reference gives sigma(G), the standard deviation of a programmed conductance around
its target, as a function of the target G, at one or more times after programming. Where
two published fits of the same data disagree, both are kept and drawn as a band. The
coefficients below are the published fits' numbers (conductances in uS inside the fits,
converted to S at the interface); the code is rramsim's own.

``wan2022`` -- NeuRRAM chip, W. Wan et al., "A compute-in-memory chip based on resistive
    random-access memory", Nature 608, 504-512 (2022), Extended Data Fig. 3: sigma of the
    conductance programmed by iterative write-verify in a 0-40 uS window, at 1 s, 1 day and
    2 days after programming. Two fits of the 1 s data: a 4th-order polynomial in G/40 uS
    (IBM aihwkit, ``ReRamWan2022NoiseModel``, which also fits 1 day and 2 days) and a
    cubic in G (Sandia CrossSim, ``RRAM_Wan``, 1 s only, G <= 39.26 uS). They differ by up
    to ~55% (1.10 vs 1.71 uS at 40 uS).
``cmo`` -- conductive-metal-oxide/HfOx filamentary RRAM of IBM Research Zurich (Falcone et
    al., as fitted in aihwkit's ``ReRamCMONoiseModel``), 9-88.2 uS: programming sigma linear
    in G for program-and-verify acceptance ranges of 0.2% and 2% of the target; relaxation
    sigma_r(t) = a ln(t) + b (uS), independent of G. aihwkit has two versions of the drift:
    relaxation replacing the programming spread, or added to it; the band spans both
    (with the 2% programming spread).
``milo`` -- V. Milo et al., "Optimized programming algorithms for multilevel RRAM in
    hardware neural networks", IEEE IRPS 2021, Fig. 4: sigma after the IGVVA-100
    incremental gate-voltage algorithm, linear in G over 50-225 uS (as in CrossSim's
    ``RRAM_Milo``); programming only, no drift data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

US = 1e-6
DAY = 86400.0


@dataclass(frozen=True)
class Curve:
    """One published fit: sigma(G) in S for G in S, ``time`` s after programming."""

    label: str
    time: float
    sigma_us: Callable[[np.ndarray], np.ndarray]  # G in uS -> sigma in uS

    def sigma(self, g: np.ndarray) -> np.ndarray:
        return np.maximum(self.sigma_us(np.asarray(g, dtype=np.float64) / US), 0.0) * US


@dataclass(frozen=True)
class Reference:
    """A published device: its conductance window (S), fits, and where they come from."""

    name: str
    title: str
    window: tuple[float, float]
    curves: tuple[Curve, ...]

    @property
    def times(self) -> list[float]:
        return sorted({c.time for c in self.curves})

    def band(self, g, time: float) -> tuple[np.ndarray, np.ndarray]:
        """(lowest, highest) sigma over the fits at ``time``, in S, at conductances ``g`` (S)."""
        at = [c.sigma(g) for c in self.curves if c.time == time]
        if not at:
            raise ValueError(f"reference {self.name!r} has no fit at t = {time:g} s (it has {self.times})")
        return np.min(at, axis=0), np.max(at, axis=0)

    def inside(self, g) -> np.ndarray:
        g = np.asarray(g, dtype=np.float64)
        return (g >= self.window[0] * (1 - 1e-9)) & (g <= self.window[1] * (1 + 1e-9))


def _poly(coeffs, scale: float = 1.0):
    """sum_i c_i (G/scale)^i, coefficients lowest order first."""
    return lambda g: np.polynomial.polynomial.polyval(g / scale, coeffs)


# Wan et al. 2022, Extended Data Fig. 3; 4th-order fits in x = G / 40 uS (aihwkit ReRamWan2022NoiseModel)
_WAN_AIHWKIT = {
    1.0: (0.348, 16.030, -43.853, 45.393, -16.815),
    DAY: (0.701, 22.086, -50.773, 47.095, -16.458),
    2 * DAY: (0.782, 20.274, -43.507, 37.062, -11.934),
}
# the same 1 s data, cubic in G [uS] (CrossSim RRAM_Wan)
_WAN_CROSSSIM = (1.053, 2.374e-1, -1.167e-2, 1.536e-4)
# CMO/HfOx programming sigma = c0 + c1 G [uS] per acceptance range (aihwkit ReRamCMONoiseModel)
_CMO_PROG = {0.002: (0.00081107, 0.00106879), 0.02: (0.0112185391, 0.01129027418)}
# CMO/HfOx relaxation sigma_r(t) = a ln(t / 1 s) + b [uS]
_CMO_RELAX = (0.04201137, 0.41183342)
# Milo et al. IRPS 2021 Fig. 4, IGVVA-100: sigma = c0 + c1 G [uS] (CrossSim RRAM_Milo)
_MILO = (4.782321, -0.009107)


def _cmo_relax(t: float):
    a, b = _CMO_RELAX
    return a * np.log(t) + b


def _cmo_curves() -> tuple[Curve, ...]:
    prog = {acc: _poly(c) for acc, c in _CMO_PROG.items()}
    curves = [Curve(f"CMO program, {100 * acc:g}% acceptance (aihwkit)", 0.0, prog[acc]) for acc in sorted(prog)]
    for t in (DAY,):
        r = _cmo_relax(t)
        curves.append(Curve("CMO 1 day, relaxation only (aihwkit reram_cmo)", t, lambda g, r=r: np.full_like(g, r)))
        curves.append(
            Curve(
                "CMO 1 day, 2% programming + relaxation (aihwkit reram)", t, lambda g, r=r: np.hypot(prog[0.02](g), r)
            )
        )
    return tuple(curves)


REFERENCES = {
    "wan2022": Reference(
        "wan2022",
        "NeuRRAM, Wan et al. Nature 2022 (ED Fig. 3)",
        (0.0, 40 * US),
        (
            Curve("1 s, 4th-order fit (aihwkit)", 1.0, _poly(_WAN_AIHWKIT[1.0], 40.0)),
            Curve("1 s, cubic fit (CrossSim)", 1.0, _poly(_WAN_CROSSSIM)),
            Curve("1 day (aihwkit)", DAY, _poly(_WAN_AIHWKIT[DAY], 40.0)),
            Curve("2 days (aihwkit)", 2 * DAY, _poly(_WAN_AIHWKIT[2 * DAY], 40.0)),
        ),
    ),
    "cmo": Reference("cmo", "IBM CMO/HfOx RRAM (aihwkit ReRamCMONoiseModel)", (9 * US, 88.2 * US), _cmo_curves()),
    "milo": Reference(
        "milo",
        "Milo et al. IRPS 2021, IGVVA-100 (Fig. 4)",
        (50 * US, 225 * US),
        (Curve("IGVVA-100 program (CrossSim)", 0.0, _poly(_MILO)),),
    ),
}


def reference(name: str) -> Reference:
    """The built-in reference ``name`` (one of :data:`REFERENCES`)."""
    try:
        return REFERENCES[name]
    except KeyError:
        raise ValueError(f"unknown reference {name!r}; built in: {', '.join(sorted(REFERENCES))}") from None
