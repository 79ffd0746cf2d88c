"""Device files of other simulators (LTspice, PSpice, HSPICE), extra ports, initial
states and --vary, on real ngspice. The fixture devices in tests/devices/ are written
for these tests in each simulator's style."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rramsim.circuits.dialects import NetlistError, compat_mode, detect, translate
from rramsim.circuits.user_netlist import _logical_lines, load_user_netlist
from rramsim.cosim.ngspice import Session
from rramsim.devices import Variability
from rramsim.devices.params import describe_variability

DEVICES = Path(__file__).parent / "devices"
LT, PS, HS = DEVICES / "lt_threshold.sub", DEVICES / "ps_integral.lib", DEVICES / "hs_vcm.sp"
V_READ = 0.2


def pulse_reads(device, params=None, v_set=1.2, v_reset=-1.3, width=50e-9):
    """Read G, SET pulse, read G, RESET pulse, read G: the three conductances (S)."""
    pts = [
        (0, 0),
        (10e-9, 0),
        (11e-9, V_READ),
        (30e-9, V_READ),
        (31e-9, v_set),
        (31e-9 + width, v_set),
        (32e-9 + width, 0),
    ]
    t0 = 40e-9 + width
    pts += [
        (t0, 0),
        (t0 + 1e-9, V_READ),
        (t0 + 20e-9, V_READ),
        (t0 + 21e-9, v_reset),
        (t0 + 21e-9 + width, v_reset),
        (t0 + 22e-9 + width, 0),
    ]
    t1 = t0 + 30e-9 + width
    pts += [(t1, 0), (t1 + 1e-9, V_READ), (t1 + 20e-9, V_READ), (t1 + 21e-9, 0)]
    pwl = " ".join(f"{t!r} {v!r}" for t, v in pts)
    deck = "\n".join(
        [
            "* dialect test",
            ".options method=gear reltol=1e-4",
            device.header(),
            f"Vd d 0 pwl({pwl})",
            "Vs d t dc 0",
            device.instance("c0", "t", params),
            ".end",
        ]
    )
    out = Session.get().simulate(deck, f"tran 1n {t1 + 25e-9!r} 0 1n uic", ["time", "i(vs)"], name="dialect test")
    return [float(np.interp(tr, out["time"], out["i(vs)"])) / V_READ for tr in (25e-9, t0 + 15e-9, t1 + 15e-9)]


# ---------------------------------------------------------------------------- detection
@pytest.mark.parametrize("path,dialect,mode", [(LT, "ltspice", "ltpsa"), (PS, "pspice", "psa"), (HS, "hspice", "hsa")])
def test_detects_dialect_from_constructs_alone(path, dialect, mode, tmp_path):
    text = "\n".join(ln for ln in path.read_text().splitlines() if not ln.startswith("*"))  # no comment hints
    bare = tmp_path / "device.cir"
    bare.write_text(text)
    got, why = detect(_logical_lines(text), text, bare)
    assert got == dialect, why
    assert compat_mode(translate(_logical_lines(text), got, bare).definition()) == mode


def test_plain_ngspice_file_needs_no_mode(tmp_path):
    f = tmp_path / "plain.cir"
    f.write_text(".subckt mem a b params: g=1e-4\nBm a b I={g*V(a,b)}\n.ends mem\n")
    user = load_user_netlist(f, "mem")
    assert user.dialect == "ngspice" and "ngbehavior" not in user.device.definition


# ---------------------------------------------------------------------------- each dialect switches
@pytest.mark.parametrize("path,subckt,ports", [(LT, "LTTHR", ["TE", "BE"]), (PS, "PSINT", None), (HS, "hsvcm", None)])
def test_dialect_device_loads_and_switches(path, subckt, ports):
    user = load_user_netlist(path, subckt, ports=ports)
    g0, g_set, g_reset = pulse_reads(user.device)
    assert g_set > 5 * g0, (g0, g_set)  # a positive pulse SETs ...
    assert g_reset < 0.5 * g_set, (g_set, g_reset)  # ... a negative one RESETs


def test_initial_state_from_ic_inside_subckt_and_ic_on_capacitor():
    lt = load_user_netlist(LT, "LTTHR", ports=["TE", "BE"])  # .ic V(XSV) = x0
    g0 = pulse_reads(lt.device)[0]
    assert g0 == pytest.approx((2e-6 + 198e-6 * 0.02) * 1.02, rel=1e-3)  # table(): 1 + 0.2*0.1 at 0.2 V
    hs = load_user_netlist(HS, "hsvcm", vary=["x0"])  # IC='x0' on the state capacitor
    g_half = pulse_reads(hs.device, {"x0": 0.5})[0]
    assert g_half == pytest.approx((2e-6 + 178e-6 * 0.5) * (1 + 0.05 * V_READ**2), rel=1e-3)


def test_three_port_subckt_needs_ports():
    with pytest.raises(NetlistError, match=r"3 ports \(TE BE XSV\).*--ports A,B"):
        load_user_netlist(LT, "LTTHR")
    with pytest.raises(NetlistError, match="no port 'XX'; its ports: TE BE XSV"):
        load_user_netlist(LT, "LTTHR", ports=["TE", "XX"])
    user = load_user_netlist(LT, "LTTHR", ports=["TE", "BE"])
    assert user.device.subckt == "LTTHR_2t" and "Ropen2 open2 0 1000000000000.0" in user.device.definition
    assert "* rramsim translated: ports TE BE XSV: TE, BE driven, XSV open" in user.device.definition
    assert "* rramsim: subcircuit LTTHR of lt_threshold.sub, dialect ltspice" in user.device.definition


def test_ports_reversed_swaps_polarity():
    g0, g_set, _ = pulse_reads(load_user_netlist(LT, "LTTHR", ports=["BE", "TE"]).device, v_set=-1.2, v_reset=1.3)
    assert g_set > 5 * g0


# ---------------------------------------------------------------------------- translations
def _tr(text: str, dialect: str, name: str = "dev.cir"):
    return translate(_logical_lines(text), dialect, Path(name))


def test_translations_are_what_ngspice_reads():
    tr = _tr(".subckt d a b\nB1 a b I={limit(V(a,b), -1, 1)*if(V(a,b)>0, 1, 2)*stp(V(a,b))}\n.ends", "hspice")
    body = tr.definition()
    assert "min(max(V(a,b), min(-1, 1)), max(-1, 1))" in body and "ternary_fcn(" in body and "u(V(a,b))" in body
    tr = _tr(".subckt d a b\nB1 a b I={limit(V(a,b), -1, 1)}\n.ends", "pspice")
    assert "limit(V(a,b), -1, 1)" in tr.definition()  # the psa mode defines limit() itself
    tr = _tr(".subckt d a b\nB1 a b I={table(V(a,b), -1, 2, 1, 3)*boltz}\n.ends", "ltspice")
    assert "pwl(min(max(V(a,b), -1.0), 1.0), -1, 2, 1, 3)" in tr.definition()
    assert tr.lines[0][1].startswith(".param boltz=1.380649e-23")
    tr = _tr(".subckt d a b\nE1 x 0 VALUE={sdt(V(a,b), 0.5)}\nR1 a b 1k\n.ends", "pspice")
    body = tr.definition()
    assert "BE1 x 0 V={V(sdt_state1)}" in body and "Bsdt_state1 0 sdt_state1 I={V(a,b)}" in body
    assert ".ic V(sdt_state1)={0.5}" in body
    tr = _tr(".subckt d a b params: vt=0.3\nB1 a b I={V(a,b)*vt}\n.ends", "ltspice")
    assert "vt_dev=0.3" in tr.definition() and "V(a,b)*vt_dev" in tr.definition()


def test_sdt_integrates_in_ngspice(tmp_path):
    """A PSpice sdt() becomes a state node whose voltage is the integral."""
    f = tmp_path / "integ.lib"
    f.write_text(
        ".SUBCKT INTEG A B PARAMS: g=1e-4\nE_S S 0 VALUE={SDT(V(A,B))*1e6}\nR_S S 0 1G\n"
        "G_M A B VALUE={g*V(A,B)*(1 + V(S))}\n.ENDS INTEG\n"
    )
    user = load_user_netlist(f, "INTEG")
    assert user.dialect == "pspice"
    g0, g1, _ = pulse_reads(user.device, v_set=1.0, v_reset=0.0)
    integral = (19e-9 * V_READ + 50e-9 * 1.0 + 1e-9 * 0.6 + 4e-9 * V_READ) * 1e6  # ∫V dt up to the 2nd read
    assert g1 / 1e-4 - 1 == pytest.approx(integral, rel=0.05)


# ---------------------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    "line,what",
    [
        ("B1 a b I={V(a,b)*agauss(1, 0.1, 3)}", "random function agauss"),
        ("B1 a b I={V(a,b)*limit(1, 0.1)}", "two-argument limit"),
        ("B1 a b I={delay(V(a,b), 1n)}", r"delay\(\)"),
        ("B1 a b I={table(V(a,b), x1, 1, 2, 3)}", "table\\(\\) with non-numeric"),
        ("B1 a b I={idt(V(a,b), 0, V(a))}", "reset argument"),
        (".func f(x) {sdt(x)}", r"sdt\(\) inside .func"),
        (".func f(x) = (1/(1+exp(-x))*(1-x)", r"unbalanced parentheses \(5 '\(' and 4 '\)'\)"),
    ],
)
def test_unsupported_constructs_name_construct_and_line(line, what, tmp_path):
    f = tmp_path / "bad.sub"
    f.write_text(f"* device\n.subckt bad a b\nR1 a b 1k\n{line}\n.ends bad\n")
    with pytest.raises(NetlistError, match=rf"bad.sub:4: .*{what}"):
        load_user_netlist(f, "bad")


def test_ltspice_line_left_open_is_closed_at_its_end_as_ltspice_does(tmp_path):
    user = load_user_netlist(DEVICES / "lt_open_paren.sub", "LTOPEN")
    assert user.dialect == "ltspice"
    assert "line 6: 1 missing ')' closed at the end of the line" in user.record()["translation"]
    g0, g_set, g_reset = pulse_reads(user.device)
    assert g_set > 5 * g0, (g0, g_set)  # the closed IF() SETs ...
    assert g_reset < 0.5 * g_set, (g_set, g_reset)  # ... and RESETs
    with pytest.raises(NetlistError, match=r"lt_open_paren.sub:6: .*unbalanced parentheses"):
        load_user_netlist(DEVICES / "lt_open_paren.sub", "LTOPEN", dialect="ngspice")
    f = tmp_path / "closes_nothing.sub"  # a ')' that closes nothing is refused in any dialect
    f.write_text(".subckt bad a b\n.params g=1m\nB1 a b I={IF(V(a,b) > 0, g, 0))*V(a,b)}\n.ends bad\n")
    with pytest.raises(NetlistError, match=r"closes_nothing.sub:3: .*unbalanced"):
        load_user_netlist(f, "bad", dialect="ltspice")


def test_a_whole_deck_keeps_only_its_device_and_names_every_line_left_out(tmp_path):
    deck = tmp_path / "deck.cir"  # a test deck around the device, as published
    deck.write_text(
        "Threshold memristor demo\n.param tp=1u\nXd in 0 dev\nVin in 0 sin(0 2 1meg)\n"
        ".subckt dev a b params: g=1m\nBm a b I={g*V(a,b)}\n.ends dev\n"
        ".control\ntran 1n 2u\nshell rm -rf /\nplot i(vin)\n.endc\n.end\n"
    )
    user = load_user_netlist(deck, "dev")
    assert user.ignored == [
        ("line 2", ".param tp (not used by subcircuit dev)"),
        ("line 3", "instance Xd"),
        ("line 4", "source Vin"),
        ("lines 8-12", "the .control block (ngspice commands)"),
    ]
    report = user.deck_report(deck)
    assert "is a whole deck: only subcircuit dev go to ngspice" in report and "lines 8-12: the .control" in report
    cards = [ln for ln in user.device.definition.splitlines() if not ln.startswith("*")]
    assert cards == [".subckt dev a b params: g=1m", "Bm a b I={g*V(a,b)}", ".ends dev"]
    assert "line 1 read as the file's title: 'Threshold memristor demo'" in user.record()["translation"]
    assert "whole deck: subcircuit dev; ignored" in user.record()["translation"]
    # a file of definitions only is a device file, checked as before: a stray card is refused
    deck.write_text(".subckt dev a b\nR1 a b 1k\n.ends dev\n.endc\n")
    with pytest.raises(NetlistError, match=r"deck.cir:4: '.endc' is not allowed in a device file"):
        load_user_netlist(deck, "dev")


DECK = DEVICES / "ng_threshold_deck.cir"


def test_deck_fixture_characterizes_through_the_cli_without_its_control_block(tmp_path, capsys):
    from rramsim.cosim.cli import main
    from rramsim.devices import DeviceTable

    out = tmp_path / "deck.h5"  # --subckt left out: the deck's only subcircuit
    assert (
        main(
            [
                "characterize",
                "--netlist",
                str(DECK),
                "--devices",
                "2",
                "--targets",
                "20u,60u",
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
    err = capsys.readouterr().err
    assert "is a whole deck: only subcircuit thrmem and .param tsw (line 7), .param vth (line 7)" in err
    for ignored in (
        "line 8: .param vamp, tper (not used by subcircuit thrmem)",
        "line 19: instance Xdut",
        "line 20: source Vin",
        "line 21: analysis .tran",
        "lines 22-26: the .control block",
    ):
        assert ignored in err
    table = DeviceTable.load(out)
    assert table.converged.all() and table.probe["polarity"] == 1
    assert np.all(np.abs(table.read_g - table.targets) <= 0.05 * table.targets)
    assert "the .control block (ngspice commands) (lines 22-26)" in table.model_netlist  # the record of it
    assert "dialect ngspice" in table.model_netlist and "shell" not in table.model_netlist
    cards = [ln for ln in table.model_netlist.splitlines() if not ln.startswith("*")]
    assert not any(w in ln.lower() for ln in cards for w in (".tran", "vin", "xdut", "plot", ".control", "vamp"))


def test_deck_whose_subcircuit_needs_a_missing_top_level_param_is_named(tmp_path, capsys):
    from rramsim.cosim.cli import main

    bad = tmp_path / "no_tsw.cir"  # tsw was only set from the command line
    bad.write_text(DECK.read_text().replace(".param tsw=1u vth=0.8", ".param vth=0.8"))
    with pytest.raises(
        NetlistError,
        match=r"no_tsw.cir:10: subcircuit thrmem: parameter k=\{1/tsw\} uses 'tsw', "
        r"which the file does not define",
    ):
        load_user_netlist(bad, "thrmem")
    assert main(["probe", "--netlist", str(bad), "--subckt", "thrmem"]) == 1
    err = capsys.readouterr().err
    assert "give tsw a top-level .param in the file" in err and "Traceback" not in err


def test_included_definitions_are_read_relative_to_the_file(tmp_path):
    (tmp_path / "rates.inc").write_text("* shared parameters\n.param gdev=2m unused=1\n")
    (tmp_path / "models.lib").write_text(".lib fast\n.param gfast=3m\n.endl\n.lib slow\n.param gfast=1m\n.endl\n")
    deck = tmp_path / "deck.cir"
    deck.write_text(
        "demo\n.include rates.inc\n.lib 'models.lib' fast\n.subckt dev a b\n"
        "Bm a b I={(gdev+gfast)*V(a,b)}\n.ends dev\nXd 1 0 dev\n.op\n.end\n"
    )
    user = load_user_netlist(deck, "dev")
    assert ".param gdev=2m" in user.device.definition and ".param gfast=3m" in user.device.definition
    assert ("line 2 of rates.inc", ".param unused (not used by subcircuit dev)") in user.ignored
    assert "gfast=1m" not in user.device.definition
    for target in ("/etc/rates.inc", "~/rates.inc", "`cat x`.inc", "$HOME/r.inc"):
        deck.write_text(f".include {target}\n.subckt dev a b\nR1 a b 1k\n.ends dev\n")
        with pytest.raises(NetlistError, match=r"deck.cir:1: .include .*only by a path relative to it"):
            load_user_netlist(deck, "dev")
    deck.write_text(".include missing.inc\n.subckt dev a b\nR1 a b 1k\n.ends dev\n")
    with pytest.raises(NetlistError, match="missing.inc'. no such file next to deck.cir"):
        load_user_netlist(deck, "dev")


def test_ic_outside_subckt_and_spectre_are_refused(tmp_path):
    f = tmp_path / "ic.sub"
    f.write_text(".subckt dev a b\nC1 s 0 1\nR1 a b 1k\n.ends dev\n.ic V(s)=0.1\n")
    with pytest.raises(NetlistError, match=r"ic.sub:5: '.ic' outside the subcircuit.*move it inside"):
        load_user_netlist(f, "dev")
    f.write_text("simulator lang=spectre\n.subckt dev a b\nR1 a b 1k\n.ends dev\n")
    with pytest.raises(NetlistError, match=r"ic.sub:1: 'simulator lang' \(a Spectre file\)"):
        load_user_netlist(f, "dev")


# ---------------------------------------------------------------------------- --vary
def test_vary_moves_a_param_to_the_subckt_line_and_acts():
    user = load_user_netlist(LT, "LTTHR", ports=["TE", "BE"], vary=["kset"])
    header = next(ln for ln in user.device.definition.splitlines() if ln.upper().startswith(".SUBCKT LTTHR "))
    assert "kset=100000.0" in header and user.nominal == {"kset": 1e5}
    slow = pulse_reads(user.device, {"kset": 1e4})[1]
    fast = pulse_reads(user.device, {"kset": 1e5})[1]
    assert fast > 1.5 * slow


def test_vary_errors_name_the_parameter(tmp_path):
    with pytest.raises(NetlistError, match="no parameter 'nope'; its parameters: Gon, Goff"):
        load_user_netlist(PS, "PSINT", vary=["nope"])
    with pytest.raises(NetlistError, match="V0.*is an expression"):
        load_user_netlist(PS, "PSINT", vary=["v0"])


def test_vary_draws_are_seeded_and_clipped_to_declared_range():
    user = load_user_netlist(HS, "hsvcm", vary=["x0"])
    assert user.ranges == {"x0": (0.0, 1.0)}
    spec = Variability({"x0": 3.0}, 0.0, user.nominal, {"x0": user.ranges["x0"]})
    cells = spec.device_overrides(50, seed=1)
    values = np.array([c["x0"] for c in cells])
    assert values.max() == 1.0 and values.min() > 0 and np.unique(values).size > 10
    assert cells == spec.device_overrides(50, seed=1)
    assert Variability({}, 0.0, user.nominal).device_overrides(3, 0) == [None] * 3


def test_variability_record_names_exactly_what_varied():
    spec = Variability({"Gon": 0.15}, 0.0, {"Gon": 1.5e-4})
    assert spec.to_dict() == {
        "d2d": {"Gon": 0.15},
        "c2c": 0.0,
        "distribution": "lognormal",
        "nominal": {"Gon": 1.5e-4},
        "bounds": {},
        "c2c_params": {},
    }
    assert Variability.from_dict(spec.to_dict()) == spec
    assert "Gon sigma(ln) 0.15 around 0.00015" in describe_variability(spec.to_dict())
    assert describe_variability(Variability().to_dict()).startswith("variability: none declared")
    with pytest.raises(ValueError, match="has no cycle-to-cycle port \\(use c2c_params\\)"):
        Variability({"Gon": 0.1}, 0.1, {"Gon": 1.5e-4})


def test_cli_vary_records_spread_and_no_vary_records_none(tmp_path, capsys):
    from rramsim.cosim.cli import main
    from rramsim.devices import DeviceTable

    common = [
        "characterize",
        "--netlist",
        str(PS),
        "--subckt",
        "PSINT",
        "--devices",
        "4",
        "--targets",
        "20u,60u",
        "--retention-time",
        "0",
        "--batch-size",
        "4",
        "--workers",
        "1",
        "-q",
    ]
    assert main(common + ["--vary", "Gon=0.15", "-o", str(tmp_path / "vary.h5")]) == 0
    table = DeviceTable.load(tmp_path / "vary.h5")
    assert table.variability["d2d"] == {"Gon": 0.15} and table.variability["nominal"] == {"Gon": 1.5e-4}
    assert np.all(table.level_stats()["g_std"] > 0)
    assert main(common + ["-o", str(tmp_path / "plain.h5")]) == 0
    plain = DeviceTable.load(tmp_path / "plain.h5")
    assert plain.variability == {
        "d2d": {},
        "c2c": 0.0,
        "distribution": "lognormal",
        "nominal": {},
        "bounds": {},
        "c2c_params": {},
    }
    capsys.readouterr()
    assert main(["table", "show", str(tmp_path / "plain.h5")]) == 0
    assert "variability: none declared" in capsys.readouterr().out
    assert main(["table", "show", str(tmp_path / "vary.h5")]) == 0
    assert "device-to-device log-normal: Gon sigma(ln) 0.15" in capsys.readouterr().out


def test_cli_three_port_error_names_ports_flag(tmp_path, capsys):
    from rramsim.cosim.cli import main

    assert main(["characterize", "--netlist", str(LT), "--subckt", "LTTHR", "-o", str(tmp_path / "x.h5")]) == 1
    err = capsys.readouterr().err
    assert "3 ports (TE BE XSV)" in err and "--ports A,B" in err and "Traceback" not in err


# ---------------------------------------------------------------------------- --c2c-vary
def test_c2c_vary_gives_identical_devices_different_trajectories():
    from rramsim.cosim.campaign import run_campaign
    from rramsim.cosim.writeverify import WriteVerifyScheme

    user = load_user_netlist(LT, "LTTHR", ports=["TE", "BE"], c2c={"kset": 0.5})
    assert user.c2c == {"kset": 0.5} and user.device.controls
    assert "rr_arg_V" in user.device.definition  # the .func argument V no longer swallows V(rr_c2c)
    targets = np.array([20e-6, 60e-6])
    spread = run_campaign(user.device, [None] * 3, targets, WriteVerifyScheme(), 0, 3, workers=1, progress=False)

    def alike(a, b):
        return len(a) == len(b) and np.allclose(a, b, rtol=1e-6)

    assert not alike(spread.reads[0], spread.reads[1]) and not alike(spread.reads[1], spread.reads[2])
    plain = load_user_netlist(LT, "LTTHR", ports=["TE", "BE"]).device
    same = run_campaign(plain, [None] * 3, targets, WriteVerifyScheme(), 0, 3, workers=1, progress=False)
    assert alike(same.reads[0], same.reads[1]) and alike(same.reads[0], same.reads[2])


def test_c2c_vary_refuses_what_a_transient_cannot_vary(tmp_path):
    with pytest.raises(NetlistError, match=r"c2c-vary x0: no source expression"):
        load_user_netlist(LT, "LTTHR", ports=["TE", "BE"], c2c={"x0": 0.1})  # only in .ic
    f = tmp_path / "derived.sub"
    f.write_text(".subckt dev a b params: k=1 r0=1k\n.param k2={k*2}\nR1 a b {r0}\nB1 a b I={k2*V(a,b)}\n.ends dev\n")
    with pytest.raises(NetlistError, match=r"derived.sub:2: --c2c-vary k: it enters the derived parameter\(s\) k2"):
        load_user_netlist(f, "dev", c2c={"k": 0.1})
    with pytest.raises(NetlistError, match=r"derived.sub:3: --c2c-vary r0: it sets the value of element R1"):
        load_user_netlist(f, "dev", c2c={"r0": 0.1})


def test_cli_c2c_vary_is_recorded(tmp_path, capsys):
    from rramsim.cosim.cli import main
    from rramsim.devices import DeviceTable

    out = tmp_path / "c2c.h5"
    assert (
        main(
            [
                "characterize",
                "--netlist",
                str(PS),
                "--subckt",
                "PSINT",
                "--c2c-vary",
                "k=0.3",
                "--devices",
                "2",
                "--targets",
                "30u",
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
    )
    spec = DeviceTable.load(out).variability
    assert spec["d2d"] == {} and spec["c2c_params"] == {"k": 0.3}
    assert "cycle-to-cycle log-normal factor per pulse period: k sigma(ln) 0.3" in capsys.readouterr().out
    assert main(["characterize", "--c2c-vary", "k=0.3", "-o", str(tmp_path / "x.h5")]) == 1
    assert "--c2c-vary applies to a --netlist device" in capsys.readouterr().err


def test_vary_module_parameter_of_veriloga_device(tmp_path, capsys):
    osdi = pytest.importorskip("rramsim.cosim.osdi")
    if not osdi.available() or not Session.get().has_osdi:
        pytest.skip("no OpenVAF compiler or OSDI-capable ngspice here")
    from rramsim.circuits.user_netlist import va_parameter_defaults
    from rramsim.cosim.cli import main
    from rramsim.devices import DeviceTable

    va = DEVICES / "va_state.va"
    assert va_parameter_defaults(va.read_text(), "vastate")["gon"] == ("gon", "150u")
    out = tmp_path / "va.h5"
    assert (
        main(
            [
                "characterize",
                "--veriloga",
                str(va),
                "--module",
                "vastate",
                "--vary",
                "gon=0.2",
                "--devices",
                "3",
                "--targets",
                "40u",
                "--retention-time",
                "0",
                "--batch-size",
                "3",
                "--workers",
                "1",
                "-q",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    table = DeviceTable.load(out)
    assert table.variability["d2d"] == {"gon": 0.2} and table.variability["nominal"] == {"gon": 1.5e-4}
    assert table.level_stats()["g_std"][0] > 0
    capsys.readouterr()
    assert (
        main(
            [
                "characterize",
                "--veriloga",
                str(va),
                "--module",
                "vastate",
                "--vary",
                "nope=0.2",
                "-o",
                str(tmp_path / "x.h5"),
            ]
        )
        == 1
    )
    assert "module vastate of" in capsys.readouterr().err


def test_compat_mode_does_not_leak_into_the_next_deck(tmp_path):
    """psa would override a parameter named vt with the thermal voltage: after an LTspice
    device (ltpsa), a plain ngspice device with its own vt must keep it."""
    pulse_reads(load_user_netlist(LT, "LTTHR", ports=["TE", "BE"]).device)
    f = tmp_path / "vt.cir"
    f.write_text(".subckt vtdev a b params: vt=0.5\nBm a b I={vt*1e-4*V(a,b)}\nCs s 0 1\nRs s 0 1\n.ends vtdev\n")
    user = load_user_netlist(f, "vtdev")
    assert user.dialect == "ngspice"
    assert pulse_reads(user.device)[0] == pytest.approx(0.5e-4, rel=1e-6)


def test_cli_vary_on_builtin_model_names_unknown_parameter(tmp_path, capsys):
    from rramsim.cosim.cli import main

    assert main(["characterize", "--vary", "nope=0.1", "-o", str(tmp_path / "x.h5")]) == 1
    assert "unknown parameter 'nope'; choose from i0" in capsys.readouterr().err
