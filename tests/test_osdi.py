"""The default model in Verilog-A (OSDI) against the behavioural netlist: same physics."""
import numpy as np
import pytest

from rramsim.circuits.testbenches import builtin_device
from rramsim.cosim.characterize import iv_sweep
from rramsim.cosim.writeverify import BatchSpec, WriteVerifyScheme, run_batch
from rramsim.devices import CompactModel

osdi = pytest.importorskip("rramsim.cosim.osdi")


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
    np.testing.assert_allclose(b.energy, a.energy, rtol=0.02)   # ∫v·i dt on different time grids


def test_state_in_a_variable_is_refused(tmp_path):
    bad = tmp_path / "bad.va"
    bad.write_text('`include "disciplines.vams"\nmodule m(a, b); inout a, b; electrical a, b;\n'
                   "real x; analog begin x = idt(V(a, b)); I(a, b) <+ x; end\nendmodule\n")
    with pytest.raises(osdi.OsdiError, match="state must be a node"):
        osdi.compile_va(bad)
    with pytest.raises(osdi.OsdiError, match="does not exist"):
        osdi.va_device(tmp_path / "none.va", "m")


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
    proc = subprocess.run([sys.executable, "-m", "rramsim.cosim.cli", "characterize", "--veriloga", str(va),
                           "--module", "mymem", "--devices", "2", "--targets", "10u,40u", "--retention-time", "0",
                           "--workers", "1", "-q", "-o", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    table = DeviceTable.load(out)
    assert table.converged.all() and table.model["name"] == "mymem_dev"
    assert np.all(np.abs(table.g_final - table.targets[:, None]) <= 0.05 * table.targets[:, None])
