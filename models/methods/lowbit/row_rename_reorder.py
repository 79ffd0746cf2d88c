"""Row rename, rename-aware tying and row reorder of a binary layer's crossbar rows.

Row rename (:func:`rename_rows`): rows that are identical or sign complements are stored
once; their inputs are added (or subtracted) digitally before the array, through a
logical -> physical row map with signs. :func:`tie_rows` makes more rows identical during
training. Row reorder (:func:`reorder_rows`): a permutation of the rows (inputs follow)
that groups them for the macro's reads of ``max_rows`` rows; ``"balance"`` evens the
low-resistance cells per column in every group, which evens out the noise variance per
read (the error probability of a read grows faster than its variance).
"""

from __future__ import annotations

import torch
from torch import nn

from .integer_network import IntLayer

__all__ = ["REORDER_STRATEGIES", "rename_rows", "reorder_rows", "tie_rows"]


def rename_rows(layer: IntLayer) -> dict:
    """Store identical / sign-complement rows of ``layer`` once (in place); returns the
    logical and physical row counts. The layer's partial sums are unchanged."""
    m = layer.w.reshape(layer.w.shape[0], -1).t().to(torch.int64)  # [in, out]
    canon = {}
    rmap = torch.empty(m.shape[0], dtype=torch.long)
    rsign = torch.empty(m.shape[0], dtype=torch.long)
    for j in range(m.shape[0]):
        row = m[j]
        s = 1 if int(row[0]) > 0 else -1  # canonical: first entry +1
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
    vec = (w * sign).t().clone()  # canonical rows [in, out]
    members = [[j] for j in range(n)]
    cent = [vec[j].clone() for j in range(n)]
    while len(members) > keep:
        c = torch.stack(cent)
        d = torch.cdist(c, c)
        size = torch.tensor([len(m) for m in members], dtype=d.dtype)
        d = d * torch.sqrt(size[:, None] * size[None, :] / (size[:, None] + size[None, :]))  # Ward-like
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
            canon = (fc.weight * sign).t()  # [in, out]
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
    m = (layer.matrix() > 0).double()  # [R, C]
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
