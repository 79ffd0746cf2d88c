"""A state integrated into a Verilog-A variable (published-model style) is lifted onto a
node before OpenVAF compiles it, and simulates like the same model written with a node."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rramsim.circuits.veriloga_lift import LiftError, lift

osdi = pytest.importorskip("rramsim.cosim.osdi")
needs_openvaf = pytest.mark.skipif(not osdi.available(), reason="no OpenVAF compiler here")

DEVICES = Path(__file__).parent / "devices"
GAP_IDT = DEVICES / "va_gap_idt.va"  # gap = idt(...) + clamps, read before; I() of its branch; $rdist_normal
GAP_NODE = DEVICES / "va_gap_node.va"  # the same device with its state on a node by hand
HAND_STEP = DEVICES / "va_hand_step.va"  # w = w + rate * dt with the time kept by hand: not liftable

HEAD = '`include "disciplines.vams"\nmodule m(a, b); inout a, b; electrical a, b;\nparameter real x0 = 0.5;\n'


def test_published_style_state_is_lifted_and_lines_are_kept():
    source = GAP_IDT.read_text()
    lifted = lift(source)
    assert lifted.lifted_variables == ("gap",)
    assert {r.rule for r in lifted.rewrites} == {"range", "random", "lift-state"}
    assert len(lifted.source.splitlines()) == len(source.splitlines())  # compiler messages keep their lines
    text = lifted.source.splitlines()
    begin = next(i for i, ln in enumerate(text) if "analog begin" in ln)
    # where the block begins: the state from the node, then the clamp copied from after the integral
    assert "gap = V(gap_lifted) * gap_lifted_scale; if (gap < g_min) gap = g_min; else if (gap > g_max)" in text[begin]
    assert "idt((rate * (1 + kick)) / gap_lifted_scale, 0) - (g_ini) / gap_lifted_scale" in lifted.source
    assert "from [0: 1]" in lifted.source and "$rdist_normal(" not in lifted.source
    note = next(r for r in lifted.rewrites if r.rule == "lift-state")
    assert note.line == 31 and "read before it (line 28)" in str(note) and "line 32" in str(note)
    with pytest.raises(osdi.OsdiError, match="'gap' .* read before"):
        osdi.check_state_is_a_node(source, GAP_IDT)
    osdi.check_state_is_a_node(lifted.source, GAP_IDT)  # nothing left kept in a variable


@pytest.mark.parametrize(
    "body, why",
    [
        (
            "real w, rate, t_last, dt; analog begin dt = $abstime - t_last; rate = 1e6 * V(a, b);\n"
            " w = w + rate * dt; t_last = $abstime; I(a, b) <+ 1e-4 * w * V(a, b); end",
            "integrated by hand",
        ),
        (
            "real x; analog begin I(a, b) <+ 1e-4 * x * V(a, b);\n x = idt(1e6 * V(a, b), x0);\n"
            " if (x > 1) x = 1;\n if (V(a, b) < -2) x = 0; end",
            "assigned again after its clamps",
        ),
        (
            "real x, top; analog begin I(a, b) <+ 1e-4 * x * V(a, b); top = 1 + V(a, b);\n"
            " x = idt(1e6 * V(a, b), x0);\n if (x > top) x = top; end",
            "clamped to a bound computed in the block",
        ),
        (
            "real x; analog begin I(a, b) <+ 1e-4 * x * V(a, b);\n if (V(a, b) > 0) x = idt(1e6 * V(a, b), x0); end",
            "integrated inside a conditional",
        ),
        (
            "real on; analog begin I(a, b) <+ V(a, b) * (on > 0.5 ? 1e-4 : 1e-5);\n"
            " @(cross(V(a, b) - 1, +1)) on = 1;\n @(cross(V(a, b) + 1, -1)) on = 0; end",
            "held by crossing events",
        ),
    ],
)
def test_state_that_cannot_be_lifted_is_still_refused(body, why):
    source = HEAD + body + "\nendmodule\n"
    assert not lift(source).lifted_variables, why
    with pytest.raises(osdi.OsdiError, match="read before the module assigns"):
        osdi.check_state_is_a_node(lift(source).source, "m.va")


def test_hand_kept_time_step_fixture_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("RRAMSIM_CACHE", str(tmp_path / "cache"))
    with pytest.raises(
        osdi.OsdiError,
        match=r"'t_last' \(line 13\), 'w' \(line 17\) are read before .*"
        r"Make the state a node",
    ):
        osdi.compile_va(HAND_STEP)  # refused before anything is compiled
    assert not (tmp_path / "cache").exists()


def test_idt_initial_condition_is_made_explicit():
    out = lift(
        HEAD + "electrical s;\nanalog begin V(s) <+ idt(1e6 * V(a, b), x0);\n"
        " I(a, b) <+ 1e-3 * V(s) + 1e-6 * idt(V(a, b), 0); end\nendmodule\n"
    )
    assert "V(s) <+ (idt(1e6 * V(a, b), 0) + (x0));" in out.source and "idt(V(a, b), 0);" in out.source
    assert [r.rule for r in out.rewrites] == ["idt-initial-condition"] and out.rewrites[0].line == 5
    with pytest.raises(LiftError, match=r"line 5: idt\(\.\.\., V\(a, b\)\) has an initial condition that is not"):
        lift(HEAD + "electrical s;\nanalog begin V(s) <+ idt(1e6 * V(a, b), V(a, b)); end\nendmodule\n")


def test_random_functions_read_their_mean():
    out = lift(
        HEAD + "real r; integer seed;\nanalog begin seed = $random;\n"
        " r = $rdist_normal(seed, 0.5, 0.1) + $rdist_uniform(seed, 1, 3);\n"
        " I(a, b) <+ 1e-3 * r * V(a, b); end\nendmodule\n"
    )
    assert "seed = 0;" in out.source and "r = (0.5) + (((1) + (3)) / 2);" in out.source
    assert [r.name for r in out.rewrites] == ["$random", "$rdist_normal", "$rdist_uniform"]
    assert all("random variation is off" in str(r) for r in out.rewrites)


def _python(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300)


# One ngspice session (OSDI loads before the first simulation), one drive: SET, read, two
# RESETs, reads; the bench's uic start.
AGREE = """
import sys, numpy as np
from rramsim.cosim.ngspice import Session
from rramsim.cosim.osdi import compile_va
builds = {name: compile_va(path, check_state=False, rewrite=not name.endswith("raw"))
          for name, path in zip(("lifted", "node", "raw", "ic_raw", "ic", "own_branch", "initializer"), sys.argv[1:])}
s = Session.get()
for b in builds.values():
    s.load_osdi(str(b.osdi))
drive = ("pwl(0 0 10n 0.2 1u 0.2 1.01u 1.0 3u 1.0 3.01u 0.2 4u 0.2 4.01u -0.9 6u -0.9 6.01u 0.2 7u 0.2 "
         "7.01u -1.2 9u -1.2 9.01u 0.2 10u 0.2)")
for name, b in builds.items():
    (module,) = b.modules.values()
    out = s.simulate(f"* lift\\n.model m1 {module}\\nN1 d 0 m1\\nVd d 0 {drive}\\n.options method=gear reltol=1e-4\\n"
                     ".end", "tran 10n 10u 0 10n uic", ["time", "i(vd)"])
    print(name, *np.interp(np.linspace(0, 10e-6, 1001), out["time"], -out["i(vd)"]))
"""
IC_MODULE = HEAD.replace("module m(", "module icm(") + (
    "electrical s;\nanalog begin V(s) <+ idt(1e6 * V(a, b), x0); I(a, b) <+ 1e-3 * V(s); end\nendmodule\n"
)
# what OpenVAF does as written, so neither needs a rewrite: a probe of the branch the module
# contributes to is the branch's own current (an implicit equation: 1 kOhm + 1 kOhm), and a
# declaration initializer is the variable's value until it is assigned
OWN_BRANCH = HEAD.replace("module m(", "module ownb(") + (
    "real i0;\nanalog begin i0 = I(a, b); I(a, b) <+ (V(a, b) - 1e3 * i0) / 1e3; end\nendmodule\n"
)
INITIALIZER = HEAD.replace("module m(", "module initv(") + (
    "real k = 2;\nreal y = 5;\nanalog begin if (V(a, b) > 10) y = 1; I(a, b) <+ 1e-3 * k * y * V(a, b); end\n"
    "endmodule\n"
)


@needs_openvaf
def test_lifted_module_simulates_like_the_hand_written_node(tmp_path, monkeypatch):
    monkeypatch.setenv("RRAMSIM_CACHE", str(tmp_path / "cache"))
    raw = tmp_path / "raw.va"  # the fixture as OpenVAF would take it without the lift
    raw.write_text(
        GAP_IDT.read_text()
        .replace("[0, 1]", "[0:1]")
        .replace("(0, 1)", "(0:1)")
        .replace("$rdist_normal(seed, 0, 1)", "0")
        .replace("module gapidt", "module gapraw")
    )
    ic, own, init = tmp_path / "ic.va", tmp_path / "own.va", tmp_path / "init.va"
    ic.write_text(IC_MODULE)
    own.write_text(OWN_BRANCH)
    init.write_text(INITIALIZER)
    proc = _python(AGREE, str(GAP_IDT), str(GAP_NODE), str(raw), str(ic), str(ic), str(own), str(init))
    assert proc.returncode == 0, proc.stderr
    i = {line.split()[0]: np.array(line.split()[1:], float) for line in proc.stdout.splitlines()}
    scale = np.abs(i["node"]).max()
    assert scale > 50e-6 and i["node"][990] < 0.5e-6  # it SET (>50 uA at 1 V), then RESET
    assert np.abs(i["lifted"] - i["node"]).max() < 1e-3 * scale
    assert np.abs(i["raw"] - i["node"]).max() > 0.1 * scale  # as written, OpenVAF reads the gap as 0
    # idt(.., x0 = 0.5): 0.5 mA before the drive moves; OpenVAF alone starts from 0 (measured)
    assert abs(i["ic"][50] - 0.5e-3 - 1e-3 * 0.2 * 1e6 * (0.5e-6 - 5e-9)) < 5e-6
    assert abs(i["ic_raw"][50] - i["ic"][50]) > 0.4e-3
    assert i["own_branch"][50] == pytest.approx(0.2 / 2e3, rel=1e-6)
    assert i["initializer"][50] == pytest.approx(1e-3 * 2 * 5 * 0.2, rel=1e-6)


@needs_openvaf
def test_lifted_fixture_characterizes_from_the_command_line(tmp_path):
    from rramsim.devices import DeviceTable

    out = tmp_path / "gap.h5"
    env = {**__import__("os").environ, "RRAMSIM_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rramsim.cosim.cli",
            "characterize",
            "--veriloga",
            str(GAP_IDT),
            "--devices",
            "2",
            "--targets",
            "20u,80u",
            "--scheme",
            "ispp",
            "--v-start",
            "0.585",
            "--v-step",
            "0.013",
            "--v-max",
            "1.26",
            "--reset-start",
            "0.585",
            "--reset-step",
            "0.013",
            "--reset-max",
            "1.26",
            "--erase",
            "1.26",
            "--pulse-width",
            "1e-7",  # as the probe proposes
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
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert "rramsim: rewrote va_gap_idt.va line 31: 'gap = idt(...)'" in proc.stderr
    table = DeviceTable.load(out)
    assert table.converged.all()
    assert np.all(np.abs(table.g_final - table.targets[:, None]) <= 0.05 * table.targets[:, None])
    assert (
        "gap_lifted" in table.provenance["source_rewrites"] and "$rdist_normal" in table.provenance["source_rewrites"]
    )
    assert "source rewritten before compiling:" in table.summary() and "internal node 'gap_lifted'" in table.summary()


@needs_openvaf
def test_non_liftable_fixture_gets_a_one_paragraph_error(tmp_path):
    out = tmp_path / "hand.h5"
    env = {**__import__("os").environ, "RRAMSIM_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rramsim.cosim.cli",
            "characterize",
            "--veriloga",
            str(HAND_STEP),
            "--devices",
            "1",
            "-q",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "read before the module assigns" in proc.stderr
    assert not out.exists()


def _campaign(reads, amplitudes, targets=(200e-6, 1200e-6)):
    from rramsim.cosim.campaign import CampaignResult

    zeros = np.zeros((len(targets), len(reads)))
    return CampaignResult(
        targets=np.array(targets),
        g_final=zeros,
        pulses=zeros,
        energy=zeros,
        time=zeros,
        converged=zeros.astype(bool),
        amplitudes=amplitudes,
        reads=reads,
        level_end=zeros,
        cell_params=[None] * len(reads),
    )


def test_a_campaign_that_reached_no_target_gets_no_table():
    from rramsim.circuits.testbenches import Device
    from rramsim.cosim.device_checks import DeviceError, check_levels_reached

    lifted = Device(
        "m_dev",
        ".subckt m_dev te be\n.ends m_dev",
        notes=("m.va line 9: 'gap = idt(...)' ... lifted to the internal node 'gap_lifted' ...",),
    )
    # erased, one SET pulse to the top of the window, then no RESET pulse moves it (a wound-up integral)
    wound = _campaign([[5e-6, 1995e-6] + [1995e-6] * 40], [[-4.9, 2.2] + [-3.7 - 0.03 * k for k in range(40)]])
    with pytest.raises(
        DeviceError,
        match=r"reached none of the 2 targets \(200-1200 uS\) on any of the 1 device, .*"
        r"last moved at pulse 2 \(\+2\.2 V, to 1995 uS\); the 40 pulses after it "
        r"\(RESET down to -4\.87 V\) left it there\. Its model clamps a state",
    ):
        check_levels_reached(wound, lifted)
    with pytest.raises(DeviceError, match="stopped responding to the scheme's pulses"):
        check_levels_reached(wound, Device("m_dev", ".subckt m_dev te be\n.ends m_dev"))
    abrupt = _campaign([[5e-6, 5e-6, 1995e-6, 5e-6, 1995e-6]], [[-2.0, 1.0, 1.1, -2.0, 1.0]])
    with pytest.raises(
        DeviceError, match=r"ranged 5-1995 uS, jumping across the targets in a single pulse 3 times.*too abruptly"
    ):
        check_levels_reached(abrupt)
    ok = _campaign([[5e-6, 1995e-6]], [[-2.0, 1.0]])
    ok.converged[0, 0] = True
    check_levels_reached(ok)  # one level reached: the table is written


@needs_openvaf
def test_the_lifted_text_is_what_is_keyed_and_compiled(tmp_path, monkeypatch):
    monkeypatch.setenv("RRAMSIM_CACHE", str(tmp_path / "cache"))
    build = osdi.compile_va(GAP_IDT)
    compiled = build.source.read_text()
    assert "I(gap_lifted) <+ V(gap_lifted) - idt(" in compiled and build.osdi.stem == build.source.stem
    assert [r.rule for r in build.rewrites] == ["range", "random", "lift-state"]
    assert osdi.compile_va(GAP_IDT) == build  # cached under the lifted text's key
    with pytest.raises(osdi.OsdiError, match="OpenVAF could not compile .*expected ':'"):
        osdi.compile_va(GAP_IDT, check_state=False, rewrite=False)  # as written, OpenVAF refuses it
