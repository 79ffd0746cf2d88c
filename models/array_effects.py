"""Programming inside an array, in torch: what a table's ``/array`` group changes.

A table with an ``/array`` group (:class:`rramsim.devices.table.ArrayGroup`, measured by
``rramsim characterize-array`` in ngspice) was also written cell by cell inside an array.
When it is present, programming a tile changes in two ways:

Position-dependent cost
    The pulses, energy and time of a cell at position ``(i, j)`` of the measured array are
    those of the isolated cell times the measured factor there. A layer's cost (pulses,
    energy, latency, per tile) is scaled by the mean factor over the measured array's
    positions (:func:`scale_costs`), the cost of programming inside an array of the measured
    size. It is not extrapolated to tiles of another size: in a V/2 or V/3 array the energy
    is mostly the half-selected cells' currents, which grow with the lines' length, not with
    a cell's position, so a larger tile costs more than this says (:func:`describe` says so).
Write disturb
    Cells are written within their tile in the order the group was measured in
    (``write_order``). Row-major, cell by cell: every cell written after a cell disturbs
    it, by a *half-select event* when it shares the cell's row or column, by an *other*
    event elsewhere. Row-parallel (all cells of a row together, each column with its own
    pulses, finished columns inhibited): every later row is a half-select event (pulses on
    the cell's column), and the rest of the cell's own row after its column was inhibited
    is one other event. A cell of level ``l`` with ``n_h`` later
    half-select events and ``n_o`` others ends at
    ``G * exp(n_h mu_h[l] + n_o mu_o[l] + sqrt(n_h s_h[l]^2 + n_o s_o[l]^2) z)``, ``z`` a
    standard normal per cell (its own random stream), with the table's per-event means
    ``mu`` and sigmas ``s``. Every tile is counted full (the cells of a padded tile's unused
    positions are written too), whatever ``program_parallelism`` the config's latency
    assumes (the measured order decides the disturb). Stuck-at cells stay stuck.
"""

from __future__ import annotations

import numpy as np
import torch

from rramsim.devices.table import ArrayGroup

#: Random stream of the disturb draws (the tile's streams: outcome 0, fault 1, drift 2).
STREAM_DISTURB = 3


def later_writes(
    i: torch.Tensor, j: torch.Tensor, rows: int, cols: int, order: str = "row-major"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The events after a cell's own write, for cells at ``(i, j)`` of a ``rows x cols``
    block (numbers or tensors like ``i``): written ``row-major``, cell by cell, later writes on the same row or column
    (half-select events) and elsewhere; written ``row-parallel``, later rows (half-select
    events) and one other event, the rest of the cell's own row after it was inhibited."""
    if order == "row-parallel":
        return rows - 1 - i, torch.ones_like(i)
    if order != "row-major":
        raise ValueError(f"/array write_order must be row-major or row-parallel, got {order!r}")
    half = (cols - 1 - j) + (rows - 1 - i)
    later = rows * cols - 1 - (i * cols + j)
    return half, later - half


def tile_positions(
    engine, o0: int, o1: int, s: int, p: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Row and column [n_o, rows] of the cells of outputs ``o0 .. o1`` (one group), slice
    ``s`` and plane ``p`` of a :class:`~rramsim.models.tile.TileEngine` inside the used block
    of their tile, and that block's rows and columns: a layer that fills part of a tile holds
    the rows nearest its sense amplifiers and the columns nearest its drivers, and only that
    block is written."""
    c, m = engine.config, engine.mapping
    og = engine.out_per_group
    g = o0 // og
    cols_g = engine.geometry()["physical_columns"] // engine.groups
    col = ((torch.arange(o0, o1) - g * og) * m.n_slices + s) * m.planes + p
    row = torch.arange(engine.rows)
    rows_used = (engine.rows - row // c.tile_rows * c.tile_rows).clamp(max=c.tile_rows)
    cols_used = (cols_g - col // c.tile_cols * c.tile_cols).clamp(max=c.tile_cols)
    shape = (o1 - o0, engine.rows)
    return (
        (row % c.tile_rows)[None, :].expand(shape),
        (col % c.tile_cols)[:, None].expand(shape),
        rows_used[None, :].expand(shape),
        cols_used[:, None].expand(shape),
    )


def disturb_cells(engine, res: dict, lv: torch.Tensor, seed: int, o0: int, s: int, p: int, pos: int) -> None:
    """Disturb the conductances of ``res`` in place: the cells of outputs ``o0 ..``, slice
    ``s``, plane ``p`` with levels ``lv`` [n_o, rows]; ``pos``: the block's first cell in the
    seed's streams (see the module doc)."""
    from rramsim.models.tile import _uniforms

    group = engine.table.array
    g = res["g"]
    dev = g.device
    lv = lv.to(dev).long()
    ti, tj, rows, cols = (t.to(dev) for t in tile_positions(engine, o0, o0 + lv.shape[0], s, p))
    st = group.stats
    t64 = lambda name: torch.as_tensor(st[name], dtype=torch.float64, device=dev)[lv]  # noqa: E731
    nh, no = (t.to(torch.float64) for t in later_writes(ti, tj, rows, cols, str(group.attrs["write_order"])))
    mean = nh * t64("disturb_half_mean") + no * t64("disturb_other_mean")
    std = (nh * t64("disturb_half_std") ** 2 + no * t64("disturb_other_std") ** 2).sqrt()
    u = _uniforms(seed, STREAM_DISTURB, pos, lv.numel()).to(torch.float64).add_(2.0**-25)
    factor = torch.exp(mean + std * torch.special.ndtri(u).reshape(lv.shape).to(dev))
    stuck = res.get("stuck")
    out = g * factor.to(g.dtype)
    res["g"] = out if stuck is None else torch.where(stuck, g, out)
    if "sigma" in res:
        res["sigma"] = engine.physics.sigma(res["g"])


def tile_factors(group: ArrayGroup) -> dict[str, float]:
    """Mean cost factor over the measured array's positions (pulses, energy, time)."""
    return {key: float(np.mean(group.maps[f"{key}_factor"])) for key in ("pulses", "energy", "time")}


def scale_costs(stats: dict, group: ArrayGroup, config) -> None:
    """Scale a layer's programming cost (:meth:`TileEngine.program`'s stats) in place by the
    measured array's mean factors (exact for the totals of a tile of the measured size when
    levels are independent of positions; a row's slowest cell up to that independence)."""
    f = tile_factors(group)
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
    f = tile_factors(group)
    half, other = (
        ("per later row", "for the rest of its own row")
        if a["write_order"] == "row-parallel"
        else ("per half-select event", "per other write")
    )
    return (
        f"programming inside a {a['rows']}x{a['cols']} {a['cell']} {a['bias']} array, {a['write_order']} "
        f"(table /array): write disturb {100 * np.average(st['disturb_half_mean'], weights=w):+.4f}% {half}, "
        f"{100 * np.average(st['disturb_other_mean'], weights=w):+.5f}% {other}; cost x{f['pulses']:.3g} "
        f"pulses, x{f['energy']:.3g} energy (of a {a['rows']}x{a['cols']} array, not scaled to the tile size)"
    )
