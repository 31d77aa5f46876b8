"""A study's results folder changes only when a run succeeds.

A run writes into a working folder, ``<out>/.partial``, seeded with hard
links to what ``out`` already holds (so stored products are found and
reused: every write is an atomic replace, which never reaches the linked
original). When the run returns, each file is moved into ``out`` and the
working folder removed. When the run is refused (a ``ValueError``: a bad
input, a check that failed), the working folder is removed if this run made
it, and so is any folder this run made on the way to ``out``: ``out`` is
left byte for byte as it was. Any other exit (an interruption, a crash)
keeps the working folder, so the next run resumes from its finished
products.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from poz_jax.io import files

PARTIAL = ".partial"


def _missing(path: Path) -> list[Path]:
    """``path`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    return missing


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:  # a file system without hard links
        shutil.copy2(src, dst)


def _seed(out: Path, work: Path) -> None:
    """Link every file of ``out`` (outside ``work``) that ``work`` does not hold yet."""
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out)
        if rel.parts[0] == PARTIAL or not p.is_file():
            continue
        if not (work / rel).exists():
            _link(p, work / rel)


def _commit(work: Path, out: Path) -> None:
    """Make ``out`` hold what ``work`` holds (each file by an atomic rename); remove ``work``.

    ``work`` was seeded with every file of ``out``: one it lacks now, the run removed
    (a spent checkpoint), and it goes from ``out`` too.
    """
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out)
        if rel.parts[0] != PARTIAL and p.is_file() and not (work / rel).exists():
            p.unlink()
    for p in sorted(q for q in work.rglob("*") if q.is_file()):
        dst = out / p.relative_to(work)
        if dst.exists() and os.path.samefile(p, dst):
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(p, dst)
    shutil.rmtree(work)


def relocate(obj: Any, work: Path, out: Path) -> Any:
    """``obj`` (paths in dicts, lists, tuples, dataclasses such as a study's ``Result``) with
    each path under ``work`` moved under ``out``."""
    if isinstance(obj, Path):
        try:
            return out / obj.relative_to(work)
        except ValueError:
            return obj
    if isinstance(obj, dict):
        return {k: relocate(v, work, out) for k, v in obj.items()}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {
            f.name: relocate(getattr(obj, f.name), work, out) for f in dataclasses.fields(obj)
        }
        return dataclasses.replace(obj, **fields)
    if isinstance(obj, (list, tuple)):
        return type(obj)(relocate(v, work, out) for v in obj)
    return obj


@contextlib.contextmanager
def staged(out: str | Path) -> Iterator[Path]:
    """The working folder a run writes into; its files land in ``out`` when the block returns.

    ``out`` must have been checked (:func:`poz_jax.io.files.check_out_dir`).
    Paths the block returns may be mapped to their final place with
    :func:`relocate`; the write log of :func:`poz_jax.io.files.recording`
    names the final places.
    """
    out = Path(out)
    created = _missing(out)
    work = out / PARTIAL
    fresh = not work.exists()
    work.mkdir(parents=True, exist_ok=True)
    try:
        _seed(out, work)
        # An interrupted write's leftovers (seeded or not) go; the commit drops them from out.
        files.clean_temporaries(work)
        yield work
    except ValueError:
        # Refused: nothing this run made stays behind.
        if fresh:
            shutil.rmtree(work, ignore_errors=True)
        for d in created:
            with contextlib.suppress(OSError):
                d.rmdir()
        raise
    _commit(work, out)
    files.relocate_log(work, out)
