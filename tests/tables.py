"""A realistic synthetic DeviceTable made with numpy, for tests that need no ngspice run.

Shapes and magnitudes follow what ``rramsim characterize`` produces: levels 5-150 uS,
write-verify to 2% tolerance with ~5-20 pulses of 50 ns, a few non-converged devices at
the extreme levels, ~1% read noise, a mildly sinh-like I-V and an optional power-law
retention group.
"""

from __future__ import annotations

import numpy as np

from rramsim.devices import DeviceTable


def synthetic_table(
    n_levels: int = 8,
    n_devices: int = 64,
    seed: int = 0,
    retention: bool = True,
    nonconverged: float = 0.03,
    iv_alpha: float = 2.0,
    read_rel: float = 0.01,
    g_min: float = 5e-6,
    g_max: float = 150e-6,
) -> DeviceTable:
    """A table of ``n_levels`` x ``n_devices`` synthetic write-verify outcomes."""
    rng = np.random.default_rng(seed)
    targets = np.linspace(g_min, g_max, n_levels)
    tol = 0.02
    L, N = n_levels, n_devices
    g_final = targets[:, None] * (1 + rng.uniform(-tol, tol, (L, N)))
    converged = np.ones((L, N), dtype=bool)
    # extreme levels are the hard ones: some devices end outside the tolerance
    for lvl in (0, L - 1):
        bad = rng.random(N) < nonconverged * 3
        converged[lvl, bad] = False
        g_final[lvl, bad] = targets[lvl] * (1 + rng.choice([-1, 1], bad.sum()) * rng.uniform(0.05, 0.3, bad.sum()))
    pulses = rng.integers(5, 21, (L, N)).astype(np.int32)
    pulses[~converged] = 40
    pulse_width = 50e-9
    period = 75e-9
    time = pulses * period
    energy = pulses * rng.uniform(0.5e-12, 3e-12, (L, N)) * (1 + targets[:, None] / g_max)
    read_g = np.linspace(g_min * 0.5, g_max * 1.2, 16)
    read_sigma = read_rel * read_g + 0.05e-6
    v_read = 0.2
    iv_v = np.linspace(-0.4, 0.4, 41)
    shape = np.sinh(iv_alpha * iv_v) / np.sinh(iv_alpha * v_read) * v_read
    iv_current = targets[:, None] * shape[None, :]
    kw = {}
    if retention:
        t = np.logspace(0, 5, 6)
        nu = 0.003 + 0.01 * (1 - targets / g_max)  # low states drift more
        kw = dict(
            retention_t=t,
            retention_ratio=(t[None, :] / 1.0) ** (-nu[:, None]),
            retention_sigma=0.002 * np.log10(1 + t)[None, :] * np.ones((L, 1)),
        )
    scheme = dict(
        scheme="ispva",
        v_start=0.8,
        v_step=0.05,
        v_max=2.0,
        pulse_width=pulse_width,
        read_voltage=v_read,
        tolerance=tol,
        max_pulses=40,
    )
    return DeviceTable(
        targets=targets,
        g_final=g_final,
        pulses=pulses,
        energy=energy,
        time=time,
        converged=converged,
        scheme=scheme,
        read_g=read_g,
        read_sigma=read_sigma,
        iv_v=iv_v,
        iv_current=iv_current,
        model={"name": "synthetic"},
        provenance={"command": "tests/tables.py synthetic_table", "seed": seed},
        **kw,
    )
