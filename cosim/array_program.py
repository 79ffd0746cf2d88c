"""Programming inside an array: write-verify of every cell of an R x C array in ngspice.

The array is built of the table's own device (:func:`rramsim.cosim.validate_array.table_device`),
1R or 1T1R, with wire resistance per segment, and written with the table's programming
scheme (:mod:`rramsim.devices.schemes`) under the array's biasing (1R: V/2 or V/3
half-select; 1T1R: word-line selection; see :mod:`rramsim.circuits.array_write`). Every
cell gets a random level of the table (seeded). Two write orders (``write_order``):

* ``"row"`` (default; how array macros write): row after row, all cells of a row
  together. One ngspice deck per row; every round is one period: each column still
  writing gets the scheme's next pulse on its own line driver, finished columns are
  inhibited (1R: held at the half-select level; 1T1R: word line off), and one verify read
  of the whole row gives every column's conductance. A round drives one sign and width of
  pulse; columns wanting the other wait a round (:func:`_drive_row`). The transient
  dominates a round's cost (deck loading is once per row; the ``profile`` times say so).
* ``"cell"``: one cell after another, row-major. One deck per cell, the selected cell
  driven pulse by pulse (:func:`_drive`); tens of times slower.

Either way the deck is the whole array with every cell in its current state, driven by a
transient that pauses in every verify plateau (like :mod:`rramsim.cosim.writeverify`); at
the end of a deck every cell's state is read from its state node and starts the next
deck. After every deck the run is checkpointed (``checkpoint``: an ``.npz`` written
atomically), and a run given the same checkpoint and settings resumes where it stopped.

Measured per position: pulses, energy (everything the line drivers deliver during the
cell's write, half-selected cells' currents included; row-parallel: each round's energy
shared by the columns pulsed in it), time (row-parallel: from the row's start to the
cell's end) and the verify conductance;
the same levels are programmed in an isolated cell of the same device, cell and scheme
(the isolated-cell engine, :func:`rramsim.cosim.writeverify.run_batch`), and the ratios are
the position's cost factors. After the whole array is written, each cell's conductance
(read from its state in an isolated cell at the read voltage, in ngspice) is compared with
the one it had when its own write ended: the write disturb of the cells written after it.

The device runs nominal (no device-to-device or cycle-to-cycle spread), so the differences
between positions are the array's. The built-in model compiled from Verilog-A is written as
its behavioural subcircuit (same equations: its state is then a readable node); a user's
subcircuit needs the internal node holding its state (``state_node``) and an initial
(erased) state value.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rramsim.circuits.array_write import BIASES, probe_vectors, row_write_deck, state_vector, write_deck
from rramsim.circuits.testbenches import Device, builtin_device
from rramsim.cosim.files import atomic_write
from rramsim.devices import DeviceTable
from rramsim.devices.schemes import Scheme, scheme_from_attrs
from rramsim.devices.table import ARRAY_STATS, ArrayGroup

BUILTIN = ("i0", "g0", "v0", "g_min", "g_max")
#: Write orders: every row's cells together (row-parallel), or one cell after another
#: (row-major); the /array group's ``write_order`` attribute names them so.
ORDERS = {"row": "row-parallel", "cell": "row-major"}


@dataclass
class ArrayWrite:
    """What to write: a table, an array size, cell, bias and wires."""

    table: DeviceTable
    rows: int
    cols: int
    cell: str | None = None  # None: the table's own cell
    bias: str | float | None = None  # "V/2", "V/3" (1R), "word-line" (1T1R) or a half-select fraction
    wire_resistance: float = 1.0
    seed: int = 0
    scheme: Scheme | None = None  # None: the table's own scheme
    levels: np.ndarray | None = None  # [rows, cols] level indices (None: random, seeded)
    state_node: str | None = None  # user subcircuit: the node holding its state
    initial_state: float | None = None  # user subcircuit: the state of an erased cell
    cells: list | None = None  # the cells to write, in order (None: all, row-major; write_order "cell")
    write_order: str = "row"  # "row": each row's cells together (row-parallel); "cell": one by one

    def __post_init__(self) -> None:
        for name in ("rows", "cols"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive whole number, got {v!r}")
        if not (
            isinstance(self.wire_resistance, (int, float))
            and math.isfinite(self.wire_resistance)
            and self.wire_resistance > 0
        ):
            raise ValueError(
                f"wire_resistance must be a finite positive resistance (ohm per segment), got {self.wire_resistance!r}"
            )
        table_cell = str(self.table.model.get("cell", "1R"))
        self.cell = self.cell or table_cell
        if self.cell not in ("1R", "1T1R"):
            raise ValueError(f"cell must be '1R' or '1T1R', got {self.cell!r}")
        if table_cell == "1T1R" and self.cell == "1R":
            raise ValueError(
                "the table was characterized as 1T1R cells; a 1R array cannot be built from it "
                "(use cell 1T1R or a 1R table)"
            )
        if self.bias is None:
            self.bias = "V/2" if self.cell == "1R" else "word-line"
        if self.scheme is None:
            self.scheme = scheme_from_attrs(self.table.scheme)
        if self.scheme.gate_control and self.cell != "1T1R":
            raise ValueError(f"the {self.scheme.name} scheme steps the word line of a 1T1R cell: use cell 1T1R")
        _ = self.half_select
        if self.levels is None:
            rng = np.random.default_rng(self.seed)
            self.levels = rng.integers(0, self.table.n_levels, (self.rows, self.cols))
        self.levels = np.asarray(self.levels)
        if (
            self.levels.shape != (self.rows, self.cols)
            or self.levels.min() < 0
            or self.levels.max() >= self.table.n_levels
        ):
            raise ValueError(f"levels must be [{self.rows}, {self.cols}] indices 0..{self.table.n_levels - 1}")
        if self.write_order not in ORDERS:
            raise ValueError(
                f"write_order must be one of {', '.join(ORDERS)} (row-parallel or cell by cell), "
                f"got {self.write_order!r}"
            )
        if self.cells is not None and self.write_order != "cell":
            raise ValueError("chosen cells are written one by one: give write_order='cell' with cells")
        if self.cells is not None:
            self.cells = [(int(i), int(j)) for i, j in self.cells]
            bad = [c for c in self.cells if not (0 <= c[0] < self.rows and 0 <= c[1] < self.cols)]
            if bad or len(set(self.cells)) != len(self.cells) or not self.cells:
                raise ValueError(
                    f"cells must be distinct (row, col) positions inside the {self.rows}x{self.cols} "
                    f"array, got {self.cells}"
                )

    @property
    def order(self) -> list[tuple[int, int]]:
        """The write order: ``cells``, or every cell row by row."""
        return self.cells or [divmod(q, self.cols) for q in range(self.rows * self.cols)]

    @property
    def whole(self) -> bool:
        return self.cells is None

    @property
    def half_select(self) -> float:
        """Unselected-line voltage as a fraction of the pulse (see circuits.array_write)."""
        b = self.bias
        if isinstance(b, str):
            if self.cell == "1R" and b in BIASES:
                return BIASES[b]
            if self.cell == "1T1R" and b == "word-line":
                return 0.0
            choices = ", ".join(BIASES) if self.cell == "1R" else "word-line"
            raise ValueError(
                f"bias {b!r} is not one of a {self.cell} array's ({choices}); or give the "
                "half-select fraction as a number"
            )
        h = float(b)
        if not 0 <= h <= 0.5:
            raise ValueError(f"half-select fraction must be in [0, 0.5], got {h}")
        return h

    @property
    def bias_name(self) -> str:
        return self.bias if isinstance(self.bias, str) else f"h={float(self.bias):.4g}"

    def key(self) -> str:
        """A digest of everything the run depends on (a checkpoint must match it)."""
        d = {
            "rows": self.rows,
            "cols": self.cols,
            "cell": self.cell,
            "h": self.half_select,
            "r": self.wire_resistance,
            "scheme": self.scheme.attrs(),
            "levels": self.levels.tolist(),
            "model": {k: str(v) for k, v in self.table.model.items()},
            "netlist": self.table.model_netlist,
            "targets": self.table.targets.tolist(),
            "node": self.state_node,
            "init": self.initial_state,
            "cells": self.cells,
            "order": self.write_order,
        }
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


@dataclass
class ArrayWriteResult:
    spec: ArrayWrite
    pulses: np.ndarray  # [R, C]
    energy: np.ndarray  # [R, C] J, all line drivers
    time: np.ndarray  # [R, C] s, the cell's pulses and verify reads
    g_verify: np.ndarray  # [R, C] S, the verify read that ended the write
    converged: np.ndarray  # [R, C]
    state_after: np.ndarray  # [R, C] each cell's state when its own write ended
    state_end: np.ndarray  # [R, C] after the whole array was written
    g_after: np.ndarray  # [R, C] S, isolated-cell conductance of state_after
    g_end: np.ndarray  # [R, C] S, of state_end
    isolated: dict  # pulses/energy/time [L] of the isolated cell
    times: dict = field(default_factory=dict)

    @property
    def disturb(self) -> np.ndarray:
        """Relative conductance change of every cell after its own write [R, C]."""
        return self.g_end / self.g_after - 1.0

    def factors(self) -> dict[str, np.ndarray]:
        lv = self.spec.levels
        return {f"{n}_factor": getattr(self, n) / self.isolated[n][lv] for n in ("pulses", "energy", "time")}


# ---------------------------------------------------------------------------- the device
def write_device(spec: ArrayWrite) -> tuple[Device, str | None, str | None, str, float]:
    """(device, state_param, state_node, read_node, erased state) of the table's device.

    The built-in model runs compiled from Verilog-A where OpenVAF and an OSDI-capable
    ngspice are at hand (many times faster in arrays); its state is then ``x0 + V(y)`` of
    the instance's internal node ``y`` (read_node ``n1#y``, relative to the state set)."""
    from rramsim.cosim.validate_array import table_device

    table = spec.table
    vg = float(table.model.get("v_gate", Device.v_gate))
    wl = float(table.model.get("w_over_l", Device.w_over_l))
    if all(k in table.model for k in BUILTIN):
        from rramsim.devices import CompactModel

        params = {k: float(table.model[k]) for k in CompactModel().params() if k in table.model}
        try:
            from rramsim.cosim.ngspice import Session
            from rramsim.cosim.osdi import builtin_va_device

            if not Session.get().has_osdi:
                raise RuntimeError("no OSDI")
            dev, read = builtin_va_device(params, spec.cell), "n1#y"
        except Exception:  # noqa: BLE001  no compiler / old ngspice: the behavioural subcircuit
            dev, read = builtin_device(params, spec.cell), "x"
        dev = Device(dev.subckt, dev.definition, dev.params, spec.cell, vg, wl, dev.controls, dev.osdi)
        return dev, "x0", None, read, float(table.model["g_max"])
    dev, param = table_device(table, spec.cell)
    if dev.osdi:
        raise ValueError(
            "writing an array of a user's Verilog-A device is not supported (its state is not a "
            "readable node); characterize it as a subcircuit for this"
        )
    if spec.state_node is None or spec.initial_state is None:
        raise ValueError(
            f"subcircuit {dev.subckt}: give the internal node holding its state (--state-node) and "
            "the state of an erased cell (--initial-state)"
        )
    dev = Device(dev.subckt, dev.definition, dev.params, spec.cell, vg, wl, dev.controls, dev.osdi)
    return dev, None, spec.state_node, spec.state_node, float(spec.initial_state)


# ---------------------------------------------------------------------------- one cell
def _alter(session, source: str, lo: float, hi: float, width: float, tm, name: str) -> None:
    from rramsim.circuits.testbenches import pulse_vector
    from rramsim.cosim.ngspice import SimulationError

    log = session.command(f"alter @{source}[pulse] = {pulse_vector(lo, hi, width, tm)}")
    bad = session.failures(log)
    if bad:
        raise SimulationError(name, f"alter {source} failed: {bad[0]}", log)


def write_cell(
    spec: ArrayWrite, device: Device, states: np.ndarray, cell: tuple[int, int], param, node, read_node: str
) -> tuple[dict, np.ndarray]:
    """Write-verify of ``cell`` inside the array in ``states``: its outcome and every
    cell's state at the end."""
    from rramsim.cosim.ngspice import Session, run_with_retries
    from rramsim.cosim.writeverify import timing

    s = spec.scheme
    tm = timing(s)
    i, j = cell
    target = float(spec.table.targets[spec.levels[i, j]])
    lo, hi = target * (1 - s.tolerance), target * (1 + s.tolerance)
    name = f"array write {spec.rows}x{spec.cols} cell ({i},{j})"
    params = {"cell": f"{i},{j}", "target": target}
    session = Session.get()
    probes = probe_vectors(cell)
    names = [state_vector(r, c, read_node) for r in range(spec.rows) for c in range(spec.cols)]

    def attempt(options: str):
        erase = s.erase_pulse()
        deck = write_deck(
            device,
            states,
            spec.wire_resistance,
            cell,
            tm,
            erase,
            spec.cell,
            spec.half_select,
            param,
            node,
            read_node,
            options,
        )
        session.load(deck, name, params)
        try:
            out = _drive(session, s, tm, lo, hi, probes, name, params, spec.half_select, device)
            final = np.array([session.vector_tail(n, session.vector_length(n) - 1)[0] for n in names])
        finally:
            session.free()
        final = final.reshape(states.shape)
        return out, final + states if "#" in read_node else final  # OSDI: V(y) is the change

    return run_with_retries(attempt, name)


def _drive(
    session,
    scheme: Scheme,
    tm,
    lo: float,
    hi: float,
    probes: list,
    name: str,
    params: dict,
    half_select: float,
    device: Device,
) -> dict:
    """The closed loop of one cell (the deck holds the erase pulse in the first period)."""
    from rramsim.cosim.ngspice import SimulationError
    from rramsim.cosim.writeverify import _verify
    from rramsim.circuits.array_write import line_voltages

    s_col, v_ds, i_pa, v_du, i_pu, v_cu, i_pc, v_cs, i_ps = probes
    pulse = applied = scheme.erase_pulse()
    count, energy, elapsed, streak, direction = 0, 0.0, 0.0, 0, 0
    step = scheme.step_cap
    t_stop = (scheme.max_pulses + 3) * tm.period
    start = 0
    for k in range(scheme.max_pulses + 1):
        if k and pulse != applied:
            gate = device.v_gate if pulse.gate is None else pulse.gate
            lv = line_voltages(device.cell, half_select, pulse.amplitude, gate)
            old = line_voltages(
                device.cell, half_select, applied.amplitude, device.v_gate if applied.gate is None else applied.gate
            )
            for src, key in (("vpa", "row"), ("vpu", "rows"), ("vpc", "cols"), ("vps", "col")):
                if (lv[key], pulse.width) != (old[key], applied.width):
                    _alter(session, src, 0.0, lv[key], pulse.width, tm, name)
            if device.cell == "1T1R" and (lv["gate"], pulse.width) != (old["gate"], applied.width):
                _alter(session, "vwg", device.v_gate, lv["gate"], pulse.width, tm, name)
        applied = pulse
        session.command("delete all")
        session.command(f"stop when time > {tm.stop_time(k)!r}")
        log = session.run(f"tran {step!r} {t_stop!r} 0 {step!r} uic" if k == 0 else "resume", name, params)
        t = session.vector_tail("time", start)
        if t.size == 0 or t[-1] < tm.stop_time(k):
            raise SimulationError(name, f"transient stopped early in period {k}", log, params)
        tail = {n: session.vector_tail(n, start) for n in probes}
        g = _verify(t, tail[s_col], tail[v_ds], tm.read_times(k))
        if not math.isfinite(g):
            raise SimulationError(name, f"non-finite verify read in period {k}", log, params)
        power = -(tail[v_ds] * tail[i_pa] + tail[v_du] * tail[i_pu] + tail[v_cu] * tail[i_pc] + tail[v_cs] * tail[i_ps])
        energy += float(np.trapezoid(power, t))
        elapsed += tm.cell_time(applied.width)
        count += 1
        if count > 1 and lo <= g <= hi or count >= scheme.max_pulses:
            return {"pulses": count, "energy": energy, "time": elapsed, "g": g, "converged": lo <= g <= hi}
        pulse, direction, streak = scheme.next_pulse(g, lo, hi, direction, streak)
        start += t.size - 1
    raise SimulationError(name, "write-verify did not finish within its period budget", [], params)


# ---------------------------------------------------------------------------- one row, in parallel
def write_row(
    spec: ArrayWrite, device: Device, states: np.ndarray, row: int, param, node, read_node: str
) -> tuple[dict, np.ndarray]:
    """Write-verify of every cell of ``row`` together (see :func:`_drive_row`): per column
    its outcome ([C] arrays) and every cell's state at the end."""
    from rramsim.cosim.ngspice import Session, run_with_retries
    from rramsim.cosim.writeverify import timing

    s = spec.scheme
    tm = timing(s)
    C = spec.cols
    targets = spec.table.targets[spec.levels[row]]
    name = f"array write {spec.rows}x{spec.cols} row {row}"
    params = {"row": row}
    session = Session.get()
    names = [state_vector(r, c, read_node) for r in range(spec.rows) for c in range(C)]

    def attempt(options: str):
        deck = row_write_deck(
            device,
            states,
            spec.wire_resistance,
            row,
            tm,
            [s.erase_pulse()] * C,
            spec.cell,
            spec.half_select,
            param,
            node,
            read_node,
            options,
        )
        t0 = time.perf_counter()
        session.load(deck, name, params)
        spec_times = {"load": time.perf_counter() - t0}
        try:
            out = _drive_row(session, spec, tm, targets, row, names, name, params, device, spec_times)
            final = np.array([session.vector_tail(n, session.vector_length(n) - 1)[0] for n in names])
        finally:
            session.free()
        final = final.reshape(states.shape)
        if "#" in read_node:  # OSDI: V(y) is the change from the state set
            final = final + states
            out["state_after"] = out["state_after"] + states[row]
        out["profile"] = spec_times
        return out, final

    return run_with_retries(attempt, name)


def column_energy(
    t: np.ndarray,
    v_ds: np.ndarray,
    v_du: np.ndarray,
    v_row: np.ndarray,
    i_col: np.ndarray,
    v_cd: np.ndarray,
    wire_resistance: float,
) -> np.ndarray:
    """Energy [C] delivered to each column's cells in one round of a row-parallel write.

    The selected row's segment currents follow from its node voltages ``v_row`` [C, T]
    (the driver ``v_ds`` feeds node 0 through one segment), and the current of its cell in
    column j is the difference of the segments on either side; the rest of column j's
    current ``i_col`` comes from the unselected rows (driver ``v_du``). Column j's energy
    is ``(v_ds - v_cd) i_sel + (v_du - v_cd) i_unsel`` integrated: every current runs from
    a row driver through one cell into a column driver, so the columns' energies add up
    to everything the drivers deliver (wire losses included, on the path they occur)."""
    left = np.vstack([v_ds[None], v_row[:-1]])
    seg = (left - v_row) / float(wire_resistance)  # current into node j from its left
    i_sel = seg - np.vstack([seg[1:], np.zeros_like(seg[:1])])
    power = (v_ds - v_cd) * i_sel + (v_du - v_cd) * (i_col - i_sel)
    return np.trapezoid(power, t, axis=1)


def _alter_row(session, source: str, params: tuple, name: str) -> None:
    from rramsim.circuits.render import number
    from rramsim.cosim.ngspice import SimulationError

    log = session.command(f"alter @{source}[pulse] = [ " + " ".join(number(x, "pulse") for x in params) + " ]")
    bad = session.failures(log)
    if bad:
        raise SimulationError(name, f"alter {source} failed: {bad[0]}", log)


def _round_class(pulses: list, pending: list[int], last) -> tuple:
    """The (sign, width) of the pulses the next round gives: of the pending columns' next
    pulses (amplitude 0: none needed), the class not served last round first, then the
    most numerous (a round drives one sign and one width; the others wait a round)."""
    classes: dict = {}
    for c in pending:
        p = pulses[c]
        if p.amplitude != 0:
            key = (p.amplitude > 0, float(p.width))
            classes[key] = classes.get(key, 0) + 1
    if not classes:
        return None
    return min(classes, key=lambda k: (k == last, -classes[k], k))


def _drive_row(
    session,
    spec: ArrayWrite,
    tm,
    targets: np.ndarray,
    row: int,
    names: list,
    name: str,
    params: dict,
    device: Device,
    prof: dict,
) -> dict:
    """The closed loop of one row: every round one period (pulse on the active columns,
    verify read of the whole row); the deck holds the erase of every column in period 0.

    Per column it follows the cell-by-cell loop (:func:`_drive`): the scheme's next pulse
    after every verify read, done when within the window (after at least the erase and one
    more period) or after ``max_pulses``. A column whose next pulse is of another sign or
    width than the round's waits (inhibited, not counted); one that needs none (amplitude 0,
    in the window right after the erase) is inhibited and its period counted, as the
    cell-by-cell loop counts it. Energy: a round's pulsed column gets its own column's
    energy (:func:`column_energy`) and an equal share of the other columns' (their cells'
    half-select currents), so the row's columns add up to all the drivers deliver; time:
    the periods from the row's start to the column's end (a row's cells finish together
    at its slowest)."""
    from rramsim.circuits.array_write import row_line_voltages, row_pulse
    from rramsim.cosim.ngspice import SimulationError
    from rramsim.cosim.writeverify import _verify

    scheme = spec.scheme
    C = spec.cols
    lo, hi = targets * (1 - scheme.tolerance), targets * (1 + scheme.tolerance)
    erase = scheme.erase_pulse()
    pulse = [erase] * C
    count = np.zeros(C, int)
    energy = np.zeros(C)
    elapsed = np.zeros(C)
    g_end = np.full(C, np.nan)
    converged = np.zeros(C, bool)
    state_after = np.full(C, np.nan)
    streak = np.zeros(C, int)
    direction = np.zeros(C, int)
    done = np.zeros(C, bool)
    vg = float(device.v_gate)
    applied = None  # the line voltages in the deck: (row, rows, cols, gates, width)
    last = None
    step = scheme.step_cap
    max_rounds = 2 * C * scheme.max_pulses + 2
    t_stop = (max_rounds + 3) * tm.period
    own = [row * C + c for c in range(C)]  # names is row-major over the array
    start = 0
    prof.setdefault("alter", 0.0)
    prof.setdefault("transient", 0.0)
    prof.setdefault("read", 0.0)
    prof["rounds"] = 0
    for k in range(max_rounds):
        pending = [c for c in range(C) if not done[c]]
        cls = (erase.amplitude > 0, float(erase.width)) if k == 0 else _round_class(pulse, pending, last)
        active = [
            c
            for c in pending
            if pulse[c].amplitude != 0 and cls is not None and (pulse[c].amplitude > 0, float(pulse[c].width)) == cls
        ]
        counted = active + [c for c in pending if pulse[c].amplitude == 0]
        width = cls[1] if cls is not None else scheme.set_width
        amps = [pulse[c].amplitude if c in active else None for c in range(C)]
        t0 = time.perf_counter()
        if active:
            lv = row_line_voltages(
                spec.cell, spec.half_select, amps, [pulse[c].gate if c in active else None for c in range(C)], vg
            )
        else:  # nothing to pulse: every line at 0 (word lines off) in the slot
            lv = {"row": 0.0, "rows": 0.0, "cols": [0.0] * C, "gates": [0.0] * C}
        now = (lv["row"], lv["rows"], tuple(lv["cols"]), tuple(lv.get("gates", ())), width)
        if k and now != applied:
            old = applied
            for src, a, b in (("vpa", now[0], old[0]), ("vpu", now[1], old[1])):
                if (a, width) != (b, old[4]):
                    _alter_row(session, src, row_pulse(0.0, a, width, tm), name)
            for j in range(C):
                if (now[2][j], width) != (old[2][j], old[4]):
                    _alter_row(session, f"vpc{j}", row_pulse(0.0, now[2][j], width, tm), name)
                if spec.cell == "1T1R" and (now[3][j], width) != (old[3][j], old[4]):
                    _alter_row(session, f"vwg{j}", row_pulse(vg, now[3][j], width, tm, True), name)
        applied = now
        last = cls
        session.command("delete all")
        session.command(f"stop when time > {tm.stop_time(k)!r}")
        t1 = time.perf_counter()
        log = session.run(f"tran {step!r} {t_stop!r} 0 {step!r} uic" if k == 0 else "resume", name, params)
        t2 = time.perf_counter()
        t = session.vector_tail("time", start)
        if t.size == 0 or t[-1] < tm.stop_time(k):
            raise SimulationError(name, f"transient stopped early in round {k}", log, params)
        tail = lambda v: session.vector_tail(v, start)  # noqa: E731
        v_ds, v_du = tail("v(ds)"), tail("v(du)")
        i_col = np.array([tail(f"i(vcol{j})") for j in range(C)])
        v_cd = np.array([tail(f"v(cd{j})") for j in range(C)])
        e_col = column_energy(
            t, v_ds, v_du, np.array([tail(f"v(r{row}_{j})") for j in range(C)]), i_col, v_cd, spec.wire_resistance
        )
        g = np.full(C, np.nan)
        for j in range(C):
            if not done[j]:
                g[j] = _verify(t, i_col[j], v_ds, tm.read_times(k))
        share = active or counted
        # each column pulsed this round: its own column's energy and an equal share of the others'
        # (inhibited cells' half-select currents, which the pulsed columns cause)
        rest = (e_col.sum() - e_col[share].sum()) / len(share)
        cell_time = tm.cell_time(width)
        for c in pending:
            if not math.isfinite(g[c]):
                raise SimulationError(name, f"non-finite verify read of column {c} in round {k}", log, params)
            elapsed[c] += cell_time
            if c in share:
                energy[c] += e_col[c] + rest
            if c not in counted:
                continue
            count[c] += 1
            if count[c] > 1 and lo[c] <= g[c] <= hi[c] or count[c] >= scheme.max_pulses:
                done[c], g_end[c], converged[c] = True, g[c], lo[c] <= g[c] <= hi[c]
                state_after[c] = session.vector_tail(names[own[c]], session.vector_length(names[own[c]]) - 1)[0]
                continue
            pulse[c], direction[c], streak[c] = scheme.next_pulse(g[c], lo[c], hi[c], direction[c], streak[c])
        prof["alter"] += t1 - t0
        prof["transient"] += t2 - t1
        prof["read"] += time.perf_counter() - t2
        prof["rounds"] = k + 1
        start += t.size - 1
        if done.all():
            return {
                "pulses": count.astype(float),
                "energy": energy,
                "time": elapsed,
                "g": g_end,
                "converged": converged,
                "state_after": state_after,
            }
    raise SimulationError(name, "the row's write-verify did not finish within its round budget", [], params)


# ---------------------------------------------------------------------------- isolated cell and reads
def isolated_costs(spec: ArrayWrite, device: Device) -> dict[str, np.ndarray]:
    """Pulses, energy and time [L] of every level in an isolated cell (same device, cell,
    scheme; nominal; the isolated-cell engine), each level written into a fresh cell in the
    erased state the array's cells start from. (One run through all levels in one cell
    gives the same pulse counts but not the same energy: each level's erase then starts
    from the previous level's state, and erasing a high-conductance state dissipates far
    more than erasing an erased cell -- up to 14% of a high level's energy for the 1T1R
    default table.)"""
    from rramsim.cosim.writeverify import BatchSpec, run_batch

    targets = np.asarray(spec.table.targets, dtype=float)
    runs = [
        run_batch(BatchSpec(lv, device, [None], targets[lv : lv + 1], spec.scheme, [0])) for lv in range(targets.size)
    ]
    cat = lambda name: np.array([getattr(r, name)[0, 0] for r in runs])  # noqa: E731
    return {
        "pulses": cat("pulses").astype(float),
        "energy": cat("energy"),
        "time": cat("time"),
        "g": cat("g_final"),
        "converged": cat("converged"),
    }


def state_conductance(spec: ArrayWrite, device: Device, states: np.ndarray, param, node) -> np.ndarray:
    """Read conductance at the read voltage of isolated cells in ``states`` (ngspice; the
    table's cell: a 1T1R cell with its transistor)."""
    from rramsim.cosim.validate_array import state_curve

    vr = float(spec.scheme.read_voltage)
    flat = np.asarray(states, dtype=float).ravel()
    out = np.concatenate(
        [state_curve(device, flat[q : q + 256], vr, spec.cell, param, node) for q in range(0, flat.size, 256)]
    )
    return out.reshape(np.shape(states))


# ---------------------------------------------------------------------------- the run
def run_write(
    spec: ArrayWrite, checkpoint: str | os.PathLike | None = None, progress: bool = False, isolated: dict | None = None
) -> ArrayWriteResult:
    """Write the whole array (resuming from ``checkpoint`` when it matches ``spec``)."""
    device, param, node, read_node, erased = write_device(spec)
    R, C = spec.rows, spec.cols
    key = spec.key()
    fields = ("pulses", "energy", "time", "g_verify", "converged", "state_after")
    rec = {n: np.full((R, C), np.nan) for n in fields}
    states = np.full((R, C), erased)
    done, spent = 0, 0.0
    path = Path(checkpoint) if checkpoint else None
    if path is not None and path.is_file():
        with np.load(path) as ck:
            if str(ck["key"]) != key:
                raise ValueError(
                    f"checkpoint {path} belongs to another array write (other table, size, bias, "
                    "scheme or levels); remove it or give another path"
                )
            done = int(ck["done"])
            states = ck["states"].copy()
            rec = {n: ck[n].copy() for n in fields}
            spent = float(ck["elapsed"]) if "elapsed" in ck else math.nan  # wall time of the earlier part
    times = {"array write": 0.0}
    steps = list(range(R)) if spec.write_order == "row" else spec.order  # rows, or cells
    unit = "row" if spec.write_order == "row" else "cell"
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(
            total=len(steps),
            initial=done,
            desc=f"array write {R}x{C} {spec.cell} {spec.bias_name} ({ORDERS[spec.write_order]})",
            unit=unit,
        )
    t0 = time.perf_counter()
    for q in range(done, len(steps)):
        if spec.write_order == "row":
            i = steps[q]
            out, states = write_row(spec, device, states, i, param, node, read_node)
            for n in ("pulses", "energy", "time", "converged", "state_after"):
                rec[n][i] = out[n]
            rec["g_verify"][i] = out["g"]
            for n, v in out["profile"].items():
                times[f"profile {n}"] = times.get(f"profile {n}", 0.0) + v
        else:
            i, j = steps[q]
            out, states = write_cell(spec, device, states, (i, j), param, node, read_node)
            for n in ("pulses", "energy", "time", "converged"):
                rec[n][i, j] = out[n]
            rec["g_verify"][i, j] = out["g"]
            rec["state_after"][i, j] = states[i, j]
        if path is not None:
            _save_checkpoint(path, key, q + 1, states, rec, spent + time.perf_counter() - t0)
        if bar is not None:
            bar.update(1)
    times["array write"] = spent + time.perf_counter() - t0  # NaN: resumed from a run that did not time itself
    if bar is not None:
        bar.close()
    times["cell-pulses"] = float(np.nansum(rec["pulses"]))
    t0 = time.perf_counter()
    if isolated is None:
        isolated = isolated_costs(spec, device)
    times["isolated cell"] = time.perf_counter() - t0
    written = np.isfinite(rec["state_after"])
    g_after = np.full((R, C), np.nan)
    g_after[written] = state_conductance(spec, device, rec["state_after"][written], param, node)
    g_end = np.full((R, C), np.nan)
    g_end[written] = state_conductance(spec, device, states[written], param, node)
    return ArrayWriteResult(
        spec,
        rec["pulses"],
        rec["energy"],
        rec["time"],
        rec["g_verify"],
        rec["converged"] == 1,
        rec["state_after"],
        states,
        g_after,
        g_end,
        isolated,
        times,
    )


def _save_checkpoint(path: Path, key: str, done: int, states: np.ndarray, rec: dict, elapsed: float) -> None:
    import io

    buf = io.BytesIO()
    np.savez(buf, key=np.array(key), done=np.array(done), states=states, elapsed=np.array(elapsed), **rec)
    atomic_write(path, buf.getvalue())


# ---------------------------------------------------------------------------- statistics
def later_writes(rows: int, cols: int, order: str = "cell") -> tuple[np.ndarray, np.ndarray]:
    """Per cell, the events that disturb it after its own write (the torch model's
    :func:`rramsim.models.array_effects.later_writes`, in numpy): cell by cell, row-major:
    later writes on its row or column (half-select events) and later writes elsewhere;
    row-parallel: later rows written (each a half-select event: pulses on its column) and
    one more event, the rest of its own row's write after its column was inhibited."""
    i, j = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    if order == "row":
        return rows - 1 - i, np.ones_like(i)
    half = (cols - 1 - j) + (rows - 1 - i)
    return half, rows * cols - 1 - (i * cols + j) - half


def _fit_events(y: np.ndarray, nh: np.ndarray, no: np.ndarray, other: bool = True) -> tuple[float, float, float, float]:
    """Per-event mean and sigma of ``y = sum of nh half-select and no other events``:
    means by least squares on (nh, no), variances from the squared residuals the same way.
    ``other=False``: the bias puts no voltage on the other cells, their events count 0."""
    x = np.stack([nh, no if other else np.zeros_like(no)], axis=1).astype(float)
    if y.size == 0 or not np.any(x):
        return 0.0, 0.0, 0.0, 0.0
    cols = [k for k in range(2) if np.any(x[:, k])]
    mean = np.zeros(2)
    mean[cols] = np.linalg.lstsq(x[:, cols], y, rcond=None)[0]
    res2 = (y - x @ mean) ** 2
    var = np.zeros(2)
    var[cols] = np.clip(np.linalg.lstsq(x[:, cols], res2, rcond=None)[0], 0.0, None)
    return float(mean[0]), float(np.sqrt(var[0])), float(mean[1]), float(np.sqrt(var[1]))


def disturb_stats(result: ArrayWriteResult) -> dict[str, np.ndarray]:
    """Per-level write-disturb statistics of the /array group (see devices.table.ArrayGroup)."""
    spec = result.spec
    L = spec.table.n_levels
    lv = spec.levels
    nh, no = later_writes(spec.rows, spec.cols, spec.write_order)
    y = np.log(result.g_end / result.g_after)
    out = {n: np.zeros(L) for n in ARRAY_STATS}
    # only a 1R bias other than V/2 puts a voltage, (2h - 1) V, on the cells off the selected
    # lines; otherwise a fitted "other" term would be noise (or the curvature of the half-select
    # term) that a larger tile multiplies by thousands of writes
    # (row-parallel: the "other" event is the rest of the cell's own row, always fitted)
    other = spec.write_order == "row" or spec.cell == "1R" and abs(2 * spec.half_select - 1) > 1e-9
    fit = lambda m: _fit_events(y[m], nh[m], no[m], other)  # noqa: E731
    pooled = fit(np.ones_like(y, dtype=bool))
    d = result.disturb
    for level in range(L):
        m = lv == level
        out["disturb_cells"][level] = m.sum()
        (
            out["disturb_half_mean"][level],
            out["disturb_half_std"][level],
            out["disturb_other_mean"][level],
            out["disturb_other_std"][level],
        ) = fit(m) if m.sum() >= 3 else pooled
        out["disturb_array_mean"][level] = d[m].mean() if m.any() else d.mean()
        out["disturb_array_std"][level] = d[m].std() if m.any() else d.std()
    return out


def array_group(result: ArrayWriteResult, command: str = "") -> ArrayGroup:
    """The /array group of a finished write of the whole array (``write_order``:
    ``row-parallel`` or ``row-major``, cell by cell)."""
    spec = result.spec
    if not spec.whole:
        raise ValueError(
            f"the /array group records a write of the whole array; this run wrote only {len(spec.order)} chosen cells"
        )
    attrs = {
        "rows": spec.rows,
        "cols": spec.cols,
        "cell": spec.cell,
        "bias": spec.bias_name,
        "half_select": spec.half_select,
        "wire_resistance": float(spec.wire_resistance),
        "scheme": spec.scheme.name,
        "write_order": ORDERS[spec.write_order],
        "seed": spec.seed,
        "converged": float(result.converged.mean()),
    }
    if command:
        attrs["command"] = command
    maps = {"level": spec.levels, "disturb": result.disturb, **result.factors()}
    return ArrayGroup(attrs, maps, disturb_stats(result))


def with_array(table: DeviceTable, group: ArrayGroup) -> DeviceTable:
    """A copy of ``table`` carrying ``group`` as its /array."""
    return dataclasses.replace(table, array=group)


def near_far(result: ArrayWriteResult) -> dict[str, float]:
    """Cost factors near the drivers (the bottom-left corner, cells of the last row and
    first column quarter) and far from them (top-right quarter), and disturb figures."""
    R, C = result.spec.rows, result.spec.cols
    i, j = np.meshgrid(np.arange(R), np.arange(C), indexing="ij")
    dist = (R - 1 - i) + j  # segments beyond the shortest path
    near = dist <= np.quantile(dist, 0.25)
    far = dist >= np.quantile(dist, 0.75)
    f = result.factors()
    out = {}
    for n in ("pulses", "energy", "time"):
        out[f"{n}_near"] = float(f[f"{n}_factor"][near].mean())
        out[f"{n}_far"] = float(f[f"{n}_factor"][far].mean())
    out["pulses_near_corner"] = float(f["pulses_factor"][R - 1, 0])
    out["pulses_far_corner"] = float(f["pulses_factor"][0, C - 1])
    out["energy_near_corner"] = float(f["energy_factor"][R - 1, 0])
    out["energy_far_corner"] = float(f["energy_factor"][0, C - 1])
    d = result.disturb
    out.update(
        disturb_mean=float(d.mean()),
        disturb_std=float(d.std()),
        disturb_max_abs=float(np.abs(d).max()),
        converged=float(result.converged.mean()),
    )
    return out


def summary(result: ArrayWriteResult) -> str:
    spec = result.spec
    nf = near_far(result)
    t = result.times
    lines = [
        f"array write: {spec.rows}x{spec.cols} {spec.cell} {spec.bias_name} (half-select "
        f"{spec.half_select:.3g} of the pulse), {spec.wire_resistance:g} ohm/segment, scheme "
        f"{spec.scheme.name}, {ORDERS[spec.write_order]}, seed {spec.seed}",
        f"  converged {100 * nf['converged']:.1f}% of cells",
        f"  cost vs the isolated cell (mean over the near / far quarter of positions): pulses x{nf['pulses_near']:.3f}"
        f" / x{nf['pulses_far']:.3f}, energy x{nf['energy_near']:.3f} / x{nf['energy_far']:.3f}, time "
        f"x{nf['time_near']:.3f} / x{nf['time_far']:.3f}",
        f"  write disturb (relative dG of a cell from its own write to the end): mean {100 * nf['disturb_mean']:+.4f}%,"
        f" sigma {100 * nf['disturb_std']:.4f}%, worst {100 * nf['disturb_max_abs']:.4f}%",
        f"  times: array write {t.get('array write', 0):.3g} s for {t.get('cell-pulses', 0):.0f} cell-pulses "
        f"({t.get('cell-pulses', 0) / max(t.get('array write', 1e-9), 1e-9):.3g} cell-pulses/s)",
    ]
    return "\n".join(lines)


def to_json(result: ArrayWriteResult) -> dict:
    s = result.spec
    group = array_group(result) if s.whole else None
    out = {
        "rows": s.rows,
        "cols": s.cols,
        "cell": s.cell,
        "bias": s.bias_name,
        "half_select": s.half_select,
        "wire_resistance": s.wire_resistance,
        "scheme": s.scheme.name,
        "seed": s.seed,
        "write_order": ORDERS[s.write_order],
        **near_far(result),
        "isolated": {k: np.asarray(v).tolist() for k, v in result.isolated.items()},
        "times_s": result.times,
    }
    if group is not None:
        out["per_level"] = {k: v.tolist() for k, v in group.stats.items()}
    return out


# ---------------------------------------------------------------------------- CLI
def _bias(text: str) -> str | float:
    try:
        return float(text)
    except ValueError:
        return text


def cmd_characterize_array(args) -> int:
    table = DeviceTable.load(args.table)
    spec = ArrayWrite(
        table,
        args.rows,
        args.cols,
        args.cell,
        _bias(args.bias) if args.bias else None,
        args.wire_resistance,
        args.seed,
        state_node=args.state_node,
        initial_state=args.initial_state,
        write_order=args.order,
    )
    out = Path(args.output)
    if out.resolve() == Path(args.table).resolve():
        raise ValueError("-o must name a new file: the table is copied with the /array group added, never rewritten")
    checkpoint = args.checkpoint or str(out) + ".array.npz"
    result = run_write(spec, checkpoint=checkpoint, progress=not args.quiet)
    print(summary(result))
    command = "rramsim " + " ".join(getattr(args, "argv", []) or [])
    with_array(table, array_group(result, command=command.strip())).save(out)
    print(f"wrote {out} (the table with its /array group)")
    if args.json:
        atomic_write(args.json, json.dumps(to_json(result), indent=2) + "\n")
        print(f"wrote {args.json}")
    Path(checkpoint).unlink(missing_ok=True)
    return 0


def add_commands(sub) -> None:
    """``rramsim characterize-array``."""
    from rramsim.cosim.argtypes import number, positive_int

    a = sub.add_parser(
        "characterize-array",
        help="write-verify every cell of an R x C array of the table's device in ngspice; "
        "writes a copy of the table with its /array group (cost by position, write disturb)",
    )
    a.add_argument("--table", required=True, help="device table (HDF5)")
    a.add_argument("--rows", type=positive_int, required=True)
    a.add_argument("--cols", type=positive_int, required=True)
    a.add_argument("--cell", choices=["1R", "1T1R"], default=None, help="default: the table's cell")
    a.add_argument(
        "--bias",
        default=None,
        help="1R: V/2 (default) or V/3; 1T1R: word-line (default); or the half-select fraction 0..0.5",
    )
    a.add_argument("--wire-resistance", type=number, default=1.0, help="ohm per wire segment (default 1)")
    a.add_argument("--seed", type=int, default=0, help="seed of the random levels written")
    a.add_argument(
        "--order",
        choices=list(ORDERS),
        default="row",
        help="row (default): the cells of a row written together, every column with its own pulses and "
        "verify, finished columns inhibited (as array macros write; tens of times faster); cell: one "
        "cell after another, row-major",
    )
    a.add_argument("--state-node", help="user subcircuit: the internal node whose voltage is the state")
    a.add_argument("--initial-state", type=number, help="user subcircuit: the state of an erased cell")
    a.add_argument("--checkpoint", help="resume file (default OUTPUT.array.npz; removed when done)")
    a.add_argument("--json", help="write the figures as JSON")
    a.add_argument("-o", "--output", required=True, help="the table with its /array group (a new file)")
    a.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    a.set_defaults(func=cmd_characterize_array)
