"""Probe a device before characterizing it: polarity, thresholds, window, time scale.

A few short simulations, each of a fresh device: a train of pulses of growing amplitude
with a read after every pulse. At each pulse width in turn (100 ns, 10 us, 1 ms, 100 ms):
a positive and a negative ramp (one of them moves the device out of the state it starts
in); then, on a fresh device again, the ramp that moved it the most, stopped where it had
done 90% of its change, followed by the opposite ramp. Every ramp starts on a fresh device
and the first one stops short of the state's bound because many published models clamp
their state after integrating it: a pulse that keeps driving a state already at its bound
winds the integral far past it, and the opposite pulses must undo that excess before the
conductance moves again (a probe that ran each ramp to 5 V would measure that, not the
device's threshold). The first width that switches the device both ways within
``max_voltage`` is its switching time scale. From the reads:

* polarity: the sign of the pulses that raise the conductance (SET);
* SET/RESET thresholds: the smallest amplitude that moved the read conductance by 10%;
* "full" amplitudes: where a ramp had done 90% of its change;
* the window: the lowest and highest read conductance seen;
* abrupt transitions: one pulse did more than half of a ramp's change; that ramp is
  probed again at shorter widths, SET and RESET each on their own, and where none
  moves it gradually, the width whose gradual part (the reads before that largest step)
  spans the most is kept: a SET still abrupt there runs away, and the targets stay in
  its gradual part, with amplitude steps fine enough for the verify band.

:meth:`ProbeResult.scheme` proposes a scheme (ISPP for devices that switch within 1 us,
pulse-width for slower ones) with amplitude steps fine enough for the verify band where the
device moves steeply, :meth:`ProbeResult.targets` evenly spaced levels inside the window
(its gradual part), and the quasi-static I-V sweep's amplitude and duration follow the
thresholds and the time scale. A device that no pulse of either polarity moves is refused:
its state does not evolve (typically a model that keeps its state in a variable, not a node).
"""

from __future__ import annotations

import dataclasses
import math
import re
import shlex
import sys
from dataclasses import dataclass

import numpy as np

from rramsim.circuits.crossbar import NMOS
from rramsim.circuits.testbenches import Device, pulse_train_deck
from rramsim.cosim.ngspice import DeckLoadError, Session, SimulationError, run_with_retries
from rramsim.devices.schemes import IGVVA, ISPP, MIN_WIDTH, PulseWidth, Scheme

WIDTHS = (100e-9, 10e-6, 1e-3, 0.1)  # s, pulse widths tried in turn
MOVED = 0.10  # relative change of G that counts as switching
ABRUPT = 0.5  # share of a ramp's change made by one pulse that makes a device abrupt
BAND = 0.1  # log change of G per step a ramp aims at: about a +-5% verify band
V_GATE = Device.__dataclass_fields__["v_gate"].default  # V, a 1T1R cell's read gate voltage
W_OVER_L = Device.__dataclass_fields__["w_over_l"].default  # its access transistor's W/L


class ProbeError(ValueError):
    """The device did not behave as a switching memory under the probe's pulses."""


@dataclass(frozen=True)
class ProbeResult:
    polarity: int  # sign of a SET pulse on the first port
    v_set: float  # V, SET threshold (magnitude) at ``width``
    v_reset: float  # V, RESET threshold (magnitude) at ``reset_width``
    v_set_full: float  # V, amplitude by which the SET ramp had done 90% of its change
    v_reset_full: float
    width: float  # s, SET pulse width: the shortest width that switched both ways (or a shorter one
    # at which an abrupt SET moves gradually)
    g_off: float  # S, lowest read conductance seen
    g_on: float  # S, highest
    read_voltage: float
    max_voltage: float  # V, the top of the ramps that ran (lowered where the device failed numerically)
    note: str = ""  # what the probe had to work around, for the record
    abrupt_width: float = 0.0  # s, the longer width at which one SET pulse switched most of the window (0: none)
    reset_width: float = 0.0  # s, RESET pulse width (0: ``width``)
    g_lo: float = 0.0  # S, where the erase leaves the device (with ``g_hi``; 0: not probed)
    g_hi: float = 0.0  # S, where the SET runs away at ``width`` (the targets stay below; 0: no runaway)
    set_slope: float = 0.0  # 1/V, largest change of ln G per volt in an abrupt SET's gradual part (0: not abrupt)
    reset_slope: float = 0.0  # 1/V, the same of an abrupt RESET, or of any RESET where the SET runs away

    def scheme(self, cell: str = "1R", v_gate: float = V_GATE, w_over_l: float = W_OVER_L) -> Scheme:
        """The proposed write-verify scheme for a ``cell`` of this device (see :meth:`why`).

        Ramps start a little below the first amplitude that moved the device; an ISPP
        ramp the probe saw abrupt steps by so little that one step moves G by about the
        verify band (``BAND`` of ln G) in its gradual part (see ``set_slope``). The
        erase and the largest RESET stop at the amplitude that did 90% of the RESET: a
        model that clamps its state after integrating it winds the integral past the
        clamp under any stronger pulse, and the next SET would first have to undo that."""
        if cell == "1T1R" and self._igvva_fits():
            return self._igvva(w_over_l)
        vr = self.read_voltage
        step, reset_step = _step(self.set_slope, self.v_set), _step(self.reset_slope, self.v_reset)
        reset_start = max(round(max(0.9 * self.v_reset, self.v_reset - 10 * reset_step), 3), 1.5 * vr)
        reset_max = max(round(min(self.v_reset_full, self.max_voltage), 3), reset_start)
        n_reset = (reset_max - reset_start) / reset_step
        common = dict(
            read_voltage=vr,
            polarity=self.polarity,
            reset_start=reset_start,
            reset_step=reset_step,
            reset_max=reset_max,
            erase=reset_max,
            reset_width=self.reset_width or self.width,
        )
        if self.width <= 1e-6:
            v_start = max(round(max(0.9 * self.v_set, self.v_set - 10 * step), 3), 1.5 * vr)
            v_max = max(round(min(1.2 * self.v_set_full, self.max_voltage), 3), v_start)
            n = int(np.clip((self.v_set_full - v_start) / step + n_reset + 10, 40, 250))
            return ISPP(v_start=v_start, v_step=step, v_max=v_max, pulse_width=self.width, max_pulses=n, **common)
        v_set = max(round(min(1.05 * self.v_set, self.max_voltage), 3), 1.5 * vr)
        # fine first widths and a gentle growth: the reachable conductances stay closer than the
        # verify tolerance for devices that move much at the probed width (doubling from width/100
        # left a few fixed states, e.g. a metastable-switch model, 3 of 8 levels)
        return PulseWidth(
            v_set=v_set,
            width_start=max(self.width / 1000, 1e-10),
            width_factor=1.25,
            width_max=min(self.width * 10, 1.0),
            max_pulses=100,
            **common,
        )

    def _igvva_fits(self) -> bool:
        """IGVVA needs the SET on the bit line's positive side (where the access transistor,
        its source at ground, limits the current) and a fast or abrupt device (a compliance
        current stops a runaway SET; a slow device's state follows the pulse duration)."""
        return self.polarity > 0 and (self.width <= 1e-6 or self.abrupt_width > 0)

    def _igvva(self, w_over_l: float) -> IGVVA:
        """IGVVA for a 1T1R cell: the SET ends where the transistor's saturation current
        ``kp*W/L/2 * (Vg - Vto)**2`` no longer drives the device above its threshold, so the
        word-line ramp runs from the gate that holds the lowest conductance seen to the one
        that holds the highest (at the SET amplitudes); the bit line stays 0.5 V above the
        full SET. RESET runs with the gate fully on, its amplitude raised by the share of
        the bit line the transistor takes at the highest conductance."""
        vr, beta = self.read_voltage, NMOS["kp"] * w_over_l
        width = self.abrupt_width or self.width

        def gate(current):
            return NMOS["vto"] + math.sqrt(2 * current / beta)

        v_bl = round(min(self.v_set_full + 0.5, self.max_voltage), 3)
        vg_start = max(math.floor((gate(self.g_off * self.v_set) - 0.1) / 0.05) * 0.05, NMOS["vto"] + 0.05)
        vg_max = max(math.ceil((gate(self.g_on * self.v_set_full) + 0.2) / 0.05) * 0.05, vg_start + 0.5)
        vg_step = 0.05 if vg_max - vg_start <= 2.0 else 0.1
        vg_reset = max(vg_max, 2.6)
        divider = 1 + self.g_on / (beta * (vg_reset - NMOS["vto"]))
        reset_start = max(round(0.9 * self.v_reset, 3), 1.5 * vr)
        reset_max = max(round(min(1.2 * self.v_reset_full * divider, self.max_voltage), 3), reset_start)
        reset_step = round(max(0.02 * self.v_reset, (reset_max - reset_start) / 20), 3)
        return IGVVA(
            read_voltage=vr,
            polarity=1,
            v_set=v_bl,
            vg_start=round(vg_start, 3),
            vg_step=vg_step,
            vg_max=round(vg_max, 3),
            vg_reset=round(vg_reset, 3),
            pulse_width=width,
            reset_width=width,
            reset_start=reset_start,
            reset_step=reset_step,
            reset_max=reset_max,
            erase=reset_max,
            max_step=width / 10,
            max_pulses=int(round((vg_max - vg_start) / vg_step)) + 30,
        )

    def why(self, cell: str = "1R") -> str:
        """Why :meth:`scheme` proposes what it does."""
        if self.abrupt_width and self.g_hi:
            fast = (
                f"one {self.abrupt_width:g} s pulse switches it across most of the window; ISPP runs "
                f"{self.width:g} s pulses, whose gradual part is the widest"
            )
        elif self.abrupt_width:
            fast = (
                f"one {self.abrupt_width:g} s pulse switches it across most of the window, so ISPP runs "
                f"{self.width:g} s pulses that move it gradually"
            )
        else:
            fast = f"it switches within 1 us ({self.width:g} s pulses)"
        slow = (
            f"it switches on the {self.width:g} s scale, so a growing pulse width at a fixed amplitude "
            "moves it gradually"
        )
        one_r = "ISPP: " + fast if self.width <= 1e-6 else "pulse-width: " + slow
        if self.g_hi:
            one_r += (
                f"; its SET runs away above {self.g_hi * 1e6:.4g} uS, so the targets stay between the erased "
                f"state ({self.g_lo * 1e6:.4g} uS) and there, and the SET steps are "
                f"{_step(self.set_slope, self.v_set) * 1e3:g} mV (about {BAND:g} of ln G each)"
            )
        if cell != "1T1R":
            return one_r + ("; on a 1T1R cell: IGVVA (--cell 1T1R)" if self._igvva_fits() else "")
        if self._igvva_fits():
            return (
                "IGVVA: in a 1T1R cell the word-line voltage sets the SET compliance current, so each gate step "
                "raises G by a bounded amount instead of a runaway jump; the device SETs with + on its first port, "
                "the side where the access transistor limits the current"
                + (
                    f"; pulses of {self.abrupt_width:g} s, where one pulse switches it fully"
                    if self.abrupt_width
                    else ""
                )
            )
        if self.polarity < 0:
            return (
                "not IGVVA: the device SETs with - on its first port, where the access transistor (its source "
                "at ground) limits no current; reverse its terminals (--ports with the second port first) for "
                "IGVVA. Proposed instead " + one_r
            )
        return "not IGVVA: " + slow + "; a compliance current would only slow it. Proposed instead " + one_r

    def targets(
        self, levels: int = 8, cell: str = "1R", v_gate: float = V_GATE, w_over_l: float = W_OVER_L
    ) -> np.ndarray:
        """``levels`` conductances evenly spaced from 10% to 60% of the window (of a SET that
        runs away, of its gradual part: from the erased state to where it runs away); of
        a 1T1R cell, the window of the device in series with its transistor at the read
        gate (linear region: ``kp*W/L*(Vg - Vto)``), since verify reads the whole cell."""
        lo, hi = (self.g_lo, self.g_hi) if self.g_hi else (self.g_off, self.g_on)
        if cell == "1T1R":
            g_t = NMOS["kp"] * w_over_l * (v_gate - NMOS["vto"])
            lo, hi = 1 / (1 / lo + 1 / g_t), 1 / (1 / hi + 1 / g_t)
        span = hi - lo
        return np.linspace(lo + 0.1 * span, lo + 0.6 * span, levels)

    @property
    def sweep_voltage(self) -> float:
        """Amplitude of the quasi-static SET/RESET sweep: past both full amplitudes."""
        return float(min(1.2 * max(self.v_set_full, self.v_reset_full), self.max_voltage))

    @property
    def sweep_time(self) -> float:
        """Duration of that sweep: slow against the switching time scale."""
        return float(max(80 * self.width, 4e-6))

    def attrs(self) -> dict:
        return {
            k: (float(v) if isinstance(v, float) else v)
            for k, v in dataclasses.asdict(self).items()
            if not (k == "note" and not v)
        }

    def report(self, device_args: str = "", user: bool = True, cell: str = "1R") -> str:
        s, t = self.scheme(cell), self.targets(cell=cell)
        sign = "+" if self.polarity > 0 else "-"
        other = "-" if self.polarity > 0 else "+"
        scale = (
            f"switching time scale: {self.width:.3g} s (a single {self.abrupt_width:g} s pulse switches it fully)"
            if self.abrupt_width
            else f"switching time scale: {self.width:.3g} s (shortest pulse width, of "
            f"{', '.join(f'{w:g}' for w in WIDTHS)} s, that switched both ways)"
        )
        lines = [
            f"polarity: SET with {sign} on the first port, RESET with {other}",
            (
                f"SET threshold {self.v_set:.3g} V (full SET by {self.v_set_full:.3g} V), "
                f"RESET threshold {self.v_reset:.3g} V (full RESET by {self.v_reset_full:.3g} V), at {self.width:.3g} s pulses"
                if (self.reset_width or self.width) == self.width
                else f"SET threshold {self.v_set:.3g} V (full SET by {self.v_set_full:.3g} V) at {self.width:.3g} s pulses, "
                f"RESET threshold {self.v_reset:.3g} V (full RESET by {self.v_reset_full:.3g} V) at "
                f"{self.reset_width:.3g} s pulses"
            ),
            scale,
            f"window at {self.read_voltage:g} V: {self.g_off * 1e6:.4g} - {self.g_on * 1e6:.4g} uS"
            + (" (the device; targets are of the 1T1R cell, transistor included)" if cell == "1T1R" else ""),
            f"proposed scheme for a {cell} cell: {s.describe()}",
            f"why: {self.why(cell)}",
            f"proposed targets: {t[0] * 1e6:.4g}u:{t[-1] * 1e6:.4g}u:{t.size}",
            f"I-V sweep: +-{self.sweep_voltage:.3g} V over {self.sweep_time:.3g} s",
        ]
        if self.note:
            lines.insert(0, f"note: {self.note}")
        target = f"--targets {t[0] * 1e6:.4g}u:{t[-1] * 1e6:.4g}u:{t.size}"
        lines.append(
            f"command: rramsim characterize {device_args} {scheme_flags(s)} {target} -o OUT.h5".replace("  ", " ")
        )
        if user:
            lines.append(
                f"(the same as `rramsim characterize {device_args} -o OUT.h5`: without scheme flags "
                "characterize probes your device and runs this)"
            )
        return "\n".join(lines)


def _step(slope: float, threshold: float) -> float:
    """Amplitude step of a ramp: 2% of its threshold (5 mV to 0.1 V); of an abrupt ramp
    (``slope`` > 0: the largest change of ln G per volt in its gradual part) small enough,
    down to 1 mV, that one step changes ln G by about ``BAND`` there."""
    step = float(np.clip(round(0.02 * threshold, 3), 0.005, 0.1))
    return max(min(step, round(BAND / slope, 3)), 0.001) if slope > 0 else step


def scheme_flags(s: Scheme) -> str:
    """The command-line flags that rebuild scheme ``s`` (those that differ from its defaults)."""
    default = type(s)()
    out = [f"--scheme {s.name}"]
    for f in dataclasses.fields(s):
        v = getattr(s, f.name)
        if v != getattr(default, f.name):
            out.append(f"--{f.name.replace('_', '-')} {v:g}")
    return " ".join(out)


def _ladder(max_voltage: float) -> np.ndarray:
    fine = np.arange(0.1, min(2.0, max_voltage) + 1e-9, 0.05)
    coarse = np.arange(2.1, max_voltage + 1e-9, 0.1) if max_voltage > 2.0 else np.array([])
    return np.round(np.concatenate([fine, coarse]), 4)


def _train(device: Device, params: dict | None, pulses: list, read_voltage: float) -> np.ndarray:
    """Read conductance after each ``(amplitude, width)`` pulse of a train on a fresh device."""
    session = Session.get()
    shortest = min(w for _, w in pulses)
    name = f"probe ({shortest:g} s pulses)"
    step = shortest / 10
    reads = {}

    def attempt(options: str):
        deck, t_reads = pulse_train_deck(device, [params], pulses, read_voltage, options)
        reads["t"] = t_reads
        return session.simulate(
            deck,
            f"tran {step!r} {t_reads[-1] + 1e-9!r} 0 {step!r} uic",
            ["time", "v(d)", "i(vs0)"],
            name=name,
            params={"width": shortest},
        )

    out = run_with_retries(attempt, name)
    t, v, i = out["time"], out["v(d)"], out["i(vs0)"]
    return np.array([np.interp(tr, t, i) / np.interp(tr, t, v) for tr in reads["t"]])


@dataclass(frozen=True)
class _Ramp:
    """One ramp of pulses ``sign * amps`` of ``width`` on a fresh device, after the pulses
    ``prefix`` (which first put it into its other state): the read just before the ramp
    and after each of its pulses."""

    sign: int
    width: float
    amps: np.ndarray
    prefix: tuple
    before: float
    g: np.ndarray

    @property
    def lg(self) -> np.ndarray:
        return np.log(np.concatenate([[self.before], self.g]))

    @property
    def direction(self) -> int:
        return _first_move(self.before, self.g)[1]

    @property
    def threshold(self) -> float:
        """The smallest amplitude that moved the read conductance by MOVED."""
        return float(self.amps[_first_move(self.before, self.g)[0]])

    @property
    def change(self) -> float:
        return float(np.ptp(self.lg))

    @property
    def full_index(self) -> int:
        """The pulse by which the ramp had done 90% of its (log) change."""
        lg = self.lg
        total = lg[-1] - lg[0]
        return self.amps.size - 1 if total == 0 else int(np.argmax((lg[1:] - lg[0]) / total >= 0.9))

    @property
    def full(self) -> float:
        return float(self.amps[self.full_index])

    @property
    def jump(self) -> float:
        return _largest_step(self.before, self.g)

    def through_full(self) -> tuple:
        """The pulses that put a fresh device where this ramp had done 90% of its change,
        and no further: driving a state past its bound winds up the integral of a model
        that clamps its state only after integrating it, and the opposite ramp would then
        have to undo that excess before the conductance moved."""
        return self.prefix + tuple((self.sign * float(a), self.width) for a in self.amps[: self.full_index + 1])

    def gradual(self) -> tuple[float, float, float]:
        """The gradual part of an abrupt ramp (one pulse of it did more than ABRUPT of its
        change; else the whole ramp): the lowest and highest G read before its largest
        step began, and the largest change of ln G per volt up to there."""
        lg, d = self.lg, np.abs(np.diff(self.lg))
        end = int(np.argmax(d)) if self.jump > ABRUPT else d.size
        dv = np.diff(np.concatenate([[2 * self.amps[0] - self.amps[1]], self.amps]))
        slopes = (d / dv)[:end]
        slope = float(slopes.max()) if slopes.size else 0.0
        return float(np.exp(lg[: end + 1].min())), float(np.exp(lg[: end + 1].max())), slope


def _ramp(
    device: Device,
    params: dict | None,
    sign: int,
    width: float,
    ladder: np.ndarray,
    read_voltage: float,
    failed: list,
    prefix: tuple = (),
) -> _Ramp | None:
    """A fresh device: ``prefix``, then a ramp of ``sign`` up to the ladder's top; where the
    device's simulation fails (a model that breaks down numerically at high fields, not a
    deck ngspice cannot read), again up to half and a quarter of it. None (with the
    failures appended to ``failed`` as (width, top, message)) if all failed."""
    for fraction in (1.0, 0.5, 0.25):
        amps = ladder[ladder <= ladder[-1] * fraction + 1e-9]
        if amps.size < 3:
            break
        pulses = [(0.0, width), *prefix, *((sign * float(a), width) for a in amps)]
        try:
            g = _train(device, params, pulses, read_voltage)
        except DeckLoadError:
            raise
        except SimulationError as exc:
            if "did not load" in exc.message:  # the deck, not the device's numerics: lower ramps cannot help
                raise
            failed.append((width, float(amps[-1]), exc.message.split("\n")[0]))
            continue
        if not np.all(np.isfinite(g)) or np.any(g <= 0):
            raise ProbeError(
                f"the device's read conductance at {read_voltage} V is not positive and finite "
                f"({np.min(g):.3g} S): it cannot be read"
            )
        k = len(prefix)
        return _Ramp(sign, width, amps, tuple(prefix), float(g[k]), g[k + 1 :])
    return None


def device_failure_hint(message: str) -> str:
    """One sentence for an ngspice failure whose collapsed time step names a node inside
    the device (bench instances are ``xc<N>``): the model itself broke down, not the bench."""
    m = re.search(r'Timestep too small.*?trouble with node "xc\d+\.([^"]+)"', message, re.IGNORECASE | re.DOTALL)
    if not m:
        return ""
    return (
        f"ngspice's time step collapsed at node '{m.group(1)}' inside the device itself, not in rramsim's "
        "bench: the model breaks down numerically under these pulses (typically a state driven past its "
        "bounds, or a rate that jumps at a bound). Give gentler pulses (--v-set/--v-max, --width-max, "
        "--reset-max; `rramsim probe` shows what the probe proposed) or make the model's bounds smooth."
    )


def _first_move(g_before: float, g: np.ndarray) -> tuple[int, int]:
    """Index of the first pulse that moved G by MOVED (relative, from its predecessor) and the
    sign of that move; (-1, 0) if none did."""
    prev = np.concatenate([[g_before], g[:-1]])
    ratio = np.log(np.abs(g) / np.abs(prev))
    hit = np.flatnonzero(np.abs(ratio) > np.log(1 + MOVED))
    return (int(hit[0]), int(np.sign(ratio[hit[0]]))) if hit.size else (-1, 0)


def _largest_step(g_before: float, g: np.ndarray) -> float:
    """The largest share of a ramp's (log) change that a single pulse made."""
    lg = np.log(np.abs(np.concatenate([[g_before], g])))
    total = np.sum(np.abs(np.diff(lg)))
    return float(np.max(np.abs(np.diff(lg))) / total) if total > 0 else 0.0


def _both_ways(
    device: Device, params: dict | None, width: float, ladder: np.ndarray, read_voltage: float, failed: list, seen: list
) -> tuple[_Ramp, _Ramp] | None:
    """The SET and the RESET ramp at ``width``, or None unless one polarity raised G and the
    other lowered it. A fresh device gets a positive and a negative ramp (one of them moves
    it out of the state it starts in); a fresh device again gets the ramp that moved it the
    most, stopped where it had done 90% of its change, then the opposite ramp."""
    fresh = [r for r in (_ramp(device, params, s, width, ladder, read_voltage, failed) for s in (1, -1)) if r]
    seen += [(width, r) for r in fresh]
    moved = [r for r in fresh if r.direction]
    if not moved:
        return None
    first = max(moved, key=lambda r: r.change)
    top = min(r.amps[-1] for r in fresh)
    second = _ramp(
        device, params, -first.sign, width, ladder[ladder <= top + 1e-9], read_voltage, failed, first.through_full()
    )
    if second is None:
        return None
    seen.append((width, second))
    if second.direction != -first.direction:
        return None
    return (first, second) if first.direction > 0 else (second, first)


def _gradual(
    device: Device, params: dict | None, ramp: _Ramp, read_voltage: float, failed: list, seen: list
) -> tuple[_Ramp, str]:
    """``ramp`` if no single pulse of it made more than ABRUPT of its change; else the same
    ramp (same prefix, up to twice its full amplitude) at a tenth, a hundredth, a
    thousandth of its width (down to MIN_WIDTH): the first that moves the device the same
    way gradually, or else the one whose gradual part (below its largest step) spans the
    most; the search stops where a shorter width no longer widens that part by half.
    Returns the ramp and a note."""
    what = "SET" if ramp.direction > 0 else "RESET"
    if ramp.jump <= ABRUPT or ramp.width > 1e-6:
        return ramp, ""

    def span(r: _Ramp) -> float:
        lo, hi, _ = r.gradual()
        return math.log(hi / lo)

    best, best_span = ramp, span(ramp)
    amps = ramp.amps[ramp.amps <= max(2 * ramp.full, ramp.amps[2]) + 1e-9]
    for fine in (ramp.width / 10, ramp.width / 100, ramp.width / 1000):
        if fine < MIN_WIDTH * 0.999:
            break
        r = _ramp(device, params, ramp.sign, fine, amps, read_voltage, failed, ramp.prefix)
        if r is None:
            continue
        seen.append((fine, r))
        if r.direction != ramp.direction:
            break
        if r.jump <= ABRUPT:
            return r, (
                f"{what} abrupt at {ramp.width:g} s pulses (one pulse made {ramp.jump:.0%} of a ramp's "
                f"change); at {fine:g} s it moves gradually (at most {r.jump:.0%} per pulse)"
            )
        if span(r) < 1.5 * best_span:
            break
        best, best_span = r, span(r)
    head = (
        f"{what} abrupt at {ramp.width:g} s pulses (one pulse made {ramp.jump:.0%} of a ramp's change) and at "
        "every shorter width tried"
    )
    if best is ramp:
        lo, hi, _ = ramp.gradual()
        return ramp, head + (
            ": ISPP reaches only the levels of its gradual part"
            if ramp.direction > 0 and hi > 1.2 * lo
            else ": levels between its states are hard to reach with ISPP"
        )
    return best, head + f"; at {best.width:g} s its gradual part is the widest"


def probe(
    device: Device, params: dict | None = None, read_voltage: float = 0.2, max_voltage: float = 5.0, widths=WIDTHS
) -> ProbeResult:
    """Probe ``device`` (a 1T1R cell is probed without its transistor).

    Every ramp runs on a fresh device (see :func:`_both_ways`). A transition one pulse of
    which did more than ``ABRUPT`` of its change is probed again at a tenth, a hundredth
    and a thousandth of that width (down to 100 ps), SET and RESET each on their own; the
    first width at which it moves gradually becomes its pulse width. The abrupt SET width
    is kept for IGVVA, whose gate-set compliance is what stops an abrupt SET."""
    if not 0 < read_voltage < max_voltage:
        raise ValueError(f"read_voltage must be between 0 and max_voltage ({max_voltage} V), got {read_voltage}")
    if device.cell != "1R":
        device = dataclasses.replace(device, cell="1R")
    ladder = _ladder(max_voltage)
    ladder = ladder[ladder > read_voltage]
    seen, failed = [], []
    for width in widths:
        start = len(seen)
        found = _both_ways(device, params, width, ladder, read_voltage, failed, seen)
        if found is None:
            continue
        up, down = found
        top = float(min(up.amps[-1], down.amps[-1]))
        notes = []
        if top < ladder[-1]:
            notes.append(
                f"the device's simulation failed with ramps up to {ladder[-1]:g} V at {width:g} s pulses "
                f"({failed[-1][2]}); probed up to {top:g} V, and the scheme stays below it"
            )
        coarse_up = up
        up, note_up = _gradual(device, params, up, read_voltage, failed, seen)
        down, note_down = _gradual(device, params, down, read_voltage, failed, seen)
        notes += [n for n in (note_up, note_down) if n]
        g_all = np.concatenate([np.concatenate([[r.before], r.g]) for _, r in seen[start:]])
        # an amplitude ramp (ISPP, up to 1 us) that is abrupt gets steps fine for its gradual
        # part; where the SET runs away above a gradual part of its own (at least 1.5x in G),
        # the targets stay in that part, and the RESET ramp, which brings an overshoot back
        # down to the level, gets fine steps too
        lo, hi, slope = up.gradual()
        ispp = up.width <= 1e-6
        runaway = ispp and up.jump > ABRUPT and 1.5 * lo < hi < 0.999 * up.g.max()
        slope = slope if ispp and up.jump > ABRUPT else 0.0
        reset_slope = down.gradual()[2] if ispp and (down.jump > ABRUPT or runaway) else 0.0
        if runaway:
            notes.append(
                f"the SET runs away above {hi * 1e6:.4g} uS (one {up.width:g} s pulse takes it from there "
                f"to {up.g.max() * 1e6:.4g} uS): the targets stay below"
            )
        return ProbeResult(
            note="; ".join(notes),
            polarity=up.sign,
            v_set=up.threshold,
            v_reset=down.threshold,
            v_set_full=up.full,
            v_reset_full=down.full,
            width=float(up.width),
            g_off=float(g_all.min()),
            g_on=float(g_all.max()),
            read_voltage=float(read_voltage),
            max_voltage=top,
            abrupt_width=float(coarse_up.width) if up is not coarse_up else 0.0,
            reset_width=float(down.width),
            g_lo=lo if runaway else 0.0,
            g_hi=hi if runaway else 0.0,
            set_slope=slope,
            reset_slope=reset_slope,
        )
    if not seen:
        raise ProbeError(
            f"the device's own simulation failed at every probe pulse width ({', '.join(f'{w:g}' for w in widths)} s), "
            f"even with ramps lowered to {failed[-1][1]:g} V; the last failure: {failed[-1][2]}. The model fails "
            "numerically in ngspice under these pulses: check it with a transient of your own, or give a smaller "
            "--max-voltage."
        )
    ranges: dict = {}
    for w, r in seen:
        lo, hi = ranges.get(w, (np.inf, 0.0))
        ranges[w] = (min(lo, r.before, r.g.min()), max(hi, r.before, r.g.max()))
    spans = ", ".join(f"{w:g} s: {lo * 1e6:.4g}-{hi * 1e6:.4g} uS" for w, (lo, hi) in ranges.items())
    raise ProbeError(
        f"no pulse of either polarity, up to +-{max_voltage:g} V and {widths[-1]:g} s wide, switched the device both "
        f"ways (read G ranges per width {spans}). A device whose conductance never moves usually keeps its state "
        "in a variable: simulators keep no variables between time steps, so make the state a node (a capacitor "
        "node in a subcircuit; 'electrical x; I(x) <+ ddt(V(x)) - rate;' in Verilog-A). A high-threshold device "
        "needs a larger --max-voltage."
    )


def plan(args, device: Device, model) -> tuple[Scheme, dict]:
    """The scheme and the Characterization settings of a ``characterize`` command: a user's
    device without scheme flags is probed first (its findings go into the table)."""
    from rramsim.cosim.writeverify import scheme_from_args

    user = model is None
    extra: dict = {}
    cell = (device.cell, device.v_gate, device.w_over_l)
    if user and args.scheme is None:
        found = probe(device, read_voltage=args.scheme_read_voltage or 0.2, max_voltage=args.max_voltage)
        proposed = found.scheme(*cell)
        scheme = scheme_from_args(args, proposed)
        extra = {
            "sweep_voltage": found.sweep_voltage,
            "sweep_time": found.sweep_time,
            "probe": {**found.attrs(), "proposed": proposed.describe(), "why": found.why(device.cell)},
        }
        targets = args.targets if args.targets is not None else found.targets(8, *cell)
        if not args.quiet:
            shown = [
                ln
                for ln in found.report(device_args(args), cell=device.cell).splitlines()
                if not ln.startswith(("command:", "(the same"))
            ]
            print("probe: " + "\nprobe: ".join(shown))
    else:
        # without scheme flags a 1T1R cell of the built-in model runs IGVVA (its word line
        # sets the compliance), a 1R cell ISPP
        scheme = scheme_from_args(args) or (IGVVA() if device.cell == "1T1R" and not user else ISPP())
        targets = args.targets if args.targets is not None else np.linspace(10e-6, 80e-6, 8)
        if user:  # the I-V sweep follows the scheme's pulses (the built-in model keeps its own)
            v = max(abs(scheme.set_pulse(scheme.max_pulses).amplitude), scheme.reset_max, scheme.erase)
            extra = {"sweep_voltage": 1.1 * v, "sweep_time": max(4e-6, 80 * scheme.set_width)}
    return scheme, {"targets": targets, **extra}


def device_args(args) -> str:
    """The device part of a command line, quoted."""
    out = []
    for flag in ("netlist", "subckt", "veriloga", "module", "dialect", "ports", "cell"):
        v = getattr(args, flag, None)
        if v is None or (flag == "dialect" and v == "auto") or (flag == "cell" and v == "1R"):
            continue
        v = ",".join(v) if isinstance(v, (list, tuple)) else str(v)
        out.append(f"--{flag} {shlex.quote(v)}")
    if not (args.netlist or args.veriloga):
        out.insert(0, f"--preset {args.preset}")
    return " ".join(out)


def cmd_probe(args) -> int:
    from rramsim.circuits.testbenches import builtin_device
    from rramsim.devices import preset

    params = None
    if args.veriloga or args.module:
        if not args.veriloga:
            raise ValueError("--module names a module of a --veriloga file: give the file too")
        from rramsim.cosim.osdi import only_module, va_device

        args.module = args.module or only_module(args.veriloga)
        device = va_device(args.veriloga, args.module)
    elif args.netlist or args.subckt:
        if not args.netlist:
            raise ValueError("--subckt names a subcircuit of a --netlist file: give the file too")
        from rramsim.circuits.user_netlist import load_user_netlist

        user = load_user_netlist(args.netlist, args.subckt, "1R", args.dialect, args.ports)
        device, args.subckt = user.device, user.name
        if user.ignored:
            print("rramsim: " + user.deck_report(args.netlist), file=sys.stderr)
    else:
        model, _ = preset(args.preset)
        device = builtin_device(model.params())
        params = dict(model.params(), c2c=0.0, x0=model.g_max)
    found = probe(device, params, args.read_voltage, args.max_voltage)
    print(found.report(device_args(args), user=params is None, cell=args.cell))
    return 0


def add_commands(sub) -> None:
    from rramsim.cosim.argtypes import number
    from rramsim.devices import PRESETS

    p = sub.add_parser("probe", help="find a device's polarity, thresholds, window and time scale; propose a scheme")
    p.add_argument("--preset", default="hfox", choices=sorted(PRESETS), help="built-in model preset")
    p.add_argument("--netlist", help="your netlist file holding the device subcircuit")
    p.add_argument("--subckt", help="name of the subcircuit in --netlist (left out: the file's only one)")
    p.add_argument(
        "--cell",
        default="1R",
        choices=["1R", "1T1R"],
        help="the cell the proposed scheme is for (1T1R: IGVVA where the device allows it)",
    )
    p.add_argument("--dialect", default="auto", choices=["auto", "ngspice", "ltspice", "pspice", "hspice"])
    p.add_argument("--ports", type=lambda t: [x.strip() for x in t.split(",")], metavar="A,B")
    p.add_argument("--veriloga", metavar="FILE.va", help="your Verilog-A device")
    p.add_argument("--module", help="name of the module in --veriloga (left out: the file's only module)")
    p.add_argument("--read-voltage", type=number, default=0.2, help="V (default 0.2)")
    p.add_argument("--max-voltage", type=number, default=5.0, help="largest pulse amplitude tried (default 5 V)")
    p.set_defaults(func=cmd_probe)


__all__ = ["ProbeResult", "ProbeError", "probe", "plan", "WIDTHS"]
