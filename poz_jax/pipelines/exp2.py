"""Experiment 2: VGG-16 fc7 PoZ per stimulus set, sweeps against human similarity, nulls.

``run(cfg, out, stimuli)`` embeds every set's images (or reads precomputed
embeddings), sweeps PoZ-ordered pruning at the paper's levels and at every
level, draws the random-pruning null per set, tests the improvement and the
trend against it, and writes the tables and Figures 2 and 3. Embeddings and
each set's null are saved as they finish, so an interrupted run resumes
without redoing them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from poz_jax.analysis.networks import null_key
from poz_jax.analysis.pruning import analyse, null_tests
from poz_jax.core import validate as v
from poz_jax.core.nulls import null_band, null_fits
from poz_jax.core.ranking import keep_grid
from poz_jax.core.rsa import KINDS
from poz_jax.core.sweeps import sweep, sweep_rsms
from poz_jax.data import StimulusSet, load_embeddings, load_stimulus_sets
from poz_jax.data.rdms import save_rdms
from poz_jax.data.stimuli import check_have_images, image_digests
from poz_jax.io import cache, files, provenance
from poz_jax.models.vgg import LAYERS, embed_sets
from poz_jax.report.console import summary_table
from poz_jax.report.plots import POZ_TICKS, figure2, figure3, poz_ticks, save_figure
from poz_jax.report.tables import exp2_tables
from poz_jax.study.contract import Input, Result, Study
from poz_jax.study.options import PRECISION_HELP, RENAMED, setting
from poz_jax.study.runner import check_results_folder, results_folder
from poz_jax.study.runtime import dtype_of, precision_scope, progress_bar
from poz_jax.study.staging import relocate


@dataclasses.dataclass(frozen=True)
class Exp2Config:
    """Settings of one Experiment 2 run (saved with its results).

    ``weights``: a converted VGG-16 ``.npz`` (``poz-jax convert-vgg16``), or
    ``"random"`` for random weights (dry runs); unused with embeddings.
    ``seed``: of the random keep orders. ``precision``: ``"float64"`` (the
    default) or ``"float32"``, for every curve and null of the analysis. A
    float32 run takes about half the time on a CPU; its fits differ from
    float64 ones by rounding alone, within a bound that is loosest when few,
    mostly silent nodes remain (float32 moment sums lose digits there;
    tests/bounds.py). The tests check the fits against that bound and the
    p-values for equality (tests/test_exp2.py).
    """

    layer: str = setting("fc7", "layer to analyse (fc6 and fc7 after their ReLU)", choices=LAYERS)
    keep_step: int = setting(20, "keep counts n, n - step, ... of the paper's level grid")
    n_null: int = setting(10000, "random keep orders per set")
    seed: int = setting(0, "seed of the random orders")
    precision: str = setting("float64", PRECISION_HELP, choices=v.PRECISIONS)
    image_batch: int = setting(20, "images per VGG-16 forward pass")
    weights: str | None = setting(
        None, "converted VGG-16 weights (.npz from convert-vgg16), or 'random' for a dry run"
    )
    sets: tuple[str, ...] | None = setting(None, "comma-separated set names (default: all)")
    human_kind: str = setting(
        "similarity",
        "what the matrices are: similarity, or dissimilarity (an RDM, used as max - d); "
        "rsatoolbox .hdf5 files are dissimilarities whatever this says",
        choices=KINDS,
    )
    save_rdms: bool = setting(
        False,
        "also write rdms_<set>.hdf5 (rsatoolbox's layout): the RSM unpruned, at the best "
        "level and at the paper's levels",
    )

    def __post_init__(self) -> None:
        v.check_choice(self.human_kind, "human_kind", KINDS)
        v.check_choice(self.precision, "precision", v.PRECISIONS)
        v.check_choice(self.layer, "layer", LAYERS)
        v.check_int(self.n_null, "n_null", 1)
        v.check_seed(self.seed, "seed")
        v.check_int(self.keep_step, "keep_step", 1)
        v.check_int(self.image_batch, "image_batch", 1)
        v.check_set_names(self.sets)


def _all_level_fits(acts, human, order, chunk: int = 512) -> np.ndarray:
    """Fits at every keep count ``n_nodes .. 1``: ``(n_sets, n_nodes)``.

    Levels go in chunks only to bound memory (each chunk is one batched sweep
    over all its levels and all sets).
    """
    counts = keep_grid(acts.shape[-1], step=1)
    parts = [
        np.asarray(sweep(acts, human, counts[i : i + chunk], order))
        for i in range(0, len(counts), chunk)
    ]
    return np.concatenate(parts, axis=-1)


def _group_by_shape(embeddings: dict[str, np.ndarray]) -> list[list[str]]:
    groups: dict[tuple, list[str]] = {}
    for name, e in embeddings.items():
        groups.setdefault(e.shape, []).append(name)
    return list(groups.values())


def _nulls(cfg, out: Path, acts, human, names, counts, bar) -> np.ndarray:
    """Each set's random-pruning null ``(S, n_null, L)``, stored per set as it finishes."""
    nulls = []
    for x, t, name in zip(acts, human, names, strict=True):
        # Keyed by the numbers it is computed from, not by settings alone:
        # a set whose embeddings or matrix changed gets a new null.
        key = null_key(x, t, counts, cfg.n_null, cfg.seed, cfg.precision)
        product = cache.cached(
            out / f"null_{name}.npz",
            key,
            lambda x=x, t=t: {
                "null_fits": null_fits(x, t, counts, cfg.n_null, seed=cfg.seed, progress=bar.update)
            },
            on_hit=lambda: bar.update(cfg.n_null),
        )
        nulls.append(product["null_fits"])
    return np.stack(nulls)


def _embeddings(cfg, out: Path, sets, params, weights: str, progress) -> dict[str, np.ndarray]:
    """``weights``: the digest of the weights file (``"random:0"`` for random weights)."""
    # Each set's embeddings, computed once and reused while their inputs stay the same.
    key = cache.product_key(
        {**image_digests(sets), "weights": weights}, layer=cfg.layer, image_batch=cfg.image_batch
    )
    return cache.cached(
        out / "embeddings.npz",
        key,
        lambda: embed_sets(sets, params, cfg.layer, cfg.image_batch, progress),
    )


def _network(cfg: Exp2Config, sets: dict[str, StimulusSet]):
    """The VGG-16 parameters ``cfg`` asks for, after checking every set has images."""
    check_have_images(sets)
    if cfg.weights is None:
        raise ValueError(
            "no network weights: pass --weights (a converted VGG-16 .npz, or 'random' for a "
            "dry run) or --embeddings"
        )
    if cfg.weights == "random":
        from poz_jax.models.vgg import random_params

        return random_params(0)
    from poz_jax.models.convert import load_params

    return load_params(cfg.weights)


def run(
    cfg: Exp2Config,
    out: str | Path,
    stimuli: str | Path,
    embeddings: str | Path | None = None,
    progress: bool = True,
) -> Result:
    """Run Experiment 2 into ``out``; returns ``{"stats": rows, "figures": paths}``.

    Every input is checked before anything is written: a refused run leaves
    ``out`` as it was. Embeddings and each set's null are reused from ``out``
    only when the numbers they were computed from are the same (content
    digests of images, weights, embeddings and matrices, and the settings);
    otherwise they are recomputed and the run says why.
    """
    out = check_results_folder(out, "exp2", stimuli=stimuli)
    sets = load_stimulus_sets(stimuli, list(cfg.sets) if cfg.sets else None, cfg.human_kind)
    if embeddings is not None:
        emb, params = load_embeddings(embeddings, sets), None
    else:
        params = _network(cfg, sets)
    # The weights file (hundreds of MB) is hashed once, and only when it is used.
    real = embeddings is None and cfg.weights != "random"
    weights = files.file_digest(cfg.weights) if real else "random:0"
    inputs = {
        "stimuli": stimuli,
        "embeddings": embeddings,
        "weights": provenance.input_record(cfg.weights, weights, "file bytes") if real else None,
    }
    with results_folder(out, "exp2", cfg, inputs) as work:
        if embeddings is None:
            emb = _embeddings(cfg, work, sets, params, weights, progress)
        parts = []
        with (
            precision_scope(cfg.precision),
            progress_bar(cfg.n_null * len(sets), "random-pruning null", progress) as bar,
        ):
            for group in _group_by_shape(emb):
                parts.append(_analyse_group(cfg, work, group, emb, sets, bar))
        # Groups follow the sets' shapes; the tables follow the sets' own order.
        rank = {n: i for i, n in enumerate(sets)}
        source = network_name(cfg, embeddings)
        tables = []
        for t in range(3):
            rows = sorted(
                (r for part in parts for r in part["tables"][t]), key=lambda r: rank[r["set"]]
            )
            tables.append([{**r, "network": source} for r in rows])  # random weights say so
        for name, rows in zip(("summary", "levels", "stats"), tables, strict=True):
            files.write_csv(work / f"{name}.csv", rows)
        sets_ = {n: part["sets"][n] for part in parts for n in part["sets"]}
        by_set = {n: sets_[n] for n in sets}
        items = {f"items_{n}": [p.name for p in s.images] for n, s in sets.items() if s.images}
        files.save_arrays(
            work / "analysis.npz",
            {"sets": list(sets)},
            **{f"{k}_{n}": by_set[n][k] for n in sets for k in ("poz", "fit", "all_fits", "order")},
            **items,
        )
        if cfg.save_rdms:
            with precision_scope(cfg.precision):
                _save_rdms(cfg, work, emb, sets, by_set, tables[2], source)
        figs = _figures(by_set, source, work)
        return relocate(Result(tables[2], figs, format_stats(tables[2])), work, out)


def _analyse_group(cfg: Exp2Config, out: Path, names, emb, sets, bar) -> dict:
    """The sweeps, nulls, tests and table rows of sets ``names`` of one shape."""
    dtype = dtype_of(cfg.precision)
    n_nodes = emb[names[0]].shape[1]
    counts = keep_grid(n_nodes, step=cfg.keep_step)
    acts = jnp.asarray(np.stack([emb[n] for n in names]), dtype)
    human = jnp.asarray(np.stack([sets[n].similarity for n in names]), dtype)
    res = analyse(acts, human, counts)
    all_fits = _all_level_fits(acts, human, res.order)
    null = _nulls(cfg, out, acts, human, names, counts, bar)
    pct = 100.0 * counts / n_nodes
    tests = null_tests(res.fit, null, pct)
    rows = exp2_tables(names, res, all_fits, null, tests, [sets[n].n_items for n in names])
    per_set = {
        n: {
            "poz": res.poz[i],
            "order": res.order[i],
            "fit": res.fit[i],
            "all_fits": all_fits[i],
            "percent_kept": pct,
            "band": null_band(null[i]),
        }
        for i, n in enumerate(names)
    }
    return {"tables": rows, "sets": per_set}


def _save_rdms(cfg, out: Path, emb, sets, by_set, stat_rows, source: str) -> None:
    """Each set's RSMs unpruned, at the best level and at the paper's levels, as RDMs."""
    for name, s in sets.items():
        x = np.asarray(emb[name], dtype_of(cfg.precision))
        d = x.shape[1]
        row = next(r for r in stat_rows if r["set"] == name)
        best = row["best_keep_count_any_level"]
        counts = sorted(
            {d, *([int(best)] if best is not None else []), *(keep_grid(d) if d >= 10 else [])},
            reverse=True,
        )
        rsms = np.asarray(sweep_rsms(x, counts, by_set[name]["order"]))
        n = len(counts)
        level = ["unpruned" if k == d else "best" if k == best else "paper" for k in counts]
        save_rdms(
            out / f"rdms_{name}.hdf5",
            rsms,
            "similarity",
            {"set": [name] * n, "layer": [cfg.layer] * n, "keep_count": counts,
             "level": level, "method": ["PoZ"] * n, "network": [source] * n},
            None if s.images is None else [p.name for p in s.images],
            measure="1 - squared Pearson r (poz-jax RSM)",
        )  # fmt: skip


def _figures(by_set: dict, source: str, out: Path) -> list[Path]:
    """Figures 2 and 3 (PNG and PDF) from each set's PoZ, curve and null band."""
    fig2 = figure2(
        {n: s["poz"] for n, s in by_set.items()}, title=f"Cumulative PoZ per set ({source})"
    )
    figs = save_figure(fig2, out / "figure2")
    fig3 = figure3(
        {n: (s["percent_kept"], s["fit"]) for n, s in by_set.items()},
        {n: poz_ticks(s["poz"]) for n, s in by_set.items()},
        title=f"PoZ-ordered pruning against human similarity ({source})",
        null_bands={n: s["band"] for n, s in by_set.items()},
        tick_labels=POZ_TICKS,
    )
    return figs + save_figure(fig3, out / "figure3")


def network_name(cfg: Exp2Config, embeddings) -> str:
    """What the activations came from, as figures and tables say it.

    Random weights are named as such: their numbers say nothing about VGG-16.
    """
    if embeddings is not None:
        return "precomputed embeddings"
    if cfg.weights == "random":
        return f"VGG-16 {cfg.layer}, RANDOM weights (a dry run)"
    return f"VGG-16 {cfg.layer}, {Path(cfg.weights).name}"


def format_stats(stats: list[dict]) -> str:
    """``run``'s per-set statistics as a text table."""
    table = summary_table(
        stats,
        "set share_poz_above_80 unpruned_fit best_fit best_percent_kept improvement "
        "p_improvement trend_slope_per_percent p_trend",
    )
    used = sorted({r[k] for r in stats for k in ("n_null_used_improvement", "n_null_used_trend")})
    return (
        f"activations: {stats[0]['network']}\n{table}\n"
        "gain: best fit - unpruned fit; trend slope: fit per % of nodes pruned, "
        f"up to the peak. p-values from {stats[0]['n_null']} random keep orders per set "
        f"({used[0]}..{used[-1]} with a defined statistic; stats.csv has each)"
    )


STUDY = Study(
    name="exp2",
    help="Experiment 2: VGG-16 PoZ sweeps against human similarity, nulls, Figures 2-3",
    description="Embed each stimulus set with VGG-16 (or read --embeddings), sweep "
    "PoZ-ordered pruning against each set's human similarity matrix, test the best "
    "improvement and the trend against random pruning, and write summary.csv, "
    "levels.csv, stats.csv and figure2/figure3 (.png/.pdf). Re-running with the same "
    "--out reuses the embeddings and every finished null.",
    config=Exp2Config,
    inputs=(
        Input(
            "stimuli",
            "a folder of images with its similarity matrix (.npy/.npz/.csv/.mat), a folder "
            "of such folders (one per set), or an .npz with one matrix per set",
            required=True,
        ),
        Input(
            "embeddings",
            "an .npz with one (n_images, n_nodes) matrix per set: skip the network",
        ),
    ),
    run=run,
    # A dry run with random weights never lands in the real run's folder.
    out=lambda fields: (
        "results/exp2_random" if fields.get("weights") == "random" else "results/exp2"
    ),
    out_help="results/exp2, or results/exp2_random with --weights random",
    # Folders written before these settings existed ran with their defaults.
    saved_names=lambda fields: {"human_kind": "similarity", "save_rdms": False, **fields},
    extra_flags=lambda parser: parser.add_argument(
        "--null-float32", action=RENAMED, now="--precision float32 sets curves and nulls alike"
    ),
)
