"""Batch-norm folding: the trained straight-through model becomes the integer network.

For integer partial sums ``y``, ``clamp(round(bn(y)), 0, L)`` equals the number of
thresholds ``t_k`` that ``y`` reaches, ``t_k = ceil((k - 0.5 - b) / a)`` for the batch
norm's eval-mode affine ``a y + b`` (``floor`` and ``<=`` where ``a < 0``; a channel with
``a = 0`` is constant). The last layer keeps its affine as a digital per-class scale
and shift.
"""

from __future__ import annotations

import torch
from torch import nn

from .integer_network import IntegerLeNet5, IntLayer
from .straight_through import BinaryLeNet5

__all__ = ["integerize"]


def _thresholds(bn: nn.BatchNorm1d | nn.BatchNorm2d, levels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer thresholds of ``clamp(round(bn(y)), 0, levels)`` for integer y."""
    std = torch.sqrt(bn.running_var.double() + bn.eps)
    a = bn.weight.double() / std
    b = bn.bias.double() - bn.running_mean.double() * a
    ks = torch.arange(1, levels + 1, dtype=torch.float64) - 0.5
    safe = torch.where(a.abs() > 1e-12, a, torch.full_like(a, 1e-12))
    thr = (ks[None, :] - b[:, None]) / safe[:, None]  # y >= thr (a>0) or y <= thr (a<0)
    flip = a < 0
    t = torch.where(flip[:, None], torch.floor(thr), torch.ceil(thr))
    # a == 0: constant activation; encode with +-inf thresholds
    const = torch.clamp(torch.round(b), 0, levels)
    zero = a.abs() <= 1e-12
    if zero.any():
        big = torch.full_like(thr, 1e18)
        on = ks[None, :] < const[:, None].expand_as(thr) + 0.5
        t = torch.where(zero[:, None], torch.where(on, -big, big), t)
        flip = flip & ~zero
    return t.to(torch.int64), flip


def integerize(model: BinaryLeNet5) -> "IntegerLeNet5":
    """Fold the trained model's batch norms into integer thresholds (eval statistics)."""
    L = model.act_levels
    layers = []
    for i, conv in enumerate(model.convs):
        t, flip = _thresholds(model.bns[i], L)
        layers.append(
            IntLayer(
                w=torch.where(conv.weight.detach() >= 0, 1, -1).to(torch.int8),
                kind="conv",
                padding=conv.padding[0],
                t=t,
                flip=flip,
            )
        )
    for j, fc in enumerate(model.fcs):
        w = torch.where(fc.weight.detach() >= 0, 1, -1).to(torch.int8)
        bn = model.bns[2 + j]
        if j < 2:
            t, flip = _thresholds(bn, L)
            layers.append(IntLayer(w=w, kind="fc", t=t, flip=flip))
        else:
            std = torch.sqrt(bn.running_var.double() + bn.eps)
            a = bn.weight.detach().double() / std
            layers.append(
                IntLayer(w=w, kind="fc", scale=a, shift=bn.bias.detach().double() - bn.running_mean.double() * a)
            )
    return IntegerLeNet5(layers)
