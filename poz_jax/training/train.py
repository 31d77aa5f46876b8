"""Training many small networks at once: one jitted step, vmapped over seeds.

Every seed has its own initialisation and its own data order; the seed axis
is the leading axis of every parameter and optimiser leaf, and it is sharded
over the available devices (a 1-D mesh named ``"seed"``), so the same code
runs on one CPU, one GPU or a TPU slice.

:class:`TrainConfig` holds what defines the numbers (it is saved with every
checkpoint and must match to resume); :class:`Compute` holds how they are
computed (the convolution formulation, steps per compiled call), which may
change between runs. :func:`train_networks` trains with a checkpoint after
every epoch and resumes from it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from poz_jax.analysis import stats
from poz_jax.data.cifar10 import cifar_scale
from poz_jax.io import files
from poz_jax.models import lenet
from poz_jax.models.lenet import accuracy
from poz_jax.study.options import setting
from poz_jax.study.runtime import progress_bar

PyTree = Any
CONVS = ("rows", "patches", "lax")
OPTIMIZERS = ("sgd", "adam")
INIT_STYLES = ("torch", "flax")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How the networks are trained (everything that changes the numbers).

    ``optimizer`` is ``"sgd"`` (with ``momentum``) or ``"adam"``.
    ``init_style`` is ``"torch"`` (PyTorch's default initialisation, as the authors'
    networks had) or ``"flax"`` (Flax's defaults). ``train_subset`` > 0 trains
    on that many training images drawn at random (seeded by ``seed``; for
    quick runs); 0 uses all of them. ``seed``: network ``s`` is seeded by
    ``fold_in(PRNGKey(seed), s)`` (its initialisation and data order).
    """

    seeds: int = setting(50, "number of networks (overrides the preset)")
    epochs: int = setting(10, "training epochs (overrides the preset)")
    batch_size: int = setting(50, "training images per step")
    optimizer: str = setting("sgd", "overrides the preset", choices=OPTIMIZERS)
    learning_rate: float = setting(0.001, "learning rate (overrides the preset)", flag="--lr")
    momentum: float = setting(0.9, "SGD momentum")
    seed: int = setting(0, "base random seed")
    train_subset: int = setting(0, "train on so many images drawn at random; 0: all")
    init_style: str = setting(
        "torch",
        "parameter initialisation: torch (PyTorch's defaults, as the authors'; the presets' "
        "choice) or flax (LeCun normal, zero bias)",
        flag="--init",
        choices=INIT_STYLES,
    )

    def __post_init__(self) -> None:
        from poz_jax.core import validate as v

        v.check_choice(self.optimizer, "optimizer", OPTIMIZERS)
        v.check_choice(self.init_style, "init_style", INIT_STYLES)
        for name in ("seeds", "epochs", "batch_size"):
            v.check_int(getattr(self, name), name, 1)
        v.check_int(self.train_subset, "train_subset", 0)
        v.check_seed(self.seed, "seed")
        # A NaN or infinite rate would train for hours on NaN: refuse it here.
        for name in ("learning_rate", "momentum"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise v.FieldError(name, f"must be a number, got {value!r}")
            if not math.isfinite(value):
                raise v.FieldError(name, f"must be finite, got {value}")
        if self.learning_rate <= 0:
            raise v.FieldError("learning_rate", f"must be positive, got {self.learning_rate}")
        if not 0 <= self.momentum < 1:
            raise v.FieldError("momentum", f"must lie in [0, 1), got {self.momentum}")

    @classmethod
    def from_dict(cls, saved: dict) -> TrainConfig:
        """The config a checkpoint's or ``config.json``'s ``"train"`` entry describes.

        Entries that only ever said *how* to compute (``conv``,
        ``steps_per_call``, stored by earlier versions) are dropped, and
        renamed fields (``base_seed``) take their new names.
        """
        return cls(**_current_names(saved))


# TrainConfig fields of earlier versions that moved to Compute.
_COMPUTE_ONLY = ("conv", "steps_per_call")
# Fields of earlier versions under their new names (one seed name across studies).
_RENAMED = {"base_seed": "seed"}


def _current_names(saved: dict) -> dict:
    """A saved ``"train"`` entry with earlier versions' names brought up to date."""
    return {_RENAMED.get(k, k): v for k, v in saved.items() if k not in _COMPUTE_ONLY}


@dataclasses.dataclass(frozen=True)
class Compute:
    """How the networks are computed: never changes the numbers beyond float rounding.

    ``conv``: the convolution formulation (:class:`poz_jax.models.lenet.Conv`),
    ``None`` to choose by backend (:func:`default_conv`). ``steps_per_call``:
    training steps per compiled call (between progress updates). A run may
    resume with other values (on another backend).
    """

    conv: str | None = None
    steps_per_call: int = 100

    def __post_init__(self) -> None:
        from poz_jax.core import validate as v

        if self.conv is not None:
            v.check_choice(self.conv, "conv", CONVS)
        v.check_int(self.steps_per_call, "steps_per_call", 1)

    def resolved_conv(self) -> str:
        """``conv``, or the backend's default."""
        return self.conv or default_conv()


def default_conv(backend: str | None = None) -> str:
    """The convolution formulation for ``backend`` (default: JAX's).

    ``"rows"`` (banded matmuls) on CPU, measured fastest there under ``vmap``
    (scripts/bench_lenet.py); XLA's own ``"lax"`` convolution elsewhere,
    where the backend's convolution library does the work.
    """
    return "rows" if (backend or jax.default_backend()) == "cpu" else "lax"


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    """The optax optimiser the config names."""
    if cfg.optimizer == "adam":
        return optax.adam(cfg.learning_rate)
    return optax.sgd(cfg.learning_rate, momentum=cfg.momentum or None)


def seed_keys(cfg: TrainConfig) -> jax.Array:
    """``(seeds, 2)`` keys: network ``s`` owns ``fold_in(PRNGKey(seed), s)``."""
    base = jax.random.PRNGKey(cfg.seed)
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
        return self._init(keys)

    # Each compiled function is built once per Trainer (and lenet_trainer keeps
    # one Trainer per model and optimiser), so runs in one process share them.
    @functools.cached_property
    def _init(self) -> Callable:
        # NumPy, not jnp: built inside a trace (eval_shape(trainer.init, ...) may
        # be the first call), a jnp array would be a tracer kept in this cache.
        dummy = np.zeros((1, 32, 32, 3), np.float32)

        def one(key):
            params = self.model.init(jax.random.fold_in(key, 0), dummy)["params"]
            return params, self.tx.init(params)

        return jax.jit(jax.vmap(one))

    def _loss(self, params, x, y):
        logits, _ = self.model.apply({"params": params}, cifar_scale(x))
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
        return self._steps

    @functools.cached_property
    def _steps(self) -> Callable:
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
        return self._forward

    @functools.cached_property
    def _forward(self) -> Callable:
        def apply(params, x):
            return self.model.apply({"params": params}, cifar_scale(x))

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


def lenet_trainer(
    cfg: TrainConfig, compute: Compute | None = None, masked: bool = False
) -> Trainer:
    """The LeNet5 and optimiser ``cfg`` describes, compiled the way ``compute`` says.

    One Trainer (so one compilation per shape) per model and optimiser per
    process: settings that do not enter a step (seed count, epochs, seeds'
    base) share it. ``masked``: the LeNet5 whose nodes masks hold at zero
    (:func:`fine_tune`'s).
    """
    step_cfg = dataclasses.replace(cfg, seeds=1, epochs=1, seed=0, train_subset=0)
    return _trainer((compute or Compute()).resolved_conv(), step_cfg, masked)


@functools.lru_cache(maxsize=16)
def _trainer(conv: str, cfg: TrainConfig, masked: bool) -> Trainer:
    from poz_jax.models import LeNet5

    model = lenet.MaskedLeNet5 if masked else LeNet5
    return Trainer(model(conv=conv, init_style=cfg.init_style), cfg)


def data_key(data: dict) -> dict:
    """Content digests of the training and test split: what a run's numbers come from."""
    return {f"{split}_data": files.fingerprint(*data[split]) for split in ("train", "test")}


def _saved_epochs(meta: dict, path: Path) -> int:
    epochs = meta.get("epoch")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or not 0 <= epochs <= 10**6:
        raise ValueError(f"{path} has malformed metadata (epoch {epochs!r}); delete it to restart")
    if not isinstance(meta.get("history"), list) or not isinstance(meta.get("train"), dict):
        raise ValueError(f"{path} has malformed metadata; delete it to start over")
    return epochs


def check_resumable(meta: dict, cfg: TrainConfig, data: dict, path: Path) -> int:
    """Refuse ``path`` unless ``cfg`` on ``data`` may continue it; returns its epochs done.

    The same settings and the same data (by content digest), and no more
    epochs done than ``cfg`` asks for.
    """
    epochs_done = _saved_epochs(meta, path)
    want = dataclasses.asdict(cfg)
    # A longer run may continue a shorter one; nothing else may change.
    saved = _current_names(meta["train"])
    saved.pop("epochs", None)
    want.pop("epochs")
    diff = files.changed(saved, want)
    diff += [k.replace("_", " ") for k in files.changed(meta.get("data", {}), data)]
    if diff:
        raise ValueError(
            f"{path} was written with different settings or data ({', '.join(diff)}); "
            "use another --out or delete it to start over"
        )
    if epochs_done > cfg.epochs:
        # Its parameters are those of the later epoch: labelling them with
        # fewer epochs would report a run that was never made.
        raise ValueError(
            f"{path} holds networks trained for {epochs_done} epochs, more than "
            f"the {cfg.epochs} asked for; use another --out, or --epochs {epochs_done}"
        )
    return epochs_done


def _train_subset(cfg: TrainConfig, x: np.ndarray, y: np.ndarray):
    if not cfg.train_subset:
        return x, y
    # A random subset: local copies may be sorted by class (../shared's npz is).
    pick = np.sort(np.random.default_rng(cfg.seed).permutation(len(x))[: cfg.train_subset])
    return x[pick], y[pick]


def train_networks(
    cfg: TrainConfig,
    data: dict,
    out: Path,
    compute: Compute | None = None,
    progress: bool = True,
    key: dict | None = None,
):
    """Train (or resume) ``cfg.seeds`` LeNet5s; returns ``(params, history)``.

    A checkpoint is written to ``out/checkpoint.npz`` after every epoch; it
    holds the real seeds only, so a run may resume on another device count.
    ``key`` is ``data_key(data)`` when the caller has it (hashing the images
    twice costs a second pass over them).
    """
    compute = compute or Compute()
    trainer = lenet_trainer(cfg, compute)
    keys = seed_keys(cfg)
    return _train(trainer, trainer.init(keys), keys, cfg, data, out, compute, progress, key)


def _train(trainer, state, keys, cfg: TrainConfig, data, out: Path, compute, progress, key):
    """The epochs of :func:`train_networks` from ``state``, resuming from ``out``'s checkpoint."""
    x_train, y_train = _train_subset(cfg, *data["train"])
    n_steps = len(x_train) // cfg.batch_size
    if n_steps < 1:
        raise ValueError(f"{len(x_train)} training images is less than one batch")
    mesh = seed_mesh(cfg.seeds)
    n_pad = padded_seeds(cfg.seeds, mesh)
    ckpt = out / "checkpoint.npz"
    key = data_key(data) if key is None else key
    history: list[dict] = []
    start = 0
    if ckpt.exists():
        state, meta = files.load_tree(ckpt, state)
        start = check_resumable(meta, cfg, key, ckpt)
        history = meta["history"]
        if progress:
            print(f"resuming from {ckpt} after epoch {start}")
    state = shard_seeds(pad_seeds(state, n_pad), mesh)
    keys = pad_seeds(keys, n_pad)
    xs, ys = replicate((jnp.asarray(x_train), jnp.asarray(y_train, jnp.int32)), mesh)
    x_test, y_test = data["test"]
    steps, forward = trainer.steps(), trainer.forward()
    for epoch in range(start, cfg.epochs):
        order = shard_seeds(trainer.epoch_order(keys, epoch, len(x_train)), mesh)
        t0 = time.perf_counter()
        losses, accs = [], []
        with progress_bar(n_steps, f"epoch {epoch + 1}/{cfg.epochs}", progress) as bar:
            for first, n in chunks(n_steps, compute.steps_per_call):
                state, loss, acc = steps(state, xs, ys, order, first, n)
                loss, acc = np.asarray(loss)[: cfg.seeds], np.asarray(acc)[: cfg.seeds]
                if not np.all(np.isfinite(loss)):
                    bad = np.flatnonzero(~np.isfinite(loss)).tolist()
                    raise ValueError(
                        f"training diverged: the loss of network(s) {bad[:5]} is not finite in "
                        f"epoch {epoch + 1}, steps {first + 1}..{first + n}; lower --lr "
                        f"(now {cfg.learning_rate})"
                    )
                losses.append(loss * n)
                accs.append(acc * n)
                bar.update(n)
                bar.set_postfix(
                    loss=f"{np.mean(losses[-1]) / n:.3f}", acc=f"{np.mean(accs[-1]) / n:.3f}"
                )
            bar.set_postfix_str("scoring the test set")
            test_acc = accuracy(forward, state[0], x_test, y_test)[: cfg.seeds]
            bar.set_postfix(
                loss=f"{np.sum(losses) / n_steps / cfg.seeds:.3f}",
                test_acc=f"{test_acc.mean():.3f}",
            )
        history.append(
            {
                "epoch": epoch + 1,
                "seconds": time.perf_counter() - t0,
                "train_loss": float(np.sum(losses) / n_steps / cfg.seeds),
                "train_acc": float(np.sum(accs) / n_steps / cfg.seeds),
                "test_acc_mean": float(test_acc.mean()),
                "test_acc_sd": stats.sd(test_acc),
                "test_acc": [float(a) for a in test_acc],  # per network, for re-analysis
            }
        )
        if not progress:
            h = history[-1]
            print(
                f"epoch {h['epoch']}/{cfg.epochs}: train loss {h['train_loss']:.4f}, "
                f"test acc {h['test_acc_mean']:.4f} +- {h['test_acc_sd']:.4f}, "
                f"{h['seconds']:.1f} s",
                flush=True,
            )
        meta = {
            "epoch": epoch + 1,
            "history": history,
            "train": dataclasses.asdict(cfg),
            "data": key,
        }
        files.save_tree(ckpt, unpad_seeds(jax.device_get(state), cfg.seeds), meta)
    return unpad_seeds(state[0], cfg.seeds), history


def masked_params(params: PyTree, masks: dict) -> PyTree:
    """``MaskedLeNet5``'s parameters from stacked LeNet5 ``params`` and ``{layer: (S, nodes)}``
    masks (:class:`poz_jax.models.lenet.MaskedLeNet5`).

    A layer left out of ``masks`` keeps every node.
    """
    from poz_jax.models.lenet import LAYERS

    n = len(params["fc3"]["bias"])
    out = {"net": params}
    for name, d in LAYERS.items():
        m = masks.get(name)
        out[f"mask_{name}"] = (
            jnp.ones((n, d), jnp.float32) if m is None else jnp.asarray(m, jnp.float32)
        )
    return out


def fine_tune(
    cfg: TrainConfig,
    data: dict,
    params: PyTree,
    masks: dict,
    out: Path,
    *,
    compute: Compute | None = None,
    progress: bool = True,
    key: dict | None = None,
) -> tuple[PyTree, list[dict]]:
    """Retrain trimmed networks from their remaining weights, the masks held: ``(params, history)``.

    ``params``: stacked LeNet5 parameters of ``cfg.seeds`` networks;
    ``masks``: ``{layer: (seeds, nodes)}`` 0/1. Trains ``cfg.epochs`` epochs
    with ``cfg``'s optimiser (a fresh optimiser state) and data order
    (seeded by ``cfg.seed``), checkpointing to ``out/checkpoint.npz`` after
    every epoch and resuming from it (``key``: ``data_key(data)`` when the
    caller has it, as for :func:`train_networks`). Returns LeNet5 parameters whose
    trimmed nodes' weights are exactly the given ones (they get no
    gradient), with the history of :func:`train_networks`.
    """
    compute = compute or Compute()
    # The trainer, so its compiled steps, is shared by every group of the same shape.
    trainer = lenet_trainer(cfg, compute, masked=True)
    start = masked_params(params, masks)
    state = (start, jax.vmap(trainer.tx.init)(start))
    keys = seed_keys(cfg)
    # The starting networks and masks are part of what the run is, so a
    # checkpoint of other ones is refused rather than resumed.
    key = {**(data_key(data) if key is None else key), "start": files.tree_digest(start)}
    final, history = _train(trainer, state, keys, cfg, data, Path(out), compute, progress, key)
    return final["net"], history
