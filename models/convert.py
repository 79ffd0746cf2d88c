"""convert_to_analog: swap every nn.Linear / nn.Conv2d of a model for its crossbar version.

The converted model is already programmed (each layer with its own seed derived from
``seed``), keeps the float weights (so it can be programmed again with
:func:`program_analog` or ``model.program(seed=...)``), and its state dict carries the
config of every analog layer.
"""
from __future__ import annotations

import copy

import numpy as np
from torch import nn

from rramsim.devices import DeviceTable
from rramsim.models.config import CrossbarConfig
from rramsim.models.layers import AnalogConv2d, AnalogLayerMixin, AnalogLinear, checked_inputs
from rramsim.models.programming import combined_latency


def analog_layers(model: nn.Module) -> list[tuple[str, AnalogLayerMixin]]:
    """(name, layer) of every analog layer of ``model``, in module order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, AnalogLayerMixin)]


def layer_seeds(seed: int, n: int) -> list[int]:
    """Independent per-layer seeds derived from one model seed (numpy SeedSequence)."""
    children = np.random.SeedSequence(int(seed)).spawn(n)
    return [int(c.generate_state(1, dtype=np.uint32)[0]) for c in children]


def convert_to_analog(model: nn.Module, table: DeviceTable, config: CrossbarConfig | None = None,
                      seed: int = 0, inplace: bool = False) -> nn.Module:
    """A copy of ``model`` (or ``model`` itself with ``inplace=True``) whose ``nn.Linear``
    and ``nn.Conv2d`` layers run on crossbars, programmed with ``seed``.

    Layers that already are analog are reprogrammed with the new table/config. The model
    gets a ``program(seed=...)`` method (unless it has one) that calls :func:`program_analog`.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"convert_to_analog expects a torch.nn.Module, got {type(model).__name__}")
    config = checked_inputs(table, config)
    if not inplace:
        model = copy.deepcopy(model)
    if isinstance(model, (nn.Linear, nn.Conv2d)) and not isinstance(model, AnalogLayerMixin):
        return _swap(model, table, config, seed)
    targets = [(name, m) for name, m in model.named_modules()
               if isinstance(m, (nn.Linear, nn.Conv2d)) and not isinstance(m, AnalogLayerMixin)]
    for name, module in targets:
        parent, attr = _parent(model, name)
        setattr(parent, attr, _swap(module, table, config, 0, program=False))
    for (_, layer), s in zip(analog_layers(model), layer_seeds(seed, len(analog_layers(model)))):
        if layer.table is not table or layer.config is not config:
            layer.table, layer.config = table, config
            layer._setup_physics()
        layer.program(seed=s)
    if not hasattr(model, "program"):
        model.program = _ProgramMethod(model)
    return model


def program_analog(model: nn.Module, seed: int = 0) -> dict:
    """Program every analog layer of ``model`` again (per-layer seeds derived from ``seed``);
    returns the total programming cost (pulses, energy, latency, stuck cells)."""
    layers = analog_layers(model)
    if not layers:
        raise ValueError("the model has no analog layers; convert it with convert_to_analog first")
    for (_, layer), s in zip(layers, layer_seeds(seed, len(layers))):
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


def _swap(module: nn.Module, table: DeviceTable, config: CrossbarConfig, seed: int, program: bool = True):
    if isinstance(module, nn.Linear):
        return AnalogLinear.from_linear(module, table, config, seed=seed, program=program)
    return AnalogConv2d.from_conv(module, table, config, seed=seed, program=program)


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    parts = name.split(".")
    parent = model
    for p in parts[:-1]:
        parent = getattr(parent, p)
    return parent, parts[-1]
