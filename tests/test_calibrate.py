"""`rramsim calibrate`: real ngspice campaigns fitted to a target spread."""
from __future__ import annotations

import json

import numpy as np
import pytest

from rramsim.cosim.calibrate import calibrate, target_from_reference, target_from_table
from rramsim.cosim.characterize import Characterization, characterize
from rramsim.cosim.cli import main
from rramsim.devices import DeviceTable, preset
from rramsim.devices.schemes import ISPP


def test_reference_targets():
    t = target_from_reference("wan2022", None, None)
    np.testing.assert_allclose(t.targets, [10e-6, 20e-6, 30e-6, 40e-6])
    np.testing.assert_allclose(t.sigma[-1], (1.103e-6 + 1.709e-6) / 2, rtol=1e-3)
    day = target_from_reference("wan2022", 86400.0, np.array([40e-6]))
    np.testing.assert_allclose(day.sigma, [2.651e-6], rtol=1e-3)
    with pytest.raises(ValueError, match="outside the wan2022 window"):
        target_from_reference("wan2022", None, np.array([20e-6, 60e-6]))


def test_bad_requests_run_nothing(tmp_path, capsys):
    out = tmp_path / "cal.h5"
    assert main(["calibrate", "-o", str(out)]) == 1
    assert "--target TABLE.h5" in capsys.readouterr().err
    assert main(["calibrate", "--reference", "milo", "--fit", "tolerance,gap", "-o", str(out)]) == 1
    text = capsys.readouterr()
    assert "--fit takes names from tolerance, scale" in text.err and "calibrating" not in text.out
    assert not out.exists() and not list(tmp_path.iterdir())


def known_table(tolerance: float, n: int, targets) -> DeviceTable:
    model, variability = preset("hfox")
    spec = Characterization.builtin(model, variability=variability, scheme=ISPP(tolerance=tolerance),
                                    targets=np.asarray(targets), n_devices=n, seed=0, retention_time=0)
    return characterize(spec, workers=1, progress=False, command="pytest known_table")


def test_one_campaign_then_reuse(tmp_path):
    """CI-sized: a target table, two campaigns of 3 devices; a rerun simulates nothing new."""
    target = target_from_table(known_table(0.1, 3, [30e-6]), "known")
    model, variability = preset("hfox")
    lines = []
    res = calibrate(target, model, variability, ISPP(tolerance=0.05), n_devices=3, max_evals=2,
                    workdir=tmp_path / "work", workers=1, log=lines.append)
    files = sorted(p.name for p in (tmp_path / "work").glob("*.h5"))
    assert len(res.history) >= 2 and 1 <= len(files) <= len(res.history) and len(lines) == len(res.history)
    assert res.error == min(h["rms"] for h in res.history)
    np.testing.assert_allclose(res.table.targets, [30e-6])
    again = calibrate(target, model, variability, ISPP(tolerance=0.05), n_devices=3, max_evals=2,
                      workdir=tmp_path / "work", workers=1, log=lines.append)
    assert sorted(p.name for p in (tmp_path / "work").glob("*.h5")) == files       # every campaign reused
    assert again.params == res.params and again.error == res.error
    assert json.loads((tmp_path / "work" / "history.json").read_text()) == again.history


@pytest.mark.slow
def test_recovers_a_known_tolerance(tmp_path, capsys):
    """A measured-style table made with tolerance 0.12: the calibration finds it within 10%."""
    known = known_table(0.12, 12, [20e-6, 40e-6])
    known.save(tmp_path / "known.h5")
    out = tmp_path / "cal.h5"
    assert main(["calibrate", "--target", str(tmp_path / "known.h5"), "--devices", "12", "--max-evals", "6",
                 "--workers", "1", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    spec = json.loads(out.with_suffix(".variability.json").read_text())
    assert abs(spec["tolerance"] / 0.12 - 1) < 0.10 and spec["rms_relative_error"] < 0.05
    assert "RMS relative error" in text and DeviceTable.load(out).provenance["calibrated_to"].endswith("known.h5")
