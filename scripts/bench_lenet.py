"""Benchmark: LeNet5 training steps vmapped over seeds, three convolution formulations.

Prints, for each seed count S and each convolution formulation, the median
time of one vmapped SGD step (batch 50 per seed, jitted, warmed up, inside a
``lax.scan`` of ``--steps`` steps as in training) and the implied seconds
per seed-epoch (1000 steps / S). Also checks both formulations give the same
outputs as ``flax.linen.Conv`` on random inputs.

    python scripts/bench_lenet.py --seeds 1 10 50
"""

from __future__ import annotations

import argparse
import statistics
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from poz_jax.models import LeNet5
from poz_jax.models.lenet import Conv
from poz_jax.train import TrainConfig, Trainer, seed_keys

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
    cfg = TrainConfig(seeds=n_seeds, conv=impl, steps_per_call=n_steps)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--steps", type=int, default=20, help="steps per timed call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--formulations", nargs="+", default=list(IMPLS), choices=IMPLS)
    args = parser.parse_args()
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
