"""Human matrices, one per participant, in the field's files: read them and write them back.

:func:`load_rdms` reads

- rsatoolbox's HDF5 layout (``RDMs.save(path)``), with ``h5py`` (rsatoolbox
  itself is not needed): the condensed ``dissimilarities`` ``(R, n(n-1)/2)``,
  the ``dissimilarity_measure``, participant names from ``rdm_descriptors``
  and item names from ``pattern_descriptors``;
- ``.npy`` / ``.npz``: ``(n, n)``, ``(S, n, n)``, or condensed upper triangles
  ``(P,)`` / ``(S, P)``;
- MATLAB ``.mat``: a struct array with an ``RDM`` field (the classic RSA
  toolbox's files, e.g. the 92-image set's ``rdms_behav_92``), a
  ``(n, n)`` / ``(n, n, S)`` array (MATLAB's stacking axis is the last) or a
  condensed row.

Whether a matrix is a similarity (alike items score high) or a
dissimilarity (an RDM: alike items score low) is always stated, never
guessed: rsatoolbox's files are dissimilarities; for the others pass
``kind``. The kind sets the sign of :func:`poz_jax.fit_r`; the fit (r²)
does not see it.

:func:`save_rdms` writes rsatoolbox's layout, which
``rsatoolbox.rdm.load_rdm`` opens.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from poz_jax.core.rsa import KINDS
from poz_jax.data.errors import DataError
from poz_jax.io import files

HDF5_SUFFIXES = (".hdf5", ".h5")
# Item-name descriptors rsatoolbox users commonly give, in the order tried.
ITEM_DESCRIPTORS = ("image", "images", "stimulus", "stimuli", "conds", "name", "names")


@dataclasses.dataclass(frozen=True)
class ParticipantRDMs:
    """One matrix per participant: ``matrices`` ``(S, n, n)`` float64 of one ``kind``,
    ``participants`` (``S`` names), ``items`` (``n`` names, or None) and the file's
    ``measure`` (rsatoolbox's ``dissimilarity_measure``, or None)."""

    matrices: np.ndarray
    kind: str
    participants: tuple[str, ...]
    items: tuple[str, ...] | None = None
    measure: str | None = None

    @property
    def n_items(self) -> int:
        return self.matrices.shape[-1]

    def mean(self) -> np.ndarray:
        """``(n, n)``: the participants' mean matrix."""
        return self.matrices.mean(0)


def square_from_condensed(vectors: np.ndarray, where: str) -> np.ndarray:
    """``(..., n(n-1)/2)`` strict upper triangles (row-major, as rsatoolbox and SciPy's
    ``squareform`` store them) as symmetric ``(..., n, n)`` with a zero diagonal."""
    p = vectors.shape[-1]
    n = int(round((1 + np.sqrt(1 + 8 * p)) / 2))
    if n * (n - 1) // 2 != p or p == 0:
        raise DataError(
            f"{where}: {p} values per matrix is not n(n-1)/2 for any n; a condensed RDM "
            "holds each pair once"
        )
    out = np.zeros((*vectors.shape[:-1], n, n))
    iu = np.triu_indices(n, 1)
    out[..., iu[0], iu[1]] = vectors
    out[..., iu[1], iu[0]] = vectors
    return out


def check_kind(kind: str | None, where: str) -> str:
    """``kind`` checked against :data:`~poz_jax.core.rsa.KINDS`; None says to state it."""
    if kind is None:
        raise DataError(
            f"{where}: say whether the matrices are similarities (alike items score high) or "
            "dissimilarities (RDMs: alike items score low); pass kind= (on the command line "
            "--human-kind)"
        )
    if kind not in KINDS:
        raise DataError(f"{where}: kind must be one of {KINDS}, got {kind!r}")
    return kind


def _check_matrices(m: np.ndarray, kind: str, where: str) -> np.ndarray:
    if m.dtype.kind not in "biuf":
        raise DataError(f"{where}: the matrices are not numeric (dtype {m.dtype})")
    m = np.asarray(m, np.float64)
    if m.ndim != 3 or m.shape[1] != m.shape[2]:
        raise DataError(f"{where}: expected square matrices, got shape {m.shape[1:]}")
    from poz_jax.data.stimuli import check_matrix

    return np.stack([check_matrix(x, f"{where}, participant {s}", kind) for s, x in enumerate(m)])


def _text(values) -> tuple[str, ...]:
    return tuple(x.decode() if isinstance(x, bytes) else str(x) for x in np.asarray(values))


def _descriptor(group, preferred: tuple[str, ...]) -> tuple[str, ...] | None:
    """The first preferred descriptor, else the first that is not ``index``."""
    if group is None:
        return None
    names = [k for k in group if hasattr(group[k], "shape")]
    for key in [*preferred, *[k for k in names if k != "index"]]:
        if key in names:
            return _text(group[key][()])
    return None


def _read_hdf5(path: Path, kind: str | None) -> ParticipantRDMs:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "dissimilarities" not in f:
                raise DataError(
                    f"{path} is an HDF5 file but not rsatoolbox's RDMs layout (no "
                    "'dissimilarities' dataset; it has {sorted(f)})"
                )
            vectors = np.asarray(f["dissimilarities"][()])
            measure = f.attrs.get("dissimilarity_measure")
            measure = None if measure is None else _text([measure])[0]
            participants = _descriptor(f.get("rdm_descriptors"), ("subject", "participant", "name"))
            items = _descriptor(f.get("pattern_descriptors"), ITEM_DESCRIPTORS)
    except OSError as err:
        raise DataError(f"{path} is not a readable HDF5 file ({err})") from None
    if kind == "similarity":
        raise DataError(
            f"{path}: rsatoolbox's RDMs are dissimilarities (measure {measure!r}); they cannot "
            "be read as similarities"
        )
    if vectors.ndim == 1:
        vectors = vectors[None]
    if vectors.ndim != 2 or vectors.dtype.kind not in "biuf":
        raise DataError(f"{path}: 'dissimilarities' must be (n_rdms, n_pairs) numbers")
    m = square_from_condensed(vectors.astype(np.float64), str(path))
    return ParticipantRDMs(m, "dissimilarity", participants or (), items, measure)


def _from_mat(arrays: dict, path: Path, key: str | None) -> tuple[np.ndarray, tuple[str, ...]]:
    if key is None:
        if len(arrays) != 1:
            raise DataError(f"{path} holds {sorted(arrays)}; say which with key=")
        key = next(iter(arrays))
    if key not in arrays:
        raise DataError(f"{path} has no variable {key!r}; it has {sorted(arrays)}")
    a = arrays[key]
    if a.dtype.names:  # a struct array: one matrix per element
        if "RDM" not in a.dtype.names:
            raise DataError(f"{path}: struct {key!r} has no RDM field (fields {a.dtype.names})")
        cells = a.ravel(order="F")  # MATLAB's own element order
        mats = [np.asarray(c["RDM"], np.float64) for c in cells]
        # A condensed RDM is stored as a MATLAB row (1, P).
        mats = np.stack([m.ravel() if m.ndim == 2 and m.shape[0] == 1 else m for m in mats])
        names = ()
        if "name" in a.dtype.names:
            names = tuple(str(np.asarray(c["name"]).ravel()[0]) for c in cells)
        return mats, names
    a = np.asarray(a)
    if a.ndim == 3:
        a = np.moveaxis(a, -1, 0)  # MATLAB stacks matrices along the last axis
    return a, ()


def _stack(a: np.ndarray, where: str) -> np.ndarray:
    """``(n, n)``, ``(S, n, n)``, ``(P,)`` or ``(S, P)`` as ``(S, n, n)``."""
    if a.ndim == 2 and a.shape[0] == a.shape[1]:
        return a[None]
    if a.ndim in (1, 2):
        return square_from_condensed(np.atleast_2d(np.asarray(a, np.float64)), where)
    if a.ndim == 3:
        return a
    raise DataError(f"{where}: expected (n, n), (S, n, n) or condensed matrices, got {a.shape}")


def load_rdms(
    path: str | Path,
    kind: str | None = None,
    key: str | None = None,
    items: list[str] | tuple[str, ...] | None = None,
) -> ParticipantRDMs:
    """Every participant's matrix in ``path`` (layouts in the module docstring).

    Args:
      path: an rsatoolbox ``.hdf5``/``.h5``, ``.npy``, ``.npz`` or ``.mat`` file.
      kind: ``"similarity"`` or ``"dissimilarity"``; required except for
        rsatoolbox's files (dissimilarities by definition).
      key: the ``.npz`` array or ``.mat`` variable, when the file holds several.
      items: the expected item names in the order wanted (e.g. image file
        names): rows and columns are reordered to it by the file's item names,
        and any difference is refused.

    Returns:
      :class:`ParticipantRDMs`; raises :class:`DataError` naming the file and
      what is wrong.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist")
    if path.is_dir():
        raise DataError(f"{path} is a folder; give the file of matrices in it")
    suffix = path.suffix.lower()
    if suffix == ".pkl":
        raise DataError(
            f"{path}: poz-jax does not open pickles (loading one can run any code). Re-save it "
            "as HDF5 in rsatoolbox: rdms = rsatoolbox.rdm.load_rdm(path); "
            "rdms.save('rdms.hdf5', file_type='hdf5')"
        )
    if suffix in HDF5_SUFFIXES:
        got = _read_hdf5(path, kind)
        m, kind, names, file_items, measure = (
            got.matrices, got.kind, got.participants, got.items, got.measure,
        )  # fmt: skip
    else:
        kind = check_kind(kind, str(path))
        names, file_items, measure = (), None, None
        if suffix == ".npy":
            try:
                m = _stack(np.load(path, allow_pickle=False), str(path))
            except (OSError, ValueError) as err:
                raise DataError(f"{path} is not a readable .npy array ({err})") from None
        elif suffix == ".npz":
            try:
                with np.load(path, allow_pickle=False) as z:
                    arrays = {k: z[k] for k in z.files}
            except (OSError, ValueError) as err:
                raise DataError(f"{path} is not a readable .npz file ({err})") from None
            if key is None and len(arrays) != 1:
                raise DataError(f"{path} holds {sorted(arrays)}; say which with key=")
            if key is not None and key not in arrays:
                raise DataError(f"{path} has no array {key!r}; it has {sorted(arrays)}")
            m = _stack(arrays[key or next(iter(arrays))], str(path))
        elif suffix == ".mat":
            from poz_jax.data.stimuli import read_mat

            a, names = _from_mat(read_mat(path), path, key)
            m = _stack(a, str(path))
        else:
            raise DataError(
                f"{path}: not a matrix file poz-jax reads (.hdf5, .h5, .npy, .npz, .mat)"
            )
    m = _check_matrices(np.asarray(m), kind, str(path))
    names = tuple(names) if len(names) == len(m) else tuple(str(i) for i in range(len(m)))
    if items is not None:
        m, file_items = _reorder(m, file_items, tuple(items), path)
    return ParticipantRDMs(m, kind, names, file_items, measure)


def _reorder(m, file_items, wanted: tuple[str, ...], path: Path):
    if len(wanted) != m.shape[-1]:
        raise DataError(f"{path}: {m.shape[-1]} items, but {len(wanted)} item names were given")
    if file_items is None:
        return m, wanted  # the file names none: its order is taken as given
    if sorted(file_items) != sorted(wanted) or len(set(wanted)) != len(wanted):
        missing = sorted(set(wanted) - set(file_items))[:3]
        extra = sorted(set(file_items) - set(wanted))[:3]
        raise DataError(
            f"{path}: its item names differ from the stimuli's (missing {missing}, "
            f"not among the stimuli {extra})"
        )
    idx = np.array([file_items.index(name) for name in wanted])
    return m[:, idx][:, :, idx], wanted


def save_rdms(
    path: str | Path,
    matrices,
    kind: str,
    rdm_descriptors: dict[str, list] | None = None,
    items: list[str] | tuple[str, ...] | None = None,
    measure: str | None = None,
    descriptors: dict[str, str] | None = None,
) -> Path:
    """Write ``(R, n, n)`` matrices as an rsatoolbox RDMs HDF5 file.

    Similarities are written as ``1 - m`` (rsatoolbox holds dissimilarities;
    correlations with it change sign only). ``rdm_descriptors``: a list of
    ``R`` values per name (layer, keep count, network ...); ``items``: the
    ``n`` item names (pattern descriptor ``image``); ``measure``: the
    ``dissimilarity_measure`` attribute.
    """
    import h5py

    m = np.asarray(matrices, np.float64)
    if m.ndim == 2:
        m = m[None]
    kind = check_kind(kind, str(path))
    if kind == "similarity":
        m = 1.0 - m
    n = m.shape[-1]
    iu = np.triu_indices(n, 1)
    path = Path(path)

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            f.attrs["dissimilarity_measure"] = measure or (
                "1 - similarity" if kind == "similarity" else "dissimilarity"
            )
            f["dissimilarities"] = m[:, iu[0], iu[1]]
            g = f.create_group("descriptors")
            for k, val in (descriptors or {}).items():
                g.attrs[k] = str(val)
            g = f.create_group("rdm_descriptors")
            g["index"] = np.arange(len(m))
            for k, values in (rdm_descriptors or {}).items():
                values = np.asarray(values)
                if len(values) != len(m):
                    raise ValueError(
                        f"rdm descriptor {k!r} has {len(values)} values for {len(m)} RDMs"
                    )
                g[k] = values.astype("S") if values.dtype.kind in "UO" else values
            g = f.create_group("pattern_descriptors")
            g["index"] = np.arange(n)
            if items is not None:
                g["image"] = np.asarray(items).astype("S")

    files.atomic_save(path, write)
    return path
