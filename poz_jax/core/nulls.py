"""Random-pruning nulls and the two tests of Experiment 2 against them.

The null of a fit curve is the same sweep with the nodes kept in a random
order instead of PoZ order. Order ``i`` is a pure function of ``(seed, i)``,
so a null draws the same orders whatever the batch size or device count.

Both tests compute one statistic per curve by one procedure, applied alike
to the observed curve and to every null curve, so under the null the
observed statistic is one more exchangeable draw and
``p = (1 + #{null >= observed}) / (1 + n_used)`` is valid. NaN fits are
missing data; null draws whose statistic is undefined leave both the count
and the total (``n_used`` says how many remained).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from poz_jax.core import kernels
from poz_jax.core import validate as v


def random_orders(seed: int, n_nodes: int, start: int, stop: int) -> jax.Array:
    """Random keep orders number ``start .. stop - 1``: ``(stop - start, n_nodes)`` ints."""
    key = jax.random.PRNGKey(seed)
    idx = jnp.arange(start, stop)
    return jax.vmap(lambda i: jax.random.permutation(jax.random.fold_in(key, i), n_nodes))(idx)


def null_batch_size(n_items: int, n_nodes: int, itemsize: int, budget: float = 2**29) -> int:
    """Orders per device call so one vmapped batch stays under ``budget`` bytes.

    The streamed sweep holds, per order, the reordered activations and a few
    ``(n_items + 1)``-square matrices, whatever the number of levels.
    """
    per_order = ((n_items + 1) * 2 * n_nodes + 4 * (n_items + 1) ** 2) * itemsize
    return max(1, int(budget // per_order))


def _map_orders(x, t, k, orders, vmap_size: int):
    # lax.map runs the orders one after another inside one compiled call
    # (vmap_size at a time): on a CPU, vmapping many orders only adds memory
    # traffic, while an accelerator wants several in flight.
    return jax.lax.map(lambda o: kernels.sweep_kernel(x, t, k, o), orders, batch_size=vmap_size)


@partial(jax.jit, static_argnames=("vmap_size", "mesh"))
def _null_batch(x, t, k, orders, vmap_size: int, mesh: Mesh | None = None):
    if mesh is None:
        return _map_orders(x, t, k, orders, vmap_size)
    # Every device maps its own block of orders (jax.shard_map over a 1-D
    # mesh "orders"); the data and keep counts are replicated.
    per_device = jax.shard_map(
        lambda xx, tt, kk, oo: _map_orders(xx, tt, kk, oo, vmap_size),
        mesh=mesh,
        in_specs=(P(), P(), P(), P("orders")),
        out_specs=P("orders"),
        check_vma=False,  # the sweep kernel's lax.cond branches are not annotated
    )
    return per_device(x, t, k, orders)


def order_mesh(devices: list | None = None) -> Mesh | None:
    """A 1-D mesh ``"orders"`` over ``devices`` (default: all), or None for a single device."""
    devices = list(jax.devices() if devices is None else devices)
    return Mesh(np.array(devices), ("orders",)) if len(devices) > 1 else None


def _global(a, mesh: Mesh, spec: P) -> jax.Array:
    # Every process holds the whole (small) host array and hands each of its
    # devices the block that device's shard names; with several processes a
    # jitted call takes only such global arrays.
    a = np.asarray(a)
    return jax.make_array_from_callback(a.shape, NamedSharding(mesh, spec), lambda idx: a[idx])


def _fetch(out: jax.Array) -> np.ndarray:
    # A result spread over several processes is gathered so that every
    # process returns the whole null, as a single process would.
    if out.is_fully_addressable:
        return np.asarray(out)
    return np.asarray(multihost_utils.process_allgather(out, tiled=True))


def null_fits(
    x,
    target,
    keep_counts,
    n_orders: int,
    seed: int = 0,
    batch: int = 250,
    vmap_size: int | None = None,
    progress=None,
    devices: list | None = None,
) -> np.ndarray:
    """Fits under ``n_orders`` random keep orders: ``(n_orders, n_levels)``.

    Args:
      x: ``(n_items, n_nodes)`` activations of one set.
      target: ``(n_items, n_items)`` symmetric similarity matrix.
      keep_counts: ``(n_levels,)`` keep counts, as for :func:`poz_jax.sweep`.
      n_orders: number of random orders (at least 1).
      seed: null seed in ``0..2**31 - 1``; order ``i`` depends only on ``(seed, i)``.
      batch: orders per device call (between progress updates).
      vmap_size: orders computed side by side within a call (default 1 on
        CPU; on GPU/TPU as many as fit in about 0.5 GiB).
      progress: optional callable ``progress(n_done)`` after each batch.
      devices: where to compute (default: every device, of every process
        after ``jax.distributed.initialize``). With several, each batch's
        orders are split over a 1-D mesh ``"orders"`` with ``jax.shard_map``;
        in a multi-process run every process computes the orders of its own
        devices, calls this with the same arguments, and gets the whole
        null back. The numbers equal a single device's.
    """
    x = v.prepare_one_set(x, "; call null_fits once per set")
    k = v.as_keep_counts(keep_counts, x.shape[-1])
    t = v.prepare_target(target, x.shape[-2], dtype=x.dtype, fits_only=True)
    n_orders = v.check_int(n_orders, "n_orders", 1)
    seed = v.check_seed(seed)
    batch = v.check_int(batch, "batch", 1)
    if vmap_size is not None:
        vmap_size = v.check_int(vmap_size, "vmap_size", 1)
    n_items, n_nodes = x.shape
    if vmap_size is None:
        cpu = jax.default_backend() == "cpu"
        vmap_size = 1 if cpu else null_batch_size(n_items, n_nodes, x.dtype.itemsize)
    mesh = order_mesh(devices)
    n_dev = 1 if mesh is None else mesh.size
    out = []
    for start in range(0, n_orders, batch):
        stop = min(start + batch, n_orders)
        # Pad the batch to a whole number of orders per device (the extra
        # orders are computed and dropped), so every device gets work.
        padded = -(-(stop - start) // n_dev) * n_dev
        orders = random_orders(seed, n_nodes, start, start + padded)
        size = min(vmap_size, padded // n_dev)
        if mesh is None:
            fits = _null_batch(x, t, k, orders, size)
        else:
            rep = (_global(a, mesh, P()) for a in (x, t, k))
            fits = _null_batch(*rep, _global(orders, mesh, P("orders")), size, mesh)
        out.append(_fetch(fits)[: stop - start])
        if progress is not None:
            progress(stop - start)
    return np.concatenate(out)


class ImprovementResult(NamedTuple):
    """:func:`improvement_test`'s result; each field ``(...)``."""

    improvement: jax.Array  # max(fit) - fit[0], over the defined levels
    p: jax.Array  # (1 + #defined null draws >= improvement) / (1 + n_used)
    n_used: jax.Array  # null draws whose improvement is defined


class TrendResult(NamedTuple):
    """:func:`trend_test`'s result; each field ``(...)``."""

    peak: jax.Array  # level index the slope runs to (the curve's own peak, or ``upto``)
    slope: jax.Array  # least-squares fit per % of nodes pruned, levels 0..peak
    p: jax.Array  # (1 + #defined null slopes >= slope) / (1 + n_used)
    n_used: jax.Array  # null draws whose slope is defined


def null_band(null, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """The band holding ``level`` of a null ``(..., n_null, L)`` per level: ``(low, high)``.

    Host NumPy quantiles over the defined (non-NaN) draws; NaN at a level
    where every draw is NaN.
    """
    import warnings

    tail = (1 - level) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a level where every draw is NaN
        lo, hi = np.nanquantile(np.asarray(null), [tail, 1 - tail], axis=-2)
    return lo, hi


def _check_curves(observed, null, percent_kept=None):
    obs = v.as_float(observed, "observed")
    nul = v.as_float(null, "null")
    v.check_min_rank(obs, 1, "observed", "(..., n_levels)")
    v.check_min_rank(nul, 2, "null", "(..., n_null, n_levels)")
    if nul.shape[-1] != obs.shape[-1]:
        raise ValueError(
            f"observed has {obs.shape[-1]} levels but null has {nul.shape[-1]}; "
            "both must be fits at the same keep counts"
        )
    try:
        np.broadcast_shapes(obs.shape[:-1], nul.shape[:-2])
    except ValueError as err:
        raise ValueError(
            f"the leading axes of observed {tuple(obs.shape)} and null {tuple(nul.shape)} "
            "do not broadcast (expected (..., n_levels) and (..., n_null, n_levels))"
        ) from err
    if percent_kept is None:
        return obs, nul
    kept = v.as_float(percent_kept, "percent_kept")
    if kept.shape != (obs.shape[-1],):
        raise ValueError(
            f"percent_kept must have shape ({obs.shape[-1]},), one value per level, "
            f"got {tuple(kept.shape)}"
        )
    v.check_finite(kept, "percent_kept")
    return obs, nul, kept


def _p_value(observed, null) -> tuple[jax.Array, jax.Array]:
    # (1 + #null >= observed) / (1 + n_used), over the null draws whose
    # statistic is defined: under exchangeability the observed curve is one
    # more draw among the defined ones, so leaving undefined draws out of both
    # the count and the total keeps the test valid. Never 0; NaN when the
    # observed statistic is undefined.
    defined = ~jnp.isnan(null)
    exceed = jnp.sum(defined & (null >= observed[..., None]), axis=-1)
    n_used = jnp.sum(defined, axis=-1)
    p = (1.0 + exceed) / (1.0 + n_used)
    return jnp.where(jnp.isnan(observed), jnp.nan, p), n_used


def _gain(curves) -> jax.Array:
    # NaN levels are missing data: the best of the defined levels counts.
    best = jnp.max(jnp.where(jnp.isnan(curves), -jnp.inf, curves), axis=-1)
    return jnp.where(jnp.isnan(curves[..., 0]), jnp.nan, best - curves[..., 0])


def improvement_test(observed, null) -> ImprovementResult:
    """Best improvement over the unpruned fit, and its p-value under the null.

    The statistic of a curve is ``max(fit) - fit[0]``, the maximum over its
    defined (non-NaN) levels; it is undefined (NaN) when ``fit[0]`` is NaN.
    Every null curve goes through the same procedure. Null draws whose
    statistic is undefined are left out of the count and the total, so a NaN
    at a level other than level 0 and the curve's maximum changes nothing.

    Args:
      observed: ``(..., n_levels)`` fits, level 0 the unpruned network.
      null: ``(..., n_null, n_levels)`` fits under random orders.

    Returns:
      :class:`ImprovementResult` ``(improvement, p, n_used)``, each ``(...)``:
      ``p = (1 + #{null improvement >= observed}) / (1 + n_used)``.
    """
    obs, nul = _check_curves(observed, null)
    return _improvement_test(obs, nul)


@jax.jit
def _improvement_test(observed, null) -> ImprovementResult:
    gain = _gain(observed)
    p, n_used = _p_value(gain, _gain(null))
    return ImprovementResult(gain, p, n_used)


def _trend(curves, pruned, upto) -> tuple[jax.Array, jax.Array]:
    # (peak, slope) of each curve: least squares of fit on % pruned over the
    # defined levels 0..peak, where peak is the curve's own maximum (upto < 0)
    # or the fixed level upto. NaN levels are missing data (weight 0, and
    # replaced before multiplying: 0 * NaN would be NaN).
    defined = ~jnp.isnan(curves)
    own = jnp.argmax(jnp.where(defined, curves, -jnp.inf), axis=-1)
    peak = jnp.where(upto < 0, own, upto)
    w = (defined & (jnp.arange(curves.shape[-1]) <= peak[..., None])).astype(curves.dtype)
    y = jnp.where(defined, curves, 0.0)
    n = jnp.sum(w, -1, keepdims=True)
    safe_n = jnp.maximum(n, 1.0)
    xm = jnp.sum(w * pruned, -1, keepdims=True) / safe_n
    ym = jnp.sum(w * y, -1, keepdims=True) / safe_n
    sxy = jnp.sum(w * (pruned - xm) * (y - ym), -1)
    sxx = jnp.sum(w * (pruned - xm) ** 2, -1)
    ok = defined[..., 0] & (peak >= 1) & (n[..., 0] >= 2) & (sxx > 0)
    return peak, jnp.where(ok, sxy / jnp.where(ok, sxx, 1.0), jnp.nan)


def trend_test(observed, null, percent_kept, upto: int | None = None) -> TrendResult:
    """Steady rise of the fit as nodes are pruned, against random pruning.

    Tests the paper's "the fit improved linearly until X% remained": the
    statistic of a curve is the least-squares slope of fit against % of
    nodes pruned (``100 - percent_kept``) over levels ``0..peak``.

    - ``upto=None`` (default): ``peak`` is each curve's *own* maximum, for
      the observed curve and for every null curve alike (each null curve goes
      through exactly the procedure the observed one went through), so the
      test asks "did the fit rise to its peak more steeply than random
      pruning rises to its peak?". The slope is undefined when the peak is
      level 0 (nothing to rise to).
    - ``upto=j``: every curve's slope runs over the same levels ``0..j``,
      fixed in advance (not chosen from the observed curve).

    NaN fits are missing data: they are left out of the regression and can
    never be a peak, so a NaN beyond a curve's peak changes nothing. A slope
    is undefined (NaN) when ``fit[0]`` is NaN or fewer than two defined levels
    remain; undefined null draws are left out of the count and the total.

    Args:
      observed: ``(..., n_levels)`` fits, level 0 unpruned.
      null: ``(..., n_null, n_levels)``.
      percent_kept: ``(n_levels,)`` % of nodes kept at each level.
      upto: ``None``, or a fixed last level index in ``1..n_levels - 1``.

    Returns:
      :class:`TrendResult` ``(peak, slope, p, n_used)``, each ``(...)``; the
      slope is in fit per % pruned, ``p = (1 + #{null slope >= slope}) /
      (1 + n_used)``, NaN when the observed slope is undefined.
    """
    obs, nul, kept = _check_curves(observed, null, percent_kept)
    if upto is None:
        last = -1
    else:
        if isinstance(upto, bool) or int(upto) != upto or not 1 <= upto < obs.shape[-1]:
            raise ValueError(f"upto must be a level index in 1..{obs.shape[-1] - 1}, got {upto!r}")
        last = int(upto)
    return _trend_test(obs, nul, kept, last)


@jax.jit
def _trend_test(observed, null, percent_kept, upto) -> TrendResult:
    pruned = 100.0 - percent_kept.astype(observed.dtype)
    peak, slope = _trend(observed, pruned, upto)
    _, null_slope = _trend(null, pruned, upto)
    p, n_used = _p_value(slope, null_slope)
    return TrendResult(peak, slope, p, n_used)


def participant_null(
    x,
    humans,
    keep_counts,
    n_orders: int,
    seed: int = 0,
    human_kind: str = "similarity",
    batch: int = 50,
    progress=None,
) -> np.ndarray:
    """Signed fits to every participant under ``n_orders`` random keep orders.

    The random orders are :func:`null_fits`' (order ``i`` depends only on
    ``(seed, i)``), and each order's RSMs meet every participant in one
    product (:func:`poz_jax.participant_fits`), so a null for ``S`` people
    costs about one null for one.

    Args:
      x: ``(n_items, n_nodes)`` activations of one set.
      humans: ``(S, n_items, n_items)`` one symmetric matrix per participant.
      keep_counts: ``(n_levels,)``; n_orders, seed: as :func:`null_fits`.
      human_kind: ``"similarity"`` or ``"dissimilarity"`` (sets the sign).
      batch: orders per device call (between ``progress(n_done)`` updates).

    Returns:
      ``(n_orders, n_levels, S)`` Pearson r, positive where the pruned
      network agrees with the participant.
    """
    from poz_jax.core.rsa import KINDS

    v.check_choice(human_kind, "human_kind", KINDS)
    x = v.prepare_one_set(x, "; call participant_null once per set")
    k = v.as_keep_counts(keep_counts, x.shape[-1])
    if np.ndim(humans) != 3:
        raise ValueError(
            f"humans must be (participants, n, n), got shape {tuple(np.shape(humans))}"
        )
    h = v.prepare_target(humans, x.shape[-2], np.shape(humans)[:1], x.dtype, fits_only=True)
    n_orders = v.check_int(n_orders, "n_orders", 1)
    seed = v.check_seed(seed)
    batch = v.check_int(batch, "batch", 1)
    out = []
    for start in range(0, n_orders, batch):
        stop = min(start + batch, n_orders)
        orders = random_orders(seed, x.shape[-1], start, stop)
        out.append(np.asarray(_participant_batch(x, h, k, orders)))
        if progress is not None:
            progress(stop - start)
    r = np.concatenate(out)
    return -r if human_kind == "dissimilarity" else r


@jax.jit
def _participant_batch(x, h, k, orders):
    # One order at a time inside the call: its RSMs at every level, then every participant.
    return jax.lax.map(
        lambda o: kernels.cross_fit_kernel(kernels.sweep_rsms_kernel(x, k, o), h), orders
    )
