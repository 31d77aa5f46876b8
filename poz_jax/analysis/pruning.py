"""The one analysis every experiment runs: PoZ order, pruning sweep, max kept PoZ.

``analyse(x, target, keep_counts)`` takes a representation, the similarity
matrix it should fit and the keep counts, and returns an :class:`Analysis`:
the PoZ and keep order of every unit (network or stimulus set), the fit at
every level, the largest PoZ kept, and NaN counts, with the table rows they
become. Experiment 1 passes class means with the PoZ of the images they
average; Experiment 2 passes each set's images. The experiments' pipelines
only load, embed, call this and write.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence

import jax
import numpy as np

from poz_jax.analysis import stats
from poz_jax.core import kernels
from poz_jax.core import validate as v
from poz_jax.core.nulls import improvement_test, trend_test
from poz_jax.core.ranking import keep_order, max_kept_poz, poz


@dataclasses.dataclass(frozen=True)
class Analysis:
    """What :func:`analyse` found, as host NumPy arrays; ``U`` is the leading (unit) shape.

    Attributes:
      keep_counts: ``(L,)`` nodes kept at each level.
      poz: ``(*U, nodes)`` PoZ of each node (a fraction).
      order: ``(*U, nodes)`` keep order (lowest PoZ first).
      fit: ``(*U, L)`` squared Pearson r of the pruned RSM to the target.
      max_poz: ``(*U, L)`` largest PoZ among the kept nodes.
    """

    keep_counts: np.ndarray
    poz: np.ndarray
    order: np.ndarray
    fit: np.ndarray
    max_poz: np.ndarray

    @property
    def n_nodes(self) -> int:
        return self.poz.shape[-1]

    @property
    def keep_fraction(self) -> np.ndarray:
        """``(L,)`` share of nodes kept, rounded to 6 decimals (as the tables print it)."""
        # Python's round (correctly rounded decimals), not np.round's scaling.
        return np.array([round(int(k) / self.n_nodes, 6) for k in self.keep_counts])

    @property
    def n_nan(self) -> np.ndarray:
        """``(L,)`` units whose fit is NaN at each level (an undefined RSM)."""
        return np.isnan(self.fit.reshape(-1, self.fit.shape[-1])).sum(0)

    def rows(self, unit: str = "unit", names: Sequence | None = None) -> list[dict]:
        """One row per unit and level: ``{unit, keep_count, keep_fraction, fit, max_poz}``.

        Units in order (``names`` label them; default ``0, 1, ...``), levels in
        ``keep_counts`` order within each unit.
        """
        fit = self.fit.reshape(-1, self.fit.shape[-1])
        top = self.max_poz.reshape(fit.shape)
        names = range(len(fit)) if names is None else names
        return [
            {
                unit: name,
                "keep_count": int(k),
                "keep_fraction": float(frac),
                "fit": float(fit[u, j]),
                "max_poz": float(top[u, j]),
            }
            for u, name in enumerate(names)
            for j, (k, frac) in enumerate(zip(self.keep_counts, self.keep_fraction, strict=True))
        ]

    def summary_rows(self, unit: str = "unit") -> list[dict]:
        """One row per level: fit and max-PoZ mean and sd over units (NaN fits left out).

        ``{keep_count, keep_fraction, fit_mean, fit_sd, max_poz_mean, max_poz_sd,
        n_nan, n_<unit>s}``, by :mod:`poz_jax.analysis.stats` (sd: the sample sd, ddof 1).
        """
        fit = self.fit.reshape(-1, self.fit.shape[-1])
        top = self.max_poz.reshape(fit.shape)
        return [
            {
                "keep_count": int(k),
                "keep_fraction": float(frac),
                **stats.describe(fit[:, j], "fit"),
                **stats.describe(top[:, j], "max_poz"),
                "n_nan": int(np.isnan(fit[:, j]).sum()),
                f"n_{unit}s": len(fit),
            }
            for j, (k, frac) in enumerate(zip(self.keep_counts, self.keep_fraction, strict=True))
        ]

    def arrays(self) -> dict[str, np.ndarray]:
        """The fields as a dict of arrays (for ``files.save_arrays``)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def analyse(x, target, keep_counts, poz_values=None, order=None) -> Analysis:
    """PoZ-ordered pruning of ``x`` against ``target`` at every keep count.

    Args:
      x: ``(*U, n_items, n_nodes)`` representation whose RSM is pruned (a
        set's images; or class means).
      target: ``(*U, n_items, n_items)`` symmetric similarity to fit (human
        judgements; or the unpruned RSM); broadcasts over ``U``.
      keep_counts: ``(L,)`` node counts in ``1..n_nodes``.
      poz_values: ``(*U, n_nodes)`` PoZ that orders the nodes; default
        ``poz(x)`` (give it when ``x`` is not the items PoZ is measured on,
        as with class means).
      order: ``(*U, n_nodes)`` keep order; default ``keep_order(poz_values)``.

    Returns:
      :class:`Analysis` on the host. Being a host-side summary, it cannot be
      traced: under ``jit`` or ``vmap`` use :func:`poz`, :func:`keep_order`
      and :func:`sweep`, which it is made of.
    """
    if not v.is_concrete(x, target, keep_counts, poz_values, order):
        raise TypeError(
            "analyse returns host (NumPy) arrays and cannot run under jax.jit, vmap or grad; "
            "inside a traced function use poz, keep_order and sweep, which it is made of"
        )
    x = v.prepare_acts(x)
    k = v.as_keep_counts(keep_counts, x.shape[-1])
    t = v.prepare_target(target, x.shape[-2], x.shape[:-2], x.dtype, fits_only=True)
    p = poz(x) if poz_values is None else v.as_float(poz_values, "poz_values")
    if p.shape[-1] != x.shape[-1]:
        raise ValueError(f"poz_values has {p.shape[-1]} nodes but x has {x.shape[-1]}")
    o = keep_order(p) if order is None else v.check_order(order, x.shape[-1])
    v.check_broadcast(x=x.shape[:-2], poz_values=p.shape[:-1], order=o.shape[:-1])
    fit, top = jax.device_get(_analyse(x, t, k, p, o))
    if poz_values is None and order is None:
        _warn_if_degenerate(np.asarray(x), np.asarray(t), np.asarray(p), np.asarray(fit))
    return Analysis(np.asarray(keep_counts), np.asarray(p), np.asarray(o), fit, top)


def _warn_if_degenerate(x: np.ndarray, t: np.ndarray, p: np.ndarray, fit: np.ndarray) -> None:
    """Say when the analysis means less than it seems: no PoZ order, or no defined fit."""
    if not np.any(p):
        warnings.warn(
            "no activation is exactly 0, so every node's PoZ is 0 and the PoZ keep order is "
            "node-index order: were the features taken before a ReLU (or from a GELU network)?",
            stacklevel=3,
        )
    if fit.size and np.all(np.isnan(fit)):
        rows, cols = np.triu_indices(t.shape[-1], 1)
        triangle = t[..., rows, cols]
        why = []
        if np.any(np.ptp(triangle, axis=-1) == 0):
            why.append("the target's off-diagonal values are all equal")
        if np.any(np.all(x == 0, axis=-1)):
            why.append("an item is silent (0) on every node, so its correlations are undefined")
        if x.shape[-1] < 3:
            why.append(f"x has {x.shape[-1]} node(s)")
        warnings.warn(
            "every fit is NaN (undefined): "
            + ("; ".join(why) or "the pruned RSMs or the target are constant"),
            stacklevel=3,
        )


@jax.jit
def _analyse(x, t, k, p, o):
    return kernels.sweep_kernel(x, t, k, o), max_kept_poz(p, k, o)


def null_tests(fit, null, percent_kept) -> dict[str, np.ndarray]:
    """Both tests of Experiment 2 for curves ``fit`` ``(..., L)`` against ``null`` ``(..., n, L)``.

    ``percent_kept``: ``(L,)``. Returns host arrays ``(...)``: ``improvement``,
    ``p_improvement``, ``n_null_used_improvement`` (:func:`improvement_test`),
    ``trend_slope_per_percent``, ``p_trend``, ``n_null_used_trend``
    (:func:`trend_test`), in the precision of ``fit``.
    """
    imp = improvement_test(fit, null)
    trend = trend_test(fit, null, percent_kept)
    return {
        k: np.asarray(a)
        for k, a in jax.device_get(
            {
                "improvement": imp.improvement,
                "p_improvement": imp.p,
                "n_null_used_improvement": imp.n_used,
                "trend_slope_per_percent": trend.slope,
                "p_trend": trend.p,
                "n_null_used_trend": trend.n_used,
            }
        ).items()
    }


def pooled(fit, null) -> tuple[np.ndarray, np.ndarray]:
    """Curves ``(S, L)`` and nulls ``(S, n_null, L)`` with the networks' mean appended.

    Returns ``(S + 1, L)`` and ``(S + 1, n_null, L)``: the last curve is the
    mean of the networks' defined fits per level, and the last null's draw
    ``j`` the mean of the networks' draws ``j`` (each network's orders drawn
    independently), so the mean curve is tested against means of the same
    number of networks pruned at random.
    """
    fit, null = np.asarray(fit, np.float64), np.asarray(null, np.float64)
    curves = np.concatenate([fit, stats.mean(fit, axis=0)[None]])
    nulls = np.concatenate([null, stats.mean(null, axis=0)[None]])
    return curves, nulls
