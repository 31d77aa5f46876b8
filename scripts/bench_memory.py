"""Benchmark: peak memory and time of one streamed sweep at many items.

    python scripts/bench_memory.py --items 10000 --nodes 4096 --step 20

Prints the peak resident memory of the process (``ru_maxrss``) after one
``poz_jax.sweep`` of an ``items x nodes`` float32 layer at the levels
``nodes, nodes - step, ...``, beside the size of the inputs, so the
footprint can be read against O(items^2 + items x nodes).
"""

from __future__ import annotations

import argparse
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np

import poz_jax as pj
from poz_jax.data.synthetic import synthetic_activations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10000)
    parser.add_argument("--nodes", type=int, default=4096)
    parser.add_argument("--step", type=int, default=20)
    args = parser.parse_args()
    x = synthetic_activations(args.items, args.nodes, seed=0)
    # A target with the items' own structure: the RSM of a few random features.
    feats = np.random.default_rng(1).normal(size=(args.items, 8)).astype(np.float32)
    target = np.asarray(pj.rsm(feats))
    counts = pj.keep_grid(args.nodes, step=args.step)
    order = np.asarray(pj.keep_order(pj.poz(x)))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    sweep = jax.jit(pj.sweep)
    t0 = time.perf_counter()
    fits = np.asarray(sweep(jnp.asarray(x), jnp.asarray(target), counts, order))
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    n, d = x.shape
    print(f"sweep of {n} items x {d} nodes at {len(counts)} levels, float32, {jax.devices()[0]}")
    print(
        f"  inputs: activations {x.nbytes / 2**30:.2f} GiB, target {target.nbytes / 2**30:.2f} GiB"
    )
    print(f"  one (items+1)^2 Gram: {(n + 1) ** 2 * 4 / 2**30:.2f} GiB")
    print(f"  peak resident memory: {peak:.2f} GiB (before the sweep: {base:.2f} GiB)")
    print(
        f"  time incl. compile: {seconds:.1f} s; fit at 100% / 50% kept: {fits[0]:.3g} / "
        f"{fits[len(fits) // 2]:.4f}"
    )


if __name__ == "__main__":
    main()
