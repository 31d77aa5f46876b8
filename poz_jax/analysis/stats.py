"""The summary statistics every study reports, on the host, NaN-aware.

One definition of each, so every table says the same thing by the same
column name:

- ``mean``: over the defined (non-NaN) values; NaN when none is defined.
- ``sd``: the sample standard deviation (``ddof = 1``, :data:`SD_DDOF`) over
  the defined values; NaN when fewer than two are defined.
- ``quantiles``: NumPy's default (linear) quantiles of the defined values.
- ``best``: the level with the largest defined fit (the first such, i.e. the
  most nodes kept, when levels run from many nodes kept to few); ``None``
  when no fit is defined.

A fit is NaN where it is undefined (a constant RSM); NaN is never turned
into 0, and every count of values left out is reported beside the statistic
(``n_nan``, ``n_used``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.stats

SD_DDOF = 1  # the sample sd: the spread of networks / splits / draws as a sample


def mean(values, axis: int | None = None) -> np.ndarray | float:
    """Mean of the defined values along ``axis`` (all, by default); NaN where none is."""
    a = np.asarray(values, np.float64)
    ok = ~np.isnan(a)
    n = ok.sum(axis)
    total = np.where(ok, a, 0.0).sum(axis)
    out = np.where(n > 0, total / np.maximum(n, 1), np.nan)
    return float(out) if np.ndim(out) == 0 else out


def sd(values, axis: int | None = None) -> np.ndarray | float:
    """Sample sd (``ddof = 1``) of the defined values along ``axis``; NaN below two values."""
    a = np.asarray(values, np.float64)
    ok = ~np.isnan(a)
    n = ok.sum(axis)
    m = mean(a, axis)
    dev = np.where(ok, a - (m if axis is None else np.expand_dims(m, axis)), 0.0)
    var = (dev**2).sum(axis) / np.maximum(n - SD_DDOF, 1)
    out = np.where(n > SD_DDOF, np.sqrt(var), np.nan)
    return float(out) if np.ndim(out) == 0 else out


def quantiles(values, qs: Sequence[float]) -> list[float]:
    """Quantiles ``qs`` (fractions) of the defined values of a 1-D array; NaN if none."""
    a = np.asarray(values, np.float64).ravel()
    a = a[~np.isnan(a)]
    if not a.size:
        return [float("nan")] * len(qs)
    return [float(q) for q in np.quantile(a, qs)]


def best_along(values, axis: int = -1) -> np.ndarray:
    """Index of the largest defined value along ``axis`` (the first of ties), NaN skipped.

    Where no value is defined the index is 0; :func:`best` says ``None`` there.
    """
    a = np.asarray(values, np.float64)
    return np.argmax(np.where(np.isnan(a), -np.inf, a), axis=axis)


def best(fit) -> int | None:
    """Index of the largest defined value of a 1-D curve (the first of ties); None if none."""
    f = np.asarray(fit, np.float64)
    if not (~np.isnan(f)).any():
        return None
    return int(best_along(f))


def describe(values, prefix: str) -> dict[str, float]:
    """``{prefix_mean, prefix_sd}`` of 1-D ``values`` (the table columns)."""
    return {f"{prefix}_mean": mean(values), f"{prefix}_sd": sd(values)}


def null_columns(draws) -> dict[str, float]:
    """``null_mean, null_sd, null_q025, null_q975`` of one level's null draws."""
    q025, q975 = quantiles(draws, (0.025, 0.975))
    return {**describe(draws, "null"), "null_q025": q025, "null_q975": q975}


def t_half_width(values) -> float:
    """Half the width of the 95% t interval of the mean of the defined ``values``.

    ``t(0.975, n - 1) sd / sqrt(n)`` (sample sd); NaN below two defined values.
    For independent replicates (networks, participants); splits of the same
    items need the corrected interval of :func:`poz_jax.core.crossval.corrected_paired_t`.
    """
    a = np.asarray(values, np.float64).ravel()
    n = int(np.sum(~np.isnan(a)))
    if n < 2:
        return float("nan")
    return float(scipy.stats.t.ppf(0.975, n - 1) * sd(a) / np.sqrt(n))


def across(values) -> dict[str, float]:
    """The mean of ``values`` (one per participant or network) and its test against 0.

    ``{mean, sd, n, interval_low, interval_high, t, p}``: the 95% t interval
    and the two-sided one-sample t-test of the mean against 0 (the
    inference across participants, who are the random effect).
    """
    a = np.asarray(values, np.float64).ravel()
    a = a[~np.isnan(a)]
    m, s, n = mean(a), sd(a), len(a)
    half = t_half_width(a)
    t = m / (s / np.sqrt(n)) if n > 1 and s > 0 else float("nan")
    p = float(2 * scipy.stats.t.sf(abs(t), n - 1)) if np.isfinite(t) else float("nan")
    return {
        "mean": m,
        "sd": s,
        "n": n,
        "interval_low": m - half,
        "interval_high": m + half,
        "t": float(t),
        "p": p,
    }
