"""An R x C array of a device subcircuit in programmed states, read with K input vectors.

Topology (the one of :func:`rramsim.circuits.crossbar.crossbar_deck`, which the exact
IR-drop solver of :mod:`rramsim.models.irdrop` solves): row ``i`` (bit line) is driven
by ``Vrow<i>`` at its left end through one wire segment, with one segment between
neighbouring cells; each cell sits between row node ``r<i>_<j>`` and column node
``c<i>_<j>``; column ``j`` (source line) runs down through one segment per cell to the
sense node ``s<j>``, held at virtual ground by the 0 V source ``Vcol<j>``; ``i(vcol<j>)``
is the current column ``j`` delivers to its sense amplifier. A ``"1T1R"`` cell puts the
device between the row node and the drain ``m<i>_<j>`` of a level-1 NMOS whose source is
the column node and whose gate is the word line ``wl`` at ``v_gate`` (the gates draw no
current, so the word line carries no IR drop).

Cells are the device subcircuit of a :class:`~rramsim.circuits.testbenches.Device` (the
netlist a device table stores in ``/model``: the built-in behavioural model, a user's
subcircuit or a compiled Verilog-A module), each set to a programmed *state*:

* ``state_param``: an instance parameter that sets the state, e.g. ``x0`` of the built-in
  model (the initial gap in nm, ``Cx x 0 1 ic={x0}``), or ``gc`` of :func:`linear_device`;
* ``state_node``: an internal node of the subcircuit whose voltage is the state, set with
  ``.ic v(x<cell>.<node>)=value``.

Either way the deck is run as a transient with ``uic`` (:func:`read_analysis`) so that the
state starts where it was set (an ``op`` would relax it to its DC equilibrium). The K
input vectors are PWL plateaus of ``step`` seconds each; the array is resistive apart
from the state, so every plateau is a DC read, and reads are short enough (ns) that the
state does not move measurably (the built-in model's gap moves ~3e-8 nm in 10 ns at
0.2 V). The column currents of vector ``k`` are sampled at the end of its plateau
(:func:`sample_times`). Every number in the deck is validated and formatted here.
"""

from __future__ import annotations

import numpy as np

from rramsim.circuits.compact_model import nmos_model
from rramsim.circuits.crossbar import NMOS, column_vectors, finite_array, wire_lines
from rramsim.circuits.render import check_identifier, number
from rramsim.circuits.testbenches import Device

#: Plateau length of one input vector and the ramp between plateaus (s).
STEP = 2e-9
EDGE = 0.2e-9
#: Tight tolerances: the reads are compared with the torch model to 1e-4.
OPTIONS = ".options klu reltol=1e-6 abstol=1e-15 vntol=1e-9"


def linear_device() -> Device:
    """A linear resistor cell (state parameter ``gc``: its conductance in S)."""
    return Device("lincell", ".subckt lincell te be params: gc=1e-5\nR1 te be {1/gc}\n.ends lincell", ("gc",))


def _f(x: float) -> str:
    return repr(float(x))


def check_state_setting(device: Device, state_param: str | None, state_node: str | None) -> None:
    """Exactly one way to set a cell's state: an instance parameter of the subcircuit or an
    internal node (``.ic``); an error names what is wrong."""
    if (state_param is None) == (state_node is None):
        raise ValueError(
            "give exactly one of state_param (an instance parameter of the subcircuit) "
            "and state_node (an internal node holding the state)"
        )
    if state_param is not None and state_param not in device.params:
        raise ValueError(
            f"subcircuit {device.subckt} has no instance parameter {state_param!r} "
            f"(it accepts: {', '.join(device.params) or 'none'}); set its state with state_node"
        )
    if state_node is not None:
        check_identifier(state_node, "state_node")


def cell_lines(
    device: Device,
    states: np.ndarray,
    cell: str,
    state_param: str | None,
    state_node: str | None,
    w_over_l: float | None,
    gate,
) -> list[str]:
    """The array's cells: cell (i, j) between row node ``r{i}_{j}`` and column node ``c{i}_{j}``
    (1T1R: through access transistor ``M`` whose gate is ``gate(j)``), each set to its state
    in ``states`` by the instance parameter ``state_param`` or by ``.ic`` on ``state_node``."""
    n, m = states.shape
    ctl = " 0 0" if device.controls else ""
    lines, ics = [], []
    for i in range(n):
        for j in range(m):
            tag = f"a{i}_{j}"
            low = f"m{i}_{j}" if cell == "1T1R" else f"c{i}_{j}"
            p = f" {state_param}={_f(states[i, j])}" if state_param else ""
            lines.append(f"X{tag} r{i}_{j} {low}{ctl} {device.subckt}{p}")
            if cell == "1T1R":
                lines.append(f"M{tag} m{i}_{j} {gate(j)} c{i}_{j} 0 nacc w={w_over_l}u l=1u")
            if state_node:
                ics.append(f"v(x{tag}.{state_node.lower()})={_f(states[i, j])}")
    for q in range(0, len(ics), 8):
        lines.append(".ic " + " ".join(ics[q : q + 8]))
    return lines


def sample_times(k: int, step: float = STEP) -> np.ndarray:
    """Times at which the column currents of vectors ``0 .. k-1`` are read."""
    return (np.arange(int(k)) + 0.95) * step


def read_analysis(k: int, step: float = STEP) -> str:
    """The transient that reads ``k`` vectors (``uic``: states start as set)."""
    return f"tran {_f(step / 8)} {_f(k * step)} 0 {_f(step / 4)} uic"


def array_deck(
    device: Device,
    states,
    inputs,
    wire_resistance: float,
    cell: str = "1R",
    state_param: str | None = None,
    state_node: str | None = None,
    step: float = STEP,
    v_gate: float | None = None,
    w_over_l: float | None = None,
) -> str:
    """Deck text of an R x C array of ``device`` cells in ``states`` [R, C] read with
    ``inputs`` [R, K] (V; K vectors). Exactly one of ``state_param``/``state_node`` says
    how a state is set (see the module doc). Run it with :func:`read_analysis` and read
    :func:`~rramsim.circuits.crossbar.column_vectors` at :func:`sample_times`.
    """
    if not isinstance(device, Device):
        raise TypeError(f"device must be a rramsim Device, got {type(device).__name__}")
    s = finite_array(states, "states", 2)
    v = finite_array(inputs, "inputs", 2)
    n, m = s.shape
    if v.shape[0] != n:
        raise ValueError(f"parameter 'inputs' has {v.shape[0]} rows but 'states' has {n}")
    r = float(number(wire_resistance, "wire_resistance"))
    if r <= 0:
        raise ValueError(f"parameter 'wire_resistance' must be positive, got {wire_resistance!r}")
    if cell not in ("1R", "1T1R"):
        raise ValueError(f"parameter 'cell' must be '1R' or '1T1R', got {cell!r}")
    check_state_setting(device, state_param, state_node)
    step = float(number(step, "step"))
    if step <= 2 * EDGE:
        raise ValueError(f"parameter 'step' must exceed {2 * EDGE} s, got {step}")
    rw = _f(r)
    k = v.shape[1]
    lines = [f"* rramsim array {n}x{m} ({cell}) of {device.subckt}, {k} input vectors", OPTIONS]
    lines += [f"* osdi: {path}" for path in device.osdi]
    lines.append(device.definition.rstrip())
    if cell == "1T1R":
        lines.append(nmos_model("nacc", **NMOS).rstrip())
        lines.append(f"Vwl wl 0 dc {number(device.v_gate if v_gate is None else v_gate, 'v_gate')}")
        wl = number(device.w_over_l if w_over_l is None else w_over_l, "w_over_l")
    for i in range(n):
        pts = []
        for q in range(k):
            t0 = q * step
            pts += [(t0 + (EDGE if q else 0.0), v[i, q]), (t0 + step, v[i, q])]
        lines.append(f"Vrow{i} d{i} 0 pwl(" + " ".join(f"{_f(t)} {_f(x)}" for t, x in pts) + ")")
    lines += wire_lines(n, m, rw)
    lines += cell_lines(device, s, cell, state_param, state_node, wl if cell == "1T1R" else None, lambda j: "wl")
    lines.append(".save time " + " ".join(column_vectors(m)))
    lines.append(".end")
    return "\n".join(lines)


def cell_deck(
    device: Device,
    states,
    read_voltage: float,
    cell: str = "1R",
    state_param: str | None = None,
    state_node: str | None = None,
    v_gate: float | None = None,
    w_over_l: float | None = None,
) -> str:
    """Isolated cells in ``states`` [N], each read at ``read_voltage`` (no wires; source
    of a 1T1R cell grounded): ``i(vs<k>)`` is cell k's read current. Run it with
    :func:`read_analysis` ``(1)``. Used to map states to read conductances."""
    s = finite_array(states, "states", 1)
    check_state_setting(device, state_param, state_node)
    lines = ["* rramsim isolated cells", OPTIONS] + [f"* osdi: {path}" for path in device.osdi]
    lines.append(device.definition.rstrip())
    if cell == "1T1R":
        lines.append(nmos_model("nacc", **NMOS).rstrip())
        lines.append(f"Vwl wl 0 dc {number(device.v_gate if v_gate is None else v_gate, 'v_gate')}")
        wl = number(device.w_over_l if w_over_l is None else w_over_l, "w_over_l")
    lines.append(f"Vd d 0 dc {number(read_voltage, 'read_voltage')}")
    ctl = " 0 0" if device.controls else ""
    ics = []
    for q, x in enumerate(s):
        p = f" {state_param}={_f(x)}" if state_param else ""
        lines.append(f"Vs{q} d t{q} dc 0")
        if cell == "1T1R":
            lines.append(f"Xq{q} t{q} m{q}{ctl} {device.subckt}{p}")
            lines.append(f"Mq{q} m{q} wl 0 0 nacc w={wl}u l=1u")
        else:
            lines.append(f"Xq{q} t{q} 0{ctl} {device.subckt}{p}")
        if state_node:
            ics.append(f"v(xq{q}.{state_node.lower()})={_f(x)}")
    for q in range(0, len(ics), 8):
        lines.append(".ic " + " ".join(ics[q : q + 8]))
    lines.append(".save time " + " ".join(f"i(vs{q})" for q in range(s.size)))
    lines.append(".end")
    return "\n".join(lines)
