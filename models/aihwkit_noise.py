"""A rramsim DeviceTable as an IBM aihwkit inference noise model.

::

    rramsim table export chip.h5 --format aihwkit -o chip.aihwkit.npz
    from aihwkit.simulator.configs import InferenceRPUConfig
    from rramsim.models.aihwkit_noise import TableNoiseModel
    rpu = InferenceRPUConfig(noise_model=TableNoiseModel.from_file("chip.aihwkit.npz"))

aihwkit works in uS; the model converts. Its conductance converter is aihwkit's
``SinglePairConductanceConverter`` over the table's window (lowest to highest target), so
every weight lands on conductances the table characterized.

Programming
    A target g is first moved to the nearest of the table's levels (the device was
    characterized at those levels only, and rramsim's own mapping writes only them;
    ``quantize=False`` keeps targets continuous). A target between two levels' targets draws one uniform u; each neighbouring level
    gives the relative error of its outcome at rank u (inverse CDF of the level's reached
    conductances over its target, linear between neighbouring samples, as rramsim's own
    programming model draws them), and the two errors are mixed linearly in g. A target on
    a level draws exactly that level's distribution; below the lowest or above the highest
    level the end level's errors apply.
Drift and read
    The drift coefficient of a cell is the conductance it was written to (its level). At
    t > 0, G(t) = G_prog (r(t) + s(t) z)
    with r, s of the table's /retention group per level, in log t between recorded times,
    linear in t from 1 before the first, the power law of the last two times beyond the
    last (rramsim's own drift rules), mixed in g like the errors; then one read with the
    table's read-noise sigma(G) is added. At t = 0 (``drift_analog_weights(0)``) the cells
    are only read. A table without retention data refuses t > 0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from rramsim.devices import DeviceTable

US = 1e-6
KEYS = ("targets_us", "rel_error", "read_g_us", "read_sigma_us")


def export_arrays(table: DeviceTable) -> dict[str, np.ndarray]:
    """The arrays the noise model needs (conductances in uS), from a table."""
    arrays = {
        "targets_us": table.targets / US,
        "rel_error": np.sort(table.g_final / table.targets[:, None] - 1.0, axis=1),
        "read_g_us": table.read_g / US,
        "read_sigma_us": table.read_sigma / US,
    }
    if table.has_retention:
        arrays.update(
            retention_t=table.retention_t, retention_ratio=table.retention_ratio, retention_sigma=table.retention_sigma
        )
    return arrays


def load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Arrays written by ``rramsim table export --format aihwkit``."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: np.asarray(z[k]) for k in z.files}
    missing = [k for k in KEYS if k not in arrays]
    if missing:
        raise ValueError(
            f"{path}: not an rramsim aihwkit export (lacks {missing}); "
            "write one with `rramsim table export TABLE.h5 --format aihwkit -o OUT.npz`"
        )
    return arrays


def _neighbours(g: torch.Tensor, levels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(lower level index, upper level index, weight of the upper) of conductances ``g``."""
    if levels.numel() == 1:
        zero = torch.zeros_like(g, dtype=torch.long)
        return zero, zero, torch.zeros_like(g)
    gc = g.clamp(levels[0], levels[-1])
    hi = torch.searchsorted(levels, gc.contiguous()).clamp(1, levels.numel() - 1)
    lo = hi - 1
    w = (gc - levels[lo]) / (levels[hi] - levels[lo])
    return lo, hi, w


def drift_rules(t: float, times: np.ndarray, ratio: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-level (r, s) at time t from retention arrays (the rules in the module doc)."""
    lt, logt = np.log(t), np.log(times)
    if lt <= logt[0]:
        w = t / times[0]
        return 1 + w * (ratio[:, 0] - 1), w * sigma[:, 0]
    if times.size == 1:
        return ratio[:, 0], sigma[:, 0]
    if lt >= logt[-1]:
        slope = (np.log(np.maximum(ratio[:, -1], 1e-12)) - np.log(np.maximum(ratio[:, -2], 1e-12))) / (
            logt[-1] - logt[-2]
        )
        return ratio[:, -1] * np.exp(slope * (lt - logt[-1])), sigma[:, -1]
    return (np.array([np.interp(lt, logt, r) for r in ratio]), np.array([np.interp(lt, logt, s) for s in sigma]))


class TableNoise:
    """The table's programming, drift and read statistics on torch tensors (uS)."""

    def __init__(self, arrays: dict[str, np.ndarray], quantize: bool = True) -> None:
        self.arrays = arrays
        self.quantize = bool(quantize)
        self.levels = torch.as_tensor(arrays["targets_us"], dtype=torch.float64)
        self.errors = torch.as_tensor(arrays["rel_error"], dtype=torch.float64)
        self.read_g = torch.as_tensor(arrays["read_g_us"], dtype=torch.float64)
        self.read_sigma = torch.as_tensor(arrays["read_sigma_us"], dtype=torch.float64)
        self.has_retention = "retention_t" in arrays

    @property
    def window(self) -> tuple[float, float]:
        return float(self.levels[0]), float(self.levels[-1])

    def written(self, g_target: torch.Tensor) -> torch.Tensor:
        """The conductance (uS, float64) a target is written to: its nearest level with
        ``quantize``, else the target itself."""
        g = g_target.to(torch.float64)
        if not self.quantize:
            return g
        levels = self.levels.to(g.device)
        return levels[(g.unsqueeze(-1) - levels).abs().argmin(-1)]

    def read(self, g: torch.Tensor) -> torch.Tensor:
        """One read of conductances ``g`` (uS): the table's read-noise sigma(G) added."""
        g64 = g.to(torch.float64)
        sigma = _interp(g64, self.read_g.to(g.device), self.read_sigma.to(g.device))
        return (g64 + sigma * torch.randn_like(g64)).clamp_min(0.0).to(g.dtype)

    def program(self, g_target: torch.Tensor) -> torch.Tensor:
        """Programmed conductances (uS) for targets ``g_target`` (uS).

        With ``quantize`` (the default) a target is first moved to the nearest of the table's
        levels, as rramsim's own mapping does: a device characterized at K levels is written
        to those K levels only. Without it targets stay continuous and the errors are
        interpolated between neighbouring levels (a device assumed writable anywhere in its
        window, which the table did not measure).
        """
        g = self.written(g_target)
        n = self.errors.shape[1]
        r = torch.rand(g.shape, dtype=torch.float64, device=g.device).mul_(n - 1)
        k0 = r.floor().long().clamp(0, n - 1)
        k1 = (k0 + 1).clamp(max=n - 1)
        frac = r - k0
        lo, hi, w = _neighbours(g, self.levels.to(g.device))
        err = self.errors.to(g.device)

        def at(level):
            e0, e1 = err[level, k0], err[level, k1]
            return e0 + frac * (e1 - e0)

        e = (1 - w) * at(lo) + w * at(hi)
        return (g * (1 + e)).to(g_target.dtype)

    def drift(self, g_prog: torch.Tensor, g_target: torch.Tensor, t: float) -> torch.Tensor:
        """Conductances (uS) ``t`` s after programming, read once. ``g_target`` is the
        conductance the cell was written to (:meth:`written`), which selects the level whose
        retention applies. At t <= 0 there is no drift, only the read (no retention needed)."""
        if t <= 0:
            return self.read(g_prog)
        if not self.has_retention:
            raise ValueError(
                "this rramsim table has no retention data (/retention): drift at t > 0 is not "
                "modeled; characterize with --retention-time or import with --retention"
            )
        a = self.arrays
        r, s = drift_rules(float(t), a["retention_t"], a["retention_ratio"], a["retention_sigma"])
        dev = g_prog.device
        r, s = torch.as_tensor(r, device=dev), torch.as_tensor(s, device=dev)
        lo, hi, w = _neighbours(g_target.to(torch.float64), self.levels.to(dev))
        ratio = (1 - w) * r[lo] + w * r[hi]
        spread = (1 - w) * s[lo] + w * s[hi]
        g = g_prog.to(torch.float64) * (ratio + spread * torch.randn_like(ratio)).clamp_min(0.0)
        return self.read(g).to(g_prog.dtype)


def _interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    if xp.numel() == 1:
        return fp[0].expand_as(x)
    lo, hi, w = _neighbours(x, xp)
    return (1 - w) * fp[lo] + w * fp[hi]


def _model_class():
    try:
        from aihwkit.inference.converter.conductance import SinglePairConductanceConverter
        from aihwkit.inference.noise.base import BaseNoiseModel
    except ImportError as exc:
        raise ImportError(
            f"rramsim.models.aihwkit_noise needs IBM aihwkit ({exc}); install it with pip "
            "(aihwkit 1.2.0 builds from source for Python 3.11)"
        ) from None

    class TableNoiseModel(BaseNoiseModel):
        """aihwkit noise model drawing from an rramsim device table (see the module doc)."""

        def __init__(self, arrays: dict[str, np.ndarray], quantize: bool = True) -> None:
            noise = TableNoise(arrays, quantize=quantize)
            g_min, g_max = noise.window
            super().__init__(SinglePairConductanceConverter(g_max=g_max, g_min=g_min))
            self.noise = noise

        @classmethod
        def from_file(cls, path: str | Path, quantize: bool = True) -> "TableNoiseModel":
            return cls(load_arrays(path), quantize=quantize)

        @classmethod
        def from_table(cls, table: DeviceTable, quantize: bool = True) -> "TableNoiseModel":
            return cls(export_arrays(table), quantize=quantize)

        @torch.no_grad()
        def apply_programming_noise_to_conductance(self, g_target: torch.Tensor) -> torch.Tensor:
            return self.noise.program(g_target)

        @torch.no_grad()
        def generate_drift_coefficients(self, g_target: torch.Tensor) -> torch.Tensor:
            return self.noise.written(g_target).to(g_target.dtype)

        @torch.no_grad()
        def apply_drift_noise_to_conductance(
            self, g_prog: torch.Tensor, drift_noise_param: torch.Tensor, t_inference: float
        ) -> torch.Tensor:
            return self.noise.drift(g_prog, drift_noise_param, t_inference)

    TableNoiseModel.__module__ = __name__
    TableNoiseModel.__qualname__ = "TableNoiseModel"
    return TableNoiseModel


_CLASS = None


def __getattr__(name: str):
    """``TableNoiseModel`` is made on first use, so importing this module needs no aihwkit."""
    global _CLASS
    if name == "TableNoiseModel":
        if _CLASS is None:
            _CLASS = _model_class()
        return _CLASS
    raise AttributeError(name)


def rpu_config(table: DeviceTable, *, dac_bits: int | None = 8, adc_bits: int | None = 8, tile: int = 128):
    """An aihwkit ``TorchInferenceRPUConfig`` whose device is ``table``, set up like rramsim's
    default crossbar so that the two simulators' accuracies compare.

    Same as rramsim: the table's programming outcomes, read noise and retention (through
    :class:`TableNoiseModel`), ``dac_bits``/``adc_bits`` input/output resolution (None: ideal),
    column-wise weight scaling, ``tile`` x ``tile`` tiles. Turned off because rramsim's default
    has no such effect: aihwkit's weight noise, output noise, IR drop, weight clipping and
    drift compensation. Still different (stated in ``examples/reports/aihwkit.md``): aihwkit's
    output quantizer range and bound management, one read per programming instead of one per
    forward, a single conductance pair over the table's window, and the column scale: aihwkit
    scales each tile's columns by their own max|w| (a layer with more than ``tile`` inputs
    gets one scale per block of ``tile`` rows, each block spanning the whole conductance
    window), rramsim one scale per output over all its rows. Where the spread is additive in
    G (a large spread at low G after drift) aihwkit's weights then err less in such layers.
    """
    try:
        from aihwkit.simulator.configs import TorchInferenceRPUConfig, WeightClipType, WeightNoiseType
    except ImportError as exc:
        raise ImportError(
            f"running a network inside aihwkit needs IBM aihwkit ({exc}); `make aihwkit` "
            "builds it into the project's venv"
        ) from None
    rpu = TorchInferenceRPUConfig(noise_model=_model_class().from_table(table))
    rpu.drift_compensation = None
    rpu.clip.type = WeightClipType.NONE
    rpu.forward.w_noise_type = WeightNoiseType.NONE
    rpu.forward.out_noise = 0.0
    rpu.forward.ir_drop = 0.0
    for name, bits in (("dac_bits", dac_bits), ("adc_bits", adc_bits)):
        if bits is not None and not (isinstance(bits, int) and 2 <= bits <= 24):
            raise ValueError(f"{name} must be an integer from 2 to 24 (or None: ideal), got {bits!r}")
    if dac_bits is None and adc_bits is None:
        rpu.forward.is_perfect = True
    else:
        rpu.forward.inp_res = -1 if dac_bits is None else 1 / (2 ** int(dac_bits) - 2)
        rpu.forward.out_res = -1 if adc_bits is None else 1 / (2 ** int(adc_bits) - 2)
    rpu.mapping.weight_scaling_omega = 1.0
    rpu.mapping.weight_scaling_columnwise = True
    rpu.mapping.max_input_size = rpu.mapping.max_output_size = int(tile)
    return rpu


def evaluate_in_aihwkit(
    model: torch.nn.Module,
    table: DeviceTable,
    loader,
    *,
    trials: int = 3,
    drift: float = 0.0,
    seed: int = 0,
    dac_bits: int | None = 8,
    adc_bits: int | None = 8,
    progress: bool = False,
) -> list[float]:
    """Top-1 accuracy of a float ``model`` inside aihwkit with ``table`` as its device, one
    value per programming (``trials`` of them, ``torch.manual_seed(seed + k)`` each).

    Each programming converts the network with :func:`rpu_config`, programs every analog
    weight from the table's outcomes and reads it once at ``drift`` s (at 0: right after
    programming, a read with the table's sigma(G) and no drift; no retention data needed).
    """
    from aihwkit.nn.conversion import convert_to_analog

    from rramsim.models.training import evaluate

    if trials <= 0:
        raise ValueError(f"trials must be positive, got {trials}")
    if not drift >= 0:
        raise ValueError(f"drift must be a time >= 0 s, got {drift}")
    rpu = rpu_config(table, dac_bits=dac_bits, adc_bits=adc_bits)
    accuracies = []
    for k in range(trials):
        torch.manual_seed(seed + k)
        analog = convert_to_analog(model, rpu).eval()
        analog.program_analog_weights()
        analog.drift_analog_weights(float(drift))
        accuracies.append(evaluate(analog, loader, progress=progress, desc=f"aihwkit {k + 1}/{trials}"))
    return accuracies
