"""Analog module wrappers: AnalogLinear, AnalogConv1d, AnalogConv2d on one TileEngine each.

A layer keeps its float weights (it is an ``nn.Linear``/``nn.Conv1d``/``nn.Conv2d``) and
a :class:`~rramsim.models.tile.TileEngine` that holds the programmed copy of them as
conductances and computes the analog MVM (DAC, tile currents with read noise, I-V and IR
drop, ADC, digital shift-and-add; see :mod:`rramsim.models.tile`). The wrappers only
reshape: a linear layer flattens its leading dimensions into input vectors; a
convolution applies each row tile's matrix as a convolution kernel (the tile's rows are
(channel, kernel-offset) pairs of the unrolled patch), and a grouped or depthwise
convolution puts every group on tiles of its own (the engine's ``groups``). Non-zero
padding modes and ``'same'`` padding are applied with ``F.pad`` before the analog
convolution.

Gradients: the forward value is the analog one, the gradient is the float layer's
(a straight-through estimator over the whole crossbar), so hardware-aware training
sees the noise and quantization. In ``train()`` mode with gradients on, every forward
draws a fresh programming of the current weights (programming noise injection; the
programmed cells are left alone, and the weights are encoded again only after they changed).

The layer programs itself: on creation by :func:`convert_to_analog`, on
:meth:`program`, and again (with the same seed) before the next forward whenever its
weights changed (an optimizer step, ``copy_`` under ``no_grad``, a new Parameter or
``.data`` assigned: :func:`~rramsim.models.tile.weight_key`) or a state dict is loaded;
never between calls with unchanged weights. An in-place edit through ``weight.data``
is invisible to torch's version counter: call :meth:`program` after one.
``state_dict()`` stores the config, the seed and the device table's fingerprint as
extra state (a plain dict); loading it into a layer that runs on another table is
refused. The analog computation runs outside ``torch.compile`` graphs
(``torch.compiler.disable``), so a compiled model draws fresh read noise on every call
and programs only when its weights change.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import warnings
from dataclasses import fields

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rramsim.devices import DeviceTable
from rramsim.models.config import CrossbarConfig
from rramsim.models.mapping import WeightMapping, make_mapping
from rramsim.models.tile import CompiledTiles, TileEngine, weight_key

EXTRA_STATE_VERSION = 2


def checked_inputs(table: DeviceTable, config: CrossbarConfig | None) -> CrossbarConfig:
    """The validated config (default if None), after checking both argument types."""
    if not isinstance(table, DeviceTable):
        raise TypeError(f"table must be a rramsim.devices.DeviceTable, got {type(table).__name__}")
    config = CrossbarConfig() if config is None else config
    if not isinstance(config, CrossbarConfig):
        raise TypeError(f"config must be a CrossbarConfig, got {type(config).__name__}")
    config.validate()
    return config


def table_fingerprint(table: DeviceTable) -> str:
    """A content hash (sha256, 16 hex digits) of everything in ``table`` that the physics
    reads: every array (dtype, shape, bytes), the scheme, model and variability records and
    the netlists. ``provenance`` (creation time, versions, command) is left out, so the same
    table saved and loaded again has the same fingerprint."""
    h = hashlib.sha256()
    for f in fields(table):
        if f.name == "provenance":
            continue
        value = getattr(table, f.name)
        h.update(f.name.encode())
        if value is None:
            h.update(b"none")
        elif isinstance(value, np.ndarray):
            a = np.ascontiguousarray(value)
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(a.tobytes())
        else:
            h.update(json.dumps(value, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


class AnalogLayerMixin:
    """Base of the analog module wrappers (and the marker :func:`analog_layers` looks for).

    A subclass is an ``nn.Module`` with a ``weight`` [out, ...] (and optional ``bias``);
    it supplies :meth:`_run` (the engine call on its reshaped input) and
    :meth:`_float_forward` (the float layer, for the gradient), and calls
    :meth:`_init_analog` after the module's own ``__init__``.
    """

    _groups = 1
    #: mapping classes that leave part of the weight to the layer (``layer_applies_signs``)
    #: which this layer type applies; any other such mapping is refused
    handles_mappings: tuple[type, ...] = ()

    # ------------------------------------------------------------------ set-up
    def _init_analog(self, table: DeviceTable, config: CrossbarConfig | None, seed: int) -> None:
        config = checked_inputs(table, config)
        self._seed = _check_seed(seed)
        self.set_hardware(table, config)

    def _make_mapping(self, table: DeviceTable, config: CrossbarConfig) -> WeightMapping:
        """The weight mapping (a subclass may use its own)."""
        return make_mapping(config, table.targets, handles=self.handles_mappings)

    def set_hardware(self, table: DeviceTable, config: CrossbarConfig) -> None:
        """Run on another table and/or config: a new engine, programmed before the next forward."""
        config = checked_inputs(table, config)
        w = self.weight
        self.engine = TileEngine(
            table,
            config,
            w.shape[0],
            int(w[0].numel()),
            groups=self._groups,
            mapping=self._make_mapping(table, config),
            name=type(self).__name__,
            device=w.device,
        )
        self.engine.seed = self._seed
        self.engine.after_compile = self._after_compile
        self._table_fp = None
        self._programmed_key: tuple | None = None

    def _copy_from(self, module: nn.Module, program: bool):
        """Take ``module``'s float weights (and bias), then program unless told not to."""
        with torch.no_grad():
            self.weight.copy_(module.weight)
            if module.bias is not None:
                self.bias.copy_(module.bias)
        self.weight.requires_grad_(module.weight.requires_grad)
        self.train(module.training)  # a converted eval-mode model stays in eval mode
        if program:
            self.program()
        return self

    def _after_compile(self, compiled: CompiledTiles) -> None:  # noqa: B027
        """Hook: a subclass may change the compiled matrices (e.g. per-tile signs)."""

    # ------------------------------------------------------------------ public state
    @property
    def table(self) -> DeviceTable:
        return self.engine.table

    @property
    def config(self) -> CrossbarConfig:
        return self.engine.config

    @property
    def seed(self) -> int:
        return self._seed

    @seed.setter
    def seed(self, value: int) -> None:
        self._seed = _check_seed(value)
        self.engine.seed = self._seed
        self._programmed_key = None

    @property
    def mapping(self) -> WeightMapping:
        return self.engine.mapping

    @property
    def physics(self):
        return self.engine.physics

    @property
    def program_stats(self) -> dict:
        return self.engine.program_stats

    @property
    def usage(self) -> dict:
        """What the last forward measured (vectors per sample, mean v^2, ADC clipping)."""
        return self.engine.usage

    @property
    def record_usage(self) -> bool:
        return self.engine.record_usage

    @record_usage.setter
    def record_usage(self, on: bool) -> None:
        if on:
            self.engine.start_recording()
        else:
            self.engine.record_usage = False

    @property
    def is_programmed(self) -> bool:
        return self._programmed_key is not None and self.engine.programmed

    @property
    def table_fingerprint(self) -> str:
        if self._table_fp is None:
            self._table_fp = table_fingerprint(self.table)
        return self._table_fp

    @property
    def in_rows(self) -> int:
        """Crossbar rows the layer needs (inputs of one MVM, all groups)."""
        return int(self.weight[0].numel()) * self._groups

    @property
    def out_columns(self) -> int:
        return int(self.weight.shape[0])

    def geometry(self) -> dict:
        """Tiles and sizes of the layer on the configured crossbars."""
        return self.engine.geometry()

    def conductances(self) -> torch.Tensor:
        """Per-cell conductances [S, P, out, rows] now (after drift)."""
        return self.engine.conductances()

    def conductance_sum(self) -> float:
        """Sum of the layer's cell conductances now (S, after drift), block by block."""
        return self.engine.conductance_sum()

    # ------------------------------------------------------------------ programming
    def program(self, seed: int | None = None) -> dict:
        """Write the current float weights to the crossbars (sampling each cell's outcome
        from the table) and return the programming cost of this layer."""
        if seed is not None:
            self.seed = seed
        w = self.weight.detach()
        if self.engine.physics.levels.device != w.device:
            self.engine.physics.to(w.device)
        stats = self.engine.program(w, self._seed)
        self._programmed_key = weight_key(self.weight)
        return stats

    def set_drift_time(self, t: float) -> None:
        """Evaluate at ``t`` seconds after programming (same programmed cells, new drift)."""
        if not (isinstance(t, (int, float)) and math.isfinite(t) and t >= 0):
            raise ValueError(f"drift time must be a finite number of seconds >= 0, got {t!r}")
        self.engine.set_config(self.config.replace(drift_time=float(t)))

    def _ensure_programmed(self) -> None:
        w = self.weight
        if not self.is_programmed or self._programmed_key != weight_key(w):
            self.program()
        elif self.engine.compiled.mats[0].device != w.device or self.engine.compiled.mats[0].dtype != w.dtype:
            self.engine.to(w.device, w.dtype)

    # ------------------------------------------------------------------ forward
    def _forward_analog(self, x: torch.Tensor) -> torch.Tensor:
        """Analog value forward, float gradient backward (see the module doc)."""
        if x.shape[0] == 0:
            return self._float_forward(x)  # an empty batch: nothing to convert
        if not torch.is_floating_point(x):
            raise ValueError(f"{type(self).__name__} expects floating-point inputs, got {x.dtype}")
        y_analog = self._analog_value(x, self.training and torch.is_grad_enabled())
        if torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad):
            y_float = self._float_forward(x)
            return y_float + (y_analog - y_float).detach()
        return y_analog

    @torch.compiler.disable
    def _analog_value(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        """The analog output (no gradient). Kept out of compiled graphs: the weight-version
        check and the noise generators need eager execution."""
        with torch.no_grad():
            if training:  # a fresh programming of the current weights (noise injection)
                if self.engine.physics.levels.device != self.weight.device:
                    self.engine.physics.to(self.weight.device)
                y = self._run(x.detach(), self.engine.training_compile(self.weight))
            else:
                self._ensure_programmed()
                y = self._run(x.detach(), None)
        return y

    def _run(self, x: torch.Tensor, compiled: CompiledTiles | None) -> torch.Tensor:
        """The engine's output for ``x`` (bias included) with ``compiled`` (None: the programmed tiles)."""
        raise NotImplementedError

    def _float_forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # ------------------------------------------------------------------ state dict
    def get_extra_state(self) -> dict:
        return {
            "version": EXTRA_STATE_VERSION,
            "config": self.config.to_dict(),
            "seed": self.seed,
            "table_fingerprint": self.table_fingerprint,
        }

    def set_extra_state(self, state: dict) -> None:
        name = type(self).__name__
        if not isinstance(state, dict) or state.get("version") not in (1, EXTRA_STATE_VERSION):
            raise ValueError(f"{name}: unknown extra state {state!r} in the state dict")
        fp = state.get("table_fingerprint")
        if fp is None:
            warnings.warn(
                f"{name}: the state dict has no device-table fingerprint (saved by an older "
                "rramsim); cannot check that it was made with this table",
                stacklevel=3,
            )
        elif fp != self.table_fingerprint:
            raise ValueError(
                f"{name}: the state dict was saved from a layer on device table {fp}, this layer "
                f"runs on table {self.table_fingerprint}; convert the model with the table the "
                "state dict was made with (rramsim.models.table_fingerprint tells tables apart)"
            )
        config = CrossbarConfig.from_dict(state["config"])
        self._seed = _check_seed(state["seed"])
        self.set_hardware(self.table, config)  # programmed again (same seed) before the next forward

    # ------------------------------------------------------------------ pickling
    def __deepcopy__(self, memo):
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        new.__dict__.update({k: copy.deepcopy(v, memo) for k, v in self.__dict__.items()})
        return new

    def __getstate__(self) -> dict:
        """Pickle (``torch.save(model)``) keeps the float module, the table as tensors and
        plain dicts, the config and the seed; the cells are programmed again (same seed)
        after loading. Loadable with ``weights_only=True`` once the module classes are
        registered (see :func:`rramsim.models.safe_globals`)."""
        state = {k: v for k, v in self.__dict__.items() if k not in ("engine", "_table_fp")}
        state["_programmed_key"] = None
        if "_kernel_cache" in state:
            state["_kernel_cache"] = []
        state["_rramsim_hardware"] = {"table": _table_to_plain(self.table), "config": self.config.to_dict()}
        return state

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        hw = state.pop("_rramsim_hardware")
        nn.Module.__setstate__(self, state)
        self.set_hardware(_table_from_plain(hw["table"]), CrossbarConfig.from_dict(hw["config"]))

    def extra_repr(self) -> str:
        c = self.config
        return (
            super().extra_repr() + f", mapping={c.mapping}, tile={c.tile_rows}x{c.tile_cols}, "
            f"dac_bits={c.dac_bits}, adc_bits={c.adc_bits}, ir_drop={c.ir_drop}, seed={self.seed}"
        )


class AnalogLinear(AnalogLayerMixin, nn.Linear):
    """``nn.Linear`` computed on RRAM crossbars described by ``table`` and ``config``;
    inputs ``[..., in_features]`` (every vector of the leading dimensions is one MVM).

    ``batch_dim``: the leading dimension that counts samples, for the cost model's vectors
    per sample (0; 1 for sequence-first inputs ``[T, B, ...]``, as the recurrent layers and
    ``batch_first=False`` transformer layers set it on their crossbar layers).
    """

    batch_dim = 0

    def __init__(
        self,
        in_features: int,
        out_features: int,
        table: DeviceTable,
        config: CrossbarConfig | None = None,
        bias: bool = True,
        seed: int = 0,
        device=None,
        dtype=None,
    ) -> None:
        _check_size("in_features", in_features)
        _check_size("out_features", out_features)
        nn.Linear.__init__(self, in_features, out_features, bias=bias, device=device, dtype=dtype)
        self._init_analog(table, config, seed)

    @classmethod
    def from_linear(
        cls,
        module: nn.Linear,
        table: DeviceTable,
        config: CrossbarConfig | None = None,
        seed: int = 0,
        program: bool = True,
    ) -> "AnalogLinear":
        """An analog copy of ``module`` (same weights, device and dtype), programmed."""
        layer = cls(
            module.in_features,
            module.out_features,
            table,
            config,
            bias=module.bias is not None,
            seed=seed,
            device=module.weight.device,
            dtype=module.weight.dtype,
        )
        return layer._copy_from(module, program)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 1 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"AnalogLinear expects inputs [..., in_features={self.in_features}], got shape {tuple(x.shape)}"
            )
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features) if x.dim() != 2 else x
        n, b = math.prod(lead), self.batch_dim
        self._vectors = n // lead[b] if len(lead) > b and lead[b] else n  # per sample
        y = self._forward_analog(x2)
        return y.reshape(*lead, self.out_features)

    def _float_forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)

    def _run(self, x: torch.Tensor, compiled: CompiledTiles | None) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.detach()
        return self.engine.run(x, vectors=getattr(self, "_vectors", 1), compiled=compiled, bias=bias)

    def to_digital(self) -> nn.Linear:
        """The plain ``nn.Linear`` with this layer's float weight and bias (the same Parameters)."""
        lin = nn.Linear(
            self.in_features,
            self.out_features,
            bias=self.bias is not None,
            device=self.weight.device,
            dtype=self.weight.dtype,
        )
        lin.weight = self.weight
        if self.bias is not None:
            lin.bias = self.bias
        lin.train(self.training)
        return lin


class _AnalogConvNd(AnalogLayerMixin):
    """Shared by the analog convolutions (computed as 2-D: a 1-D conv is one of height 1).

    Each output position is one MVM of the unrolled patch (``in_channels/groups * prod(k)``
    rows per group). Row tile ``t`` holds the rows of input channels ``c0..c1`` of its
    group, so its matrix becomes a kernel on those channels and the tile's currents are one
    (grouped) convolution; every group has its own tiles.
    """

    _nd = 2

    def _init_conv(self, table, config, seed) -> None:
        self._groups = self.groups
        explicit = isinstance(self.padding, str) or self.padding_mode != "zeros"
        pads = [int(p) for p in self._reversed_padding_repeated_twice]
        # (F.pad arguments, mode) applied before the analog convolution, or None
        self._pre_pad = (
            (pads, "constant" if self.padding_mode == "zeros" else self.padding_mode)
            if explicit and any(pads)
            else None
        )
        pad = (0,) * self._nd if explicit else tuple(self.padding)
        self._conv_args = self._as2d(self.stride, 1), self._as2d(pad, 0), self._as2d(self.dilation, 1)
        self._kernel_cache: list = []
        self._init_analog(table, config, seed)

    def _as2d(self, t, fill: int) -> tuple[int, int]:
        t = tuple(t)
        return (fill, *t) if self._nd == 1 else t

    @classmethod
    def _from(cls, module, table, config, seed, program):
        layer = cls(
            module.in_channels,
            module.out_channels,
            module.kernel_size,
            table,
            config,
            stride=module.stride,
            padding=module.padding,
            dilation=module.dilation,
            bias=module.bias is not None,
            seed=seed,
            device=module.weight.device,
            dtype=module.weight.dtype,
            groups=module.groups,
            padding_mode=module.padding_mode,
        )
        return layer._copy_from(module, program)

    def _kernel2d(self) -> torch.Tensor:
        return self.weight.unsqueeze(2) if self._nd == 1 else self.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nd = self._nd
        unbatched = x.dim() == nd + 1
        if x.dim() not in (nd + 1, nd + 2) or x.shape[-nd - 1] != self.in_channels:
            dims = "L" if nd == 1 else "H, W"
            raise ValueError(
                f"{type(self).__name__} expects inputs [B, in_channels={self.in_channels}, {dims}] "
                f"(or without B), got shape {tuple(x.shape)}"
            )
        if unbatched:
            x = x.unsqueeze(0)
        if self._pre_pad is not None:
            x = F.pad(x, self._pre_pad[0], mode=self._pre_pad[1])
        if nd == 1:
            x = x.unsqueeze(2)
        y = self._forward_analog(x)
        if nd == 1:
            y = y.squeeze(2)
        return y.squeeze(0) if unbatched else y

    def _float_forward(self, x: torch.Tensor) -> torch.Tensor:
        stride, pad, dil = self._conv_args
        return F.conv2d(x, self._kernel2d(), self.bias, stride, pad, dil, self.groups)

    def _run(self, x: torch.Tensor, compiled: CompiledTiles | None) -> torch.Tensor:
        h, w = self._out_hw(x)
        bias = None if self.bias is None else self.bias.detach()
        return self.engine.run(
            x, currents=self._currents, rows_of=self._patches, vectors=int(h * w), compiled=compiled, bias=bias
        )

    def _out_hw(self, x: torch.Tensor) -> tuple[int, int]:
        stride, pad, dil = self._conv_args
        k = self._kernel2d().shape[2:]
        return tuple((x.shape[2 + d] + 2 * pad[d] - dil[d] * (k[d] - 1) - 1) // stride[d] + 1 for d in (0, 1))

    # ------------------------------------------------------------------ tile kernels
    def _kernels(self, mats: list) -> list[tuple[int, int, torch.Tensor]]:
        """Per row tile (c0, c1, kernel [G*cols_g, (1 or 3)*(c1-c0), kh, kw]); with the
        polynomial I-V the kernels of v, v^2 and v^3 are stacked along each group's input
        channels so one convolution does all three. Cached per set of matrices."""
        for key, kernels in self._kernel_cache:
            if len(key) == len(mats) and all(a is b for a, b in zip(key, mats)):
                return kernels
        per_mat = [self._tile_kernels(m) for m in mats]
        kernels = [
            (c0, c1, torch.cat([pm[t][2] for pm in per_mat], dim=1) if len(per_mat) > 1 else k)
            for t, (c0, c1, k) in enumerate(per_mat[0])
        ]
        self._kernel_cache = [(list(mats), kernels), *self._kernel_cache[:2]]  # (the IR-drop model adds two)
        return kernels

    def _tile_kernels(self, mat: torch.Tensor) -> list[tuple[int, int, torch.Tensor]]:
        """Per row tile: the input channels (within a group) its rows touch and its kernel on
        those channels (rows of other tiles zeroed)."""
        G = self.groups
        n_trG, R, cols_g = mat.shape
        n_tr = n_trG // G
        kshape = self._kernel2d().shape[2:]
        k_in = int(math.prod(kshape))  # rows per input channel
        rows = self.engine.rows
        m = mat.reshape(n_tr, G, R, cols_g)
        out = []
        for t in range(n_tr):
            r0, r1 = t * R, min((t + 1) * R, rows)
            c0, c1 = r0 // k_in, (r1 - 1) // k_in + 1
            full = torch.zeros(G, (c1 - c0) * k_in, cols_g, dtype=mat.dtype, device=mat.device)
            full[:, r0 - c0 * k_in : r1 - c0 * k_in] = m[t, :, : r1 - r0]
            kernel = full.transpose(1, 2).reshape(G * cols_g, c1 - c0, *kshape).contiguous()
            out.append((c0, c1, kernel))
        return out

    def _currents(self, v: torch.Tensor, mats: list) -> list[torch.Tensor]:
        """Tile currents of input voltages [B, C, H, W]: one [B, out*S, H, W] per row tile."""
        stride, pad, dil = self._conv_args
        G = self.groups
        in_g = self.in_channels // G
        ys = []
        for c0, c1, k in self._kernels(mats):
            if c0 == 0 and c1 == in_g:
                vt = v
            elif G == 1:
                vt = v[:, c0:c1]
            else:
                vt = v.reshape(v.shape[0], G, in_g, *v.shape[2:])[:, :, c0:c1].reshape(v.shape[0], -1, *v.shape[2:])
            if len(mats) > 1:
                vg = vt.reshape(vt.shape[0], G, -1, *vt.shape[2:])
                sq = vg * vg
                vt = torch.cat([vg, sq, sq * vg], dim=2).reshape(vt.shape[0], -1, *vt.shape[2:])
            ys.append(F.conv2d(vt, k, None, stride, pad, dil, G))
        return ys

    def _patches(self, volts: torch.Tensor):
        """Unrolled patches [B*L, G*rows] for the exact solver, and the map of their
        currents [B*L, n_tr, cols] back to [B, n_tr, cols, H, W]."""
        stride, pad, dil = self._conv_args
        B = volts.shape[0]
        patches = F.unfold(volts, self._kernel2d().shape[2:], dil, pad, stride)  # [B, rows, L]
        L = patches.shape[-1]
        H, W = self._out_hw(volts)

        def back(cur: torch.Tensor) -> torch.Tensor:
            return cur.reshape(B, H, W, cur.shape[1], -1).permute(0, 3, 4, 1, 2)

        return patches.transpose(1, 2).reshape(B * L, -1), back

    def to_digital(self) -> nn.Module:
        """The plain torch convolution with this layer's float weight and bias (the same Parameters)."""
        base = nn.Conv1d if self._nd == 1 else nn.Conv2d
        conv = base(
            self.in_channels,
            self.out_channels,
            self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            groups=self.groups,
            bias=self.bias is not None,
            padding_mode=self.padding_mode,
            device=self.weight.device,
            dtype=self.weight.dtype,
        )
        conv.weight = self.weight
        if self.bias is not None:
            conv.bias = self.bias
        conv.train(self.training)
        return conv


class AnalogConv2d(_AnalogConvNd, nn.Conv2d):
    """``nn.Conv2d`` computed on RRAM crossbars (any stride, dilation, groups, padding and
    padding mode): each output pixel is one MVM of the unrolled patch per group."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        table: DeviceTable,
        config: CrossbarConfig | None = None,
        stride=1,
        padding=0,
        dilation=1,
        bias: bool = True,
        seed: int = 0,
        device=None,
        dtype=None,
        groups: int = 1,
        padding_mode: str = "zeros",
    ) -> None:
        _check_size("in_channels", in_channels)
        _check_size("out_channels", out_channels)
        nn.Conv2d.__init__(
            self,
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
            padding_mode=padding_mode,
            device=device,
            dtype=dtype,
        )
        self._init_conv(table, config, seed)

    @classmethod
    def from_conv(
        cls,
        module: nn.Conv2d,
        table: DeviceTable,
        config: CrossbarConfig | None = None,
        seed: int = 0,
        program: bool = True,
    ) -> "AnalogConv2d":
        """An analog copy of ``module`` (same weights, hyper-parameters, device and dtype), programmed."""
        return cls._from(module, table, config, seed, program)


class AnalogConv1d(_AnalogConvNd, nn.Conv1d):
    """``nn.Conv1d`` computed on RRAM crossbars (any stride, dilation, groups, padding and
    padding mode): each output position is one MVM of the unrolled window per group."""

    _nd = 1

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        table: DeviceTable,
        config: CrossbarConfig | None = None,
        stride=1,
        padding=0,
        dilation=1,
        bias: bool = True,
        seed: int = 0,
        device=None,
        dtype=None,
        groups: int = 1,
        padding_mode: str = "zeros",
    ) -> None:
        _check_size("in_channels", in_channels)
        _check_size("out_channels", out_channels)
        nn.Conv1d.__init__(
            self,
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
            bias=bias,
            padding_mode=padding_mode,
            device=device,
            dtype=dtype,
        )
        self._init_conv(table, config, seed)

    @classmethod
    def from_conv(
        cls,
        module: nn.Conv1d,
        table: DeviceTable,
        config: CrossbarConfig | None = None,
        seed: int = 0,
        program: bool = True,
    ) -> "AnalogConv1d":
        """An analog copy of ``module`` (same weights, hyper-parameters, device and dtype), programmed."""
        return cls._from(module, table, config, seed, program)


# ---------------------------------------------------------------------- helpers
def _table_to_plain(table: DeviceTable) -> dict:
    """The table's fields as tensors, plain dicts and strings (safe for ``weights_only`` loading)."""
    out = {}
    for f in fields(table):
        v = getattr(table, f.name)
        out[f.name] = torch.from_numpy(np.array(v)) if isinstance(v, np.ndarray) else copy.deepcopy(v)
    return out


def _table_from_plain(data: dict) -> DeviceTable:
    return DeviceTable(**{k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in data.items()})


def _check_size(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)
