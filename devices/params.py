"""Compact-model parameter sets and their variability (what a device *is*).

The behavioural model is a Stanford/PKU-like filament-gap model (Guan, Yu & Wong,
IEEE EDL 2012; Jiang et al., SISPAD 2014), simplified for plain ngspice:

    I      = i0 * exp(-g / g0) * sinh(V / v0)
    dg/dt  = -nu_set   * sinh(max(V, 0) / vs_set)   * w_set(g)        (SET, V > 0)
             +nu_reset * sinh(max(-V, 0) / vs_reset) * w_reset(g)      (RESET, V < 0)
             +r_ret * (g_max - g)                                      (relaxation)

with the gap ``g`` in nm held on a capacitor node and windows
``w_set = max(0, 1 - exp(-(g - g_min)/w))``, ``w_reset = max(0, 1 - exp(-(g_max - g)/w))``
that stop the state exactly at its bounds.

Optionally (:class:`Relaxation`, off by default) the gap relaxes after programming by a
random amount per cell and per programming, ``delta ln(1 + t/tau)`` with
``delta ~ N(0, sigma_g(g))``: a spread that, unlike the ones above, can fall with G.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class CompactModel:
    """Parameters of the behavioural filament-gap RRAM model (SI units, gap in nm)."""

    name: str = "hfox"
    i0: float = 1.0e-4  # A, current prefactor
    g0: float = 0.25  # nm, tunnelling decay length of the gap
    v0: float = 0.25  # V, I-V nonlinearity voltage
    g_min: float = 0.1  # nm, smallest gap (LRS bound)
    g_max: float = 1.7  # nm, largest gap (HRS bound)
    nu_set: float = 0.35  # nm/s, SET gap velocity prefactor
    vs_set: float = 0.07  # V, SET field-enhancement voltage
    nu_reset: float = 0.35  # nm/s, RESET gap velocity prefactor
    vs_reset: float = 0.07  # V, RESET field-enhancement voltage
    window: float = 0.05  # nm, width of the window functions
    r_ret: float = 3.0e-7  # 1/s, relaxation rate of the gap towards g_max (retention)
    noise: float = 0.03  # relative read-noise amplitude at g = 1 nm (sigma ~ G^-1/2)

    # Parameters that device-to-device variability may act on.
    VARIABLE = ("i0", "g0", "v0", "nu_set", "vs_set", "nu_reset", "vs_reset", "r_ret", "noise")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name == "name":
                continue
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"CompactModel.{f.name} must be a finite positive number, got {value!r}")
        if self.g_min >= self.g_max:
            raise ValueError(f"CompactModel.g_min ({self.g_min}) must be below g_max ({self.g_max})")

    def params(self) -> dict[str, float]:
        """The numeric parameters as the netlist renderer takes them."""
        return {f.name: float(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name != "name"}

    def conductance(self, gap: float | np.ndarray, v_read: float = 0.2) -> np.ndarray:
        """Static read conductance I(v_read)/v_read at gap ``gap`` (nm)."""
        return self.i0 * np.exp(-np.asarray(gap) / self.g0) * np.sinh(v_read / self.v0) / v_read

    def window_conductance(self, v_read: float = 0.2) -> tuple[float, float]:
        """(G_min, G_max): the conductance window at the gap bounds."""
        return float(self.conductance(self.g_max, v_read)), float(self.conductance(self.g_min, v_read))

    def replace(self, **changes) -> "CompactModel":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Relaxation:
    """Post-programming relaxation of the gap, random per cell and per programming.

    From the end of programming (the write-verify read) a cell programmed to gap ``g`` moves
    by ``delta * ln(1 + t / tau)``, with ``delta ~ N(0, sigma_g(g))`` drawn afresh for every
    cell and every programming and ``sigma_g(g) = amplitude * exp((g - gap_ref) / decay)``:
    defects near a thin filament (a wide gap) rearrange more. Since ``G ~ exp(-g / g0)``, the
    relative spread is ``sigma_G / G ~ sigma_g(g) ln(1 + t/tau) / g0 ~ G^(-g0/decay)`` and the
    absolute spread ``~ G^(1 - g0/decay)``: it falls with G when ``decay < g0`` and rises when
    ``decay > g0``. The time law sets how the spread grows: ``sigma(t2) / sigma(t1) =
    ln(1 + t2/tau) / ln(1 + t1/tau)`` (for tau << 1 s nearly ``ln(t2/tau) / ln(t1/tau)``).
    The mean of ``delta`` is 0: the mean loss stays the slow relaxation ``r_ret``.

    In SPICE (built-in model only) it is one more current into the gap node,
    ``delta / (t - t_end + tau)`` after ``t_end``; the retention bench draws ``delta`` per
    cell (:func:`rramsim.cosim.characterize.measure_retention`). ``amplitude = 0`` (default)
    switches it off and leaves every netlist exactly as without it.
    """

    amplitude: float = 0.0  # nm, sigma of delta at gap_ref (0: off)
    decay: float = 0.25  # nm, gap over which sigma_g grows e-fold
    tau: float = 1e-6  # s, onset time of the ln(1 + t/tau) law
    gap_ref: float = 1.0  # nm, gap where sigma_g = amplitude

    def __post_init__(self) -> None:
        for name in ("amplitude", "decay", "tau", "gap_ref"):
            v = getattr(self, name)
            if (
                isinstance(v, bool)
                or not isinstance(v, (int, float))
                or not math.isfinite(v)
                or v < 0
                or (v == 0 and name != "amplitude")
            ):
                raise ValueError(
                    f"Relaxation.{name} must be a finite number > 0"
                    f"{' (or amplitude 0: off)' if name == 'amplitude' else ''}, got {v!r}"
                )

    @property
    def on(self) -> bool:
        return self.amplitude > 0

    def sigma_gap(self, gap) -> np.ndarray:
        """sigma of delta (nm) for cells programmed to ``gap`` (nm)."""
        return self.amplitude * np.exp((np.asarray(gap, dtype=float) - self.gap_ref) / self.decay)

    def law(self, t) -> np.ndarray:
        """ln(1 + t / tau): the gap moved by time ``t`` (s) after programming, per unit delta."""
        return np.log1p(np.maximum(np.asarray(t, dtype=float), 0.0) / self.tau)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Variability:
    """Device-to-device and cycle-to-cycle spreads, all log-normal and seeded.

    ``d2d`` maps a parameter to the standard deviation of ln(parameter) across devices
    (0.2 ≈ 20% spread). For the built-in model (``nominal`` is None) the parameters are
    :attr:`CompactModel.VARIABLE` and ``c2c`` is the standard deviation of the ln of a
    per-pulse factor on the gap velocity (a fresh draw every pulse period).

    For any other device (a user's subcircuit) ``nominal`` holds the nominal value of
    every varied parameter: device k gets ``nominal * exp(sigma * z)`` with z drawn from
    ``default_rng([seed, k])``, clipped to the parameter's declared range in ``bounds``
    if it has one. Such a device has no built-in cycle-to-cycle port, so ``c2c`` must be
    0; ``c2c_params`` maps parameters to the sigma of a log-normal factor drawn afresh
    every pulse period (the device file is rewritten to take it, see
    :mod:`rramsim.circuits.user_netlist`).
    """

    d2d: dict[str, float] = field(default_factory=dict)
    c2c: float = 0.0
    nominal: dict[str, float] | None = None
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)
    c2c_params: dict[str, float] = field(default_factory=dict)
    relaxation: Relaxation = field(default_factory=Relaxation)

    def __post_init__(self) -> None:
        if not isinstance(self.relaxation, Relaxation):
            raise ValueError(f"Variability.relaxation must be a Relaxation, got {self.relaxation!r}")
        if self.nominal is not None and self.relaxation.on:
            raise ValueError(
                "Variability.relaxation acts on the built-in model's gap; a user's device has no relaxation port"
            )
        known = CompactModel.VARIABLE if self.nominal is None else tuple(self.nominal)
        for key, sigma in self.d2d.items():
            if key not in known:
                raise ValueError(
                    f"Variability.d2d: unknown parameter {key!r}; choose from {', '.join(known) or '(none)'}"
                )
            if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not math.isfinite(sigma) or sigma < 0:
                raise ValueError(f"Variability.d2d[{key!r}] must be a finite sigma >= 0, got {sigma!r}")
        if (
            isinstance(self.c2c, bool)
            or not isinstance(self.c2c, (int, float))
            or not math.isfinite(self.c2c)
            or self.c2c < 0
        ):
            raise ValueError(f"Variability.c2c must be a finite sigma >= 0, got {self.c2c!r}")
        if self.nominal is not None:
            if self.c2c:
                raise ValueError(
                    "Variability.c2c acts on the built-in model's gap velocity only; a user's "
                    "device has no cycle-to-cycle port (use c2c_params)"
                )
            for key, sigma in self.c2c_params.items():
                if (
                    isinstance(sigma, bool)
                    or not isinstance(sigma, (int, float))
                    or not math.isfinite(sigma)
                    or sigma <= 0
                ):
                    raise ValueError(f"Variability.c2c_params[{key!r}] must be a finite sigma > 0, got {sigma!r}")
        elif self.c2c_params:
            raise ValueError(
                "Variability.c2c_params is for a user's device; the built-in model's "
                "cycle-to-cycle spread is Variability.c2c"
            )
            for key, value in self.nominal.items():
                if not isinstance(value, (int, float)) or not math.isfinite(value) or value == 0:
                    raise ValueError(f"Variability.nominal[{key!r}] must be a finite non-zero number, got {value!r}")
            for key, (lo, hi) in self.bounds.items():
                if key in self.nominal and not lo <= self.nominal[key] <= hi:
                    raise ValueError(
                        f"nominal {key}={self.nominal[key]:g} lies outside its declared range [{lo:g}, {hi:g}]"
                    )

    @property
    def declared(self) -> bool:
        """Whether any spread is declared (a sigma > 0)."""
        return self.c2c > 0 or bool(self.c2c_params) or any(s > 0 for s in self.d2d.values()) or self.relaxation.on

    def scaled(self, factor: float) -> "Variability":
        """The same spread shape, every sigma multiplied by ``factor``."""
        return dataclasses.replace(
            self,
            d2d={k: v * factor for k, v in self.d2d.items()},
            c2c=self.c2c * factor,
            c2c_params={k: v * factor for k, v in self.c2c_params.items()},
            relaxation=dataclasses.replace(self.relaxation, amplitude=self.relaxation.amplitude * factor),
        )

    def sample(self, model: CompactModel, n: int, rng: np.random.Generator) -> list[dict[str, float]]:
        """Per-device parameter dicts for ``n`` devices drawn from ``rng`` (built-in model)."""
        base = model.params()
        keys = sorted(self.d2d)
        draws = rng.standard_normal((n, len(keys)))
        devices = []
        for row in draws:
            p = dict(base)
            for key, z in zip(keys, row):
                p[key] = base[key] * math.exp(self.d2d[key] * z)
            devices.append(p)
        return devices

    def device_overrides(self, n: int, seed: int) -> list[dict[str, float] | None]:
        """Instance parameters of ``n`` devices of a user's subcircuit: the varied
        parameters only (None for every device when nothing varies: run as written)."""
        if self.nominal is None:
            raise ValueError("device_overrides is for a user's device (Variability with nominal values)")
        keys = sorted(k for k, s in self.d2d.items() if s > 0)
        if not keys:
            return [None] * n
        out = []
        for k in range(n):
            z = np.random.default_rng([seed, k]).standard_normal(len(keys))
            cell = {}
            for key, zi in zip(keys, z):
                value = self.nominal[key] * math.exp(self.d2d[key] * float(zi))
                if key in self.bounds:
                    value = min(max(value, self.bounds[key][0]), self.bounds[key][1])
                cell[key] = value
            out.append(cell)
        return out

    def to_dict(self) -> dict:
        out = {"d2d": dict(self.d2d), "c2c": self.c2c}
        if self.nominal is not None:
            out["distribution"] = "lognormal"
            out["nominal"] = {k: v for k, v in self.nominal.items() if k in self.d2d}
            out["bounds"] = {k: list(v) for k, v in self.bounds.items() if k in self.d2d}
            out["c2c_params"] = dict(self.c2c_params)
        if self.relaxation.on:  # written only when on: tables without it are unchanged
            out["relaxation"] = self.relaxation.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "Variability":
        nominal = d.get("nominal")
        relax = d.get("relaxation") or {}
        unknown = set(relax) - {f.name for f in dataclasses.fields(Relaxation)}
        if unknown:
            raise ValueError(
                f"variability relaxation: unknown field(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(f.name for f in dataclasses.fields(Relaxation))}"
            )
        return cls(
            dict(d.get("d2d", {})),
            float(d.get("c2c", 0.0)),
            None if nominal is None else {k: float(v) for k, v in nominal.items()},
            {k: (float(v[0]), float(v[1])) for k, v in d.get("bounds", {}).items()},
            {k: float(v) for k, v in d.get("c2c_params", {}).items()},
            Relaxation(**{k: float(v) for k, v in relax.items()}),
        )


def describe_variability(spec: dict) -> str:
    """One line for ``table show``: what varied in a table's devices, or that nothing did."""
    d2d = {k: float(v) for k, v in (spec or {}).get("d2d", {}).items() if float(v) > 0}
    c2c = float((spec or {}).get("c2c", 0.0))
    c2c_params = {k: float(v) for k, v in (spec or {}).get("c2c_params", {}).items()}
    relax = (spec or {}).get("relaxation")
    if not d2d and not c2c and not c2c_params and not relax:
        return (
            "variability: none declared (every device is the nominal one; "
            "--vary NAME=SPREAD gives a device-to-device spread)"
        )
    nominal = (spec or {}).get("nominal") or {}
    parts = [
        f"{k} sigma(ln) {v:g}" + (f" around {float(nominal[k]):.4g}" if k in nominal else "")
        for k, v in sorted(d2d.items())
    ]
    line = "variability: device-to-device log-normal: " + (", ".join(parts) if parts else "none")
    if c2c_params:
        line += "; cycle-to-cycle log-normal factor per pulse period: " + ", ".join(
            f"{k} sigma(ln) {v:g}" for k, v in sorted(c2c_params.items())
        )
    if c2c:
        line += f"; cycle-to-cycle log-normal sigma(ln) {c2c:g} on the gap velocity, per pulse"
    if relax:
        line += (
            f"; post-programming gap relaxation delta ln(1 + t/{float(relax['tau']):g} s), delta normal with "
            f"sigma {float(relax['amplitude']):g} nm x exp((g - {float(relax.get('gap_ref', 1.0)):g} nm)/"
            f"{float(relax['decay']):g} nm), per cell and programming"
        )
    return line


#: Named presets: (model, variability).
PRESETS: dict[str, tuple[CompactModel, Variability]] = {
    "hfox": (
        CompactModel(),
        Variability({"nu_set": 0.3, "nu_reset": 0.3, "i0": 0.05, "g0": 0.02, "r_ret": 0.3}, c2c=0.15),
    ),
    "hfox-ideal": (CompactModel(name="hfox-ideal"), Variability()),
    "taox": (
        CompactModel(name="taox", i0=6e-5, g0=0.28, nu_set=30.0, nu_reset=90.0, vs_reset=0.12, noise=0.006),
        Variability({"nu_set": 0.2, "nu_reset": 0.2, "i0": 0.04}, c2c=0.1),
    ),
}


def preset(name: str) -> tuple[CompactModel, Variability]:
    """Look up a preset by name, with a message listing the choices."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown device preset {name!r}; choose from {', '.join(PRESETS)}") from None
