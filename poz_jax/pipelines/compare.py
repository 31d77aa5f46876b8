"""``poz-jax compare``: every pruning and reweighting method, out of sample, per stimulus set.

Loads the stimulus sets' similarity matrices and their embeddings (e.g.
Experiment 2's ``embeddings.npz``), runs :func:`poz_jax.analysis.comparison.compare_methods`
per set, and writes ``compare.csv`` (a row per set and method),
``compare_splits.csv`` (a row per set, split and method) and
``compare.png``/``.pdf``. Each set's result is saved as it finishes
(``compare_<set>.npz``, keyed by the numbers and settings it came from), so
an interrupted run resumes where it stopped.
"""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np

from poz_jax.analysis.comparison import CompareConfig, check_design, compare_set
from poz_jax.core import validate as v
from poz_jax.data import load_embeddings, load_stimulus_sets
from poz_jax.io import files
from poz_jax.report.console import summary_table
from poz_jax.report.plots import compare_figure, save_figure
from poz_jax.study.contract import Input, Result, Study
from poz_jax.study.runner import check_results_folder, results_folder
from poz_jax.study.runtime import dtype_of, precision_scope, progress_bar
from poz_jax.study.staging import relocate


def run(
    cfg: CompareConfig,
    out: str | Path,
    stimuli: str | Path,
    embeddings: str | Path,
    progress: bool = True,
) -> Result:
    """Compare the methods on every set into ``out``; returns ``{"rows": ..., "figures": ...}``.

    Every input is checked before anything is written.
    """
    out = check_results_folder(out, "compare", stimuli=stimuli)
    sets = load_stimulus_sets(stimuli, list(cfg.sets) if cfg.sets else None)
    emb = load_embeddings(embeddings, sets)
    for name, s in sets.items():
        # Every set is checked before any is computed or anything written.
        check_design(s.n_items, emb[name].shape[1], *cfg.design())
        v.check_finite(jnp.asarray(s.similarity), f"the similarity matrix of {name}")
    inputs = {"stimuli": stimuli, "embeddings": embeddings}
    with results_folder(out, "compare", cfg, inputs) as work:
        dtype = dtype_of(cfg.precision)
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
        return relocate(Result(summary, figs, format_rows(summary)), work, out)


def format_rows(rows: list[dict]) -> str:
    """``run``'s summary as a text table."""
    table = summary_table(
        rows,
        "set method fit_out_of_sample_mean fit_out_of_sample_sd fit_in_sample percent_kept_mean "
        "minus_unpruned_mean p_corrected",
    )
    return (
        f"{table}\nvs unpruned: mean over splits of (method - unpruned) out of sample; p: Nadeau "
        "& Bengio's corrected resampled t-test of it (conservative: splits share items)"
    )


STUDY = Study(
    name="compare",
    help="beyond the paper: PoZ and other pruning orders, supervised pruning and "
    "reweighting, each fitted on some stimuli and scored on the others",
    description="For each stimulus set, split the items into folds (repeated with "
    "seeded shuffles); fit every method on the training items only (keep orders, "
    "keep counts, supervised importances, ridge weights and penalty) and score the "
    "fit of its similarity among the test items to the target's test block. Writes "
    "compare.csv, compare_splits.csv and compare.png/.pdf; a re-run with the same "
    "--out reuses every finished set.",
    config=CompareConfig,
    inputs=(
        Input(
            "stimuli",
            "the similarity matrices: a set folder, a folder of set folders, or an .npz "
            "with one matrix per set (as for exp2)",
            required=True,
        ),
        Input(
            "embeddings",
            "an .npz with one (n_items, n_nodes) matrix per set (exp2 writes one)",
            required=True,
        ),
    ),
    run=run,
)
