"""Training many small networks at once: one jitted step, vmapped over seeds.

Every seed has its own initialisation and its own data order; the seed axis
is the leading axis of every parameter and optimiser leaf, and it is sharded
over the available devices (a 1-D mesh named ``"seed"``), so the same code
runs on one CPU, one GPU or a TPU slice.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

PyTree = Any
CONV_CHOICES = ("rows", "patches", "lax")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How the networks are trained (everything that changes the numbers).

    ``optimizer`` is ``"sgd"`` (with ``momentum``) or ``"adam"``.
    ``init_style`` is ``"torch"`` (PyTorch's default initialisation, as the authors'
    networks had) or ``"flax"`` (Flax's defaults). ``train_subset`` > 0 trains
    on that many training images drawn at random (seeded by ``base_seed``; for
    quick runs); 0 uses all of them.
    """

    seeds: int = 50
    epochs: int = 10
    batch_size: int = 50
    optimizer: str = "sgd"
    learning_rate: float = 0.001
    momentum: float = 0.9
    base_seed: int = 0
    train_subset: int = 0
    conv: str = "rows"
    init_style: str = "torch"
    steps_per_call: int = 100

    def __post_init__(self) -> None:
        from poz_jax.core import _validate as v

        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        if self.conv not in CONV_CHOICES:
            raise ValueError(f"conv must be one of {CONV_CHOICES}, got {self.conv!r}")
        if self.init_style not in ("torch", "flax"):
            raise ValueError(f"init_style must be 'torch' or 'flax', got {self.init_style!r}")
        for name in ("seeds", "epochs", "batch_size", "steps_per_call"):
            v.check_int(getattr(self, name), name, 1)
        v.check_int(self.train_subset, "train_subset", 0)
        v.check_seed(self.base_seed, "base_seed")
        # A NaN or infinite rate would train for hours on NaN: refuse it here.
        for name in ("learning_rate", "momentum"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1), got {self.momentum}")


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    """The optax optimiser the config names."""
    if cfg.optimizer == "adam":
        return optax.adam(cfg.learning_rate)
    return optax.sgd(cfg.learning_rate, momentum=cfg.momentum or None)


def normalise(images: jax.Array) -> jax.Array:
    """uint8 ``(..., 32, 32, 3)`` -> float32 in [-1, 1]: ``(x / 255 - 0.5) / 0.5``."""
    return (images.astype(jnp.float32) / 255.0 - 0.5) / 0.5


def seed_keys(cfg: TrainConfig) -> jax.Array:
    """``(seeds, 2)`` keys: seed ``s`` owns ``fold_in(PRNGKey(base_seed), s)``."""
    base = jax.random.PRNGKey(cfg.base_seed)
    return jax.vmap(lambda s: jax.random.fold_in(base, s))(jnp.arange(cfg.seeds))


def seed_mesh(n_seeds: int, devices: list | None = None) -> Mesh:
    """A 1-D mesh ``"seed"`` over every device (at most one per seed).

    The seed count need not divide evenly: :func:`pad_seeds` pads the seed
    axis to a multiple of the mesh size, so 50 seeds on 8 devices use all 8.
    """
    devices = list(jax.devices() if devices is None else devices)
    return Mesh(np.array(devices[: max(1, min(n_seeds, len(devices)))]), ("seed",))


def padded_seeds(n_seeds: int, mesh: Mesh) -> int:
    """``n_seeds`` rounded up to a multiple of the mesh's device count."""
    return -(-n_seeds // mesh.size) * mesh.size


def pad_seeds(tree: PyTree, n: int) -> PyTree:
    """Every leaf's seed axis padded to ``n`` with copies of the first seeds.

    The copies are trained like the others and then dropped (:func:`unpad_seeds`):
    networks are independent, so they change no real seed's numbers.
    """

    def pad(x):
        return jnp.take(x, jnp.arange(n) % x.shape[0], axis=0)

    return jax.tree_util.tree_map(pad, tree)


def unpad_seeds(tree: PyTree, n_seeds: int) -> PyTree:
    """The first ``n_seeds`` entries of every leaf's seed axis."""
    return jax.tree_util.tree_map(lambda x: x[:n_seeds], tree)


def shard_seeds(tree: PyTree, mesh: Mesh) -> PyTree:
    """Place every leaf with its leading (seed) axis split over ``mesh``."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec("seed")))


def replicate(tree: PyTree, mesh: Mesh) -> PyTree:
    """Place every leaf whole on every device of ``mesh``."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


@dataclasses.dataclass(frozen=True)
class Trainer:
    """Pure functions for one model, optimiser and config.

    The state is ``(params, opt_state)``, each leaf with a leading seed axis.
    """

    model: nn.Module
    cfg: TrainConfig

    @property
    def tx(self) -> optax.GradientTransformation:
        return make_optimizer(self.cfg)

    def init(self, keys: jax.Array) -> tuple[PyTree, PyTree]:
        """``(seeds, 2)`` keys -> per-seed ``(params, opt_state)``."""
        dummy = jnp.zeros((1, 32, 32, 3), jnp.float32)

        def one(key):
            params = self.model.init(jax.random.fold_in(key, 0), dummy)["params"]
            return params, self.tx.init(params)

        return jax.jit(jax.vmap(one))(keys)

    def _loss(self, params, x, y):
        logits, _ = self.model.apply({"params": params}, normalise(x))
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return loss, (logits.argmax(-1) == y).mean()

    def _one_step(self, params, opt_state, x, y):
        (loss, acc), grads = jax.value_and_grad(self._loss, has_aux=True)(params, x, y)
        updates, opt_state = self.tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, acc

    def epoch_order(self, keys: jax.Array, epoch: int, n_train: int) -> jax.Array:
        """``(seeds, n_train)`` per-seed shuffles for ``epoch`` (a pure function of both)."""
        return jax.vmap(
            lambda k: jax.random.permutation(
                jax.random.fold_in(jax.random.fold_in(k, 1), epoch), n_train
            )
        )(keys)

    def steps(self) -> Callable:
        """Jitted ``(state, x_train, y_train, order, start, n) -> (state, loss, acc)``.

        Runs ``n`` (static) consecutive steps from step ``start`` of the epoch;
        ``loss`` and ``acc`` are ``(seeds,)`` means over those steps.
        """
        b = self.cfg.batch_size
        step = jax.vmap(self._one_step)

        def run(state, x_train, y_train, order, start, n):
            def body(carry, i):
                params, opt_state = carry
                idx = jax.lax.dynamic_slice_in_dim(order, (start + i) * b, b, axis=1)
                params, opt_state, loss, acc = step(params, opt_state, x_train[idx], y_train[idx])
                return (params, opt_state), (loss, acc)

            state, (loss, acc) = jax.lax.scan(body, state, jnp.arange(n))
            return state, loss.mean(0), acc.mean(0)

        return jax.jit(run, static_argnums=5, donate_argnums=0)

    def forward(self) -> Callable:
        """Jitted ``(params, images) -> (logits, fc2)`` for all seeds, in chunks of images.

        ``images`` is uint8 ``(n, 32, 32, 3)``, shared by every seed; returns
        ``(seeds, n, 10)`` and ``(seeds, n, 84)``.
        """

        def apply(params, x):
            return self.model.apply({"params": params}, normalise(x))

        @jax.jit
        def run(params, images):
            return jax.vmap(apply, in_axes=(0, None))(params, images)

        return run


def chunks(n_steps: int, per_call: int, start: int = 0) -> Iterator[tuple[int, int]]:
    """``(start, length)`` of consecutive step chunks covering ``start..n_steps``."""
    while start < n_steps:
        n = min(per_call, n_steps - start)
        yield start, n
        start += n
