"""The one cache: a hit returns exactly the fresh product; any change to the key recomputes."""

from __future__ import annotations

import numpy as np
import pytest

from poz_jax.io import cache, files


def _product(rng):
    return {"fit": rng.normal(size=(3, 5)), "order": np.arange(5, dtype=np.int32), "n": 7}


def test_a_hit_returns_the_fresh_product_bit_for_bit_without_computing(tmp_path, rng):
    x = rng.normal(size=(4, 6)).astype(np.float32)
    key = cache.product_key({"activations": x, "weights": "ab12"}, n_null=3, methods=("a", "b"))
    assert key["weights"] == "ab12" and key["methods"] == ["a", "b"]
    assert key["activations"] == files.fingerprint(x)
    want = _product(rng)
    calls = []

    def compute():
        calls.append(1)
        return want

    fresh = cache.cached(tmp_path / "p.npz", key, compute)
    hits = []
    again = cache.cached(tmp_path / "p.npz", key, compute, on_hit=lambda: hits.append(1))
    assert calls == [1] and hits == [1]
    assert fresh.keys() == again.keys() == want.keys()
    for name in want:
        assert fresh[name].dtype == again[name].dtype == np.asarray(want[name]).dtype
        np.testing.assert_array_equal(fresh[name], want[name])
        np.testing.assert_array_equal(again[name], want[name])


@pytest.mark.parametrize("change", ["array", "setting", "new entry"])
def test_a_changed_key_recomputes_and_says_why(tmp_path, rng, capsys, change):
    x = rng.normal(size=(4, 6))
    key = cache.product_key({"activations": x}, seed=0)
    cache.cached(tmp_path / "null_a.npz", key, lambda: {"v": np.zeros(2)})
    if change == "array":
        y = x.copy()
        y[0, 0] = np.nextafter(y[0, 0], np.inf)  # one ulp
        new, what = cache.product_key({"activations": y}, seed=0), "activations"
    elif change == "setting":
        new, what = cache.product_key({"activations": x}, seed=1), "seed"
    else:
        new, what = cache.product_key({"activations": x}, seed=0, n_null=5), "n_null"
    got = cache.cached(tmp_path / "null_a.npz", new, lambda: {"v": np.ones(2)})
    np.testing.assert_array_equal(got["v"], np.ones(2))
    said = capsys.readouterr()
    assert f"recomputing null_a.npz: its {what} changed" in said.out + said.err
    # ... and the new product is what a third call gets.
    again = cache.cached(tmp_path / "null_a.npz", new, lambda: pytest.fail("recomputed"))
    np.testing.assert_array_equal(again["v"], np.ones(2))


def test_an_unreadable_product_is_recomputed(tmp_path, capsys):
    (tmp_path / "p.npz").write_bytes(b"not a zip file")
    got = cache.cached(tmp_path / "p.npz", {"seed": 0}, lambda: {"v": np.arange(3)})
    np.testing.assert_array_equal(got["v"], np.arange(3))
    said = capsys.readouterr()
    assert "recomputing p.npz: it is unreadable" in said.out + said.err


def test_a_product_may_not_shadow_the_key(tmp_path):
    with pytest.raises(ValueError, match="__meta__"):
        cache.cached(tmp_path / "p.npz", {}, lambda: {"__meta__": np.zeros(1)})
    assert not (tmp_path / "p.npz").exists()


def test_every_null_is_keyed_by_what_it_is_computed_from_and_nothing_else(tmp_path, rng):
    from poz_jax.analysis.networks import network_nulls, null_key

    acts = rng.standard_normal((2, 12, 5))
    human = np.corrcoef(rng.standard_normal((12, 4)))
    base = null_key(acts, human, [5, 4, 3, 2, 1], 7, 0, "float64")
    assert base == null_key(acts.copy(), human.copy(), np.arange(5, 0, -1), 7, 0, "float64")
    for changed in (
        null_key(acts + 1e-12, human, [5, 4, 3, 2, 1], 7, 0, "float64"),
        null_key(acts, human.T * 0.5, [5, 4, 3, 2, 1], 7, 0, "float64"),
        null_key(acts, human, [5, 3, 1], 7, 0, "float64"),
        null_key(acts, human, [5, 4, 3, 2, 1], 8, 0, "float64"),
        null_key(acts, human, [5, 4, 3, 2, 1], 7, 1, "float64"),
        null_key(acts, human, [5, 4, 3, 2, 1], 7, 0, "float32"),
    ):
        assert changed != base

    class Bar:
        n = 0

        def update(self, k):
            self.n += k

    bar = Bar()
    first = network_nulls(tmp_path, "x", acts, human, 7, 0, "float64", bar)
    again = network_nulls(tmp_path, "x", acts, human, 7, 0, "float64", bar)
    assert first.shape == (2, 7, 5) and bar.n == 4  # one update per network, hit or miss
    np.testing.assert_array_equal(first, again)
    assert files.load_meta(tmp_path / "null_x.npz")["key"] == base


def test_a_scratch_folder_is_resumed_under_its_key_only_and_gone_once_stored(tmp_path, capsys):
    scratch = tmp_path / "work"
    seen = []

    def interrupted():
        (scratch / "checkpoint.npz").write_bytes(b"epoch 1")
        raise KeyboardInterrupt

    def resume():
        seen.append((scratch / "checkpoint.npz").exists())
        return {"a": np.arange(3)}

    with pytest.raises(KeyboardInterrupt):
        cache.cached(tmp_path / "p.npz", {"lr": 0.1}, interrupted, scratch=scratch)
    # The same key finds its checkpoint; another key starts from nothing and says why.
    cache.cached(tmp_path / "q.npz", {"lr": 0.1}, resume, scratch=scratch)
    assert seen == [True] and not scratch.exists()  # stored: the scratch is spent
    with pytest.raises(KeyboardInterrupt):
        cache.cached(tmp_path / "p.npz", {"lr": 0.1}, interrupted, scratch=scratch)
    capsys.readouterr()
    got = cache.cached(tmp_path / "p.npz", {"lr": 0.2}, resume, scratch=scratch)
    assert seen == [True, False] and not scratch.exists()
    assert "restarting work: its lr changed" in capsys.readouterr().out
    np.testing.assert_array_equal(got["a"], np.arange(3))
