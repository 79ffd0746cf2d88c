"""Fitting: raw campaign and bench results → :class:`DeviceTable`.

The table keeps the per-level samples themselves (reached conductance, pulses, energy
∫v·i dt, latency, convergence) so the torch side can draw from their empirical
distribution; read noise is sigma(G) at the measured levels (sorted, monotone in G), and
the I-V of every level is sampled on a common voltage grid.
"""

from __future__ import annotations

import numpy as np

from rramsim.cosim.campaign import CampaignResult
from rramsim.cosim.writeverify import WriteVerifyScheme
from rramsim.devices import DeviceTable


def fit_table(
    c: CampaignResult, scheme: WriteVerifyScheme, read_g, read_sigma, iv_v, iv_current, retention=None, **meta
) -> DeviceTable:
    read_g, read_sigma = np.asarray(read_g, float), np.asarray(read_sigma, float)
    order = np.argsort(read_g)
    read_g, read_sigma = read_g[order], read_sigma[order]
    keep = np.concatenate([[True], np.diff(read_g) > 0])
    ret = dict(zip(("retention_t", "retention_ratio", "retention_sigma"), retention)) if retention else {}
    for name, arr in (("g_final", c.g_final), ("energy", c.energy)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"campaign produced non-finite {name}; the table would be invalid")
    return DeviceTable(
        targets=c.targets,
        g_final=c.g_final,
        pulses=c.pulses,
        energy=np.abs(c.energy),
        time=c.time,
        converged=c.converged,
        scheme=scheme.attrs(),
        read_g=read_g[keep],
        read_sigma=read_sigma[keep],
        iv_v=np.asarray(iv_v),
        iv_current=np.asarray(iv_current),
        **ret,
        **meta,
    )
