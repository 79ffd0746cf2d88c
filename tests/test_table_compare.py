"""`rramsim table compare|export` and the built-in published references, on real tables."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rramsim.cosim.cli import main
from rramsim.cosim.compare import compare_tables, sigma_at
from rramsim.cosim.references import REFERENCES, reference
from rramsim.cosim.table_export import fingerprint
from rramsim.devices import DeviceTable, default_table_path

DEFAULT = str(default_table_path())


def run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def round_trip(tmp_path_factory):
    """The shipped default table -> exported CSV -> imported again."""
    folder = tmp_path_factory.mktemp("rt")
    assert main(["table", "export", DEFAULT, "--format", "csv", "-o", str(folder / "csv")]) == 0
    out = folder / "again.h5"
    c = folder / "csv"
    assert (
        main(
            [
                "table",
                "import",
                str(c / "programming.csv"),
                "--read",
                str(c / "read.csv"),
                "--retention",
                str(c / "retention.csv"),
                "--iv",
                str(c / "iv.csv"),
                "--read-voltage",
                "0.2",
                "--tolerance",
                "0.05",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    return folder, out


def test_round_trip_is_the_same_table(round_trip, capsys):
    folder, again = round_trip
    a, b = DeviceTable.load(DEFAULT), DeviceTable.load(again)
    for name in ("g_final", "pulses", "energy", "time", "converged"):
        np.testing.assert_array_equal(
            np.sort(getattr(a, name), axis=1) if name == "g_final" else np.sort(getattr(a, name), axis=1),
            np.sort(getattr(b, name), axis=1),
            err_msg=name,
        )
    for name in (
        "targets",
        "read_g",
        "read_sigma",
        "iv_v",
        "iv_current",
        "retention_t",
        "retention_ratio",
        "retention_sigma",
    ):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert b.unmeasured == frozenset()
    head = (folder / "csv" / "programming.csv").read_text().splitlines()[0]
    assert head.startswith("# exported by rramsim") and f"sha256:{fingerprint(DEFAULT)}" in head
    code, text, err = run(["table", "compare", DEFAULT, str(again)], capsys)
    assert code == 0, err
    reports, _ = compare_tables([DEFAULT, str(again)])
    assert np.all(reports[1].ks == 0) and np.all(reports[1].matched == np.arange(8))
    assert text.count("KS 0.000 (p 1)") == 8 and text.count("KS (first)") == 8


def test_compare_sees_a_wider_spread(tmp_path, capsys):
    """A table whose cells land twice as far from their level mean: KS and sigma say so."""
    a = DeviceTable.load(DEFAULT)
    mean = a.g_final.mean(axis=1, keepdims=True)
    rows = [
        f"{float(t)!r},{float(g)!r}" for k, t in enumerate(a.targets) for g in mean[k] + 2 * (a.g_final[k] - mean[k])
    ]
    csv = tmp_path / "wide.csv"
    csv.write_text("target,g\n" + "\n".join(rows) + "\n")
    wide = tmp_path / "wide.h5"
    assert main(["table", "import", str(csv), "--read-sigma-rel", "0.01", "-o", str(wide)]) == 0
    reports, _ = compare_tables([DEFAULT, str(wide)])
    np.testing.assert_allclose(reports[1].stats["g_std"], 2 * reports[0].stats["g_std"], rtol=1e-9)
    assert np.all(reports[1].ks > 0.15) and np.all(reports[1].ks_p < 1e-3)
    capsys.readouterr()
    code, text, err = run(["table", "compare", DEFAULT, str(wide), "--reference", "wan2022"], capsys)
    assert code == 0, err
    assert "pulses unknown" in text and "energy unknown" in text
    assert "[1] at 1 d: not compared (no /retention group)" in text


def test_levels_matched_by_target(tmp_path, capsys):
    """Only levels with the same target are set side by side (KS); the others stand alone."""
    from rramsim.cosim.table_import import import_table

    a = DeviceTable.load(DEFAULT)
    csv = tmp_path / "two.csv"
    levels = ((10e-6, a.g_final[0]), (25e-6, a.g_final[1] * 1.25))
    csv.write_text("target,g\n" + "".join(f"{t!r},{float(g)!r}\n" for t, row in levels for g in row))
    import_table(csv, read_sigma_rel=0.01).save(tmp_path / "two.h5")
    reports, _ = compare_tables([DEFAULT, str(tmp_path / "two.h5")])
    assert reports[1].matched.tolist() == [0, -1]
    assert reports[1].ks[0] == 0 and np.isnan(reports[1].ks[1])
    code, text, _ = run(["table", "compare", DEFAULT, str(tmp_path / "two.h5")], capsys)
    block = text.split("target 25.00 uS")[1].split("target 30.00 uS")[0]
    mean_us = f"{1e6 * a.g_final[1].mean() * 1.25:.3f}"  # the 25 uS level's cells, as written
    assert code == 0 and f"[1]   {mean_us}" in block and "KS --" in block and "[0]" not in block


def test_reference_curves():
    wan = reference("wan2022")
    g = np.array([10e-6, 40e-6])
    lo, hi = wan.band(g, 1.0)
    # aihwkit's 4th-order fit and CrossSim's cubic at 40 uS: 1.103 vs 1.709 uS (~55% apart)
    np.testing.assert_allclose(lo[1], 1.103e-6, rtol=1e-3)
    np.testing.assert_allclose(hi[1], 1.709e-6, rtol=1e-3)
    np.testing.assert_allclose([lo[0], hi[0]], [2.258e-6, 2.414e-6], rtol=1e-3)
    assert wan.times == [1.0, 86400.0, 172800.0]
    np.testing.assert_allclose(wan.band(np.array([40e-6]), 86400.0)[0], 2.651e-6, rtol=1e-3)
    cmo = reference("cmo")
    lo, hi = cmo.band(np.array([50e-6]), 0.0)
    np.testing.assert_allclose([lo[0], hi[0]], [0.05425e-6, 0.5757e-6], rtol=1e-3)
    relax = 0.04201137 * np.log(86400) + 0.41183342
    lo, hi = cmo.band(np.array([50e-6]), 86400.0)
    np.testing.assert_allclose([lo[0], hi[0]], [relax * 1e-6, np.hypot(relax, 0.5757) * 1e-6], rtol=1e-3)
    milo = reference("milo")
    np.testing.assert_allclose(milo.band(np.array([100e-6]), 0.0)[0], 3.8716e-6, rtol=1e-4)
    assert milo.inside(np.array([40e-6, 100e-6])).tolist() == [False, True]
    assert set(REFERENCES) == {"wan2022", "cmo", "milo"}
    with pytest.raises(ValueError, match="unknown reference 'neurram'"):
        reference("neurram")
    with pytest.raises(ValueError, match="no fit at t = 3600 s"):
        wan.band(g, 3600.0)


def test_compare_with_reference_and_plot(tmp_path, capsys):
    png = tmp_path / "cmp.png"
    code, text, err = run(["table", "compare", DEFAULT, "--reference", "wan2022", "-o", str(png)], capsys)
    assert code == 0, err
    assert png.stat().st_size > 10_000
    assert "reference wan2022" in text and "sigma at 1 s over 4 levels in the window" in text
    reports, ref = compare_tables([DEFAULT], "wan2022")
    v = reports[0].vs_reference[1.0]
    # the default table's programming spread at 10-30 uS is below NeuRRAM's band
    assert v["levels"] == 4 and np.all(v["distance"][:3] < -0.4)
    assert 0 < v["rms"] < 1
    # spread a day later from the drift model: wider than right after programming
    later = sigma_at(reports[0].table, 86400.0)
    assert np.all(later[1] > reports[0].stats["g_std"])
    with pytest.raises(SystemExit):
        main(["table", "compare", DEFAULT, "--reference", "nope"])
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_one_day_drift_against_every_reference(tmp_path, capsys):
    """Without --reference, every table's 1-day sigma is set against each published 1-day fit;
    a table without retention data says it cannot be."""
    t = DeviceTable.load(DEFAULT)
    t.retention_t = t.retention_ratio = t.retention_sigma = None
    t.save(tmp_path / "noret.h5")
    code, text, err = run(["table", "compare", DEFAULT, str(tmp_path / "noret.h5")], capsys)
    assert code == 0, err
    reports, _ = compare_tables([DEFAULT])
    day = sigma_at(reports[0].table, 86400.0)[1]
    g0 = reports[0].stats["g_mean"]
    wan = reports[0].drift["wan2022"]
    mid = reference("wan2022").band(g0, 86400.0)[0]  # one fit at 1 day: the band is a line
    inside = g0 <= 40e-6
    assert wan["levels"] == inside.sum() == 4 and set(reports[0].drift) == {"cmo", "wan2022"}
    np.testing.assert_allclose(wan["rms"], np.sqrt(np.mean((day[inside] / mid[inside] - 1) ** 2)))
    np.testing.assert_allclose(wan["ratio"], np.exp(np.mean(np.log(day[inside] / mid[inside]))))
    assert wan["ratio"] < 1  # the default table drifts less than NeuRRAM
    assert f"[0] cmo: {100 * reports[0].drift['cmo']['rms']:.0f}% over 8 levels" in text
    assert f"wan2022: {100 * wan['rms']:.0f}% over 4 levels, x{wan['ratio']:.2f}" in text
    assert "[1] cmo: not compared (no /retention group); wan2022: not compared (no /retention group)" in text


def test_export_neurosim(tmp_path, capsys):
    out = tmp_path / "mem_states.csv"
    code, _, err = run(["table", "export", DEFAULT, "--format", "neurosim", "-o", str(out)], capsys)
    assert code == 0, err
    lines = out.read_text().splitlines()
    assert lines[0] == "state,mean,std" and len(lines) == 9
    s = DeviceTable.load(DEFAULT).level_stats()
    rows = np.array([[float(x) for x in line.split(",")] for line in lines[1:]])
    np.testing.assert_array_equal(rows[:, 0], np.arange(8))
    np.testing.assert_array_equal(rows[:, 1], s["g_mean"])
    np.testing.assert_array_equal(rows[:, 2], s["g_std"])
    meta = json.loads((tmp_path / "mem_states.csv.json").read_text())
    assert meta["table_sha256"] == fingerprint(DEFAULT) and meta["made_by"].startswith("rramsim ")
    code, _, err = run(
        ["table", "export", DEFAULT, "--format", "neurosim", "-o", str(tmp_path / "no" / "x.csv")], capsys
    )
    assert code == 1 and "does not exist" in err
