"""Vmapped training equals per-seed training; sharding and resuming change nothing."""

from __future__ import annotations

import dataclasses
import textwrap
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import SMALL_TRAIN, run_on_host_devices

from poz_jax.io import files
from poz_jax.models import LeNet5
from poz_jax.training.train import TrainConfig, Trainer, chunks, lenet_trainer, seed_keys

pytestmark = pytest.mark.slow  # training: outside the fast loop


def small_data(rng, n):
    x = jnp.asarray(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8))
    return x, jnp.asarray(rng.integers(0, 10, n), jnp.int32)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_networks_in_one_vmapped_step_do_not_touch_each_other(optimizer):
    # The shapes and settings of the Experiment 1 tests (conftest.SMALL_TRAIN on
    # 60 images), so the SGD step compiled there is reused here.
    cfg = dataclasses.replace(SMALL_TRAIN, optimizer=optimizer)
    trainer = lenet_trainer(cfg)
    x, y = small_data(np.random.default_rng(0), 60)
    keys = seed_keys(dataclasses.replace(cfg, seeds=3))
    state = trainer.init(keys)
    order = trainer.epoch_order(keys, 0, 60)
    steps = trainer.steps()

    def run(pick):  # train the networks of seeds `pick` side by side
        sub = jax.tree_util.tree_map(lambda a: a[np.array(pick)], state)
        return steps(sub, x, y, order[np.array(pick)], 0, 6)[0]

    a, b, same = run([0, 1]), run([0, 2]), run([0, 0])
    for la, lb, ls in zip(*(jax.tree_util.tree_leaves(t) for t in (a, b, same)), strict=True):
        # Network 0 ends the same whatever trains beside it, and two copies of
        # one network end equal: nothing crosses between seeds.
        np.testing.assert_array_equal(la[0], lb[0])
        np.testing.assert_array_equal(ls[0], ls[1])
        np.testing.assert_array_equal(ls[0], la[0])
    assert not np.allclose(a[0]["fc2"]["kernel"][0], a[0]["fc2"]["kernel"][1])
    assert not np.array_equal(order[0], order[1])
    np.testing.assert_array_equal(np.sort(order, axis=1), np.tile(np.arange(60), (3, 1)))


def test_epoch_order_is_a_pure_function_of_seed_and_epoch():
    cfg = TrainConfig(seeds=2, seed=7)
    trainer = Trainer(LeNet5(), cfg)
    a = trainer.epoch_order(seed_keys(cfg), 3, 100)
    np.testing.assert_array_equal(a, trainer.epoch_order(seed_keys(cfg), 3, 100))
    assert not np.array_equal(a, trainer.epoch_order(seed_keys(cfg), 4, 100))


def test_chunks_cover_the_epoch_once():
    got = list(chunks(23, 10, start=0))
    assert got == [(0, 10), (10, 10), (20, 3)]
    assert list(chunks(5, 10)) == [(0, 5)]


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="optimizer must be one of 'sgd', 'adam'"):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match="seeds must be at least 1"):
        TrainConfig(seeds=0)


def test_checkpoint_round_trip_and_corrupt_file(tmp_path, rng):
    tree = {"a": rng.normal(size=(2, 3)), "b": [np.arange(4), np.float32(2.5)]}
    files.save_tree(tmp_path / "c.npz", tree, {"epoch": 3})
    got, meta = files.load_tree(tmp_path / "c.npz", tree)
    assert meta == {"epoch": 3}
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(tree), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="does not hold a checkpoint of this model"):
        files.load_tree(tmp_path / "c.npz", {"a": tree["a"]})
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable .npz file"):
        files.load_arrays(tmp_path / "bad.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.npz", "c.npz"]  # no temp files


SHARDED = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np
    from poz_jax.models import LeNet5
    from poz_jax.training.train import (TrainConfig, Trainer, seed_keys, seed_mesh, shard_seeds,
                               replicate, pad_seeds, padded_seeds, unpad_seeds)
    assert len(jax.devices()) == 8, jax.devices()
    cfg = TrainConfig(seeds=10, batch_size=5)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8))
    y = jnp.asarray(rng.integers(0, 10, 10), jnp.int32)
    out = {}
    for n_dev in (1, 8):
        mesh = seed_mesh(10, jax.devices()[:n_dev])
        n = padded_seeds(10, mesh)
        trainer = Trainer(LeNet5(), cfg)
        keys = pad_seeds(seed_keys(cfg), n)
        state = shard_seeds(pad_seeds(trainer.init(seed_keys(cfg)), n), mesh)
        order = shard_seeds(trainer.epoch_order(keys, 0, 10), mesh)
        xs, ys = replicate((x, y), mesh)
        state, loss, _ = trainer.steps()(state, xs, ys, order, 0, 2)
        out[n_dev] = jax.device_get(unpad_seeds(state[0], 10))
        n_shards = len(state[0]["fc2"]["kernel"].sharding.device_set)
        print("devices", n_dev, "padded", n, "shards", n_shards)
        assert n_shards == n_dev
    for a, b in zip(jax.tree_util.tree_leaves(out[1]), jax.tree_util.tree_leaves(out[8])):
        assert a.shape[0] == 10
        # Two steps on other per-device batch shapes: XLA may sum in another
        # order; after two SGD steps that stays within a few float32 ulps of
        # the weights' scale, far below a wrong shard (a different seed's ~1).
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    print("sharded equals single-device")
    """
)


def test_ten_seeds_on_eight_devices_use_all_eight_and_equal_one_device():
    out = run_on_host_devices(SHARDED)
    assert "devices 8 padded 16 shards 8" in out
    assert "sharded equals single-device" in out


class _State(NamedTuple):
    mu: np.ndarray
    nu: np.ndarray


class _Swapped(NamedTuple):  # the same leaves, declared in the other order
    nu: np.ndarray
    mu: np.ndarray


def test_checkpoint_leaves_load_by_name_shape_and_dtype(tmp_path, rng):
    mu, nu = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    files.save_tree(tmp_path / "c.npz", {"opt": _State(mu, nu)}, {})
    like = {"opt": _Swapped(np.zeros((2, 3)), np.zeros((2, 3)))}
    got, _ = files.load_tree(tmp_path / "c.npz", like)
    np.testing.assert_array_equal(got["opt"].mu, mu)  # by index it would be nu
    np.testing.assert_array_equal(got["opt"].nu, nu)
    with pytest.raises(ValueError, match=r"leaf \['opt'\]\.mu is float64 \(2, 3\).*float32"):
        files.load_tree(tmp_path / "c.npz", {"opt": _State(np.zeros((2, 3), np.float32), nu)})
    with pytest.raises(ValueError, match=r"missing leaves \[\"\['opt'\]\['m'\]\""):
        files.load_tree(tmp_path / "c.npz", {"opt": {"m": mu, "nu": nu}})


def test_a_traced_init_first_leaves_the_trainer_usable():
    # exp1 reads finished networks into eval_shape(trainer.init, ...): the first
    # call on a fresh Trainer is then a trace, and must cache no traced value.
    trainer = Trainer(LeNet5(), SMALL_TRAIN)
    keys = seed_keys(SMALL_TRAIN)
    like = jax.eval_shape(trainer.init, keys)
    params, _ = trainer.init(keys)
    got = jax.tree_util.tree_map(lambda a: (a.shape, a.dtype), params)
    assert got == jax.tree_util.tree_map(lambda s: (s.shape, s.dtype), like[0])
