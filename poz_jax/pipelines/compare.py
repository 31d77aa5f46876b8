"""``poz-jax compare``: every pruning and reweighting method, out of sample, per stimulus set.

Loads the stimulus sets' similarity matrices and their embeddings (e.g.
Experiment 2's ``embeddings.npz``), runs :func:`poz_jax.comparison.compare`
per set, and writes ``compare.csv`` (a row per set and method),
``compare_splits.csv`` (a row per set, split and method) and
``compare.png``/``.pdf``. Each set's result is saved as it finishes
(``compare_<set>.npz``, keyed by the numbers and settings it came from), so
an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from poz_jax import files
from poz_jax.comparison import METHODS, Comparison, compare
from poz_jax.core import validate as v
from poz_jax.core.crossval import item_splits
from poz_jax.core.reweight import ALPHAS
from poz_jax.data import load_embeddings, load_stimulus_sets
from poz_jax.plots import compare_figure, save_figure
from poz_jax.report import number, text, text_table
from poz_jax.runtime import float64, progress_bar, status

_SAVED = ("test_fit", "train_fit", "kept", "in_sample", "keep_counts")


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
        v.check_int(self.n_random, "n_random", 1)
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
    out = files.check_out_dir(out)
    sets = load_stimulus_sets(stimuli, list(cfg.sets) if cfg.sets else None)
    emb = load_embeddings(embeddings, sets)
    for name, s in sets.items():
        # Fold sizes are checked for every set before any set is computed.
        item_splits(s.n_items, cfg.folds, 1, cfg.seed)
        v.check_finite(jnp.asarray(s.similarity), f"the similarity matrix of {name}")
    out.mkdir(parents=True, exist_ok=True)
    files.clean_temporaries(out)
    files.write_json(
        out / "config.json",
        {
            "compare": dataclasses.asdict(cfg),
            "stimuli": str(stimuli),
            "embeddings": str(embeddings),
        },
    )
    x64 = cfg.precision == "float64"
    dtype = np.float64 if x64 else np.float32
    summary, per_split = [], []
    n_splits = cfg.folds * cfg.repeats
    with (
        float64() if x64 else contextlib.nullcontext(),
        progress_bar(n_splits * len(sets), "comparison splits", progress) as bar,
    ):
        for name, s in sets.items():
            x = np.asarray(emb[name], dtype)
            t = np.asarray(s.similarity, dtype)
            result = compare_set(cfg, out, name, x, t, bar)
            summary += result.summary_rows(name)
            per_split += result.split_rows(name)
    files.write_csv(out / "compare.csv", summary)
    files.write_csv(out / "compare_splits.csv", per_split)
    title = f"Fit to new stimuli: {cfg.folds}-fold x {cfg.repeats} repeats, mean over splits"
    figs = save_figure(compare_figure(summary, title=title), out / "compare")
    return {"rows": summary, "figures": figs}


def compare_set(cfg: CompareConfig, out: Path, name: str, x, t, bar) -> Comparison:
    """One set's comparison, reused from ``out`` while its inputs and settings are the same."""
    settings = dataclasses.asdict(cfg)
    settings.pop("sets")
    key = {"activations": files.fingerprint(x), "similarity": files.fingerprint(t), **settings}
    key["methods"] = list(cfg.methods)
    path = out / f"compare_{name}.npz"
    arrays, why = files.load_current(path, key)
    splits = item_splits(x.shape[0], cfg.folds, cfg.repeats, cfg.seed)
    if arrays is not None:
        bar.update(len(splits))
        # The whole product, as a fresh run returns it (tested field by field).
        return Comparison(
            cfg.methods, splits, arrays["keep_counts"], x.shape[1],
            *(arrays[k] for k in _SAVED[:4]),
            orders={m: arrays[f"order_{m}"] for m in cfg.methods if f"order_{m}" in arrays},
            importance=arrays.get("importance"), alpha=arrays.get("alpha"),
            weights=arrays.get("weights"),
        )  # fmt: skip
    if why:
        status(f"recomputing {path.name}: {why}")
    result = compare(
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
    extra = {f"order_{m}": o for m, o in result.orders.items()}
    for field in ("importance", "alpha", "weights"):
        if getattr(result, field) is not None:
            extra[field] = getattr(result, field)
    files.save_arrays(path, {"key": key}, **{k: getattr(result, k) for k in _SAVED}, **extra)
    return result


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
