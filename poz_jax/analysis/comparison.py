"""Which way of fitting a layer to a target similarity holds up on stimuli it was not fitted on?

``compare_methods(x, target)`` puts side by side, for one stimulus set:

- ``unpruned``: all nodes;
- unsupervised keep orders, computed from the training items' activations
  alone: ``poz`` (the paper: rarely-firing nodes pruned first), ``std`` (low
  standard deviation pruned first), ``entropy`` (low entropy first),
  ``collinearity`` (high mean squared correlation with the other nodes
  first; see :mod:`poz_jax.core.ranking`), and ``random`` (random orders,
  the null: their scores are averaged);
- ``supervised``: Tarigopula et al.'s (2023) pruning, nodes added back from
  the most important (:mod:`poz_jax.core.supervised`);
- ``reweighting``: Peterson et al.'s (2018) ridge-weighted features, the
  penalty chosen by an inner cross-validation (:mod:`poz_jax.core.reweight`).

Every nested method keeps the count whose *training* fit is best, then is
scored on the test items: the fit (squared Pearson r of the upper triangles)
between the pruned representation's RSM among the test items and the
target's test block. Everything fitted or chosen (orders, importances, keep
counts, weights, penalties) sees the training items only; the test items'
target entries are read only for the score.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats

from poz_jax.analysis import stats
from poz_jax.core import kernels
from poz_jax.core import validate as v
from poz_jax.core.crossval import Split, corrected_paired_t, item_splits
from poz_jax.core.nulls import random_orders
from poz_jax.core.ranking import (
    keep_grid,
    keep_order,
    node_collinearity,
    node_entropy,
    node_std,
    poz,
)
from poz_jax.core.reweight import ALPHAS, penalty_scores, reweighted_similarity, reweighting_path
from poz_jax.core.supervised import importance
from poz_jax.core.sweeps import sweep
from poz_jax.io import cache
from poz_jax.study.options import PRECISION_HELP, setting

ORDERINGS = ("poz", "std", "entropy", "collinearity", "supervised")
METHODS = (
    "unpruned",
    "poz",
    "std",
    "entropy",
    "collinearity",
    "random",
    "supervised",
    "reweighting",
)


def keep_orders(x, target, methods: Sequence[str] = ORDERINGS) -> dict[str, jax.Array]:
    """Each nested method's keep order from ``x`` (and ``target``, for ``supervised`` only).

    Args:
      x: ``(..., n_items, n_nodes)`` activations (training items).
      target: ``(..., n_items, n_items)``; read only by ``supervised``.
      methods: names from :data:`ORDERINGS`.

    Returns:
      ``{method: (..., n_nodes) int32 keep order}``; pruning to ``k`` nodes
      keeps ``order[..., :k]``. Ties keep node-index order.
    """
    out = {}
    for m in methods:
        if m == "poz":
            out[m] = keep_order(poz(x))
        elif m == "std":
            out[m] = keep_order(-node_std(x))
        elif m == "entropy":
            out[m] = keep_order(-node_entropy(x))
        elif m == "collinearity":
            out[m] = keep_order(node_collinearity(x))
        elif m == "supervised":
            imp = importance(x, target)
            # A node whose removal leaves the fit undefined is added back last.
            out[m] = keep_order(jnp.nan_to_num(-imp, nan=jnp.finfo(imp.dtype).max))
        else:
            raise ValueError(f"unknown ordering {m!r}; choose from {ORDERINGS}")
    return out


@dataclasses.dataclass(frozen=True)
class Comparison:
    """What :func:`compare_methods` found; ``J`` splits, ``M`` methods, host NumPy arrays.

    Attributes:
      methods: the ``M`` method names.
      splits: the ``J`` item splits (:class:`poz_jax.core.crossval.Split`).
      keep_counts: ``(L,)`` the levels the nested methods choose from.
      n_nodes: nodes in the layer.
      test_fit: ``(J, M)`` out-of-sample fit (the mean over orders for ``random``).
      train_fit: ``(J, M)`` fit on the training items at the chosen level.
      kept: ``(J, M)`` nodes kept at the chosen level (mean over orders for
        ``random``; all nodes for ``unpruned`` and ``reweighting``).
      in_sample: ``(M,)`` the method fitted and scored on all items, as the
        paper reports it (its best level over all items).
      orders: ``{method: (J, n_nodes)}`` keep orders fitted per split.
      importance: ``(J, n_nodes)`` supervised importances per split, or None.
      alpha: ``(J,)`` relative ridge penalty chosen per split, or None.
      weights: ``(J, n_nodes)`` ridge weights per split, or None.
    """

    methods: tuple[str, ...]
    splits: list[Split]
    keep_counts: np.ndarray
    n_nodes: int
    test_fit: np.ndarray
    train_fit: np.ndarray
    kept: np.ndarray
    in_sample: np.ndarray
    orders: dict[str, np.ndarray]
    importance: np.ndarray | None
    alpha: np.ndarray | None
    weights: np.ndarray | None

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Every array field by name (orders as ``order_<method>``), for the cache."""
        arrays = {k: getattr(self, k) for k in _ARRAY_FIELDS}
        arrays.update({f"order_{m}": o for m, o in self.orders.items()})
        for name in _OPTIONAL_FIELDS:
            if getattr(self, name) is not None:
                arrays[name] = getattr(self, name)
        return arrays

    @classmethod
    def from_arrays(
        cls, arrays: dict[str, np.ndarray], methods: Sequence[str], splits: list[Split]
    ) -> Comparison:
        """The :class:`Comparison` :meth:`to_arrays` stored (its methods and splits given)."""
        return cls(
            tuple(methods), splits, arrays["keep_counts"], int(arrays["n_nodes"]),
            *(arrays[k] for k in _ARRAY_FIELDS[1:5]),
            orders={m: arrays[f"order_{m}"] for m in methods if f"order_{m}" in arrays},
            **{name: arrays.get(name) for name in _OPTIONAL_FIELDS},
        )  # fmt: skip

    def paired(self, baseline: str = "unpruned") -> dict[str, tuple[float, float, float, int]]:
        """Per method: ``(mean difference, t, p, n_used)`` of its test fit minus ``baseline``'s.

        The corrected resampled t-test (:func:`corrected_paired_t`), with the
        mean training and test fold sizes.
        """
        b = self.methods.index(baseline)
        n_train = int(round(np.mean([len(s.train) for s in self.splits])))
        n_test = int(round(np.mean([len(s.test) for s in self.splits])))
        out = {}
        for i, m in enumerate(self.methods):
            r = corrected_paired_t(self.test_fit[:, i] - self.test_fit[:, b], n_train, n_test)
            out[m] = (float(r.mean), float(r.t), float(r.p), int(r.n_used))
        return out

    def summary_rows(self, name: str = "") -> list[dict]:
        """One row per method: out-of-sample mean, sd and 95% interval, in-sample fit,
        % kept, and the paired test against ``unpruned``.

        The interval is the mean's, with the same corrected variance as the
        paired test: ``mean +- t(0.975, J - 1) sqrt((1/J + n_test/n_train) sd^2)``.
        """
        paired = self.paired() if "unpruned" in self.methods else {}
        ratio = np.mean([len(s.test) for s in self.splits]) / np.mean(
            [len(s.train) for s in self.splits]
        )
        rows = []
        for i, m in enumerate(self.methods):
            test = self.test_fit[:, i]
            diff, t, p, n_used = paired.get(m, (np.nan, np.nan, np.nan, 0))
            mean, sd, n_ok = stats.mean(test), stats.sd(test), int(np.sum(~np.isnan(test)))
            half = (
                float(scipy.stats.t.ppf(0.975, n_ok - 1) * np.sqrt((1 / n_ok + ratio) * sd**2))
                if n_ok > 1
                else np.nan
            )
            rows.append(
                {
                    "set": name,
                    "method": m,
                    "fit_out_of_sample_mean": mean,
                    "fit_out_of_sample_sd": sd,
                    "interval_low": mean - half,
                    "interval_high": mean + half,
                    "fit_in_sample": float(self.in_sample[i]),
                    "fit_train_mean": stats.mean(self.train_fit[:, i]),
                    "percent_kept_mean": 100.0 * stats.mean(self.kept[:, i]) / self.n_nodes,
                    "minus_unpruned_mean": diff,
                    "t_corrected": t,
                    "p_corrected": p,
                    "n_splits": n_ok,
                    "n_splits_paired": n_used,
                }
            )
        return rows

    def split_rows(self, name: str = "") -> list[dict]:
        """One row per split and method: repeat, fold, sizes, test and train fit, nodes kept."""
        return [
            {
                "set": name,
                "repeat": s.repeat,
                "fold": s.fold,
                "n_train": len(s.train),
                "n_test": len(s.test),
                "method": m,
                "fit_test": float(self.test_fit[j, i]),
                "fit_train": float(self.train_fit[j, i]),
                "kept": float(self.kept[j, i]),
            }
            for j, s in enumerate(self.splits)
            for i, m in enumerate(self.methods)
        ]


_ARRAY_FIELDS = ("keep_counts", "test_fit", "train_fit", "kept", "in_sample", "n_nodes")
_OPTIONAL_FIELDS = ("importance", "alpha", "weights")


def _nanmax(a) -> float:
    i = stats.best(a)
    return float("nan") if i is None else float(np.asarray(a)[i])


# The random method's score is a mean over its orders: 10,000 put its
# Monte-Carlo error (sd / 100) far below the spread over splits, and bound
# the time a mistyped --n-random can take.
MAX_RANDOM = 10_000
# Orders swept at once: bounds memory (orders x levels x items^2 fits).
_ORDER_CHUNK = 256


def _sweep(x, t, k, orders) -> np.ndarray:
    """Fits ``(R, L)`` of many keep orders, a bounded number at a time."""
    return np.concatenate(
        [
            np.asarray(sweep(x, t, k, orders[i : i + _ORDER_CHUNK]))
            for i in range(0, len(orders), _ORDER_CHUNK)
        ]
    )


def check_design(
    n_items: int,
    n_nodes: int,
    methods: Sequence[str] = METHODS,
    folds: int = 5,
    repeats: int = 10,
    seed: int = 0,
    n_random: int = 20,
    inner_folds: int = 3,
) -> list[Split]:
    """Refuse a comparison that cannot run on ``n_items x n_nodes``; else return its splits.

    Every check :func:`compare_methods` makes of its settings, without the
    data, so a pipeline can check every set before it writes anything.
    """
    methods = tuple(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods or len(set(methods)) != len(methods):
        raise ValueError(f"methods must be distinct names from {METHODS}, got {list(methods)}")
    if n_nodes < 2:
        raise ValueError(f"comparing pruning methods needs at least 2 nodes, got {n_nodes}")
    splits = item_splits(n_items, folds, repeats, seed)
    v.check_int(n_random, "n_random", 1, MAX_RANDOM)
    inner_folds = v.check_int(inner_folds, "inner_folds", 2)
    if "reweighting" in methods and min(len(s.train) for s in splits) // inner_folds < 3:
        raise ValueError(
            f"{inner_folds} inner folds leave fewer than 3 validation items of "
            f"{min(len(s.train) for s in splits)} training items"
        )
    return splits


def compare_methods(
    x,
    target,
    methods: Sequence[str] = METHODS,
    folds: int = 5,
    repeats: int = 10,
    seed: int = 0,
    keep_counts=None,
    n_random: int = 20,
    alphas: Sequence[float] = ALPHAS,
    inner_folds: int = 3,
    progress: Callable[[int], None] | None = None,
) -> Comparison:
    """Out-of-sample comparison of the methods over ``folds x repeats`` item splits.

    Args:
      x: ``(n_items, n_nodes)`` one layer's activations for one stimulus set.
      target: ``(n_items, n_items)`` symmetric similarity matrix (e.g. human).
      methods: names from :data:`METHODS`, in the order to report.
      folds, repeats, seed: the item splits (:func:`poz_jax.core.crossval.item_splits`).
      keep_counts: levels the nested methods choose from (default: every
        ``max(1, n_nodes // 200)``-th count from ``n_nodes`` down, which for
        4096 nodes is the paper's 205 levels); ``n_nodes`` is always added.
      n_random: random keep orders per split for ``random``.
      alphas: relative ridge penalties for ``reweighting``.
      inner_folds: folds of the inner cross-validation choosing the penalty.
      progress: optional callable ``progress(n_splits_done)``.

    Returns:
      A :class:`Comparison`.
    """
    x = v.prepare_one_set(x)
    t = v.prepare_target(target, x.shape[0], dtype=x.dtype)
    v.check_finite(t, "target")
    # Every method's answer is the same for any positive scale of x or t in
    # exact arithmetic; a power-of-two scaling makes it so in floating point
    # too, and keeps std's and the ridge's squares from under- or overflowing.
    x, t = v.pow2_normalised(x), v.pow2_normalised(t)
    methods = tuple(methods)
    n_items, n_nodes = x.shape
    splits = check_design(n_items, n_nodes, methods, folds, repeats, seed, n_random, inner_folds)
    if keep_counts is None:
        keep_counts = keep_grid(n_nodes, step=max(1, n_nodes // 200))
    k = np.unique(np.append(np.asarray(v.as_keep_counts(keep_counts, n_nodes)), n_nodes))[::-1]
    nested = [m for m in methods if m in ORDERINGS]
    a = np.asarray(alphas, dtype=float)

    n_j, n_m = len(splits), len(methods)
    test_fit, train_fit = np.full((n_j, n_m), np.nan), np.full((n_j, n_m), np.nan)
    kept = np.full((n_j, n_m), np.nan)
    orders = {m: np.zeros((n_j, n_nodes), np.int32) for m in nested}
    imp = np.full((n_j, n_nodes), np.nan) if "supervised" in methods else None
    alpha = np.full(n_j, np.nan) if "reweighting" in methods else None
    weights = np.full((n_j, n_nodes), np.nan) if "reweighting" in methods else None
    col = {m: i for i, m in enumerate(methods)}

    for j, s in enumerate(splits):
        xtr, ttr, xte, tte = s.take(x, t)
        res = _nested_split(xtr, ttr, xte, tte, k, nested, methods, n_random, seed, j)
        for m, (te, tr, kk) in res["scores"].items():
            test_fit[j, col[m]], train_fit[j, col[m]], kept[j, col[m]] = te, tr, kk
        for m in nested:
            orders[m][j] = res["orders"][m]
        if imp is not None:
            imp[j] = np.asarray(importance(xtr, ttr))
        if "reweighting" in methods:
            rw = _reweight_split(xtr, ttr, xte, tte, a, inner_folds, _inner_seed(seed, j))
            test_fit[j, col["reweighting"]], train_fit[j, col["reweighting"]] = rw[0], rw[1]
            kept[j, col["reweighting"]] = n_nodes
            alpha[j], weights[j] = rw[2], rw[3]
        if progress is not None:
            progress(1)

    in_sample = _in_sample(x, t, k, methods, nested, n_random, seed, a, inner_folds, n_j)
    return Comparison(
        methods,
        splits,
        k,
        n_nodes,
        test_fit,
        train_fit,
        kept,
        in_sample,
        orders,
        imp,
        alpha,
        weights,
    )


def _inner_seed(seed: int, j: int) -> int:
    # A seed per outer split for its inner folds, a pure function of both.
    return (seed * 1_000_003 + j + 1) % (2**31 - 1)


def _nested_split(xtr, ttr, xte, tte, k, nested, methods, n_random, seed, j) -> dict:
    """Scores of the unpruned, nested and random methods on one split."""
    named = keep_orders(xtr, ttr, nested)
    stacked = [named[m] for m in nested]
    if "random" in methods:
        stacked.append(random_orders(seed, xtr.shape[1], j * n_random, (j + 1) * n_random))
    scores = {}
    if "unpruned" in methods:
        full = np.array([xtr.shape[1]])
        ident = np.arange(xtr.shape[1])
        scores["unpruned"] = (
            float(sweep(xte, tte, full, ident)[0]),
            float(sweep(xtr, ttr, full, ident)[0]),
            float(xtr.shape[1]),
        )
    if stacked:
        # (M_nested + R, nodes) small index arrays, joined on the host (exact).
        o = np.concatenate([np.atleast_2d(np.asarray(a)) for a in stacked])
        best_tr, best_te, best_k = _choose(_sweep(xtr, ttr, k, o), _sweep(xte, tte, k, o), k)
        for i, m in enumerate(nested):
            scores[m] = (best_te[i], best_tr[i], best_k[i])
        if "random" in methods:
            r = slice(len(nested), None)
            scores["random"] = (
                stats.mean(best_te[r]),
                stats.mean(best_tr[r]),
                stats.mean(best_k[r]),
            )
    return {"scores": scores, "orders": {m: np.asarray(named[m]) for m in nested}}


def _choose(train, test, k):
    """Per order: the level of best training fit, and the training and test fit there."""
    train, test = np.asarray(train), np.asarray(test)
    ok = np.any(~np.isnan(train), axis=-1)
    best = stats.best_along(train)
    pick = np.arange(len(best))
    nan = np.full(len(best), np.nan)
    return (
        np.where(ok, train[pick, best], nan),
        np.where(ok, test[pick, best], nan),
        np.where(ok, k[best].astype(float), nan),
    )


def _reweight_split(xtr, ttr, xte, tte, alphas, inner_folds, inner_seed):
    """Penalty by inner CV on the training items, weights on all of them, then the scores."""
    scores = np.asarray(penalty_scores(xtr, ttr, alphas, inner_folds, inner_seed))
    best = int(stats.best_along(scores))
    w, b = reweighting_path(xtr, ttr, alphas[best : best + 1])
    fit_te = float(kernels.fit_kernel(reweighted_similarity(xte, w[0], b[0]), tte))
    fit_tr = float(kernels.fit_kernel(reweighted_similarity(xtr, w[0], b[0]), ttr))
    return fit_te, fit_tr, float(alphas[best]), np.asarray(w[0])


def _in_sample(x, t, k, methods, nested, n_random, seed, alphas, inner_folds, n_j) -> np.ndarray:
    """Each method fitted and scored on all items (its best level), as the paper reports."""
    out = []
    named = keep_orders(x, t, nested)
    for m in methods:
        if m == "unpruned":
            out.append(float(sweep(x, t, np.array([x.shape[1]]), np.arange(x.shape[1]))[0]))
        elif m in nested:
            out.append(_nanmax(sweep(x, t, k, named[m])))
        elif m == "random":
            # Orders numbered past every split's, so none is reused.
            o = random_orders(seed, x.shape[1], n_j * n_random, (n_j + 1) * n_random)
            out.append(stats.mean([_nanmax(f) for f in _sweep(x, t, k, o)]))
        else:  # reweighting
            scores = np.asarray(penalty_scores(x, t, alphas, inner_folds, seed))
            best = int(stats.best_along(scores))
            w, b = reweighting_path(x, t, alphas[best : best + 1])
            out.append(float(kernels.fit_kernel(reweighted_similarity(x, w[0], b[0]), t)))
    return np.array(out)


@dataclasses.dataclass(frozen=True)
class CompareConfig:
    """Settings of one comparison run (saved with its results); see :func:`compare`."""

    methods: tuple[str, ...] = setting(METHODS, "comma-separated methods to compare")
    folds: int = setting(5, "folds over stimuli")
    repeats: int = setting(10, "seeded repeats")
    seed: int = setting(0, "seed of splits and random orders")
    n_random: int = setting(20, "random keep orders per split")
    inner_folds: int = setting(3, "folds of the inner cross-validation choosing the ridge penalty")
    precision: str = setting("float64", PRECISION_HELP, choices=v.PRECISIONS)
    sets: tuple[str, ...] | None = setting(None, "comma-separated set names (default: all)")

    def __post_init__(self) -> None:
        v.check_choice(self.precision, "precision", v.PRECISIONS)
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods or len(set(self.methods)) != len(self.methods):
            raise v.FieldError(
                "methods",
                f"must be distinct names from {', '.join(METHODS)}, got {list(self.methods)}",
            )
        v.check_int(self.folds, "folds", 2)
        v.check_int(self.repeats, "repeats", 1)
        v.check_seed(self.seed, "seed")
        v.check_int(self.n_random, "n_random", 1, MAX_RANDOM)
        v.check_int(self.inner_folds, "inner_folds", 2)
        v.check_set_names(self.sets)

    def design(self) -> tuple:
        """The arguments of :func:`check_design` after ``n_items, n_nodes``."""
        return self.methods, self.folds, self.repeats, self.seed, self.n_random, self.inner_folds


def compare_set(cfg: CompareConfig, out: Path, name: str, x, t, bar) -> Comparison:
    """One set's comparison, reused from ``out`` while its inputs and settings are the same."""
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "sets"}
    key = cache.product_key({"activations": x, "similarity": t}, **settings)
    splits = item_splits(x.shape[0], cfg.folds, cfg.repeats, cfg.seed)

    def fresh():
        result = compare_methods(
            x,
            t,
            methods=cfg.methods,
            folds=cfg.folds,
            repeats=cfg.repeats,
            seed=cfg.seed,
            n_random=cfg.n_random,
            alphas=ALPHAS,
            inner_folds=cfg.inner_folds,
            progress=bar.update,
        )
        return result.to_arrays()

    arrays = cache.cached(
        out / f"compare_{name}.npz", key, fresh, on_hit=lambda: bar.update(len(splits))
    )
    return Comparison.from_arrays(arrays, cfg.methods, splits)
