"""AnalogLinear and AnalogConv2d: tiled crossbar MVMs on conductances from a DeviceTable.

A layer keeps its float weights (it is an ``nn.Linear``/``nn.Conv2d``) and a programmed
copy of them as conductances. What happens to an input, in order:

1. DAC: each sample is scaled by its own max|x| (digital), quantized to ``dac_bits``
   (or streamed bit by bit with ``bit_serial``) and applied as row voltages up to
   ``read_voltage``.
2. Crossbar: rows are split into tiles of ``tile_rows``; each tile's columns give
   currents from the programmed conductances after drift, through the exact or
   approximate IR-drop transfer matrix if enabled, with the table's I-V nonlinearity if
   enabled, plus the table's read noise drawn on every forward (``read_noise``: one
   draw per cell per forward, or an independent draw per cell and input vector added as
   its exact Gaussian sum per output). The mapping's planes combine (G+ - G-, or minus
   the offset) before the ADC.
3. ADC: each tile column's signal is clipped to its full scale (``adc_range`` times its
   worst-case current) and quantized to ``adc_bits``.
4. Digital: partial sums are shifted (bit slices, bit-serial cycles) and added across
   tiles, rescaled to weight units, plus the bias.

Gradients: the forward value is the analog one, the gradient is the float layer's
(a straight-through estimator over the whole crossbar), so hardware-aware training
sees the noise and quantization. In ``train()`` mode with gradients on, every forward
draws a fresh programming of the current weights (programming noise injection).

The layer programs itself: on creation by :func:`convert_to_analog`, on
:meth:`program`, and again (with the same seed) whenever its weights change or a state
dict is loaded. ``state_dict()`` stores the config and seed as extra state.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rramsim.devices import DeviceTable
from rramsim.models.config import CrossbarConfig
from rramsim.models.irdrop import TileSolver, approx_transfer
from rramsim.models.mapping import make_mapping
from rramsim.models.periphery import adc_scaled_, dac_codes, input_scale
from rramsim.models.programming import DevicePhysics, combined_latency, tile_latencies

EXTRA_STATE_VERSION = 1


def checked_inputs(table: DeviceTable, config: CrossbarConfig | None) -> CrossbarConfig:
    """The validated config (default if None), after checking both argument types."""
    if not isinstance(table, DeviceTable):
        raise TypeError(f"table must be a rramsim.devices.DeviceTable, got {type(table).__name__}")
    config = CrossbarConfig() if config is None else config
    if not isinstance(config, CrossbarConfig):
        raise TypeError(f"config must be a CrossbarConfig, got {type(config).__name__}")
    config.validate()
    return config


class AnalogLayerMixin:
    """Everything the two analog layers share; the subclasses supply the MVM itself."""

    # ------------------------------------------------------------------ set-up
    def _copy_from(self, module: nn.Module, program: bool):
        """Take ``module``'s float weights (and bias), then program unless told not to."""
        with torch.no_grad():
            self.weight.copy_(module.weight)
            if module.bias is not None:
                self.bias.copy_(module.bias)
        self.weight.requires_grad_(module.weight.requires_grad)
        if program:
            self.program()
        return self

    def _init_analog(self, table: DeviceTable, config: CrossbarConfig | None, seed: int) -> None:
        config = checked_inputs(table, config)
        self.table = table
        self.config = config
        self.seed = _check_seed(seed)
        self.program_stats: dict = {}
        self.usage: dict = {}
        self.record_usage = False
        self._clip_counts = [0, 0]          # ADC conversions clipped, all (while recording usage)
        self._programmed_version: int | None = None
        self._noise_gen: torch.Generator | None = None
        self._train_gen: torch.Generator | None = None
        self._solvers: dict = {}
        self._setup_physics()

    def _setup_physics(self) -> None:
        dev = self.weight.device
        self.physics = DevicePhysics(self.table, self.config.read_voltage, self.config.nonlinear_iv).to(dev)
        self.mapping = make_mapping(self.config, self.table.targets)

    @property
    def in_rows(self) -> int:
        """Crossbar rows the layer needs (inputs of one MVM)."""
        return int(self.weight[0].numel())

    @property
    def out_columns(self) -> int:
        return int(self.weight.shape[0])

    def geometry(self) -> dict:
        """Tiles and sizes of the layer on the configured crossbars."""
        c = self.config
        s, p = self.mapping.n_slices, self.mapping.planes
        cols = self.out_columns * s * p
        n_tr = math.ceil(self.in_rows / c.tile_rows)
        n_tc = math.ceil(cols / c.tile_cols)
        return {"rows": self.in_rows, "outputs": self.out_columns, "slices": s, "planes": p,
                "physical_columns": cols, "row_tiles": n_tr, "col_tiles": n_tc, "tiles": n_tr * n_tc,
                "cells": self.in_rows * cols}

    # ------------------------------------------------------------------ programming
    def program(self, seed: int | None = None) -> dict:
        """Write the current float weights to the crossbars (sampling each cell's outcome
        from the table) and return the programming cost of this layer."""
        if seed is not None:
            self.seed = _check_seed(seed)
        gen = torch.Generator().manual_seed(self.seed)
        level, w_scale = self._encode(self.weight.detach())
        u = torch.rand(level.shape, generator=gen, dtype=torch.float64)
        fault = torch.rand(level.shape, generator=gen, dtype=torch.float64)
        z = torch.randn(level.shape, generator=gen, dtype=torch.float64)
        dev = self.weight.device
        c = self.config
        res = self.physics.sample(level.to(dev), u.to(dev), fault.to(dev), c.stuck_on, c.stuck_off)
        self._level = level.to(dev)
        self._g0 = res["g"]
        self._z = z.to(dev)
        self._stuck = res["stuck"]
        self._w_scale = w_scale.to(dev)
        self.program_stats = self._cost_of(res)
        self._compile()
        self._programmed_version = self.weight._version
        self._noise_gen = None
        return self.program_stats

    def _encode(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Level indices [S, P, out, in] and per-output weight scales of weights ``w``."""
        w = w.reshape(w.shape[0], -1).to(torch.float64).cpu()
        if not torch.isfinite(w).all():
            raise ValueError(f"{type(self).__name__} weight contains NaN or inf; cannot program it "
                             "(check the checkpoint or the training run)")
        if self.config.weight_scaling == "layer":
            scale = w.abs().max().expand(w.shape[0]).clone()
        else:
            scale = w.abs().amax(dim=1)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        return self.mapping.encode(w / scale[:, None]), scale

    def _cost_of(self, res: dict) -> dict:
        g = self.geometry()
        time = self._tiles(res["time"])              # [tiles, R, C]
        energy = self._tiles(res["energy"])
        per_tile = tile_latencies(time, self.config.program_parallelism)
        return {"cells": g["cells"], "tiles": g["tiles"], "pulses": float(res["pulses"].sum()),
                "energy": float(res["energy"].sum()), "stuck": int(res["stuck"].sum()),
                "latency": combined_latency(per_tile, self.config.parallel_tile_writes),
                "tile_energy": energy.sum(dim=(1, 2)).cpu().numpy(),
                "tile_latency": per_tile.cpu().numpy()}

    def _physical(self, x: torch.Tensor) -> torch.Tensor:
        """[S, P, out, in] -> [in, out*S*P] (rows x physical columns, a weight's cells adjacent)."""
        s, p, o, i = x.shape
        return x.permute(3, 2, 0, 1).reshape(i, o * s * p)

    def _tiles(self, x: torch.Tensor) -> torch.Tensor:
        """Per-cell values [S, P, out, in] laid out on tiles: [tiles, tile_rows, tile_cols]."""
        g = self.geometry()
        R, C = self.config.tile_rows, self.config.tile_cols
        phys = self._physical(x)
        phys = F.pad(phys, (0, g["col_tiles"] * C - phys.shape[1], 0, g["row_tiles"] * R - phys.shape[0]))
        return phys.reshape(g["row_tiles"], R, g["col_tiles"], C).permute(0, 2, 1, 3).reshape(-1, R, C)

    def _untile(self, t: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`_tiles` up to padding: [tiles, R, C] -> [row_tiles*R, cols]."""
        g = self.geometry()
        R, C = self.config.tile_rows, self.config.tile_cols
        x = t.reshape(g["row_tiles"], g["col_tiles"], R, C).permute(0, 2, 1, 3)
        return x.reshape(g["row_tiles"] * R, g["col_tiles"] * C)[:, :g["physical_columns"]]

    # ------------------------------------------------------------------ drift and compile
    def set_drift_time(self, t: float) -> None:
        """Evaluate at ``t`` seconds after programming (same programmed cells, new drift)."""
        if not (isinstance(t, (int, float)) and math.isfinite(t) and t >= 0):
            raise ValueError(f"drift time must be a finite number of seconds >= 0, got {t!r}")
        self.config = self.config.replace(drift_time=float(t))
        if self._programmed_version is not None:
            self._compile()

    def _conductances(self) -> torch.Tensor:
        c = self.config
        factor = self.physics.drift_factor(c.drift_time, self._level, self._z, c.drift_nu, c.drift_nu_std,
                                           c.drift_t0)
        return self._g0 * factor

    def _compile(self, g: torch.Tensor | None = None, level: torch.Tensor | None = None,
                 w_scale: torch.Tensor | None = None, exact_ok: bool = True) -> None:
        """Turn conductances [S, P, out, in] into the matrices the forward pass multiplies."""
        c = self.config
        g = self._conductances() if g is None else g
        level = self._level if level is None else level
        w_scale = self._w_scale if w_scale is None else w_scale
        geo = self.geometry()
        # a layer on one row tile keeps only its used rows (the others never see an input)
        R = c.tile_rows if geo["row_tiles"] > 1 else self.in_rows
        rows_pad = geo["row_tiles"] * R
        m = self.mapping
        S, P, out = m.n_slices, m.planes, self.out_columns
        signs = torch.as_tensor(m.signs, dtype=torch.float64, device=g.device)
        sigma = self.physics.sigma(g)
        ir = c.ir_drop if (exact_ok or c.ir_drop != "exact") else "approx"
        self._solvers = {}
        if ir == "off":
            g_eff = self._physical(g)
        elif ir == "approx":
            g_eff = self._untile(approx_transfer(self._tiles(g), c.wire_resistance))
        else:
            g_eff = self._untile(self._exact_transfer(self._tiles(g)))
        g_eff = g_eff[:self.in_rows]

        def combine(phys: torch.Tensor, offset: float, weights: torch.Tensor = signs) -> torch.Tensor:
            sig = (phys.reshape(self.in_rows, out, S, P) * weights).sum(-1) - offset
            sig = F.pad(sig.reshape(self.in_rows, out * S), (0, 0, 0, rows_pad - self.in_rows))
            return sig.reshape(geo["row_tiles"], R, out * S)

        dtype = self.weight.dtype
        if c.nonlinear_iv:
            iv = self.physics.iv(level)                                   # [S, P, out, in, 3]
            self._mats = [combine(g_eff * self._physical(iv[..., k])[:self.in_rows], m.offset if k == 0 else 0.0)
                          .to(dtype) for k in range(3)]
        else:
            self._mats = [combine(g_eff, m.offset).to(dtype)]
        # independent cells: the variances of a slice's cells add, whatever their signs
        self._noise_mat = combine(self._physical(sigma ** 2)[:self.in_rows], 0.0, signs.abs()).to(dtype)
        # ADC full scale from the ideal (target) conductances: the designer's calibration
        ideal = combine(self._physical(self.physics.levels[level]), m.offset)
        self._full_scale = (c.adc_range * c.read_voltage * ideal.abs().sum(dim=1)).clamp_min(1e-30).to(dtype)
        sw = torch.as_tensor(m.slice_weights, dtype=torch.float64, device=g.device)
        self._col_scale = ((w_scale[:, None] * sw[None, :]).reshape(-1) / c.read_voltage).to(dtype)
        if ir == "exact" and c.nonlinear_iv:
            iv = self.physics.iv(level)
            self._iv_tiles = [self._tiles(iv[..., k]) for k in range(3)]
        else:
            self._solvers = {}
        self._after_compile()

    def _exact_transfer(self, tiles: torch.Tensor) -> torch.Tensor:
        """Effective conductances [tiles, R, C] from the exact solver (one factorization per
        tile; unused columns at the right end of a tile are left out of the solve)."""
        c = self.config
        geo = self.geometry()
        out = torch.zeros_like(tiles)
        arr = tiles.detach().cpu().numpy()
        for t in range(arr.shape[0]):
            tc = t % geo["col_tiles"]
            used = min(c.tile_cols, geo["physical_columns"] - tc * c.tile_cols)
            solver = TileSolver(arr[t, :, :used], c.wire_resistance)
            self._solvers[t] = solver
            out[t, :, :used] = torch.from_numpy(solver.transfer().T).to(out)
        return out

    def _after_compile(self) -> None:
        """Hook for subclasses (the conv layer builds its kernels here)."""

    # ------------------------------------------------------------------ forward core
    def _generator(self, device: torch.device) -> torch.Generator:
        if self._noise_gen is None or self._noise_dev != str(device):
            self._noise_gen = torch.Generator(device=device).manual_seed(self.seed + 1)
            self._noise_dev = str(device)
        return self._noise_gen

    def _ensure_programmed(self) -> None:
        if self._programmed_version is None or self._programmed_version != self.weight._version:
            self.program()
        elif self._mats[0].device != self.weight.device or self._mats[0].dtype != self.weight.dtype:
            self._move_buffers()

    def _move_buffers(self) -> None:
        dev = self.weight.device
        for name in ("_level", "_g0", "_z", "_stuck", "_w_scale"):
            setattr(self, name, getattr(self, name).to(dev))
        self.physics.to(dev)
        self._compile()

    def _analog(self, x: torch.Tensor) -> torch.Tensor:
        """The analog output for input ``x`` (call under ``torch.no_grad()``)."""
        c = self.config
        V = c.read_voltage
        self._select_matrices()
        self._clip_counts = [0, 0]
        vq = None
        if c.dac_bits is None:
            xm = input_scale(x)
            vq = x / xm
            y = self._digitize(vq * V, xm)
        elif c.bit_serial:
            codes, n, xm = dac_codes(x, c.dac_bits)
            mag, sign = codes.abs(), torch.sign(codes)
            y = None
            on = 0.0
            for k in range(c.dac_bits):
                plane = sign * torch.remainder(torch.floor(mag / 2 ** k), 2)
                part = self._digitize(plane * V, xm * (2 ** k) / n)
                y = part if y is None else y.add_(part)
                if self.record_usage:
                    on += float(plane.abs().mean()) / c.dac_bits
        else:
            codes, n, xm = dac_codes(x, c.dac_bits)
            y = self._digitize(codes.mul_(V / n), xm)
            if self.record_usage:
                vq = codes / V
        self.usage["vectors_per_sample"] = self._vectors_per_sample(x)
        if self.record_usage:       # bit-serial cycles drive full-scale bits: mean v^2 = share of ones
            self.usage["mean_v2"] = on if vq is None else float((vq ** 2).mean())
            if c.adc_bits is not None:
                self.usage["adc_clipped"] = self._clip_counts[0] / max(self._clip_counts[1], 1)
        S = self.mapping.n_slices
        if S > 1:
            y = y.reshape(y.shape[0], -1, S, *y.shape[2:]).sum(2)
        return y

    def _select_matrices(self) -> None:
        """The matrices of this forward: the compiled ones, or with ``read_noise="per_forward"``
        a copy with one read-noise draw per cell (signal domain: variance sum_p sigma_p^2)."""
        if self.config.read_noise != "per_forward" or self._solvers:
            self._active = self._mats
        else:
            n_tr, R, cols = self._noise_mat.shape       # drawn for whole tiles: the same stream for any trim
            noise = self._noise_mat.sqrt() * torch.randn((n_tr, self.config.tile_rows, cols), generator=self._generator(
                self._noise_mat.device), device=self._noise_mat.device, dtype=self._noise_mat.dtype)[:, :R]
            self._active = [self._mats[0] + noise, *self._mats[1:]]
        self._after_select()

    def _after_select(self) -> None:
        """Hook: the conv layer rebuilds its kernels when the matrices changed."""

    def _digitize(self, volts: torch.Tensor, sample_scale: torch.Tensor) -> torch.Tensor:
        """Tile currents -> noise -> ADC -> scaled to weight units (times the per-sample
        input scale [B, 1, ...]), summed over tiles: [B, out*S, ...]."""
        c = self.config
        cur = self._currents(volts)                                      # [B, tiles, out*S, ...]
        extra = [1] * (cur.dim() - 3)
        if c.read_noise == "per_read" or (c.read_noise == "per_forward" and self._solvers):
            std = self._noise_var(volts * volts).clamp_min_(0).sqrt_()
            cur = cur.addcmul_(std, torch.randn(cur.shape, generator=self._generator(cur.device),
                                                device=cur.device, dtype=cur.dtype))
        fs = self._full_scale.reshape(1, *self._full_scale.shape, *extra)
        if self.record_usage and c.adc_bits is not None:
            self._clip_counts[0] += int((cur.abs() > fs).sum())
            self._clip_counts[1] += cur.numel()
        out_scale = self._col_scale.reshape(1, 1, -1, *extra) * sample_scale.reshape(-1, *([1] * (cur.dim() - 1)))
        cur = adc_scaled_(cur, fs, c.adc_bits, out_scale)
        return cur[:, 0] if cur.shape[1] == 1 else cur.sum(1)

    # ------------------------------------------------------------------ forward
    def _forward_analog(self, x: torch.Tensor, float_fn) -> torch.Tensor:
        if x.shape[0] == 0:
            return float_fn(x)                   # an empty batch: nothing to convert
        if not torch.is_floating_point(x):
            raise ValueError(f"{type(self).__name__} expects floating-point inputs, got {x.dtype}")
        if self.training and torch.is_grad_enabled():
            with torch.no_grad():
                y_analog = self._analog_training(x)
        else:
            self._ensure_programmed()
            with torch.no_grad():
                y_analog = self._analog(x)
        if self.bias is not None:
            y_analog = y_analog.add_(_expand(self.bias.detach(), y_analog, dim=1))
        if torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad):
            y_float = float_fn(x)
            return y_float + (y_analog - y_float).detach()
        return y_analog

    def _analog_training(self, x: torch.Tensor) -> torch.Tensor:
        """A fresh programming of the current weights for this forward (noise injection)."""
        if self._train_gen is None:
            self._train_gen = torch.Generator().manual_seed(self.seed + 2)
        gen = self._train_gen
        level, w_scale = self._encode(self.weight.detach())
        dev = self.weight.device
        u = torch.rand(level.shape, generator=gen, dtype=torch.float64).to(dev)
        fault = torch.rand(level.shape, generator=gen, dtype=torch.float64).to(dev)
        c = self.config
        res = self.physics.sample(level.to(dev), u, fault, c.stuck_on, c.stuck_off)
        saved = self._programmed_version
        self._compile(res["g"], level.to(dev), w_scale.to(dev), exact_ok=False)
        try:
            return self._analog(x)
        finally:
            self._programmed_version = None if saved is None else -1   # recompile before the next eval
    # ------------------------------------------------------------------ state dict
    def get_extra_state(self) -> dict:
        return {"version": EXTRA_STATE_VERSION, "config": self.config.to_dict(), "seed": self.seed}

    def set_extra_state(self, state: dict) -> None:
        if not isinstance(state, dict) or state.get("version") != EXTRA_STATE_VERSION:
            raise ValueError(f"{type(self).__name__}: unknown extra state {state!r} in the state dict")
        self.config = CrossbarConfig.from_dict(state["config"])
        self.seed = _check_seed(state["seed"])
        self._setup_physics()
        self._programmed_version = None          # program again (same seed) before the next forward

    def extra_repr(self) -> str:
        c = self.config
        return (super().extra_repr() + f", mapping={c.mapping}, tile={c.tile_rows}x{c.tile_cols}, "
                f"dac_bits={c.dac_bits}, adc_bits={c.adc_bits}, ir_drop={c.ir_drop}, seed={self.seed}")


class AnalogLinear(AnalogLayerMixin, nn.Linear):
    """``nn.Linear`` computed on RRAM crossbars described by ``table`` and ``config``."""

    def __init__(self, in_features: int, out_features: int, table: DeviceTable,
                 config: CrossbarConfig | None = None, bias: bool = True, seed: int = 0,
                 device=None, dtype=None) -> None:
        _check_size("in_features", in_features)
        _check_size("out_features", out_features)
        nn.Linear.__init__(self, in_features, out_features, bias=bias, device=device, dtype=dtype)
        self._init_analog(table, config, seed)

    @classmethod
    def from_linear(cls, module: nn.Linear, table: DeviceTable, config: CrossbarConfig | None = None,
                    seed: int = 0, program: bool = True) -> "AnalogLinear":
        """An analog copy of ``module`` (same weights, device and dtype), programmed."""
        layer = cls(module.in_features, module.out_features, table, config, bias=module.bias is not None,
                    seed=seed, device=module.weight.device, dtype=module.weight.dtype)
        return layer._copy_from(module, program)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"AnalogLinear expects inputs [..., in_features={self.in_features}], "
                             f"got shape {tuple(x.shape)}")
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features) if x.dim() != 2 else x
        y = self._forward_analog(x2, lambda inp: F.linear(inp, self.weight, self.bias))
        return y.reshape(*lead, self.out_features)

    def _currents(self, volts: torch.Tensor) -> torch.Tensor:
        if self._solvers:
            return _exact_nonlinear(self, volts).transpose(0, 1)
        mats = self._active
        vp = self._rows(volts)                                           # [tiles, B, R]
        if len(mats) > 1:                       # polynomial I-V: [v, v^2, v^3] @ [M1; M2; M3]
            sq = vp * vp
            return torch.bmm(torch.cat([vp, sq, sq * vp], dim=2), torch.cat(mats, dim=1)).transpose(0, 1)
        return torch.bmm(vp, mats[0]).transpose(0, 1)

    def _noise_var(self, v2: torch.Tensor) -> torch.Tensor:
        return torch.bmm(self._rows(v2), self._noise_mat).transpose(0, 1)

    def _rows(self, v: torch.Tensor) -> torch.Tensor:
        n_tr, R = self._mats[0].shape[0], self._mats[0].shape[1]
        pad = n_tr * R - v.shape[1]
        vp = F.pad(v, (0, pad)) if pad else v
        return vp.reshape(v.shape[0], n_tr, R).transpose(0, 1)

    def _vectors_per_sample(self, v: torch.Tensor) -> int:
        return 1


class AnalogConv2d(AnalogLayerMixin, nn.Conv2d):
    """``nn.Conv2d`` computed on RRAM crossbars: each output pixel is one MVM of the unrolled
    patch (``in_channels * kh * kw`` rows)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, table: DeviceTable,
                 config: CrossbarConfig | None = None, stride=1, padding=0, dilation=1, bias: bool = True,
                 seed: int = 0, device=None, dtype=None) -> None:
        _check_size("in_channels", in_channels)
        _check_size("out_channels", out_channels)
        nn.Conv2d.__init__(self, in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                           dilation=dilation, bias=bias, device=device, dtype=dtype)
        self._init_analog(table, config, seed)

    @classmethod
    def from_conv(cls, module: nn.Conv2d, table: DeviceTable, config: CrossbarConfig | None = None,
                  seed: int = 0, program: bool = True) -> "AnalogConv2d":
        """An analog copy of ``module`` (same weights, device and dtype), programmed."""
        if module.groups != 1:
            raise ValueError(f"AnalogConv2d supports groups=1 only, got groups={module.groups}")
        if module.padding_mode != "zeros":
            raise ValueError(f"AnalogConv2d supports padding_mode='zeros' only, got {module.padding_mode!r}")
        if isinstance(module.padding, str):
            raise ValueError(f"AnalogConv2d needs numeric padding, got padding={module.padding!r}")
        layer = cls(module.in_channels, module.out_channels, module.kernel_size, table, config,
                    stride=module.stride, padding=module.padding, dilation=module.dilation,
                    bias=module.bias is not None, seed=seed, device=module.weight.device,
                    dtype=module.weight.dtype)
        return layer._copy_from(module, program)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"AnalogConv2d expects inputs [B, in_channels={self.in_channels}, H, W], "
                             f"got shape {tuple(x.shape)}")
        return self._forward_analog(x, lambda inp: F.conv2d(inp, self.weight, self.bias, self.stride,
                                                            self.padding, self.dilation))

    def _after_compile(self) -> None:
        # Kernels per row tile: tile t's kernel holds only the rows (in, kh, kw) of tile t.
        self._kernels = self._fused_kernels(self._mats)
        self._noise_kernel = self._tile_kernels(self._noise_mat)
        self._active_kernels = self._kernels

    def _after_select(self) -> None:
        self._active_kernels = (self._kernels if self._active is self._mats
                                else self._fused_kernels(self._active))

    def _fused_kernels(self, mats: list) -> list[tuple[int, int, torch.Tensor]]:
        """Per tile (c0, c1, kernel); with the polynomial I-V the kernels of v, v^2 and v^3
        are stacked along the input channels so one convolution does all three."""
        per_mat = [self._tile_kernels(m) for m in mats]
        return [(c0, c1, torch.cat([pm[t][2] for pm in per_mat], dim=1) if len(per_mat) > 1 else k)
                for t, (c0, c1, k) in enumerate(per_mat[0])]

    def _tile_kernels(self, mat: torch.Tensor) -> list[tuple[int, int, torch.Tensor]]:
        """Per row tile: the input channels its rows touch and its kernel on those channels
        (rows of other tiles zeroed), so each tile's convolution reads only its channels."""
        n_tr, R, cols = mat.shape
        k_in = int(self.weight[0, 0].numel())                              # rows per input channel
        out = []
        for t in range(n_tr):
            r0, r1 = t * R, min((t + 1) * R, self.in_rows)
            c0, c1 = r0 // k_in, (r1 - 1) // k_in + 1
            full = torch.zeros((c1 - c0) * k_in, cols, dtype=mat.dtype, device=mat.device)
            full[r0 - c0 * k_in:r1 - c0 * k_in] = mat[t, :r1 - r0]
            kernel = full.T.reshape(cols, c1 - c0, *self.weight.shape[2:]).contiguous()
            out.append((c0, c1, kernel))
        return out

    def _conv(self, v: torch.Tensor, kernels: list, powers: int = 1) -> torch.Tensor:
        ys = []
        for c0, c1, k in kernels:
            vt = v if (c0 == 0 and c1 == v.shape[1]) else v[:, c0:c1]
            if powers > 1:
                sq = vt * vt
                vt = torch.cat([vt, sq, sq * vt], dim=1)
            ys.append(F.conv2d(vt, k, None, self.stride, self.padding, self.dilation))
        return ys[0].unsqueeze(1) if len(ys) == 1 else torch.stack(ys, dim=1)

    def _currents(self, volts: torch.Tensor) -> torch.Tensor:
        if self._solvers:
            B = volts.shape[0]
            patches = F.unfold(volts, self.kernel_size, self.dilation, self.padding, self.stride)  # [B, rows, L]
            L = patches.shape[-1]
            cur = _exact_nonlinear(self, patches.transpose(1, 2).reshape(B * L, -1))    # [tiles, B*L, cols]
            H, W = self._out_hw(volts)
            return cur.reshape(cur.shape[0], B, H, W, -1).permute(1, 0, 4, 2, 3)
        return self._conv(volts, self._active_kernels, powers=len(self._active))

    def _noise_var(self, v2: torch.Tensor) -> torch.Tensor:
        return self._conv(v2, self._noise_kernel)

    def _out_hw(self, x: torch.Tensor) -> tuple[int, int]:
        hw = []
        for d in (0, 1):
            size = x.shape[2 + d] + 2 * self.padding[d] - self.dilation[d] * (self.kernel_size[d] - 1) - 1
            hw.append(size // self.stride[d] + 1)
        return hw[0], hw[1]

    def _vectors_per_sample(self, v: torch.Tensor) -> int:
        h, w = self._out_hw(v)
        return int(h * w)


def _exact_nonlinear(layer: AnalogLayerMixin, volts: torch.Tensor) -> torch.Tensor:
    """Tile currents [tiles, n, out*S] with the exact IR-drop solver and nonlinear cells."""
    c = layer.config
    geo = layer.geometry()
    R, C = c.tile_rows, c.tile_cols
    m = layer.mapping
    out, S, P = layer.out_columns, m.n_slices, m.planes
    v = F.pad(volts.detach().to(torch.float64).cpu(), (0, geo["row_tiles"] * R - volts.shape[1]))
    n = v.shape[0]
    phys = torch.zeros(geo["row_tiles"], n, geo["col_tiles"] * C, dtype=torch.float64)
    coef = torch.stack([t.detach().cpu() for t in layer._iv_tiles], dim=-1).numpy()   # [tiles, R, C, 3]
    for t, solver in layer._solvers.items():
        tr, tc = divmod(t, geo["col_tiles"])
        used = solver.shape[1]
        vt = v[:, tr * R:(tr + 1) * R].T.numpy()
        cur, _ = solver.currents_nonlinear(vt, coef[t, :, :used])
        phys[tr, :, tc * C:tc * C + used] = torch.from_numpy(cur.T)
    phys = phys[:, :, :geo["physical_columns"]].reshape(geo["row_tiles"], n, out, S, P)
    signs = torch.as_tensor(m.signs, dtype=torch.float64)
    sig = (phys * signs).sum(-1)
    if m.offset:
        vsum = v.reshape(n, geo["row_tiles"], R).sum(-1).T                # [tiles, n]
        sig = sig - m.offset * vsum[:, :, None, None]
    return sig.reshape(geo["row_tiles"], n, out * S).to(device=volts.device, dtype=volts.dtype)


def _expand(t: torch.Tensor, like: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """View ``t`` (1-D) along dimension ``dim`` of ``like`` for broadcasting."""
    shape = [1] * like.dim()
    shape[dim] = -1
    return t.reshape(shape)


def _check_size(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)
