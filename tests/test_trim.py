"""Trimming LeNet5: masks, batched accuracy, physical trimming, sizes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from poz_jax.data.cifar10 import cifar_scale
from poz_jax.models import LeNet5
from poz_jax.models.lenet import LAYERS
from poz_jax.models.trim import keep_masks, l1_scores, physical_trim, size, trimmed_accuracy
from poz_jax.runtime import float64


def _stack(n, seed):
    keys = jax.random.split(jax.random.PRNGKey(seed), n)
    return jax.vmap(lambda k: LeNet5().init(k, jnp.zeros((1, 32, 32, 3)))["params"])(keys)


def test_keep_masks_keep_the_lowest_scores_with_ties_by_index(rng):
    scores = rng.integers(0, 4, size=(3, 9)).astype(np.float64)  # many ties
    got = np.asarray(keep_masks(scores, [9, 5, 1]))
    assert got.shape == (3, 3, 9)
    for s in range(3):
        order = sorted(range(9), key=lambda j: (scores[s, j], j))
        for i, k in enumerate((9, 5, 1)):
            want = np.zeros(9)
            want[order[:k]] = 1
            np.testing.assert_array_equal(got[s, i], want)


def test_l1_scores_are_each_nodes_incoming_weight_norms(rng):
    params = _stack(2, int(rng.integers(1 << 30)))
    got = l1_scores(params)
    k = np.asarray(params["conv2"]["kernel"], np.float64)
    np.testing.assert_allclose(got["conv2"], np.abs(k).sum((1, 2, 3)), rtol=1e-6)
    k = np.asarray(params["fc1"]["kernel"], np.float64)
    np.testing.assert_allclose(got["fc1"], np.abs(k).sum(1), rtol=1e-6)
    assert {n: got[n].shape for n in LAYERS} == {n: (2, d) for n, d in LAYERS.items()}


def test_batched_accuracy_equals_each_masked_network_alone(rng):
    params = _stack(2, int(rng.integers(1 << 30)))
    images = rng.integers(0, 256, size=(9, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=9)
    masks = {
        "conv2": rng.integers(0, 2, size=(2, 3, 16)).astype(np.float32),
        "fc1": rng.integers(0, 2, size=(2, 3, 120)).astype(np.float32),
    }
    got = trimmed_accuracy(params, masks, images, labels, batch=4)
    assert got.shape == (2, 3)
    x = cifar_scale(jnp.asarray(images))
    for s in range(2):
        one = jax.tree_util.tree_map(lambda a, s=s: a[s], params)
        for m in range(3):
            mask = {k: v[s, m] for k, v in masks.items()}
            logits, _ = LeNet5().apply({"params": one}, x, mask)
            assert got[s, m] == pytest.approx(np.mean(np.argmax(logits, -1) == labels))
    with pytest.raises(ValueError, match="labels must be"):
        trimmed_accuracy(params, masks, images, labels[:3])


def test_the_physically_trimmed_network_computes_the_masked_one(rng):
    params = _stack(1, int(rng.integers(1 << 30)))
    one = jax.tree_util.tree_map(lambda a: np.asarray(a[0], np.float64), params)
    masks = {}
    for name, n in LAYERS.items():
        m = (rng.random(n) < 0.6).astype(np.float64)
        m[rng.integers(n)] = 1.0
        masks[name] = m
    x = rng.normal(size=(4, 32, 32, 3))
    model, small = physical_trim(one, masks)
    assert model.widths == tuple(int(masks[n].sum()) for n in LAYERS)
    with float64():
        want, _ = LeNet5().apply({"params": one}, jnp.asarray(x), masks)
        got, _ = model.apply({"params": small}, jnp.asarray(x))
    # float64 throughout: only the order of the (nonzero) terms can differ, far below 1e-6.
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10 * float(np.abs(want).max()))
    counted = sum(a.size for a in jax.tree_util.tree_leaves(small))
    assert size(model.widths)["parameters"] == counted
    full = sum(a.size for a in jax.tree_util.tree_leaves(one))
    assert size((6, 16, 120, 84))["parameters"] == full == 62006
    assert (
        size((6, 16, 120, 84))["macs"] == 75 * 6 * 784 + 150 * 16 * 100 + 400 * 120 + 120 * 84 + 840
    )
    with pytest.raises(ValueError, match="keeps no node"):
        physical_trim(one, {"fc2": np.zeros(84)})
    with pytest.raises(ValueError, match="zeros and ones"):
        physical_trim(one, {"fc2": np.full(84, 0.5)})


@pytest.mark.slow
def test_fine_tuning_holds_the_trimmed_nodes_and_resumes(rng, tmp_path):
    from poz_jax.train import TrainConfig, fine_tune

    params = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float32), _stack(2, 3))
    data = {
        "train": (rng.integers(0, 256, (40, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 40)),
        "test": (rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 12)),
    }
    masks = {name: (rng.random((2, n)) < 0.5).astype(np.float32) for name, n in LAYERS.items()}
    for m in masks.values():
        m[:, 0] = 1.0  # every layer keeps a node
    cfg = TrainConfig(seeds=2, epochs=2, batch_size=10, learning_rate=0.05)
    tuned, history = fine_tune(cfg, data, params, masks, tmp_path, progress=False)
    assert [h["epoch"] for h in history] == [1, 2]
    for s in range(2):
        cut = {k: np.flatnonzero(masks[k][s] == 0) for k in LAYERS}
        kept = {k: np.flatnonzero(masks[k][s] == 1) for k in LAYERS}
        before, after = (
            jax.tree_util.tree_map(lambda a, s=s: np.asarray(a[s]), t) for t in (params, tuned)
        )
        # A trimmed node's incoming weights and bias, and the next layer's weights from it.
        for name in LAYERS:
            np.testing.assert_array_equal(
                after[name]["kernel"][..., cut[name]], before[name]["kernel"][..., cut[name]]
            )
            np.testing.assert_array_equal(
                after[name]["bias"][cut[name]], before[name]["bias"][cut[name]]
            )
        np.testing.assert_array_equal(
            after["conv2"]["kernel"][:, :, cut["conv1"]],
            before["conv2"]["kernel"][:, :, cut["conv1"]],
        )
        np.testing.assert_array_equal(
            after["fc3"]["kernel"][cut["fc2"]], before["fc3"]["kernel"][cut["fc2"]]
        )
        # What is kept did learn.
        assert not np.array_equal(
            after["fc2"]["kernel"][kept["fc1"]][:, kept["fc2"]],
            before["fc2"]["kernel"][kept["fc1"]][:, kept["fc2"]],
        )
    # Done: a second call trains nothing and returns the same networks.
    again, _ = fine_tune(cfg, data, params, masks, tmp_path, progress=False)
    for a, b in zip(
        jax.tree_util.tree_leaves(again), jax.tree_util.tree_leaves(tuned), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    # Other starting masks are another run: refused, not resumed.
    other = {**masks, "fc2": np.ones((2, 84), np.float32)}
    with pytest.raises(ValueError, match="different settings or data"):
        fine_tune(cfg, data, params, other, tmp_path, progress=False)
