"""``poz-jax compare``: every pruning and reweighting method, out of sample, per stimulus set.

Loads the stimulus sets' similarity matrices and their embeddings (e.g.
Experiment 2's ``embeddings.npz``), runs :func:`poz_jax.comparison.compare_methods`
per set, and writes ``compare.csv`` (a row per set and method),
``compare_splits.csv`` (a row per set, split and method) and
``compare.png``/``.pdf``. Each set's result is saved as it finishes
(``compare_<set>.npz``, keyed by the numbers and settings it came from), so
an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from poz_jax import cache, files, provenance
from poz_jax.comparison import MAX_RANDOM, METHODS, Comparison, check_design, compare_methods
from poz_jax.core import validate as v
from poz_jax.core.crossval import item_splits
from poz_jax.core.reweight import ALPHAS
from poz_jax.data import load_embeddings, load_stimulus_sets
from poz_jax.plots import compare_figure, save_figure
from poz_jax.report import number, text, text_table
from poz_jax.runtime import precision_scope, progress_bar
from poz_jax.study.staging import relocate, staged


@dataclasses.dataclass(frozen=True)
class CompareConfig:
    """Settings of one comparison run (saved with its results); see :func:`compare`."""

    methods: tuple[str, ...] = METHODS
    folds: int = 5
    repeats: int = 10
    seed: int = 0
    n_random: int = 20
    inner_folds: int = 3
    precision: str = "float64"
    sets: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        v.check_choice(self.precision, "precision", v.PRECISIONS)
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods or len(set(self.methods)) != len(self.methods):
            raise ValueError(
                f"methods must be distinct names from {', '.join(METHODS)}, got "
                f"{list(self.methods)}"
            )
        v.check_int(self.folds, "folds", 2)
        v.check_int(self.repeats, "repeats", 1)
        v.check_seed(self.seed, "seed")
        v.check_int(self.n_random, "n_random", 1, MAX_RANDOM)
        v.check_int(self.inner_folds, "inner_folds", 2)
        v.check_set_names(self.sets)


def run(
    cfg: CompareConfig,
    out: str | Path,
    stimuli: str | Path,
    embeddings: str | Path,
    progress: bool = True,
) -> dict:
    """Compare the methods on every set into ``out``; returns ``{"rows": ..., "figures": ...}``.

    Every input is checked before anything is written.
    """
    out = files.check_out_dir(out, stimuli=stimuli)
    provenance.check_study(out, "compare")
    sets = load_stimulus_sets(stimuli, list(cfg.sets) if cfg.sets else None)
    emb = load_embeddings(embeddings, sets)
    for name, s in sets.items():
        # Every set is checked before any is computed or anything written.
        check_design(s.n_items, emb[name].shape[1], *_design(cfg))
        v.check_finite(jnp.asarray(s.similarity), f"the similarity matrix of {name}")
    with staged(out) as work:
        inputs = {
            name: provenance.input_record(p)
            for name, p in (("stimuli", stimuli), ("embeddings", embeddings))
        }
        provenance.write_config(work, "compare", cfg, inputs)
        dtype = np.float64 if cfg.precision == "float64" else np.float32
        summary, per_split = [], []
        n_splits = cfg.folds * cfg.repeats
        with (
            precision_scope(cfg.precision),
            progress_bar(n_splits * len(sets), "comparison splits", progress) as bar,
        ):
            for name, s in sets.items():
                x = np.asarray(emb[name], dtype)
                t = np.asarray(s.similarity, dtype)
                result = compare_set(cfg, work, name, x, t, bar)
                summary += result.summary_rows(name)
                per_split += result.split_rows(name)
        files.write_csv(work / "compare.csv", summary)
        files.write_csv(work / "compare_splits.csv", per_split)
        title = f"Fit to new stimuli: {cfg.folds}-fold x {cfg.repeats} repeats, mean over splits"
        figs = save_figure(compare_figure(summary, title=title), work / "compare")
        return relocate({"rows": summary, "figures": figs}, work, out)


def _design(cfg: CompareConfig) -> tuple:
    return cfg.methods, cfg.folds, cfg.repeats, cfg.seed, cfg.n_random, cfg.inner_folds


def compare_set(cfg: CompareConfig, out: Path, name: str, x, t, bar) -> Comparison:
    """One set's comparison, reused from ``out`` while its inputs and settings are the same."""
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "sets"}
    key = cache.product_key({"activations": x, "similarity": t}, **settings)
    splits = item_splits(x.shape[0], cfg.folds, cfg.repeats, cfg.seed)

    def fresh():
        result = compare_methods(
            x,
            t,
            methods=cfg.methods,
            folds=cfg.folds,
            repeats=cfg.repeats,
            seed=cfg.seed,
            n_random=cfg.n_random,
            alphas=ALPHAS,
            inner_folds=cfg.inner_folds,
            progress=bar.update,
        )
        return result.to_arrays()

    arrays = cache.cached(
        out / f"compare_{name}.npz", key, fresh, on_hit=lambda: bar.update(len(splits))
    )
    return Comparison.from_arrays(arrays, cfg.methods, splits)


def format_rows(rows: list[dict]) -> str:
    """``run``'s summary as a text table."""
    table = text_table(
        rows,
        [
            ("set", text("set")),
            ("method", text("method")),
            ("out-of-sample fit", number("fit_out_of_sample_mean")),
            ("sd", number("fit_out_of_sample_sd")),
            ("in-sample fit", number("fit_in_sample")),
            ("% kept", number("percent_kept_mean", ".1f")),
            ("vs unpruned", number("minus_unpruned_mean", "+.4f")),
            ("p", number("p_corrected")),
        ],
    )
    return (
        f"{table}\nvs unpruned: mean over splits of (method - unpruned) out of sample; p: Nadeau "
        "& Bengio's corrected resampled t-test of it (conservative: splits share items)"
    )
