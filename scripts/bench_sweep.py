"""Time poz_jax.sweep against a per-level NumPy baseline at Experiment 2's shapes.

120 items x 4096 nodes (post-ReLU-like, most nodes silent for most items),
the paper's 205 keep levels (4096, 4076, ..., 16). Prints medians of several
repeats after warm-up, the ratio to the NumPy baseline, and the time of one
120 x 4096 x 120 matrix product for scale.

    python scripts/bench_sweep.py [--repeats 7] [--items 120] [--nodes 4096]
"""

from __future__ import annotations

import argparse
import platform
import time
from functools import partial

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

import poz_jax as pj  # noqa: E402
from poz_jax.synthetic import synthetic_activations  # noqa: E402


def numpy_sweep(x: np.ndarray, target: np.ndarray, counts, order) -> np.ndarray:
    """The per-level baseline: one ``np.corrcoef`` RSM and one triangle correlation per level."""
    iu = np.triu_indices(x.shape[0], 1)
    t = target[iu]
    out = np.empty(len(counts))
    for level, k in enumerate(counts):
        r = np.corrcoef(x[:, order[:k]]) ** 2
        out[level] = np.corrcoef(r[iu], t)[0, 1] ** 2
    return out


def timed(fn, repeats: int) -> tuple[float, float, float]:
    """(median, min, max) seconds of ``fn()`` over ``repeats`` calls after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), min(times), max(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=120)
    parser.add_argument("--nodes", type=int, default=4096)
    parser.add_argument("--step", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    x64 = synthetic_activations(args.items, args.nodes, seed=0, dtype=np.float64)
    counts = pj.keep_grid(args.nodes, step=args.step)
    order = np.asarray(pj.keep_order(pj.poz(x64)))
    target = np.asarray(pj.rsm(synthetic_activations(args.items, 64, seed=1, dtype=np.float64)))
    print(
        f"machine: {platform.processor() or platform.machine()}, {jax.device_count()} "
        f"{jax.default_backend()} device(s), jax {jax.__version__}, numpy {np.__version__}"
    )
    print(
        f"input: {args.items} x {args.nodes}, {len(counts)} levels, "
        f"mean PoZ {float(np.mean(x64 == 0)):.2f}, {args.repeats} repeats after warm-up"
    )

    baseline = numpy_sweep(x64, target, counts, order)
    rows = []
    t_np = timed(lambda: numpy_sweep(x64, target, counts, order), max(3, args.repeats // 2))
    rows.append(("numpy per-level (float64)", t_np))
    mm = jax.jit(lambda a: a @ a.T)
    sweep = jax.jit(pj.sweep)
    cd, od = jax.device_put(counts), jax.device_put(order)
    for dtype, tol in ((np.float32, 1e-4), (np.float64, 1e-10)):
        xd, td = jax.device_put(x64.astype(dtype)), jax.device_put(target.astype(dtype))
        err = np.nanmax(np.abs(np.asarray(sweep(xd, td, cd, od)) - baseline))
        assert err < tol, f"{dtype.__name__} sweep differs from the NumPy baseline by {err}"
        name = dtype.__name__
        run = partial(lambda a, b: sweep(a, b, cd, od).block_until_ready(), xd, td)
        rows.append((f"poz_jax.sweep ({name})", timed(run, args.repeats)))
        product = partial(lambda a: mm(a).block_until_ready(), xd)
        rows.append(
            (
                f"one {args.items}x{args.nodes}x{args.items} product ({name})",
                timed(product, args.repeats),
            )
        )

    print(f"\n{'what':<36} {'median s':>10} {'min s':>10} {'max s':>10} {'vs numpy':>9}")
    for name, (med, lo, hi) in rows:
        print(f"{name:<36} {med:>10.5f} {lo:>10.5f} {hi:>10.5f} {t_np[0] / med:>8.1f}x")


if __name__ == "__main__":
    main()
