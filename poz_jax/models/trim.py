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
    shapes = {np.shape(m)[:2] for m in masks.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"masks must all be (S, M, nodes), got {sorted(shapes)}")
    (n_net, n_mask) = shapes.pop()
    # Every (network, trimming) is one network of a batch: the weights repeat M times.
    flat = jax.tree_util.tree_map(lambda a: jnp.repeat(jnp.asarray(a), n_mask, 0), params)
    flat_masks = {k: jnp.reshape(jnp.asarray(m), (n_net * n_mask, -1)) for k, m in masks.items()}
    acc = masked_eval(flat, flat_masks, images, labels, batch)["accuracy"]
    return acc.reshape(n_net, n_mask)


def masked_eval(
    params, masks: dict, images: np.ndarray, labels, batch: int = 500, n_classes: int = 10
) -> dict[str, np.ndarray]:
    """Accuracy and fc2 class means of ``N`` masked networks, in one streamed pass.

    Args:
      params: LeNet5 parameters stacked over ``N`` networks.
      masks: ``{layer: (N, nodes)}`` 0/1 (a layer left out is untrimmed).
      images: uint8 ``(n, 32, 32, 3)``; labels: ``(n,)`` ints in ``0..n_classes-1``.

    Returns:
      ``{"accuracy": (N,), "class_means": float64 (N, n_classes, 84)}``, the
      mean post-ReLU (masked) fc2 output of each class's images.
    """
    from poz_jax.models.lenet import _check_images

    images = _check_images(images)
    labels = np.asarray(labels)
    if labels.shape != (len(images),) or labels.dtype.kind not in "iu":
        raise ValueError(
            f"labels must be ({len(images)},) ints beside the images, got {labels.shape}"
        )
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"labels must lie in 0..{n_classes - 1}")
    n_net = len(params["fc3"]["bias"])
    full = {
        k: jnp.asarray(masks.get(k, np.ones((n_net, d))), jnp.float32) for k, d in LAYERS.items()
    }
    for k, m in full.items():
        if m.shape != (n_net, LAYERS[k]):
            raise ValueError(f"the masks of {k} must be ({n_net}, {LAYERS[k]}), got {m.shape}")
    run = _eval_fn(n_classes)
    correct, sums = 0, 0.0
    for i in range(0, len(images), batch):
        x, y = jnp.asarray(images[i : i + batch]), jnp.asarray(labels[i : i + batch])
        c, s = run(params, full, x, y)
        correct = correct + np.asarray(c, np.int64)
        # Summed in float64 here: 10,000 float32 additions would lose digits.
        sums = sums + np.asarray(s, np.float64)
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts[:, None]
    return {"accuracy": correct / len(images), "class_means": means}


@functools.lru_cache(maxsize=8)
def _eval_fn(n_classes: int):
    from poz_jax.data.cifar10 import cifar_scale

    model = LeNet5()

    def one(params, mask, x, y):
        logits, fc2 = model.apply({"params": params}, cifar_scale(x), mask)
        onehot = jax.nn.one_hot(y, n_classes, dtype=fc2.dtype)
        return jnp.sum(logits.argmax(-1) == y), onehot.T @ fc2

    return jax.jit(jax.vmap(one, in_axes=(0, 0, None, None)))


def kept_rsms(class_means, fc2_mask) -> jax.Array:
    """The RSM of each network's class means over its kept fc2 nodes: ``(N, C, C)``.

    ``class_means`` ``(N, C, 84)``; ``fc2_mask`` ``(N, 84)`` 0/1. A trimmed node
    is not in the network, so it is not a feature of its RSM (a column of
    zeros would be one).
    """
    from poz_jax.core.kernels import masked_rsms

    x = jnp.asarray(class_means)
    m = jnp.asarray(fc2_mask) > 0
    return jax.vmap(lambda xx, mm: masked_rsms(xx, mm[None])[0])(x, m)


def threshold_step(apoz: dict, masks: dict, sds: float = 1.0) -> tuple[dict, jax.Array]:
    """One round of iterative APoZ trimming, per network: ``(new masks, layer index (S,))``.

    Each network trims the layer (of ``apoz``'s, in :data:`LAYERS` order)
    whose kept nodes have the highest mean APoZ; there it removes the kept
    nodes whose APoZ exceeds that layer's kept mean by more than ``sds``
    standard deviations, or, when none does (all equal), its one highest
    (lowest index on ties). A layer is never trimmed to nothing: a layer
    with one kept node is passed over.

    Args:
      apoz: ``{layer: (S, nodes)}`` in [0, 1]; masks: ``{layer: (S, nodes)}`` 0/1.
    """
    names = [k for k in LAYERS if k in apoz]
    means, new = [], {}
    for k in names:
        a, m = jnp.asarray(apoz[k], jnp.float32), jnp.asarray(masks[k]) > 0
        n = m.sum(-1)
        mean = jnp.where(m, a, 0).sum(-1) / jnp.maximum(n, 1)
        means.append(jnp.where(n > 1, mean, -jnp.inf))
    pick = jnp.argmax(jnp.stack(means, -1), -1)
    for i, k in enumerate(names):
        a, m = jnp.asarray(apoz[k], jnp.float32), jnp.asarray(masks[k]) > 0
        n = jnp.maximum(m.sum(-1, keepdims=True), 1)
        mean = jnp.where(m, a, 0).sum(-1, keepdims=True) / n
        sd = jnp.sqrt(jnp.where(m, (a - mean) ** 2, 0).sum(-1, keepdims=True) / n)
        above = m & (a > mean + sds * sd)
        highest = jnp.argmax(jnp.where(m, a, -jnp.inf), -1)
        one = jax.nn.one_hot(highest, a.shape[-1], dtype=bool) & m
        cut = jnp.where(above.any(-1, keepdims=True), above, one)
        cut = cut & (pick == i)[:, None] & (m.sum(-1, keepdims=True) > 1)
        new[k] = (m & ~cut).astype(jnp.float32)
    for k in masks:
        new.setdefault(k, jnp.asarray(masks[k], jnp.float32))
    return new, pick


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
