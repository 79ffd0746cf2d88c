"""DeviceTable HDF5: exact round trip, and a TableError for every kind of bad file."""

import os

import h5py
import numpy as np
import pytest

from rramsim.devices import DeviceTable, TableError


def test_round_trip_is_exact(small_table, tmp_path):
    path = small_table.save(tmp_path / "t.h5")
    back = DeviceTable.load(path)
    assert back == small_table
    assert back.provenance["command"] == "pytest small_table"
    assert back.model["name"] == "hfox" and "nu_set" in back.model
    assert back.variability["c2c"] > 0
    assert ".subckt rram" in back.model_netlist and "write-verify" in back.programming_netlist
    with h5py.File(path) as f:  # plain HDF5, checksummed arrays, required layout
        assert f.attrs["format"] == "rramsim.device_table" and f.attrs["format_version"] == 2
        assert f["programming/g_final"].fletcher32
        assert f["programming/pulses"].dtype == np.int32 and f["programming/converged"].dtype == bool
        assert f["programming"].attrs["tolerance"] == pytest.approx(0.05)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_table_content_is_physical(small_table):
    t = small_table
    assert t.converged.mean() > 0.9
    assert np.all(np.abs(t.g_final.mean(axis=1) - t.targets) < 0.1 * t.targets)
    assert np.all(t.energy > 0) and np.all(t.pulses >= 2)
    assert np.all(t.read_sigma > 0) and np.all(np.diff(t.read_g) > 0)
    # I-V: odd, increasing, super-linear (sinh)
    mid = t.iv_v.size // 2
    assert np.all(np.diff(t.iv_current, axis=1) > 0)
    assert np.allclose(t.iv_current[:, mid], 0, atol=1e-9)
    assert t.retention_ratio[:, -1].max() <= 1.0


def _copy(src, dst):
    dst.write_bytes(src.read_bytes())
    return dst


def test_not_a_table_and_missing_file(tmp_path):
    with pytest.raises(TableError, match="no such file"):
        DeviceTable.load(tmp_path / "missing.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(TableError, match="not a readable HDF5"):
        DeviceTable.load(junk)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(TableError, match="not an rramsim device table"):
        DeviceTable.load(other)


def test_truncated_file(small_table_file, tmp_path):
    data = small_table_file.read_bytes()
    for cut in (len(data) // 2, len(data) - 100, 600):
        bad = tmp_path / f"cut{cut}.h5"
        bad.write_bytes(data[:cut])
        with pytest.raises(TableError):
            DeviceTable.load(bad)


def test_failed_checksum(small_table_file, tmp_path):
    bad = _copy(small_table_file, tmp_path / "flip.h5")
    with h5py.File(bad) as f:
        offset = f["programming/g_final"].id.get_chunk_info(0).byte_offset
    raw = bytearray(bad.read_bytes())
    raw[offset + 3] ^= 0xFF
    bad.write_bytes(bytes(raw))
    with pytest.raises(TableError, match="g_final"):
        DeviceTable.load(bad)


def test_unknown_version_missing_group_and_nan(small_table_file, tmp_path):
    bad = _copy(small_table_file, tmp_path / "v3.h5")
    with h5py.File(bad, "a") as f:
        f.attrs["format_version"] = 3
    with pytest.raises(TableError, match="format_version 3"):
        DeviceTable.load(bad)
    bad = _copy(small_table_file, tmp_path / "noread.h5")
    with h5py.File(bad, "a") as f:
        del f["read"]
    with pytest.raises(TableError, match="/read"):
        DeviceTable.load(bad)
    bad = _copy(small_table_file, tmp_path / "nan.h5")
    with h5py.File(bad, "a") as f:
        g = f["programming/energy"][()]
        g[0, 0] = np.nan
        del f["programming/energy"]
        f.create_dataset("programming/energy", data=g, fletcher32=True)
    with pytest.raises(TableError, match="energy contains NaN"):
        DeviceTable.load(bad)


def test_save_is_atomic_and_keeps_the_old_file_on_failure(small_table, tmp_path):
    path = small_table.save(tmp_path / "keep.h5")
    before = path.read_bytes()
    broken = DeviceTable.__new__(DeviceTable)
    broken.__dict__.update(small_table.__dict__)
    broken.provenance = {"bad": object()}  # h5py cannot store this: save fails midway
    with pytest.raises(TypeError):
        broken.save(path)
    assert path.read_bytes() == before
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    with pytest.raises(TableError, match="does not exist"):
        small_table.save(tmp_path / "nofolder" / "t.h5")


def test_constructor_validates_shapes(small_table):
    import dataclasses

    with pytest.raises(TableError, match="strictly increasing"):
        dataclasses.replace(small_table, targets=small_table.targets[::-1])
    with pytest.raises(TableError, match="pulses has shape"):
        dataclasses.replace(small_table, pulses=small_table.pulses[:, :2])


def test_a_crash_or_hang_inside_the_hdf5_reader_is_a_table_error(small_table_file, monkeypatch):
    # some damage makes the HDF5 C library segfault; the reader runs in a forked child first
    import rramsim.devices.table as table_module

    monkeypatch.setattr(DeviceTable, "_read", classmethod(lambda cls, path: os.kill(os.getpid(), 11)))
    with pytest.raises(TableError, match="crashed reading it.*SIGSEGV"):
        DeviceTable.load(small_table_file)
    import time

    monkeypatch.setattr(DeviceTable, "_read", classmethod(lambda cls, path: time.sleep(30)))
    assert "did not finish" in table_module._probe(small_table_file, timeout=0.5)


def test_a_table_without_read_noise_says_so(tmp_path):
    """A device simulated without a read-noise source records sigma 0; the summary and the
    evaluate header say that inference reads it noiselessly, not a 0.00% noise figure."""
    from rramsim.cosim.cli_inference import hardware_effects
    from rramsim.devices import load_default_table
    from rramsim.models import CrossbarConfig

    t = load_default_table()
    t.read_sigma = np.zeros_like(t.read_sigma)
    assert "read noise: none" in t.summary()
    lines = hardware_effects(CrossbarConfig(), t)
    assert any(line.startswith("hardware off") and "the table has none" in line for line in lines), lines
    # the default table's cell is 1T1R: what its access transistor does beyond the table's I-V is named as left out
    assert t.model["cell"] == "1T1R"
    assert any(line.startswith("hardware off") and "1T1R access transistor" in line for line in lines), lines
    t.model = {**t.model, "cell": "1R"}
    assert not any("access transistor" in line for line in hardware_effects(CrossbarConfig(), t))
