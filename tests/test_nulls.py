"""Random-pruning nulls and the improvement / trend tests, against NumPy references."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from scipy import stats

from poz_jax import nulls, sweep
from poz_jax.synthetic import synthetic_activations


@pytest.fixture(autouse=True)
def _x64():
    with jax.enable_x64(True):
        yield


def _human(n, seed):
    rng = np.random.default_rng(seed)
    a = rng.random((n, n))
    return (a + a.T) / 2


def test_null_orders_are_permutations_independent_of_batching():
    a = nulls.random_orders(3, 50, 0, 10)
    b = np.concatenate([nulls.random_orders(3, 50, 0, 4), nulls.random_orders(3, 50, 4, 10)])
    np.testing.assert_array_equal(a, b)
    assert np.all(np.sort(a, axis=1) == np.arange(50))
    assert len({tuple(r) for r in np.asarray(a)}) == 10  # distinct orders
    assert not np.array_equal(a, nulls.random_orders(4, 50, 0, 10))


def test_null_fits_equal_the_sweep_of_each_random_order():
    x = synthetic_activations(12, 40, seed=1, dtype=np.float64)
    target = _human(12, 2)
    k = np.arange(40, 0, -3)
    got = nulls.null_fits(x, target, k, n_orders=7, seed=5, batch=3)
    orders = np.asarray(nulls.random_orders(5, 40, 0, 7))
    assert got.shape == (7, len(k))
    for i in range(7):
        np.testing.assert_allclose(got[i], sweep(x, target, k, orders[i]), rtol=1e-10, atol=1e-14)
    again = nulls.null_fits(x, target, k, 7, seed=5, batch=7)
    np.testing.assert_allclose(got, again, rtol=1e-10, atol=1e-14)


def test_improvement_test_against_numpy():
    rng = np.random.default_rng(0)
    obs = rng.random((3, 20))
    null = rng.random((3, 500, 20))
    null[..., 0] = obs[:, :1]  # the unpruned level is the same under every order
    null[1, 7, 4] = np.nan  # a NaN null level is skipped, as by the curve maximum
    gain, p = nulls.improvement_test(obs, null)
    for s in range(3):
        g = obs[s].max() - obs[s, 0]
        ng = np.nanmax(null[s], 1) - null[s, :, 0]
        assert gain[s] == pytest.approx(g, abs=1e-15)
        assert p[s] == pytest.approx((1 + np.sum(ng >= g)) / 501, abs=1e-15)


def test_trend_test_against_scipy_linregress():
    rng = np.random.default_rng(1)
    kept = np.linspace(100, 5, 30)
    obs = rng.random((4, 30))
    obs[0, 0] = 2.0  # peak at the unpruned level: no trend to test
    null = rng.random((4, 300, 30))
    peak, slope, p = nulls.trend_test(obs, null, kept)
    assert int(peak[0]) == 0 and np.isnan(slope[0]) and np.isnan(p[0])
    for s in range(1, 4):
        pk = int(np.argmax(obs[s]))
        assert int(peak[s]) == pk
        if pk == 0:
            continue
        ref = stats.linregress(100 - kept[: pk + 1], obs[s, : pk + 1]).slope
        assert slope[s] == pytest.approx(ref, rel=1e-10)
        if pk >= 1:
            ns = [stats.linregress(100 - kept[: pk + 1], c[: pk + 1]).slope for c in null[s]]
            assert p[s] == pytest.approx((1 + np.sum(np.array(ns) >= ref)) / 301, abs=1e-12)


def test_planted_structure_is_significant_and_a_random_target_is_not():
    import poz_jax as pj
    from poz_jax.synthetic import feature_similarity, planted_embeddings

    feats, x = planted_embeddings(60, 400, seed=0)
    human = feature_similarity(feats)

    k = np.arange(400, 0, -20)
    order = pj.keep_order(pj.poz(x))
    obs = np.asarray(sweep(x, human, k, order))
    null = nulls.null_fits(x, human, k, 200, seed=0)
    gain, p = nulls.improvement_test(obs, null)
    assert gain > 0.05 and p < 0.01
    _, slope, p_trend = nulls.trend_test(obs, null, 100 * k / 400)
    assert slope > 0 and p_trend < 0.01
    unrelated = _human(60, 9)
    obs_u = np.asarray(sweep(x, unrelated, k, order))
    _, p_u = nulls.improvement_test(obs_u, nulls.null_fits(x, unrelated, k, 200, seed=0))
    assert p_u > 0.05
