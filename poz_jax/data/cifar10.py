"""CIFAR-10 from tfds or from local files, with clear errors.

Local layouts read with NumPy alone (``data_dir`` may be any of them, or a
folder holding one):

- ``cifar-10-python.tar.gz`` (the official Python archive) or its extracted
  ``cifar-10-batches-py/`` folder;
- ``cifar-10-binary.tar.gz`` or its extracted ``cifar-10-batches-bin/``;
- ``cifar10_train.npz`` / ``cifar10_test.npz`` with ``x`` (uint8,
  N x 32 x 32 x 3, RGB) and ``y`` (labels).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pickle
import shutil
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from poz_jax.data.errors import DataError

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
ARCHIVE_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
# md5 sums and sizes published for the official archives.
_ARCHIVES = {
    "cifar-10-python.tar.gz": ("c58f30108f718f92721af3b95e74349a", 170498071),
    "cifar-10-binary.tar.gz": ("c32a1d4ab5d03f1284b67883e8d87530", 170052171),
}
SPLIT_FILES = {
    "train": [f"data_batch_{i}" for i in range(1, 6)],
    "test": ["test_batch"],
}
_SPLIT_SIZE = {"train": 50000, "test": 10000}
_RECORD = 1 + 32 * 32 * 3  # label byte + CHW pixels in the binary version


def cifar_scale(images):
    """uint8 ``(..., 32, 32, 3)`` -> float32 in [-1, 1]: ``(x / 255 - 0.5) / 0.5``.

    The LeNet5 input scaling of the authors' code (torchvision's
    ``Normalize((0.5,) * 3, (0.5,) * 3)``); works on NumPy and JAX arrays.
    """
    return (images.astype("float32") / 255.0 - 0.5) / 0.5


def _how_to_get() -> str:
    return (
        "Get CIFAR-10 from "
        f"{CIFAR10_URL} (cifar-10-python.tar.gz) and pass its path with --data-dir, "
        "or install the [tfds] extra on a machine with internet (tfds needs TensorFlow "
        "installed to prepare CIFAR-10)."
    )


def _check_archive(path: Path, name: str | None = None) -> None:
    md5, size = _ARCHIVES[name or path.name]
    if path.stat().st_size != size:
        raise DataError(
            f"{path} is {path.stat().st_size} bytes, but the official archive is {size}: "
            f"the file is truncated or not CIFAR-10. {_how_to_get()}"
        )
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != md5:
        raise DataError(
            f"{path} has md5 {digest.hexdigest()}, expected {md5}: the file is corrupt. "
            + _how_to_get()
        )


def _from_pickle(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = pickle.loads(raw, encoding="bytes")  # noqa: S301 - the official CIFAR format
        data = np.asarray(batch[b"data"])
        labels = np.asarray(batch[b"labels"])
    except Exception as err:
        raise DataError(
            f"{name} is not a readable CIFAR-10 batch ({err}). {_how_to_get()}"
        ) from err
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DataError(f"{name} holds data of shape {data.shape}, expected (N, 3072)")
    return _pixels(data, name).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _pixels(data: np.ndarray, where: str) -> np.ndarray:
    # A cast would wrap 300 to 44 and truncate 2.7 to 2: check, then cast.
    if data.dtype == np.uint8:
        return data
    if data.dtype.kind not in "iuf" or (
        data.size and (not np.all(data == np.round(data)) or data.min() < 0 or data.max() > 255)
    ):
        raise DataError(f"{where}: pixels must be whole numbers in 0..255 (dtype {data.dtype})")
    return data.astype(np.uint8)


def _from_binary(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    if len(raw) % _RECORD:
        raise DataError(f"{name} is {len(raw)} bytes, not a whole number of CIFAR-10 records")
    rec = np.frombuffer(raw, dtype=np.uint8).reshape(-1, _RECORD)
    return rec[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), rec[:, 0].astype(np.int64)


def _read_members(read, names: list[str], parse, where: str):
    xs, ys = [], []
    for name in names:
        try:
            raw = read(name)
        except (KeyError, FileNotFoundError, OSError) as err:
            raise DataError(f"{where} has no {name}. {_how_to_get()}") from err
        x, y = parse(raw, f"{where}/{name}")
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def _load_tar(path: Path, split: str, verify: bool):
    if verify and path.name in _ARCHIVES:
        _check_archive(path)
    binary = "binary" in path.name
    folder = "cifar-10-batches-bin" if binary else "cifar-10-batches-py"
    names = [f"{n}.bin" if binary else n for n in SPLIT_FILES[split]]
    try:
        with tarfile.open(path) as tar:

            def read(name: str) -> bytes:
                member = tar.extractfile(f"{folder}/{name}")
                if member is None:
                    raise KeyError(name)
                return member.read()

            return _read_members(read, names, _from_binary if binary else _from_pickle, str(path))
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DataError(
            f"{path} is not a readable tar.gz archive ({err}). {_how_to_get()}"
        ) from err


def _load_folder(path: Path, split: str):
    binary = path.name == "cifar-10-batches-bin"
    names = [f"{n}.bin" if binary else n for n in SPLIT_FILES[split]]
    return _read_members(
        lambda n: (path / n).read_bytes(),
        names,
        _from_binary if binary else _from_pickle,
        str(path),
    )


def _load_npz(path: Path):
    try:
        with np.load(path, allow_pickle=False) as z:
            x, y = z["x"], z["y"]
    except KeyError as err:
        raise DataError(f"{path} must hold arrays 'x' and 'y'; it lacks {err}") from err
    except Exception as err:  # truncated or bit-flipped: BadZipFile, zlib.error, CRC errors...
        raise DataError(
            f"{path} is not a readable .npz file ({type(err).__name__}: {err}); it may be "
            f"truncated or corrupt. {_how_to_get()}"
        ) from err
    return x, y


def _find_local(data_dir: Path, split: str) -> tuple[str, Path]:
    if data_dir.is_file():
        if data_dir.suffix == ".npz":
            return "npz", data_dir
        return "tar", data_dir
    candidates = [
        ("npz", data_dir / f"cifar10_{split}.npz"),
        ("folder", data_dir if data_dir.name.startswith("cifar-10-batches") else None),
        ("folder", data_dir / "cifar-10-batches-py"),
        ("folder", data_dir / "cifar-10-batches-bin"),
        ("tar", data_dir / "cifar-10-python.tar.gz"),
        ("tar", data_dir / "cifar-10-binary.tar.gz"),
    ]
    for kind, path in candidates:
        if path is not None and path.exists():
            return kind, path
    looked = ", ".join(str(p) for _, p in candidates if p is not None)
    raise DataError(f"no CIFAR-10 {split} data found; looked for {looked}. {_how_to_get()}")


def _validate(x: np.ndarray, y: np.ndarray, split: str, where: str, full: bool):
    if x.ndim != 4 or x.shape[1:] != (32, 32, 3) or x.dtype != np.uint8:
        raise DataError(f"{where}: images must be uint8 (N, 32, 32, 3), got {x.dtype} {x.shape}")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]  # a column of labels, as some exports write them
    if y.ndim != 1:
        raise DataError(f"{where}: labels must be one per image, shape (N,), got {y.shape}")
    if y.dtype.kind not in "iuf" or (y.dtype.kind == "f" and not np.all(y == np.round(y))):
        raise DataError(f"{where}: labels must be whole numbers 0..9, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if len(y) != len(x):
        raise DataError(f"{where}: {len(x)} images but {len(y)} labels")
    if y.size and (y.min() < 0 or y.max() > 9):
        raise DataError(f"{where}: labels must lie in 0..9, got {y.min()}..{y.max()}")
    if full and len(x) != _SPLIT_SIZE[split]:
        raise DataError(
            f"{where}: the {split} split has {len(x)} images, CIFAR-10 has {_SPLIT_SIZE[split]}; "
            "the file is incomplete (pass verify=False to use a subset on purpose)"
        )
    return x, y


def _load_tfds(split: str):
    import tensorflow_datasets as tfds

    try:
        ds = tfds.load("cifar10", split=split, batch_size=-1, as_supervised=True)
        x, y = tfds.as_numpy(ds)
    except Exception as err:  # tfds raises many kinds; all mean "could not get it"
        raise DataError(
            f"tensorflow-datasets could not load CIFAR-10 ({err}); it needs TensorFlow "
            "installed to prepare it. " + _how_to_get()
        ) from err
    return np.asarray(x, np.uint8), np.asarray(y)


def cache_dir() -> Path:
    """Where downloads go: ``$POZ_JAX_CACHE`` or ``~/.cache/poz_jax``."""
    return Path(os.environ.get("POZ_JAX_CACHE", Path.home() / ".cache" / "poz_jax"))


def download_cifar10(folder: Path | None = None, timeout: float = 30.0) -> Path:
    """Download the official ``cifar-10-python.tar.gz`` (170 MB) once; returns its path.

    The archive is md5-checked before it is kept; a failed or partial
    download leaves nothing behind. Raises :class:`DataError` when offline.
    """
    folder = cache_dir() if folder is None else Path(folder)
    path = folder / "cifar-10-python.tar.gz"
    if path.exists():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    try:
        with urllib.request.urlopen(ARCHIVE_URL, timeout=timeout) as resp, tmp.open("wb") as fh:
            shutil.copyfileobj(resp, fh, 1 << 20)
        _check_archive(tmp, name="cifar-10-python.tar.gz")
        os.replace(tmp, path)
    except (OSError, urllib.error.URLError) as err:
        raise DataError(
            f"could not download {ARCHIVE_URL} ({err}). On a machine without internet, "
            f"copy the archive there yourself and pass --data-dir. {_how_to_get()}"
        ) from err
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_cifar10(
    split: str, data_dir: str | Path | None = None, verify: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Load one CIFAR-10 split.

    Args:
      split: ``"train"`` or ``"test"``.
      data_dir: a local copy (see the module docstring); ``None`` uses
        tensorflow-datasets where it is installed, else downloads the official
        archive once into :func:`cache_dir`.
      verify: check the official archives' md5 and size and the split sizes.

    Returns:
      ``(images, labels)``: uint8 ``(N, 32, 32, 3)`` RGB and int64 ``(N,)``.
    """
    if split not in SPLIT_FILES:
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    if data_dir is None:
        if importlib.util.find_spec("tensorflow_datasets") is not None:
            x, y = _load_tfds(split)
            return _validate(x, y, split, "tfds cifar10", verify)
        data_dir = download_cifar10()
    path = Path(data_dir).expanduser()
    if not path.exists():
        raise DataError(f"--data-dir {path} does not exist. {_how_to_get()}")
    kind, found = _find_local(path, split)
    if kind == "npz":
        x, y = _load_npz(found)
    elif kind == "folder":
        x, y = _load_folder(found, split)
    else:
        x, y = _load_tar(found, split, verify)
    return _validate(x, y, split, str(found), verify)
