"""Characterization: from a device subcircuit to a fitted :class:`DeviceTable`.

Steps (each a real ngspice run):

1. the write-verify campaign (:mod:`rramsim.cosim.campaign`), N devices x L levels;
2. the nominal device is programmed once more by the same closed loop, with a read-noise
   sample and a fast I-V leg after every verify read; those of the period where each
   level converged give the table's read conductance (exactly the state write-verify
   reached), read noise and I-V (read nonlinearity of every level);
3. retention (built-in model only, whose state can be set directly): cells at each level
   with device-to-device relaxation rates, read at log-spaced times up to ``retention_time``;
4. fitting (:mod:`rramsim.cosim.fitting`) into the table.
"""

from __future__ import annotations

import datetime
import shlex
import sys
import time as _time
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from rramsim import __version__
from rramsim.circuits.retention import (
    RELAX_START,
    relaxing_device,
    retention_analysis,
    retention_deck,
    retention_times,
    sample_times,
)
from rramsim.circuits.testbenches import Device, builtin_device, iv_sweep_deck, pulse_train_deck
from rramsim.cosim.campaign import CampaignResult, device_params, run_campaign
from rramsim.cosim.fitting import fit_table
from rramsim.cosim.ngspice import Session, run_with_retries
from rramsim.cosim.writeverify import BatchSpec, run_batch, timing
from rramsim.devices import CompactModel, DeviceTable, Variability
from rramsim.devices.schemes import ISPP, Scheme


@dataclass
class Characterization:
    """What to characterize: a device (built-in ``model`` or a user's subcircuit) and how."""

    device: Device
    model: CompactModel | None
    variability: Variability = field(default_factory=Variability)
    scheme: Scheme = field(default_factory=ISPP)
    targets: np.ndarray = field(default_factory=lambda: np.linspace(10e-6, 80e-6, 8))
    n_devices: int = 100
    seed: int = 0
    batch_size: int = 40
    iv_points: int = 21
    retention_time: float = 1e5  # s; 0 skips retention
    retention_devices: int = 8
    sweep_voltage: float = 1.3  # V, amplitude of the quasi-static SET/RESET sweep
    sweep_time: float = 4e-6  # s, duration of that sweep
    probe: dict = field(default_factory=dict)  # what the probe found (recorded in the table)

    def __post_init__(self) -> None:
        self.targets = np.asarray(self.targets, dtype=float)
        if self.n_devices < 1:
            raise ValueError(f"n_devices must be >= 1, got {self.n_devices}")
        if (
            self.targets.ndim != 1
            or self.targets.size < 1
            or np.any(self.targets <= 0)
            or np.any(np.diff(self.targets) <= 0)
        ):
            raise ValueError("targets must be positive conductances in strictly increasing order")
        if self.iv_points < 3:
            raise ValueError(f"iv_points must be >= 3, got {self.iv_points}")
        if self.scheme.gate_control and self.device.cell != "1T1R":
            raise ValueError(f"the {self.scheme.name} scheme steps the word line of a 1T1R cell: use --cell 1T1R")
        if not (self.sweep_voltage > 0 and self.sweep_time > 0):
            raise ValueError("sweep_voltage and sweep_time must be > 0")

    @classmethod
    def builtin(cls, model: CompactModel, cell: str = "1R", **kw) -> "Characterization":
        return cls(device=builtin_device(model.params(), cell), model=model, **kw)


def characterize(
    spec: Characterization,
    executor: Executor | None = None,
    workers: int | None = None,
    progress: bool = True,
    command: str | None = None,
    checkpoint=None,
    resume: bool = False,
) -> DeviceTable:
    """Run every bench of ``spec`` and fit the table.

    ``checkpoint``: a folder where finished write-verify batches are kept as they arrive
    (see :func:`run_campaign`); ``resume`` continues from it.
    """
    started = _time.time()
    cells = device_params(spec.model, spec.variability, spec.n_devices, spec.seed)
    campaign = run_campaign(
        spec.device,
        cells,
        spec.targets,
        spec.scheme,
        spec.seed,
        spec.batch_size,
        executor=executor,
        workers=workers,
        progress=progress,
        checkpoint=checkpoint,
        resume=resume,
    )
    from rramsim.cosim.device_checks import check_device_switches, check_levels_reached

    check_device_switches(campaign, spec.device)  # no table of a device that never switched
    check_levels_reached(campaign, spec.device)  # ... nor of one on which no target was reached
    read_g, read_sigma, iv_v, iv_current = measure_levels(spec)
    retention = measure_retention(spec) if spec.model is not None and spec.retention_time > 0 else None
    sweep = iv_sweep(spec.device, spec.sweep_voltage, spec.sweep_time, params=nominal_params(spec))
    session = Session.get()
    provenance = {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "rramsim_version": __version__,
        "ngspice_version": session.version,
        "backend": "osdi" if spec.device.osdi else ("behavioural" if spec.model is not None else "netlist"),
        "seed": int(spec.seed),
        "command": command or " ".join(shlex.quote(a) for a in sys.argv),
        "runtime_s": round(_time.time() - started, 2),
    }
    if spec.device.notes:  # the user's source was rewritten before it was compiled: say how
        provenance["source_rewrites"] = "\n".join(spec.device.notes)
    model = spec.model.params() if spec.model is not None else {}
    model = {"name": spec.model.name if spec.model else spec.device.subckt, "cell": spec.device.cell, **model}
    return fit_table(
        campaign,
        spec.scheme,
        read_g,
        read_sigma,
        iv_v,
        iv_current,
        retention,
        model=model,
        variability=spec.variability.to_dict(),
        model_netlist=spec.device.definition,
        programming_netlist=_programming_netlist(spec, cells),
        provenance=provenance,
        sweep_v=sweep["v"],
        sweep_current=sweep["i"],
        probe=dict(spec.probe),
        **traces(campaign),
    )


def traces(c: CampaignResult, devices: int = 8) -> dict[str, np.ndarray]:
    """Write-verify trajectories of the first ``devices`` devices, zero-padded: pulse
    amplitude, verify-read G, word-line voltage and width of every pulse."""
    n = min(devices, len(c.reads))
    length = np.array([len(c.reads[d]) for d in range(n)], dtype=np.int32)
    rows = {"amplitude": c.amplitudes, "g": c.reads, "gate": c.gates, "width": c.widths}
    rows = {k: v for k, v in rows.items() if len(v) == len(c.reads)}  # batches kept by an older rramsim lack some
    out = {name: np.zeros((n, length.max())) for name in rows}
    for d in range(n):
        for name, row in rows.items():
            out[name][d, : length[d]] = row[d]
    return {**{f"trace_{k}": v for k, v in out.items()}, "trace_length": length}


def _programming_netlist(spec: Characterization, cells: list) -> str:
    from rramsim.circuits.testbenches import write_verify_deck

    return write_verify_deck(
        spec.device, cells[:1], timing(spec.scheme), first=[spec.scheme.erase_pulse()], gates=spec.scheme.gate_control
    )


def nominal_params(spec: Characterization, **extra) -> dict | None:
    if spec.model is None:
        return None
    return dict(spec.model.params(), c2c=0.0, x0=spec.model.g_max, **extra)


def measure_levels(spec: Characterization):
    """Read conductance, read noise and I-V of every level, measured on the nominal device
    (no variability) in the very state its write-verify reached at that level."""
    iv_v = 1.5 * spec.scheme.read_voltage
    res = run_batch(
        BatchSpec(
            -1,
            spec.device,
            [nominal_params(spec)],
            spec.targets,
            spec.scheme,
            [[spec.seed]],
            measure=True,
            iv_voltage=iv_v,
            iv_points=spec.iv_points,
        )
    )
    return res.g_final[:, 0], res.read_sigma[:, 0], res.iv_v, res.iv_current[:, 0, :]


#: seed salt of the retention cells' relaxation-rate draws (independent of the campaign's draws)
RETENTION_SEED_SALT = 0xDEC
#: seed salt of the post-programming relaxation draws (independent of the rate draws)
RELAX_SEED_SALT = 0xDEF


def relaxation_draws(seed: int, levels: int, n: int) -> np.ndarray:
    """Unit normal draws [levels, n] of the cells' relaxation amplitudes, stratified: the
    normal quantiles at (k + 1/2)/n scaled to unit standard deviation, in a seeded random
    order per level. The bench measures a level's spread from its n cells; stratified draws
    make that the distribution's spread for any n (random ones would be off by about
    1/sqrt(2n), 25% for 8 cells), while each cell's draw stays random in its order."""
    from scipy.special import ndtri

    if n < 2:
        raise ValueError(f"the post-programming relaxation's spread needs at least 2 retention devices, got {n}")
    q = ndtri((np.arange(n) + 0.5) / n)
    q = q / q.std()
    rng = np.random.default_rng([seed, RELAX_SEED_SALT])
    return np.stack([rng.permutation(q) for _ in range(levels)])


def measure_retention(spec: Characterization) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """G(t)/G(0) of every level for ``retention_devices`` cells with d2d relaxation rates.

    Measured on the bare device (a 1T1R cell's access transistor is left out): between
    reads the cell sits at 0 V, where the transistor does not move the state, and the
    ratio G(t)/G(0) is the device's own relaxation. The deck always uses the built-in
    model's B-source netlist (same physics as the compiled model): its 1e5 s time steps
    followed by microsecond read edges stall the compiled model's time-step control.
    Each level's cells start at the gap whose read current gives the target conductance
    (the model's I-V solved for g), with read noise off.

    With the post-programming relaxation on (``spec.variability.relaxation``), each cell
    also gets its own ``delta`` (:func:`relaxation_draws`) and relaxes from the end of the
    reference read (:data:`rramsim.circuits.retention.RELAX_START`): G(0) is the state
    write-verify left, and ``ratio``/``sigma`` at 1 s already hold a second of relaxation.
    """
    model, vr = spec.model, spec.scheme.read_voltage
    relax = spec.variability.relaxation
    device = relaxing_device(model.params()) if relax.on else builtin_device(model.params(), "1R")
    times = retention_times(spec.retention_time)
    gaps = -model.g0 * np.log(spec.targets * vr / (model.i0 * np.sinh(vr / model.v0)))
    rng = np.random.default_rng([spec.seed, RETENTION_SEED_SALT])
    sigma = spec.variability.d2d.get("r_ret", 0.0)
    rates = model.r_ret * np.exp(sigma * rng.standard_normal(spec.retention_devices))
    cells = [
        dict(model.params(), x0=float(np.clip(g, model.g_min, model.g_max)), r_ret=float(r), noise=0.0)
        for g in gaps
        for r in rates
    ]
    if relax.on:
        z = relaxation_draws(spec.seed, len(gaps), spec.retention_devices)
        delta = relax.sigma_gap(np.clip(gaps, model.g_min, model.g_max))[:, None] * z
        for cell, d in zip(cells, delta.reshape(-1)):
            cell.update(relax=float(d), relax_t0=RELAX_START, relax_tau=relax.tau)
    session = Session.get()
    currents = [f"i(vs{k})" for k in range(len(cells))]
    out = run_with_retries(
        lambda options: session.simulate(
            retention_deck(device, cells, times, vr, options),
            retention_analysis(times),
            ["time"] + currents,
            name="retention",
        ),
        "retention",
    )
    g = np.array([np.interp(sample_times(times), out["time"], out[i]) / vr for i in currents])
    g = g.reshape(len(gaps), len(rates), len(times) + 1)
    ratio = g[:, :, 1:] / g[:, :, :1]
    return times, ratio.mean(axis=1), ratio.std(axis=1)


def pulse_read(
    device: Device,
    amplitude: float,
    scheme: Scheme | None = None,
    params: dict | None = None,
    width: float | None = None,
) -> dict[str, float]:
    """One programming pulse of ``amplitude`` volts (negative: RESET polarity on the first
    port) and ``width`` (default: the scheme's SET width) between two reads.

    Returns the read conductance before and after, and the pulse's energy (∫v·i dt).
    """
    scheme = scheme or ISPP()
    width = scheme.set_width if width is None else width
    session = Session.get()
    name = "pulse + read"
    deck_reads = {}

    def attempt(options: str):
        deck, reads = pulse_train_deck(
            device, [params], [(0.0, width), (float(amplitude), width)], scheme.read_voltage, options
        )
        deck_reads["t"] = reads
        step = width / 10
        return session.simulate(
            deck,
            f"tran {step!r} {reads[-1] + 1e-9!r} 0 {step!r} uic",
            ["time", "v(d)", "i(vs0)"],
            name=name,
            params={"amplitude": amplitude},
        )

    out = run_with_retries(attempt, name)
    t, v, i = out["time"], out["v(d)"], out["i(vs0)"]
    reads = deck_reads["t"]
    g = [float(np.interp(tr, t, i) / np.interp(tr, t, v)) for tr in reads]
    during = (t >= reads[0]) & (t <= reads[1])
    return {"g_before": g[0], "g_after": g[1], "energy": float(np.trapezoid(v[during] * i[during], t[during]))}


def iv_sweep(
    device: Device, v_max: float = 1.3, period: float = 4e-6, params: dict | None = None, points: int = 2000
) -> dict[str, np.ndarray]:
    """Quasi-static I-V sweep (SET then RESET): time, voltage and device current."""
    session = Session.get()
    out = run_with_retries(
        lambda options: session.simulate(
            iv_sweep_deck(device, v_max, period, options, params),
            f"tran {period / points!r} {period!r} uic",
            ["time", "v(d)", "i(vd)"],
            name="I-V sweep",
            params={"v_max": v_max, "period": period},
        ),
        "I-V sweep",
    )
    return {"time": out["time"], "v": out["v(d)"], "i": -out["i(vd)"]}


__all__ = ["Characterization", "characterize", "iv_sweep", "pulse_read", "measure_levels", "measure_retention"]
