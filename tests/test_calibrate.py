"""`rramsim calibrate`: real ngspice campaigns fitted to a target spread."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from rramsim.cosim.calibrate import calibrate, load_calibrated, rising_bound, target_from_reference, target_from_table
from rramsim.cosim.characterize import Characterization, characterize
from rramsim.cosim.cli import main
from rramsim.devices import DeviceTable, preset
from rramsim.devices.schemes import ISPP


def test_reference_targets():
    t = target_from_reference("wan2022", None, None)
    np.testing.assert_allclose(t.targets, [10e-6, 20e-6, 30e-6, 40e-6])
    assert t.times == [1.0, 86400.0] and t.retention_time == 86400.0  # 2 days is past the default
    np.testing.assert_allclose(t.sigma[1.0][-1], (1.103e-6 + 1.709e-6) / 2, rtol=1e-3)
    np.testing.assert_allclose(t.band[1.0][0][-1], 1.103e-6, rtol=1e-3)
    day = target_from_reference("wan2022", [86400.0], np.array([40e-6]))
    np.testing.assert_allclose(day.sigma[86400.0], [2.651e-6], rtol=1e-3)
    with pytest.raises(ValueError, match="outside the wan2022 window"):
        target_from_reference("wan2022", None, np.array([20e-6, 60e-6]))
    with pytest.raises(ValueError, match="no fit at t = 3600"):
        target_from_reference("wan2022", [3600.0], None)


def test_rising_bound():
    """A sigma(G) that rises with G cannot follow one that falls: the floor is the pooled fit."""
    assert rising_bound(np.array([1.0, 2.0, 3.0])) == 0.0
    s = np.array([2.0, 1.0])
    c = (1 / s).sum() / (1 / s**2).sum()  # the best constant, minimizing sum (c/s - 1)^2
    assert rising_bound(s) == pytest.approx(np.sqrt(np.mean((c / s - 1) ** 2)))
    wan = target_from_reference("wan2022", None, None)
    assert rising_bound(wan.sigma[1.0]) > 0.15 and rising_bound(wan.sigma[86400.0]) > 0.15


def test_bad_requests_run_nothing(tmp_path, capsys):
    out = tmp_path / "cal.h5"
    assert main(["calibrate", "-o", str(out)]) == 1
    assert "--target TABLE.h5" in capsys.readouterr().err
    assert main(["calibrate", "--reference", "milo", "--fit", "tolerance,gap", "-o", str(out)]) == 1
    text = capsys.readouterr()
    assert "--fit takes names from tolerance, scale, r_ret, ret_spread" in text.err and "calibrating" not in text.out
    assert not out.exists() and not list(tmp_path.iterdir())


def known_table(tolerance: float, n: int, targets) -> DeviceTable:
    model, variability = preset("hfox")
    spec = Characterization.builtin(
        model,
        variability=variability,
        scheme=ISPP(tolerance=tolerance),
        targets=np.asarray(targets),
        n_devices=n,
        seed=0,
        retention_time=0,
    )
    return characterize(spec, workers=1, progress=False, command="pytest known_table")


def test_one_campaign_then_reuse(tmp_path):
    """CI-sized: a target table, two campaigns of 3 devices; a rerun simulates nothing new."""
    target = target_from_table(known_table(0.1, 3, [30e-6]), "known")
    model, variability = preset("hfox")
    lines = []
    res = calibrate(
        target,
        model,
        variability,
        ISPP(tolerance=0.05),
        n_devices=3,
        max_evals=2,
        workdir=tmp_path / "work",
        workers=1,
        log=lines.append,
    )
    files = sorted(p.name for p in (tmp_path / "work").glob("*.h5"))
    assert len(res.history) >= 2 and 1 <= len(files) <= len(res.history) and len(lines) == len(res.history)
    assert res.error == min(h["rms"] for h in res.history)
    np.testing.assert_allclose(res.table.targets, [30e-6])
    again = calibrate(
        target,
        model,
        variability,
        ISPP(tolerance=0.05),
        n_devices=3,
        max_evals=2,
        workdir=tmp_path / "work",
        workers=1,
        log=lines.append,
    )
    assert sorted(p.name for p in (tmp_path / "work").glob("*.h5")) == files  # every campaign reused
    assert again.params == res.params and again.error == res.error
    assert json.loads((tmp_path / "work" / "history.json").read_text()) == again.history


@pytest.mark.slow
def test_recovers_a_known_tolerance(tmp_path, capsys):
    """A measured-style table made with tolerance 0.12: the calibration finds it within 10%."""
    known = known_table(0.12, 12, [20e-6, 40e-6])
    known.save(tmp_path / "known.h5")
    out = tmp_path / "cal.h5"
    assert (
        main(
            [
                "calibrate",
                "--target",
                str(tmp_path / "known.h5"),
                "--devices",
                "12",
                "--max-evals",
                "6",
                "--workers",
                "1",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    spec = json.loads(out.with_suffix(".variability.json").read_text())
    assert abs(spec["tolerance"] / 0.12 - 1) < 0.10 and spec["rms_relative_error"] < 0.05
    assert "RMS relative error" in text and DeviceTable.load(out).provenance["calibrated_to"].endswith("known.h5")


def relaxing_table(spread: float, seed: int, n: int, targets, retention_devices: int = 8) -> DeviceTable:
    """A measured-style table of the hfox preset whose relaxation rate spreads by ``spread``."""
    model, variability = preset("hfox")
    variability = dataclasses.replace(variability, d2d={**variability.d2d, "r_ret": spread})
    spec = Characterization.builtin(
        model,
        variability=variability,
        scheme=ISPP(tolerance=0.05),
        targets=np.asarray(targets),
        n_devices=n,
        seed=seed,
        retention_time=86400.0,
        retention_devices=retention_devices,
    )
    return characterize(spec, workers=1, progress=False, command="pytest relaxing_table")


def test_recovers_a_known_relaxation_spread_and_characterize_runs_it(tmp_path, capsys):
    """CI-sized: a table made with a relaxation spread of 0.6 (the preset has 0.3); calibrating
    its 1 s and 1 day spread finds 0.6 within 10% (same seeds as the known table: this checks
    the fit, not the sampling; the full run with other seeds is in the calibration report),
    and the variability file it writes makes
    ``characterize --variability`` run that device (recorded in the table's provenance)."""
    relaxing_table(0.6, 0, 2, [30e-6], retention_devices=4).save(tmp_path / "known.h5")
    out = tmp_path / "cal.h5"
    assert (
        main(
            [
                "calibrate",
                "--target",
                str(tmp_path / "known.h5"),
                "--fit",
                "ret_spread",
                "--devices",
                "2",
                "--max-evals",
                "8",
                "--retention-devices",
                "4",
                "--workers",
                "1",
                "-q",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    side = out.with_suffix(".variability.json")
    spec = json.loads(side.read_text())
    assert abs(spec["params"]["ret_spread"] / 0.6 - 1) < 0.10, spec
    assert spec["variability"]["d2d"]["r_ret"] == spec["params"]["ret_spread"] and spec["tolerance"] == 0.05
    assert "t = 86400 s: RMS relative error" in text and "does not fall with G" in text

    table = tmp_path / "again.h5"
    assert (
        main(
            [
                "characterize",
                "--variability",
                str(side),
                "--devices",
                "2",
                "--targets",
                "20u:30u:2",
                "--retention-time",
                "0",
                "--workers",
                "1",
                "-q",
                "-o",
                str(table),
            ]
        )
        == 0
    )
    capsys.readouterr()
    t = DeviceTable.load(table)
    assert t.variability["d2d"] == spec["variability"]["d2d"] and t.scheme["tolerance"] == 0.05
    assert t.provenance["variability_file"] == str(side)
    assert t.provenance["variability_sha256"] == hashlib.sha256(side.read_bytes()).hexdigest()
    assert t.provenance["variability_calibrated_to"].endswith("known.h5")
    model, _, tolerance, _ = load_calibrated(side, "hfox")
    assert model.r_ret == spec["model"]["r_ret"] and tolerance == 0.05

    bad = tmp_path / "bad.h5"
    for argv, message in (
        (["--variability", str(side), "--preset", "taox"], "calibrated for preset 'hfox'"),
        (["--variability", str(side), "--vary", "i0=0.1"], "does not combine"),
        (["--variability", str(tmp_path / "none.json")], "no such file"),
        (["--variability", str(tmp_path / "known.h5")], "not a JSON variability file"),
    ):
        assert main(["characterize", *argv, "-o", str(bad)]) == 1
        assert message in capsys.readouterr().err
    assert not bad.exists()


def test_recovers_a_known_post_programming_relaxation_amplitude(tmp_path, capsys):
    """CI-sized: a table whose device relaxes after programming with amplitude 0.004 nm
    (decay 0.2 nm, tau 1 us; 2 devices, one level, 4 retention cells, same seeds); the
    calibration from 0.0025 nm finds the amplitude within 10% from its 1 s and 1 day spread,
    the variability file carries the relaxation, and ``characterize --variability`` runs it."""
    from rramsim.devices.params import Relaxation

    model, variability = preset("hfox")
    known = dataclasses.replace(variability, relaxation=Relaxation(0.004, 0.2, 1e-6, 0.75))
    spec = Characterization.builtin(
        model,
        variability=known,
        scheme=ISPP(tolerance=0.05),
        targets=np.array([20e-6]),
        n_devices=2,
        seed=0,
        retention_time=86400.0,
        retention_devices=4,
    )
    table = characterize(spec, workers=1, progress=False, command="pytest known relaxation")
    assert table.variability["relaxation"]["amplitude"] == 0.004
    target = target_from_table(table, "known")
    assert target.times == [1.0, 86400.0]
    start = dataclasses.replace(variability, relaxation=Relaxation(0.0025, 0.2, 1e-6, 0.75))
    res = calibrate(
        target,
        model,
        start,
        ISPP(tolerance=0.05),
        fit=("relax_amplitude",),
        n_devices=2,
        max_evals=10,
        workdir=tmp_path / "work",
        workers=1,
        retention_devices=4,
        progress=False,
    )
    assert abs(res.params["relax_amplitude"] / 0.004 - 1) < 0.10, res.history
    assert res.error < 0.05
    # one write-verify campaign for every evaluation: the relaxation does not move it
    assert len(list((tmp_path / "work").glob("program_*.h5"))) == 1

    out = tmp_path / "cal.h5"
    assert (
        main(
            [
                "calibrate",
                "--target",
                _save(table, tmp_path),
                "--fit",
                "relax_amplitude",
                "--devices",
                "2",
                "--max-evals",
                "2",
                "--retention-devices",
                "4",
                "--workers",
                "1",
                "-q",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "post-programming relaxation: amplitude" in text
    side = out.with_suffix(".variability.json")
    relax = json.loads(side.read_text())["variability"]["relaxation"]
    assert relax["amplitude"] > 0 and relax["tau"] > 0
    again = tmp_path / "again.h5"
    assert (
        main(
            [
                "characterize",
                "--variability",
                str(side),
                "--devices",
                "2",
                "--targets",
                "20u:30u:2",
                "--retention-time",
                "1",
                "--workers",
                "1",
                "-q",
                "-o",
                str(again),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert DeviceTable.load(again).variability["relaxation"] == relax


def _save(table: DeviceTable, folder) -> str:
    path = folder / "known.h5"
    table.save(path)
    return str(path)
