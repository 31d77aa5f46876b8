"""Atomic files: arrays, pytree checkpoints, CSV tables and JSON (no extra dependency).

Every write goes to a temporary file in the same folder and is then renamed
over the target, so an interrupted run never leaves a half-written file.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import jax
import numpy as np

# Marks the temporary files of atomic writes, so a later run can clean up
# after a killed one without touching anything else.
_TMP = ".poztmp"
# What NumPy raises for a missing, truncated or corrupt .npz.
READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# The open write logs of :func:`recording` (innermost last).
_LOGS: list[list[Path]] = []


def _publish(tmp: str, path: Path) -> None:
    # mkstemp makes owner-only files; give the result the usual permissions.
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)
    for log in _LOGS:
        log.append(path)


@contextlib.contextmanager
def recording() -> Iterator[list[Path]]:
    """Collect the path of every file written (atomically, by this module) inside the block.

    A command's closing message lists what it wrote from this log, so it can
    name neither a file it did not write nor omit one it did.
    """
    log: list[Path] = []
    _LOGS.append(log)
    try:
        yield log
    finally:
        _LOGS.remove(log)


def relocate_log(src: str | Path, dst: str | Path) -> None:
    """Rename, in every open write log, each path under folder ``src`` to its place under ``dst``.

    For files written in a working folder and then moved into place.
    """
    src, dst = Path(src), Path(dst)
    for log in _LOGS:
        for i, p in enumerate(log):
            with contextlib.suppress(ValueError):
                log[i] = dst / p.relative_to(src)


def describe_writes(folder: str | Path, written: list[Path]) -> str:
    """``wrote FOLDER/: a.csv (2.1 KB), b.png (40.3 KB), sub/: 25 files (1.2 MB)``.

    Each file once, in the order first written; files in a subfolder are
    counted under it; files outside ``folder`` are named by their full path.
    """
    folder = Path(folder)
    entries: dict[str, list[int]] = {}
    seen = set()
    for p in written:
        if p in seen:
            continue
        seen.add(p)
        try:
            parts = p.resolve().relative_to(folder.resolve()).parts
            name = parts[0] + ("/" if len(parts) > 1 else "")
        except ValueError:
            name = str(p)
        entries.setdefault(name, []).append(p.stat().st_size if p.exists() else 0)
    if not entries:
        return f"wrote nothing to {folder}/"
    items = [
        f"{name}: {len(sizes)} files ({_size(sum(sizes))})"
        if name.endswith("/")
        else f"{name} ({_size(sizes[0])})"
        for name, sizes in entries.items()
    ]
    return f"wrote {folder}/: " + ", ".join(items)


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; rename it to ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=_TMP)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        _publish(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_save(path: str | Path, save: Callable[[Path], Any]) -> None:
    """Call ``save(tmp_path)`` (for writers that want a file name) and rename to ``path``.

    The temporary name keeps ``path``'s suffix, so writers that pick a
    format from it (matplotlib) still do.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=_TMP + path.suffix)
    os.close(fd)
    try:
        save(Path(tmp))
        _publish(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def save_arrays(
    path: str | Path, meta: dict | None = None, compressed: bool = False, **arrays
) -> None:
    """Write ``arrays`` (and ``meta`` as JSON under ``__meta__``) to ``path`` atomically.

    ``compressed`` deflates them (``np.savez_compressed``): for files meant to be committed.
    """
    if meta is not None:
        arrays["__meta__"] = np.array(json.dumps(meta, sort_keys=True))
    with atomic_open(path) as fh:
        (np.savez_compressed if compressed else np.savez)(fh, **arrays)


def not_npz(path: str | Path) -> str:
    """Why ``path`` is not an ``.npz`` (``""`` when it is one): for one-line errors."""
    path = Path(path)
    if not path.exists():
        return "it does not exist"
    if not path.is_file():
        return "it is a folder"
    if not zipfile.is_zipfile(path):
        return "it is not an .npz (the zip of NumPy arrays numpy.savez writes)"
    return ""


def load_arrays(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """Read a file written by :func:`save_arrays`: ``(arrays, meta)``.

    Raises ``ValueError`` naming the file when it is missing keys or corrupt.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except READ_ERRORS as err:
        raise ValueError(f"{path} is not a readable .npz file ({err})") from err
    meta = json.loads(str(arrays.pop("__meta__"))) if "__meta__" in arrays else {}
    return arrays, meta


_LEAF = "leaf:"  # prefix of a checkpoint leaf's key path in its .npz


def save_tree(path: str | Path, tree: Any, meta: dict, compressed: bool = False) -> None:
    """Save a pytree's leaves (gathered to host) under their key paths, and ``meta``, atomically.

    Each leaf is stored under its ``jax.tree_util.keystr`` path (e.g.
    ``[1][0].mu['fc2']['kernel']``), so a reader can check names as well as
    shapes: two leaves of the same shape (Adam's ``mu`` and ``nu``) can never
    be loaded into each other's place.
    """
    save_arrays(path, meta, compressed, **_leaves(tree))


def _leaves(tree: Any) -> dict[str, np.ndarray]:
    leaves = jax.tree_util.tree_flatten_with_path(jax.device_get(tree))[0]
    return {f"{_LEAF}{jax.tree_util.keystr(k)}": np.asarray(x) for k, x in leaves}


def tree_digest(tree: Any) -> str:
    """sha256 of a pytree's leaves (names, dtypes, shapes, bytes): the same for the same numbers."""
    leaves = _leaves(tree)
    return fingerprint(*(leaves[k] for k in sorted(leaves)), names=sorted(leaves))


def load_tree(path: str | Path, like: Any) -> tuple[Any, dict]:
    """Read a :func:`save_tree` file into the structure of ``like``: ``(tree, meta)``.

    Raises ``ValueError`` naming the first leaf whose name, shape or dtype
    differs from ``like``'s.
    """
    arrays, meta = load_arrays(path)
    template, treedef = jax.tree_util.tree_flatten_with_path(like)
    want = {f"{_LEAF}{jax.tree_util.keystr(k)}": x for k, x in template}
    if set(arrays) != set(want):
        extra = sorted(k[len(_LEAF) :] for k in set(arrays) - set(want))[:3]
        missing = sorted(k[len(_LEAF) :] for k in set(want) - set(arrays))[:3]
        raise ValueError(
            f"{path} does not hold a checkpoint of this model and optimiser "
            f"(missing leaves {missing}, unexpected {extra}); use another --out or delete it"
        )
    for name, x in want.items():
        a, dtype = arrays[name], np.dtype(getattr(x, "dtype", None) or np.result_type(x))
        if a.shape != np.shape(x) or a.dtype != dtype:
            raise ValueError(
                f"{path}: leaf {name[len(_LEAF) :]} is {a.dtype} {a.shape}, this model and "
                f"optimiser need {dtype} {np.shape(x)}; use another --out or delete it"
            )
    return jax.tree_util.tree_unflatten(treedef, [arrays[name] for name in want]), meta


def load_meta(path: str | Path) -> dict:
    """Only the ``meta`` of a :func:`save_arrays` file (its arrays are not read)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if "__meta__" not in z.files:
                return {}
            meta = json.loads(str(z["__meta__"]))
    except READ_ERRORS as err:
        raise ValueError(f"{path} is not a readable .npz file ({err})") from err
    if not isinstance(meta, dict):
        raise ValueError(f"{path} has malformed metadata (not what poz-jax writes)")
    return meta


def fingerprint(*arrays, **settings) -> str:
    """sha256 (hex) of arrays' dtypes, shapes and bytes, and of ``settings`` as JSON.

    The key of everything a re-run may reuse: two inputs get the same key
    only when their numbers (and the settings) are identical.
    """
    digest = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a))
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(memoryview(a).cast("B"))
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def file_digest(path: str | Path) -> str:
    """sha256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def changed(saved: dict, want: dict) -> list[str]:
    """Names of the entries of ``want`` that ``saved`` lacks or holds with another value."""
    keys = sorted(set(saved) | set(want))
    return [k for k in keys if saved.get(k) != want.get(k)]


def check_out_dir(path: str | Path, flag: str = "--out", **inputs: str | Path | None) -> Path:
    """``path`` as a folder poz-jax may write into, checked without creating anything.

    Raises ``ValueError`` when it is a file, lies under a file, its first
    existing ancestor is not writable, or it is (or lies inside) one of the
    ``inputs`` folders (by flag name: results written into a stimulus set
    would become part of it).
    """
    # Lexically normalised: "a/sub/../o" must not make "a/sub" on the way to "a/o".
    path = Path(os.path.normpath(path))
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {path} is a file, not a folder")
    ancestor = path
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"{flag} {path} lies under {ancestor}, which is a file")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {path}: {ancestor} is not writable")
    for name, given in inputs.items():
        if given is None or not Path(given).is_dir():
            continue
        inside = path.resolve()
        if inside == Path(given).resolve() or Path(given).resolve() in inside.parents:
            raise ValueError(
                f"{flag} {path} lies inside --{name.replace('_', '-')} {given}; write the "
                "results elsewhere"
            )
    return path


def clean_temporaries(folder: str | Path) -> int:
    """Remove temporary files left in ``folder`` by an interrupted atomic write; returns the count.

    Only the hidden names this module makes (``.<name>.<random>.poztmp[.suffix]``)
    are touched: any other file, hidden or not, is the user's.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    n = 0
    for p in folder.iterdir():
        name = p.name
        if name.startswith(".") and _TMP in name and p.is_file():
            p.unlink(missing_ok=True)
            n += 1
    return n


def write_csv(path: str | Path, rows: list[dict]) -> None:
    """Write ``rows`` (dicts with the same keys) as a CSV table atomically."""
    if not rows:
        raise ValueError(f"no rows to write to {path}")
    with atomic_open(path, "w") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically."""
    with atomic_open(path, "w") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True)
        fh.write("\n")
