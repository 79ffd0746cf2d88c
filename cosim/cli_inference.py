"""CLI commands for datasets, training and crossbar-aware evaluation.

``add_commands(subparsers)`` registers, on the ``rramsim`` argparse parser:

- ``data fetch {mnist,fashion-mnist}``   -> :func:`cmd_data_fetch`
- ``train``                              -> :func:`cmd_train`
- ``evaluate``                           -> :func:`cmd_evaluate`
- ``plot accuracy``                      -> :func:`cmd_plot_accuracy`

Each subparser sets ``func`` to a handler that takes the argparse namespace and returns an
int exit code (0, or 1 with one error line: :mod:`rramsim.cosim.cli_common`). The model
work lives in :mod:`rramsim.models` (training, trials, checkpoints), the figure in
:mod:`rramsim.cosim.plots`. ``python -m rramsim.cosim.cli_inference ...`` runs them
stand-alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from rramsim.cosim.cli_common import EXIT_INTERRUPTED, command_line, dataset_names, fail, load_table, set_threads

__all__ = [
    "add_commands",
    "main",
    "cmd_data_fetch",
    "cmd_train",
    "cmd_evaluate",
    "cmd_plot_accuracy",
    "DEFAULT_CHECKPOINT",
    "hardware_effects",
]


#: the LeNet-5/MNIST checkpoint shipped with rramsim (package data of rramsim.models, which
#: lies beside rramsim.cosim both in a checkout and in an installed package)
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent.parent / "models" / "checkpoints" / "lenet5_mnist.pt"


def _crossbar_config(args: argparse.Namespace, **overrides: Any):
    """A CrossbarConfig from the layer package with the CLI's overrides applied."""
    from rramsim.models import CrossbarConfig

    cfg = CrossbarConfig()
    changes = {}
    if getattr(args, "adc_bits", None) is not None:
        changes["adc_bits"] = int(args.adc_bits)
    if getattr(args, "drift", None) is not None:
        changes["drift_time"] = float(args.drift)
    if getattr(args, "ir_drop", None) is not None:
        changes["ir_drop"] = args.ir_drop
    if getattr(args, "wire_resistance", None) is not None:
        changes["wire_resistance"] = float(args.wire_resistance)
    if getattr(args, "cell_iv", None) is not None:
        changes["nonlinear_iv"] = args.cell_iv == "table"
    changes.update(overrides)
    names = {f.name for f in dataclasses.fields(cfg)}
    for k in changes:
        if k not in names:
            raise ValueError(f"CrossbarConfig has no field {k!r}")
    return dataclasses.replace(cfg, **changes)


# --------------------------------------------------------------------------- handlers


def cmd_data_fetch(args: argparse.Namespace) -> int:
    """``rramsim data fetch NAME``: put a dataset into the data root (when it is missing, or
    again with ``--force``)."""
    from rramsim.cosim import data_fetch
    from rramsim.models import data

    try:
        there = data.is_available(args.dataset, args.root) and not args.force
        folder = data.dataset_dir(args.dataset, args.root) if there else data_fetch.fetch(args.dataset, root=args.root)
    except (data.DatasetError, ValueError) as exc:
        return fail(args, str(exc))
    print(f"{args.dataset}: ready in {folder}" + (" (already there; --force fetches it again)" if there else ""))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """``rramsim train``: float or hardware-aware training; writes a checkpoint."""
    import torch

    from rramsim.cosim import data_fetch
    from rramsim.models import data
    from rramsim.models.networks import build_network, canonical_name
    from rramsim.models.training import evaluate, load_checkpoint, save_checkpoint

    try:
        set_threads(args.threads)
        network = canonical_name(args.network)
        physics = [f for f in ("ir_drop", "wire_resistance", "cell_iv") if getattr(args, f, None) is not None]
        if physics and (not args.hw_aware or args.noise is not None):
            flags = ", ".join("--" + f.replace("_", "-") for f in physics)
            raise ValueError(
                f"{flags} set the crossbars of --hw-aware training through the crossbar layers; "
                "without --hw-aware, or with --noise, no crossbar is simulated: drop them"
            )
        if args.epochs <= 0:
            raise ValueError(f"--epochs must be positive, got {args.epochs}")
        if args.fetch:
            data_fetch.ensure(args.dataset)
        train_loader = data.get_loader(
            args.dataset, "train", batch_size=args.batch_size, subset=args.subset, seed=args.seed
        )
        test_loader = data.get_loader(args.dataset, "test", batch_size=1000, subset=args.test_subset, seed=args.seed)
        torch.manual_seed(args.seed)
        if args.init:
            model, meta = load_checkpoint(args.init)
            if meta["network"] != network:
                raise ValueError(f"--init checkpoint holds {meta['network']}, not {network}")
        else:
            model = build_network(network, num_classes=data.DATASETS[args.dataset].num_classes)
        extra: dict[str, Any] = {"epochs": args.epochs, "lr": args.lr, "seed": args.seed}
        hist = _train(args, model, network, train_loader, test_loader, extra)
        acc = evaluate(model, test_loader)
        extra.update(train_seconds=round(hist.seconds, 1), epochs_done=args.epochs, finished=True)
        out = save_checkpoint(
            args.output, model, network, dataset=args.dataset, accuracy=acc, command=command_line(args), extra=extra
        )
    except (data.DatasetError, ValueError, FileNotFoundError, FloatingPointError) as exc:
        return fail(args, str(exc))
    except KeyboardInterrupt:
        print(f"\ninterrupted; finished epochs (if any) are in {args.output}", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"{network} on {args.dataset}: float test accuracy {100 * acc:.2f} % ({hist.seconds:.0f} s); saved {out}")
    return 0


def _train(args, model, network: str, train_loader, test_loader, extra: dict):
    """Float training, or hardware-aware: through the converted crossbar layers of the table
    (default) or with a relative weight noise (``--noise``)."""
    from rramsim.models import convert_to_analog
    from rramsim.models.training import copy_trained_weights, save_checkpoint, train

    def save_epoch(epoch, trained, hist, analog=False):
        # an interrupted run keeps its finished epochs in the output checkpoint
        if analog:
            copy_trained_weights(trained, model)
        acc_e = hist.test_accuracy[-1] if hist.test_accuracy else None
        save_checkpoint(
            args.output,
            model,
            network,
            dataset=args.dataset,
            accuracy=acc_e,
            command=command_line(args),
            extra=dict(extra, epochs_done=epoch, finished=False),
        )

    common = dict(epochs=args.epochs, lr=args.lr, seed=args.seed, augment_shift=args.shift, progress=not args.quiet)
    if not args.hw_aware:
        return train(model, train_loader, test_loader=test_loader, on_epoch_end=save_epoch, **common)
    if args.noise is None:
        table, config = load_table(args.table)[0], _crossbar_config(args)
        print("hardware-aware training through the converted crossbar layers", file=sys.stderr)
        for line in hardware_effects(config, table)[:2]:
            print(f"  {line}", file=sys.stderr)
        if config.ir_drop == "exact":
            print("  (training forwards use the approximate IR drop, evaluation the exact one)", file=sys.stderr)
        extra["hw_aware"] = "analog layers"
        extra["crossbar_config"] = config.to_dict()
        analog = convert_to_analog(model, table, config)
        hist = train(analog, train_loader, on_epoch_end=lambda e, m, h: save_epoch(e, m, h, analog=True), **common)
        copy_trained_weights(analog, model)
        return hist
    if args.table:
        raise ValueError("--noise gives the weight noise itself and --table would not be used: give one of them")
    noise = args.noise
    print(f"hardware-aware training with relative weight noise {noise:.4f}", file=sys.stderr)
    extra["hw_aware"] = f"weight noise {noise:.6g}"
    return train(model, train_loader, weight_noise=noise, test_loader=test_loader, on_epoch_end=save_epoch, **common)


def hardware_effects(config, table, ir_drop_error: float | None = None, ir_drop_fallback=()) -> list[str]:
    """Which hardware effects an evaluation with ``config`` on ``table`` simulates, and
    which it leaves out (one line each). ``ir_drop_error``/``ir_drop_fallback``: what the
    run's per-programming IR-drop models measured (:class:`~rramsim.models.training.TrialsResult`)."""
    c = config
    on, off = [], []
    if c.ideal_programming:
        off.append("programming spread (ideal_programming: every cell at its level's target)")
        off.append("stuck cells (ideal_programming)")
    else:
        on.append("programming spread (the table's write-verify outcomes, one draw per cell)")
        if "converged" in getattr(table, "unmeasured", set()):
            stuck = "stuck cells: the table does not record convergence (none from it)"
        else:
            failed = 1 - float(table.converged.mean())
            stuck = (
                f"stuck cells: {100 * failed:.3g}% of the table's writes did not converge"
                if failed
                else "stuck cells: none from the table (all its writes converged)"
            )
        if c.stuck_on or c.stuck_off:
            stuck += f", plus stuck_on {c.stuck_on:g} / stuck_off {c.stuck_off:g} per cell"
        on.append(stuck)
        if getattr(table, "array", None) is not None:
            from rramsim.models.array_effects import describe

            on.append(describe(table.array))
        else:
            off.append(
                "programming inside an array (the table has no /array group: write disturb and "
                "position-dependent cost left out; rramsim characterize-array adds it)"
            )
    if c.read_noise != "off" and not (table.read_sigma > 0).any():
        off.append("read noise (the table has none: its device had no read-noise source)")
    else:
        per_vector = c.ir_drop == "exact" and c.nonlinear_iv and c.ir_drop_solver == "per_vector"
        if c.read_noise == "per_forward" and (per_vector or ir_drop_fallback):
            where = "every layer" if per_vector else ", ".join(ir_drop_fallback)
            on.append(f"read noise (per_forward; per read in the layers solved per vector: {where})")
        else:
            (off if c.read_noise == "off" else on).append(f"read noise ({c.read_noise})")
    no_iv = not table.has_iv
    if c.nonlinear_iv and not no_iv:
        on.append("I-V nonlinearity (the table's I-V, a cubic per level)")
    else:
        off.append("I-V nonlinearity (" + ("the table has no I-V data: " if no_iv else "") + "cells linear, Ohm's law)")
    (off if c.ir_drop == "off" else on).append(
        "IR drop"
        if c.ir_drop == "off"
        else f"IR drop ({c.ir_drop}, {c.wire_resistance:g} ohm per wire segment"
        + (
            _model_error_note(ir_drop_error, ir_drop_fallback)
            if c.ir_drop == "exact" and c.nonlinear_iv and c.ir_drop_solver == "per_programming"
            else ")"
        )
    )
    if (getattr(table, "model", None) or {}).get("cell") == "1T1R":
        off.append(
            "the 1T1R access transistor's source rising with the column wire (the table's conductances and I-V "
            "were measured on the 1T1R cell with its source at 0 V, so the transistor's series resistance is in "
            "them; `rramsim validate array` puts what is left at 0.02-0.1% of a column current at 8x8-64x64 with "
            "the table's I-V and exact IR drop)"
        )
    if c.drift_time > 0:
        on.append(
            f"drift ({c.drift_time:g} s after programming, "
            + (
                "the table's retention data)"
                if getattr(table, "has_retention", False)
                else f"power law nu {c.drift_nu:g} +- {c.drift_nu_std:g})"
            )
        )
    else:
        off.append("drift (evaluated right after programming)")
    (off if c.dac_bits is None else on).append(
        "DAC quantization (ideal inputs)"
        if c.dac_bits is None
        else f"DAC {c.dac_bits} bits" + (" bit-serial" if c.bit_serial else "")
    )
    (off if c.adc_bits is None else on).append(
        "ADC quantization (ideal outputs)"
        if c.adc_bits is None
        else f"ADC {c.adc_bits} bits, full scale {c.adc_range:g} of a column's worst case"
    )
    return [
        f"hardware on:  {'; '.join(on) or 'nothing'}",
        f"hardware off: {'; '.join(off) or 'nothing'}",
        f"crossbars: {c.tile_rows}x{c.tile_cols} tiles, mapping {c.mapping}, {c.weight_scaling} weight scaling",
    ]


def _model_error_note(error: float | None, fallback) -> str:
    if error is None:
        return (
            ", per-programming model of the cells: its error against the exact solve is measured at "
            "programming, per layer in engine.ir_drop_error; a layer over 0.1% of full scale uses the per-vector "
            "solve)"
        )
    note = (
        f", per-programming model of the cells: at most {100 * error:.2g}% of a tile's full-scale "
        "current off the exact solve on its probe vectors"
    )
    if fallback:
        note += f"; over 0.1%, so solved per vector: {', '.join(fallback)}"
    return note + ")"


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``rramsim evaluate``: accuracy mean ± std over K programmings, float, cost."""
    from rramsim.models import data
    from rramsim.models.training import CheckpointError, evaluate_trials

    try:
        set_threads(args.threads)
        if args.trials <= 0:
            raise ValueError(f"--trials must be positive, got {args.trials}")
        config = _crossbar_config(args)  # validates --adc-bits and --drift for both simulators
        model, meta, dataset, loader, table = _test_setup(args)
        if args.simulator == "aihwkit":
            if (
                args.ir_drop in ("exact", "approx")
                or args.cell_iv == "table"
                or (args.wire_resistance is not None and args.ir_drop != "off")
            ):
                raise ValueError(
                    "--simulator aihwkit runs the tiles without rramsim's IR-drop and cell I-V models: "
                    "drop --ir-drop/--wire-resistance/--cell-iv (or use --simulator rramsim)"
                )
            return _evaluate_in_aihwkit(args, config, model, meta, dataset, loader, table)
        res = evaluate_trials(
            model, table, config, loader, trials=args.trials, drift=args.drift, seed=args.seed, progress=not args.quiet
        )
    except (CheckpointError, data.DatasetError, ValueError, FileNotFoundError) as exc:
        return fail(args, str(exc))
    n = len(loader.dataset)
    print(
        f"model {meta['network']} ({args.model or DEFAULT_CHECKPOINT}), {dataset} test "
        f"set ({n} images), {args.trials} programmings, drift {res.drift:g} s"
        + (f", {args.adc_bits}-bit ADC" if args.adc_bits is not None else "")
    )
    print(
        f"accuracy  {100 * res.mean:.2f} ± {100 * res.std:.2f} %   "
        f"(float {100 * res.float_accuracy:.2f} %, drop {100 * res.drop:.2f} pp)"
    )
    effects = hardware_effects(
        res.config if res.config is not None else config, table, res.ir_drop_error, res.ir_drop_fallback
    )
    print("\n".join(effects))
    print(f"\n{res.conversion}")
    print(f"\n{res.cost}")
    return 0


def _evaluate_in_aihwkit(args, config, model, meta, dataset, loader, table) -> int:
    """``rramsim evaluate --simulator aihwkit``: the same network and table inside IBM aihwkit."""
    import numpy as np

    from rramsim.models.aihwkit_noise import evaluate_in_aihwkit
    from rramsim.models.training import evaluate

    adc_bits, dac_bits = config.adc_bits, config.dac_bits
    try:
        acc = evaluate_in_aihwkit(
            model,
            table,
            loader,
            trials=args.trials,
            drift=config.drift_time,
            seed=args.seed,
            adc_bits=adc_bits,
            dac_bits=dac_bits,
            progress=not args.quiet,
        )
    except (ImportError, ValueError) as exc:
        return fail(args, str(exc))
    float_acc = evaluate(model, loader)
    acc = np.asarray(acc)
    std = acc.std(ddof=1) if acc.size > 1 else 0.0
    print(
        f"model {meta['network']} ({args.model or DEFAULT_CHECKPOINT}), {dataset} test set "
        f"({len(loader.dataset)} images), {args.trials} programmings inside aihwkit, drift {config.drift_time:g} s"
    )
    print(
        f"accuracy  {100 * acc.mean():.2f} ± {100 * std:.2f} %   "
        f"(float {100 * float_acc:.2f} %, drop {100 * (float_acc - acc.mean()):.2f} pp)"
    )
    print(
        f"aihwkit TorchInferenceRPUConfig: the table's programming, read noise and retention "
        f"(rramsim.models.aihwkit_noise), {_bits(dac_bits)} inputs, {_bits(adc_bits)} outputs, column weight scaling per 128-row tile (rramsim: per output), "
        "128x128 tiles; Ohmic cells, no IR drop (rramsim's defaults simulate both), weight/output noise, "
        "clipping and drift compensation off"
    )
    return 0


def _physics(c) -> str:
    """The cells' I-V and the wires of a config, in a few words."""
    cells = "the table's I-V" if c.nonlinear_iv else "Ohmic cells"
    wires = "no IR drop" if c.ir_drop == "off" else f"{c.ir_drop} IR drop at {c.wire_resistance:g} ohm/segment"
    return f"{cells}, {wires}"


def _bits(bits) -> str:
    return "ideal" if bits is None else f"{bits}-bit"


def _floats(text: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc
    if not vals:
        raise argparse.ArgumentTypeError("expected at least one number")
    return vals


def _ints(text: str) -> list[int]:
    vals = _floats(text)
    if any(v != int(v) or v <= 0 for v in vals):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return [int(v) for v in vals]


def cmd_plot_accuracy(args: argparse.Namespace) -> int:
    """``rramsim plot accuracy``: accuracy versus drift time and versus ADC bits (PNG)."""
    from rramsim.cosim.plots import plot_accuracy
    from rramsim.models import data
    from rramsim.models.training import CheckpointError, evaluate_trials

    try:
        set_threads(args.threads)
        model, meta, dataset, loader, table = _test_setup(args)
        drift_res, adc_res = [], []
        for t in args.drifts:
            cfg = _crossbar_config(args, drift_time=float(t))
            drift_res.append(
                evaluate_trials(model, table, cfg, loader, trials=args.trials, seed=args.seed, progress=not args.quiet)
            )
        for b in args.adc_bits_list:
            cfg = _crossbar_config(args, adc_bits=int(b), drift_time=0.0)
            adc_res.append(
                evaluate_trials(model, table, cfg, loader, trials=args.trials, seed=args.seed, progress=not args.quiet)
            )
        float_acc = (drift_res or adc_res)[0].float_accuracy
        out = plot_accuracy(
            args.drifts,
            drift_res,
            args.adc_bits_list,
            adc_res,
            float_acc,
            f"{meta['network']} / {dataset}, {args.trials} programmings per point, {_physics(cfg)}",
            args.output,
        )
    except (CheckpointError, data.DatasetError, ValueError, FileNotFoundError) as exc:
        return fail(args, str(exc))
    print(f"crossbars: {_physics(cfg)}")
    for t_, r in zip(args.drifts, drift_res):
        print(f"drift {t_:>10g} s: {100 * r.mean:.2f} ± {100 * r.std:.2f} %")
    for b, r in zip(args.adc_bits_list, adc_res):
        print(f"ADC {b:>2d} bits:    {100 * r.mean:.2f} ± {100 * r.std:.2f} %")
    print(f"float: {100 * float_acc:.2f} %; wrote {out}")
    return 0


# --------------------------------------------------------------------------- parser


def _add_physics(p: argparse.ArgumentParser) -> None:
    """The crossbar physics flags (the wires and the cells' I-V) of the commands that build crossbars."""
    p.add_argument(
        "--ir-drop",
        choices=("exact", "approx", "off"),
        default=None,
        help="wire IR drop in the tiles (default exact: the nodal solution, per-programming model)",
    )
    p.add_argument(
        "--wire-resistance", type=float, default=None, metavar="OHM", help="ohm per wire segment (default 1)"
    )
    p.add_argument(
        "--cell-iv",
        choices=("table", "linear"),
        default=None,
        help="cells follow the table's I-V (default) or Ohm's law at their read conductance; "
        "--ir-drop off --cell-iv linear is the fast idealization (6-23%% off ngspice at 8x8-64x64)",
    )


def _add_common_eval(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        metavar="CKPT",
        default=None,
        help="checkpoint from `rramsim train` (default: the shipped LeNet-5/MNIST)",
    )
    p.add_argument(
        "--table", metavar="FILE", default=None, help="DeviceTable HDF5 file (default: the shipped default table)"
    )
    p.add_argument(
        "--dataset", choices=dataset_names(), default=None, help="test set (default: the checkpoint's dataset)"
    )
    p.add_argument("--trials", type=int, default=10, metavar="K", help="independent programmings (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--subset",
        type=int,
        default=None,
        metavar="N",
        help="evaluate on a seeded random N-image subset of the test set",
    )
    _add_physics(p)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--no-fetch", dest="fetch", action="store_false", help="do not fetch a missing dataset")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def _group(subparsers, name: str, help: str, dest: str):
    """The sub-subparsers of command group ``name``, reusing one already registered.

    ``rramsim plot`` may already exist (e.g. characterization plots): then ``accuracy`` is
    added beside its other plot kinds instead of clashing with it.
    """
    parser = subparsers.choices.get(name)
    if parser is None:
        parser = subparsers.add_parser(name, help=help)
    for action in parser._actions:  # argparse keeps sub-subparsers as an action
        if isinstance(action, argparse._SubParsersAction):
            return action
    group = parser.add_subparsers(dest=dest, metavar="KIND")
    group.required = True
    return group


def _test_setup(args):
    """The checkpoint, its dataset and test-set loader, and the device table named by ``args``."""
    from rramsim.models import data
    from rramsim.models.training import load_checkpoint

    model, meta = load_checkpoint(args.model or DEFAULT_CHECKPOINT)
    dataset = args.dataset or meta.get("dataset") or "mnist"
    if args.fetch:
        from rramsim.cosim import data_fetch

        data_fetch.ensure(dataset)
    loader = data.get_loader(dataset, "test", batch_size=args.batch_size, subset=args.subset, seed=args.seed)
    return model, meta, dataset, loader, load_table(args.table)[0]


def add_commands(subparsers) -> None:
    """Register ``data``, ``train``, ``evaluate`` and ``plot`` on an argparse subparsers."""
    from rramsim.models import NETWORK_NAMES  # without torch: the parser stays fast

    # data fetch
    data_sub = _group(subparsers, "data", "datasets (MNIST, Fashion-MNIST)", "data_command")
    p_fetch = data_sub.add_parser("fetch", help="fetch a dataset into $RRAMSIM_DATA (default ~/.cache/rramsim)")
    p_fetch.add_argument("dataset", choices=dataset_names())
    p_fetch.add_argument("--root", default=None, help="data root (default: $RRAMSIM_DATA or ~/.cache/rramsim)")
    p_fetch.add_argument("--force", action="store_true", help="fetch it again even when it is there")
    p_fetch.set_defaults(func=cmd_data_fetch)

    # train
    p_train = subparsers.add_parser("train", help="train a network (float or hardware-aware)")
    p_train.add_argument("--network", default="lenet5", choices=[*NETWORK_NAMES, "lenet", "resnet"])
    p_train.add_argument("--dataset", default="mnist", choices=dataset_names())
    p_train.add_argument("--epochs", type=int, default=10)
    p_train.add_argument("--batch-size", type=int, default=128)
    p_train.add_argument("--lr", type=float, default=3e-3, help="peak Adam learning rate (OneCycle schedule)")
    p_train.add_argument("--shift", type=int, default=2, help="random translation augmentation in pixels (0: off)")
    p_train.add_argument("--hw-aware", action="store_true", help="inject the device table's noise while training")
    p_train.add_argument(
        "--table", metavar="FILE", default=None, help="DeviceTable for --hw-aware (default: the shipped table)"
    )
    p_train.add_argument(
        "--noise",
        type=float,
        default=None,
        help="with --hw-aware: relative weight noise instead of the crossbar "
        "layers (default: train through the converted layers)",
    )
    p_train.add_argument("--adc-bits", type=int, default=None, help="with --hw-aware: ADC bits of the crossbar config")
    _add_physics(p_train)  # with --hw-aware --table: the crossbars trained through
    p_train.add_argument("--init", metavar="CKPT", default=None, help="start from this checkpoint (fine-tuning)")
    p_train.add_argument(
        "--subset", type=int, default=None, metavar="N", help="train on a seeded random N-image subset"
    )
    p_train.add_argument("--test-subset", type=int, default=None, metavar="N")
    p_train.add_argument("--seed", type=int, default=0)
    p_train.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p_train.add_argument("--no-fetch", dest="fetch", action="store_false", help="do not fetch a missing dataset")
    p_train.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p_train.add_argument("-o", "--output", metavar="CKPT", required=True)
    p_train.set_defaults(func=cmd_train, drift=None)

    # evaluate
    p_eval = subparsers.add_parser("evaluate", help="accuracy over K programmings on crossbars, float accuracy, costs")
    _add_common_eval(p_eval)
    p_eval.add_argument(
        "--drift", type=float, default=None, metavar="T", help="drift time in seconds after programming"
    )
    p_eval.add_argument("--adc-bits", type=int, default=None, help="ADC resolution")
    p_eval.add_argument(
        "--simulator",
        choices=("rramsim", "aihwkit"),
        default="rramsim",
        help="run the network on rramsim's crossbars (default) or inside IBM aihwkit with "
        "the table as its device model (needs aihwkit: make aihwkit)",
    )
    p_eval.set_defaults(func=cmd_evaluate)

    # plot accuracy
    plot_sub = _group(subparsers, "plot", "plots", "plot_command")
    p_acc = plot_sub.add_parser("accuracy", help="accuracy versus drift time and ADC bits (PNG)")
    _add_common_eval(p_acc)
    p_acc.set_defaults(trials=3)
    p_acc.add_argument(
        "--drifts",
        type=_floats,
        default=[0.0, 1e2, 1e4, 1e6, 1e8],
        help="comma-separated drift times in s (default 0,1e2,1e4,1e6,1e8)",
    )
    p_acc.add_argument(
        "--adc-bits",
        dest="adc_bits_list",
        type=_ints,
        default=[3, 4, 5, 6, 7, 8],
        help="comma-separated ADC resolutions (default 3,4,5,6,7,8)",
    )
    p_acc.add_argument("-o", "--output", default="accuracy.png", help="PNG file")
    p_acc.set_defaults(func=cmd_plot_accuracy, adc_bits=None, drift=None)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m rramsim.cosim.cli_inference``."""
    parser = argparse.ArgumentParser(prog="rramsim")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    add_commands(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("rramsim: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as exc:
        return fail(args, str(exc))


if __name__ == "__main__":
    sys.exit(main())
