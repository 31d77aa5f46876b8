"""Generated data with known structure, for demos, tests and benchmarks."""

from __future__ import annotations

import numpy as np


def synthetic_activations(
    n_items: int, n_nodes: int, seed: int = 0, dtype=np.float32
) -> np.ndarray:
    """Post-ReLU-like activations ``(n_items, n_nodes)``: most nodes silent for most items.

    Each node gets its own firing threshold, so PoZ spreads from about 0 to
    1 as in trained fc layers; a few nodes never fire at all (PoZ = 1).
    """
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n_items, 8))
    weights = rng.normal(size=(8, n_nodes)) / np.sqrt(8)
    drive = latent @ weights + rng.normal(size=(n_items, n_nodes))
    threshold = rng.uniform(-1.0, 3.0, size=n_nodes)
    threshold[rng.random(n_nodes) < 0.05] = np.inf
    return np.maximum(drive - threshold, 0.0).astype(dtype)
