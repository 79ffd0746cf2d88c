"""An N x M crossbar deck for ngspice: wire resistance per segment, row drivers, sensed columns.

Topology (the one :mod:`rramsim.models.irdrop` solves): row ``i`` is driven by ``Vrow<i>``
at its left end through one wire segment, with one segment between neighbouring cells;
each cell sits between row node ``r<i>_<j>`` and column node ``c<i>_<j>``; column ``j``
runs down through one segment per cell to the sense node ``s<j>``, held at virtual ground
by the 0 V source ``Vcol<j>``. ``i(vcol<j>)`` is the current column ``j`` delivers to its
sense amplifier (positive for positive inputs).

Cells are ``"1R"`` (a linear resistor of the given conductance) or ``"1T1R"`` (the same
resistor in series with an NMOS access transistor whose gate is held at ``v_gate``).

Every number in the deck is a validated finite number formatted here; a NaN, inf,
non-positive conductance or wrong shape is a ``ValueError`` naming the parameter. No
caller text reaches the deck.
"""

from __future__ import annotations

import numpy as np

from rramsim.circuits.render import number


#: Level-1 access transistor of the 1T1R cell (same defaults as the characterization benches).
NMOS = {"vto": 0.45, "kp": 2e-4, "lam": 0.02}


def finite_array(value, name: str, ndim: int) -> np.ndarray:
    """``value`` as a non-empty finite float64 array of ``ndim`` dims, or a ValueError naming it."""
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"parameter {name!r} must be an array of numbers") from None
    if a.ndim != ndim or a.size == 0:
        raise ValueError(f"parameter {name!r} must be a non-empty {ndim}-D array, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"parameter {name!r} contains NaN or inf")
    return a


def _fmt(x: float) -> str:
    return repr(float(x))


def wire_lines(n: int, m: int, rw: str) -> list[str]:
    """The wires of an ``n x m`` crossbar (the topology of the module doc), each segment of
    resistance ``rw`` (a formatted number): row ``i`` from its driver node ``d<i>`` through
    ``r<i>_0 .. r<i>_<m-1>``, column ``j`` down ``c0_<j> .. c<n-1>_<j>`` to the sense node
    ``s<j>``, held at 0 V by ``Vcol<j>``. The cells between ``r<i>_<j>`` and ``c<i>_<j>`` and
    the row drivers ``d<i>`` are the caller's."""
    lines = []
    for i in range(n):
        lines.append(f"Rd{i} d{i} r{i}_0 {rw}")
        lines += [f"Rr{i}_{j} r{i}_{j - 1} r{i}_{j} {rw}" for j in range(1, m)]
    for j in range(m):
        lines += [f"Rc{i}_{j} c{i}_{j} c{i + 1}_{j} {rw}" for i in range(n - 1)]
        lines += [f"Rs{j} c{n - 1}_{j} s{j} {rw}", f"Vcol{j} s{j} 0 dc 0"]
    return lines


def crossbar_deck(
    conductances, inputs, wire_resistance: float, cell: str = "1R", v_gate: float = 1.2, w_over_l: float = 10.0
) -> str:
    """The deck text of an N x M crossbar with conductances [N, M] (S) and row voltages [N] (V).

    Run it with an ``op`` analysis and read ``i(vcol0)`` ... ``i(vcol<M-1>)``
    (see :func:`column_vectors`).
    """
    g = finite_array(conductances, "conductances", 2)
    v = finite_array(inputs, "inputs", 1)
    n, m = g.shape
    if v.shape[0] != n:
        raise ValueError(f"parameter 'inputs' has {v.shape[0]} values but 'conductances' has {n} rows")
    if np.any(g <= 0):
        raise ValueError("parameter 'conductances' must be positive (S); leave a cell out with a tiny value")
    r = float(number(wire_resistance, "wire_resistance"))
    if r <= 0:
        raise ValueError(f"parameter 'wire_resistance' must be positive, got {wire_resistance!r}")
    if cell not in ("1R", "1T1R"):
        raise ValueError(f"parameter 'cell' must be '1R' or '1T1R', got {cell!r}")
    rw = _fmt(r)
    lines = [f"* rramsim crossbar {n}x{m} ({cell})", ".options klu"]
    if cell == "1T1R":
        lines.append(
            f".model nacc nmos level=1 vto={_fmt(NMOS['vto'])} kp={_fmt(NMOS['kp'])} lambda={_fmt(NMOS['lam'])}"
        )
        lines.append(f"Vwl wl 0 dc {number(v_gate, 'v_gate')}")
        wl = number(w_over_l, "w_over_l")
    lines += [f"Vrow{i} d{i} 0 dc {_fmt(v[i])}" for i in range(n)]
    lines += wire_lines(n, m, rw)
    for i in range(n):
        for j in range(m):
            res = _fmt(1.0 / g[i, j])
            if cell == "1R":
                lines.append(f"Rx{i}_{j} r{i}_{j} c{i}_{j} {res}")
            else:
                lines.append(f"Rx{i}_{j} r{i}_{j} m{i}_{j} {res}")
                lines.append(f"Mx{i}_{j} m{i}_{j} wl c{i}_{j} 0 nacc w={wl}u l=1u")
    lines.append(".end")
    return "\n".join(lines)


def column_vectors(m: int) -> list[str]:
    """Names of the column-current vectors of an ``m``-column deck."""
    return [f"i(vcol{j})" for j in range(int(m))]
