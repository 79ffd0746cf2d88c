"""Weights <-> conductance levels: one small class per mapping.

A mapping turns normalized weights ``w`` in [-1, 1] (shape [out, in]) into level indices
of the device table, arranged as ``[S, P, out, in]``: ``S`` slices per weight, each made
of ``P`` physical cells whose currents are combined with ``signs`` (analog, before the
ADC) into one slice signal::

    signal_s = sum_p signs[p] * (v @ G[s, p]) - offset * sum(v)
    w        = sum_s slice_weights[s] * (sum_p signs[p] * G[s, p] - offset)

so the layer never needs to know which mapping it runs. A new mapping (polarized
fragments, other bit slicings) is a new subclass of :class:`WeightMapping`.
"""
from __future__ import annotations

import numpy as np
import torch

from rramsim.models.config import CrossbarConfig


class WeightMapping:
    """Base class. ``levels`` are the table's target conductances (S, increasing)."""

    name = "base"
    n_slices = 1
    signs: tuple[float, ...] = (1.0,)
    offset = 0.0

    def __init__(self, levels: np.ndarray) -> None:
        self.levels = np.asarray(levels, dtype=np.float64)
        self.g_min = float(self.levels[0])
        self.g_max = float(self.levels[-1])
        if self.levels.size < 2:
            raise ValueError("the device table has a single programming level; a weight mapping needs "
                             "at least two (characterize more levels)")
        self.slice_weights = np.ones(self.n_slices)

    @property
    def planes(self) -> int:
        return len(self.signs)

    def encode(self, w: torch.Tensor) -> torch.Tensor:
        """Level indices ``[S, P, out, in]`` (int64) of normalized weights ``w`` in [-1, 1]."""
        raise NotImplementedError

    def decode(self, g: torch.Tensor) -> torch.Tensor:
        """Normalized weights represented by conductances ``g`` [S, P, out, in]."""
        signs = torch.as_tensor(self.signs, dtype=g.dtype, device=g.device).view(1, -1, 1, 1)
        sw = torch.as_tensor(self.slice_weights, dtype=g.dtype, device=g.device)
        per_slice = (g * signs).sum(1) - self.offset
        return (per_slice * sw.view(-1, 1, 1)).sum(0)

    def _nearest(self, g: torch.Tensor) -> torch.Tensor:
        """Index of the table level nearest to each conductance in ``g``."""
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

    def encode(self, w: torch.Tensor) -> torch.Tensor:
        w = w.to(torch.float64)
        g = self.g_min + w.abs() * (self.g_max - self.g_min)
        idx = self._nearest(g)
        zero = torch.zeros_like(idx)
        pos = torch.where(w > 0, idx, zero)
        neg = torch.where(w < 0, idx, zero)
        return torch.stack([pos, neg]).unsqueeze(0)


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

    def encode(self, w: torch.Tensor) -> torch.Tensor:
        g = self.offset + w.to(torch.float64) * 0.5 * (self.g_max - self.g_min)
        return self._nearest(g).view(1, 1, *w.shape)


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
    LADDER_TOLERANCE = 1e-3      # largest deviation of a digit's level from the ladder, in steps

    def __init__(self, levels: np.ndarray, cells_per_weight: int, bits_per_cell: int) -> None:
        super().__init__(levels)
        self.n_slices = int(cells_per_weight)
        self.base = 2 ** int(bits_per_cell)
        ladder = even_ladder(self.levels, self.base, self.LADDER_TOLERANCE)
        if ladder is None:
            works = [b for b in range(1, int(bits_per_cell))
                     if even_ladder(self.levels, 2 ** b, self.LADDER_TOLERANCE) is not None]
            uS = ", ".join(f"{g * 1e6:.4g}" for g in self.levels)
            hint = f"use bits_per_cell={works[-1]}" if works else "use mapping='differential'"
            raise ValueError(f"mapping='bit_sliced' with bits_per_cell={bits_per_cell} needs {self.base} evenly "
                             f"spaced conductance levels (one per digit), but the device table's {self.levels.size} "
                             f"levels ({uS} uS) hold no such ladder; {hint}, or characterize the table on an even "
                             "grid of targets")
        self.digit_levels = ladder
        g_step = (self.levels[ladder[-1]] - self.levels[ladder[0]]) / (self.base - 1)
        self.g_step = float(g_step)
        full = self.base ** self.n_slices - 1
        self.slice_weights = np.array([self.base ** (self.n_slices - 1 - s) / full / g_step
                                       for s in range(self.n_slices)])

    def encode(self, w: torch.Tensor) -> torch.Tensor:
        full = self.base ** self.n_slices - 1
        q = torch.round(w.to(torch.float64).abs() * full).long()
        lut = torch.as_tensor(self.digit_levels, dtype=torch.long, device=w.device)
        slices = []
        for s in range(self.n_slices):
            digit = (q // self.base ** (self.n_slices - 1 - s)) % self.base
            idx = lut[digit]
            zero = lut[torch.zeros_like(digit)]
            slices.append(torch.stack([torch.where(w > 0, idx, zero), torch.where(w < 0, idx, zero)]))
        return torch.stack(slices)


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


def make_mapping(config: CrossbarConfig, levels: np.ndarray) -> WeightMapping:
    """The mapping object named by ``config.mapping``."""
    if config.mapping == "differential":
        return DifferentialMapping(levels)
    if config.mapping == "offset":
        return OffsetMapping(levels)
    if config.mapping == "bit_sliced":
        return BitSlicedMapping(levels, config.cells_per_weight, config.bits_per_cell)
    raise ValueError(f"CrossbarConfig.mapping {config.mapping!r} is not known")
