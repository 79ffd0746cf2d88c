"""Testbench decks: I-V sweep, pulse + read, write-verify batches, replay, crossbar-free.

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

EDGE = 1e-9        # s, pulse rise/fall
GAP = 2e-9         # s, quiet time between the pulse and the verify read
T_READ = 10e-9     # s, verify-read plateau

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
    v_gate: float = 1.2        # V, word-line voltage of the 1T1R access transistor
    w_over_l: float = 3.0      # access transistor W/L (sets the SET compliance)
    controls: bool = False
    osdi: tuple[str, ...] = ()  # compiled Verilog-A libraries the simulator must load first

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

    def instance(self, tag: str, top: str, params: Mapping[str, float] | None = None,
                 c2c_node: str = "0", noise_node: str = "0") -> str:
        """Cell lines between node ``top`` and ground, named with ``tag``; the control
        nodes reach the built-in model only (ground switches them off)."""
        check_identifier(tag, "instance tag")
        p = ""
        if params:
            if not self.accepts_params:
                raise ValueError(f"subcircuit {self.subckt} takes no instance parameters; "
                                 "variability and presets apply to the built-in model only")
            p = " " + instance_params(params, self.params)
        ctl = f" {check_identifier(c2c_node, 'node') if c2c_node != '0' else '0'} " \
              f"{check_identifier(noise_node, 'node') if noise_node != '0' else '0'}" if self.controls else ""
        if self.cell == "1R":
            return f"X{tag} {top} 0{ctl} {self.subckt}{p}"
        wl = number(self.w_over_l, "w_over_l")
        return (f"X{tag} {top} m{tag}{ctl} {self.subckt}{p}\n"
                f"M{tag} m{tag} wl 0 0 nacc w={wl}u l=1u")


def builtin_device(model_params: Mapping[str, float], cell: str = "1R", **kw) -> Device:
    """The built-in behavioural model as a :class:`Device`."""
    from rramsim.circuits.compact_model import rram_subckt
    return Device("rram", rram_subckt(dict(model_params)), tuple(model_params) + INSTANCE_PARAMS, cell,
                  controls=True, **kw)


# ---------------------------------------------------------------------------- I-V sweep
def iv_sweep_deck(device: Device, v_max: float, period: float, extra_options: str = "",
                  params: Mapping[str, float] | None = None) -> str:
    """Quasi-static triangular sweep 0 → +v_max → 0 → −v_max → 0 over ``period``."""
    pwl = render("Vd d 0 pwl(0 0 {q} {v} {q2} 0 {q3} {nv} {q4} 0)",
                 {"q": period / 4, "q2": period / 2, "q3": 3 * period / 4, "q4": period,
                  "v": v_max, "nv": -float(number(v_max, "v_max"))})
    return "\n".join(line for line in [
        "* rramsim I-V sweep", OPTIONS, extra_options, device.header(), pwl,
        device.instance("dut", "d", params), ".end"])


# ---------------------------------------------------------------------------- write-verify
@dataclass(frozen=True)
class PulseTiming:
    """One pulse period: pulse, quiet gap, verify read (all the batch cells share it)."""

    pulse_width: float = 50e-9
    read_voltage: float = 0.2

    @property
    def read_delay(self) -> float:
        return 2 * EDGE + self.pulse_width + GAP

    @property
    def period(self) -> float:
        return self.read_delay + 2 * EDGE + T_READ + GAP

    def stop_time(self, k: int) -> float:
        """Time inside the k-th period's read plateau where the run pauses for the verify."""
        return k * self.period + self.read_delay + EDGE + 0.8 * T_READ


def write_verify_deck(device: Device, cell_params: Sequence[Mapping[str, float] | None], timing: PulseTiming,
                      extra_options: str = "", seed: int = 1) -> str:
    """A batch of independent cells, each driven by its own amplitude source ``va<k>``.

    The drive of cell k is ``V(a<k>) * pulse(t) + v_read * read(t)``: the engine pauses in
    every read plateau, reads ``i(vs<k>)``, and alters ``va<k>`` for the next pulse (and,
    for the built-in model, ``vk<k>``: the cycle-to-cycle draw of the next period).
    """
    per = timing.period
    lines = ["* rramsim write-verify batch", OPTIONS, extra_options, device.header(),
             render("Vps ps 0 pulse(0 1 0 {e} {e} {pw} {per})", {"e": EDGE, "pw": timing.pulse_width, "per": per}),
             render("Vrs rs 0 pulse(0 1 {td} {e} {e} {tr} {per})",
                    {"td": timing.read_delay, "e": EDGE, "tr": T_READ, "per": per})]
    saves = ["time"]
    vr = number(timing.read_voltage, "read_voltage")
    for k, p in enumerate(cell_params):
        lines += [f"Va{k} a{k} 0 dc 0",
                  f"Bd{k} d{k} 0 V=V(a{k})*V(ps)+{vr}*V(rs)",
                  f"Vs{k} d{k} t{k} dc 0"]
        if device.controls:
            lines += [f"Vk{k} k{k} 0 dc 0", device.instance(f"c{k}", f"t{k}", p, c2c_node=f"k{k}")]
        else:
            lines.append(device.instance(f"c{k}", f"t{k}", p))
        saves += [f"i(vs{k})", f"v(d{k})"]
    lines += [".save " + " ".join(saves), ".end"]
    return "\n".join(line for line in lines if line)


# ---------------------------------------------------------------------------- replay
def replay_deck(device: Device, cell_params: Sequence[Mapping[str, float] | None], amplitudes: Sequence[float],
                timing: PulseTiming, tail: Sequence[tuple[float, float]], extra_options: str = "",
                noise: Sequence[tuple[float, float]] = ()) -> str:
    """Re-apply a recorded pulse train to fresh cells, then the PWL ``tail`` (time from
    the end of the train, volts): a read-noise plateau, an I-V sweep or a retention wait.
    ``noise`` (time from the end of the train, unit-noise value) drives the read-noise
    port of cell 0 of the built-in model.
    """
    per, pts = timing.period, [(0.0, 0.0)]
    for i, a in enumerate(amplitudes):
        t0 = i * per
        a = float(number(a, f"amplitude[{i}]"))
        vr = timing.read_voltage
        pts += [(t0 + EDGE, a), (t0 + EDGE + timing.pulse_width, a), (t0 + 2 * EDGE + timing.pulse_width, 0.0),
                (t0 + timing.read_delay, 0.0), (t0 + timing.read_delay + EDGE, vr),
                (t0 + timing.read_delay + EDGE + T_READ, vr), (t0 + timing.read_delay + 2 * EDGE + T_READ, 0.0)]
    t_end = len(amplitudes) * per
    for dt, v in tail:
        pts.append((t_end + float(number(dt, "tail time")), float(number(v, "tail voltage"))))
    pwl = " ".join(f"{t!r} {v!r}" for t, v in pts)
    lines = ["* rramsim replay", OPTIONS, extra_options, device.header(), f"Vd d 0 pwl({pwl})"]
    saves = ["time", "v(d)"]
    if noise and device.controls:
        pts_n = [(0.0, 0.0)] + [(t_end + float(number(dt, "noise time")), float(number(z, "noise value")))
                                for dt, z in noise]
        lines.append("Vnz nz 0 pwl(" + " ".join(f"{t!r} {v!r}" for t, v in pts_n) + ")")
    for k, p in enumerate(cell_params):
        node = "nz" if (k == 0 and noise and device.controls) else "0"
        lines += [f"Vs{k} d t{k} dc 0", device.instance(f"c{k}", f"t{k}", p, noise_node=node)]
        saves.append(f"i(vs{k})")
    lines += [".save " + " ".join(saves), ".end"]
    return "\n".join(line for line in lines if line)
