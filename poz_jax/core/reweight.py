"""Feature reweighting (Peterson, Abbott & Griffiths 2018), solved exactly for many penalties.

The reweighted similarity of items ``i`` and ``j`` is
``s_ij = b + sum_k w_k x_ik x_jk``. The weights come from ridge regression of
the target's pair similarities (strict upper triangle) on the pairs'
element-wise products ``x_i * x_j``, with an unpenalised intercept:
minimise ``sum_{i<j} (y_ij - b - s_ij)^2 + lambda ||w||^2``.

The ``n_pairs x n_nodes`` design is never built. Its cross-product is
``X^T X = ((F^T F)**2 - (F**2)^T (F**2)) / 2`` (``**`` elementwise), two
``n_nodes x n_nodes x n_items`` products, and ``X^T y = diag(F^T Y F) / 2``;
one eigendecomposition of the centred cross-product then gives the weights
for every penalty at once. With fewer training pairs than nodes the same
solution comes from the pairs' kernel instead (the dual), whichever is
smaller; a single penalty takes a Cholesky solve. Penalties are given relative to the mean
eigenvalue, ``lambda = alpha * trace(X_c^T X_c) / n_nodes``, so one grid of
``alpha`` suits any layer's scale.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from poz_jax.core import kernels
from poz_jax.core import validate as v
from poz_jax.core.crossval import item_splits

ALPHAS = tuple(10.0**p for p in range(-3, 4))  # 0.001 .. 1000, relative penalties


def reweighting_path(x, target, alphas=ALPHAS) -> tuple[jax.Array, jax.Array]:
    """Ridge weights and intercepts for each relative penalty ``alpha``.

    Args:
      x: ``(n_items, n_nodes)`` activations of one set.
      target: ``(n_items, n_items)`` symmetric similarity matrix; only its
        strict upper triangle is fitted.
      alphas: ``(n_alphas,)`` positive relative penalties (see the module).

    Returns:
      ``weights`` ``(n_alphas, n_nodes)`` and ``intercepts`` ``(n_alphas,)``.
    """
    x, t, a = _prepare(x, target, alphas)
    return _path(x, t, a)


def reweighted_similarity(x, weights, intercept) -> jax.Array:
    """``s_ij = intercept + sum_k weights_k x_ik x_jk``.

    Args:
      x: ``(n_items, n_nodes)`` activations.
      weights: ``(..., n_nodes)``.
      intercept: ``(...)``.

    Returns:
      ``(..., n_items, n_items)``.
    """
    x = v.prepare_acts(x)
    w = v.as_float(weights, "weights")
    if w.ndim < 1 or w.shape[-1] != x.shape[-1]:
        raise ValueError(f"weights must have shape (..., {x.shape[-1]}), got {tuple(w.shape)}")
    b = v.as_float(intercept, "intercept")
    v.check_broadcast(weights=w.shape[:-1], intercept=b.shape)
    return _similarity(x, w, b)


def penalty_scores(x, target, alphas=ALPHAS, folds: int = 3, seed: int = 0) -> jax.Array:
    """Mean validation fit of each penalty, by cross-validation over the items given.

    The items are cut into ``folds`` folds (:func:`poz_jax.core.crossval.item_splits`,
    one repeat); for each, the weights are fitted on the other items and the
    reweighted similarity among the held-out items is scored against their
    block of ``target`` (squared Pearson r of the upper triangles).

    Returns:
      ``(n_alphas,)`` mean validation fits (NaN where every fold's is undefined).
    """
    x, t, a = _prepare(x, target, alphas)
    folds = v.check_int(folds, "folds", 2)
    seed = v.check_seed(seed)
    scores = []
    for s in item_splits(x.shape[0], folds, 1, seed):
        scores.append(_validation_fits(*s.take(x, t), a))
    return jnp.nanmean(jnp.stack(scores), axis=0)


def _prepare(x, target, alphas):
    x = v.prepare_one_set(x)
    t = v.prepare_target(target, x.shape[0], dtype=x.dtype)
    a = v.as_float(alphas, "alphas").astype(x.dtype)
    if a.ndim != 1 or a.shape[0] == 0:
        raise ValueError(f"alphas must be a non-empty 1-D array, got shape {tuple(a.shape)}")
    if v.is_concrete(a):
        vals, xp = v.readable(a)
        if not bool(xp.all(xp.isfinite(vals) & (vals > 0))):
            raise ValueError("alphas must be positive and finite")
    return x, t, a


@jax.jit
def _path(f, y, alphas):
    n, d = f.shape
    n_pairs = n * (n - 1) // 2
    # Solve in the smaller space: nodes (primal) or training pairs (dual).
    w = (_dual if n_pairs < d else _primal)(f, y, alphas)
    xbar, ybar = _pair_means(f, y)
    return w.T, ybar - xbar @ w


def _pair_means(f, y):
    n = f.shape[0]
    n_pairs = n * (n - 1) // 2
    total = jnp.sum(f, 0)
    xbar = 0.5 * (total * total - jnp.sum(f * f, 0)) / n_pairs  # mean pair product
    ybar = jnp.sum(jnp.where(kernels._upper(n), y, 0.0)) / n_pairs
    return xbar, ybar


def _ridge(gram, rhs, alphas, scale):
    """``(gram + alpha * scale * I)^-1 rhs`` for each alpha: ``(m, n_alphas)``."""
    if alphas.shape[0] == 1:  # one penalty: a Cholesky solve is cheaper than eigh
        eye = jnp.eye(gram.shape[0], dtype=gram.dtype)
        factor = jax.scipy.linalg.cho_factor(gram + alphas[0] * scale * eye)
        return jax.scipy.linalg.cho_solve(factor, rhs)[:, None]
    evals, evecs = jnp.linalg.eigh(gram)
    return evecs @ ((evecs.T @ rhs)[:, None] / (evals[:, None] + alphas[None, :] * scale))


def _primal(f, y, alphas):
    n, d = f.shape
    n_pairs = n * (n - 1) // 2
    g = f.T @ f
    f2 = f * f
    xbar, ybar = _pair_means(f, y)
    # Centred X^T X and X^T y without the design: the intercept leaves the penalty.
    cross = 0.5 * (g * g - f2.T @ f2) - n_pairs * jnp.outer(xbar, xbar)
    y0 = jnp.where(jnp.eye(n, dtype=bool), 0.0, y)
    rhs = 0.5 * jnp.sum(f * (y0 @ f), 0) - n_pairs * xbar * ybar
    return _ridge(cross, rhs, alphas, jnp.trace(cross) / d)


def _dual(f, y, alphas):
    n, d = f.shape
    iu, ju = np.triu_indices(n, 1)
    design = f[iu] * f[ju]
    design = design - jnp.mean(design, 0)
    target = y[iu, ju] - jnp.mean(y[iu, ju])
    kernel = design @ design.T
    coef = _ridge(kernel, target, alphas, jnp.trace(kernel) / d)
    return design.T @ coef


@jax.jit
def _similarity(f, w, b):
    return jnp.einsum("im,...m,jm->...ij", f, w, f) + b[..., None, None]


@jax.jit
def _validation_fits(f_train, y_train, f_val, y_val, alphas):
    w, b = _path(f_train, y_train, alphas)
    return kernels.fit_kernel(_similarity(f_val, w, b), y_val)
