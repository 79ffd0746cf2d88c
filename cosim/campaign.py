"""Monte Carlo write-verify campaigns: N devices x L levels over worker processes.

Devices are drawn from the variability spec with one seeded generator per device
(``default_rng([seed, device])``), cut into batches of ``batch_size`` cells (25-50 cells
per transient was fastest here), and the batches go to any
``concurrent.futures.Executor``: the default process pool, or a Dask
``Client.get_executor()`` to scale past one machine. Each batch seeds ngspice's own random
draws from (seed, batch), so the table depends only on the seed and batch size, never on
which worker ran what or in what order.
"""
from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from rramsim.circuits.testbenches import Device
from rramsim.cosim.writeverify import BatchResult, BatchSpec, WriteVerifyScheme, run_batch
from rramsim.devices import CompactModel, Variability


@dataclass
class CampaignResult:
    """Raw outcome of a campaign, devices in order."""

    targets: np.ndarray
    g_final: np.ndarray        # [L, N]
    pulses: np.ndarray
    energy: np.ndarray
    time: np.ndarray
    converged: np.ndarray
    amplitudes: list           # per device: signed amplitude of every pulse period
    reads: list                # per device: verify-read G after every period
    level_end: np.ndarray      # [L, N]
    cell_params: list
    retries: int = 0


def device_params(model: CompactModel | None, variability: Variability, n_devices: int, seed: int,
                  scheme: WriteVerifyScheme) -> list[dict | None]:
    """Instance parameters of each device (None for a user's subcircuit, run as written)."""
    if model is None:
        return [None] * n_devices
    extra = {"c2c": variability.c2c, "x0": model.g_max}
    return [dict(variability.sample(model, 1, np.random.default_rng([seed, i]))[0], **extra)
            for i in range(n_devices)]


def c2c_seed(seed: int, device: int) -> list[int]:
    """Seed of device ``device``'s cycle-to-cycle draws (independent of batching)."""
    return [seed, device, 0xC2C]


def make_batches(device: Device, cell_params: Sequence, targets: np.ndarray, scheme: WriteVerifyScheme,
                 seed: int, batch_size: int) -> list[BatchSpec]:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return [BatchSpec(b, device, list(cell_params[start:start + batch_size]), np.asarray(targets), scheme,
                      [c2c_seed(seed, i) for i in range(start, start + len(cell_params[start:start + batch_size]))])
            for b, start in enumerate(range(0, len(cell_params), batch_size))]


def default_executor(workers: int | None = None) -> ProcessPoolExecutor:
    """A process pool with one ngspice session per worker (forked: works from any script)."""
    workers = workers or min(2, os.cpu_count() or 1)
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))


def run_campaign(device: Device, cell_params: Sequence, targets: np.ndarray, scheme: WriteVerifyScheme,
                 seed: int, batch_size: int = 40, executor: Executor | None = None, workers: int | None = None,
                 progress: bool = True) -> CampaignResult:
    """Program every device to every target; batches run on ``executor`` (default: processes)."""
    targets = np.asarray(targets, dtype=float)
    if targets.ndim != 1 or targets.size < 1 or np.any(np.diff(targets) <= 0) or np.any(targets <= 0):
        raise ValueError("targets must be positive and strictly increasing")
    if len(cell_params) < 1:
        raise ValueError("a campaign needs at least one device")
    batches = make_batches(device, cell_params, targets, scheme, seed, batch_size)
    results: dict[int, BatchResult] = {}
    own = executor is None and (workers or 2) > 1 and len(batches) > 1
    bar = tqdm(total=len(cell_params), unit="device", desc="write-verify", disable=not progress)
    try:
        if executor is None and not own:
            for spec in batches:
                results[spec.index] = run_batch(spec)
                bar.update(len(spec.cell_params))
        else:
            pool = default_executor(workers) if own else executor
            try:
                futures = {pool.submit(run_batch, spec): spec for spec in batches}
                for fut in as_completed(futures):
                    res = fut.result()
                    results[res.index] = res
                    bar.update(len(futures[fut].cell_params))
            finally:
                if own:
                    pool.shutdown(cancel_futures=True)
    finally:
        bar.close()
    return merge(results, targets, cell_params)


def merge(results: dict[int, BatchResult], targets: np.ndarray, cell_params: Sequence) -> CampaignResult:
    order = [results[i] for i in sorted(results)]
    cat = lambda name: np.concatenate([getattr(r, name) for r in order], axis=1)  # noqa: E731
    return CampaignResult(
        targets=np.asarray(targets, float), g_final=cat("g_final"), pulses=cat("pulses"), energy=cat("energy"),
        time=cat("time"), converged=cat("converged"), level_end=cat("level_end"),
        amplitudes=[a for r in order for a in r.amplitudes], reads=[g for r in order for g in r.reads],
        cell_params=list(cell_params), retries=sum(r.retries for r in order))
