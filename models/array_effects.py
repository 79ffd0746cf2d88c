"""Programming inside an array, in torch: what a table's ``/array`` group changes.

A table with an ``/array`` group (:class:`rramsim.devices.table.ArrayGroup`, measured by
``rramsim characterize-array`` in ngspice) was also written cell by cell inside an array.
When it is present, programming a tile changes in two ways:

Position-dependent cost
    The pulses, energy and time of a cell at tile position ``(i, j)`` are those of the
    isolated cell times the measured factor at that position. The measured maps are noisy
    (one write per position), so each is fitted as ``f = a + b * d_row + c * d_col`` in the
    wire segments between the cell and its drivers (``d_col = j``: along the row from the
    row driver; ``d_row = R - 1 - i``: along the column to its bottom end) -- the first-order
    dependence of the line drop on the distance -- and a tile of another size uses the same
    per-segment slopes (extrapolated linearly beyond the measured array; factors are kept
    above 0.05). A layer's cost (pulses, energy, latency, per tile) is scaled by the mean
    factor over the tile's positions (:func:`scale_costs`).
Write disturb
    Cells are written row by row, cell by cell, within their tile; every cell written
    after a cell disturbs it: by a *half-select event* when it shares the cell's row or
    column, by an *other* event elsewhere. A cell of level ``l`` with ``n_h`` later
    half-select events and ``n_o`` others ends at
    ``G * exp(n_h mu_h[l] + n_o mu_o[l] + sqrt(n_h s_h[l]^2 + n_o s_o[l]^2) z)``, ``z`` a
    standard normal per cell (its own random stream), with the table's per-event means
    ``mu`` and sigmas ``s``. Every tile is counted full (the cells of a padded tile's unused
    positions are written too), and a row-parallel write (``program_parallelism="row"``)
    is disturbed as the cell-by-cell write that was measured. Stuck-at cells stay stuck.
"""
from __future__ import annotations

import numpy as np
import torch

from rramsim.devices.table import ArrayGroup

#: Random stream of the disturb draws (the tile's streams: outcome 0, fault 1, drift 2).
STREAM_DISTURB = 3
FACTOR_FLOOR = 0.05


def factor_fit(group: ArrayGroup, name: str) -> np.ndarray:
    """Coefficients ``(a, b, c)`` of ``f = a + b d_row + c d_col`` fitted to the map ``name``
    (``pulses_factor``, ``energy_factor`` or ``time_factor``)."""
    f = np.asarray(group.maps[name], dtype=np.float64)
    R, C = f.shape
    i, j = np.meshgrid(np.arange(R), np.arange(C), indexing="ij")
    basis = [np.ones(f.size)]
    basis.append((R - 1 - i).ravel() if R > 1 else np.zeros(f.size))
    basis.append(j.ravel() if C > 1 else np.zeros(f.size))
    x = np.stack(basis, axis=1).astype(float)
    keep = [k for k in range(3) if np.any(x[:, k])]
    coef = np.zeros(3)
    coef[keep] = np.linalg.lstsq(x[:, keep], f.ravel(), rcond=None)[0]
    return coef


def later_writes(i: torch.Tensor, j: torch.Tensor, rows: int, cols: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Later writes on the same row or column (half-select events) and elsewhere, for cells
    at ``(i, j)`` of a ``rows x cols`` tile written row-major, cell by cell."""
    half = (cols - 1 - j) + (rows - 1 - i)
    later = rows * cols - 1 - (i * cols + j)
    return half, later - half


def tile_positions(engine, o0: int, o1: int, s: int, p: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Tile row and column [n_o, rows] of the cells of outputs ``o0 .. o1`` (one group),
    slice ``s`` and plane ``p`` of a :class:`~rramsim.models.tile.TileEngine`."""
    c, m = engine.config, engine.mapping
    og = engine.out_per_group
    g = o0 // og
    col = (((torch.arange(o0, o1) - g * og) * m.n_slices + s) * m.planes + p) % c.tile_cols
    row = torch.arange(engine.rows) % c.tile_rows
    return row[None, :].expand(o1 - o0, -1), col[:, None].expand(-1, engine.rows)


def disturb_cells(engine, res: dict, lv: torch.Tensor, seed: int, o0: int, s: int, p: int, pos: int) -> None:
    """Disturb the conductances of ``res`` in place: the cells of outputs ``o0 ..``, slice
    ``s``, plane ``p`` with levels ``lv`` [n_o, rows]; ``pos``: the block's first cell in the
    seed's streams (see the module doc)."""
    from rramsim.models.tile import _uniforms
    group = engine.table.array
    c = engine.config
    g = res["g"]
    dev = g.device
    lv = lv.to(dev).long()
    ti, tj = (t.to(dev) for t in tile_positions(engine, o0, o0 + lv.shape[0], s, p))
    st = group.stats
    t64 = lambda name: torch.as_tensor(st[name], dtype=torch.float64, device=dev)[lv]   # noqa: E731
    nh, no = (t.to(torch.float64) for t in later_writes(ti, tj, c.tile_rows, c.tile_cols))
    mean = nh * t64("disturb_half_mean") + no * t64("disturb_other_mean")
    std = (nh * t64("disturb_half_std") ** 2 + no * t64("disturb_other_std") ** 2).sqrt()
    u = _uniforms(seed, STREAM_DISTURB, pos, lv.numel()).to(torch.float64).add_(2.0 ** -25)
    factor = torch.exp(mean + std * torch.special.ndtri(u).reshape(lv.shape).to(dev))
    stuck = res.get("stuck")
    out = g * factor.to(g.dtype)
    res["g"] = out if stuck is None else torch.where(stuck, g, out)
    if "sigma" in res:
        res["sigma"] = engine.physics.sigma(res["g"])


def tile_factors(group: ArrayGroup, tile_rows: int, tile_cols: int) -> dict[str, float]:
    """Mean cost factor over the positions of a ``tile_rows x tile_cols`` tile: the fit is
    linear in the position, so it is the factor at the tile's centre."""
    out = {}
    for key in ("pulses", "energy", "time"):
        a, b, c = factor_fit(group, f"{key}_factor")
        i, j = np.meshgrid(np.arange(tile_rows), np.arange(tile_cols), indexing="ij")
        f = np.maximum(a + b * (tile_rows - 1 - i) + c * j, FACTOR_FLOOR)
        out[key] = float(f.mean())
    return out


def scale_costs(stats: dict, group: ArrayGroup, config) -> None:
    """Scale a layer's programming cost (:meth:`TileEngine.program`'s stats) in place by the
    tile-mean factors: exact for totals when levels are independent of positions (pulses,
    energy) and for a row's slowest cell up to that independence (latency)."""
    f = tile_factors(group, config.tile_rows, config.tile_cols)
    for key, fac in (("pulses", "pulses"), ("energy", "energy"), ("latency", "time")):
        if key in stats:
            stats[key] = stats[key] * f[fac]
    for key, fac in (("tile_energy", "energy"), ("tile_latency", "time")):
        if key in stats:
            stats[key] = np.asarray(stats[key]) * f[fac]
    stats["array_factors"] = f


def describe(group: ArrayGroup) -> str:
    """One line for reports: what the group changes."""
    a = group.attrs
    st = group.stats
    w = st["disturb_cells"] + 1e-12
    return (f"programming inside a {a['rows']}x{a['cols']} {a['cell']} {a['bias']} array (table /array): "
            f"position-dependent cost, write disturb {100 * np.average(st['disturb_half_mean'], weights=w):+.4f}% "
            f"per half-select event, {100 * np.average(st['disturb_other_mean'], weights=w):+.5f}% per other write")
