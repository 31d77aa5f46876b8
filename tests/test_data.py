"""CIFAR-10 loading from every local layout, with clear errors for bad data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from poz_jax.data import DataError, load_cifar10
from poz_jax.data.synthetic import write_fake_cifar10

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10"


@pytest.mark.parametrize("layout", ["npz", "python", "python-folder", "binary", "binary-folder"])
def test_layouts_round_trip(tmp_path, layout):
    where, written = write_fake_cifar10(tmp_path, layout, n_train=25, n_test=7, seed=3)
    for split in ("train", "test"):
        x, y = load_cifar10(split, where, verify=False)
        np.testing.assert_array_equal(x, written[split][0])
        np.testing.assert_array_equal(y, written[split][1])
        assert x.dtype == np.uint8 and x.shape[1:] == (32, 32, 3) and y.dtype == np.int64


def test_missing_folder_names_what_was_looked_for(tmp_path):
    with pytest.raises(DataError, match="no CIFAR-10 test data found; looked for"):
        load_cifar10("test", tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        load_cifar10("test", tmp_path / "nowhere")


def test_incomplete_split_is_refused_when_verifying(tmp_path):
    where, _ = write_fake_cifar10(tmp_path, "npz", n_train=10, n_test=10)
    with pytest.raises(DataError, match="the test split has 10 images, CIFAR-10 has 10000"):
        load_cifar10("test", where)


def test_corrupt_files_give_one_clear_message(tmp_path):
    (tmp_path / "cifar10_test.npz").write_bytes(b"not a zip file")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_cifar10("test", tmp_path)
    bad = tmp_path / "t" / "cifar-10-python.tar.gz"
    bad.parent.mkdir()
    bad.write_bytes(os.urandom(1000))
    with pytest.raises(DataError, match="truncated or not CIFAR-10"):
        load_cifar10("test", bad.parent)
    with pytest.raises(DataError, match="not a readable tar.gz"):
        load_cifar10("test", bad.parent, verify=False)


def test_wrong_shapes_and_labels(tmp_path):
    np.savez(tmp_path / "cifar10_test.npz", x=np.zeros((4, 32, 32), np.uint8), y=np.zeros(4))
    with pytest.raises(DataError, match=r"uint8 \(N, 32, 32, 3\)"):
        load_cifar10("test", tmp_path, verify=False)
    np.savez(tmp_path / "cifar10_test.npz", x=np.zeros((4, 32, 32, 3), np.uint8), y=[0, 1, 2, 10])
    with pytest.raises(DataError, match="labels must lie in 0..9"):
        load_cifar10("test", tmp_path, verify=False)
    np.savez(tmp_path / "cifar10_test.npz", images=np.zeros((4, 32, 32, 3), np.uint8))
    with pytest.raises(DataError, match="must hold arrays 'x' and 'y'"):
        load_cifar10("test", tmp_path, verify=False)


def test_offline_download_fails_fast_with_advice(tmp_path, monkeypatch):
    import urllib.request

    def refuse(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setenv("POZ_JAX_CACHE", str(tmp_path))
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(DataError, match="could not download .* pass --data-dir"):
        load_cifar10("test")
    assert not list(tmp_path.iterdir())  # no partial file left behind


@pytest.mark.skipif(not SHARED.exists(), reason="needs ../shared/data/cifar10")
def test_real_cifar10_test_split():
    x, y = load_cifar10("test", SHARED)
    assert x.shape == (10000, 32, 32, 3)
    np.testing.assert_array_equal(np.bincount(y, minlength=10), np.full(10, 1000))
