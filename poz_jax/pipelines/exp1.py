"""Experiment 1: LeNet5 x many seeds on CIFAR-10, fc2 PoZ and the pruning sweep.

``run(cfg, out)`` trains (resuming from ``out/checkpoint.npz``), embeds the
test set, analyses it and writes the tables and Figure 1; each stage is
skipped when its finished output is already in ``out``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from poz_jax.analysis import stats
from poz_jax.analysis.pruning import Analysis, analyse
from poz_jax.core.ranking import keep_grid, poz
from poz_jax.core.rsa import class_means, rsm
from poz_jax.data import load_cifar10
from poz_jax.io import cache, files, provenance
from poz_jax.models.lenet import embed
from poz_jax.report.console import summary_table
from poz_jax.report.plots import figure1, save_figure
from poz_jax.report.tables import exp1_tables
from poz_jax.study.contract import Input, Result, Study
from poz_jax.study.runner import check_results_folder, results_folder
from poz_jax.study.runtime import float64, status
from poz_jax.study.staging import relocate
from poz_jax.training.train import (
    Compute,
    TrainConfig,
    _current_names,
    check_resumable,
    data_key,
    lenet_trainer,
    seed_keys,
    train_networks,
)

N_CLASSES = 10
N_NODES = 84  # fc2
NETWORKS = "networks.npz"  # the trained parameters, float32, compressed (committed with results)
_EMB_KEYS = ("fc2", "labels", "test_accuracy")

PRESETS = {
    "paper": TrainConfig(),
    "adam": TrainConfig(optimizer="adam"),
    # Adam, because 100 SGD steps at lr 0.001 leave LeNet5 at chance (0.10 on
    # CIFAR-10); Adam reaches about 0.31 in the same minute.
    "quick": TrainConfig(seeds=4, epochs=1, train_subset=5000, optimizer="adam"),
}


def config(preset: str = "paper", **overrides) -> TrainConfig:
    """A preset's :class:`TrainConfig` with the given fields replaced (``None`` keeps the preset's).

    The one place presets and overrides meet: the command line and
    ``experiments/exp1.py`` both call it.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    return dataclasses.replace(
        PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}
    )


def analyse_embeddings(fc2, labels, keep_counts) -> tuple[Analysis, np.ndarray]:
    """Experiment 1's analysis of ``(seeds, n_images, 84)`` fc2 embeddings, in float64.

    The items are the class means; the nodes are ordered by their PoZ over
    all images; the target is each network's own unpruned class-mean RSM.
    Returns the :class:`~poz_jax.analysis.pruning.Analysis` and those RSMs
    ``(seeds, 10, 10)``.
    """
    # Float64: it is tiny (10 x 84 per network), and class means of similar
    # classes make float32 fits wobble in the 4th decimal.
    with float64():
        acts = jnp.asarray(fc2, jnp.float64)
        means = class_means(acts, jnp.asarray(labels), N_CLASSES)
        baseline = rsm(means)
        result = analyse(means, baseline, keep_counts, poz_values=poz(acts))
    return result, np.asarray(baseline)


def run(
    cfg: TrainConfig,
    out: str | Path,
    data_dir: str | Path | None = None,
    progress: bool = True,
    verify: bool = True,
    compute: Compute | None = None,
) -> Result:
    """Run Experiment 1 end to end into ``out``; returns the summary rows and paths.

    ``data_dir`` is a local CIFAR-10 copy (``None`` downloads it); ``verify``
    checks the archive and the full split sizes (off only for generated data);
    ``compute`` says how to compute (the convolution, steps per call), never
    what: a run may resume with another.
    """
    out = check_results_folder(out, "exp1")
    data = {s: load_cifar10(s, data_dir, verify=verify) for s in ("train", "test")}
    missing = np.setdiff1d(np.arange(N_CLASSES), data["test"][1])
    if missing.size:
        raise ValueError(f"class {missing[0]} has no test images: class means are undefined")
    key = data_key(data)
    # The data's digest is of the arrays read (any of the formats it may come in).
    source = str(data_dir) if data_dir else "downloaded or tensorflow-datasets"
    cifar = provenance.input_record(source, files.fingerprint(**key), "train and test arrays")
    with results_folder(out, "exp1", cfg, {"cifar10": cifar}) as work:
        # What the folder (or an interrupted run) already holds must belong to this run.
        nets, ckpt = work / NETWORKS, work / "checkpoint.npz"
        nets_meta = files.load_meta(nets) if nets.exists() else {}
        if nets_meta:
            check_resumable(nets_meta, cfg, key, nets)
        if ckpt.exists():
            check_resumable(files.load_meta(ckpt), cfg, key, ckpt)
        trainer = lenet_trainer(cfg, compute)
        params, history = _networks(cfg, work, data, key, trainer, compute, progress, nets_meta)
        # From here on the networks are an input of the analysis: recorded with their
        # digest, by their name in the folder (which travels with them).
        record = provenance.input_record(NETWORKS, files.file_digest(nets), "file bytes")
        provenance.write_config(work, "exp1", cfg, {"cifar10": cifar, "networks": record})
        emb = _embeddings(work, params, data["test"], key["test_data"], trainer, progress)
        fc2, labels, acc = (emb[k] for k in _EMB_KEYS)
        if not np.isfinite(fc2).all():
            raise ValueError("the fc2 embeddings hold NaN or inf: training diverged")
        paper_counts = keep_grid(N_NODES)
        all_counts = keep_grid(N_NODES, step=1)
        status(f"analysing {len(fc2)} networks at {len(all_counts)} keep levels", progress)
        result, baseline = analyse_embeddings(fc2, labels, all_counts)
        summary, per_network, acc_rows = exp1_tables(result, paper_counts, acc)
        files.write_csv(work / "summary.csv", summary)
        files.write_csv(work / "per_network.csv", per_network)
        files.write_csv(work / "accuracy.csv", acc_rows)
        files.save_arrays(
            work / "analysis.npz",
            {"train": dataclasses.asdict(cfg)},
            rsm=baseline,
            **result.arrays(),
        )
        files.write_json(work / "history.json", history)
        rows = [r for r in summary if r["paper_level"]]
        figs = draw_figure1(rows, dataclasses.asdict(cfg), work / "figure1")
        # k = 1 (every class mean constant) and k = 2 (every r^2 exactly 1) are NaN by definition.
        n_nan = sum(r["n_nan"] for r in summary if r["keep_count"] > 2)
        extra = {"test_accuracy": acc, "n_nan": n_nan}
        return relocate(Result(rows, figs, format_summary(rows, acc, n_nan), extra), work, out)


def _networks(cfg, out: Path, data, key, trainer, compute, progress, saved_meta):
    """The trained networks and their history: from ``networks.npz`` when it holds
    all ``cfg.epochs``, else trained (resuming from the checkpoint) and saved there."""
    nets = out / NETWORKS
    if saved_meta and saved_meta["epoch"] == cfg.epochs:
        # Only the tree's names, shapes and dtypes are needed: traced, not
        # compiled and run (seconds for 50 networks on a CPU).
        like = jax.eval_shape(trainer.init, seed_keys(cfg))[0]
        params, _ = files.load_tree(nets, like)
        return params, saved_meta["history"]
    params, history = train_networks(cfg, data, out, compute, progress, key)
    meta = {"epoch": cfg.epochs, "history": history, "train": dataclasses.asdict(cfg)}
    files.save_tree(nets, params, {**meta, "data": key}, compressed=True)
    return params, history


def _embeddings(out: Path, params, test, test_digest: str, trainer, progress) -> dict:
    """fc2, labels and accuracy of the test set: they follow from the networks and images alone."""
    images, labels = test
    key = cache.product_key({"networks": files.tree_digest(params), "test_images": test_digest})

    def embed_test_set():
        status(f"embedding {len(images)} test images", progress)
        logits, fc2 = embed(trainer.forward(), params, images)
        accuracy = (logits.argmax(-1) == labels[None]).mean(-1)
        return {"fc2": fc2, "labels": labels, "test_accuracy": accuracy}

    return cache.cached(out / "embeddings.npz", key, embed_test_set)


def draw_figure1(rows: list[dict], train: dict, stem: str | Path) -> list[Path]:
    """Figure 1 from the paper-level rows of ``summary.csv`` and the run's training settings.

    ``rows``: dicts with ``keep_count``, ``fit_mean``, ``fit_sd``,
    ``max_poz_mean``, ``max_poz_sd`` (numbers or the CSV's strings); the x
    positions are the levels' actual ``100 k / 84``. Returns the PNG and PDF paths.
    """
    col = {c: np.array([float(r[c]) for r in rows]) for c in rows[0] if c != "paper_level"}
    fig = figure1(
        100 * col["keep_count"] / N_NODES,
        *(col[c] for c in ("fit_mean", "fit_sd", "max_poz_mean", "max_poz_sd")),
        title=f"LeNet5 fc2, CIFAR-10: {_count(train['seeds'], 'network')}, "
        f"{train['optimizer']}, {_count(train['epochs'], 'epoch')}",
        n_networks=train["seeds"],
    )
    return save_figure(fig, stem)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def format_summary(rows: list[dict], acc: np.ndarray, n_nan: int) -> str:
    """The paper-level rows as a text table, with the networks' test accuracy."""
    table = summary_table(rows, "keep_count keep_fraction fit_mean fit_sd max_poz_mean max_poz_sd")
    lines = [
        f"test accuracy over {len(acc)} networks: {acc.mean():.4f} +- {stats.sd(acc):.4f} (sd)",
        table,
    ]
    if n_nan:
        lines.append(
            f"note: {n_nan} (network, level) fits with k > 2 kept nodes were NaN "
            "(a class mean constant over the kept nodes); see summary.csv's n_nan"
        )
    return "\n".join(lines)


def _preset(options: dict) -> str:
    quick, preset = options.get("quick"), options.get("preset")
    if quick and preset not in (None, "quick"):
        raise ValueError(f"--quick and --preset {preset} contradict each other; give one")
    return "quick" if quick else preset or "paper"


def _make_config(fields: dict, options: dict) -> TrainConfig:
    return config(_preset(options), **fields)


def _extra_flags(parser) -> None:
    from poz_jax.training.train import CONVS

    parser.add_argument(
        "--preset",
        choices=list(PRESETS),
        help="paper: SGD lr 0.001 momentum 0.9, 50 seeds, 10 epochs (default); "
        "adam: Adam lr 0.001; quick: Adam, 4 seeds, 1 epoch on 5000 images",
    )
    parser.add_argument("--quick", action="store_true", help="same as --preset quick")
    parser.add_argument(
        "--conv",
        choices=list(CONVS),
        help="how convolutions are computed (the same numbers): default rows on CPU, "
        "lax (XLA's) on GPU/TPU; a run may resume with another",
    )


def _run(cfg, out, data_dir=None, progress=True, verify=True, conv=None) -> Result:
    from poz_jax.training.train import Compute

    return run(cfg, out, data_dir, progress=progress, verify=verify, compute=Compute(conv=conv))


STUDY = Study(
    name="exp1",
    help="Experiment 1: LeNet5 x many seeds on CIFAR-10, PoZ sweep, Figure 1",
    description="Train LeNet5 networks (all seeds in one vmapped step), embed the "
    "CIFAR-10 test set at fc2, sweep PoZ-ordered pruning of the class-mean RSMs, "
    "and write summary.csv, per_network.csv, accuracy.csv and figure1.png/.pdf. "
    "Re-running with the same --out resumes after the last finished epoch.",
    config=TrainConfig,
    inputs=(
        Input(
            "data_dir",
            "local CIFAR-10: cifar-10-python.tar.gz, its extracted folder, the binary "
            "version, or cifar10_{train,test}.npz; default: tensorflow-datasets if installed, "
            "else download the archive",
            record="cifar10",
            digest=False,
        ),
    ),
    run=_run,
    out=lambda options: f"results/exp1_{_preset(options)}",
    out_help="results/exp1_<preset>",
    make_config=_make_config,
    saved_names=_current_names,
    extra_flags=_extra_flags,
    carried=(NETWORKS,),
)
