"""Inference cost of a converted model: cycles, conversions, energy, latency, crossbars.

Model (per layer, per inference of one sample):

- vectors: MVMs per sample (1 for a linear layer, output pixels for a convolution).
- cycles per MVM: ``dac_bits`` with ``bit_serial`` (one input bit per cycle), else 1;
  each cycle lasts ``cycle_time`` and every tile of the layer works in parallel, so the
  layer latency is vectors x cycles x cycle_time (ADCs are assumed fast enough to
  convert a tile's columns within a cycle, as in ISAAC).
- ADC conversions: per cycle, one per slice signal of every tile column
  (outputs x slices x row tiles). Energy ``adc_energy * 2^(adc_bits - 8)`` each.
- DAC conversions: per cycle, one per used row of every tile. Energy
  ``dac_energy`` per bit of resolution (1 bit when bit-serial).
- Array read energy: V^2 G t summed over cells: ``read_voltage^2 * mean(v^2) *
  sum(G) * cycle_time`` per cycle, where mean(v^2) is the mean squared normalized input
  seen in the last forward with usage recording on (1 if never measured).
- Crossbars: tiles needed versus ``n_crossbars`` available. A layer with more tiles than
  are available computes in ``ceil(tiles / available)`` passes over its vectors. If the
  model does not fit, each inference (batch) needs ``ceil(needed / available)`` rounds of programming: every
  tile is rewritten once per batch, at the energy measured when it was programmed
  (the table's pulse energies) and, per round, the latency of writing its tiles under the
  config's ``program_parallelism`` and ``parallel_tile_writes``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from rramsim.models.convert import analog_layers
from rramsim.models.programming import combined_latency


@dataclass
class LayerCost:
    name: str
    kind: str
    tiles: int
    cells: int
    vectors: int
    cycles: int
    adc_conversions: float
    dac_conversions: float
    read_energy: float
    adc_energy: float
    dac_energy: float
    latency: float

    @property
    def energy(self) -> float:
        return self.read_energy + self.adc_energy + self.dac_energy


@dataclass
class CostReport:
    """Per-layer and total inference cost (per sample), plus crossbar budget and
    reprogramming when the network does not fit."""

    layers: list[LayerCost]
    crossbars_needed: int
    crossbars_available: int | None
    batch_size: int
    program_energy: float            # J, one full programming of the model
    program_latency: float           # s, one full programming (parallelism model of the config)
    program_pulses: float
    reprogram_rounds: int = 1        # programming rounds per batch (1: fits, programmed once)
    reprogram_energy: float = 0.0    # J per batch
    reprogram_latency: float = 0.0   # s per batch
    notes: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return self.crossbars_available is None or self.crossbars_needed <= self.crossbars_available

    @property
    def energy(self) -> float:
        """J per sample, compute plus amortized reprogramming."""
        return sum(l.energy for l in self.layers) + self.reprogram_energy / self.batch_size

    @property
    def latency(self) -> float:
        """s per sample (layers one after another) plus amortized reprogramming."""
        return sum(l.latency for l in self.layers) + self.reprogram_latency / self.batch_size

    def to_dict(self) -> dict:
        return {"layers": [l.__dict__ | {"energy": l.energy} for l in self.layers],
                "crossbars_needed": self.crossbars_needed, "crossbars_available": self.crossbars_available,
                "fits": self.fits, "batch_size": self.batch_size, "program_energy": self.program_energy,
                "program_latency": self.program_latency, "program_pulses": self.program_pulses,
                "reprogram_rounds": self.reprogram_rounds, "reprogram_energy": self.reprogram_energy,
                "reprogram_latency": self.reprogram_latency, "energy": self.energy, "latency": self.latency}

    def __str__(self) -> str:
        return format_cost_report(self)


def cost_report(model: nn.Module, example_input: torch.Tensor | None = None, batch_size: int = 1) -> CostReport:
    """Inference cost of ``model`` per sample; ``example_input`` (a batch) is run once to
    measure the vectors per sample and the input statistics; without it, the last forward's
    record is used (a linear layer needs none; a convolution needs one forward)."""
    layers = analog_layers(model)
    if not layers:
        raise ValueError("the model has no analog layers; convert it with convert_to_analog first")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if example_input is not None:
        for _, layer in layers:
            layer.record_usage = True
        try:
            with torch.no_grad():
                model(example_input)
        finally:
            for _, layer in layers:
                layer.record_usage = False
    rows, notes = [], []
    needed = 0
    cfg = layers[0][1].config
    prog_energy = prog_pulses = 0.0
    tile_energy, tile_latency = [], []
    for name, layer in layers:
        c = layer.config
        geo = layer.geometry()
        usage = layer.usage
        if "vectors_per_sample" in usage:
            vectors = usage["vectors_per_sample"]
        elif layer.weight.dim() == 2:
            vectors = 1
        else:
            raise ValueError(f"layer {name!r} is a convolution that has not run yet: pass example_input "
                             "to cost_report (one batch of inputs)")
        mean_v2 = usage.get("mean_v2", 1.0)
        if usage.get("adc_clipped", 0.0) > 0.01:
            notes.append(f"{name}: the ADC clipped {usage['adc_clipped']:.1%} of its conversions in the example "
                         "input; raise adc_range (full scale as a share of the column's worst case)")
        if "mean_v2" not in usage:
            notes.append(f"{name}: input statistics not measured, read energy assumes full-scale inputs")
        cycles = c.dac_bits if c.bit_serial else 1
        # a layer with more tiles than the crossbars available runs its vectors once per group of tiles
        passes = 1 if c.n_crossbars is None else math.ceil(geo["tiles"] / c.n_crossbars)
        adc_conv = vectors * cycles * geo["outputs"] * geo["slices"] * geo["row_tiles"]
        dac_conv = vectors * cycles * geo["rows"] * geo["col_tiles"]
        adc_e = 0.0 if c.adc_bits is None else c.adc_energy * 2.0 ** (c.adc_bits - 8)
        dac_e = c.dac_energy * (1 if c.bit_serial or c.dac_bits is None else c.dac_bits)
        g_sum = float(layer._conductances().sum()) if layer._programmed_version is not None else 0.0
        read_e = c.read_voltage ** 2 * mean_v2 * g_sum * c.cycle_time * cycles * vectors
        rows.append(LayerCost(name=name, kind=type(layer).__name__, tiles=geo["tiles"], cells=geo["cells"],
                              vectors=vectors, cycles=cycles, adc_conversions=adc_conv, dac_conversions=dac_conv,
                              read_energy=read_e, adc_energy=adc_conv * adc_e, dac_energy=dac_conv * dac_e,
                              latency=vectors * cycles * c.cycle_time * passes))
        needed += geo["tiles"]
        st = layer.program_stats
        prog_energy += st.get("energy", 0.0)
        prog_pulses += st.get("pulses", 0.0)
        tile_energy.extend(list(st.get("tile_energy", [])))
        tile_latency.extend(list(st.get("tile_latency", [])))
    from rramsim.models.convert import programming_summary
    prog_latency = programming_summary(model)["latency"]
    if any(math.isnan(x) for x in (prog_energy, prog_pulses, prog_latency)):
        notes.append("programming cost unknown (nan): the device table does not record pulses, energy or time "
                     "(a measured table imported without those columns)")
    report = CostReport(layers=rows, crossbars_needed=needed, crossbars_available=cfg.n_crossbars,
                        batch_size=batch_size, program_energy=prog_energy, program_latency=prog_latency,
                        program_pulses=prog_pulses, notes=notes)
    if not report.fits:
        avail = cfg.n_crossbars
        rounds = math.ceil(needed / avail)
        lat = sum(combined_latency(tile_latency[k:k + avail], cfg.parallel_tile_writes)
                  for k in range(0, len(tile_latency), avail))
        report.reprogram_rounds = rounds
        report.reprogram_energy = float(sum(tile_energy))
        report.reprogram_latency = float(lat)
        report.notes.append(f"needs {needed} crossbars, {avail} available: {rounds} programming rounds per batch "
                            f"of {batch_size}")
    return report


def format_cost_report(report: CostReport) -> str:
    """A readable table of the report."""
    head = (f"{'layer':<22} {'kind':<13} {'tiles':>5} {'vectors':>7} {'cycles':>6} {'ADC conv':>10} "
            f"{'DAC conv':>10} {'read nJ':>9} {'ADC nJ':>9} {'DAC nJ':>9} {'latency us':>10}")
    lines = ["Inference cost per sample", head, "-" * len(head)]
    for l in report.layers:
        lines.append(f"{l.name[:22]:<22} {l.kind:<13} {l.tiles:>5d} {l.vectors:>7d} {l.cycles:>6d} "
                     f"{l.adc_conversions:>10.3g} {l.dac_conversions:>10.3g} {l.read_energy * 1e9:>9.4f} "
                     f"{l.adc_energy * 1e9:>9.4f} {l.dac_energy * 1e9:>9.4f} {l.latency * 1e6:>10.3f}")
    lines.append("-" * len(head))
    tot = report.layers
    lines.append(f"{'total':<22} {'':<13} {report.crossbars_needed:>5d} {'':>7} {'':>6} "
                 f"{sum(l.adc_conversions for l in tot):>10.3g} {sum(l.dac_conversions for l in tot):>10.3g} "
                 f"{sum(l.read_energy for l in tot) * 1e9:>9.4f} {sum(l.adc_energy for l in tot) * 1e9:>9.4f} "
                 f"{sum(l.dac_energy for l in tot) * 1e9:>9.4f} {sum(l.latency for l in tot) * 1e6:>10.3f}")
    avail = "unlimited" if report.crossbars_available is None else str(report.crossbars_available)
    lines.append(f"crossbars: {report.crossbars_needed} needed, {avail} available"
                 + ("" if report.fits else f" -> {report.reprogram_rounds} reprogramming rounds per batch"))
    lines.append(f"programming (once): {report.program_pulses:.4g} pulses, {report.program_energy * 1e6:.4g} uJ, "
                 f"{report.program_latency * 1e3:.4g} ms")
    if not report.fits:
        lines.append(f"reprogramming per batch of {report.batch_size}: {report.reprogram_energy * 1e6:.4g} uJ, "
                     f"{report.reprogram_latency * 1e3:.4g} ms")
    lines.append(f"total per sample: {report.energy * 1e9:.4g} nJ, {report.latency * 1e6:.4g} us")
    lines.extend(f"note: {n}" for n in report.notes)
    return "\n".join(lines)
