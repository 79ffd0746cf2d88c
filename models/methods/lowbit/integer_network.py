"""The integer LeNet-5: binary weight matrices, integer thresholds, and an exact or
pluggable matrix-vector product.

Every layer computes integer partial sums ``y = sum_i x_i w_i`` (``x`` in 0..3, ``w`` in
+-1) through ``mvm(layer_index, layer, vectors)`` (exact by default, or a
:class:`~rramsim.models.methods.lowbit.macro.Macro`), then its activation
``a = #{k: y >= t_k}`` (``<=`` where batch norm flipped the sign); the last layer applies
a per-class affine digitally. A layer also carries the row rename map and the row order
the array stores it in (:mod:`.row_rename_reorder`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["IntLayer", "IntegerLeNet5"]


@dataclass
class IntLayer:
    """One integer layer: binary weights [out, in] (+-1 int8) and either thresholds
    ``t`` [out, levels] with ``flip`` [out] (activation = #{k: y >= t_k}, or y <= t_k where
    flipped) or, for the last layer, a per-output affine ``scale``/``shift``."""

    w: torch.Tensor
    kind: str  # "conv" or "fc"
    padding: int = 0
    t: torch.Tensor | None = None
    flip: torch.Tensor | None = None
    scale: torch.Tensor | None = None
    shift: torch.Tensor | None = None
    # row rename: logical input j -> physical row rmap[j] with sign rsign[j] (None: identity)
    rmap: torch.Tensor | None = None
    rsign: torch.Tensor | None = None
    perm: torch.Tensor | None = None  # row reorder: physical order of the rows

    def matrix(self) -> torch.Tensor:
        """[rows, out] +-1 matrix as stored on the array (renamed and reordered)."""
        m = self.w.reshape(self.w.shape[0], -1).t().to(torch.int64)
        if self.rmap is not None:
            n_phys = int(self.rmap.max()) + 1
            first = torch.full((n_phys,), -1, dtype=torch.long)
            for j in range(self.rmap.numel() - 1, -1, -1):
                first[self.rmap[j]] = j
            m = m[first] * self.rsign[first, None]
        if self.perm is not None:
            m = m[self.perm]
        return m

    def rows_in(self, x: torch.Tensor) -> torch.Tensor:
        """Logical integer input vectors [V, in] -> physical row inputs [V, rows]."""
        if self.rmap is not None:
            n_phys = int(self.rmap.max()) + 1
            out = torch.zeros(x.shape[0], n_phys, dtype=x.dtype)
            x = out.index_add_(1, self.rmap, x * self.rsign.to(x.dtype))
        if self.perm is not None:
            x = x[:, self.perm]
        return x

    def activate(self, y: torch.Tensor) -> torch.Tensor:
        """Integer partial sums [..., out] -> integer activations (or logits for the last layer)."""
        if self.t is None:
            return y.to(torch.float64) * self.scale + self.shift
        ge = (y.unsqueeze(-1) >= self.t).sum(-1)
        le = (y.unsqueeze(-1) <= self.t).sum(-1)
        return torch.where(self.flip, le, ge)


class IntegerLeNet5:
    """The integer network; ``forward(x, mvm)`` runs every layer's partial sums through
    ``mvm(layer_index, layer, int_vectors [V, in]) -> int [V, out]`` (default exact)."""

    def __init__(self, layers: list[IntLayer]) -> None:
        self.layers = layers

    @staticmethod
    def exact_mvm(i: int, layer: IntLayer, x: torch.Tensor) -> torch.Tensor:
        return x @ layer.w.reshape(layer.w.shape[0], -1).t().to(torch.int64)

    def forward(self, x: torch.Tensor, mvm=None) -> torch.Tensor:
        mvm = mvm or self.exact_mvm
        x = x.to(torch.int64)
        for i, layer in enumerate(self.layers):
            if layer.kind == "conv":
                B, C, H, W = x.shape
                k = layer.w.shape[-1]
                cols = F.unfold(x.double(), k, padding=layer.padding).round().to(torch.int64)  # [B, C*k*k, L]
                Ho, Wo = H + 2 * layer.padding - k + 1, W + 2 * layer.padding - k + 1
                vec = cols.transpose(1, 2).reshape(-1, cols.shape[1])
                y = mvm(i, layer, vec).reshape(B, Ho * Wo, -1)
                a = layer.activate(y).transpose(1, 2).reshape(B, -1, Ho, Wo)
                x = F.max_pool2d(a.double(), 2).to(torch.int64)
            else:
                x = x.reshape(x.shape[0], -1)
                x = layer.activate(mvm(i, layer, x))
        return x

    def predict(self, x: torch.Tensor, mvm=None, batch: int = 1000) -> torch.Tensor:
        return torch.cat([self.forward(x[k : k + batch], mvm).argmax(1) for k in range(0, x.shape[0], batch)])
