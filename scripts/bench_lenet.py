"""Benchmark: LeNet5 training steps vmapped over seeds, three convolution formulations.

Prints, for each seed count S and each convolution formulation, the median
time of one vmapped SGD step (batch 50 per seed, jitted, warmed up, inside a
``lax.scan`` of ``--steps`` steps as in training) and the implied seconds
per seed-epoch (1000 steps / S). Also checks both formulations give the same
outputs as ``flax.linen.Conv`` on random inputs.

    python scripts/bench_lenet.py --seeds 1 10 50
    python scripts/bench_lenet.py --breakdown 50   # where one step's time goes, per stage
"""

from __future__ import annotations

import argparse
import statistics
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from poz_jax.models import LeNet5
from poz_jax.models.lenet import Conv, max_pool_2x2
from poz_jax.training.train import TrainConfig, Trainer, seed_keys

IMPLS = ("rows", "patches", "lax")


def check_against_nn_conv() -> float:
    x = jax.random.normal(jax.random.PRNGKey(0), (4, 14, 14, 6))
    ref = nn.Conv(16, (5, 5), padding="VALID")
    params = ref.init(jax.random.PRNGKey(1), x)
    want = ref.apply(params, x)
    worst = 0.0
    for impl in IMPLS:
        got = Conv(16, (5, 5), impl).apply(params, x)
        worst = max(worst, float(jnp.max(jnp.abs(got - want)) / jnp.max(jnp.abs(want))))
    return worst


def time_steps(n_seeds: int, impl: str, n_steps: int, repeats: int) -> float:
    cfg = TrainConfig(seeds=n_seeds)
    trainer = Trainer(LeNet5(conv=impl), cfg)
    keys = seed_keys(cfg)
    state = trainer.init(keys)
    rng = np.random.default_rng(0)
    n_train = 50 * n_steps
    x = jnp.asarray(rng.integers(0, 256, (n_train, 32, 32, 3), dtype=np.uint8))
    y = jnp.asarray(rng.integers(0, 10, n_train), jnp.int32)
    order = trainer.epoch_order(keys, 0, n_train)
    steps = trainer.steps()
    state, loss, _ = steps(state, x, y, order, 0, n_steps)
    loss.block_until_ready()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        state, loss, _ = steps(state, x, y, order, 0, n_steps)
        loss.block_until_ready()
        times.append((time.perf_counter() - t0) / n_steps)
    return statistics.median(times)


def _median_time(fn, args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def breakdown(n_seeds: int, impl: str, repeats: int) -> None:
    """Times each stage of one vmapped training step, forward and backward, apart."""
    cfg = TrainConfig(seeds=n_seeds)
    trainer = Trainer(LeNet5(conv=impl), cfg)
    params, opt_state = trainer.init(seed_keys(cfg))
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(n_seeds, 50, 32, 32, 3)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 10, (n_seeds, 50)), jnp.int32)

    def block(features):
        conv = Conv(features, (5, 5), impl)
        return lambda p, inp: max_pool_2x2(nn.relu(conv.apply({"params": p}, inp)))

    def summed(f):
        return lambda p, inp: jnp.sum(f(p, inp) ** 2)  # a cotangent as large as the output

    def head(p, inp, labels):
        def dense(q, v):
            return v @ q["kernel"] + q["bias"]

        flat = inp.reshape(*inp.shape[:-3], -1)
        logits = dense(p["fc3"], nn.relu(dense(p["fc2"], nn.relu(dense(p["fc1"], flat)))))
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    b1, b2 = block(6), block(16)
    c1, c2 = summed(b1), summed(b2)
    act1 = jax.jit(jax.vmap(b1))(params["conv1"], x)
    act2 = jax.jit(jax.vmap(b2))(params["conv2"], act1)
    head_params = {k: params[k] for k in ("fc1", "fc2", "fc3")}
    grads = jax.tree_util.tree_map(jnp.ones_like, params)
    stages = {
        "conv1 forward": (jax.vmap(c1), (params["conv1"], x)),
        "conv1 forward+backward": (jax.vmap(jax.grad(c1)), (params["conv1"], x)),
        "conv2 forward": (jax.vmap(c2), (params["conv2"], act1)),
        "conv2 forward+backward": (jax.vmap(jax.grad(c2, (0, 1))), (params["conv2"], act1)),
        "fc1-fc3 + loss, forward+backward": (
            jax.vmap(jax.grad(head, (0, 1))),
            (head_params, act2, y),
        ),
        "optimiser update": (jax.vmap(trainer.tx.update), (grads, opt_state, params)),
        "whole step": (jax.vmap(trainer._one_step), (params, opt_state, x * 0.5 + 127.5, y)),
    }
    print(f"one step, {n_seeds} networks x batch 50, '{impl}' convolution (median ms):")
    for label, (fn, fn_args) in stages.items():
        t = _median_time(jax.jit(fn), fn_args, repeats)
        print(f"  {label:<34} {1e3 * t:8.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--steps", type=int, default=20, help="steps per timed call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--formulations", nargs="+", default=list(IMPLS), choices=IMPLS)
    parser.add_argument(
        "--breakdown", type=int, metavar="S", help="time each stage of a step at S networks"
    )
    args = parser.parse_args()
    if args.breakdown:
        for name in args.formulations:
            breakdown(args.breakdown, name, args.repeats)
        return
    dev = jax.devices()[0]
    print(f"device: {dev.platform} {dev.device_kind}, jax {jax.__version__}")
    print(f"max relative difference from nn.Conv: {check_against_nn_conv():.2e}")
    print(f"{'seeds':>5} {'formulation':>11} {'ms/step':>9} {'s/seed-epoch':>13}")
    for s in args.seeds:
        for name in args.formulations:
            t = time_steps(s, name, args.steps, args.repeats)
            print(f"{s:>5d} {name:>11} {1e3 * t:>9.2f} {1000 * t / s:>13.3f}", flush=True)


if __name__ == "__main__":
    main()
