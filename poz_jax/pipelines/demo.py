"""A short demonstration of the sweep on generated activations."""

from __future__ import annotations

import numpy as np

from poz_jax.core.ranking import keep_grid, keep_order, max_kept_poz, poz
from poz_jax.core.rsa import rsm
from poz_jax.core.sweeps import sweep
from poz_jax.data.synthetic import synthetic_activations


def run_demo(n_items: int = 120, n_nodes: int = 4096, seed: int = 0) -> str:
    """Sweep a generated layer against its own unpruned RSM; returns a text table."""
    x = synthetic_activations(n_items, n_nodes, seed)
    p = poz(x)
    order = keep_order(p)
    counts = keep_grid(n_nodes)
    fits = np.asarray(sweep(x, rsm(x), counts, order))
    top = np.asarray(max_kept_poz(p, counts, order))
    lines = [
        f"PoZ sweep of a generated {n_items} x {n_nodes} layer against its unpruned RSM",
        f"{'kept':>6} {'% kept':>7} {'fit R^2':>8} {'max PoZ kept':>13}",
    ]
    for k, f, m in zip(counts, fits, top, strict=True):
        lines.append(f"{k:>6d} {100 * k / n_nodes:>6.0f}% {f:>8.4f} {100 * m:>12.1f}%")
    return "\n".join(lines)
