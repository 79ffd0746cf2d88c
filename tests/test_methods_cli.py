"""`rramsim reproduce {lowbit,forms,basisn}`: reports with the paper's numbers beside ours."""

from __future__ import annotations

import pytest

from rramsim.cosim.cli import main


def test_reproduce_lowbit_small_writes_a_report(tmp_path, capsys):
    out = tmp_path / "lowbit.md"
    assert main(["reproduce", "lowbit", "--small", "--threads", "1", "-q", "--seed", "1", "-o", str(out)]) == 0
    text = out.read_text()
    for needle in (
        "96.66%",
        "−45.24%",
        "−5.6%",
        "rramsim reproduce lowbit --small",
        "| seed | 1 |",
        "shipped default table",
        "runtime",
        "small (CI)",
        "agreement with integer network 100.000%",
    ):
        assert needle in text, needle
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["reproduce", "forms", "--small", "-o", "/nonexistent-folder/x.md"], "does not exist"),
        (["reproduce", "basisn", "--small", "--table", "/nonexistent.h5", "-o", "x.md"], "does not exist"),
        (["reproduce", "basisn", "--small", "--bases", "12", "-o", "x.md"], "n_bases must be an integer in 1..9"),
        (["reproduce", "basisn", "--small", "--coef-bits", "1", "-o", "x.md"], "coefficient bits"),
    ],
)
def test_reproduce_bad_inputs_are_clear_errors(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 1
    assert message in capsys.readouterr().err


def test_reproduce_needs_a_method(capsys):
    with pytest.raises(SystemExit):
        main(["reproduce"])
    with pytest.raises(SystemExit):
        main(["reproduce", "lowbit", "--epochs", "0"])


@pytest.mark.parametrize(
    "method, needles",
    [
        ("forms", ("99.17%", "k=4", "k=8", "k=16", "1.12–2.4x")),
        ("basisn", ("< 1%", "Fashion-MNIST", "crossbars available", "below 1% at every budget", "pooled late")),
    ],
)
def test_reproduce_forms_and_basisn_small(method, needles, tmp_path):
    out = tmp_path / f"{method}.md"
    assert main(["reproduce", method, "--small", "--threads", "1", "-q", "-o", str(out)]) == 0
    text = out.read_text()
    for needle in needles:
        assert needle in text, needle


def test_a_registered_method_is_a_command_without_other_edits(tmp_path, monkeypatch, capsys):
    """``rramsim reproduce NAME`` finds any method in the registry, with its own arguments."""
    from rramsim.cosim import reproduce
    from rramsim.models.methods.report import Report

    seen = {}

    def reproduce_toy(table, *, table_name, small, seed, epochs, command, log, width):
        seen.update(levels=table.n_levels, small=small, seed=seed, width=width)
        rep = Report(title="toy", paper="none", command=command, seed=seed, table=table_name, small=small)
        rep.row("width", "—", str(width))
        return rep.finish()

    monkeypatch.setattr(reproduce, "reproduce_toy", reproduce_toy, raising=False)
    monkeypatch.setitem(
        reproduce.METHODS,
        "toy",
        reproduce.Method(
            help="a toy method",
            run="rramsim.cosim.reproduce:reproduce_toy",
            add_arguments=lambda q: q.add_argument("--width", type=int, default=3),
            options=lambda args: {"width": args.width},
        ),
    )
    out = tmp_path / "toy.md"
    assert main(["reproduce", "toy", "--small", "--seed", "4", "--width", "5", "-q", "-o", str(out)]) == 0
    assert seen["small"] and seen["seed"] == 4 and seen["width"] == 5 and seen["levels"] > 1
    assert "| width | — | 5 |" in out.read_text() and "rramsim reproduce toy" in out.read_text()
    with pytest.raises(SystemExit):
        main(["reproduce", "lowbit", "--width", "5"])  # another method's argument is refused
