"""Network trimming (Hu et al. 2016) of LeNet5: node scores, masks, physical trimming, size.

A trimmed network is the same parameter tree and a 0/1 mask per layer
(``LeNet5.__call__(x, masks)``), so every (network, method, level) is one
entry of a batched computation (:func:`trimmed_accuracy`). The physical
network, with the trimmed nodes and their weights gone (the next layer's
inputs too), is :func:`physical_trim`'s; its outputs equal the masked
network's.

Scores rank nodes for removal, highest first: APoZ (``layer_apoz``), the L1
norm of each node's incoming weights (Li et al. 2017, "Pruning Filters for
Efficient ConvNets"; for a filter, all its kernel weights), or random.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from poz_jax.models.lenet import LAYERS, LeNet5

# conv2's output map after pooling is 5 x 5: fc1 reads 25 inputs per conv2 channel.
_POOLED = 25


def keep_masks(scores, keep_counts) -> jax.Array:
    """0/1 masks keeping the ``k`` nodes of lowest score for each ``k``: ``(..., L, nodes)``.

    ``scores`` ``(..., nodes)`` (higher: removed first); ``keep_counts`` ``(L,)``
    ints in 1..nodes. Ties keep the lower node index, as PoZ's order does.
    """
    scores = jnp.asarray(scores)
    counts = jnp.asarray(keep_counts)
    rank = jnp.argsort(jnp.argsort(scores, axis=-1, stable=True), axis=-1, stable=True)
    return (rank[..., None, :] < counts[:, None]).astype(jnp.float32)


def l1_scores(params) -> dict[str, jax.Array]:
    """``{layer: (S, nodes)}``: the L1 norm of each node's incoming weights (stacked networks)."""
    out = {}
    for name in LAYERS:
        k = jnp.abs(params[name]["kernel"])
        out[name] = k.reshape(*k.shape[:1], -1, k.shape[-1]).sum(-2)
    return out


def trimmed_accuracy(params, masks: dict, images: np.ndarray, labels, batch: int = 500):
    """Top-1 accuracy of every masked network: ``(S, M)``.

    Args:
      params: LeNet5 parameters stacked over ``S`` networks.
      masks: ``{layer: (S, M, nodes)}`` 0/1, the ``M`` trimmings of each network
        (a layer left out is untrimmed).
      images: uint8 ``(n, 32, 32, 3)``; labels: ``(n,)`` ints.
    """
    from poz_jax.models.lenet import _check_images

    images = _check_images(images)
    labels = np.asarray(labels)
    if labels.shape != (len(images),):
        raise ValueError(f"labels must be ({len(images)},) beside the images, got {labels.shape}")
    layers = tuple(sorted(masks))
    masks = {k: jnp.asarray(masks[k], jnp.float32) for k in layers}
    run = _correct_fn(layers)
    correct = 0
    for i in range(0, len(images), batch):
        x, y = jnp.asarray(images[i : i + batch]), jnp.asarray(labels[i : i + batch])
        correct = correct + np.asarray(run(params, masks, x, y), np.int64)
    return correct / len(images)


@functools.lru_cache(maxsize=8)
def _correct_fn(layers: tuple[str, ...]):
    from poz_jax.data.cifar10 import cifar_scale

    model = LeNet5()

    def one(params, mask, x, y):
        logits, _ = model.apply({"params": params}, cifar_scale(x), mask)
        return jnp.sum(logits.argmax(-1) == y)

    per_mask = jax.vmap(one, in_axes=(None, 0, None, None))
    return jax.jit(jax.vmap(per_mask, in_axes=(0, 0, None, None)))


def physical_trim(params, masks: dict) -> tuple[LeNet5, dict]:
    """One network without its trimmed nodes: ``(model, params)``.

    ``params``: one LeNet5's parameters; ``masks``: ``{layer: (nodes,)}`` 0/1
    (a layer left out keeps every node; each layer keeps at least one).
    The trimmed nodes' incoming weights and biases go, and so do the next
    layer's weights from them; the outputs equal the masked network's.
    """
    keep = {}
    for name, n in LAYERS.items():
        m = np.asarray(masks.get(name, np.ones(n)))
        if m.shape != (n,) or not np.all((m == 0) | (m == 1)):
            raise ValueError(f"the mask of {name} must be ({n},) zeros and ones, got {m.shape}")
        keep[name] = np.flatnonzero(m)
        if not len(keep[name]):
            raise ValueError(f"the mask of {name} keeps no node; a layer needs at least one")
    p = jax.tree_util.tree_map(np.asarray, params)
    k1, k2, f1, f2 = (keep[n] for n in LAYERS)
    # fc1's inputs are conv2's pooled maps flattened channel-major (C x 5 x 5).
    rows = (k2[:, None] * _POOLED + np.arange(_POOLED)).ravel()
    out = {
        "conv1": {"kernel": p["conv1"]["kernel"][..., k1], "bias": p["conv1"]["bias"][k1]},
        "conv2": {
            "kernel": p["conv2"]["kernel"][:, :, k1][..., k2],
            "bias": p["conv2"]["bias"][k2],
        },
        "fc1": {"kernel": p["fc1"]["kernel"][rows][:, f1], "bias": p["fc1"]["bias"][f1]},
        "fc2": {"kernel": p["fc2"]["kernel"][f1][:, f2], "bias": p["fc2"]["bias"][f2]},
        "fc3": {"kernel": p["fc3"]["kernel"][f2], "bias": p["fc3"]["bias"]},
    }
    return LeNet5(widths=tuple(len(keep[n]) for n in LAYERS)), out


def size(widths: tuple[int, int, int, int]) -> dict[str, int]:
    """Parameters and multiply-adds per image of a LeNet5 with these layer widths.

    ``{"parameters", "macs"}``: conv1 at 28 x 28 positions, conv2 at 10 x 10,
    then the dense layers; pooling and ReLU are not counted.
    """
    c1, c2, f1, f2 = widths
    shapes = [(75, c1, 28 * 28), (25 * c1, c2, 10 * 10), (_POOLED * c2, f1, 1), (f1, f2, 1)]
    shapes.append((f2, 10, 1))
    params = sum(fan_in * n + n for fan_in, n, _ in shapes)
    macs = sum(fan_in * n * positions for fan_in, n, positions in shapes)
    return {"parameters": int(params), "macs": int(macs)}
