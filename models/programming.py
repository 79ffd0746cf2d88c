"""Device physics from a DeviceTable, as torch tensors: programming, read noise, drift, I-V.

:class:`DevicePhysics` is a small ``nn.Module`` whose (non-persistent) buffers hold the
table's statistics, so it follows the layer to any device.

Programming model
    Each cell is programmed to a target level. Its outcome is drawn from that level's
    simulated write-verify runs: a uniform ``u`` picks a rank in the sorted reached
    conductances (inverse CDF, linear between neighbouring samples) and the device at that
    rank supplies pulses, energy and time. If that device did not converge the cell is
    *stuck* at the conductance it reached. Independent stuck-at faults (``stuck_on`` ->
    highest level, ``stuck_off`` -> lowest) come on top.
Cost model
    Pulses and energy add over cells. Latency follows ``program_parallelism`` inside a
    tile (``"row"``: the cells of a row are written together and the row takes its slowest
    cell, rows one after another; ``"cell"``: one cell at a time) and
    ``parallel_tile_writes`` across tiles (all at once, or one after another).
Drift
    With a ``/retention`` group: G(t) = G(0) (ratio_l(t) + sigma_l(t) z), interpolated in
    log t per level, extrapolated beyond the last time as the power law of the last two
    points. Without it: G(t) = G(0) (t / t0)^-nu, nu ~ N(drift_nu, drift_nu_std) per cell
    (a documented generic default, not a fit), no drift before t0.
I-V
    Each level's I-V is fitted with I = c1 v + c2 v^2 + c3 v^3 and normalized so a cell of
    conductance g carries g * V_r at the table's read voltage V_r.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from rramsim.devices import DeviceTable, TableError

IV_DEGREE = 3


def interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """``np.interp`` in torch (clamped at the ends); ``fp`` may have leading batch dims
    matching nothing: it is indexed along its last dim."""
    if xp.numel() == 1:
        return fp[..., 0].expand_as(x) if fp.dim() == 1 else fp[..., 0]
    xc = x.clamp(xp[0], xp[-1])
    idx = torch.searchsorted(xp, xc.contiguous()).clamp(1, xp.numel() - 1)
    x0, x1 = xp[idx - 1], xp[idx]
    frac = (xc - x0) / (x1 - x0)
    return fp[idx - 1] + frac * (fp[idx] - fp[idx - 1])


def fit_iv(table: DeviceTable, read_voltage: float) -> np.ndarray:
    """Per-level coefficients [L, 3] of i(v)/g = a1 v + a2 v^2 + a3 v^3 (see module doc)."""
    v = table.iv_v
    cur = table.iv_current
    if v.size < IV_DEGREE:
        raise TableError(f"/iv/v has {v.size} points; the I-V fit needs at least {IV_DEGREE}")
    if v.min() >= 0:  # one polarity characterized: assume odd symmetry
        keep = v > 0
        v = np.concatenate([-v[keep][::-1], v])
        cur = np.concatenate([-cur[:, keep][:, ::-1], cur], axis=1)
    reach = min(abs(v.min()), v.max())
    if reach < 0.999 * read_voltage:
        raise ValueError(f"CrossbarConfig.read_voltage={read_voltage} V is beyond the table's I-V data "
                         f"(+-{reach:.3g} V); lower read_voltage or set nonlinear_iv=False")
    sel = np.abs(v) <= 1.05 * read_voltage
    if sel.sum() < IV_DEGREE + 1:
        sel = np.ones_like(v, dtype=bool)
    basis = np.stack([v[sel] ** k for k in range(1, IV_DEGREE + 1)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, cur[:, sel].T, rcond=None)  # [3, L]
    coef = coef.T
    vr = float(table.scheme["read_voltage"])
    i_read = sum(coef[:, k - 1] * vr ** k for k in range(1, IV_DEGREE + 1))
    if np.any(i_read <= 0):
        raise TableError("/iv/current: a level's fitted current at the read voltage is not positive")
    return coef / (i_read / vr)[:, None]


class DevicePhysics(nn.Module):
    """The table's statistics as tensors (non-persistent buffers; they follow ``.to()``)."""

    def __init__(self, table: DeviceTable, read_voltage: float, nonlinear_iv: bool = False) -> None:
        super().__init__()
        if not isinstance(table, DeviceTable):
            raise TypeError(f"table must be a rramsim.devices.DeviceTable, got {type(table).__name__}")
        self.table = table
        order = np.argsort(table.g_final, axis=1, kind="stable")
        take = lambda a: np.take_along_axis(a, order, axis=1)  # noqa: E731
        f64 = torch.float64
        self._buf("levels", torch.as_tensor(table.targets, dtype=f64))
        self._buf("g_sorted", torch.as_tensor(take(table.g_final), dtype=f64))
        self._buf("conv_sorted", torch.as_tensor(take(table.converged)))
        conv = self.conv_sorted          # a sample and its upper neighbour both converged
        self._buf("both_sorted", conv & torch.cat([conv[:, 1:], conv[:, -1:]], dim=1))
        self._buf("pulses_sorted", torch.as_tensor(take(table.pulses).astype(np.float64)))
        self._buf("energy_sorted", torch.as_tensor(take(table.energy), dtype=f64))
        self._buf("time_sorted", torch.as_tensor(take(table.time), dtype=f64))
        for name in sorted(table.unmeasured & {"pulses", "energy", "time"}):   # measured without them:
            getattr(self, f"{name}_sorted").fill_(float("nan"))                # costs come out unknown (NaN)
        self._buf("read_g", torch.as_tensor(table.read_g, dtype=f64))
        self._buf("read_sigma", torch.as_tensor(table.read_sigma, dtype=f64))
        if table.has_retention:
            t = np.asarray(table.retention_t, dtype=np.float64)
            if np.any(t <= 0) or np.any(np.diff(t) <= 0):
                raise TableError("/retention/t must be positive and strictly increasing")
            self._buf("ret_logt", torch.as_tensor(np.log(t)))
            self._buf("ret_ratio", torch.as_tensor(table.retention_ratio, dtype=f64))
            self._buf("ret_sigma", torch.as_tensor(table.retention_sigma, dtype=f64))
        self.has_retention = table.has_retention
        coef = fit_iv(table, read_voltage) if nonlinear_iv else None
        self._buf("iv_coef", torch.as_tensor(coef if coef is not None else np.zeros((table.n_levels, IV_DEGREE))))

    def _buf(self, name: str, value: torch.Tensor) -> None:
        self.register_buffer(name, value, persistent=False)

    # ------------------------------------------------------------------ programming
    def sample(self, level: torch.Tensor, u: torch.Tensor, fault: torch.Tensor | None,
               stuck_on: float, stuck_off: float, costs: bool = True, sigma: bool = False) -> dict[str, torch.Tensor]:
        """Program cells to ``level`` (integer) with uniforms ``u`` (outcome) and ``fault``
        (None: no stuck-at faults drawn).

        Returns per-cell ``g`` (S, in the dtype of ``u``: float32 draws sample in float32),
        ``stuck`` (bool), with ``costs`` ``pulses``, ``energy`` (J), ``time`` (s) and with
        ``sigma`` the read-noise sigma at ``g`` (interpolated along the sorted samples, the
        same as :meth:`sigma` since both are linear in g between two samples; cells whose
        sample interval holds a knot of the read-noise curve, and stuck-at faults, are
        evaluated by :meth:`sigma` itself).
        """
        n = self.g_sorted.shape[1]
        dt = u.dtype if u.dtype in (torch.float32, torch.float64) else torch.float64
        r = u.to(dt) * (n - 1)
        lo = r.floor().long().clamp_(0, n - 1)
        frac = r - lo
        base = level.long() * n
        i_dev = base + torch.round(r).long().clamp_(0, n - 1)
        i_lo = base.add_(lo)
        del lo, r
        lo_tab, dev_tab, cost_tab = self._sorted_as(dt)
        at_lo = lo_tab.index_select(0, i_lo.reshape(-1)).reshape(*i_lo.shape, 6)     # g dg sigma dsigma both kink
        at_dev = dev_tab.index_select(0, i_dev.reshape(-1)).reshape(*i_dev.shape, 3)  # g sigma converged
        both = at_lo[..., 4] > 0
        g = torch.where(both, at_lo[..., 1].mul(frac).add_(at_lo[..., 0]), at_dev[..., 0])
        out = {"g": g}
        if sigma:
            out["sigma"] = torch.where(both, at_lo[..., 3].mul(frac).add_(at_lo[..., 2]), at_dev[..., 1])
            fix = both & (at_lo[..., 5] > 0)
        del frac, at_lo
        stuck = at_dev[..., 2] == 0
        if fault is not None and stuck_on + stuck_off > 0:
            fault = fault.to(dt)
            on = fault < stuck_on
            off = (fault >= stuck_on) & (fault < stuck_on + stuck_off)
            g = torch.where(on, self.levels[-1].to(dt), torch.where(off, self.levels[0].to(dt), g))
            stuck = stuck | on | off
            out["g"] = g
            if sigma:
                fix |= on | off
        if sigma and bool(fix.any()):
            out["sigma"][fix] = self.sigma(g[fix])
        out["stuck"] = stuck
        if costs:
            at = cost_tab.index_select(0, i_dev.reshape(-1)).reshape(*i_dev.shape, 3)
            out.update(pulses=at[..., 0], energy=at[..., 1], time=at[..., 2])
        return out

    def _sorted_as(self, dtype: torch.dtype) -> tuple:
        """Per sorted sample (rows ``level * n + k``), in ``dtype`` (cached): at the lower
        neighbour [g, step to the next g, sigma, step of sigma, both converged, a knot of
        the read-noise curve strictly between the two], at the picked device [g, sigma,
        converged], and its costs [pulses, energy, time] (float64)."""
        key = (dtype, self.g_sorted.device)
        if getattr(self, "_sorted_cache", (None,))[0] != key:
            gs = self.g_sorted.to(dtype)
            step = lambda a: torch.cat([a[:, 1:] - a[:, :-1], torch.zeros_like(a[:, :1])], dim=1)  # noqa: E731
            sg = self.sigma(gs)
            nxt = torch.cat([gs[:, 1:], gs[:, -1:]], dim=1)
            knots = self.read_g.to(dtype)
            kink = ((gs[..., None] < knots) & (knots < nxt[..., None])).any(-1)
            lo = torch.stack([gs, step(gs), sg, step(sg), self.both_sorted.to(dtype), kink.to(dtype)], -1)
            dev = torch.stack([gs, sg, self.conv_sorted.to(dtype)], -1)
            cost = torch.stack([self.pulses_sorted, self.energy_sorted, self.time_sorted], -1).to(torch.float64)
            self._sorted_cache = (key, lo.reshape(-1, 6), dev.reshape(-1, 3), cost.reshape(-1, 3))
        return self._sorted_cache[1:]

    # ------------------------------------------------------------------ read noise
    def sigma(self, g: torch.Tensor) -> torch.Tensor:
        """Read-noise standard deviation at conductance ``g`` (table.read_sigma_at in torch)."""
        dt = g.dtype if g.dtype in (torch.float32, torch.float64) else torch.float64
        return interp(g.to(dt), self.read_g.to(dt), self.read_sigma.to(dt))

    # ------------------------------------------------------------------ drift
    def drift_factor(self, t: float, level: torch.Tensor, z: torch.Tensor, nu: float, nu_std: float,
                     t0: float) -> torch.Tensor:
        """G(t)/G(0) per cell (>= 0) for cells programmed to ``level`` with normals ``z``."""
        if t <= 0:
            return torch.ones_like(z, dtype=torch.float64)
        z = z.to(torch.float64)
        if not self.has_retention:
            if t <= t0:
                return torch.ones_like(z)
            nu_cell = nu + nu_std * z
            return (t / t0) ** (-nu_cell)
        logt = self.ret_logt
        ratio, sig = self.ret_ratio, self.ret_sigma
        lt = float(np.log(t))
        if lt <= float(logt[0]):
            w = t / float(np.exp(float(logt[0])))      # linear in t from G(0) to the first point
            r_l = 1 + w * (ratio[:, 0] - 1)
            s_l = w * sig[:, 0]
        elif lt >= float(logt[-1]) and logt.numel() > 1:
            slope = (torch.log(ratio[:, -1].clamp_min(1e-12)) - torch.log(ratio[:, -2].clamp_min(1e-12))) / (
                logt[-1] - logt[-2])
            r_l = ratio[:, -1] * torch.exp(slope * (lt - logt[-1]))
            s_l = sig[:, -1]
        elif logt.numel() == 1:
            r_l, s_l = ratio[:, 0], sig[:, 0]
        else:
            x = torch.full((1,), lt, dtype=torch.float64, device=logt.device)
            r_l = torch.stack([interp(x, logt, ratio[i])[0] for i in range(ratio.shape[0])])
            s_l = torch.stack([interp(x, logt, sig[i])[0] for i in range(sig.shape[0])])
        return (r_l[level] + s_l[level] * z).clamp_min(0.0)

    # ------------------------------------------------------------------ I-V
    def iv(self, level: torch.Tensor) -> torch.Tensor:
        """Per-cell polynomial coefficients [..., 3] of the normalized I-V."""
        return self.iv_coef[level]


def tile_latencies(time: torch.Tensor, parallelism: str) -> torch.Tensor:
    """Latency of writing each tile, from per-cell times ``time`` laid out [tiles, rows,
    cols] (zeros for unused cells), under ``parallelism`` (see the module doc)."""
    if parallelism == "cell":
        return time.sum(dim=(1, 2))
    return time.amax(dim=2).sum(dim=1)


def combined_latency(per_tile, parallel: bool) -> float:
    """Latency of writing tiles with latencies ``per_tile`` together (``parallel``: the
    slowest one) or one after another (their sum)."""
    per_tile = torch.as_tensor(per_tile, dtype=torch.float64)
    if per_tile.numel() == 0:
        return 0.0
    return float(per_tile.amax() if parallel else per_tile.sum())
