"""``rramsim calibrate``: fit the built-in model's programming spread to a measured table or
a published sigma(G).

What sets the spread. Under write-verify the conductance a cell reaches lies inside the
verify window ``target (1 +- tolerance)`` unless the cell fails to converge, so the spread
of the reached conductance is mostly the tolerance (a uniform spread over the window has
sigma = tolerance / sqrt(3) of the target); the device-to-device and cycle-to-cycle
variability moves it through how the last pulse lands in the window and how many cells
miss it. (The campaign's verify reads are noiseless, so the model's read-noise amplitude
does not move this spread; a target that falls with G, as NeuRRAM's does, cannot be matched
by these two knobs, whose spread grows with G.) Calibration therefore fits, by name (``fit``), the write-verify ``tolerance``
and/or a ``scale`` multiplying every sigma of the preset's variability, minimizing the RMS
relative error of sigma per level against the target.

Each evaluation is a small seeded campaign (retention skipped); campaigns are kept in a
work folder keyed by their parameters, so an interrupted or repeated calibration reuses
every campaign already run. One parameter is searched with ``minimize_scalar`` (bounded,
in log space), two with Nelder-Mead (log space), each within ``max_evals`` campaigns.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rramsim.devices import DeviceTable

#: Parameters that can be fitted, with their search bounds.
BOUNDS = {"tolerance": (0.005, 0.45), "scale": (0.05, 8.0)}
#: First Nelder-Mead steps, in ln of each parameter (a factor 2).
SIMPLEX_STEP = float(np.log(2.0))


@dataclass
class Target:
    """Per-level standard deviation of the reached conductance to match (S)."""

    targets: np.ndarray
    sigma: np.ndarray
    label: str


def target_from_table(table: DeviceTable, label: str) -> Target:
    return Target(table.targets.copy(), table.g_final.std(axis=1), label)


def target_from_reference(name: str, time: float | None, targets: np.ndarray | None) -> Target:
    """The middle of a published band at ``targets`` (default: 4 levels over its window)."""
    from rramsim.cosim.references import reference
    ref = reference(name)
    time = min(ref.times) if time is None else time
    if targets is None:
        lo, hi = ref.window
        targets = np.linspace(max(lo, hi / 4), hi, 4)
    targets = np.asarray(targets, dtype=float)
    inside = ref.inside(targets)
    if not inside.all():
        raise ValueError(f"targets {', '.join(f'{t * 1e6:g}u' for t in targets[~inside])} lie outside the "
                         f"{name} window ({ref.window[0] * 1e6:g}-{ref.window[1] * 1e6:g} uS)")
    lo, hi = ref.band(targets, time)
    return Target(targets, (lo + hi) / 2, f"{name} at t = {time:g} s")


def rms_error(reached: np.ndarray, target: np.ndarray) -> float:
    return float(np.sqrt(np.mean((reached / target - 1) ** 2)))


@dataclass
class Calibration:
    """The result: fitted parameters, the final table and every campaign run."""

    params: dict[str, float]
    table: DeviceTable
    error: float
    history: list[dict]


def calibrate(target: Target, model, variability, scheme, fit=("tolerance",), n_devices: int = 20, seed: int = 0,
              max_evals: int = 12, workdir: str | Path = "calibration", workers: int | None = None,
              progress: bool = True, log=print) -> Calibration:
    """Fit ``fit`` (names in :data:`BOUNDS`) so the built-in ``model`` reaches ``target``."""
    unknown = [f for f in fit if f not in BOUNDS]
    if unknown or not fit:
        raise ValueError(f"--fit takes names from {', '.join(BOUNDS)}, got {', '.join(fit) or 'none'}")
    if max_evals < 1:
        raise ValueError(f"max_evals must be >= 1, got {max_evals}")
    from scipy.optimize import minimize, minimize_scalar

    from rramsim.cosim.characterize import Characterization, characterize
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    start = {"tolerance": float(scheme.tolerance), "scale": 1.0}
    history: list[dict] = []
    tables: dict[str, DeviceTable] = {}

    def params_of(x) -> dict[str, float]:
        p = dict(start)
        for name, v in zip(fit, np.atleast_1d(x)):
            lo, hi = BOUNDS[name]
            p[name] = float(np.clip(np.exp(v), lo, hi))
        return {k: float(f"{v:.4g}") for k, v in p.items()}

    def run(p: dict[str, float]) -> DeviceTable:
        key = f"tol{p['tolerance']:.4g}_scale{p['scale']:.4g}_n{n_devices}_seed{seed}"
        path = workdir / f"{key}.h5"
        if path.exists():
            return DeviceTable.load(path)
        spec = Characterization.builtin(model, variability=variability.scaled(p["scale"]),
                                        scheme=dataclasses.replace(scheme, tolerance=p["tolerance"]),
                                        targets=target.targets, n_devices=n_devices, seed=seed, retention_time=0)
        table = characterize(spec, workers=workers, progress=False, command=f"rramsim calibrate ({key})")
        table.save(path)
        return table

    def objective(x) -> float:
        p = params_of(x)
        key = json.dumps(p, sort_keys=True)
        if key not in tables:
            tables[key] = run(p)
        err = rms_error(tables[key].g_final.std(axis=1), target.sigma)
        history.append({**p, "rms": err})
        if progress:
            log(f"  campaign {len(history)}: " + " ".join(f"{k} {v:.4g}" for k, v in p.items()) + f"  RMS {100 * err:.1f}%")
        return err

    x0 = np.log([start[name] for name in fit])
    if len(fit) == 1:
        lo, hi = (np.log(b) for b in BOUNDS[fit[0]])
        minimize_scalar(objective, bounds=(lo, hi), method="bounded", options={"maxiter": max_evals, "xatol": 0.03})
    else:
        simplex = np.vstack([x0, x0 + SIMPLEX_STEP * np.eye(len(fit))])   # steps of a factor 2 in each
        minimize(objective, x0, method="Nelder-Mead",
                 options={"maxfev": max_evals, "xatol": 0.03, "fatol": 0.005, "initial_simplex": simplex})
    best = min(history, key=lambda h: h["rms"])
    params = {k: best[k] for k in ("tolerance", "scale")}
    table = tables[json.dumps(params, sort_keys=True)]
    (workdir / "history.json").write_text(json.dumps(history, indent=1) + "\n")
    return Calibration(params, table, best["rms"], history)


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
        target = target_from_table(DeviceTable.load(args.target), args.target)
        if args.targets is not None:
            raise ValueError("--targets is for --reference; a target table brings its own levels")
    else:
        target = target_from_reference(args.reference, args.time, args.targets)
    model, variability = preset(args.preset)
    scheme = ISPP(tolerance=args.tolerance)
    fit = tuple(f.strip() for f in args.fit.split(",") if f.strip())
    if not fit or any(f not in BOUNDS for f in fit):
        raise ValueError(f"--fit takes names from {', '.join(BOUNDS)}, got {args.fit!r}")
    print(f"calibrating preset {args.preset} ({', '.join(fit)}) to {target.label}: {target.targets.size} levels, "
          f"{args.devices} devices per campaign, at most {args.max_evals} campaigns (kept in {args.workdir or str(out) + '.calib'})")
    result = calibrate(target, model, variability, scheme, fit=fit, n_devices=args.devices, seed=args.seed,
                       max_evals=args.max_evals, workdir=args.workdir or str(out) + ".calib", workers=args.workers,
                       progress=not args.quiet)
    result.table.provenance["command"] = "rramsim " + " ".join(shlex.quote(a) for a in args.argv)
    result.table.provenance["calibrated_to"] = target.label
    result.table.save(out)
    spec = {"preset": args.preset, "variability": variability.scaled(result.params["scale"]).to_dict(),
            "tolerance": result.params["tolerance"], "scale": result.params["scale"],
            "target": target.label, "rms_relative_error": result.error}
    side = out.with_suffix(".variability.json")
    side.write_text(json.dumps(spec, indent=1) + "\n")
    reached = result.table.g_final.std(axis=1)
    print("level  target[uS]  sigma target[uS]  sigma reached[uS]  error")
    for k, t in enumerate(target.targets):
        print(f"{k:5d}  {t * 1e6:10.2f}  {target.sigma[k] * 1e6:16.3f}  {reached[k] * 1e6:17.3f}  "
              f"{100 * (reached[k] / target.sigma[k] - 1):+5.1f}%")
    print(f"RMS relative error {100 * result.error:.1f}% with tolerance {result.params['tolerance']:.4g}, "
          f"variability scale {result.params['scale']:.4g}")
    print(f"wrote {out} and {side}")
    return 0


def add_commands(sub) -> None:
    from rramsim.cosim.argtypes import number, positive_int, targets
    from rramsim.cosim.references import REFERENCES
    from rramsim.devices import PRESETS

    c = sub.add_parser("calibrate", help="fit the built-in model's programming spread to a table or a published fit")
    c.add_argument("--target", metavar="TABLE.h5", help="measured (or any) device table to match")
    c.add_argument("--reference", choices=sorted(REFERENCES), help="published sigma(G) to match")
    c.add_argument("--time", type=number, help="with --reference: the fit's time after programming (s)")
    c.add_argument("--targets", type=targets, help="with --reference: levels (LO:HI:COUNT), inside its window")
    c.add_argument("--preset", default="hfox", choices=sorted(PRESETS))
    c.add_argument("--fit", default="tolerance", help=f"parameters to fit, comma list of {', '.join(BOUNDS)}")
    c.add_argument("--tolerance", type=float, default=0.05, help="starting write-verify tolerance")
    c.add_argument("--devices", type=positive_int, default=20, help="devices per campaign")
    c.add_argument("--max-evals", type=positive_int, default=12, help="most campaigns to run")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--workers", type=positive_int, default=2)
    c.add_argument("--workdir", help="where campaigns are kept (default OUTPUT.calib; reused on a rerun)")
    c.add_argument("-o", "--output", required=True, help="the calibrated table (HDF5); the spec goes beside it")
    c.add_argument("-q", "--quiet", action="store_true")
    c.set_defaults(func=cmd_calibrate)
