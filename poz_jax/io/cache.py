"""The one cache every study uses: a product stored with the key it was computed from.

A *product* is a dict of NumPy arrays (embeddings, a null, a comparison),
computed from named inputs (arrays, files) and settings. :func:`product_key`
names them in one vocabulary: each input by its role (``activations``,
``similarity``, ``poz``, ``images[<set>]``, ``weights``) with its content
digest, each setting by its config field name. :func:`cached` returns the
stored product when its saved key equals the wanted one entry for entry,
and otherwise computes, stores and returns it, saying once, here, what made
it recompute. A hit returns exactly what a fresh computation returned: the
product is returned as it was stored (NumPy arrays through ``.npz``, which
round-trips them bit for bit), on a hit and on a miss alike.
"""

from __future__ import annotations

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
) -> Product:
    """The product of ``compute()`` for ``key``, stored at ``path`` and reused while ``key`` holds.

    ``compute`` returns the product's arrays by name; ``on_hit`` runs when the
    stored product is reused (to advance a progress bar past the skipped work).
    """
    path = Path(path)
    arrays, why = load_current(path, key)
    if arrays is not None:
        if on_hit is not None:
            on_hit()
        return arrays
    if why:
        status(f"recomputing {path.name}: {why}")
    product = {name: np.asarray(a) for name, a in compute().items()}
    if "__meta__" in product:
        raise ValueError("a product may not hold an array named __meta__")
    files.save_arrays(path, {"key": key}, **product)
    # Read back what was stored, so a fresh run returns what a resumed one will.
    return files.load_arrays(path)[0]


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
