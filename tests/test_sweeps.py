import jax
import numpy as np
import pytest
from bounds import assert_within, rsm_bound, sweep_bound
from conftest import ref_fit, ref_rsm, ref_rsm_fast, ref_sweep, sparse_acts
from hypothesis import given, settings
from hypothesis import strategies as st

import poz_jax as pj
from poz_jax.data.synthetic import synthetic_activations


def _setup(rng, n, d, n_target_features=6):
    x = sparse_acts(rng, n, d)
    order = np.argsort(np.mean(x == 0, axis=0), kind="stable")
    target = ref_rsm(rng.random((n, n_target_features)))
    return x, target, order


def _nested_masks(order, counts):
    masks = np.zeros((len(counts), len(order)), bool)
    for level, k in enumerate(counts):
        masks[level, order[:k]] = True
    return masks


def _assert_close_nan(got, want, bound):
    assert_within(got, want, bound, "sweep against its reference")


def _bound(x, target, counts, order, dtype=np.float64, fits=None):
    """Rounding bound of a ``dtype`` sweep against a float64 reference (both err)."""
    counts = np.asarray(counts)
    return sweep_bound(x, target, counts, order, dtype, fits=fits) + sweep_bound(
        x, target, counts, order, np.float64, fits=fits
    )


def _mask_bound(x, target, masks, dtype=np.float64):
    # A mask's RSM is the nested one of an order that puts its nodes first.
    out = []
    for m in masks:
        order = np.r_[np.flatnonzero(m), np.flatnonzero(~m)]
        out.append(_bound(x, target, [int(m.sum())], order, dtype)[0])
    return np.array(out)


def test_sweep_every_level_matches_reference(rng):
    x, target, order = _setup(rng, 10, 30)
    counts = np.arange(30, 0, -1)
    want = ref_sweep(x, target, counts, order)
    assert np.isnan(want[-1]) and np.isnan(want[-2])  # k = 1 and k = 2 are undefined
    bound = _bound(x, target, counts, order, fits=want)
    _assert_close_nan(pj.sweep(x, target, counts, order), want, bound)
    _assert_close_nan(pj.sweep_masks(x, target, _nested_masks(order, counts)), want, bound)


def test_fast_reference_equals_pearsonr_loop(rng):
    x = sparse_acts(rng, 12, 40)
    for k in (40, 9, 3, 1):
        # Two float64 references: each within the float64 RSM bound.
        bound = 2 * rsm_bound(x[:, :k], np.float64, exact=ref_rsm(x[:, :k]))
        _assert_close_nan(ref_rsm_fast(x[:, :k]), ref_rsm(x[:, :k]), bound)


def _ref_sweep_fast(x, target, counts, order):
    return np.array([ref_fit(ref_rsm_fast(x[:, order[:k]]), target) for k in counts])


def test_sweep_float32_realistic_sizes(rng):
    x, target, order = _setup(rng, 40, 300)
    counts = pj.keep_grid(300, step=20)
    want = _ref_sweep_fast(x, target, counts, order)
    got = pj.sweep(x.astype(np.float32), target.astype(np.float32), counts, order)
    assert got.dtype == np.float32
    bound = _bound(x, target, counts, order, np.float32, fits=want)
    _assert_close_nan(got, want, bound)
    got_m = pj.sweep_masks(
        x.astype(np.float32), target.astype(np.float32), _nested_masks(order, counts)
    )
    _assert_close_nan(got_m, want, bound)


def test_sweep_fc7_like_layer_float32(rng):
    # 120 items, 1024 nodes, mostly silent: the float32 path at Experiment 2's item count.
    x = np.asarray(synthetic_activations(120, 1024, seed=3), np.float64)
    order = np.asarray(pj.keep_order(pj.poz(x)))
    counts = np.array([1024, 700, 300, 100, 40, 16])
    base = ref_rsm_fast(x)
    want = _ref_sweep_fast(x, base, counts, order)
    got = pj.sweep(x.astype(np.float32), base.astype(np.float32), counts, order)
    _assert_close_nan(got, want, _bound(x, base, counts, order, np.float32, fits=want))


def test_sweep_rsms_match_reference(rng):
    x, _, order = _setup(rng, 8, 20)
    counts = np.array([20, 13, 7, 3, 1])
    got = np.asarray(pj.sweep_rsms(x, counts, order))
    assert got.shape == (5, 8, 8)
    for level, k in enumerate(counts):
        want = ref_rsm(x[:, order[:k]])
        bound = 2 * rsm_bound(x, np.float64, [k], order, exact=want[None])[0]
        _assert_close_nan(got[level], want, bound)


def test_sweep_masks_arbitrary_masks(rng):
    x, target, _ = _setup(rng, 9, 25)
    masks = rng.random((12, 25)) < 0.5
    masks[0] = True
    masks[1] = False
    masks[1, [3, 4]] = True
    want = [ref_fit(ref_rsm(x[:, m]), target) for m in masks]
    _assert_close_nan(pj.sweep_masks(x, target, masks), want, _mask_bound(x, target, masks))


def test_sweep_unsorted_and_repeated_counts(rng):
    x, target, order = _setup(rng, 7, 18)
    counts = np.array([5, 18, 5, 11, 3])
    want = ref_sweep(x, target, counts, order)
    _assert_close_nan(pj.sweep(x, target, counts, order), want, _bound(x, target, counts, order))


def test_all_zero_row_gives_nan_not_zero_or_one(rng):
    n, d = 8, 12
    x = rng.random((n, d)) + 0.1
    x[3, 4:] = 0.0  # item 3 only fires on nodes 0..3
    order = np.r_[np.arange(4, d), np.arange(4)]  # keep nodes 4.. first
    target = ref_rsm(rng.random((n, 5)))
    got = np.asarray(pj.sweep(x, target, [d, 8, 4], order))
    assert not np.isnan(got[0]) and np.isnan(got[1]) and np.isnan(got[2])
    rsms = np.asarray(pj.sweep_rsms(x, [8], order))[0]
    assert np.all(np.isnan(rsms[3])) and not np.any(np.isnan(np.delete(rsms, 3, 0)[:, [0, 1]]))


def test_k_equal_one_is_nan_everywhere(rng):
    x, target, order = _setup(rng, 6, 10)
    assert np.all(np.isnan(pj.sweep_rsms(x, [1], order)))
    assert np.isnan(pj.sweep(x, target, [1], order)[0])


def test_nan_in_target_gives_nan_fits(rng):
    x, target, order = _setup(rng, 6, 10)
    target[0, 4] = target[4, 0] = np.nan
    assert np.all(np.isnan(pj.sweep(x, target, [10, 5], order)))


def test_ties_follow_the_given_order(rng):
    # All nodes share one PoZ; keep_order must then keep nodes by index.
    x = rng.random((7, 9)) + 0.1
    order = np.asarray(pj.keep_order(pj.poz(x)))
    np.testing.assert_array_equal(order, np.arange(9))
    target = ref_rsm(rng.random((7, 4)))
    want = ref_sweep(x, target, [9, 6, 3], order)
    got = pj.sweep(x, target, [9, 6, 3], order)
    _assert_close_nan(got, want, _bound(x, target, [9, 6, 3], order))


def test_vmap_and_jit_equal_unbatched(rng):
    xs = np.stack([sparse_acts(rng, 10, 21) for _ in range(4)])
    orders = np.stack([np.asarray(pj.keep_order(pj.poz(x))) for x in xs])
    targets = np.asarray(pj.rsm(xs))
    counts = np.arange(21, 0, -1)
    one_by_one = np.stack([pj.sweep(xs[s], targets[s], counts, orders[s]) for s in range(4)])
    batched = pj.sweep(xs, targets, counts, orders)
    vmapped = jax.jit(jax.vmap(lambda x, t, o: pj.sweep(x, t, counts, o)))(xs, targets, orders)
    # Batched and one-by-one sum in other orders: each within the float64 bound.
    bound = np.stack([_bound(xs[s], targets[s], counts, orders[s]) for s in range(4)])
    for got in (batched, vmapped):
        _assert_close_nan(got, one_by_one, bound)
    jit_counts = jax.jit(pj.sweep)(xs, targets, counts, orders)
    _assert_close_nan(jit_counts, one_by_one, bound)
    rsms = jax.jit(jax.vmap(lambda x, o: pj.sweep_rsms(x, counts, o)))(xs, orders)
    assert rsms.shape == (4, 21, 10, 10)


def test_shared_target_broadcasts_over_batch(rng):
    xs = np.stack([sparse_acts(rng, 8, 15) for _ in range(3)])
    orders = np.stack([np.asarray(pj.keep_order(pj.poz(x))) for x in xs])
    target = ref_rsm(rng.random((8, 4)))
    got = pj.sweep(xs, target, [15, 7], orders)
    assert got.shape == (3, 2)
    want = np.stack([ref_sweep(xs[s], target, [15, 7], orders[s]) for s in range(3)])
    bound = np.stack([_bound(xs[s], target, [15, 7], orders[s]) for s in range(3)])
    _assert_close_nan(got, want, bound)


# A few shapes, many values: every new shape compiles the kernels again (seconds
# each), while the values are what the property is about.
SHAPES = [(3, 1), (3, 2), (5, 7), (8, 16)]


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), shape=st.sampled_from(SHAPES))
def test_sweep_property(seed, shape):
    n, d = shape
    rng = np.random.default_rng(seed)
    x, target, order = _setup(rng, n, d)
    counts = np.arange(d, 0, -1)
    want = ref_sweep(x, target, counts, order)
    bound = _bound(x, target, counts, order, fits=want)
    _assert_close_nan(pj.sweep(x, target, counts, order), want, bound)
    _assert_close_nan(pj.sweep_masks(x, target, _nested_masks(order, counts)), want, bound)
    got32 = pj.sweep(x.astype(np.float32), target.astype(np.float32), counts, order)
    _assert_close_nan(got32, want, _bound(x, target, counts, order, np.float32, fits=want))


class TestErrors:
    def setup_method(self):
        rng = np.random.default_rng(0)
        self.x, self.target, self.order = _setup(rng, 6, 10)

    def test_wrong_rank(self):
        with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., n_items, n_nodes\)"):
            pj.sweep(self.x[0], self.target, [5], self.order)

    def test_item_mismatch(self):
        with pytest.raises(ValueError, match="x has 6 items but target is 5 x 5"):
            pj.sweep(self.x, self.target[:5, :5], [5], self.order)

    def test_keep_count_out_of_range(self):
        with pytest.raises(ValueError, match=r"keep_counts must lie in 1\.\.10"):
            pj.sweep(self.x, self.target, [11], self.order)
        with pytest.raises(ValueError, match=r"keep_counts must lie in 1\.\.10"):
            pj.sweep_rsms(self.x, [0, 4], self.order)
        with pytest.raises(ValueError, match="non-empty 1-D"):
            pj.sweep(self.x, self.target, [], self.order)

    def test_target_not_square_or_symmetric(self):
        with pytest.raises(ValueError, match="target must be square"):
            pj.sweep(self.x, self.target[:, :5], [5], self.order)
        bad = self.target.copy()
        bad[0, 1] += 0.1
        with pytest.raises(ValueError, match="target must be symmetric"):
            pj.sweep(self.x, bad, [5], self.order)

    def test_nan_in_activations(self):
        x = self.x.copy()
        x[2, 3] = np.nan
        with pytest.raises(ValueError, match="x holds 1 NaN"):
            pj.sweep(x, self.target, [5], self.order)
        with pytest.raises(ValueError, match="x holds 1 NaN"):
            pj.sweep_masks(x, self.target, np.ones((1, 10), bool))

    def test_bad_order(self):
        with pytest.raises(ValueError, match="permutation"):
            pj.sweep(self.x, self.target, [5], np.zeros(10, int))

    def test_bad_masks(self):
        with pytest.raises(ValueError, match=r"masks must have shape \(n_levels, 10\)"):
            pj.sweep_masks(self.x, self.target, np.ones((2, 9), bool))
        with pytest.raises(ValueError, match="masks must be boolean"):
            pj.sweep_masks(self.x, self.target, np.ones((2, 10)))
        empty = np.ones((3, 10), bool)
        empty[1] = False
        with pytest.raises(ValueError, match=r"masks rows \[1\] keep no node"):
            pj.sweep_masks(self.x, self.target, empty)


def test_sweep_against_a_ratings_target_with_any_diagonal(rng):
    # Human matrices are not RSMs: ratings on any scale, any diagonal. A fit
    # must use the upper triangle only and one scale for all of it.
    x = sparse_acts(rng, 12, 40)
    order = np.argsort(np.mean(x == 0, axis=0), kind="stable")
    ratings = rng.uniform(0, 10, (12, 12))
    ratings = ratings + ratings.T
    np.fill_diagonal(ratings, rng.uniform(-50, 50, 12))
    counts = np.arange(40, 0, -3)
    want = ref_sweep(x, ratings, counts, order)
    bound = _bound(x, ratings, counts, order, fits=want)
    _assert_close_nan(pj.sweep(x, ratings, counts, order), want, bound)
    _assert_close_nan(pj.sweep(x, 1e19 * ratings, counts, order), want, bound)


def test_many_items_path_gives_the_same_fits(rng, monkeypatch):
    # Above kernels._LARGE bytes per n x n matrix the fit recomputes r^2 in each
    # reduction to save memory; force that path on small data and compare.
    from poz_jax.core import kernels

    x = sparse_acts(rng, 9, 23)
    order = np.argsort(np.mean(x == 0, axis=0), kind="stable")
    target = ref_rsm(rng.random((9, 4)))
    counts = np.arange(23, 0, -2)
    want = ref_sweep(x, target, counts, order)
    # Count how often the traced fit builds the RSM: once on the few-items
    # path, once per reduction (five) on the many-items one.
    calls = []
    real = kernels.rsm_from_moments

    def counting(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(kernels, "rsm_from_moments", counting)
    jax.clear_caches()
    try:
        pj.sweep(x, target, counts, order)
        few = len(calls)
        monkeypatch.setattr(kernels, "_LARGE", 0)
        jax.clear_caches()
        got = pj.sweep(x, target, counts, order)
        many = len(calls) - few
        _assert_close_nan(got, want, _bound(x, target, counts, order, fits=want))
    finally:
        jax.clear_caches()
    assert few == 1 and many == 5, (few, many)  # the many-items path ran


@pytest.mark.parametrize("scale", [1e-37, 1e-30, 1e-10, 1e10, 1e30, 1e37])
def test_float32_fits_do_not_depend_on_the_target_scale(rng, scale):
    # Fits are scale-invariant; a float32 target at the ends of float32's range
    # must give the float64 reference's fit (once flushed subnormals and
    # overflowing products gave 0.1724 for 0.1907, or NaN).
    x, target, order = _setup(rng, 12, 40)
    x32 = x.astype(np.float32)
    t32 = (target / np.abs(target).max() * np.float32(scale)).astype(np.float32)
    assert np.isfinite(t32).all() and np.abs(t32).max() > 0
    counts = [40, 20, 8]
    want = ref_sweep(x32.astype(np.float64), t32.astype(np.float64), counts, order)
    bound = _bound(x32, t32.astype(np.float64), counts, order, np.float32, fits=want)
    _assert_close_nan(pj.sweep(x32, t32, counts, order), want, bound)
    rsm32 = np.asarray(pj.rsm(x32))
    full = ref_fit(rsm32.astype(np.float64), t32.astype(np.float64))
    assert abs(float(pj.fit(rsm32, t32)) - full) <= bound[0], (scale, float(pj.fit(rsm32, t32)))


def test_a_float64_target_far_below_float32_range_is_fitted_in_float32(rng):
    x, target, order = _setup(rng, 12, 40)
    x32 = x.astype(np.float32)
    # 2**-1000 (about 1e-301) is 0 in float32; a power of two rescales exactly.
    got = np.asarray(pj.sweep(x32, target * 2.0**-1000, [40, 8], order))
    ref = np.asarray(pj.sweep(x32, target, [40, 8], order))
    np.testing.assert_array_equal(got, ref)


def test_analyse_under_jit_says_what_to_use_instead(rng):
    x, target, _ = _setup(rng, 8, 20)
    with pytest.raises(TypeError, match="cannot run under jax.jit.*use poz, keep_order and sweep"):
        jax.jit(lambda a: pj.analyse(a, target, [20, 5]).fit)(x)


def test_analyse_warns_when_poz_orders_nothing_or_no_fit_is_defined(rng):
    x, target, _ = _setup(rng, 8, 20)
    dense = rng.normal(size=(8, 20))  # features before a ReLU: no exact zeros
    with pytest.warns(UserWarning, match="every node's PoZ is 0 .* node-index order"):
        res = pj.analyse(dense, target, [20, 5])
    np.testing.assert_array_equal(res.order, np.arange(20))
    with pytest.warns(UserWarning, match="every fit is NaN .* off-diagonal values are all equal"):
        pj.analyse(x, np.ones((8, 8)), [20, 5])
    silent = x.copy()
    silent[2] = 0
    with pytest.warns(UserWarning, match="every fit is NaN .* an item is silent"):
        assert np.isnan(pj.analyse(silent, target, [20, 5]).fit).all()


def test_half_precision_rsm_and_out_of_range_poz(rng):
    x = np.abs(rng.normal(size=(6, 10)))
    got = pj.rsm(x.astype(np.float16))
    assert got.dtype == np.float32  # as every sweep: float16 sums keep 3 digits
    x16 = x.astype(np.float16).astype(np.float64)  # the input as given, exactly
    want = ref_rsm(x16)
    assert_within(got, want, rsm_bound(x16, np.float32, exact=want), "float16 rsm in float32")
    order = np.arange(3)
    for bad in ([0.5, 1.5, 0.2], [0.5, np.nan, 0.2], [50.0, 20.0, 0.0]):
        with pytest.raises(ValueError, match=r"fractions in \[0, 1\] \(not percentages\); \d"):
            pj.max_kept_poz(np.array(bad), [3, 1], order)
