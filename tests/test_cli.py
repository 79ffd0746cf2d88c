"""The rramsim command line, run as a user would (real ngspice, real files)."""

import subprocess
import sys

import numpy as np
import pytest

from rramsim.cosim.cli import main
from rramsim.devices import DeviceTable

MYDEV = """* a user's two-terminal device: a threshold memristor with a state node
.subckt mymem p n params: ron=10k roff=200k
Cx x 0 1 ic=0
Rx x 0 1e12
Bx 0 x I=2e7*(V(p,n) > 0.9 ? V(p,n)-0.9 : (V(p,n) < -0.9 ? V(p,n)+0.9 : 0))*(V(p,n) > 0 ? 1-V(x) : V(x))
Bm p n I=V(p,n)/(ron*min(max(V(x),0),1) + roff*(1-min(max(V(x),0),1)))
.ends mymem
"""


def test_table_show_validate_and_plots(small_table_file, tmp_path, capsys):
    assert main(["table", "show", str(small_table_file)]) == 0
    out = capsys.readouterr().out
    assert "3 levels x 6 devices" in out and "pytest small_table" in out
    assert main(["table", "validate", str(small_table_file)]) == 0
    for kind in ("iv", "levels", "writeverify"):
        png = tmp_path / f"{kind}.png"
        assert main(["plot", kind, str(small_table_file), "-o", str(png)]) == 0
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_validate_rejects_a_bad_file(tmp_path, capsys):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5 at all")
    assert main(["table", "validate", str(bad)]) == 1
    assert "not a readable HDF5" in capsys.readouterr().err


def test_characterize_a_users_subcircuit_end_to_end(tmp_path):
    netlist = tmp_path / "mydev.cir"
    netlist.write_text(MYDEV)
    out = tmp_path / "mine.h5"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rramsim.cosim.cli",
            "characterize",
            "--netlist",
            str(netlist),
            "--subckt",
            "mymem",
            "--devices",
            "2",
            "--targets",
            "10u,40u",
            "--v-start",
            "1.0",
            "--v-max",
            "1.5",
            "--retention-time",
            "0",
            "--workers",
            "1",
            "-q",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    table = DeviceTable.load(out)
    assert table.model["name"] == "mymem" and ".subckt mymem" in table.model_netlist
    assert table.converged.all()
    assert np.all(np.abs(table.g_final - table.targets[:, None]) <= 0.05 * table.targets[:, None])
    assert "--subckt mymem" in table.provenance["command"]
    assert not table.has_retention


@pytest.mark.parametrize(
    "args,message",
    [
        (["--netlist", "NOFILE.cir", "--subckt", "x"], "does not exist"),
        (["--netlist", "{dev}", "--subckt", "other"], "defines no subcircuit 'other'; it defines mymem"),
        (["--netlist", "{three}", "--subckt", "tri"], "has 3 ports"),
        (["--netlist", "{ctrl}", "--subckt", "mymem"], "control command 'shell' is not allowed"),
        (["--netlist", "{two}"], "defines 2 subcircuits"),
        (["--netlist", "{dev}", "--subckt", "bad name;rm"], "--subckt must be a name"),
    ],
)
def test_user_netlist_errors_come_before_any_simulation(tmp_path, capsys, args, message):
    files = {
        "dev": MYDEV,
        "three": ".subckt tri a b c\nR1 a b 1k\nR2 b c 1k\n.ends tri\n",
        "ctrl": MYDEV.replace("Rx x 0 1e12", "Rx x 0 1e12\nshell touch /tmp/pwned"),
        "two": MYDEV + ".subckt other a b\nR1 a b 1k\n.ends other\n",
    }
    for name, text in files.items():
        (tmp_path / f"{name}.cir").write_text(text)
    args = [a.format(**{n: str(tmp_path / f"{n}.cir") for n in files}) for a in args]
    code = main(["characterize", *args, "-o", str(tmp_path / "x.h5"), "-q"])
    assert code == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--targets", "10u:abc:4"], "not a number"),
        (["--devices", "0"], "must be >= 1"),
        (["--pulse-width", "nan"], "'nan' is not a number"),
        (["--preset", "nope"], "invalid choice"),
    ],
)
def test_bad_arguments_are_refused_by_the_parser(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as err:
        main(["characterize", *args, "-o", str(tmp_path / "x.h5")])
    assert err.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_scheme_values_are_clear_errors(tmp_path, capsys):
    assert main(["characterize", "--tolerance", "2", "-o", str(tmp_path / "x.h5"), "-q"]) == 1
    assert "tolerance" in capsys.readouterr().err
    assert main(["characterize", "--devices", "2", "-o", str(tmp_path / "no" / "x.h5"), "-q"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_the_parser_imports_no_heavy_library():
    """`rramsim --help` and the argument parser import neither torch nor scipy (they come
    with the command that needs them), so the help answers at once."""
    code = (
        "import sys\nfrom rramsim.cosim.cli import build_parser\n"
        "parser = build_parser()\nparser.parse_args(['train', '--network', 'vit', '-o', 'x.pt'])\n"
        "print([m for m in ('torch', 'scipy', 'h5py', 'matplotlib') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    from rramsim.models import DATASET_NAMES, NETWORK_NAMES
    from rramsim.models.data import DATASETS
    from rramsim.models.networks import network_names

    assert list(NETWORK_NAMES) == network_names()  # the lists the parser offers
    assert list(DATASET_NAMES) == sorted(DATASETS)


def test_every_command_follows_one_exit_code_convention(tmp_path, capsys):
    """1: the command failed, with one `rramsim COMMAND: error: ...` line; 2: usage (argparse);
    the same for the commands of this module, of the inference CLI and of reproduce."""
    from rramsim.cosim.cli_common import EXIT_FAILED, EXIT_USAGE

    missing = str(tmp_path / "missing.h5")
    for argv, message in [
        (["table", "show", missing], "rramsim table: error: " + missing + ": no such file"),
        (
            ["reproduce", "forms", "--table", missing, "-o", str(tmp_path / "r.md")],
            f"rramsim reproduce: error: device table {missing!r} does not exist",
        ),
        (
            ["evaluate", "--model", str(tmp_path / "none.pt"), "--trials", "1", "-q"],
            f"rramsim evaluate: error: checkpoint {str(tmp_path / 'none.pt')!r} does not exist",
        ),
    ]:
        assert main(argv) == EXIT_FAILED
        err = capsys.readouterr().err
        assert err.startswith(message) and err.count("error:") == 1, err
    for argv in (["reproduce", "nope"], ["table", "show"], ["evaluate", "--trials", "x"]):
        with pytest.raises(SystemExit) as usage:
            main(argv)
        assert usage.value.code == EXIT_USAGE
        assert "error:" in capsys.readouterr().err
    # a real process: the code reaches the shell, and nothing but the error line is printed
    proc = subprocess.run(
        [sys.executable, "-m", "rramsim.cosim.cli", "table", "validate", missing],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == EXIT_FAILED and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"rramsim table: error: {missing}: no such file (make one with `rramsim characterize -o {missing}`)"
    ]


def test_a_command_called_from_python_records_that_it_was():
    """Provenance: the command line main parsed; a namespace built without main (a command
    called from Python) is recorded as such, never the calling program's sys.argv."""
    from rramsim.cosim.cli import build_parser
    from rramsim.cosim.cli_common import command_line

    args = build_parser().parse_args(["table", "show", "my table.h5"])
    line = command_line(args)
    assert line == "rramsim table (called from Python: file='my table.h5', table_command='show')"
    assert command_line(None) == "rramsim (called from Python)"
    args.argv = ["table", "show", "my table.h5"]  # what main sets
    assert command_line(args) == "rramsim table show 'my table.h5'"
