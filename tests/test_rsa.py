import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bounds import assert_within, fit_bound, rsm_bound
from conftest import ref_fit, ref_rsm, sparse_acts
from hypothesis import given, settings
from hypothesis import strategies as st

import poz_jax as pj


def test_rsm_matches_pearsonr_loop(rng):
    x = sparse_acts(rng, 15, 40)
    x = x[np.any(x != x[:, :1], axis=1)]
    want = ref_rsm(x)
    # poz-jax and the reference each within their rounding bound (tests/bounds.py).
    ref_err = rsm_bound(x, np.float64, exact=want)
    assert_within(pj.rsm(x), want, rsm_bound(x, np.float64, exact=want) + ref_err, "float64")
    got32 = pj.rsm(x.astype(np.float32))
    assert_within(got32, want, rsm_bound(x, np.float32, exact=want) + ref_err, "float32")


def test_rsm_constant_row_is_nan(rng):
    x = rng.random((6, 9))
    x[2] = 0.0
    x[4] = 3.5
    out = np.asarray(pj.rsm(x))
    assert np.all(np.isnan(out[[2, 4], :])) and np.all(np.isnan(out[:, [2, 4]]))
    keep = [0, 1, 3, 5]
    np.testing.assert_allclose(out[np.ix_(keep, keep)], ref_rsm(x[keep]), atol=1e-12)


def test_rsm_batched_shape_and_vmap(rng):
    x = rng.random((3, 2, 7, 11))
    out = pj.rsm(x)
    assert out.shape == (3, 2, 7, 7)
    np.testing.assert_allclose(out[1, 0], ref_rsm(x[1, 0]), atol=1e-12)
    np.testing.assert_allclose(jax.jit(jax.vmap(pj.rsm))(x), out, atol=1e-14)


def test_fit_matches_pearsonr(rng):
    a = np.asarray(pj.rsm(rng.random((12, 6))))
    b = np.asarray(pj.rsm(rng.random((12, 6))))
    want = ref_fit(a, b)
    ref_err = fit_bound(a, b, np.float64, fit_value=want)
    assert abs(pj.fit(a, b) - want) <= fit_bound(a, b, np.float64, fit_value=want) + ref_err
    got32 = pj.fit(a.astype(np.float32), b.astype(np.float32))
    assert abs(got32 - want) <= fit_bound(a, b, np.float32, fit_value=want) + ref_err


def test_fit_broadcasts(rng):
    stack = np.asarray(pj.rsm(rng.random((4, 9, 5))))
    target = np.asarray(pj.rsm(rng.random((9, 5))))
    out = pj.fit(stack, target)
    assert out.shape == (4,)
    np.testing.assert_allclose(out, [ref_fit(s, target) for s in stack], atol=1e-12)


def test_fit_nan_and_constant_triangles(rng):
    a = np.asarray(pj.rsm(rng.random((6, 5))))
    b = a.copy()
    b[1, 3] = b[3, 1] = np.nan
    assert np.isnan(pj.fit(a, b)) and np.isnan(pj.fit(b, a))
    assert np.isnan(pj.fit(a, np.ones((6, 6))))
    # A NaN on the diagonal is outside the strict upper triangle and is ignored.
    c = a.copy()
    c[0, 0] = np.nan
    np.testing.assert_allclose(pj.fit(a, c), 1.0, atol=1e-12)


def test_fit_errors(rng):
    a = np.asarray(pj.rsm(rng.random((6, 5))))
    with pytest.raises(ValueError, match="rsm_b must be square"):
        pj.fit(a, np.ones((6, 5)))
    with pytest.raises(ValueError, match="6 items but rsm_b is 5 x 5"):
        pj.fit(a, np.eye(5))
    asym = a.copy()
    asym[0, 1] += 0.5
    with pytest.raises(ValueError, match="rsm_a must be symmetric"):
        pj.fit(asym, a)
    with pytest.raises(ValueError, match="at least 3 items"):
        pj.fit(np.eye(2), np.eye(2))


def test_class_means_matches_loop(rng):
    x = sparse_acts(rng, 50, 7)
    labels = rng.integers(0, 4, size=50)
    expected = np.stack([x[labels == c].mean(0) for c in range(4)])
    np.testing.assert_allclose(pj.class_means(x, labels, 4), expected, atol=1e-12)


def test_class_means_batched_and_empty_class(rng):
    x = rng.random((3, 20, 5))
    labels = rng.integers(0, 2, size=20)
    out = np.asarray(pj.class_means(x, labels, 3))
    assert out.shape == (3, 3, 5)
    np.testing.assert_allclose(out[2, 1], x[2][labels == 1].mean(0), atol=1e-12)
    assert np.all(np.isnan(out[:, 2]))
    vm = jax.vmap(lambda a: pj.class_means(a, labels, 3))(x)
    np.testing.assert_allclose(vm, out, atol=1e-14)


def test_class_means_errors(rng):
    x = rng.random((10, 4))
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.2"):
        pj.class_means(x, np.arange(10) % 4, 3)
    with pytest.raises(ValueError, match=r"labels must have shape \(\.\.\., 10\)"):
        pj.class_means(x, np.zeros(9, int), 3)
    with pytest.raises(ValueError, match="labels must be integers"):
        pj.class_means(x, np.zeros(10), 3)


def test_rsm_errors():
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., n_items, n_features\)"):
        pj.rsm(np.ones(4))
    with pytest.raises(ValueError, match="NaN or infinite"):
        pj.rsm(np.array([[1.0, 2.0, np.inf], [1.0, 0.0, 2.0]]))


def test_rsm_integer_input_is_promoted(rng):
    x = rng.integers(0, 5, size=(5, 30)).astype(np.uint8)
    out = pj.rsm(x)
    assert jnp.issubdtype(out.dtype, jnp.floating)
    np.testing.assert_allclose(out, ref_rsm(x.astype(float)), atol=1e-6)


@pytest.mark.slow
@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(3, 9), d=st.integers(2, 12))
def test_rsm_and_fit_property(seed, n, d):
    rng = np.random.default_rng(seed)
    x = sparse_acts(rng, n, d)
    y = sparse_acts(rng, n, d)
    rx, ry = ref_rsm(x), ref_rsm(y)
    assert_within(pj.rsm(x), rx, 2 * rsm_bound(x, np.float64, exact=rx), "rsm")
    got, want = float(pj.fit(rx, ry)), ref_fit(rx, ry)
    assert np.isnan(got) == np.isnan(want)
    if not np.isnan(want):
        assert abs(got - want) <= 2 * fit_bound(rx, ry, np.float64, fit_value=want)
