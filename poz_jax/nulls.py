"""Random-pruning nulls and the two tests of Experiment 2 against them.

The null of a fit curve is the same sweep with the nodes kept in a random
order instead of PoZ order. Order ``i`` is a pure function of ``(seed, i)``,
so a null draws the same orders whatever the batch size or device count.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from poz_jax import _validate as v
from poz_jax.sweeps import _prepare_target, _prepare_x, _sweep


def random_orders(seed: int, n_nodes: int, start: int, stop: int) -> jax.Array:
    """Random keep orders number ``start .. stop - 1``: ``(stop - start, n_nodes)`` ints."""
    key = jax.random.PRNGKey(seed)
    idx = jnp.arange(start, stop)
    return jax.vmap(lambda i: jax.random.permutation(jax.random.fold_in(key, i), n_nodes))(idx)


def null_batch_size(n_items: int, n_levels: int, itemsize: int, budget: float = 2**29) -> int:
    """Orders per device call so one vmapped batch's prefix Grams stay under ``budget`` bytes."""
    per_order = 3 * (n_levels + 1) * (n_items + 1) ** 2 * itemsize
    return max(1, int(budget // per_order))


@partial(jax.jit, static_argnames="vmap_size")
def _null_batch(x, t, k, orders, vmap_size: int):
    # lax.map runs the orders one after another inside one compiled call
    # (vmap_size at a time): on a CPU, vmapping many orders only adds memory
    # traffic, while an accelerator wants several in flight.
    return jax.lax.map(lambda o: _sweep(x, t, k, o), orders, batch_size=vmap_size)


def null_fits(
    x,
    target,
    keep_counts,
    n_orders: int,
    seed: int = 0,
    batch: int = 250,
    vmap_size: int | None = None,
    progress=None,
) -> np.ndarray:
    """Fits under ``n_orders`` random keep orders: ``(n_orders, n_levels)``.

    Args:
      x: ``(n_items, n_nodes)`` activations of one set.
      target: ``(n_items, n_items)`` symmetric similarity matrix.
      keep_counts: ``(n_levels,)`` keep counts, as for :func:`poz_jax.sweep`.
      n_orders: number of random orders.
      seed: null seed; order ``i`` depends only on ``(seed, i)``.
      batch: orders per device call (between progress updates).
      vmap_size: orders computed side by side within a call (default 1 on
        CPU; on GPU/TPU as many as fit in about 0.5 GiB).
      progress: optional callable ``progress(n_done)`` after each batch.
    """
    x = _prepare_x(x)
    k = v.as_keep_counts(keep_counts, x.shape[-1])
    t = _prepare_target(target, x.shape[-2])
    n_items, n_nodes = x.shape
    if vmap_size is None:
        cpu = jax.default_backend() == "cpu"
        vmap_size = 1 if cpu else null_batch_size(n_items, len(k), x.dtype.itemsize)
    out = []
    for start in range(0, n_orders, batch):
        stop = min(start + batch, n_orders)
        orders = random_orders(seed, n_nodes, start, stop)
        out.append(np.asarray(_null_batch(x, t, k, orders, min(vmap_size, stop - start))))
        if progress is not None:
            progress(stop - start)
    return np.concatenate(out) if out else np.zeros((0, len(k)), x.dtype)


def _p_value(observed, null) -> jax.Array:
    # (1 + #null >= observed) / (1 + n): never 0, valid for a Monte Carlo null.
    # A NaN null draw counts as not exceeding; a NaN observation gives NaN.
    exceed = jnp.sum(null >= observed[..., None], axis=-1)
    p = (1.0 + exceed) / (1.0 + null.shape[-1])
    return jnp.where(jnp.isnan(observed), jnp.nan, p)


@jax.jit
def improvement_test(observed, null) -> tuple[jax.Array, jax.Array]:
    """Best improvement over the unpruned fit, and its p-value under the null.

    Args:
      observed: ``(..., n_levels)`` fits, level 0 the unpruned network.
      null: ``(..., n_null, n_levels)`` fits under random orders.

    Returns:
      ``(improvement, p)``, each ``(...)``: ``max(observed) - observed[0]`` and
      the share of null curves improving at least as much, ``(1 + count) / (1 + n)``.
    """
    gain = jnp.nanmax(observed, -1) - observed[..., 0]
    null_gain = jnp.nanmax(null, -1) - null[..., 0]
    return gain, _p_value(gain, null_gain)


def _slopes(fits, x, upto) -> jax.Array:
    # Least-squares slope of fits against x over levels 0..upto (a mask, so
    # the range may differ per set without leaving jit).
    w = (jnp.arange(fits.shape[-1]) <= upto[..., None]).astype(fits.dtype)
    n = jnp.sum(w, -1, keepdims=True)
    xm = jnp.sum(w * x, -1, keepdims=True) / n
    ym = jnp.sum(w * fits, -1, keepdims=True) / n
    sxy = jnp.sum(w * (x - xm) * (fits - ym), -1)
    sxx = jnp.sum(w * (x - xm) ** 2, -1)
    return jnp.where(upto >= 1, sxy / sxx, jnp.nan)


@jax.jit
def trend_test(observed, null, percent_kept) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Linear trend of the fit from the unpruned level to the observed peak, against the null.

    Tests the paper's "improved linearly until X% remained": the slope of fit
    against % of nodes pruned, over levels 0..peak, compared with the slopes
    of the null curves over the same levels.

    Args:
      observed: ``(..., n_levels)`` fits, level 0 unpruned.
      null: ``(..., n_null, n_levels)``.
      percent_kept: ``(n_levels,)`` % of nodes kept at each level.

    Returns:
      ``(peak, slope, p)``: the peak level index ``(...)``, the slope in fit
      per % pruned (NaN when the peak is the unpruned level), and its p-value.
    """
    pruned = 100.0 - jnp.asarray(percent_kept, observed.dtype)
    peak = jnp.argmax(jnp.where(jnp.isnan(observed), -jnp.inf, observed), -1)
    slope = _slopes(observed, pruned, peak)
    null_slope = _slopes(null, pruned, peak[..., None])
    return peak, slope, _p_value(slope, null_slope)
