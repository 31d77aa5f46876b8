"""A model's activations in the field's files: thingsvision, Net2Brain, plain NumPy.

:func:`load_features` reads one layer's activations of ``n`` images as
``(n, n_nodes)``:

- thingsvision's output: a folder holding ``features.npy`` or
  ``features.hdf5`` (dataset ``features``) and ``file_names.txt`` (one image
  per line, the rows' order), or such a ``features`` file itself;
- Net2Brain's consolidated per-layer ``.npz`` (one array per image, keyed by
  the image's name);
- a plain ``.npy`` ``(n, ...)`` or an ``.npz`` holding one array.

Feature maps ``(n, ...)`` are flattened to one node per unit. When image
names are given (``items``), rows are put in that order by the file's own
names, and a difference between the two is refused.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from poz_jax.data.errors import DataError

THINGSVISION_FILES = ("features.npy", "features.hdf5", "features.h5")
NAMES_FILE = "file_names.txt"


@dataclasses.dataclass(frozen=True)
class Features:
    """``array`` ``(n, n_nodes)`` float, ``items`` (``n`` image names, or None) and
    ``layout`` (which reader read it)."""

    array: np.ndarray
    items: tuple[str, ...] | None
    layout: str


def _stem(name: str) -> str:
    # thingsvision writes paths relative to its root; Net2Brain keys by file stem.
    return Path(name.strip()).stem


def _thingsvision(path: Path) -> tuple[np.ndarray, tuple[str, ...] | None]:
    if path.suffix == ".npy":
        a = np.load(path, allow_pickle=False)
    else:
        import h5py

        with h5py.File(path, "r") as f:
            if "features" not in f:
                raise DataError(f"{path}: no 'features' dataset (it has {sorted(f)})")
            a = np.asarray(f["features"][()])
    names_file = path.parent / NAMES_FILE
    names = None
    if names_file.is_file():
        names = tuple(ln.strip() for ln in names_file.read_text().splitlines() if ln.strip())
    return a, names


def load_features(path: str | Path, items=None) -> Features:
    """One layer's activations in ``path`` as ``(n, n_nodes)``; layouts in the module docstring.

    Args:
      path: a thingsvision output folder or features file, a Net2Brain
        consolidated ``.npz``, or a plain ``.npy``/``.npz``.
      items: optional image names (file names; compared without folders and
        suffixes) in the order wanted.

    Returns:
      :class:`Features`; :class:`DataError` names the file and what is wrong.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist")
    if path.is_dir():
        found = [path / f for f in THINGSVISION_FILES if (path / f).is_file()]
        if not found:
            raise DataError(
                f"{path} is a folder without thingsvision's {' or '.join(THINGSVISION_FILES[:2])}"
            )
        path = found[0]
    try:
        if path.name in THINGSVISION_FILES:
            a, names = _thingsvision(path)
            layout = "thingsvision"
        elif path.suffix == ".npy":
            a, names, layout = np.load(path, allow_pickle=False), None, "npy"
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                # poz-jax's own files carry their record under __meta__: not an array of features.
                arrays = {k: z[k] for k in z.files if k != "__meta__"}
            if len(arrays) == 1:
                a, names, layout = next(iter(arrays.values())), None, "npz"
            else:  # Net2Brain: one array per image, keyed by its name
                names = tuple(arrays)
                one_image = all(np.ndim(a) == 1 or np.shape(a)[0] == 1 for a in arrays.values())
                if not one_image or len({arrays[k].size for k in names}) != 1:
                    raise DataError(
                        f"{path} holds {len(arrays)} arrays that are not one image's each "
                        "(Net2Brain's consolidated layer: equal sizes, one row); an .npz of "
                        "one matrix per set is not one layer's features of one set"
                    )
                a, layout = np.stack([arrays[k].ravel() for k in names]), "net2brain"
        else:
            raise DataError(
                f"{path}: not a features file poz-jax reads (a thingsvision folder, .npy, .npz, "
                "features.hdf5)"
            )
    except (OSError, ValueError) as err:
        raise DataError(f"{path} cannot be read ({err})") from None
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise DataError(f"{path}: features must be real numbers, got dtype {a.dtype}")
    if a.ndim < 2:
        raise DataError(f"{path}: expected (n_images, n_nodes) features, got shape {a.shape}")
    a = a.reshape(len(a), -1)
    if not np.all(np.isfinite(a)):
        raise DataError(f"{path}: features hold NaN or infinite values")
    if names is not None and len(names) != len(a):
        raise DataError(f"{path}: {len(a)} rows of features but {len(names)} image names")
    if items is not None:
        a, names = _in_order(a, names, tuple(items), path)
    return Features(a, names, layout)


def _in_order(a, names, wanted: tuple[str, ...], path: Path):
    if len(wanted) != len(a):
        raise DataError(f"{path}: {len(a)} rows of features for {len(wanted)} images")
    if names is None:
        return a, wanted
    have = {_stem(n): i for i, n in enumerate(names)}
    want = [_stem(n) for n in wanted]
    missing = [n for n in want if n not in have]
    if missing or len(have) != len(names):
        raise DataError(
            f"{path}: its image names differ from the stimuli's (not in the file: {missing[:3]})"
        )
    return a[[have[n] for n in want]], wanted
