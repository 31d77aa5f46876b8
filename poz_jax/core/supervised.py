"""Supervised node importance (Tarigopula et al., Neural Networks 2023).

The importance of a node is the fit to the target with all nodes minus the
fit with that node left out. Leaving one node out of a Gram matrix is a
rank-one change, so all ``n_nodes`` leave-one-out fits cost one Gram product
plus one ``n_items x n_items`` fit per node, not ``n_nodes`` sweeps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from poz_jax.core import kernels
from poz_jax.core import validate as v


def leave_one_out_fits(x, target) -> jax.Array:
    """Fit to ``target`` of the RSM of ``x`` without node ``j``, for every ``j``.

    Args:
      x: ``(..., n_items, n_nodes)`` activations, at least 2 nodes.
      target: ``(..., n_items, n_items)`` symmetric similarity matrix.

    Returns:
      ``(..., n_nodes)`` squared Pearson r, as :func:`poz_jax.fit` of
      ``rsm(np.delete(x, j, -1))`` against ``target`` (NaN where that is undefined).
    """
    x, t = _prepare(x, target)
    return _loo(x, t)[1]


def importance(x, target) -> jax.Array:
    """Tarigopula et al.'s importance: fit with all nodes minus fit without each node.

    Args:
      x: ``(..., n_items, n_nodes)`` activations, at least 2 nodes.
      target: ``(..., n_items, n_items)`` symmetric similarity matrix.

    Returns:
      ``(..., n_nodes)``, in units of squared Pearson r. Positive: the node
      helps the fit. Adding nodes back from the most important keeps
      ``keep_order(-importance)``.
    """
    x, t = _prepare(x, target)
    full, loo = _loo(x, t)
    return full[..., None] - loo


def _prepare(x, target):
    x = v.prepare_acts(x)
    if x.shape[-1] < 2:
        raise ValueError(f"leaving a node out needs at least 2 nodes, got {x.shape[-1]}")
    t = v.prepare_target(target, x.shape[-2], x.shape[:-2], x.dtype)
    return x, t


@jax.jit
def _loo(x, t):
    f = jnp.vectorize(_loo_one, signature="(n,d),(n,n)->(),(d)")
    return f(x, t)


def _loo_one(x, t):
    n, d = x.shape
    xa = jnp.concatenate([kernels.centered(x), jnp.ones((1, d), x.dtype)])
    gram = xa @ xa.T
    target = kernels.TriangleTarget.of(t)
    full = target.fit_moments(gram, d, kernels.row_constant(x))
    # A row is constant without node j iff its extremes over the other nodes
    # agree: the largest is the second largest when j holds the only maximum.
    top = jax.lax.top_k(x, 2)[0]
    bottom = -jax.lax.top_k(-x, 2)[0]

    def without(j):
        col = xa[:, j]
        xj = x[:, j]
        hi = jnp.where(xj == top[:, 0], top[:, 1], top[:, 0])
        lo = jnp.where(xj == bottom[:, 0], bottom[:, 1], bottom[:, 0])
        return target.fit_moments(gram - col[:, None] * col[None, :], d - 1, hi == lo)

    # Several nodes side by side, as many as keep their Grams near 16 MiB.
    batch = max(1, min(d, 2**24 // ((n + 1) ** 2 * x.dtype.itemsize)))
    return full, jax.lax.map(without, jnp.arange(d), batch_size=batch)
