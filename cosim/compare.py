"""Side-by-side comparison of device tables, and of a table with published fits.

Per level: mean and standard deviation of the reached conductance, the two-sample
Kolmogorov-Smirnov distance to the first table's level with the same target
(``scipy.stats.ks_2samp``; 0 = the same distribution), mean pulses and energy, the read-noise
sigma at the level's conductance, and with a ``/retention`` group the spread a given time
after programming. That spread uses the inference drift model (``DevicePhysics``): a cell
programmed to g reads g (r(t) + s(t) z) at time t, so per level
``var G(t) = E[g^2] (r^2 + s^2) - (E[g] r)^2``.

Times after programming (:func:`sigma_at`): t = 0 is the write-verify read (the table's
reached conductances); t > 0 carries it through the ``/retention`` group by the drift model,
whose first time is 1 s, so "1 s" includes the relaxation of the first second (the
post-programming relaxation, where the table's device has it); a table without a
``/retention`` group is taken at its programming spread up to 1 s and has no later spread.

With a reference (:mod:`rramsim.cosim.references`), each table's sigma at the reference's
times (fits at t = 0 are programming spreads; the NeuRRAM fits are at 1 s and later) is set against the published band over the levels inside
the reference's window, both taken at each level's programmed mean conductance (the fits
give the spread versus the programmed conductance; the table's spread at time t is around
its drifted mean): the relative distance to the nearest edge of the band (0 inside
it) and its RMS over those levels. Every table's spread a day after programming is also set
against every reference with a fit at that time (``drift``), whether or not one was named:
the RMS distance to the band and the geometric mean of table / band middle (how many
times wider or narrower its drift leaves the levels).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rramsim.cosim.references import REFERENCES, Reference, reference
from rramsim.devices import DeviceTable

#: Up to this time (s) a table without retention data is taken at its programming spread.
PROGRAMMING_TIME = 1.0


def sigma_at(table: DeviceTable, t: float) -> np.ndarray | None:
    """Per-level (mean G, sigma G) t seconds after programming.

    t <= 0: the write-verify read (``g_final``). t > 0 with a ``/retention`` group: the
    drift model of inference (``DevicePhysics.drift_factor``, the same numbers ``evaluate
    --drift t`` draws from) applied to ``g_final``; at its first time (1 s) that is the
    group's first column exactly. Without one: the programming spread up to
    :data:`PROGRAMMING_TIME`, None later (nothing is known)."""
    g = table.g_final
    if t <= 0 or (t <= PROGRAMMING_TIME and not table.has_retention):
        return np.stack([g.mean(axis=1), g.std(axis=1)])
    if not table.has_retention:
        return None
    import torch

    from rramsim.models.programming import DevicePhysics

    phys = DevicePhysics(table, read_voltage=float("nan"))
    level = torch.arange(table.n_levels)
    args = (0.0, 0.0, 1.0)  # nu, nu_std, t0: unused with retention
    r = phys.drift_factor(t, level, torch.zeros(table.n_levels), *args).numpy()
    s = phys.drift_factor(t, level, torch.ones(table.n_levels), *args).numpy() - r
    m1, m2 = g.mean(axis=1), (g**2).mean(axis=1)
    var = m2 * (r**2 + s**2) - (m1 * r) ** 2
    return np.stack([m1 * r, np.sqrt(np.maximum(var, 0.0))])


@dataclass
class TableReport:
    """What :func:`compare_tables` found for one table."""

    name: str
    table: DeviceTable
    stats: dict[str, np.ndarray]
    read_sigma: np.ndarray  # [L] read-noise sigma at each level's mean G
    matched: np.ndarray  # [L] index of the first table's level with this target, -1 none
    ks: np.ndarray  # [L] KS distance to that level (NaN if none)
    ks_p: np.ndarray
    at: dict[float, np.ndarray | None] = field(default_factory=dict)  # t -> [2, L] mean, sigma
    vs_reference: dict[float, dict] = field(default_factory=dict)
    drift: dict[str, dict] = field(default_factory=dict)  # reference -> its 1-day comparison


#: The time of the drift comparison every table gets against every reference that has a fit then (s).
DRIFT_TIME = 86400.0


def versus(ref: Reference, g0: np.ndarray, sigma: np.ndarray, time: float) -> dict:
    """``sigma`` (per level, at programmed means ``g0``) against ``ref``'s band at ``time``:
    relative distance to the nearest edge (0 inside), its RMS over the levels inside the
    window, and the geometric mean of sigma over the band's middle there."""
    inside = ref.inside(g0)
    lo, hi = ref.band(g0, time)
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = np.where(sigma < lo, sigma / lo - 1, np.where(sigma > hi, sigma / hi - 1, 0.0))
        ratio = (
            float(np.exp(np.mean(np.log(sigma[inside] / ((lo + hi) / 2)[inside])))) if inside.any() else float("nan")
        )
    return {
        "levels": int(inside.sum()),
        "lo": lo,
        "hi": hi,
        "inside": inside,
        "distance": dist,
        "rms": float(np.sqrt(np.mean(dist[inside] ** 2))) if inside.any() else float("nan"),
        "ratio": ratio,
        "why": "" if inside.any() else "no level inside the reference window",
    }


def _match(targets: np.ndarray, ref_targets: np.ndarray) -> np.ndarray:
    """Index of the reference level with the same target (within 0.1%), else -1."""
    idx = np.abs(targets[:, None] - ref_targets[None, :]).argmin(axis=1)
    same = np.isclose(ref_targets[idx], targets, rtol=1e-3, atol=0)
    return np.where(same, idx, -1)


def compare_tables(
    paths: list[str | Path], ref: str | Reference | None = None
) -> tuple[list[TableReport], Reference | None]:
    """Load the tables at ``paths`` and compare them (and with ``ref``, a reference name)."""
    from scipy.stats import ks_2samp

    if not paths:
        raise ValueError("give at least one table to compare")
    if isinstance(ref, str):
        ref = reference(ref)
    tables = [DeviceTable.load(p) for p in paths]
    names = [Path(p).name for p in paths]
    if len(set(names)) < len(names):
        names = [str(p) for p in paths]
    first = tables[0]
    times = sorted(set(ref.times if ref else []) | ({1.0, 86400.0} if ref is None else set()))
    reports = []
    for name, t in zip(names, tables):
        matched = _match(t.targets, first.targets)
        ks = np.full(t.n_levels, np.nan)
        ks_p = np.full(t.n_levels, np.nan)
        for k, j in enumerate(matched):
            if j >= 0:
                res = ks_2samp(t.g_final[k], first.g_final[j])
                ks[k], ks_p[k] = res.statistic, res.pvalue
        stats = t.level_stats()
        rep = TableReport(name, t, stats, t.read_sigma_at(stats["g_mean"]), matched, ks, ks_p)
        for time in times:
            rep.at[time] = sigma_at(t, time)
        if ref is not None:
            for time in ref.times:
                ms = rep.at[time]
                if ms is None:
                    rep.vs_reference[time] = {"levels": 0, "why": "no /retention group"}
                    continue
                # the fits are sigma vs the programmed conductance
                rep.vs_reference[time] = versus(ref, stats["g_mean"], ms[1], time)
        day = sigma_at(t, DRIFT_TIME)
        for name in sorted(REFERENCES):
            other = REFERENCES[name]
            if DRIFT_TIME not in other.times:
                continue
            rep.drift[name] = (
                {"levels": 0, "why": "no /retention group"}
                if day is None
                else versus(other, stats["g_mean"], day[1], DRIFT_TIME)
            )
        reports.append(rep)
    return reports, ref


def _num(x: float, scale: float, fmt: str) -> str:
    return "unknown" if not np.isfinite(x) else format(x * scale, fmt)


def _when(t: float) -> str:
    return "program" if t <= 0 else (f"{t:g} s" if t < 3600 else f"{t / 86400:g} d")


def format_comparison(reports: list[TableReport], ref: Reference | None) -> str:
    """The comparison as text: per level, one line per table; then the reference summary."""
    first = reports[0]
    later = [t for t in sorted(first.at) if t > 0]
    lines = [
        f"tables: "
        + ", ".join(
            f"[{i}] {r.name} ({r.table.n_levels} levels x {r.table.n_devices} cells"
            f"{', measured' if r.table.provenance.get('source') == 'measured' else ''})"
            for i, r in enumerate(reports)
        ),
        "per level: G mean +- sigma [uS], KS distance (p) to [0] at the same target, pulses, energy [pJ], "
        "read sigma [uS]" + "".join(f", sigma at {_when(t)} [uS]" for t in later),
    ]
    rows = sorted({(float(t),) for r in reports for t in r.table.targets})
    for (target,) in rows:
        lines.append(f"target {target * 1e6:.2f} uS")
        for i, r in enumerate(reports):
            hit = np.flatnonzero(np.isclose(r.table.targets, target, rtol=1e-3, atol=0))
            if hit.size == 0:
                continue
            k = int(hit[0])
            s = r.stats
            ks = "(first)" if i == 0 else "--" if np.isnan(r.ks[k]) else f"{r.ks[k]:.3f} (p {r.ks_p[k]:.2g})"
            drift = "".join(
                "  " + (_num(r.at[t][1][k], 1e6, ".3f") if r.at.get(t) is not None else "n/a") for t in later
            )
            lines.append(
                f"  [{i}] {s['g_mean'][k] * 1e6:8.3f} +- {s['g_std'][k] * 1e6:6.3f}  KS {ks:<16}"
                f" pulses {_num(s['pulses_mean'][k], 1, '.2f'):>7}  energy {_num(s['energy_mean'][k], 1e12, '.1f'):>7}"
                f"  read {r.read_sigma[k] * 1e6:6.3f}{drift}"
            )
    if ref is not None:
        lines.append(f"reference {ref.name}: {ref.title}; window {ref.window[0] * 1e6:g}-{ref.window[1] * 1e6:g} uS")
        for c in ref.curves:
            lines.append(f"  fit: {c.label} (t = {_when(c.time)})")
        for i, r in enumerate(reports):
            for t, v in r.vs_reference.items():
                if not v["levels"]:
                    lines.append(f"  [{i}] at {_when(t)}: not compared ({v['why']})")
                    continue
                ms, g0 = r.at[t], r.stats["g_mean"]
                parts = [
                    f"{g0[k] * 1e6:.0f}: {ms[1][k] * 1e6:.2f} vs {v['lo'][k] * 1e6:.2f}-{v['hi'][k] * 1e6:.2f}"
                    for k in np.flatnonzero(v["inside"])
                ]
                lines.append(
                    f"  [{i}] sigma at {_when(t)} over {v['levels']} levels in the window: RMS relative "
                    f"distance to the band {100 * v['rms']:.0f}%  (G uS: table vs band uS; " + "; ".join(parts) + ")"
                )
    lines.append(
        f"sigma {_when(DRIFT_TIME)} after programming against every published fit of that time (RMS relative "
        "distance to the band of fits over the levels inside its window; geometric mean of table / band middle)"
    )
    for i, r in enumerate(reports):
        parts = []
        for name, v in r.drift.items():
            if not v["levels"]:
                parts.append(f"{name}: not compared ({v['why']})")
            else:
                parts.append(f"{name}: {100 * v['rms']:.0f}% over {v['levels']} levels, x{v['ratio']:.2f}")
        lines.append(f"  [{i}] " + "; ".join(parts))
    return "\n".join(lines)


def plot_comparison(reports: list[TableReport], ref: Reference | None, path: str | Path) -> Path:
    """sigma(G) of every table (programming, read noise, later times) over the reference
    fits, and the level histograms of every table overlaid."""
    from rramsim.cosim.plots import _figure, _save

    fig, (ax, ax2) = _figure(2)
    colors = [f"C{i}" for i in range(10)]
    lo_g = min(float(r.table.g_final.min()) for r in reports)
    hi_g = max(float(r.table.g_final.max()) for r in reports)
    bins = np.linspace(lo_g, hi_g, 200) * 1e6  # shared bins: the overlays line up
    for i, r in enumerate(reports):
        c = colors[i % 10]
        s = r.stats
        ax.plot(s["g_mean"] * 1e6, s["g_std"] * 1e6, "o-", color=c, label=f"[{i}] {r.name}: programmed")
        ax.plot(r.table.read_g * 1e6, r.table.read_sigma * 1e6, ":", color=c, label=f"[{i}] read noise")
        for t, ms in r.at.items():
            if t > 0 and ms is not None and r.table.has_retention:
                ax.plot(s["g_mean"] * 1e6, ms[1] * 1e6, "s--", mfc="none", color=c, label=f"[{i}] at {_when(t)}")
        ax2.hist(
            r.table.g_final.reshape(-1) * 1e6, bins=bins, color=c, histtype="step", lw=1.2, label=f"[{i}] {r.name}"
        )
    if ref is not None:
        g = np.linspace(max(ref.window[0], 0.5e-6), ref.window[1], 200)
        for j, t in enumerate(ref.times):
            lo, hi = ref.band(g, t)
            col = f"C{(len(reports) + j) % 10}"
            if np.allclose(lo, hi):
                ax.plot(g * 1e6, lo * 1e6, color=col, lw=2, alpha=0.7, label=f"{ref.name} {_when(t)}")
            else:
                ax.fill_between(
                    g * 1e6, lo * 1e6, hi * 1e6, color=col, alpha=0.3, label=f"{ref.name} {_when(t)} (band of fits)"
                )
    ax.set(xlabel="programmed conductance [uS]", ylabel="sigma(G) [uS]", title="spread vs conductance")
    ax.legend(fontsize=6)
    ax.grid(alpha=0.3)
    ax2.set(xlabel="conductance reached [uS]", ylabel="cells", title="level histograms")
    ax2.legend(fontsize=7)
    return _save(fig, path)
