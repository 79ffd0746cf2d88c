"""Inference cost of a converted model: cycles, conversions, energy, latency, crossbars,
and the digital work left beside the crossbars.

One accounting, :class:`CostModel`: a design counts its periphery events (cycles, ADC and
DAC conversions, array reads) and the config prices them (energies from
:mod:`rramsim.models.energy` through :class:`~rramsim.models.config.CrossbarConfig`).
:func:`cost_report` counts them for rramsim's analog layers (:meth:`CostModel.layer_cost`);
a published method with a periphery of its own counts them its own way and prices them
with :meth:`CostModel.price` (FORMS' fragments: a subclass, the low-bit macro: a config).

Model (per layer, per inference of one sample):

- vectors: MVMs per sample, measured. With ``example_input`` the model runs once and every
  analog layer counts the input vectors it actually processed (all its calls together: a
  linear layer on ``[B, T, D]`` processes T vectors per sample, a convolution one per
  output position, a recurrent gate matrix one per time step), divided by the samples of
  the example. A layer that never ran processed none: it is named in the notes and in a
  warning (its tiles still count, its compute does not).
- cycles per MVM: ``dac_bits`` with ``bit_serial`` (one input bit per cycle), else 1;
  each cycle lasts ``cycle_time`` and every tile of the layer works in parallel, so the
  layer latency is vectors x cycles x cycle_time (ADCs are assumed fast enough to
  convert a tile's columns within a cycle, as in ISAAC).
- ADC conversions: per cycle, one per slice signal of every tile column
  (outputs x slices x row tiles). Energy ``adc_energy * 2^(adc_bits - 8)`` each
  (:func:`~rramsim.models.energy.adc_conversion_energy`).
- DAC conversions: per cycle, one per used row of every tile. Energy
  ``dac_energy`` per bit of resolution (1 bit when bit-serial).
- Array read energy: V^2 G t summed over cells: ``read_voltage^2 * mean(v^2) *
  sum(G) * cycle_time`` per cycle, where mean(v^2) is the mean squared normalized input
  seen in the measurement forward (1 if never measured).
- Grouped and depthwise convolutions: every group is its own block of tiles (the
  engine's geometry); all groups work in the same cycle, so their rows, columns and
  tiles add up.
- Crossbars: tiles needed versus ``n_crossbars`` available (one system: every layer
  must be configured with the same number). A layer with more tiles than are available
  computes in ``ceil(tiles / available)`` passes over its vectors. If the model does not
  fit, each inference (batch) needs ``ceil(needed / available)`` rounds of programming:
  every tile is rewritten once per batch, at the energy measured when it was programmed
  (the table's pulse energies) and, per round, the latency of writing its tiles under the
  config's ``program_parallelism`` and ``parallel_tile_writes``.

Digital work (not costed in energy, listed per sample): what the measurement forward
computed outside the crossbars. Modules are counted by forward hooks: a digital
``Linear``/``Conv``/RNN/``MultiheadAttention`` (left by conversion) in multiply-accumulates,
norms, activations and pooling in elements; a module with a ``digital_work()`` method
(the analog attention and recurrent blocks) reports its own (attention products,
softmax, gate arithmetic); arithmetic written inline in a ``forward`` (residual
additions, ``x.mean``) is counted by intercepting torch functions. Functions outside
the known list are named with their number of calls.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections import defaultdict
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence
from torch.overrides import TorchFunctionMode

from rramsim.models.config import CrossbarConfig
from rramsim.models.convert import analog_layers, programming_summary
from rramsim.models.energy import adc_conversion_energy
from rramsim.models.layers import AnalogLayerMixin
from rramsim.models.programming import combined_latency


@dataclass
class LayerCost:
    name: str
    kind: str
    tiles: int
    cells: int
    vectors: float  # MVMs per sample (an integer unless samples differ in length)
    cycles: int
    adc_conversions: float
    dac_conversions: float
    read_energy: float
    adc_energy: float
    dac_energy: float
    latency: float
    macs: float = 0.0  # weight multiply-accumulates per sample done on the crossbars
    groups: int = 1

    @property
    def energy(self) -> float:
        return self.read_energy + self.adc_energy + self.dac_energy


@dataclass(frozen=True)
class PeripheryCost:
    """Counted events and what they cost (:meth:`CostModel.price`): energies in J, latency in s."""

    cycles: float
    adc_conversions: float
    dac_conversions: float
    read_energy: float
    adc_energy: float
    dac_energy: float
    latency: float

    @property
    def energy(self) -> float:
        return self.read_energy + self.adc_energy + self.dac_energy


class CostModel:
    """The accounting of inference cost on crossbars: events counted, then priced.

    Events: cycles (``cycle_time`` each: the latency), ADC conversions (``adc_bits`` each,
    :func:`~rramsim.models.energy.adc_conversion_energy` of ``adc_energy``; none for an
    ideal ADC), DAC conversions (``dac_energy`` per bit they resolve: one when
    ``bit_serial``, ``dac_bits`` otherwise) and the array's read energy V^2 G t. The prices
    are the config's fields (defaults from :mod:`rramsim.models.energy`); the counting is
    the design's (the model keeps a copy of the config it was given). rramsim's analog layers are counted by :meth:`layer_cost` from their tile
    geometry (what :func:`cost_report` runs); a design with a periphery of its own counts
    its events and prices them with :meth:`price`: a subclass adds the counting (FORMS'
    fragments with input zero-skipping, :class:`rramsim.models.methods.forms.FragmentCost`),
    or a simulator counts while it runs (the low-bit macro's reads,
    :meth:`rramsim.models.methods.lowbit.Macro.cost` on
    :meth:`rramsim.models.methods.lowbit.MacroConfig.crossbar`).
    """

    def __init__(self, config: CrossbarConfig) -> None:
        if not isinstance(config, CrossbarConfig):
            raise TypeError(f"CostModel takes a CrossbarConfig, got {type(config).__name__}")
        config.validate()
        self.config = copy.copy(config)  # its own: changing the caller's config later moves no price

    @property
    def cycles_per_mvm(self) -> int:
        """Cycles of one matrix-vector product: one per input bit when bit-serial, else one."""
        c = self.config
        return c.dac_bits if c.bit_serial else 1

    @property
    def adc_conversion_energy(self) -> float:
        """J per ADC conversion (0 for an ideal ADC, ``adc_bits=None``)."""
        c = self.config
        return 0.0 if c.adc_bits is None else adc_conversion_energy(c.adc_bits, c.adc_energy)

    @property
    def dac_conversion_energy(self) -> float:
        """J per DAC conversion: ``dac_energy`` per bit it resolves."""
        c = self.config
        return c.dac_energy * (1 if c.bit_serial or c.dac_bits is None else c.dac_bits)

    def read_energy(self, g_sum: float, mean_v2: float = 1.0, cycles: float = 1) -> float:
        """Array read energy (J) of ``cycles`` cycles on cells whose conductances sum to
        ``g_sum`` (S), at mean squared input ``mean_v2`` (a share of full scale): V^2 G t."""
        c = self.config
        return c.read_voltage**2 * mean_v2 * g_sum * c.cycle_time * cycles

    def price(
        self,
        *,
        cycles: float = 0.0,
        adc_conversions: float = 0.0,
        dac_conversions: float = 0.0,
        read_energy: float = 0.0,
    ) -> PeripheryCost:
        """Energy and latency of counted events (cycles one after another)."""
        return PeripheryCost(
            cycles=cycles,
            adc_conversions=adc_conversions,
            dac_conversions=dac_conversions,
            read_energy=read_energy,
            adc_energy=adc_conversions * self.adc_conversion_energy,
            dac_energy=dac_conversions * self.dac_conversion_energy,
            latency=cycles * self.config.cycle_time,
        )

    def layer_cost(
        self, name: str, kind: str, geometry: dict, vectors: float, g_sum: float = 0.0, mean_v2: float = 1.0
    ) -> LayerCost:
        """An analog layer's cost per sample: ``vectors`` MVMs on its tiles (``geometry`` of
        :meth:`~rramsim.models.tile.TileEngine.geometry`), cells summing to ``g_sum``. Per
        cycle, one ADC conversion per slice signal of every tile column and one DAC
        conversion per used row of every tile; all tiles work in the same cycle, and a layer
        with more tiles than ``n_crossbars`` runs its vectors once per group of tiles."""
        c, geo = self.config, geometry
        cycles = self.cycles_per_mvm
        passes = 1 if c.n_crossbars is None else math.ceil(geo["tiles"] / c.n_crossbars)
        adc_conv = vectors * cycles * geo["outputs"] * geo["slices"] * geo["row_tiles"]
        dac_conv = vectors * cycles * geo["rows"] * geo["col_tiles"]
        return LayerCost(
            name=name,
            kind=kind,
            tiles=geo["tiles"],
            cells=geo["cells"],
            vectors=vectors,
            cycles=cycles,
            adc_conversions=adc_conv,
            dac_conversions=dac_conv,
            read_energy=self.read_energy(g_sum, mean_v2, cycles) * vectors,
            adc_energy=adc_conv * self.adc_conversion_energy,
            dac_energy=dac_conv * self.dac_conversion_energy,
            latency=vectors * cycles * c.cycle_time * passes,
            macs=vectors * geo["rows_per_group"] * geo["outputs"],
            groups=geo["groups"],
        )


@dataclass
class DigitalWork:
    """Work per sample done outside the crossbars by one module (or inline in its forward)."""

    name: str  # module path ('<model>' for the model itself)
    kind: str  # module type
    op: str  # 'forward' (the module itself), a function name, or a digital_work() key
    unit: str  # 'macs', 'elements', 'ops' or 'calls'
    count: float  # per sample ('calls': calls in the measurement forward)


@dataclass
class CostReport:
    """Per-layer and total inference cost (per sample), plus crossbar budget and
    reprogramming when the network does not fit, and the digital work left."""

    layers: list[LayerCost]
    crossbars_needed: int
    crossbars_available: int | None
    batch_size: int
    program_energy: float  # J, one full programming of the model
    program_latency: float  # s, one full programming (parallelism model of the config)
    program_pulses: float
    reprogram_rounds: int = 1  # programming rounds per batch (1: fits, programmed once)
    reprogram_energy: float = 0.0  # J per batch
    reprogram_latency: float = 0.0  # s per batch
    notes: list[str] = field(default_factory=list)
    digital: list[DigitalWork] = field(default_factory=list)
    samples: int | None = None  # samples of the measurement forward (None: not measured)
    never_ran: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return self.crossbars_available is None or self.crossbars_needed <= self.crossbars_available

    @property
    def energy(self) -> float:
        """J per sample, compute plus amortized reprogramming (crossbar side only)."""
        return sum(l.energy for l in self.layers) + self.reprogram_energy / self.batch_size

    @property
    def latency(self) -> float:
        """s per sample (layers one after another) plus amortized reprogramming."""
        return sum(l.latency for l in self.layers) + self.reprogram_latency / self.batch_size

    @property
    def analog_macs(self) -> float:
        return sum(l.macs for l in self.layers)

    @property
    def digital_macs(self) -> float:
        return sum(d.count for d in self.digital if d.unit == "macs")

    @property
    def digital_elements(self) -> float:
        return sum(d.count for d in self.digital if d.unit == "elements")

    def to_dict(self) -> dict:
        return {
            "layers": [l.__dict__ | {"energy": l.energy} for l in self.layers],
            "crossbars_needed": self.crossbars_needed,
            "crossbars_available": self.crossbars_available,
            "fits": self.fits,
            "batch_size": self.batch_size,
            "program_energy": self.program_energy,
            "program_latency": self.program_latency,
            "program_pulses": self.program_pulses,
            "reprogram_rounds": self.reprogram_rounds,
            "reprogram_energy": self.reprogram_energy,
            "reprogram_latency": self.reprogram_latency,
            "energy": self.energy,
            "latency": self.latency,
            "samples": self.samples,
            "analog_macs": self.analog_macs,
            "digital_macs": self.digital_macs,
            "digital_elements": self.digital_elements,
            "digital": [d.__dict__ for d in self.digital],
            "never_ran": list(self.never_ran),
            "notes": list(self.notes),
        }

    def __str__(self) -> str:
        return format_cost_report(self)


# ---------------------------------------------------------------------- measurement
# torch functions that only move or describe data: no arithmetic to count
_NO_WORK = {
    "get",
    "getitem",
    "setitem",
    "len",
    "iter",
    "bool",
    "format",
    "repr",
    "contains",
    "eq",
    "ne",
    "hash",
    "size",
    "dim",
    "numel",
    "nelement",
    "ndim",
    "shape",
    "is_floating_point",
    "is_complex",
    "is_contiguous",
    "is_nested",
    "stride",
    "storage_offset",
    "data_ptr",
    "element_size",
    "get_device",
    "device",
    "dtype",
    "tolist",
    "item",
    "reshape",
    "view",
    "view_as",
    "permute",
    "transpose",
    "t",
    "flatten",
    "unflatten",
    "squeeze",
    "unsqueeze",
    "contiguous",
    "expand",
    "expand_as",
    "unfold",
    "chunk",
    "split",
    "unbind",
    "cat",
    "concat",
    "stack",
    "narrow",
    "select",
    "index_select",
    "gather",
    "to",
    "type",
    "float",
    "double",
    "half",
    "detach",
    "clone",
    "cpu",
    "cuda",
    "new_zeros",
    "new_ones",
    "new_empty",
    "new_full",
    "zeros_like",
    "ones_like",
    "empty_like",
    "full_like",
    "requires_grad",
    "repeat",
    "tile",
    "movedim",
    "flip",
    "roll",
    "pad",
    "dropout",
    "alpha_dropout",
    "feature_alpha_dropout",
    "dropout1d",
    "dropout2d",
    "dropout3d",
    "identity",
    "masked_fill",
    "triu",
    "tril",
    "arange",
    "zeros",
    "ones",
    "full",
    "empty",
}
# the in-place and reflected spellings of the same arithmetic
_ALIASES = {
    "radd": "add",
    "iadd": "add",
    "rsub": "sub",
    "isub": "sub",
    "rmul": "mul",
    "imul": "mul",
    "truediv": "div",
    "rtruediv": "div",
    "itruediv": "div",
    "true_divide": "div",
    "divide": "div",
    "multiply": "mul",
    "subtract": "sub",
    "neg": "neg",
    "rpow": "pow",
    "ipow": "pow",
    "rmatmul": "matmul",
}
_REDUCTIONS = {
    "mean",
    "sum",
    "amax",
    "amin",
    "max",
    "min",
    "var",
    "std",
    "norm",
    "logsumexp",
    "prod",
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool3d",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "max_pool1d_with_indices",
    "max_pool2d_with_indices",
}
_ELEMENTWISE = {
    "add",
    "sub",
    "mul",
    "div",
    "neg",
    "pow",
    "exp",
    "log",
    "sqrt",
    "rsqrt",
    "abs",
    "clamp",
    "clip",
    "maximum",
    "minimum",
    "where",
    "relu",
    "relu6",
    "leaky_relu",
    "elu",
    "selu",
    "celu",
    "gelu",
    "silu",
    "mish",
    "hardswish",
    "hardsigmoid",
    "hardtanh",
    "sigmoid",
    "tanh",
    "softplus",
    "softmax",
    "log_softmax",
    "layer_norm",
    "batch_norm",
    "group_norm",
    "instance_norm",
    "rms_norm",
    "normalize",
    "sign",
    "round",
    "floor",
    "ceil",
    "cumsum",
    "interpolate",
    "square",
    "reciprocal",
    "addcmul",
    "lerp",
    "erf",
    "sin",
    "cos",
}
_MATMULS = {
    "matmul",
    "mm",
    "bmm",
    "baddbmm",
    "addmm",
    "linear",
    "bilinear",
    "conv1d",
    "conv2d",
    "conv3d",
    "einsum",
    "scaled_dot_product_attention",
}
_NO_WORK_MODULES = (
    nn.Identity,
    nn.Flatten,
    nn.Unflatten,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)


def _numel(t) -> int:
    if isinstance(t, torch.Tensor):
        return t.numel()
    if isinstance(t, PackedSequence):
        return t.data.numel()
    if isinstance(t, (tuple, list)):
        return sum(_numel(x) for x in t)
    return 0


def _first_tensor(t):
    if isinstance(t, torch.Tensor):
        return t
    if isinstance(t, PackedSequence):
        return t.data
    if isinstance(t, (tuple, list)):
        for x in t:
            found = _first_tensor(x)
            if found is not None:
                return found
    return None


def _fname(func) -> str:
    name = getattr(func, "__name__", str(func)).strip("_")
    name = name[:-1] if name.endswith("_") else name  # in-place: add_ -> add
    return _ALIASES.get(name, name)


def _function_work(name: str, args, kwargs, out) -> tuple[str, float] | None:
    """(unit, total count) of one torch function call; None when it does no arithmetic."""
    if name in _NO_WORK:
        return None
    if name in _MATMULS:
        n_out = _numel(out)
        if name in ("linear", "bilinear") and len(args) > 1 and isinstance(args[1], torch.Tensor):
            return "macs", n_out * args[1].shape[-1]
        if name.startswith("conv") and len(args) > 1 and isinstance(args[1], torch.Tensor):
            return "macs", n_out * args[1][0].numel()
        if name in ("matmul", "mm", "bmm", "baddbmm", "addmm"):
            a = args[-2] if name in ("baddbmm", "addmm") else args[0]
            if isinstance(a, torch.Tensor) and a.dim() >= 1:
                return "macs", n_out * a.shape[-1]
        return "calls", 1
    if name in _REDUCTIONS:
        return "elements", _numel(_first_tensor(args))
    if name in _ELEMENTWISE:
        return "elements", _numel(_first_tensor(out))
    return "calls", 1


def _module_work(module: nn.Module, args, out) -> list[tuple[str, str, float]]:
    """[(op, unit, total count)] of one call of a digital module (weights left digital in
    multiply-accumulates, everything else in elements)."""
    if isinstance(module, _NO_WORK_MODULES):
        return []
    n_out = _numel(out)
    if isinstance(module, nn.Linear):
        return [("forward", "macs", n_out * module.in_features)]
    if isinstance(module, nn.modules.conv._ConvNd):
        if module.transposed:
            x = _first_tensor(args)
            per_in = module.out_channels // module.groups * math.prod(module.kernel_size)
            return [("forward", "macs", _numel(x) * per_in)]
        return [("forward", "macs", n_out * (module.in_channels // module.groups) * math.prod(module.kernel_size))]
    if isinstance(module, nn.RNNBase):
        x = args[0] if args else None
        weights = sum(p.numel() for n, p in module.named_parameters() if n.startswith("weight"))
        if isinstance(x, PackedSequence):
            steps_x_batch = x.data.shape[0]  # sum of the sequence lengths
        elif isinstance(x, torch.Tensor):
            steps_x_batch = x.shape[0] * x.shape[1] if x.dim() == 3 else x.shape[0]
        else:
            return [("forward", "calls", 1)]
        # every gate matrix (all layers, both directions) once per time step of every sample
        return [("gate_macs", "macs", steps_x_batch * weights)]
    if isinstance(module, nn.MultiheadAttention):
        q, k = (args + (None, None))[:2]
        if not (isinstance(q, torch.Tensor) and isinstance(k, torch.Tensor)):
            return [("forward", "calls", 1)]
        E = module.embed_dim
        n_q, n_k = q.numel() // q.shape[-1], k.numel() // k.shape[-1]  # query / key vectors, all samples
        L = q.shape[1 if module.batch_first else 0] if q.dim() == 3 else q.shape[0]
        S = n_k // max(n_q // L, 1)  # source length
        proj = n_q * E * E + n_k * (module.kdim + module.vdim) * E + n_q * E * E
        return [("projection_macs", "macs", proj), ("attention_macs", "macs", 2 * n_q * S * E)]
    if isinstance(module, nn.Embedding):
        return [("lookups", "elements", n_out)]
    if isinstance(
        module,
        (
            nn.modules.pooling._MaxPoolNd,
            nn.modules.pooling._AvgPoolNd,
            nn.modules.pooling._AdaptiveAvgPoolNd,
            nn.modules.pooling._AdaptiveMaxPoolNd,
        ),
    ):
        return [("forward", "elements", _numel(_first_tensor(args)))]
    return [("forward", "elements", n_out)]


def _is_unit(module: nn.Module) -> bool:
    """A digital module counted as a whole by :func:`_module_work` (its children are not called)."""
    return isinstance(module, (nn.MultiheadAttention, nn.RNNBase))


class _Measurement(TorchFunctionMode):
    """Counts, during one forward: the vectors each analog layer processes, the digital work
    of the other modules, and the arithmetic written inline in module forwards."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.vectors: dict[int, int] = defaultdict(int)
        self.work: dict[tuple, float] = defaultdict(float)  # (name, kind, op, unit) -> total
        self.per_sample_work: dict[tuple, float] = defaultdict(float)
        self.stack: list[tuple[str, nn.Module, str]] = []  # (name, module, role)
        self.handles: list = []
        self.seq_batches: set[int] = set()  # batch sizes the sequence-first ([T, B, ...]) layers saw
        self._hook(model)

    def _hook(self, model: nn.Module) -> None:
        skip: list[str] = []
        for name, m in model.named_modules():
            if any(name == s or name.startswith(s + ".") for s in skip):
                continue
            if isinstance(m, AnalogLayerMixin):
                role = "analog"
                skip.append(name)
            elif callable(getattr(m, "digital_work", None)):
                role = "block"  # its own work; children hooked below
            elif _is_unit(m) or not any(True for _ in m.children()):
                role = "leaf"
                if _is_unit(m):
                    skip.append(name)
            else:
                role = "container"
            self.handles.append(m.register_forward_pre_hook(self._pre(name, m, role)))
            self.handles.append(m.register_forward_hook(self._post(name, m, role), always_call=True))

    def _pre(self, name, module, role):
        def hook(mod, args):
            self.stack.append((name, module, role))

        return hook

    def _post(self, name, module, role):
        label = name or "<model>"
        kind = type(module).__name__

        def hook(mod, args, out):
            if self.stack and self.stack[-1][1] is module:
                self.stack.pop()
            self._seq_batch(module, args)
            if role == "analog":
                t = _first_tensor(out)
                if t is not None:
                    self.vectors[id(module)] += t.numel() // module.weight.shape[0]
            elif role == "leaf" and not self._inside_opaque():
                for op, unit, count in _module_work(module, args, out):
                    self.work[(label, kind, op, unit)] += count
            elif role == "block":
                for op, count in module.digital_work().items():
                    unit = (
                        "macs"
                        if op.endswith("macs")
                        else "elements"
                        if op.endswith(("elements", "products"))
                        else "ops"
                    )
                    self.per_sample_work[(label, kind, op, unit)] += float(count)

        return hook

    def _seq_batch(self, module: nn.Module, args) -> None:
        """The batch a sequence-first layer read (an analog layer with ``batch_dim`` 1, a
        module with ``batch_first=False``): dimension 1 of a 3-D input, the first batch
        size of a packed sequence."""
        x = args[0] if args else None
        if getattr(module, "batch_dim", 0) == 1 or getattr(module, "batch_first", None) is False:
            if isinstance(x, PackedSequence):
                self.seq_batches.add(int(x.batch_sizes[0]))
            elif isinstance(x, torch.Tensor) and x.dim() == 3:
                self.seq_batches.add(int(x.shape[1]))

    def _inside_opaque(self) -> bool:
        return any(role in ("analog", "leaf") for _, _, role in self.stack)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.stack and self.stack[-1][2] == "container" and not self._inside_opaque():
            name, module, _ = self.stack[-1]
            fname = _fname(func)
            work = _function_work(fname, args, kwargs, out)
            if work is not None:
                self.work[(name or "<model>", type(module).__name__, fname, work[0])] += work[1]
        return out

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def _check_system(layers: list) -> None:
    """Every layer must describe the same system of crossbars (count and write parallelism)."""
    for attr in ("n_crossbars", "parallel_tile_writes"):
        by_value: dict = defaultdict(list)
        for name, layer in layers:
            by_value[getattr(layer.config, attr)].append(name or "<model>")
        if len(by_value) > 1:
            parts = "; ".join(f"{v!r}: {', '.join(names)}" for v, names in by_value.items())
            raise ValueError(
                f"cost_report: the analog layers disagree on CrossbarConfig.{attr} ({parts}); the cost "
                f"model is one system of crossbars: convert the model with one {attr}"
            )


def _check_samples(samples) -> None:
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 1):
        raise ValueError(f"samples must be a positive integer, got {samples!r}")


def _samples_of(example_input, seq_batches: set[int], notes: list[str]) -> int:
    """The samples of ``example_input``: its first dimension, unless the model's
    sequence-first layers all read another batch that is its second dimension (a
    sequence-first input ``[T, B, ...]``); anything else ambiguous is an error."""
    first = _first_tensor(example_input)
    if first is None or first.dim() == 0:
        raise ValueError("cost_report: cannot tell the number of samples of example_input; pass samples=N")
    n = int(first.shape[0])
    if not seq_batches or n in seq_batches:
        return n
    if len(seq_batches) == 1 and first.dim() >= 2 and int(first.shape[1]) in seq_batches:
        n = int(first.shape[1])
        notes.append(
            f"samples: {n}, dimension 1 of example_input {list(first.shape)}: the model reads it sequence "
            "first ([T, B, ...]) as its sequence-first layers do; pass samples=N to say otherwise"
        )
        return n
    raise ValueError(
        f"cost_report: cannot tell the number of samples of example_input {list(first.shape)}: its "
        f"sequence-first layers read batches of {sorted(seq_batches)}; pass samples=N"
    )


def _per_sample(total: float, samples: int) -> float:
    return total // samples if total % samples == 0 else total / samples


def cost_report(model: nn.Module, example_input=None, batch_size: int = 1, samples: int | None = None) -> CostReport:
    """Inference cost of ``model`` per sample.

    ``example_input`` (a batch, or a tuple of the forward's positional arguments) is run
    once, in eval mode and without gradients (the model's modes are restored after), to
    measure the vectors every analog layer processes (all its calls: every token of every
    sequence, every time step), the input statistics and the digital work; ``samples`` is
    how many samples it holds (default: its first dimension, or its second when the
    model's sequence-first layers, ``batch_first=False`` recurrences and transformer layers,
    read it as ``[T, B, ...]``; anything ambiguous asks for ``samples``). Without it, each
    layer's last forward is used: per sample, the vectors of its leading dimensions past
    the batch (``AnalogLinear.batch_dim``), and for a recurrence's state matrix its time
    steps. ``batch_size``: the batch the reprogramming of a model that does not fit is
    amortized over.
    """
    if hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):  # torch.compile wrapper
        model = model._orig_mod
    layers = analog_layers(model)
    if not layers:
        raise ValueError("the model has no analog layers; convert it with convert_to_analog first")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    _check_system(layers)
    notes: list[str] = []
    meas = None
    n_samples = None
    _check_samples(samples)
    if example_input is not None:
        args = tuple(example_input) if isinstance(example_input, (tuple, list)) else (example_input,)
        meas = _Measurement(model)
        modes = [(m, m.training) for m in model.modules()]
        model.eval()  # inference: batch norms keep their statistics, no dropout
        for _, layer in layers:
            layer.record_usage = True
        try:
            with torch.no_grad(), meas:
                model(*args)
        finally:
            meas.remove()
            for m, training in modes:
                m.training = training
            for _, layer in layers:
                layer.record_usage = False
        n_samples = samples if samples is not None else _samples_of(example_input, meas.seq_batches, notes)
    elif samples is not None:
        raise ValueError("samples is the number of samples of example_input; pass example_input too")
    rows = []
    never_ran = []
    needed = 0
    cfg = layers[0][1].config
    prog_energy = prog_pulses = 0.0
    tile_energy, tile_latency = [], []
    for name, layer in layers:
        label = name or "<model>"
        c = layer.config
        geo = layer.geometry()
        usage = layer.usage
        if meas is not None:
            total = meas.vectors.get(id(layer), 0)
            vectors = _per_sample(total, n_samples)
            if total == 0:
                never_ran.append(label)
        elif "vectors_per_sample" in usage:
            vectors = usage["vectors_per_sample"]
            if isinstance(layer, nn.Linear):
                notes.append(
                    f"{label}: vectors per sample from its last call ({vectors}), not measured; pass "
                    "example_input to count every call (sequences, time steps)"
                )
        elif isinstance(layer, nn.Linear):
            vectors = 1
            notes.append(f"{label}: has not run; one vector per sample assumed (pass example_input to measure)")
        else:
            raise ValueError(
                f"layer {label!r} is a convolution that has not run yet: pass example_input "
                "to cost_report (one batch of inputs)"
            )
        mean_v2 = usage.get("mean_v2", 1.0)
        if usage.get("adc_clipped", 0.0) > 0.01:
            notes.append(
                f"{label}: the ADC clipped {usage['adc_clipped']:.1%} of its conversions in the example "
                "input; raise adc_range (full scale as a share of the column's worst case)"
            )
        if "mean_v2" not in usage and vectors:
            notes.append(f"{label}: input statistics not measured, read energy assumes full-scale inputs")
        g_sum = layer.conductance_sum() if layer.is_programmed and vectors else 0.0
        rows.append(CostModel(c).layer_cost(label, type(layer).__name__, geo, vectors, g_sum, mean_v2))
        needed += geo["tiles"]
        st = layer.program_stats
        prog_energy += st.get("energy", 0.0)
        prog_pulses += st.get("pulses", 0.0)
        tile_energy.extend(list(st.get("tile_energy", [])))
        tile_latency.extend(list(st.get("tile_latency", [])))
    if never_ran:
        msg = (
            f"analog layer(s) that never ran in the measurement forward: {', '.join(never_ran)} (their tiles "
            "are counted, their compute is not; is the layer unused, or skipped by a fast path?)"
        )
        notes.append(msg)
        warnings.warn(f"cost_report: {msg}", RuntimeWarning, stacklevel=2)
    digital = []
    if meas is not None:
        digital = [
            DigitalWork(n, k, op, unit, total if unit == "calls" else _per_sample(total, n_samples))
            for (n, k, op, unit), total in meas.work.items()
            if total
        ]
        digital += [
            DigitalWork(n, k, op, unit, total) for (n, k, op, unit), total in meas.per_sample_work.items() if total
        ]
    prog_latency = programming_summary(model)["latency"]
    if any(math.isnan(x) for x in (prog_energy, prog_pulses, prog_latency)):
        notes.append(
            "programming cost unknown (nan): the device table does not record pulses, energy or time "
            "(a measured table imported without those columns)"
        )
    report = CostReport(
        layers=rows,
        crossbars_needed=needed,
        crossbars_available=cfg.n_crossbars,
        batch_size=batch_size,
        program_energy=prog_energy,
        program_latency=prog_latency,
        program_pulses=prog_pulses,
        notes=notes,
        digital=digital,
        samples=n_samples,
        never_ran=never_ran,
    )
    if not report.fits:
        avail = cfg.n_crossbars
        rounds = math.ceil(needed / avail)
        lat = sum(
            combined_latency(tile_latency[k : k + avail], cfg.parallel_tile_writes)
            for k in range(0, len(tile_latency), avail)
        )
        report.reprogram_rounds = rounds
        report.reprogram_energy = float(sum(tile_energy))
        report.reprogram_latency = float(lat)
        report.notes.append(
            f"needs {needed} crossbars, {avail} available: {rounds} programming rounds per batch of {batch_size}"
        )
    return report


def _g(x: float) -> str:
    return f"{x:.4g}" if isinstance(x, float) and x != int(x) else f"{int(x)}"


def format_cost_report(report: CostReport) -> str:
    """A readable table of the report."""
    nw = min(max([22] + [len(l.name) for l in report.layers]), 48)
    kw = max([13] + [len(l.kind) for l in report.layers])
    head = (
        f"{'layer':<{nw}} {'kind':<{kw}} {'tiles':>5} {'vectors':>7} {'cycles':>6} {'ADC conv':>10} "
        f"{'DAC conv':>10} {'read nJ':>9} {'ADC nJ':>9} {'DAC nJ':>9} {'latency us':>10}"
    )
    lines = ["Inference cost per sample", head, "-" * len(head)]
    for l in report.layers:
        lines.append(
            f"{l.name[-nw:]:<{nw}} {l.kind:<{kw}} {l.tiles:>5d} {_g(l.vectors):>7} {l.cycles:>6d} "
            f"{l.adc_conversions:>10.3g} {l.dac_conversions:>10.3g} {l.read_energy * 1e9:>9.4f} "
            f"{l.adc_energy * 1e9:>9.4f} {l.dac_energy * 1e9:>9.4f} {l.latency * 1e6:>10.3f}"
        )
    lines.append("-" * len(head))
    tot = report.layers
    lines.append(
        f"{'total':<{nw}} {'':<{kw}} {report.crossbars_needed:>5d} {'':>7} {'':>6} "
        f"{sum(l.adc_conversions for l in tot):>10.3g} {sum(l.dac_conversions for l in tot):>10.3g} "
        f"{sum(l.read_energy for l in tot) * 1e9:>9.4f} {sum(l.adc_energy for l in tot) * 1e9:>9.4f} "
        f"{sum(l.dac_energy for l in tot) * 1e9:>9.4f} {sum(l.latency for l in tot) * 1e6:>10.3f}"
    )
    avail = "unlimited" if report.crossbars_available is None else str(report.crossbars_available)
    lines.append(
        f"crossbars: {report.crossbars_needed} needed, {avail} available"
        + ("" if report.fits else f" -> {report.reprogram_rounds} reprogramming rounds per batch")
    )
    lines.append(
        f"programming (once): {report.program_pulses:.4g} pulses, {report.program_energy * 1e6:.4g} uJ, "
        f"{report.program_latency * 1e3:.4g} ms"
    )
    if not report.fits:
        lines.append(
            f"reprogramming per batch of {report.batch_size}: {report.reprogram_energy * 1e6:.4g} uJ, "
            f"{report.reprogram_latency * 1e3:.4g} ms"
        )
    lines.append(
        f"total per sample: {report.energy * 1e9:.4g} nJ, {report.latency * 1e6:.4g} us "
        "(crossbars and their converters; the digital work below is not costed)"
    )
    if report.samples is not None:
        lines.append("")
        lines.append(
            f"Digital work per sample (measured on {report.samples} samples): "
            f"{report.digital_macs:.4g} MACs, {report.digital_elements:.4g} elementwise ops, "
            f"beside {report.analog_macs:.4g} MACs on crossbars"
        )
        if report.digital:
            w = max(12, *(min(len(d.name), 40) for d in report.digital))
            k = max(6, *(min(len(d.kind), 32) for d in report.digital))
            lines.append(f"  {'module':<{w}}  {'type':<{k}}  {'operation':<24} {'count':>12}")
            for d in report.digital:
                lines.append(f"  {d.name[-w:]:<{w}}  {d.kind[:k]:<{k}}  {d.op[:24]:<24} {d.count:>12.4g} {d.unit}")
    lines.extend(f"note: {n}" for n in report.notes)
    return "\n".join(lines)
