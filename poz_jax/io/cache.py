"""The one cache every study uses: a product stored with the key it was computed from.

A *product* is a dict of NumPy arrays (embeddings, a null, a comparison),
computed from named inputs (arrays, files) and settings. :func:`product_key`
names them in one vocabulary: each input by its role (``activations``,
``similarity``, ``images[<set>]``, ``weights``) with its content
digest, each setting by its config field name. :func:`cached` returns the
stored product when its saved key equals the wanted one entry for entry,
and otherwise computes, stores and returns it, saying once, here, what made
it recompute. A hit returns exactly what a fresh computation returned: the
product is returned as it was stored (NumPy arrays through ``.npz``, which
round-trips them bit for bit), on a hit and on a miss alike.

A product whose computation is long (fine-tuning) keeps its resumable work
in a *scratch* folder (an epoch checkpoint) under the same rule: the
scratch is resumed only by a computation of the same key, is removed (and
the reason said) when the key changed, and is removed once the product is
stored. Experiment 1's trained networks are the one thing not recomputed on
a changed key: they are refused instead (:func:`poz_jax.training.train.
check_resumable`), since they are the input every later study reads and a
changed flag would otherwise throw away hours of training.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from poz_jax.io import files
from poz_jax.study.runtime import status

Product = dict[str, np.ndarray]


def product_key(inputs: Mapping[str, Any] | None = None, **settings) -> dict:
    """``{role: digest of that input, field: setting}``: what a product depends on.

    ``inputs`` maps a role to an array (digested by :func:`files.fingerprint`:
    dtype, shape and bytes) or to a digest string already made (of a file, of
    several files). ``settings`` are JSON values (tuples become lists).
    """
    key = {}
    for role, value in (inputs or {}).items():
        key[role] = value if isinstance(value, str) else files.fingerprint(value)
    for name, value in settings.items():
        key[name] = list(value) if isinstance(value, tuple) else value
    return key


def load_current(path: str | Path, key: dict) -> tuple[Product | None, str]:
    """The product at ``path`` if it was computed from ``key``; else ``(None, why)``.

    ``why`` names what differs (``"its n_null, seed changed"``, ``"it is
    unreadable"``), or is ``""`` when there is no file.
    """
    path = Path(path)
    if not path.exists():
        return None, ""
    try:
        arrays, meta = files.load_arrays(path)
    except ValueError:
        return None, "it is unreadable"
    saved = meta.get("key", {})
    diff = files.changed(saved if isinstance(saved, dict) else {}, key)
    if diff:
        return None, f"its {', '.join(diff)} changed"
    return arrays, ""


def cached(
    path: str | Path,
    key: dict,
    compute: Callable[[], Mapping[str, Any]],
    on_hit: Callable[[], None] | None = None,
    scratch: str | Path | None = None,
) -> Product:
    """The product of ``compute()`` for ``key``, stored at ``path`` and reused while ``key`` holds.

    ``compute`` returns the product's arrays by name; ``on_hit`` runs when the
    stored product is reused (to advance a progress bar past the skipped work).
    ``scratch``: the folder where ``compute`` keeps resumable work; it is
    resumed only under the same key and removed once the product is stored.
    """
    path = Path(path)
    arrays, why = load_current(path, key)
    if arrays is not None:
        if on_hit is not None:
            on_hit()
        _remove(scratch)
        return arrays
    if why:
        status(f"recomputing {path.name}: {why}")
    if scratch is not None:
        _claim(Path(scratch), key)
    product = {name: np.asarray(a) for name, a in compute().items()}
    if "__meta__" in product:
        raise ValueError("a product may not hold an array named __meta__")
    files.save_arrays(path, {"key": key}, **product)
    _remove(scratch)
    # Read back what was stored, so a fresh run returns what a resumed one will.
    return files.load_arrays(path)[0]


_SCRATCH_KEY = "key.json"


def _claim(scratch: Path, key: dict) -> None:
    """Keep ``scratch`` for a computation of ``key``: work left by another key is removed."""
    mark = scratch / _SCRATCH_KEY
    if scratch.exists():
        try:
            saved = json.loads(mark.read_text())
        except (OSError, ValueError):
            saved = None
        diff = files.changed(saved, key) if isinstance(saved, dict) else ["key"]
        if diff:
            status(f"restarting {scratch.name}: its {', '.join(diff)} changed")
            shutil.rmtree(scratch)
    if not mark.exists():
        scratch.mkdir(parents=True, exist_ok=True)
        files.write_json(mark, key)


def _remove(scratch: str | Path | None) -> None:
    if scratch is not None and Path(scratch).exists():
        shutil.rmtree(scratch)


def is_product(path: str | Path) -> bool:
    """Whether ``path`` is a stored product or a training checkpoint: a file a run may recompute.

    Products (:func:`cached`) hold the key they were computed from; results
    folders need not keep them.
    """
    path = Path(path)
    if path.name == "checkpoint.npz":
        return True
    if path.suffix != ".npz":
        return False
    try:
        return "key" in files.load_meta(path)
    except ValueError:
        return False
