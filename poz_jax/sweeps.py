"""Pruning sweeps: RSMs and fits at many keep levels in one batched pass."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from poz_jax import _validate as v
from poz_jax.rsa import _centered, _fit, rsm_from_moments


def _nested_rsms(x, keep_counts, order):
    """RSMs at nested levels, for one ``(n, d)`` matrix; see :func:`sweep_rsms`."""
    n, d = x.shape
    # Validated callers never pass a count outside 1..d; under jit (values
    # unknown) a plain clamp is the documented rule.
    keep_counts = jnp.clip(keep_counts, 1, d)
    n_levels = keep_counts.shape[0]
    xo = jnp.take(x, order, axis=-1)
    # A row of ones makes the Gram carry every other moment too: its entries
    # against row i are row i's sums, its own entry the count, and the
    # diagonal holds the sums of squares.
    xa = jnp.concatenate([_centered(xo), jnp.ones((1, d), x.dtype)])

    # Gram matrices of nested prefixes: cut the columns into equal blocks,
    # accumulate one block Gram per step (together one n x n x d product),
    # and add each level's partial block. A block of about d / L columns
    # makes the partial blocks cost about as much as the full pass.
    width = max(1, math.ceil(d / n_levels))
    n_blocks = math.ceil(d / width)
    blocks = jnp.pad(xa, ((0, 0), (0, n_blocks * width - d)))
    blocks = blocks.reshape(n + 1, n_blocks, width).transpose(1, 0, 2)  # (B, n+1, w)

    def accumulate(gram, block):
        gram = gram + block @ block.T
        return gram, gram

    zero = jnp.zeros((n + 1, n + 1), x.dtype)
    _, prefix = jax.lax.scan(accumulate, zero, blocks)
    prefix = jnp.concatenate([zero[None], prefix])  # prefix[c]: first c blocks
    full = keep_counts // width
    part = blocks[jnp.minimum(full, n_blocks - 1)]  # (L, n+1, w)
    part = part * (jnp.arange(width) < (keep_counts - full * width)[:, None])[:, None, :]
    gram = prefix[full] + jnp.einsum("liw,ljw->lij", part, part)

    # Exact constancy: a row is constant over the first k kept columns iff
    # its first column that differs from its first kept value lies beyond k.
    differs = xo != xo[:, :1]
    first_diff = jnp.where(jnp.any(differs, 1), jnp.argmax(differs, 1), d)
    constant = keep_counts[:, None] <= first_diff[None, :]
    moments = gram[:, :n, :n], gram[:, n, :n], jnp.diagonal(gram[:, :n, :n], 0, 1, 2)
    return rsm_from_moments(*moments, keep_counts, constant)


def _masked_rsms(x, masks):
    """RSMs over arbitrary feature masks, for one ``(n, d)`` matrix."""
    m = masks.astype(x.dtype)
    xc = _centered(x)
    gram = jnp.einsum("id,ld,jd->lij", xc, m, xc)
    sums = jnp.einsum("id,ld->li", xc, m)
    sumsq = jnp.einsum("id,ld->li", xc * xc, m)
    keep = masks[:, None, :]
    hi = jnp.max(jnp.where(keep, x[None], -jnp.inf), -1)
    lo = jnp.min(jnp.where(keep, x[None], jnp.inf), -1)
    return rsm_from_moments(gram, sums, sumsq, jnp.sum(m, -1), hi == lo)


def _prepare_x(x):
    x = v.as_float(x, "x")
    v.check_min_rank(x, 2, "x", "(..., n_items, n_nodes)")
    v.check_finite(x, "x")
    return x


def _prepare(x, keep_counts, order):
    x = _prepare_x(x)
    k = v.as_keep_counts(keep_counts, x.shape[-1])
    o = v.check_order(order, x.shape[-1])
    v.check_broadcast(x=x.shape[:-2], order=o.shape[:-1])
    return x, k, o


def _prepare_target(target, n_items: int, lead: tuple = ()):
    t = v.as_float(target, "target")
    v.check_square(t, "target")
    v.check_same_items(n_items, t.shape[-1], "x", "target")
    v.check_broadcast(x=lead, target=t.shape[:-2])
    if n_items < 3:
        raise ValueError(f"a fit needs at least 3 items (2 pairs), got {n_items}")
    v.check_symmetric(t, "target")
    return t


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
    x, k, o = _prepare(x, keep_counts, order)
    return _sweep_rsms(x, k, o)


@jax.jit
def _sweep_rsms(x, k, o):
    f = jnp.vectorize(lambda xx, oo: _nested_rsms(xx, k, oo), signature="(n,d),(d)->(l,n,n)")
    return f(x, o)


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
    x, k, o = _prepare(x, keep_counts, order)
    t = _prepare_target(target, x.shape[-2], np.broadcast_shapes(x.shape[:-2], o.shape[:-1]))
    return _sweep(x, t, k, o)


@jax.jit
def _sweep(x, t, k, o):
    f = jnp.vectorize(
        lambda xx, tt, oo: _fit(_nested_rsms(xx, k, oo), tt), signature="(n,d),(n,n),(d)->(l)"
    )
    return f(x, t, o)


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
    x = _prepare_x(x)
    t = _prepare_target(target, x.shape[-2], x.shape[:-2])
    m = v.as_array(masks, "masks")
    if m.ndim != 2 or m.shape[-1] != x.shape[-1]:
        raise ValueError(f"masks must have shape (n_levels, {x.shape[-1]}), got {tuple(m.shape)}")
    if m.dtype != jnp.bool_:
        raise ValueError(f"masks must be boolean, got dtype {m.dtype}")
    if v.is_concrete(m) and not bool(jnp.all(jnp.any(m, -1))):
        empty = [int(i) for i in jnp.nonzero(~jnp.any(m, -1))[0]]
        raise ValueError(f"masks rows {empty} keep no node; every level must keep at least one")
    return _sweep_masks(x, t, m)


@jax.jit
def _sweep_masks(x, t, m):
    f = jnp.vectorize(lambda xx, tt: _fit(_masked_rsms(xx, m), tt), signature="(n,d),(n,n)->(l)")
    return f(x, t)
