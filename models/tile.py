"""TileEngine: one weight matrix programmed onto RRAM crossbar tiles, and its analog MVM.

The engine knows nothing of modules: it takes a weight matrix ``[out, rows]`` (split into
``groups`` independent blocks: group ``g`` owns outputs ``g*out/G .. (g+1)*out/G`` and
its own ``rows`` inputs, each on its own tiles) and input vectors ``[N, groups*rows]``.
The module wrappers of :mod:`rramsim.models.layers` only reshape (a linear layer's leading
dimensions, a convolution's patches) and supply how a tile's matrix meets its inputs.

Programmed cells
    The mapping turns each normalized weight into level indices ``[S, P, out, rows]``
    (``S`` slices of ``P`` cells); every cell's outcome (conductance, stuck or not,
    pulses, energy, time) is sampled from the table with one seed (``ideal_programming``:
    the level's target exactly). Only what cannot be re-derived is kept: level indices,
    conductances at programming, the drift normals and the per-output weight scales.
Compiled tiles
    Cells are laid out on ``tile_rows x tile_cols`` tiles (a weight's cells adjacent in a
    row, every group on tiles of its own). Compiling applies drift, IR drop (exact nodal
    solve or first-order correction, per tile) and the I-V polynomial, and combines each
    slice's cells (G+ - G-, or minus the offset) into signal matrices ``[n_tr*G, R,
    out/G*S]`` (row tile major), the read-noise variance of each slice signal, the ADC
    full scale of every tile column (from the target conductances) and the digital
    rescale of every column.
MVM
    DAC (per-sample max|x| scale, ``dac_bits`` codes or bit-serial planes) -> tile currents
    -> read noise (one draw per cell per forward, or per cell and input vector as its exact
    Gaussian sum) -> ADC (clip to the column's full scale, ``adc_bits``) -> digital
    shift-and-add over slices and row tiles.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from rramsim.devices import DeviceTable
from rramsim.models.config import CrossbarConfig
from rramsim.models.irdrop import TileSolver, approx_transfer
from rramsim.models.mapping import WeightMapping, make_mapping
from rramsim.models.periphery import adc_scaled_, dac_codes, input_scale
from rramsim.models.programming import DevicePhysics, combined_latency, tile_latencies

# currents(volts, mats) -> [N, n_row_tiles, out*S, ...]: how the wrapper's inputs meet the tile matrices
CurrentsFn = Callable[[torch.Tensor, list], torch.Tensor]


@dataclass
class CompiledTiles:
    """What a forward pass multiplies (see the module doc)."""

    mats: list                      # [n_tr*G, R, cols_g] each (1, or 3 with the polynomial I-V)
    noise_mat: torch.Tensor         # variance of each slice signal per unit v^2, same shape
    full_scale: torch.Tensor        # [n_tr, out*S] ADC full scale (A)
    col_scale: torch.Tensor         # [out*S] digital rescale to weight units
    solvers: dict = field(default_factory=dict)      # tile -> TileSolver (exact IR drop + nonlinear I-V)
    iv_tiles: list | None = None


class TileEngine:
    """A weight matrix ``[out, rows]`` on crossbar tiles (``groups`` independent blocks)."""

    def __init__(self, table: DeviceTable, config: CrossbarConfig, out_features: int, rows: int,
                 groups: int = 1, mapping: WeightMapping | None = None, name: str = "analog layer",
                 device=None) -> None:
        if out_features % groups:
            raise ValueError(f"{name}: {out_features} outputs cannot be split into {groups} groups")
        self.table, self.config = table, config
        self.outputs, self.rows, self.groups = int(out_features), int(rows), int(groups)
        self.name = name
        self.physics = DevicePhysics(table, config.read_voltage, config.nonlinear_iv)
        if device is not None:
            self.physics.to(device)
        self.mapping = mapping if mapping is not None else make_mapping(config, table.targets)
        self.seed = 0
        self.program_stats: dict = {}
        self.usage: dict = {}
        self.record_usage = False
        self.after_compile: Callable[[CompiledTiles], None] | None = None
        self.level = self.g0 = self.z = self.stuck = self.w_scale = None
        self.compiled: CompiledTiles | None = None
        self._noise_gen: torch.Generator | None = None
        self._noise_dev = ""
        self._train_gen: torch.Generator | None = None

    # ------------------------------------------------------------------ geometry
    @property
    def programmed(self) -> bool:
        return self.compiled is not None

    @property
    def out_per_group(self) -> int:
        return self.outputs // self.groups

    def geometry(self) -> dict:
        """Tiles and sizes on the configured crossbars (every group on tiles of its own):
        ``rows`` counts the rows of all groups, ``row_tiles``/``col_tiles`` are per group."""
        c, G = self.config, self.groups
        s, p = self.mapping.n_slices, self.mapping.planes
        cols = self.out_per_group * s * p
        n_tr = math.ceil(self.rows / c.tile_rows)
        n_tc = math.ceil(cols / c.tile_cols)
        return {"rows": self.rows * G, "outputs": self.outputs, "groups": G, "rows_per_group": self.rows,
                "slices": s, "planes": p, "physical_columns": cols * G, "row_tiles": n_tr, "col_tiles": n_tc,
                "tiles": G * n_tr * n_tc, "cells": self.rows * cols * G}

    def _physical(self, x: torch.Tensor) -> torch.Tensor:
        """Per-cell values [S, P, out, rows] -> [G, rows, out_g*S*P] (a weight's cells adjacent)."""
        s, p, o, i = x.shape
        G = self.groups
        return x.reshape(s, p, G, o // G, i).permute(2, 4, 3, 0, 1).reshape(G, i, (o // G) * s * p)

    def _tiles(self, x: torch.Tensor) -> torch.Tensor:
        """Per-cell values [S, P, out, rows] on tiles: [G*row_tiles*col_tiles, tile_rows, tile_cols]."""
        g = self.geometry()
        R, C = self.config.tile_rows, self.config.tile_cols
        phys = self._physical(x)
        phys = F.pad(phys, (0, g["col_tiles"] * C - phys.shape[2], 0, g["row_tiles"] * R - phys.shape[1]))
        return phys.reshape(self.groups, g["row_tiles"], R, g["col_tiles"], C).permute(0, 1, 3, 2, 4).reshape(-1, R, C)

    def _untile(self, t: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`_tiles` up to padding: -> [G, row_tiles*R, out_g*S*P]."""
        g = self.geometry()
        R, C = self.config.tile_rows, self.config.tile_cols
        x = t.reshape(self.groups, g["row_tiles"], g["col_tiles"], R, C).permute(0, 1, 3, 2, 4)
        x = x.reshape(self.groups, g["row_tiles"] * R, g["col_tiles"] * C)
        return x[:, :, :g["physical_columns"] // self.groups]

    # ------------------------------------------------------------------ programming
    def encode(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Level indices [S, P, out, rows] and per-output weight scales of weights ``w``."""
        w = w.reshape(w.shape[0], -1).to(torch.float64).cpu()
        if not torch.isfinite(w).all():
            raise ValueError(f"{self.name} weight contains NaN or inf; cannot program it "
                             "(check the checkpoint or the training run)")
        if self.config.weight_scaling == "layer":
            scale = w.abs().max().expand(w.shape[0]).clone()
        else:
            scale = w.abs().amax(dim=1)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        return self.mapping.encode(w / scale[:, None]), scale

    def _sample(self, level: torch.Tensor, gen: torch.Generator) -> dict:
        """Program cells to ``level``: outcome and cost sampled from the table."""
        dev = self.physics.levels.device
        u = torch.rand(level.shape, generator=gen, dtype=torch.float64).to(dev)
        fault = torch.rand(level.shape, generator=gen, dtype=torch.float64).to(dev)
        c = self.config
        level = level.to(dev)
        res = self.physics.sample(level, u, fault, c.stuck_on, c.stuck_off)
        if c.ideal_programming:
            res["g"] = self.physics.levels[level]
            res["stuck"] = torch.zeros_like(res["stuck"])
        return res

    def program(self, weight: torch.Tensor, seed: int) -> dict:
        """Write ``weight`` [out, rows] to the tiles (one draw per cell from ``seed``) and
        return the programming cost."""
        self.seed = int(seed)
        gen = torch.Generator().manual_seed(self.seed)
        level, w_scale = self.encode(weight.detach())
        res = self._sample(level, gen)
        z = torch.randn(level.shape, generator=gen, dtype=torch.float64)
        dev = self.physics.levels.device
        self.level, self.g0, self.z, self.stuck = level.to(dev), res["g"], z.to(dev), res["stuck"]
        self.w_scale = w_scale.to(dev)
        self.program_stats = self._cost_of(res)
        self.compiled = self.compile(dtype=weight.dtype)
        self._noise_gen = None
        return self.program_stats

    def _cost_of(self, res: dict) -> dict:
        g = self.geometry()
        time, energy = self._tiles(res["time"]), self._tiles(res["energy"])
        per_tile = tile_latencies(time, self.config.program_parallelism)
        return {"cells": g["cells"], "tiles": g["tiles"], "pulses": float(res["pulses"].sum()),
                "energy": float(res["energy"].sum()), "stuck": int(res["stuck"].sum()),
                "latency": combined_latency(per_tile, self.config.parallel_tile_writes),
                "tile_energy": energy.sum(dim=(1, 2)).cpu().numpy(), "tile_latency": per_tile.cpu().numpy()}

    def to(self, device, dtype: torch.dtype) -> None:
        """Move the programmed cells to ``device`` and compile again for ``dtype``."""
        for name in ("level", "g0", "z", "stuck", "w_scale"):
            setattr(self, name, getattr(self, name).to(device))
        self.physics.to(device)
        self.compiled = self.compile(dtype=dtype)

    def conductances(self) -> torch.Tensor:
        """Per-cell conductances [S, P, out, rows] now (after drift)."""
        if self.g0 is None:
            raise RuntimeError(f"{self.name} is not programmed yet")
        c = self.config
        return self.g0 * self.physics.drift_factor(c.drift_time, self.level, self.z, c.drift_nu, c.drift_nu_std,
                                                   c.drift_t0)

    def set_config(self, config: CrossbarConfig) -> None:
        """Same cells, another evaluation config (drift time, periphery); compiled again."""
        self.config = config
        if self.programmed:
            self.compiled = self.compile(dtype=self.compiled.col_scale.dtype)

    # ------------------------------------------------------------------ compile
    def compile(self, g: torch.Tensor | None = None, level: torch.Tensor | None = None,
                w_scale: torch.Tensor | None = None, exact_ok: bool = True,
                dtype: torch.dtype = torch.float32) -> CompiledTiles:
        """Conductances [S, P, out, rows] -> the matrices of the forward pass."""
        c = self.config
        g = self.conductances() if g is None else g
        level = self.level if level is None else level
        w_scale = self.w_scale if w_scale is None else w_scale
        geo = self.geometry()
        G, rows = self.groups, self.rows
        n_tr = geo["row_tiles"]
        R = c.tile_rows if n_tr > 1 else rows   # one row tile: only its used rows (the others see no input)
        m = self.mapping
        S, P, out_g = m.n_slices, m.planes, self.out_per_group
        signs = torch.as_tensor(m.signs, dtype=torch.float64, device=g.device)
        ir = c.ir_drop if (exact_ok or c.ir_drop != "exact") else "approx"
        solvers: dict = {}
        if ir == "off":
            g_eff = self._physical(g)
        elif ir == "approx":
            g_eff = self._untile(approx_transfer(self._tiles(g), c.wire_resistance))[:, :rows]
        else:
            g_eff = self._untile(self._exact_transfer(self._tiles(g), solvers))[:, :rows]

        def combine(phys: torch.Tensor, offset: float, weights: torch.Tensor = signs) -> torch.Tensor:
            sig = (phys.reshape(G, rows, out_g, S, P) * weights).sum(-1) - offset
            sig = F.pad(sig.reshape(G, rows, out_g * S), (0, 0, 0, n_tr * R - rows))
            return sig.reshape(G, n_tr, R, out_g * S).transpose(0, 1).reshape(n_tr * G, R, out_g * S)

        if c.nonlinear_iv:
            iv = self.physics.iv(level)                                   # [S, P, out, rows, 3]
            mats = [combine(g_eff * self._physical(iv[..., k]), m.offset if k == 0 else 0.0).to(dtype)
                    for k in range(3)]
        else:
            mats = [combine(g_eff, m.offset).to(dtype)]
        # independent cells: the variances of a slice's cells add, whatever their signs
        noise_mat = combine(self._physical(self.physics.sigma(g) ** 2), 0.0, signs.abs()).to(dtype)
        # ADC full scale from the ideal (target) conductances: the designer's calibration
        ideal = combine(self._physical(self.physics.levels[level]), m.offset)
        full_scale = (c.adc_range * c.read_voltage * ideal.abs().sum(dim=1)).clamp_min(1e-30)
        full_scale = full_scale.reshape(n_tr, G * out_g * S).to(dtype)
        sw = torch.as_tensor(m.slice_weights, dtype=torch.float64, device=g.device)
        col_scale = ((w_scale[:, None] * sw[None, :]).reshape(-1) / c.read_voltage).to(dtype)
        iv_tiles = None
        if ir == "exact" and c.nonlinear_iv:
            iv = self.physics.iv(level)        # unused (padding) cells: ohmic, g = 0 anyway
            iv_tiles = [self._tiles(iv[..., k] - float(k == 0)) + float(k == 0) for k in range(3)]
        else:
            solvers = {}
        comp = CompiledTiles(mats, noise_mat, full_scale, col_scale, solvers, iv_tiles)
        if self.after_compile is not None:
            self.after_compile(comp)
        return comp

    def _exact_transfer(self, tiles: torch.Tensor, solvers: dict) -> torch.Tensor:
        """Effective conductances [tiles, R, C] from the exact solver (one factorization per
        tile; unused columns at the right end of a tile are left out of the solve)."""
        c = self.config
        geo = self.geometry()
        cols_g = geo["physical_columns"] // self.groups
        out = torch.zeros_like(tiles)
        arr = tiles.detach().cpu().numpy()
        for t in range(arr.shape[0]):
            tc = t % geo["col_tiles"]
            used = min(c.tile_cols, cols_g - tc * c.tile_cols)
            solver = TileSolver(arr[t, :, :used], c.wire_resistance)
            solvers[t] = solver
            out[t, :, :used] = torch.from_numpy(solver.transfer().T).to(out)
        return out

    # ------------------------------------------------------------------ forward
    def matmul(self, volts: torch.Tensor, mats: list) -> torch.Tensor:
        """Tile currents [N, n_tr, out*S] of row voltages [N, G*rows] (the linear layer's op)."""
        n_trG, R, cols_g = mats[0].shape
        G = self.groups
        n_tr = n_trG // G
        N = volts.shape[0]
        v = volts.reshape(N, G, self.rows)
        pad = n_tr * R - self.rows
        if pad:
            v = F.pad(v, (0, pad))
        v = v.reshape(N, G, n_tr, R).permute(2, 1, 0, 3).reshape(n_trG, N, R)
        if len(mats) > 1:                       # polynomial I-V: [v, v^2, v^3] @ [M1; M2; M3]
            sq = v * v
            cur = torch.bmm(torch.cat([v, sq, sq * v], dim=2), torch.cat(mats, dim=1))
        else:
            cur = torch.bmm(v, mats[0])
        if G == 1:
            return cur.transpose(0, 1)
        return cur.reshape(n_tr, G, N, cols_g).permute(2, 0, 1, 3).reshape(N, n_tr, G * cols_g)

    def run(self, x: torch.Tensor, currents: CurrentsFn | None = None,
            rows_of: Callable | None = None, vectors: int = 1,
            compiled: CompiledTiles | None = None) -> torch.Tensor:
        """The analog output [N, out, ...] for input ``x`` (no gradient; call under no_grad).

        ``currents(volts, mats)`` gives the tile currents of scaled inputs (default: ``x`` is
        [N, G*rows] and :meth:`matmul` is used); ``rows_of(volts)`` -> ``(rows [n, G*rows],
        back)`` unrolls inputs into row vectors for the exact solver, ``back`` puts currents
        [n, n_tr, out*S] into the wrapper's layout. ``vectors``: MVMs per sample (for costs).
        """
        c = self.config
        V = c.read_voltage
        comp = self.compiled if compiled is None else compiled
        currents = self.matmul if currents is None else currents
        active = self._select(comp)
        clip = [0, 0]

        def digitize(volts: torch.Tensor, sample_scale: torch.Tensor) -> torch.Tensor:
            if comp.solvers:
                rows, back = (volts, lambda t: t) if rows_of is None else rows_of(volts)
                cur = back(self._exact_nonlinear(rows, comp))
            else:
                cur = currents(volts, active)                           # [B, n_tr, out*S, ...]
            extra = [1] * (cur.dim() - 3)
            if c.read_noise == "per_read" or (c.read_noise == "per_forward" and comp.solvers):
                std = currents(volts * volts, [comp.noise_mat]).clamp_min_(0).sqrt_()
                cur = cur.addcmul_(std, torch.randn(cur.shape, generator=self._generator(cur.device),
                                                    device=cur.device, dtype=cur.dtype))
            fs = comp.full_scale.reshape(1, *comp.full_scale.shape, *extra)
            if self.record_usage and c.adc_bits is not None:
                clip[0] += int((cur.abs() > fs).sum())
                clip[1] += cur.numel()
            out_scale = comp.col_scale.reshape(1, 1, -1, *extra) * sample_scale.reshape(-1, *([1] * (cur.dim() - 1)))
            cur = adc_scaled_(cur, fs, c.adc_bits, out_scale)
            return cur[:, 0] if cur.shape[1] == 1 else cur.sum(1)

        vq, on = None, 0.0
        if c.dac_bits is None:
            xm = input_scale(x)
            vq = x / xm
            y = digitize(vq * V, xm)
        elif c.bit_serial:
            codes, n, xm = dac_codes(x, c.dac_bits)
            mag, sign = codes.abs(), torch.sign(codes)
            y = None
            for k in range(c.dac_bits):
                plane = sign * torch.remainder(torch.floor(mag / 2 ** k), 2)
                part = digitize(plane * V, xm * (2 ** k) / n)
                y = part if y is None else y.add_(part)
                if self.record_usage:
                    on += float(plane.abs().mean()) / c.dac_bits
        else:
            codes, n, xm = dac_codes(x, c.dac_bits)
            y = digitize(codes.mul_(V / n), xm)
            if self.record_usage:
                vq = codes / V
        self._record(vectors, on if vq is None else float((vq ** 2).mean()) if self.record_usage else None, clip)
        S = self.mapping.n_slices
        if S > 1:
            y = y.reshape(y.shape[0], -1, S, *y.shape[2:]).sum(2)
        return y

    def _record(self, vectors: int, mean_v2: float | None, clip: list) -> None:
        """Usage for the cost model: vectors per sample (added over the calls of one
        recorded forward, e.g. the time steps of a recurrence), mean v^2, ADC clipping."""
        u = self.usage
        if not self.record_usage:
            u["vectors_per_sample"] = vectors
            return
        u["calls"] = u.get("calls", 0) + 1
        u["vectors_per_sample"] = u.get("vectors_per_sample", 0) + vectors
        n = u["calls"]
        u["mean_v2"] = u.get("mean_v2", 0.0) * (n - 1) / n + mean_v2 / n
        u["_clip"] = [a + b for a, b in zip(u.get("_clip", [0, 0]), clip)]
        if self.config.adc_bits is not None:
            u["adc_clipped"] = u["_clip"][0] / max(u["_clip"][1], 1)

    def start_recording(self) -> None:
        """Reset the usage counters and record the next forwards."""
        self.usage = {}
        self.record_usage = True

    def _generator(self, device: torch.device) -> torch.Generator:
        if self._noise_gen is None or self._noise_dev != str(device):
            self._noise_gen = torch.Generator(device=device).manual_seed(self.seed + 1)
            self._noise_dev = str(device)
        return self._noise_gen

    def _select(self, comp: CompiledTiles) -> list:
        """The matrices of this forward: the compiled ones, or with ``read_noise="per_forward"``
        a copy with one read-noise draw per cell (signal domain: variance sum_p sigma_p^2)."""
        if self.config.read_noise != "per_forward" or comp.solvers:
            return comp.mats
        nm = comp.noise_mat
        n, R, cols = nm.shape       # drawn for whole tiles: the same stream for any trim
        noise = nm.sqrt() * torch.randn((n, self.config.tile_rows, cols), generator=self._generator(nm.device),
                                        device=nm.device, dtype=nm.dtype)[:, :R]
        return [comp.mats[0] + noise, *comp.mats[1:]]

    def training_compile(self, weight: torch.Tensor) -> CompiledTiles:
        """A fresh programming of ``weight`` for one training forward (programming-noise
        injection; the exact solver is replaced by the approximation). The programmed
        cells of the engine are left as they are."""
        if self._train_gen is None:
            self._train_gen = torch.Generator().manual_seed(self.seed + 2)
        level, w_scale = self.encode(weight.detach())
        res = self._sample(level, self._train_gen)
        dev = self.physics.levels.device
        return self.compile(res["g"], level.to(dev), w_scale.to(dev), exact_ok=False, dtype=weight.dtype)

    def _exact_nonlinear(self, volts: torch.Tensor, comp: CompiledTiles) -> torch.Tensor:
        """Tile currents [n, n_tr, out*S] of row voltages [n, G*rows] with the exact IR-drop
        solver and nonlinear cells."""
        c = self.config
        geo = self.geometry()
        R, C = c.tile_rows, c.tile_cols
        m = self.mapping
        G, out_g, S, P = self.groups, self.out_per_group, m.n_slices, m.planes
        n_tr, n_tc = geo["row_tiles"], geo["col_tiles"]
        n = volts.shape[0]
        v = volts.detach().to(torch.float64).cpu().reshape(n, G, self.rows)
        v = F.pad(v, (0, n_tr * R - self.rows))
        phys = torch.zeros(n_tr, n, G, n_tc * C, dtype=torch.float64)
        coef = torch.stack([t.detach().cpu() for t in comp.iv_tiles], dim=-1).numpy()   # [tiles, R, C, 3]
        for t, solver in comp.solvers.items():
            g, rest = divmod(t, n_tr * n_tc)
            tr, tc = divmod(rest, n_tc)
            used = solver.shape[1]
            cur, _ = solver.currents_nonlinear(v[:, g, tr * R:(tr + 1) * R].T.numpy(), coef[t, :, :used])
            phys[tr, :, g, tc * C:tc * C + used] = torch.from_numpy(cur.T)
        phys = phys[..., :out_g * S * P].reshape(n_tr, n, G, out_g, S, P)
        sig = (phys * torch.as_tensor(m.signs, dtype=torch.float64)).sum(-1)
        if m.offset:
            vsum = v.reshape(n, G, n_tr, R).sum(-1).permute(2, 0, 1)       # [n_tr, n, G]
            sig = sig - m.offset * vsum[..., None, None]
        return sig.reshape(n_tr, n, G * out_g * S).transpose(0, 1).to(device=volts.device, dtype=volts.dtype)
