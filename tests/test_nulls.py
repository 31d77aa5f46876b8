"""Random-pruning nulls and the improvement / trend tests, against NumPy references."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from bounds import assert_within, sweep_bound
from conftest import run_on_host_devices, run_processes
from scipy import stats

from poz_jax import sweep
from poz_jax.core import nulls
from poz_jax.data.synthetic import synthetic_activations


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


@pytest.mark.slow
def test_null_fits_equal_the_sweep_of_each_random_order():
    x = synthetic_activations(12, 40, seed=1, dtype=np.float64)
    target = _human(12, 2)
    k = np.arange(40, 0, -3)
    got = nulls.null_fits(x, target, k, n_orders=7, seed=5, batch=3)
    orders = np.asarray(nulls.random_orders(5, 40, 0, 7))
    assert got.shape == (7, len(k))
    again = nulls.null_fits(x, target, k, 7, seed=5, batch=7)
    for i in range(7):
        # Another batching may sum in another order: each within the float64 bound.
        bound = 2 * sweep_bound(x, target, k, orders[i], np.float64, fits=got[i])
        assert_within(got[i], sweep(x, target, k, orders[i]), bound, f"order {i}")
        assert_within(got[i], again[i], bound, f"order {i}, another batch")


def _ref_gain(curve):
    return np.nan if np.isnan(curve[0]) else np.nanmax(curve) - curve[0]


def _ref_slope(curve, pruned, upto=None):
    # The trend procedure written as a plain loop: own peak (or a fixed one),
    # NaN levels left out, scipy's linregress over the rest of 0..peak.
    if np.isnan(curve[0]):
        return np.nan
    peak = int(np.nanargmax(curve)) if upto is None else upto
    sel = np.arange(peak + 1)
    sel = sel[~np.isnan(curve[sel])]
    if peak < 1 or len(sel) < 2:
        return np.nan
    return stats.linregress(pruned[sel], curve[sel]).slope


def _ref_p(obs, null_stats):
    ok = null_stats[~np.isnan(null_stats)]
    return np.nan if np.isnan(obs) else (1 + np.sum(ok >= obs)) / (1 + len(ok)), len(ok)


def _curves_with_nans(rng, shape, n_levels):
    c = rng.random((*shape, n_levels))
    c[rng.random(c.shape) < 0.05] = np.nan  # NaN levels scattered everywhere
    return c


def test_improvement_test_against_a_numpy_loop():
    rng = np.random.default_rng(0)
    obs = _curves_with_nans(rng, (4,), 20)
    obs[:, 0] = rng.random(4)
    null = _curves_with_nans(rng, (4, 300), 20)
    null[..., 0] = obs[:, :1]  # the unpruned level is the same under every order
    null[1, :40, 0] = np.nan  # undefined draws: left out of count and total
    obs[3, 0] = np.nan  # undefined observed statistic: p is NaN
    res = nulls.improvement_test(obs, null)
    for s in range(4):
        g = _ref_gain(obs[s])
        p, n_used = _ref_p(g, np.array([_ref_gain(c) for c in null[s]]))
        np.testing.assert_allclose(res.improvement[s], g, atol=1e-15)
        np.testing.assert_allclose(res.p[s], p, atol=1e-15)
        assert int(res.n_used[s]) == n_used
    assert int(res.n_used[1]) == 260 and np.isnan(res.p[3])


@pytest.mark.parametrize("upto", [None, 6])
def test_trend_test_against_scipy_linregress(upto):
    rng = np.random.default_rng(1)
    kept = np.linspace(100, 5, 30)
    obs = _curves_with_nans(rng, (5,), 30)
    obs[:, 0] = rng.random(5)
    obs[0, 0] = 2.0  # peak at the unpruned level: no own-peak trend to test
    null = _curves_with_nans(rng, (5, 200), 30)
    res = nulls.trend_test(obs, null, kept, upto=upto)
    for s in range(5):
        ref = _ref_slope(obs[s], 100 - kept, upto)
        p, n_used = _ref_p(ref, np.array([_ref_slope(c, 100 - kept, upto) for c in null[s]]))
        np.testing.assert_allclose(res.slope[s], ref, rtol=1e-10)
        np.testing.assert_allclose(res.p[s], p, atol=1e-12)
        assert int(res.n_used[s]) == n_used
        assert int(res.peak[s]) == (np.nanargmax(obs[s]) if upto is None else upto)
    if upto is None:
        assert np.isnan(res.slope[0]) and np.isnan(res.p[0])
        assert 0 < int(res.n_used[1]) < 200  # some null curves peak at level 0


def _exchangeable(rng, n_rep, n_curves, n_levels):
    # Every curve of a replicate is an independent random walk from one common
    # unpruned fit: the observed curve (index 0) is one more draw of the null.
    steps = rng.normal(size=(n_rep, n_curves, n_levels - 1))
    start = np.zeros((n_rep, n_curves, 1))
    return np.concatenate([start, np.cumsum(steps, axis=-1)], axis=-1) + 0.5


def _rejection_rate(p, n_used):
    # P(p <= 0.05) of a valid test is floor(0.05 (1 + n)) / (1 + n) <= 0.05 for
    # n null draws (p takes the values k / (1 + n)); return the observed rate,
    # its expected value, and the Monte-Carlo sd of the rate.
    ok = ~np.isnan(p)
    n = np.asarray(n_used)[ok]
    expected = np.floor(0.05 * (1 + n) + 1e-9) / (1 + n)
    return np.mean(p[ok] <= 0.05), expected.mean(), np.sqrt(0.05 * 0.95 / ok.sum())


@pytest.mark.slow
@pytest.mark.parametrize("test", ["improvement", "trend", "trend_fixed"])
def test_p_values_are_calibrated_under_exchangeable_curves(test):
    rng = np.random.default_rng(11)
    curves = _exchangeable(rng, 4000, 200, 25)
    obs, null = curves[:, 0], curves[:, 1:]
    kept = np.linspace(100, 4, 25)
    if test == "improvement":
        res = nulls.improvement_test(obs, null)
    else:
        res = nulls.trend_test(obs, null, kept, upto=10 if test == "trend_fixed" else None)
    p, n_used = np.asarray(res.p), np.asarray(res.n_used)
    rate, expected, sd = _rejection_rate(p, n_used)
    assert abs(rate - expected) < 4 * sd, (rate, expected, sd)
    assert 0.04 < expected <= 0.05 + 1e-12
    # Also uniform away from 0.05: P(p <= 0.5) about 0.5.
    assert abs(np.mean(p[~np.isnan(p)] <= 0.5) - 0.5) < 4 * np.sqrt(0.25 / 4000)


def test_nan_at_levels_outside_a_statistic_changes_no_p_value():
    rng = np.random.default_rng(5)
    kept = np.linspace(100, 4, 25)
    curves = _exchangeable(rng, 300, 101, 25)
    own_peak = np.argmax(curves, axis=-1)
    before_imp = nulls.improvement_test(curves[:, 0], curves[:, 1:])
    before_trend = nulls.trend_test(curves[:, 0], curves[:, 1:], kept)
    # NaN at a random level beyond each curve's own peak: outside both statistics.
    spoiled = curves.copy()
    lvl = own_peak + 1 + rng.integers(0, 25, own_peak.shape) % np.maximum(24 - own_peak, 1)
    rows = np.nonzero(own_peak < 24)
    spoiled[(*rows, lvl[rows])] = np.nan
    assert np.isnan(spoiled).sum() > 20000
    after_imp = nulls.improvement_test(spoiled[:, 0], spoiled[:, 1:])
    after_trend = nulls.trend_test(spoiled[:, 0], spoiled[:, 1:], kept)
    for a, b in zip(before_imp, after_imp, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(before_trend, after_trend, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    # Between level 0 and the peak, NaN leaves the improvement alone (the trend
    # then regresses on the remaining levels).
    inside = curves.copy()
    rows = np.nonzero(own_peak >= 2)
    inside[(*rows, own_peak[rows] - 1)] = np.nan
    for a, b in zip(before_imp, nulls.improvement_test(inside[:, 0], inside[:, 1:]), strict=True):
        np.testing.assert_array_equal(a, b)


def test_tests_refuse_mismatched_curves():
    obs, null = np.zeros((2, 10)), np.zeros((2, 50, 9))
    with pytest.raises(ValueError, match="observed has 10 levels but null has 9"):
        nulls.improvement_test(obs, null)
    with pytest.raises(ValueError, match="observed has 10 levels but null has 9"):
        nulls.trend_test(obs, null, np.linspace(100, 10, 10))
    with pytest.raises(ValueError, match="percent_kept must have shape"):
        nulls.trend_test(obs, np.zeros((2, 50, 10)), np.linspace(100, 10, 9))
    with pytest.raises(ValueError, match="do not broadcast"):
        nulls.improvement_test(obs, np.zeros((3, 50, 10)))
    with pytest.raises(ValueError, match="upto must be a level index"):
        nulls.trend_test(obs, np.zeros((2, 50, 10)), np.linspace(100, 10, 10), upto=10)


def test_null_fits_refuses_bad_counts():
    x = synthetic_activations(8, 12, seed=0, dtype=np.float64)
    t = _human(8, 0)
    k = np.array([12, 6])
    for kwargs, msg in [
        ({"n_orders": 0}, "n_orders must be at least 1"),
        ({"n_orders": -3}, "n_orders must be at least 1"),
        ({"n_orders": 4, "batch": 0}, "batch must be at least 1"),
        ({"n_orders": 4, "batch": -1}, "batch must be at least 1"),
        ({"n_orders": 4, "seed": -1}, "seed must be in 0..2147483647"),
        ({"n_orders": 4, "seed": 2**40}, "seed must be in 0..2147483647"),
        ({"n_orders": True}, "n_orders must be a whole number"),
        ({"n_orders": 2.5}, "n_orders must be a whole number"),
    ]:
        with pytest.raises(ValueError, match=msg):
            nulls.null_fits(x, t, k, **kwargs)
    with pytest.raises(ValueError, match="one set's activations"):
        nulls.null_fits(np.stack([x, x]), t, k, 4)


@pytest.mark.slow
def test_planted_structure_is_significant_and_a_random_target_is_not():
    import poz_jax as pj
    from poz_jax.data.synthetic import feature_similarity, planted_embeddings

    feats, x = planted_embeddings(60, 400, seed=0)
    human = feature_similarity(feats)

    k = np.arange(400, 0, -20)
    order = pj.keep_order(pj.poz(x))
    obs = np.asarray(sweep(x, human, k, order))
    null = nulls.null_fits(x, human, k, 200, seed=0)
    gain, p, _ = nulls.improvement_test(obs, null)
    assert gain > 0.05 and p < 0.01
    _, slope, p_trend, _ = nulls.trend_test(obs, null, 100 * k / 400)
    assert slope > 0 and p_trend < 0.01
    unrelated = _human(60, 9)
    obs_u = np.asarray(sweep(x, unrelated, k, order))
    _, p_u, _ = nulls.improvement_test(obs_u, nulls.null_fits(x, unrelated, k, 200, seed=0))
    assert p_u > 0.05


EIGHT_DEVICES = """
import jax, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
jax.config.update("jax_enable_x64", True)
import poz_jax as pj
from poz_jax.core.nulls import null_fits
from poz_jax.data.synthetic import synthetic_activations
assert len(jax.devices()) == 8
x = synthetic_activations(10, 60, seed=0, dtype=np.float64)
rng = np.random.default_rng(1)
t = rng.random((10, 10))
t = t + t.T
k = np.arange(60, 0, -7)
# 21 orders in batches of 10: batches of 10, 10, 1 padded to 16, 16, 8 over 8 devices.
one = null_fits(x, t, k, 21, seed=3, batch=10, devices=jax.devices()[:1])
eight = null_fits(x, t, k, 21, seed=3, batch=10)
# Batches of other sizes may sum in other orders: within the float64 bound.
from bounds import assert_within, sweep_bound
from poz_jax.core.nulls import random_orders
for i, o in enumerate(np.asarray(random_orders(3, 60, 0, 21))):
    assert_within(eight[i], one[i], 2 * sweep_bound(x, t, k, o, np.float64, fits=one[i]), "null")
print("null: 8 devices equal 1")
# The sweep's leading axis (sets, networks) sharded over the devices stays sharded.
xs = np.stack([synthetic_activations(10, 60, seed=s, dtype=np.float64) for s in range(8)])
order = np.stack([np.asarray(pj.keep_order(pj.poz(a))) for a in xs])
want = np.asarray(pj.sweep(xs, t, k, order))
mesh = Mesh(np.array(jax.devices()), ("sets",))
put = lambda a: jax.device_put(a, NamedSharding(mesh, P("sets")))
got = jax.jit(pj.sweep)(put(xs), t, k, put(order))
assert len(got.sharding.device_set) == 8, got.sharding
for s in range(8):
    bound = 2 * sweep_bound(xs[s], t, k, order[s], np.float64, fits=want[s])
    assert_within(np.asarray(got)[s], want[s], bound, "sharded sweep")
print("sweep: sharded over 8 devices equals 1")
"""


@pytest.mark.slow
def test_null_and_sweep_over_eight_devices_equal_one_device():
    out = run_on_host_devices(EIGHT_DEVICES)
    assert "null: 8 devices equal 1" in out
    assert "sweep: sharded over 8 devices equals 1" in out


TWO_PROCESSES = """
import os
import jax, numpy as np
jax.config.update("jax_enable_x64", True)
jax.distributed.initialize(
    coordinator_address=os.environ["POZ_COORDINATOR"],
    num_processes=int(os.environ["POZ_N_PROCESSES"]),
    process_id=int(os.environ["POZ_PROCESS_ID"]),
)
from poz_jax.core.nulls import null_fits
from poz_jax.data.synthetic import synthetic_activations
assert jax.process_count() == 2 and jax.device_count() == 4 and jax.local_device_count() == 2
x = synthetic_activations(10, 60, seed=0, dtype=np.float64)
rng = np.random.default_rng(1)
t = rng.random((10, 10))
t = t + t.T
# 13 orders in batches of 6: 6, 6, 1, padded to 8, 8, 4 over the 4 devices of 2 processes.
null = null_fits(x, t, np.arange(60, 0, -7), 13, seed=3, batch=6)
print(jax.process_index(), null.shape, null.tobytes().hex())
"""


@pytest.mark.slow
def test_null_over_two_processes_equals_one_process():
    outs = run_processes(TWO_PROCESSES, n_processes=2, n_devices=2)
    x = synthetic_activations(10, 60, seed=0, dtype=np.float64)
    r = np.random.default_rng(1)
    t = r.random((10, 10))
    t = t + t.T
    want = nulls.null_fits(x, t, np.arange(60, 0, -7), 13, seed=3, batch=6)
    for pid, out in enumerate(outs):
        line = [ln for ln in out.splitlines() if ln.startswith(f"{pid} ")][-1]
        got = np.frombuffer(bytes.fromhex(line.split()[-1]), np.float64).reshape(want.shape)
        # Every process returns the whole null, equal to one process's up to
        # the float64 rounding bound (their devices batch the orders otherwise).
        for i, o in enumerate(np.asarray(nulls.random_orders(3, 60, 0, 13))):
            bound = 2 * sweep_bound(x, t, np.arange(60, 0, -7), o, np.float64, fits=want[i])
            assert_within(got[i], want[i], bound, f"process {pid}, order {i}")


def test_null_band_is_the_quantiles_of_the_defined_draws():
    rng = np.random.default_rng(7)
    null = rng.random((200, 6))
    null[rng.random(null.shape) < 0.2] = np.nan
    null[:, 5] = np.nan  # a level where no draw is defined
    lo, hi = nulls.null_band(null)
    # Each quantile is one linear interpolation between two order statistics
    # in [0, 1]; NumPy's nan- and plain paths write it differently: a few ulps.
    tol = 4 * np.finfo(np.float64).eps
    for j in range(5):
        ok = null[~np.isnan(null[:, j]), j]
        assert abs(lo[j] - np.quantile(ok, 0.025)) <= tol
        assert abs(hi[j] - np.quantile(ok, 0.975)) <= tol
    assert np.isnan(lo[5]) and np.isnan(hi[5])
    lo90, _ = nulls.null_band(null, 0.9)
    assert abs(lo90[0] - np.quantile(null[~np.isnan(null[:, 0]), 0], 0.05)) <= tol
