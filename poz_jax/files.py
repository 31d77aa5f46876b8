"""Atomic files: arrays, pytree checkpoints, CSV tables and JSON (no extra dependency).

Every write goes to a temporary file in the same folder and is then renamed
over the target, so an interrupted run never leaves a half-written file.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import jax
import numpy as np


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publish(tmp: str, path: Path) -> None:
    # mkstemp makes owner-only files; give the result the usual permissions.
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary sibling of ``path`` for writing; rename it to ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        save(Path(tmp))
        _publish(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def save_arrays(path: str | Path, meta: dict | None = None, **arrays) -> None:
    """Write ``arrays`` (and ``meta`` as JSON under ``__meta__``) to ``path`` atomically."""
    if meta is not None:
        arrays["__meta__"] = np.array(json.dumps(meta, sort_keys=True))
    with atomic_open(path) as fh:
        np.savez(fh, **arrays)


def load_arrays(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """Read a file written by :func:`save_arrays`: ``(arrays, meta)``.

    Raises ``ValueError`` naming the file when it is missing keys or corrupt.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(
            f"{path} is not a readable .npz file ({err}); delete it to start over"
        ) from err
    meta = json.loads(str(arrays.pop("__meta__"))) if "__meta__" in arrays else {}
    return arrays, meta


def save_tree(path: str | Path, tree: Any, meta: dict) -> None:
    """Save a pytree's leaves (gathered to host) and ``meta`` atomically."""
    leaves = jax.tree_util.tree_leaves(jax.device_get(tree))
    save_arrays(path, meta, **{f"leaf_{i:04d}": np.asarray(x) for i, x in enumerate(leaves)})


def load_tree(path: str | Path, like: Any) -> tuple[Any, dict]:
    """Read a :func:`save_tree` file into the structure of ``like``: ``(tree, meta)``."""
    arrays, meta = load_arrays(path)
    template, treedef = jax.tree_util.tree_flatten(like)
    leaves = [arrays.get(f"leaf_{i:04d}") for i in range(len(template))]
    if len(arrays) != len(template) or any(
        a is None or a.shape != np.shape(t) for a, t in zip(leaves, template, strict=True)
    ):
        raise ValueError(f"{path} does not hold a checkpoint of this model and optimiser")
    return jax.tree_util.tree_unflatten(treedef, leaves), meta


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
