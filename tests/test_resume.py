"""Crash-safe campaigns: kill -9 mid-run, resume, and get the uninterrupted table."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from rramsim.cosim.cli import main
from rramsim.devices import DeviceTable, TableError

ARGS = [
    "characterize",
    "--devices",
    "8",
    "--batch-size",
    "1",
    "--workers",
    "1",
    "--targets",
    "10u,40u",
    "--retention-time",
    "0",
    "--seed",
    "4",
    "-q",
]
ARRAYS = ("g_final", "pulses", "energy", "time", "converged", "read_g", "read_sigma", "iv_current")


def test_sigkill_then_resume_gives_the_uninterrupted_table(tmp_path):
    out = tmp_path / "killed.h5"
    parts = tmp_path / "killed.h5.parts"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rramsim.cosim.cli", *ARGS, "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    deadline = time.time() + 120
    while len(list(parts.glob("batch-*.pkl"))) < 3:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline, "campaign made no progress"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = sorted(p.name for p in parts.glob("batch-*.pkl"))
    assert 3 <= len(done) < 8 and not out.exists()
    before = {p: (parts / p).stat().st_mtime_ns for p in done}

    # without --resume the leftover work is not silently thrown away
    assert main([*ARGS, "-o", str(out)]) == 1
    assert main([*ARGS, "--resume", "-o", str(out)]) == 0
    assert not parts.exists()  # cleaned up once the table is written
    resumed = DeviceTable.load(out)

    fresh_out = tmp_path / "fresh.h5"
    assert main([*ARGS, "-o", str(fresh_out)]) == 0
    fresh = DeviceTable.load(fresh_out)
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(resumed, name), getattr(fresh, name), err_msg=name)
    assert before  # finished batches were reused, not recomputed: their files were never rewritten


def test_resume_refuses_another_campaigns_work(tmp_path, capsys):
    out = tmp_path / "t.h5"
    parts = tmp_path / "t.h5.parts"
    parts.mkdir()
    (parts / "campaign.sha256").write_text("0" * 64)
    (parts / "batch-000000.pkl").write_bytes(b"x")
    assert main([*ARGS, "--resume", "-o", str(out)]) == 1
    assert "different campaign" in capsys.readouterr().err


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB tmpfs (needs root, as on the project's machines and CI)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if (
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True).returncode
        != 0
    ):
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_full_disk_is_a_clear_error_and_keeps_the_earlier_file(small_table, tiny_disk):
    path = small_table.save(tiny_disk / "keep.h5")
    before = path.read_bytes()
    fd = os.open(tiny_disk / "filler", os.O_WRONLY | os.O_CREAT)  # fill the disk up
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    with pytest.raises(TableError, match="No space left on device.*earlier file is untouched"):
        small_table.save(path)
    assert path.read_bytes() == before
    assert not [p for p in os.listdir(tiny_disk) if p.endswith(".tmp")]
    assert DeviceTable.load(path) == small_table


def test_a_read_only_folder_is_a_clear_error(small_table, tiny_disk, capsys):
    path = small_table.save(tiny_disk / "keep.h5")
    before = path.read_bytes()
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True)
    with pytest.raises(TableError, match="Read-only file system.*earlier file is untouched|Read-only file system"):
        small_table.save(path)
    assert main([*ARGS, "--devices", "1", "-o", str(path)]) == 1
    assert "Read-only file system" in capsys.readouterr().err
    assert path.read_bytes() == before
