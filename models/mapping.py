"""Weights <-> conductance levels: one small class per mapping.

A mapping turns normalized weights ``w`` in [-1, 1] (shape [out, in]) into level indices
of the device table, arranged as ``[S, P, out, in]``: ``S`` slices per weight, each made
of ``P`` physical cells whose currents are combined with ``signs`` (analog, before the
ADC) into one slice signal::

    signal_s = sum_p signs[p] * (v @ G[s, p]) - offset * sum(v)
    w        = sum_s slice_weights[s] * (sum_p signs[p] * G[s, p] - offset)

so the layer never needs to know which mapping it runs. A new mapping (polarized
fragments, other bit slicings) is a new subclass of :class:`WeightMapping` with a ``name``
of its own: defining it registers the name, and ``CrossbarConfig(mapping=TheClass)`` (or
the name) selects it (:func:`mapping_class`, :func:`make_mapping`).
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from rramsim.models.config import CrossbarConfig


#: every named mapping class, by name (filled as the classes are defined)
_REGISTRY: dict[str, type] = {}
#: per name, the module object and its ``__spec__`` when the class was registered (a module
#: reloaded or imported again gets a new spec: its class replaces the old one)
_DEFINED_IN: dict[str, tuple[object, object]] = {}


def _module_state(module_name: str) -> tuple[object, object]:
    module = sys.modules.get(module_name)
    return module, getattr(module, "__spec__", None)


def _same_module_state(a: tuple | None, b: tuple) -> bool:
    """The same module object with the same spec object (specs compare equal by value)."""
    return a is not None and all(x is y for x, y in zip(a, b))


class WeightMapping:
    """Base class. ``levels`` are the table's target conductances (S, increasing).

    A subclass that sets its own ``name`` (a non-empty str) is registered under it: a
    :class:`~rramsim.models.config.CrossbarConfig` then accepts the class or the name. A
    name belongs to one class: defining another class under it is an error, also one of
    the same module and qualified name (made by a factory function or ``type()``), whose
    configs would otherwise build the later class; only the same module reloaded or
    imported again replaces its own class.

    ``layer_applies_signs``: the cells hold only part of the weight (FORMS: ``|w|``, the
    sign applied by the layer after the ADC), so only a layer type that lists the class in
    its ``handles_mappings`` may run it; any other layer (or a bare
    :class:`~rramsim.models.tile.TileEngine`) refuses it, pointing at ``layers_from``,
    where such layers are made."""

    name = "base"
    n_slices = 1
    signs: tuple[float, ...] = (1.0,)
    offset = 0.0
    layer_applies_signs = False
    layers_from = ""

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            return
        if not isinstance(cls.name, str) or not cls.name:
            raise TypeError(
                f"weight mapping {cls.__qualname__}: name must be a non-empty str (the name a saved "
                f"config records), got {cls.name!r}"
            )
        held = _REGISTRY.get(cls.name)
        if held is not None and held is not cls:
            same_place = (held.__module__, held.__qualname__) == (cls.__module__, cls.__qualname__)
            if not same_place:
                raise TypeError(
                    f"weight mapping name {cls.name!r} is taken by {held.__module__}.{held.__qualname__}; "
                    f"give {cls.__qualname__} a name of its own"
                )
            if _same_module_state(_DEFINED_IN.get(cls.name), _module_state(cls.__module__)):  # not a reload
                raise TypeError(
                    f"weight mapping name {cls.name!r} is taken by another class "
                    f"{held.__module__}.{held.__qualname__} defined earlier in the same module (a "
                    "factory function or type() called twice?): a config naming it would build the "
                    "later class; give each class a name of its own"
                )
        _REGISTRY[cls.name] = cls
        _DEFINED_IN[cls.name] = _module_state(cls.__module__)

    @classmethod
    def for_config(cls, config: CrossbarConfig, levels: np.ndarray) -> "WeightMapping":
        """The mapping of ``config`` on a table's ``levels`` (a subclass with parameters of
        its own in the config reads them here)."""
        return cls(levels)

    @classmethod
    def check_config(cls, config: CrossbarConfig) -> None:
        """Raise ``ValueError`` for a config this mapping cannot run (called by
        :meth:`CrossbarConfig.validate`; a subclass inherits its parent's checks)."""

    @classmethod
    def columns_per_weight(cls, config: CrossbarConfig) -> int:
        """Physical columns one weight takes: its slices times its cells per slice, from
        the class attributes ``n_slices`` and ``signs``. A subclass whose instances set
        them in ``__init__`` (from the config or the table) must override this classmethod
        to return what they will build: :func:`make_mapping` refuses an instance that
        disagrees (the tiles are laid out from this number)."""
        return cls.n_slices * len(cls.signs)

    def __init__(self, levels: np.ndarray) -> None:
        self.levels = np.asarray(levels, dtype=np.float64)
        self.g_min = float(self.levels[0])
        self.g_max = float(self.levels[-1])
        if self.levels.size < 2:
            raise ValueError(
                "the device table has a single programming level; a weight mapping needs "
                "at least two (characterize more levels)"
            )
        self.slice_weights = np.ones(self.n_slices)
        self._cuts = nearest_cuts(self.levels)

    @property
    def planes(self) -> int:
        return len(self.signs)

    def encode(self, w: torch.Tensor) -> torch.Tensor:
        """Level indices ``[S, P, out, in]`` (int64) of normalized weights ``w`` in [-1, 1]."""
        raise NotImplementedError

    ROW_BLOCK = 1 << 18  # weights encoded together (bounds the temporaries)

    def encode_rows(self, w: torch.Tensor, scale: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Level indices of ``w / scale[:, None]`` (``w`` [out, in] as stored, ``scale`` [out]
        float64 > 0) written into ``out`` [S, P, out, in] (CPU, any integer dtype), a block
        of outputs at a time: exactly :meth:`encode` of the float64 quotient."""
        step = max(1, self.ROW_BLOCK // max(1, w.shape[1]))
        for o0 in range(0, w.shape[0], step):
            o1 = min(o0 + step, w.shape[0])
            wc = w[o0:o1].to(device="cpu", dtype=torch.float64) / scale[o0:o1, None]
            out[:, :, o0:o1] = self.encode(wc)
        return out

    def _by_thresholds(self, w: torch.Tensor) -> bool:
        """Whether :meth:`encode_rows` pays for per-row float32 thresholds: float32 (or
        narrower) weights, and enough of them per row to amortize the bisection (a fixed
        few milliseconds; small matrices take the float64 path, with the same result)."""
        return w.dtype != torch.float64 and w.numel() >= self.THRESHOLD_MIN_WEIGHTS

    THRESHOLD_MIN_WEIGHTS = 1 << 18

    def _level_count(self, v: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
        """Per weight of ``v`` [n, in], how many of its row's ``thresholds`` [n, L-1] it
        exceeds (uint8 while the levels allow), i.e. its level index."""
        if thresholds.shape[1] > 16:
            return torch.searchsorted(thresholds.contiguous(), v.contiguous())
        idx = (v > thresholds[:, :1]).to(torch.uint8)
        for i in range(1, thresholds.shape[1]):
            idx += v > thresholds[:, i : i + 1]
        return idx

    def _row_thresholds(self, target, scale: torch.Tensor, signed: bool) -> torch.Tensor | None:
        """Per output row, the largest float32 weight whose level is still ``i``, for every
        step ``i`` between levels: [out, L-1] (float32). ``target(wc)`` is the mapping's
        float64 conductance of normalized weights ``wc``; a stored weight ``v`` of row ``o``
        aims at ``target(float64(v) / scale[o])``, monotone in ``v``, so the level of ``v``
        is the number of thresholds below it -- the same index as the float64 path, found by
        bisection over the float32 values (ordered as integers). None without exact cuts."""
        if self._cuts is None:
            return None
        top = 0x7F800000  # +inf; -inf is -top in the ordering below
        shape = (scale.numel(), len(self._cuts))
        lo = torch.full(shape, -top if signed else 0, dtype=torch.int64)
        hi = torch.full(shape, top, dtype=torch.int64)
        cuts = torch.as_tensor(self._cuts, dtype=torch.float64)
        s = scale.to(device="cpu", dtype=torch.float64)[:, None]
        while bool((hi - lo > 1).any()):
            mid = torch.div(lo + hi, 2, rounding_mode="floor")
            below = target(_float32_of(mid).to(torch.float64) / s) <= cuts
            lo = torch.where(below, mid, lo)
            hi = torch.where(below, hi, mid)
        return _float32_of(lo)

    def decode(self, g: torch.Tensor) -> torch.Tensor:
        """Normalized weights represented by conductances ``g`` [S, P, out, in]."""
        signs = torch.as_tensor(self.signs, dtype=g.dtype, device=g.device).view(1, -1, 1, 1)
        sw = torch.as_tensor(self.slice_weights, dtype=g.dtype, device=g.device)
        per_slice = (g * signs).sum(1) - self.offset
        return (per_slice * sw.view(-1, 1, 1)).sum(0)

    def _nearest(self, g: torch.Tensor) -> torch.Tensor:
        """Index (int64) of the table level nearest to each conductance in ``g`` (a tie
        goes to the lower level). Float64 conductances are counted against the exact
        float64 decision points between neighbouring levels (:func:`nearest_cuts`): the
        same indices as comparing the two distances, in a few comparisons per weight."""
        cuts = self._cuts
        if cuts is not None and g.dtype == torch.float64:
            if len(cuts) > 16:
                return torch.searchsorted(torch.as_tensor(cuts, dtype=torch.float64, device=g.device), g.contiguous())
            idx = (g > cuts[0]).to(torch.uint8)
            for cut in cuts[1:]:
                idx += g > cut
            return idx.long()
        levels = torch.as_tensor(self.levels, dtype=g.dtype, device=g.device)
        idx = torch.searchsorted(levels, g.contiguous()).clamp(1, levels.numel() - 1)
        lower = (g - levels[idx - 1]).abs() <= (levels[idx] - g).abs()
        return torch.where(lower, idx - 1, idx)


class DifferentialMapping(WeightMapping):
    """A pair of cells per weight: w > 0 raises G+, w < 0 raises G-, the other stays at G_min.

    ``w = (G+ - G-) / (G_max - G_min)``; the two column currents are subtracted before the ADC.
    """

    name = "differential"
    signs = (1.0, -1.0)

    def __init__(self, levels: np.ndarray) -> None:
        super().__init__(levels)
        self.slice_weights = np.array([1.0 / (self.g_max - self.g_min)])

    def _target(self, w: torch.Tensor) -> torch.Tensor:
        return self.g_min + w.abs() * (self.g_max - self.g_min)

    def encode(self, w: torch.Tensor) -> torch.Tensor:
        w = w.to(torch.float64)
        idx = self._nearest(self._target(w))
        return torch.stack([idx * (w > 0), idx * (w < 0)]).unsqueeze(0)

    def encode_rows(self, w: torch.Tensor, scale: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        thr = self._row_thresholds(self._target, scale, signed=False) if self._by_thresholds(w) else None
        if thr is None:
            return super().encode_rows(w, scale, out)
        step = max(1, self.ROW_BLOCK // max(1, w.shape[1]))
        for o0 in range(0, w.shape[0], step):
            o1 = min(o0 + step, w.shape[0])
            wb = w[o0:o1].to(device="cpu", dtype=torch.float32)
            idx = self._level_count(wb.abs(), thr[o0:o1])
            out[0, 0, o0:o1] = idx * (wb > 0)
            out[0, 1, o0:o1] = idx * (wb < 0)
        return out


class OffsetMapping(WeightMapping):
    """One cell per weight around the mid-range conductance G_mid = (G_min + G_max) / 2.

    ``w = (G - G_mid) / ((G_max - G_min) / 2)``; a reference current ``G_mid * sum(v)``
    (what an ideal reference column gives) is subtracted before the ADC.
    """

    name = "offset"
    signs = (1.0,)

    def __init__(self, levels: np.ndarray) -> None:
        super().__init__(levels)
        self.offset = 0.5 * (self.g_min + self.g_max)
        self.slice_weights = np.array([2.0 / (self.g_max - self.g_min)])

    def _target(self, w: torch.Tensor) -> torch.Tensor:
        return self.offset + w * 0.5 * (self.g_max - self.g_min)

    def encode(self, w: torch.Tensor) -> torch.Tensor:
        return self._nearest(self._target(w.to(torch.float64))).view(1, 1, *w.shape)

    def encode_rows(self, w: torch.Tensor, scale: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        thr = self._row_thresholds(self._target, scale, signed=True) if self._by_thresholds(w) else None
        if thr is None:
            return super().encode_rows(w, scale, out)
        step = max(1, self.ROW_BLOCK // max(1, w.shape[1]))
        for o0 in range(0, w.shape[0], step):
            o1 = min(o0 + step, w.shape[0])
            out[0, 0, o0:o1] = self._level_count(w[o0:o1].to(device="cpu", dtype=torch.float32), thr[o0:o1])
        return out


class BitSlicedMapping(WeightMapping):
    """|w| quantized to ``cells_per_weight * bits_per_cell`` bits, one digit per cell slice.

    Each slice is a differential pair whose cell holds one base-2^b digit. The digit ``d``
    must be realized exactly, ``G(d) = G(0) + d * G_step``, or the shift-and-add is wrong
    for every weight (a systematic error no calibration removes): the mapping picks the
    2^b table levels that form an evenly spaced ladder (within ``LADDER_TOLERANCE`` of a
    step) with the widest span, and refuses a table that has none, saying which
    ``bits_per_cell`` would work. Slice signals are digitized separately and shift-added:
    ``slice_weights[s] = base^(S-1-s) / (base^S - 1) / G_step`` (ISAAC-style slicing).
    """

    name = "bit_sliced"
    signs = (1.0, -1.0)
    LADDER_TOLERANCE = 1e-3  # largest deviation of a digit's level from the ladder, in steps

    @classmethod
    def for_config(cls, config: CrossbarConfig, levels: np.ndarray) -> "BitSlicedMapping":
        return cls(levels, config.cells_per_weight, config.bits_per_cell)

    @classmethod
    def check_config(cls, config: CrossbarConfig) -> None:
        if config.cells_per_weight * config.bits_per_cell > 24:
            raise ValueError(
                f"CrossbarConfig.cells_per_weight * bits_per_cell must be at most 24 bits with "
                f"mapping={config.mapping!r} (bit sliced), got {config.cells_per_weight} x "
                f"{config.bits_per_cell}"
            )

    @classmethod
    def columns_per_weight(cls, config: CrossbarConfig) -> int:
        return 2 * config.cells_per_weight

    def __init__(self, levels: np.ndarray, cells_per_weight: int, bits_per_cell: int) -> None:
        super().__init__(levels)
        self.n_slices = int(cells_per_weight)
        self.base = 2 ** int(bits_per_cell)
        ladder = even_ladder(self.levels, self.base, self.LADDER_TOLERANCE)
        if ladder is None:
            works = [
                b
                for b in range(1, int(bits_per_cell))
                if even_ladder(self.levels, 2**b, self.LADDER_TOLERANCE) is not None
            ]
            uS = ", ".join(f"{g * 1e6:.4g}" for g in self.levels)
            hint = f"use bits_per_cell={works[-1]}" if works else "use mapping='differential'"
            raise ValueError(
                f"mapping='bit_sliced' with bits_per_cell={bits_per_cell} needs {self.base} evenly "
                f"spaced conductance levels (one per digit), but the device table's {self.levels.size} "
                f"levels ({uS} uS) hold no such ladder; {hint}, or characterize the table on an even "
                "grid of targets"
            )
        self.digit_levels = ladder
        g_step = (self.levels[ladder[-1]] - self.levels[ladder[0]]) / (self.base - 1)
        self.g_step = float(g_step)
        full = self.base**self.n_slices - 1
        self.slice_weights = np.array(
            [self.base ** (self.n_slices - 1 - s) / full / g_step for s in range(self.n_slices)]
        )

    def encode(self, w: torch.Tensor) -> torch.Tensor:
        full = self.base**self.n_slices - 1
        q = torch.round(w.to(torch.float64).abs() * full).long()
        lut = torch.as_tensor(self.digit_levels, dtype=torch.long, device=w.device)
        zero = int(lut[0])  # digit 0 (the other cell of the pair)
        pos, neg = w > 0, w < 0
        slices = []
        for s in range(self.n_slices):
            digit = (q // self.base ** (self.n_slices - 1 - s)) % self.base
            rise = lut.index_select(0, digit.reshape(-1)).reshape(digit.shape).sub_(zero)
            slices.append(torch.stack([rise * pos, rise * neg]).add_(zero))
        return torch.stack(slices)


def _float32_of(k: torch.Tensor) -> torch.Tensor:
    """Float32 values of integers ``k`` (int64) in the order-preserving encoding of float32
    bit patterns (non-negative floats: their bits; negative: minus their magnitude's bits)."""
    bits = torch.where(k >= 0, k, (-k) | 0x80000000)
    bits = torch.where(bits >= 2**31, bits - 2**32, bits)
    return bits.to(torch.int32).view(torch.float32)


def nearest_cuts(levels: np.ndarray) -> list[float] | None:
    """Decision points between neighbouring levels: cut ``i`` is the largest float64 ``g``
    in ``[levels[i], levels[i+1])`` with ``|g - levels[i]| <= |levels[i+1] - g|`` as float64
    arithmetic evaluates it, so ``g`` is nearest to level ``#{cuts < g}``, bit for bit the
    two-distance comparison. None unless the levels strictly increase."""
    levels = np.asarray(levels, dtype=np.float64)
    if levels.size < 2 or not np.all(np.diff(levels) > 0):
        return None

    def order(x: float) -> int:  # float64 -> int, monotone (adjacent floats differ by 1)
        i = int(np.float64(x).view(np.int64))
        return i if i >= 0 else -(i & 0x7FFFFFFFFFFFFFFF)

    def value(k: int) -> np.float64:
        bits = k if k >= 0 else (-k) | -0x8000000000000000
        return np.int64(bits).view(np.float64)

    cuts = []
    for a, b in zip(levels[:-1], levels[1:]):
        lo, hi = order(a), order(b)  # lower at a, not at b: bisect to the last float that is
        while hi - lo > 1:
            mid = (lo + hi) // 2
            g = value(mid)
            if abs(g - a) <= abs(b - g):
                lo = mid
            else:
                hi = mid
        cuts.append(float(value(lo)))
    return cuts


def even_ladder(levels: np.ndarray, n: int, tol: float) -> np.ndarray | None:
    """Indices of ``n`` levels forming the widest evenly spaced ladder (every rung within
    ``tol`` steps of ``first + k * step``; ties: the lowest start), or None."""
    levels = np.asarray(levels, dtype=np.float64)
    if n > levels.size:
        return None
    best, best_span = None, -1.0
    for i in range(levels.size):
        for j in range(levels.size - 1, i, -1):
            span = levels[j] - levels[i]
            if span <= best_span:
                break
            step = span / (n - 1)
            rungs = levels[i] + step * np.arange(n)
            idx = np.abs(levels[None, :] - rungs[:, None]).argmin(axis=1)
            if np.all(np.abs(levels[idx] - rungs) <= tol * step) and len(set(idx.tolist())) == n:
                best, best_span = idx, span
    return best


def mapping_class(mapping: str | type) -> type:
    """The :class:`WeightMapping` subclass a ``CrossbarConfig.mapping`` names (a registered
    name, or the class itself)."""
    if isinstance(mapping, type):
        if not issubclass(mapping, WeightMapping):
            raise ValueError(
                f"CrossbarConfig.mapping must be a WeightMapping subclass or the name of one, got the "
                f"class {mapping.__qualname__}"
            )
        if _REGISTRY.get(mapping.__dict__.get("name")) is not mapping:
            raise ValueError(
                f"CrossbarConfig.mapping: the WeightMapping subclass {mapping.__qualname__} has no name of "
                "its own; set a class attribute name = '...' (the name a saved config records)"
            )
        return mapping
    if isinstance(mapping, WeightMapping):
        raise ValueError(
            f"CrossbarConfig.mapping takes the mapping class ({type(mapping).__qualname__}) or its name, "
            "not an instance: the layers build it on their table's levels"
        )
    cls = _REGISTRY.get(mapping) if isinstance(mapping, str) else None
    if cls is None:
        raise ValueError(
            f"CrossbarConfig.mapping must be one of {', '.join(map(repr, sorted(_REGISTRY)))} (the "
            f"WeightMapping subclasses defined so far; a method's own mapping is known once its module "
            f"is imported) or such a class, got {mapping!r}"
        )
    return cls


def make_mapping(config: CrossbarConfig, levels: np.ndarray, handles: tuple[type, ...] = ()) -> WeightMapping:
    """The mapping object ``config.mapping`` names, on the table's ``levels``.

    ``handles``: the mapping classes the caller runs although they leave part of the
    weight to the layer (``layer_applies_signs``); any other such mapping is refused, as
    is an instance whose columns per weight differ from ``config.columns_per_weight``."""
    cls = mapping_class(config.mapping)
    if cls.layer_applies_signs and not issubclass(cls, tuple(handles)):
        where = f"; build its layers with {cls.layers_from}" if cls.layers_from else ""
        raise ValueError(
            f"mapping={config.mapping!r} ({cls.__qualname__}) stores only part of each weight in the "
            "cells and leaves the sign to layers of its own: a plain analog layer would compute with "
            f"|w| (the signs dropped){where}"
        )
    mapping = cls.for_config(config, levels)
    columns = int(mapping.n_slices) * mapping.planes
    if columns != config.columns_per_weight:
        raise ValueError(
            f"{cls.__qualname__} built {mapping.n_slices} slice(s) of {mapping.planes} cell(s) = "
            f"{columns} columns per weight, but {cls.__qualname__}.columns_per_weight(config) says "
            f"{config.columns_per_weight} (the tiles are laid out from it): a mapping that sets n_slices "
            "or signs in __init__ must override the classmethod columns_per_weight to match"
        )
    return mapping
