import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import sparse_acts

import poz_jax as pj


def test_poz_matches_numpy(rng):
    x = sparse_acts(rng, 37, 53)
    np.testing.assert_allclose(pj.poz(x), np.mean(x == 0, axis=0), rtol=0, atol=1e-15)


def test_poz_batched_and_dtypes(rng):
    x = np.stack([sparse_acts(rng, 11, 9) for _ in range(3)])
    out = pj.poz(x.astype(np.float32))
    assert out.shape == (3, 9) and out.dtype == jnp.float32
    np.testing.assert_allclose(out, np.mean(x == 0, axis=1), atol=1e-7)
    assert pj.poz(x).dtype == jnp.float64


def test_streamed_apoz_is_the_share_of_zeros_over_images_and_positions(rng):
    from poz_jax.core.ranking import streamed_apoz, zero_counts

    # 13 "images" of a 5 x 4 map with 6 channels and a dense layer of 9 nodes.
    maps = sparse_acts(rng, 13 * 20, 6).reshape(13, 5, 4, 6)
    dense = sparse_acts(rng, 13, 9)
    want = {"conv": np.mean(maps == 0, axis=(0, 1, 2)), "fc": np.mean(dense == 0, axis=0)}
    jm, jd = jnp.asarray(maps), jnp.asarray(dense)
    count = jax.jit(lambda i: {"conv": zero_counts(jm[i]), "fc": zero_counts(jd[i])})
    for batch in (1, 4, 13, 50):
        got = streamed_apoz(count, np.arange(13), batch, {"conv": 20, "fc": 1})
        assert got.keys() == want.keys()
        for k in want:
            # Counts over counts: exact up to the one division's rounding.
            np.testing.assert_allclose(got[k], want[k], rtol=2**-52, atol=0, err_msg=k)
    assert zero_counts(jnp.asarray(maps)).dtype == jnp.int32


def test_keep_order_is_stable_ascending(rng):
    x = sparse_acts(rng, 20, 40)
    p = np.mean(x == 0, axis=0)
    assert len(np.unique(p)) < 40  # the generator makes ties
    np.testing.assert_array_equal(pj.keep_order(p), np.argsort(p, kind="stable"))


def test_keep_order_batched_under_vmap_and_jit(rng):
    p = rng.integers(0, 4, size=(5, 30)) / 4.0
    expected = np.argsort(p, axis=-1, kind="stable")
    np.testing.assert_array_equal(pj.keep_order(p), expected)
    np.testing.assert_array_equal(jax.jit(jax.vmap(pj.keep_order))(p), expected)


def test_max_kept_poz_matches_loop(rng):
    p = rng.integers(0, 10, size=(4, 25)) / 10.0
    order = np.argsort(p, axis=-1, kind="stable")
    counts = np.array([25, 17, 3, 1, 9])
    expected = np.array([[p[s, order[s, :k]].max() for k in counts] for s in range(4)])
    np.testing.assert_allclose(pj.max_kept_poz(p, counts, order), expected, atol=0)
    jitted = jax.jit(pj.max_kept_poz)(p, counts, order)
    np.testing.assert_allclose(jitted, expected, atol=0)


def test_max_kept_poz_any_order(rng):
    p = rng.random(12)
    order = rng.permutation(12)
    expected = [p[order[:k]].max() for k in range(1, 13)]
    np.testing.assert_allclose(pj.max_kept_poz(p, np.arange(1, 13), order), expected)


def test_keep_grid_paper_fractions():
    # The authors' int(84 * p) over np.arange(1.0, 0, -0.1), rounding included.
    expected = [int(84 * p) for p in np.arange(1.0, 0, -0.1)]
    assert pj.keep_grid(84).tolist() == expected == [84, 75, 67, 58, 50, 42, 33, 25, 16, 8]


def test_keep_grid_step_and_fractions():
    g = pj.keep_grid(4096, step=20)
    assert len(g) == 205 and g[0] == 4096 and g[-1] == 16 and np.all(np.diff(g) == -20)
    assert pj.keep_grid(5, step=1).tolist() == [5, 4, 3, 2, 1]
    assert pj.keep_grid(10, fractions=[1.0, 0.55]).tolist() == [10, 5]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_nodes": 0}, "n_nodes must be at least 1"),
        ({"n_nodes": None}, "n_nodes must be a whole number, got None"),
        ({"n_nodes": True}, "n_nodes must be a whole number, got True"),
        ({"n_nodes": 10, "step": 0}, "step must be at least 1"),
        ({"n_nodes": 10, "fractions": ["a"]}, "fractions must be a 1-D sequence of numbers"),
        ({"n_nodes": 10, "fractions": [np.nan]}, r"fractions must be .* in \(0, 1\]"),
        ({"n_nodes": 10, "fractions": [1.5]}, r"fractions must be .* in \(0, 1\]"),
        ({"n_nodes": 10, "fractions": [0.05]}, "keep no node"),
        ({"n_nodes": 10, "fractions": [0.5], "step": 2}, "either fractions or step"),
    ],
)
def test_keep_grid_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        pj.keep_grid(**kwargs)


def test_poz_errors():
    with pytest.raises(ValueError, match=r"acts must have shape \(\.\.\., n_items, n_nodes\)"):
        pj.poz(np.zeros(5))
    with pytest.raises(ValueError, match="NaN or infinite"):
        pj.poz(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="no items"):
        pj.poz(np.zeros((0, 3)))


def test_max_kept_poz_errors():
    p = np.linspace(0, 1, 6)
    order = np.arange(6)
    with pytest.raises(ValueError, match=r"keep_counts must lie in 1\.\.6"):
        pj.max_kept_poz(p, [0, 3], order)
    with pytest.raises(ValueError, match=r"keep_counts must lie in 1\.\.6"):
        pj.max_kept_poz(p, [7], order)
    with pytest.raises(ValueError, match="permutation"):
        pj.max_kept_poz(p, [3], np.zeros(6, int))
    with pytest.raises(ValueError, match=r"order must have shape \(\.\.\., 6\)"):
        pj.max_kept_poz(p, [3], np.arange(5))
