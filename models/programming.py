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

import warnings

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
        raise ValueError(
            f"CrossbarConfig.read_voltage={read_voltage} V is beyond the table's I-V data "
            f"(+-{reach:.3g} V); lower read_voltage or set nonlinear_iv=False (rramsim evaluate, train: --cell-iv linear)"
        )
    sel = np.abs(v) <= 1.05 * read_voltage
    if sel.sum() < IV_DEGREE + 1:
        sel = np.ones_like(v, dtype=bool)
    basis = np.stack([v[sel] ** k for k in range(1, IV_DEGREE + 1)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, cur[:, sel].T, rcond=None)  # [3, L]
    coef = coef.T
    vr = float(table.scheme["read_voltage"])
    i_read = sum(coef[:, k - 1] * vr**k for k in range(1, IV_DEGREE + 1))
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
        conv = self.conv_sorted  # a sample and its upper neighbour both converged
        self._buf("both_sorted", conv & torch.cat([conv[:, 1:], conv[:, -1:]], dim=1))
        self._buf("pulses_sorted", torch.as_tensor(take(table.pulses).astype(np.float64)))
        self._buf("energy_sorted", torch.as_tensor(take(table.energy), dtype=f64))
        self._buf("time_sorted", torch.as_tensor(take(table.time), dtype=f64))
        for name in sorted(table.unmeasured & {"pulses", "energy", "time"}):  # measured without them:
            getattr(self, f"{name}_sorted").fill_(float("nan"))  # costs come out unknown (NaN)
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
        coef = None
        if nonlinear_iv and not table.has_iv:
            warnings.warn(
                "the device table has no I-V data (imported without --iv?): its cells are taken as Ohmic at "
                "their read conductance; give the table an I-V (rramsim table import --iv, or characterize the "
                "device) to simulate the cells' nonlinearity, or set nonlinear_iv=False to silence this",
                UserWarning,
                stacklevel=3,
            )
            coef = np.tile([1.0] + [0.0] * (IV_DEGREE - 1), (table.n_levels, 1))
        elif nonlinear_iv:
            coef = fit_iv(table, read_voltage)
        self._buf("iv_coef", torch.as_tensor(coef if coef is not None else np.zeros((table.n_levels, IV_DEGREE))))

    def _buf(self, name: str, value: torch.Tensor) -> None:
        self.register_buffer(name, value, persistent=False)

    # ------------------------------------------------------------------ programming
    def outcome_key(self, level: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Where uniforms ``u`` land in the sorted samples of ``level``: the key (int32) of
        the outcome row in :meth:`outcome_tables` and the fraction of the way to the next
        sample (in the dtype of ``u``; float32 draws sample in float32).

        ``r = u (n - 1)``; the row is the lower neighbour ``floor(r)`` and the device
        picked, ``round(r)`` (half to even), which is the lower neighbour or the next one:
        ``key = 2 (level n + floor(r)) + (round(r) - floor(r))``.
        """
        n = self.g_sorted.shape[1]
        dt = u.dtype if u.dtype in (torch.float32, torch.float64) else torch.float64
        r = u.to(dt) * (n - 1)
        lo = r.floor().clamp_(0, n - 1)
        frac = r - lo
        key = lo.add_(r.round_().clamp_(0, n - 1)).to(torch.int32)
        key.add_(level.to(torch.int32), alpha=2 * n)
        return key, frac

    def outcome_tables(self, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        """Per outcome key (see :meth:`outcome_key`; cached per dtype and device), 1-D:
        ``g0``, ``g1``: the conductance is ``g1 * frac + g0`` (interpolated between the two
        samples when both converged, else the picked device's own, ``g1 = 0``); ``s0``,
        ``s1``: its read-noise sigma the same way (linear in g between two samples);
        ``fix`` (bool): a knot of the read-noise curve lies inside the interval, so sigma
        must be evaluated by :meth:`sigma` itself; ``stuck`` (bool): the picked device did
        not converge; ``pulses``, ``energy`` (J), ``time`` (s) of the picked device
        (float64)."""
        key = (dtype, self.g_sorted.device)
        cache = getattr(self, "_outcome_cache", None)
        if cache is None or cache[0] != key:
            L, n = self.g_sorted.shape
            gs = self.g_sorted.to(dtype)
            sg = self.sigma(gs)
            step = lambda a: torch.cat([a[:, 1:] - a[:, :-1], torch.zeros_like(a[:, :1])], dim=1)  # noqa: E731
            nxt = torch.cat([gs[:, 1:], gs[:, -1:]], dim=1)
            knots = self.read_g.to(dtype)
            kink = ((gs[..., None] < knots) & (knots < nxt[..., None])).any(-1)
            both = self.both_sorted
            # rows [L, n, 2]: (lower neighbour k, picked device k + d) for d = 0, 1
            dev = torch.stack([torch.arange(n), torch.arange(n).add(1).clamp_(max=n - 1)], -1).to(gs.device)
            at_dev = lambda a: a.gather(1, dev.reshape(1, -1).expand(L, -1)).reshape(L, n, 2)  # noqa: E731
            b2 = both[..., None].expand(L, n, 2)
            zero = torch.zeros((), dtype=dtype, device=gs.device)
            flat = lambda a: a.reshape(-1).contiguous()  # noqa: E731
            tables = {
                "g0": flat(torch.where(b2, gs[..., None].expand(L, n, 2), at_dev(gs))),
                "g1": flat(torch.where(b2, step(gs)[..., None].expand(L, n, 2), zero)),
                "s0": flat(torch.where(b2, sg[..., None].expand(L, n, 2), at_dev(sg))),
                "s1": flat(torch.where(b2, step(sg)[..., None].expand(L, n, 2), zero)),
                "fix": flat((both & kink)[..., None].expand(L, n, 2)),
                "stuck": flat(~at_dev(self.conv_sorted)),
            }
            for name in ("pulses", "energy", "time"):
                tables[name] = flat(at_dev(getattr(self, f"{name}_sorted").to(torch.float64)))
            self._outcome_cache = (key, tables)
        return self._outcome_cache[1]

    def sample(
        self,
        level: torch.Tensor,
        u: torch.Tensor,
        fault: torch.Tensor | None,
        stuck_on: float,
        stuck_off: float,
        costs: bool = True,
        sigma: bool = False,
        keys: bool = False,
        stuck: bool = True,
    ) -> dict[str, torch.Tensor]:
        """Program cells to ``level`` (integer) with uniforms ``u`` (outcome) and ``fault``
        (None: no stuck-at faults drawn).

        Returns per-cell ``g`` (S, in the dtype of ``u``: float32 draws sample in float32),
        with ``stuck`` ``stuck`` (bool), with ``costs`` ``pulses``, ``energy`` (J), ``time`` (s), with
        ``sigma`` the read-noise sigma at ``g`` (interpolated along the sorted samples, the
        same as :meth:`sigma` since both are linear in g between two samples; cells whose
        sample interval holds a knot of the read-noise curve, and stuck-at faults, are
        evaluated by :meth:`sigma` itself) and with ``keys`` the outcome keys (rows of
        :meth:`outcome_tables`, for reducing costs without per-cell cost tensors). Every
        quantity is one gather from the per-outcome tables.
        """
        key, frac = self.outcome_key(level, u)
        tab = self.outcome_tables(frac.dtype)
        flat = key.reshape(-1)
        take = lambda name: tab[name].index_select(0, flat).reshape(key.shape)  # noqa: E731
        g = take("g1").mul_(frac).add_(take("g0"))
        out = {"g": g}
        if sigma:
            out["sigma"] = take("s1").mul_(frac).add_(take("s0"))
            fix = tab["fix"].index_select(0, flat)
        del frac
        stuck_cells = take("stuck") if stuck else None
        if fault is not None and stuck_on + stuck_off > 0:
            dt = g.dtype
            fault = fault.to(dt)
            on = fault < stuck_on
            off = (fault >= stuck_on) & (fault < stuck_on + stuck_off)
            g = torch.where(on, self.levels[-1].to(dt), torch.where(off, self.levels[0].to(dt), g))
            if stuck:
                stuck_cells |= on | off
            out["g"] = g
            if sigma:
                fix |= (on | off).reshape(-1)
        if sigma:
            at = fix.nonzero().squeeze(1)
            if at.numel():
                out["sigma"].view(-1).index_copy_(0, at, self.sigma(g.reshape(-1).index_select(0, at)))
        if stuck:
            out["stuck"] = stuck_cells
        if costs:
            out.update(pulses=take("pulses"), energy=take("energy"), time=take("time"))
        if keys:
            out["keys"] = key
        return out

    # ------------------------------------------------------------------ read noise
    def sigma(self, g: torch.Tensor) -> torch.Tensor:
        """Read-noise standard deviation at conductance ``g`` (table.read_sigma_at in torch)."""
        dt = g.dtype if g.dtype in (torch.float32, torch.float64) else torch.float64
        return interp(g.to(dt), self.read_g.to(dt), self.read_sigma.to(dt))

    # ------------------------------------------------------------------ drift
    def drift_factor(
        self, t: float, level: torch.Tensor, z: torch.Tensor, nu: float, nu_std: float, t0: float
    ) -> torch.Tensor:
        """G(t)/G(0) per cell (>= 0) for cells programmed to ``level`` with normals ``z``.

        ``t`` is seconds after programming; G(0) is the write-verify read (the table's reached
        conductance). A ``/retention`` group gives G(t)/G(0) at its times, measured from that
        read (a device with post-programming relaxation has relaxed already by the first one,
        1 s in rramsim's tables); below its first time the factor goes linearly in t from 1.
        ``table compare`` and ``calibrate`` take a table's spread at t from this function."""
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
            w = t / float(np.exp(float(logt[0])))  # linear in t from G(0) to the first point
            r_l = 1 + w * (ratio[:, 0] - 1)
            s_l = w * sig[:, 0]
        elif lt >= float(logt[-1]) and logt.numel() > 1:
            slope = (torch.log(ratio[:, -1].clamp_min(1e-12)) - torch.log(ratio[:, -2].clamp_min(1e-12))) / (
                logt[-1] - logt[-2]
            )
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


class CostTally:
    """The programming cost of a layer summed tile by tile from the cells' outcome keys
    (see :meth:`DevicePhysics.outcome_key`), without per-cell cost tensors kept: pulses and
    stuck cells are counted per outcome (one bincount weighed by the per-outcome tables),
    energy (and the time of a cell-by-cell write) is summed per row and row tile from one
    gather; with ``program_parallelism="row"`` each row of a tile keeps its slowest cell.
    Tiles are indexed ``[group, column tile, row tile]``."""

    def __init__(
        self,
        physics: DevicePhysics,
        dtype: torch.dtype,
        groups: int,
        col_tiles: int,
        rows: int,
        tile_rows: int,
        parallelism: str,
    ) -> None:
        tab = physics.outcome_tables(dtype)
        f64 = dict(dtype=torch.float64, device=tab["g0"].device)
        self.n_keys = tab["g0"].numel()
        self.energy, self.time = tab["energy"], tab["time"]
        self.per_key = torch.stack([tab["pulses"], tab["stuck"].to(torch.float64)])  # [2, keys]
        self.rows, self.tile_rows = rows, tile_rows
        self.row_tiles = -(-rows // tile_rows)
        self.by_row = parallelism != "cell"
        self.totals = torch.zeros(2, **f64)  # pulses, stuck
        self.tile_energy = torch.zeros((groups, col_tiles, self.row_tiles), **f64)
        if self.by_row:
            self.row_time = torch.zeros((groups, col_tiles, rows), **f64)  # slowest cell per row
        else:
            self.tile_time = torch.zeros((groups, col_tiles, self.row_tiles), **f64)
        self.stuck_cells = None  # counted from per-cell flags instead (stuck-at faults, ideal cells)

    def _per_tile(self, per_row: torch.Tensor) -> torch.Tensor:
        pad = self.row_tiles * self.tile_rows - self.rows
        return torch.nn.functional.pad(per_row, (0, pad)).reshape(self.row_tiles, self.tile_rows).sum(-1)

    def part(self, keys: torch.Tensor, stuck: torch.Tensor | None = None) -> tuple:
        """The cost of cells ``keys`` [n, rows] (all rows of a tile column; ``stuck``: their
        per-cell stuck flags when those are not the outcomes' own), to :meth:`merge` into a
        tile column. Reads nothing it changes: blocks may be reduced on several threads
        and merged in order (the same sums for any number of threads)."""
        flat = keys.reshape(-1)
        totals = self.per_key @ torch.bincount(flat, minlength=self.n_keys).to(torch.float64)
        energy = self._per_tile(self.energy.index_select(0, flat).reshape(keys.shape).sum(0))
        time = self.time.index_select(0, flat).reshape(keys.shape)
        time = time.amax(0) if self.by_row else self._per_tile(time.sum(0))
        return totals, energy, time, None if stuck is None else int(stuck.sum())

    def merge(self, group: int, col_tile: int, part: tuple) -> None:
        """Add a :meth:`part` to tile column ``col_tile`` of ``group``."""
        totals, energy, time, stuck = part
        self.totals += totals
        self.tile_energy[group, col_tile] += energy
        if self.by_row:
            torch.maximum(self.row_time[group, col_tile], time, out=self.row_time[group, col_tile])
        else:
            self.tile_time[group, col_tile] += time
        if stuck is not None:
            self.stuck_cells = (self.stuck_cells or 0) + stuck

    def add(self, group: int, col_tile: int, keys: torch.Tensor, stuck: torch.Tensor | None = None) -> None:
        """Cells ``keys`` written on tile column ``col_tile`` of ``group`` (part and merge)."""
        self.merge(group, col_tile, self.part(keys, stuck))

    def stats(self, parallel_tile_writes: bool) -> dict:
        """Totals (``pulses``, ``energy``, ``stuck``, ``latency``) and per tile
        (``tile_energy``, ``tile_latency``, tiles in ``[group, row tile, column tile]`` order)."""
        flat = lambda a: a.permute(0, 2, 1).reshape(-1)  # noqa: E731
        if self.by_row:  # the rows' slowest cells one after another
            pad = self.row_tiles * self.tile_rows - self.rows
            g, tc = self.row_time.shape[:2]
            per_tile = flat(torch.nn.functional.pad(self.row_time, (0, pad)).reshape(g, tc, self.row_tiles, -1).sum(-1))
        else:  # every cell one after another
            per_tile = flat(self.tile_time)
        energy = flat(self.tile_energy)
        stuck = self.stuck_cells if self.stuck_cells is not None else int(round(float(self.totals[1])))
        return {
            "pulses": float(self.totals[0]),
            "energy": float(energy.sum()),
            "stuck": stuck,
            "latency": combined_latency(per_tile, parallel_tile_writes),
            "tile_energy": energy.cpu().numpy(),
            "tile_latency": per_tile.cpu().numpy(),
        }


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
