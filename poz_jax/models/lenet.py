"""LeNet5 as in the authors' code (the classic PyTorch CIFAR-10 tutorial network)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


class PatchConv(nn.Module):
    """A valid, stride-1 2-D convolution written as patch extraction + one matmul.

    Same parameters (``kernel`` HWIO, ``bias``), initialisers and output as
    ``nn.Conv(features, kernel_size, padding="VALID")``. Under ``vmap`` over
    many networks, XLA's CPU convolution loses its fast path, while the
    batched matmul stays efficient (scripts/bench_lenet.py measures both).
    """

    features: int
    kernel_size: tuple[int, int]
    use_patches: bool = True

    @nn.compact
    def __call__(self, x):
        kh, kw = self.kernel_size
        cin = x.shape[-1]
        kernel = self.param(
            "kernel", nn.initializers.lecun_normal(), (kh, kw, cin, self.features), x.dtype
        )
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,), x.dtype)
        if not self.use_patches:
            y = jax.lax.conv_general_dilated(
                x, kernel, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
            )
            return y + bias
        h, w = x.shape[-3] - kh + 1, x.shape[-2] - kw + 1
        # Patch features ordered (kh, kw, cin) to match the HWIO kernel's flattening.
        patches = jnp.stack(
            [x[..., i : i + h, j : j + w, :] for i in range(kh) for j in range(kw)], axis=-2
        )
        patches = patches.reshape(*patches.shape[:-2], kh * kw * cin)
        return patches @ kernel.reshape(kh * kw * cin, self.features) + bias


def max_pool_2x2(x):
    """2 x 2 max pooling, stride 2, on ``(..., H, W, C)`` with even H and W."""
    *lead, h, w, c = x.shape
    return x.reshape(*lead, h // 2, 2, w // 2, 2, c).max(axis=(-4, -2))


class LeNet5(nn.Module):
    """conv 3->6 (5x5) -> ReLU -> pool -> conv 6->16 (5x5) -> ReLU -> pool -> 400
    -> fc1 120 -> ReLU -> fc2 84 -> ReLU -> fc3 10.

    Input ``(N, 32, 32, 3)`` normalised images. Returns ``(logits, fc2)`` where
    ``fc2`` is the ``(N, 84)`` post-ReLU penultimate layer the paper analyses.
    """

    use_patches: bool = True

    @nn.compact
    def __call__(self, x):
        x = max_pool_2x2(nn.relu(PatchConv(6, (5, 5), self.use_patches, name="conv1")(x)))
        x = max_pool_2x2(nn.relu(PatchConv(16, (5, 5), self.use_patches, name="conv2")(x)))
        # Flatten in PyTorch's C x H x W order, so converted weights would line up.
        x = jnp.swapaxes(jnp.swapaxes(x, -1, -3), -1, -2).reshape(*x.shape[:-3], -1)
        x = nn.relu(nn.Dense(120, name="fc1")(x))
        fc2 = nn.relu(nn.Dense(84, name="fc2")(x))
        return nn.Dense(10, name="fc3")(fc2), fc2
