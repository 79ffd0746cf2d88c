"""`rramsim table import`: measured CSV/.npz -> DeviceTable, through the real CLI and real HDF5."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from rramsim.cosim.cli import main
from rramsim.cosim.table_import import MeasurementError, import_table
from rramsim.devices import DeviceTable

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "measured"
TARGETS = np.array([10e-6, 20e-6, 30e-6, 40e-6])


def example_files() -> dict[str, str]:
    """The README's example measurement files, as a lab would write them: one row per cell
    with die/row/col bookkeeping (ignored by the import), SI units, 4 levels x 6 cells."""
    rng = np.random.default_rng(14)
    lines = [
        "# wafer W07, 1T1R test array, write-verify to 5%; conductances read at 0.2 V",
        "die,row,col,target,g,pulses,energy,time,converged",
    ]
    for k, t in enumerate(TARGETS):
        for c in range(6):
            g = t * (1 + rng.normal(0, 0.02 + 0.005 * k))
            pulses = int(rng.integers(6, 25))
            lines.append(
                f"3,{k},{c},{t:.0e},{g:.4e},{pulses},{pulses * 7.5e-12 * (1 + k):.3e},"
                f"{pulses * 100e-9:.2e},{int(abs(g / t - 1) <= 0.05)}"
            )
    read = ["g,sigma"] + [f"{g:.1e},{0.012 * g + 0.05e-6:.3e}" for g in (5e-6, 15e-6, 25e-6, 35e-6, 45e-6)]
    ret = ["target,t,ratio"]
    for t in TARGETS:
        for time in (1.0, 3600.0, 86400.0):
            for c in range(3):
                r = (time ** -(0.004 + 0.01 * 10e-6 / t)) * (1 + rng.normal(0, 0.003 * np.log10(10 * time)))
                ret.append(f"{t:.0e},{time:g},{r:.5f}")
    return {
        "programming.csv": "\n".join(lines) + "\n",
        "read.csv": "\n".join(read) + "\n",
        "retention.csv": "\n".join(ret) + "\n",
    }


def test_example_files_are_current():
    """The files under examples/measured are the ones this test generates (regenerate with
    RRAMSIM_WRITE_EXAMPLES=1)."""
    files = example_files()
    if os.environ.get("RRAMSIM_WRITE_EXAMPLES"):
        EXAMPLES.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (EXAMPLES / name).write_text(text)
    for name, text in files.items():
        assert (EXAMPLES / name).read_text() == text, f"examples/measured/{name} is stale"


def run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_import_example(tmp_path, capsys):
    out = tmp_path / "chip.h5"
    code, text, err = run(
        [
            "table",
            "import",
            str(EXAMPLES / "programming.csv"),
            "--read",
            str(EXAMPLES / "read.csv"),
            "--retention",
            str(EXAMPLES / "retention.csv"),
            "--tolerance",
            "0.05",
            "-o",
            str(out),
        ],
        capsys,
    )
    assert code == 0, err
    t = DeviceTable.load(out)
    assert t.n_levels == 4 and t.n_devices == 6
    np.testing.assert_allclose(t.targets, TARGETS)
    assert t.unmeasured == frozenset()
    assert t.scheme["scheme"] == "measured" and t.scheme["tolerance"] == 0.05
    assert np.isnan(t.scheme["read_voltage"]) and t.iv_v.size == 0  # no I-V measured: none made up
    src = json.loads(t.provenance["source_files"])
    assert set(src) == {"programming", "read", "retention"} and "sha256:" in src["programming"]
    assert "assumptions" not in t.provenance
    # the data are the file's data: level 2's outcomes, sorted
    rows = [l.split(",") for l in (EXAMPLES / "programming.csv").read_text().splitlines()[2:]]
    g2 = sorted(float(r[4]) for r in rows if float(r[3]) == 30e-6)
    np.testing.assert_array_equal(t.g_final[2], g2)
    assert t.retention_t.tolist() == [1.0, 3600.0, 86400.0]
    ratios = [
        float(l.split(",")[2])
        for l in (EXAMPLES / "retention.csv").read_text().splitlines()[1:]
        if l.startswith("4e-05,86400,")
    ]
    assert t.retention_ratio[3, 2] == pytest.approx(np.mean(ratios))
    assert t.retention_sigma[3, 2] == pytest.approx(np.std(ratios))
    assert "not measured:" not in text and "I-V: not measured" in text


def test_missing_optional_columns_are_unmeasured_and_costs_unknown(tmp_path, capsys):
    import torch
    from torch import nn

    from rramsim.models import CrossbarConfig, convert_to_analog, cost_report
    from rramsim.models.programming import DevicePhysics

    csv = tmp_path / "cells.csv"
    rng = np.random.default_rng(0)
    csv.write_text(
        "target,g,extra_note\n"
        + "".join(f"{t:g},{t * (1 + 0.03 * rng.normal()):.5e},x\n" for t in TARGETS for _ in range(5))
    )
    out = tmp_path / "m.h5"
    code, _, err = run(["table", "import", str(csv), "--read-sigma-rel", "0.01", "-o", str(out)], capsys)
    assert code == 0, err
    t = DeviceTable.load(out)
    assert t.unmeasured == {"pulses", "energy", "time", "converged"}
    assert json.loads(t.provenance["assumptions"]) == ["read noise not measured: sigma = 0.01 x G (--read-sigma-rel)"]
    np.testing.assert_allclose(t.read_sigma, 0.01 * TARGETS)
    s = t.level_stats()
    assert (
        np.all(np.isnan(s["pulses_mean"])) and np.all(np.isnan(s["energy_mean"])) and np.all(np.isnan(s["converged"]))
    )
    assert "not measured: converged, energy, pulses, time" in t.summary()
    phys = DevicePhysics(t, 0.2)
    res = phys.sample(torch.zeros(3, dtype=torch.long), torch.rand(3), torch.ones(3), 0.0, 0.0)
    assert torch.isnan(res["pulses"]).all() and torch.isnan(res["energy"]).all() and torch.isnan(res["time"]).all()
    assert torch.isfinite(res["g"]).all()
    model = convert_to_analog(nn.Sequential(nn.Linear(6, 3)), t, CrossbarConfig())
    rep = cost_report(model)
    assert np.isnan(rep.program_energy) and any("programming cost unknown" in n for n in rep.notes)
    with pytest.warns(UserWarning, match="no I-V data.*Ohmic"):  # the default asks for the I-V: Ohmic cells
        phys = DevicePhysics(t, 0.2, nonlinear_iv=True)
    assert phys.iv_coef.tolist() == [[1.0, 0.0, 0.0]] * t.n_levels
    from rramsim.cosim.plots import plot_iv, plot_levels

    with pytest.raises(ValueError, match="no I-V data"):
        plot_iv(t, tmp_path / "iv.png")
    assert plot_levels(t, tmp_path / "levels.png").stat().st_size > 5000  # tolerance unknown: no shading


def test_blank_optional_column_is_unmeasured(tmp_path):
    csv = tmp_path / "cells.csv"
    csv.write_text("target,g,energy,pulses\n10e-6,10.1e-6,,4\n10e-6,9.9e-6,,5\n")
    t = import_table(csv, read_sigma_rel=0.01)
    assert t.unmeasured == {"energy", "time", "converged"} and t.pulses.tolist() == [[5, 4]]  # sorted by g
    assert "column 'energy' is blank in every row: not measured" in t.provenance["import_notes"]
    csv.write_text("target,g,energy\n10e-6,10.1e-6,1e-12\n10e-6,9.9e-6,\n")
    with pytest.raises(MeasurementError, match="line 3, column 'energy': is empty"):
        import_table(csv, read_sigma_rel=0.01)
    csv.write_text("target;g\n10e-6;10.1e-6\n10e-6;9.9e-6\n")
    with pytest.raises(MeasurementError, match="separated by ';' or tabs"):
        import_table(csv, read_sigma_rel=0.01)


def test_no_read_noise_is_an_error_naming_the_fix(tmp_path, capsys):
    csv = tmp_path / "cells.csv"
    csv.write_text("target,g\n10e-6,10.1e-6\n10e-6,9.9e-6\n")
    out = tmp_path / "m.h5"
    code, _, err = run(["table", "import", str(csv), "-o", str(out)], capsys)
    assert code == 1 and "--read FILE" in err and "--read-sigma-rel 0.01" in err
    assert not out.exists()


def test_level_column_with_targets_and_npz(tmp_path, capsys):
    rng = np.random.default_rng(1)
    level = np.repeat(np.arange(4), 8)
    g = TARGETS[level] * (1 + 0.02 * rng.normal(size=level.size))
    csv = tmp_path / "cells.csv"
    csv.write_text("level,g\n" + "".join(f"{l},{float(x)!r}\n" for l, x in zip(level, g)))
    out = tmp_path / "a.h5"
    code, _, err = run(
        ["table", "import", str(csv), "--targets", "10u:40u:4", "--read-sigma-rel", "0", "-o", str(out)], capsys
    )
    assert code == 0, err
    a = DeviceTable.load(out)
    npz = tmp_path / "cells.npz"
    np.savez(npz, level=level, g=g, pulses=np.full(level.size, 7), targets=TARGETS)
    out2 = tmp_path / "b.h5"
    code, _, err = run(["table", "import", str(npz), "--read-sigma-rel", "0", "-o", str(out2)], capsys)
    assert code == 0, err
    b = DeviceTable.load(out2)
    np.testing.assert_array_equal(a.g_final, b.g_final)
    assert b.unmeasured == {"energy", "time", "converged"} and np.all(b.pulses == 7)
    code, _, err = run(["table", "import", str(csv), "--read-sigma-rel", "0", "-o", str(out)], capsys)
    assert code == 1 and "pass --targets" in err


def test_unequal_cell_counts_keep_evenly_spaced_ranks(tmp_path):
    csv = tmp_path / "cells.csv"
    rows = [(10e-6, 10e-6 + k * 1e-8) for k in range(9)] + [(20e-6, 20e-6 + k * 1e-8) for k in range(3)]
    csv.write_text("target,g\n" + "".join(f"{t!r},{g!r}\n" for t, g in rows))
    t = import_table(csv, read_sigma_rel=0.01)
    assert t.n_devices == 3
    np.testing.assert_allclose(t.g_final[0], [10e-6, 10.04e-6, 10.08e-6])  # min, median, max: real cells
    assert json.loads(t.provenance["import_notes"]) == ["level 0: 9 cells kept as 3 evenly spaced ranks"]


def test_repeated_reads_and_pooling(tmp_path):
    rng = np.random.default_rng(2)
    reads = tmp_path / "reads.csv"
    cells = [12e-6, 30e-6]
    data = {c: c * (1 + 0.01 * rng.normal(size=20)) for c in cells}
    reads.write_text("g,read\n" + "".join(f"{c!r},{float(r)!r}\n" for c in cells for r in data[c]))
    prog = tmp_path / "cells.csv"
    prog.write_text("target,g\n10e-6,10e-6\n10e-6,10.2e-6\n")
    t = import_table(prog, read=reads)
    np.testing.assert_allclose(t.read_g, cells)
    np.testing.assert_allclose(t.read_sigma, [np.std(data[c], ddof=1) for c in cells])
    many = tmp_path / "many.csv"
    gs = np.linspace(5e-6, 50e-6, 40)
    many.write_text(
        "g,read\n" + "".join(f"{float(c)!r},{float(c * (1 + 0.01 * z))!r}\n" for c in gs for z in rng.normal(size=4))
    )
    t = import_table(prog, read=many)
    assert t.read_g.size == 16 and np.all(np.diff(t.read_g) > 0)
    assert "pooled into 16" in t.provenance["import_notes"]


def test_iv_needs_read_voltage_and_imports(tmp_path, capsys):
    prog = tmp_path / "cells.csv"
    prog.write_text("target,g\n10e-6,10e-6\n10e-6,10.1e-6\n20e-6,20e-6\n20e-6,20.2e-6\n")
    iv = tmp_path / "iv.csv"
    v = np.linspace(-0.3, 0.3, 7)
    iv.write_text(
        "level,v,i\n"
        + "".join(
            f"{k},{float(x)!r},{float(t * x * (1 + x * x))!r}\n" for k, t in enumerate((10e-6, 20e-6)) for x in v[::-1]
        )
    )
    with pytest.raises(MeasurementError, match="--read-voltage"):
        import_table(prog, read_sigma_rel=0.01, iv=iv)
    t = import_table(prog, read_sigma_rel=0.01, iv=iv, read_voltage=0.2)
    np.testing.assert_allclose(t.iv_v, v)
    np.testing.assert_allclose(t.iv_current[1], 20e-6 * v * (1 + v * v))
    bad = tmp_path / "iv_bad.csv"
    bad.write_text(
        "level,v,i\n" + "".join(f"{k},{float(x)!r},1e-6\n" for k in (0, 1) for x in (v if k == 0 else v[:-1]))
    )
    with pytest.raises(MeasurementError, match="level 1 .* other voltages"):
        import_table(prog, read_sigma_rel=0.01, iv=bad, read_voltage=0.2)


def test_retention_needs_every_time_for_every_level(tmp_path):
    prog = tmp_path / "cells.csv"
    prog.write_text("target,g\n10e-6,10e-6\n10e-6,10.1e-6\n20e-6,20e-6\n20e-6,20.2e-6\n")
    ret = tmp_path / "ret.csv"
    ret.write_text("target,t,ratio,sigma\n10e-6,1,0.99,0.01\n10e-6,100,0.97,0.02\n20e-6,1,0.99,0.01\n")
    with pytest.raises(MeasurementError, match=r"no retention data for level 1 .* t = 100 s"):
        import_table(prog, read_sigma_rel=0.01, retention=ret)
    ret.write_text(
        "target,t,ratio,sigma\n10e-6,1,0.99,0.01\n10e-6,100,0.97,0.02\n20e-6,1,0.99,0.01\n20e-6,100,0.98,0.015\n"
    )
    t = import_table(prog, read_sigma_rel=0.01, retention=ret)
    np.testing.assert_allclose(t.retention_ratio, [[0.99, 0.97], [0.99, 0.98]])


GOOD = "target,g,pulses,converged\n10e-6,10.1e-6,5,1\n10e-6,9.9e-6,6,1\n20e-6,20.1e-6,7,1\n20e-6,19.8e-6,9,0\n"


@pytest.mark.parametrize(
    "text, extra, message",
    [
        ("target,pulses\n10e-6,3\n10e-6,4\n", [], "missing column(s) 'g'"),
        ("g,pulses\n10e-6,3\n10e-6,4\n", [], "missing column(s) 'target'"),
        (GOOD.replace("9.9e-6", "abc"), [], "line 3, column 'g': 'abc' is not a number"),
        (GOOD.replace("9.9e-6", ""), [], "line 3, column 'g': is empty"),
        (GOOD.replace("20.1e-6", "nan"), [], "line 4, column 'g': nan is not a finite number"),
        (GOOD.replace("19.8e-6", "-19.8e-6"), [], "line 5, column 'g': -19.8e-6 must be > 0"),
        (GOOD.replace("19.8e-6", "0"), [], "line 5, column 'g': 0 must be > 0"),
        (GOOD.replace("20.1e-6", "20.1"), [], "line 4, column 'g': 20.1 is >= 1 S: conductances are in siemens"),
        (GOOD.replace("20e-6,19.8e-6", "30e-6,19.8e-6"), [], "level 1 (target 2e-05 S) has 1 cell(s)"),
        (GOOD.replace("target,g,pulses", "target,g,g"), [], "column 'g' appears twice in the header (columns 2 and 3)"),
        (GOOD.replace(",7,1", ",7.5,1"), [], "line 4, column 'pulses': 7.5 must be a whole number"),
        (GOOD.replace(",9,0", ",9,2"), [], "line 5, column 'converged': 2 must be 0 or 1"),
        (GOOD.replace(",6,1", ",6"), [], "line 3 has 3 fields, the header has 4"),
        ("", [], "empty file"),
        (
            "level,g\n0,10e-6\n0,11e-6\n1,20e-6\n1,21e-6\n",
            ["--targets", "20u,10u"],
            "targets must be strictly increasing; target 2 (1e-05 S) follows 2e-05 S",
        ),
        (
            "level,g\n0,10e-6\n0,11e-6\n2,20e-6\n2,21e-6\n",
            ["--targets", "10u,20u"],
            "line 4, column 'level': 2 is beyond the 2 targets",
        ),
    ],
)
def test_bad_programming_files(tmp_path, capsys, text, extra, message):
    csv = tmp_path / "bad.csv"
    csv.write_text(text)
    out = tmp_path / "never.h5"
    code, _, err = run(["table", "import", str(csv), "--read-sigma-rel", "0.01", *extra, "-o", str(out)], capsys)
    assert code == 1
    assert message in err, err
    assert str(csv) in err or "targets" in err
    assert not out.exists() and not list(tmp_path.glob(".never.h5*"))


def test_bad_npz_files(tmp_path):
    npz = tmp_path / "bad.npz"
    np.savez(npz, level=np.array([0, 0, 1, 1]), g=np.array([1e-5, 1e-5, 2e-5, 2e-5]), targets=np.array([2e-5, 1e-5]))
    with pytest.raises(MeasurementError, match="array 'targets': targets must be strictly increasing"):
        import_table(npz, read_sigma_rel=0.01)
    np.savez(npz, target=np.array([1e-5, 1e-5, 2e-5]), g=np.array([1e-5, np.nan, 2e-5, 2e-5]))
    with pytest.raises(MeasurementError, match="columns differ in length"):
        import_table(npz, read_sigma_rel=0.01)
    np.savez(npz, target=np.array([1e-5, 1e-5]), g=np.array([1e-5, np.nan]))
    with pytest.raises(MeasurementError, match="entry 1, column 'g': nan is not a finite number"):
        import_table(npz, read_sigma_rel=0.01)
    npz.write_bytes(b"not a zip")
    with pytest.raises(MeasurementError, match="not a readable .npz"):
        import_table(npz, read_sigma_rel=0.01)


def test_bad_read_files(tmp_path):
    prog = tmp_path / "cells.csv"
    prog.write_text(GOOD)
    read = tmp_path / "read.csv"
    read.write_text("g,sigma\n10e-6,1e-7\n10e-6,2e-7\n")
    with pytest.raises(MeasurementError, match="line 3, column 'g': 1e-05 S appears twice"):
        import_table(prog, read=read)
    read.write_text("g,read\n10e-6,10.1e-6\n20e-6,20e-6\n20e-6,20.1e-6\n")
    with pytest.raises(MeasurementError, match="line 2: the cell at g = 1e-05 S has 1 read"):
        import_table(prog, read=read)
    read.write_text("g,noise\n10e-6,1e-7\n")
    with pytest.raises(MeasurementError, match="missing column.*'sigma'"):
        import_table(prog, read=read)
    with pytest.raises(MeasurementError, match="not both"):
        import_table(prog, read=read, read_sigma_rel=0.01)
