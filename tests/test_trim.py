"""Trimming LeNet5: masks, batched accuracy, physical trimming, sizes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import lenet_params

from poz_jax.data.cifar10 import cifar_scale
from poz_jax.models import LeNet5
from poz_jax.models.lenet import LAYERS
from poz_jax.models.trim import (
    keep_masks,
    kept_rsms,
    l1_scores,
    masked_eval,
    physical_trim,
    size,
    threshold_step,
    trimmed_accuracy,
)
from poz_jax.study.runtime import float64


def _stack(n, seed):
    return lenet_params(n, seed)


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


@pytest.mark.slow  # a pipeline or stacked-model run: outside the fast loop
def test_l1_scores_are_each_nodes_incoming_weight_norms(rng):
    params = _stack(2, int(rng.integers(1 << 30)))
    got = l1_scores(params)
    k = np.asarray(params["conv2"]["kernel"], np.float64)
    np.testing.assert_allclose(got["conv2"], np.abs(k).sum((1, 2, 3)), rtol=1e-6)
    k = np.asarray(params["fc1"]["kernel"], np.float64)
    np.testing.assert_allclose(got["fc1"], np.abs(k).sum(1), rtol=1e-6)
    assert {n: got[n].shape for n in LAYERS} == {n: (2, d) for n, d in LAYERS.items()}


@pytest.mark.slow  # a pipeline or stacked-model run: outside the fast loop
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


@pytest.mark.slow  # a pipeline or stacked-model run: outside the fast loop
def test_masked_eval_streams_each_networks_accuracy_and_class_means(rng):
    params = _stack(3, int(rng.integers(1 << 30)))
    images = rng.integers(0, 256, size=(11, 32, 32, 3), dtype=np.uint8)
    labels = rng.permutation(np.arange(11) % 4)  # classes 0..3 present, 4..9 empty
    masks = {"fc2": (rng.random((3, 84)) < 0.5).astype(np.float32)}
    got = masked_eval(params, masks, images, labels, batch=4)
    assert got["accuracy"].shape == (3,) and got["class_means"].shape == (3, 10, 84)
    x = cifar_scale(jnp.asarray(images))
    for s in range(3):
        one = jax.tree_util.tree_map(lambda a, s=s: a[s], params)
        logits, fc2 = LeNet5().apply({"params": one}, x, {"fc2": masks["fc2"][s]})
        assert got["accuracy"][s] == pytest.approx(np.mean(np.argmax(logits, -1) == labels))
        fc2 = np.asarray(fc2, np.float64)
        want = np.stack([fc2[labels == c].mean(0) for c in range(4)])
        # The batched and the single forward may sum in other orders: float32's
        # bound for fan-ins up to 400 is 400 * 2**-24 = 2.4e-5 of the terms'
        # magnitude per layer; 1e-4 of the largest output covers four layers.
        np.testing.assert_allclose(
            got["class_means"][s, :4], want, rtol=0, atol=1e-4 * np.abs(fc2).max()
        )
        assert np.all(np.isnan(got["class_means"][s, 4:]))  # no images: no mean
        assert np.all(got["class_means"][s][:4, masks["fc2"][s] == 0] == 0)
    with pytest.raises(ValueError, match=r"masks of fc1 must be \(3, 120\)"):
        masked_eval(params, {"fc1": np.ones((2, 120))}, images, labels)
    with pytest.raises(ValueError, match="labels must lie"):
        masked_eval(params, {}, images, labels + 7)


def test_kept_rsms_leave_the_trimmed_nodes_out(rng):
    from conftest import ref_rsm

    means = rng.normal(size=(4, 10, 84))
    masks = (rng.random((4, 84)) < 0.3).astype(np.float32)
    masks[:, :3] = 1
    means *= masks[:, None, :]  # a trimmed node's class means are 0
    with float64():
        got = np.asarray(kept_rsms(means, masks))
    for s in range(4):
        want = ref_rsm(means[s][:, masks[s] == 1])
        np.testing.assert_allclose(got[s], want, rtol=1e-12, atol=1e-12)


def _ref_threshold_step(apoz, masks, sds):
    """One round of the threshold rule, by loops."""
    names = list(apoz)
    new = {k: masks[k].copy() for k in names}
    picks = []
    for s in range(len(apoz[names[0]])):
        means = []
        for k in names:
            kept = masks[k][s] == 1
            means.append(apoz[k][s][kept].mean() if kept.sum() > 1 else -np.inf)
        i = int(np.argmax(means))
        picks.append(i)
        k = names[i]
        kept = np.flatnonzero(masks[k][s] == 1)
        if len(kept) < 2:
            continue
        a = apoz[k][s][kept].astype(np.float64)
        cut = kept[a > a.mean() + sds * a.std()]
        if not len(cut):
            cut = kept[[int(np.argmax(a))]]
        new[k][s, cut] = 0
    return new, picks


def test_threshold_step_matches_a_loop_reference(rng):
    for trial in range(4):
        apoz = {k: rng.random((5, n)).astype(np.float32) for k, n in LAYERS.items()}
        masks = {k: (rng.random((5, n)) < 0.7).astype(np.float32) for k, n in LAYERS.items()}
        for k in masks:
            masks[k][:, 0] = 1
        masks["conv1"][0] = 0
        masks["conv1"][0, 2] = 1  # one node left: never picked, never emptied
        apoz["conv1"][0] = 1.0
        if trial == 0:  # all equal in the picked layer: its one highest (first) goes
            apoz["fc2"][1] = 2.0
        new, pick = threshold_step(apoz, masks, sds=0.5 + trial / 2)
        want, want_pick = _ref_threshold_step(apoz, masks, 0.5 + trial / 2)
        assert list(np.asarray(pick)) == want_pick
        for k in LAYERS:
            np.testing.assert_array_equal(np.asarray(new[k]), want[k])
        assert np.asarray(new["conv1"])[0].sum() == 1
        if trial == 0:
            assert want_pick[1] == 3
            assert masks["fc2"][1].sum() - np.asarray(new["fc2"])[1].sum() == 1


def test_masked_apoz_counts_the_masked_networks_zeros(rng):
    from poz_jax.models.lenet import layer_apoz

    params = _stack(2, int(rng.integers(1 << 30)))
    images = rng.integers(0, 256, size=(7, 32, 32, 3), dtype=np.uint8)
    masks = {k: (rng.random((2, n)) < 0.6).astype(np.float32) for k, n in LAYERS.items()}
    got = layer_apoz(params, images, masks=masks, batch=3)
    x = cifar_scale(jnp.asarray(images))
    # One compiled forward pass for both networks (op by op it compiles ~150 programs).
    forward = jax.jit(lambda p, m: LeNet5().apply({"params": p}, x, m, mutable=["intermediates"]))
    for s in range(2):
        one = jax.tree_util.tree_map(lambda a, s=s: a[s], params)
        mask = {k: m[s] for k, m in masks.items()}
        _, state = forward(one, mask)
        for k in LAYERS:
            a = np.asarray(state["intermediates"][f"{k}_relu"][0])
            want = (a == 0).mean(axis=tuple(range(a.ndim - 1)))
            np.testing.assert_allclose(got[k][s], want, rtol=1e-12)
            assert np.all(got[k][s][mask[k] == 0] == 1.0)


@pytest.mark.slow  # a pipeline or stacked-model run: outside the fast loop
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
    from poz_jax.training.train import TrainConfig, fine_tune

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


def test_scoring_images_are_a_seeded_draw_from_all_classes():
    from poz_jax.pipelines.trim import TrimConfig, scoring_images

    sorted_by_class = np.repeat(np.arange(10, dtype=np.uint8), 100)[:, None, None, None]
    picked = scoring_images(TrimConfig(score_images=200, seed=3), sorted_by_class)[:, 0, 0, 0]
    # A class-sorted training set (as ../shared's is) must not give its first classes only.
    assert len(picked) == 200 and set(picked) == set(range(10))
    again = scoring_images(TrimConfig(score_images=200, seed=3), sorted_by_class)[:, 0, 0, 0]
    np.testing.assert_array_equal(picked, again)
