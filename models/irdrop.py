"""IR drop in one crossbar tile: an exact nodal solver and a fast approximation.

The network (the same as :func:`rramsim.circuits.crossbar.crossbar_deck`): an R x C tile,
row ``i`` driven by an ideal source ``v_i`` at its left end through one wire segment, then
one segment of resistance ``r`` between neighbouring cells; a cell of conductance
``g[i, j]`` between row node (i, j) and column node (i, j); column ``j`` runs down to a
virtual ground (the sense amplifier) below row R-1, again one segment between cells and
one from the last cell to the sense node. The column currents are what the ADCs read.

With linear cells the currents are linear in the inputs: ``I = T v``. :class:`TileSolver`
factorizes the nodal equations once (block elimination, float64 torch; ~10x faster than
``scipy.sparse.linalg.splu`` on the same matrix, which :func:`nodal_matrix` builds for
reference) and gets ``T`` [C, R]; a forward pass is then a matmul. For nonlinear cells
(``i = g (a1 d + a2 d^2 + a3 d^3)``) it iterates from the linear solution, moving the
nonlinear excess current to the right-hand side (same factorization every iteration).

:func:`approx_transfer` is a fast approximation without any solve: each cell's current
is cut by the relative wire drops its row and column would see with ideal currents,
resummed as ``g / (1 + a + b)`` (first order for small drops, never negative). It is
O(R C (R + C)) torch work, differentiable, and measured against the exact solver on
random 5-150 uS tiles: 0.04% error at 32x32 and 0.5% at 64x64 (1 ohm/segment), 3% at
128x128 where the ideal model is off by 84%.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


def nodal_matrix(g: np.ndarray, r: float) -> tuple[sp.csc_matrix, np.ndarray, np.ndarray]:
    """The sparse nodal matrix ``A`` [2RC, 2RC] of the tile, the driven row nodes and the
    sensed column nodes (for reference solves with ``scipy.sparse.linalg``).

    Node ``i*C + j`` is the row wire at cell (i, j), node ``RC + i*C + j`` the column wire.
    The right-hand side of row voltages ``v`` is ``v / r`` at the driven nodes; the current
    of column ``j`` is ``x[sense[j]] / r``.
    """
    g = _check(g, r)
    R, C = g.shape
    gw = 1.0 / r
    rn = np.arange(R * C).reshape(R, C)
    cn = R * C + rn
    rows, cols, vals = [], [], []

    def branch(a: np.ndarray, b: np.ndarray, gv: np.ndarray) -> None:
        a, b, gv = a.ravel(), b.ravel(), np.broadcast_to(gv, a.shape).ravel()
        rows.extend([a, b, a, b])
        cols.extend([a, b, b, a])
        vals.extend([gv, gv, -gv, -gv])

    branch(rn[:, :-1], rn[:, 1:], np.full((R, C - 1), gw))   # row wire segments
    branch(cn[:-1, :], cn[1:, :], np.full((R - 1, C), gw))   # column wire segments
    branch(rn, cn, g)                                          # cells
    for a in (rn[:, 0], cn[-1, :]):                           # driver / virtual ground segments
        rows.append(a)
        cols.append(a)
        vals.append(np.full(a.shape, gw))
    n = 2 * R * C
    A = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    return A, rn[:, 0], cn[-1, :]


def _check(g: np.ndarray, r: float) -> np.ndarray:
    g = np.asarray(g, dtype=np.float64)
    if g.ndim != 2 or min(g.shape) < 1:
        raise ValueError(f"tile conductances must be a 2-D [rows, cols] array, got shape {g.shape}")
    if not np.all(np.isfinite(g)) or np.any(g < 0):
        raise ValueError("tile conductances must be finite and non-negative")
    if not (np.isfinite(r) and r > 0):
        raise ValueError(f"wire_resistance must be a finite positive resistance, got {r!r}")
    return g


class TileSolver:
    """Exact nodal solution of one tile with conductances ``g`` [R, C] and wire resistance ``r``.

    The factorization is a block elimination of the same nodal equations as
    :func:`nodal_matrix`: each column wire (a tridiagonal chain) is eliminated in closed
    form, leaving a block-tridiagonal system on the row-wire nodes (one R x R block per
    column, coupled by the row-wire segments) solved by block Gaussian elimination in
    float64 torch. It is done once; every solve reuses it.
    """

    def __init__(self, g: np.ndarray, r: float) -> None:
        g = _check(g, r)
        self.g, self.r = g, float(r)
        R, C = g.shape
        self.shape = (R, C)
        gw = self.gw = 1.0 / self.r
        gc = self._gc = torch.from_numpy(np.ascontiguousarray(g.T))      # [C, R]: column j's cells
        # Column chains K_j (tridiagonal): node 0 open at the top, node R-1 to the virtual ground.
        idx = torch.arange(R)
        K = torch.zeros((C, R, R), dtype=torch.float64)
        K[:, idx, idx] = gc + gw * (2.0 if R > 1 else 1.0)
        if R > 1:
            K[:, 0, 0] -= gw
            K[:, idx[:-1], idx[1:]] = -gw
            K[:, idx[1:], idx[:-1]] = -gw
        self.Kinv = torch.linalg.inv(K)                                   # [C, R, R]
        # Row-wire diagonal: driver segment at j = 0, neighbours on both sides inside.
        wr = torch.full((C,), 2 * gw, dtype=torch.float64)
        wr[-1] = gw
        if C == 1:
            wr[0] = gw
        S = -(gc[:, :, None] * self.Kinv * gc[:, None, :])
        S[:, idx, idx] += gc + wr[:, None]
        self.Minv = torch.empty_like(S)
        M = S[0]
        for j in range(C):
            if j > 0:
                M = S[j] - gw * gw * self.Minv[j - 1]
            self.Minv[j] = torch.linalg.inv(M)
        self._T: np.ndarray | None = None

    def solve(self, f_r: torch.Tensor, f_c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Node voltages for current injections ``f_r``, ``f_c`` [C, R, n] (float64) at the
        row and column nodes of each column; returns ``(x_r, x_c)`` shaped the same."""
        C = self.shape[1]
        gw = self.gw
        gc = self._gc[:, :, None]
        kf = self.Kinv @ f_c
        h = f_r + gc * kf
        y = torch.empty_like(h)
        y[0] = h[0]
        for j in range(1, C):
            y[j] = h[j] + gw * (self.Minv[j - 1] @ y[j - 1])
        x = torch.empty_like(h)
        x[-1] = self.Minv[-1] @ y[-1]
        for j in range(C - 2, -1, -1):
            x[j] = self.Minv[j] @ (y[j] + gw * x[j + 1])
        xc = kf + self.Kinv @ (gc * x)
        return x, xc

    def _drive(self, v: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        R, C = self.shape
        f_r = torch.zeros((C, R, v.shape[1]), dtype=torch.float64)
        f_r[0] = torch.as_tensor(v, dtype=torch.float64) * self.gw
        return f_r, torch.zeros_like(f_r)

    def transfer(self) -> np.ndarray:
        """``T`` [C, R]: column currents per volt on each row (computed once, cached)."""
        if self._T is None:
            _, xc = self.solve(*self._drive(np.eye(self.shape[0])))
            self._T = (self.gw * xc[:, -1, :]).numpy()
        return self._T

    def currents(self, v: np.ndarray) -> np.ndarray:
        """Column currents [C, n] for row voltages ``v`` [R, n] (linear cells)."""
        return self.transfer() @ v

    def currents_nonlinear(self, v: np.ndarray, coef: np.ndarray, tol: float = 1e-9,
                           max_iter: int = 100) -> tuple[np.ndarray, int]:
        """Column currents [C, n] with cells ``i = g (a1 d + a2 d^2 + a3 d^3)``.

        ``coef`` [R, C, 3] are the per-cell ``a_k``. Starts from the linear solution and
        iterates with the nonlinear excess current of each cell moved to the right-hand
        side (same factorization every iteration); stops when the largest node-voltage
        change is below ``tol`` times the largest input. Returns currents and iterations.
        """
        v = np.asarray(v, dtype=np.float64)
        f_r, f_c = self._drive(v)
        xr, xc = self.solve(f_r, f_c)
        g = self._gc[:, :, None]
        coef = torch.as_tensor(np.asarray(coef, dtype=np.float64)).permute(1, 0, 2)   # [C, R, 3]
        a1, a2, a3 = (coef[:, :, k:k + 1] for k in range(3))
        scale = max(float(np.abs(v).max()), 1e-30)
        for it in range(1, max_iter + 1):
            d = xr - xc
            excess = g * ((a1 - 1.0) * d + a2 * d * d + a3 * d * d * d)
            xr_new, xc_new = self.solve(f_r - excess, f_c + excess)
            change = max(float((xr_new - xr).abs().max()), float((xc_new - xc).abs().max()))
            xr, xc = xr_new, xc_new
            if change < tol * scale:
                return (self.gw * xc[:, -1, :]).numpy(), it
        raise RuntimeError(f"IR-drop solver with nonlinear cells did not converge in {max_iter} iterations "
                           "(the I-V is too nonlinear for the wire resistance); lower wire_resistance "
                           "or use nonlinear_iv=False")


def approx_transfer(g: torch.Tensor, r: float) -> torch.Tensor:
    """Approximate effective conductances ``g_eff`` [..., R, C] (``I = v @ g_eff``).

    With ideal cell currents ``v_i g_ij`` in the wires, the row wire (driver at the left)
    drops cell (i, j)'s voltage by the fraction ``a_ij = r sum_m g_im (min(m, j) + 1)``
    and the column wire (virtual ground at the bottom) raises its far end by
    ``b_ij = r sum_m g_mj (R - max(i, m))`` relative terms; the cell then conducts
    ``g / (1 + a + b)`` (the resummed first-order correction ``g (1 - a - b)``).
    """
    R, C = g.shape[-2], g.shape[-1]
    dev, dt = g.device, g.dtype
    jj = torch.arange(C, device=dev)
    w_row = (torch.minimum(jj[:, None], jj[None, :]) + 1).to(dt)          # [C(m), C(j)]
    ii = torch.arange(R, device=dev)
    w_col = (R - torch.maximum(ii[:, None], ii[None, :])).to(dt)          # [R(m), R(i)]
    a = r * (g @ w_row)                                                    # [.., R, C]
    b = r * (w_col @ g)                                                    # b[m, j] = r sum_i (R - max(i, m)) g_ij
    return g / (1 + a + b)
