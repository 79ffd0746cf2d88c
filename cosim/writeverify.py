"""The write-verify engine: closed-loop pulse programming of a batch of cells.

All cells of a batch live in one deck and one continuous transient. The transient pauses
(``stop when time > ...``) in the verify-read plateau of every pulse period; the engine
reads each cell's current, asks the programming scheme (:mod:`rramsim.devices.schemes`)
for its next pulse, ``alter``s the cell's pulse source (amplitude, width and, for
gate-controlled schemes, the word-line voltage) and ``resume``s. Each cell runs through
all target levels in turn; every level starts with the scheme's erase (RESET) pulse, so
its cost is that of programming a fresh cell. A cell's state never leaves the simulator,
so any two-terminal subcircuit works, and cycle-to-cycle randomness drawn inside the
model stays consistent.

With ``measure`` (the nominal device of a characterization), every period also carries a
read-noise sample and an I-V leg after the verify read; the engine keeps those of the
period in which each level converged, so the table's read conductance, read noise and
I-V are those of the very state write-verify reached.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rramsim.circuits.testbenches import EDGE, GAP, T_READ, Device, PulseTiming, pulse_vector, write_verify_deck
from rramsim.cosim.ngspice import Session, SimulationError, run_with_retries
from rramsim.devices.schemes import ISPP, Pulse, Scheme

#: The default scheme (kept under its former name).
WriteVerifyScheme = ISPP


def timing(scheme: Scheme, measure: bool = False, iv_voltage: float = 0.3, iv_time: float = 100e-9) -> PulseTiming:
    """The pulse period of ``scheme``: room for its longest pulse, edges no longer than a
    quarter of its shortest."""
    cap = scheme.step_cap
    edge = min(max(EDGE, 1e-3 * cap), scheme.shortest_pulse / 4)  # breakpoints survive the cap
    return PulseTiming(
        scheme.longest_pulse,
        scheme.read_voltage,
        scheme.verify_reads,
        edge,
        measure,
        iv_voltage,
        max(iv_time, 1e-2 * cap),
        max(T_READ, 10 * edge),
        max(GAP, 2 * edge),
    )


@dataclass
class BatchSpec:
    """One batch of independent cells (picklable: it travels to worker processes)."""

    index: int
    device: Device
    cell_params: list  # per cell: instance parameter dict, or None
    targets: np.ndarray  # [L] S
    scheme: Scheme
    seeds: list  # per cell: seed of its cycle-to-cycle draws (built-in model)
    measure: bool = False  # record read noise and I-V where each level converged
    iv_voltage: float = 0.3  # V, amplitude of the I-V leg (measure only)
    iv_points: int = 21


@dataclass
class BatchResult:
    index: int
    g_final: np.ndarray  # [L, n]
    pulses: np.ndarray
    energy: np.ndarray
    time: np.ndarray
    converged: np.ndarray
    amplitudes: list = field(default_factory=list)  # per cell: signed amplitude of every period
    reads: list = field(default_factory=list)  # per cell: verify-read G after every period
    level_end: np.ndarray | None = None  # [L, n] period index where each level ended
    retries: int = 0
    gates: list = field(default_factory=list)  # per cell: word-line voltage of every pulse (gate schemes)
    widths: list = field(default_factory=list)  # per cell: width of every pulse
    read_sigma: np.ndarray | None = None  # [L, n] read-noise sigma of G (measure only)
    iv_v: np.ndarray | None = None  # [M] (measure only)
    iv_current: np.ndarray | None = None  # [L, n, M] (measure only)


def run_batch(spec: BatchSpec) -> BatchResult:
    """Program every cell of ``spec`` to every target (runs in a worker process)."""
    session = Session.get()
    name = f"write-verify batch {spec.index}"
    tries = []
    if spec.scheme.gate_control and spec.device.cell != "1T1R":
        raise ValueError(f"the {spec.scheme.name} scheme steps the word line of a 1T1R cell: use --cell 1T1R")
    tm = timing(spec.scheme, spec.measure, spec.iv_voltage)

    def attempt(options: str) -> BatchResult:
        tries.append(options)
        first = [spec.scheme.erase_pulse()] * len(spec.cell_params)
        deck = write_verify_deck(spec.device, spec.cell_params, tm, options, first, spec.scheme.gate_control)
        session.load(deck, name, _first_params(spec))
        try:
            return _drive(session, spec, tm, name)
        finally:
            session.free()

    result = run_with_retries(attempt, name)
    result.retries = len(tries) - 1
    return result


def _first_params(spec: BatchSpec) -> dict:
    p = spec.cell_params[0] if spec.cell_params and spec.cell_params[0] else {}
    return {"cells": len(spec.cell_params), "scheme": spec.scheme.name, **{k: v for k, v in p.items()}}


def _alter_pulse(
    session: Session, source: str, low: float, high: float, width: float, tm: PulseTiming, name: str
) -> None:
    log = session.command(f"alter @{source}[pulse] = {pulse_vector(low, high, width, tm)}")
    bad = session.failures(log)
    if bad:
        raise SimulationError(name, f"alter {source} failed: {bad[0]}", log)


def _drive(session: Session, spec: BatchSpec, tm: PulseTiming, name: str) -> BatchResult:
    s, targets = spec.scheme, np.asarray(spec.targets, float)
    n, n_levels = len(spec.cell_params), len(targets)
    shape = (n_levels, n)
    out = BatchResult(
        spec.index,
        np.zeros(shape),
        np.zeros(shape, np.int32),
        np.zeros(shape),
        np.zeros(shape),
        np.zeros(shape, bool),
        [[] for _ in range(n)],
        [[] for _ in range(n)],
        np.zeros(shape, np.int64),
        gates=[[] for _ in range(n)],
        widths=[[] for _ in range(n)],
    )
    iv_v = np.linspace(-spec.iv_voltage, spec.iv_voltage, spec.iv_points)
    if spec.measure:
        out.read_sigma, out.iv_v, out.iv_current = np.zeros(shape), iv_v, np.zeros((n_levels, n, iv_v.size))
    level = np.zeros(n, int)
    count = np.zeros(n, int)  # pulses in the current level
    energy = np.zeros(n)
    elapsed = np.zeros(n)  # programming time of the current level
    streak = np.zeros(n, int)  # consecutive pulses of the current direction
    direction = np.zeros(n, int)
    erase = s.erase_pulse()
    pulse = [erase] * n  # every level starts with an erase pulse (already in the deck)
    applied = list(pulse)
    draws = [np.random.default_rng(sd) for sd in spec.seeds] if spec.device.controls else []
    done = np.zeros(n, bool)
    pending: list[tuple[int, int, int]] = []  # (cell, level, period) whose measurement is still ahead
    lo, hi = targets * (1 - s.tolerance), targets * (1 + s.tolerance)
    max_periods = n_levels * s.max_pulses + 2
    t_stop_total = (max_periods + 2) * tm.period
    step = s.step_cap
    params = _first_params(spec)

    start = 0
    for k in range(max_periods + 1):
        for c in range(n):
            p, old = pulse[c], applied[c]
            if (p.amplitude, p.width) != (old.amplitude, old.width) and not (p.amplitude == old.amplitude == 0):
                _alter_pulse(session, f"va{c}", 0.0, p.amplitude, p.width, tm, name)
            if s.gate_control and p.amplitude != 0 and (p.gate, p.width) != (old.gate, old.width):
                _alter_pulse(session, f"vg{c}", spec.device.v_gate, p.gate, p.width, tm, name)
            applied[c] = p
        for c, rng in enumerate(draws):  # the cycle-to-cycle draw of this period, per cell
            z = rng.standard_normal()
            if not done[c]:
                session.alter(f"vk{c}", z, name)
        session.command("delete all")
        session.command(f"stop when time > {tm.stop_time(k)!r}")
        log = session.run(f"tran {step!r} {t_stop_total!r} 0 {step!r} uic" if k == 0 else "resume", name, params)
        t = session.vector_tail("time", start)
        if t.size == 0 or t[-1] < tm.stop_time(k):
            raise SimulationError(
                name, f"transient stopped early at t={t[-1] if t.size else 0:.4g} s (period {k})", log, params
            )
        if pending:
            pending = _measure(session, out, pending, tm, iv_v, start, t, spec.device.controls, name, log, params)
        if done.all() and not pending:
            return out
        for c in range(n):
            if done[c]:
                continue
            i = session.vector_tail(f"i(vs{c})", start)
            v = session.vector_tail(f"v(d{c})", start)
            g = _verify(t, i, v, tm.read_times(k))
            if not math.isfinite(g):
                raise SimulationError(name, f"non-finite read of cell {c} in period {k}", log, params)
            energy[c] += float(np.trapezoid(v * i, t))
            elapsed[c] += tm.cell_time(applied[c].width)
            count[c] += 1
            out.amplitudes[c].append(float(applied[c].amplitude))
            out.widths[c].append(float(applied[c].width))
            out.gates[c].append(float(applied[c].gate) if applied[c].gate is not None else spec.device.v_gate)
            out.reads[c].append(float(g))
            lv = level[c]
            if count[c] > 1 and lo[lv] <= g <= hi[lv] or count[c] >= s.max_pulses:
                _record(out, lv, c, g, count[c], energy[c], elapsed[c], lo[lv] <= g <= hi[lv], k)
                if spec.measure:
                    pending.append((c, lv, k))
                level[c] += 1
                count[c], energy[c], elapsed[c], streak[c], direction[c] = 0, 0.0, 0.0, 0, 0
                if level[c] == n_levels:
                    done[c], pulse[c] = True, Pulse(0.0, applied[c].width)
                else:
                    pulse[c] = erase
                continue
            pulse[c], direction[c], streak[c] = s.next_pulse(g, lo[lv], hi[lv], direction[c], streak[c])
        start = t.size + start - 1
        if done.all() and not pending:
            return out
    raise SimulationError(name, "write-verify did not finish within its period budget", [], params)


def _verify(t: np.ndarray, i: np.ndarray, v: np.ndarray, times: list[float]) -> float:
    """The verify read: G at the run's pause (the last point), averaged with the earlier
    reads of the plateau (interpolated) when the scheme averages several."""
    g = [i[-1] / v[-1]]
    for tr in times[:-1]:
        g.append(float(np.interp(tr, t, i) / np.interp(tr, t, v)))
    return float(np.mean(g))


def _measure(
    session: Session,
    out: BatchResult,
    pending: list,
    tm: PulseTiming,
    iv_v: np.ndarray,
    start: int,
    t: np.ndarray,
    noisy: bool,
    name: str,
    log,
    params,
) -> list:
    """Read noise and I-V of the periods in ``pending`` whose tail has been simulated.

    Read noise: the built-in model's noise port multiplies the read current by
    ``1 + a(state) * V(n)``; driven with 1 it gives ``a``, the standard deviation of the
    read under unit white noise, exactly (a device without that port has none: 0)."""
    later = []
    for c, lv, period in pending:
        t0 = period * tm.period
        if t[-1] < t0 + tm.period:
            later.append((c, lv, period))
            continue
        i = session.vector_tail(f"i(vs{c})", start)
        v = session.vector_tail(f"v(d{c})", start)
        if noisy:
            t_noise = t0 + tm.noise_start + tm.edge + 0.5 * (tm.t_read - 2 * tm.edge)
            g_noise = float(np.interp(t_noise, t, i) / np.interp(t_noise, t, v))
            out.read_sigma[lv, c] = abs(g_noise - out.g_final[lv, c])
        a = t0 + tm.iv_start
        leg = (t >= a + tm.iv_time) & (t <= a + 3 * tm.iv_time)
        if leg.sum() < 4:
            raise SimulationError(name, f"too few points on the I-V leg of level {lv}", log, params)
        order = np.argsort(v[leg])
        out.iv_current[lv, c] = np.interp(iv_v, v[leg][order], i[leg][order])
    return later


def _record(
    out: BatchResult, lv: int, c: int, g: float, pulses: int, energy: float, time: float, ok: bool, period: int
) -> None:
    out.g_final[lv, c] = g
    out.pulses[lv, c] = pulses
    out.energy[lv, c] = energy
    out.time[lv, c] = time
    out.converged[lv, c] = ok
    out.level_end[lv, c] = period


# ---------------------------------------------------------------------------- command line
#: Parameters every scheme has (the rest belong to one scheme or another).
def _scheme_fields() -> dict[str, set[str]]:
    import dataclasses
    from rramsim.devices.schemes import SCHEMES

    return {name: {f.name for f in dataclasses.fields(cls)} for name, cls in SCHEMES.items()}


_HELP = {
    "read_voltage": "V, verify read",
    "tolerance": "relative write-verify tolerance",
    "max_pulses": "pulses per level, the erase included",
    "polarity": "+1: SET with a positive pulse on the first port (-1: negative)",
    "reset_start": "V, first RESET pulse",
    "reset_step": "V, RESET increment",
    "reset_max": "V, largest RESET pulse",
    "erase": "V, the RESET that starts every level",
    "reset_width": "s, RESET/erase pulse width (default: the SET width)",
    "verify_reads": "verify reads averaged",
    "max_step": "s, simulator step cap (default: a tenth of the longest pulse)",
    "v_start": "ispp: V, first SET pulse",
    "v_step": "ispp: V, SET increment",
    "v_max": "ispp: V, largest SET pulse",
    "pulse_width": "ispp/igvva: s, SET pulse width",
    "v_set": "igvva/pulse-width: V, the SET pulse",
    "vg_start": "igvva: V, first word-line voltage",
    "vg_step": "igvva: V, word-line increment",
    "vg_max": "igvva: V, largest word-line voltage",
    "vg_reset": "igvva: V, word line during RESET",
    "width_start": "pulse-width: s, first SET width",
    "width_factor": "pulse-width: width ratio of consecutive pulses",
    "width_max": "pulse-width: s, longest SET pulse",
}


def add_scheme_arguments(parser) -> None:
    """``--scheme`` and one flag per scheme parameter (``--v-start``, ``--vg-step``, ...)."""
    from rramsim.cosim.argtypes import number
    from rramsim.devices.schemes import SCHEMES

    parser.add_argument(
        "--scheme",
        choices=list(SCHEMES),
        help="write-verify scheme (default: ispp for the built-in model; the probe's proposal "
        "for a --netlist/--veriloga device)",
    )
    seen = set()
    for fields in _scheme_fields().values():
        for name in sorted(fields - seen):
            seen.add(name)
            kind = int if name in ("max_pulses", "verify_reads", "polarity") else number
            parser.add_argument(
                "--" + name.replace("_", "-"), dest=f"scheme_{name}", type=kind, default=None, help=_HELP.get(name)
            )


def scheme_from_args(args, proposal: Scheme | None = None) -> Scheme | None:
    """The scheme the command line asks for: ``--scheme`` (else the proposal's, else the one
    the given parameter flags belong to, else ISPP) with the proposal's values where that
    scheme has them, then every flag given. None when no scheme flag was given at all and
    there is no proposal (the caller's default applies)."""
    import dataclasses
    from rramsim.devices.schemes import SCHEMES, make_scheme

    fields = _scheme_fields()
    given = {k[len("scheme_") :]: v for k, v in vars(args).items() if k.startswith("scheme_") and v is not None}
    if args.scheme is None and not given and proposal is None:
        return None
    common = set.intersection(*fields.values())
    own = set(given) - common
    if args.scheme:
        name = args.scheme
    else:
        fits = [n for n in SCHEMES if own <= fields[n]]
        if not fits:
            raise ValueError(
                "the scheme flags "
                + ", ".join("--" + k.replace("_", "-") for k in sorted(own))
                + " belong to different schemes; pick one with --scheme"
            )
        name = proposal.name if proposal is not None and proposal.name in fits else fits[0]
    stray = sorted(set(given) - fields[name])
    if stray:
        raise ValueError(
            f"scheme {name} has no parameter "
            + ", ".join("--" + k.replace("_", "-") for k in stray)
            + f"; its parameters: "
            + ", ".join("--" + k.replace("_", "-") for k in sorted(fields[name]))
        )
    base = {}
    if proposal is not None:
        base = {k: v for k, v in dataclasses.asdict(proposal).items() if k in fields[name]}
        if proposal.name != name:
            base = {k: v for k, v in base.items() if k in common}
    if "reset_width" not in given and ("pulse_width" in given or "width_start" in given):
        base.pop("reset_width", None)  # follows the SET width given
    return make_scheme(name, **{**base, **given})
