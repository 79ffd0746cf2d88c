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

Row-parallel (:func:`row_write_deck`): every cell of the selected row is written at once;
each column has its own driver (and, 1T1R, its own word line), so each cell gets its own
pulse every round, and finished columns are inhibited (:func:`row_line_voltages`). The
lines' pulses start one edge after the word lines open and end one edge before they
close: an access transistor never switches while its lines move (switching a word line
at the edge of its row's pulse stalls the simulator's time step).

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
    return _src(pulse_params(lo, hi, width, tm))


def _src(params: tuple) -> str:
    return "pulse(" + " ".join(_f(x) for x in params) + ")"


def pulse_params(lo: float, hi: float, width: float, tm: PulseTiming, delay: float = 0.0) -> tuple:
    """The parameters of a periodic pulse source (also those of ngspice's ``alter``)."""
    return (lo, hi, delay, tm.edge, tm.edge, width, tm.period)


def row_pulse(lo: float, hi: float, width: float, tm: PulseTiming, word_line: bool = False) -> tuple:
    """Pulse parameters of a row-parallel deck's source: the word lines open one edge before
    the line pulses rise and close one edge after they fall (the lines' pulses are delayed
    by one edge), so no access transistor switches while its lines move."""
    if word_line:
        return pulse_params(lo, hi, width + 2 * tm.edge, tm)
    return pulse_params(lo, hi, width, tm, tm.edge)


def write_deck(
    device: Device,
    states,
    wire_resistance: float,
    selected: tuple[int, int],
    timing: PulseTiming,
    first,
    cell: str = "1R",
    half_select: float = 0.5,
    state_param: str | None = None,
    state_node: str | None = None,
    read_node: str = "x",
    extra_options: str = "",
) -> str:
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
    lines = [
        f"* rramsim array write {n}x{m} ({cell}), cell ({si},{sj}) selected",
        OPTIONS,
        ".options klu",
        extra_options,
    ]
    lines += [f"* osdi: {path}" for path in device.osdi]
    lines.append(device.definition.rstrip())
    vg = float(number(device.v_gate, "v_gate"))
    gate = vg if getattr(first, "gate", None) is None else float(number(first.gate, "gate"))
    lv = line_voltages(cell, half_select, amp, gate)
    lines.append(f"Vpa ds e {_pulse(0.0, lv['row'], width, tm)}")
    lines.append(
        f"Vrd e 0 pulse(0 {_f(tm.read_voltage)} {_f(tm.read_delay)} {_f(tm.edge)} {_f(tm.edge)} "
        f"{_f(tm.read_time)} {_f(tm.period)})"
    )
    lines.append(f"Vpu du 0 {_pulse(0.0, lv['rows'], width, tm)}")
    lines.append(f"Vpc cu 0 {_pulse(0.0, lv['cols'], width, tm)}")
    lines.append(f"Vps cs 0 {_pulse(0.0, lv['col'], width, tm)}")
    if cell == "1T1R":
        lines.append(nmos_model("nacc", **NMOS).rstrip())
        lines.append(f"Vwg wg 0 {_pulse(vg, lv['gate'], width, tm)}")
        wl = number(device.w_over_l, "w_over_l")
    lines += _driven_wires(n, m, rw, si, lambda j: "cs" if j == sj else "cu")
    lines += cell_lines(
        device, s, cell, state_param, state_node, wl if cell == "1T1R" else None, lambda j: "wg" if j == sj else "0"
    )
    saves = ["time"] + probe_vectors((si, sj)) + [_save_name(i, j, read_node) for i in range(n) for j in range(m)]
    for q in range(0, len(saves), 16):
        lines.append(".save " + " ".join(saves[q : q + 16]))
    lines.append(".end")
    return "\n".join(line for line in lines if line)


# ---------------------------------------------------------------------------- row-parallel
def row_line_voltages(cell: str, half_select: float, amplitudes, gates=None, v_gate: float = 0.0) -> dict:
    """Line voltages of one round of a row-parallel write: the cells of the selected row
    whose column has a pulse get their own signed ``amplitudes[j]`` (all of one sign);
    ``None`` marks an inhibited column (a cell that reached its target, or waits for a
    round of its own polarity or width).

    The selected row is driven at the round's reference ``A`` (the amplitude of largest
    magnitude) and active column ``j`` at ``A - a_j``, so its cell sees ``a_j``:

    * ``1R``: unselected rows at ``h A``, inhibited columns at ``(1 - h) A`` -- for the
      column with ``a_j = A`` exactly the cell-by-cell biasing; an inhibited cell of the
      selected row sees the half-select ``h A``, cells of unselected rows see
      ``h A - (A - a_j)`` in active columns and ``(2 h - 1) A`` in inhibited ones.
    * ``1T1R``: unselected rows at ``h A``, inhibited columns at 0 with their word line at
      0 V (transistors off); an active column's word line at its level plus the pulse's gate
      voltage ``gates[j]`` (``v_gate`` when None). Cells of unselected rows in active
      columns see ``h A - (A - a_j)``: nothing at ``h = 0`` when all active amplitudes are
      equal (IGVVA's SET). A negative round raises every line by ``|A|`` (as the
      cell-by-cell RESET does), so no terminal goes below ground and off transistors stay off.

    Returns ``row``, ``rows``, ``cols`` [C] and, for 1T1R, ``gates`` [C] (volts).
    """
    h_row, h_col = line_fractions(cell, half_select)
    amps = list(amplitudes)
    act = [float(a) for a in amps if a is not None]
    if not act:
        raise ValueError("a round of a row-parallel write needs at least one column with a pulse")
    if min(act) < 0 < max(act):
        raise ValueError("the pulses of one round of a row-parallel write must share their sign")
    A = max(act, key=abs)
    inhibit = h_col * A  # 1R: (1 - h) A; 1T1R: 0
    cols = [inhibit if a is None else A - float(a) for a in amps]
    out = {"row": A, "rows": h_row * A, "cols": cols}
    if cell == "1T1R":
        off = max(0.0, -min([A, h_row * A] + cols))
        out = {"row": A + off, "rows": h_row * A + off, "cols": [c + off for c in cols]}
        g = list(gates) if gates is not None else [None] * len(amps)
        out["gates"] = [
            0.0 if a is None else out["cols"][j] + (v_gate if g[j] is None else float(g[j])) for j, a in enumerate(amps)
        ]
    return out


def row_probe_vectors(row: int, cols: int) -> list[str]:
    """The drive and sense vectors of a row-parallel deck: the selected row's driver
    (``v(ds)``, ``i(vpa)``), the unselected rows' (``v(du)``, ``i(vpu)``), then per column
    its sense current ``i(vcol<j>)``, driver voltage ``v(cd<j>)``, driver current
    ``i(vpc<j>)`` and the selected row's node ``v(r<row>_<j>)`` (the row's segment
    currents, hence each selected cell's current, follow from these)."""
    out = ["v(ds)", "i(vpa)", "v(du)", "i(vpu)"]
    for j in range(cols):
        out += [f"i(vcol{j})", f"v(cd{j})", f"i(vpc{j})", f"v(r{row}_{j})"]
    return out


def row_write_deck(
    device: Device,
    states,
    wire_resistance: float,
    row: int,
    timing: PulseTiming,
    first,
    cell: str = "1R",
    half_select: float = 0.5,
    state_param: str | None = None,
    state_node: str | None = None,
    read_node: str = "x",
    extra_options: str = "",
) -> str:
    """Deck text of an R x C array (states [R, C]) whose row ``row`` is written in parallel:
    ``first`` holds one :class:`~rramsim.devices.schemes.Pulse` (or None: inhibited) per
    column for the first period (:func:`row_line_voltages`).

    Sources: the selected row's driver ``ds`` is ``Vpa`` (pulse) in series with the read
    plateau ``Vrd``; unselected rows share ``du`` (``Vpu``); column ``j`` ends at its own
    driver ``cd<j>`` (``Vpc<j>``) through the ammeter ``Vcol<j>``; a 1T1R column has its own
    word line ``wg<j>`` (``Vwg<j>``, at the cell's gate voltage during reads). During every
    verify read the selected row is at the read voltage and every other line at 0 (word
    lines at the read gate voltage): the whole row is read at once, column by column.
    Every cell's state node is saved (the next row's deck starts from them).
    """
    if not isinstance(device, Device):
        raise TypeError(f"device must be a rramsim Device, got {type(device).__name__}")
    s = finite_array(states, "states", 2)
    n, m = s.shape
    si = int(row)
    if not 0 <= si < n:
        raise ValueError(f"row {row} is outside the {n}x{m} array")
    if len(first) != m:
        raise ValueError(f"first must hold one pulse (or None) per column ({m}), got {len(first)}")
    r = float(number(wire_resistance, "wire_resistance"))
    if r <= 0:
        raise ValueError(f"parameter 'wire_resistance' must be positive, got {wire_resistance!r}")
    check_state_setting(device, state_param, state_node)
    _check_node(read_node)
    tm = timing
    rw = _f(r)
    vg = float(number(device.v_gate, "v_gate"))
    amps = [None if p is None else float(number(p.amplitude, "amplitude")) for p in first]
    widths = {float(p.width) for p in first if p is not None}
    if len(widths) != 1:
        raise ValueError("the pulses of one round of a row-parallel write must share their width")
    width = widths.pop()
    lv = row_line_voltages(cell, half_select, amps, [None if p is None else p.gate for p in first], vg)
    lines = [
        f"* rramsim array write {n}x{m} ({cell}), row {si} in parallel",
        OPTIONS,
        ".options klu",
        ".options rshunt=1e12" if cell == "1T1R" else "",
        extra_options,
    ]
    lines += [f"* osdi: {path}" for path in device.osdi]
    lines.append(device.definition.rstrip())
    lines.append(f"Vpa ds e {_src(row_pulse(0.0, lv['row'], width, tm))}")
    lines.append(
        f"Vrd e 0 pulse(0 {_f(tm.read_voltage)} {_f(tm.read_delay)} {_f(tm.edge)} {_f(tm.edge)} "
        f"{_f(tm.read_time)} {_f(tm.period)})"
    )
    lines.append(f"Vpu du 0 {_src(row_pulse(0.0, lv['rows'], width, tm))}")
    for j in range(m):
        lines.append(f"Vpc{j} cd{j} 0 {_src(row_pulse(0.0, lv['cols'][j], width, tm))}")
    if cell == "1T1R":
        lines.append(nmos_model("nacc", **NMOS).rstrip())
        for j in range(m):
            lines.append(f"Vwg{j} wg{j} 0 {_src(row_pulse(vg, lv['gates'][j], width, tm, True))}")
        wl = number(device.w_over_l, "w_over_l")
    lines += _driven_wires(n, m, rw, si, lambda j: f"cd{j}")
    lines += cell_lines(device, s, cell, state_param, state_node, wl if cell == "1T1R" else None, lambda j: f"wg{j}")
    saves = ["time"] + row_probe_vectors(si, m) + [_save_name(i, j, read_node) for i in range(n) for j in range(m)]
    for q in range(0, len(saves), 16):
        lines.append(".save " + " ".join(saves[q : q + 16]))
    lines.append(".end")
    return "\n".join(line for line in lines if line)


def _driven_wires(n: int, m: int, rw: str, si: int, col_node) -> list[str]:
    """The array's wires with the selected row ``si`` on driver ``ds``, the other rows on
    ``du``, and column j's sense source returning to ``col_node(j)`` instead of ground."""
    wires = wire_lines(n, m, rw)
    for i in range(n):
        old = f"Rd{i} d{i} r{i}_0 {rw}"
        wires[wires.index(old)] = f"Rd{i} {'ds' if i == si else 'du'} r{i}_0 {rw}"
    for j in range(m):
        old = f"Vcol{j} s{j} 0 dc 0"
        wires[wires.index(old)] = f"Vcol{j} s{j} {col_node(j)} dc 0"
    return wires
