"""The compute macro of the low-bit co-design: a binary-cell crossbar read a few rows at
a time by a small counting ADC, with cells programmed from a DeviceTable.

A weight is one cell (``+1`` -> the table's highest level, ``-1`` -> its lowest), inputs
are streamed bit by bit, at most ``max_rows`` rows are driven per read and an
``adc_bits`` ADC counts the low-resistance cells among them (7 rows, 3 bits: the count
0..7 is exact), so the partial sum of a read is ``2 * count - n_driven``.
Sparsity-aware input control drives only rows whose input bit is 1: zeros cost no read
cycles. With the table's programming spread and read noise the count can be off by one:
that is the noise impact. The macro counts its reads and ADC conversions while it runs;
rramsim's cost model prices them (:class:`rramsim.models.cost.CostModel` on the crossbar
config :meth:`MacroConfig.crossbar`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rramsim.devices import DeviceTable
from rramsim.models.config import CrossbarConfig
from rramsim.models.cost import CostModel
from rramsim.models.energy import ADC_ENERGY_8BIT
from rramsim.models.programming import DevicePhysics

from .integer_network import IntLayer

__all__ = ["Macro", "MacroConfig"]


@dataclass
class MacroConfig:
    """The compute macro of the paper (all fields configurable). Its crossbar hardware and
    prices as a :class:`~rramsim.models.config.CrossbarConfig`: :meth:`crossbar`."""

    rows: int = 128
    cols: int = 128
    max_rows: int = 7  # rows driven together in one read
    adc_bits: int = 3
    sparsity_aware: bool = True  # drive only rows whose input bit is 1
    cycle_time: float = 10e-9  # s per read
    adc_energy: float = ADC_ENERGY_8BIT  # J per 8-bit conversion (scaled by 2^(bits-8))
    read_voltage: float = 0.2
    noise_scale: float = 1.0  # multiplies the table's programming spread and read noise

    def __post_init__(self) -> None:
        for name in ("rows", "cols", "max_rows", "adc_bits"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"MacroConfig.{name} must be a positive integer, got {v!r}")
        if self.max_rows > self.rows:
            raise ValueError(f"MacroConfig.max_rows={self.max_rows} exceeds rows={self.rows}")
        if 2**self.adc_bits - 1 < self.max_rows:
            raise ValueError(
                f"MacroConfig: a {self.adc_bits}-bit ADC counts at most {2**self.adc_bits - 1} cells "
                f"but max_rows={self.max_rows}; raise adc_bits or lower max_rows"
            )
        if not (math.isfinite(self.noise_scale) and self.noise_scale >= 0):
            raise ValueError(f"MacroConfig.noise_scale must be a finite number >= 0, got {self.noise_scale!r}")
        try:
            self.crossbar()
        except ValueError as exc:
            raise ValueError(f"MacroConfig: {exc}") from None

    def crossbar(self) -> CrossbarConfig:
        """The macro as rramsim's crossbar config, what the cost model prices: ``rows`` x
        ``cols`` tiles, one cell per weight around the middle of the two levels (the
        ``"offset"`` layout: ``+1`` -> LRS, ``-1`` -> HRS, the offset removed digitally as
        ``2 * count - n_driven``), the ADC, the read cycle and voltage; the rows are switched
        on or off, so there is no DAC (no DAC energy). The macro's reads are Ohmic sums
        without wire resistance, and so is the config."""
        return CrossbarConfig.ohmic(
            tile_rows=self.rows,
            tile_cols=self.cols,
            mapping="offset",
            dac_bits=None,
            adc_bits=self.adc_bits,
            read_voltage=self.read_voltage,
            cycle_time=self.cycle_time,
            adc_energy=self.adc_energy,
            dac_energy=0.0,
        )


class Macro:
    """Runs integer layers on the macro with cells programmed from a DeviceTable.

    ``w = +1`` is the table's highest level (LRS), ``-1`` its lowest (HRS). Each layer's
    cells are programmed once (seeded); every read adds the table's read noise.
    ``noisy=False`` gives the ideal macro (integer exact by construction).
    """

    def __init__(
        self, table: DeviceTable, config: MacroConfig | None = None, seed: int = 0, noisy: bool = True
    ) -> None:
        if not isinstance(table, DeviceTable):
            raise TypeError(f"table must be a rramsim.devices.DeviceTable, got {type(table).__name__}")
        self.cfg = config or MacroConfig()
        self.phys = DevicePhysics(table, self.cfg.read_voltage)
        self.g_off, self.g_on = float(self.phys.levels[0]), float(self.phys.levels[-1])
        self.noisy = noisy
        self.seed = int(seed)
        self.gen = torch.Generator().manual_seed(self.seed)
        self._cells: dict = {}
        self.reads = 0.0  # read cycles counted (per column tile)
        self.dense_reads = 0.0  # what a macro without sparsity-aware control would need
        self.conversions = 0.0
        self.vectors = 0
        self.count_errors = 0  # noisy reads whose ADC count differs from the exact count
        self.counts = 0  # noisy column reads (one ADC count each)

    def _program(self, i: int, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        key = (i, tuple(m.shape), hash(m.numpy().tobytes()))  # a changed layout is a new programming
        if key not in self._cells:
            lvl = torch.where(m > 0, self.phys.levels.numel() - 1, 0).long()
            g = torch.Generator().manual_seed(self.seed * 1000 + i)
            u = torch.rand(lvl.shape, generator=g, dtype=torch.float64)
            res = self.phys.sample(lvl, u, torch.ones_like(u), 0.0, 0.0)
            target = self.phys.levels[lvl]
            gcell = target + self.cfg.noise_scale * (res["g"] - target)
            self._cells[key] = (
                (gcell - self.g_off) / (self.g_on - self.g_off),  # in LRS units
                (self.cfg.noise_scale * self.phys.sigma(gcell) / (self.g_on - self.g_off)) ** 2,
            )
        return self._cells[key]

    def __call__(self, i: int, layer: IntLayer, x: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        return torch.cat([self._mvm(i, layer, x[k : k + chunk]) for k in range(0, x.shape[0], chunk)])

    def _mvm(self, i: int, layer: IntLayer, x: torch.Tensor) -> torch.Tensor:
        m = layer.matrix()  # [R, C] +-1
        xr = layer.rows_in(x)  # [V, R] signed ints
        R, C = m.shape
        cfg = self.cfg
        unit, var = self._program(i, m)
        ideal = (m > 0).double()
        cells = (unit if self.noisy else ideal).float()
        var = var.float()
        tiles = math.ceil(R / cfg.rows)
        rows = min(cfg.rows, R)
        pad = tiles * rows - R
        cells = F.pad(cells, (0, 0, 0, pad)).reshape(tiles, rows, C)
        var = F.pad(var, (0, 0, 0, pad)).reshape(tiles, rows, C)
        ideal = F.pad(ideal, (0, 0, 0, pad)).reshape(tiles, rows, C).to(torch.int64)
        xr = F.pad(xr, (0, pad)).reshape(xr.shape[0], tiles, rows)
        col_tiles = math.ceil(C / cfg.cols)
        y = torch.zeros(xr.shape[0], C, dtype=torch.int64)
        n_max = 2**cfg.adc_bits - 1
        self.vectors += xr.shape[0]
        for sign in (1, -1):
            mag = (xr * sign).clamp_min(0)
            if not bool((mag > 0).any()):
                continue
            nbits = int(mag.max()).bit_length()
            for b in range(nbits):
                bit = (mag >> b) & 1  # [V, T, rows]
                active = bit.sum(-1)  # [V, T]
                dense = float(bit.shape[0] * tiles * math.ceil(rows / cfg.max_rows)) * col_tiles
                self.dense_reads += dense
                vv, tt, rr = torch.nonzero(bit, as_tuple=True)
                K = math.ceil(rows / cfg.max_rows)
                if cfg.sparsity_aware:
                    # only rows whose bit is 1 are driven, max_rows at a time: group = rank among them
                    self.reads += float(torch.ceil(active / cfg.max_rows).sum()) * col_tiles
                    rank = torch.cumsum(bit, -1) - 1
                    grp = torch.div(rank[vv, tt, rr], cfg.max_rows, rounding_mode="floor")
                else:
                    # fixed windows of max_rows physical rows, every window read
                    self.reads += dense
                    grp = torch.div(rr, cfg.max_rows, rounding_mode="floor")
                slot = (vv * tiles + tt) * K + grp
                slot_u, inv, n_drv = torch.unique_consecutive(slot, return_inverse=True, return_counts=True)
                gsum = torch.zeros(slot_u.numel(), C, dtype=cells.dtype).index_add_(0, inv, cells[tt, rr])
                if self.noisy:
                    gvar = torch.zeros(slot_u.numel(), C, dtype=var.dtype).index_add_(0, inv, var[tt, rr])
                    gsum += gvar.sqrt_() * torch.randn(gsum.shape, generator=self.gen, dtype=gsum.dtype)
                count = torch.round(gsum).clamp_(0, n_max).to(torch.int64)  # the ADC
                if self.noisy:
                    exact = (
                        torch.zeros(slot_u.numel(), C, dtype=torch.int64)
                        .index_add_(0, inv, ideal[tt, rr])
                        .clamp_(0, n_max)
                    )
                    self.count_errors += int((count != exact).sum())
                    self.counts += count.numel()
                self.conversions += (float(slot_u.numel()) if cfg.sparsity_aware else dense / col_tiles) * C
                part = (2 * count - n_drv.unsqueeze(-1)) * (sign << b)
                y.index_add_(0, torch.div(slot_u, tiles * K, rounding_mode="floor"), part)
        return y

    def cost(self, n_samples: int) -> dict:
        """Per sample, over the ``n_samples`` run so far: read cycles (and what driving every
        row would take), their latency and the ADC energy (rramsim's cost model)."""
        cost = CostModel(self.cfg.crossbar()).price(
            cycles=self.reads / n_samples, adc_conversions=self.conversions / n_samples
        )
        return {
            "reads_per_sample": cost.cycles,
            "dense_reads_per_sample": self.dense_reads / n_samples,
            "latency_per_sample": cost.latency,
            "adc_energy_per_sample": cost.adc_energy,
        }
