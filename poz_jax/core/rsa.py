"""Representational similarity: RSMs, their fit, and class-mean items."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from poz_jax.core import kernels
from poz_jax.core import validate as v
from poz_jax.core.kernels import rsm_from_moments, upper_triangle

__all__ = ["class_means", "fit", "rsm", "rsm_from_moments", "upper_triangle"]


def rsm(x) -> jax.Array:
    """Representational similarity matrix: squared Pearson r between item rows.

    Args:
      x: ``(..., n_items, n_features)``.

    Returns:
      ``(..., n_items, n_items)``, diagonal 1; NaN in the row and column of
      any item whose features are all equal (its correlation is undefined).
    """
    # float16 moment sums keep 3 digits: computed in float32, as every sweep is.
    x = v.widen_half(v.as_float(x, "x"))
    v.check_min_rank(x, 2, "x", "(..., n_items, n_features)")
    if x.shape[-1] == 0:
        raise ValueError(f"x has no features (shape {tuple(x.shape)}); an RSM needs at least one")
    v.check_finite(x, "x")
    return kernels.rsm_kernel(x)


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
    a = v.as_float(v.unit_scale(rsm_a, "rsm_a"), "rsm_a")
    b = v.as_float(v.unit_scale(rsm_b, "rsm_b"), "rsm_b")
    v.check_square(a, "rsm_a")
    v.check_square(b, "rsm_b")
    v.check_same_items(a.shape[-1], b.shape[-1], "rsm_a", "rsm_b")
    v.check_broadcast(rsm_a=a.shape[:-2], rsm_b=b.shape[:-2])
    if a.shape[-1] < 3:
        raise ValueError(f"fit needs at least 3 items (2 pairs), got {a.shape[-1]}")
    v.check_symmetric(a, "rsm_a")
    v.check_symmetric(b, "rsm_b")
    return kernels.fit_kernel(a, b)


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
    return kernels.class_means_kernel(x, lab, int(n_classes))
