"""Shared fixtures: one small real characterization reused by the table/CLI/plot tests."""

from __future__ import annotations

import numpy as np
import pytest

from rramsim.cosim.characterize import Characterization, characterize
from rramsim.devices import preset


@pytest.fixture
def one_thread():
    """torch on one thread for the test (2 shared cores: one thread is many times faster)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def small_spec() -> Characterization:
    model, variability = preset("hfox")
    return Characterization.builtin(
        model,
        variability=variability,
        n_devices=6,
        seed=3,
        targets=np.array([10e-6, 30e-6, 60e-6]),
        batch_size=3,
        retention_time=1e3,
        retention_devices=2,
    )


@pytest.fixture(scope="session")
def small_table(small_spec):
    return characterize(small_spec, workers=1, progress=False, command="pytest small_table")


@pytest.fixture(scope="session")
def small_table_file(small_table, tmp_path_factory):
    path = tmp_path_factory.mktemp("tables") / "small.h5"
    small_table.save(path)
    return path


def pytest_configure(config):
    """Compile the built-in Verilog-A model before any ngspice session exists: ngspice can
    load OSDI libraries only before its first circuit (the session loads the cache at start)."""
    try:
        from rramsim.cosim.osdi import OsdiError, builtin_va_device
        from rramsim.devices import CompactModel

        builtin_va_device(CompactModel().params())
    except (ImportError, OsdiError):
        pass
