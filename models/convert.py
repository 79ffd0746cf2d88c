"""convert_to_analog: swap a model's weight layers for crossbar versions, and back.

Conversion walks the model from the top. A module whose type has a registered converter
(:func:`register_converter`; built in: ``nn.Linear``, ``nn.Conv1d``, ``nn.Conv2d``) is
replaced by its analog version and its children are not visited; an analog layer that is
already there is moved to the new table/config. Everything else that holds a weight
matrix (``nn.Conv3d``, ``nn.Bilinear``, a layer without a converter, an ``nn.Embedding``
table: a lookup, whose weights stay in digital memory, or a custom module's parameter of
two or more dimensions) stays digital and is reported: by a warning, by
:func:`conversion_report`, and as an error with ``strict=True``. Parameters that act
elementwise are digital work, not weight matrices, and never make ``strict`` fail:
biases, norms' affine, and a custom module's parameters shaped ``[1, ...]`` (broadcast
over the batch: a position embedding added to the activations, a class token); the
report counts them. Modules whose own
forward would bypass converted children (``nn.MultiheadAttention`` reads its projection
weights directly; the transformer layers' fused fast path) are never converted piecewise:
they stay digital as a whole until a converter for them is registered.

Guarantees: the conversion is atomic (an error leaves an ``inplace`` model as it was and
names the module's path); a module referenced twice stays one shared analog module, and
an analog layer keeps its float module's Parameters (so weights tied between modules stay
tied); a model in which nothing ends up analog is an error. The converted model is
programmed (each layer with its own seed derived from ``seed``) and keeps the float
weights, so it can be programmed again with :func:`program_analog` or
``model.program(seed=...)``; :func:`to_digital` gives the plain torch model back.
"""

from __future__ import annotations

import copy
import fnmatch
import warnings
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

from rramsim.devices import DeviceTable
from rramsim.models.config import CrossbarConfig
from rramsim.models.layers import (
    AnalogConv1d,
    AnalogConv2d,
    AnalogLayerMixin,
    AnalogLinear,
    _check_seed,
    checked_inputs,
)
from rramsim.models.programming import combined_latency

#: factory(module, table, config, name) -> the analog module (not yet programmed)
Converter = Callable[[nn.Module, DeviceTable, CrossbarConfig, str], nn.Module]

_CONVERTERS: list[tuple[type, Converter]] = []

# modules whose forward bypasses their children: converted whole (with a converter) or not at all
_OPAQUE = {
    nn.MultiheadAttention: "its forward reads in_proj_weight and out_proj.weight directly (a converted out_proj "
    "would never run)",
    nn.TransformerEncoderLayer: "torch's fused fast path bypasses its Linear children in eval/no_grad",
    nn.TransformerDecoderLayer: "its attention reads projection weights directly",
}


def register_converter(torch_type: type, factory: Converter) -> None:
    """Convert every module of ``torch_type`` with ``factory(module, table, config, name)``,
    which returns the analog module, not yet programmed (``convert_to_analog`` programs all
    analog layers afterwards with per-layer seeds); ``name`` is the module's path, for error
    messages. A module matches its own type, or a subclass of it that does not override
    ``forward``. A later registration for the same type replaces the earlier one."""
    if not (isinstance(torch_type, type) and issubclass(torch_type, nn.Module)):
        raise TypeError(f"register_converter needs an nn.Module subclass, got {torch_type!r}")
    if not callable(factory):
        raise TypeError(f"register_converter needs a callable factory, got {factory!r}")
    _CONVERTERS[:] = [(t, f) for t, f in _CONVERTERS if t is not torch_type]
    _CONVERTERS.append((torch_type, factory))


def registered_converters() -> list[tuple[type, Converter]]:
    """(torch type, factory) pairs in registration order."""
    return list(_CONVERTERS)


register_converter(nn.Linear, lambda m, table, config, name: AnalogLinear.from_linear(m, table, config, program=False))
register_converter(nn.Conv1d, lambda m, table, config, name: AnalogConv1d.from_conv(m, table, config, program=False))
register_converter(nn.Conv2d, lambda m, table, config, name: AnalogConv2d.from_conv(m, table, config, program=False))


def _converter_for(module: nn.Module) -> Converter | None:
    for t, f in reversed(_CONVERTERS):
        if type(module) is t:
            return f
    for t, f in reversed(_CONVERTERS):
        if isinstance(module, t) and type(module).forward is t.forward:
            return f
    return None


def _is_analog(module: nn.Module) -> bool:
    return isinstance(module, AnalogLayerMixin)


# torch layers that multiply their inputs by a weight matrix (or, Embedding, look rows of one up)
_MATRIX_LAYERS = (
    nn.Linear,
    nn.Bilinear,
    nn.modules.conv._ConvNd,
    nn.RNNBase,
    nn.RNNCellBase,
    nn.MultiheadAttention,
    nn.Embedding,
    nn.EmbeddingBag,
)


def _is_matrix(module: nn.Module, p: torch.Tensor) -> bool:
    """Whether ``module``'s own parameter ``p`` is a weight matrix. Every parameter of two or
    more dimensions of a torch matrix layer is (an Embedding's table too: a lookup, no
    crossbar MVM, but its weights stay in digital memory and count); in a module of another
    kind, one whose first dimension is not 1. A parameter shaped ``[1, ...]`` broadcasts over
    the batch: it is added to (or multiplies) activations elementwise, like a position
    embedding or a class token, and is digital elementwise work, not a weight matrix."""
    if p is None or p.dim() < 2:
        return False
    return isinstance(module, _MATRIX_LAYERS) or p.shape[0] != 1


def _weight_bearing(module: nn.Module) -> bool:
    """Holds a weight matrix itself (see :func:`_is_matrix`); such a module left digital is
    reported, and refused with ``strict=True``."""
    return any(_is_matrix(module, p) for p in module.parameters(recurse=False))


def _elementwise_params(module: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """``module``'s own parameters that are not weight matrices (biases, norms' affine,
    position embeddings, scales): digital elementwise work."""
    return [(n, p) for n, p in module.named_parameters(recurse=False) if p is not None and not _is_matrix(module, p)]


def _digital_reason(module: nn.Module) -> str:
    for t, why in _OPAQUE.items():
        if isinstance(module, t):
            return f"{why}; no analog converter registered for {t.__name__}"
    if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
        return "a lookup table (rows are selected, not multiplied): no crossbar MVM"
    return f"no analog converter for {type(module).__name__} (rramsim.models.register_converter)"


def analog_layers(model: nn.Module) -> list[tuple[str, AnalogLayerMixin]]:
    """(name, layer) of every analog layer of ``model``, in module order (shared ones once)."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, AnalogLayerMixin)]


def _name_engine(name: str, layer: AnalogLayerMixin) -> None:
    """Let the layer's messages (a fallback warning, a bad weight) name it by its path in the model."""
    engine = getattr(layer, "engine", None)
    if engine is not None and name:
        engine.name = f"{name} ({type(layer).__name__})"


def layer_seeds(seed: int, n: int) -> list[int]:
    """Independent per-layer seeds derived from one model seed (numpy SeedSequence)."""
    children = np.random.SeedSequence(int(seed)).spawn(n)
    return [int(c.generate_state(1, dtype=np.uint32)[0]) for c in children]


# --------------------------------------------------------------------------- planning
@dataclass
class _Plan:
    convert: dict  # id(module) -> [module, first name, [(parent, attr), ...], factory]
    retarget: list  # (name, analog layer) already analog
    digital: dict  # name -> (module, reason) weight-bearing modules left digital
    excluded: dict  # name -> (module, pattern)


def _plan(model: nn.Module, exclude: tuple[str, ...]) -> _Plan:
    plan = _Plan({}, [], {}, {})
    seen: set[int] = set()
    used_patterns: set[str] = set()

    def excluded_by(name: str) -> str | None:
        for pat in exclude:
            if name == pat or fnmatch.fnmatchcase(name, pat):
                used_patterns.add(pat)
                return pat
        return None

    def decide(module: nn.Module, name: str) -> bool:
        """Classify ``module``; True if its children are to be visited."""
        pat = excluded_by(name) if name else None
        if pat is not None:
            plan.excluded[name] = (module, pat)
            return False
        if _is_analog(module):
            plan.retarget.append((name, module))
            return False
        factory = _converter_for(module)
        if factory is not None:
            plan.convert[id(module)] = [module, name, [], factory]
            return False
        if any(isinstance(module, t) for t in _OPAQUE):
            plan.digital[name] = (module, _digital_reason(module))
            return False
        if _weight_bearing(module):
            plan.digital[name] = (module, _digital_reason(module))
        return True

    def visit(module: nn.Module, prefix: str) -> None:
        for attr, child in module._modules.items():
            if child is None:
                continue
            name = f"{prefix}.{attr}" if prefix else attr
            if id(child) in seen:
                if id(child) in plan.convert:
                    plan.convert[id(child)][2].append((module, attr))
                continue
            seen.add(id(child))
            if decide(child, name):
                visit(child, name)
            if id(child) in plan.convert:
                plan.convert[id(child)][2].append((module, attr))

    seen.add(id(model))
    if decide(model, ""):
        visit(model, "")
    unused = [p for p in exclude if p not in used_patterns]
    if unused:
        raise ValueError(
            f"exclude pattern(s) {unused} match no module of the model; module names look like "
            f"{[n for n, _ in model.named_modules() if n][:6]}"
        )
    return plan


def _label(name: str, module: nn.Module) -> str:
    return f"'{name or '<model>'}' ({type(module).__name__})"


# --------------------------------------------------------------------------- conversion
def convert_to_analog(
    model: nn.Module,
    table: DeviceTable,
    config: CrossbarConfig | None = None,
    seed: int = 0,
    inplace: bool = False,
    exclude: Iterable[str] = (),
    strict: bool = False,
) -> nn.Module:
    """A copy of ``model`` (or ``model`` itself with ``inplace=True``) whose weight layers
    run on crossbars, programmed with ``seed``.

    ``exclude``: module names or fnmatch patterns (``"head"``, ``"blocks.*.fc2"``) left
    digital with their whole subtree (a pattern matching nothing is an error).
    ``strict=True``: a ``ValueError`` naming every weight-bearing module that would stay
    digital (excluded ones aside); otherwise they are listed in a warning. Layers that
    already are analog move to the new table/config. The model gets a
    ``program(seed=...)`` method (unless it has one) that calls :func:`program_analog`.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"convert_to_analog expects a torch.nn.Module, got {type(model).__name__}")
    config = checked_inputs(table, config)
    seed = _check_seed(seed)
    if isinstance(exclude, str):
        exclude = (exclude,)
    exclude = tuple(exclude)
    if not all(isinstance(p, str) for p in exclude):
        raise TypeError(f"exclude must be module names or fnmatch patterns (strings), got {exclude!r}")
    if inplace and any(p.is_inference() for p in model.parameters()):
        raise ValueError(
            "convert_to_analog(inplace=True): the model's parameters are inference tensors (the model "
            "was built or loaded inside torch.inference_mode()), which the analog layers cannot take "
            "over; convert with inplace=False (a copy with ordinary tensors), or build the model "
            "outside inference_mode"
        )
    # the analog layers track their weights' versions and may later run with gradients: their
    # tensors (and the copy of the model) must be ordinary ones, also when called inside
    # torch.inference_mode()
    with torch.inference_mode(False):
        return _convert(model, table, config, seed, inplace, exclude, strict)


def _convert(
    model: nn.Module,
    table: DeviceTable,
    config: CrossbarConfig,
    seed: int,
    inplace: bool,
    exclude: tuple[str, ...],
    strict: bool,
) -> nn.Module:
    if not inplace:
        model = copy.deepcopy(model)
    plan = _plan(model, exclude)
    left = [f"{_label(n, m)}: {why}" for n, (m, why) in plan.digital.items()]
    if strict and left:
        raise ValueError(
            "convert_to_analog(strict=True): these weight-bearing modules would stay digital:\n  "
            + "\n  ".join(left)
            + "\n(exclude them explicitly, or register a converter)"
        )
    if not plan.convert and not plan.retarget:
        what = "\n  ".join(left + [f"{_label(n, m)}: excluded by {p!r}" for n, (m, p) in plan.excluded.items()])
        raise ValueError(
            f"convert_to_analog: nothing in this {type(model).__name__} can run on crossbars"
            + (f"; it holds:\n  {what}" if what else " (it has no weight layers)")
        )

    # build every analog module first (nothing in the model changes yet)
    built = []
    for module, name, refs, factory in plan.convert.values():
        try:
            new = factory(module, table, config, name)
        except Exception as err:
            kind = TypeError if isinstance(err, TypeError) else ValueError
            raise kind(f"cannot convert {_label(name, module)}: {err}") from err
        if not isinstance(new, nn.Module):
            raise TypeError(
                f"the converter for {type(module).__name__} returned {type(new).__name__}, "
                f"not an nn.Module (converting {_label(name, module)})"
            )
        _share_parameters(module, new)
        built.append((name, module, new, refs))

    # swap, retarget and program; any error undoes it all
    root = model
    undo_swaps, undo_hw = [], []
    try:
        for name, module, new, refs in built:
            if not name:
                root = new
            for parent, attr in refs:
                undo_swaps.append((parent, attr, module))
                parent._modules[attr] = new
        for name, layer in plan.retarget:
            undo_hw.append((layer, layer.table, layer.config, layer.seed, layer.is_programmed))
            layer.set_hardware(table, config)
        layers = analog_layers(root)
        for (name, layer), s in zip(layers, layer_seeds(seed, len(layers))):
            _name_engine(name, layer)
            try:
                layer.program(seed=s)
            except Exception as err:
                raise ValueError(f"cannot program {_label(name, layer)}: {err}") from err
    except BaseException:
        for parent, attr, module in reversed(undo_swaps):
            parent._modules[attr] = module
        for layer, old_table, old_config, old_seed, was_programmed in undo_hw:
            layer.set_hardware(old_table, old_config)
            layer.seed = old_seed
            if was_programmed:
                layer.program()
        raise
    if left:
        warnings.warn(
            f"convert_to_analog: {len(left)} weight-bearing module(s) stay digital:\n  "
            + "\n  ".join(left)
            + "\n(conversion_report(model) lists them; strict=True makes this an error)",
            stacklevel=3,
        )
    root._rramsim_left_digital = {n: why for n, (m, why) in plan.digital.items()} | {
        n: f"excluded by {p!r}" for n, (m, p) in plan.excluded.items()
    }
    if not hasattr(root, "program"):
        root.program = _ProgramMethod(root)
    register_safe_globals(*{type(m) for m in root.modules()})  # whole-model torch.load in this process
    return root


def _share_parameters(old: nn.Module, new: nn.Module) -> None:
    """Let ``new`` use ``old``'s own Parameter objects where names and shapes agree (keeps
    weights tied between modules tied, and the optimizer's references valid)."""
    for pname, p in old.named_parameters(recurse=False):
        q = new._parameters.get(pname) if hasattr(new, "_parameters") else None
        if p is not None and q is not None and q.shape == p.shape and q.dtype == p.dtype:
            new._parameters[pname] = p


def program_analog(model: nn.Module, seed: int = 0) -> dict:
    """Program every analog layer of ``model`` again (per-layer seeds derived from ``seed``);
    returns the total programming cost (pulses, energy, latency, stuck cells)."""
    layers = analog_layers(model)
    if not layers:
        raise ValueError("the model has no analog layers; convert it with convert_to_analog first")
    for (name, layer), s in zip(layers, layer_seeds(seed, len(layers))):
        _name_engine(name, layer)
        layer.program(seed=s)
    return programming_summary(model)


def programming_summary(model: nn.Module) -> dict:
    """Total programming cost of the model's last programming: sums over layers, and the
    latency of writing all their tiles (together or one after another, as the config's
    ``parallel_tile_writes`` says)."""
    total = {"cells": 0, "tiles": 0, "pulses": 0.0, "energy": 0.0, "latency": 0.0, "stuck": 0}
    per_tile, parallel = [], True
    for _, layer in analog_layers(model):
        for key in total:
            if key != "latency":
                total[key] += layer.program_stats.get(key, 0)
        per_tile.extend(layer.program_stats.get("tile_latency", []))
        parallel = layer.config.parallel_tile_writes
    total["latency"] = combined_latency(per_tile, parallel)
    return total


def set_drift_time(model: nn.Module, t: float) -> None:
    """Evaluate every analog layer ``t`` seconds after programming."""
    for _, layer in analog_layers(model):
        layer.set_drift_time(t)


class _ProgramMethod:
    """``model.program(seed=...)`` for a converted model (picklable, deep-copyable)."""

    def __init__(self, model: nn.Module) -> None:
        self._model_ref = [model]

    def __call__(self, seed: int = 0) -> dict:
        return program_analog(self._model_ref[0], seed)

    def __deepcopy__(self, memo):
        new_model = memo.get(id(self._model_ref[0]))
        return _ProgramMethod(new_model if new_model is not None else self._model_ref[0])


# --------------------------------------------------------------------------- whole-model pickles
def register_safe_globals(*classes: type) -> list[type]:
    """Allowlist module classes for ``torch.load(path)`` with torch's default
    ``weights_only=True``: every ``nn.Module`` class of rramsim imported so far, torch's own
    ``torch.nn`` module classes and ``classes`` (your model's own classes). Runs on import of
    ``rramsim.models``; call it again with your classes (or after importing more rramsim
    modules) before loading a whole pickled model. Analog layers pickle their table as
    tensors and plain dicts and are programmed again (same seed) after loading."""
    found: set[type] = {_ProgramMethod, *classes}
    stack = [nn.Module]
    while stack:
        for sub in stack.pop().__subclasses__():
            stack.append(sub)
            mod = sub.__module__
            torch_nn = mod.startswith("torch.nn.modules.") and getattr(nn, sub.__name__, None) is sub
            if mod.startswith("rramsim.") or torch_nn:
                found.add(sub)
    ordered = sorted(found, key=lambda c: (c.__module__, c.__qualname__))
    torch.serialization.add_safe_globals(ordered)
    return ordered


# --------------------------------------------------------------------------- back to digital
def to_digital(model: nn.Module) -> nn.Module:
    """A copy of ``model`` as plain torch: every analog module replaced by its float module
    (``nn.Linear``/``nn.Conv1d``/``nn.Conv2d`` with the same hyper-parameters and the float
    weights; an analog module of another kind through its own ``to_digital()`` method).
    Sharing and tying are kept; the state dict loads into the original float model."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"to_digital expects a torch.nn.Module, got {type(model).__name__}")
    model = copy.deepcopy(model)
    done: dict[int, nn.Module | None] = {}

    def digital_of(m: nn.Module) -> nn.Module | None:
        fn = getattr(m, "to_digital", None)
        return fn() if callable(fn) else None

    def visit(module: nn.Module) -> None:
        for attr, child in list(module._modules.items()):
            if child is None:
                continue
            if id(child) not in done:
                done[id(child)] = digital_of(child)
                if done[id(child)] is None:
                    visit(child)
            if done[id(child)] is not None:
                module._modules[attr] = done[id(child)]

    root = digital_of(model)
    if root is None:
        root = model
        visit(model)
    for attr in ("_rramsim_left_digital",):
        root.__dict__.pop(attr, None)
    if isinstance(root.__dict__.get("program"), _ProgramMethod):
        del root.__dict__["program"]
    left = [n for n, m in root.named_modules() if _is_analog(m)]
    if left:
        raise TypeError(f"to_digital: {left} stay analog (their class has no to_digital() method)")
    return root


# --------------------------------------------------------------------------- report
@dataclass
class ConversionRow:
    name: str
    kind: str
    analog: bool
    params: int
    note: str
    matrix: bool = True  # False: elementwise parameters (a position embedding), not a weight matrix


@dataclass
class ConversionReport:
    """What of a model runs on crossbars and what stays digital: weight-bearing modules
    (:attr:`digital`), modules whose multi-dimensional parameters are elementwise
    (:attr:`elementwise`: a position embedding added to the activations) and, as one
    count, the other elementwise parameters (norms' affine, 1-D scales) of digital modules."""

    rows: list[ConversionRow]
    elementwise_params: int = 0  # 1-D parameters of digital modules (norms' affine, scales; not in rows)

    @property
    def analog(self) -> list[ConversionRow]:
        return [r for r in self.rows if r.analog]

    @property
    def digital(self) -> list[ConversionRow]:
        """Weight-bearing modules left digital (what ``strict=True`` refuses)."""
        return [r for r in self.rows if not r.analog and r.matrix]

    @property
    def elementwise(self) -> list[ConversionRow]:
        """Modules whose parameters of two or more dimensions are elementwise (digital work,
        not weight matrices: ``strict=True`` accepts them)."""
        return [r for r in self.rows if not r.analog and not r.matrix]

    @property
    def analog_params(self) -> int:
        return sum(r.params for r in self.analog)

    @property
    def digital_params(self) -> int:
        return sum(r.params for r in self.digital)

    def to_dict(self) -> dict:
        return {
            "rows": [r.__dict__ for r in self.rows],
            "analog_params": self.analog_params,
            "digital_params": self.digital_params,
            "elementwise_params": self.elementwise_params + sum(r.params for r in self.elementwise),
        }

    def __str__(self) -> str:
        w = max([len(r.name) for r in self.rows] + [6])
        k = max([len(r.kind) for r in self.rows] + [4])
        head = f"{'module':<{w}}  {'type':<{k}}  {'runs':<7}  {'params':>9}  note"
        lines = ["Conversion report", head, "-" * len(head)]
        for r in self.rows:
            runs = "analog" if r.analog else "DIGITAL" if r.matrix else "digital"
            lines.append(f"{r.name:<{w}}  {r.kind:<{k}}  {runs:<7}  {r.params:>9d}  {r.note}")
        total = self.analog_params + self.digital_params
        share = self.analog_params / total if total else 0.0
        lines.append(
            f"weights on crossbars: {self.analog_params} of {total} ({share:.1%}); "
            f"{len(self.digital)} weight-bearing module(s) digital"
        )
        elementwise = self.elementwise_params + sum(r.params for r in self.elementwise)
        if elementwise:
            lines.append(
                f"digital elementwise parameters (norms' affine, position embeddings, scales; not weight "
                f"matrices): {elementwise}"
            )
        return "\n".join(lines)


def conversion_report(model: nn.Module) -> ConversionReport:
    """Every analog layer (name, type, parameters, tiles) and every weight-bearing module
    left digital, with the reason (excluded, no converter, lookup table, ...)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"conversion_report expects a torch.nn.Module, got {type(model).__name__}")
    reasons = getattr(model, "_rramsim_left_digital", {}) or {}
    rows: list[ConversionRow] = []
    seen: dict[int, str] = {}
    other = [0]  # 1-D elementwise parameters of digital modules

    def count(m: nn.Module, recurse: bool) -> int:
        return sum(p.numel() for p in m.parameters(recurse=recurse))

    def visit(module: nn.Module, name: str) -> None:
        if id(module) in seen:
            for r in rows:
                if r.name == seen[id(module)]:
                    r.note += f"{'; ' if r.note else ''}also as '{name}'"
            return
        seen[id(module)] = name
        label = name or "<model>"
        if _is_analog(module):
            g = module.geometry()
            note = f"{g['tiles']} tiles" + (f", {g['groups']} groups" if g.get("groups", 1) > 1 else "")
            rows.append(ConversionRow(label, type(module).__name__, True, count(module, True), note))
            return
        if name in reasons and reasons[name].startswith("excluded"):
            if any(p.dim() >= 2 for p in module.parameters()):
                rows.append(ConversionRow(label, type(module).__name__, False, count(module, True), reasons[name]))
            return
        if any(isinstance(module, t) for t in _OPAQUE):
            rows.append(
                ConversionRow(
                    label, type(module).__name__, False, count(module, True), reasons.get(name, _digital_reason(module))
                )
            )
            return
        if _weight_bearing(module):
            why = reasons.get(name) or (
                _digital_reason(module)
                if _converter_for(module) is None
                else "not converted (convert_to_analog was not run on it)"
            )
            rows.append(ConversionRow(label, type(module).__name__, False, count(module, False), why))
        else:
            params = _elementwise_params(module)
            shaped = [(n, p) for n, p in params if p.dim() >= 2]
            if shaped:
                what = ", ".join(f"{n} {list(p.shape)}" for n, p in shaped)
                rows.append(
                    ConversionRow(
                        label,
                        type(module).__name__,
                        False,
                        sum(p.numel() for _, p in params),
                        f"elementwise, not a weight matrix: {what} (broadcast over the batch)",
                        matrix=False,
                    )
                )
            else:
                other[0] += sum(p.numel() for _, p in params)
        for attr, child in module._modules.items():
            if child is not None:
                visit(child, f"{name}.{attr}" if name else attr)

    visit(model, "")
    return ConversionReport(rows, other[0])


# attention, transformer layers, LSTM and GRU (AnalogLinear projections and gate matrices)
from rramsim.models.attention import CONVERTERS as _ATTENTION_CONVERTERS  # noqa: E402
from rramsim.models.recurrent import CONVERTERS as _RECURRENT_CONVERTERS  # noqa: E402

for _type, _factory in {**_ATTENTION_CONVERTERS, **_RECURRENT_CONVERTERS}.items():
    register_converter(_type, _factory)
register_safe_globals()  # whole-model torch.load(weights_only=True) of every class imported so far
