"""Programming schemes: how a write-verify loop chooses its next pulse.

A scheme is a description (validated numbers only): which pulse starts every level (an
erase, i.e. a RESET), and after every verify read which pulse comes next. All schemes
share the verify logic: SET pulses while the read conductance is below
``target * (1 - tolerance)``, RESET pulses while it is above ``target * (1 + tolerance)``,
nothing once it is within; a change of direction starts that direction's ramp again.
What differs is what a SET pulse looks like:

* :class:`ISPP` (incremental step pulse programming): the bit-line amplitude grows by
  ``v_step`` every pulse. On an abrupt filamentary device the SET is a runaway (the gap
  velocity grows exponentially with the voltage and nothing limits the current), so one
  pulse can jump across most of the window.
* :class:`IGVVA` (incremental gate voltage with verify, 1T1R cells): a fixed bit-line
  pulse, while the access transistor's word-line voltage grows by ``vg_step`` every pulse.
  The transistor's saturation current is the SET compliance: the filament grows until the
  device's share of the bit-line voltage falls below its SET threshold, so each gate step
  moves the conductance by a small, nearly device-independent amount.
* :class:`PulseWidth`: a fixed amplitude, the pulse width multiplied by ``width_factor``
  every pulse (for slow devices whose state moves with the logarithm of time).

Every scheme has its own RESET ramp (``reset_start`` + ``reset_step`` per pulse up to
``reset_max``, pulses of ``reset_width``), the erase amplitude that starts each level,
the SET polarity on the device's first port (``polarity = -1`` for devices that SET
with a negative voltage), and the number of verify reads averaged. Pulse widths may be
100 ps to 1 s; the simulator's step cap (``max_step``, 0 = a tenth of the longest pulse)
scales with them.

``attrs()`` is the flat dict a device table records (``scheme`` = the name, then the
parameters); :func:`scheme_from_attrs` reads it back, also from version-1 tables.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

MIN_WIDTH = 1e-10  # s, shortest pulse
MAX_WIDTH = 1.0  # s, longest pulse


@dataclass(frozen=True)
class Pulse:
    """One programming pulse: signed volts on the device's first port (0: no pulse), its
    width, and the word-line voltage during it (None: the cell's fixed gate voltage)."""

    amplitude: float
    width: float
    gate: float | None = None


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"scheme parameter {name}: expected a number, got {value!r}")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"scheme parameter {name}: expected a number, got {value!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"scheme parameter {name} must be finite, got {value!r}")
    return out


@dataclass(frozen=True)
class Scheme:
    """What every scheme has: verify, RESET ramp, erase, polarity (SI units; magnitudes)."""

    name: ClassVar[str] = ""
    gate_control: ClassVar[bool] = False  # needs a 1T1R cell with its own word line
    read_voltage: float = 0.2  # V, verify read (same sign as SET)
    tolerance: float = 0.05  # relative: converged when |G - target| <= tolerance * target
    max_pulses: int = 40  # per level, the erase pulse included
    polarity: int = 1  # sign of a SET pulse on the device's first port
    reset_start: float = 1.0  # V, first RESET pulse of a ramp (magnitude)
    reset_step: float = 0.04  # V, RESET increment per pulse
    reset_max: float = 1.6  # V, largest RESET pulse
    erase: float = 1.6  # V, the RESET pulse that starts every level
    reset_width: float = 0.0  # s, RESET and erase pulse width (0: the SET width)
    verify_reads: int = 1  # verify reads averaged per pulse
    max_step: float = 0.0  # s, simulator step cap (0: a tenth of the longest pulse)

    #: Parameters in volts that must lie above the read voltage (SET amplitudes).
    _set_volts: ClassVar[tuple[str, ...]] = ()
    _widths: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if f.name in ("max_pulses", "polarity", "verify_reads"):
                continue
            object.__setattr__(self, f.name, _number(getattr(self, f.name), f.name))
        for name in ("max_pulses", "polarity", "verify_reads"):
            value = getattr(self, name)
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"scheme parameter {name} must be a whole number, got {value!r}")
            object.__setattr__(self, name, value)
        if self.reset_width == 0:
            object.__setattr__(self, "reset_width", self.set_width)
        positive = [
            f.name
            for f in dataclasses.fields(self)
            if f.name not in ("polarity", "max_step", "reset_step") and getattr(self, f.name) <= 0
        ]
        if positive:
            raise ValueError(f"{self.name} scheme: {positive[0]} must be > 0, got {getattr(self, positive[0])}")
        if self.reset_step < 0 or self.max_step < 0:
            bad = "reset_step" if self.reset_step < 0 else "max_step"
            raise ValueError(f"{self.name} scheme: {bad} must be >= 0, got {getattr(self, bad)}")
        if not self.tolerance < 1:
            raise ValueError(f"write-verify tolerance is relative and must be < 1, got {self.tolerance}")
        if self.max_pulses < 2:
            raise ValueError(f"max_pulses must be an integer >= 2, got {self.max_pulses!r}")
        if self.polarity not in (1, -1):
            raise ValueError(
                f"polarity must be +1 (SET with a positive pulse on the first port) or -1, got {self.polarity}"
            )
        if not 1 <= self.verify_reads <= 100:
            raise ValueError(f"verify_reads must be 1 to 100, got {self.verify_reads}")
        if self.reset_start > self.reset_max:
            raise ValueError(f"reset_start ({self.reset_start}) must not exceed reset_max ({self.reset_max})")
        for name in ("reset_width", *self._widths):
            w = getattr(self, name)
            if not MIN_WIDTH <= w <= MAX_WIDTH:
                raise ValueError(f"{name} must be between 100 ps and 1 s, got {w:g} s")
        for name in ("reset_start", "erase", *self._set_volts):
            if self.read_voltage >= getattr(self, name):
                raise ValueError(
                    f"read_voltage ({self.read_voltage} V) must stay below {name} "
                    f"({getattr(self, name)} V): the verify read must not program the cell"
                )
        self._check()

    def _check(self) -> None:
        """Scheme-specific validation."""

    # ------------------------------------------------------------------ pulses
    @property
    def set_width(self) -> float:
        """The (first) SET pulse width."""
        raise NotImplementedError

    @property
    def longest_pulse(self) -> float:
        return max(self.reset_width, self.set_width)

    @property
    def shortest_pulse(self) -> float:
        return min(self.reset_width, self.set_width)

    @property
    def step_cap(self) -> float:
        """The simulator's largest time step: ``max_step`` or a tenth of the longest pulse."""
        return self.max_step or self.longest_pulse / 10

    @property
    def reset_gate(self) -> float | None:
        return None

    def erase_pulse(self) -> Pulse:
        """The RESET that starts every level."""
        return Pulse(-self.polarity * self.erase, self.reset_width, self.reset_gate)

    def set_pulse(self, streak: int) -> Pulse:
        """The ``streak``-th SET pulse of a ramp (0: the first)."""
        raise NotImplementedError

    def reset_pulse(self, streak: int) -> Pulse:
        amp = min(self.reset_start + streak * self.reset_step, self.reset_max)
        return Pulse(-self.polarity * amp, self.reset_width, self.reset_gate)

    def next_pulse(self, g: float, lo: float, hi: float, direction: int, streak: int) -> tuple[Pulse, int, int]:
        """After a verify read ``g`` against the window [lo, hi]: (pulse, direction, streak).

        ``direction`` is +1 while SETting, -1 while RESETting (0 at the start of a level);
        ``streak`` counts the pulses of the current direction. A pulse of amplitude 0
        means none is needed (the cell is within the window)."""
        want = 1 if g < lo else (-1 if g > hi else 0)
        if want == 0:  # right after the erase pulse a cell can already be in range
            return Pulse(0.0, self.set_width), direction, streak
        if want != direction:
            direction, streak = want, 0
        pulse = self.set_pulse(streak) if want > 0 else self.reset_pulse(streak)
        return pulse, direction, streak + 1

    # ------------------------------------------------------------------ records
    def attrs(self) -> dict[str, Any]:
        """Flat record for a device table: ``scheme`` (the name), then every parameter."""
        return {"scheme": self.name, **dataclasses.asdict(self)}

    def describe(self) -> str:
        """One line: the name and the parameters that differ from the scheme's defaults."""
        default = type(self)()
        changed = [
            f"{f.name}={getattr(self, f.name):g}"
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(default, f.name)
        ]
        return self.name + (" " + " ".join(changed) if changed else "")


@dataclass(frozen=True)
class ISPP(Scheme):
    """Incremental step pulse programming: SET amplitude ``v_start + k * v_step`` (k-th
    pulse of a ramp) up to ``v_max``, all pulses ``pulse_width`` wide."""

    name: ClassVar[str] = "ispp"
    v_start: float = 1.0
    v_step: float = 0.04
    v_max: float = 1.6
    pulse_width: float = 50e-9

    _set_volts: ClassVar[tuple[str, ...]] = ("v_start",)
    _widths: ClassVar[tuple[str, ...]] = ("pulse_width",)

    def _check(self) -> None:
        if self.v_start > self.v_max:
            raise ValueError(f"v_start ({self.v_start}) must not exceed v_max ({self.v_max})")

    @property
    def set_width(self) -> float:
        return self.pulse_width

    def set_pulse(self, streak: int) -> Pulse:
        return Pulse(self.polarity * min(self.v_start + streak * self.v_step, self.v_max), self.pulse_width)


@dataclass(frozen=True)
class IGVVA(Scheme):
    """Incremental gate voltage with verify (1T1R): every SET pulse is ``v_set`` on the bit
    line for ``pulse_width``, with the word line at ``vg_start + k * vg_step`` up to
    ``vg_max`` (the compliance current grows with it). RESET pulses run with the word line
    at ``vg_reset``; verify reads with the cell's own gate voltage. The RESET of a 1T1R
    cell shares its voltage with the transistor, so RESET pulses are longer than a 1R
    cell's: 1.6 V for 200 ns with the word line at 2.6 V returns the built-in model from
    80 uS to its HRS in one pulse (50 ns at 2.0 V left it above 35 uS from 60 uS up; 1.8 V
    for 50 ns does it too, but the abrupt RESET then stalls the simulator's time step)."""

    name: ClassVar[str] = "igvva"
    gate_control: ClassVar[bool] = True
    max_pulses: int = 60
    reset_width: float = 200e-9
    max_step: float = 5e-9  # s, a tenth of the SET pulse (not of the longer RESET)
    v_set: float = 1.6
    vg_start: float = 0.6
    vg_step: float = 0.05
    vg_max: float = 2.6
    vg_reset: float = 2.6
    pulse_width: float = 50e-9

    _set_volts: ClassVar[tuple[str, ...]] = ("v_set",)
    _widths: ClassVar[tuple[str, ...]] = ("pulse_width",)

    def _check(self) -> None:
        if self.vg_start > self.vg_max:
            raise ValueError(f"vg_start ({self.vg_start}) must not exceed vg_max ({self.vg_max})")

    @property
    def set_width(self) -> float:
        return self.pulse_width

    @property
    def reset_gate(self) -> float:
        return self.vg_reset

    def set_pulse(self, streak: int) -> Pulse:
        return Pulse(
            self.polarity * self.v_set, self.pulse_width, min(self.vg_start + streak * self.vg_step, self.vg_max)
        )


@dataclass(frozen=True)
class PulseWidth(Scheme):
    """Fixed amplitude ``v_set``; the SET width grows geometrically,
    ``width_start * width_factor**k`` up to ``width_max`` (for slow devices)."""

    name: ClassVar[str] = "pulse-width"
    v_set: float = 1.1
    width_start: float = 10e-9
    width_factor: float = 2.0
    width_max: float = 10e-6

    _set_volts: ClassVar[tuple[str, ...]] = ("v_set",)
    _widths: ClassVar[tuple[str, ...]] = ("width_start", "width_max")

    def _check(self) -> None:
        if self.width_start > self.width_max:
            raise ValueError(f"width_start ({self.width_start:g} s) must not exceed width_max ({self.width_max:g} s)")
        if self.width_factor <= 1:
            raise ValueError(f"width_factor must be > 1, got {self.width_factor}")

    @property
    def set_width(self) -> float:
        return self.width_start

    @property
    def longest_pulse(self) -> float:
        return max(self.reset_width, self.width_max)

    def set_pulse(self, streak: int) -> Pulse:
        return Pulse(self.polarity * self.v_set, min(self.width_start * self.width_factor**streak, self.width_max))


#: The schemes by name.
SCHEMES: dict[str, type[Scheme]] = {cls.name: cls for cls in (ISPP, IGVVA, PulseWidth)}

#: Version-1 tables named some ISPP parameters differently.
_V1_NAMES = {"v_reset_start": "reset_start", "v_reset_max": "reset_max", "v_erase": "erase"}


def make_scheme(name: str, **params) -> Scheme:
    """The scheme ``name`` with ``params``; unknown names or parameters are a ValueError."""
    try:
        cls = SCHEMES[name]
    except KeyError:
        raise ValueError(f"unknown programming scheme {name!r}; choose from {', '.join(SCHEMES)}") from None
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(
            f"scheme {name} has no parameter(s) {', '.join(unknown)}; its parameters are {', '.join(sorted(known))}"
        )
    return cls(**params)


def scheme_from_attrs(attrs: dict[str, Any]) -> Scheme:
    """The scheme a table recorded (``attrs()``), also from a version-1 ISPP record."""
    attrs = dict(attrs)
    name = attrs.pop("scheme", None)
    if name == "ispp" and "v_reset_start" in attrs:  # version 1
        attrs = {_V1_NAMES.get(k, k): v for k, v in attrs.items()}
        attrs.setdefault("reset_step", attrs.get("v_step", ISPP.reset_step))
    if name not in SCHEMES:
        raise ValueError(f"unknown programming scheme {name!r} recorded; known: {', '.join(SCHEMES)}")
    known = {f.name for f in dataclasses.fields(SCHEMES[name])}
    return make_scheme(name, **{k: v for k, v in attrs.items() if k in known})


__all__ = [
    "Pulse",
    "Scheme",
    "ISPP",
    "IGVVA",
    "PulseWidth",
    "SCHEMES",
    "make_scheme",
    "scheme_from_attrs",
    "MIN_WIDTH",
    "MAX_WIDTH",
]
