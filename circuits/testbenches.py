"""Testbench decks: I-V sweep, write-verify batches, pulse trains, crossbar-free.

Each bench only drives and reads the two terminals of a device subcircuit, so the
built-in model and a user's own ``.subckt`` are characterized the same way. A
:class:`Device` says which subcircuit to instantiate and carries its definition text.
Every number goes through :mod:`rramsim.circuits.render`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rramsim.circuits.compact_model import INSTANCE_PARAMS, nmos_model
from rramsim.circuits.render import check_identifier, instance_params, number, render

EDGE = 1e-9  # s, pulse rise/fall
GAP = 2e-9  # s, quiet time between the pulse and the verify read
T_READ = 10e-9  # s, verify-read plateau
IV_SEGMENTS = 20  # straight pieces of the I-V leg of a measuring write-verify period (corners on the I-V grid)

OPTIONS = ".options method=gear reltol=1e-4"


@dataclass(frozen=True)
class Device:
    """A two-terminal device subcircuit as the benches instantiate it.

    ``definition`` is the subcircuit text (built-in model or the user's checked file);
    ``params`` names the instance parameters the subcircuit accepts (empty for a user's
    device: it is characterized as written). ``cell`` is ``"1R"`` or ``"1T1R"``.
    ``controls`` says the subcircuit has the built-in model's two extra ports (``c``:
    cycle-to-cycle draw, ``n``: read-noise waveform) after its two terminals.
    """

    subckt: str
    definition: str
    params: tuple[str, ...] = ()
    cell: str = "1R"
    v_gate: float = 1.2  # V, word-line voltage of the 1T1R access transistor
    w_over_l: float = 3.0  # access transistor W/L (sets the SET compliance)
    controls: bool = False
    osdi: tuple[str, ...] = ()  # compiled Verilog-A libraries the simulator must load first
    notes: tuple[str, ...] = ()  # rewrites made to the user's source before compiling (recorded in tables)

    def __post_init__(self) -> None:
        check_identifier(self.subckt, "subcircuit name")
        if self.cell not in ("1R", "1T1R"):
            raise ValueError(f"cell must be '1R' or '1T1R', got {self.cell!r}")

    @property
    def accepts_params(self) -> bool:
        return bool(self.params)

    def header(self) -> str:
        lines = [f"* osdi: {path}" for path in self.osdi] + [self.definition.rstrip()]
        if self.cell == "1T1R":
            lines.append(nmos_model("nacc").rstrip())
            lines.append(f"Vwl wl 0 dc {number(self.v_gate, 'v_gate')}")
        return "\n".join(lines)

    def instance(
        self,
        tag: str,
        top: str,
        params: Mapping[str, float] | None = None,
        c2c_node: str = "0",
        noise_node: str = "0",
        gate: str = "wl",
    ) -> str:
        """Cell lines between node ``top`` and ground, named with ``tag``; the control
        nodes reach the built-in model only (ground switches them off); ``gate`` is the
        word line of a 1T1R cell."""
        check_identifier(tag, "instance tag")
        p = ""
        if params:
            if not self.accepts_params:
                raise ValueError(
                    f"subcircuit {self.subckt} takes no instance parameters; "
                    "variability and presets apply to the built-in model only"
                )
            p = " " + instance_params(params, self.params)
        ctl = (
            f" {check_identifier(c2c_node, 'node') if c2c_node != '0' else '0'} "
            f"{check_identifier(noise_node, 'node') if noise_node != '0' else '0'}"
            if self.controls
            else ""
        )
        if self.cell == "1R":
            return f"X{tag} {top} 0{ctl} {self.subckt}{p}"
        wl = number(self.w_over_l, "w_over_l")
        return (
            f"X{tag} {top} m{tag}{ctl} {self.subckt}{p}\n"
            f"M{tag} m{tag} {check_identifier(gate, 'gate node')} 0 0 nacc w={wl}u l=1u"
        )


def builtin_device(model_params: Mapping[str, float], cell: str = "1R", **kw) -> Device:
    """The built-in behavioural model as a :class:`Device`."""
    from rramsim.circuits.compact_model import rram_subckt

    return Device(
        "rram", rram_subckt(dict(model_params)), tuple(model_params) + INSTANCE_PARAMS, cell, controls=True, **kw
    )


# ---------------------------------------------------------------------------- I-V sweep
def iv_sweep_deck(
    device: Device, v_max: float, period: float, extra_options: str = "", params: Mapping[str, float] | None = None
) -> str:
    """Quasi-static triangular sweep 0 → +v_max → 0 → −v_max → 0 over ``period``."""
    pwl = render(
        "Vd d 0 pwl(0 0 {q} {v} {q2} 0 {q3} {nv} {q4} 0)",
        {
            "q": period / 4,
            "q2": period / 2,
            "q3": 3 * period / 4,
            "q4": period,
            "v": v_max,
            "nv": -float(number(v_max, "v_max")),
        },
    )
    return "\n".join(
        line
        for line in [
            "* rramsim I-V sweep",
            OPTIONS,
            extra_options,
            device.header(),
            pwl,
            device.instance("dut", "d", params),
            ".end",
        ]
    )


# ---------------------------------------------------------------------------- write-verify
@dataclass(frozen=True)
class PulseTiming:
    """One pulse period, shared by all cells of a batch: a pulse slot long enough for the
    scheme's longest pulse, a quiet gap, the verify-read plateau (``reads`` reads of
    ``T_READ``) and, with ``measure``, a read-noise sample and an I-V leg after it.

    Edges are 1 ns, or a quarter of the shortest pulse when that is shorter; for long
    pulses (a large step cap) edges, gaps and reads are stretched so that ngspice keeps
    their breakpoints (it merges breakpoints closer than 5e-5 of the step cap).
    """

    slot: float = 50e-9  # s, longest pulse of the scheme
    read_voltage: float = 0.2
    reads: int = 1
    edge: float = EDGE
    measure: bool = False  # append the read-noise sample and the I-V leg to every period
    iv_voltage: float = 0.3  # V, amplitude of the I-V leg (measure only)
    iv_time: float = 100e-9  # s, a quarter of the I-V leg (measure only)
    t_read: float = T_READ  # s, one verify read
    gap: float = GAP  # s, quiet time after a pulse and after the read

    @property
    def read_delay(self) -> float:
        return 2 * self.edge + self.slot + self.gap

    @property
    def read_time(self) -> float:
        return self.reads * self.t_read

    @property
    def noise_start(self) -> float:
        """Start of the read-noise sample (the noise port is 1 there; measure only)."""
        return self.read_delay + self.edge + self.read_time

    @property
    def iv_start(self) -> float:
        return self.noise_start + self.t_read

    @property
    def period(self) -> float:
        if self.measure:
            return self.iv_start + 4 * self.iv_time + self.gap
        return self.read_delay + 2 * self.edge + self.read_time + self.gap

    def read_times(self, k: int) -> list[float]:
        """Times of the verify reads of period k (the last one is where the run pauses)."""
        t0 = k * self.period + self.read_delay + self.edge
        return [t0 + (j + 0.8) * self.t_read for j in range(self.reads)]

    def stop_time(self, k: int) -> float:
        """Time inside the k-th period's read plateau where the run pauses for the verify."""
        return self.read_times(k)[-1]

    def cell_time(self, width: float) -> float:
        """Programming time of one pulse of ``width`` and its verify (the cell's own latency)."""
        return 4 * self.edge + width + 2 * self.gap + self.read_time


def pulse_source(name: str, node: str, low: float, high: float, width: float, timing: PulseTiming) -> str:
    """A periodic pulse from ``low`` to ``high`` in every period's pulse slot (the engine
    alters its levels and width between periods)."""
    return render(
        f"V{check_identifier(name, 'source')} {check_identifier(node, 'node')} 0 "
        "pulse({lo} {hi} 0 {e} {e} {w} {per})",
        {"lo": low, "hi": high, "e": timing.edge, "w": width, "per": timing.period},
    )


def pulse_vector(low: float, high: float, width: float, timing: PulseTiming) -> str:
    """The parameter vector of :func:`pulse_source` for ngspice's ``alter``."""
    return (
        "[ "
        + " ".join(number(x, "pulse") for x in (low, high, 0.0, timing.edge, timing.edge, width, timing.period))
        + " ]"
    )


def _read_drive(timing: PulseTiming) -> str:
    """The read drive ``rs`` (volts): the verify plateau of every period; with ``measure``
    also the noise sample and the I-V leg (0 -> -v -> +v -> 0), repeated every period."""
    e, vr = timing.edge, timing.read_voltage
    if not timing.measure:
        return render(
            "Vrs rs 0 pulse(0 {vr} {td} {e} {e} {tr} {per})",
            {"vr": vr, "td": timing.read_delay, "e": e, "tr": timing.read_time, "per": timing.period},
        )
    a, q = timing.iv_start, timing.iv_time
    ramp = [
        (a + q + 2 * q * j / IV_SEGMENTS, timing.iv_voltage * (2 * j / IV_SEGMENTS - 1)) for j in range(IV_SEGMENTS + 1)
    ]  # every corner is a time point of the run
    pts = [
        (0.0, 0.0),
        (timing.read_delay, 0.0),
        (timing.read_delay + e, vr),
        (a, vr),
        *ramp,
        (a + 4 * q, 0.0),
        (timing.period, 0.0),
    ]
    return "Vrs rs 0 pwl(" + " ".join(f"{number(t, 'time')} {number(v, 'volts')}" for t, v in pts) + ") r=0"


def write_verify_deck(
    device: Device,
    cell_params: Sequence[Mapping[str, float] | None],
    timing: PulseTiming,
    extra_options: str = "",
    first: Sequence | None = None,
    gates: bool = False,
    seed: int = 1,
) -> str:
    """A batch of independent cells, each driven by its own pulse source ``va<k>``.

    The drive of cell k is ``V(a<k>) + V(rs)``: its pulse (amplitude and width set by the
    engine between periods with ``alter``) plus the shared verify-read plateau. The engine
    pauses in every read plateau, reads ``i(vs<k>)``, alters the pulse sources for the next
    period and resumes. ``first``: each cell's first pulse (``amplitude``, ``width``,
    ``gate`` attributes; default none). ``gates`` gives every 1T1R cell its own word line
    ``vg<k>`` (gate-controlled schemes): the pulse's gate voltage during the pulse slot, the
    cell's read gate voltage otherwise. With ``timing.measure`` the built-in model's noise
    port is driven with 1 during the noise sample (its read-noise response).
    """
    if gates and device.cell != "1T1R":
        raise ValueError("a gate-controlled scheme needs a 1T1R cell (--cell 1T1R): a 1R cell has no word line to step")
    lines = ["* rramsim write-verify batch", OPTIONS, extra_options, device.header(), _read_drive(timing)]
    if timing.measure and device.controls:
        lines.append(
            render(
                "Vnz nz 0 pulse(0 1 {td} {e} {e} {w} {per})",
                {
                    "td": timing.noise_start,
                    "e": timing.edge,
                    "w": timing.t_read - 2 * timing.edge,
                    "per": timing.period,
                },
            )
        )
    saves = ["time"]
    for k, p in enumerate(cell_params):
        pulse = first[k] if first is not None else None
        amp, width = (pulse.amplitude, pulse.width) if pulse is not None else (0.0, timing.slot)
        lines += [
            pulse_source(f"a{k}", f"a{k}", 0.0, amp, width, timing),
            f"Bd{k} d{k} 0 V=V(a{k})+V(rs)",
            f"Vs{k} d{k} t{k} dc 0",
        ]
        gate = "wl"
        if gates:
            vg = pulse.gate if pulse is not None and pulse.gate is not None else device.v_gate
            lines.append(pulse_source(f"g{k}", f"wl{k}", device.v_gate, vg, width, timing))
            gate = f"wl{k}"
        noise = "nz" if timing.measure and device.controls else "0"
        if device.controls:
            lines += [
                f"Vk{k} k{k} 0 dc 0",
                device.instance(f"c{k}", f"t{k}", p, c2c_node=f"k{k}", noise_node=noise, gate=gate),
            ]
        else:
            lines.append(device.instance(f"c{k}", f"t{k}", p, gate=gate))
        saves += [f"i(vs{k})", f"v(d{k})"]
    lines += [".save " + " ".join(saves), ".end"]
    return "\n".join(line for line in lines if line)


# ---------------------------------------------------------------------------- pulse trains
def pulse_train_deck(
    device: Device,
    cell_params: Sequence[Mapping[str, float] | None],
    pulses: Sequence[tuple[float, float]],
    read_voltage: float,
    extra_options: str = "",
    edge: float = EDGE,
) -> tuple[str, list[float]]:
    """Fresh cells driven in parallel by a fixed train of ``(amplitude, width)`` pulses,
    each followed by a read plateau at ``read_voltage``. Returns the deck and the time of
    each pulse's read (the probe and single-pulse benches; closed-loop programming is
    :func:`write_verify_deck`)."""
    pts, reads, t0 = [(0.0, 0.0)], [], 0.0
    vr = float(number(read_voltage, "read_voltage"))
    for i, (a, w) in enumerate(pulses):
        a, w = float(number(a, f"amplitude[{i}]")), float(number(w, f"width[{i}]"))
        e = min(max(edge, 1e-4 * w), w / 4)  # breakpoints survive a step cap of w/10
        tr, gap = max(T_READ, 10 * e), max(GAP, 2 * e)
        rd = t0 + 2 * e + w + gap
        pts += [
            (t0 + e, a),
            (t0 + e + w, a),
            (t0 + 2 * e + w, 0.0),
            (rd, 0.0),
            (rd + e, vr),
            (rd + e + tr, vr),
            (rd + 2 * e + tr, 0.0),
        ]
        reads.append(rd + e + 0.8 * tr)
        t0 = rd + 2 * e + tr + gap
    pts.append((t0, 0.0))
    pwl = " ".join(f"{t!r} {v!r}" for t, v in pts)
    lines = ["* rramsim pulse train", OPTIONS, extra_options, device.header(), f"Vd d 0 pwl({pwl})"]
    saves = ["time", "v(d)"]
    for k, p in enumerate(cell_params):
        lines += [f"Vs{k} d t{k} dc 0", device.instance(f"c{k}", f"t{k}", p)]
        saves.append(f"i(vs{k})")
    lines += [".save " + " ".join(saves), ".end"]
    return "\n".join(line for line in lines if line), reads
