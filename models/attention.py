"""Attention on crossbars: multi-head attention and transformer layers built from AnalogLinear.

What runs where
    The weight matrices are on crossbars: the query, key and value projections (torch's
    packed ``in_proj_weight`` is split into its three blocks, or its separate
    ``q/k/v_proj_weight`` when ``kdim``/``vdim`` differ) and the output projection, each an
    :class:`~rramsim.models.layers.AnalogLinear`; in a transformer layer also the
    feed-forward ``linear1``/``linear2``. The attention products themselves, the scores
    ``Q K^T`` and the weighted sum ``A V``, multiply two activations: a crossbar holds one
    operand as programmed conductances, so these stay digital, as do the softmax, the masks,
    the layer norms, the activation and the residual additions. :meth:`digital_work` of each
    module says how much of that digital work its last forward did.

Always analog
    torch's ``TransformerEncoderLayer`` takes a fused fast path in ``eval()`` under
    ``no_grad``/``inference_mode`` that reads ``in_proj_weight`` and ``linear1.weight``
    directly and never calls the submodules. The layers here have their own forward with
    the same arithmetic as torch's slow path and no fast path, so the analog projections run
    in every mode. :class:`AnalogTransformerEncoder` replaces ``nn.TransformerEncoder``,
    whose forward would otherwise try to turn a padded batch into a nested tensor through
    the float layer's attributes.

All modules here are made by ``from_module(module, table, config, seed, program)`` from
the torch module (same weights, device and dtype) and turn back with ``to_digital()``;
``convert_to_analog`` finds them through :data:`CONVERTERS` (registered by
``rramsim.models``).
``program(seed)`` programs every crossbar layer inside with its own seed derived from
``seed``.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rramsim.devices import DeviceTable
from rramsim.models.config import CrossbarConfig
from rramsim.models.layers import AnalogLinear

__all__ = [
    "AnalogBlock",
    "AnalogMultiheadAttention",
    "AnalogTransformerEncoderLayer",
    "AnalogTransformerDecoderLayer",
    "AnalogTransformerEncoder",
    "CONVERTERS",
    "analog_linear",
    "causal_mask",
    "derived_seeds",
]


def derived_seeds(seed: int, n: int) -> list[int]:
    """``n`` independent seeds derived from one (numpy SeedSequence)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return [int(c.generate_state(1, dtype=np.uint32)[0]) for c in np.random.SeedSequence(int(seed)).spawn(n)]


def analog_linear(
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    table: DeviceTable,
    config: CrossbarConfig | None,
    seed: int,
    program: bool,
) -> AnalogLinear:
    """An AnalogLinear holding ``weight`` [out, in] (and ``bias``), same device and dtype;
    its parameters require gradients as ``weight`` and ``bias`` do (pass them undetached)."""
    lin = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        lin.weight.copy_(weight)
        if bias is not None:
            lin.bias.copy_(bias)
    layer = AnalogLinear.from_linear(lin, table, config, seed=seed, program=program)
    layer.weight.requires_grad_(weight.requires_grad)
    if bias is not None:
        layer.bias.requires_grad_(bias.requires_grad)
    return layer


def _float_linear(layer: AnalogLinear) -> nn.Linear:
    lin = nn.Linear(
        layer.in_features,
        layer.out_features,
        bias=layer.bias is not None,
        device=layer.weight.device,
        dtype=layer.weight.dtype,
    )
    with torch.no_grad():
        lin.weight.copy_(layer.weight)
        if layer.bias is not None:
            lin.bias.copy_(layer.bias)
    return lin


class AnalogBlock(nn.Module):
    """A module made of AnalogLinear crossbar layers and digital glue.

    ``digital_work()`` returns the operations of the last forward that ran digitally in
    this module itself (not in its children), per sample of the batch, as
    ``{name: count}``; empty before the first forward.
    """

    def __init__(self) -> None:
        super().__init__()
        self._digital: dict[str, int] = {}

    def analog_layers(self) -> list[AnalogLinear]:
        """Every crossbar layer inside, in module order."""
        return [m for m in self.modules() if isinstance(m, AnalogLinear)]

    def program(self, seed: int = 0) -> dict:
        """Program every crossbar layer inside again, each with its own seed derived from
        ``seed``; returns the summed programming cost (cells, tiles, pulses, energy, stuck)."""
        layers = self.analog_layers()
        total = {"cells": 0, "tiles": 0, "pulses": 0.0, "energy": 0.0, "stuck": 0}
        for layer, s in zip(layers, derived_seeds(seed, len(layers))):
            stats = layer.program(seed=s)
            for key in total:
                total[key] += stats.get(key, 0)
        return total

    def digital_work(self) -> dict[str, int]:
        return dict(self._digital)

    @classmethod
    def converter(cls, module: nn.Module, table: DeviceTable, config: CrossbarConfig, name: str = "") -> "AnalogBlock":
        """The factory ``convert_to_analog`` calls: the analog module, not yet programmed."""
        return cls.from_module(module, table, config, program=False)


# --------------------------------------------------------------------------- masks


def _float_mask(mask: torch.Tensor | None, name: str, dtype: torch.dtype) -> torch.Tensor | None:
    """A boolean mask (True: not allowed) as an additive float mask (-inf), or a float mask as is."""
    if mask is None:
        return None
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill_(mask, float("-inf"))
    if not torch.is_floating_point(mask):
        raise ValueError(f"{name} must be a bool or floating-point tensor, got {mask.dtype}")
    return mask.to(dtype)


def causal_mask(n: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """The additive causal mask [n, n]: -inf above the diagonal (a position sees only earlier ones)."""
    return torch.triu(torch.full((n, n), float("-inf"), device=device, dtype=dtype), diagonal=1)


# --------------------------------------------------------------------------- attention


class AnalogMultiheadAttention(AnalogBlock):
    """``nn.MultiheadAttention`` with its projections on crossbars.

    ``q_proj``, ``k_proj``, ``v_proj`` (``embed_dim``/``kdim``/``vdim`` -> ``embed_dim``)
    and ``out_proj`` are AnalogLinear layers; the packed ``in_proj_weight`` of torch is
    held as its three blocks (each input is projected by its own block only, so a
    cross-attention costs what it computes). The forward takes torch's arguments and
    returns torch's ``(output, weights)``: ``batch_first`` either way, unbatched inputs,
    ``key_padding_mask`` and ``attn_mask`` (bool or additive float), ``is_causal`` (builds
    the causal mask when no ``attn_mask`` is given), ``need_weights``,
    ``average_attn_weights``, attention dropout in training, ``add_bias_kv`` and
    ``add_zero_attn``.

    Digital work per sample (:meth:`digital_work`): ``attention_scores_macs`` (Q K^T),
    ``softmax_elements``, ``attention_values_macs`` (A V).
    """

    def __init__(
        self,
        mha: nn.MultiheadAttention,
        table: DeviceTable,
        config: CrossbarConfig | None = None,
        seed: int = 0,
        program: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(mha, nn.MultiheadAttention):
            raise TypeError(f"AnalogMultiheadAttention needs an nn.MultiheadAttention, got {type(mha).__name__}")
        self.embed_dim, self.num_heads = mha.embed_dim, mha.num_heads
        self.kdim, self.vdim = mha.kdim, mha.vdim
        self.head_dim = mha.head_dim
        self.batch_first = bool(mha.batch_first)
        self.dropout = float(mha.dropout)
        self.add_zero_attn = bool(mha.add_zero_attn)
        self._packed = bool(mha._qkv_same_embed_dim)
        E = self.embed_dim
        if self._packed:
            wq, wk, wv = mha.in_proj_weight.split(E, dim=0)
        else:
            wq, wk, wv = mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight
        bq = bk = bv = None
        if mha.in_proj_bias is not None:
            bq, bk, bv = mha.in_proj_bias.split(E, dim=0)
        s = derived_seeds(seed, 4)
        self.q_proj = analog_linear(wq, bq, table, config, s[0], program)
        self.k_proj = analog_linear(wk, bk, table, config, s[1], program)
        self.v_proj = analog_linear(wv, bv, table, config, s[2], program)
        self.out_proj = AnalogLinear.from_linear(mha.out_proj, table, config, seed=s[3], program=program)
        # the learned extra key/value (add_bias_kv), digital: kept 1-D [embed_dim]
        self.bias_k = None if mha.bias_k is None else nn.Parameter(mha.bias_k.detach().reshape(-1).clone())
        self.bias_v = None if mha.bias_v is None else nn.Parameter(mha.bias_v.detach().reshape(-1).clone())
        self.train(mha.training)

    @classmethod
    def from_module(
        cls,
        module: nn.MultiheadAttention,
        table: DeviceTable,
        config: CrossbarConfig | None = None,
        seed: int = 0,
        program: bool = True,
    ) -> "AnalogMultiheadAttention":
        return cls(module, table, config, seed=seed, program=program)

    def to_digital(self) -> nn.MultiheadAttention:
        """The plain ``nn.MultiheadAttention`` with the float weights."""
        w = self.q_proj.weight
        mha = nn.MultiheadAttention(
            self.embed_dim,
            self.num_heads,
            dropout=self.dropout,
            bias=self.q_proj.bias is not None,
            add_bias_kv=self.bias_k is not None,
            add_zero_attn=self.add_zero_attn,
            kdim=None if self._packed else self.kdim,
            vdim=None if self._packed else self.vdim,
            batch_first=self.batch_first,
            device=w.device,
            dtype=w.dtype,
        )
        with torch.no_grad():
            projs = (self.q_proj, self.k_proj, self.v_proj)
            if self._packed:
                mha.in_proj_weight.copy_(torch.cat([p.weight for p in projs]))
            else:
                for name, p in zip(("q_proj_weight", "k_proj_weight", "v_proj_weight"), projs):
                    getattr(mha, name).copy_(p.weight)
            if mha.in_proj_bias is not None:
                mha.in_proj_bias.copy_(torch.cat([p.bias for p in projs]))
            mha.out_proj.weight.copy_(self.out_proj.weight)
            if mha.out_proj.bias is not None:
                mha.out_proj.bias.copy_(self.out_proj.bias)
            if self.bias_k is not None:
                mha.bias_k.copy_(self.bias_k.reshape(mha.bias_k.shape))
                mha.bias_v.copy_(self.bias_v.reshape(mha.bias_v.shape))
        return mha.train(self.training)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        need_weights: bool = True,
        attn_mask: torch.Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batched = query.dim() == 3
        if query.dim() not in (2, 3) or key.dim() != query.dim() or value.dim() != query.dim():
            raise ValueError(
                "AnalogMultiheadAttention expects query, key and value of 3 dimensions "
                "(batched) or 2 (unbatched), got shapes "
                f"{tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}"
            )
        if not batched:  # [L, E] -> [1, L, E]
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif not self.batch_first:  # [L, B, E] -> [B, L, E]
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        B, L, _ = query.shape
        S = key.shape[1]
        for name, t, dim in (("query", query, self.embed_dim), ("key", key, self.kdim), ("value", value, self.vdim)):
            if t.shape[-1] != dim:
                raise ValueError(f"AnalogMultiheadAttention: {name} has {t.shape[-1]} features, expected {dim}")
        if key.shape[:2] != value.shape[:2] or key.shape[0] != B:
            raise ValueError(
                f"AnalogMultiheadAttention: key {tuple(key.shape)} and value {tuple(value.shape)} "
                f"must share batch and sequence sizes (query batch {B})"
            )
        H, d = self.num_heads, self.head_dim
        q = self.q_proj(query).view(B, L, H, d).transpose(1, 2)  # [B, H, L, d]
        k = self.k_proj(key)
        v = self.v_proj(value)
        dtype = q.dtype
        mask = self._attn_mask(attn_mask, is_causal, B, L, S, dtype, q.device)  # [B|1, H|1, L, S] or None
        kpm = _float_mask(key_padding_mask, "key_padding_mask", dtype)
        if kpm is not None:
            if kpm.shape != (B, S):
                raise ValueError(
                    f"key_padding_mask must have shape (batch, source length) = {(B, S)}, got {tuple(kpm.shape)}"
                )
            kpm = kpm[:, None, None, :]
        if self.bias_k is not None:
            k = torch.cat([k, self.bias_k.reshape(1, 1, -1).expand(B, 1, -1)], dim=1)
            v = torch.cat([v, self.bias_v.reshape(1, 1, -1).expand(B, 1, -1)], dim=1)
            mask, kpm = _pad_last(mask), _pad_last(kpm)
        k = k.view(B, -1, H, d).transpose(1, 2)  # [B, H, S', d]
        v = v.view(B, -1, H, d).transpose(1, 2)
        if self.add_zero_attn:
            zeros = k.new_zeros(B, H, 1, d)
            k, v = torch.cat([k, zeros], dim=2), torch.cat([v, zeros], dim=2)
            mask, kpm = _pad_last(mask), _pad_last(kpm)
        if kpm is not None:
            mask = kpm if mask is None else mask + kpm
        # digital: scores, softmax, weighted values (torch's fused kernel when the weights are not
        # returned; the same arithmetic written out when they are)
        p_drop = self.dropout if self.training else 0.0
        if need_weights:
            scores = torch.matmul(q * (1.0 / math.sqrt(d)), k.transpose(-2, -1))  # [B, H, L, S']
            if mask is not None:
                scores = scores + mask
            weights = torch.softmax(scores, dim=-1)
            if p_drop > 0:
                weights = F.dropout(weights, p=p_drop)
            out = torch.matmul(weights, v)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p_drop)
        out = out.transpose(1, 2).reshape(B, L, self.embed_dim)
        out = self.out_proj(out)
        S2 = k.shape[2]
        self._digital = {
            "attention_scores_macs": H * L * S2 * d,
            "softmax_elements": H * L * S2,
            "attention_values_macs": H * L * S2 * d,
        }
        if not batched:
            out = out.squeeze(0)
        elif not self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = weights.mean(dim=1)
        return out, (weights if batched else weights.squeeze(0))

    def _attn_mask(self, attn_mask, is_causal, B, L, S, dtype, device):
        if attn_mask is None:
            if not is_causal:
                return None
            if L != S:
                raise ValueError(f"is_causal needs equal query and key lengths, got {L} and {S}; pass attn_mask")
            return causal_mask(L, device, dtype)[None, None]
        mask = _float_mask(attn_mask, "attn_mask", dtype)
        if mask.dim() == 2:
            if mask.shape != (L, S):
                raise ValueError(
                    f"a 2-D attn_mask must have shape (target, source) = {(L, S)}, got {tuple(mask.shape)}"
                )
            return mask[None, None]
        if mask.dim() == 3:
            if mask.shape != (B * self.num_heads, L, S):
                raise ValueError(
                    f"a 3-D attn_mask must have shape (batch*heads, target, source) = "
                    f"{(B * self.num_heads, L, S)}, got {tuple(mask.shape)}"
                )
            return mask.view(B, self.num_heads, L, S)
        raise ValueError(f"attn_mask must have 2 or 3 dimensions, got {mask.dim()}")

    def extra_repr(self) -> str:
        return (
            f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, kdim={self.kdim}, vdim={self.vdim}, "
            f"batch_first={self.batch_first}, dropout={self.dropout}"
        )


def _pad_last(mask: torch.Tensor | None) -> torch.Tensor | None:
    """One more allowed (0) source position at the end of an additive mask."""
    return None if mask is None else F.pad(mask, (0, 1))


# --------------------------------------------------------------------------- transformer layers


def _check_layer(layer: nn.Module, kind: type) -> None:
    if not isinstance(layer, kind):
        raise TypeError(f"expected an nn.{kind.__name__}, got {type(layer).__name__}")


class _AnalogTransformerLayer(AnalogBlock):
    """What the encoder and decoder layers share: the feed-forward block and the glue."""

    _DIGITAL_CHILDREN = ()

    @classmethod
    def from_module(cls, module, table, config=None, seed=0, program=True) -> "_AnalogTransformerLayer":
        return cls(module, table, config, seed=seed, program=program)

    def _take(self, layer: nn.Module, table, config, seed: int, program: bool, attentions: tuple[str, ...]):
        s = derived_seeds(seed, len(attentions) + 2)
        for name, si in zip(attentions, s):
            setattr(self, name, AnalogMultiheadAttention(getattr(layer, name), table, config, si, program))
        self.linear1 = AnalogLinear.from_linear(layer.linear1, table, config, seed=s[-2], program=program)
        self.linear2 = AnalogLinear.from_linear(layer.linear2, table, config, seed=s[-1], program=program)
        if not self.batch_first:  # [T, B, D]: the feed-forward layers' samples are dim 1
            self.linear1.batch_dim = self.linear2.batch_dim = 1
        for name in self._DIGITAL_CHILDREN:
            setattr(self, name, copy.deepcopy(getattr(layer, name)))
        act = layer.activation
        self._act_function = not isinstance(act, nn.Module)
        # torch's F.relu/F.gelu as modules: a whole pickled model then loads with weights_only=True
        self.activation = (
            copy.deepcopy(act)
            if isinstance(act, nn.Module)
            else nn.ReLU()
            if act is F.relu
            else nn.GELU()
            if act is F.gelu
            else act
        )
        self._act_code = getattr(layer, "activation_relu_or_gelu", 0)
        self.norm_first = bool(layer.norm_first)

    def _to_digital(self, layer: nn.Module, attentions: tuple[str, ...]) -> nn.Module:
        for name in attentions:
            setattr(layer, name, getattr(self, name).to_digital())
        layer.linear1, layer.linear2 = _float_linear(self.linear1), _float_linear(self.linear2)
        for name in self._DIGITAL_CHILDREN:
            setattr(layer, name, copy.deepcopy(getattr(self, name)))
        act = self.activation
        if self._act_function and isinstance(act, (nn.ReLU, nn.GELU)):
            act = F.relu if isinstance(act, nn.ReLU) else F.gelu
        layer.activation = copy.deepcopy(act) if isinstance(act, nn.Module) else act
        if hasattr(layer, "activation_relu_or_gelu"):
            layer.activation_relu_or_gelu = self._act_code
        layer.norm_first = self.norm_first
        return layer

    def _ff_block(self, x: torch.Tensor, out_dropout: nn.Module) -> torch.Tensor:
        return out_dropout(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def _record(self, x: torch.Tensor, n_residuals: int) -> None:
        batch = 1 if x.dim() == 2 else x.shape[0 if self.batch_first else 1]
        tokens = x.numel() // (batch * x.shape[-1])
        self._digital = {"residual_add_elements": n_residuals * tokens * x.shape[-1]}
        if not isinstance(self.activation, nn.Module):  # a module activation counts itself
            self._digital["activation_elements"] = tokens * self.linear1.out_features

    @property
    def batch_first(self) -> bool:
        return self.self_attn.batch_first


class AnalogTransformerEncoderLayer(_AnalogTransformerLayer):
    """``nn.TransformerEncoderLayer`` whose ``self_attn`` (an :class:`AnalogMultiheadAttention`)
    and feed-forward ``linear1``/``linear2`` run on crossbars in every mode (no fused fast path).

    Norms, dropouts and the activation are the float layer's own modules; ``norm_first``
    either way. Digital work per sample of the layer itself: ``residual_add_elements`` and,
    for an activation given as a plain function, ``activation_elements`` (the layer norms,
    and torch's ``F.relu``/``F.gelu`` held as ``nn.ReLU``/``nn.GELU``, are child modules).
    """

    _DIGITAL_CHILDREN = ("norm1", "norm2", "dropout", "dropout1", "dropout2")

    def __init__(
        self,
        layer: nn.TransformerEncoderLayer,
        table: DeviceTable,
        config: CrossbarConfig | None = None,
        seed: int = 0,
        program: bool = True,
    ) -> None:
        super().__init__()
        _check_layer(layer, nn.TransformerEncoderLayer)
        self._take(layer, table, config, seed, program, ("self_attn",))
        self.train(layer.training)

    def to_digital(self) -> nn.TransformerEncoderLayer:
        a = self.self_attn
        layer = nn.TransformerEncoderLayer(
            a.embed_dim,
            a.num_heads,
            self.linear1.out_features,
            batch_first=a.batch_first,
            device=a.q_proj.weight.device,
            dtype=a.q_proj.weight.dtype,
        )
        return self._to_digital(layer, ("self_attn",))

    def forward(
        self,
        src: torch.Tensor,
        src_mask: torch.Tensor | None = None,
        src_key_padding_mask: torch.Tensor | None = None,
        is_causal: bool = False,
    ) -> torch.Tensor:
        if src.is_nested:
            raise ValueError(
                "AnalogTransformerEncoderLayer does not take nested tensors; pass a padded batch "
                "and src_key_padding_mask"
            )
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x), self.dropout2)
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x, self.dropout2))
        self._record(x, 2)
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(
            x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False, is_causal=is_causal
        )[0]
        return self.dropout1(x)


class AnalogTransformerDecoderLayer(_AnalogTransformerLayer):
    """``nn.TransformerDecoderLayer`` with ``self_attn``, ``multihead_attn`` (cross-attention)
    and ``linear1``/``linear2`` on crossbars; the rest as in torch's layer."""

    _DIGITAL_CHILDREN = ("norm1", "norm2", "norm3", "dropout", "dropout1", "dropout2", "dropout3")

    def __init__(
        self,
        layer: nn.TransformerDecoderLayer,
        table: DeviceTable,
        config: CrossbarConfig | None = None,
        seed: int = 0,
        program: bool = True,
    ) -> None:
        super().__init__()
        _check_layer(layer, nn.TransformerDecoderLayer)
        self._take(layer, table, config, seed, program, ("self_attn", "multihead_attn"))
        self.train(layer.training)

    def to_digital(self) -> nn.TransformerDecoderLayer:
        a = self.self_attn
        layer = nn.TransformerDecoderLayer(
            a.embed_dim,
            a.num_heads,
            self.linear1.out_features,
            batch_first=a.batch_first,
            device=a.q_proj.weight.device,
            dtype=a.q_proj.weight.dtype,
        )
        return self._to_digital(layer, ("self_attn", "multihead_attn"))

    def forward(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        tgt_mask: torch.Tensor | None = None,
        memory_mask: torch.Tensor | None = None,
        tgt_key_padding_mask: torch.Tensor | None = None,
        memory_key_padding_mask: torch.Tensor | None = None,
        tgt_is_causal: bool = False,
        memory_is_causal: bool = False,
    ) -> torch.Tensor:
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask, memory_key_padding_mask, memory_is_causal)
            x = x + self._ff_block(self.norm3(x), self.dropout3)
        else:
            x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
            x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask, memory_is_causal))
            x = self.norm3(x + self._ff_block(x, self.dropout3))
        self._record(x, 3)
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(
            x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False, is_causal=is_causal
        )[0]
        return self.dropout1(x)

    def _mha_block(self, x, mem, attn_mask, key_padding_mask, is_causal):
        x = self.multihead_attn(
            x, mem, mem, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False, is_causal=is_causal
        )[0]
        return self.dropout2(x)


class AnalogTransformerEncoder(AnalogBlock):
    """``nn.TransformerEncoder`` with :class:`AnalogTransformerEncoderLayer` layers.

    The same forward as torch's (masks, ``is_causal``, the final ``norm``) without the
    nested-tensor conversion of padded batches, which would bypass the crossbar layers.
    """

    def __init__(
        self,
        encoder: nn.TransformerEncoder,
        table: DeviceTable,
        config: CrossbarConfig | None = None,
        seed: int = 0,
        program: bool = True,
    ) -> None:
        super().__init__()
        _check_layer(encoder, nn.TransformerEncoder)
        s = derived_seeds(seed, len(encoder.layers))
        self.layers = nn.ModuleList(
            [AnalogTransformerEncoderLayer(layer, table, config, si, program) for layer, si in zip(encoder.layers, s)]
        )
        self.num_layers = len(self.layers)
        self.norm = copy.deepcopy(encoder.norm)
        self.train(encoder.training)

    @classmethod
    def from_module(cls, module, table, config=None, seed=0, program=True) -> "AnalogTransformerEncoder":
        return cls(module, table, config, seed=seed, program=program)

    def to_digital(self) -> nn.TransformerEncoder:
        layers = [layer.to_digital() for layer in self.layers]
        enc = nn.TransformerEncoder(
            layers[0], self.num_layers, norm=copy.deepcopy(self.norm), enable_nested_tensor=False
        )
        enc.layers = nn.ModuleList(layers)
        return enc.train(self.training)

    def forward(
        self,
        src: torch.Tensor,
        mask: torch.Tensor | None = None,
        src_key_padding_mask: torch.Tensor | None = None,
        is_causal: bool | None = None,
    ) -> torch.Tensor:
        out = src
        for layer in self.layers:
            out = layer(
                out,
                src_mask=mask,
                src_key_padding_mask=src_key_padding_mask,
                is_causal=bool(is_causal) if mask is None else False,
            )
        return out if self.norm is None else self.norm(out)


#: torch type -> converter factory(module, table, config, name), registered by rramsim.models
CONVERTERS = {
    nn.MultiheadAttention: AnalogMultiheadAttention.converter,
    nn.TransformerEncoderLayer: AnalogTransformerEncoderLayer.converter,
    nn.TransformerDecoderLayer: AnalogTransformerDecoderLayer.converter,
    nn.TransformerEncoder: AnalogTransformerEncoder.converter,
}
