"""How well any model could fit human similarity: split-half and leave-one-out noise ceilings.

Two kinds of data, two ceilings. A matrix averaged over two batches of
raters gets the split-half ceiling below (:func:`split_half`). One matrix per
participant gets the leave-one-participant-out ceiling of Nili et al. (2014),
as rsatoolbox computes it for the ``corr`` comparison
(:func:`noise_ceiling`).

A matrix averaged over two independent batches of raters is a noisy measure
of the raters' true similarity. With ``r`` the Pearson correlation between
the two batches' strict upper triangles, the Spearman-Brown formula
(Spearman 1910; Brown 1910) gives the reliability of their mean,
``rho = 2 r / (1 + r)``. By classical test theory the correlation of any
model with a measure is at most the square root of that measure's
reliability (Spearman's 1904 correction for attenuation; for RSA noise
ceilings see Nili et al. 2014, PLoS Comput Biol 10:e1003553, and
Lage-Castellanos et al. 2019, PLoS Comput Biol 15:e1006397), so the fit
(a squared Pearson r) is at most ``rho``: the ceiling. The fit of one
batch to the other, ``r ** 2``, is what one group of raters achieves
predicting another, a lower bound to read beside it.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from poz_jax.core import validate as v
from poz_jax.core.kernels import upper_triangle


class SplitHalf(NamedTuple):
    """:func:`split_half`'s result, each a scalar."""

    r: jax.Array  # Pearson r between the two batches' strict upper triangles
    reliability: jax.Array  # Spearman-Brown 2r / (1 + r): of the two batches' mean
    ceiling: jax.Array  # the largest fit (R^2) any model can expect: = reliability
    batch_fit: jax.Array  # r ** 2: one batch's fit to the other


def split_half(batch_a, batch_b) -> SplitHalf:
    """Split-half reliability and the fit ceiling of the mean of two rater batches.

    Args:
      batch_a, batch_b: ``(n, n)`` symmetric similarity matrices from two
        independent batches of raters of the same items (any common scale).

    Returns:
      :class:`SplitHalf`. A negative ``r`` gives a reliability below 0 and a
      ceiling of 0: such batches share nothing a model could fit.
    """
    a = v.as_float(batch_a, "batch_a")
    b = v.as_float(batch_b, "batch_b")
    for m, name in ((a, "batch_a"), (b, "batch_b")):
        if m.ndim != 2:
            raise ValueError(f"{name} must be one (n, n) matrix, got shape {tuple(m.shape)}")
        v.check_square(m, name)
        v.check_finite(m, name)
        v.check_symmetric(m, name)
    v.check_same_items(a.shape[-1], b.shape[-1], "batch_a", "batch_b")
    if a.shape[-1] < 3:
        raise ValueError(f"split_half needs at least 3 items, got {a.shape[-1]}")
    return _split_half(a, b)


@jax.jit
def _split_half(a, b) -> SplitHalf:
    x, y = upper_triangle(a), upper_triangle(b)
    x, y = x - x.mean(), y - y.mean()
    r = jnp.sum(x * y) / jnp.sqrt(jnp.sum(x * x) * jnp.sum(y * y))
    rho = 2.0 * r / (1.0 + r)
    return SplitHalf(r, rho, jnp.clip(rho, 0.0, 1.0), r * r)


class NoiseCeiling(NamedTuple):
    """:func:`noise_ceiling`'s result: the bounds, and each participant's terms ``(S,)``."""

    lower: jax.Array  # mean over participants of r(mean of the others, theirs)
    upper: jax.Array  # mean over participants of r(mean of all, theirs)
    lower_r2: jax.Array  # the same means of r ** 2: the bounds in the units of the fit
    upper_r2: jax.Array
    lower_each: jax.Array  # (S,) r(mean of the others, participant s)
    upper_each: jax.Array  # (S,) r(mean of all, participant s)


def noise_ceiling(matrices) -> NoiseCeiling:
    """Leave-one-participant-out noise ceiling of one matrix per participant.

    Each participant's strict upper triangle is z-scored (population sd, as
    rsatoolbox's ``pool_rdm(method="corr")``), the z-scores are averaged, and
    each participant is correlated with the mean of all (upper bound) and of
    the others (lower bound); the bounds are the means over participants, in
    Pearson r as rsatoolbox's ``boot_noise_ceiling(rdms, method="corr")``
    returns them, and in r ** 2 (the mean of the squares: the units of the
    fit). Correlations do not depend on whether the matrices are
    similarities or dissimilarities, as long as all are the same kind.

    Args:
      matrices: ``(S, n, n)`` symmetric matrices, ``S >= 2`` participants.

    Returns:
      :class:`NoiseCeiling`.
    """
    m = v.as_float(matrices, "matrices")
    if m.ndim != 3 or m.shape[0] < 2:
        raise ValueError(
            f"matrices must be (participants, n, n) with at least 2 participants, got shape "
            f"{tuple(m.shape)}"
        )
    v.check_square(m, "matrices")
    v.check_finite(m, "matrices")
    v.check_symmetric(m, "matrices")
    if m.shape[-1] < 3:
        raise ValueError(f"noise_ceiling needs at least 3 items, got {m.shape[-1]}")
    return _noise_ceiling(v.unit_scale(m, "matrices"))


def _pearson(a, b) -> jax.Array:
    a = a - a.mean(-1, keepdims=True)
    b = b - b.mean(-1, keepdims=True)
    return jnp.sum(a * b, -1) / jnp.sqrt(jnp.sum(a * a, -1) * jnp.sum(b * b, -1))


@jax.jit
def _noise_ceiling(m) -> NoiseCeiling:
    t = upper_triangle(m)  # (S, P)
    z = (t - t.mean(-1, keepdims=True)) / t.std(-1, keepdims=True)
    n = t.shape[0]
    total = z.sum(0)
    others = (total[None] - z) / (n - 1)
    lower = _pearson(others, t)
    upper = _pearson(jnp.broadcast_to(total / n, t.shape), t)
    return NoiseCeiling(
        lower.mean(), upper.mean(), (lower**2).mean(), (upper**2).mean(), lower, upper
    )
