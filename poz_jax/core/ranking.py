"""PoZ (percentage of zeros) per node, the keep order it induces, and keep grids."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from poz_jax.core import _validate as v


def poz(acts) -> jax.Array:
    """Fraction of items whose activation is exactly zero, per node.

    Args:
      acts: ``(..., n_items, n_nodes)`` activations (post-ReLU in the paper).

    Returns:
      ``(..., n_nodes)`` values in [0, 1] (a fraction, not a percentage), in the
      input's float dtype (float32 for float16/bfloat16 input, whose sums would
      overflow or round).
    """
    a = v.as_array(acts, "acts")
    v.check_min_rank(a, 2, "acts", "(..., n_items, n_nodes)")
    if a.shape[-2] == 0:
        raise ValueError("acts has no items (n_items == 0); PoZ is undefined")
    if jnp.issubdtype(a.dtype, jnp.floating):
        v.check_finite(a, "acts")
    # Count in at least float32: a float16 or bfloat16 sum over many items
    # overflows (float16 stops at 65,504) or rounds (bfloat16 has 8 bits).
    dtype = jnp.result_type(a.dtype, jnp.float32) if jnp.issubdtype(a.dtype, jnp.floating) else None
    return jnp.mean(a == 0, axis=-2, dtype=dtype or jnp.result_type(float))


def keep_order(poz_values) -> jax.Array:
    """Node indices in the order they are kept: lowest PoZ first.

    Ties are broken by node index (a stable sort). The authors' code used
    ``np.argpartition``, whose tie order is arbitrary; a stable order makes
    runs reproducible. Pruning to ``k`` nodes keeps ``order[..., :k]``.

    Args:
      poz_values: ``(..., n_nodes)`` PoZ per node.

    Returns:
      ``(..., n_nodes)`` int32 indices.
    """
    p = v.as_array(poz_values, "poz_values")
    v.check_min_rank(p, 1, "poz_values", "(..., n_nodes)")
    v.check_finite(p, "poz_values")
    return jnp.argsort(p, axis=-1, stable=True).astype(jnp.int32)


def max_kept_poz(poz_values, keep_counts, order) -> jax.Array:
    """Largest PoZ among the kept nodes at each level.

    Args:
      poz_values: ``(..., n_nodes)`` PoZ per node.
      keep_counts: ``(n_levels,)`` numbers of nodes kept, each in 1..n_nodes.
      order: ``(..., n_nodes)`` keep order (e.g. from :func:`keep_order`).

    Returns:
      ``(..., n_levels)``, in the units of ``poz_values``.
    """
    p = v.as_array(poz_values, "poz_values")
    v.check_min_rank(p, 1, "poz_values", "(..., n_nodes)")
    n_nodes = p.shape[-1]
    k = v.as_keep_counts(keep_counts, n_nodes)
    o = v.check_order(order, n_nodes)
    v.check_broadcast(poz_values=p.shape[:-1], order=o.shape[:-1])
    p, o = jnp.broadcast_arrays(p, o)
    # The running maximum in keep order read at k - 1 serves every level at once;
    # under jit an out-of-range count is clamped to 1..n_nodes.
    run_max = jax.lax.cummax(jnp.take_along_axis(p, o, axis=-1), axis=p.ndim - 1)
    return jnp.take(run_max, jnp.clip(k, 1, n_nodes) - 1, axis=-1)


def keep_grid(
    n_nodes: int, fractions: Sequence[float] | None = None, step: int | None = None
) -> np.ndarray:
    """Keep counts used by the paper, largest first.

    With neither argument: ``int(n_nodes * p)`` for ``p`` in
    ``np.arange(1.0, 0, -0.1)``, exactly as the authors' code computed it.
    Floating point makes those ``p`` slightly off (0.7000000000000001, ...), so
    for 84 nodes the grid is 84, 75, 67, 58, 50, 42, 33, 25, 16, 8.

    Args:
      n_nodes: number of nodes in the layer.
      fractions: keep fractions in (0, 1]; counts are ``int(n_nodes * p)``.
      step: instead of fractions, ``n_nodes, n_nodes - step, ...`` down to the
        last positive count (Experiment 2: 4096, 4076, ..., 16 for step 20;
        ``step=1`` gives every level).

    Returns:
      ``(n_levels,)`` int64 NumPy array of keep counts.
    """
    n_nodes = v.check_int(n_nodes, "n_nodes", 1)
    if fractions is not None and step is not None:
        raise ValueError("give either fractions or step, not both")
    if step is not None:
        step = v.check_int(step, "step", 1)
        return np.arange(n_nodes, 0, -step, dtype=np.int64)
    try:
        ps = np.arange(1.0, 0, -0.1) if fractions is None else np.asarray(fractions, dtype=float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"fractions must be a 1-D sequence of numbers, got {fractions!r}") from err
    if ps.ndim != 1 or ps.size == 0 or not np.all((ps > 0) & (ps <= 1)):
        raise ValueError(f"fractions must be a non-empty 1-D sequence in (0, 1], got {ps!r}")
    counts = np.array([int(n_nodes * p) for p in ps], dtype=np.int64)
    if np.any(counts < 1):
        raise ValueError(
            f"fractions {ps[counts < 1].tolist()} keep no node of {n_nodes}; use larger fractions"
        )
    return counts
