"""Stimulus sets with human similarity matrices (Experiment 2), with clear errors.

Layouts understood by :func:`load_stimulus_sets`:

- a folder of images plus one similarity file (``.npy``, ``.npz``, ``.csv`` or
  MATLAB ``.mat``); images in sorted file-name order unless the folder has an
  ``order.txt`` (one file name per line, the matrix's row order);
- a folder of such folders, one per set (the folder names are the set names);
- the authors' single file: one ``.npz`` holding a square matrix per set name
  (no images: pair it with precomputed embeddings, :func:`load_embeddings`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from poz_jax.core import validate as v
from poz_jax.core.rsa import KINDS
from poz_jax.data.errors import DataError
from poz_jax.io.files import file_digest, fingerprint, not_npz

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
MATRIX_SUFFIXES = (".npy", ".npz", ".csv", ".mat", ".hdf5", ".h5")
# Variable names of the Peterson et al. matrices in their MATLAB files.
MAT_KEYS = ("simMatrix", "simmat", "simMatrixturk2016", "sim", "S")
# The two rater batches whose mean is the animals simMatrix (Peterson et al.'s .mat).
BATCH_KEYS = ("simMatrixFirstBatch", "simMatrixSecondBatch")
ORDER_FILE = "order.txt"


@dataclasses.dataclass(frozen=True)
class StimulusSet:
    """One set: its name, human similarity ``(n, n)`` float64, ``n`` image paths (or None),
    and the rater batches it is the mean of, ``(2, n, n)`` on its scale (or None)."""

    name: str
    similarity: np.ndarray
    images: tuple[Path, ...] | None = None
    batches: np.ndarray | None = None

    @property
    def n_items(self) -> int:
        return self.similarity.shape[0]


def check_similarity(m: np.ndarray, where: str, kind: str = "similarity") -> np.ndarray:
    """``m`` as a float64 similarity after :func:`check_matrix` (a dissimilarity is turned
    round by :func:`as_similarity`)."""
    return as_similarity(check_matrix(m, where, kind), kind)


def check_matrix(m: np.ndarray, where: str, kind: str = "similarity") -> np.ndarray:
    """``m`` as float64 after checking it is a finite, square, symmetric 2-D matrix of
    at least 3 items; a "similarity" whose diagonal is all 0 is refused as the
    dissimilarity it looks like. The one check of every human matrix, single or stacked
    (:func:`poz_jax.data.rdms.load_rdms` checks each participant's with it)."""
    what = f"the {kind} matrix"
    if hasattr(m, "toarray"):  # a scipy.sparse matrix (sparse MATLAB variables load so)
        m = m.toarray()
    m = np.asarray(m)
    if m.dtype.kind == "c":
        raise DataError(f"{where}: {what} is complex; it must hold real numbers")
    if m.dtype.kind not in "biuf":
        raise DataError(f"{where}: {what} is not numeric (dtype {m.dtype})")
    m = m.astype(np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise DataError(f"{where}: {what} must be square, got shape {m.shape}")
    if m.shape[0] < 3:
        raise DataError(f"{where}: {what} needs at least 3 items, got {m.shape[0]}")
    if not np.all(np.isfinite(m)):
        raise DataError(
            f"{where}: {what} holds {int(np.sum(~np.isfinite(m)))} NaN or infinite value(s)"
        )
    try:
        v.check_symmetric(m, f"{where}: {what}")
    except ValueError as err:
        raise DataError(str(err).replace("must be symmetric", "is not symmetric", 1)) from None
    if kind == "similarity" and np.all(np.diag(m) == 0) and np.any(m != 0):
        raise DataError(
            f"{where}: read as a similarity, but its diagonal is all 0: every item would be as "
            "unlike itself as can be, which is how a dissimilarity (an RDM) reads. If it is "
            "one, say so (kind='dissimilarity', --human-kind dissimilarity)"
        )
    return m


def as_similarity(m: np.ndarray, kind: str) -> np.ndarray:
    """A human matrix of ``kind`` as a similarity: a dissimilarity ``d`` becomes
    ``max(d) - d`` (decreasing: correlations change sign only; values stay >= 0)."""
    return m if kind == "similarity" else m.max() - m


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _read_csv(path: Path) -> np.ndarray:
    with open(path) as fh:
        rows = [ln.split(",") for ln in fh.read().splitlines() if ln.strip()]
    if rows and not all(_is_number(c) for c in rows[0][1:]):
        rows = rows[1:]  # a header line of item names
    if rows and not any(_is_number(r[0]) for r in rows):
        rows = [r[1:] for r in rows]  # a leading column of item names
    try:
        return np.array([[float(c) for c in r] for r in rows])
    except ValueError as err:
        raise DataError(f"{path}: not a numeric CSV matrix ({err})") from err


def read_mat(path: Path) -> dict:
    import scipy.io

    with open(path, "rb") as fh:
        head = fh.read(128)
    if b"MATLAB 7.3" in head or head.startswith(b"\x89HDF"):
        raise DataError(
            f"{path} is a MATLAB v7.3 (HDF5) file, which scipy cannot read; re-save it in MATLAB "
            "with save(..., '-v7'), or as .npy/.csv"
        )
    return {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}


def _pick(arrays: dict, path: Path, key: str | None, known: tuple[str, ...] = ()) -> np.ndarray:
    if key is not None:
        if key not in arrays:
            raise DataError(f"{path} has no variable {key!r}; it has {sorted(arrays)}")
        return arrays[key]
    for k in known:
        if k in arrays:
            return arrays[k]
    if len(arrays) == 1:
        return next(iter(arrays.values()))
    square = [
        k for k, a in arrays.items() if np.ndim(a) == 2 and np.shape(a)[0] == np.shape(a)[1] > 1
    ]
    if len(square) != 1:
        raise DataError(
            f"{path}: cannot tell which variable is the similarity matrix among {sorted(arrays)}; "
            "keep one square matrix in the file"
        )
    return arrays[square[0]]


def rdms_as_similarity(path: str | Path, items=None) -> np.ndarray:
    """An rsatoolbox RDMs file as one similarity matrix: ``max - d`` of the participants' mean
    dissimilarity ``d`` (a decreasing map: every correlation with it changes sign only, and
    its values stay non-negative), rows in ``items``' order when given."""
    from poz_jax.data.rdms import load_rdms

    d = load_rdms(path, items=items).mean()
    return check_similarity(d.max() - d, str(path))


def load_similarity(
    path: str | Path, key: str | None = None, items=None, kind: str = "similarity"
) -> np.ndarray:
    """A human similarity matrix ``(n, n)`` float64 from ``.npy``, ``.npz``, ``.csv``, ``.mat``
    or an rsatoolbox RDMs ``.hdf5`` (:func:`rdms_as_similarity`; ``items``: image names).
    ``kind``: what the file holds; a ``"dissimilarity"`` is turned into a similarity
    (:func:`as_similarity`).

    ``key`` names the variable in an ``.npz``/``.mat`` holding several; by
    default the Peterson et al. names (``simMatrix``, ``simmat``, ...) or the
    file's only square matrix. Raises :class:`DataError` for a missing,
    unreadable, non-square, non-symmetric or non-finite matrix.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"similarity matrix {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".hdf5", ".h5"):
        return rdms_as_similarity(path, items)
    try:
        if suffix == ".npy":
            m = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                m = _pick({k: z[k] for k in z.files}, path, key)
        elif suffix == ".csv":
            m = _read_csv(path)
        elif suffix == ".mat":
            m = _pick(read_mat(path), path, key, MAT_KEYS)
        else:
            raise DataError(f"{path}: unknown similarity format; use one of {MATRIX_SUFFIXES}")
    except DataError:
        raise
    except Exception as err:  # numpy/scipy raise many types for a corrupt file
        raise DataError(f"{path} is not a readable similarity matrix ({err})") from err
    return check_similarity(m, str(path), kind)


def load_rater_batches(path: str | Path, similarity: np.ndarray) -> np.ndarray | None:
    """The two rater batches ``(2, n, n)`` of a ``.mat`` that holds them, else None.

    Checked like any similarity matrix, and against ``similarity`` (the
    file's matrix): their mean must equal it (to float64 rounding), or they
    are not the batches it came from.
    """
    path = Path(path)
    if path.suffix.lower() != ".mat":
        return None
    arrays = read_mat(path)
    if not all(k in arrays for k in BATCH_KEYS):
        return None
    batches = np.stack([check_similarity(arrays[k], f"{path}[{k}]") for k in BATCH_KEYS])
    if batches.shape[1:] != similarity.shape:
        raise DataError(
            f"{path}: rater batches of shape {batches.shape[1:]} beside a "
            f"{similarity.shape} similarity matrix"
        )
    scale = max(float(np.abs(similarity).max()), 1.0)
    if not np.allclose(batches.mean(0), similarity, rtol=0, atol=1e-12 * scale):
        raise DataError(
            f"{path}: the mean of {' and '.join(BATCH_KEYS)} is not its similarity matrix"
        )
    return batches


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _matrix_file(folder: Path) -> Path:
    found = sorted(
        p for p in folder.iterdir() if p.suffix.lower() in MATRIX_SUFFIXES and p.is_file()
    )
    preferred = [p for p in found if p.stem == "similarity"]
    if preferred:
        return preferred[0]
    if len(found) != 1:
        raise DataError(
            f"{folder}: expected one similarity file (similarity.npy/.npz/.csv/.mat), "
            f"found {[p.name for p in found] or 'none'}"
        )
    return found[0]


def load_stimulus_folder(
    folder: str | Path, name: str | None = None, kind: str = "similarity"
) -> StimulusSet:
    """One set from a folder of images and its similarity file (see the module docstring);
    ``kind``: what the file holds (an rsatoolbox file is a dissimilarity whatever it says)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"stimulus folder {folder} does not exist")
    matrix = _matrix_file(folder)
    images = _image_files(folder)
    order = folder / ORDER_FILE
    if order.is_file():
        names = [ln.strip() for ln in order.read_text().splitlines() if ln.strip()]
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise DataError(f"{order} names image(s) not in {folder}: {missing[:5]}")
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise DataError(f"{order} names image(s) more than once: {twice[:5]}")
        unlisted = sorted({p.name for p in images} - set(names))
        if unlisted:
            raise DataError(
                f"{order} does not name image(s) {unlisted[:5]} of {folder}; it must list every "
                "image once, in the matrix's row order (move unused images out of the folder)"
            )
        images = [folder / n for n in names]
    # An RDMs file names its images: its rows follow them (checked against the folder).
    sim = load_similarity(matrix, items=[p.name for p in images] or None, kind=kind)
    if len(images) != sim.shape[0]:
        raise DataError(
            f"{folder}: {len(images)} image(s) but a {sim.shape[0]} x {sim.shape[0]} "
            "similarity matrix; they must match one to one"
        )
    return StimulusSet(name or folder.name, sim, tuple(images), load_rater_batches(matrix, sim))


def image_digests(sets: dict[str, StimulusSet]) -> dict[str, str]:
    """``{"images[<set>]": digest}``: each set's image files' bytes in the matrix's row order.

    A cache key of embeddings: editing ``order.txt``, or replacing or
    reordering an image, changes it.
    """
    return {
        f"images[{name}]": fingerprint(digests=[file_digest(p) for p in s.images])
        for name, s in sets.items()
    }


def load_stimulus_sets(
    path: str | Path, names: list[str] | None = None, kind: str = "similarity"
) -> dict[str, StimulusSet]:
    """All stimulus sets at ``path`` (a set folder, a folder of set folders, an ``.npz``, or
    one matrix file).

    ``names`` keeps only those sets, in that order; an unknown name is an error.
    ``kind``: whether the matrices are similarities or dissimilarities (turned round,
    :func:`as_similarity`).
    """
    if kind not in KINDS:
        raise DataError(f"kind must be one of {KINDS}, got {kind!r}")
    path = Path(path)
    if path.is_file() and path.suffix.lower() in (".npy", ".hdf5", ".h5"):
        # One matrix file alone: one set, named by the file, without images.
        sets = {path.stem: StimulusSet(path.stem, load_similarity(path, kind=kind))}
    elif path.is_file() and path.suffix.lower() == ".npz":
        if not_npz(path):
            raise DataError(f"stimuli {path}: {not_npz(path)}")
        try:
            with np.load(path, allow_pickle=False) as z:
                sets = {
                    k: StimulusSet(k, check_similarity(z[k], f"{path}[{k}]", kind)) for k in z.files
                }
        except DataError:
            raise
        except Exception as err:
            raise DataError(
                f"{path} is not a readable .npz of similarity matrices ({err})"
            ) from err
    elif path.is_dir():
        subdirs = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
        if _image_files(path) or not subdirs:
            sets = {path.name: load_stimulus_folder(path, kind=kind)}
        else:
            sets = {p.name: load_stimulus_folder(p, kind=kind) for p in subdirs}
    else:
        raise DataError(
            f"stimuli {path} does not exist; give a folder of images with its similarity "
            "matrix, a folder of such folders, an .npz with one matrix per set, or one "
            "matrix file (.npy, rsatoolbox .hdf5)"
        )
    if not sets:
        raise DataError(f"{path} holds no stimulus set")
    for name in sets:
        try:
            v.check_safe_name(name, f"{path}: the stimulus set")
        except ValueError as err:
            raise DataError(str(err)) from None
    if names:
        unknown = [n for n in names if n not in sets]
        if unknown:
            raise DataError(f"no stimulus set named {unknown} in {path}; it has {sorted(sets)}")
        sets = {n: sets[n] for n in names}
    return sets


def load_embeddings(path: str | Path, sets: dict[str, StimulusSet]) -> dict[str, np.ndarray]:
    """Precomputed embeddings: an ``.npz`` with one ``(n_items, n_nodes)`` matrix per set name,
    or, for one set, one layer's features in any layout :func:`~poz_jax.data.features.load_features`
    reads (thingsvision's folder, Net2Brain's consolidated ``.npz``, a ``.npy``), its rows put
    in the set's image order by their names.

    Checked against ``sets``: every set present, rows equal to its item
    count, all values finite.
    """
    path = Path(path)
    if _one_layer_file(path, sets):
        from poz_jax.data.features import load_features

        if len(sets) != 1:
            raise DataError(
                f"embeddings {path} hold one set's features, but {len(sets)} sets are given; "
                "give one set, or an .npz with one matrix per set name"
            )
        name, s = next(iter(sets.items()))
        items = None if s.images is None else [p.name for p in s.images]
        array = load_features(path, items).array
        if len(array) != s.n_items:
            raise DataError(
                f"embeddings {path}: {len(array)} rows for set {name!r} of {s.n_items} items"
            )
        return {name: array}
    why = not_npz(path)
    if why:
        raise DataError(f"embeddings file {path}: {why}")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as err:
        raise DataError(f"{path} is not a readable .npz of embeddings ({err})") from err
    out = {}
    for name, s in sets.items():
        if name not in arrays:
            raise DataError(f"{path} has no embeddings for set {name!r}; it has {sorted(arrays)}")
        e = arrays[name]
        if e.dtype.kind not in "biuf":
            raise DataError(f"{path}[{name}]: embeddings must be real numbers, got dtype {e.dtype}")
        if e.ndim != 2 or e.shape[0] != s.n_items:
            raise DataError(
                f"{path}[{name}]: embeddings must be ({s.n_items}, n_nodes) to match the "
                f"similarity matrix, got shape {e.shape}"
            )
        if not np.all(np.isfinite(e)):
            raise DataError(f"{path}[{name}]: embeddings hold NaN or infinite values")
        out[name] = e
    return out


def _one_layer_file(path: Path, sets) -> bool:
    """Whether ``path`` holds one layer's features rather than an ``.npz`` keyed by set."""
    if path.is_dir() or path.suffix.lower() in (".npy", ".hdf5", ".h5"):
        return path.exists()
    if path.suffix.lower() != ".npz" or not_npz(path):
        return False
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
    except Exception:
        return False
    return not keys & set(sets)


def check_have_images(sets: dict) -> None:
    """Raise unless every stimulus set of ``sets`` has image files to embed."""
    no_images = [name for name, s in sets.items() if s.images is None]
    if no_images:
        raise ValueError(
            f"set(s) {no_images} have no images (a similarity-only file): pass --embeddings"
        )
