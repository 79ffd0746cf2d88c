"""The write-verify engine: incremental-step pulse programming of a batch of cells.

All cells of a batch live in one deck and one continuous transient. The transient pauses
(``stop when time > ...``) in the verify-read plateau of every pulse period; the engine
reads each cell's current, decides its next pulse (ISPP: SET pulses of growing amplitude
while below target, RESET pulses when above, none once within tolerance), ``alter``s
the cells' amplitude sources and ``resume``s. Each cell runs through all target levels in
turn; every level starts with one RESET (erase) pulse, so its cost is that of programming
a fresh cell. A cell's state never leaves the simulator, so any two-terminal subcircuit
works, and cycle-to-cycle randomness drawn inside the model stays consistent.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from rramsim.circuits.render import parse_number
from rramsim.circuits.testbenches import Device, PulseTiming, write_verify_deck
from rramsim.cosim.ngspice import Session, SimulationError, run_with_retries


@dataclass(frozen=True)
class WriteVerifyScheme:
    """Incremental-step pulse programming with verify (magnitudes in volts, SI units)."""

    scheme: str = "ispp"
    v_start: float = 1.0          # first SET pulse
    v_step: float = 0.04          # increment between consecutive pulses of one polarity
    v_max: float = 1.6            # largest SET pulse
    v_reset_start: float = 1.0    # first RESET pulse (magnitude)
    v_reset_max: float = 1.6      # largest RESET pulse (magnitude)
    v_erase: float = 1.6          # RESET pulse that starts every level (magnitude)
    pulse_width: float = 50e-9
    read_voltage: float = 0.2
    tolerance: float = 0.05       # relative: converged when |G - target| <= tolerance * target
    max_pulses: int = 40          # per level, the erase pulse included
    max_step: float = 5e-9        # s, cap on the time step; LTE control does the rest (G within 0.02% of 1 ns)

    def __post_init__(self) -> None:
        if self.scheme != "ispp":
            raise ValueError(f"scheme must be 'ispp', got {self.scheme!r}")
        for name in ("v_start", "v_step", "v_max", "v_reset_start", "v_reset_max", "v_erase",
                     "pulse_width", "read_voltage", "tolerance", "max_step"):
            value = parse_number(getattr(self, name), name)
            if value <= 0:
                raise ValueError(f"write-verify {name} must be > 0, got {value}")
            object.__setattr__(self, name, value)
        if self.v_start > self.v_max or self.v_reset_start > self.v_reset_max:
            raise ValueError(f"v_start ({self.v_start}) must not exceed v_max ({self.v_max}), "
                             f"nor v_reset_start ({self.v_reset_start}) v_reset_max ({self.v_reset_max})")
        if not self.tolerance < 1:
            raise ValueError(f"write-verify tolerance is relative and must be < 1, got {self.tolerance}")
        if not 1e-10 <= self.pulse_width <= 1e-5:
            raise ValueError(f"pulse_width must be between 0.1 ns and 10 us, got {self.pulse_width}")
        if self.read_voltage >= self.v_start:
            raise ValueError(f"read_voltage ({self.read_voltage} V) must stay below v_start ({self.v_start} V)")
        if isinstance(self.max_pulses, bool) or not isinstance(self.max_pulses, int) or self.max_pulses < 2:
            raise ValueError(f"max_pulses must be an integer >= 2, got {self.max_pulses!r}")

    def next_pulse(self, g: float, lo: float, hi: float, polarity: int, streak: int) -> tuple[float, int, int]:
        """ISPP decision after a verify read ``g`` against the window [lo, hi]:
        (signed amplitude, polarity, streak). Each further pulse of one polarity is
        ``v_step`` larger; a change of polarity starts again from the first amplitude."""
        want = 1 if g < lo else (-1 if g > hi else 0)
        if want == 0:          # right after the erase pulse a cell can already be in range
            return 0.0, polarity, streak
        if want != polarity:
            polarity, streak = want, 0
        if want > 0:
            amp = min(self.v_start + streak * self.v_step, self.v_max)
        else:
            amp = -min(self.v_reset_start + streak * self.v_step, self.v_reset_max)
        return amp, polarity, streak + 1

    @property
    def timing(self) -> PulseTiming:
        return PulseTiming(self.pulse_width, self.read_voltage)

    def attrs(self) -> dict:
        return asdict(self)


@dataclass
class BatchSpec:
    """One batch of independent cells (picklable: it travels to worker processes)."""

    index: int
    device: Device
    cell_params: list            # per cell: instance parameter dict, or None
    targets: np.ndarray          # [L] S
    scheme: WriteVerifyScheme
    seeds: list                  # per cell: seed of its cycle-to-cycle draws (built-in model)


@dataclass
class BatchResult:
    index: int
    g_final: np.ndarray          # [L, n]
    pulses: np.ndarray
    energy: np.ndarray
    time: np.ndarray
    converged: np.ndarray
    amplitudes: list = field(default_factory=list)   # per cell: signed amplitude of every period
    reads: list = field(default_factory=list)        # per cell: verify-read G after every period
    level_end: np.ndarray | None = None              # [L, n] period index where each level ended
    retries: int = 0


def run_batch(spec: BatchSpec) -> BatchResult:
    """Program every cell of ``spec`` to every target (runs in a worker process)."""
    session = Session.get()
    name = f"write-verify batch {spec.index}"
    tries = []

    def attempt(options: str) -> BatchResult:
        tries.append(options)
        deck = write_verify_deck(spec.device, spec.cell_params, spec.scheme.timing, options)
        session.load(deck, name, _first_params(spec))
        try:
            return _drive(session, spec, name)
        finally:
            session.free()

    result = run_with_retries(attempt, name)
    result.retries = len(tries) - 1
    return result


def _first_params(spec: BatchSpec) -> dict:
    p = spec.cell_params[0] if spec.cell_params and spec.cell_params[0] else {}
    return {"cells": len(spec.cell_params), **{k: v for k, v in p.items()}}


def _drive(session: Session, spec: BatchSpec, name: str) -> BatchResult:
    s, timing, targets = spec.scheme, spec.scheme.timing, np.asarray(spec.targets, float)
    n, n_levels = len(spec.cell_params), len(targets)
    shape = (n_levels, n)
    out = BatchResult(spec.index, np.zeros(shape), np.zeros(shape, np.int32), np.zeros(shape), np.zeros(shape),
                      np.zeros(shape, bool), [[] for _ in range(n)], [[] for _ in range(n)],
                      np.zeros(shape, np.int64))
    level = np.zeros(n, int)
    count = np.zeros(n, int)         # pulses in the current level
    energy = np.zeros(n)
    streak = np.zeros(n, int)        # consecutive pulses of the current polarity
    polarity = np.zeros(n, int)
    amp = np.full(n, -s.v_erase)     # every level starts with an erase pulse
    applied = np.full(n, np.nan)     # amplitude currently set in the deck
    draws = [np.random.default_rng(sd) for sd in spec.seeds] if spec.device.controls else []
    done = np.zeros(n, bool)
    lo, hi = targets * (1 - s.tolerance), targets * (1 + s.tolerance)
    max_periods = n_levels * s.max_pulses + 2
    t_stop_total = (max_periods + 1) * timing.period
    params = _first_params(spec)

    start = 0
    for k in range(max_periods):
        for c in np.flatnonzero(amp != applied):
            session.alter(f"va{c}", float(amp[c]), name)
        applied[:] = amp
        for c, rng in enumerate(draws):   # the cycle-to-cycle draw of this period, per cell
            z = rng.standard_normal()
            if not done[c]:
                session.alter(f"vk{c}", z, name)
        session.command("delete all")
        session.command(f"stop when time > {timing.stop_time(k)!r}")
        log = session.run(f"tran {s.max_step!r} {t_stop_total!r} 0 {s.max_step!r} uic" if k == 0 else "resume",
                          name, params)
        t = session.vector_tail("time", start)
        if t.size == 0 or t[-1] < timing.stop_time(k):
            raise SimulationError(name, f"transient stopped early at t={t[-1] if t.size else 0:.4g} s "
                                        f"(period {k})", log, params)
        for c in range(n):
            if done[c]:
                continue
            i = session.vector_tail(f"i(vs{c})", start)
            v = session.vector_tail(f"v(d{c})", start)
            g = i[-1] / v[-1]
            if not math.isfinite(g):
                raise SimulationError(name, f"non-finite read of cell {c} in period {k}", log, params)
            energy[c] += float(np.trapezoid(v * i, t))
            count[c] += 1
            out.amplitudes[c].append(float(amp[c]))
            out.reads[c].append(float(g))
            lv = level[c]
            if count[c] > 1 and lo[lv] <= g <= hi[lv] or count[c] >= s.max_pulses:
                _record(out, lv, c, g, count[c], energy[c], count[c] * timing.period, lo[lv] <= g <= hi[lv], k)
                level[c] += 1
                count[c], energy[c], streak[c], polarity[c] = 0, 0.0, 0, 0
                if level[c] == n_levels:
                    done[c], amp[c] = True, 0.0
                else:
                    amp[c] = -s.v_erase
                continue
            amp[c], polarity[c], streak[c] = s.next_pulse(g, lo[lv], hi[lv], polarity[c], streak[c])
        start = t.size + start - 1
        if done.all():
            return out
    raise SimulationError(name, "write-verify did not finish within its period budget", [], params)


def _record(out: BatchResult, lv: int, c: int, g: float, pulses: int, energy: float, time: float,
            ok: bool, period: int) -> None:
    out.g_final[lv, c] = g
    out.pulses[lv, c] = pulses
    out.energy[lv, c] = energy
    out.time[lv, c] = time
    out.converged[lv, c] = ok
    out.level_end[lv, c] = period
