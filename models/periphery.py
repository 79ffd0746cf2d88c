"""DAC and ADC quantizers with straight-through gradients.

Both round to a uniform grid in the forward pass and pass the gradient through unchanged
(straight-through estimator), so hardware-aware training sees the quantized values but
learns as if they were continuous.
"""
from __future__ import annotations

import torch


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """``round(x)`` forward, identity gradient."""
    return x + (torch.round(x) - x).detach()


def input_scale(x: torch.Tensor) -> torch.Tensor:
    """Per-sample full scale ``max|x|`` (shape [B, 1, ...]); 1 where a sample is all zero."""
    flat = x.detach().reshape(x.shape[0], -1)
    m = torch.maximum(flat.amax(dim=1), -flat.amin(dim=1))
    m = torch.where(m > 0, m, torch.ones_like(m))
    return m.view(-1, *([1] * (x.dim() - 1)))


def dac_levels(x: torch.Tensor, bits: int) -> torch.Tensor:
    """Number of positive DAC codes per sample: 2^bits - 1 for non-negative samples,
    2^(bits-1) - 1 for samples with negative entries (a sign bit), at least 1."""
    flat = x.detach().reshape(x.shape[0], -1)
    signed = flat.amin(dim=1) < 0
    unsigned_n = float(2 ** bits - 1)
    signed_n = float(max(2 ** (bits - 1) - 1, 1))
    n = torch.where(signed, torch.full_like(flat[:, 0], signed_n), torch.full_like(flat[:, 0], unsigned_n))
    return n.view(-1, *([1] * (x.dim() - 1)))


def dac(v: torch.Tensor, levels: torch.Tensor | None) -> torch.Tensor:
    """Quantize normalized inputs ``v`` in [-1, 1] to ``levels`` codes per sign (STE).

    ``levels`` is from :func:`dac_levels`; ``None`` means an ideal (unquantized) DAC.
    """
    if levels is None:
        return v
    return round_ste(v * levels) / levels


def adc(signal: torch.Tensor, full_scale: torch.Tensor, bits: int | None) -> torch.Tensor:
    """Signed uniform ADC: clip ``signal`` to +-``full_scale`` then round to ``bits`` (STE).

    ``full_scale`` broadcasts against ``signal`` (one range per tile column). ``bits=None``
    is an ideal ADC (no clipping, no rounding).
    """
    if bits is None:
        return signal
    n = float(max(2 ** (bits - 1) - 1, 1))
    step = full_scale / n
    q = torch.round(torch.clamp(signal / step, -n, n)) * step
    if signal.requires_grad:
        return signal + (q - signal).detach()
    return q


def dac_codes(x: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Integer DAC codes of ``x`` (no gradient): ``(codes, levels, scale)`` with
    ``x ~ codes / levels * scale``; ``scale`` is the per-sample max|x| (1 for an all-zero
    sample) and ``levels`` as in :func:`dac_levels`. One pass to find both per sample."""
    flat = x.detach().reshape(x.shape[0], -1)
    lo, hi = flat.amin(dim=1), flat.amax(dim=1)          # (faster than aminmax here)
    scale = torch.maximum(hi, -lo)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    levels = torch.where(lo < 0, torch.full_like(lo, float(max(2 ** (bits - 1) - 1, 1))),
                         torch.full_like(lo, float(2 ** bits - 1)))
    view = (-1, *([1] * (x.dim() - 1)))
    levels, scale = levels.view(view), scale.view(view)
    return torch.round(x * (levels / scale)), levels, scale


def adc_scaled_(signal: torch.Tensor, full_scale: torch.Tensor, bits: int | None,
                out_scale: torch.Tensor) -> torch.Tensor:
    """In-place, no-gradient ADC for the forward pass: clip to +-``full_scale``, round to
    ``bits`` and multiply by ``out_scale`` (the digital rescale), in four passes."""
    if bits is None:
        return signal.mul_(out_scale)
    n = float(max(2 ** (bits - 1) - 1, 1))
    return signal.mul_(n / full_scale).clamp_(-n, n).round_().mul_(full_scale / n * out_scale)
