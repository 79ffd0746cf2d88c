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

import hashlib
import multiprocessing
import os
import pickle
import shutil
from collections.abc import Sequence
from concurrent.futures import BrokenExecutor, Executor, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from rramsim.cosim.files import atomic_write
from rramsim.circuits.testbenches import Device
from rramsim.cosim.ngspice import SimulationError
from rramsim.cosim.writeverify import BatchResult, BatchSpec, WriteVerifyScheme, run_batch
from rramsim.devices import CompactModel, Variability


@dataclass
class CampaignResult:
    """Raw outcome of a campaign, devices in order."""

    targets: np.ndarray
    g_final: np.ndarray  # [L, N]
    pulses: np.ndarray
    energy: np.ndarray
    time: np.ndarray
    converged: np.ndarray
    amplitudes: list  # per device: signed amplitude of every pulse period
    reads: list  # per device: verify-read G after every period
    level_end: np.ndarray  # [L, N]
    cell_params: list
    retries: int = 0
    gates: list = field(default_factory=list)  # per device: word-line voltage of every pulse period
    widths: list = field(default_factory=list)  # per device: pulse width of every period


def device_params(model: CompactModel | None, variability: Variability, n_devices: int, seed: int) -> list[dict | None]:
    """Instance parameters of each device. A user's subcircuit gets only its varied
    parameters (``--vary``), or None: run as written."""
    if model is None:
        if variability.nominal is None:  # no spread declared for this device
            return [None] * n_devices
        return variability.device_overrides(n_devices, seed)
    extra = {"c2c": variability.c2c, "x0": model.g_max}
    return [dict(variability.sample(model, 1, np.random.default_rng([seed, i]))[0], **extra) for i in range(n_devices)]


def c2c_seed(seed: int, device: int) -> list[int]:
    """Seed of device ``device``'s cycle-to-cycle draws (independent of batching)."""
    return [seed, device, 0xC2C]


def make_batches(
    device: Device, cell_params: Sequence, targets: np.ndarray, scheme: WriteVerifyScheme, seed: int, batch_size: int
) -> list[BatchSpec]:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return [
        BatchSpec(
            b,
            device,
            list(cell_params[start : start + batch_size]),
            np.asarray(targets),
            scheme,
            [c2c_seed(seed, i) for i in range(start, start + len(cell_params[start : start + batch_size]))],
        )
        for b, start in enumerate(range(0, len(cell_params), batch_size))
    ]


def default_executor(workers: int | None = None) -> ProcessPoolExecutor:
    """A process pool with one ngspice session per worker (forked: works from any script)."""
    workers = workers or min(2, os.cpu_count() or 1)
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))


def run_campaign(
    device: Device,
    cell_params: Sequence,
    targets: np.ndarray,
    scheme: WriteVerifyScheme,
    seed: int,
    batch_size: int = 40,
    executor: Executor | None = None,
    workers: int | None = None,
    progress: bool = True,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
) -> CampaignResult:
    """Program every device to every target; batches run on ``executor`` (default: processes).

    With ``checkpoint`` (a folder), every finished batch is written there durably as it
    arrives, so a crash or ``kill -9`` loses at most the batches in flight; ``resume=True``
    takes the finished batches from there and computes only the rest (the result is
    identical to an uninterrupted run).
    """
    targets = np.asarray(targets, dtype=float)
    if targets.ndim != 1 or targets.size < 1 or np.any(np.diff(targets) <= 0) or np.any(targets <= 0):
        raise ValueError("targets must be positive and strictly increasing")
    if len(cell_params) < 1:
        raise ValueError("a campaign needs at least one device")
    batches = make_batches(device, cell_params, targets, scheme, seed, batch_size)
    store = BatchStore(checkpoint, fingerprint(batches), resume) if checkpoint is not None else None
    results: dict[int, BatchResult] = store.load() if store else {}
    todo = [spec for spec in batches if spec.index not in results]

    def finished(res: BatchResult) -> None:
        results[res.index] = res
        if store:
            store.save(res)

    own = executor is None and (workers or 2) > 1 and len(todo) > 1
    bar = tqdm(
        total=len(cell_params),
        unit="device",
        desc="write-verify",
        disable=not progress,
        initial=sum(len(b.cell_params) for b in batches if b.index in results),
    )
    try:
        if executor is None and not own:
            for spec in todo:
                finished(run_batch(spec))
                bar.update(len(spec.cell_params))
        else:
            pool = default_executor(workers) if own else executor
            try:
                futures = {pool.submit(run_batch, spec): spec for spec in todo}
                for fut in as_completed(futures):
                    try:
                        res = fut.result()
                    except BrokenExecutor as exc:
                        raise SimulationError(
                            f"write-verify batch {futures[fut].index}",
                            "a worker process died "
                            f"while simulating ({exc}): ngspice crashed on this device; run with "
                            "--workers 1 to see ngspice's message",
                        ) from None
                    finished(res)
                    bar.update(len(futures[fut].cell_params))
            finally:
                if own:
                    pool.shutdown(cancel_futures=True)
    except BaseException:
        if store:
            store.discard_if_empty()  # nothing finished: leave no checkpoint folder behind
        raise
    finally:
        bar.close()
    return merge(results, targets, cell_params)


def fingerprint(batches: Sequence[BatchSpec]) -> str:
    """A digest of everything that determines a campaign's results."""
    h = hashlib.sha256()
    for b in batches:
        h.update(pickle.dumps((b.index, b.device, b.cell_params, np.asarray(b.targets).tobytes(), b.scheme, b.seeds)))
    return h.hexdigest()


class BatchStore:
    """Finished batches of one campaign, one file each, written atomically in ``folder``."""

    def __init__(self, folder: str | os.PathLike, digest: str, resume: bool) -> None:
        self.folder = Path(folder)
        self.digest = digest
        stamp = self.folder / "campaign.sha256"
        if self.folder.exists() and any(self.folder.glob("batch-*.pkl")):
            if not resume:
                raise ValueError(
                    f"{self.folder} holds finished batches of an interrupted campaign: pass "
                    "--resume to continue it, or delete the folder to start again"
                )
            if not stamp.is_file() or stamp.read_text().strip() != digest:
                raise ValueError(
                    f"{self.folder} belongs to a different campaign (other devices, seed, targets, "
                    "scheme or batch size); delete it or rerun with the original settings"
                )
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write(stamp, digest, fsync=True)
        except OSError as exc:
            raise ValueError(f"cannot write campaign checkpoints in {self.folder}: {exc.strerror or exc}") from None

    def load(self) -> dict[int, BatchResult]:
        out = {}
        for path in sorted(self.folder.glob("batch-*.pkl")):
            try:
                with open(path, "rb") as f:
                    res = pickle.load(f)
            except Exception:  # a torn file cannot be: writes are atomic; skip anything odd
                continue
            out[res.index] = res
        return out

    def save(self, res: BatchResult) -> None:
        try:
            atomic_write(self.folder / f"batch-{res.index:06d}.pkl", pickle.dumps(res), fsync=True)
        except OSError as exc:
            raise ValueError(
                f"cannot save finished batch {res.index} in {self.folder}: "
                f"{exc.strerror or exc} (the batches saved so far are kept)"
            ) from None

    def discard_if_empty(self) -> None:
        """Remove the folder when it holds no finished batch (a campaign that failed early)."""
        if not any(self.folder.glob("batch-*.pkl")):
            shutil.rmtree(self.folder, ignore_errors=True)


def merge(results: dict[int, BatchResult], targets: np.ndarray, cell_params: Sequence) -> CampaignResult:
    order = [results[i] for i in sorted(results)]
    cat = lambda name: np.concatenate([getattr(r, name) for r in order], axis=1)  # noqa: E731
    return CampaignResult(
        targets=np.asarray(targets, float),
        g_final=cat("g_final"),
        pulses=cat("pulses"),
        energy=cat("energy"),
        time=cat("time"),
        converged=cat("converged"),
        level_end=cat("level_end"),
        amplitudes=[a for r in order for a in r.amplitudes],
        reads=[g for r in order for g in r.reads],
        cell_params=list(cell_params),
        retries=sum(r.retries for r in order),
        gates=[x for r in order for x in getattr(r, "gates", [])],
        widths=[x for r in order for x in getattr(r, "widths", [])],
    )
