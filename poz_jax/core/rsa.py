"""Representational similarity: RSMs, their fit, and class-mean items."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from poz_jax.core import kernels
from poz_jax.core import validate as v
from poz_jax.core.kernels import rsm_from_moments, upper_triangle

__all__ = [
    "class_means",
    "fit",
    "fit_r",
    "participant_fits",
    "rsm",
    "rsm_from_moments",
    "upper_triangle",
]

# What a human matrix measures: alike items score high (similarity) or low (dissimilarity).
KINDS = ("similarity", "dissimilarity")


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
    a, b = _matrix_pair(rsm_a, rsm_b, "rsm_a", "rsm_b", "fit")
    return kernels.fit_kernel(a, b)


def _matrix_pair(a, b, name_a: str, name_b: str, what: str, paired: bool = True):
    """Two fit inputs checked alike (square, same items, >= 3 items, symmetric, and
    leading axes that broadcast when ``paired``), each brought to unit scale
    (:func:`~poz_jax.core.validate.unit_scale`)."""
    a = v.as_float(v.unit_scale(a, name_a), name_a)
    b = v.as_float(v.unit_scale(b, name_b), name_b)
    v.check_square(a, name_a)
    v.check_square(b, name_b)
    v.check_same_items(a.shape[-1], b.shape[-1], name_a, name_b)
    if paired:
        v.check_broadcast(**{name_a: a.shape[:-2], name_b: b.shape[:-2]})
    if a.shape[-1] < 3:
        raise ValueError(f"{what} needs at least 3 items (2 pairs), got {a.shape[-1]}")
    v.check_symmetric(a, name_a)
    v.check_symmetric(b, name_b)
    return a, b


def fit_r(model_rsm, human, human_kind: str = "similarity") -> jax.Array:
    """The signed fit: Pearson r between the strict upper triangles, oriented so that a
    positive value means the model agrees with people.

    The fit (:func:`fit`) is ``r ** 2`` and cannot tell agreement from
    anti-agreement; this can. ``model_rsm`` is a similarity (poz-jax's RSMs
    are); ``human_kind`` says what ``human`` is: ``"similarity"`` or
    ``"dissimilarity"`` (an RDM, as rsatoolbox and MATLAB's classic files
    store them), whose r is negated. Leading axes broadcast.

    Args:
      model_rsm: ``(..., n, n)``.
      human: ``(..., n, n)``.

    Returns:
      ``(...)`` values in [-1, 1]; NaN where :func:`fit` is NaN.
    """
    v.check_choice(human_kind, "human_kind", KINDS)
    a, b = _matrix_pair(model_rsm, human, "model_rsm", "human", "fit_r")
    r = kernels.signed_fit_kernel(a, b)
    return -r if human_kind == "dissimilarity" else r


def participant_fits(model_rsms, humans, human_kind: str = "similarity") -> jax.Array:
    """The signed fit (:func:`fit_r`) of every model RSM to every participant's matrix.

    One matrix product over the strict upper triangles, so ``M`` models
    against ``S`` participants never hold ``M x S`` matrices.

    Args:
      model_rsms: ``(..., n, n)`` similarities (e.g. a sweep's RSMs).
      humans: ``(S, n, n)``, one matrix per participant, all of ``human_kind``.

    Returns:
      ``(..., S)`` Pearson r in [-1, 1], positive where the model agrees with
      the participant; NaN where either triangle is constant or holds a NaN.
    """
    v.check_choice(human_kind, "human_kind", KINDS)
    if np.ndim(humans) != 3:
        raise ValueError(
            f"humans must be (participants, n, n), one matrix each, got shape "
            f"{tuple(np.shape(humans))}"
        )
    a, b = _matrix_pair(model_rsms, humans, "model_rsms", "humans", "participant_fits", False)
    r = kernels.cross_fit_kernel(a, b)
    return -r if human_kind == "dissimilarity" else r


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
    if v.is_concrete(lab) and lab.size:
        vals, xp = v.readable(lab)
        lo, hi = int(xp.min(vals)), int(xp.max(vals))
        if lo < 0 or hi >= n_classes:
            raise ValueError(f"labels must lie in 0..{n_classes - 1}, got {lo}..{hi}")
    v.check_finite(x, "acts")
    return kernels.class_means_kernel(x, lab, int(n_classes))
