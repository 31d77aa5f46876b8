"""Node scores and keep orders: PoZ (percentage of zeros), standard deviation,
entropy and collinearity per node; the keep order a score induces; keep grids."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from poz_jax.core import validate as v


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
    a = v.widen_half(a)  # count in float32 at least: a float16 count stops at 65,504
    if jnp.issubdtype(a.dtype, jnp.floating):
        v.check_finite(a, "acts")
        return jnp.mean(a == 0, axis=-2, dtype=a.dtype)
    return jnp.mean(a == 0, axis=-2, dtype=jnp.result_type(float))


def zero_counts(acts) -> jax.Array:
    """Zeros per node over every axis but the last: ``(..., nodes)`` -> ``(nodes,)`` int32.

    Jit-able; a convolutional map ``(n, H, W, C)`` gives each channel's zeros
    over its images and positions (Hu et al.'s APoZ numerator).
    """
    return jnp.sum(acts == 0, axis=tuple(range(acts.ndim - 1)), dtype=jnp.int32)


def streamed_apoz(count_batch, images, batch: int, positions: dict) -> dict[str, np.ndarray]:
    """APoZ (Hu et al. 2016) from zero counts summed over batches of ``images``.

    Args:
      count_batch: ``images[i:j]`` -> ``{layer: (..., nodes)}`` int zero counts
        (one jitted call, so no layer's maps outlive their batch).
      batch: images per call.
      positions: ``{layer: int}`` map positions per channel (1 for a dense node).

    Returns:
      ``{layer: (..., nodes)}`` float64 shares of zeros over all images and
      positions; each batch's int32 counts are summed in int64, so no number
      of images overflows them.
    """
    zeros: dict[str, np.ndarray] = {}
    for i in range(0, len(images), batch):
        for k, c in count_batch(images[i : i + batch]).items():
            zeros[k] = zeros.get(k, 0) + np.asarray(c, np.int64)
    return {k: zeros[k] / (len(images) * positions[k]) for k in zeros}


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
    if v.is_concrete(p) and p.size:
        vals, xp = v.readable(p)
        bad = int(xp.sum(~((vals >= 0) & (vals <= 1))))
        if bad:
            raise ValueError(
                f"poz_values must be fractions in [0, 1] (not percentages); {bad} value(s) "
                "lie outside it or are NaN"
            )
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
    if np.any(counts < 1) and fractions is None:
        raise ValueError(
            f"the paper's grid (10%, 20%, ..., 100% of the nodes) keeps no node of {n_nodes} at "
            "10%: it needs at least 10 nodes; pass step= (every level: step=1) or fractions="
        )
    if np.any(counts < 1):
        raise ValueError(
            f"fractions {ps[counts < 1].tolist()} keep no node of {n_nodes}; use larger fractions"
        )
    return counts


# --- other unsupervised node scores -----------------------------------------------------
#
# Truong & Hasson's follow-up abstract (VSS 2023) orders nodes by low standard
# deviation, low entropy and high collinearity besides PoZ, without formulas.
# The definitions below are poz-jax's; each is computed over the items given
# (in a cross-validated comparison, the training items only), and each is a
# score whose *lowest* values are kept first, like PoZ, so ``keep_order``
# turns any of them into a keep order.


def _acts(acts) -> jax.Array:
    a = v.prepare_acts(acts)
    if a.shape[-2] < 2:
        raise ValueError(f"acts needs at least 2 items, got {a.shape[-2]}")
    return a


def node_std(acts) -> jax.Array:
    """Standard deviation of each node over the items (population, ``ddof=0``).

    Args:
      acts: ``(..., n_items, n_nodes)``.

    Returns:
      ``(..., n_nodes)`` in the units of ``acts``. Pruning low-std nodes first
      keeps ``keep_order(-node_std(acts))``.
    """
    return jnp.std(_acts(acts), axis=-2)


def node_entropy(acts, bins: int = 10) -> jax.Array:
    """Shannon entropy (nats) of each node's activations over the items.

    The node's range over the items, ``[min, max]``, is cut into ``bins``
    equal-width bins (the maximum falls in the last); the entropy is
    ``-sum p log p`` of the fractions of items per bin. A node constant over
    the items has entropy 0; a post-ReLU node silent on most items puts them
    all in its first bin, so rarely-firing nodes score low.

    Args:
      acts: ``(..., n_items, n_nodes)``.
      bins: number of bins, at least 2.

    Returns:
      ``(..., n_nodes)`` in ``[0, log(bins)]``. Pruning low-entropy nodes first
      keeps ``keep_order(-node_entropy(acts))``.
    """
    a = _acts(acts)
    bins = v.check_int(bins, "bins", 2)
    return _entropy(a, bins)


@partial(jax.jit, static_argnums=1)
def _entropy(a, bins: int) -> jax.Array:
    lo, hi = jnp.min(a, axis=-2, keepdims=True), jnp.max(a, axis=-2, keepdims=True)
    span = jnp.where(hi > lo, hi - lo, 1.0)
    idx = jnp.clip(jnp.floor((a - lo) / span * bins), 0, bins - 1).astype(jnp.int32)
    p = jnp.mean(jax.nn.one_hot(idx, bins, dtype=a.dtype), axis=-3)  # (..., nodes, bins)
    return -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0), axis=-1)


def node_collinearity(acts) -> jax.Array:
    """Mean squared Pearson correlation of each node with every other node, over the items.

    ``c_j = sum_{k != j} r_jk^2 / (m - 1)`` over the ``m`` nodes that vary
    over the items, computed through the ``n_items x n_items`` matrix
    ``Z Z^T`` of standardised columns (``sum_k r_jk^2 = z_j^T Z Z^T z_j``), so
    it costs ``O(n_items^2 n_nodes)``, not ``O(n_nodes^2)``. A node constant
    over the items carries no item information and scores 1 (pruned first
    with the most collinear).

    Args:
      acts: ``(..., n_items, n_nodes)``.

    Returns:
      ``(..., n_nodes)`` in ``[0, 1]``. Pruning high-collinearity nodes first
      keeps ``keep_order(node_collinearity(acts))``.
    """
    return _collinearity(_acts(acts))


@jax.jit
def _collinearity(a) -> jax.Array:
    c = a - jnp.mean(a, axis=-2, keepdims=True)
    norm = jnp.sqrt(jnp.sum(c * c, axis=-2, keepdims=True))
    varies = (jnp.max(a, axis=-2) > jnp.min(a, axis=-2))[..., None, :]
    z = jnp.where(varies, c / jnp.where(varies & (norm > 0), norm, 1.0), 0.0)
    m = jnp.einsum("...if,...jf->...ij", z, z)
    total = jnp.einsum("...if,...ij,...jf->...f", z, m, z)  # sum_k r_jk^2, with r_jj^2 = 1
    n_vary = jnp.sum(varies, axis=(-2, -1))[..., None]
    mean_sq = (total - 1.0) / jnp.maximum(n_vary - 1, 1)
    return jnp.where(varies[..., 0, :], jnp.clip(mean_sq, 0.0, 1.0), 1.0)
