"""FORMS: fine-grained polarized fragments (Yuan et al., ISCA 2021) on rramsim's layers.

A *fragment* is ``k`` consecutive crossbar rows of one column (rows are the flattened
inputs of a layer, ``weight.reshape(out, -1)``; fragments never straddle a 128-row
crossbar for k in {4, 8, 16}). Training makes every fragment single-signed:

1. ADMM (:func:`admm_polarize`): W-step = SGD on ``loss + rho/2 * ||W - Z + U||^2``;
   Z-step = exact Euclidean projection of ``W + U`` per fragment onto the single-sign set
   (keep the positive or the negative part, whichever has the larger norm,
   :func:`project_fragments`); ``U += W - Z``; ``rho`` grows every iteration.
2. Hard projection, frozen sign mask, masked fine-tuning (:func:`finetune_masked`).

Mapping (:class:`PolarizedMapping`): one cell per weight holding ``|w|``; the fragment's
sign is applied to its digitized partial sum (``sign * ADC(I) = ADC(sign * I)`` for the
symmetric ADC, which is how :class:`PolarizedLinear` / :class:`PolarizedConv2d` apply
it). Each fragment is its own ADC unit (the layer runs with ``tile_rows = k``); the
crossbar count is computed on 128 x 128 crossbars by :func:`forms_cost` (:class:`FragmentCost`,
rramsim's cost model counting per fragment).

Input zero-skipping: inputs are streamed bit-serially (8 bits); a fragment row-group needs
only as many cycles as the highest set bit among its k inputs (:func:`forms_cost` counts
them on real activations).
"""

from __future__ import annotations

import copy
import math
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rramsim.devices import DeviceTable
from rramsim.models.config import CrossbarConfig, ReadOnlyCrossbarConfig
from rramsim.models.cost import CostModel
from rramsim.models.data import train_test_tensors
from rramsim.models.energy import ADC_ENERGY_8BIT, DAC_ENERGY_1BIT
from rramsim.models.layers import AnalogConv2d, AnalogLinear
from rramsim.models.mapping import WeightMapping
from rramsim.models.training import TensorBatches, evaluate, train

__all__ = [
    "FRAGMENT_SIZES",
    "project_fragments",
    "fragment_signs",
    "is_polarized",
    "admm_polarize",
    "finetune_masked",
    "PolarizedMapping",
    "PolarizedLinear",
    "PolarizedConv2d",
    "to_polarized_analog",
    "COST_CROSSBAR",
    "FragmentCost",
    "forms_cost",
    "reproduce_forms",
]

FRAGMENT_SIZES = (4, 8, 16)
#: the paper's fragment ADC: 4 bits of magnitude (the fragment's sign is known digitally; rramsim's
#: ADC model is signed, so the layers run with one more bit)
FRAGMENT_ADC_BITS = 4


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"fragment size k must be a positive integer, got {k!r}")
    return k


def _frag_view(w: torch.Tensor, k: int) -> tuple[torch.Tensor, int]:
    """[out, ...] -> [out, n_frag, k] (zero padded) and the number of real inputs."""
    w2 = w.reshape(w.shape[0], -1)
    n = w2.shape[1]
    pad = (-n) % k
    return F.pad(w2, (0, pad)).reshape(w.shape[0], -1, k), n


def project_fragments(w: torch.Tensor, k: int) -> torch.Tensor:
    """Exact Euclidean projection of ``w`` onto the weights whose fragments are single-signed."""
    _check_k(k)
    f, n = _frag_view(w, k)
    pos, neg = f.clamp_min(0), f.clamp_max(0)
    keep_pos = (pos * pos).sum(-1, keepdim=True) >= (neg * neg).sum(-1, keepdim=True)
    p = torch.where(keep_pos, pos, neg)
    return p.reshape(w.shape[0], -1)[:, :n].reshape(w.shape)


def fragment_signs(w: torch.Tensor, k: int) -> torch.Tensor:
    """+-1 per fragment [out, n_frag] (the sign of the fragment's sum; + for all-zero)."""
    f, _ = _frag_view(w, k)
    return torch.where(f.sum(-1) >= 0, 1.0, -1.0).to(w.dtype)


def _sign_mask(w: torch.Tensor, k: int) -> torch.Tensor:
    """Per-weight sign (its fragment's sign), shaped like ``w``."""
    s = fragment_signs(w, k)
    n = w[0].numel()
    return s.repeat_interleave(k, dim=1)[:, :n].reshape(w.shape)


def is_polarized(w: torch.Tensor, k: int) -> bool:
    """True when no weight has the sign opposite to its fragment."""
    return bool(((w * _sign_mask(w, k)) >= 0).all())


def _layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def admm_polarize(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    k: int,
    *,
    epochs: int = 3,
    iters_per_epoch: int = 3,
    rho0: float = 5e-3,
    rho_growth: float = 2.0,
    lr: float = 1e-3,
    batch_size: int = 128,
    seed: int = 0,
    log=None,
) -> dict:
    """ADMM training of ``model`` (in place) toward single-sign fragments of size ``k``.
    Returns the final rho and the relative distance ||W - Z|| / ||W||.

    One run of :func:`rramsim.models.training.train` (Adam, constant ``lr``): the penalty
    ``rho/2 ||W - Z + U||^2`` is its ``loss_term``; the Z-step, U-step and the growth of
    rho run after every ``ceil(batches / iters_per_epoch)``-th optimizer step."""
    _check_k(k)
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    layers = _layers(model)
    Z = [project_fragments(m.weight.detach(), k) for m in layers]
    U = [torch.zeros_like(z) for z in Z]
    state = {"rho": rho0, "step": 0, "distance": float("nan")}
    batches = TensorBatches(x, y, batch_size, seed=seed)
    update_every = max(1, len(batches) // iters_per_epoch)

    def penalty(_model) -> torch.Tensor:
        reg = sum(((m.weight - z + u) ** 2).sum() for m, z, u in zip(layers, Z, U))
        return 0.5 * state["rho"] * reg

    def z_u_step(_model) -> None:
        state["step"] += 1
        if state["step"] % update_every == 0:  # Z-step, U-step, raise rho
            for i, m in enumerate(layers):
                Z[i] = project_fragments(m.weight + U[i], k)
                U[i] += m.weight - Z[i]
            state["rho"] *= rho_growth

    def report(epoch, _model, result) -> None:
        state["distance"] = math.sqrt(
            sum(float(((m.weight.detach() - z) ** 2).sum()) for m, z in zip(layers, Z))
            / max(sum(float((m.weight.detach() ** 2).sum()) for m in layers), 1e-30)
        )
        if log:
            log(
                f"forms k={k} ADMM epoch {epoch}/{epochs}: loss {result.loss[-1]:.4f}, rho {state['rho']:.3g}, "
                f"||W-Z||/||W|| {state['distance']:.4f}"
            )

    train(
        model,
        batches,
        epochs=epochs,
        lr=lr,
        scheduler="none",
        seed=seed,
        progress=False,
        loss_term=penalty,
        after_step=z_u_step,
        on_epoch_end=report,
    )
    return {"rho": state["rho"], "distance": state["distance"]}


def finetune_masked(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    k: int,
    *,
    epochs: int = 2,
    lr: float = 1e-3,
    batch_size: int = 128,
    seed: int = 0,
    log=None,
) -> None:
    """Hard-project every layer, freeze the fragment signs, fine-tune inside the mask
    (:func:`rramsim.models.training.train`, the mask applied after every step)."""
    layers = _layers(model)
    with torch.no_grad():
        for m in layers:
            m.weight.copy_(project_fragments(m.weight, k))
    masks = [_sign_mask(m.weight.detach(), k) for m in layers]

    def keep_signs(_model) -> None:
        for m, s in zip(layers, masks):
            m.weight.copy_((m.weight * s).clamp_min(0) * s)

    def report(epoch, _model, result) -> None:
        log(f"forms k={k} masked fine-tune epoch {epoch}/{epochs}: loss {result.loss[-1]:.4f}")

    train(
        model,
        TensorBatches(x, y, batch_size, seed=seed + 1),
        epochs=epochs,
        lr=lr,
        seed=seed + 1,
        progress=False,
        after_step=keep_signs,
        on_epoch_end=report if log else None,
    )


# --------------------------------------------------------------------------- mapping and layers


class PolarizedMapping(WeightMapping):
    """One cell per weight holding ``|w|``: ``G = G_min + |w| (G_max - G_min)``.

    The HRS floor is removed with a reference current ``G_min * sum(v)`` (``offset``); the
    sign is not in the cells: the fragment's sign multiplies its digitized partial sum
    (done by :class:`PolarizedLinear` / :class:`PolarizedConv2d`).
    """

    name = "polarized"
    signs = (1.0,)
    layer_applies_signs = True  # a plain analog layer would compute with |w|
    layers_from = "rramsim.models.methods.forms.to_polarized_analog (PolarizedLinear / PolarizedConv2d)"

    def __init__(self, levels: np.ndarray) -> None:
        super().__init__(levels)
        self.offset = self.g_min
        self.slice_weights = np.array([1.0 / (self.g_max - self.g_min)])

    def encode(self, w: torch.Tensor) -> torch.Tensor:
        g = self.g_min + w.to(torch.float64).abs() * (self.g_max - self.g_min)
        return self._nearest(g).view(1, 1, *w.shape)


class _PolarizedMixin:
    """Fragment = one tile of ``tile_rows = k`` rows; its sign applied after the ADC."""

    handles_mappings = (PolarizedMapping,)

    def set_hardware(self, table, config) -> None:
        """As the analog layers' (:meth:`AnalogLayerMixin.set_hardware`); a config that says
        ``mapping='offset'`` is how rramsim stored polarized layers before the polarized
        mapping had a name of its own (state dicts, pickles): read as ``'polarized'``."""
        if isinstance(config, CrossbarConfig) and config.mapping == "offset":
            warnings.warn(
                f"{type(self).__name__}: the config says mapping='offset', as older rramsim versions "
                "saved polarized layers; read as mapping='polarized' (save the model again to store it "
                "so)",
                UserWarning,
                stacklevel=3,
            )
            config = config.replace(mapping=PolarizedMapping)
        super().set_hardware(table, config)

    def _make_mapping(self, table, config) -> WeightMapping:
        if config.mapping != PolarizedMapping.name:
            raise ValueError(
                f"{type(self).__name__} applies fragment signs to |w| cells: its config needs "
                f"mapping=PolarizedMapping, got mapping={config.mapping!r} (to_polarized_analog sets it)"
            )
        return super()._make_mapping(table, config)

    def _after_compile(self, compiled) -> None:
        k = self.config.tile_rows
        w = self.weight.detach()
        if not is_polarized(w, k):
            raise ValueError(
                f"{type(self).__name__}: the weights are not polarized in fragments of {k} rows; "
                "train with admm_polarize + finetune_masked first (or use a differential mapping)"
            )
        mats = compiled.mats
        s = fragment_signs(w, k).t().to(device=mats[0].device, dtype=mats[0].dtype)  # [n_frag, out]
        compiled.mats = [m * s.unsqueeze(1) for m in mats]  # [tiles, 1, out]


class PolarizedLinear(_PolarizedMixin, AnalogLinear):
    """``AnalogLinear`` with the sign-per-fragment mapping (fragment size = tile_rows)."""


class PolarizedConv2d(_PolarizedMixin, AnalogConv2d):
    """``AnalogConv2d`` with the sign-per-fragment mapping (fragment size = tile_rows)."""


def to_polarized_analog(
    model: nn.Module, table: DeviceTable, k: int, config: CrossbarConfig | None = None, seed: int = 0
) -> nn.Module:
    """A copy of the polarized float ``model`` whose layers run on crossbars with the
    sign-per-fragment mapping; ``config.tile_rows`` is set to ``k`` (one ADC per fragment)."""
    _check_k(k)
    config = (config or CrossbarConfig()).replace(tile_rows=k, mapping=PolarizedMapping)
    model = copy.deepcopy(model)
    from rramsim.models.convert import layer_seeds

    targets = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    for (name, m), s in zip(targets, layer_seeds(seed, len(targets))):
        parent = model
        parts = name.split(".")
        for p in parts[:-1]:
            parent = getattr(parent, p)
        if isinstance(m, nn.Linear):
            new = PolarizedLinear.from_linear(m, table, config, seed=s)
        else:
            new = PolarizedConv2d.from_conv(m, table, config, seed=s)
        setattr(parent, parts[-1], new)
    return model


# --------------------------------------------------------------------------- cost


def _layer_inputs(model: nn.Module, x: torch.Tensor) -> list[tuple[nn.Module, torch.Tensor]]:
    """Each weight layer with its input vectors [V, rows] for a batch ``x``."""
    got = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: got.append((mod, inp[0].detach()))) for m in _layers(model)]
    try:
        with torch.no_grad():
            model.eval()
            model(x)
    finally:
        for h in hooks:
            h.remove()
    res = []
    for m, inp in got:
        if isinstance(m, nn.Conv2d):
            v = F.unfold(inp, m.kernel_size, m.dilation, m.padding, m.stride).transpose(1, 2)
            v = v.reshape(-1, v.shape[-1])
        else:
            v = inp.reshape(inp.shape[0], -1)
        res.append((m, v))
    return res


#: the crossbars FORMS and its baseline are costed on: ISAAC's 128 x 128 crossbars with 8-bit
#: bit-serial inputs and an 8-bit ADC per column (the fragments' ADC is FRAGMENT_ADC_BITS);
#: read-only (``COST_CROSSBAR.replace(...)`` gives a changed copy)
COST_CROSSBAR = ReadOnlyCrossbarConfig(bit_serial=True, dac_bits=8, adc_bits=8)


class FragmentCost(CostModel):
    """FORMS' periphery on rramsim's cost model (:class:`rramsim.models.cost.CostModel`).

    ``config``: the crossbars (``tile_rows`` x ``tile_cols``), the columns a weight takes
    (its ``mapping``), bit-serial inputs of ``dac_bits``, the ADC and the prices. ``k``:
    fragments of ``k`` rows, one ADC conversion per fragment and input bit; with
    ``zero_skip`` a fragment's row group streams only the input bits up to the highest set
    bit among its ``k`` inputs. ``k=None``: whole columns per conversion, every input bit
    (the differential baseline). :func:`forms_cost` sets the configs of both. The events
    are counted on real activations (:meth:`network`) and priced by :meth:`CostModel.price`.
    One ADC conversion per output and row group is counted: one signal per weight column,
    so only the ``MAPPINGS`` (a differential pair subtracted before the ADC, or one
    polarized cell) are accepted; a sliced or offset mapping converts more signals.
    """

    MAPPINGS = ("differential", PolarizedMapping.name)

    def __init__(self, config: CrossbarConfig, k: int | None, zero_skip: bool = True) -> None:
        if not isinstance(config, CrossbarConfig):
            raise TypeError(f"FragmentCost takes a CrossbarConfig, got {type(config).__name__}")
        if not config.bit_serial:
            raise ValueError("FragmentCost counts bit-serial input cycles: the config needs bit_serial=True")
        if config.mapping not in self.MAPPINGS:
            raise ValueError(
                f"FragmentCost counts one ADC conversion per output and row group, which holds for "
                f"mapping {' or '.join(map(repr, self.MAPPINGS))}; got mapping={config.mapping!r} "
                "(its slices or reference column convert more signals: cost it with "
                "rramsim.models.cost.cost_report)"
            )
        super().__init__(config)
        if k is not None and (_check_k(k) > config.tile_rows or config.tile_rows % k):
            raise ValueError(
                f"fragment size k={k} must divide the crossbar's tile_rows={config.tile_rows} "
                "(a fragment never straddles two crossbars)"
            )
        self.k = k
        self.zero_skip = zero_skip

    def layer_events(self, out: int, v: torch.Tensor, vper: float) -> dict:
        """Events per inference of one layer with ``out`` outputs, input vectors ``v``
        [V, rows] (``vper`` per sample): crossbars, cells, cycles (the row groups of a
        crossbar work in parallel, so an MVM takes their largest count), fragment cycles
        (their sum: the conversion work zero-skipping saves), ADC and DAC conversions, and
        the row-group bit-cycles used out of every bit's."""
        c, k = self.config, self.k
        rows = v.shape[1]
        cols = out * c.columns_per_weight
        col_xbars = math.ceil(cols / c.tile_cols)
        passes = 2 if bool((v < 0).any()) else 1  # a signed input: one pass per sign
        scale = v.abs().amax(dim=1, keepdim=True).clamp_min(1e-30)
        codes = torch.round(v.abs() / scale * (2**c.dac_bits - 1)).to(torch.int64)
        g = k or c.tile_rows
        pad = (-rows) % g
        cg = F.pad(codes, (0, pad)).reshape(codes.shape[0], -1, g)  # [V, groups, g]
        need = (
            (cg.amax(-1).clamp_min(0) + 1).float().log2().ceil()
            if self.zero_skip and k
            else torch.full(cg.shape[:2], float(c.dac_bits))
        )  # bits per row-group
        per_x = c.tile_rows // g  # row groups per crossbar
        gpad = (-need.shape[1]) % per_x
        lat = F.pad(need, (0, gpad)).reshape(need.shape[0], -1, per_x).amax(-1).amax(-1)  # tiles in parallel
        return {
            "crossbars": math.ceil(rows / c.tile_rows) * col_xbars,
            "cells": rows * cols,
            "cycles": float(lat.mean()) * vper * passes,
            "fragment_cycles": float(need.sum(1).mean()) * vper * passes,
            "adc_conversions": float(need.sum(1).mean()) * out * vper * passes,
            "dac_conversions": float(need.mean(0).sum() * g) * vper * passes * col_xbars,
            "group_cycles": float(need.sum()) / v.shape[0] * vper,
            "full_cycles": need.shape[1] * c.dac_bits * vper,
        }

    def network(self, model: nn.Module, x: torch.Tensor) -> dict:
        """Events and energy per inference of ``model``'s linear and conv layers, measured on
        the activations of batch ``x`` (layers one after another)."""
        n = x.shape[0]
        total = {
            "crossbars": 0,
            "cells": 0,
            "cycles": 0.0,
            "fragment_cycles": 0.0,
            "adc_conversions": 0.0,
            "dac_conversions": 0.0,
            "skipped_fraction": 0.0,
        }
        group_cycles = full_cycles = 0.0
        for m, v in _layer_inputs(model, x):
            ev = self.layer_events(m.weight.shape[0], v, v.shape[0] / n)
            for key in ("crossbars", "cells", "cycles", "fragment_cycles", "adc_conversions", "dac_conversions"):
                total[key] += ev[key]
            group_cycles += ev["group_cycles"]
            full_cycles += ev["full_cycles"]
        cost = self.price(adc_conversions=total["adc_conversions"], dac_conversions=total["dac_conversions"])
        total["adc_energy"] = cost.adc_energy
        total["dac_energy"] = cost.dac_energy
        total["energy"] = cost.energy
        total["skipped_fraction"] = 1 - group_cycles / full_cycles
        return total


def forms_cost(
    model: nn.Module,
    x: torch.Tensor,
    k: int | None,
    config: CrossbarConfig | None = None,
    *,
    fragment_adc_bits: int = FRAGMENT_ADC_BITS,
    zero_skip: bool = True,
) -> dict:
    """Crossbars, bit-serial cycles and periphery energy per inference of ``model``,
    measured on the activations of batch ``x`` (:class:`FragmentCost`).

    ``k=None``: the differential baseline on ``config`` (default :data:`COST_CROSSBAR`:
    128 x 128 crossbars, 8-bit bit-serial inputs, 8-bit ADC; two columns per weight, one ADC
    conversion per crossbar column per input bit). ``k``: FORMS on the same crossbars with
    the polarized mapping and a ``fragment_adc_bits`` ADC (one column per weight, one
    conversion per fragment and input bit; with ``zero_skip`` a fragment row group skips
    the input bits above the highest set bit of its k inputs). Inputs are quantized per
    sample to ``config.dac_bits`` (unsigned; a signed first layer adds a pass). ``cycles``:
    the row groups of a crossbar work in parallel, so an MVM takes the largest number of
    cycles among them; layers run one after another. ``fragment_cycles``: the sum over row
    groups (the conversion work zero-skipping saves).
    """
    config = COST_CROSSBAR if config is None else config
    if k is None:
        hw = config.replace(mapping="differential")
    else:
        hw = config.replace(mapping=PolarizedMapping, adc_bits=fragment_adc_bits)
    return FragmentCost(hw, k, zero_skip).network(model, x)


# --------------------------------------------------------------------------- reproduction


PAPER = (
    'Yuan et al., "FORMS: Fine-grained Polarized ReRAM-based In-situ Computation for Mixed-signal '
    'DNN Accelerator", ISCA 2021'
)


def reproduce_forms(
    table: DeviceTable,
    *,
    table_name: str = "",
    small: bool = False,
    seed: int = 0,
    epochs: int | None = None,
    ks: tuple[int, ...] = FRAGMENT_SIZES,
    command: str = "",
    log=None,
):
    """Unconstrained LeNet-5 twin, then ADMM-polarized copies for each k; accuracy (digital
    and on crossbars), crossbars, cycles and energy versus the differential mapping."""
    from rramsim.models.methods.report import Report, fmt_pct, md_table

    log = log or (lambda s: None)
    for k in ks:
        _check_k(k)
    rep = Report(
        title="FORMS: polarized fragments, sign-per-fragment mapping, input zero-skipping",
        paper=PAPER,
        command=command,
        seed=seed,
        table=table_name,
        small=small,
    )
    n_train, n_test, n_xbar = (3000, 500, 200) if small else (60000, 10000, 2000)
    epochs = epochs or (1 if small else 4)
    admm_epochs, ft_epochs = (1, 1) if small else (3, 2)
    x, y, xt, yt = train_test_tensors("mnist", n_train, n_test, seed)
    test = TensorBatches(xt, yt, 1000, shuffle=False)
    on_xbar = TensorBatches(xt[:n_xbar], yt[:n_xbar], 250, shuffle=False)
    # the published evaluation's crossbars: Ohmic cells, no wire resistance (rramsim's defaults add both)
    hw = CrossbarConfig.ohmic(bit_serial=True, dac_bits=8, adc_bits=8, read_noise="per_forward")
    twin, results = _unconstrained_twin(x, y, xt, test, on_xbar, table, hw, epochs, seed, log)
    rows = []
    for k in ks:
        r = _polarized(twin, x, y, xt, test, on_xbar, table, hw, k, admm_epochs, ft_epochs, seed, log)
        results["k"][k] = r
        rows.append(_fragment_row(k, r, results["acc_twin"], results["cost_base"]))
    acc_twin, acc_twin_x, cost_base = results["acc_twin"], results["acc_twin_xbar"], results["cost_base"]
    _summary_rows(rep, results, n_train, n_test)
    rep.section(
        "Per fragment size",
        md_table(
            [
                "k",
                "accuracy (digital)",
                "vs twin",
                f"accuracy on crossbars ({n_xbar} images)",
                "crossbars",
                "crossbars saved",
                "cells saved",
                "cycles/inference",
                "cycle speed-up",
                "input bits skipped",
                "periphery energy nJ",
                "energy ratio",
            ],
            rows,
        ),
    )
    rep.section(
        "Differential baseline (same twin network)",
        md_table(
            [
                "accuracy (digital)",
                f"accuracy on crossbars ({n_xbar} images)",
                "crossbars",
                "cells",
                "cycles/inference",
                "periphery energy nJ",
            ],
            [
                [
                    fmt_pct(acc_twin),
                    fmt_pct(acc_twin_x),
                    cost_base["crossbars"],
                    cost_base["cells"],
                    f"{cost_base['cycles']:.0f}",
                    f"{cost_base['energy'] * 1e9:.3f}",
                ]
            ],
        ),
    )
    rep.notes += NOTES
    rep.results = results
    return rep.finish()


def _unconstrained_twin(
    x, y, xt, test, on_xbar, table: DeviceTable, hw: CrossbarConfig, epochs: int, seed: int, log
) -> tuple[nn.Module, dict]:
    """The LeNet-5 without the fragment constraint, its accuracy (digital and on differential
    crossbars) and its cost: the baseline every polarized copy is compared with."""
    from rramsim.models.convert import convert_to_analog
    from rramsim.models.networks import LeNet5

    torch.manual_seed(seed)
    twin = LeNet5()
    fit = train(
        twin,
        TensorBatches(x, y, 128, seed=seed),
        epochs=epochs,
        lr=3e-3,
        seed=seed,
        progress=False,
        on_epoch_end=lambda e, m, r: log(f"forms twin epoch {e}/{epochs}: loss {r.loss[-1]:.4f}"),
    )
    acc_twin = evaluate(twin, test)
    log(f"forms: unconstrained twin {acc_twin:.4f} ({fit.seconds:.1f} s)")
    base_an = convert_to_analog(twin, table, hw.replace(mapping="differential"), seed=seed)
    acc_twin_x = evaluate(base_an, on_xbar)
    cost_base = forms_cost(twin, xt[:200], None)
    log(f"forms: twin on differential crossbars {acc_twin_x:.4f}")
    return twin, {"acc_twin": acc_twin, "acc_twin_xbar": acc_twin_x, "cost_base": cost_base, "k": {}}


def _polarized(
    twin: nn.Module,
    x,
    y,
    xt,
    test,
    on_xbar,
    table: DeviceTable,
    hw: CrossbarConfig,
    k: int,
    admm_epochs: int,
    ft_epochs: int,
    seed: int,
    log,
) -> dict:
    """A copy of the twin polarized in fragments of ``k`` rows (ADMM, then masked
    fine-tuning): its accuracy (digital and on crossbars) and cost, with and without
    input zero-skipping."""
    model = copy.deepcopy(twin)
    t1 = time.perf_counter()
    st = admm_polarize(model, x, y, k, epochs=admm_epochs, seed=seed, log=log)
    finetune_masked(model, x, y, k, epochs=ft_epochs, seed=seed, log=log)
    assert all(is_polarized(m.weight.detach(), k) for m in _layers(model))
    acc = evaluate(model, test)
    an = to_polarized_analog(model, table, k, hw.replace(adc_bits=FRAGMENT_ADC_BITS + 1), seed=seed)
    acc_x = evaluate(an, on_xbar)
    c = forms_cost(model, xt[:200], k)
    c_noskip = forms_cost(model, xt[:200], k, zero_skip=False)
    log(f"forms k={k}: digital {acc:.4f}, crossbars {acc_x:.4f}, cost {c}")
    return {
        "acc": acc,
        "acc_xbar": acc_x,
        "cost": c,
        "cost_noskip": c_noskip,
        "admm": st,
        "seconds": time.perf_counter() - t1,
    }


def _fragment_row(k: int, r: dict, acc_twin: float, cost_base: dict) -> list:
    """The per-fragment-size table's row of fragment size ``k`` (result ``r``)."""
    from rramsim.models.methods.report import fmt_pct

    acc, c = r["acc"], r["cost"]
    return [
        k,
        fmt_pct(acc),
        f"{100 * (acc - acc_twin):+.2f} pp",
        fmt_pct(r["acc_xbar"]),
        c["crossbars"],
        f"{cost_base['crossbars'] / c['crossbars']:.2f}x",
        f"{cost_base['cells'] / c['cells']:.2f}x",
        f"{c['cycles']:.0f}",
        f"{cost_base['cycles'] / c['cycles']:.2f}x",
        f"{100 * c['skipped_fraction']:.1f}%",
        f"{c['energy'] * 1e9:.3f}",
        f"{cost_base['energy'] / c['energy']:.2f}x",
    ]


def _summary_rows(rep, results: dict, n_train: int, n_test: int) -> None:
    """The report's paper-versus-rramsim rows; adds ``fps_iso_area`` to ``results``."""
    from rramsim.models.methods.report import fmt_pct

    acc_twin, cost_base, per_k = results["acc_twin"], results["cost_base"], results["k"]
    best = max(per_k.values(), key=lambda r: r["acc"])
    worst_gap = max(acc_twin - r["acc"] for r in per_k.values())
    rep.row("dataset / network", "MNIST / LeNet-5", f"MNIST ({n_train} train / {n_test} test) / LeNet-5", "")
    rep.row(
        "accuracy, polarized LeNet-5",
        "99.17% (with pruning + quantization)",
        ", ".join(f"k={k}: {fmt_pct(r['acc'])}" for k, r in per_k.items()),
        f"unconstrained twin {fmt_pct(acc_twin)}; largest gap {100 * worst_gap:.2f} pp (target <= 0.3 pp)",
    )
    rep.row(
        "crossbars, polarized vs differential",
        "2x fewer (no differential pair)",
        f"{cost_base['crossbars']} -> {best['cost']['crossbars']} (128x128), cells "
        f"{cost_base['cells']} -> {best['cost']['cells']} ({cost_base['cells'] / best['cost']['cells']:.1f}x)",
        "crossbar count rounds up per layer",
    )
    iso = {
        k: cost_base["cycles"] * cost_base["crossbars"] / (r["cost"]["cycles"] * r["cost"]["crossbars"])
        for k, r in per_k.items()
    }
    results["fps_iso_area"] = iso
    rep.row(
        "FPS over an ISAAC-like baseline",
        "1.12–2.4x",
        ", ".join(f"k={k}: {v:.2f}x" for k, v in iso.items()),
        "at equal crossbar area: (cycles x crossbars) of the differential baseline over FORMS'; "
        "layers replicated into the freed crossbars",
    )
    rep.row(
        "input bit-cycles skipped (zero-skipping)",
        "reported as a speed-up source",
        ", ".join(f"k={k}: {100 * r['cost']['skipped_fraction']:.1f}%" for k, r in per_k.items()),
        "fragment row-groups skip the zero high bits of their k inputs",
    )


NOTES = [
    "Crossbar accuracy: rramsim's AnalogLinear/AnalogConv2d with the shipped table's programming outcome and "
    "read noise, 8-bit bit-serial inputs; baseline differential pairs with an 8-bit ADC per 128-row column, "
    "FORMS one |w| cell per weight, one 4-bit magnitude ADC conversion per fragment (a 5-bit signed ADC in rramsim's model), sign applied after the ADC.",
    "Weights are continuous (nearest of the table's 8 levels per cell), no pruning or 8-bit slicing: "
    "the paper's 99.17% includes pruning and quantization we do not apply.",
    f"Periphery energy = ADC conversions x {ADC_ENERGY_8BIT * 1e12:g} pJ x 2^(bits-8) + 1-bit DAC conversions x "
    f"{DAC_ENERGY_1BIT * 1e12:g} pJ "
    '(ISAAC figures; docs/DESIGN.md, "Reference numbers"); array read energy is left out (same cells either way).',
    "Only MNIST is used (no CIFAR/ImageNet offline).",
]
