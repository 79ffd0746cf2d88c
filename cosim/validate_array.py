"""Array read validation: the torch tile against ngspice on the same programmed array.

An R x C array of the table's own device (the subcircuit in its ``/model``) is set to
random levels of the table (each cell the reached conductance of a random simulated
device of its level), read in ngspice (:mod:`rramsim.circuits.array_deck`, KLU,
transient with ``uic``) with K random input vectors, and the same conductances and
inputs go through the torch tile under every combination of

* cell model: ``linear`` (``i = g v``) or ``table-iv`` (the table's per-level cubic I-V,
  :func:`rramsim.models.programming.fit_iv`; in a 1T1R array built from a 1R table, in
  series with the deck's access transistor, :func:`rramsim.models.irdrop.series_cell_current`);
* IR drop: ``off``, ``approx`` (:func:`~rramsim.models.irdrop.approx_transfer`) or
  ``exact`` (:class:`~rramsim.models.irdrop.TileSolver`).

The figure of merit is the relative error of every column current of every vector.

The device is the table's: the built-in model as its behavioural subcircuit or compiled from
Verilog-A (OSDI; ngspice reads arrays of it several times faster), or a user's subcircuit. A
user's own Verilog-A module is refused (the table keeps its compiled model, not the source).

How a cell is set to a conductance ``g`` (the state mapping): the built-in model in a 1R
table by its gap, inverted analytically from ``I = i0 exp(-gap/g0) sinh(V/v0)`` at the
table's read voltage; any other device (a 1T1R table, a user subcircuit with a
``state_node`` and ``state_range``) by an ngspice inversion: isolated cells at a grid of
states are read at the read voltage and ``log g`` is interpolated over the state
(refused unless it is monotone).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rramsim.cosim.files import atomic_write
from rramsim.circuits.array_deck import OPTIONS, array_deck, cell_deck, linear_device, read_analysis, sample_times
from rramsim.circuits.crossbar import column_vectors
from rramsim.circuits.testbenches import Device
from rramsim.devices import DeviceTable

#: The four settings every report and JSON file carries (more are reported beside them).
NAMED_SETTINGS = ("table-iv+exact", "linear+exact", "table-iv+approx", "linear+off")
SETTINGS = ("table-iv+exact", "table-iv+approx", "table-iv+off", "linear+exact", "linear+approx", "linear+off")
BUILTIN_PARAMS = ("i0", "g0", "v0", "g_min", "g_max")
GRID = 81


@dataclass
class ArrayCheck:
    """What to validate: a table, an array size and cell, wires and inputs."""

    table: DeviceTable
    rows: int
    cols: int
    cell: str | None = None  # None: the table's own cell
    wire_resistance: float = 1.0
    vectors: int = 8
    seed: int = 0
    v_max: float | None = None  # inputs uniform in [0, v_max]; None: the table's read voltage
    state_node: str | None = None  # user subcircuit: the internal node holding the state
    state_range: tuple[float, float] | None = None
    linear_cells: bool = False  # linear resistor cells (checks the deck against crossbar_deck)

    def __post_init__(self) -> None:
        for name in ("rows", "cols", "vectors"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive whole number, got {value!r}")
        if not (
            isinstance(self.wire_resistance, (int, float))
            and math.isfinite(self.wire_resistance)
            and self.wire_resistance > 0
        ):
            raise ValueError(
                f"wire_resistance must be a finite positive resistance (ohm per segment), got {self.wire_resistance!r}"
            )
        table_cell = str(self.table.model.get("cell", "1R"))
        if self.cell is None:
            self.cell = table_cell
        if self.cell not in ("1R", "1T1R"):
            raise ValueError(f"cell must be '1R' or '1T1R', got {self.cell!r}")
        if table_cell == "1T1R" and self.cell == "1R":
            raise ValueError(
                "the table was characterized as 1T1R cells: its I-V and levels include the access "
                "transistor, so a 1R array cannot be built from it; use --cell 1T1R or a 1R table"
            )
        vr = float(self.table.scheme["read_voltage"])
        if self.v_max is None:
            self.v_max = vr
        if not (math.isfinite(self.v_max) and 0 < self.v_max):
            raise ValueError(f"v_max must be a positive voltage, got {self.v_max!r}")

    @property
    def table_cell(self) -> str:
        return str(self.table.model.get("cell", "1R"))


@dataclass
class ArrayResult:
    check: ArrayCheck
    g: np.ndarray  # [R, C] conductances at the read voltage (S)
    level: np.ndarray  # [R, C]
    states: np.ndarray  # [R, C]
    inputs: np.ndarray  # [R, K]
    spice: np.ndarray  # [C, K] column currents (A)
    torch: dict[str, np.ndarray]  # setting -> [C, K]
    times: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def errors(self) -> dict[str, dict[str, float]]:
        """max and mean relative error of the column currents for each setting."""
        ref = np.abs(self.spice)
        out = {}
        for name, cur in self.torch.items():
            rel = np.abs(cur - self.spice) / np.maximum(ref, 1e-30)
            out[name] = {"max_rel_error": float(rel.max()), "mean_rel_error": float(rel.mean())}
        return out


# ---------------------------------------------------------------------------- the device
def table_device(table: DeviceTable, cell: str) -> tuple[Device, str | None]:
    """The table's device as a :class:`Device` (``cell`` wiring) and its state parameter
    (``x0`` for the built-in model, None when the state must be set on a node)."""
    from rramsim.circuits.user_netlist import subckt_ports

    text = table.model_netlist
    if not text.strip():
        raise ValueError("the table stores no device netlist in /model; regenerate it with `rramsim characterize`")
    osdi = any(line.split()[0][:1].lower() == "n" for line in text.splitlines() if line.split())
    if osdi or "* osdi:" in text:  # an OSDI instance line: a compiled Verilog-A module
        if all(k in table.model for k in BUILTIN_PARAMS):
            # the built-in model compiled from Verilog-A: compile (cached) and load it again
            from rramsim.cosim.osdi import builtin_va_device
            from rramsim.devices import CompactModel

            params = {k: float(table.model[k]) for k in CompactModel().params()}
            return builtin_va_device(params, cell), "x0"
        raise ValueError(
            "array validation of a user's Verilog-A device is not supported yet (the table keeps "
            "its compiled model, not the source); characterize it as a subcircuit for this check"
        )
    name = None
    for line in text.splitlines():
        tok = line.split()
        if len(tok) > 1 and tok[0].lower() == ".subckt":
            name = tok[1]
            break
    if name is None:
        raise ValueError("the table's /model netlist defines no subcircuit")
    ports = subckt_ports(text, name) or []
    builtin = len(ports) == 4 and all(k in table.model for k in BUILTIN_PARAMS)
    if builtin:
        params = tuple(k for k in table.model if k not in ("name", "cell")) + ("x0", "c2c")
        return Device(name, text, params, cell, controls=True), "x0"
    if len(ports) != 2:
        raise ValueError(f"the table's subcircuit {name} has {len(ports)} ports; an array cell needs two")
    return Device(name, text, (), cell), None


# ---------------------------------------------------------------------------- states
def builtin_gap(table: DeviceTable, g: np.ndarray) -> np.ndarray:
    """Gap (nm) of the built-in model whose read conductance at the table's read voltage is ``g``."""
    m = {k: float(table.model[k]) for k in BUILTIN_PARAMS}
    vr = float(table.scheme["read_voltage"])
    gap = -m["g0"] * np.log(np.asarray(g) * vr / (m["i0"] * math.sinh(vr / m["v0"])))
    lo, hi = m["g_min"], m["g_max"]
    if np.any(gap < lo - 1e-9) or np.any(gap > hi + 1e-9):
        raise ValueError(
            f"conductances {np.min(g):.3g}-{np.max(g):.3g} S are outside the built-in model's window (gap {lo}-{hi} nm)"
        )
    return gap


def state_curve(
    device: Device, states: np.ndarray, read_voltage: float, cell: str, state_param: str | None, state_node: str | None
) -> np.ndarray:
    """Read conductance (S) of isolated cells at ``states``, measured in ngspice."""
    from rramsim.cosim.ngspice import Session, run_with_retries

    deck = cell_deck(device, states, read_voltage, cell, state_param=state_param, state_node=state_node)
    names = [f"i(vs{q})" for q in range(len(states))]
    session = Session.get()
    out = run_with_retries(
        lambda opt: session.simulate(
            deck.replace(OPTIONS, OPTIONS + "\n" + opt), read_analysis(1), ["time"] + names, name="state curve"
        ),
        "state curve",
    )
    t_read = sample_times(1)[0]
    return np.array([np.interp(t_read, out["time"], out[n]) for n in names]) / read_voltage


def invert_states(curve_states: np.ndarray, curve_g: np.ndarray, g: np.ndarray) -> np.ndarray:
    """States giving conductances ``g`` by log-linear interpolation of a measured curve."""
    lg = np.log(np.maximum(curve_g, 1e-30))
    d = np.diff(lg)
    if not (np.all(d > 0) or np.all(d < 0)):
        raise ValueError(
            "the cell's read conductance is not monotone in its state over the state range; give a narrower state range"
        )
    order = np.argsort(lg)
    lo, hi = curve_g.min(), curve_g.max()
    if np.any(g < lo * (1 - 1e-9)) or np.any(g > hi * (1 + 1e-9)):
        raise ValueError(
            f"conductances {np.min(g):.3g}-{np.max(g):.3g} S are outside what the state range "
            f"reaches ({lo:.3g}-{hi:.3g} S)"
        )
    return np.interp(np.log(g), lg[order], curve_states[order])


def cell_states(check: ArrayCheck, device: Device, state_param: str | None, g: np.ndarray) -> np.ndarray:
    """States [R, C] that set each cell to the conductance ``g`` of the table's cell type."""
    table = check.table
    vr = float(table.scheme["read_voltage"])
    if state_param == "x0":
        if check.table_cell == "1R":
            return builtin_gap(table, g)
        grid = np.linspace(float(table.model["g_min"]), float(table.model["g_max"]), GRID)
    else:
        if check.state_node is None or check.state_range is None:
            raise ValueError(
                f"subcircuit {device.subckt} has no known state: give the internal node that holds "
                "it (--state-node) and the range of its values (--state-range LO:HI)"
            )
        grid = np.linspace(*check.state_range, GRID)
    curve = state_curve(device, grid, vr, check.table_cell, state_param, check.state_node)
    return invert_states(grid, curve, g.ravel()).reshape(g.shape)


# ---------------------------------------------------------------------------- torch side
def torch_currents(
    check: ArrayCheck, g: np.ndarray, coef: np.ndarray | None, v: np.ndarray, times: dict[str, float], notes: list[str]
) -> dict[str, np.ndarray]:
    """Column currents [C, K] of every setting (see the module doc)."""
    import torch  # here, not at the top: the CLI's parser imports this module

    from rramsim.models.irdrop import AccessTransistor, TileSolver, approx_transfer, series_cell_current, series_iv

    r = check.wire_resistance
    out = {}
    t0 = time.perf_counter()
    out["linear+off"] = g.T @ v
    g_eff = approx_transfer(torch.from_numpy(g), r).numpy()
    out["linear+approx"] = g_eff.T @ v
    solver = TileSolver(g, r)
    out["linear+exact"] = solver.currents(v)
    times["torch linear (all three)"] = time.perf_counter() - t0
    if coef is None:
        return out
    feats = np.stack([v ** (k + 1) for k in range(3)])  # [3, R, K]
    t0 = time.perf_counter()
    cur, _ = solver.currents_nonlinear(v, coef)
    lin = solver.linearization(coef, v)
    times["torch table-iv+exact"] = time.perf_counter() - t0
    g_iv, coef_iv = g, coef
    if check.cell == "1T1R" and check.table_cell == "1R":
        out["table-iv+exact, no transistor"] = cur
        fet = AccessTransistor(w_over_l=check_device_wl(check), v_gate=check_device_vg(check))
        vr = float(check.table.scheme["read_voltage"])
        # two-terminal series I-V (source at 0 V): what the approx/off settings and the layers can use
        g_iv, coef_iv = series_iv(g, coef, fet, 1.05 * check.v_max, vr)
        out["table-iv+exact, series I-V at source 0 V"] = TileSolver(g_iv, r).currents_nonlinear(v, coef_iv)[0]
        t0 = time.perf_counter()
        gt = torch.from_numpy(g.T.copy())[:, :, None]
        ct = torch.from_numpy(np.ascontiguousarray(coef.transpose(1, 0, 2)))[:, :, None, :]
        cur, it = TileSolver(g_iv, r).currents_cells(v, lambda xr, xc: series_cell_current(xr - xc, xc, gt, ct, fet))
        times["torch table-iv+exact"] = time.perf_counter() - t0
        notes.append(
            f"1T1R from a 1R table: table-iv+exact is the table's I-V in series with the deck's access "
            f"transistor (level-1 NMOS, W/L {fet.w_over_l:g}, gate {fet.v_gate:g} V, source on the column "
            f"wire; {it} fixed-point passes); table-iv+approx/off use that series I-V with the source at "
            "0 V fitted as a cubic; linear settings use the table's conductances (no transistor)"
        )
    elif lin is not None:
        notes.append(
            f"table-iv+exact: per-programming linearization, probe error {lin['error']:.2e} of the "
            f"largest column current" + (" (over tolerance: fixed-point solve used)" if lin["fallback"] else "")
        )
    if check.table_cell == "1T1R":
        notes.append(
            "the table's cell is 1T1R: its I-V includes the access transistor with the source at 0 V; the "
            "torch cell leaves out the source's rise on the column wire (the gate drive shrinks with it)"
        )
    out["table-iv+exact"] = cur
    out["table-iv+off"] = np.einsum("ijk,kin->jn", g_iv[..., None] * coef_iv, feats)
    g_eff_iv = approx_transfer(torch.from_numpy(g_iv), r).numpy()
    out["table-iv+approx"] = np.einsum("ijk,kin->jn", g_eff_iv[..., None] * coef_iv, feats)
    return out


def check_device_wl(check: ArrayCheck) -> float:
    return float(check.table.model.get("w_over_l", Device.w_over_l))


def check_device_vg(check: ArrayCheck) -> float:
    return float(check.table.model.get("v_gate", Device.v_gate))


# ---------------------------------------------------------------------------- the run
def run_check(check: ArrayCheck) -> ArrayResult:
    """Program the array, read it in ngspice and in torch, return everything."""
    from rramsim.cosim.ngspice import Session, run_with_retries
    from rramsim.models.programming import fit_iv

    table = check.table
    R, C, K = check.rows, check.cols, check.vectors
    rng = np.random.default_rng(check.seed)
    level = rng.integers(0, table.n_levels, (R, C))
    g = table.g_final[level, rng.integers(0, table.n_devices, (R, C))]
    v = rng.uniform(0.0, check.v_max, (R, K))
    notes: list[str] = []
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    if check.linear_cells:
        device, state_param, states, coef = linear_device(), "gc", g.copy(), None
    else:
        device, state_param = table_device(table, check.cell)
        device = Device(
            device.subckt,
            device.definition,
            device.params,
            check.cell,
            check_device_vg(check),
            check_device_wl(check),
            device.controls,
            device.osdi,
        )
        states = cell_states(check, device, state_param, g)
        coef = fit_iv(table, check.v_max)[level]
    times["states"] = time.perf_counter() - t0
    deck = array_deck(
        device,
        states,
        v,
        check.wire_resistance,
        check.cell,
        state_param=state_param,
        state_node=None if state_param else check.state_node,
    )
    session = Session.get()
    names = column_vectors(C)
    t0, c0 = time.perf_counter(), time.process_time()
    out = run_with_retries(
        lambda opt: session.simulate(
            deck.replace(OPTIONS, OPTIONS + "\n" + opt),
            read_analysis(K),
            ["time"] + names,
            name=f"array {R}x{C}",
            params={"cell": check.cell},
        ),
        f"array {R}x{C}",
    )
    times["ngspice"] = time.perf_counter() - t0
    times["ngspice cpu"] = time.process_time() - c0
    ts = sample_times(K)
    spice = np.array([np.interp(ts, out["time"], out[n]) for n in names])
    cur = torch_currents(check, g, coef, v, times, notes)
    return ArrayResult(check, g, level, states, v, spice, cur, times, notes)


def summary(result: ArrayResult) -> str:
    """The error table as text (what the command prints)."""
    c = result.check
    err = result.errors()
    lines = [
        f"array read validation: {c.rows}x{c.cols} {c.cell}, {c.wire_resistance:g} ohm/segment, "
        f"{c.vectors} vectors uniform 0-{c.v_max:g} V, seed {c.seed}",
        f"  {'torch setting':<42} {'max rel error':>14} {'mean rel error':>15}",
    ]
    for name in sorted(err, key=lambda n: (n not in NAMED_SETTINGS, err[n]["max_rel_error"])):
        e = err[name]
        lines.append(f"  {name:<42} {100 * e['max_rel_error']:13.4f}% {100 * e['mean_rel_error']:14.4f}%")
    lines.append("  times: " + ", ".join(f"{k} {v:.3g} s" for k, v in result.times.items()))
    lines += [f"  note: {n}" for n in result.notes]
    return "\n".join(lines)


def to_json(result: ArrayResult) -> dict:
    c = result.check
    return {
        "rows": c.rows,
        "cols": c.cols,
        "cell": c.cell,
        "wire_resistance": c.wire_resistance,
        "vectors": c.vectors,
        "seed": c.seed,
        "v_max": c.v_max,
        "settings": result.errors(),
        "times_s": result.times,
        "notes": result.notes,
    }


def write_json(result: ArrayResult, path: str | os.PathLike) -> Path:
    path = Path(path)
    atomic_write(path, json.dumps(to_json(result), indent=2) + "\n")
    return path


def write_report(result: ArrayResult, path: str | os.PathLike) -> Path:
    """A markdown report with the error table and a plot (``<report>.png`` beside it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    png = path.with_suffix(".png")
    err = result.errors()
    names = sorted(err, key=lambda n: err[n]["max_rel_error"])
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    y = np.arange(len(names))
    a.barh(y - 0.2, [100 * err[n]["max_rel_error"] for n in names], 0.4, label="max")
    a.barh(y + 0.2, [100 * err[n]["mean_rel_error"] for n in names], 0.4, label="mean")
    a.set_yticks(y, names)
    a.set_xscale("log")
    a.set_xlabel("relative error of the column currents vs ngspice (%)")
    a.legend()
    for n in names:
        rel = np.abs(result.torch[n] - result.spice) / np.abs(result.spice)
        b.semilogy(np.arange(result.check.cols), 100 * rel.mean(axis=1), label=n)
    b.set_xlabel("column")
    b.set_ylabel("mean relative error (%)")
    b.legend(fontsize=7)
    fig.tight_layout()
    try:
        atomic_write(png, lambda tmp: fig.savefig(tmp, dpi=110))
    finally:
        plt.close(fig)
    c = result.check
    lines = [
        f"# Array read validation: {c.rows}x{c.cols} {c.cell}",
        "",
        f"Table: {c.table.model.get('name', '?')} ({c.table.n_levels} levels, cell {c.table_cell}); "
        f"wire {c.wire_resistance:g} ohm per segment; {c.vectors} input vectors uniform in 0-{c.v_max:g} V; "
        f"seed {c.seed}. ngspice reads the array of the table's own device (each cell set to a random "
        "level's programmed conductance); torch reads the same conductances.",
        "",
        "| torch setting | max rel. error | mean rel. error |",
        "|---|---:|---:|",
    ]
    for n in sorted(err, key=lambda n: err[n]["max_rel_error"]):
        lines.append(f"| {n} | {100 * err[n]['max_rel_error']:.4f}% | {100 * err[n]['mean_rel_error']:.4f}% |")
    lines += ["", f"![errors]({png.name})", ""]
    lines += [f"- {n}" for n in result.notes]
    lines += ["- times: " + ", ".join(f"{k} {v:.3g} s" for k, v in result.times.items()), ""]
    atomic_write(path, "\n".join(lines))
    return path


# ---------------------------------------------------------------------------- CLI
def cmd_validate_array(args) -> int:
    from rramsim.devices import DeviceTable

    table = DeviceTable.load(args.table)
    state_range = None
    if args.state_range:
        try:
            lo, hi = (float(x) for x in args.state_range.split(":"))
        except ValueError:
            raise ValueError(f"--state-range must be LO:HI (two numbers), got {args.state_range!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"--state-range must be LO:HI with LO < HI, got {args.state_range!r}")
        state_range = (lo, hi)
    check = ArrayCheck(
        table,
        args.rows,
        args.cols,
        args.cell,
        args.wire_resistance,
        args.vectors,
        args.seed,
        args.v_max,
        args.state_node,
        state_range,
    )
    result = run_check(check)
    print(summary(result))
    if args.json:
        print(f"wrote {write_json(result, args.json)}")
    if args.output:
        print(f"wrote {write_report(result, args.output)}")
    return 0


def add_commands(sub) -> None:
    """``rramsim validate array``."""
    from rramsim.cosim.argtypes import number, positive_int

    v = sub.add_parser("validate", help="check the torch model against ngspice")
    vsub = v.add_subparsers(dest="validate_command", required=True)
    a = vsub.add_parser("array", help="an R x C array of the table's device: ngspice vs the torch tile settings")
    a.add_argument("--table", required=True, help="device table (HDF5)")
    a.add_argument("--rows", type=positive_int, required=True)
    a.add_argument("--cols", type=positive_int, required=True)
    a.add_argument("--cell", choices=["1R", "1T1R"], default=None, help="default: the table's cell")
    a.add_argument("--wire-resistance", type=number, default=1.0, help="ohm per wire segment (default 1)")
    a.add_argument("--vectors", type=positive_int, default=8, help="random input vectors (default 8)")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument(
        "--v-max", type=number, default=None, help="inputs uniform in 0..V (default: the table's read voltage)"
    )
    a.add_argument("--state-node", help="user subcircuit: the internal node whose voltage is the state")
    a.add_argument("--state-range", metavar="LO:HI", help="user subcircuit: the state values to search")
    a.add_argument("--json", help="write the error figures as JSON")
    a.add_argument("-o", "--output", help="write a markdown report (and a PNG plot beside it)")
    a.set_defaults(func=cmd_validate_array)
    from rramsim.cosim import array_program  # characterize-array: programming inside an array

    array_program.add_commands(sub)
