"""Unvalidated, jit-compiled kernels of the array core.

The public functions (:func:`poz_jax.rsm`, :func:`poz_jax.sweep`, ...) check
their inputs, then call these, which carry the public name with ``_kernel``
after it (``rsm_kernel``, ``sweep_kernel``, ...). Call a kernel directly only
with inputs you have validated: a kernel never checks shapes, values or
dtypes, and a wrong input gives a wrong number or a deep JAX error, not a
clear message.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np


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


def row_constant(x) -> jax.Array:
    """``(..., n)`` bool: rows of ``(..., n, f)`` whose features are all equal."""
    return jnp.max(x, axis=-1) == jnp.min(x, axis=-1)


def nearly_constant(t) -> jax.Array:
    """``(...)`` bool: triangles ``(..., p)`` constant up to rounding."""
    return _flat(jnp.max(t, axis=-1), jnp.min(t, axis=-1))


def _flat(hi, lo) -> jax.Array:
    # Values whose spread is below sqrt(eps) of their scale are constant up to
    # rounding (e.g. r = 1 for every pair, computed as 1 - 1e-7), and a
    # correlation with them is noise; treat them as the constant they are.
    tol = jnp.sqrt(jnp.finfo(hi.dtype).eps)
    return hi - lo <= tol * jnp.maximum(jnp.abs(hi), jnp.abs(lo))


def _upper(n: int) -> jax.Array:
    # The strict upper triangle as a mask built from iotas: XLA fuses it where
    # it is used, so no n x n mask is ever held in memory.
    return jnp.arange(n)[:, None] < jnp.arange(n)[None, :]


def centered(x) -> jax.Array:
    """Each row minus its mean, divided by its largest magnitude (``r`` is unchanged)."""
    # Pearson's r is unchanged by a per-row shift and scale: removing each
    # row's mean keeps float32 moment sums away from catastrophic cancellation,
    # and dividing by its largest magnitude keeps squares and products of
    # values near 1e19 or 1e-19 from overflowing or underflowing.
    x = unit_scale(x)  # first too, so the mean of values near 1e38 cannot overflow
    return unit_scale(x - jnp.mean(x, axis=-1, keepdims=True))


def unit_scale(x) -> jax.Array:
    """Each row divided by its largest magnitude (zero rows stay zero)."""
    scale = jnp.max(jnp.abs(x), axis=-1, keepdims=True)
    return x / jnp.where(scale > 0, scale, 1.0)


def upper_triangle(m) -> jax.Array:
    """Strict upper triangle of ``(..., n, n)`` as ``(..., n * (n - 1) // 2)``, row-major."""
    iu, ju = np.triu_indices(m.shape[-1], 1)
    return m[..., iu, ju]


@jax.jit
def rsm_kernel(x) -> jax.Array:
    """Kernel of :func:`poz_jax.rsm`: ``(..., n, f) -> (..., n, n)``."""
    xc = centered(x)
    gram = jnp.einsum("...if,...jf->...ij", xc, xc)
    return rsm_from_moments(
        gram,
        jnp.sum(xc, -1),
        jnp.sum(xc * xc, -1),
        jnp.full(x.shape[:-2], x.shape[-1]),
        row_constant(x),
    )


@jax.jit
def fit_kernel(a, b) -> jax.Array:
    """Kernel of :func:`poz_jax.fit`: ``(..., n, n), (..., n, n) -> (...)``."""
    r = signed_fit_kernel(a, b)
    return r * r


@jax.jit
def signed_fit_kernel(a, b) -> jax.Array:
    """Kernel of :func:`poz_jax.fit_r` before orientation: Pearson r of the upper triangles."""
    ta, tb = upper_triangle(a), upper_triangle(b)
    ta, tb = jnp.broadcast_arrays(ta, tb)
    ca, cb = centered(ta), centered(tb)
    num = jnp.sum(ca * cb, -1)
    den = jnp.sqrt(jnp.sum(ca * ca, -1) * jnp.sum(cb * cb, -1))
    # NaN entries already make num NaN; constant triangles need it said.
    bad = nearly_constant(ta) | nearly_constant(tb) | ~(den > 0)
    r = jnp.clip(num / jnp.where(bad, 1.0, den), -1.0, 1.0)
    return jnp.where(bad, jnp.nan, r)


@jax.jit
def cross_fit_kernel(a, b) -> jax.Array:
    """Pearson r of every triangle of ``a`` ``(..., n, n)`` with every matrix of ``b``
    ``(S, n, n)``: ``(..., S)``, one matrix product (NaN as :func:`signed_fit_kernel`)."""
    ta, tb = upper_triangle(a), upper_triangle(b)
    ca, cb = centered(ta), centered(tb)
    na = jnp.sqrt(jnp.sum(ca * ca, -1, keepdims=True))
    nb = jnp.sqrt(jnp.sum(cb * cb, -1, keepdims=True))
    bad_a = nearly_constant(ta) | ~(na[..., 0] > 0)
    bad_b = nearly_constant(tb) | ~(nb[..., 0] > 0)
    ua = ca / jnp.where(bad_a[..., None], 1.0, na)
    ub = cb / jnp.where(bad_b[..., None], 1.0, nb)
    r = jnp.clip(jnp.einsum("...p,sp->...s", ua, ub), -1.0, 1.0)
    return jnp.where(bad_a[..., None] | bad_b, jnp.nan, r)


@partial(jax.jit, static_argnums=2)
def class_means_kernel(x, lab, n_classes: int) -> jax.Array:
    """Kernel of :func:`poz_jax.class_means`: ``(..., n, f), (..., n) -> (..., c, f)``."""
    onehot = jax.nn.one_hot(lab, n_classes, dtype=x.dtype)  # (..., n_items, n_classes)
    totals = jnp.einsum("...ic,...if->...cf", onehot, x)
    counts = jnp.sum(onehot, axis=-2)[..., None]
    return totals / counts


def nested_rsms(x, keep_counts, order):
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
    xa = jnp.concatenate([centered(xo), jnp.ones((1, d), x.dtype)])

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


def masked_rsms(x, masks):
    """RSMs over arbitrary feature masks ``(L, d)``, for one ``(n, d)`` matrix."""
    m = masks.astype(x.dtype)
    xc = centered(x)
    gram = jnp.einsum("id,ld,jd->lij", xc, m, xc)
    sums = jnp.einsum("id,ld->li", xc, m)
    sumsq = jnp.einsum("id,ld->li", xc * xc, m)
    keep = masks[:, None, :]
    hi = jnp.max(jnp.where(keep, x[None], -jnp.inf), -1)
    lo = jnp.min(jnp.where(keep, x[None], jnp.inf), -1)
    return rsm_from_moments(gram, sums, sumsq, jnp.sum(m, -1), hi == lo)


@jax.jit
def sweep_rsms_kernel(x, k, o):
    """Kernel of :func:`poz_jax.sweep_rsms`: ``-> (..., L, n, n)``."""
    f = jnp.vectorize(lambda xx, oo: nested_rsms(xx, k, oo), signature="(n,d),(d)->(l,n,n)")
    return f(x, o)


@jax.jit
def sweep_kernel(x, t, k, o):
    """Kernel of :func:`poz_jax.sweep`: ``(..., n, d), (..., n, n), (L,), (..., d) -> (..., L)``."""
    f = jnp.vectorize(
        lambda xx, tt, oo: nested_fits(xx, tt, k, oo), signature="(n,d),(n,n),(d)->(l)"
    )
    return f(x, t, o)


def nested_fits(x, t, keep_counts, order):
    """Fits of the nested RSMs of one ``(n, d)`` matrix to ``t`` ``(n, n)``, streamed: ``(L,)``.

    The same numbers as ``fit_kernel(nested_rsms(x, keep_counts, order), t)`` (up to
    rounding), without ever holding more than one Gram matrix: the columns in
    keep order are cut into pieces that end exactly at the level boundaries
    (no partial blocks), one scan step adds a piece's Gram to a running one,
    and a step that completes a level emits that level's fit, computed on the
    upper triangle from the moments. Memory is O(n^2 + n d) whatever the
    number of levels; work is one n x n x d product plus one O(n^2) fit per
    level.
    """
    n, d = x.shape
    n_levels = keep_counts.shape[0]
    k = jnp.clip(keep_counts, 1, d)  # the documented rule under jit
    # Levels in ascending order; pieces of at most `width` columns, each inside
    # one level's segment. The bound on their number is static.
    width = max(1, math.ceil(2 * d / n_levels))
    n_pieces = math.ceil(d / width + n_levels * (width - 1) / width)
    perm = jnp.argsort(k)
    ks = k[perm]
    prev = jnp.concatenate([jnp.zeros(1, ks.dtype), ks[:-1]])
    per_level = -(-(ks - prev) // width)
    ends = jnp.cumsum(per_level)
    piece = jnp.arange(n_pieces)
    level = jnp.clip(jnp.searchsorted(ends, piece, side="right"), 0, n_levels - 1)
    start = prev[level] + (piece - (ends - per_level)[level]) * width
    size = jnp.where(piece < ends[-1], jnp.clip(ks[level] - start, 0, width), 0)
    emits = piece == (ends - 1)[level]

    xo = jnp.take(x, order, axis=-1)
    # A row of ones carries the row sums and the count in the same Gram.
    xa = jnp.concatenate([centered(xo), jnp.ones((1, d), x.dtype)])
    xa = jnp.pad(xa, ((0, 0), (0, width)))
    differs = xo != xo[:, :1]
    first_diff = jnp.where(jnp.any(differs, 1), jnp.argmax(differs, 1), d)
    target = TriangleTarget.of(t)

    def step(carry, piece_in):
        gram, done = carry
        s, w, emit = piece_in
        block = jax.lax.dynamic_slice_in_dim(xa, s, width, axis=1)
        block = jnp.where(jnp.arange(width) < w, block, 0.0)
        gram = gram + block @ block.T
        done = done + w
        fit_now = jax.lax.cond(
            emit,
            lambda: target.fit_moments(gram, done, done <= first_diff),
            lambda: jnp.full((), jnp.nan, x.dtype),
        )
        return (gram, done), fit_now

    zero = jnp.zeros((n + 1, n + 1), x.dtype)
    _, fits = jax.lax.scan(step, (zero, jnp.zeros((), ks.dtype)), (start, size, emits))
    # A level equal to the one before it adds no piece: it takes that one's fit.
    return jnp.zeros(n_levels, x.dtype).at[perm].set(fits[jnp.clip(ends - 1, 0, n_pieces - 1)])


# Bytes of one n x n matrix above which the fit trades compute for memory.
_LARGE = 2**26


class TriangleTarget:
    """A target's upper triangle, centred once, and the fit of a moment-Gram against it."""

    def __init__(self, centred, norm2, bad):
        self.centred, self.norm2, self.bad = centred, norm2, bad

    @classmethod
    def of(cls, t):
        n = t.shape[-1]
        upper = _upper(n)
        # Masked reductions over the full matrix: no copy of the triangle.
        hi = jnp.max(jnp.where(upper, t, -jnp.inf))
        lo = jnp.min(jnp.where(upper, t, jnp.inf))
        centred = jnp.where(upper, t - jnp.sum(jnp.where(upper, t, 0.0)) / (n * (n - 1) // 2), 0.0)
        # One scale for the whole triangle (r is unchanged), so squares of a
        # target spread at 1e19 cannot overflow float32.
        scale = jnp.max(jnp.abs(centred))
        centred = centred / jnp.where(scale > 0, scale, 1.0)
        norm2 = jnp.sum(centred * centred)
        return cls(centred, norm2, _flat(hi, lo) | ~(norm2 > 0))

    def fit_moments(self, gram, count, constant):
        """Fit of the RSM whose moments ``gram`` ``(n+1, n+1)`` holds (see :func:`fit`)."""
        n = gram.shape[0] - 1
        upper = _upper(n)
        g = gram[:n, :n]

        def rsm():
            # NaN in the rows of constant items, so any of them makes the fit NaN.
            return rsm_from_moments(g, gram[n, :n], jnp.diagonal(g), count, constant)

        if n * n * gram.dtype.itemsize > _LARGE:
            # Many items: recompute the RSM inside each reduction (elementwise,
            # so XLA fuses it there) rather than hold n x n arrays per quantity.
            r2 = rsm
        else:  # few items: compute once; the arrays stay in cache
            once = rsm()

            def r2():
                return once

        n_pairs = n * (n - 1) // 2
        mean = jnp.sum(jnp.where(upper, r2(), 0.0)) / n_pairs
        # The target is centred on the triangle, so sum((r2 - mean) * t) = sum(r2 * t).
        num = jnp.sum(jnp.where(upper, r2(), 0.0) * self.centred)
        den = jnp.sqrt(jnp.sum(jnp.where(upper, (r2() - mean) ** 2, 0.0)) * self.norm2)
        hi = jnp.max(jnp.where(upper, r2(), -jnp.inf))
        lo = jnp.min(jnp.where(upper, r2(), jnp.inf))
        bad = self.bad | _flat(hi, lo) | ~(den > 0)
        r_fit = jnp.clip(num / jnp.where(bad, 1.0, den), -1.0, 1.0)
        return jnp.where(bad, jnp.nan, r_fit * r_fit)


@jax.jit
def sweep_masks_kernel(x, t, m):
    """Kernel of :func:`poz_jax.sweep_masks`: ``-> (..., L)``."""
    f = jnp.vectorize(
        lambda xx, tt: fit_kernel(masked_rsms(xx, m), tt), signature="(n,d),(n,n)->(l)"
    )
    return f(x, t)
