"""What every study of many networks does per network: the sweep, the null, the tests.

Experiment 3 and the Peterson study hold activations ``(S, n, d)`` of ``S``
networks at one level; each network is swept at every keep count, gets its
own random-pruning null (orders seeded by ``seed + network``, cached in the
study's folder) and both tests, and so does the networks' mean curve
(:func:`poz_jax.analysis.pruning.pooled`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from poz_jax.analysis.pruning import Analysis, analyse, null_tests, pooled
from poz_jax.core.nulls import null_fits
from poz_jax.core.ranking import keep_grid
from poz_jax.io import cache


def every_count(acts) -> np.ndarray:
    """Every keep count of ``acts`` ``(..., d)``: ``keep_grid(d, step=1)``, ``d, ..., 1``."""
    return keep_grid(acts.shape[-1], step=1)


def null_key(activations, similarity, keep_counts, n_null: int, seed: int, precision: str) -> dict:
    """The cache key of a random-pruning null: every number and setting it is computed from.

    One key for every study's null (a set's, each network's, the
    participants'): the activations ``(..., n, d)``, the target matrix (or
    stack of them) by content, the keep counts, the number of draws, the seed
    (the first network's: network ``s`` draws with ``seed + s``) and the
    precision. A node's PoZ is not part of it: random orders never read it.
    """
    return cache.product_key(
        {"activations": activations, "similarity": similarity},
        keep_counts=[int(k) for k in keep_counts],
        n_null=int(n_null),
        seed=int(seed),
        precision=precision,
    )


def network_nulls(
    out: Path, name: str, acts, human, n_null: int, seed: int, precision: str, bar
) -> np.ndarray:
    """The random-pruning null ``(S, n_null, d)`` of every network at one level.

    Cached as ``out/null_{name}.npz``, keyed by the numbers it is computed
    from; ``bar.update(1)`` after each network.
    """
    key = null_key(acts, human, every_count(acts), n_null, seed, precision)

    def fresh():
        null = []
        for s in range(acts.shape[0]):
            null.append(null_fits(acts[s], human, every_count(acts), n_null, seed=seed + s))
            bar.update(1)
        return {"null_fits": np.stack(null)}

    product = cache.cached(
        out / f"null_{name}.npz", key, fresh, on_hit=lambda: bar.update(len(acts))
    )
    return product["null_fits"]


def analyse_networks(
    out: Path, name: str, acts, node_poz, human, n_null: int, seed: int, precision: str, bar
) -> tuple[Analysis, np.ndarray, dict]:
    """``(analysis, null, tests)`` of ``S`` networks at one level.

    ``acts`` ``(S, n, d)``, ``node_poz`` ``(S, d)``, ``human`` ``(n, n)``;
    ``null`` is ``(S, n_null, d)``, ``tests`` the ``S + 1`` curves' (the
    networks', then their mean's) :func:`poz_jax.analysis.pruning.null_tests`.
    """
    res = analyse(acts, human, every_count(acts), poz_values=node_poz)
    null = network_nulls(out, name, acts, human, n_null, seed, precision, bar)
    curves, nulls = pooled(res.fit, null)
    return res, null, null_tests(curves, nulls, 100.0 * res.keep_counts / res.n_nodes)


def compare_networks(ccfg, out: Path, levels, n_cmp: int, dtype, bar) -> list[dict]:
    """``poz-jax compare``'s rows for the first ``n_cmp`` networks at each level.

    ``levels``: ``(name, acts (S, n, d), human (n, n))`` triples; each
    network's comparison is cached as ``out/compare_{name}_network{i}.npz``.
    """
    from poz_jax.analysis.comparison import compare_set

    rows = []
    for name, acts, human in levels:
        for n in range(n_cmp):
            x, t = np.asarray(acts[n], dtype), np.asarray(human, dtype)
            res = compare_set(ccfg, out, f"{name}_network{n}", x, t, bar)
            rows += [{"network": n, **r} for r in res.summary_rows(name)]
    return rows
