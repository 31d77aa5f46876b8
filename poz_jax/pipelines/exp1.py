"""Experiment 1: LeNet5 x many seeds on CIFAR-10, fc2 PoZ and the pruning sweep.

``run(cfg, out)`` trains (resuming from ``out/checkpoint.npz``), embeds the
test set, analyses it and writes the tables and Figure 1; each stage is
skipped when its finished output is already in ``out``.
"""

from __future__ import annotations

import dataclasses
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from poz_jax import files
from poz_jax.core.ranking import keep_grid, keep_order, max_kept_poz, poz
from poz_jax.core.rsa import class_means, rsm
from poz_jax.core.sweeps import sweep
from poz_jax.data import load_cifar10
from poz_jax.models import LeNet5
from poz_jax.plots import figure1, save_figure
from poz_jax.runtime import float64, progress_bar
from poz_jax.train import (
    TrainConfig,
    Trainer,
    chunks,
    pad_seeds,
    padded_seeds,
    replicate,
    seed_keys,
    seed_mesh,
    shard_seeds,
    unpad_seeds,
)

N_CLASSES = 10
N_NODES = 84  # fc2
_EMB_KEYS = ("fc2", "labels", "test_accuracy")

PRESETS = {
    "paper": TrainConfig(),
    "adam": TrainConfig(optimizer="adam"),
    # Adam, because 100 SGD steps at lr 0.001 leave LeNet5 at chance (0.10 on
    # CIFAR-10); Adam reaches about 0.31 in the same minute.
    "quick": TrainConfig(seeds=4, epochs=1, train_subset=5000, optimizer="adam"),
}


@partial(jax.jit, static_argnames="n_classes")
def analyse(acts: jax.Array, labels: jax.Array, keep_counts: jax.Array, n_classes: int = 10):
    """The per-network analysis, vmapped over networks by broadcasting.

    Args:
      acts: ``(seeds, n_images, n_nodes)`` post-ReLU embeddings.
      labels: ``(n_images,)`` int class labels in ``0..n_classes-1``.
      keep_counts: ``(n_levels,)`` node counts.

    Returns:
      dict of ``poz`` ``(seeds, n_nodes)``, ``order`` (keep order), ``rsm``
      ``(seeds, n_classes, n_classes)`` (the unpruned class-mean RSM), ``fit``
      and ``max_poz`` ``(seeds, n_levels)``: the fit of the class-mean RSM at
      each level to the unpruned one, and the largest PoZ kept.
    """
    p = poz(acts)
    order = keep_order(p)
    means = class_means(acts, labels, n_classes)
    baseline = rsm(means)
    return {
        "poz": p,
        "order": order,
        "rsm": baseline,
        "fit": sweep(means, baseline, keep_counts, order),
        "max_poz": max_kept_poz(p, keep_counts, order),
    }


def lenet_trainer(cfg: TrainConfig) -> Trainer:
    """The LeNet5 the config describes, with its training functions."""
    return Trainer(LeNet5(conv=cfg.conv, init_style=cfg.init_style), cfg)


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


def _check_resumable(meta: dict, cfg: TrainConfig, data: dict, path: Path) -> int:
    """Refuse ``path`` unless ``cfg`` on ``data`` may continue it; returns its epochs done.

    The same settings and the same data (by content digest), and no more
    epochs done than ``cfg`` asks for.
    """
    epochs_done = _saved_epochs(meta, path)
    saved = dict(meta["train"])
    want = dataclasses.asdict(cfg)
    # A longer run may continue a shorter one; nothing else may change.
    for name in ("epochs", "steps_per_call"):
        saved.pop(name, None)
        want.pop(name)
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
    pick = np.sort(np.random.default_rng(cfg.base_seed).permutation(len(x))[: cfg.train_subset])
    return x[pick], y[pick]


def train_networks(cfg: TrainConfig, data: dict, out: Path, progress: bool = True):
    """Train (or resume) ``cfg.seeds`` LeNet5s; returns ``(params, history)``.

    A checkpoint is written to ``out/checkpoint.npz`` after every epoch; it
    holds the real seeds only, so a run may resume on another device count.
    """
    x_train, y_train = _train_subset(cfg, *data["train"])
    n_steps = len(x_train) // cfg.batch_size
    if n_steps < 1:
        raise ValueError(f"{len(x_train)} training images is less than one batch")
    trainer = lenet_trainer(cfg)
    mesh = seed_mesh(cfg.seeds)
    n_pad = padded_seeds(cfg.seeds, mesh)
    keys = seed_keys(cfg)
    state = trainer.init(keys)
    ckpt = out / "checkpoint.npz"
    key = data_key(data)
    history: list[dict] = []
    start = 0
    if ckpt.exists():
        state, meta = files.load_tree(ckpt, state)
        start = _check_resumable(meta, cfg, key, ckpt)
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
            for first, n in chunks(n_steps, cfg.steps_per_call):
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
                "test_acc_sd": float(test_acc.std()),
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


def embed(forward, params, images: np.ndarray, batch: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """``(seeds, n, 10)`` logits and ``(seeds, n, 84)`` fc2 embeddings, in image batches."""
    logits, fc2 = [], []
    for i in range(0, len(images), batch):
        lg, f = forward(params, jnp.asarray(images[i : i + batch]))
        logits.append(np.asarray(lg))
        fc2.append(np.asarray(f))
    return np.concatenate(logits, axis=1), np.concatenate(fc2, axis=1)


def accuracy(forward, params, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``(seeds,)`` top-1 accuracy."""
    logits, _ = embed(forward, params, images)
    return (logits.argmax(-1) == np.asarray(labels)[None]).mean(-1)


def tables(result: dict, keep_counts: np.ndarray, paper_counts: np.ndarray, acc: np.ndarray):
    """``(summary_rows, per_seed_rows, accuracy_rows)`` for the CSV files.

    Means and sds over seeds ignore NaN fits (a level where some class mean is
    constant); ``n_nan`` counts them. sd is NumPy's default (ddof=0).
    """
    fit, top = np.asarray(result["fit"], np.float64), np.asarray(result["max_poz"], np.float64)
    n_seeds = fit.shape[0]
    summary, per_seed = [], []
    for j, k in enumerate(keep_counts):
        f = fit[:, j]
        ok = ~np.isnan(f)
        summary.append(
            {
                "keep_count": int(k),
                "keep_fraction": round(k / N_NODES, 6),
                "paper_level": bool(k in paper_counts),
                "fit_mean": float(f[ok].mean()) if ok.any() else float("nan"),
                "fit_sd": float(f[ok].std()) if ok.any() else float("nan"),
                "max_poz_mean": float(top[:, j].mean()),
                "max_poz_sd": float(top[:, j].std()),
                "n_nan": int((~ok).sum()),
                "n_seeds": n_seeds,
            }
        )
        for s in range(n_seeds):
            per_seed.append(
                {
                    "seed": s,
                    "keep_count": int(k),
                    "keep_fraction": round(k / N_NODES, 6),
                    "fit": float(f[s]),
                    "max_poz": float(top[s, j]),
                }
            )
    accuracy_rows = [{"seed": s, "test_accuracy": float(a)} for s, a in enumerate(acc)]
    return summary, per_seed, accuracy_rows


def run(
    cfg: TrainConfig,
    out: str | Path,
    data_dir: str | Path | None = None,
    progress: bool = True,
    verify: bool = True,
) -> dict:
    """Run Experiment 1 end to end into ``out``; returns the summary rows and paths.

    ``data_dir`` is a local CIFAR-10 copy (``None`` downloads it); ``verify``
    checks the archive and the full split sizes (off only for generated data).
    """
    out = files.check_out_dir(out)
    data = {s: load_cifar10(s, data_dir, verify=verify) for s in ("train", "test")}
    missing = np.setdiff1d(np.arange(N_CLASSES), data["test"][1])
    if missing.size:
        raise ValueError(f"class {missing[0]} has no test images: class means are undefined")
    key = data_key(data)
    # Check everything already in `out` before writing anything to it.
    emb_path, ckpt = out / "embeddings.npz", out / "checkpoint.npz"
    emb_meta = files.load_meta(emb_path) if emb_path.exists() else {}
    emb_epochs = _check_resumable(emb_meta, cfg, key, emb_path) if emb_meta else 0
    if ckpt.exists():
        _check_resumable(files.load_meta(ckpt), cfg, key, ckpt)
    out.mkdir(parents=True, exist_ok=True)
    files.clean_temporaries(out)
    files.write_json(
        out / "config.json",
        {"train": dataclasses.asdict(cfg), "data_dir": str(data_dir) if data_dir else None},
    )
    # Embeddings are written once training has finished all its epochs.
    if emb_epochs == cfg.epochs:
        arrays = files.load_arrays(emb_path)[0]
        fc2, labels, acc = (arrays[k] for k in _EMB_KEYS)
        history = emb_meta["history"]
    else:  # no embeddings yet, or of a shorter run that this one continues
        params, history = train_networks(cfg, data, out, progress)
        trainer = lenet_trainer(cfg)
        logits, fc2 = embed(trainer.forward(), params, data["test"][0])
        labels = data["test"][1]
        acc = (logits.argmax(-1) == labels[None]).mean(-1)
        meta = {"epoch": cfg.epochs, "history": history, "train": dataclasses.asdict(cfg)}
        files.save_arrays(
            emb_path, {**meta, "data": key}, fc2=fc2, labels=labels, test_accuracy=acc
        )
    if not np.isfinite(fc2).all():
        raise ValueError("the fc2 embeddings hold NaN or inf: training diverged")
    paper_counts = keep_grid(N_NODES)
    all_counts = np.arange(N_NODES, 0, -1)
    # Float64 for the analysis: it is tiny (10 x 84 per network), and class means of
    # similar classes make float32 fits wobble in the 4th decimal.
    with float64():
        result = jax.device_get(
            analyse(jnp.asarray(fc2, jnp.float64), jnp.asarray(labels), jnp.asarray(all_counts))
        )
    summary, per_seed, acc_rows = tables(result, all_counts, paper_counts, acc)
    files.write_csv(out / "summary.csv", summary)
    files.write_csv(out / "per_seed.csv", per_seed)
    files.write_csv(out / "accuracy.csv", acc_rows)
    files.save_arrays(
        out / "analysis.npz", {"train": dataclasses.asdict(cfg)}, keep_counts=all_counts, **result
    )
    files.write_json(out / "history.json", history)
    rows = [r for r in summary if r["paper_level"]]
    fig = figure1(
        100 * np.round(np.arange(1.0, 0, -0.1), 1),
        *(
            np.array([r[c] for r in rows])
            for c in ("fit_mean", "fit_sd", "max_poz_mean", "max_poz_sd")
        ),
        title=f"LeNet5 fc2, CIFAR-10: {cfg.seeds} seeds, {cfg.optimizer}, {cfg.epochs} epochs",
    )
    figs = save_figure(fig, out / "figure1")
    # k = 1 (every class mean constant) and k = 2 (every r^2 exactly 1) are NaN by definition.
    n_nan = sum(r["n_nan"] for r in summary if r["keep_count"] > 2)
    return {"summary": rows, "test_accuracy": acc, "figures": figs, "n_nan": n_nan}


def format_summary(res: dict) -> str:
    """The paper-level rows of ``run``'s result as a text table."""
    acc = res["test_accuracy"]
    lines = [
        f"test accuracy over {len(acc)} seeds: {acc.mean():.4f} +- {acc.std():.4f}",
        f"{'kept':>5} {'% kept':>7} {'fit mean':>9} {'fit sd':>7} {'max PoZ':>8} {'sd':>6}",
    ]
    for r in res["summary"]:
        lines.append(
            f"{r['keep_count']:>5d} {100 * r['keep_fraction']:>6.0f}% {r['fit_mean']:>9.4f} "
            f"{r['fit_sd']:>7.4f} {100 * r['max_poz_mean']:>7.1f}% {100 * r['max_poz_sd']:>5.1f}%"
        )
    if res["n_nan"]:
        lines.append(
            f"note: {res['n_nan']} (seed, level) fits with k > 2 kept nodes were NaN "
            "(a class mean constant over the kept nodes); see summary.csv's n_nan"
        )
    return "\n".join(lines)
