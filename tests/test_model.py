"""LeNet5 against a float64 NumPy forward pass, and the two convolution formulations."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bounds import assert_within, gamma
from conftest import lenet_params

from poz_jax.models import LeNet5
from poz_jax.models.lenet import Conv


def np_conv(x, kernel, bias):
    """Valid cross-correlation, float64: x (N, H, W, C), kernel HWIO."""
    win = np.lib.stride_tricks.sliding_window_view(x, kernel.shape[:2], axis=(1, 2))
    return np.einsum("nhwcij,ijco->nhwo", win, kernel) + bias


def np_lenet(params, x):
    relu = lambda a: np.maximum(a, 0.0)  # noqa: E731
    pool = lambda a: a.reshape(a.shape[0], a.shape[1] // 2, 2, a.shape[2] // 2, 2, -1).max((2, 4))  # noqa: E731
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)
    h = pool(relu(np_conv(x, p["conv1"]["kernel"], p["conv1"]["bias"])))
    h = pool(relu(np_conv(h, p["conv2"]["kernel"], p["conv2"]["bias"])))
    h = h.transpose(0, 3, 1, 2).reshape(len(h), -1)  # PyTorch's C x H x W flatten
    h = relu(h @ p["fc1"]["kernel"] + p["fc1"]["bias"])
    fc2 = relu(h @ p["fc2"]["kernel"] + p["fc2"]["bias"])
    return fc2 @ p["fc3"]["kernel"] + p["fc3"]["bias"], fc2


@pytest.mark.slow
@pytest.mark.parametrize("impl", ["rows", "patches", "lax"])
def test_lenet_matches_numpy_float64(rng, impl):
    x = rng.normal(size=(3, 32, 32, 3))
    model = LeNet5(conv=impl)
    params = model.init(jax.random.PRNGKey(int(rng.integers(1 << 30))), jnp.asarray(x))["params"]
    assert params["conv1"]["kernel"].shape == (5, 5, 3, 6)
    assert params["fc1"]["kernel"].shape == (400, 120)
    logits, fc2 = model.apply({"params": params}, jnp.asarray(x))
    want_logits, want_fc2 = np_lenet(params, x)
    assert logits.shape == (3, 10) and fc2.shape == (3, 84)
    np.testing.assert_allclose(logits, want_logits, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(fc2, want_fc2, rtol=1e-10, atol=1e-10)
    assert (np.asarray(fc2) >= 0).all()


def test_conv_formulations_equal_nn_conv_float32(rng):
    x = jnp.asarray(rng.normal(size=(2, 14, 14, 6)), jnp.float32)
    ref = nn.Conv(16, (5, 5), padding="VALID", dtype=jnp.float32, param_dtype=jnp.float32)
    params = ref.init(jax.random.PRNGKey(0), x)
    want = ref.apply(params, x)
    # Each output is a dot product of 5 * 5 * 6 terms plus the bias: each
    # implementation is within gamma(151) * sum |x| |w| of the exact value.
    p = jax.tree_util.tree_map(lambda a: np.abs(np.asarray(a, np.float64)), params)["params"]
    mag = np_conv(np.abs(np.asarray(x, np.float64)), p["kernel"], p["bias"])
    bound = 2 * gamma(151, np.float32) * mag
    for impl in ("rows", "patches", "lax"):
        got = Conv(16, (5, 5), impl).apply(params, x)
        assert_within(got, want, bound, impl)


@pytest.mark.slow
def test_torch_init_draws_like_pytorch_defaults():
    params = LeNet5(init_style="torch").init(jax.random.PRNGKey(3), jnp.zeros((1, 32, 32, 3)))[
        "params"
    ]
    fan_in = {"conv1": 75, "conv2": 150, "fc1": 400, "fc2": 120, "fc3": 84}
    for name, n in fan_in.items():
        bound = 1 / np.sqrt(n)
        k, b = np.asarray(params[name]["kernel"]), np.asarray(params[name]["bias"])
        assert np.abs(k).max() <= bound and np.abs(b).max() <= bound
        assert np.abs(k).max() > 0.95 * bound  # uniform over the whole range
        assert k.std() == pytest.approx(bound / np.sqrt(3), rel=0.15)
        assert np.all(b != 0)
    flax_params = LeNet5(init_style="flax").init(jax.random.PRNGKey(3), jnp.zeros((1, 32, 32, 3)))
    assert not np.any(np.asarray(flax_params["params"]["fc2"]["bias"]))
    with pytest.raises(ValueError, match="init must be 'torch' or 'flax'"):
        LeNet5(init_style="he").init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)))


def np_layers(params, x):
    """Every post-ReLU layer of a float64 LeNet5 forward pass, a bound on float32's error
    (of the pre-activation, which the ReLU and pooling never enlarge), and the
    pre-activations.

    The bound propagates, layer by layer, ``gamma(K) * (|W| |h| + |b|)`` (the
    rounding of a K-term dot product) plus ``|W| err(h)`` (the error carried
    in); ReLU and max pooling never enlarge an error.
    """
    relu = lambda a: np.maximum(a, 0.0)  # noqa: E731
    pool = lambda a: a.reshape(a.shape[0], a.shape[1] // 2, 2, a.shape[2] // 2, 2, -1).max((2, 4))  # noqa: E731
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)
    u = np.finfo(np.float32).eps / 2
    h, err = x, 4 * u * (np.abs(x) + 1)  # cifar_scale: a division, a subtraction, a division
    out, bounds, pres = {}, {}, {}
    for name in ("conv1", "conv2"):
        k, b = p[name]["kernel"], p[name]["bias"]
        terms = np.prod(k.shape[:3]) + 1
        pre = np_conv(h, k, b)
        err = gamma(terms, np.float32) * np_conv(np.abs(h), np.abs(k), np.abs(b)) + np_conv(
            err, np.abs(k), 0.0
        )
        h = relu(pre)
        out[name], bounds[name], pres[name] = h, err, pre
        h, err = pool(h), pool(err)
    h, err = (a.transpose(0, 3, 1, 2).reshape(len(a), -1) for a in (h, err))
    for name in ("fc1", "fc2"):
        k, b = p[name]["kernel"], p[name]["bias"]
        pre = h @ k + b
        err = gamma(k.shape[0] + 1, np.float32) * (
            np.abs(h) @ np.abs(k) + np.abs(b)
        ) + err @ np.abs(k)
        h = relu(pre)
        out[name], bounds[name], pres[name] = h, err, pre
    return out, bounds, pres


@pytest.mark.slow  # a pipeline or stacked-model run: outside the fast loop
def test_layer_outputs_of_stacked_networks_match_numpy(rng):
    from poz_jax.data.cifar10 import cifar_scale
    from poz_jax.models.lenet import LAYERS, layer_outputs

    images = rng.integers(0, 256, size=(5, 32, 32, 3), dtype=np.uint8)
    params = lenet_params(3, int(rng.integers(1 << 30)))
    got = layer_outputs(params, images, tuple(LAYERS), batch=2)  # 3 batches, one short
    x = np.asarray(cifar_scale(images), np.float64)
    for s in range(3):
        one = jax.tree_util.tree_map(lambda a, s=s: a[s], params)
        want, bound, _ = np_layers(one, x)
        for name, nodes in LAYERS.items():
            assert got[name].shape[0] == 3 and got[name].shape[-1] == nodes
            assert got[name].shape[1:] == want[name].shape
            assert_within(got[name][s], want[name], bound[name], f"network {s} {name}")
    assert (got["conv1"] == 0).any() and (got["conv1"] >= 0).all()  # post-ReLU


@pytest.mark.slow  # a pipeline or stacked-model run: outside the fast loop
def test_layer_outputs_and_load_networks_refuse_bad_input(tmp_path, rng):
    from poz_jax.models.lenet import layer_outputs, load_networks

    params = lenet_params(2, 0)
    good = np.zeros((2, 32, 32, 3), np.uint8)
    with pytest.raises(ValueError, match="layers must be names from"):
        layer_outputs(params, good, ("fc7",))
    with pytest.raises(ValueError, match=r"uint8 \(n, 32, 32, 3\)"):
        layer_outputs(params, good.astype(np.float32), ("fc2",))
    with pytest.raises(ValueError, match="does not exist"):
        load_networks(tmp_path / "none.npz")
    np.savez(tmp_path / "other.npz", a=np.ones(3))
    with pytest.raises(ValueError, match="does not hold stacked LeNet5 networks"):
        load_networks(tmp_path / "other.npz")
    from poz_jax.io import files

    files.save_tree(tmp_path / "nets.npz", params, {"epoch": 1})
    loaded, meta = load_networks(tmp_path / "nets.npz")
    assert meta["epoch"] == 1
    f32 = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float32), params)
    files.save_tree(tmp_path / "nets32.npz", f32, {"epoch": 2})
    for x64 in (True, False):  # networks load in their own float type, whatever the default
        with jax.enable_x64(x64):
            got = load_networks(tmp_path / "nets32.npz")[0]["fc2"]["kernel"]
        assert got.dtype == np.float32
    assert np.array_equal(loaded["fc2"]["kernel"], np.asarray(params["fc2"]["kernel"]))


def test_apoz_of_every_layer_matches_numpy_and_does_not_depend_on_the_batch(rng):
    from poz_jax.data.cifar10 import cifar_scale
    from poz_jax.models.lenet import LAYERS, layer_apoz

    images = rng.integers(0, 256, size=(7, 32, 32, 3), dtype=np.uint8)
    params = lenet_params(2, int(rng.integers(1 << 30)))
    got = layer_apoz(params, images, tuple(LAYERS), batch=3)
    again = layer_apoz(params, images, tuple(LAYERS), batch=7)
    x = np.asarray(cifar_scale(images), np.float64)
    for s in range(2):
        _, bound, pre = np_layers(jax.tree_util.tree_map(lambda a, s=s: a[s], params), x)
        for name, nodes in LAYERS.items():
            assert got[name].shape == (2, nodes)
            np.testing.assert_array_equal(got[name], again[name])
            # An output within its rounding bound of 0 may round either way: the
            # APoZ lies between the shares of surely-zero and of possibly-zero outputs.
            axes = tuple(range(pre[name].ndim - 1))
            surely = np.mean(pre[name] + bound[name] <= 0, axis=axes)
            maybe = np.mean(pre[name] <= bound[name], axis=axes)
            assert np.all(got[name][s] >= surely - 1e-12), name
            assert np.all(got[name][s] <= maybe + 1e-12), name
    # For a dense layer APoZ is PoZ over the images.
    from poz_jax.models.lenet import layer_outputs

    fc2 = layer_outputs(params, images, ("fc2",))["fc2"]
    np.testing.assert_array_equal(got["fc2"], np.mean(fc2 == 0, axis=1))
