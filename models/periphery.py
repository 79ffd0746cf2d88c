"""DAC and ADC of the analog forward pass (no gradient: the layers' straight-through
estimator passes the float layer's gradient, see :mod:`rramsim.models.layers`).

DAC: each input vector is scaled by its own full scale ``max|x|`` and rounded to
``2^bits - 1`` codes (all entries >= 0) or ``2^(bits-1) - 1`` codes per sign (a sign bit);
the codes drive the rows as ``code / levels * read_voltage``. ADC: a signed uniform
converter per tile column, ``2^(bits-1) - 1`` codes per sign over ``+-full_scale``; the
tile engine folds ``levels / full_scale`` into the compiled matrices, so in the forward
pass the ADC is a clip to ``+-levels`` and a round of currents already in codes.
"""

from __future__ import annotations

import torch


def input_scale(x: torch.Tensor) -> torch.Tensor:
    """Per-sample full scale ``max|x|`` (shape [B, 1, ...]); 1 where a sample is all zero."""
    flat = x.detach().reshape(x.shape[0], -1)
    m = torch.maximum(flat.amax(dim=1), -flat.amin(dim=1))
    m = torch.where(m > 0, m, torch.ones_like(m))
    return m.view(-1, *([1] * (x.dim() - 1)))


def adc_levels(bits: int) -> float:
    """Codes per sign of a signed ``bits``-bit ADC: ``2^(bits-1) - 1``, at least 1."""
    return float(max(2 ** (bits - 1) - 1, 1))


def dac_codes(x: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Integer DAC codes of ``x`` (no gradient): ``(codes, levels, scale)`` with
    ``x ~ codes / levels * scale``; ``scale`` is the per-sample max|x| (1 for an all-zero
    sample) and ``levels`` the per-sample number of positive codes: ``2^bits - 1`` for a
    sample with no negative entry, ``2^(bits-1) - 1`` (at least 1) for one with a sign."""
    flat = x.detach().reshape(x.shape[0], -1)
    lo, hi = flat.amin(dim=1), flat.amax(dim=1)  # (faster than aminmax here)
    scale = torch.maximum(hi, -lo)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    levels = torch.where(
        lo < 0, torch.full_like(lo, float(max(2 ** (bits - 1) - 1, 1))), torch.full_like(lo, float(2**bits - 1))
    )
    view = (-1, *([1] * (x.dim() - 1)))
    levels, scale = levels.view(view), scale.view(view)
    return torch.mul(x.detach(), levels / scale).round_(), levels, scale
