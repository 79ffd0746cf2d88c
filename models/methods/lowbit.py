"""Low-bit co-design for a 40 nm RRAM CIM macro (Weinstock, Tan, Li, Yu, ORSS 2023).

LeNet-5 with 1-bit weights (+-1, straight-through sign) and 2-bit activations (0..3,
straight-through rounding), batch norm folded into integer thresholds after training, so
that the whole network is integer: every layer is ``a = sum_k [y >= t_k]`` on the integer
partial sums ``y = sum_i x_i w_i`` (x in 0..3, w in +-1) and the last layer's per-class
affine is digital.

The macro (:class:`MacroConfig`): a ``rows`` x ``cols`` compute array, a weight is one cell
(``w = +1`` -> the table's highest level, ``-1`` -> its lowest), inputs are streamed bit by
bit, at most ``max_rows`` rows are driven per read and a ``adc_bits`` ADC counts the
low-resistance cells among them (7 rows, 3 bits: the count 0..7 is exact), so the partial
sum of a read is ``2 * count - n_driven``. Sparsity-aware input control drives only rows
whose input bit is 1: zeros cost no read cycles. With the device table's programming
spread and read noise the count can be off by one: that is the noise impact.

Row rename (:func:`rename_rows`): rows of a binary layer that are identical or sign
complements are stored once; their inputs are added (or subtracted) digitally before the
array, a logical -> physical row map with signs. Row reorder (:func:`reorder_rows`): a
permutation of the rows (inputs follow) chosen greedily so that consecutive groups of
``max_rows`` rows hold a balanced number of low-resistance cells in every column, which
evens out the noise variance per read (the error probability of a read grows faster than
its variance).
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rramsim.devices import DeviceTable
from rramsim.models.energy import ADC_ENERGY_8BIT, adc_conversion_energy
from rramsim.models.programming import DevicePhysics
from rramsim.models.training import TensorBatches, evaluate, train

__all__ = ["MacroConfig", "BinaryLeNet5", "IntegerLeNet5", "IntLayer", "train_lowbit", "integerize",
           "Macro", "rename_rows", "reorder_rows", "REORDER_STRATEGIES", "tie_rows", "quantize_input", "reproduce_lowbit"]


# --------------------------------------------------------------------------- training


def quantize_input(images: torch.Tensor, bits: int = 2) -> torch.Tensor:
    """uint8 (or [0, 1] float) images -> integer-valued float tensor in 0..2^bits-1, [N,1,28,28]."""
    x = images.to(torch.float32)
    if images.dtype == torch.uint8:
        x = x / 255.0
    if x.dim() == 3:
        x = x.unsqueeze(1)
    return torch.round(x.clamp(0, 1) * (2 ** bits - 1))


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
        self.act_levels = 2 ** act_bits - 1
        self.convs = nn.ModuleList([nn.Conv2d(1, c1, 5, padding=2, bias=False), nn.Conv2d(c1, c2, 5, bias=False)])
        self.fcs = nn.ModuleList([nn.Linear(c2 * 25, f1, bias=False), nn.Linear(f1, f2, bias=False),
                                  nn.Linear(f2, 10, bias=False)])
        self.bns = nn.ModuleList([nn.BatchNorm2d(c1), nn.BatchNorm2d(c2), nn.BatchNorm1d(f1), nn.BatchNorm1d(f2),
                                  nn.BatchNorm1d(10)])
        nn.init.constant_(self.bns[-1].weight, 2.0)     # confident logits from the start

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


def train_lowbit(model: BinaryLeNet5, images: torch.Tensor, labels: torch.Tensor, *, epochs: int = 6,
                 batch_size: int = 128, lr: float = 5e-3, seed: int = 0, log=None, after_step=None) -> list[float]:
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

    return train(model, TensorBatches(images, labels, batch_size, seed=seed), epochs=epochs, lr=lr, seed=seed,
                 progress=False, after_step=clamp, on_epoch_end=report if log else None).loss


# --------------------------------------------------------------------------- integer network


@dataclass
class IntLayer:
    """One integer layer: binary weights [out, in] (+-1 int8) and either thresholds
    ``t`` [out, levels] with ``flip`` [out] (activation = #{k: y >= t_k}, or y <= t_k where
    flipped) or, for the last layer, a per-output affine ``scale``/``shift``."""

    w: torch.Tensor
    kind: str                                   # "conv" or "fc"
    padding: int = 0
    t: torch.Tensor | None = None
    flip: torch.Tensor | None = None
    scale: torch.Tensor | None = None
    shift: torch.Tensor | None = None
    # row rename: logical input j -> physical row rmap[j] with sign rsign[j] (None: identity)
    rmap: torch.Tensor | None = None
    rsign: torch.Tensor | None = None
    perm: torch.Tensor | None = None            # row reorder: physical order of the rows

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


def _thresholds(bn: nn.BatchNorm1d | nn.BatchNorm2d, levels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer thresholds of ``clamp(round(bn(y)), 0, levels)`` for integer y."""
    std = torch.sqrt(bn.running_var.double() + bn.eps)
    a = bn.weight.double() / std
    b = bn.bias.double() - bn.running_mean.double() * a
    ks = torch.arange(1, levels + 1, dtype=torch.float64) - 0.5
    safe = torch.where(a.abs() > 1e-12, a, torch.full_like(a, 1e-12))
    thr = (ks[None, :] - b[:, None]) / safe[:, None]              # y >= thr (a>0) or y <= thr (a<0)
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
        layers.append(IntLayer(w=torch.where(conv.weight.detach() >= 0, 1, -1).to(torch.int8), kind="conv",
                               padding=conv.padding[0], t=t, flip=flip))
    for j, fc in enumerate(model.fcs):
        w = torch.where(fc.weight.detach() >= 0, 1, -1).to(torch.int8)
        bn = model.bns[2 + j]
        if j < 2:
            t, flip = _thresholds(bn, L)
            layers.append(IntLayer(w=w, kind="fc", t=t, flip=flip))
        else:
            std = torch.sqrt(bn.running_var.double() + bn.eps)
            a = bn.weight.detach().double() / std
            layers.append(IntLayer(w=w, kind="fc", scale=a, shift=bn.bias.detach().double() - bn.running_mean.double() * a))
    return IntegerLeNet5(layers)


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
        return torch.cat([self.forward(x[k:k + batch], mvm).argmax(1) for k in range(0, x.shape[0], batch)])


# --------------------------------------------------------------------------- the macro


@dataclass
class MacroConfig:
    """The compute macro of the paper (all fields configurable)."""

    rows: int = 128
    cols: int = 128
    max_rows: int = 7                 # rows driven together in one read
    adc_bits: int = 3
    sparsity_aware: bool = True       # drive only rows whose input bit is 1
    cycle_time: float = 10e-9         # s per read
    adc_energy: float = ADC_ENERGY_8BIT   # J per 8-bit conversion (scaled by 2^(bits-8))
    read_voltage: float = 0.2
    noise_scale: float = 1.0          # multiplies the table's programming spread and read noise

    def __post_init__(self) -> None:
        for name in ("rows", "cols", "max_rows", "adc_bits"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"MacroConfig.{name} must be a positive integer, got {v!r}")
        if self.max_rows > self.rows:
            raise ValueError(f"MacroConfig.max_rows={self.max_rows} exceeds rows={self.rows}")
        if 2 ** self.adc_bits - 1 < self.max_rows:
            raise ValueError(f"MacroConfig: a {self.adc_bits}-bit ADC counts at most {2 ** self.adc_bits - 1} cells "
                             f"but max_rows={self.max_rows}; raise adc_bits or lower max_rows")
        if not (math.isfinite(self.noise_scale) and self.noise_scale >= 0):
            raise ValueError(f"MacroConfig.noise_scale must be a finite number >= 0, got {self.noise_scale!r}")


class Macro:
    """Runs integer layers on the macro with cells programmed from a DeviceTable.

    ``w = +1`` is the table's highest level (LRS), ``-1`` its lowest (HRS). Each layer's
    cells are programmed once (seeded); every read adds the table's read noise.
    ``noisy=False`` gives the ideal macro (integer exact by construction).
    """

    def __init__(self, table: DeviceTable, config: MacroConfig | None = None, seed: int = 0,
                 noisy: bool = True) -> None:
        if not isinstance(table, DeviceTable):
            raise TypeError(f"table must be a rramsim.devices.DeviceTable, got {type(table).__name__}")
        self.cfg = config or MacroConfig()
        self.phys = DevicePhysics(table, self.cfg.read_voltage)
        self.g_off, self.g_on = float(self.phys.levels[0]), float(self.phys.levels[-1])
        self.noisy = noisy
        self.seed = int(seed)
        self.gen = torch.Generator().manual_seed(self.seed)
        self._cells: dict = {}
        self.reads = 0.0          # read cycles counted (per column tile)
        self.dense_reads = 0.0    # what a macro without sparsity-aware control would need
        self.conversions = 0.0
        self.vectors = 0
        self.count_errors = 0     # noisy reads whose ADC count differs from the exact count
        self.counts = 0           # noisy column reads (one ADC count each)

    def _program(self, i: int, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        key = (i, tuple(m.shape), hash(m.numpy().tobytes()))     # a changed layout is a new programming
        if key not in self._cells:
            lvl = torch.where(m > 0, self.phys.levels.numel() - 1, 0).long()
            g = torch.Generator().manual_seed(self.seed * 1000 + i)
            u = torch.rand(lvl.shape, generator=g, dtype=torch.float64)
            res = self.phys.sample(lvl, u, torch.ones_like(u), 0.0, 0.0)
            target = self.phys.levels[lvl]
            gcell = target + self.cfg.noise_scale * (res["g"] - target)
            self._cells[key] = ((gcell - self.g_off) / (self.g_on - self.g_off),                    # in LRS units
                              (self.cfg.noise_scale * self.phys.sigma(gcell) / (self.g_on - self.g_off)) ** 2)
        return self._cells[key]

    def __call__(self, i: int, layer: IntLayer, x: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        return torch.cat([self._mvm(i, layer, x[k:k + chunk]) for k in range(0, x.shape[0], chunk)])

    def _mvm(self, i: int, layer: IntLayer, x: torch.Tensor) -> torch.Tensor:
        m = layer.matrix()                                  # [R, C] +-1
        xr = layer.rows_in(x)                               # [V, R] signed ints
        R, C = m.shape
        cfg = self.cfg
        unit, var = self._program(i, m)
        ideal = (m > 0).double()
        cells = (unit if self.noisy else ideal).float()
        var = var.float()
        tiles = math.ceil(R / cfg.rows)
        rows = min(cfg.rows, R)
        pad = tiles * rows - R
        cells = F.pad(cells, (0, 0, 0, pad)).reshape(tiles, rows, C)
        var = F.pad(var, (0, 0, 0, pad)).reshape(tiles, rows, C)
        ideal = F.pad(ideal, (0, 0, 0, pad)).reshape(tiles, rows, C).to(torch.int64)
        xr = F.pad(xr, (0, pad)).reshape(xr.shape[0], tiles, rows)
        col_tiles = math.ceil(C / cfg.cols)
        y = torch.zeros(xr.shape[0], C, dtype=torch.int64)
        n_max = 2 ** cfg.adc_bits - 1
        self.vectors += xr.shape[0]
        for sign in (1, -1):
            mag = (xr * sign).clamp_min(0)
            if not bool((mag > 0).any()):
                continue
            nbits = int(mag.max()).bit_length()
            for b in range(nbits):
                bit = (mag >> b) & 1                                      # [V, T, rows]
                active = bit.sum(-1)                                      # [V, T]
                dense = float(bit.shape[0] * tiles * math.ceil(rows / cfg.max_rows)) * col_tiles
                self.dense_reads += dense
                vv, tt, rr = torch.nonzero(bit, as_tuple=True)
                K = math.ceil(rows / cfg.max_rows)
                if cfg.sparsity_aware:
                    # only rows whose bit is 1 are driven, max_rows at a time: group = rank among them
                    self.reads += float(torch.ceil(active / cfg.max_rows).sum()) * col_tiles
                    rank = torch.cumsum(bit, -1) - 1
                    grp = torch.div(rank[vv, tt, rr], cfg.max_rows, rounding_mode="floor")
                else:
                    # fixed windows of max_rows physical rows, every window read
                    self.reads += dense
                    grp = torch.div(rr, cfg.max_rows, rounding_mode="floor")
                slot = (vv * tiles + tt) * K + grp
                slot_u, inv, n_drv = torch.unique_consecutive(slot, return_inverse=True, return_counts=True)
                gsum = torch.zeros(slot_u.numel(), C, dtype=cells.dtype).index_add_(0, inv, cells[tt, rr])
                if self.noisy:
                    gvar = torch.zeros(slot_u.numel(), C, dtype=var.dtype).index_add_(0, inv, var[tt, rr])
                    gsum += gvar.sqrt_() * torch.randn(gsum.shape, generator=self.gen, dtype=gsum.dtype)
                count = torch.round(gsum).clamp_(0, n_max).to(torch.int64)     # the ADC
                if self.noisy:
                    exact = torch.zeros(slot_u.numel(), C, dtype=torch.int64).index_add_(
                        0, inv, ideal[tt, rr]).clamp_(0, n_max)
                    self.count_errors += int((count != exact).sum())
                    self.counts += count.numel()
                self.conversions += (float(slot_u.numel()) if cfg.sparsity_aware else dense / col_tiles) * C
                part = (2 * count - n_drv.unsqueeze(-1)) * (sign << b)
                y.index_add_(0, torch.div(slot_u, tiles * K, rounding_mode="floor"), part)
        return y

    def cost(self, n_samples: int) -> dict:
        cfg = self.cfg
        return {"reads_per_sample": self.reads / n_samples, "dense_reads_per_sample": self.dense_reads / n_samples,
                "latency_per_sample": self.reads / n_samples * cfg.cycle_time,
                "adc_energy_per_sample": self.conversions / n_samples * adc_conversion_energy(cfg.adc_bits, cfg.adc_energy)}


# --------------------------------------------------------------------------- rename and reorder


def rename_rows(layer: IntLayer) -> dict:
    """Store identical / sign-complement rows of ``layer`` once (in place); returns the
    logical and physical row counts. The layer's partial sums are unchanged."""
    m = layer.w.reshape(layer.w.shape[0], -1).t().to(torch.int64)       # [in, out]
    canon = {}
    rmap = torch.empty(m.shape[0], dtype=torch.long)
    rsign = torch.empty(m.shape[0], dtype=torch.long)
    for j in range(m.shape[0]):
        row = m[j]
        s = 1 if int(row[0]) > 0 else -1                                # canonical: first entry +1
        key = tuple((row * s).tolist())
        if key not in canon:
            canon[key] = len(canon)
        rmap[j], rsign[j] = canon[key], s
    # the stored row is the first logical row of each class; adjust signs relative to it
    first_sign = {}
    for j in range(m.shape[0]):
        first_sign.setdefault(int(rmap[j]), int(rsign[j]))
    rsign = torch.tensor([int(rsign[j]) * first_sign[int(rmap[j])] for j in range(m.shape[0])])
    layer.rmap, layer.rsign = rmap, rsign
    return {"logical_rows": int(m.shape[0]), "physical_rows": len(canon)}


def tie_rows(fc: nn.Linear, keep: int):
    """Rename-aware training: cluster the input rows of ``fc`` (the columns of its weight,
    up to sign) into ``keep`` groups (agglomerative, nearest centroids), tie them, and return
    a function that re-ties them after every optimizer step (for ``train_lowbit(after_step=)``).
    After training, :func:`rename_rows` stores at most ``keep`` physical rows."""
    w = fc.weight.detach()
    n = w.shape[1]
    if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep <= n:
        raise ValueError(f"keep must be an integer in 1..{n} (rows of the layer), got {keep!r}")
    sign = torch.where(w[0] >= 0, 1.0, -1.0)
    vec = (w * sign).t().clone()                                       # canonical rows [in, out]
    members = [[j] for j in range(n)]
    cent = [vec[j].clone() for j in range(n)]
    while len(members) > keep:
        c = torch.stack(cent)
        d = torch.cdist(c, c)
        size = torch.tensor([len(m) for m in members], dtype=d.dtype)
        d = d * torch.sqrt(size[:, None] * size[None, :] / (size[:, None] + size[None, :]))   # Ward-like
        d.fill_diagonal_(float("inf"))
        a, b = divmod(int(d.argmin()), d.shape[1])
        a, b = min(a, b), max(a, b)
        merged = members[a] + members[b]
        cent[a] = vec[merged].mean(0)
        members[a] = merged
        del members[b], cent[b]
    group = torch.empty(n, dtype=torch.long)
    for g, m in enumerate(members):
        group[m] = g
    k = len(members)

    def retie(model=None) -> None:
        with torch.no_grad():
            canon = (fc.weight * sign).t()                             # [in, out]
            sums = torch.zeros(k, canon.shape[1]).index_add_(0, group, canon)
            mean = sums / torch.bincount(group, minlength=k).unsqueeze(1)
            fc.weight.copy_((mean[group] * sign[:, None]).t())

    retie()
    return retie


REORDER_STRATEGIES = ("balance", "similar")


def reorder_rows(layer: IntLayer, max_rows: int = 7, strategy: str = "balance") -> torch.Tensor:
    """A row permutation of ``layer`` (in place; inputs follow), returned.

    ``"balance"``: greedy, so that every window of ``max_rows`` consecutive rows holds about
    the column's mean share of low-resistance cells (evens the noise variance per read).
    ``"similar"``: a nearest-neighbour chain in Hamming distance, so rows read together are
    alike and a column's group tends to be all-HRS or all-LRS, where the ADC's clamping at
    0 and ``max_rows`` removes half of the count errors.
    """
    if strategy not in REORDER_STRATEGIES:
        raise ValueError(f"reorder strategy must be one of {REORDER_STRATEGIES}, got {strategy!r}")
    layer.perm = None
    m = (layer.matrix() > 0).double()                                   # [R, C]
    R = m.shape[0]
    left = torch.ones(R, dtype=torch.bool)
    order = []
    if strategy == "similar":
        order.append(0)
        left[0] = False
        for _ in range(R - 1):
            d = (m - m[order[-1]]).abs().sum(1)
            d[~left] = float("inf")
            j = int(d.argmin())
            order.append(j)
            left[j] = False
        layer.perm = torch.tensor(order, dtype=torch.long)
        return layer.perm
    target = m.mean(0) * max_rows
    window = torch.zeros_like(target)
    for pos in range(R):
        k = pos % max_rows
        if k == 0:
            window = torch.zeros_like(target)
        goal = target * (k + 1) / max_rows
        cost = ((window[None, :] + m - goal[None, :]) ** 2).sum(1)
        cost[~left] = float("inf")
        j = int(cost.argmin())
        order.append(j)
        left[j] = False
        window += m[j]
    layer.perm = torch.tensor(order, dtype=torch.long)
    return layer.perm


# --------------------------------------------------------------------------- the reproduction


def _paired(before: list[float], after: list[float], unit: str) -> str:
    """'change +-SE (significant|within noise)' of paired runs ``after - before``."""
    d = np.asarray(after, dtype=float) - np.asarray(before, dtype=float)
    if d.size < 2:
        return "one programming: no error estimate"
    se = float(d.std(ddof=1) / np.sqrt(d.size))
    verdict = "significant" if abs(d.mean()) > 2 * se and se > 0 else "within noise"
    if se == 0 and d.mean() != 0:
        verdict = "significant"
    return f"paired change {100 * d.mean():+.4f} ± {100 * se:.4f} {unit} ({verdict})"


PAPER = ("Weinstock, Tan, Li, Yu, \"Low-bit quantization and co-design for a 40 nm RRAM "
         "compute-in-memory macro\", ORSS 2023")


def reproduce_lowbit(table: DeviceTable, *, table_name: str = "", small: bool = False, seed: int = 0,
                     epochs: int | None = None, noise_scales: tuple[float, ...] = (1.0, 4.0),
                     trials: int | None = None, command: str = "", log=None):
    """Train, integerize and run LeNet-5 on the macro; returns a :class:`Report`."""
    from rramsim.models.data import ensure_dataset, load_split
    from rramsim.models.methods.report import Report, fmt_pct, md_table

    log = log or (lambda s: None)
    rep = Report(title="Low-bit co-design (1-bit weights, 2-bit activations) on a 7-rows-per-read macro",
                 paper=PAPER, command=command, seed=seed, table=table_name, small=small)
    n_train, n_test = (4000, 300) if small else (60000, 10000)
    epochs = epochs or (1 if small else 6)
    trials = trials or (1 if small else 8)
    ensure_dataset("mnist")
    xi, yl = load_split("mnist", "train")
    xt, yt = load_split("mnist", "test")
    g = torch.Generator().manual_seed(seed)
    tr = torch.randperm(xi.shape[0], generator=g)[:n_train]
    te = torch.arange(n_test) if n_test >= xt.shape[0] else torch.randperm(xt.shape[0], generator=g)[:n_test]
    x, y = quantize_input(xi[tr]), yl[tr]
    xte, yte = quantize_input(xt[te]), yt[te]
    torch.manual_seed(seed)
    model = BinaryLeNet5()
    t0 = time.perf_counter()
    train_lowbit(model, x, y, epochs=epochs, seed=seed, lr=1e-2, log=log)
    t_train = time.perf_counter() - t0
    model.eval()
    acc_float = evaluate(model, TensorBatches(xte, yte, 1000, shuffle=False))
    net = integerize(model)
    p_int = net.predict(xte)
    acc_int = float((p_int == yte).double().mean())
    log(f"lowbit: float (eval BN) {acc_float:.4f}, integer network {acc_int:.4f}")

    cfg = MacroConfig()
    ideal = Macro(table, cfg, seed=seed, noisy=False)
    p_ideal = net.predict(xte, ideal)
    acc_ideal = float((p_ideal == yte).double().mean())
    agree = float((p_ideal == p_int).double().mean())
    cost = ideal.cost(n_test)
    log(f"lowbit: ideal macro {acc_ideal:.4f} (agreement with integer network {agree:.4f})")

    n_noise = min(n_test, 4000)

    def noisy_run(scale: float, t: int) -> tuple[float, float]:
        """Accuracy and ADC count error rate of programming ``t`` (same cells and read-noise
        draws for every row order: the orders are compared on the same chip)."""
        mac = Macro(table, MacroConfig(noise_scale=scale), seed=seed + 17 * (t + 1), noisy=True)
        acc = float((net.predict(xte[:n_noise], mac) == yte[:n_noise]).double().mean())
        return acc, mac.count_errors / max(mac.counts, 1)

    # row rename on the final FC layer
    last = net.layers[-1]
    ren = rename_rows(last)
    area_red = 1 - ren["physical_rows"] / ren["logical_rows"]
    p_ren = net.predict(xte, Macro(table, cfg, seed=seed, noisy=False))
    ren_exact = bool((p_ren == p_int).all())
    last.rmap = last.rsign = None
    log(f"lowbit: rename {ren}, exact {ren_exact}")

    # rename-aware fine-tuning: tie the final FC's rows into the paper's -45.24% budget
    keep = round(model.fcs[2].weight.shape[1] * (1 - 0.4524))
    tied = copy.deepcopy(model)
    retie = tie_rows(tied.fcs[2], keep)
    ft_n = min(n_train, 20000)
    train_lowbit(tied, x[:ft_n], y[:ft_n], epochs=1, lr=2e-3, seed=seed + 1, log=log,
                 after_step=lambda m: retie())
    tied.eval()
    tnet = integerize(tied)
    p_tied = tnet.predict(xte)
    acc_tied = float((p_tied == yte).double().mean())
    ren_t = rename_rows(tnet.layers[-1])
    tied_exact = bool((tnet.predict(xte, Macro(table, cfg, seed=seed, noisy=False)) == p_tied).all())
    area_tied = 1 - ren_t["physical_rows"] / ren_t["logical_rows"]
    log(f"lowbit: rename-aware {ren_t}, accuracy {acc_tied:.4f}, exact {tied_exact}")

    # noise impact with and without row reorder
    impact = {}
    acc_int_noise = float((p_int[:n_noise] == yte[:n_noise]).double().mean())
    for scale in noise_scales:
        orders = ("original",) if scale != noise_scales[-1] else ("original",) + REORDER_STRATEGIES
        for order in orders:
            for layer in net.layers:
                if order == "original":
                    layer.perm = None
                else:
                    reorder_rows(layer, cfg.max_rows, order)
            # the row orders are compared at the last scale; the others need fewer programmings
            runs = [noisy_run(scale, t) for t in range(trials if scale == noise_scales[-1] else min(trials, 2))]
            accs, errs = [r[0] for r in runs], [r[1] for r in runs]
            impact[(scale, order)] = {"loss": acc_int_noise - float(np.mean(accs)), "accs": accs, "errs": errs}
            log(f"lowbit: noise x{scale:g} order={order}: accuracy {np.mean(accs):.4f}, "
                f"count errors {np.mean(errs):.3e}")
    for layer in net.layers:
        layer.perm = None

    rep.row("dataset", "MNIST", f"MNIST ({n_train} train / {n_test} test images)")
    rep.row("weights / activations", "1 bit / 2 bit", "1 bit (+-1) / 2 bit (0..3), 2-bit input image", "")
    rep.row("accuracy, integer network", "96.66%", fmt_pct(acc_int), f"{epochs} epochs, target >= 98.5% (full)")
    rep.row("accuracy, ideal macro (7 rows/read, 3-bit ADC)", "—", fmt_pct(acc_ideal),
            f"agreement with integer network {fmt_pct(agree, 3)}")
    rep.row("final-FC area after row rename", "−45.24%", f"−{100 * area_red:.2f}%",
            f"{ren['logical_rows']} -> {ren['physical_rows']} rows (identical or complement rows of the trained "
            f"layer); outputs identical: {ren_exact}")
    rep.row("final-FC area, rename-aware fine-tuning", "−45.24%", f"−{100 * area_tied:.2f}%",
            f"rows tied into {keep} groups, 1 epoch; accuracy {fmt_pct(acc_tied)} "
            f"({100 * (acc_tied - acc_int):+.2f} pp); crossbar outputs identical: {tied_exact}")
    s1 = noise_scales[-1]
    orig = impact[(s1, "original")]
    for strat in REORDER_STRATEGIES:
        new_ = impact[(s1, strat)]
        rel = (orig["loss"] - new_["loss"]) / orig["loss"] if orig["loss"] > 0 else 0.0
        rep.row(f"noise impact change by row reorder '{strat}' (table noise x{s1:g})", "−5.6%",
                f"{-100 * rel:+.1f}%", f"accuracy loss {100 * orig['loss']:.2f} pp -> {100 * new_['loss']:.2f} pp, "
                f"{trials} programmings, {n_noise} test images; {_paired(orig['accs'], new_['accs'], 'pp')}")
        e0, e1 = float(np.mean(orig["errs"])), float(np.mean(new_["errs"]))
        rep.row(f"ADC count errors, row reorder '{strat}' (table noise x{s1:g})", "—",
                f"{100 * (e1 - e0) / e0:+.1f}%" if e0 > 0 else "no errors",
                f"{100 * e0:.4f}% -> {100 * e1:.4f}% of reads; {_paired(orig['errs'], new_['errs'], '%')}")
    rep.row("read cycles per inference, sparsity-aware", "—",
            f"{cost['reads_per_sample']:.0f} (vs {cost['dense_reads_per_sample']:.0f} driving every row)",
            f"{cost['dense_reads_per_sample'] / max(cost['reads_per_sample'], 1):.2f}x fewer")
    rep.row("ADC energy per inference (3-bit)", "—", f"{cost['adc_energy_per_sample'] * 1e9:.3f} nJ", "")
    rep.section("Noise impact (integer-network accuracy minus noisy-macro accuracy)", md_table(
        ["table noise scale", "row order", "accuracy per programming", "impact (pp)",
         "ADC count errors per programming"],
        [[f"x{s:g}", r, ", ".join(fmt_pct(a) for a in v["accs"]), f"{100 * v['loss']:.2f}",
          ", ".join(f"{100 * e:.4f}%" for e in v["errs"])] for (s, r), v in impact.items()]))
    rep.notes += [
        "Cells: +1 -> the table's highest level, -1 -> its lowest; programming outcome sampled from the "
        "table's write-verify statistics, read noise from its /read group, drawn independently for every read.",
        "The ADC counts low-resistance cells among the <= 7 driven rows (exact with 3 bits); the partial sum "
        "is 2*count - driven. Noise impact appears when a count is off by one.",
        "Noise scale multiplies the table's programming spread and read noise (x1 is the table as measured).",
        "Row reorder (our reading; the paper gives no algorithm): 'balance' evens the low-resistance cells per "
        "column within every window of 7 rows; 'similar' chains rows by Hamming distance so groups are pure "
        "(the ADC clamps at 0 and 7, which removes half of the count errors of pure groups).",
        f"Training time {t_train:.1f} s. Only MNIST is used (no CIFAR offline).",
    ]
    rep.notes.append("Row orders are compared on the same chip: every programming draws the same cell outcomes at "
                     "the same physical positions and the same read-noise stream for each order, so differences "
                     "are paired; a change counts as significant when it exceeds twice its standard error.")
    rep.results = {"acc_float": acc_float, "acc_int": acc_int, "acc_ideal": acc_ideal, "agreement": agree,
                   "area_reduction": area_red, "rename": ren, "rename_exact": ren_exact,
                   "rename_aware": {"rows": ren_t, "accuracy": acc_tied, "area_reduction": area_tied,
                                    "exact": tied_exact},
                   "impact": {f"x{s:g}/{r}": v["loss"] for (s, r), v in impact.items()},
                   "count_errors": {f"x{s:g}/{r}": float(np.mean(v["errs"])) for (s, r), v in impact.items()},
                   "cost": cost}
    return rep.finish()
