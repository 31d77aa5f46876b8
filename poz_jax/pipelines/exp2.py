"""Experiment 2: VGG-16 fc7 PoZ per stimulus set, sweeps against human similarity, nulls.

``run(cfg, out, stimuli)`` embeds every set's images (or reads precomputed
embeddings), sweeps PoZ-ordered pruning at the paper's levels and at every
level, draws the random-pruning null per set, tests the improvement and the
trend against it, and writes the tables and Figures 2 and 3. Embeddings and
each set's null are saved as they finish, so an interrupted run resumes
without redoing them.
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from poz_jax import files
from poz_jax.analysis import Analysis, analyse
from poz_jax.core import validate as v
from poz_jax.core.nulls import improvement_test, null_band, null_fits, trend_test
from poz_jax.core.ranking import keep_grid
from poz_jax.core.sweeps import sweep
from poz_jax.data import StimulusSet, load_embeddings, load_stimulus_sets
from poz_jax.models.vgg import check_have_images, embed_sets
from poz_jax.plots import figure2, figure3, save_figure
from poz_jax.report import number, text, text_table
from poz_jax.runtime import float64, progress_bar, status

POZ_TICKS = (0.9, 0.8, 0.7, 0.6, 0.5)  # Figure 3's ticks: where the kept PoZ falls below these


@dataclasses.dataclass(frozen=True)
class Exp2Config:
    """Settings of one Experiment 2 run (saved with its results).

    ``weights``: a converted VGG-16 ``.npz`` (``poz-jax convert-vgg16``), or
    ``"random"`` for random weights (dry runs); unused with embeddings.
    ``precision``: ``"float64"`` (exact; the default) or ``"float32"``, for
    the observed curves. ``null_precision``: the same for the random-pruning
    null (default ``"float64"``). A float32 null takes about half the time
    on a CPU; its fits differ from float64 ones by rounding alone, within a
    bound that is loosest when few, mostly silent nodes remain (float32
    moment sums lose digits there; tests/bounds.py). The tests check the
    fits against that bound and the p-values for equality (tests/test_exp2.py).
    """

    layer: str = "fc7"
    keep_step: int = 20
    n_null: int = 10000
    null_seed: int = 0
    precision: str = "float64"
    null_precision: str = "float64"
    image_batch: int = 20
    weights: str | None = None
    sets: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        from poz_jax.models.vgg import LAYERS

        for name in ("precision", "null_precision"):
            v.check_choice(getattr(self, name), name, v.PRECISIONS)
        v.check_choice(self.layer, "layer", LAYERS)
        v.check_int(self.n_null, "n_null", 1)
        v.check_seed(self.null_seed, "null_seed")
        v.check_int(self.keep_step, "keep_step", 1)
        v.check_int(self.image_batch, "image_batch", 1)
        v.check_set_names(self.sets)


def _all_level_fits(acts, human, order, chunk: int = 512) -> np.ndarray:
    """Fits at every keep count ``n_nodes .. 1``: ``(n_sets, n_nodes)``.

    Levels go in chunks only to bound memory (each chunk is one batched sweep
    over all its levels and all sets).
    """
    counts = np.arange(acts.shape[-1], 0, -1)
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


def _nulls(cfg, out: Path, embeddings, sets, counts, progress) -> dict[str, np.ndarray]:
    nulls = {}
    dtype = jnp.float64 if cfg.null_precision == "float64" else jnp.float32
    with progress_bar(cfg.n_null * len(sets), "random-pruning null", progress) as bar:
        for name in sets:
            x = np.asarray(jnp.asarray(embeddings[name], dtype))
            t = np.asarray(jnp.asarray(sets[name].similarity, dtype))
            # Keyed by the numbers it is computed from, not by settings alone:
            # a set whose embeddings or matrix changed gets a new null.
            key = {
                "activations": files.fingerprint(x),
                "similarity": files.fingerprint(t),
                "keep_counts": [int(k) for k in counts],
                "n_null": cfg.n_null,
                "null_seed": cfg.null_seed,
                "precision": cfg.null_precision,
            }
            path = out / f"null_{name}.npz"
            arrays, why = files.load_current(path, key)
            if arrays is not None:
                nulls[name] = arrays["fit"]
                bar.update(cfg.n_null)
                continue
            if why:
                status(f"recomputing {path.name}: {why}")
            fit = null_fits(x, t, counts, cfg.n_null, seed=cfg.null_seed, progress=bar.update)
            files.save_arrays(path, {"key": key}, fit=fit)
            nulls[name] = fit
    return nulls


def _weights_digest(cfg: Exp2Config) -> str:
    if cfg.weights == "random":
        return "random:0"
    return files.file_digest(cfg.weights)


def _embeddings(cfg, out: Path, sets, params, progress) -> dict[str, np.ndarray]:
    """Each set's embeddings, computed once and reused while their inputs stay the same."""
    path = out / "embeddings.npz"
    key = {"layer": cfg.layer, "weights": _weights_digest(cfg), "image_batch": cfg.image_batch}
    for name, s in sets.items():
        # The image files' bytes in the matrix's row order: editing order.txt,
        # replacing or reordering an image changes the key.
        key[f"images[{name}]"] = files.fingerprint(digests=[files.file_digest(p) for p in s.images])
    arrays, why = files.load_current(path, key)
    if arrays is not None and all(n in arrays for n in sets):
        return {n: arrays[n] for n in sets}
    if why:
        status(f"recomputing {path.name}: {why}")
    emb = embed_sets(sets, params, cfg.layer, cfg.image_batch, progress)
    files.save_arrays(path, {"key": key}, **emb)
    return emb


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


def _ticks(poz_values: np.ndarray) -> np.ndarray:
    # % of nodes kept when the highest kept PoZ first drops to each tick level.
    return np.array([100.0 * np.mean(poz_values <= q) for q in POZ_TICKS])


def _null_summary(values: np.ndarray) -> dict:
    """Mean, sd and 2.5/97.5% quantiles of one level's null fits, over their defined draws."""
    ok = values[~np.isnan(values)]
    if not ok.size:
        return {"null_mean": np.nan, "null_sd": np.nan, "null_q025": np.nan, "null_q975": np.nan}
    q025, q975 = np.quantile(ok, [0.025, 0.975])
    return {
        "null_mean": float(ok.mean()),
        "null_sd": float(ok.std()),
        "null_q025": float(q025),
        "null_q975": float(q975),
    }


def tables(names, res: Analysis, all_fits, nulls, stats, n_items) -> tuple[list, list, list]:
    """``(summary_rows, level_rows, stat_rows)`` for summary.csv, levels.csv and stats.csv."""
    summary = res.rows("set", names)
    counts, d = res.keep_counts, res.n_nodes
    for i, row in enumerate(summary):
        null = nulls[row["set"]]
        row.update(_null_summary(null[:, i % len(counts)]))
    levels, stat_rows = [], []
    for s, name in enumerate(names):
        null = nulls[name]
        for k, f in zip(range(d, 0, -1), all_fits[s], strict=True):
            levels.append({"set": name, "keep_count": k, "fit": float(f)})
        peak = int(stats["peak"][s])
        # Every level NaN (e.g. items identical over all nodes): no best level.
        best_all = int(np.nanargmax(all_fits[s])) if np.any(~np.isnan(all_fits[s])) else None
        stat_rows.append(
            {
                "set": name,
                "n_items": n_items[name],
                "n_nodes": d,
                "share_poz_above_80": float(np.mean(res.poz[s] > 0.8)),
                "unpruned_fit": float(res.fit[s, 0]),
                "peak_keep_count": int(counts[peak]),
                "peak_percent_kept": round(100.0 * counts[peak] / d, 4),
                "peak_fit": float(res.fit[s, peak]),
                "improvement": float(stats["gain"][s]),
                "p_improvement": float(stats["p_gain"][s]),
                "trend_slope_per_percent": float(stats["slope"][s]),
                "p_trend": float(stats["p_trend"][s]),
                "best_keep_count_any_level": None if best_all is None else d - best_all,
                "best_fit_any_level": np.nan if best_all is None else float(all_fits[s, best_all]),
                "n_null": int(null.shape[0]),
                "n_null_used_improvement": int(stats["n_used_gain"][s]),
                "n_null_used_trend": int(stats["n_used_trend"][s]),
            }
        )
    return summary, levels, stat_rows


def run(
    cfg: Exp2Config,
    out: str | Path,
    stimuli: str | Path,
    embeddings: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Run Experiment 2 into ``out``; returns ``{"stats": rows, "figures": paths}``.

    Every input is checked before anything is written: a refused run leaves
    ``out`` as it was. Embeddings and each set's null are reused from ``out``
    only when the numbers they were computed from are the same (content
    digests of images, weights, embeddings and matrices, and the settings);
    otherwise they are recomputed and the run says why.
    """
    out = files.check_out_dir(out)
    sets = load_stimulus_sets(stimuli, list(cfg.sets) if cfg.sets else None)
    if embeddings is not None:
        emb, params = load_embeddings(embeddings, sets), None
    else:
        params = _network(cfg, sets)
    out.mkdir(parents=True, exist_ok=True)
    files.clean_temporaries(out)
    files.write_json(
        out / "config.json",
        {
            "exp2": dataclasses.asdict(cfg),
            "stimuli": str(stimuli),
            "embeddings": str(embeddings) if embeddings else None,
        },
    )
    if embeddings is None:
        emb = _embeddings(cfg, out, sets, params, progress)
    x64 = "float64" in (cfg.precision, cfg.null_precision)
    dtype = jnp.float64 if cfg.precision == "float64" else jnp.float32
    summary, levels, stat_rows, curves, poz_by_set, arrays = [], [], [], {}, {}, {}
    bands = {}
    with float64() if x64 else contextlib.nullcontext():
        for group in _group_by_shape(emb):
            n_nodes = emb[group[0]].shape[1]
            counts = keep_grid(n_nodes, step=cfg.keep_step)
            acts = jnp.asarray(np.stack([emb[n] for n in group]), dtype)
            human = jnp.asarray(np.stack([sets[n].similarity for n in group]), dtype)
            res = analyse(acts, human, counts)
            all_fits = _all_level_fits(acts, human, res.order)
            nulls = _nulls(cfg, out, emb, {n: sets[n] for n in group}, counts, progress)
            null = np.stack([nulls[n] for n in group])
            imp = improvement_test(res.fit, null)
            trend = trend_test(res.fit, null, 100.0 * counts / n_nodes)
            stats = jax.device_get(
                {
                    "gain": imp.improvement,
                    "p_gain": imp.p,
                    "n_used_gain": imp.n_used,
                    "peak": trend.peak,
                    "slope": trend.slope,
                    "p_trend": trend.p,
                    "n_used_trend": trend.n_used,
                }
            )
            rows = tables(group, res, all_fits, nulls, stats, {n: sets[n].n_items for n in group})
            summary, levels, stat_rows = summary + rows[0], levels + rows[1], stat_rows + rows[2]
            for i, n in enumerate(group):
                poz_by_set[n] = res.poz[i]
                curves[n] = (100.0 * counts / n_nodes, res.fit[i])
                bands[n] = null_band(nulls[n])
                arrays.update(
                    {
                        f"poz_{n}": res.poz[i],
                        f"fit_{n}": res.fit[i],
                        f"all_fits_{n}": all_fits[i],
                    }
                )
    # Groups follow the sets' shapes; the tables follow the sets' own order.
    rank = {n: i for i, n in enumerate(sets)}
    summary, levels, stat_rows = (
        sorted(rows, key=lambda r: rank[r["set"]]) for rows in (summary, levels, stat_rows)
    )
    source = network_name(cfg, embeddings)
    for row in summary + stat_rows:
        row["network"] = source  # random weights say so in every table
    files.write_csv(out / "summary.csv", summary)
    files.write_csv(out / "levels.csv", levels)
    files.write_csv(out / "stats.csv", stat_rows)
    files.save_arrays(out / "analysis.npz", {"sets": list(sets)}, **arrays)
    ticks = {n: _ticks(p) for n, p in poz_by_set.items()}
    fig2 = figure2({n: poz_by_set[n] for n in sets}, title=f"Cumulative PoZ per set ({source})")
    figs = save_figure(fig2, out / "figure2")
    fig3 = figure3(
        {n: curves[n] for n in sets},
        ticks,
        title=f"PoZ-ordered pruning against human similarity ({source})",
        null_bands={n: bands[n] for n in sets},
        tick_labels=POZ_TICKS,
    )
    figs += save_figure(fig3, out / "figure3")
    return {"stats": stat_rows, "figures": figs}


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
    table = text_table(
        stats,
        [
            ("set", text("set")),
            ("PoZ > 80%", number("share_poz_above_80", ".1f", 100, "%")),
            ("unpruned fit", number("unpruned_fit")),
            ("peak fit", number("peak_fit")),
            ("peak at % kept", number("peak_percent_kept", ".1f", suffix="%")),
            ("gain", number("improvement")),
            ("p (gain)", number("p_improvement")),
            ("trend slope", number("trend_slope_per_percent", ".2e")),
            ("p (trend)", number("p_trend")),
        ],
    )
    used = sorted({r[k] for r in stats for k in ("n_null_used_improvement", "n_null_used_trend")})
    return (
        f"activations: {stats[0]['network']}\n{table}\n"
        "gain: peak fit - unpruned fit; trend slope: fit per % of nodes pruned, "
        f"up to the peak. p-values from {stats[0]['n_null']} random keep orders per set "
        f"({used[0]}..{used[-1]} with a defined statistic; stats.csv has each)"
    )
