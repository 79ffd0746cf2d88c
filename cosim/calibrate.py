"""``rramsim calibrate``: fit the built-in model's spread to a measured table or a published
sigma(G), at 1 s and (where the target has it) a day after programming.

Times after programming (the same definitions as ``table compare``, :func:`rramsim.cosim.compare.sigma_at`):
t = 0 is the write-verify read itself (the table's reached conductances); t > 0 is that
read carried through the table's ``/retention`` group by the inference drift model (a cell
programmed to g reads ``g (r(t) + s(t) z)``), whose first time is 1 s, so "1 s" holds a
second of relaxation; a table without a ``/retention`` group is taken at its programming
spread up to 1 s and has no later spread.

What sets the spread, in the built-in model (``rramsim.devices.params``):

* the write-verify read: a converged cell lies inside the verify window ``target (1 +-
  tolerance)``, so the spread is mostly the ``tolerance`` (a uniform landing gives sigma =
  tolerance / sqrt(3) of the target); the device-to-device and cycle-to-cycle spreads
  (``scale``, multiplying every sigma of the preset) only move where the last pulse lands
  and how many cells miss the window. The campaign's verify reads are noiseless, so
  neither the read-noise amplitude nor verify-read averaging moves this spread.
* the slow relaxation: the gap relaxes towards ``g_max`` at the rate ``r_ret`` (``dg/dt =
  r_ret (g_max - g)``), log-normally spread over devices with sigma ``ret_spread``;
  ``r_ret`` sets the mean loss r(t) and ``ret_spread`` part of the spread s(t).
* the post-programming relaxation (``rramsim.devices.params.Relaxation``, off unless set
  or fitted): the gap moves by ``delta ln(1 + t/relax_tau)``, ``delta ~ N(0,
  relax_amplitude exp((g - 1 nm)/relax_decay))`` per cell and programming. Its absolute
  spread goes as ``G^(1 - g0/relax_decay)``, falling with G for ``relax_decay < g0``;
  ``relax_tau`` sets how much it grows from 1 s to a day.

The write-verify window, the slow relaxation and the read noise (were it in the loop: G^1/2)
are all spreads that rise with G; without the post-programming relaxation a target that
falls with G (NeuRRAM's does over 10-40 uS) can be matched no better than the best
non-decreasing curve, :func:`rising_bound`, which the command prints beside the result.

Calibration fits, by name (``fit``, names in :data:`BOUNDS`), minimizing the RMS relative
error of sigma over every (level, time) of the target. Each evaluation is a small seeded
campaign; campaigns (and retention runs, keyed by their own parameters) are kept in a work
folder, so an interrupted or repeated calibration reuses every one already run. One
parameter is searched with ``minimize_scalar`` (bounded, log space), several with
Nelder-Mead (log space, first steps a factor 2), each within ``max_evals`` campaigns. The
relaxation's parameters start from :func:`relaxation_start`, a closed-form fit of its law
to the target.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rramsim.devices import DeviceTable

#: Parameters that can be fitted, with their search bounds.
BOUNDS = {
    "tolerance": (0.005, 0.45),
    "scale": (0.05, 8.0),
    "r_ret": (1e-9, 1e-4),
    "ret_spread": (0.01, 3.0),
    "relax_amplitude": (1e-5, 0.5),
    "relax_decay": (0.02, 5.0),
    "relax_tau": (1e-10, 100.0),
}
#: The post-programming relaxation's parameters (nm, nm, s; see ``rramsim.devices.params.Relaxation``).
RELAX = ("relax_amplitude", "relax_decay", "relax_tau")
#: First Nelder-Mead steps, in ln of each parameter (a factor 2), smaller for the relaxation's
#: amplitude and decay (sigma at a level goes as amplitude exp(dg/decay)) and larger for tau
#: (it enters through ln(1 + t/tau)).
SIMPLEX_STEP = float(np.log(2.0))
SIMPLEX_STEPS = {
    "relax_amplitude": float(np.log(1.3)),
    "relax_decay": float(np.log(1.2)),
    "relax_tau": float(np.log(4.0)),
}
#: Times up to this (s) need no retention data where the model has no post-programming relaxation.
PROGRAMMING_TIME = 1.0
DAY = 86400.0


@dataclass
class Target:
    """Per-level standard deviation of the conductance to match (S), at one or more times
    after programming (s; see the module doc for what each means), and, for a published
    reference, the band of its fits at each time."""

    targets: np.ndarray
    sigma: dict[float, np.ndarray]
    label: str
    band: dict[float, tuple[np.ndarray, np.ndarray]] | None = None

    @property
    def times(self) -> list[float]:
        return sorted(self.sigma)

    @property
    def retention_time(self) -> float:
        """The longest time after programming this target needs (0: programming only)."""
        later = [t for t in self.sigma if t > PROGRAMMING_TIME]
        return max(later) if later else 0.0


def target_from_table(table: DeviceTable, label: str, times: list[float] | None = None) -> Target:
    """The spread of ``table`` at 1 s, and a day later where its ``/retention`` group reaches
    a day (or at ``times``), as :func:`rramsim.cosim.compare.sigma_at` defines them."""
    from rramsim.cosim.compare import sigma_at

    if times is None:
        times = [PROGRAMMING_TIME]
        if table.has_retention and float(table.retention_t[-1]) >= DAY * (1 - 1e-6):
            times.append(DAY)
    sigma = {}
    for t in times:
        ms = sigma_at(table, t)
        if ms is None:
            raise ValueError(
                f"{label} has no /retention group: its spread at t = {t:g} s is unknown "
                "(calibrate to its programming spread only: --time 1)"
            )
        if t > PROGRAMMING_TIME and float(table.retention_t[-1]) < t * (1 - 1e-6):
            raise ValueError(
                f"{label}'s retention data end at {float(table.retention_t[-1]):g} s, before "
                f"t = {t:g} s: calibrate to times it measured"
            )
        sigma[float(t)] = ms[1]
    return Target(table.targets.copy(), sigma, label)


def target_from_reference(name: str, times: list[float] | None, targets: np.ndarray | None) -> Target:
    """The middle of a published band at ``targets`` (default: 4 levels over its window),
    at ``times`` (default: every time of the reference up to a day)."""
    from rramsim.cosim.references import reference

    ref = reference(name)
    times = [t for t in ref.times if t <= DAY] if times is None else list(times)
    if targets is None:
        lo, hi = ref.window
        targets = np.linspace(max(lo, hi / 4), hi, 4)
    targets = np.asarray(targets, dtype=float)
    inside = ref.inside(targets)
    if not inside.all():
        raise ValueError(
            f"targets {', '.join(f'{t * 1e6:g}u' for t in targets[~inside])} lie outside the "
            f"{name} window ({ref.window[0] * 1e6:g}-{ref.window[1] * 1e6:g} uS)"
        )
    sigma, band = {}, {}
    for t in times:
        lo, hi = ref.band(targets, t)
        # a fit at t = 0 is the programming spread, compared as such (t <= 1 s)
        sigma[float(t)], band[float(t)] = (lo + hi) / 2, (lo, hi)
    return Target(targets, sigma, f"{name} at t = {', '.join(f'{t:g}' for t in times)} s", band)


def rms_error(reached: np.ndarray, target: np.ndarray) -> float:
    return float(np.sqrt(np.mean((reached / target - 1) ** 2)))


def band_distance(reached: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """RMS relative distance to the nearest edge of a band (0 inside it), as ``table compare``."""
    d = np.where(reached < lo, reached / lo - 1, np.where(reached > hi, reached / hi - 1, 0.0))
    return float(np.sqrt(np.mean(d**2)))


def rising_bound(sigma: np.ndarray) -> float:
    """The smallest RMS relative error any sigma(G) that does not fall with G can reach
    against ``sigma`` (per level, levels in increasing G): a weighted isotonic regression,
    since ``(m/s - 1)^2 = (m - s)^2 / s^2``."""
    from scipy.optimize import isotonic_regression

    sigma = np.asarray(sigma, dtype=float)
    best = isotonic_regression(sigma, weights=1 / sigma**2, increasing=True).x
    return rms_error(best, sigma)


def model_sigma(table: DeviceTable, t: float) -> np.ndarray:
    """Per-level sigma of ``table`` t s after programming (the definition ``table compare`` uses)."""
    from rramsim.cosim.compare import sigma_at

    ms = sigma_at(table, t)
    if ms is None:
        raise ValueError(f"the table has no /retention group: no spread at t = {t:g} s")
    return ms[1]


@dataclass
class Calibration:
    """The result: fitted parameters, the final table, its error and every campaign run."""

    params: dict[str, float]
    table: DeviceTable
    error: float  # RMS over every (level, time)
    errors: dict[float, float]  # RMS per time
    history: list[dict]


def calibrated_device(model, variability, p: dict[str, float]):
    """The model and variability that parameters ``p`` (see :data:`BOUNDS`) describe; a
    ``relax_amplitude`` of 0 (or none) leaves the preset's relaxation (off)."""
    from rramsim.devices.params import Relaxation

    var = variability.scaled(p["scale"])
    var = dataclasses.replace(var, d2d={**var.d2d, "r_ret": p["ret_spread"]})
    if p.get("relax_amplitude", 0.0) > 0:
        var = dataclasses.replace(
            var,
            relaxation=Relaxation(p["relax_amplitude"], p["relax_decay"], p["relax_tau"], p.get("relax_gap_ref", 1.0)),
        )
    return model.replace(r_ret=p["r_ret"]), var


def relaxation_start(target: Target, model, read_voltage: float) -> dict[str, float]:
    """Starting relaxation parameters from the target alone (the programming spread ignored):
    ``ln(sigma/G)`` at the first time after 0 is a straight line in the level's gap ``g``
    (slope ``1/relax_decay``, the relaxation's relative spread ``sigma_g(g) ln(1 + t/tau) / g0``),
    and the median ratio of the last time's sigma to the first's is
    ``ln(1 + t2/tau) / ln(1 + t1/tau)``, solved for tau (1 us with one time). The
    reference gap (where sigma_g = amplitude, not fitted) is the middle of the levels' gaps,
    so that amplitude and decay move the levels' spread nearly independently."""
    from scipy.optimize import brentq

    times = [t for t in target.times if t > 0]
    if not times:
        raise ValueError("the post-programming relaxation needs a target time after programming (t > 0)")
    t1, t2 = times[0], times[-1]
    gaps = -model.g0 * np.log(target.targets * read_voltage / (model.i0 * np.sinh(read_voltage / model.v0)))
    rel = np.log(target.sigma[t1] / target.targets)
    slope, intercept = np.polyfit(gaps, rel, 1) if gaps.size > 1 else (0.0, float(rel[0]))
    lo, hi = BOUNDS["relax_decay"]
    decay = float(np.clip(1 / slope, lo, hi)) if slope > 0 else hi
    tau = 1e-6
    if t2 > t1:
        ratio = float(np.median(target.sigma[t2] / target.sigma[t1]))
        f = lambda lt: np.log1p(t2 / np.exp(lt)) / np.log1p(t1 / np.exp(lt)) - ratio  # noqa: E731
        lo_t, hi_t = np.log(BOUNDS["relax_tau"])
        tau = (
            float(np.exp(brentq(f, lo_t, hi_t)))
            if f(lo_t) < 0 < f(hi_t)
            else (BOUNDS["relax_tau"][0] if f(lo_t) >= 0 else BOUNDS["relax_tau"][1])
        )
    ref = round(float(np.mean(gaps)), 3)
    amplitude = float(np.exp(intercept + slope * ref)) * model.g0 / float(np.log1p(t1 / tau))
    lo_a, hi_a = BOUNDS["relax_amplitude"]
    return {
        "relax_amplitude": float(np.clip(amplitude, lo_a, hi_a)),
        "relax_decay": decay,
        "relax_tau": tau,
        "relax_gap_ref": ref,
    }


def calibrate(
    target: Target,
    model,
    variability,
    scheme,
    fit=("tolerance",),
    n_devices: int = 20,
    seed: int = 0,
    max_evals: int = 12,
    workdir: str | Path = "calibration",
    workers: int | None = None,
    retention_devices: int = 8,
    progress: bool = True,
    log=None,
    start_at: dict[str, float] | None = None,
) -> Calibration:
    """Fit ``fit`` (names in :data:`BOUNDS`) so the built-in ``model`` reaches ``target``;
    ``start_at`` overrides starting values (names in :data:`BOUNDS`, inside their bounds)."""
    unknown = [f for f in fit if f not in BOUNDS]
    if unknown or not fit:
        raise ValueError(f"--fit takes names from {', '.join(BOUNDS)}, got {', '.join(fit) or 'none'}")
    if max_evals < 1:
        raise ValueError(f"max_evals must be >= 1, got {max_evals}")
    relax_on = variability.relaxation.on or bool(set(RELAX) & set(fit))
    # retention runs: for every time after 1 s, and from 1 s on where the model relaxes after programming
    later = [t for t in target.times if t > PROGRAMMING_TIME or (relax_on and t > 0)]
    if not later and {"r_ret", "ret_spread"} & set(fit):
        raise ValueError(
            "r_ret and ret_spread set the spread after programming; the target has none "
            "(give a time after 1 s, or a table with a /retention group)"
        )
    if set(RELAX) & set(fit) and not later:
        raise ValueError(
            f"{', '.join(RELAX)} set the spread after programming; the target has none "
            "(give a time after programming, t > 0)"
        )
    from scipy.optimize import minimize, minimize_scalar
    from tqdm.auto import tqdm

    from rramsim.cosim.characterize import Characterization, characterize, measure_retention

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    base_spread = float(variability.d2d.get("r_ret", 0.0))
    start = {
        "tolerance": float(scheme.tolerance),
        "scale": 1.0,
        "r_ret": float(model.r_ret),
        "ret_spread": base_spread if base_spread > 0 else 0.3,
    }
    if variability.relaxation.on:
        r = variability.relaxation
        start.update(relax_amplitude=r.amplitude, relax_decay=r.decay, relax_tau=r.tau, relax_gap_ref=r.gap_ref)
    elif relax_on:
        start.update(relaxation_start(target, model, scheme.read_voltage))
    for name, value in (start_at or {}).items():
        if name not in BOUNDS or not BOUNDS[name][0] <= value <= BOUNDS[name][1]:
            raise ValueError(
                f"--start {name}={value:g}: give names from {', '.join(BOUNDS)} inside their bounds "
                f"({', '.join(f'{k} {lo:g}-{hi:g}' for k, (lo, hi) in BOUNDS.items())})"
            )
        if name in RELAX and not relax_on:
            raise ValueError(f"--start {name}: the post-programming relaxation is not fitted (add it to --fit)")
        start[name] = float(value)
    history: list[dict] = []
    tables: dict[str, DeviceTable] = {}
    bar = tqdm(total=max_evals, unit="campaign", desc="calibrate", disable=not progress)
    say = log or (bar.write if progress else (lambda s: None))

    def params_of(x) -> dict[str, float]:
        p = dict(start)
        for name, v in zip(fit, np.atleast_1d(x)):
            lo, hi = BOUNDS[name]
            p[name] = float(np.clip(np.exp(v), lo, hi))
        if "ret_spread" not in fit:  # the relaxation spread follows the preset's, scaled
            p["ret_spread"] = base_spread * p["scale"]
        if relax_on and "relax_amplitude" not in fit and variability.relaxation.on:  # ... and so does this one
            p["relax_amplitude"] = variability.relaxation.amplitude * p["scale"]
        return {k: float(f"{v:.4g}") for k, v in p.items()}

    def key_of(p: dict, names) -> str:
        text = json.dumps(
            {k: p[k] for k in names}
            | {
                "n": n_devices,
                "seed": seed,
                "targets": [float(t) for t in target.targets],
                "retention": [max(later) if later else 0.0, retention_devices],
            },
            sort_keys=True,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def characterization(p: dict[str, float]):
        m, var = calibrated_device(model, variability, p)
        return Characterization.builtin(
            m,
            variability=var,
            scheme=dataclasses.replace(scheme, tolerance=p["tolerance"]),
            targets=target.targets,
            n_devices=n_devices,
            seed=seed,
            retention_time=0,
            retention_devices=retention_devices,
        )

    def program(p: dict[str, float]) -> DeviceTable:
        """The write-verify campaign alone; with the post-programming relaxation in play it is
        kept per (scale, tolerance): the relaxation acts after programming, and ``r_ret``
        moves the gap by ``r_ret (g_max - g)`` times the few microseconds a cell is written,
        below 1e-12 nm, so campaigns that differ only in those are the same campaign."""
        label = " ".join(f"{k} {v:.4g}" for k, v in p.items())
        if not relax_on:
            return characterize(
                characterization(p), workers=workers, progress=False, command=f"rramsim calibrate ({label})"
            )
        ppath = workdir / f"program_{key_of(p, ['scale', 'tolerance'])}.h5"
        if ppath.exists():
            return DeviceTable.load(ppath)
        table = characterize(
            characterization(p), workers=workers, progress=False, command=f"rramsim calibrate ({label})"
        )
        table.save(ppath)
        return table

    def run(p: dict[str, float]) -> DeviceTable:
        names = sorted(p)
        path = workdir / f"campaign_{key_of(p, names)}.h5"
        if path.exists():
            return DeviceTable.load(path)
        table = program(p)
        if later:  # retention depends on the relaxation parameters only: kept on its own
            rnames = ["r_ret", "ret_spread"] + ([*RELAX, "relax_gap_ref"] if relax_on else [])
            rpath = workdir / f"retention_{key_of(p, rnames)}.npz"
            if rpath.exists():
                with np.load(rpath) as f:
                    ret = (f["t"], f["ratio"], f["sigma"])
            else:
                ret = measure_retention(dataclasses.replace(characterization(p), retention_time=max(later)))
                from rramsim.cosim.files import atomic_write

                atomic_write(rpath, lambda tmp: np.savez(tmp, t=ret[0], ratio=ret[1], sigma=ret[2]))
            table.retention_t, table.retention_ratio, table.retention_sigma = ret
            spec = characterization(p)  # what this table is (its campaign may be shared)
            table.variability = spec.variability.to_dict()
            table.model = {**table.model, **spec.model.params()}
        table.save(path)
        return table

    def evaluate(table: DeviceTable) -> tuple[float, dict[float, float]]:
        reached = {t: model_sigma(table, t) for t in target.times}
        per = {t: rms_error(reached[t], target.sigma[t]) for t in target.times}
        every = np.concatenate([reached[t] / target.sigma[t] - 1 for t in target.times])
        return float(np.sqrt(np.mean(every**2))), per

    def objective(x) -> float:
        p = params_of(x)
        key = json.dumps(p, sort_keys=True)
        if key not in tables:
            tables[key] = run(p)
        err, per = evaluate(tables[key])
        history.append({**p, "rms": err, **{f"rms_{t:g}s": e for t, e in per.items()}})
        bar.update(1)
        bar.set_postfix(rms=f"{100 * err:.1f}%")
        say(
            f"  campaign {len(history)}: "
            + " ".join(f"{k} {v:.4g}" for k, v in p.items())
            + f"  RMS {100 * err:.1f}% ("
            + ", ".join(f"{100 * e:.1f}% at {t:g} s" for t, e in per.items())
            + ")"
        )
        return err

    x0 = np.log([start[name] for name in fit])
    try:
        if len(fit) == 1:
            lo, hi = (np.log(b) for b in BOUNDS[fit[0]])
            minimize_scalar(objective, bounds=(lo, hi), method="bounded", options={"maxiter": max_evals, "xatol": 0.03})
        else:
            steps = [SIMPLEX_STEPS.get(name, SIMPLEX_STEP) for name in fit]
            simplex = np.vstack([x0, x0 + np.diag(steps)])
            minimize(
                objective,
                x0,
                method="Nelder-Mead",
                options={"maxfev": max_evals, "xatol": 0.03, "fatol": 0.005, "initial_simplex": simplex},
            )
    finally:
        bar.close()
    best = min(history, key=lambda h: h["rms"])
    params = {k: best[k] for k in params_of(x0)}
    table = tables[json.dumps(params, sort_keys=True)]
    from rramsim.cosim.files import atomic_write

    atomic_write(workdir / "history.json", json.dumps(history, indent=1) + "\n")
    err, per = evaluate(table)
    return Calibration(params, table, err, per, history)


def load_calibrated(path: str | Path, preset_name: str):
    """(model, variability, tolerance, spec) from a variability file ``calibrate`` wrote."""
    from rramsim.devices import Variability, preset

    path = Path(path)
    try:
        raw = path.read_bytes()
        spec = json.loads(raw)
    except FileNotFoundError:
        raise ValueError(f"--variability {path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"--variability {path} is not a JSON variability file ({exc})") from None
    missing = (
        [k for k in ("preset", "variability", "model", "tolerance") if k not in spec]
        if isinstance(spec, dict)
        else ["preset", "variability", "model", "tolerance"]
    )
    if missing:
        raise ValueError(f"--variability {path} lacks {', '.join(missing)}: write it with rramsim calibrate")
    if spec["preset"] != preset_name:
        raise ValueError(
            f"--variability {path} was calibrated for preset {spec['preset']!r}, not {preset_name!r}: "
            f"pass --preset {spec['preset']}"
        )
    model, _ = preset(preset_name)
    try:
        variability = Variability.from_dict(spec["variability"])
        model = model.replace(**{k: float(v) for k, v in spec["model"].items()})
        tolerance = float(spec["tolerance"])
    except (TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"--variability {path}: {exc}") from None
    if not 0 < tolerance < 1:
        raise ValueError(f"--variability {path}: tolerance must lie in (0, 1), got {tolerance}")
    spec["provenance"] = {
        "variability_file": str(path),
        "variability_sha256": hashlib.sha256(raw).hexdigest(),
        "variability_calibrated_to": str(spec.get("target", "unknown")),
    }
    return model, variability, tolerance, spec


def cmd_calibrate(args) -> int:
    import shlex

    from rramsim.devices import preset
    from rramsim.devices.schemes import ISPP

    if (args.target is None) == (args.reference is None):
        raise ValueError("give the target: --target TABLE.h5 (measured) or --reference NAME (published fit)")
    out = Path(args.output)
    if not out.parent.exists():
        raise ValueError(f"output folder {out.parent} does not exist")
    if args.target:
        if args.targets is not None:
            raise ValueError("--targets is for --reference; a target table brings its own levels")
        target = target_from_table(DeviceTable.load(args.target), args.target, args.time)
    else:
        target = target_from_reference(args.reference, args.time, args.targets)
    model, variability = preset(args.preset)
    scheme = ISPP(tolerance=args.tolerance)
    if args.fit is None:
        fit = ("tolerance", *RELAX) if target.retention_time else ("tolerance",)
    else:
        fit = tuple(f.strip() for f in args.fit.split(",") if f.strip())
    if not fit or any(f not in BOUNDS for f in fit):
        raise ValueError(f"--fit takes names from {', '.join(BOUNDS)}, got {args.fit!r}")
    workdir = args.workdir or str(out) + ".calib"
    print(
        f"calibrating preset {args.preset} ({', '.join(fit)}) to {target.label}: {target.targets.size} levels, "
        f"{args.devices} devices per campaign, at most {args.max_evals} campaigns (kept in {workdir})"
    )
    result = calibrate(
        target,
        model,
        variability,
        scheme,
        fit=fit,
        n_devices=args.devices,
        seed=args.seed,
        max_evals=args.max_evals,
        workdir=workdir,
        workers=args.workers,
        retention_devices=args.retention_devices,
        progress=not args.quiet,
        start_at=args.start,
    )
    p = result.params
    cal_model, cal_var = calibrated_device(model, variability, p)
    result.table.provenance["command"] = "rramsim " + " ".join(shlex.quote(a) for a in args.argv)
    result.table.provenance["calibrated_to"] = target.label
    side = out.with_suffix(".variability.json")
    spec = {
        "preset": args.preset,
        "variability": cal_var.to_dict(),
        "model": {"r_ret": cal_model.r_ret},
        "tolerance": p["tolerance"],
        "fitted": list(fit),
        "params": p,
        "target": target.label,
        "targets": [float(t) for t in target.targets],
        "n_devices": args.devices,
        "seed": args.seed,
        "rms_relative_error": result.error,
        "rms_per_time": {f"{t:g}": e for t, e in result.errors.items()},
    }
    from rramsim.cosim.files import atomic_write

    result.table.save(out)
    atomic_write(side, json.dumps(spec, indent=1) + "\n")
    print(format_result(target, result))
    print(f"wrote {out} and {side} (rramsim characterize --variability {side} runs this device)")
    return 0


def format_result(target: Target, result: Calibration) -> str:
    """Target vs reached per level and time, the RMS per time and the floor a rising sigma(G) has."""
    lines = ["time      level  target[uS]  sigma target[uS]  sigma reached[uS]  error"]
    for t in target.times:
        reached = model_sigma(result.table, t)
        for k, g in enumerate(target.targets):
            lines.append(
                f"{t:8g}  {k:5d}  {g * 1e6:10.2f}  {target.sigma[t][k] * 1e6:16.3f}  "
                f"{reached[k] * 1e6:17.3f}  {100 * (reached[k] / target.sigma[t][k] - 1):+6.1f}%"
            )
    for t in target.times:
        reached = model_sigma(result.table, t)
        line = (
            f"t = {t:g} s: RMS relative error {100 * result.errors[t]:.1f}%; the best any sigma(G) that does "
            f"not fall with G can reach: {100 * rising_bound(target.sigma[t]):.1f}%"
        )
        if target.band:
            line += f"; RMS distance to the band of fits {100 * band_distance(reached, *target.band[t]):.1f}%"
        lines.append(line)
    p = result.params
    line = (
        f"RMS over all {100 * result.error:.1f}% with tolerance {p['tolerance']:.4g}, variability scale "
        f"{p['scale']:.4g}, r_ret {p['r_ret']:.4g}/s, r_ret spread {p['ret_spread']:.4g}"
    )
    if p.get("relax_amplitude", 0) > 0:
        line += (
            f", post-programming relaxation: amplitude {p['relax_amplitude']:.4g} nm, decay "
            f"{p['relax_decay']:.4g} nm, tau {p['relax_tau']:.4g} s"
        )
    lines.append(line)
    return "\n".join(lines)


def add_commands(sub) -> None:
    import argparse

    from rramsim.cosim.argtypes import number, positive_int, targets
    from rramsim.cosim.references import REFERENCES
    from rramsim.devices import PRESETS

    def times(text: str) -> list[float]:
        return [number(x) for x in text.split(",") if x.strip()]

    def starts(text: str) -> dict[str, float]:
        out = {}
        for item in (x.strip() for x in text.split(",") if x.strip()):
            name, sep, value = item.partition("=")
            if not sep:
                raise argparse.ArgumentTypeError(f"{item!r}: give NAME=VALUE")
            out[name.strip()] = number(value)
        return out

    c = sub.add_parser("calibrate", help="fit the built-in model's spread to a table or a published fit")
    c.add_argument("--target", metavar="TABLE.h5", help="measured (or any) device table to match")
    c.add_argument("--reference", choices=sorted(REFERENCES), help="published sigma(G) to match")
    c.add_argument(
        "--time",
        type=times,
        help="times after programming to match, s, comma list (default: 1 s and, where the target has it, 1 day)",
    )
    c.add_argument("--targets", type=targets, help="with --reference: levels (LO:HI:COUNT), inside its window")
    c.add_argument("--preset", default="hfox", choices=sorted(PRESETS))
    c.add_argument(
        "--fit",
        help=f"parameters to fit, comma list of {', '.join(BOUNDS)} (default: tolerance, and "
        f"{','.join(RELAX)} (the post-programming relaxation) when a time after 1 s is "
        "matched)",
    )
    c.add_argument("--tolerance", type=float, default=0.05, help="starting write-verify tolerance")
    c.add_argument(
        "--start",
        type=starts,
        default=None,
        metavar="NAME=VALUE,...",
        help="starting values of fitted parameters (default: the preset's; the relaxation's from a "
        "closed-form fit to the target)",
    )
    c.add_argument("--devices", type=positive_int, default=20, help="devices per campaign")
    c.add_argument("--retention-devices", type=positive_int, default=8, help="devices of each retention run")
    c.add_argument("--max-evals", type=positive_int, default=12, help="most campaigns to run")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--workers", type=positive_int, default=2)
    c.add_argument("--workdir", help="where campaigns are kept (default OUTPUT.calib; reused on a rerun)")
    c.add_argument("-o", "--output", required=True, help="the calibrated table (HDF5); the spec goes beside it")
    c.add_argument("-q", "--quiet", action="store_true")
    c.set_defaults(func=cmd_calibrate)
