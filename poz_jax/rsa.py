"""Representational similarity: RSMs, their fit, and class-mean items."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from poz_jax import _validate as v


def rsm_from_moments(gram, sums, sumsq, count, constant) -> jax.Array:
    """Squared-Pearson RSM from per-row moments over a feature subset.

    Every RSM in poz-jax goes through here, so full RSMs and swept ones share
    one definition.

    Args:
      gram: ``(..., n, n)`` sums over kept features of ``x_i * x_j``.
      sums: ``(..., n)`` sums over kept features of ``x_i``.
      sumsq: ``(..., n)`` sums over kept features of ``x_i ** 2``.
      count: ``(...)`` number of kept features.
      constant: ``(..., n)`` bool, True where a row is constant over the kept
        features (decided exactly by the caller, not from ``sumsq``).

    Returns:
      ``(..., n, n)``: ``r ** 2``, diagonal 1, NaN in every entry whose row
      or column is constant (Pearson's r is undefined there).
    """
    k = jnp.asarray(count, gram.dtype)[..., None]
    var = sumsq - sums * sums / k
    bad = constant | ~(var > 0)
    sd = jnp.sqrt(jnp.where(bad, 1.0, var))
    cov = gram - sums[..., :, None] * sums[..., None, :] / k[..., None]
    r = jnp.clip(cov / (sd[..., :, None] * sd[..., None, :]), -1.0, 1.0)
    n = gram.shape[-1]
    # Two points always correlate perfectly; say so exactly, or rounding would
    # turn a constant RSM (whose fit is undefined) into a near-constant one.
    exact_one = jnp.eye(n, dtype=bool) | (k[..., None] == 2)
    r2 = jnp.where(exact_one, jnp.ones((), gram.dtype), r * r)
    return jnp.where(bad[..., :, None] | bad[..., None, :], jnp.nan, r2)


def _row_constant(x) -> jax.Array:
    return jnp.max(x, axis=-1) == jnp.min(x, axis=-1)


def _nearly_constant(t) -> jax.Array:
    # An RSM triangle whose spread is below sqrt(eps) of its scale is constant
    # up to rounding (e.g. r = 1 for every pair, computed as 1 - 1e-7), and a
    # correlation with it is noise; treat it as the constant it is.
    tol = jnp.sqrt(jnp.finfo(t.dtype).eps)
    spread = jnp.max(t, axis=-1) - jnp.min(t, axis=-1)
    return spread <= tol * jnp.max(jnp.abs(t), axis=-1)


def _centered(x) -> jax.Array:
    # Pearson's r is unchanged by a per-row shift and scale: removing each
    # row's mean keeps float32 moment sums away from catastrophic cancellation,
    # and dividing by its largest magnitude keeps squares and products of
    # values near 1e19 or 1e-19 from overflowing or underflowing.
    x = _unit_scale(x)  # first too, so the mean of values near 1e38 cannot overflow
    return _unit_scale(x - jnp.mean(x, axis=-1, keepdims=True))


def _unit_scale(x) -> jax.Array:
    scale = jnp.max(jnp.abs(x), axis=-1, keepdims=True)
    return x / jnp.where(scale > 0, scale, 1.0)


def rsm(x) -> jax.Array:
    """Representational similarity matrix: squared Pearson r between item rows.

    Args:
      x: ``(..., n_items, n_features)``.

    Returns:
      ``(..., n_items, n_items)``, diagonal 1; NaN in the row and column of
      any item whose features are all equal (its correlation is undefined).
    """
    x = v.as_float(x, "x")
    v.check_min_rank(x, 2, "x", "(..., n_items, n_features)")
    if x.shape[-1] == 0:
        raise ValueError(f"x has no features (shape {tuple(x.shape)}); an RSM needs at least one")
    v.check_finite(x, "x")
    return _rsm(x)


@jax.jit
def _rsm(x) -> jax.Array:
    xc = _centered(x)
    gram = jnp.einsum("...if,...jf->...ij", xc, xc)
    return rsm_from_moments(
        gram,
        jnp.sum(xc, -1),
        jnp.sum(xc * xc, -1),
        jnp.full(x.shape[:-2], x.shape[-1]),
        _row_constant(x),
    )


def upper_triangle(m) -> jax.Array:
    """Strict upper triangle of ``(..., n, n)`` as ``(..., n * (n - 1) // 2)``, row-major."""
    iu, ju = np.triu_indices(m.shape[-1], 1)
    return m[..., iu, ju]


def fit(rsm_a, rsm_b) -> jax.Array:
    """RSA fit: squared Pearson r between the strict upper triangles of two RSMs.

    Leading axes broadcast, so one target can be fitted against a stack of RSMs.

    Args:
      rsm_a: ``(..., n, n)``.
      rsm_b: ``(..., n, n)``.

    Returns:
      ``(...)`` values in [0, 1]; NaN when either triangle holds a NaN or is
      constant (its values span less than ``sqrt(eps)`` times their largest
      magnitude: 3.5e-4 in float32, 1.5e-8 in float64, the limit below which
      rounding, not data, sets the spread).
    """
    a = v.as_float(rsm_a, "rsm_a")
    b = v.as_float(rsm_b, "rsm_b")
    v.check_square(a, "rsm_a")
    v.check_square(b, "rsm_b")
    v.check_same_items(a.shape[-1], b.shape[-1], "rsm_a", "rsm_b")
    v.check_broadcast(rsm_a=a.shape[:-2], rsm_b=b.shape[:-2])
    if a.shape[-1] < 3:
        raise ValueError(f"fit needs at least 3 items (2 pairs), got {a.shape[-1]}")
    v.check_symmetric(a, "rsm_a")
    v.check_symmetric(b, "rsm_b")
    return _fit(a, b)


@jax.jit
def _fit(a, b) -> jax.Array:
    ta, tb = upper_triangle(a), upper_triangle(b)
    ta, tb = jnp.broadcast_arrays(ta, tb)
    ca, cb = _centered(ta), _centered(tb)
    num = jnp.sum(ca * cb, -1)
    den = jnp.sqrt(jnp.sum(ca * ca, -1) * jnp.sum(cb * cb, -1))
    # NaN entries already make num NaN; constant triangles need it said.
    bad = _nearly_constant(ta) | _nearly_constant(tb) | ~(den > 0)
    r = jnp.clip(num / jnp.where(bad, 1.0, den), -1.0, 1.0)
    return jnp.where(bad, jnp.nan, r * r)


def class_means(acts, labels, n_classes: int) -> jax.Array:
    """Mean activation row per class.

    Args:
      acts: ``(..., n_items, n_nodes)``.
      labels: ``(n_items,)`` or ``(..., n_items)`` integer labels in
        ``0..n_classes - 1``.
      n_classes: number of classes (static).

    Returns:
      ``(..., n_classes, n_nodes)``; a class with no items gives a NaN row.
    """
    x = v.as_float(acts, "acts")
    v.check_min_rank(x, 2, "acts", "(..., n_items, n_nodes)")
    lab = v.as_array(labels, "labels")
    if lab.ndim < 1 or lab.shape[-1] != x.shape[-2]:
        raise ValueError(
            f"labels must have shape (..., {x.shape[-2]}) to match acts {tuple(x.shape)}, "
            f"got {tuple(lab.shape)}"
        )
    if not jnp.issubdtype(lab.dtype, jnp.integer):
        raise ValueError(f"labels must be integers, got dtype {lab.dtype}")
    n_classes = v.check_int(n_classes, "n_classes", 1)
    v.check_broadcast(acts=x.shape[:-2], labels=lab.shape[:-1])
    if v.is_concrete(lab) and lab.size and (int(lab.min()) < 0 or int(lab.max()) >= n_classes):
        raise ValueError(
            f"labels must lie in 0..{n_classes - 1}, got {int(lab.min())}..{int(lab.max())}"
        )
    v.check_finite(x, "acts")
    return _class_means(x, lab, int(n_classes))


@partial(jax.jit, static_argnums=2)
def _class_means(x, lab, n_classes: int) -> jax.Array:
    onehot = jax.nn.one_hot(lab, n_classes, dtype=x.dtype)  # (..., n_items, n_classes)
    totals = jnp.einsum("...ic,...if->...cf", onehot, x)
    counts = jnp.sum(onehot, axis=-2)[..., None]
    return totals / counts
