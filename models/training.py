"""Training and evaluation: float, hardware-aware (noise injection), and Monte Carlo trials.

- :func:`train` trains any ``nn.Module``. With ``weight_noise > 0`` it is hardware-aware:
  every step perturbs every weight matrix that goes onto crossbars (``nn.Linear``, convolutions,
  attention projections, LSTM/GRU gate matrices) by Gaussian noise
  (standard deviation ``weight_noise`` x the layer's max ``|w|``, i.e. relative to the
  conductance window a weight maps onto), takes the gradient at the perturbed weights and
  updates the clean ones. Given a model converted with
  ``rramsim.models.convert_to_analog(model, table, config)`` instead, the analog layers
  draw programming/read noise themselves in every forward and gradients flow through them,
  so plain :func:`train` on that model is hardware-aware training with the table's noise;
  :func:`copy_trained_weights` then brings what it learned back into the float network.
  The hooks the published methods need are arguments: ``loss_term(model)`` adds a
  penalty to the loss (ADMM's ``rho/2 ||W - Z + U||^2``), ``after_step(model)`` runs after
  every optimizer step (projections, clamping, re-tying), ``on_epoch_end`` after every
  epoch. :class:`TensorBatches` feeds it in-memory tensors in seeded mini-batches.
- :func:`evaluate` is top-1 accuracy on a loader (or a :class:`TensorBatches`).
- :func:`evaluate_trials` programs a float model onto crossbars K times (independent,
  seeded programmings), evaluates each, and returns mean/std beside the ideal float
  accuracy and the inference cost report.
- :func:`save_checkpoint`/:func:`load_checkpoint`: network name + state dict + accuracy +
  the command that made it; loading uses ``weights_only`` (no pickled code runs).

Everything takes an explicit seed: same seed, same data order, same noise, same result.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .networks import build_network, canonical_name

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "TensorBatches",
    "TrainResult",
    "TrialsResult",
    "copy_trained_weights",
    "evaluate",
    "evaluate_trials",
    "is_analog",
    "load_checkpoint",
    "noise_from_table",
    "random_shift",
    "save_checkpoint",
    "train",
]

CHECKPOINT_FORMAT = "rramsim.checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or not an rramsim checkpoint."""


# --------------------------------------------------------------------------- helpers


def _device_of(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def is_analog(model: nn.Module) -> bool:
    """True when ``model`` holds converted crossbar layers (they inject noise themselves)."""
    from .layers import AnalogLayerMixin

    return any(isinstance(m, AnalogLayerMixin) for m in model.modules())


#: modules whose weight matrices go onto crossbars (and get noise in float hardware-aware training)
_CROSSBAR_MODULES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.MultiheadAttention, nn.RNNBase)


def _weight_matrices(model: nn.Module) -> list[nn.Parameter]:
    """Every weight matrix that goes onto crossbars: Linear and convolution weights, the
    attention projections (``in_proj_weight`` or ``q/k/v_proj_weight``; ``out_proj`` is a
    Linear) and the LSTM/GRU gate matrices (``weight_ih_l*``, ``weight_hh_l*``)."""
    out, seen = [], set()
    for m in model.modules():
        if not isinstance(m, _CROSSBAR_MODULES):
            continue
        for name, p in m.named_parameters(recurse=False):
            if "weight" in name and p.dim() >= 2 and id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


def noise_from_table(table: Any) -> float:
    """Relative weight-noise level that a DeviceTable implies, for float noise injection.

    The programming spread (std of reached G around each level) and the read noise,
    averaged over levels and taken relative to the conductance window ``g_max - g_min``,
    added in quadrature. A weight of max magnitude spans that window, so this is the
    ``weight_noise`` for :func:`train` that mimics the table on a plain float model.
    """
    window = float(table.g_max - table.g_min)
    if not math.isfinite(window) or window <= 0:
        raise ValueError(f"device table has an empty conductance window ({window} S)")
    prog = float(np.mean(np.std(np.asarray(table.g_final), axis=1)))
    read = float(np.mean(np.asarray(table.read_sigma_at(np.asarray(table.targets)))))
    return math.sqrt(prog**2 + read**2) / window


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Translate each image of ``x`` [B, C, H, W] by up to ``max_shift`` pixels (seeded).

    The border is filled with the batch minimum (the background of normalized digits).
    """
    if max_shift <= 0:
        return x
    b, c, h, w = x.shape
    s = int(max_shift)
    xp = F.pad(x, (s, s, s, s), value=float(x.min()))
    shifts = torch.randint(0, 2 * s + 1, (2, b), generator=generator).to(x.device)
    rows = shifts[0][:, None] + torch.arange(h, device=x.device)  # [B, H]
    cols = shifts[1][:, None] + torch.arange(w, device=x.device)  # [B, W]
    bi = torch.arange(b, device=x.device)[:, None, None, None]
    ci = torch.arange(c, device=x.device)[None, :, None, None]
    return xp[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]


class TensorBatches:
    """Mini-batches ``(x[idx], y[idx])`` of in-memory tensors, for :func:`train` and
    :func:`evaluate`.

    With ``shuffle`` every pass draws a fresh permutation from ``generator`` (default: one
    seeded with ``seed``), so consecutive epochs see different, reproducible orders;
    without it the batches come in order (evaluation).
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int = 128,
        *,
        shuffle: bool = True,
        seed: int = 0,
        generator: torch.Generator | None = None,
    ) -> None:
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"TensorBatches: {x.shape[0]} inputs but {y.shape[0]} labels")
        if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.x, self.y, self.batch_size, self.shuffle = x, y, int(batch_size), bool(shuffle)
        self.generator = generator if generator is not None else torch.Generator().manual_seed(int(seed))

    def __len__(self) -> int:
        return math.ceil(self.x.shape[0] / self.batch_size)

    def __iter__(self):
        n = self.x.shape[0]
        if not self.shuffle:
            for k in range(0, n, self.batch_size):
                yield self.x[k : k + self.batch_size], self.y[k : k + self.batch_size]
            return
        perm = torch.randperm(n, generator=self.generator)
        for k in range(0, n, self.batch_size):
            idx = perm[k : k + self.batch_size]
            yield self.x[idx], self.y[idx]


@dataclass
class TrainResult:
    """History of one :func:`train` run."""

    epochs: int
    loss: list = field(default_factory=list)  # mean training loss per epoch
    train_accuracy: list = field(default_factory=list)
    test_accuracy: list = field(default_factory=list)  # per epoch when a test loader is given
    seconds: float = 0.0

    @property
    def final_accuracy(self) -> float | None:
        return self.test_accuracy[-1] if self.test_accuracy else None


# --------------------------------------------------------------------------- training


def train(
    model: nn.Module,
    loader: Iterable,
    *,
    epochs: int = 1,
    lr: float = 3e-3,
    weight_decay: float = 0.0,
    scheduler: str = "onecycle",
    seed: int = 0,
    weight_noise: float = 0.0,
    augment_shift: int = 0,
    test_loader: Iterable | None = None,
    max_steps: int | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[int, nn.Module, "TrainResult"], None] | None = None,
    loss_term: Callable[[nn.Module], torch.Tensor] | None = None,
    after_step: Callable[[nn.Module], None] | None = None,
) -> TrainResult:
    """Train ``model`` in place with Adam (and a OneCycle schedule by default).

    ``weight_noise`` > 0 makes it hardware-aware on a float model (see module docstring);
    on a converted analog model leave it 0: its layers already inject the table's noise.
    ``augment_shift`` translates training images by up to that many pixels.
    ``max_steps`` stops early after that many optimizer steps (tests, quick runs).
    ``on_epoch_end(epoch, model, result)`` runs after every finished epoch (e.g. to save a
    checkpoint, so an interrupted run keeps its finished epochs).
    ``loss_term(model)`` is added to the cross entropy before the backward pass (the loss
    recorded per epoch is the cross entropy alone); ``after_step(model)`` runs under
    ``torch.no_grad()`` after every optimizer and scheduler step.
    The loader's own generator fixes the data order; ``seed`` fixes the noise and shifts.
    """
    if int(epochs) <= 0:
        raise ValueError(f"epochs must be a positive integer, got {epochs}")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive finite number, got {lr}")
    if not (weight_noise >= 0 and math.isfinite(weight_noise)):
        raise ValueError(f"weight_noise must be >= 0, got {weight_noise}")
    if scheduler not in ("onecycle", "none"):
        raise ValueError(f"unknown scheduler {scheduler!r}; choose 'onecycle' or 'none'")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    if weight_noise > 0 and is_analog(model):
        raise ValueError(
            "weight_noise is for float models; a converted analog model injects the "
            "table's noise in its own forward: train it with weight_noise=0"
        )
    device = _device_of(model)
    gen = torch.Generator().manual_seed(int(seed))
    noise_gen = torch.Generator(device=device).manual_seed(int(seed) + 1)
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    steps_per_epoch = len(loader)  # type: ignore[arg-type]
    total = int(epochs) * steps_per_epoch
    if max_steps is not None:
        total = min(total, int(max_steps))
    sched = None
    if scheduler == "onecycle" and total > 1:
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total)
    noisy = _weight_matrices(model) if weight_noise > 0 else []
    result = TrainResult(epochs=int(epochs))
    t0 = time.perf_counter()
    step = 0
    for epoch in range(int(epochs)):
        model.train()
        loss_sum, correct, seen = 0.0, 0, 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{epochs}", disable=not progress, leave=False, file=sys.stderr)
        for x, y in bar:
            if step >= total:
                break
            x, y = x.to(device), y.to(device)
            if augment_shift:
                x = random_shift(x, augment_shift, gen)
            saved = []
            if noisy:
                with torch.no_grad():
                    for w in noisy:
                        saved.append(w.detach().clone())
                        scale = w.abs().max() * weight_noise
                        w.add_(torch.randn(w.shape, generator=noise_gen, device=device, dtype=w.dtype) * scale)
            out = model(x)
            loss = F.cross_entropy(out, y)
            total_loss = loss if loss_term is None else loss + loss_term(model)
            opt.zero_grad(set_to_none=True)
            total_loss.backward()
            if noisy:
                with torch.no_grad():
                    for w, w0 in zip(noisy, saved):
                        w.copy_(w0)
            if not torch.isfinite(total_loss):
                raise FloatingPointError(f"training loss became {total_loss.item()} at step {step}; lower lr ({lr})")
            opt.step()
            if sched is not None:
                sched.step()
            if after_step is not None:
                with torch.no_grad():
                    after_step(model)
            step += 1
            n = y.shape[0]
            loss_sum += float(loss.detach()) * n
            correct += int((out.detach().argmax(1) == y).sum())
            seen += n
            if progress:
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}")
        bar.close()
        result.loss.append(loss_sum / max(seen, 1))
        result.train_accuracy.append(correct / max(seen, 1))
        if test_loader is not None:
            acc = evaluate(model, test_loader, progress=False)
            result.test_accuracy.append(acc)
            if progress:
                tqdm.write(
                    f"epoch {epoch + 1}/{epochs}: loss {result.loss[-1]:.4f}  "
                    f"train {result.train_accuracy[-1]:.4f}  test {acc:.4f}",
                    file=sys.stderr,
                )
        result.seconds = time.perf_counter() - t0
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, model, result)
        if step >= total:
            break
    result.seconds = time.perf_counter() - t0
    return result


def copy_trained_weights(analog: nn.Module, float_model: nn.Module) -> None:
    """Copy everything a converted model trained (the float weights its analog layers keep,
    norms, embeddings, running statistics) back into the plain network it came from."""
    from .convert import to_digital

    float_model.load_state_dict(to_digital(analog).state_dict())


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, *, progress: bool = False, desc: str = "evaluate") -> float:
    """Top-1 accuracy (a fraction in [0, 1]) of ``model`` on ``loader``.

    The model is put in eval mode (analog layers still draw read noise every forward).
    """
    device = _device_of(model)
    was_training = model.training
    model.eval()
    correct, seen = 0, 0
    try:
        for x, y in tqdm(loader, desc=desc, disable=not progress, leave=False, file=sys.stderr):
            x, y = x.to(device), y.to(device)
            correct += int((model(x).argmax(1) == y).sum())
            seen += int(y.shape[0])
    finally:
        model.train(was_training)
    if seen == 0:
        raise ValueError("evaluate: the loader yielded no examples")
    return correct / seen


# --------------------------------------------------------------------------- trials


@dataclass
class TrialsResult:
    """Accuracy over K independent programmings, beside the float accuracy, and costs."""

    accuracies: list
    float_accuracy: float
    drift: float
    seed: int
    cost: Any = None  # the CostReport of the programmed model (per layer and total)
    config: Any = None
    conversion: Any = None  # the ConversionReport: what ran on crossbars, what stayed digital
    #: largest error of the per-programming IR-drop models over the layers and programmings (of a
    #: tile's full-scale current, measured at programming on probe vectors; None: no layer built one)
    ir_drop_error: float | None = None
    #: layers whose per-programming model was over its tolerance (they used the per-vector solve)
    ir_drop_fallback: list = field(default_factory=list)

    @property
    def mean(self) -> float:
        return float(np.mean(self.accuracies))

    @property
    def std(self) -> float:
        return float(np.std(self.accuracies, ddof=1)) if len(self.accuracies) > 1 else 0.0

    @property
    def drop(self) -> float:
        """Float accuracy minus mean analog accuracy (fraction)."""
        return self.float_accuracy - self.mean

    def summary(self) -> str:
        return (
            f"accuracy {100 * self.mean:.2f} ± {100 * self.std:.2f} % over "
            f"{len(self.accuracies)} programmings (drift {self.drift:g} s)   "
            f"float {100 * self.float_accuracy:.2f} %   drop {100 * self.drop:.2f} pp"
        )


def _config_with(config: Any, **changes: Any) -> Any:
    """A copy of ``config`` (default: ``CrossbarConfig()``) with ``changes`` applied."""
    from .config import CrossbarConfig

    config = CrossbarConfig() if config is None else config
    names = {f.name for f in dataclasses.fields(config)}
    unknown = [k for k in changes if k not in names]
    if unknown:
        raise ValueError(f"{type(config).__name__} has no field(s) {unknown}")
    return dataclasses.replace(config, **changes)


def _cost_report(analog: nn.Module, loader: Iterable) -> Any:
    """The inference cost report (per layer and total) of a programmed model.

    One batch of the loader is run to measure vectors per sample and input statistics;
    the batch size of the loader is the batch the reprogramming cost is amortized over.
    """
    from .cost import cost_report

    x, _ = next(iter(loader))
    x = x.to(_device_of(analog))
    return cost_report(analog, example_input=x, batch_size=int(x.shape[0]))


def evaluate_trials(
    float_model: nn.Module,
    table: Any,
    config: Any,
    loader: Iterable,
    *,
    trials: int = 10,
    drift: float | None = None,
    seed: int = 0,
    progress: bool = True,
) -> TrialsResult:
    """Accuracy mean/std over ``trials`` independent programmings of ``float_model``.

    Each trial converts/programs the float weights onto crossbars described by ``table``
    and ``config`` (``drift`` overrides ``config.drift_time``) with seed ``seed + k`` and
    evaluates on ``loader``; read noise is drawn with a generator seeded per trial too.
    The float model itself is left untouched. Also returns the ideal float accuracy, the
    cost report and the conversion report of the programmed model.
    """
    if int(trials) <= 0:
        raise ValueError(f"trials must be a positive integer, got {trials}")
    if drift is not None and not (drift >= 0 and math.isfinite(drift)):
        raise ValueError(f"drift time must be >= 0 seconds, got {drift}")
    from .convert import analog_layers, conversion_report, convert_to_analog, program_analog

    if drift is not None:
        config = _config_with(config, drift_time=float(drift))
    elif config is None:
        config = _config_with(None)
    float_acc = evaluate(float_model, loader, progress=False)
    accs: list[float] = []
    cost = None
    analog = None
    ir_err, fallback = None, []
    bar = tqdm(range(int(trials)), desc="programmings", disable=not progress, file=sys.stderr)
    for k in bar:
        # trial k: programming seed seed+k; each layer's read-noise generator restarts from
        # its programming seed, so a trial is reproducible on its own
        if analog is None:
            analog = convert_to_analog(float_model, table, config, seed=int(seed) + k)
            analog.eval()
        else:
            program_analog(analog, seed=int(seed) + k)
        acc = evaluate(analog, loader, progress=False)
        accs.append(acc)
        for name, layer in analog_layers(analog):
            err = getattr(layer.engine, "ir_drop_error", None)
            if err is not None:
                ir_err = max(err, ir_err if ir_err is not None else 0.0)
                if layer.engine.ir_drop_fallback and name not in fallback:
                    fallback.append(name)
        if cost is None:
            cost = _cost_report(analog, loader)
        bar.set_postfix(acc=f"{acc:.4f}")
    bar.close()
    return TrialsResult(
        accuracies=accs,
        float_accuracy=float_acc,
        drift=float(getattr(config, "drift_time", drift or 0.0)),
        seed=int(seed),
        cost=cost,
        config=config,
        conversion=conversion_report(analog),
        ir_drop_error=ir_err,
        ir_drop_fallback=fallback,
    )


# --------------------------------------------------------------------------- checkpoints


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    network: str,
    *,
    dataset: str | None = None,
    accuracy: float | None = None,
    command: str | None = None,
    num_classes: int = 10,
    in_channels: int = 1,
    extra: dict | None = None,
) -> Path:
    """Save network name + float state dict + accuracy + command, atomically."""
    from datetime import datetime, timezone

    try:
        from importlib.metadata import version

        rv = version("rramsim")
    except Exception:  # pragma: no cover - bare checkout
        rv = "unknown"
    path = Path(path)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "network": canonical_name(network),
        "num_classes": int(num_classes),
        "in_channels": int(in_channels),
        "dataset": dataset,
        "accuracy": None if accuracy is None else float(accuracy),
        "command": command,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "rramsim_version": rv,
        "state_dict": state,
        "extra": dict(extra or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    torch.save(ckpt, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the network from a checkpoint; return ``(model, metadata)``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot read as a torch checkpoint ({exc})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not an rramsim checkpoint (no format={CHECKPOINT_FORMAT!r})")
    if ckpt.get("format_version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {ckpt.get('format_version')!r} is not "
            f"supported (this rramsim reads version {CHECKPOINT_VERSION})"
        )
    model = build_network(
        ckpt["network"], num_classes=ckpt.get("num_classes", 10), in_channels=ckpt.get("in_channels", 1)
    )
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: state dict does not fit {ckpt['network']}: {exc}") from exc
    meta = {k: v for k, v in ckpt.items() if k != "state_dict"}
    return model.to(map_location), meta
