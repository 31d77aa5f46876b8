"""VGG-16 as torchvision's ``vgg16``, eval mode (no dropout), in Flax linen.

Parameter names follow the VGG paper (``conv1_1`` .. ``conv5_3``, ``fc6``,
``fc7``, ``fc8``); :mod:`poz_jax.models.convert` maps torchvision's and timm's
weights onto them. Inputs are NHWC images already normalised with the
ImageNet mean and std (:mod:`poz_jax.data.images`).
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from poz_jax.core.ranking import streamed_apoz, zero_counts

# Output channels of each conv block (a max-pool follows each block).
BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
CONV_NAMES = tuple(
    f"conv{b + 1}_{i + 1}" for b, block in enumerate(BLOCKS) for i in range(len(block))
)
LAYERS = ("pool1", "pool2", "pool3", "pool4", "pool5", "fc6", "fc7", "logits")


def _pool_windows(size: int, out: int) -> np.ndarray:
    """``(out, size)`` averaging weights of PyTorch's adaptive average pooling along one axis.

    Window ``i`` spans ``floor(i * size / out)`` .. ``ceil((i + 1) * size / out)``.
    """
    i = np.arange(out)
    start = (i * size) // out
    stop = -((-(i + 1) * size) // out)
    cols = np.arange(size)
    inside = (cols >= start[:, None]) & (cols < stop[:, None])
    return inside / inside.sum(1, keepdims=True)


def adaptive_avg_pool(x: jax.Array, out: tuple[int, int] = (7, 7)) -> jax.Array:
    """PyTorch's ``AdaptiveAvgPool2d(out)`` on NHWC ``x``: ``(N, H, W, C) -> (N, *out, C)``.

    For the 224 x 224 crops VGG-16 was trained on, pool5 is already 7 x 7 and
    this is the identity; smaller inputs (as in the tests) repeat cells.
    """
    _, h, w, _ = x.shape
    if (h, w) == out:
        return x
    ph = jnp.asarray(_pool_windows(h, out[0]), x.dtype)
    pw = jnp.asarray(_pool_windows(w, out[1]), x.dtype)
    return jnp.einsum("ih,jw,nhwc->nijc", ph, pw, x)


class VGG16(nn.Module):
    """VGG-16 returning its named activations.

    ``__call__(x)`` with ``x`` of shape ``(N, H, W, 3)`` (H, W >= 32) returns a
    dict: ``pool1``..``pool5`` (NHWC), ``fc6`` and ``fc7`` after their ReLU
    ``(N, 4096)``, and ``logits`` ``(N, n_classes)``.
    """

    n_classes: int = 1000
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
        out = {}
        x = x.astype(self.dtype)
        names = iter(CONV_NAMES)
        for b, block in enumerate(BLOCKS):
            for channels in block:
                conv = nn.Conv(channels, (3, 3), padding=1, dtype=self.dtype, name=next(names))
                x = nn.relu(conv(x))
                # Kept only when "intermediates" is mutable (layer_apoz); outputs unchanged.
                self.sow("intermediates", f"{conv.name}_relu", x)
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
            out[f"pool{b + 1}"] = x
        # Flattened in NHWC order; the converter permutes fc6's rows from
        # PyTorch's C x H x W flattening to match.
        x = adaptive_avg_pool(x).reshape(x.shape[0], -1)
        x = nn.relu(nn.Dense(4096, dtype=self.dtype, name="fc6")(x))
        out["fc6"] = x
        x = nn.relu(nn.Dense(4096, dtype=self.dtype, name="fc7")(x))
        out["fc7"] = x
        out["logits"] = nn.Dense(self.n_classes, dtype=self.dtype, name="fc8")(x)
        return out


APOZ_LAYERS = (*CONV_NAMES, "fc6", "fc7")  # every post-ReLU layer


def layer_apoz(
    params, images, layers: tuple[str, ...] = APOZ_LAYERS, batch: int = 20
) -> dict[str, np.ndarray]:
    """APoZ (Hu et al. 2016) of each node of VGG-16's post-ReLU ``layers``: ``{layer: (nodes,)}``.

    The share of zeros over all ``images`` and, for a channel, all positions
    of its map. Streamed: each batch is reduced to zero counts in one jitted
    call (conv1_1's maps alone are 3.2 M floats per 224 x 224 image).

    Args:
      params: one VGG-16's parameters.
      images: float ``(n, H, W, 3)``, already ImageNet-standardised.
      layers: names from :data:`APOZ_LAYERS`.
    """
    unknown = [k for k in layers if k not in APOZ_LAYERS]
    if unknown or not layers:
        raise ValueError(f"layers must be names from {list(APOZ_LAYERS)}, got {list(layers)}")
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] < 32 or images.shape[2] < 32:
        raise ValueError(f"images must be (n, H >= 32, W >= 32, 3), got {images.shape}")
    if not len(images) or not np.all(np.isfinite(images)):
        raise ValueError("images must hold at least one image, all values finite")
    run = _apoz_fn(tuple(layers))
    # Positions per channel (H x W of a map, 1 for a dense node), from the shapes alone.
    one = jax.ShapeDtypeStruct((1, *images.shape[1:]), jnp.float32)
    shapes = jax.eval_shape(functools.partial(_post_relu, tuple(layers)), params, one)
    positions = {k: int(np.prod(a.shape[1:-1])) for k, a in shapes.items()}

    def count(x):
        return run(params, jnp.asarray(x, jnp.float32))

    return streamed_apoz(count, images, batch, positions)


def _post_relu(layers: tuple[str, ...], params, x) -> dict:
    out, state = VGG16().apply({"params": params}, x, mutable=["intermediates"])
    acts = {**{k[: -len("_relu")]: v[0] for k, v in state["intermediates"].items()}, **out}
    return {k: acts[k] for k in layers}


@functools.lru_cache(maxsize=8)
def _apoz_fn(layers: tuple[str, ...]):
    # Counted inside the jitted call: no batch's maps leave it.
    return jax.jit(lambda p, x: {k: zero_counts(a) for k, a in _post_relu(layers, p, x).items()})


def random_params(seed: int = 0, n_classes: int = 1000) -> dict:
    """Randomly initialised VGG-16 parameters (for tests, timing and dry runs)."""
    x = jnp.zeros((1, 32, 32, 3), jnp.float32)
    return VGG16(n_classes).init(jax.random.PRNGKey(seed), x)["params"]


def param_shapes(n_classes: int = 1000) -> dict[str, dict[str, tuple[int, ...]]]:
    """``{layer: {"kernel": shape, "bias": shape}}`` of VGG-16, without computing any weight."""
    x = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
    tree = jax.eval_shape(lambda: VGG16(n_classes).init(jax.random.PRNGKey(0), jnp.zeros(x.shape)))
    return {layer: {k: tuple(v.shape) for k, v in w.items()} for layer, w in tree["params"].items()}


def check_params(params: dict, where: str) -> None:
    """Raise ``ValueError`` naming the first layer of ``params`` not in VGG-16's shape."""
    want = param_shapes()
    if set(params) != set(want):
        raise ValueError(
            f"{where} is not VGG-16: layers {sorted(set(want) ^ set(params))[:4]} differ"
        )
    for layer, shapes in want.items():
        for kind, shape in shapes.items():
            got = np.shape(params[layer].get(kind)) if kind in params[layer] else None
            if got != shape:
                raise ValueError(f"{where}: {layer}/{kind} has shape {got}, VGG-16 needs {shape}")


def embed_sets(
    sets: dict, params, layer: str, batch: int = 20, progress: bool = True
) -> dict[str, np.ndarray]:
    """Post-ReLU ``layer`` activations ``(n_images, n_nodes)`` for each set's images."""
    from poz_jax.data.images import imagenet_standardise, load_images
    from poz_jax.data.stimuli import check_have_images
    from poz_jax.study.runtime import progress_bar

    if layer not in LAYERS:
        raise ValueError(f"unknown layer {layer!r}; choose one of {LAYERS}")
    forward = jax.jit(lambda p, x: VGG16().apply({"params": p}, imagenet_standardise(x))[layer])
    check_have_images(sets)
    out = {}
    total = sum(len(s.images) for s in sets.values())
    with progress_bar(total, f"VGG-16 {layer}", progress) as bar:
        for name, s in sets.items():
            parts = []
            size = min(batch, len(s.images))
            for i in range(0, len(s.images), size):
                images = load_images(s.images[i : i + size])
                n = len(images)
                # A short last batch is padded to the batch shape (its extra
                # rows dropped): one compiled shape per run, not two.
                images = np.concatenate([images, np.repeat(images[-1:], size - n, axis=0)])
                acts = np.asarray(forward(params, images))[:n]
                parts.append(acts.reshape(n, -1))
                bar.update(n)
            out[name] = np.concatenate(parts)
    return out
