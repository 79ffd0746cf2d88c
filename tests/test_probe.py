"""The probe: polarity, thresholds, window and time scale; characterize uses it for a user's device."""

from pathlib import Path

import numpy as np
import pytest

from rramsim.circuits.testbenches import builtin_device
from rramsim.cosim.cli import main
from rramsim.cosim.probe import ProbeError, probe
from rramsim.devices import DeviceTable, preset

# threshold memristors written as a user would (state on a capacitor node)
NEGSET = """* a bipolar memristor that SETs with a negative voltage on its first port
.subckt negmem p n params: ron=10k roff=200k
Cx x 0 1 ic=0
Rx x 0 1e12
Bx 0 x I=2e7*(V(n,p) > 0.9 ? V(n,p)-0.9 : (V(n,p) < -0.9 ? V(n,p)+0.9 : 0))*(V(n,p) > 0 ? 1-V(x) : V(x))
Bm p n I=V(p,n)/(ron*min(max(V(x),0),1) + roff*(1-min(max(V(x),0),1)))
.ends negmem
"""
SLOW = """* a slow threshold memristor: its state moves at 100/s per volt above 0.9 V (millisecond pulses)
.subckt slowmem p n params: ron=10k roff=200k rate=100
Cx x 0 1 ic=0
Rx x 0 1e12
Bx 0 x I=rate*(V(p,n) > 0.9 ? V(p,n)-0.9 : (V(p,n) < -0.9 ? V(p,n)+0.9 : 0))*(V(p,n) > 0 ? 1-V(x) : V(x))
Bm p n I=V(p,n)/(ron*min(max(V(x),0),1) + roff*(1-min(max(V(x),0),1)))
.ends slowmem
"""
STUCK = """* a resistor that never switches
.subckt stuck p n
R1 p n 50k
.ends stuck
"""


def test_probe_of_the_builtin_device(capsys):
    model, _ = preset("hfox")
    found = probe(builtin_device(model.params()), dict(model.params(), c2c=0.0, x0=model.g_max))
    assert found.polarity == 1 and found.width == 100e-9
    assert 0.8 <= found.v_set <= 1.2 and 0.8 <= found.v_reset <= 1.2
    g_lo, g_hi = model.window_conductance()
    assert found.g_off == pytest.approx(g_lo, rel=0.05) and found.g_on == pytest.approx(g_hi, rel=0.1)
    assert found.scheme().name == "ispp" and found.targets().size == 8
    assert main(["probe"]) == 0
    out = capsys.readouterr().out
    assert "SET with + on the first port" in out and "proposed scheme for a 1R cell: ispp" in out
    assert "command: rramsim" in out and "on a 1T1R cell: IGVVA (--cell 1T1R)" in out


def test_probe_proposes_igvva_for_a_1t1r_cell_and_says_why(tmp_path, capsys):
    assert main(["probe", "--cell", "1T1R"]) == 0
    out = capsys.readouterr().out
    assert "proposed scheme for a 1T1R cell: igvva" in out and "--cell 1T1R --scheme igvva" in out
    assert "why: IGVVA: in a 1T1R cell the word-line voltage sets the SET compliance current" in out
    # a device that SETs with - on its first port: the transistor would limit no current there
    path = tmp_path / "negmem.cir"
    path.write_text(NEGSET)
    assert main(["probe", "--netlist", str(path), "--cell", "1T1R", "--max-voltage", "2"]) == 0
    out = capsys.readouterr().out
    assert "proposed scheme for a 1T1R cell: ispp" in out and " polarity=-1 " in out
    assert "why: not IGVVA: the device SETs with - on its first port" in out and "reverse its terminals" in out


def test_abrupt_device_gets_fine_ispp_pulses_on_1r_and_igvva_at_its_abrupt_width_on_1t1r():
    from rramsim.cosim.probe import ProbeResult
    from rramsim.devices.schemes import IGVVA, ISPP

    found = ProbeResult(
        polarity=1,
        v_set=1.65,
        v_reset=1.65,
        v_set_full=2.3,
        v_reset_full=2.2,
        width=1e-9,
        g_off=1e-4,
        g_on=1e-3,
        read_voltage=0.2,
        max_voltage=5.0,
        abrupt_width=1e-7,
    )
    one_r, gated = found.scheme(), found.scheme("1T1R")
    assert isinstance(one_r, ISPP) and one_r.pulse_width == 1e-9 and one_r.reset_width == 1e-9
    assert isinstance(gated, IGVVA) and gated.pulse_width == 1e-7 and gated.reset_width == 1e-7
    # the gate ramp spans the compliance currents that hold the window's ends at the SET amplitudes
    beta = 2e-4 * 3.0
    assert beta / 2 * (gated.vg_start - 0.45) ** 2 <= 1e-4 * 1.65 <= 1e-3 * 2.3 <= beta / 2 * (gated.vg_max - 0.45) ** 2
    assert gated.v_set > found.v_set_full and gated.reset_max > found.v_reset_full  # the transistor takes its share
    cell = found.targets(cell="1T1R")  # verify reads the device in series with its transistor
    g_t = beta * (1.2 - 0.45)
    assert cell[-1] < 1 / (1 / 1e-3 + 1 / g_t) and np.all(cell < found.targets())
    assert "a single 1e-07 s pulse switches it fully" in found.report()


@pytest.mark.parametrize(
    "text,name,scheme,polarity", [(NEGSET, "negmem", "ispp", -1), (SLOW, "slowmem", "pulse-width", 1)]
)
def test_user_devices_characterize_through_the_probe(tmp_path, capsys, text, name, scheme, polarity):
    path = tmp_path / f"{name}.cir"
    path.write_text(text)
    out = tmp_path / f"{name}.h5"
    assert (
        main(
            [
                "characterize",
                "--netlist",
                str(path),
                "--subckt",
                name,
                "--devices",
                "2",
                "--targets",
                "20u,50u",
                "--retention-time",
                "0",
                "--workers",
                "1",
                "-q",
                "-o",
                str(out),
            ]
        )
        == 0
    ), capsys.readouterr().err
    table = DeviceTable.load(out)
    assert table.scheme["scheme"] == scheme and table.scheme["polarity"] == polarity
    assert table.probe["polarity"] == polarity and table.probe["g_on"] > table.probe["g_off"]
    assert table.converged.all()
    assert np.all(np.abs(table.read_g - table.targets) <= 0.05 * table.targets)
    if scheme == "pulse-width":
        assert table.probe["width"] >= 1e-3  # a millisecond device
        assert np.ptp(table.sweep_current) > 0 and table.sweep_v.max() > table.probe["v_set"]


def test_a_device_that_never_switches_is_refused(tmp_path, capsys):
    path = tmp_path / "stuck.cir"
    path.write_text(STUCK)
    with pytest.raises(ProbeError, match="state a node"):
        from rramsim.circuits.testbenches import Device

        probe(Device("stuck", STUCK), widths=(100e-9, 10e-6), max_voltage=2.0)
    assert (
        main(
            [
                "characterize",
                "--netlist",
                str(path),
                "--subckt",
                "stuck",
                "--max-voltage",
                "1.5",
                "-q",
                "-o",
                str(tmp_path / "s.h5"),
            ]
        )
        == 1
    )
    assert "no pulse of either polarity" in capsys.readouterr().err and not (tmp_path / "s.h5").exists()


# a threshold memristor whose leakage term leaves its domain above |V| = 3.2 V: its simulation fails there
POLE = """* a 100 ns threshold memristor whose leakage term is defined only below 3.2 V
.subckt polemem p n params: ron=10k roff=200k vpole=3.2
Cx x 0 1 ic=0
Rx x 0 1e12
Bx 0 x I=2e7*(V(p,n) > 0.9 ? V(p,n)-0.9 : (V(p,n) < -0.9 ? V(p,n)+0.9 : 0))*(V(p,n) > 0 ? 1-V(x) : V(x))
Bm p n I=V(p,n)/(ron*min(max(V(x),0),1) + roff*(1-min(max(V(x),0),1))) + 1n*V(p,n)/sqrt(vpole-abs(V(p,n)))
.ends polemem
"""


def test_probe_lowers_its_ramps_below_where_the_device_fails_numerically(tmp_path, capsys):
    from rramsim.circuits.testbenches import Device

    found = probe(Device("polemem", POLE), widths=(100e-9,), max_voltage=5.0)
    assert found.max_voltage == pytest.approx(2.5) and found.polarity == 1
    assert "failed with ramps up to 5 V" in found.note and "probed up to 2.5 V" in found.note
    assert found.scheme().v_max <= 2.5 and found.sweep_voltage <= 2.5
    assert found.attrs()["note"] == found.note
    path = tmp_path / "pole.cir"
    path.write_text(POLE.replace("vpole=3.2", "vpole=0.6"))  # fails even at a quarter of the ramp
    assert main(["probe", "--netlist", str(path), "--subckt", "polemem"]) == 1
    err = capsys.readouterr().err
    assert "failed at every probe pulse width" in err and "Traceback" not in err


def test_hard_bound_ltspice_device_runs_as_b_sources_and_probes_to_5_volts():
    from pathlib import Path
    from rramsim.circuits.user_netlist import load_user_netlist

    user = load_user_netlist(Path(__file__).parent / "devices" / "lt_hard_bound.sub", "LTHARD", ports=["TE", "BE"])
    record = user.record()["translation"]
    assert "line 11: G value= source as a B source" in record and "line 12: G value=" in record
    assert "line 13" not in record  # I(Gr) is read: Gr stays a G source
    assert "BGx 0 XSV I={" in user.device.definition and "Gr TE BE value=" in user.device.definition
    found = probe(user.device, widths=(1e-3,), max_voltage=5.0)
    assert found.note == "" and found.max_voltage == 5.0 and found.polarity == 1


def test_veriloga_module_may_be_left_out_when_the_file_has_one(tmp_path, capsys):
    from pathlib import Path
    from rramsim.cosim import osdi

    va = Path(__file__).parent / "devices" / "va_state.va"
    assert osdi.only_module(va) == "vastate"
    two = tmp_path / "two.va"
    two.write_text(va.read_text() + va.read_text().replace("module vastate", "module other"))
    assert main(["probe", "--veriloga", str(two)]) == 1
    assert "defines 2 Verilog-A modules (vastate, other): name the device's with --module" in capsys.readouterr().err
    if not osdi.available():
        pytest.skip("OpenVAF is not installed")
    assert main(["probe", "--veriloga", str(va), "--max-voltage", "2"]) == 0
    out = capsys.readouterr().out
    assert "SET with + on the first port" in out and "--module vastate" in out  # the command names the module found


def test_a_time_step_collapsed_inside_the_device_is_named_as_the_models_failure():
    from rramsim.cosim.probe import device_failure_hint

    inside = 'doAnalyses: TRAN:  Timestep too small; time = 8.06, timestep = 1.25e-13: trouble with node "xc0.x0.aux"'
    assert "at node 'x0.aux' inside the device itself" in device_failure_hint(inside)
    assert device_failure_hint(inside.replace('"xc0.x0.aux"', '"d"')) == ""  # a bench node: no claim
    assert device_failure_hint("the deck did not load: Error on line 5") == ""


WINDUP = Path(__file__).parent / "devices" / "ng_windup.cir"


def test_a_state_integral_wound_up_past_its_clamp_and_a_runaway_set_still_get_a_scheme_that_converges(tmp_path, capsys):
    """ng_windup.cir integrates its state without bounds and clamps it only where it is
    used, so a pulse that keeps driving it past a bound winds the integral up (probing
    +, -, + ramps to 5 V on one device found no switching at all); its SET runs away
    above a narrow amplitude band. Every level the probe proposes must be reached."""
    out = tmp_path / "windup.h5"
    assert (
        main(
            [
                "characterize",
                "--netlist",
                str(WINDUP),
                "--devices",
                "1",
                "--retention-time",
                "0",
                "--workers",
                "1",
                "-q",
                "-o",
                str(out),
            ]
        )
        == 0
    ), capsys.readouterr().err
    table = DeviceTable.load(out)
    p, s = table.probe, table.scheme
    # the thresholds of the device itself, each ramp on a fresh device: RESET from the full
    # SET at vr0/(1+b) = 0.8 V, SET from the erased state near vs0 = 1 V
    assert p["polarity"] == 1 and 0.8 < p["v_reset"] <= 0.9 and 1.0 <= p["v_set"] <= 1.1
    # the erase stops short of vr0 = 1.2 V, past which the RESET would wind the integral up
    assert s["erase"] <= 1.2 and s["reset_max"] <= 1.2
    # SET: shorter pulses than the RESET's and millivolt steps (its gradual band is ~0.1 V wide)
    assert s["pulse_width"] < s["reset_width"] and s["v_step"] <= 0.005 and "runs away" in p["note"]
    # the targets lie in the SET's gradual part, between the erased state and the runaway
    assert p["g_lo"] < table.targets.min() and table.targets.max() < p["g_hi"] < 0.1 * p["g_on"]
    assert table.converged.all()
    assert np.all(np.abs(table.read_g - table.targets) <= 0.05 * table.targets)
