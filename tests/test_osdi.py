"""The default model in Verilog-A (OSDI) against the behavioural netlist: same physics."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rramsim.circuits.testbenches import builtin_device
from rramsim.cosim.characterize import iv_sweep
from rramsim.cosim.writeverify import BatchSpec, WriteVerifyScheme, run_batch
from rramsim.devices import CompactModel

osdi = pytest.importorskip("rramsim.cosim.osdi")
needs_openvaf = pytest.mark.skipif(not osdi.available(), reason="no OpenVAF compiler here")


@pytest.fixture(scope="module")
def devices():
    from rramsim.cosim.ngspice import Session

    try:
        va = osdi.builtin_va_device(CompactModel().params())
    except osdi.OsdiError as exc:
        pytest.skip(f"no OpenVAF here: {exc}")
    if not Session.get().has_osdi:
        pytest.skip(f"ngspice {Session.get().version} has no OSDI (needs 41 or newer)")
    return builtin_device(CompactModel().params()), va


def test_iv_sweep_agrees_within_1_percent(devices):
    beh, va = devices
    a, b = iv_sweep(beh), iv_sweep(va)
    i_b = np.interp(a["time"], b["time"], b["i"])
    assert np.max(np.abs(a["i"] - i_b)) < 0.01 * np.abs(a["i"]).max()


def test_write_verify_agrees_within_1_percent(devices):
    beh, va = devices
    targets = np.array([10e-6, 30e-6, 60e-6])
    scheme = WriteVerifyScheme()
    a = run_batch(BatchSpec(0, beh, [None], targets, scheme, [[0]]))
    b = run_batch(BatchSpec(0, va, [None], targets, scheme, [[0]]))
    assert a.converged.all() and b.converged.all()
    np.testing.assert_array_equal(a.pulses, b.pulses)
    np.testing.assert_allclose(b.g_final, a.g_final, rtol=0.01)
    np.testing.assert_allclose(b.energy, a.energy, rtol=0.02)  # ∫v·i dt on different time grids


HEAD = '`include "disciplines.vams"\nmodule m(a, b); inout a, b; electrical a, b;\n'


@pytest.mark.parametrize(
    "body",
    [
        "real x, t_prev, dt; analog begin dt = $abstime - t_prev;\n x = x + V(a, b) * dt;\n"
        " t_prev = $abstime; I(a, b) <+ 1e-3 * x; end",  # by hand
        "real w, rate; analog begin @(initial_step) w = 0.5;\n rate = 1e6 * V(a, b);\n"
        " w = w + rate * 1e-9; I(a, b) <+ 1e-4 * w * V(a, b); end",  # initial_step seed
    ],
)
def test_state_kept_in_a_variable_is_refused(tmp_path, body):
    bad = tmp_path / "bad.va"
    bad.write_text(HEAD + body + "\nendmodule\n")
    with pytest.raises(
        osdi.OsdiError,
        match=r"read before the module assigns .* make the state a node|"
        r"read before the module assigns .*Make the state a node",
    ):
        osdi.compile_va(bad)


@pytest.mark.parametrize(
    "body",
    [
        "real x; analog begin x = idt(V(a, b) / 1e-6, 0); I(a, b) <+ 1e-3 * x; end",  # no feedback: measured exact
        "real x; analog begin x = idt((V(a, b) - x) / 1e-6, 0); I(a, b) <+ 1e-3 * x; end",  # feedback: lifted
        "real k; analog begin @(initial_step) k = 2; I(a, b) <+ 1e-3 * k * V(a, b); end",
        "real g; analog begin if (V(a, b) > 0) g = 1e-3; else g = 2e-3;\n g = min(g, 1.5e-3);\n"
        " I(a, b) <+ g * V(a, b); end",
        "real y; analog function real sq; input u; real u, t; begin t = u * u; sq = t; end endfunction\n"
        "analog begin y = sq(V(a, b)); I(a, b) <+ 1e-3 * y; end",
    ],
)
def test_variables_assigned_before_use_are_accepted(body):
    from rramsim.circuits.veriloga_lift import lift

    osdi.check_state_is_a_node(lift(HEAD + body + "\nendmodule\n").source, "ok.va")


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(osdi.OsdiError, match="does not exist"):
        osdi.va_device(tmp_path / "none.va", "m")


def _mem(ron: float, module: str = "mymem") -> str:
    return USER_VA.replace("ron = 10e3", f"ron = {ron:g}").replace("module mymem", f"module {module}")


@needs_openvaf
def test_cache_is_keyed_by_content_and_module_names_are_unique(tmp_path, monkeypatch):
    monkeypatch.setenv("RRAMSIM_CACHE", str(tmp_path / "cache"))
    for d, ron in (("a", 10e3), ("b", 14e3), ("c", 10e3)):
        (tmp_path / d).mkdir()
        (tmp_path / d / "model.va").write_text(_mem(ron))
    a, b, c = (osdi.compile_va(tmp_path / d / "model.va") for d in "abc")
    assert a.osdi != b.osdi and a.osdi.is_file() and b.osdi.is_file()  # same file name, both kept
    assert a.modules["mymem"] != b.modules["mymem"] and a.modules["mymem"].startswith("mymem_")
    assert c == a  # same text elsewhere: same build
    assert f"module {b.modules['mymem']}(" in b.source.read_text() and "ron = 14000" in b.source.read_text()
    assert "Finished building" in a.log.read_text()
    assert sorted(osdi.cached_libraries()) == sorted([str(a.osdi), str(b.osdi)])


@needs_openvaf
def test_openvaf_error_is_the_first_error_and_the_log_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("RRAMSIM_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "broken.va"
    bad.write_text(
        HEAD + "parameter real r = 1e3;\nanalog begin\n I(a, b) <+ V(a, b) / r + first_missing;\n"
        " I(a, b) <+ second_missing(V(a, b));\nend\nendmodule\n"
    )
    with pytest.raises(osdi.OsdiError) as err:
        osdi.compile_va(bad)
    message = str(err.value)
    assert "\n" not in message and "first_missing" in message and "second_missing" not in message
    assert f"{bad}:5" in message and "1 more error" in message
    log = Path(message.rsplit(" log is in ", 1)[1])
    text = log.read_text()
    assert log.is_file() and "first_missing" in text and "second_missing" in text and ".tmp" not in text


def _python(script: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=timeout)


# Both builds are loaded into one ngspice session (before its first run), where ngspice
# registers OSDI models by module name: each file must still simulate its own build.
SAME_NAME = """
import sys, numpy as np
from rramsim.cosim.characterize import Characterization, characterize
from rramsim.cosim.osdi import va_device
devices = [va_device(path, "mymem") for path in sys.argv[1:]]
for dev in devices:
    t = characterize(Characterization(dev, None, targets=np.array([10e-6, 40e-6]), n_devices=1,
                                      retention_time=0), workers=1, progress=False, command="test")
    print("G", *t.read_g, *t.sweep_current[::50], flush=True)
    print("backend", t.provenance["backend"], t.model_netlist.split("\\n")[1])
"""


def test_same_module_name_in_two_files_gives_two_tables(devices, tmp_path):
    paths = []
    for d, ron in (("one", 10e3), ("two", 14e3)):
        (tmp_path / d).mkdir()
        paths.append(tmp_path / d / "model.va")
        paths[-1].write_text(_mem(ron))
    proc = _python(SAME_NAME, *map(str, paths))
    assert proc.returncode == 0, proc.stderr
    first, second = (np.array(line.split()[1:], float) for line in proc.stdout.splitlines() if line.startswith("G"))
    assert not np.allclose(first, second, rtol=1e-3)
    cards = [line.split()[1:] for line in proc.stdout.splitlines() if line.startswith("backend")]
    assert [c[0] for c in cards] == ["osdi", "osdi"] and cards[0][-1] != cards[1][-1]  # own compiled module each
    # the I-V sweep of the 14 kOhm file carries less current at full SET than the 10 kOhm one
    assert np.abs(second[2:]).max() < np.abs(first[2:]).max()


# The measurement behind the refusal rule: one drive, the same integral three ways.
IDT = """
import sys, numpy as np
from rramsim.cosim.ngspice import Session
from rramsim.cosim.osdi import compile_va
builds = {m: compile_va(p, check_state=False, rewrite=m == "lifted")
          for m, p in zip(("var", "node", "feedback", "lifted"), sys.argv[1:])}
s = Session.get()
for b in builds.values():
    s.load_osdi(str(b.osdi))
for name, b in builds.items():
    (module,) = b.modules.values()
    out = s.simulate(f"* idt\\n.model m1 {module}\\nN1 d 0 m1\\nVd d 0 pwl(0 0 1n 1 2u 1 2.001u -0.5 4u -0.5)\\n.end",
                     "tran 10n 4u 0 10n", ["time", "i(vd)"])
    x = np.interp([2e-6, 4e-6], out["time"], -out["i(vd)"] / 1e-3)
    print(name, *x)
"""
IDT_VAR = HEAD + "real x; analog begin x = idt(V(a, b) / 1e-6, 0); I(a, b) <+ 1e-3 * x; end\nendmodule\n"
IDT_NODE = HEAD.replace("electrical a, b;", "electrical a, b, s;") + (
    "analog begin I(s) <+ ddt(V(s)) - V(a, b) / 1e-6; I(s) <+ 1e-12 * V(s); I(a, b) <+ 1e-3 * V(s); end\nendmodule\n"
)
IDT_FEEDBACK = HEAD + "real x; analog begin x = idt((V(a, b) - x) / 1e-6, 0); I(a, b) <+ 1e-3 * x; end\nendmodule\n"


def test_idt_into_a_variable_integrates_like_a_node_without_feedback(devices, tmp_path):
    paths = []
    for name, text in (("var", IDT_VAR), ("node", IDT_NODE), ("feedback", IDT_FEEDBACK), ("lifted", IDT_FEEDBACK)):
        paths.append(tmp_path / f"{name}.va")
        paths[-1].write_text(text.replace("module m(", f"module idt_{name}("))
    proc = _python(IDT, *map(str, paths))
    assert proc.returncode == 0, proc.stderr
    x = {line.split()[0]: np.array(line.split()[1:], float) for line in proc.stdout.splitlines()}
    exact = np.array([2.0 - 0.0005, 1.0 - 0.0005 + 0.00025])  # integral of the drive / 1 us
    np.testing.assert_allclose(x["node"], exact, rtol=2e-3)
    np.testing.assert_allclose(x["var"], x["node"], rtol=1e-4)  # x = idt(f(V)): accepted, and exact
    relax = np.array([1 - np.exp(-2.0), -0.5 + (1 - np.exp(-2.0) + 0.5) * np.exp(-2.0)])
    assert np.abs(x["feedback"] - relax).max() > 0.5  # x = idt(f(x)) as written: x reads 0
    np.testing.assert_allclose(x["lifted"], relax, atol=2e-3)  # lifted onto a node: the relaxation


USER_VA = """`include "disciplines.vams"
module mymem(p, n);
    inout p, n;
    electrical p, n, s;
    parameter real ron = 10e3, roff = 200e3;
    real v, w, rate;
    analog begin
        v = V(p, n);
        w = min(max(V(s), 0), 1);
        I(p, n) <+ v / (ron * w + roff * (1 - w));
        rate = 2e7 * (v > 0.9 ? (v - 0.9) * (1 - w) : (v < -0.9 ? (v + 0.9) * w : 0));
        I(s) <+ ddt(V(s)) - rate;
        I(s) <+ 1e-9 * V(s);
    end
endmodule
"""


def test_characterize_a_users_verilog_a_device(devices, tmp_path):
    import subprocess
    import sys
    from rramsim.devices import DeviceTable

    va = tmp_path / "mymem.va"
    va.write_text(USER_VA)
    out = tmp_path / "va.h5"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rramsim.cosim.cli",
            "characterize",
            "--veriloga",
            str(va),
            "--module",
            "mymem",
            "--devices",
            "2",
            "--targets",
            "10u,40u",
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
    assert table.converged.all() and table.model["name"] == "mymem_dev"
    assert np.all(np.abs(table.g_final - table.targets[:, None]) <= 0.05 * table.targets[:, None])


# A threshold switch whose state lives in a variable set only while a pulse is on: no read
# comes before an assignment in the text, so the pattern check passes; the campaign shows it.
LATCH = (
    HEAD.replace("module m(", "module latch(")
    + """parameter real gon = 1e-4, goff = 1e-5;
real on;
analog begin
    if (V(a, b) > 1.0) on = 1;
    if (V(a, b) < -1.0) on = 0;
    I(a, b) <+ V(a, b) * (on > 0.5 ? gon : goff);
end
endmodule
"""
)
NEVER_SWITCHES = """
import sys, numpy as np
from rramsim.cosim.characterize import Characterization, characterize
from rramsim.cosim.device_checks import DeviceError
from rramsim.cosim.osdi import va_device
from rramsim.devices.schemes import ISPP
spec = Characterization(va_device(sys.argv[1], "latch"), None, scheme=ISPP(max_pulses=4),
                        targets=np.array([20e-6, 50e-6]), n_devices=1, retention_time=0)
try:
    characterize(spec, workers=1, progress=False, command="test")
except DeviceError as exc:
    print("refused:", exc)
"""


def test_state_the_pattern_misses_is_caught_by_its_symptom(devices, tmp_path):
    va = tmp_path / "latch.va"
    va.write_text(LATCH)
    osdi.check_state_is_a_node(LATCH, va)  # passes the pattern
    proc = _python(NEVER_SWITCHES, str(va))
    assert proc.returncode == 0, proc.stderr
    assert "refused: the device never changed conductance" in proc.stdout, proc.stdout
    assert "10 uS" in proc.stdout and "OpenVAF keeps no variables" in proc.stdout


def test_builtin_backend_auto_is_compiled_when_openvaf_is_here(devices):
    from rramsim.circuits.testbenches import builtin_device

    params = CompactModel().params()
    auto = osdi.builtin_device_for("auto", params)
    assert auto.osdi and auto.osdi == devices[1].osdi and "rram_va_" in auto.definition
    assert osdi.builtin_device_for("behavioural", params) == builtin_device(params)
    with pytest.raises(ValueError, match="backend must be"):
        osdi.builtin_device_for("spectre", params)


# compiled after this process may have simulated: run in a fresh one (ngspice loads OSDI first)
RELAX_VA = """
import sys, numpy as np
from pathlib import Path
from rramsim.circuits.compact_model import INSTANCE_PARAMS, RELAX_PARAMS
from rramsim.circuits.render import instance_params
from rramsim.circuits.retention import RELAX_START, relaxing_device, retention_analysis, retention_deck, sample_times
from rramsim.circuits.testbenches import Device
from rramsim.cosim.ngspice import Session
from rramsim.cosim.osdi import compile_va
from rramsim.devices import CompactModel
build = compile_va(Path(sys.argv[1]))
Session.get().load_osdi(str(build.osdi))
model = CompactModel(r_ret=1e-12).params()
names = list(model) + list(INSTANCE_PARAMS) + list(RELAX_PARAMS)
defaults = dict(model, x0=1.7, c2c=0.0, relax=0.0, relax_t0=0.0, relax_tau=1e-6)
va = Device("rram", f".subckt rram te be c n params: {instance_params(defaults, names)}\\n"
            f".model rram_m {build.modules['rram_relax_va']} " + " ".join(f"{k}={{{k}}}" for k in names)
            + "\\nN1 te be c n rram_m\\n.ends rram", tuple(names), "1R", controls=True, osdi=(str(build.osdi),))
times = [1.0, 100.0]
cells = [dict(model, x0=0.9, noise=0.0, relax=d, relax_t0=RELAX_START, relax_tau=1e-6) for d in (0.01, -0.01)]
for name, device in (("behavioural", relaxing_device(model)), ("osdi", va)):
    out = Session.get().simulate(retention_deck(device, cells, times, 0.2), retention_analysis(times),
                                 ["time", "i(vs0)", "i(vs1)"])
    g = np.array([np.interp(sample_times(times), out["time"], out[f"i(vs{k})"]) for k in range(2)])
    print(name, *(g[:, 1:] / g[:, :1]).reshape(-1))
"""


def test_relaxation_variant_is_rram_va_plus_the_relaxation_and_agrees_with_the_netlist(devices):
    """circuits/veriloga/rram_relax.va is rram.va (left as it is: its builds name every OSDI
    campaign) with the post-programming relaxation's three parameters and term; compiled, a
    relaxing cell reads what the behavioural variant reads, 1 s and 100 s after programming."""
    from importlib.resources import files

    from rramsim.circuits.retention import RELAX_START

    folder = Path(str(files("rramsim.circuits") / "veriloga"))
    plain, relax = ((folder / f).read_text() for f in ("rram.va", "rram_relax.va"))
    body = [line for line in relax.splitlines()[6:] if "parameter real relax" not in line]
    body = (
        "\n".join(body)
        .replace("module rram_relax_va(", "module rram_va(")
        .replace(" + relax * ln(1 + max($abstime - relax_t0, 0) / relax_tau);", ";")
    )
    assert body.splitlines() == plain.splitlines()[2:]

    proc = _python(RELAX_VA, str(folder / "rram_relax.va"))
    assert proc.returncode == 0, proc.stderr
    ratios = {line.split()[0]: np.array(line.split()[1:], float) for line in proc.stdout.splitlines()}
    times = np.array([1.0, 100.0])
    law = np.exp(-np.array([[0.01], [-0.01]]) * np.log1p((times - RELAX_START) / 1e-6) / 0.25).reshape(-1)
    np.testing.assert_allclose(ratios["behavioural"], law, rtol=1e-3)
    np.testing.assert_allclose(ratios["osdi"], ratios["behavioural"], rtol=1e-5)
