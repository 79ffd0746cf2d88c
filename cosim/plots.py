"""Matplotlib figures of a device table: I-V hysteresis, level histograms, write-verify."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rramsim.devices import DeviceTable


def _figure(ncols: int = 1, width: float = 6.0):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, 4.2), squeeze=False)
    return fig, axes[0]


def _save(fig, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    path = Path(path)
    if path.parent and not path.parent.exists():
        raise ValueError(f"cannot write {path}: folder {path.parent} does not exist")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_iv(table: DeviceTable, path: str | Path) -> Path:
    """Quasi-static SET/RESET loop (if recorded) and the read I-V of every level."""
    has_sweep = table.sweep_v is not None
    if not table.has_iv and not has_sweep:
        raise ValueError("this table has no I-V data (a measured table imported without --iv)")
    fig, axes = _figure(2 if has_sweep else 1)
    if has_sweep:
        ax = axes[0]
        ax.semilogy(table.sweep_v, np.abs(table.sweep_current) + 1e-12, lw=1.2)
        ax.set(xlabel="voltage [V]", ylabel="|current| [A]", title="I-V sweep (SET > 0, RESET < 0)")
        ax.grid(alpha=0.3)
    ax = axes[-1]
    cmap = __import__("matplotlib").colormaps["viridis"]
    for lv in range(table.n_levels):
        ax.plot(
            table.iv_v,
            table.iv_current[lv] * 1e6,
            color=cmap(lv / max(1, table.n_levels - 1)),
            label=f"{table.targets[lv] * 1e6:.0f} uS",
        )
    ax.set(xlabel="read voltage [V]", ylabel="current [uA]", title="read I-V per level")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_levels(table: DeviceTable, path: str | Path) -> Path:
    """Histograms of the conductance reached at every level, targets marked."""
    fig, (ax,) = _figure(width=8)
    tol = float(table.scheme["tolerance"])
    for lv in range(table.n_levels):
        g = table.g_final[lv] * 1e6
        ax.hist(g, bins=30, alpha=0.7)
        if np.isfinite(tol):  # NaN: a measured table without a stated tolerance
            ax.axvspan(table.targets[lv] * 1e6 * (1 - tol), table.targets[lv] * 1e6 * (1 + tol), color="k", alpha=0.06)
    shade = f"shaded: ±{100 * tol:.0f}% tolerance" if np.isfinite(tol) else "tolerance not known"
    ax.set(
        xlabel="conductance after write-verify [uS]",
        ylabel="devices",
        title=f"{table.n_devices} devices x {table.n_levels} levels ({shade})",
    )
    return _save(fig, path)


def plot_writeverify(table: DeviceTable, path: str | Path, devices: int = 3) -> Path:
    """Write-verify trajectories: verify-read conductance and pulse amplitude per pulse."""
    if table.trace_g is None:
        raise ValueError(
            "this table has no /trace group (write-verify trajectories); regenerate it with `rramsim characterize`"
        )
    fig, (ax, ax2) = _figure(2)
    gated = table.trace_gate is not None and table.scheme.get("scheme") == "igvva"
    for d in range(min(devices, len(table.trace_length))):
        n = table.trace_length[d]
        ax.semilogy(np.arange(n), table.trace_g[d, :n] * 1e6, lw=0.9, marker=".", ms=3, label=f"device {d}")
        ax2.step(np.arange(n), table.trace_amplitude[d, :n], lw=0.9, where="mid")
        if gated:
            ax2.step(np.arange(n), table.trace_gate[d, :n], lw=0.9, ls="--", where="mid")
    ax.legend(fontsize=7)
    for t in table.targets:
        ax.axhline(t * 1e6, color="k", lw=0.4, ls=":")
    ax.set(xlabel="pulse", ylabel="verify read G [uS]", title="write-verify trajectories")
    ax2.set(
        xlabel="pulse",
        ylabel="pulse amplitude [V]",
        title=f"{table.scheme.get('scheme', '')} pulses (< 0: RESET/erase)" + (", word line dashed" if gated else ""),
    )
    return _save(fig, path)


PLOTS = {"iv": plot_iv, "levels": plot_levels, "writeverify": plot_writeverify}


def plot_accuracy(
    drifts, drift_results, adc_bits, adc_results, float_accuracy: float, title: str, path: str | Path
) -> Path:
    """Crossbar accuracy (mean ± std over programmings) versus drift time and versus ADC bits,
    beside the float accuracy; ``*_results`` hold ``TrialsResult``-like ``mean``/``std``."""
    fig, (a1, a2) = _figure(2, width=5.0)
    t = np.array(drifts, dtype=float)
    tx = np.where(t > 0, t, 1.0)  # log axis: t = 0 is plotted at 1 s and labelled so
    a1.errorbar(
        tx,
        [100 * r.mean for r in drift_results],
        yerr=[100 * r.std for r in drift_results],
        marker="o",
        capsize=3,
        label="crossbar",
    )
    a1.set_xscale("log")
    a1.set(xlabel="drift time (s; 0 plotted at 1 s)", title="accuracy versus drift")
    a2.errorbar(
        adc_bits,
        [100 * r.mean for r in adc_results],
        yerr=[100 * r.std for r in adc_results],
        marker="o",
        capsize=3,
        label="crossbar",
    )
    a2.set(xlabel="ADC bits", title="accuracy versus ADC resolution (no drift)")
    for ax in (a1, a2):
        ax.axhline(100 * float_accuracy, ls="--", c="gray", label="float")
        ax.set_ylabel("test accuracy (%)")
        ax.legend()
    fig.suptitle(title)
    return _save(fig, path)
