"""poz-jax against the authors' algorithm, NumPy, rsatoolbox and PyTorch, in one run.

Every implementation is first checked to give the same numbers (1e-6 in
float64, 1e-4 in float32); only then is it timed. Each time is the median of
several repeats after a warm-up, with min and max; ratios are to the
baseline timed in the same run. Where a baseline is too slow to run in full
its time is measured on a part and scaled, and the table says so.

    python scripts/benchmark.py --quick          # a minute or two; writes docs/benchmarks-quick.md
    python scripts/benchmark.py                  # full; writes docs/benchmarks.md and .csv
    python scripts/benchmark.py --check-only     # the agreement checks alone (run by CI)
    python scripts/benchmark.py --sections compare  # one section: docs/benchmarks-compare.md
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib.util
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

jax.config.update("jax_enable_x64", True)

import poz_jax as pj  # noqa: E402
from poz_jax.core import kernels  # noqa: E402
from poz_jax.core.nulls import null_fits, random_orders  # noqa: E402
from poz_jax.data.synthetic import synthetic_activations  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # torch_baselines, beside this file
HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_RSATOOLBOX = importlib.util.find_spec("rsatoolbox") is not None


# --- baselines -------------------------------------------------------------------------


@contextlib.contextmanager
def _undefined_is_nan():
    """NaN where a correlation is undefined (a constant row, one kept node), unwarned."""
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def authors_fits(x, target, counts, order) -> np.ndarray:
    """The authors' algorithm: an RSM from a double loop of ``pearsonr`` per level."""
    n = x.shape[0]
    iu = np.triu_indices(n, 1)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant rows: pearsonr warns and gives NaN
        for k in counts:
            xk = x[:, order[:k]]
            r = np.eye(n)
            for i in range(n):
                for j in range(i + 1, n):
                    r[i, j] = r[j, i] = stats.pearsonr(xk[i], xk[j])[0] ** 2
            out.append(stats.pearsonr(r[iu], target[iu])[0] ** 2)
    return np.array(out)


def numpy_fits(x, target, counts, order) -> np.ndarray:
    """Per-level vectorised NumPy: one ``np.corrcoef`` RSM and one triangle correlation."""
    iu = np.triu_indices(x.shape[0], 1)
    t = target[iu]
    with _undefined_is_nan():
        return np.array(
            [np.corrcoef(np.corrcoef(x[:, order[:k]])[iu] ** 2, t)[0, 1] ** 2 for k in counts]
        )


def rsatoolbox_fits(x, target, counts, order) -> np.ndarray:
    """rsatoolbox per level: ``calc_rdm`` 'correlation' -> r^2, then ``compare`` 'corr'."""
    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import RDMs, calc_rdm, compare

    human = RDMs(target[np.triu_indices(x.shape[0], 1)][None])
    out = []
    for k in counts:
        d = calc_rdm(Dataset(x[:, order[:k]]), method="correlation").get_vectors()
        out.append(compare(RDMs((1.0 - d) ** 2), human, method="corr")[0, 0] ** 2)
    return np.array(out)


# --- timing and checks -----------------------------------------------------------------


def timed(fn, repeats: int) -> tuple[float, float, float]:
    """(median, min, max) seconds of ``fn()`` over ``repeats`` calls after one warm-up call."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), min(times), max(times)


def once(fn) -> tuple[float, float, float]:
    """Seconds of one call of ``fn()``, compilation included, as ``(t, t, t)``."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    t = time.perf_counter() - t0
    return t, t, t


def agree(name: str, got, want, tol: float) -> None:
    err = float(np.nanmax(np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64))))
    same_nan = np.array_equal(np.isnan(np.asarray(got, float)), np.isnan(np.asarray(want, float)))
    if not (err <= tol and same_nan):
        raise SystemExit(f"{name} disagrees with the reference: max |diff| {err:.3g} > {tol}")
    print(f"  agree: {name} (max |diff| {err:.2g}, tolerance {tol:g})")


class Table:
    """Rows of one section: label, (median, min, max), scale note, ratio to the baseline."""

    def __init__(self, section: str, unit: str = "s") -> None:
        self.section, self.unit, self.rows, self.base = section, unit, [], None

    def add(self, label: str, t: tuple[float, float, float], scale: float = 1.0, note: str = ""):
        med, lo, hi = (v * scale for v in t)
        if self.base is None:
            self.base = med
        self.rows.append((label, med, lo, hi, self.base / med, note))
        print(f"  {label:<46} {med:10.4f} s  ({lo:.4f}-{hi:.4f})  x{self.base / med:,.1f} {note}")


# --- sections ----------------------------------------------------------------------------


def sweep_exp2(args, check_only: bool) -> Table:
    d = args.layer_nodes
    print(f"1. sweep, Experiment 2 shapes: 120 x {d}, every 20th level")
    x = synthetic_activations(120, d, seed=0, dtype=np.float64)
    target = np.asarray(pj.rsm(synthetic_activations(120, 64, seed=1, dtype=np.float64)))
    counts = pj.keep_grid(d, step=20)
    order = np.asarray(pj.keep_order(pj.poz(x)))
    ref = numpy_fits(x, target, counts, order)
    few = counts[:: max(1, len(counts) // args.authors_levels)][: args.authors_levels]
    idx = np.searchsorted(-counts, -few)
    agree("authors' algorithm vs NumPy", authors_fits(x, target, few, order), ref[idx], 1e-6)
    if HAS_RSATOOLBOX:
        agree("rsatoolbox vs NumPy", rsatoolbox_fits(x, target, few, order), ref[idx], 1e-6)
    sweep = jax.jit(pj.sweep)
    impls = {}
    for dt, tol in ((np.float32, 1e-4), (np.float64, 1e-6)):
        xd, td = jnp.asarray(x, dt), jnp.asarray(target, dt)
        co, od = jnp.asarray(counts), jnp.asarray(order)
        impls[dt] = lambda xd=xd, td=td, co=co, od=od: sweep(xd, td, co, od)
        agree(f"poz_jax.sweep {np.dtype(dt).name} vs NumPy", impls[dt](), ref, tol)
    # The kernel poz-jax had before the streamed one: all prefix Grams, then every RSM.
    prefix = jax.jit(lambda xd, td, co, od: kernels.fit_kernel(kernels.nested_rsms(xd, co, od), td))
    x32, t32 = jnp.asarray(x, np.float32), jnp.asarray(target, np.float32)
    co, od = jnp.asarray(counts), jnp.asarray(order)
    agree("prefix-Gram kernel float32 vs NumPy", prefix(x32, t32, co, od), ref, 1e-4)
    every = jnp.asarray(np.arange(d, 0, -1))
    every_ref = numpy_fits(x, target, np.arange(d, d - 40, -1), order)
    agree(
        "poz_jax.sweep every level vs NumPy (first 40)",
        sweep(x32, t32, every, od)[:40],
        every_ref,
        1e-4,
    )
    t = Table("Sweep, Experiment 2 shapes (120 x 4096, 205 levels), one set")
    if check_only:
        return t
    scale = len(counts) / len(few)
    t.add(
        "authors' algorithm (pearsonr double loop)",
        timed(lambda: authors_fits(x, target, few, order), 1),
        scale,
        f"timed on {len(few)} levels, x{scale:.0f}",
    )
    t.add("NumPy per level (corrcoef)", timed(lambda: numpy_fits(x, target, counts, order), 3))
    if HAS_RSATOOLBOX:
        t.add(
            "rsatoolbox per level",
            timed(lambda: rsatoolbox_fits(x, target, few, order), 1),
            scale,
            f"timed on {len(few)} levels, x{scale:.0f}",
        )
    else:
        print("  rsatoolbox not installed: pip install 'poz-jax[bench]'")
    t.add("poz_jax.sweep float32 (jit)", timed(impls[np.float32], args.repeats))
    t.add("poz_jax.sweep float64 (jit)", timed(impls[np.float64], args.repeats))
    t.add(
        "previous poz_jax kernel (prefix Grams), float32",
        timed(lambda: prefix(x32, t32, co, od), args.repeats),
    )
    t.add(
        "poz_jax.sweep float32, every level 4096..1",
        timed(lambda: sweep(x32, t32, every, od), args.repeats),
        note="4096 levels, not 205",
    )
    mm = jax.jit(lambda a: a @ a.T)
    xf = jnp.asarray(x, np.float32)
    t.add("for scale: one 120 x 4096 x 120 product, f32", timed(lambda: mm(xf), args.repeats))
    return t


def sweep_exp1(args, check_only: bool) -> Table:
    print("2. sweep, Experiment 1 shapes: 50 networks x 10 classes x 84 nodes, 84 levels")
    rng = np.random.default_rng(2)
    x = np.maximum(rng.normal(size=(50, 10, 84)) - 0.5, 0.0)
    x[..., 0] += 1.0  # no class mean silent on every node at k = 1..2
    targets = np.asarray(pj.rsm(x))
    orders = np.asarray(pj.keep_order(pj.poz(x)))
    counts = np.arange(84, 2, -1)

    def numpy_loop():
        return np.stack([numpy_fits(x[s], targets[s], counts, orders[s]) for s in range(50)])

    sweep = jax.jit(pj.sweep)
    xd, td, cd, od = map(jnp.asarray, (x, targets, counts, orders))
    agree("vmapped poz_jax.sweep vs NumPy loop", sweep(xd, td, cd, od), numpy_loop(), 1e-6)
    t = Table("Sweep, Experiment 1 shapes (50 networks x 10 x 84, 82 levels)")
    if not check_only:
        t.add("NumPy, loop over networks and levels", timed(numpy_loop, 3))
        t.add("poz_jax.sweep, one call (float64, jit)", timed(lambda: sweep(xd, td, cd, od), 5))
    return t


def null(args, check_only: bool) -> Table:
    d = args.layer_nodes
    print(f"3. null: {args.n_null} random keep orders, one Experiment 2 set (120 x {d})")
    x = synthetic_activations(120, d, seed=0, dtype=np.float32)
    target = np.asarray(pj.rsm(synthetic_activations(120, 64, seed=1, dtype=np.float64)))
    counts = pj.keep_grid(d, step=20)
    n_np = 3
    orders = np.asarray(random_orders(0, d, 0, n_np))
    x64 = x.astype(np.float64)
    got = null_fits(jnp.asarray(x), jnp.asarray(target, np.float32), counts, n_np, seed=0)
    want = np.stack([numpy_fits(x64, target, counts, o) for o in orders])
    agree("poz_jax null (float32) vs NumPy per order", got, want, 1e-4)
    t = Table(f"Null distribution: {args.n_null} random orders x 205 levels, one set")
    if check_only:
        return t
    t.add(
        "NumPy, loop over orders",
        timed(lambda: [numpy_fits(x64, target, counts, o) for o in orders], 1),
        args.n_null / n_np,
        f"timed on {n_np} orders, scaled",
    )
    n_jax = min(args.n_null, args.null_timed)
    xd, td = jnp.asarray(x), jnp.asarray(target, np.float32)
    note = "" if n_jax == args.n_null else f"timed on {n_jax} orders, scaled"
    t.add(
        "poz_jax null_fits (float32, batched)",
        timed(lambda: null_fits(xd, td, counts, n_jax, seed=0), max(1, args.repeats // 3)),
        args.n_null / n_jax,
        note,
    )
    return t


def _numpy_entropy(x, bins=10) -> np.ndarray:
    out = np.zeros(x.shape[1])
    for j in range(x.shape[1]):
        col = x[:, j]
        if np.ptp(col) > 0:
            counts, _ = np.histogram(col, bins=bins, range=(col.min(), col.max()))
            p = counts[counts > 0] / len(col)
            out[j] = -np.sum(p * np.log(p))
    return out


def _numpy_fit(a, b) -> float:
    iu = np.triu_indices(a.shape[0], 1)
    with _undefined_is_nan():
        return float(np.corrcoef(a[iu], b[iu])[0, 1] ** 2)


def _numpy_rsm(x) -> np.ndarray:
    with _undefined_is_nan():
        return np.corrcoef(x) ** 2


def _sklearn_reweight(xtr, ttr, xte, tte, alphas, splits_inner):
    """Ridge on the explicit pair design with scikit-learn, the penalty by inner CV."""
    from sklearn.linear_model import Ridge

    def design(f, y):
        iu, ju = np.triu_indices(len(f), 1)
        return f[iu] * f[ju], y[iu, ju]

    def model(f, y, a):
        xd, yd = design(f, y)
        lam = a * np.trace(np.cov(xd.T, bias=True)) * len(xd) / f.shape[1]
        return Ridge(alpha=lam).fit(xd, yd)

    def predict(m, f):
        return m.intercept_ + np.einsum("im,m,jm->ij", f, m.coef_, f)

    scores = np.zeros(len(alphas))
    for s in splits_inner:
        ftr, ytr = xtr[s.train], ttr[np.ix_(s.train, s.train)]
        for i, a in enumerate(alphas):
            m = model(ftr, ytr, a)
            scores[i] += _numpy_fit(predict(m, xtr[s.test]), ttr[np.ix_(s.test, s.test)])
    m = model(xtr, ttr, alphas[int(np.nanargmax(scores))])
    return _numpy_fit(predict(m, xte), tte)


def numpy_compare_split(x, t, split, counts, random, alphas, inner_seed) -> dict[str, float]:
    """One split of the comparison as a straightforward NumPy/scikit-learn loop."""
    from poz_jax.core.crossval import item_splits

    xtr, xte = x[split.train], x[split.test]
    ttr, tte = t[np.ix_(split.train, split.train)], t[np.ix_(split.test, split.test)]
    full = _numpy_fit(_numpy_rsm(xtr), ttr)
    loo = np.array([_numpy_fit(_numpy_rsm(np.delete(xtr, j, 1)), ttr) for j in range(x.shape[1])])
    with _undefined_is_nan():
        r2 = np.corrcoef(xtr.T) ** 2
    varies = np.ptp(xtr, 0) > 0
    col = np.where(varies, (np.nansum(r2[:, varies], 1) - 1) / max(varies.sum() - 1, 1), 1.0)
    orders = {
        "poz": np.argsort(np.mean(xtr == 0, 0), kind="stable"),
        "std": np.argsort(-np.std(xtr, 0), kind="stable"),
        "entropy": np.argsort(-_numpy_entropy(xtr), kind="stable"),
        "collinearity": np.argsort(col, kind="stable"),
        "supervised": np.argsort(np.nan_to_num(-(full - loo), nan=np.inf), kind="stable"),
    }
    out = {"unpruned": _numpy_fit(_numpy_rsm(xte), tte)}

    def chosen(order):
        train = numpy_fits(xtr, ttr, counts, order)
        k = counts[int(np.nanargmax(train))]
        return _numpy_fit(_numpy_rsm(xte[:, order[:k]]), tte)

    for m, o in orders.items():
        out[m] = chosen(o)
    out["random"] = float(np.nanmean([chosen(o) for o in random]))
    inner = item_splits(len(split.train), 3, 1, inner_seed)
    out["reweighting"] = _sklearn_reweight(xtr, ttr, xte, tte, alphas, inner)
    return out


def comparison(args, check_only: bool) -> Table:
    # The agreement check alone needs no full-size set: the same code at 60 x 60,
    # the shapes of tests/test_compare.py's planted sets, whose compiled
    # programs the test suite's shared compilation cache then serves here.
    n_items, n_nodes, step = (60, 60, 1) if check_only else (120, 4096, 20)
    print(f"6. comparison: one {n_items} x {n_nodes} set, 5 folds, every method")
    from poz_jax.analysis.comparison import compare_methods
    from poz_jax.core.reweight import ALPHAS
    from poz_jax.data.synthetic import feature_similarity, planted_embeddings

    feats, x = planted_embeddings(n_items, n_nodes, seed=0)
    t = feature_similarity(feats)
    counts = pj.keep_grid(n_nodes, step=step)
    kw = dict(folds=5, repeats=args.compare_repeats, seed=0, keep_counts=counts)
    got = compare_methods(x, t, **kw)  # float64
    split = got.splits[0]
    random = np.asarray(random_orders(0, n_nodes, 0, 20))
    want = numpy_compare_split(x, t, split, counts, random, np.asarray(ALPHAS), 1)
    agree(
        "compare split 0 (float64) vs NumPy/scikit-learn loop",
        [got.test_fit[0, got.methods.index(m)] for m in want],
        list(want.values()),
        1e-6,
    )
    n_splits = 5 * args.compare_repeats
    tb = Table(f"Comparison: one 120 x 4096 set, 5 folds x {args.compare_repeats} repeats")
    if check_only:
        return tb
    tb.add(
        "NumPy/scikit-learn loop",
        once(lambda: numpy_compare_split(x, t, split, counts, random, np.asarray(ALPHAS), 1)),
        n_splits,
        f"timed on 1 split, x{n_splits}; in-sample fits not included",
    )
    for name, dtype in (("float32", np.float32), ("float64", np.float64)):
        xs, ts = x.astype(dtype), t.astype(dtype)
        tb.add(
            f"poz_jax compare, {name}",
            once(lambda xs=xs, ts=ts: compare_methods(xs, ts, **kw).test_fit),
            1.0,
            "one run: all splits, the in-sample fits and compilation",
        )
    return tb


def training(args, check_only: bool) -> Table | None:
    if not HAS_TORCH:
        print("4. training: torch not installed, skipped")
        return None
    import torch
    from torch_baselines import lenet_from_flax

    from poz_jax.models import LeNet5
    from poz_jax.training.train import TrainConfig, Trainer, seed_keys

    print("4. training: LeNet5, batch 50, SGD lr 0.001 momentum 0.9")
    rng = np.random.default_rng(0)
    n_steps = args.train_steps
    x = rng.integers(0, 256, (50 * n_steps, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, 50 * n_steps)

    # Agreement: two steps from the same weights on the same batches.
    cfg = TrainConfig(seeds=1)
    trainer = Trainer(LeNet5(), cfg)
    keys = seed_keys(cfg)
    state = trainer.init(keys)
    start = jax.tree_util.tree_map(lambda a: np.asarray(a[0]), state[0])
    order = jnp.arange(100)[None]
    state, _, _ = trainer.steps()(state, jnp.asarray(x[:100]), jnp.asarray(y[:100]), order, 0, 2)
    model = lenet_from_flax(start)
    opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9)
    xt = (torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255.0 - 0.5) / 0.5
    yt = torch.from_numpy(y)
    for i in range(2):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(
            model(xt[50 * i : 50 * i + 50]), yt[50 * i : 50 * i + 50]
        ).backward()
        opt.step()
    got = np.asarray(state[0]["fc1"]["kernel"][0]).T
    agree(
        "poz_jax vs PyTorch weights after 2 SGD steps", got, model.fc1.weight.detach().numpy(), 1e-4
    )
    t = Table("Training LeNet5: seconds per network-epoch (1000 steps of batch 50)")
    if check_only:
        return t

    def torch_steps():
        for i in range(n_steps):
            opt.zero_grad()
            s = slice(50 * i, 50 * i + 50)
            torch.nn.functional.cross_entropy(model(xt[s]), yt[s]).backward()
            opt.step()

    t.add(
        "PyTorch, one network at a time",
        timed(torch_steps, 3),
        1000 / n_steps,
        f"timed on {n_steps} steps, scaled to 1000",
    )
    for s_count in args.seeds:
        cfg = TrainConfig(seeds=s_count)
        trainer = Trainer(LeNet5(), cfg)
        keys = seed_keys(cfg)
        st = trainer.init(keys)
        xs, ys = jnp.asarray(x), jnp.asarray(y)
        order = trainer.epoch_order(keys, 0, len(x))
        steps = trainer.steps()
        t0 = time.perf_counter()
        st, loss, _ = steps(st, xs, ys, order, 0, n_steps)
        loss.block_until_ready()
        compile_s = time.perf_counter() - t0
        holder = [st]

        def run(steps=steps, xs=xs, ys=ys, order=order, holder=holder):
            holder[0], loss, _ = steps(holder[0], xs, ys, order, 0, n_steps)
            return loss

        t.add(
            f"poz_jax, {s_count} networks vmapped",
            timed(run, 3),
            1000 / n_steps / s_count,
            f"per network; first call incl. compile {compile_s:.1f} s",
        )
    return t


def vgg_forward(args, check_only: bool) -> Table | None:
    if not HAS_TORCH:
        print("5. VGG-16 forward: torch not installed, skipped")
        return None
    import torch
    from torch_baselines import vgg16, vgg16_fc7

    from poz_jax.models import convert
    from poz_jax.models.vgg import VGG16

    n = args.vgg_images
    print(f"5. VGG-16 forward: {n} images at 224 x 224, fc7")
    model = vgg16(0)
    params = jax.tree_util.tree_map(
        jnp.asarray, convert.to_flax({k: v.numpy() for k, v in model.state_dict().items()})
    )
    images = np.random.default_rng(0).normal(size=(n, 3, 224, 224)).astype(np.float32)
    it, ij = torch.from_numpy(images), jnp.asarray(images.transpose(0, 2, 3, 1))
    fwd = jax.jit(lambda p, x: VGG16().apply({"params": p}, x)["fc7"])
    ref = vgg16_fc7(model, it).numpy()
    got = np.asarray(fwd(params, ij))
    agree("Flax VGG-16 fc7 vs PyTorch (relative)", got / ref.max(), ref / ref.max(), 1e-4)
    t = Table(f"VGG-16 forward to fc7, {n} images at 224 x 224")
    if not check_only:
        t.add("PyTorch (eval, no_grad)", timed(lambda: vgg16_fc7(model, it), 2))
        t.add("poz_jax Flax port (jit, float32)", timed(lambda: fwd(params, ij), 2))
    return t


def trimming(args, check_only: bool) -> list[Table]:
    """Trimmed against untrimmed LeNet5 inference, and a reduced trimming study end to end."""
    import tempfile

    from poz_jax.data.cifar10 import cifar_scale
    from poz_jax.data.synthetic import write_fake_cifar10, write_fake_cifar10h
    from poz_jax.models import LeNet5
    from poz_jax.models.lenet import LAYERS
    from poz_jax.models.trim import physical_trim, size
    from poz_jax.pipelines import trim

    n = args.trim_images
    print(f"6. trimming: LeNet5 inference on {n} images, conv2 and fc1 trimmed (Hu et al.'s two)")
    rng = np.random.default_rng(0)
    x = cifar_scale(jnp.asarray(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)))
    x = x.astype(jnp.float32)
    params = LeNet5().init(jax.random.PRNGKey(0), x[:1])["params"]
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), params)
    full = jax.jit(lambda p, x: LeNet5().apply({"params": p}, x)[0])
    t = Table(f"LeNet5 inference, {n} images (jit, float32, one network)")
    timings = [("untrimmed", lambda: full(params, x))]
    for keep in (0.5, 0.25):
        masks = {k: np.ones(d, np.float32) for k, d in LAYERS.items()}
        for k in ("conv2", "fc1"):
            masks[k][int(keep * LAYERS[k]) :] = 0
        model, small = physical_trim(params, masks)
        small = jax.tree_util.tree_map(jnp.asarray, small)
        masked = jax.jit(lambda p, x, m=masks: LeNet5().apply({"params": p}, x, m)[0])
        fwd = jax.jit(lambda p, x, model=model: model.apply({"params": p}, x)[0])
        want, got = np.asarray(masked(params, x)), np.asarray(fwd(small, x))
        agree(f"physically trimmed ({keep:g}) vs masked logits (relative)",
              got / np.abs(want).max(), want / np.abs(want).max(), 1e-4)  # fmt: skip
        small_size, full_size = size(model.widths), size(tuple(LAYERS.values()))
        kept = {k: small_size[k] / full_size[k] for k in ("parameters", "macs")}
        note = (f"widths {model.widths}, {kept['parameters']:.0%} of the parameters, "
                f"{kept['macs']:.0%} of the multiply-adds")  # fmt: skip
        timings.append((f"masked ({keep:g} of conv2, fc1)", lambda m=masked: m(params, x), ""))
        timings.append((f"physically trimmed ({keep:g})", lambda f=fwd, s=small: f(s, x), note))
    study = Table("Trimming study end to end (reduced design, generated data)")
    if check_only:
        return [t, study]
    for label, fn, *note in timings:
        t.add(label, timed(fn, args.repeats), note=note[0] if note else "")
    cfg = trim.TrimConfig(n_networks=2, score_images=500, tune_images=500, rounds=2)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        where, data = write_fake_cifar10(tmp / "cifar", "npz", n_train=500, n_test=1000)
        write_fake_cifar10h(tmp / "h", np.repeat(np.arange(10), 1000), n_matched=10)
        init = jax.vmap(lambda k: LeNet5().init(k, x[:1])["params"])
        nets = jax.tree_util.tree_map(np.asarray, init(jax.random.split(jax.random.PRNGKey(1), 2)))
        nets = jax.tree_util.tree_map(lambda a: a.astype(np.float32), nets)
        from poz_jax.io import files

        files.save_tree(tmp / "networks.npz", nets, {})

        def run():
            out = tmp / f"out{len(list(tmp.glob('out*')))}"
            trim.run(cfg, out, tmp / "networks.npz", where, tmp / "h", progress=False,
                     verify=False)  # fmt: skip
            return jnp.zeros(())

        n_tuned = cfg.networks * (1 + 4 * (2 + cfg.random_draws) * len(cfg.keep) + cfg.rounds)
        study.add(
            "poz-jax trim, 2 networks, 500 + 500 images",
            once(run),
            note=f"{n_tuned} networks fine-tuned, compile included; the full study's time is in "
            "experiments/results/trim/timing.json",
        )
    return [t, study]


# --- report --------------------------------------------------------------------------------


def machine() -> list[str]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    dev = jax.devices()[0]
    lines = [
        f"- CPU: {cpu}, {os.cpu_count()} cores",
        f"- JAX: {jax.default_backend()} ({dev.device_kind}), {jax.device_count()} device(s)",
        f"- jax {jax.__version__}, numpy {np.__version__}, Python {platform.python_version()}",
    ]
    if HAS_TORCH:
        import torch

        lines.append(f"- torch {torch.__version__} ({torch.get_num_threads()} threads)")
    if HAS_RSATOOLBOX:
        from importlib.metadata import version

        lines.append(f"- rsatoolbox {version('rsatoolbox')}")
    return lines


def write_report(tables: list[Table], path: Path, mode: str) -> None:
    md = [f"# Benchmarks ({mode})", "", "Written by `scripts/benchmark.py`.", "", *machine(), ""]
    rows = []
    for t in tables:
        md += [
            f"## {t.section}",
            "",
            "| implementation | median s | min s | max s | speed-up | note |",
        ]
        md += ["| --- | ---: | ---: | ---: | ---: | --- |"]
        for label, med, lo, hi, ratio, note in t.rows:
            md.append(f"| {label} | {med:.4g} | {lo:.4g} | {hi:.4g} | {ratio:,.1f}x | {note} |")
            rows.append([t.section, label, med, lo, hi, ratio, note])
        md.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(md))
    with open(path.with_suffix(".csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["section", "implementation", "median_s", "min_s", "max_s", "speedup", "note"])
        w.writerows(rows)
    print(f"wrote {path} and {path.with_suffix('.csv')}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, a minute or two")
    parser.add_argument("--check-only", action="store_true", help="agreement checks, no timing")
    parser.add_argument("--out", help="report path (default docs/benchmarks[-quick].md)")
    parser.add_argument(
        "--sections",
        nargs="+",
        choices=["sweep", "sweep-exp1", "null", "training", "vgg", "compare", "trim"],
        help="run only these sections (default all)",
    )
    args = parser.parse_args(argv)
    quick = args.quick or args.check_only
    args.repeats = 3 if quick else 7
    args.authors_levels = 1 if quick else 3
    args.n_null = 10000
    # The agreement check alone needs no full-size layer: the same code at 120 x 1024.
    args.layer_nodes = 1024 if args.check_only else 4096
    args.null_timed = 200 if quick else 2000
    args.train_steps = 10 if quick else 40
    args.seeds = (1, 10) if quick else (1, 10, 50)
    args.vgg_images = 1 if args.check_only else 4 if quick else 120
    args.compare_repeats = 1 if quick else 10
    args.trim_images = 1000 if quick else 10000
    if HAS_TORCH:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)  # both PyTorch sections, as reported
    sections = {
        "sweep": sweep_exp2,
        "sweep-exp1": sweep_exp1,
        "null": null,
        "training": training,
        "vgg": vgg_forward,
        "compare": comparison,
        "trim": trimming,
    }
    chosen = args.sections or list(sections)
    sections = [sections[name] for name in chosen]
    tables = []
    for f in sections:
        got = f(args, args.check_only)
        tables += got if isinstance(got, list) else [] if got is None else [got]
    if args.check_only:
        print("all agreement checks passed")
        return
    mode = "quick" if args.quick else "full"
    # A run of some sections writes its own page, leaving the full page whole.
    part = "-" + "-".join(args.sections) if args.sections else ""
    stem = f"benchmarks{part}{'-quick' if quick else ''}.md"
    out = Path(args.out) if args.out else ROOT / "docs" / stem
    write_report(tables, out, mode)


if __name__ == "__main__":
    main()
