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
reference) and gets ``T`` [C, R]; a forward pass is then a matmul.

Nonlinear cells (``i = g (a1 d + a2 d^2 + a3 d^3)``, ``d`` the cell voltage) are solved by
a per-programming linearization (:meth:`TileSolver.currents_nonlinear`, the default): each
cell is split into a chord conductance ``g c`` (the least-squares line through its I-V
over the inputs' range) and an excess current ``e(d) = g (p(d) - c d)``. The chord
network is solved once per programming for three matrices: ``T_c`` (column currents per
row volt), ``D`` (every cell's voltage per row volt) and ``U`` (column currents per unit
current injected across each cell, by reciprocity one solve per column). A forward pass
is then ``I = T_c v + U e(D v)``: three matmuls and an elementwise cubic (over the driven
rows only: cells of rows that never see an input, a tile's padding, stay linear), exact except
for the extra wire drop the excess currents themselves cause (``e`` is evaluated at the
chord network's cell voltages). That residual is measured when the linearization is
built, on probe vectors against the fixed-point solution (``linearization_error``), and
the solver falls back to the fixed-point iteration when it exceeds ``LINEARIZATION_TOL``
(never a silent loss of accuracy). The fixed-point method (``method="fixed-point"``)
iterates from the linear solution, moving the nonlinear excess current to the
right-hand side (same factorization every iteration).

:meth:`TileSolver.programmed_model` (:func:`programmed_model`) goes one step further for
speed: a model fixed at programming, ``W1 v + W2 v^2 + W3 v^3`` plus a cross term, a few
matmuls per vector like cells without IR drop. Each cell's voltage is its own row's share
``D_iji v_i`` plus the drop the other rows' currents cause on the shared wires; everything
linear folds exactly into ``W1``, the nonlinear excess at the own share into ``W2, W3``,
and the rest (the excess's change with the other rows' drop) is kept per column through
the column's leading input forms ``z_q = B_q v`` (the best low-rank approximation of its
cross matrix): to first order in each form through one functional of ``v^2`` per form,
to higher orders as a polynomial in ``z`` (its functionals of ``v`` projected onto the
forms; the leading form's two may be kept as functionals), see :func:`cross_term`. So a
column costs two products per form and vector, four with the leading form's functionals
kept. Its error against the converged nodal solution is measured when it is built, on probe
vectors (uniform, bipolar, sparse, all rows at plus and at minus full scale, full scale in
two blocks of opposite sign), relative to the tile's full-scale current, for the model and
every cheaper one cut from it (:func:`truncate`: fewer forms, the leading form's
functionals projected), against one reference; a layer runs the cheapest within
``MODEL_TOL`` for all its tiles. 1 ohm/segment, the default table's I-V: ~0.01-0.05% at
32x32 and 64x64; at 128 rows one form leaves 0.11-0.25% and two 0.02-0.08%; without the
cross term (``rank=0``) 0.3-2%. At 2.5 ohm/segment two forms leave 0.06-0.08% with the
leading form's functionals kept and 0.11-0.15% projected on LeNet-5's 128-row tiles (which
cut is the better depends on the tile). Building it with two forms, fitted twice, and the
probe checks of all its cuts costs ~0.4-0.6 s of one core for a 128x128 tile (the chord
network's factorization, a row-drive sweep in float64 for ``T``,
``D`` and ``U`` in float32, and the probe check's reference by mixed-precision
refinement); a tile's empty rows at the bottom cost nothing (series segments of the column
wires, exact).

:func:`series_cell_current` and :meth:`TileSolver.currents_cells` handle a cell whose
current depends on both of its nodes, e.g. the RRAM in series with a 1T1R access
transistor (:class:`AccessTransistor`) whose source sits on the column wire.

:func:`approx_transfer` is a fast approximation without any solve: each cell's current
is cut by the relative wire drops its row and column would see with ideal currents,
resummed as ``g / (1 + a + b)`` (first order for small drops, never negative). It is
O(R C (R + C)) torch work, differentiable, and measured against the exact solver on
random 5-150 uS tiles: 0.04% error at 32x32 and 0.5% at 64x64 (1 ohm/segment), 3% at
128x128 where the ideal model is off by 84%.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

#: Largest relative error (of the largest column current) the linearized nonlinear solve
#: may show on its probe vectors; beyond it the fixed-point iteration is used instead.
LINEARIZATION_TOL = 5e-4
PROBE_VECTORS = 8
#: Fewest input forms per column of the per-programming model's cross term a layer runs with
#: (:meth:`TileSolver.programmed_model`).
CROSS_RANK = 1
#: Largest probe error (of each vector's largest column current) of the per-programming model before a
#: layer falls back to the per-vector solve (with a warning).
MODEL_TOL = 1e-3
#: Input forms per column a layer's tiles are built with; the layer runs the cheapest model cut from them
#: within ``MODEL_TOL`` (128-row tiles of the default table at 1 ohm/segment: 0.11-0.25% of full scale with
#: one form, on full scale in two blocks of opposite sign or all rows at full scale; 0.02-0.08% with two).
ESCALATED_RANK = 2
#: Precision of the per-programming model's ``D`` and ``U`` solves (its ``T`` is always float64).
BUILD_DTYPE = torch.float32


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

    branch(rn[:, :-1], rn[:, 1:], np.full((R, C - 1), gw))  # row wire segments
    branch(cn[:-1, :], cn[1:, :], np.full((R - 1, C), gw))  # column wire segments
    branch(rn, cn, g)  # cells
    for a in (rn[:, 0], cn[-1, :]):  # driver / virtual ground segments
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


def _chain_inverse(diag: torch.Tensor, gw: float) -> torch.Tensor:
    """Inverses [C, R, R] of the symmetric tridiagonal chains with diagonals ``diag`` [C, R] and
    off-diagonals ``-gw`` (the column wires with their cells to a grounded row), in closed form.

    With the pivots of elimination from the top, ``l_0 = d_0``, ``l_a = d_a - gw^2 / l_{a-1}``,
    and from the bottom ``u_a`` (likewise), the diagonal of the inverse is
    ``1 / (l_a + u_a - d_a)``; above the diagonal each entry is the one below it times
    ``gw / l_a`` (row a's equation with nothing injected), so ``K^-1_ab = K^-1_bb
    prod_{a <= t < b} gw / l_t`` for ``a <= b``: products of factors in (0, 1] (the chain's
    open top makes ``l_t >= gw``), formed as exponentials of differences of cumulative
    log-sums, without overflow. O(R^2) per column against O(R^3) for a dense inverse."""
    C, R = diag.shape
    dn = diag.numpy()
    lo, up = np.empty_like(dn), np.empty_like(dn)
    lo[:, 0], up[:, R - 1] = dn[:, 0], dn[:, R - 1]
    for a in range(1, R):  # (numpy: many tiny steps)
        lo[:, a] = dn[:, a] - gw * gw / lo[:, a - 1]
        up[:, R - 1 - a] = dn[:, R - 1 - a] - gw * gw / up[:, R - a]
    lo, up = torch.from_numpy(lo), torch.from_numpy(up)
    d = 1.0 / (lo + up - diag)
    q = torch.zeros_like(diag)  # q_a = sum_{t < a} log(gw / l_t), non-increasing
    q[:, 1:] = torch.cumsum(torch.log(gw / lo[:, :-1]), dim=1)
    idx = torch.arange(R)
    upper = idx[:, None] <= idx[None, :]
    if float(q.min()) > -300:  # as products: K^-1_ab = (1 / p_a) (d_b p_b) above the diagonal, p = exp(q)
        p = torch.exp(q)
        X = (1.0 / p)[:, :, None] * (d * p)[:, None, :]
        return torch.where(upper, X, X.transpose(1, 2))
    far = torch.maximum(idx[:, None], idx[None, :])  # (strongly damped chains: exponentials of differences)
    return d[:, far] * torch.exp(-(q[:, :, None] - q[:, None, :]).abs())


def _spd_inverse(N: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Inverse of the symmetric positive definite ``N`` into ``out``: by Cholesky, and for 96
    rows or more by 2 x 2 blocks (``N = [[A, B], [B^T, D]]``: ``A^-1``, the Schur complement
    ``S = D - B^T A^-1 B`` and its inverse by Cholesky, the rest by four matrix products),
    ~1.5x faster at 128 rows than LAPACK's inverse of the whole, to rounding the same."""
    n = N.shape[0]
    if n < 96:
        return torch.cholesky_inverse(torch.linalg.cholesky(N), out=out)
    h = n // 2
    A, B, D = N[:h, :h], N[:h, h:], N[h:, h:]
    Ai = torch.cholesky_inverse(torch.linalg.cholesky(A))
    X = Ai @ B
    Si = torch.cholesky_inverse(torch.linalg.cholesky(torch.addmm(D, B.T, X, alpha=-1)))
    Y = torch.mm(X, Si).neg_()  # the upper right block
    torch.addmm(Ai, Y, X.T, alpha=-1, out=out[:h, :h])
    out[:h, h:] = Y
    out[h:, :h] = Y.T
    out[h:, h:] = Si
    return out


class TileSolver:
    """Exact nodal solution of one tile with conductances ``g`` [R, C] and wire resistance ``r``.

    The factorization is a block elimination of the same nodal equations as
    :func:`nodal_matrix`: each column wire (a tridiagonal chain) is eliminated in closed
    form (:func:`_chain_inverse`), leaving a block-tridiagonal system on the row-wire nodes
    (one R x R block per column, coupled by the row-wire segments) solved by block Gaussian
    elimination in float64 torch, from the last column towards the drivers: a row drive
    (inputs enter at column 0 only) then needs a single sweep. It is done once; every solve
    reuses it (:meth:`solve` also runs in float32 on the same factors, for builds whose
    results need no more than float32).

    ``sense_segments`` wire segments join the last row's column node to the sense node (1:
    the tile of :func:`nodal_matrix`). Rows without any cell (``g = 0``, a tile's unused
    rows at the bottom) carry no current in their cells, so their column wire is just
    series segments: a tile whose last ``k`` rows are empty is exactly the tile of its
    used rows with ``1 + k`` sense segments (:func:`programmed_model` builds it so).
    """

    def __init__(self, g: np.ndarray, r: float, sense_segments: int = 1) -> None:
        g = _check(g, r)
        if not (isinstance(sense_segments, (int, np.integer)) and sense_segments >= 1):
            raise ValueError(f"sense_segments must be an integer >= 1, got {sense_segments!r}")
        self.g, self.r = g, float(r)
        R, C = g.shape
        self.shape = (R, C)
        gw = self.gw = 1.0 / self.r
        self._sense_segments = int(sense_segments)
        self.gs = gw / self._sense_segments  # conductance of the column's wire to the sense node
        gc = self._gc = torch.from_numpy(np.ascontiguousarray(g.T))  # [C, R]: column j's cells
        # Column chains K_j (tridiagonal): node 0 open at the top, node R-1 to the sense node.
        diag = gc + 2 * gw
        diag[:, 0] -= gw
        diag[:, -1] += self.gs - gw
        self.Kinv = _chain_inverse(diag, gw)  # [C, R, R]
        # Row-wire diagonal: driver segment at j = 0, neighbours on both sides inside.
        wr = torch.full((C,), 2 * gw, dtype=torch.float64)
        wr[-1] = gw
        if C == 1:
            wr[0] = gw
        S = (gc[:, :, None] * self.Kinv).mul_(gc[:, None, :]).neg_()
        torch.diagonal(S, dim1=1, dim2=2).add_(gc + wr[:, None])
        # Schur complements from the last column: N_j = S_j - gw^2 N_{j+1}^-1 (symmetric positive definite)
        self.Ninv = torch.empty_like(S)
        N = S[C - 1]
        for j in range(C - 1, -1, -1):
            if j < C - 1:
                N = S[j].add_(self.Ninv[j + 1], alpha=-gw * gw)
            _spd_inverse(N, self.Ninv[j])
        self._cast: dict = {torch.float64: (self.Kinv, self.Ninv, gc)}
        self._T: np.ndarray | None = None

    def _factors(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(Kinv, Ninv, g^T)`` in ``dtype`` (cast once)."""
        if dtype not in self._cast:
            self._cast[dtype] = tuple(t.to(dtype) for t in self._cast[torch.float64])
        return self._cast[dtype]

    def solve(self, f_r: torch.Tensor, f_c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Node voltages for current injections ``f_r``, ``f_c`` [C, R, n] (float64, or float32
        for a float32 solve on the same factors) at the row and column nodes of each column;
        returns ``(x_r, x_c)`` shaped the same."""
        xr, xc = self._solve_t(f_r.transpose(1, 2).contiguous(), f_c.transpose(1, 2).contiguous())
        return xr.transpose(1, 2), xc.transpose(1, 2)

    # The sweeps work in the layout [C, n, R]: each column's right-hand sides as rows, multiplied
    # from the right by the symmetric factors (row blocks times a matrix, BLAS's faster orientation).
    def _solve_t(self, f_r: torch.Tensor, f_c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`solve` in the layout [C, n, R]."""
        Kinv, Ninv, gc = self._factors(f_r.dtype)
        C = self.shape[1]
        gc = gc[:, None, :]
        kf = f_c @ Kinv if bool(f_c.any()) else None  # (no column injection: a row drive)
        h = f_r if kf is None else torch.addcmul(f_r, gc, kf)
        y = torch.empty_like(h)  # right to left: y_j = h_j + gw N_{j+1}^-1 y_{j+1}
        y[-1] = h[-1]
        for j in range(C - 2, -1, -1):
            torch.addmm(h[j], y[j + 1], Ninv[j + 1], alpha=self.gw, out=y[j])
        x = self._back(y)
        xc = (gc * x) @ Kinv
        if kf is not None:
            xc += kf
        return x, xc

    def _back(self, y: torch.Tensor, row_drive: bool = False) -> torch.Tensor:
        """Row-node voltages [C, n, R] from the eliminated right-hand sides ``y`` (left to right:
        ``x_0 = N_0^-1 y_0``, ``x_j = N_j^-1 (y_j + gw x_{j-1})``; for a row drive ``y_j = 0``
        beyond column 0 and ``y`` is just ``y_0``)."""
        _, Ninv, _ = self._factors(y.dtype)
        C = self.shape[1]
        x = torch.empty((C,) + tuple(y.shape[-2:]), dtype=y.dtype)
        torch.mm(y[0], Ninv[0], out=x[0])
        for j in range(1, C):
            if row_drive:
                torch.mm(x[j - 1], Ninv[j], out=x[j]).mul_(self.gw)
            else:
                torch.mm(torch.add(y[j], x[j - 1], alpha=self.gw), Ninv[j], out=x[j])
        return x

    def _drive_t(self, v: torch.Tensor) -> torch.Tensor:
        """Row-node voltages [C, n, R] for row voltages ``v`` [n, R] (in ``v``'s dtype): one
        sweep, as nothing enters beyond column 0 (the column nodes: :meth:`_columns`)."""
        return self._back((self.gw * v)[None], row_drive=True)

    def _columns(self, x: torch.Tensor) -> torch.Tensor:
        """Column-node voltages [C, n, R] of row-node voltages ``x`` [C, n, R] when nothing is
        injected at the column nodes (``K^-1 g x``)."""
        Kinv, _, gc = self._factors(x.dtype)
        return (gc[:, None, :] * x) @ Kinv

    def drive_solve(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Node voltages ``(x_r, x_c)`` [C, R, n] for row voltages ``v`` [R, n] (in ``v``'s
        dtype): one sweep, as nothing enters beyond column 0."""
        x = self._drive_t(v.T.contiguous())
        return x.transpose(1, 2), self._columns(x).transpose(1, 2)

    def row_currents(self, x: torch.Tensor) -> torch.Tensor:
        """Column currents [C, n] of row-node voltages ``x`` [C, n, R] when nothing is injected
        at the column nodes (each column node is then ``K^-1 g x``; only the last is read)."""
        Kinv, _, gc = self._factors(x.dtype)
        return self.gs * torch.einsum("ci,cni->cn", Kinv[:, -1, :] * gc, x)

    def _residual(self, xr: torch.Tensor, xc: torch.Tensor, f_r: torch.Tensor, cell: torch.Tensor) -> tuple:
        """``f - A x`` of the nodal equations (the network of :func:`nodal_matrix`, with this
        solver's sense segments) for node voltages ``(x_r, x_c)`` [C, n, R], row-node
        injections ``f_r`` and cell currents ``cell`` (row node to column node, whatever
        their I-V): the stencil of the wire segments, exact in the inputs' dtype (float64)."""
        gw = self.gw
        rr = f_r - cell
        dx = xr[1:] - xr[:-1]  # row segments, column j-1 to j
        rr[1:].sub_(dx, alpha=gw)
        rr[:-1].add_(dx, alpha=gw)
        rr[0].sub_(xr[0], alpha=gw)  # the driver's segment (its voltage is in f_r)
        rc = cell.clone()
        dx = xc[:, :, 1:] - xc[:, :, :-1]  # column segments, row i-1 to i
        rc[:, :, 1:].sub_(dx, alpha=gw)
        rc[:, :, :-1].add_(dx, alpha=gw)
        rc[:, :, -1].sub_(xc[:, :, -1], alpha=self.gs)  # to the sense node
        return rr, rc

    def column_currents(self, xc: torch.Tensor) -> torch.Tensor:
        """Column currents [C, n] (into the sense nodes) of column-node voltages ``xc`` [C, R, n]."""
        return self.gs * xc[:, -1, :]

    def sense_solve(self, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
        """Node voltages ``(x_r, x_c)`` [C(j), C(k), R] for a unit current into each column's
        sense end (``k``), all at once. Only column k's right-hand side enters at column k, so
        after the right-to-left elimination ``y_j`` is zero for ``k < j`` (a triangle, half
        the work)."""
        Kinv, Ninv, gc = self._factors(dtype)
        R, C = self.shape
        kf = Kinv[:, R - 1, :]  # [C, R]: column k's chain response to its own injection
        h = gc * kf
        y = torch.zeros((C, C, R), dtype=dtype)
        y[C - 1, C - 1] = h[C - 1]
        for j in range(C - 2, -1, -1):
            torch.mm(y[j + 1, j + 1 :], Ninv[j + 1], out=y[j, j + 1 :]).mul_(self.gw)
            y[j, j] = h[j]
        x = self._back(y)
        xc = self._columns(x)
        k = torch.arange(C)
        xc[k, k] += kf
        return x, xc

    def _drive(self, v: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        R, C = self.shape
        f_r = torch.zeros((C, R, v.shape[1]), dtype=torch.float64)
        f_r[0] = torch.as_tensor(v, dtype=torch.float64) * self.gw
        return f_r, torch.zeros_like(f_r)

    def transfer(self) -> np.ndarray:
        """``T`` [C, R]: column currents per volt on each row (computed once, cached)."""
        if self._T is None:
            self._T = self.row_currents(self._drive_t(torch.eye(self.shape[0], dtype=torch.float64))).numpy()
        return self._T

    def currents(self, v: np.ndarray) -> np.ndarray:
        """Column currents [C, n] for row voltages ``v`` [R, n] (linear cells)."""
        return self.transfer() @ v

    def currents_nonlinear(
        self, v: np.ndarray, coef: np.ndarray, tol: float = 1e-9, max_iter: int = 100, method: str = "linearized"
    ) -> tuple[np.ndarray, int]:
        """Column currents [C, n] with cells ``i = g (a1 d + a2 d^2 + a3 d^3)``.

        ``coef`` [R, C, 3] are the per-cell ``a_k``. ``method="linearized"`` (default) uses
        the per-programming linearization of the module doc (built on the first call for
        these coefficients and this input range, then three matmuls per call; falls back
        to the fixed-point iteration where its probe error exceeds ``LINEARIZATION_TOL``);
        ``"fixed-point"`` iterates from the linear solution with the nonlinear excess
        current of each cell on the right-hand side (same factorization every iteration)
        until the largest node-voltage change is below ``tol`` times the largest input.
        Returns currents and the number of solver passes (1 for the linearized path).
        """
        v = np.asarray(v, dtype=np.float64)
        coef = np.asarray(coef, dtype=np.float64)
        if coef.shape != self.shape + (3,):
            raise ValueError(f"coef must be [rows, cols, 3] = {self.shape + (3,)}, got {coef.shape}")
        if v.ndim != 2 or v.shape[0] != self.shape[0]:
            raise ValueError(f"v must be [rows={self.shape[0]}, n], got shape {v.shape}")
        if method == "fixed-point":
            return self._fixed_point(v, coef, tol, max_iter)
        if method != "linearized":
            raise ValueError(f"method must be 'linearized' or 'fixed-point', got {method!r}")
        lin = self.linearization(coef, v)
        if lin is None:
            return np.zeros((self.shape[1], v.shape[1])), 0
        if lin["fallback"]:
            return self._fixed_point(v, coef, tol, max_iter)
        return _apply_linearization(lin, torch.from_numpy(v)).numpy(), 1

    def linearization(self, coef: np.ndarray, v: np.ndarray) -> dict | None:
        """The per-programming linearization for ``coef`` and the range of ``v`` (None for
        all-zero inputs). One built for the same coefficients is reused while its input
        range covers ``v`` and is at most ~1.4x wider (batches of slightly different
        range share it); otherwise one is built for the range rounded up to 1/8 octave
        and cached (the last two are kept). Its ``error`` is the probe-vector error
        against the fixed-point solution, ``fallback`` whether that exceeded
        ``LINEARIZATION_TOL``."""
        vp, vn = float(max(v.max(initial=0.0), 0.0)), float(max(-v.min(initial=0.0), 0.0))
        if vp == 0.0 and vn == 0.0:
            return None
        driven = np.any(v != 0, axis=1)
        digest = hashlib.blake2b(np.ascontiguousarray(coef).tobytes(), digest_size=16).hexdigest()
        cache = self.__dict__.setdefault("_lins", [])
        for lin in cache:
            lp, ln = lin["range"]
            if (
                lin["digest"] == digest
                and lp >= vp
                and ln >= vn
                and (vn > 0) == (ln > 0)
                and max(vp, vn) >= 0.7 * max(lp, ln)
                and not np.any(driven & ~lin["active"])
            ):
                return lin
        # a tile with a quarter or more of its rows undriven (padding) carries the excess of the
        # driven rows only; the set only grows, so batches with dead inputs do not rebuild it
        for lin in cache:
            if lin["digest"] == digest:
                driven = driven | lin["active"]
        if driven.sum() > 0.75 * driven.size:
            driven = np.ones_like(driven)
        lp, ln = _range_key(vp), _range_key(vn)
        lin = self._build_linearization(coef, lp, ln, driven)
        lin["digest"], lin["range"] = digest, (lp, ln)
        cache.append(lin)
        del cache[:-2]
        return lin

    def _build_linearization(self, coef: np.ndarray, v_pos: float, v_neg: float, active: np.ndarray) -> dict:
        R, C = self.shape
        a1, a2, a3 = coef[..., 0], coef[..., 1], coef[..., 2]
        # least-squares chord of p(d) = a1 d + a2 d^2 + a3 d^3 over d uniform in [-v_neg, v_pos]
        m2 = (v_pos**3 + v_neg**3) / 3
        c = a1 + (a2 * (v_pos**4 - v_neg**4) / 4 + a3 * (v_pos**5 + v_neg**5) / 5) / m2
        # rows never driven (padding of a tile) see only the column wire's mV: their cells are
        # linear there (slope a1), so the excess is carried for the driven rows' cells only
        c = np.where(active[:, None], c, a1)
        if np.any(c <= 0):
            raise ValueError(
                "a cell's I-V has no positive chord conductance over the inputs' range "
                "(the fitted I-V is not a resistor there); use ir_drop='off' or 'approx'"
            )
        chord = TileSolver(self.g * c, self.r, self._sense_segments)
        xr, xc = chord.drive_solve(torch.eye(R, dtype=torch.float64))  # [C(j), R(i), R(m)]
        T = chord.column_currents(xc)  # [C, R]
        act = torch.from_numpy(np.flatnonzero(active))
        na = int(act.numel())
        D = (xr - xc).permute(1, 0, 2)[act][:, :, act].reshape(na * C, na)  # driven cell (i, j) per v_m
        ur, uc = chord.sense_solve()  # reciprocity: U = gs (x_c - x_r)
        U = (chord.gs * (uc - ur)).permute(1, 2, 0)[:, act].reshape(C, na * C)  # [C(k), driven (i, j)]
        gq = [torch.from_numpy((self.g * q)[active].reshape(na * C, 1)) for q in (a1 - c, a2, a3)]
        lin = {
            "T": T,
            "D": D.float(),
            "U": U.float(),
            "gq": torch.cat(gq, dim=1).float(),
            "chord": c,
            "active": active.copy(),
            "rows": act,
            "fallback": False,
        }
        probe = np.random.default_rng(0).uniform(-v_neg, v_pos, (R, PROBE_VECTORS)) * active[:, None]
        ref, _ = self._fixed_point(probe, coef, 1e-10, 200)
        fast = _apply_linearization(lin, torch.from_numpy(probe)).numpy()
        lin["error"] = float(np.abs(fast - ref).max() / max(np.abs(ref).max(), 1e-300))
        lin["fallback"] = lin["error"] > LINEARIZATION_TOL
        return lin

    def programmed_model(self, coef: np.ndarray, v_full: float, rank: int | None = None, probes: int = 24) -> dict:
        """Per-programming model of the tile with nonlinear cells (``ir_drop_solver="per_programming"``):
        the column currents are ``I = W1 v + W2 v^2 + W3 v^3`` plus a cross term of ``rank``
        input forms per column (:func:`cross_term`), all fixed at programming.

        Each cell is split into its chord conductance ``g c`` (least-squares line through its
        I-V over ``[-v_full, v_full]``) and the excess ``e(d) = g (p(d) - c d)``; the chord
        network gives ``T`` (column currents per row volt), ``D`` (every cell's voltage per
        row volt) and ``U`` (column currents per unit current across each cell), as in the
        per-vector solve ``I = T v + U e(D v)``. Cell (i, j)'s voltage is split into its own
        row's share ``D_iji v_i`` and the cross part ``y_ij = sum_{m != i} D_ijm v_m`` (the
        drop the other rows' currents cause on the shared wires). Everything linear folds
        exactly into ``W1`` (the excess's chord part and a mean slope ``s`` of its
        nonlinear part times ``y``), the nonlinear excess at ``D_iji v_i`` into ``W2, W3``.
        What is left, ``e(D_iji v_i + y) - e(D_iji v_i) - s y``, is kept for the cells of
        each column on that column's own current (``U_jij``): ``y`` of column j is taken
        from the best rank-``rank`` approximation of its cross matrix (SVD), so it needs
        only ``rank`` numbers ``z = B_j v`` per column and vector, and the remainder
        expands into :func:`cross_term`: first order in each form through a functional of
        ``v^2``, the leading form's slope and curvature through two functionals of ``v``
        (``Mv``), the rest as a polynomial in ``z`` (functionals of ``v`` projected onto the
        forms). Left out: the rest of ``y`` beyond ``rank``, the functionals' parts outside
        the forms' span, the extra drop of the excess currents themselves (as in the
        per-vector solve), and the difference between the cross parts of a row's other cells
        (whose remainders reach column k through ``U_kij``, j != k) and what stands for them;
        all within the measured error. The forms are fitted twice, to column k's own cross
        matrix (the other cells taken at it: ~0.07% of full scale at 128 rows and 1
        ohm/segment, ~0.18% at 2.5, on all rows at full scale) and to the row's cross matrices
        weighted as they enter column k to first order, and each cut runs the fit with the
        smaller probe error. ``rank=0`` is a per-input polynomial without cross term.

        Cost: one factorization of the chord network, a single sweep for the row drive
        (nothing enters beyond column 0; ``T`` in float64), a half sweep plus one for ``U``
        (:meth:`sense_solve`), ``D`` and ``U`` in float32 (~4x the float64 matmul rate; they
        enter only through the IR drop's nonlinear correction, ~1e-8 of full scale off the
        float64 build), and the probe check (:meth:`converged_currents`, float64-exact).

        Returns ``{"W": [3, C, R], "B": [rank, C, R], "Mv": [2, C, R], "Mv2": [rank, C, R],
        "quad": [rank, rank, C], "cubic": [rank, rank, rank, C], "rank": rank, "error": e,
        "errors": {(rank, projected): e}}``: the matrices of the inputs, the input forms, the
        cross term's matrices on ``v`` and ``v^2`` and its polynomial's coefficients (see
        :func:`cross_term`), and its error on
        ``probes`` probe vectors against the converged nodal solution (:meth:`model_error`,
        relative to the tile's full scale; left out with ``probes=0``), also for the cheaper
        models cut from it (``errors``, :func:`truncate`).
        """
        return programmed_model(self.g, self.r, coef, v_full, rank, probes)

    def model_error(
        self, model: dict, coef: np.ndarray, v_full: float, vectors: int = 24, seed: int = 0, rows: int | None = None
    ) -> float:
        """Largest error of a :meth:`programmed_model` against the converged nodal solution
        (the fixed-point iteration on this solver) over probe vectors drawn like a layer's
        inputs, relative to the tile's full scale (its largest column current with every row
        at ``v_full``, what the column's ADC range is set from): dense uniform inputs in
        ``[0, v_full]`` and ``[-v_full, v_full]``, sparse ones (a fifth of the rows driven,
        as after a ReLU), all rows at plus and at minus full scale, and full scale in two
        blocks of opposite sign. ``rows``: the tile's rows the probes are
        drawn for when this solver holds its first rows only (the others empty)."""
        return self.model_errors([model], coef, v_full, vectors, seed, rows)[0]

    def model_errors(
        self, models: list, coef: np.ndarray, v_full: float, vectors: int = 24, seed: int = 0, rows: int | None = None
    ) -> list[float]:
        """:meth:`model_error` of each of several models of this tile, against one reference solve."""
        R = self.shape[0] if rows is None else rows
        rng = np.random.default_rng(seed)
        k = max(vectors // 3, 1)
        probes = np.concatenate(
            [
                rng.uniform(0, v_full, (R, k)),
                rng.uniform(-v_full, v_full, (R, k)),
                rng.uniform(0, v_full, (R, k)) * (rng.random((R, k)) < 0.2),
                np.full((R, 1), v_full),
                np.full((R, 1), -v_full),  # (an I-V with an even part is worst at one polarity)
                # full scale in two blocks of opposite sign (channel-wise signs of a convolution's rows,
                # the planes of signed bit-serial inputs): the drop along the wires is not one shape
                np.where(np.arange(R)[:, None] < R // 2, v_full, -v_full),
                np.where(np.arange(R)[:, None] < R // 2, -v_full, v_full),
            ],
            axis=1,
        )[: self.shape[0]]
        ref = self.converged_currents(probes, np.asarray(coef, dtype=np.float64))
        scale = max(np.abs(ref[:, -4]).max(), 1e-300)
        errors = [float(np.abs(apply_model(m, probes) - ref).max() / scale) for m in models]
        return errors

    def converged_currents(
        self, v: np.ndarray, coef: np.ndarray, tol: float = 1e-7, max_iter: int = 300, history: list | None = None
    ) -> np.ndarray:
        """Column currents [C, n] of cells ``i = g (a1 d + a2 d^2 + a3 d^3)`` converged on the
        nodal equations in float64, at float32 cost: the fixed-point iteration of
        :meth:`currents_nonlinear` written as a correction, ``x += A^-1 (f - e(x) - A x)``,
        whose residual (:meth:`_residual`, the stencil of the network) is float64 and whose
        solve ``A^-1`` runs in float32 on the same factors (mixed-precision iterative
        refinement: its fixed point satisfies the float64 equations; the float32 solve only
        slows the contraction a little). Stops when the error left, estimated from the last
        step's change of the column currents and the contraction between the last two steps
        (a geometric tail; from the third step on, as the first carries the chord's linear
        correction and contracts faster than the rest, and with a contraction below 0.9), is
        below ``tol`` of the largest current: ~1e-2 per step for 128 rows at 1 ohm, so three
        steps. ``history`` receives each step's largest change relative to the largest current."""
        R, C = self.shape
        vt = torch.from_numpy(np.ascontiguousarray(np.asarray(v, dtype=np.float64).T))  # [n, R]
        f_r = torch.zeros((C,) + tuple(vt.shape), dtype=torch.float64)  # layout [C, n, R]
        f_r[0] = self.gw * vt
        x = self._drive_t(vt.float())
        xr, xc = x.double(), self._columns(x).double()
        cf = torch.as_tensor(coef).permute(1, 2, 0)[:, :, None, :]  # [C, 3, 1, R]
        g = self._gc[:, None, :]
        ga1, ga2, ga3 = g * (cf[:, 0] - 1.0), g * cf[:, 1], g * cf[:, 2]  # [C, 1, R]
        cur = self.gs * xc[:, :, -1]
        last = 0.0
        for step in range(max_iter):
            d = xr - xc
            cell = torch.addcmul(ga2, ga3, d).mul_(d).add_(ga1).mul_(d)  # the excess over g d
            cell.addcmul_(g, d)  # the cells' currents
            rr, rc = self._residual(xr, xc, f_r, cell)
            dr, dc = self._solve_t(rr.float(), rc.float())
            xr += dr
            xc += dc
            new = self.gs * xc[:, :, -1]
            change = float((new - cur).abs().max() / max(float(new.abs().max()), 1e-300))
            cur = new
            if history is not None:
                history.append(change)
            rate = change / last if step >= 2 else 1.0  # the contraction over the last two steps
            if change == 0.0 or (rate < 0.9 and change * rate / (1 - rate) < tol):  # the error left: a geometric tail
                return cur.numpy()
            last = change
        raise RuntimeError(
            f"IR-drop solver with nonlinear cells did not converge in {max_iter} iterations "
            "(the I-V is too nonlinear for the wire resistance); lower wire_resistance "
            "or use nonlinear_iv=False"
        )

    def _fixed_point(self, v: np.ndarray, coef: np.ndarray, tol: float, max_iter: int) -> tuple[np.ndarray, int]:
        f_r, f_c = self._drive(v)
        xr, xc = self.solve(f_r, f_c)
        g = self._gc[:, :, None]
        coef = torch.as_tensor(coef).permute(1, 0, 2)  # [C, R, 3]
        a1, a2, a3 = (coef[:, :, k : k + 1] for k in range(3))
        scale = max(float(np.abs(v).max(initial=0.0)), 1e-30)
        for it in range(1, max_iter + 1):
            d = xr - xc
            excess = g * ((a1 - 1.0) * d + a2 * d * d + a3 * d * d * d)
            xr_new, xc_new = self.solve(f_r - excess, f_c + excess)
            change = max(float((xr_new - xr).abs().max()), float((xc_new - xc).abs().max()))
            xr, xc = xr_new, xc_new
            if change < tol * scale:
                return self.column_currents(xc).numpy(), it
        raise RuntimeError(
            f"IR-drop solver with nonlinear cells did not converge in {max_iter} iterations "
            "(the I-V is too nonlinear for the wire resistance); lower wire_resistance "
            "or use nonlinear_iv=False"
        )

    def currents_cells(
        self, v: np.ndarray, cell_current, tol: float = 1e-9, max_iter: int = 200
    ) -> tuple[np.ndarray, int]:
        """Column currents [C, n] for cells whose current depends on both of their nodes.

        ``cell_current(x_r, x_c)`` maps row-node and column-node voltages [C, R, n] (float64
        torch) to cell currents of the same shape. The linear part is this solver's
        conductances ``g`` (choose them near the cells' small-signal conductance); the
        rest is iterated on the right-hand side as in the fixed-point method.
        """
        v = np.asarray(v, dtype=np.float64)
        f_r, f_c = self._drive(v)
        xr, xc = self.solve(f_r, f_c)
        g = self._gc[:, :, None]
        scale = max(float(np.abs(v).max(initial=0.0)), 1e-30)
        for it in range(1, max_iter + 1):
            excess = cell_current(xr, xc) - g * (xr - xc)
            xr_new, xc_new = self.solve(f_r - excess, f_c + excess)
            change = max(float((xr_new - xr).abs().max()), float((xc_new - xc).abs().max()))
            xr, xc = xr_new, xc_new
            if change < tol * scale:
                return self.column_currents(xc).numpy(), it
        raise RuntimeError(f"IR-drop solver with three-terminal cells did not converge in {max_iter} iterations")


def _range_key(x: float) -> float:
    """Input range rounded up to the next 1/8 octave (the linearization is reused within it)."""
    if x <= 0:
        return 0.0
    return float(2.0 ** (math.ceil(8 * math.log2(x)) / 8))


def programmed_model(
    g: np.ndarray, r: float, coef: np.ndarray, v_full: float, rank: int | None = None, probes: int = 24
) -> dict:
    """:meth:`TileSolver.programmed_model` of a tile with conductances ``g`` and wire resistance
    ``r`` (factorizes only the chord network). Rows at the bottom without any cell (``g = 0``,
    a tile's unused rows) are solved as what they are, series segments of the column wires
    (``sense_segments`` of :class:`TileSolver`, exact), and get zero matrices."""
    g = _check(g, r)
    R, C = g.shape
    rank = CROSS_RANK if rank is None else rank
    coef = np.asarray(coef, dtype=np.float64)
    if coef.shape != g.shape + (3,):
        raise ValueError(f"coef must be [rows, cols, 3] = {g.shape + (3,)}, got {coef.shape}")
    if not (np.isfinite(v_full) and v_full > 0):
        raise ValueError(f"v_full must be a positive voltage, got {v_full!r}")
    if not (isinstance(rank, int) and 0 <= rank <= R):
        raise ValueError(f"rank must be an integer in [0, rows={R}], got {rank!r}")
    used = max(int(np.flatnonzero(g.any(axis=1)).max(initial=-1)) + 1, rank, 1)
    if used == R:
        return _build_model(g, r, coef, v_full, rank, probes, 1, R)
    model = _build_model(g[:used], r, coef[:used], v_full, rank, probes, 1 + R - used, R)
    for m in [model, *model.get("fits", [])]:
        for key in ("W", "B", "Mv", "Mv2"):  # the empty rows' inputs reach no cell
            m[key] = np.concatenate([m[key], np.zeros(m[key].shape[:-1] + (R - used,))], axis=-1)
    return model


def _build_model(
    g: np.ndarray, r: float, coef: np.ndarray, v_full: float, rank: int, probes: int, sense_segments: int, rows: int
) -> dict:
    """:func:`programmed_model` of the tile's first ``g.shape[0]`` rows of ``rows`` (the others
    empty, ``sense_segments`` segments from the last one to the sense nodes)."""
    R, C = g.shape
    a1, a2, a3 = coef[..., 0], coef[..., 1], coef[..., 2]
    c = a1 + a3 * v_full**2 * 3 / 5  # least-squares chord over [-v_full, v_full]
    if np.any(c <= 0):
        raise ValueError(
            "a cell's I-V has no positive chord conductance over the inputs' range "
            "(the fitted I-V is not a resistor there); use ir_drop='off' or 'approx'"
        )
    slope = 0.5 * a3 * v_full**2  # slope of the cross part folded into W1 (half its mean)
    chord = TileSolver(g * c, r, sense_segments)
    # T (float64: the model's main part), D and U (BUILD_DTYPE, float32: ~4x the float64 matmul
    # rate; they enter through the IR drop's correction) from two solves on the chord network
    x = chord._drive_t(torch.eye(R, dtype=torch.float64))  # [C(j), R(m), R(i)]: row nodes per volt on row m
    T = chord.row_currents(x).numpy()  # [C, R]
    xr = x.to(BUILD_DTYPE)
    del x
    D = xr.sub_(chord._columns(xr))  # [C(j), R(m), R(i)]: cell (i, j)'s voltage per volt on row m
    ur, uc = chord.sense_solve(BUILD_DTYPE)  # reciprocity: U = gs (x_c - x_r)
    U = uc.sub_(ur).mul_(chord.gs)  # [C(j), C(k), R(i)]: column k's current per unit across cell (i, j)
    del ur
    own_t = torch.diagonal(D, dim1=1, dim2=2).to(torch.float64, copy=True)  # [C, R]: D_iji
    own = own_t.numpy().T  # [R, C]

    def per_cell(x: np.ndarray) -> torch.Tensor:  # [R, C] -> [C(j), R(i)] in BUILD_DTYPE
        return torch.from_numpy(np.ascontiguousarray(x.T)).to(BUILD_DTYPE)

    # the linear part: g (a1 - c) D + g s (D without its own share), one [C, R, R] temporary
    lin = per_cell(g * (a1 - c + slope))[:, None, :] * D
    torch.diagonal(lin, dim1=1, dim2=2).sub_(per_cell(g * slope * own))
    W = np.empty((3, C, R))
    W[0] = T + torch.bmm(U, lin.transpose(1, 2)).sum(0).double().numpy()  # sum_j U_j lin_j
    del lin
    # W2, W3 and the leak weights (below): sums over each row's cells j of U_kij times a per-cell factor
    per = torch.stack(
        [per_cell(g * a2 * own**2), per_cell(g * a3 * own**3), per_cell(g * a2), per_cell(g * a3)]
        + [per_cell(g * a3 * own**2)]
    )
    W[1], W[2], w2, w3, row3 = torch.einsum("jki,pji->pki", U, per).double().numpy()
    # each column's cross matrix [R(i), R(m)] (D without the own share, here transposed): its rank
    # leading input forms B and factors A, fitted twice (below); then the remainder's expansion
    torch.diagonal(D, dim1=1, dim2=2).zero_()
    # the remainders of row i's other cells reach column k too (U_kij, j != k, all of one sign), and
    # their cross parts are their own columns' drops, not column k's. Two fits: the forms of column
    # k's own drop (those cells taken at it), and of the row's drops weighted as they enter column k
    # to first order (the cubic's 3 g a3 o^2 v^2 y through U_kij): sum_j U_kij g a3 o^2 y_ij / the
    # same sum of weights. Each cut runs the fit with the smaller probe error.
    weights = U.mul_(per[4][:, None, :])  # [C(j), C(k), R(i)] (U is not needed after this)
    blended = torch.einsum("jki,jmi->kmi", weights, D)
    row_w = torch.from_numpy(row3).to(D.dtype)[:, None, :]  # [C(k), 1, R(i)]: the sum of the weights
    blended = torch.where(row_w != 0, blended / torch.where(row_w != 0, row_w, 1), D)
    del U, weights
    ramp = None
    if rows > R:
        # the empty rows u = R..rows-1 below (as in the full tile): their row wire at 0 V, their
        # column node at -r (rows - u) times the column current (a ramp down to the sense node), so
        # their "cell voltages" are a rank-one block -r (rows - u) T[j, m]; it enters each fit as one
        # row with the same Gram matrix (same input forms B), its factors dropped
        ramp = -math.sqrt(sum(s * s for s in range(1, rows - R + 1))) / chord.gw * torch.from_numpy(T)
    fits = [_fit_cross(x, W, w2, w3, own.T, v_full, rank, ramp) for x in (D, blended)]
    del D, blended
    if not probes:
        return fits[1]
    # the same cells on the chord network (g c, I-V p / c): the same solution, faster; every cut of
    # both fits (:func:`truncate`) against one reference
    cuts = [(k, projected) for k in range(rank + 1) for projected in (False, True)]
    errors = chord.model_errors(
        [truncate(m, k, p) for m in fits for k, p in cuts], coef / c[..., None], v_full, probes, rows=rows
    )
    for n, m in enumerate(fits):
        m["errors"] = dict(zip(cuts, errors[n * len(cuts) : (n + 1) * len(cuts)]))
        m["error"] = m["errors"][(rank, False)]
    best = min(fits, key=lambda m: m["error"])
    return {
        **best,
        "fits": fits,
        "errors": {kp: min(m["errors"][kp] for m in fits) for kp in cuts},
    }


def _fit_cross(
    D: torch.Tensor,
    W: np.ndarray,
    w2: np.ndarray,
    w3: np.ndarray,
    ot: np.ndarray,
    v_full: float,
    rank: int,
    ramp: torch.Tensor | None,
) -> dict:
    """The model of :func:`_build_model` from the cross matrices ``D`` [C(j), R(m), R(i)] its
    forms are fitted to (``W`` is copied; ``ramp`` [C, R(m)]: the empty rows below, one more
    fitted row)."""
    C, R = D.shape[0], D.shape[2]
    if ramp is not None:
        D = torch.cat([D, ramp.to(D.dtype)[:, :, None]], dim=2)  # [C, R(m), R + 1]
    A, B = _leading_factors(D.transpose(1, 2), rank)
    A, B = (
        A[:, :R].double().permute(2, 0, 1).numpy(),
        B.double().permute(1, 0, 2).numpy(),
    )  # [q, C, R(i)]: y = A z; [q, C, R(m)]
    # weights of the remainders of row i's cells on column k: the quadratic and the cubic parts of
    # each cell j reach column k through U_kij (its own column, j = k, and the others: their remainders
    # lower row i's voltage), summed as w2 = sum_j U_kij g_ij a2_ij and w3 = sum_j U_kij g_ij a3_ij, with
    # every cell of the row taken at cell (i, k)'s own share and the fitted cross part (the quadratic and
    # the cubic weights apart: a cell's a2 / a3 differs from level to level)
    half_v2 = 0.5 * v_full**2  # slope / a3
    # the remainder in y = sum_q A_q z_q (z_q = B_q v): to first order, the cubic's 3 o^2 v^2 y (Mv2, one
    # functional of v^2 per form) and the slope fold's correction c1 y (into W1); the even part's
    # 2 o v y and the cubic's 3 o v y^2 have functionals of v times z, and w2 y^2 and w3 y^3 are
    # polynomials in z. The leading form's two (z_0 times 2 w2 o A_0 v, z_0^2 times 3 w3 o A_0^2 v)
    # are kept as functionals (Mv); every other one is projected onto the forms (B's rows are
    # orthonormal), so the rest is a polynomial of degree 2 and 3 in z with per-column coefficients
    # (quad, cubic). truncate(projected=True) puts Mv into the polynomial too: two functionals per form.
    W = W.copy()
    fold = np.stack([(w3 * -half_v2 * a).sum(1) for a in A]) if rank else np.zeros((0, C))
    W[0] += np.einsum("qc,qcr->cr", fold, B)
    quad, cubic = np.zeros((rank, rank, C)), np.zeros((rank, rank, rank, C))  # [q <= p (<= s)]: z_q z_p (z_s)

    def onto_forms(f: np.ndarray) -> np.ndarray:  # a functional of v [C, R] as its coefficients on z [rank, C]
        return np.einsum("cr,qcr->qc", f, B)

    for q in range(rank):
        if q:
            for p, k in enumerate(onto_forms(w2 * 2 * ot * A[q])):
                quad[min(q, p), max(q, p)] += k
        for p in range(rank):
            quad[min(q, p), max(q, p)] += (w2 * A[q] * A[p]).sum(1)
            onto = onto_forms(w3 * 3 * ot * A[q] * A[p]) if (q, p) != (0, 0) else np.zeros((rank, C))
            for t in range(rank):
                cubic[tuple(sorted((q, p, t)))] += onto[t] + (w3 * A[q] * A[p] * A[t]).sum(1)
    return {
        "W": W,
        "B": B,
        "Mv": np.stack([w2 * 2 * ot * A[0], w3 * 3 * ot * A[0] ** 2]) if rank else np.zeros((0, C, R)),
        "Mv2": np.stack([w3 * 3 * ot**2 * A[q] for q in range(rank)]) if rank else np.zeros((0, C, R)),
        "quad": quad,
        "cubic": cubic,
        "fold": fold,
        "rank": rank,
    }


def _leading_factors(M: torch.Tensor, k: int, iters: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Best rank-``k`` factors ``A`` [b, m, k], ``B`` [b, k, n] of each matrix of ``M`` [b, m, n]
    (``M ~ A B``, ``B`` with orthonormal rows): an exact SVD for small matrices, otherwise
    subspace iteration on ``k + 4`` vectors from a fixed start (deterministic, leaves torch's
    random state alone; the cross matrices' singular values fall fast, ~0.13 and ~0.04 of the
    first for the next two at 128 rows), then an exact SVD of the small projected matrix. The
    products are taken with the narrow factor on the left (row vectors times a batch of
    matrices), several times faster than a batch of matrix-vector products."""
    if min(M.shape[1:]) <= 32:
        u, sv, vt = torch.linalg.svd(M, full_matrices=False)
        return u[:, :, :k] * sv[:, None, :k], vt[:, :k, :]
    gen = torch.Generator().manual_seed(0)
    q = min(k + 4, M.shape[-1])
    Xt = torch.randn((M.shape[0], q, M.shape[-1]), generator=gen, dtype=torch.float64).to(M.dtype)  # [b, q, n]
    Mt = M.transpose(1, 2).contiguous()
    for _ in range(iters):
        Yt = torch.linalg.qr((Xt @ Mt).transpose(1, 2)).Q.transpose(1, 2)  # (M X)^T, orthonormalized: [b, q, m]
        Xt = torch.linalg.qr((Yt @ M).transpose(1, 2)).Q.transpose(1, 2)  # (M^T Y)^T: [b, q, n]
    u, sv, vt = torch.linalg.svd((Xt @ Mt).transpose(1, 2), full_matrices=False)  # M X = u s vt, M ~ u s (X vt^T)^T
    A = u[:, :, :k] * sv[:, None, :k]
    B = vt[:, :k, :] @ Xt
    return A, B


def raise_rank(model: dict, rank: int) -> dict:
    """The same model (:func:`programmed_model`) written with ``rank`` input forms, the added
    ones zero: for putting tiles of one layer built with different ranks in one layout."""
    old = model["rank"]
    if rank < old:
        raise ValueError(f"raise_rank: rank {rank} is below the model's {old}")
    if rank == old:
        return model
    C, R = model["W"].shape[1:]
    n = rank - old
    quad, cubic = np.zeros((rank, rank, C)), np.zeros((rank, rank, rank, C))
    quad[:old, :old], cubic[:old, :old, :old] = model["quad"], model["cubic"]
    return {
        **model,
        "B": np.concatenate([model["B"], np.zeros((n, C, R))]),
        "Mv2": np.concatenate([model["Mv2"], np.zeros((n, C, R))]),
        "quad": quad,
        "cubic": cubic,
        "fold": np.concatenate([model["fold"], np.zeros((n, C))]),
        "rank": rank,
    }


def truncate(model: dict, rank: int, projected: bool = False) -> dict:
    """The model (:func:`programmed_model`) cut to its first ``rank`` input forms, and with
    ``projected`` the leading form's functionals (``Mv``) projected onto the forms (two
    functionals per form, none more): the cheaper models one build gives, each with the error
    the build measured for it (``errors``, keyed ``(rank, projected)``)."""
    old = model["rank"]
    if not 0 <= rank <= old:
        raise ValueError(f"truncate: rank must be in [0, {old}], got {rank!r}")
    if "fits" in model:  # the fit this cut measured the better
        key = (rank, projected or not len(model["Mv"]))
        return truncate(min(model["fits"], key=lambda m: m["errors"][key]), rank, projected)
    W = model["W"].copy()
    W[0] -= np.einsum("qc,qcr->cr", model["fold"][rank:], model["B"][rank:])
    B, mv = model["B"][:rank], model["Mv"] if rank else model["Mv"][:0]
    quad, cubic = model["quad"][:rank, :rank].copy(), model["cubic"][:rank, :rank, :rank].copy()
    if projected and len(mv):  # z_0 (Mv_0 v) + z_0^2 (Mv_1 v) with Mv_i v = sum_p <Mv_i, B_p> z_p
        quad[0] += np.einsum("cr,pcr->pc", mv[0], B)
        cubic[0, 0] += np.einsum("cr,pcr->pc", mv[1], B)
        mv = mv[:0]
    cut = {
        **model,
        "W": W,
        "B": B,
        "Mv": mv,
        "Mv2": model["Mv2"][:rank],
        "quad": quad,
        "cubic": cubic,
        "fold": model["fold"][:rank],
        "rank": rank,
    }
    if "errors" in model:  # (the cuts still reachable from this one)
        cut["errors"] = {k: e for k, e in model["errors"].items() if k[0] <= rank and (k[1] or not projected)}
        cut["error"] = model["errors"][(rank, projected or not len(model["Mv"]))]
    return cut


def cheapest_cut(models: list[dict], tol: float = MODEL_TOL) -> tuple[int, bool]:
    """``(rank, projected)`` of the cheapest model cut (:func:`truncate`) that keeps every one
    of ``models`` (a layer's tiles, built with ``ESCALATED_RANK`` forms and their ``errors``)
    within ``tol``: fewest input functionals per column (two per form, two more with the
    leading form's kept), then fewest forms, from ``CROSS_RANK``; a model with fewer forms (a
    one-row tile) is cut to its own. The most accurate one when none is."""
    choices = sorted(
        ((k, projected) for k in range(CROSS_RANK, ESCALATED_RANK + 1) for projected in (True, False)),
        key=lambda kp: (2 * kp[0] + 2 * (not kp[1]), kp[0]),
    )
    worst = {(k, p): max(m["errors"][(min(k, m["rank"]), p)] for m in models) for k, p in choices}
    return next((kp for kp in choices if worst[kp] <= tol), min(choices, key=worst.get))


def cross_term(z, zv, x2, quad, cubic, rank: int):
    """The cross term of :meth:`TileSolver.programmed_model` (numpy or torch, in place on its
    own temporaries):
    ``sum_q z_q (x2_q + [q = 0] zv_0 + sum_{p >= q} z_p (quad_qp + [q = p = 0] zv_1
    + sum_{s >= p} cubic_qps z_s))``.

    ``z`` [rank, ...]: the columns' input forms ``B`` applied to the inputs; ``zv`` [2 or 0,
    ...]: their ``Mv`` applied to the inputs (none when projected); ``x2`` [rank, ...]:
    ``Mv2`` applied to the squared inputs; ``quad`` [rank, rank, ...] and ``cubic`` [rank,
    rank, rank, ...]: the polynomial's coefficients (index order q <= p <= s, broadcast
    against ``z[0]``). Returns the currents, of ``z[0]``'s shape (``rank`` >= 1: without a
    form there is no cross term)."""
    if rank < 1:
        raise ValueError(f"cross_term: rank must be >= 1, got {rank!r}")
    inplace = isinstance(z[0], torch.Tensor)

    def fma(acc, a, b):  # acc + a b, in place for torch
        return acc.addcmul_(a, b) if inplace else acc + a * b

    out = None
    for q in range(rank):
        inner = None
        for p in range(q, rank):
            h = torch.addcmul(quad[q, p], z[p], cubic[q, p, p]) if inplace else quad[q, p] + z[p] * cubic[q, p, p]
            for t in range(p + 1, rank):
                h = fma(h, z[t], cubic[q, p, t])
            if q == p == 0 and len(zv):
                h = h.add_(zv[1]) if inplace else h + zv[1]
            inner = (h.mul_(z[p]) if inplace else h * z[p]) if inner is None else fma(inner, z[p], h)
        inner = inner.add_(x2[q]) if inplace else inner + x2[q]
        if q == 0 and len(zv):
            inner = inner.add_(zv[0]) if inplace else inner + zv[0]
        out = (inner.mul_(z[q]) if inplace else inner * z[q]) if out is None else fma(out, z[q], inner)
    return out


def apply_model(model: dict, v: np.ndarray) -> np.ndarray:
    """Column currents [C, n] of :meth:`TileSolver.programmed_model` for row voltages ``v`` [R, n]."""
    v = np.asarray(v, dtype=np.float64)
    W = model["W"]
    out = W[0] @ v + W[1] @ v**2 + W[2] @ v**3
    if model["rank"]:
        z = np.einsum("tcr,rn->tnc", model["B"], v)
        zv = np.einsum("tcr,rn->tnc", model["Mv"], v)
        x2 = np.einsum("tcr,rn->tnc", model["Mv2"], v * v)
        quad, cubic = model["quad"][..., None, :], model["cubic"][..., None, :]
        out += cross_term(z, zv, x2, quad, cubic, model["rank"]).T
    return out


def _apply_linearization(lin: dict, v: torch.Tensor) -> torch.Tensor:
    """``I = T_c v + U e(D v)`` (float64 linear part, float32 excess part)."""
    v = v.to(torch.float64)
    d = lin["D"] @ v[lin["rows"]].float()  # [R'C, n] driven cells' voltages
    gq = lin["gq"]
    e = torch.addcmul(gq[:, 1:2], d, gq[:, 2:3])  # g (a2 + a3 d)
    e = torch.addcmul(gq[:, 0:1], e, d).mul_(d)  # g ((a1 - c) d + a2 d^2 + a3 d^3)
    return lin["T"] @ v + (lin["U"] @ e).double()


@dataclass(frozen=True)
class AccessTransistor:
    """The level-1 NMOS of a 1T1R cell (drain on the RRAM, source on the column wire,
    gate on the word line at ``v_gate``): ``i = kp W/L ((vgs - vto) vds - vds^2/2)(1 + lam vds)``
    in triode, ``kp/2 W/L (vgs - vto)^2 (1 + lam vds)`` in saturation (ngspice level 1
    without body effect or capacitances)."""

    vto: float = 0.45
    kp: float = 2e-4
    lam: float = 0.02
    w_over_l: float = 3.0
    v_gate: float = 1.2

    def current(self, vgs: torch.Tensor, vds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Drain current and its derivatives with respect to ``vds`` and ``vgs`` (vds >= 0)."""
        beta = self.kp * self.w_over_l
        on = vgs > self.vto
        vov = (vgs - self.vto).clamp_min(0.0)
        sat = vds >= vov
        vdse = torch.where(sat, vov, vds)
        core = beta * (vov * vdse - 0.5 * vdse * vdse)
        dcore_ds = torch.where(sat, torch.zeros_like(vds), beta * (vov - vds))
        dcore_gs = torch.where(on, beta * vdse, torch.zeros_like(vds))
        m = 1 + self.lam * vds
        return core * m, dcore_ds * m + core * self.lam, dcore_gs * m


def series_cell_current(
    d: torch.Tensor, vs: torch.Tensor, g: torch.Tensor, coef: torch.Tensor, fet: AccessTransistor, iters: int = 60
) -> torch.Tensor:
    """Current of an RRAM (``i = g (a1 u + a2 u^2 + a3 u^3)`` across it) in series with
    ``fet`` whose source terminal is on the column node at ``vs``; ``d`` is the voltage
    across the whole cell (row node minus column node). Solves for the RRAM voltage by
    Newton's method (equal currents), elementwise. With ``d < 0`` the current reverses
    and the transistor's source is its RRAM-side node (level 1 is symmetric)."""
    rev = d < 0
    sign = torch.where(rev, -1.0, 1.0).to(d)
    dd = d.abs()
    vgs0 = fet.v_gate - torch.where(rev, vs + d, vs)  # gate minus the lower cell terminal
    a1, a2, a3 = coef[..., 0], coef[..., 1], coef[..., 2]
    if a2.abs().max() > 0:  # the RRAM's I-V is not odd: reverse currents follow its own polarity
        a2 = torch.where(rev, -a2, a2)
    revf = rev.to(d)
    u = dd * 0.8
    for _ in range(iters):
        i_r = g * (a1 * u + a2 * u * u + a3 * u * u * u)
        di_r = g * (a1 + 2 * a2 * u + 3 * a3 * u * u)
        i_t, gds, gm = fet.current(vgs0 - revf * u, dd - u)
        step = (i_r - i_t) / (di_r + gds + revf * gm)
        u = torch.minimum((u - step).clamp_min(0.0), dd)
        if float(step.abs().max()) < 1e-14:
            break
    return sign * g * (a1 * u + a2 * u * u + a3 * u * u * u)


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
    w_row = (torch.minimum(jj[:, None], jj[None, :]) + 1).to(dt)  # [C(m), C(j)]
    ii = torch.arange(R, device=dev)
    w_col = (R - torch.maximum(ii[:, None], ii[None, :])).to(dt)  # [R(m), R(i)]
    a = r * (g @ w_row)  # [.., R, C]
    b = r * (w_col @ g)  # b[m, j] = r sum_i (R - max(i, m)) g_ij
    return g / (1 + a + b)


def series_iv(
    g: np.ndarray, coef: np.ndarray, fet: AccessTransistor, v_fit: float, read_voltage: float, points: int = 41
) -> tuple[np.ndarray, np.ndarray]:
    """A two-terminal cubic I-V for RRAM + access transistor cells, source at 0 V.

    The series current of each cell (:func:`series_cell_current` with ``vs = 0``) is
    sampled on ``[-v_fit, v_fit]`` and fitted with ``g_s (b1 v + b2 v^2 + b3 v^3)``,
    normalized like the table's I-V (``g_s`` is the series read conductance at
    ``read_voltage``). It leaves out only the source's rise on the column wire (the gate
    overdrive shrinks by the column-wire voltage). Returns ``g_s`` [...] and the
    coefficients [..., 3]."""
    vg = torch.linspace(-v_fit, v_fit, points, dtype=torch.float64)
    gt = torch.as_tensor(np.asarray(g, dtype=np.float64))[..., None]
    ct = torch.as_tensor(np.asarray(coef, dtype=np.float64))[..., None, :]
    shape = gt.shape[:-1] + (points,)
    cur = series_cell_current(
        vg.expand(shape), torch.zeros(shape, dtype=torch.float64), gt.expand(shape), ct.expand(shape + (3,)), fet
    ).numpy()
    basis = np.stack([vg.numpy() ** k for k in (1, 2, 3)], axis=1)  # [P, 3]
    b, *_ = np.linalg.lstsq(basis, cur.reshape(-1, points).T, rcond=None)  # [3, N]
    b = b.T.reshape(cur.shape[:-1] + (3,))
    i_read = sum(b[..., k] * read_voltage ** (k + 1) for k in range(3))
    g_s = i_read / read_voltage
    return g_s, b / g_s[..., None]
