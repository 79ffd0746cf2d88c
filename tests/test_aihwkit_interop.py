"""The aihwkit export: the noise core follows the table; inside real aihwkit where installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import ks_2samp

from rramsim.cosim.cli import main
from rramsim.cosim.table_export import fingerprint
from rramsim.devices import DeviceTable, default_table_path
from rramsim.models.aihwkit_noise import TableNoise, drift_rules, export_arrays, load_arrays
from rramsim.models.programming import DevicePhysics

DEFAULT = str(default_table_path())
MEASURED = Path(__file__).resolve().parent.parent / "examples" / "measured"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    path = tmp_path_factory.mktemp("aihw") / "default.aihwkit.npz"
    assert main(["table", "export", DEFAULT, "--format", "aihwkit", "-o", str(path)]) == 0
    return path


def test_export_file(exported, capsys):
    a = load_arrays(exported)
    assert str(a["table_sha256"]) == fingerprint(DEFAULT) and str(a["made_by"]).startswith("rramsim ")
    t = DeviceTable.load(DEFAULT)
    np.testing.assert_allclose(a["targets_us"], t.targets * 1e6)
    np.testing.assert_allclose(a["rel_error"], np.sort(t.g_final / t.targets[:, None] - 1, axis=1))
    capsys.readouterr()
    assert main(["table", "export", DEFAULT, "--format", "aihwkit", "-o", str(exported.with_suffix(".txt"))]) == 1
    assert "name it *.npz" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not an rramsim aihwkit export"):
        np.savez(exported.with_name("other.npz"), x=np.zeros(2))
        load_arrays(exported.with_name("other.npz"))


def test_programming_follows_each_level(exported):
    torch.manual_seed(0)
    t = DeviceTable.load(DEFAULT)
    noise = TableNoise(load_arrays(exported))
    for k in range(t.n_levels):
        g = noise.program(torch.full((4000,), t.targets[k] * 1e6, dtype=torch.float64)).numpy() * 1e-6
        res = ks_2samp(g, t.g_final[k])
        assert res.statistic < 0.05, (k, res)
    # a target between two levels is written to the nearest level, as rramsim's mapping does
    k = int(np.argmin(np.abs(t.targets - 47e-6)))
    near = noise.program(torch.full((4000,), 47.0, dtype=torch.float64)).numpy() * 1e-6
    assert ks_2samp(near, t.g_final[k]).statistic < 0.05
    # kept continuous, its spread is between the two levels'
    mid = (
        TableNoise(load_arrays(exported), quantize=False)
        .program(torch.full((20000,), 45.0, dtype=torch.float64))
        .numpy()
    )
    s = t.g_final.std(axis=1) / t.targets * 45.0
    assert s[3] * 0.9 < mid.std() < s[4] * 1.1


def test_drift_rules_are_rramsims(exported):
    t = DeviceTable.load(DEFAULT)
    phys = DevicePhysics(t, 0.2)
    level = torch.arange(t.n_levels)
    for time in (0.3, 1.0, 50.0, 86400.0, 1e6):
        r0 = phys.drift_factor(time, level, torch.zeros(t.n_levels), 0.0, 0.0, 1.0).numpy()
        r1 = phys.drift_factor(time, level, torch.ones(t.n_levels), 0.0, 0.0, 1.0).numpy()
        r, s = drift_rules(time, t.retention_t, t.retention_ratio, t.retention_sigma)
        np.testing.assert_allclose(r, r0, rtol=1e-12)
        np.testing.assert_allclose(s, r1 - r0, rtol=1e-9, atol=1e-15)
    noise = TableNoise(export_arrays(t))
    g0 = torch.full((20000,), 40.0, dtype=torch.float64)
    g = noise.drift(g0, g0, 86400.0)
    r, s = drift_rules(86400.0, t.retention_t, t.retention_ratio, t.retention_sigma)
    assert float(g.mean()) == pytest.approx(40.0 * r[3], rel=0.01)
    no_ret = export_arrays(t)
    for k in ("retention_t", "retention_ratio", "retention_sigma"):
        no_ret.pop(k)
    with pytest.raises(ValueError, match="no retention data"):
        TableNoise(no_ret).drift(g0, g0, 10.0)


def test_inside_aihwkit(exported):
    """Programmed conductances inside aihwkit's inference tile follow the table."""
    pytest.importorskip("aihwkit", reason="aihwkit is an optional extra (builds from source)")
    from aihwkit.nn import AnalogLinear
    from aihwkit.simulator.configs import InferenceRPUConfig, WeightNoiseType, WeightClipType

    from rramsim.models.aihwkit_noise import TableNoiseModel

    torch.manual_seed(0)
    t = DeviceTable.load(DEFAULT)
    model = TableNoiseModel.from_file(exported)
    rpu = InferenceRPUConfig(noise_model=model)
    rpu.forward.is_perfect = True
    rpu.forward.w_noise_type = WeightNoiseType.NONE
    rpu.clip.type = WeightClipType.NONE
    rpu.drift_compensation = None
    layer = AnalogLinear(2000, 1, bias=False, rpu_config=rpu)
    w = torch.ones(1, 2000)  # every weight at the full scale: g+ on the top level
    layer.set_weights(w)
    layer.eval()
    layer.program_analog_weights()
    tile = next(layer.analog_tiles())
    w_prog = tile.get_weights()[0] if isinstance(tile.get_weights(), tuple) else tile.get_weights()
    g_top = t.targets[0] + (t.targets[-1] - t.targets[0]) * w_prog.reshape(-1).double().numpy()
    # w = (g+ - g-) / (g_max - g_min) with g- programmed at the bottom level: compare the difference
    rng = np.random.default_rng(0)
    ref = t.targets[0] + rng.choice(t.g_final[-1], 2000) - rng.choice(t.g_final[0], 2000)
    assert ks_2samp(g_top, ref).statistic < 0.06


@pytest.fixture(scope="module")
def measured_table(tmp_path_factory):
    """A table imported from the example chip measurements (4 levels, 6 cells a level)."""
    path = tmp_path_factory.mktemp("chip") / "chip.h5"
    assert (
        main(
            [
                "table",
                "import",
                str(MEASURED / "programming.csv"),
                "--read",
                str(MEASURED / "read.csv"),
                "--retention",
                str(MEASURED / "retention.csv"),
                "--tolerance",
                "0.05",
                "-o",
                str(path),
            ]
        )
        == 0
    )
    return str(path)


def test_a_network_inside_aihwkit_matches_rramsims_accuracy(measured_table, capsys):
    """The shipped LeNet-5 inside aihwkit (`evaluate --simulator aihwkit`) and on rramsim's
    crossbars, the same 1000 MNIST test images, within 1 pp: on the default table (8 levels)
    and on a measured-style table of 4 levels, where writing only the table's levels costs
    both simulators the same ~2 pp."""
    pytest.importorskip("aihwkit", reason="aihwkit is an optional extra (builds from source)")

    def accuracy(text):
        return float(next(ln for ln in text.splitlines() if ln.startswith("accuracy")).split()[1])

    for table in (DEFAULT, measured_table):
        args = [
            "evaluate",
            "--table",
            table,
            "--trials",
            "2",
            "--subset",
            "1000",
            "--seed",
            "0",
            "-q",
            "--threads",
            "1",
            "--no-fetch",
        ]
        assert main([*args, "--simulator", "aihwkit"]) == 0
        inside = capsys.readouterr().out
        # like for like: aihwkit's tiles have Ohmic cells without IR drop, rramsim's default has both
        assert main([*args, "--ir-drop", "off", "--cell-iv", "linear"]) == 0
        own = capsys.readouterr().out
        assert "inside aihwkit" in inside and "inside aihwkit" not in own
        a, b = accuracy(inside), accuracy(own)
        assert 90.0 < a <= 100.0 and 90.0 < b <= 100.0
        assert abs(a - b) <= 1.0, (table, a, b)
    # aihwkit cannot run rramsim's wire and I-V models: asking for them there is refused
    assert main([*args, "--simulator", "aihwkit", "--ir-drop", "exact"]) == 1
    assert "without rramsim's IR-drop and cell I-V models" in capsys.readouterr().err


def test_reads_at_zero_without_retention_and_drifts_by_the_written_level():
    """t = 0 is a read only (a table without retention still evaluates); a quantized cell's
    drift follows the level it was written to, not the target it was asked for."""
    t = DeviceTable.load(DEFAULT)
    arrays = export_arrays(t)
    no_ret = {k: v for k, v in arrays.items() if not k.startswith("retention")}
    torch.manual_seed(0)
    g = torch.full((20000,), 40.0, dtype=torch.float64)
    read = TableNoise(no_ret).drift(g, g, 0.0)
    sigma = float(np.interp(40.0, arrays["read_g_us"], arrays["read_sigma_us"]))
    assert float(read.mean()) == pytest.approx(40.0, rel=2e-3)
    assert float(read.std()) == pytest.approx(sigma, rel=0.05)
    noise = TableNoise(arrays)
    asked = torch.full((20000,), 34.5, dtype=torch.float64)  # written to the 30 uS level
    level = noise.written(asked)
    assert float(level[0]) == pytest.approx(30.0)
    r, _ = drift_rules(1e6, arrays["retention_t"], arrays["retention_ratio"], arrays["retention_sigma"])
    k = int(np.argmin(np.abs(arrays["targets_us"] - 30.0)))
    drifted = noise.drift(level, level, 1e6)
    assert float(drifted.mean()) == pytest.approx(30.0 * r[k], rel=0.01)


def test_rpu_config_refuses_bad_resolutions():
    pytest.importorskip("aihwkit", reason="aihwkit is an optional extra (builds from source)")
    from rramsim.models.aihwkit_noise import rpu_config

    for bits in (0, 1, 30, 8.0):
        with pytest.raises(ValueError, match="adc_bits must be an integer from 2 to 24"):
            rpu_config(DeviceTable.load(DEFAULT), adc_bits=bits)


def test_rpu_config_scales_columns_per_tile_rramsim_per_output():
    """The documented difference of the column scale: aihwkit one per tile column (per block
    of ``tile`` inputs), rramsim one per output over all its rows."""
    pytest.importorskip("aihwkit", reason="aihwkit is an optional extra (builds from source)")
    from aihwkit.nn.conversion import convert_to_analog as aihwkit_analog

    from rramsim.models import CrossbarConfig
    from rramsim.models.aihwkit_noise import rpu_config
    from rramsim.models.tile import TileEngine

    torch.manual_seed(0)
    table = DeviceTable.load(DEFAULT)
    lin = torch.nn.Linear(256, 2, bias=False)
    with torch.no_grad():
        lin.weight.uniform_(-1, 1)
        lin.weight[:, 128:] *= 0.1  # the second block of 128 inputs: weights 10x smaller
    full = lin.weight.detach().abs().amax(1).double()
    analog = aihwkit_analog(torch.nn.Sequential(lin), rpu_config(table, tile=128))
    scales = [t.get_mapping_scales().detach().reshape(-1).double() for t in analog[0].analog_tiles()]
    assert len(scales) == 2
    torch.testing.assert_close(scales[0], full, rtol=1e-5, atol=0)
    torch.testing.assert_close(scales[1], lin.weight.detach()[:, 128:].abs().amax(1).double(), rtol=1e-5, atol=0)
    engine = TileEngine(table, CrossbarConfig(tile_rows=128, tile_cols=128), 2, 256)
    _, w_scale = engine.encode(lin.weight.detach())
    torch.testing.assert_close(w_scale, full)
