"""The training form of the low-bit LeNet-5: sign weights and 2-bit activations with
straight-through gradients, batch norm after every layer, and its training recipe.

Weights are ``+-1`` (the sign of a latent float weight; the gradient passes where
``|w| <= 1``), activations ``clamp(round(x), 0, 2^bits - 1)`` (the gradient passes inside
the range). Inputs are the images quantized to the same integer levels
(:func:`quantize_input`), so that after batch-norm folding the whole network is integer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rramsim.models.training import TensorBatches, train

__all__ = ["BinaryLeNet5", "quantize_input", "train_lowbit"]


def quantize_input(images: torch.Tensor, bits: int = 2) -> torch.Tensor:
    """uint8 (or [0, 1] float) images -> integer-valued float tensor in 0..2^bits-1, [N,1,28,28]."""
    x = images.to(torch.float32)
    if images.dtype == torch.uint8:
        x = x / 255.0
    if x.dim() == 3:
        x = x.unsqueeze(1)
    return torch.round(x.clamp(0, 1) * (2**bits - 1))


class _SignSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w):
        ctx.save_for_backward(w)
        return torch.where(w >= 0, torch.ones_like(w), -torch.ones_like(w))

    @staticmethod
    def backward(ctx, g):
        (w,) = ctx.saved_tensors
        return g * (w.abs() <= 1).to(g.dtype)


def _act_q(x: torch.Tensor, levels: int) -> torch.Tensor:
    """clamp(round(x), 0, levels) with a straight-through gradient inside the range."""
    c = x.clamp(0, levels)
    return c + (torch.round(c) - c).detach()


class BinaryLeNet5(nn.Module):
    """LeNet-5 with sign weights, batch norm and ``act_bits`` activations (training form).

    conv 6@5x5 pad 2 -> BN -> q -> pool -> conv 16@5x5 -> BN -> q -> pool -> FC 120 -> BN -> q
    -> FC 84 -> BN -> q -> FC 10 -> BN (per-class affine). No biases (BN absorbs them).
    """

    def __init__(self, act_bits: int = 2, width: tuple[int, ...] = (6, 16, 120, 84)) -> None:
        super().__init__()
        if act_bits < 1 or act_bits > 8:
            raise ValueError(f"act_bits must be in 1..8, got {act_bits}")
        c1, c2, f1, f2 = width
        self.act_levels = 2**act_bits - 1
        self.convs = nn.ModuleList([nn.Conv2d(1, c1, 5, padding=2, bias=False), nn.Conv2d(c1, c2, 5, bias=False)])
        self.fcs = nn.ModuleList(
            [nn.Linear(c2 * 25, f1, bias=False), nn.Linear(f1, f2, bias=False), nn.Linear(f2, 10, bias=False)]
        )
        self.bns = nn.ModuleList(
            [nn.BatchNorm2d(c1), nn.BatchNorm2d(c2), nn.BatchNorm1d(f1), nn.BatchNorm1d(f2), nn.BatchNorm1d(10)]
        )
        nn.init.constant_(self.bns[-1].weight, 2.0)  # confident logits from the start

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        L = self.act_levels
        for i, conv in enumerate(self.convs):
            x = F.conv2d(x, _SignSTE.apply(conv.weight), padding=conv.padding)
            x = F.max_pool2d(_act_q(self.bns[i](x), L), 2)
        x = x.flatten(1)
        for j, fc in enumerate(self.fcs):
            x = self.bns[2 + j](F.linear(x, _SignSTE.apply(fc.weight)))
            if j < 2:
                x = _act_q(x, L)
        return x


def train_lowbit(
    model: BinaryLeNet5,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int = 6,
    batch_size: int = 128,
    lr: float = 5e-3,
    seed: int = 0,
    log=None,
    after_step=None,
) -> list[float]:
    """Adam + OneCycle on integer inputs (``quantize_input`` images) through
    :func:`rramsim.models.training.train`; returns the epoch losses. After every step the
    latent weights are clamped to the straight-through estimator's live range [-1, 1], then
    ``after_step(model)`` runs (e.g. :func:`tie_rows`' re-tying)."""
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    torch.manual_seed(seed)

    def clamp(m: BinaryLeNet5) -> None:
        for layer in list(m.convs) + list(m.fcs):
            layer.weight.clamp_(-1, 1)
        if after_step is not None:
            after_step(m)

    def report(epoch, _model, result) -> None:
        log(f"lowbit epoch {epoch}/{epochs}: loss {result.loss[-1]:.4f}")

    return train(
        model,
        TensorBatches(images, labels, batch_size, seed=seed),
        epochs=epochs,
        lr=lr,
        seed=seed,
        progress=False,
        after_step=clamp,
        on_epoch_end=report if log else None,
    ).loss
