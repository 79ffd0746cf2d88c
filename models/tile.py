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
    the level's target exactly). A cell's draws (outcome, stuck-at fault, drift normal)
    sit at the cell's own position in counter-addressable streams of the seed, so any
    block of cells is re-derived alone: the engine keeps only the level indices (one
    byte per cell) and the per-output weight scales, samples and compiles a block of
    outputs at a time (float32 physics for float32 layers), and reduces the programming
    cost to per-tile sums and latencies on the fly.
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
    shift-and-add over slices and row tiles. On its first forward the compiled tiles are
    put in ADC units (:meth:`TileEngine.prepare`: each column's matrices times its codes
    per ampere), so the ADC is a clip and a round of the currents, each row tile's codes are
    added into the output as they come, and only the tile matrices are touched per call. A
    convolution's batch goes through in cache-sized blocks, all with the forward's one
    read-noise draw.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from rramsim.devices import DeviceTable
from rramsim.models.config import CrossbarConfig
from rramsim.models.irdrop import (
    ESCALATED_RANK,
    MODEL_TOL,
    TileSolver,
    approx_transfer,
    cheapest_cut,
    cross_term,
    programmed_model,
    raise_rank,
    truncate,
)
from rramsim.models.mapping import WeightMapping, make_mapping
from rramsim.models.periphery import adc_levels, dac_codes, input_scale
from rramsim.models.programming import CostTally, DevicePhysics

CHUNK_CELLS = 1 << 18  # cells sampled and compiled together (memory of one block)
BLOCK_ELEMENTS = 1 << 20  # input elements of a convolution's forward taken together (cache-sized blocks)
STREAM_OUTCOME, STREAM_FAULT, STREAM_DRIFT = 0, 1, 2


@contextlib.contextmanager
def _serial():
    """Torch ops on one CPU thread inside (restored after): the blocks are small, so threads
    only add synchronisation, and they stall badly when other processes share the cores."""
    threads = torch.get_num_threads()
    if threads > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if threads > 1:
            torch.set_num_threads(threads)


def _block_threads() -> int:
    """Threads for programming blocks of cells: torch's CPU threads while the machine has
    cores to spare (1-minute load average at least one core below the core count), else
    one. On cores other processes keep busy, extra threads only wait on each other
    (measured on a shared 2-core machine at load 3: one thread 8.8 M weights/s, two 7.0).
    The result is the same for any count."""
    n = torch.get_num_threads()
    if n > 1:
        try:
            busy = os.getloadavg()[0]
        except OSError:  # no load average on this platform
            busy = 0.0
        if busy > (os.cpu_count() or 1) - 1:
            n = 1
    return n


def _level_dtype(n_levels: int) -> torch.dtype:
    return torch.uint8 if n_levels <= 256 else torch.int16 if n_levels <= 2**15 else torch.int32


def _uniforms(seed: int, stream: int, start: int, n: int) -> torch.Tensor:
    """Uniforms in [0, 1) (float32, 24 bits) at positions ``start .. start+n`` of the
    counter-addressable stream ``stream`` of ``seed`` (PCG64 with jump-ahead: a block of
    cells draws exactly what it would draw as part of the whole layer)."""
    bg = np.random.PCG64(np.random.SeedSequence([int(seed), int(stream)]))
    bg.advance(start // 2)  # two float32 draws per 64-bit output
    out = np.random.Generator(bg).random(n + start % 2, dtype=np.float32)
    return torch.from_numpy(out[start % 2 :])


def _in_order(fn: Callable, items, workers: int):
    """``fn(*item)`` for every item, yielded in the order of ``items``; with ``workers`` > 1
    on that many threads (torch ops release the interpreter), at most one result ahead
    of each."""
    if workers <= 1:
        for item in items:
            yield fn(*item)
        return
    with ThreadPoolExecutor(workers) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(fn, *item))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _place(dst: torch.Tensor, sig: torch.Tensor) -> None:
    """Copy a block's slice signals ``sig`` [n_o, S, rows] into its tile columns ``dst``
    [n_tr, R, n_o*S] (rows beyond ``rows`` are padding and stay as they are): one 2-D
    transpose, then contiguous runs."""
    n_o, S, rows = sig.shape
    n_tr, R = dst.shape[:2]
    block = sig.reshape(n_o * S, rows).t().contiguous()  # [rows, n_o*S]
    full = min(n_tr, rows // R)
    if full:
        dst[:full].copy_(block[: full * R].view(full, R, n_o * S))
    if rows > full * R:
        dst[full, : rows - full * R].copy_(block[full * R :])


def weight_key(w: torch.Tensor) -> tuple:
    """What identifies the values of a weight tensor without reading them: the tensor, its
    memory and its version counter (bumped by every in-place change torch sees: optimizer
    steps, ``copy_`` under ``no_grad``, ``load_state_dict``). Assigning ``.data`` or a new
    Parameter changes the key too; an in-place edit through ``.data`` does not (torch does
    not count it), so after one call ``program()``."""
    return id(w), w.data_ptr(), w._version, tuple(w.shape), w.dtype, str(w.device)


# currents(volts, mats) -> one [N, out*S, ...] per row tile: how the wrapper's inputs meet the tile matrices
CurrentsFn = Callable[[torch.Tensor, list], list]


@dataclass
class CompiledTiles:
    """What a forward pass multiplies (see the module doc)."""

    mats: list  # [n_tr*G, R, cols_g] each (1, or 3 with the polynomial I-V)
    noise_mat: torch.Tensor  # variance of each slice signal per unit v^2, same shape
    full_scale: torch.Tensor  # [n_tr, out*S] ADC full scale (A)
    col_scale: torch.Tensor  # [out*S] digital rescale to weight units
    solvers: dict = field(default_factory=dict)  # tile -> TileSolver (exact IR drop + nonlinear I-V)
    iv_tiles: list | None = None
    # per-programming IR-drop model's cross term (see TileEngine._cross_layout), None without it
    cross: dict | None = None
    # set by TileEngine.prepare (the forward's units, derived once; mats and the noise are then in ADC codes)
    adc_gain: torch.Tensor | None = None  # [n_tr, out*S] ADC codes per ampere (None: ideal ADC, amperes)
    out_scale: torch.Tensor | None = None  # [n_tr, out*S] weight units per code (col_scale / adc_gain)
    noise_std: torch.Tensor | None = None  # per_forward: read-noise std of each slice signal, replaces noise_mat


class TileEngine:
    """A weight matrix ``[out, rows]`` on crossbar tiles (``groups`` independent blocks)."""

    def __init__(
        self,
        table: DeviceTable,
        config: CrossbarConfig,
        out_features: int,
        rows: int,
        groups: int = 1,
        mapping: WeightMapping | None = None,
        name: str = "analog layer",
        device=None,
    ) -> None:
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
        #: largest error of the per-programming IR-drop model (``ir_drop_solver="per_programming"``)
        #: against the exact solve on its probe vectors, relative to the largest column current
        self.ir_drop_error: float | None = None
        self.ir_drop_tile_errors: dict = {}  # tile -> its error
        #: whether that error exceeded ``irdrop.MODEL_TOL`` and the layer uses the per-vector solve
        self.ir_drop_fallback = False
        self.usage: dict = {}
        self.record_usage = False
        self.after_compile: Callable[[CompiledTiles], None] | None = None
        self._level = self.w_scale = None
        self.compiled: CompiledTiles | None = None
        self._noise_gen: torch.Generator | None = None
        self._noise_dev = ""
        self._train_gen: torch.Generator | None = None
        self._train_code: tuple | None = None  # (weight_key, levels, scales) of the last training forward

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
        return {
            "rows": self.rows * G,
            "outputs": self.outputs,
            "groups": G,
            "rows_per_group": self.rows,
            "slices": s,
            "planes": p,
            "physical_columns": cols * G,
            "row_tiles": n_tr,
            "col_tiles": n_tc,
            "tiles": G * n_tr * n_tc,
            "cells": self.rows * cols * G,
        }

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
        return x[:, :, : g["physical_columns"] // self.groups]

    # ------------------------------------------------------------------ programming
    def encode(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Level indices [S, P, out, rows] (uint8 while the table has <= 256 levels) and
        per-output weight scales (float64) of weights ``w``; encoded a block of outputs at
        a time (see :meth:`WeightMapping.encode_rows`; no float64 copy of the whole matrix)."""
        w = w.reshape(w.shape[0], -1)
        with _serial():  # max |w| per output in one pass (no |w| copy); NaN and inf carry through
            scale = torch.linalg.vector_norm(w, float("inf"), dim=1)
        if not bool(torch.isfinite(scale).all()):
            raise ValueError(
                f"{self.name} weight contains NaN or inf; cannot program it (check the checkpoint or the training run)"
            )
        scale = scale.to(device="cpu", dtype=torch.float64)
        if self.config.weight_scaling == "layer":
            scale = scale.max().expand(w.shape[0]).clone()
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        m = self.mapping
        level = torch.empty((m.n_slices, m.planes, w.shape[0], w.shape[1]), dtype=_level_dtype(self.table.n_levels))
        workers = _block_threads() if w.numel() >= 4 * CHUNK_CELLS else 1  # large: rows split over threads
        bounds = [round(w.shape[0] * k / workers) for k in range(workers + 1)]
        with _serial():
            for _ in _in_order(
                lambda a, b: m.encode_rows(w[a:b], scale[a:b], level[:, :, a:b]),
                list(zip(bounds[:-1], bounds[1:])),
                workers,
            ):
                pass
        return level, scale

    def _chunks(self):
        """(group, first output, end output) blocks of about CHUNK_CELLS cells, each in one group."""
        m = self.mapping
        step = max(1, CHUNK_CELLS // max(1, self.rows * m.n_slices * m.planes))
        og = self.out_per_group
        for g in range(self.groups):
            for o0 in range(g * og, (g + 1) * og, step):
                yield g, o0, min(o0 + step, (g + 1) * og)

    def _cells_of(
        self,
        lv: torch.Tensor,
        seed: int,
        o0: int,
        s: int,
        p: int,
        dtype: torch.dtype,
        costs: bool,
        drift: bool,
        ideal: bool,
        sigma: bool = False,
        keys: bool = False,
    ) -> dict:
        """Programmed outcome of the cells of slice ``s``, plane ``p`` and outputs ``o0 ..
        o0 + len(lv)`` (``lv`` [n_o, rows], all rows): conductance (after drift when
        ``drift``), stuck flags, (``costs``) pulses, energy and time, (``sigma``) read noise; with ``keys``
        the outcome keys instead of the stuck flags (flags too where stuck-at faults, ideal cells or
        an ``/array`` group's disturb act on the outcome, see :class:`CostTally`). Every cell's draws
        sit at its own position in the seed's streams, so any block is re-derived alone."""
        c, m = self.config, self.mapping
        dev = self.physics.levels.device
        n = lv.numel()
        pos = ((s * m.planes + p) * self.outputs + o0) * self.rows
        u = _uniforms(seed, STREAM_OUTCOME, pos, n).reshape(lv.shape).to(dev)
        fault = None
        if c.stuck_on + c.stuck_off > 0 and not ideal:
            fault = _uniforms(seed, STREAM_FAULT, pos, n).reshape(lv.shape).to(dev)
        lv = lv.to(dev)  # the level bytes; sample() builds its own int32 keys
        drifts = drift and c.drift_time > 0
        res = self.physics.sample(
            lv,
            u.to(dtype),
            fault,
            c.stuck_on,
            c.stuck_off,
            costs=costs,
            sigma=sigma and not (ideal or drifts),
            keys=keys,
            stuck=not keys or fault is not None or self.table.array is not None,
        )
        if ideal or drifts:
            lv = lv.long()
        if ideal:
            res["g"] = self.physics.levels.to(dtype)[lv]
            res["stuck"] = torch.zeros(lv.shape, dtype=torch.bool, device=dev)
        if drifts:
            z = torch.special.ndtri(_uniforms(seed, STREAM_DRIFT, pos, n).add_(2.0**-25)).reshape(lv.shape)
            f = self.physics.drift_factor(c.drift_time, lv, z.to(dev), c.drift_nu, c.drift_nu_std, c.drift_t0)
            res["g"] = res["g"] * f.to(dtype)
        if self.table.array is not None and not ideal:  # programming inside an array (table /array)
            from rramsim.models.array_effects import disturb_cells

            disturb_cells(self, res, lv, seed, o0, s, p, pos)
        if sigma and "sigma" not in res:
            res["sigma"] = self.physics.sigma(res["g"])
        return res

    def program(self, weight: torch.Tensor, seed: int) -> dict:
        """Write ``weight`` [out, rows] to the tiles (one draw per cell from ``seed``) and
        return the programming cost."""
        self.seed = int(seed)
        level, w_scale = self.encode(weight.detach())
        dev = self.physics.levels.device
        self._level, self.w_scale = level.to(dev), w_scale.to(dev)
        self.compiled = None
        self.compiled, self.program_stats = self._sweep(
            self._level, self.w_scale, self.seed, weight.dtype, costs=True, build=self._fast_compile(True), drift=True
        )
        if self.table.array is not None and not self.config.ideal_programming:
            from rramsim.models.array_effects import scale_costs

            scale_costs(self.program_stats, self.table.array, self.config)
        if self.compiled is None:
            self.compiled = self.compile(dtype=weight.dtype)
        elif self.after_compile is not None:
            self.after_compile(self.compiled)
        self._noise_gen = None
        return self.program_stats

    def _fast_compile(self, exact_ok: bool) -> bool:
        """Whether compiling can go block by block (no IR drop, Ohmic cells)."""
        c = self.config
        ir = c.ir_drop if (exact_ok or c.ir_drop != "exact") else "approx"
        return ir == "off" and not c.nonlinear_iv

    def _sweep(
        self,
        level: torch.Tensor,
        w_scale: torch.Tensor,
        seed: int,
        dtype: torch.dtype,
        costs: bool,
        build: bool,
        drift: bool,
        out_g: torch.Tensor | None = None,
        ideal: bool | None = None,
    ):
        """One pass over the cells, a block of outputs at a time: the programming cost
        reduced to per-tile sums and latencies on the fly (``costs``), the compiled tiles
        built block by block (``build``), or every cell's conductance written into
        ``out_g`` [S, P, out, rows]. Returns (compiled tiles or None, cost dict or {}).
        On the CPU the blocks run on :func:`_block_threads` threads (each torch op on one),
        their costs merged in block order: the same result for any thread count."""
        workers = _block_threads() if self.physics.levels.device.type == "cpu" else 1
        with _serial():
            return self._sweep_blocks(level, w_scale, seed, dtype, costs, build, drift, out_g, ideal, workers)

    def _sweep_blocks(self, level, w_scale, seed, dtype, costs, build, drift, out_g, ideal, workers=1):
        c, m = self.config, self.mapping
        geo = self.geometry()
        dev = self.physics.levels.device
        work = torch.float64 if dtype == torch.float64 else torch.float32
        ideal = c.ideal_programming if ideal is None else ideal
        G, S, P, og, rows = self.groups, m.n_slices, m.planes, self.out_per_group, self.rows
        n_tr, n_tc, C = geo["row_tiles"], geo["col_tiles"], c.tile_cols
        R = c.tile_rows if n_tr > 1 else rows
        pad = n_tr * R - rows
        if build:
            mat = torch.zeros((n_tr, G, R, og * S), dtype=dtype, device=dev)
            noise = torch.zeros_like(mat)
            fs = torch.zeros((n_tr, self.outputs * S), dtype=torch.float64, device=dev)
        if costs:
            tally = CostTally(self.physics, work, G, n_tc, rows, c.tile_rows, c.program_parallelism)
        self.physics.outcome_tables(work)  # built once, before any thread reads it
        signs = [float(x) for x in m.signs]

        def block(g: int, o0: int, o1: int) -> list:
            """One block of outputs: its tiles (and ``out_g``) written in place, disjoint from
            every other block's; its cost parts returned for the in-order merge."""
            n_o = o1 - o0
            parts = []
            if build:
                sig = torch.zeros((n_o, S, rows), dtype=work, device=dev)  # slice signals, outputs major
                var = torch.zeros_like(sig)
                ideal_sig = torch.zeros((S, n_o, rows), dtype=torch.float64, device=dev)
            for s in range(S):
                for p in range(P):
                    lv = level[s, p, o0:o1]
                    res = self._cells_of(lv, seed, o0, s, p, work, False, drift, ideal, sigma=build, keys=costs)
                    gsp = res["g"]
                    if out_g is not None:
                        out_g[s, p, o0:o1] = gsp
                    if build:
                        sig[:, s].add_(gsp, alpha=signs[p])
                        var[:, s].add_(res["sigma"].square_())
                        target = self.physics.levels.index_select(0, lv.reshape(-1).to(dev, torch.int32))
                        ideal_sig[s].add_(target.reshape(lv.shape), alpha=signs[p])
                    if costs:
                        # tile column of each output's cell in this plane
                        tcol = (((torch.arange(o0, o1) - g * og) * S + s) * P + p) // C
                        stuck = res.get("stuck")
                        for tc in torch.unique_consecutive(tcol).tolist():
                            sel = (tcol == tc).nonzero()
                            a, b = int(sel[0]), int(sel[-1]) + 1
                            parts.append((tc, tally.part(res["keys"][a:b], None if stuck is None else stuck[a:b])))
                    del res, gsp
            if build:
                if m.offset:
                    sig.sub_(m.offset)
                    ideal_sig.sub_(m.offset)
                ol0, ol1 = o0 - g * og, o1 - g * og
                _place(mat[:, g, :, ol0 * S : ol1 * S], sig)
                _place(noise[:, g, :, ol0 * S : ol1 * S], var)
                ideal_sig.abs_()
                col = (F.pad(ideal_sig, (0, pad)) if pad else ideal_sig).reshape(S, n_o, n_tr, R).sum(-1)
                fs[:, o0 * S : o1 * S] = col.permute(2, 1, 0).reshape(n_tr, n_o * S)
            return parts

        chunks = list(self._chunks())
        for (g, _, _), parts in zip(chunks, _in_order(block, chunks, min(workers, len(chunks)))):
            for tc, part in parts:
                tally.merge(g, tc, part)
        comp = stats = None
        if build:
            full_scale = (c.adc_range * c.read_voltage * fs).clamp_min(1e-30).to(dtype)
            sw = torch.as_tensor(m.slice_weights, dtype=torch.float64, device=dev)
            col_scale = ((w_scale.to(dev)[:, None] * sw[None, :]).reshape(-1) / c.read_voltage).to(dtype)
            comp = CompiledTiles(
                [mat.reshape(n_tr * G, R, og * S)], noise.reshape(n_tr * G, R, og * S), full_scale, col_scale
            )
        if costs:
            stats = {"cells": geo["cells"], "tiles": geo["tiles"], **tally.stats(c.parallel_tile_writes)}
        return comp, (stats or {})

    @property
    def level(self) -> torch.Tensor | None:
        """Level index of every cell [S, P, out, rows] (int64)."""
        return None if self._level is None else self._level.long()

    def storage_bytes(self) -> int:
        """Bytes of tensor storage the engine holds (programmed cells and compiled tiles;
        the table's statistics and the module's float weights are not counted)."""
        seen, total = set(), 0

        def add(t) -> None:
            nonlocal total
            if isinstance(t, torch.Tensor):
                st = t.untyped_storage()
                if st.data_ptr() not in seen:
                    seen.add(st.data_ptr())
                    total += st.nbytes()

        for name in ("_level", "w_scale"):
            add(getattr(self, name, None))
        comp = self.compiled
        if comp is not None:
            for t in [
                *comp.mats,
                comp.noise_mat,
                comp.noise_std,
                comp.full_scale,
                comp.col_scale,
                comp.adc_gain,
                comp.out_scale,
                *(comp.iv_tiles or []),
                *(() if comp.cross is None else (comp.cross["zv"], comp.cross["mv2"], comp.cross["poly"])),
            ]:
                add(t)
        return total

    def to(self, device, dtype: torch.dtype) -> None:
        """Move the programmed cells to ``device`` and compile again for ``dtype``."""
        self._level, self.w_scale = self._level.to(device), self.w_scale.to(device)
        self.physics.to(device)
        self.compiled = None
        self.compiled = self.compile(dtype=dtype)

    def conductances(
        self,
        level: torch.Tensor | None = None,
        seed: int | None = None,
        drift: bool = True,
        dtype: torch.dtype = torch.float64,
    ) -> torch.Tensor:
        """Per-cell conductances [S, P, out, rows] now (after drift), re-derived from the
        levels and the seed (the engine keeps no per-cell conductances)."""
        if self._level is None and level is None:
            raise RuntimeError(f"{self.name} is not programmed yet")
        level = self._level if level is None else level
        out = torch.empty(level.shape, dtype=dtype, device=self.physics.levels.device)
        self._sweep(
            level,
            self.w_scale,
            self.seed if seed is None else seed,
            dtype,
            costs=False,
            build=False,
            drift=drift,
            out_g=out,
        )
        return out

    def conductance_sum(self, drift: bool = True) -> float:
        """Sum of every programmed cell's conductance now (S, after drift): the sum(G) of the
        array's read energy. Re-derived a block of outputs at a time, as :meth:`conductances`
        derives them, without holding a per-cell array of the whole layer."""
        if self._level is None:
            raise RuntimeError(f"{self.name} is not programmed yet")
        m, total = self.mapping, 0.0
        with _serial():
            for _, o0, o1 in self._chunks():
                for s in range(m.n_slices):
                    for p in range(m.planes):
                        res = self._cells_of(
                            self._level[s, p, o0:o1],
                            self.seed,
                            o0,
                            s,
                            p,
                            torch.float64,
                            False,
                            drift,
                            self.config.ideal_programming,
                        )
                        total += float(res["g"].sum())
        return total

    def set_config(self, config: CrossbarConfig) -> None:
        """Same cells, another evaluation config (drift time, periphery); compiled again."""
        self.config = config
        if self.programmed:
            dtype = self.compiled.col_scale.dtype
            self.compiled = None
            self.compiled = self.compile(dtype=dtype)

    # ------------------------------------------------------------------ compile
    def compile(
        self,
        g: torch.Tensor | None = None,
        level: torch.Tensor | None = None,
        w_scale: torch.Tensor | None = None,
        exact_ok: bool = True,
        dtype: torch.dtype = torch.float32,
        seed: int | None = None,
    ) -> CompiledTiles:
        """Programmed cells -> the matrices of the forward pass. Without IR drop and with
        Ohmic cells the tiles are built a block of outputs at a time from the levels and
        the seed; otherwise (or given conductances ``g``) from every cell at once."""
        c = self.config
        level = self._level if level is None else level
        w_scale = self.w_scale if w_scale is None else w_scale
        seed = self.seed if seed is None else seed
        if g is None and self._fast_compile(exact_ok):
            comp, _ = self._sweep(level, w_scale, seed, dtype, costs=False, build=True, drift=True)
            if self.after_compile is not None:
                self.after_compile(comp)
            return comp
        work = torch.float64 if dtype == torch.float64 else torch.float32
        g = self.conductances(level, seed, dtype=work) if g is None else g
        level = level.to(g.device).long()
        geo = self.geometry()
        G, rows = self.groups, self.rows
        n_tr = geo["row_tiles"]
        R = c.tile_rows if n_tr > 1 else rows  # one row tile: only its used rows (the others see no input)
        m = self.mapping
        S, P, out_g = m.n_slices, m.planes, self.out_per_group
        signs = torch.as_tensor(m.signs, dtype=torch.float64, device=g.device)
        ir = c.ir_drop if (exact_ok or c.ir_drop != "exact") else "approx"
        solvers: dict = {}
        poly = ir == "exact" and c.nonlinear_iv and c.ir_drop_solver == "per_programming"
        # the per-programming model: I = W1 v + W2 v^2 + W3 v^3 + cross term per tile; None when its
        # probe error is over the tolerance (the per-vector solve is used then)
        cross = self._programmed_models(level, g) if poly else None
        poly = cross is not None
        if ir == "off":
            g_eff = self._physical(g)
        elif ir == "approx":
            g_eff = self._untile(self._approx_transfer(self._tiles(g)))[:, :rows]
        elif poly:
            g_eff = g  # (not used: the model's matrices below)
        else:
            g_eff = self._untile(self._exact_transfer(self._tiles(g), solvers))[:, :rows]

        def combine(phys: torch.Tensor, offset: float, weights: torch.Tensor = signs) -> torch.Tensor:
            sig = (phys.reshape(G, rows, out_g, S, P) * weights).sum(-1) - offset
            sig = F.pad(sig.reshape(G, rows, out_g * S), (0, 0, 0, n_tr * R - rows))
            return sig.reshape(G, n_tr, R, out_g * S).transpose(0, 1).reshape(n_tr * G, R, out_g * S)

        if poly:
            w, cross = cross
            mats = [
                combine(self._untile(w[k].to(g_eff))[:, :rows], m.offset if k == 0 else 0.0).to(dtype) for k in range(3)
            ]
            cross = None if cross is None else self._cross_layout(cross, rows, n_tr, R, dtype, g.device)
        elif c.nonlinear_iv:
            iv = self.physics.iv(level)  # [S, P, out, rows, 3]
            mats = [
                combine(g_eff * self._physical(iv[..., k]), m.offset if k == 0 else 0.0).to(dtype) for k in range(3)
            ]
        else:
            mats = [combine(g_eff, m.offset).to(dtype)]
        # independent cells: the variances of a slice's cells add, whatever their signs
        noise_mat = combine(self._physical(self.physics.sigma(g) ** 2), 0.0, signs.abs()).to(dtype)
        # ADC full scale from the ideal (target) conductances: the designer's calibration
        ideal = combine(self._physical(self.physics.levels[level]), m.offset)
        full_scale = (c.adc_range * c.read_voltage * ideal.abs().sum(dim=1)).clamp_min(1e-30)
        full_scale = full_scale.reshape(n_tr, G * out_g * S).to(dtype)
        sw = torch.as_tensor(m.slice_weights, dtype=torch.float64, device=g.device)
        col_scale = ((w_scale.to(g.device)[:, None] * sw[None, :]).reshape(-1) / c.read_voltage).to(dtype)
        iv_tiles = None
        if ir == "exact" and c.nonlinear_iv and not poly:
            iv = self.physics.iv(level)  # unused (padding) cells: ohmic, g = 0 anyway
            iv_tiles = [self._tiles(iv[..., k] - float(k == 0)) + float(k == 0) for k in range(3)]
        else:
            solvers = {}
        comp = CompiledTiles(mats, noise_mat, full_scale, col_scale, solvers, iv_tiles, cross)
        if self.after_compile is not None:
            self.after_compile(comp)
        return comp

    def _extent(self, t: int) -> tuple[int, int]:
        """Rows and columns of tile ``t`` (index of :meth:`_tiles`) that hold the layer.

        Placement: a tile's used columns are the ones nearest its row drivers (the left end)
        and its used rows the ones nearest its sense amplifiers (the bottom), so a layer that
        fills part of a tile sees the wires of that part only: the unused wire beyond it is
        open-ended and carries no current. The solvers therefore take the used block alone."""
        c, geo = self.config, self.geometry()
        tr = (t // geo["col_tiles"]) % geo["row_tiles"]
        tc = t % geo["col_tiles"]
        cols_g = geo["physical_columns"] // self.groups
        return min(c.tile_rows, self.rows - tr * c.tile_rows), min(c.tile_cols, cols_g - tc * c.tile_cols)

    def _approx_transfer(self, tiles: torch.Tensor) -> torch.Tensor:
        """:func:`approx_transfer` of every tile over its used rows (:meth:`_extent`)."""
        r, geo = self.config.wire_resistance, self.geometry()
        last = self.rows - (geo["row_tiles"] - 1) * self.config.tile_rows
        if last == self.config.tile_rows:
            return approx_transfer(tiles, r)
        # the last row tile's rows sit next to the sense amplifiers: only they are solved
        t = tiles.reshape(self.groups, geo["row_tiles"], geo["col_tiles"], *tiles.shape[1:])
        out = torch.zeros_like(t)
        out[:, :-1] = approx_transfer(t[:, :-1], r)
        out[:, -1, :, :last] = approx_transfer(t[:, -1, :, :last], r)
        return out.reshape(tiles.shape)

    def _exact_transfer(self, tiles: torch.Tensor, solvers: dict) -> torch.Tensor:
        """Effective conductances [tiles, R, C] from the exact solver (one factorization per
        tile, of its used rows and columns, :meth:`_extent`)."""
        out = torch.zeros_like(tiles)
        arr = tiles.detach().cpu().numpy()
        for t in range(arr.shape[0]):
            rows, used = self._extent(t)
            solver = TileSolver(arr[t, :rows, :used], self.config.wire_resistance)
            solvers[t] = solver
            out[t, :rows, :used] = torch.from_numpy(solver.transfer().T).to(out)
        return out

    def _programmed_models(self, level: torch.Tensor, g: torch.Tensor):
        """The per-programming IR-drop model of every tile (:func:`irdrop.programmed_model`
        for conductances ``g``) with its error on probe vectors against the exact solve,
        kept as ``ir_drop_error`` (largest over the tiles) and ``ir_drop_tile_errors``.
        Returns ``(W [3, tiles, R, C], cross parts [terms, tiles, R, C])``, or None with a
        warning when a tile's error exceeds ``MODEL_TOL`` (the layer then uses the
        per-vector solve)."""
        c = self.config
        iv = self.physics.iv(level)
        coef = np.stack(
            [(self._tiles(iv[..., k] - float(k == 0)) + float(k == 0)).detach().cpu().numpy() for k in range(3)],
            axis=-1,
        )  # [tiles, R, C, 3]
        arr = self._tiles(g).detach().cpu().to(torch.float64).numpy()
        shape = tuple(coef.shape[:3])
        w = torch.zeros((3,) + shape, dtype=torch.float64)
        parts: dict = {}
        errors = {}
        extent = [self._extent(t) for t in range(arr.shape[0])]  # each tile's used rows and columns

        workers = min(_block_threads(), len(extent))

        def build(t: int) -> dict:
            if workers > 1:  # a new thread's BLAS/LAPACK calls start with the default team (measured:
                torch.set_num_threads(1)  # 10x slower small products on a shared machine); one here
            rows, cols = extent[t]
            return programmed_model(
                arr[t, :rows, :cols],
                c.wire_resistance,
                coef[t, :rows, :cols],
                c.read_voltage,
                rank=min(ESCALATED_RANK, rows),
            )

        # tiles are independent: on :func:`_block_threads` threads (each torch op on one; every
        # tile's model is the same for any count), the many small solves of each on one thread
        with _serial():
            models = list(_in_order(build, [(t,) for t in range(arr.shape[0])], workers))
        # each tile is built with ESCALATED_RANK input forms per column and its error measured for every
        # cheaper model cut from it (one reference solve); the layer runs the cheapest within the tolerance
        rank, projected = cheapest_cut(models, MODEL_TOL)
        models = [raise_rank(truncate(m, min(rank, m["rank"]), projected), rank) for m in models]
        for t, model in enumerate(models):
            rows, used = extent[t]
            errors[t] = model["error"]
            w[:, t, :rows, :used] = torch.from_numpy(model["W"]).transpose(1, 2)
            if not rank:  # (no cross term: each input's polynomial alone)
                continue
            forms = np.concatenate([model["B"], model["Mv"]])  # the functionals of v
            for key, x in (("forms", forms), ("Mv2", model["Mv2"])):
                if key not in parts:  # (allocated once per layer)
                    parts[key] = torch.zeros((x.shape[0],) + shape, dtype=torch.float64)
                parts[key][:, t, :rows, :used] = torch.from_numpy(x).transpose(1, 2)
            poly = np.concatenate([model["quad"].reshape(rank**2, -1), model["cubic"].reshape(rank**3, -1)])
            parts.setdefault("poly", torch.zeros((poly.shape[0],) + shape, dtype=torch.float64))
            parts["poly"][:, t, 0, :used] = torch.from_numpy(poly)  # row 0 of the tile (summed over the rows later)
        parts = {**parts, "rank": rank, "nv": len(models[0]["Mv"])} if rank else None
        self.ir_drop_tile_errors = errors
        self.ir_drop_error = max(errors.values(), default=0.0)
        self.ir_drop_fallback = self.ir_drop_error > MODEL_TOL
        if self.ir_drop_fallback:
            warnings.warn(
                f"{self.name}: the per-programming IR-drop model is {100 * self.ir_drop_error:.3f}% off "
                f"the exact solve on its probe vectors (tolerance {100 * MODEL_TOL:.2f}% of the tile's "
                "full-scale column current); this layer uses the per-vector solve instead (slower)",
                RuntimeWarning,
                stacklevel=4,
            )
            return None
        return w, parts

    def _cross_layout(self, parts: dict, rows: int, n_tr: int, R: int, dtype: torch.dtype, device) -> dict:
        """The cross term's parts in the forward's layout, on the physical columns ``cp`` of a
        group (like the signal matrices, term major): ``zv`` [n_tr*G, R, (rank+nv)*cp] (each
        column's input forms, then its ``nv`` functionals of ``v``), ``mv2`` [n_tr*G, R,
        rank*cp] (its functionals of ``v^2``) and ``poly`` [n_tr, rank^2 + rank^3, G, cp] (its
        polynomial's coefficients), the cells' signs (G+ - G-) folded into all but the forms."""
        G, K, nv = self.groups, parts["rank"], parts["nv"]
        sign = torch.as_tensor(self.mapping.signs, dtype=torch.float64).repeat(
            self.out_per_group * self.mapping.n_slices
        )

        def layout(x: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
            # [terms, tiles, Rt, Ct] -> [n_tr*G, R, terms*cp]
            phys = torch.stack([self._untile(t)[:, :rows] for t in x]) * signs[:, None, None]  # [terms, G, rows, cp]
            phys = F.pad(phys, (0, 0, 0, n_tr * R - rows))
            nt, cp = phys.shape[0], phys.shape[-1]
            return (
                phys.reshape(nt, G, n_tr, R, cp).permute(2, 1, 3, 0, 4).reshape(n_tr * G, R, nt * cp).to(device, dtype)
            )

        poly = torch.stack([self._untile(t) for t in parts["poly"]])  # [K^2 + K^3, G, n_tr*Rt, cp]
        poly = poly.reshape(poly.shape[0], G, n_tr, -1, poly.shape[-1]).sum(3) * sign  # [K^2 + K^3, G, n_tr, cp]
        ones = torch.ones(K, sign.shape[0], dtype=torch.float64)
        return {
            "zv": layout(parts["forms"], torch.cat([ones, sign.expand(nv, -1)])),
            "mv2": layout(parts["Mv2"], sign.expand(K, -1)),
            "poly": poly.permute(2, 0, 1, 3).contiguous().to(device, dtype),
            "rank": K,
            "nv": nv,
        }

    def _add_cross(self, tiles: list, volts: torch.Tensor, currents: CurrentsFn, cross: dict) -> list:
        """Tile currents plus the cross term of the per-programming IR-drop model: two more
        products of the inputs (the columns' forms and functionals on ``v``, and on ``v^2``),
        :func:`cross_term` per physical column, and the sum of each weight's cells."""
        G, P, K = self.groups, self.mapping.planes, cross["rank"]
        zvs = currents(volts, [cross["zv"]])
        x2s = currents(volts * volts, [cross["mv2"]])
        out = []
        for t, (cur, zv, x2) in enumerate(zip(tiles, zvs, x2s)):
            n, extra = zv.shape[0], tuple(zv.shape[2:])
            zv = zv.reshape(n, G, K + cross["nv"], -1, *extra).movedim(2, 0)  # [K+nv, n, G, cp, ...]
            x2 = x2.reshape(n, G, K, -1, *extra).movedim(2, 0)
            poly = cross["poly"][t].reshape(-1, G, zv.shape[-1 - len(extra)], *[1] * len(extra))
            quad, cubic = poly[: K * K].unflatten(0, (K, K)), poly[K * K :].unflatten(0, (K, K, K))
            r = cross_term(zv[:K], zv[K:], x2, quad, cubic, K).unflatten(2, (-1, P))  # [n, G, out, P, ...]
            cur = cur.view(n, G, -1, *extra)
            for p in range(P):  # each weight's cells (no temporary)
                cur.add_(r.select(3, p))
            out.append(cur.view(n, -1, *extra))
        return out

    # ------------------------------------------------------------------ forward
    def prepare(self, comp: CompiledTiles) -> CompiledTiles:
        """Put ``comp`` in the units of the forward pass, once, in place (no copy is kept):
        with an ADC, every tile column's matrices are multiplied by its codes per ampere
        (``adc_levels / full_scale``) so that the tile currents come out in ADC codes and the
        ADC is a clip and a round; with ``read_noise="per_forward"`` the read-noise variances
        become standard deviations in the same units (``noise_std``, ``noise_mat`` dropped).
        ``out_scale`` turns codes into weight units. The compiled tiles of a programming
        are prepared on their first forward (after ``after_compile``)."""
        if comp.out_scale is not None:
            return comp
        c = self.config
        n_tr = comp.full_scale.shape[0]
        gain = tile_gain = None
        if c.adc_bits is not None:
            gain = adc_levels(c.adc_bits) / comp.full_scale  # [n_tr, out*S]
            tile_gain = gain.reshape(comp.mats[0].shape[0], 1, -1)  # [n_tr*G, 1, cols_g]
            for m in comp.mats:
                m.mul_(tile_gain)
        if c.read_noise == "per_forward" and not comp.solvers:
            std = comp.noise_mat.sqrt_()
            comp.noise_std = std if tile_gain is None else std.mul_(tile_gain)
            comp.noise_mat = None
        if comp.cross is not None and gain is not None:  # the cross term in codes too (per physical column)
            x = comp.cross
            G, K = self.groups, x["rank"]
            gp = gain.reshape(n_tr, G, 1, 1, -1).repeat_interleave(self.mapping.planes, dim=4)  # [n_tr, G, 1, 1, cp]
            x["zv"].view(n_tr, G, x["zv"].shape[1], -1, gp.shape[-1])[:, :, :, K:].mul_(gp)
            x["mv2"].view(n_tr, G, x["mv2"].shape[1], K, gp.shape[-1]).mul_(gp)
            x["poly"].mul_(gp.reshape(n_tr, 1, G, -1))
        comp.out_scale = (comp.col_scale.expand(n_tr, -1) if gain is None else comp.col_scale / gain).contiguous()
        comp.adc_gain = gain
        return comp

    def matmul(self, volts: torch.Tensor, mats: list) -> list[torch.Tensor]:
        """Tile currents of row voltages [N, G*rows] (the linear layer's op): one [N, out*S]
        per row tile."""
        n_trG, R, cols_g = mats[0].shape
        G = self.groups
        n_tr = n_trG // G
        N = volts.shape[0]
        if n_trG == 1 and len(mats) == 1:
            return [torch.mm(volts, mats[0][0])]
        v = volts.reshape(N, G, self.rows)
        pad = n_tr * R - self.rows
        if pad:
            v = F.pad(v, (0, pad))
        v = v.reshape(N, G, n_tr, R).permute(2, 1, 0, 3).reshape(n_trG, N, R)
        if len(mats) > 1:  # polynomial I-V: [v, v^2, v^3] @ [M1; M2; M3]
            sq = v * v
            cur = torch.bmm(torch.cat([v, sq, sq * v], dim=2), torch.cat(mats, dim=1))
        else:
            cur = torch.bmm(v, mats[0])
        if G == 1:
            return list(cur.unbind(0))
        return list(cur.reshape(n_tr, G, N, cols_g).transpose(1, 2).reshape(n_tr, N, G * cols_g).unbind(0))

    def run(
        self,
        x: torch.Tensor,
        currents: CurrentsFn | None = None,
        rows_of: Callable | None = None,
        vectors: int = 1,
        compiled: CompiledTiles | None = None,
        bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The analog output [N, out, ...] for input ``x`` (no gradient; call under no_grad).

        ``currents(volts, mats)`` gives the tile currents of scaled inputs, one tensor [N,
        out*S, ...] per row tile, which the engine overwrites (default: ``x`` is [N, G*rows]
        and :meth:`matmul` is used); ``rows_of(volts)`` -> ``(rows [n, G*rows], back)``
        unrolls inputs into row vectors for the exact solver, ``back`` puts currents [n, n_tr,
        out*S] into the wrapper's layout [N, n_tr, out*S, ...]. ``vectors``: MVMs per sample
        (for costs). ``bias`` [out] is added to the digital output (with the last scaling
        where it can be).
        """
        c = self.config
        V = c.read_voltage
        comp = self.prepare(self.compiled if compiled is None else compiled)
        currents = self.matmul if currents is None else currents
        clip = [0, 0]
        n_adc = None if c.adc_bits is None else adc_levels(c.adc_bits)
        per_read = c.read_noise == "per_read" or (c.read_noise == "per_forward" and bool(comp.solvers))
        S = self.mapping.n_slices
        fuse_bias = bias is not None and S == 1 and not (c.dac_bits is not None and c.bit_serial)

        def digitize(volts: torch.Tensor, sample_scale: torch.Tensor, active: list) -> torch.Tensor:
            if comp.solvers:
                rows, back = (volts, lambda t: t) if rows_of is None else rows_of(volts)
                cur = back(self._exact_nonlinear(rows, comp))  # [B, n_tr, out*S, ...] amperes
                if comp.adc_gain is not None:
                    cur = cur.mul_(comp.adc_gain.reshape(1, *comp.adc_gain.shape, *[1] * (cur.dim() - 3)))
                tiles = cur.unbind(1)
            else:
                tiles = currents(volts, active)  # n_tr x [B, out*S, ...] codes
                if comp.cross is not None:
                    tiles = self._add_cross(tiles, volts, currents, comp.cross)
            B, extra = tiles[0].shape[0], [1] * (tiles[0].dim() - 2)
            if per_read:  # one draw per cell and vector: its Gaussian sum per column, drawn at once
                stds = currents(volts * volts, [comp.noise_mat])
                z = torch.randn(
                    (B, len(tiles), *tiles[0].shape[1:]),
                    generator=self._generator(volts.device),
                    device=volts.device,
                    dtype=tiles[0].dtype,
                )
            y = None
            for t, cur in enumerate(tiles):
                if per_read:
                    std = stds[t].clamp_min_(0).sqrt_()
                    if comp.adc_gain is not None:
                        std = std.mul_(comp.adc_gain[t].reshape(-1, *extra))
                    cur = cur.addcmul_(std, z[:, t])
                if n_adc is not None:  # the ADC, in codes
                    if self.record_usage:
                        clip[0] += int((cur.abs() > n_adc).sum())
                        clip[1] += cur.numel()
                    cur = cur.clamp_(-n_adc, n_adc).round_()
                k = comp.out_scale[t].reshape(-1, *extra)
                if not extra:  # shift-and-add over row tiles
                    y = cur.mul_(k) if y is None else y.addcmul_(cur, k)
                    continue
                k = sample_scale.reshape(B, 1, *extra) * k  # [B, out*S, 1, ...]: column and sample scales
                y = cur.mul_(k) if y is None else y.addcmul_(cur, k)
            if extra:  # (addcmul with a broadcast bias is slower here than a separate add)
                return y if not fuse_bias else y.add_(bias.reshape(-1, *extra))
            if fuse_bias:
                return torch.addcmul(bias, y, sample_scale.reshape(B, 1), out=y)
            return y.mul_(sample_scale.reshape(B, 1))

        active = self._select(comp)  # one read-noise draw per forward, for every block
        on = [0.0]

        def block(xb: torch.Tensor) -> torch.Tensor:
            vq = None
            if c.dac_bits is None:
                xm = input_scale(xb)
                volts = xb * (V / xm)
                y = digitize(volts, xm, active)
                vq = volts / V if self.record_usage else None
            elif c.bit_serial:
                codes, n, xm = dac_codes(xb, c.dac_bits)
                mag, sign = codes.abs(), torch.sign(codes)
                y = None
                for k in range(c.dac_bits):
                    plane = sign * torch.remainder(torch.floor(mag / 2**k), 2)
                    part = digitize(plane * V, xm * (2**k) / n, active)
                    y = part if y is None else y.add_(part)
                    if self.record_usage:
                        on[0] += float(plane.abs().mean()) / c.dac_bits
            else:
                codes, n, xm = dac_codes(xb, c.dac_bits)
                if (
                    len(active) == 1
                    and not comp.solvers
                    and not per_read
                    and xb.device.type == "cpu"
                    and codes.numel() >= active[0].numel()
                    and bool((n == n.reshape(-1)[0]).all())
                ):
                    # one level count for the block: V/n on the matrices rather than on the inputs
                    y = digitize(codes, xm, [active[0] * (V / float(n.reshape(-1)[0]))])
                    vq = codes / n if self.record_usage else None
                else:
                    y = digitize(codes.mul_(V / n), xm, active)
                    vq = codes / V if self.record_usage else None
            if self.record_usage:
                self._record(vectors, on[0] if vq is None else float((vq**2).mean()), clip)
            if S > 1:
                y = y.reshape(y.shape[0], -1, S, *y.shape[2:]).sum(2)
            if bias is not None and not fuse_bias:
                y = y.add_(bias.reshape(-1, *[1] * (y.dim() - 2)))
            return y

        # a convolution's batch in blocks of about BLOCK_ELEMENTS inputs: each block's tile outputs
        # go through the ADC while they are in cache (not with per-read noise: its draw is per forward)
        step = x.shape[0]
        if x.dim() > 2 and not (per_read or comp.solvers or self.record_usage):
            step = max(1, BLOCK_ELEMENTS // max(1, x[0].numel()))
        if step >= x.shape[0]:
            y = block(x)
        else:
            y = torch.cat([block(xb) for xb in x.split(step)])
        if not self.record_usage:
            self._record(vectors, None, clip)
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
        std = comp.noise_std
        n, R, cols = std.shape  # drawn for whole tiles: the same stream for any trim
        z = torch.randn(
            (n, self.config.tile_rows, cols), generator=self._generator(std.device), device=std.device, dtype=std.dtype
        )[:, :R]
        return [torch.addcmul(comp.mats[0], std, z), *comp.mats[1:]]

    def training_compile(self, weight: torch.Tensor) -> CompiledTiles:
        """A fresh programming of ``weight`` for one training forward (programming-noise
        injection, no drift; the exact solver is replaced by the approximation): every
        call draws new cell outcomes; the weights' levels are encoded again only when the
        weights changed (:func:`weight_key`). The programmed cells of the engine are left
        as they are."""
        if self._train_gen is None:
            self._train_gen = torch.Generator().manual_seed(self.seed + 2)
        seed = int(torch.randint(0, 2**62, (1,), generator=self._train_gen))
        dev = self.physics.levels.device
        key = (weight_key(weight), str(dev))
        if self._train_code is None or self._train_code[0] != key:  # the levels of these weights, once
            level, w_scale = self.encode(weight.detach())
            self._train_code = (key, level.to(dev), w_scale.to(dev))
        _, level, w_scale = self._train_code
        if self._fast_compile(False):
            comp, _ = self._sweep(level, w_scale, seed, weight.dtype, costs=False, build=True, drift=False)
            if self.after_compile is not None:
                self.after_compile(comp)
            return comp
        work = torch.float64 if weight.dtype == torch.float64 else torch.float32
        g = self.conductances(level, seed, drift=False, dtype=work)
        return self.compile(g, level, w_scale, exact_ok=False, dtype=weight.dtype)

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
        coef = torch.stack([t.detach().cpu() for t in comp.iv_tiles], dim=-1).numpy()  # [tiles, R, C, 3]
        for t, solver in comp.solvers.items():
            g, rest = divmod(t, n_tr * n_tc)
            tr, tc = divmod(rest, n_tc)
            rows, used = solver.shape  # the tile's used block (:meth:`_extent`)
            with _serial():
                cur, _ = solver.currents_nonlinear(v[:, g, tr * R : tr * R + rows].T.numpy(), coef[t, :rows, :used])
            phys[tr, :, g, tc * C : tc * C + used] = torch.from_numpy(cur.T)
        phys = phys[..., : out_g * S * P].reshape(n_tr, n, G, out_g, S, P)
        sig = (phys * torch.as_tensor(m.signs, dtype=torch.float64)).sum(-1)
        if m.offset:
            vsum = v.reshape(n, G, n_tr, R).sum(-1).permute(2, 0, 1)  # [n_tr, n, G]
            sig = sig - m.offset * vsum[..., None, None]
        return sig.reshape(n_tr, n, G * out_g * S).transpose(0, 1).to(device=volts.device, dtype=volts.dtype)
