"""Pruning sweeps: RSMs and fits at many keep levels in one batched pass."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from poz_jax.core import kernels
from poz_jax.core import validate as v


def sweep_rsms(x, keep_counts, order) -> jax.Array:
    """RSMs of ``x[..., order[:k]]`` for every ``k`` in ``keep_counts``.

    All levels come from one pass over the columns in keep order: prefix sums
    of row sums, squares and Gram blocks serve every level, so the cost is
    about one ``n_items x n_items x n_nodes`` product however many levels.

    Args:
      x: ``(..., n_items, n_nodes)`` activations.
      keep_counts: ``(n_levels,)`` ints in 1..n_nodes, any order.
      order: ``(..., n_nodes)`` keep order (see :func:`poz_jax.keep_order`).

    Returns:
      ``(..., n_levels, n_items, n_items)``; NaN rows/columns for items whose
      kept features are all equal (e.g. all zero; every item at ``k = 1``).
    """
    x, k, o = v.prepare_sweep(x, keep_counts, order)
    return kernels.sweep_rsms_kernel(x, k, o)


def sweep(x, target, keep_counts, order) -> jax.Array:
    """Fit to ``target`` of the RSM of ``x[..., order[:k]]`` for every ``k``.

    Args:
      x: ``(..., n_items, n_nodes)`` activations.
      target: ``(..., n_items, n_items)`` symmetric RSM (e.g. the unpruned RSM
        or a human similarity matrix); broadcasts against ``x``'s leading axes.
        A NaN in its upper triangle makes every fit NaN.
      keep_counts: ``(n_levels,)`` ints in 1..n_nodes, any order.
      order: ``(..., n_nodes)`` keep order.

    Returns:
      ``(..., n_levels)`` squared Pearson r in [0, 1]; NaN at levels whose RSM
      has an undefined entry or a constant upper triangle.
    """
    x, k, o = v.prepare_sweep(x, keep_counts, order)
    lead = np.broadcast_shapes(x.shape[:-2], o.shape[:-1])
    t = v.prepare_target(target, x.shape[-2], lead, x.dtype, fits_only=True)
    return kernels.sweep_kernel(x, t, k, o)


def sweep_masks(x, target, masks) -> jax.Array:
    """Fit to ``target`` of the RSM of ``x`` restricted to each boolean mask.

    The masks need not be nested; all are computed in one masked batch, at
    about ``n_levels`` times the cost of :func:`sweep`.

    Args:
      x: ``(..., n_items, n_nodes)`` activations.
      target: ``(..., n_items, n_items)`` symmetric RSM.
      masks: ``(n_levels, n_nodes)`` bool, True for kept nodes; each row must
        keep at least one node.

    Returns:
      ``(..., n_levels)``, as :func:`sweep`.
    """
    x = v.prepare_acts(x)
    t = v.prepare_target(target, x.shape[-2], x.shape[:-2], x.dtype, fits_only=True)
    m = v.as_array(masks, "masks")
    if m.ndim != 2 or m.shape[-1] != x.shape[-1]:
        raise ValueError(f"masks must have shape (n_levels, {x.shape[-1]}), got {tuple(m.shape)}")
    if m.dtype != jnp.bool_:
        raise ValueError(f"masks must be boolean, got dtype {m.dtype}")
    if v.is_concrete(m):
        vals, xp = v.readable(m)
        keeps = xp.any(vals, -1)
        if not bool(xp.all(keeps)):
            empty = [int(i) for i in xp.nonzero(~keeps)[0]]
            raise ValueError(f"masks rows {empty} keep no node; every level must keep at least one")
    return kernels.sweep_masks_kernel(x, t, m)
