"""Bad devices end in one clear message: ngspice's own words, exit 1, no traceback, no
checkpoint folder, no table of a device that never switched (real ngspice throughout)."""

import pickle

import numpy as np
import pytest

from rramsim.circuits.testbenches import Device, builtin_device, iv_sweep_deck
from rramsim.cosim.campaign import CampaignResult
from rramsim.cosim.device_checks import DeviceError, check_device_switches, stuck_devices
from rramsim.cosim.ngspice import DeckLoadError, Session, SimulationError, run_with_retries
from rramsim.devices import CompactModel

# Device files as users write them, each with a line ngspice's parser rejects.
UNKNOWN_FUNCTION = """* threshold memristor with a helper function the simulator does not know
.subckt MEMF p n
Bx 0 x I=1e-6*smoothstep(V(p,n)-1)
Cx x 0 1
R1 p n 10k
.ends MEMF
"""
UNDEFINED_PARAMETER = """* linear-drift memristor, a parameter left undefined
.subckt MEMP p n
.param ron=1k roff=100k
Bx 0 x I=kdrift*V(p,n)
Cx x 0 1
R1 p n {ron}
.ends MEMP
"""
UNDEFINED_IN_PARAM = """* a .param computed from a constant this simulator lacks
.subckt MEMQ p n
.param vt0={kq*300/qe}
R1 p n {vt0*1e5}
.ends MEMQ
"""
# Never switches: a fixed resistor wrapped as a memristor (the state is never used).
STUCK = """* a memristor whose state does not reach the current
.subckt STUCK p n
Cx x 0 1
Bx 0 x I=1e-9*V(p,n)
R1 p n 50k
.ends STUCK
"""


def _device(text: str, name: str) -> Device:
    body = "\n".join(line for line in text.splitlines() if line and not line.startswith("*"))
    return Device(name, body)


@pytest.mark.parametrize(
    "text, name, words, line",
    [
        (UNKNOWN_FUNCTION, "MEMF", "no such function 'smoothstep'", "smoothstep(V(p,n)-1)"),
        (UNDEFINED_PARAMETER, "MEMP", "kdrift", "I=kdrift*V(p,n)"),
        (UNDEFINED_IN_PARAM, "MEMQ", "kq", ".param vt0={kq*300/qe}"),
    ],
)
def test_a_rejected_deck_gives_ngspices_words_and_the_session_survives(text, name, words, line):
    session = Session.get()
    good = iv_sweep_deck(builtin_device(CompactModel().params()), 1.3, 4e-6)
    with pytest.raises(DeckLoadError) as err:
        session.load(iv_sweep_deck(_device(text, name), 1.3, 4e-6), "I-V sweep")
    message = str(err.value)
    assert words in message and line in message and "\n" not in message
    assert "ngSpice_Circ" not in message and "cannot recover" not in message
    # ngspice's shared library cannot recover from a rejected deck; this process's must not have seen it
    out = session.simulate(good, "tran 2n 4u uic", ["i(vd)"])
    assert np.abs(out["i(vd)"]).max() > 1e-4


def test_a_rejected_deck_is_not_retried_and_errors_travel_between_processes():
    session = Session.get()
    tries = []

    def attempt(options):
        tries.append(options)
        session.load(iv_sweep_deck(_device(UNKNOWN_FUNCTION, "MEMF"), 1.3, 4e-6, options), "sweep")

    with pytest.raises(DeckLoadError):
        run_with_retries(attempt, "sweep")
    assert len(tries) == 1
    for exc in (
        DeckLoadError("d", "no such function", ["a"], {"x": 1.0}),
        SimulationError("d", "timestep too small", ["b"], {"v": 2.0}),
    ):
        back = pickle.loads(pickle.dumps(exc))
        assert type(back) is type(exc) and str(back) == str(exc) and back.log == exc.log


def _characterize(capsys, *args) -> tuple[int, str]:
    from rramsim.cosim.cli import main

    code = main(["characterize", *args, "--retention-time", "0", "-q"])
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_cli_load_error_is_one_paragraph_exit_1_and_leaves_nothing(tmp_path, capsys, workers):
    net = tmp_path / "memf.sub"
    net.write_text(UNKNOWN_FUNCTION)
    out = tmp_path / "memf.h5"
    code, err = _characterize(
        capsys,
        "--netlist",
        str(net),
        "--subckt",
        "MEMF",
        "--devices",
        "2",
        "--batch-size",
        "1",
        "--targets",
        "10u,20u",
        "--workers",
        workers,
        "-o",
        str(out),
    )
    assert code == 1
    assert err.startswith("rramsim characterize: error:") and len(err.splitlines()) == 1
    assert "no such function 'smoothstep'" in err and "smoothstep(V(p,n)-1)" in err
    assert not out.exists() and not (tmp_path / "memf.h5.parts").exists()


@pytest.mark.parametrize("scheme", [["--scheme", "ispp", "--max-pulses", "4"], []])
def test_a_device_that_never_switches_gets_no_table(tmp_path, capsys, scheme):
    net = tmp_path / "stuck.sub"
    net.write_text(STUCK)
    out = tmp_path / "stuck.h5"
    code, err = _characterize(
        capsys,
        "--netlist",
        str(net),
        "--subckt",
        "STUCK",
        "--devices",
        "1",
        "--targets",
        "10u,30u",
        *scheme,
        "--workers",
        "1",
        "-o",
        str(out),
    )
    assert code == 1 and len(err.splitlines()) == 1
    if scheme:  # the campaign ran (no probe): the check after it refuses the table
        assert "never changed conductance" in err and "20 uS" in err
        assert "SET up to +" in err and "RESET down to -" in err and "node" in err
    assert not out.exists() and not (tmp_path / "stuck.h5.parts").exists()


def test_stuck_device_check_on_campaign_reads():
    reads = [[20e-6, 35e-6, 50e-6], [20e-6, 20e-6 * (1 + 1e-6), 20e-6]]
    assert stuck_devices(reads) == [1]
    c = CampaignResult(
        targets=np.array([1e-5]),
        g_final=np.zeros((1, 2)),
        pulses=np.zeros((1, 2)),
        energy=np.zeros((1, 2)),
        time=np.zeros((1, 2)),
        converged=np.zeros((1, 2), bool),
        amplitudes=[[-1.6, 1.0, 1.04], [-1.6, 1.0, 1.04]],
        reads=reads,
        level_end=np.zeros((1, 2)),
        cell_params=[None, None],
    )
    with pytest.raises(DeviceError, match=r"1 of 2 devices \(the first: device 1\) never changed"):
        check_device_switches(c)
    c.converged[:, 1] = True  # already within every target as it was: nothing to refuse
    check_device_switches(c)
    c.converged[:, 1] = False
    c.reads = reads[:1] * 2
    check_device_switches(c)
