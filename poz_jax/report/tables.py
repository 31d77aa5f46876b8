"""The rows of every results table, from the analysis products (host NumPy in, dicts out).

One column vocabulary for every study (see README, "Results files"):

- per level: ``keep_count``, ``keep_fraction``, ``fit`` or ``fit_mean`` /
  ``fit_sd``, ``max_poz`` or ``max_poz_mean`` / ``max_poz_sd``, ``n_nan``,
  and the null's ``null_mean``, ``null_sd``, ``null_q025``, ``null_q975``;
- per curve: ``unpruned_fit``, ``best_keep_count``, ``best_percent_kept``,
  ``best_fit`` (the best of the levels the null was drawn at),
  ``improvement``, ``p_improvement``, ``trend_slope_per_percent``,
  ``p_trend``, ``n_null``, ``n_null_used_improvement``, ``n_null_used_trend``.

Every mean, sd and quantile is :mod:`poz_jax.analysis.stats`'s (sd: ddof 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from poz_jax.analysis import stats
from poz_jax.analysis.pruning import Analysis, pooled


def curve_rows(fit, tests: dict, keep_counts, n_nodes: int, n_null: int) -> list[dict]:
    """One row per curve ``fit[i]`` ``(C, L)``: unpruned and best fit, and both tests.

    ``tests``: :func:`poz_jax.analysis.pruning.null_tests` of those curves (arrays ``(C,)``).
    """
    counts = np.asarray(keep_counts)
    rows = []
    for i, f in enumerate(np.asarray(fit)):
        b = stats.best(f)
        rows.append(
            {
                "unpruned_fit": float(f[0]),
                "best_keep_count": None if b is None else int(counts[b]),
                "best_percent_kept": np.nan if b is None else 100.0 * int(counts[b]) / n_nodes,
                "best_fit": np.nan if b is None else float(f[b]),
                **{k: _scalar(v[i]) for k, v in tests.items()},
                "n_null": int(n_null),
            }
        )
    return rows


def _scalar(a):
    a = np.asarray(a)
    return int(a) if np.issubdtype(a.dtype, np.integer) else float(a)


def null_rows(null, keep_counts) -> list[dict]:
    """One row per level of a null ``(n_null, L)``: its mean, sd and 95% band."""
    null = np.asarray(null)
    return [
        {"keep_count": int(k), **stats.null_columns(null[:, j])} for j, k in enumerate(keep_counts)
    ]


def exp1_tables(result: Analysis, paper_counts, accuracy) -> tuple[list, list, list]:
    """Experiment 1's ``(summary, per_network, accuracy)`` rows.

    ``summary``: a row per keep count (mean and sd over networks, NaN fits
    left out and counted in ``n_nan``; ``paper_level`` marks the paper's ten);
    ``per_network``: a row per level and network (network ``i`` is the one
    trained from seed ``seed + i``); ``accuracy``: a row per network.
    """
    summary = [
        {
            "keep_count": r["keep_count"],
            "keep_fraction": r["keep_fraction"],
            "paper_level": bool(r["keep_count"] in paper_counts),
            **{k: v for k, v in r.items() if k not in ("keep_count", "keep_fraction")},
        }
        for r in result.summary_rows("network")
    ]
    level = {int(k): j for j, k in enumerate(result.keep_counts)}
    per_network = sorted(result.rows("network"), key=lambda r: level[r["keep_count"]])
    acc = [{"network": s, "test_accuracy": float(a)} for s, a in enumerate(accuracy)]
    return summary, per_network, acc


def exp2_tables(
    names: Sequence[str],
    result: Analysis,
    all_fits: np.ndarray,
    nulls: np.ndarray,
    tests: dict,
    n_items: Sequence[int],
) -> tuple[list, list, list]:
    """Experiment 2's ``(summary, levels, stats)`` rows for sets ``names`` of one shape.

    Args:
      result: the sets' :class:`Analysis` at the sweep's levels ``L``.
      all_fits: ``(S, n_nodes)`` fits at every keep count ``n_nodes .. 1``.
      nulls: ``(S, n_null, L)``; tests: ``null_tests(result.fit, nulls, ...)``.
      n_items: items per set.
    """
    d, counts = result.n_nodes, result.keep_counts
    summary = result.rows("set", names)
    for row in summary:
        s, j = list(names).index(row["set"]), int(np.flatnonzero(counts == row["keep_count"])[0])
        row.update(stats.null_columns(nulls[s][:, j]))
    levels = [
        {"set": name, "keep_count": k, "fit": float(f)}
        for s, name in enumerate(names)
        for k, f in zip(range(d, 0, -1), all_fits[s], strict=True)
    ]
    per_curve = curve_rows(result.fit, tests, counts, d, nulls.shape[1])
    stat_rows = []
    for s, (name, row) in enumerate(zip(names, per_curve, strict=True)):
        b = stats.best(all_fits[s])
        stat_rows.append(
            {
                "set": name,
                "n_items": int(n_items[s]),
                "n_nodes": d,
                "share_poz_above_80": float(np.mean(result.poz[s] > 0.8)),
                **row,
                "best_keep_count_any_level": None if b is None else d - b,
                "best_fit_any_level": np.nan if b is None else float(all_fits[s, b]),
            }
        )
    return summary, levels, stat_rows


def network_tables(
    result: Analysis, null: np.ndarray, tests: dict, labels: dict
) -> tuple[list, list]:
    """``(summary, stats)`` rows of ``S`` networks at one level, each row led by ``labels``.

    Args:
      result: the networks' :class:`Analysis` ``(S, L)`` at every keep count.
      null: ``(S, n_null, L)``; the mean curve's draw ``j`` is the networks'
        mean of their draws ``j`` (:func:`poz_jax.analysis.pruning.pooled`).
      tests: ``null_tests`` of the ``S + 1`` curves (the networks', then the mean's).
      labels: the level's columns (for example ``{"set": ..., "layer": ...}``).

    ``summary``: a row per keep count, mean and sd over the networks and the
    mean curve's null; ``stats``: a row per network and one, ``network``
    ``"pooled"``, for the mean curve.
    """
    curves, nulls = pooled(result.fit, null)
    summary = [
        {**labels, **row, **stats.null_columns(nulls[-1][:, j])}
        for j, row in enumerate(result.summary_rows("network"))
    ]
    rows = curve_rows(curves, tests, result.keep_counts, result.n_nodes, null.shape[1])
    names = [*range(len(result.fit)), "pooled"]
    stat_rows = [{**labels, "network": n, **r} for n, r in zip(names, rows, strict=True)]
    return summary, stat_rows


def exp3_tables(
    result: Analysis, null: np.ndarray, tests: dict, items: str, set_name: str = ""
) -> tuple[list, list]:
    """Experiment 3's ``(summary, stats)`` rows for one kind of item: ``"classes"``, or
    ``"images"`` of one image set.

    :func:`network_tables` with the columns ``items`` and ``set``.
    """
    return network_tables(result, null, tests, {"items": items, "set": set_name})
