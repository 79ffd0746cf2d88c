"""Training, evaluation, checkpoints, Monte Carlo trials and the inference CLI."""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from rramsim.devices import DeviceTable
from rramsim.models import data
from rramsim.models.networks import build_network
from rramsim.models.training import (
    CheckpointError,
    TensorBatches,
    evaluate,
    evaluate_trials,
    load_checkpoint,
    noise_from_table,
    random_shift,
    save_checkpoint,
    train,
)

SHIPPED = Path(__file__).resolve().parent.parent / "models" / "checkpoints" / "lenet5_mnist.pt"


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def mnist():
    data.ensure_dataset("mnist")
    return data.data_root()


def small_table(rel_sigma: float = 0.02, seed: int = 0) -> DeviceTable:
    """A plausible 16-level table (1-100 uS) built in memory for the tests."""
    rng = np.random.default_rng(seed)
    targets = np.linspace(1e-6, 100e-6, 16)
    n = 64
    g_final = targets[:, None] * (1 + rel_sigma * rng.standard_normal((16, n)))
    v = np.linspace(-0.3, 0.3, 7)
    return DeviceTable(
        targets=targets,
        g_final=np.abs(g_final),
        pulses=rng.integers(3, 20, (16, n)),
        energy=np.full((16, n), 2e-12),
        time=np.full((16, n), 1e-6),
        converged=np.ones((16, n), bool),
        scheme=dict(
            scheme="ispva",
            v_start=0.5,
            v_step=0.05,
            v_max=2.0,
            pulse_width=1e-7,
            read_voltage=0.2,
            tolerance=0.05,
            max_pulses=50,
        ),
        read_g=targets,
        read_sigma=0.01 * targets,
        iv_v=v,
        iv_current=targets[:, None] * v[None, :],
    )


def _loaders(n_train=2048, n_test=1000, seed=0):
    return (
        data.get_loader("mnist", "train", batch_size=64, subset=n_train, seed=seed),
        data.get_loader("mnist", "test", batch_size=500, subset=n_test, seed=0),
    )


# --------------------------------------------------------------------------- train/evaluate


def test_one_short_epoch_learns_and_is_reproducible(mnist):
    tr, te = _loaders()

    def run(seed):
        torch.manual_seed(seed)
        model = build_network("lenet5")
        hist = train(
            model,
            data.get_loader("mnist", "train", batch_size=64, subset=4096, seed=seed),
            epochs=1,
            seed=seed,
            augment_shift=1,
            test_loader=te,
            progress=False,
        )
        return model, hist

    m1, h1 = run(0)
    m2, h2 = run(0)
    m3, _ = run(1)
    assert h1.final_accuracy > 0.85, h1
    assert h1.final_accuracy == evaluate(m1, te)
    assert h1.loss == h2.loss
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    assert not torch.equal(m1.classifier[1].weight, m3.classifier[1].weight)


def test_hardware_aware_noise_injection_keeps_clean_weights(mnist):
    tr, te = _loaders(n_train=2048)
    torch.manual_seed(0)
    base = build_network("lenet5")
    clean, noisy = build_network("lenet5"), build_network("lenet5")
    clean.load_state_dict(base.state_dict())
    noisy.load_state_dict(base.state_dict())
    # lr tiny: the weights after training must stay next to the start. If noise leaked into
    # the stored weights they would be off by ~weight_noise * max|w| instead.
    train(clean, tr, epochs=1, lr=1e-9, seed=0, scheduler="none", progress=False)
    train(noisy, tr, epochs=1, lr=1e-9, seed=0, scheduler="none", weight_noise=0.2, progress=False)
    for a, b in zip(clean.parameters(), noisy.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    # with a real learning rate, noise changes the trajectory but the model still learns
    torch.manual_seed(0)
    m = build_network("lenet5")
    hist = train(m, tr, epochs=1, seed=0, weight_noise=0.05, test_loader=te, progress=False)
    assert hist.final_accuracy > 0.6
    with pytest.raises(ValueError, match="weight_noise"):
        train(m, tr, weight_noise=-1, progress=False)


def test_epoch_callback_keeps_finished_epochs(mnist, tmp_path):
    tr, te = _loaders(n_train=512)
    torch.manual_seed(0)
    m = build_network("lenet5")
    seen = []

    def on_epoch_end(epoch, model, hist):
        seen.append((epoch, len(hist.loss), len(hist.test_accuracy)))
        save_checkpoint(tmp_path / "e.pt", model, "lenet5", accuracy=hist.test_accuracy[-1])
        if epoch == 2:
            raise KeyboardInterrupt  # a user pressing Ctrl-C after the second epoch

    with pytest.raises(KeyboardInterrupt):
        train(m, tr, epochs=3, test_loader=te, progress=False, on_epoch_end=on_epoch_end)
    assert seen == [(1, 1, 1), (2, 2, 2)]
    saved, meta = load_checkpoint(tmp_path / "e.pt")
    assert meta["accuracy"] == evaluate(saved, te) == evaluate(m, te)


def test_train_and_evaluate_reject_bad_input(mnist):
    tr, _ = _loaders(n_train=64)
    m = build_network("lenet5")
    with pytest.raises(ValueError, match="epochs"):
        train(m, tr, epochs=0)
    with pytest.raises(ValueError, match="lr"):
        train(m, tr, lr=float("nan"))
    with pytest.raises(ValueError, match="scheduler"):
        train(m, tr, scheduler="cosine")
    with pytest.raises(ValueError, match="no examples"):
        evaluate(m, [])


def test_evaluate_counts_exactly():
    class Constant(nn.Module):
        def __init__(self):
            super().__init__()
            self.p = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            out = torch.zeros(x.shape[0], 10)
            out[:, 3] = 1
            return out

    y = torch.tensor([3, 3, 1, 3, 0, 3, 9, 3])
    loader = [(torch.zeros(5, 1, 28, 28), y[:5]), (torch.zeros(3, 1, 28, 28), y[5:])]
    assert evaluate(Constant(), loader) == 5 / 8


def test_tensor_batches_shuffle_each_pass_reproducibly():
    x, y = torch.arange(10.0)[:, None], torch.arange(10)
    b = TensorBatches(x, y, 4, seed=3)
    assert len(b) == 3
    first, second = [torch.cat([yb for _, yb in b]) for _ in range(2)]
    assert sorted(first.tolist()) == list(range(10)) and not torch.equal(first, second)
    again = TensorBatches(x, y, 4, seed=3)
    assert torch.equal(torch.cat([yb for _, yb in again]), first)
    ordered = [yb.tolist() for _, yb in TensorBatches(x, y, 4, shuffle=False)]
    assert ordered == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    with pytest.raises(ValueError, match="9 labels"):
        TensorBatches(x, y[:9])
    with pytest.raises(ValueError, match="batch_size"):
        TensorBatches(x, y, 0)


def test_train_hooks_add_a_loss_term_and_run_after_every_step():
    """``after_step`` runs once per optimizer step (after it); ``loss_term`` is optimized too."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 5, generator=g)
    y = (x[:, 0] > 0).long()
    calls = []

    def clamp(m):
        calls.append(float(m.weight.abs().max()))
        m.weight.clamp_(-0.0625, 0.0625)

    torch.manual_seed(0)
    model = nn.Linear(5, 2)
    res = train(model, TensorBatches(x, y, 32), epochs=2, lr=0.5, progress=False, after_step=clamp)
    assert len(calls) == 6 and len(res.loss) == 2
    assert max(calls) > 0.0625  # the step moved the weights past the bound ...
    assert float(model.weight.abs().max()) <= 0.0625  # ... and the hook brought them back
    torch.manual_seed(0)
    free, pulled = nn.Linear(5, 2), nn.Linear(5, 2)
    pulled.load_state_dict(free.state_dict())
    train(free, TensorBatches(x, y, 32), epochs=10, lr=0.02, scheduler="none", progress=False)
    train(
        pulled,
        TensorBatches(x, y, 32),
        epochs=10,
        lr=0.02,
        scheduler="none",
        progress=False,
        loss_term=lambda m: 100.0 * (m.weight**2).sum(),
    )
    assert float(pulled.weight.norm()) < 0.2 * float(free.weight.norm())


def test_random_shift_moves_digits_and_is_seeded():
    x = torch.zeros(4, 1, 28, 28)
    x[:, :, 14, 14] = 1
    a = random_shift(x, 2, torch.Generator().manual_seed(0))
    b = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == x.shape
    assert (a.sum(dim=(1, 2, 3)) == 1).all()  # one pixel each, moved by at most 2
    pos = a[:, 0].flatten(1).argmax(1)
    assert ((pos // 28 - 14).abs() <= 2).all() and ((pos % 28 - 14).abs() <= 2).all()
    assert random_shift(x, 0) is x


def test_noise_from_table_tracks_the_table_spread():
    lo, hi = noise_from_table(small_table(0.01)), noise_from_table(small_table(0.05))
    assert 0 < lo < hi
    # 5% programming spread on levels averaging ~50 uS over a ~99 uS window, plus read noise
    assert hi == pytest.approx(np.sqrt((0.05 * 50.5e-6) ** 2 + (0.01 * 50.5e-6) ** 2) / 99e-6, rel=0.15)


# --------------------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip_and_bad_files(tmp_path):
    torch.manual_seed(0)
    m = build_network("resnet-small")
    p = save_checkpoint(
        tmp_path / "sub" / "r.pt", m, "resnet", dataset="fashion-mnist", accuracy=0.9, command="rramsim train ..."
    )
    m2, meta = load_checkpoint(p)
    assert meta["network"] == "resnet-small" and meta["accuracy"] == 0.9
    assert meta["dataset"] == "fashion-mnist" and meta["command"] == "rramsim train ..."
    for k, v in m.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k])
    assert not list(tmp_path.glob("sub/*.part"))
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"state_dict": {}}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not an rramsim checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")
    ck = torch.load(p, weights_only=True)
    ck["format_version"] = 99
    torch.save(ck, tmp_path / "v99.pt")
    with pytest.raises(CheckpointError, match="version 99"):
        load_checkpoint(tmp_path / "v99.pt")
    ck["format_version"] = 1
    ck["network"] = "lenet5"
    torch.save(ck, tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match="does not fit lenet5"):
        load_checkpoint(tmp_path / "mismatch.pt")


def test_shipped_checkpoint_reaches_99_percent(mnist):
    assert SHIPPED.stat().st_size < 1_000_000
    model, meta = load_checkpoint(SHIPPED)
    assert meta["network"] == "lenet5" and meta["dataset"] == "mnist"
    assert meta["command"].startswith("rramsim train")
    acc = evaluate(model, data.get_loader("mnist", "test", batch_size=1000))
    assert acc >= 0.99
    assert acc == pytest.approx(meta["accuracy"], abs=1e-9)


# --------------------------------------------------------------------------- CLI


def cli(line: str) -> int:
    from rramsim.cosim.cli_inference import main

    return main(shlex.split(line))


def test_cli_train_writes_a_checkpoint(mnist, tmp_path, capsys):
    out = tmp_path / "m.pt"
    rc = cli(
        f"train --network lenet5 --dataset mnist --epochs 1 --subset 4096 --batch-size 64 "
        f"--test-subset 500 --seed 3 -q -o {out}"
    )
    assert rc == 0
    model, meta = load_checkpoint(out)
    assert meta["extra"]["seed"] == 3 and 0.5 < meta["accuracy"] <= 1
    assert meta["extra"]["finished"] is True and meta["extra"]["epochs_done"] == 1
    assert "--subset 4096" in meta["command"]
    assert "float test accuracy" in capsys.readouterr().out


def test_cli_bad_input_is_a_clear_error(tmp_path, capsys):
    # a command that fails exits 1 with one line naming the command; usage errors exit 2 (argparse)
    assert cli(f"train --epochs 0 -q -o {tmp_path / 'x.pt'}") == 1
    assert capsys.readouterr().err.startswith("rramsim train: error: --epochs must be positive")
    assert cli(f"evaluate --model {tmp_path / 'none.pt'} --table t.h5 -q") == 1
    assert "does not exist" in capsys.readouterr().err
    assert cli(f"train --hw-aware --noise 0.05 --table t.h5 -q -o {tmp_path / 'x.pt'}") == 1
    assert "give one of them" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli("train --network vgg -o x.pt")
    with pytest.raises(SystemExit):
        cli("data fetch cifar10")
    with pytest.raises(SystemExit):
        cli("plot accuracy --adc-bits 4,x")


def test_cli_data_fetch_mnist(tmp_path, capsys):
    assert cli(f"data fetch mnist --root {tmp_path}") == 0
    assert f"ready in {tmp_path / 'mnist'}" in capsys.readouterr().out


# --------------------------------------------------------------------------- trials


def _analog_api():
    from rramsim.models import CrossbarConfig

    return CrossbarConfig


def test_evaluate_trials_is_seeded_and_reports(mnist):
    CrossbarConfig = _analog_api()
    model, _ = load_checkpoint(SHIPPED)
    loader = data.get_loader("mnist", "test", batch_size=500, subset=500)
    table = small_table(0.02)
    cfg = CrossbarConfig.ohmic()  # the trials' seeding and reports (the physics is checked elsewhere)
    a = evaluate_trials(model, table, cfg, loader, trials=3, seed=5, progress=False)
    b = evaluate_trials(model, table, cfg, loader, trials=3, seed=5, progress=False)
    assert a.accuracies == b.accuracies and len(a.accuracies) == 3
    assert a.float_accuracy == evaluate(model, loader)
    assert a.float_accuracy - a.mean < 0.05  # 2% spread on 16 levels: a small drop
    assert a.std >= 0 and "±" in a.summary()
    assert a.cost is not None
    with pytest.raises(ValueError, match="trials"):
        evaluate_trials(model, table, cfg, loader, trials=0)
    with pytest.raises(ValueError, match="drift"):
        evaluate_trials(model, table, cfg, loader, trials=1, drift=-1)
    # the float model was not modified by the trials
    assert evaluate(model, loader) == a.float_accuracy


def test_cli_evaluate_and_plot(mnist, tmp_path, capsys):
    _analog_api()
    table = tmp_path / "t.h5"
    small_table(0.02).save(table)
    rc = cli(f"evaluate --model {SHIPPED} --table {table} --trials 2 --drift 100 --adc-bits 6 --subset 300 -q")
    assert rc == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "±" in out and "float 99." in out
    # the realistic default, named in the summary
    assert "I-V nonlinearity (the table" in out and "IR drop (exact, 1 ohm per wire segment, per-programming" in out
    err = float(out.split("per-programming model of the cells: at most ")[1].split("%")[0])
    assert 0 <= err < 0.1  # what this run's layers measured against the exact solve, under the 0.1% tolerance
    png = tmp_path / "acc.png"
    rc = cli(
        f"plot accuracy --model {SHIPPED} --table {table} --trials 1 --subset 200 "
        f"--drifts 0,1e4 --adc-bits 4,8 --ir-drop off --cell-iv linear -q -o {png}"
    )
    assert rc == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_full_lenet5_training_reaches_99_percent(mnist, tmp_path):
    rc = cli(f"train --network lenet5 --epochs 6 --seed 1 -q -o {tmp_path / 'l.pt'}")
    assert rc == 0
    _, meta = load_checkpoint(tmp_path / "l.pt")
    assert meta["accuracy"] >= 0.99


def test_add_commands_joins_an_existing_plot_group():
    import argparse

    from rramsim.cosim.cli_inference import add_commands, cmd_plot_accuracy

    parser = argparse.ArgumentParser(prog="rramsim")
    sub = parser.add_subparsers(dest="command")
    plot = sub.add_parser("plot").add_subparsers(dest="plot_command")
    plot.add_parser("programming").set_defaults(func=lambda a: 0)
    add_commands(sub)
    assert parser.parse_args(["plot", "programming"]).plot_command == "programming"
    args = parser.parse_args(["plot", "accuracy", "--drifts", "0,10", "--adc-bits", "4,6"])
    assert args.func is cmd_plot_accuracy and args.drifts == [0.0, 10.0]
    assert args.adc_bits_list == [4, 6]
    for line in (["data", "fetch", "mnist"], ["train", "-o", "x.pt"], ["evaluate"]):
        assert callable(parser.parse_args(line).func)


def test_cli_hardware_aware_training(mnist, tmp_path):
    table = tmp_path / "t.h5"
    small_table(0.05).save(table)
    out = tmp_path / "hw.pt"
    assert (
        cli(f"train --hw-aware --noise 0.05 --epochs 1 --subset 2048 --batch-size 64 --test-subset 500 -q -o {out}")
        == 0
    )
    _, meta = load_checkpoint(out)
    assert meta["extra"]["hw_aware"] == "weight noise 0.05" and meta["accuracy"] > 0.5
    assert (
        cli(f"train --hw-aware --table {table} --epochs 1 --subset 1024 --batch-size 64 --test-subset 500 -q -o {out}")
        == 0
    )
    model, meta = load_checkpoint(out)
    assert meta["extra"]["hw_aware"] == "analog layers"  # trained through convert_to_analog
    assert meta["accuracy"] > 0.2  # 16 steps on 1024 images: well above chance (0.1)


@pytest.mark.slow
def test_hardware_aware_fine_tuning_recovers_accuracy(mnist, tmp_path):
    """Harsh device (40% programming spread, 5-bit ADC): one epoch of fine-tuning through
    the analog layers must beat the float-trained model under the same programmings
    (measured: 93.3 -> 96.5 % on 2000 test images, 3 programmings)."""
    from rramsim.models import CrossbarConfig

    table = tmp_path / "t40.h5"
    small_table(0.4).save(table)
    out = tmp_path / "hw.pt"
    assert cli(f"train --hw-aware --table {table} --adc-bits 5 --init {SHIPPED} --epochs 1 --lr 5e-4 -q -o {out}") == 0
    loader = data.get_loader("mnist", "test", batch_size=500, subset=2000)
    cfg = CrossbarConfig(adc_bits=5)
    tab = DeviceTable.load(table)
    base = evaluate_trials(load_checkpoint(SHIPPED)[0], tab, cfg, loader, trials=3, progress=False)
    hw = evaluate_trials(load_checkpoint(out)[0], tab, cfg, loader, trials=3, progress=False)
    assert hw.mean > base.mean + 0.01, (base.summary(), hw.summary())


def test_train_refuses_crossbar_physics_it_would_not_simulate(tmp_path, capsys):
    out = tmp_path / "x.pt"
    assert cli(f"train --network lenet5 --epochs 1 --ir-drop off -q --no-fetch -o {out}") == 1
    assert "--ir-drop set the crossbars of --hw-aware training" in capsys.readouterr().err
    assert (
        cli(f"train --network lenet5 --epochs 1 --hw-aware --noise 0.02 --cell-iv linear -q --no-fetch -o {out}") == 1
    )
    assert "--cell-iv" in capsys.readouterr().err and not out.exists()
