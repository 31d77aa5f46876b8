"""Cross-validation over stimuli: seeded item splits and the paired test across them."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from poz_jax.core import validate as v


class Split(NamedTuple):
    """One split of the items: sorted ``train`` and ``test`` index arrays."""

    repeat: int
    fold: int
    train: np.ndarray
    test: np.ndarray

    def take(self, x, t) -> tuple:
        """``(x[train], t[train, train], x[test], t[test, test])`` for ``x`` ``(n_items, ...)``
        and ``t`` ``(n_items, n_items)``.

        Picking items is exact, so where the values live in host memory it
        runs in NumPy (in JAX each pick compiles a program per split size);
        on an accelerator it runs there.
        """
        (xv, _), (tv, _) = v.readable(x), v.readable(t)
        tr, te = self.train, self.test
        return xv[tr], tv[np.ix_(tr, tr)], xv[te], tv[np.ix_(te, te)]


def item_splits(n_items: int, folds: int = 5, repeats: int = 1, seed: int = 0) -> list[Split]:
    """``folds``-fold splits of ``n_items`` items, repeated with ``repeats`` shuffles.

    Repeat ``r`` shuffles the items with ``np.random.default_rng([seed, r])``
    (PCG64: the same on every platform) and cuts the shuffle into ``folds``
    nearly equal test folds (``np.array_split``); each item is a test item
    once per repeat. Every fold keeps at least 3 test items, the fewest a
    fit of similarities needs.

    Returns:
      ``folds * repeats`` splits, repeat by repeat.
    """
    n_items = v.check_int(n_items, "n_items", 1)
    folds = v.check_int(folds, "folds", 2)
    repeats = v.check_int(repeats, "repeats", 1)
    seed = v.check_seed(seed)
    if n_items // folds < 3:
        most = n_items // 3
        advice = (
            f"use at most {most} folds"
            if most >= 2
            else "a cross-validation over items needs at least 6 (2 folds of 3)"
        )
        raise ValueError(
            f"{folds} folds of {n_items} items leave fewer than 3 test items per fold; {advice}"
        )
    out = []
    for r in range(repeats):
        perm = np.random.default_rng([seed, r]).permutation(n_items)
        for f, test in enumerate(np.array_split(perm, folds)):
            train = np.setdiff1d(np.arange(n_items), test)
            out.append(Split(r, f, train, np.sort(test)))
    return out


class PairedResult(NamedTuple):
    """:func:`corrected_paired_t`'s result; each field ``(...)``."""

    mean: jax.Array  # mean difference over the splits with both values defined
    t: jax.Array
    p: jax.Array  # two-sided
    n_used: jax.Array  # splits with both values defined


def corrected_paired_t(diff, n_train: int, n_test: int) -> PairedResult:
    """Nadeau & Bengio's (2003) corrected resampled t-test of differences across CV splits.

    The ``J`` splits of one data set share items, so their differences are
    correlated and the plain paired t-test, whose variance ``s^2 / J``
    assumes independence, rejects far too often. The corrected test inflates
    the variance to ``(1/J + n_test/n_train) s^2`` (Bouckaert & Frank 2004
    recommend it for repeated k-fold CV) and uses ``J - 1`` degrees of
    freedom. NaN differences are left out.

    Args:
      diff: ``(..., J)`` per-split differences (method minus baseline).
      n_train, n_test: items per training and test fold.

    Returns:
      :class:`PairedResult`; ``t`` and ``p`` NaN where fewer than 2
      differences are defined or all are equal, ``mean`` NaN where none is.
    """
    d = v.as_float(diff, "diff")
    v.check_min_rank(d, 1, "diff", "(..., n_splits)")
    n_train = v.check_int(n_train, "n_train", 1)
    n_test = v.check_int(n_test, "n_test", 1)
    return _corrected(d, n_test / n_train)


@jax.jit
def _corrected(d, ratio):
    ok = ~jnp.isnan(d)
    j = jnp.sum(ok, axis=-1)
    jf = j.astype(d.dtype)
    mean = jnp.sum(jnp.where(ok, d, 0.0), axis=-1) / jnp.maximum(jf, 1)
    var = jnp.sum(jnp.where(ok, (d - mean[..., None]) ** 2, 0.0), axis=-1) / jnp.maximum(jf - 1, 1)
    se = jnp.sqrt((1.0 / jnp.maximum(jf, 1) + ratio) * var)
    defined = (j >= 2) & (se > 0)
    t = jnp.where(defined, mean / jnp.where(defined, se, 1.0), jnp.nan)
    df = jnp.maximum(jf - 1, 1)
    # Two-sided Student-t tail through the regularised incomplete beta function.
    p = jax.scipy.special.betainc(df / 2, 0.5, df / (df + t * t))
    # No defined difference: the mean is undefined too (NaN, never 0).
    mean = jnp.where(j > 0, mean, jnp.nan)
    return PairedResult(mean, t, jnp.where(defined, p, jnp.nan), j)
