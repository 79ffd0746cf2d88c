"""An R x C array deck for programming one cell inside it (write-verify in the array).

Topology: that of :mod:`rramsim.circuits.array_deck` (:func:`~rramsim.circuits.crossbar.wire_lines`):
row ``i`` (bit line) is driven at its left end through one wire segment, one segment
between neighbouring cells; column ``j`` (source line) runs down through one segment per
cell to its bottom node ``s<j>``, which sits on its driver through the ammeter ``Vcol<j>``.
Cells are the table's device subcircuit, each in its own state; a ``"1T1R"`` cell puts the
device between the row node and the drain of a level-1 NMOS whose source is the column node.

Biasing while the selected cell ``(i, j)`` gets a pulse of signed amplitude ``V`` (volts on
the device's first port; SET or RESET as the programming scheme decides):

* ``1R`` with half-select fraction ``h`` (``V/2``: h = 1/2; ``V/3``: h = 1/3): selected row
  at ``V``, selected column at 0, unselected rows at ``h V``, unselected columns at
  ``(1 - h) V``. Half-selected cells (on the selected row or column) see ``h V``, all the
  others ``(2 h - 1) V`` (0 for V/2, ``-V/3`` for V/3).
* ``1T1R`` (word-line selection): every column has its own word line, the gates of its
  access transistors. The selected column's word line is at the cell's gate voltage during
  reads and at the pulse's gate voltage during a pulse (gate-controlled schemes step it);
  the other word lines are at 0 V (transistors off). Selected row at ``V``, unselected rows
  at ``h V`` (default ``h = 0``), every column at 0. Cells of the selected column on other
  rows see ``h V`` through their open transistor; cells of the selected row in other
  columns sit behind an off transistor. A negative pulse (RESET) would pull the row below
  ground and open the transistors of the other word lines (their drain becomes the source),
  so every line, and the selected word line, is raised by ``|V|`` during it: the selected
  column (source line) carries the RESET, the cell sees what it sees in the isolated bench
  (same gate-to-source drive), and off transistors stay off (:func:`line_voltages`).

After every pulse the verify read drives the selected row at the read voltage and every
other line at 0 V; ``i(vcol<j>)`` over the row driver's voltage ``v(ds)`` is the verify
conductance as the sense amplifier sees it (line drops included).

Sources: the selected row's driver ``ds`` is the pulse source ``Vpa`` in series with the
read plateau ``Vrd`` (current ``i(vpa)``); unselected rows share the driver node ``du``
(``Vpu``), unselected columns share ``cu`` (``Vpc``); the selected column's ammeter goes to
``cs`` (``Vps``). An engine alters the pulse sources between periods (``alter @vpa[pulse] = ...``) as
the isolated-cell engine does (:mod:`rramsim.cosim.writeverify`), so the pulse timing is
:class:`~rramsim.circuits.testbenches.PulseTiming`. The energy the drivers deliver is
``-(v(ds) i(vpa) + v(du) i(vpu) + v(cu) i(vpc) + v(cs) i(vps))`` integrated over time.

States are set as in :func:`~rramsim.circuits.array_deck.array_deck` (an instance parameter
``state_param`` or ``.ic`` on an internal node ``state_node``); the internal node
``read_node`` of every cell (the state; :func:`state_vector`) is saved, so a run's final
states can start the next cell's deck.
"""
from __future__ import annotations

from rramsim.circuits.array_deck import _f, cell_lines, check_state_setting
from rramsim.circuits.compact_model import nmos_model
from rramsim.circuits.crossbar import NMOS, finite_array, wire_lines
from rramsim.circuits.render import check_identifier, number
from rramsim.circuits.testbenches import OPTIONS, Device, PulseTiming

#: Named half-select biases of a 1R array (fraction of the pulse on unselected rows).
BIASES = {"V/2": 0.5, "V/3": 1.0 / 3.0}


def line_fractions(cell: str, half_select: float) -> tuple[float, float]:
    """Voltages of the unselected rows and unselected columns during a pulse, as fractions
    of the pulse amplitude (see the module doc)."""
    h = float(number(half_select, "half_select"))
    if not 0.0 <= h <= 0.5:
        raise ValueError(f"half_select must be a fraction in [0, 0.5] of the pulse (V/2: 0.5, V/3: 0.333), got {h}")
    if cell == "1R":
        return h, 1.0 - h
    if cell == "1T1R":
        return h, 0.0
    raise ValueError(f"parameter 'cell' must be '1R' or '1T1R', got {cell!r}")


def line_voltages(cell: str, half_select: float, amplitude: float, gate: float | None = None) -> dict[str, float]:
    """Line voltages during a pulse of ``amplitude``: selected row ``row``, unselected rows
    ``rows``, selected column ``col``, unselected columns ``cols`` and (1T1R) the selected
    word line ``gate`` (see the module doc)."""
    a, b = line_fractions(cell, half_select)
    v = float(amplitude)
    off = max(0.0, -v) if cell == "1T1R" else 0.0
    out = {"row": v + off, "rows": a * v + off, "col": off, "cols": b * v + off}
    if gate is not None:
        out["gate"] = float(gate) + off
    return out


def state_vector(i: int, j: int, node: str) -> str:
    """The name of cell ``(i, j)``'s saved state vector. ``node``: an internal node of the
    subcircuit (``x``), or ``instance#node`` for a node inside a compiled Verilog-A
    instance of it (``n1#y``: ngspice names it ``n.xa<i>_<j>.n1#y``)."""
    if "#" in node:
        return f"n.xa{i}_{j}.{node.lower()}"
    return f"v(xa{i}_{j}.{node.lower()})"


def _save_name(i: int, j: int, node: str) -> str:
    return f"v({state_vector(i, j, node)})" if "#" in node else state_vector(i, j, node)


def _check_node(node: str) -> None:
    for part in node.split("#", 1):
        check_identifier(part, "read_node")


def probe_vectors(selected: tuple[int, int]) -> list[str]:
    """The drive and sense vectors an engine reads."""
    return [f"i(vcol{selected[1]})", "v(ds)", "i(vpa)", "v(du)", "i(vpu)", "v(cu)", "i(vpc)", "v(cs)", "i(vps)"]


def _pulse(lo: float, hi: float, width: float, tm: PulseTiming) -> str:
    return "pulse(" + " ".join(_f(x) for x in (lo, hi, 0.0, tm.edge, tm.edge, width, tm.period)) + ")"


def write_deck(device: Device, states, wire_resistance: float, selected: tuple[int, int], timing: PulseTiming,
               first, cell: str = "1R", half_select: float = 0.5, state_param: str | None = None,
               state_node: str | None = None, read_node: str = "x", extra_options: str = "") -> str:
    """Deck text of an R x C array (states [R, C]) in which ``selected`` = (row, col) gets
    ``first`` (a :class:`~rramsim.devices.schemes.Pulse`) in the first period; see the
    module doc for the biasing, sources and saved vectors."""
    if not isinstance(device, Device):
        raise TypeError(f"device must be a rramsim Device, got {type(device).__name__}")
    s = finite_array(states, "states", 2)
    n, m = s.shape
    si, sj = (int(x) for x in selected)
    if not (0 <= si < n and 0 <= sj < m):
        raise ValueError(f"selected cell {selected} is outside the {n}x{m} array")
    r = float(number(wire_resistance, "wire_resistance"))
    if r <= 0:
        raise ValueError(f"parameter 'wire_resistance' must be positive, got {wire_resistance!r}")
    line_fractions(cell, half_select)
    check_state_setting(device, state_param, state_node)
    _check_node(read_node)
    amp = float(number(first.amplitude, "amplitude"))
    width = float(number(first.width, "width"))
    tm = timing
    rw = _f(r)
    lines = [f"* rramsim array write {n}x{m} ({cell}), cell ({si},{sj}) selected", OPTIONS, ".options klu",
             extra_options]
    lines += [f"* osdi: {path}" for path in device.osdi]
    lines.append(device.definition.rstrip())
    vg = float(number(device.v_gate, "v_gate"))
    gate = vg if getattr(first, "gate", None) is None else float(number(first.gate, "gate"))
    lv = line_voltages(cell, half_select, amp, gate)
    lines.append(f"Vpa ds e {_pulse(0.0, lv['row'], width, tm)}")
    lines.append(f"Vrd e 0 pulse(0 {_f(tm.read_voltage)} {_f(tm.read_delay)} {_f(tm.edge)} {_f(tm.edge)} "
                 f"{_f(tm.read_time)} {_f(tm.period)})")
    lines.append(f"Vpu du 0 {_pulse(0.0, lv['rows'], width, tm)}")
    lines.append(f"Vpc cu 0 {_pulse(0.0, lv['cols'], width, tm)}")
    lines.append(f"Vps cs 0 {_pulse(0.0, lv['col'], width, tm)}")
    if cell == "1T1R":
        lines.append(nmos_model("nacc", **NMOS).rstrip())
        lines.append(f"Vwg wg 0 {_pulse(vg, lv['gate'], width, tm)}")
        wl = number(device.w_over_l, "w_over_l")
    wires = wire_lines(n, m, rw)
    for i in range(n):
        old = f"Rd{i} d{i} r{i}_0 {rw}"
        wires[wires.index(old)] = f"Rd{i} {'ds' if i == si else 'du'} r{i}_0 {rw}"
    for j in range(m):
        old = f"Vcol{j} s{j} 0 dc 0"
        wires[wires.index(old)] = f"Vcol{j} s{j} {'cs' if j == sj else 'cu'} dc 0"
    lines += wires
    lines += cell_lines(device, s, cell, state_param, state_node, wl if cell == "1T1R" else None,
                        lambda j: "wg" if j == sj else "0")
    saves = ["time"] + probe_vectors((si, sj)) + [_save_name(i, j, read_node) for i in range(n) for j in range(m)]
    for q in range(0, len(saves), 16):
        lines.append(".save " + " ".join(saves[q:q + 16]))
    lines.append(".end")
    return "\n".join(line for line in lines if line)

