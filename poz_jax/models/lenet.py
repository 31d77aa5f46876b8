"""LeNet5 as in the authors' code (the classic PyTorch CIFAR-10 tutorial network)."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from poz_jax.core.ranking import streamed_apoz, zero_counts


def torch_uniform(fan_in: int):
    """PyTorch's default Linear/Conv initialiser: U(-b, b) with b = 1/sqrt(fan_in).

    Both weights (``kaiming_uniform_(a=sqrt(5))`` reduces to this bound) and biases.
    """
    bound = 1.0 / np.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def initialisers(init: str, fan_in: int):
    """``(kernel_init, bias_init)`` for a layer with ``fan_in`` inputs per output.

    ``"torch"``: PyTorch's defaults, which the authors' networks used.
    ``"flax"``: Flax's defaults (LeCun normal weights, zero biases).
    """
    if init == "torch":
        return torch_uniform(fan_in), torch_uniform(fan_in)
    if init == "flax":
        return nn.initializers.lecun_normal(), nn.initializers.zeros_init()
    raise ValueError(f"init must be 'torch' or 'flax', got {init!r}")


def _row_toeplitz(kernel: jax.Array, width: int) -> jax.Array:
    """HWIO kernel -> ``(kh * width * cin, (width - kw + 1) * cout)`` row-convolution matrix.

    Row ``(i, v, c)`` and column ``(w, o)`` hold ``kernel[i, v - w, c, o]`` where
    ``0 <= v - w < kw``, else 0: one image row band times it is one output row.
    """
    kh, kw, cin, cout = kernel.shape
    w_out = width - kw + 1
    shift = np.arange(width)[None, :, None] - np.arange(w_out)[None, None, :]
    select = (shift == np.arange(kw)[:, None, None]).astype(kernel.dtype)
    t = jnp.einsum("jvw,ijco->ivcwo", select, kernel)
    return t.reshape(kh * width * cin, w_out * cout)


class Conv(nn.Module):
    """A valid, stride-1 2-D convolution, three ways with the same maths and parameters.

    Same parameters (``kernel`` HWIO, ``bias``), initialisers and output as
    ``nn.Conv(features, kernel_size, padding="VALID")``. ``impl``:

    - ``"rows"``: stack ``kh`` consecutive image rows (in blocks of output
      columns) and multiply by a banded (Toeplitz) matrix built from the
      kernel: a few large matmuls with a small patch buffer. Fastest under
      ``vmap`` over networks on CPU (scripts/bench_lenet.py).
    - ``"patches"``: im2col (``kh * kw`` shifted slices) and one matmul.
    - ``"lax"``: ``jax.lax.conv_general_dilated`` (XLA's convolution).
    """

    features: int
    kernel_size: tuple[int, int]
    impl: str = "rows"
    init_style: str = "flax"

    @nn.compact
    def __call__(self, x):
        kh, kw = self.kernel_size
        cin = x.shape[-1]
        kernel_init, bias_init = initialisers(self.init_style, kh * kw * cin)
        kernel = self.param("kernel", kernel_init, (kh, kw, cin, self.features), x.dtype)
        bias = self.param("bias", bias_init, (self.features,), x.dtype)
        h, w = x.shape[-3] - kh + 1, x.shape[-2] - kw + 1
        if self.impl == "lax":
            y = jax.lax.conv_general_dilated(
                x, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
            )
        elif self.impl == "patches":
            # Patch features ordered (kh, kw, cin) to match the HWIO kernel's flattening.
            patches = jnp.stack(
                [x[..., i : i + h, j : j + w, :] for i in range(kh) for j in range(kw)], axis=-2
            )
            patches = patches.reshape(*patches.shape[:-2], kh * kw * cin)
            y = patches @ kernel.reshape(kh * kw * cin, self.features)
        elif self.impl == "rows":
            # Output columns in blocks of bw: a narrower band matrix wastes fewer
            # multiplications on its zeros, at the cost of smaller matmuls.
            bw = max(d for d in range(1, 8) if w % d == 0)
            win = bw + kw - 1
            blocks = jnp.stack(
                [x[..., j * bw : j * bw + win, :] for j in range(w // bw)], axis=-4
            )  # (..., n_blocks, H, win, cin)
            rows = blocks.reshape(*blocks.shape[:-2], win * cin)
            band = jnp.concatenate([rows[..., i : i + h, :] for i in range(kh)], axis=-1)
            y = band @ _row_toeplitz(kernel, win)  # (..., n_blocks, h, bw * cout)
            y = jnp.moveaxis(y, -3, -2).reshape(*x.shape[:-3], h, w, self.features)
        else:
            raise ValueError(f"impl must be 'rows', 'patches' or 'lax', got {self.impl!r}")
        return y + bias


def max_pool_2x2(x):
    """2 x 2 max pooling, stride 2, on ``(..., H, W, C)`` with even H and W."""
    *lead, h, w, c = x.shape
    return x.reshape(*lead, h // 2, 2, w // 2, 2, c).max(axis=(-4, -2))


class LeNet5(nn.Module):
    """conv 3->6 (5x5) -> ReLU -> pool -> conv 6->16 (5x5) -> ReLU -> pool -> 400
    -> fc1 120 -> ReLU -> fc2 84 -> ReLU -> fc3 10.

    Input ``(N, 32, 32, 3)`` normalised images. Returns ``(logits, fc2)`` where
    ``fc2`` is the ``(N, 84)`` post-ReLU penultimate layer the paper analyses.
    ``init_style="torch"`` (default) draws parameters as PyTorch does by default, as
    in the authors' networks; ``"flax"`` uses Flax's defaults.
    """

    conv: str = "rows"
    init_style: str = "torch"
    widths: tuple[int, int, int, int] = (6, 16, 120, 84)  # conv1, conv2, fc1, fc2 nodes

    def _dense(self, features: int, name: str, x):
        k_init, b_init = initialisers(self.init_style, x.shape[-1])
        return nn.Dense(features, kernel_init=k_init, bias_init=b_init, name=name)(x)

    @nn.compact
    def __call__(self, x, masks: dict | None = None):
        """``masks`` optionally maps layer names to ``(nodes,)`` 0/1 arrays that
        multiply that layer's post-ReLU output: a masked node is trimmed (it
        sends nothing on; its incoming weights no longer matter)."""

        def out(name, h):
            # Each post-ReLU output is sown into "intermediates" (kept only when
            # that collection is mutable: see layer_outputs); the outputs and
            # parameters are unchanged by it.
            if masks is not None and name in masks:
                h = h * jnp.asarray(masks[name], h.dtype)
            self.sow("intermediates", f"{name}_relu", h)
            return h

        c1, c2, f1, f2 = self.widths
        x = out("conv1", nn.relu(Conv(c1, (5, 5), self.conv, self.init_style, name="conv1")(x)))
        x = max_pool_2x2(x)
        x = out("conv2", nn.relu(Conv(c2, (5, 5), self.conv, self.init_style, name="conv2")(x)))
        x = max_pool_2x2(x)
        # Flatten in PyTorch's C x H x W order, so converted weights would line up.
        x = jnp.swapaxes(jnp.swapaxes(x, -1, -3), -1, -2).reshape(*x.shape[:-3], -1)
        x = out("fc1", nn.relu(self._dense(f1, "fc1", x)))
        fc2 = out("fc2", nn.relu(self._dense(f2, "fc2", x)))
        return self._dense(10, "fc3", fc2), fc2


def embed(forward, params, images: np.ndarray, batch: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """``(seeds, n, 10)`` logits and ``(seeds, n, 84)`` fc2 embeddings, in image batches."""
    logits, fc2 = [], []
    for i in range(0, len(images), batch):
        lg, f = forward(params, jnp.asarray(images[i : i + batch]))
        logits.append(np.asarray(lg))
        fc2.append(np.asarray(f))
    return np.concatenate(logits, axis=1), np.concatenate(fc2, axis=1)


def accuracy(forward, params, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``(seeds,)`` top-1 accuracy."""
    logits, _ = embed(forward, params, images)
    return (logits.argmax(-1) == np.asarray(labels)[None]).mean(-1)


# Post-ReLU layers and their nodes (channels of a convolutional layer).
LAYERS = {"conv1": 6, "conv2": 16, "fc1": 120, "fc2": 84}


class MaskedLeNet5(nn.Module):
    """LeNet5 with a fixed 0/1 mask per layer (trimmed nodes), for fine-tuning.

    Parameters: ``{"net": LeNet5's, "mask_<layer>": (nodes,)}``. The masks
    pass through ``stop_gradient``, so their gradients are 0 and an optax
    optimiser (SGD with momentum, Adam) leaves them as they are; a trimmed
    node's output is 0, so its incoming and outgoing weights get zero
    gradients too and stay as they were: fine-tuning re-learns only what
    the trimmed network still has.
    """

    conv: str = "rows"
    init_style: str = "torch"

    @nn.compact
    def __call__(self, x):
        masks = {
            name: jax.lax.stop_gradient(self.param(f"mask_{name}", nn.initializers.ones, (n,)))
            for name, n in LAYERS.items()
        }
        return LeNet5(self.conv, self.init_style, name="net")(x, masks)


def layer_outputs(
    params, images: np.ndarray, layers: tuple[str, ...] = ("fc2",), batch: int = 250
) -> dict[str, np.ndarray]:
    """Post-ReLU outputs of ``layers`` of stacked networks, in image batches.

    Args:
      params: a LeNet5 parameter tree stacked over ``S`` networks (leading axis).
      images: uint8 ``(n, 32, 32, 3)``, scaled as in training (``cifar_scale``).
      layers: names from :data:`LAYERS`.
      batch: images per call (bounds memory: conv1's maps are 4,704 floats per
        image and network).

    Returns:
      ``{layer: float32 (S, n, nodes)}`` for fully connected layers and
      ``(S, n, H, W, channels)`` for convolutional ones.
    """
    _check_layers(layers)
    images = _check_images(images)
    run = _layer_fn(tuple(layers))
    parts = [run(params, jnp.asarray(images[i : i + batch])) for i in range(0, len(images), batch)]
    return {name: np.concatenate([np.asarray(p[name]) for p in parts], axis=1) for name in layers}


def _check_layers(layers) -> None:
    unknown = [name for name in layers if name not in LAYERS]
    if unknown or not layers:
        raise ValueError(f"layers must be names from {list(LAYERS)}, got {list(layers)}")


def _check_images(images) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1:] != (32, 32, 3) or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (n, 32, 32, 3), got {images.dtype} {images.shape}")
    if not len(images):
        raise ValueError("images must hold at least one image")
    return images


def _outputs(params, x, layers: tuple[str, ...], masks: dict | None = None) -> dict:
    """One network's post-ReLU ``layers`` for uint8 images ``x`` (the sown intermediates).

    ``masks``: optional ``{layer: (nodes,)}`` 0/1 trimming (see ``LeNet5.__call__``).
    """
    from poz_jax.data.cifar10 import cifar_scale

    _, state = LeNet5().apply({"params": params}, cifar_scale(x), masks, mutable=["intermediates"])
    return {name: state["intermediates"][f"{name}_relu"][0] for name in layers}


@functools.lru_cache(maxsize=8)
def _layer_fn(layers: tuple[str, ...]):
    return jax.jit(jax.vmap(lambda p, x: _outputs(p, x, layers), in_axes=(0, None)))


def layer_apoz(
    params,
    images: np.ndarray,
    layers: tuple[str, ...] = tuple(LAYERS),
    batch: int = 250,
    masks: dict | None = None,
) -> dict[str, np.ndarray]:
    """APoZ (Hu et al. 2016) of each node of ``layers``, stacked networks: ``{layer: (S, nodes)}``.

    The share of zeros after the ReLU over all ``images`` and, for a
    convolutional channel, all positions of its output map. Streamed:
    each batch of images is reduced to zero counts inside one jitted call,
    so no layer's maps for all images are ever held (conv1's are 4,704
    floats per image and network).

    Args:
      params: a LeNet5 parameter tree stacked over ``S`` networks.
      images: uint8 ``(n, 32, 32, 3)``; batch: images per call.
      masks: optional ``{layer: (S, nodes)}`` 0/1, the networks' trimmings
        (a trimmed node's APoZ is 1: it outputs only zeros).
    """
    _check_layers(layers)
    images = _check_images(images)
    run = _apoz_fn(tuple(layers))
    n_net = len(params["fc3"]["bias"])
    masks = {
        k: jnp.asarray((masks or {}).get(k, np.ones((n_net, d))), jnp.float32)
        for k, d in LAYERS.items()
    }
    # Positions per channel (conv1 28 x 28, conv2 10 x 10, a dense node 1), from the model.
    shapes = jax.eval_shape(_layer_fn(tuple(layers)), params, jnp.asarray(images[:1]))
    positions = {k: int(np.prod(a.shape[2:-1])) for k, a in shapes.items()}
    return streamed_apoz(lambda x: run(params, jnp.asarray(x), masks), images, batch, positions)


@functools.lru_cache(maxsize=8)
def _apoz_fn(layers: tuple[str, ...]):
    def one(params, x, masks):
        return {k: zero_counts(a) for k, a in _outputs(params, x, layers, masks).items()}

    return jax.jit(jax.vmap(one, in_axes=(0, None, 0)))


@functools.cache
def param_shapes() -> dict:
    """One LeNet5's parameter tree as ``jax.ShapeDtypeStruct`` leaves (traced, not computed)."""
    return jax.eval_shape(
        lambda: LeNet5().init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3), jnp.float32))
    )["params"]


def load_networks(path) -> tuple[dict, dict]:
    """Stacked LeNet5 parameters from an Experiment 1 ``networks.npz``: ``(params, meta)``.

    The number of networks is read from the file; raises ``ValueError`` for a
    missing file or one that does not hold LeNet5 parameters.
    """
    from poz_jax.io import files

    why = files.not_npz(path)
    if why:
        raise ValueError(f"networks {path}: {why}")
    key = "leaf:['fc3']['bias']"
    one = param_shapes()
    try:
        with np.load(path, allow_pickle=False) as z:
            n = z[key].shape[0] if key in z.files and z[key].ndim == 2 else 0
            # Each leaf in the file's own float type (Experiment 1 saves float32),
            # whatever JAX's default float is here.
            dtypes = {k: z[k].dtype for k in z.files if z[k].dtype.kind == "f"}
    except files.READ_ERRORS as err:
        raise ValueError(f"networks {path} is damaged and cannot be read ({err})") from None

    def like(path, a):
        return np.zeros((n, *a.shape), dtypes.get(f"leaf:{jax.tree_util.keystr(path)}", a.dtype))

    like = jax.tree_util.tree_map_with_path(like, one)
    try:
        if not n:
            raise ValueError
        params, meta = files.load_tree(path, like)
    except ValueError:
        # An input is never to be deleted: say what it is not.
        raise ValueError(
            f"{path} does not hold stacked LeNet5 networks (Experiment 1's networks.npz)"
        ) from None
    for where, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        bad = ~np.isfinite(leaf)
        if bad.any():
            nets = sorted(set(np.nonzero(bad)[0].tolist()))
            raise ValueError(
                f"networks {path}: {int(bad.sum())} NaN or infinite weight(s) in "
                f"{jax.tree_util.keystr(where)} of network(s) {nets[:5]}; a diverged training?"
            )
    return params, meta
