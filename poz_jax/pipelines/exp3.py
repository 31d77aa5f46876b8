"""Experiment 3: PoZ pruning against real human judgments of CIFAR-10 (CIFAR-10H).

Experiment 1's networks (their fc2 embeddings of the test images) meet
CIFAR-10H's human label counts at two levels:

- classes: the items are each network's 10 class means (as in Experiment 1),
  the target the human class similarity from the confusion matrix;
- images: disjoint stimulus sets of 12 matched images per class, the target
  an image-by-image similarity from the human label distributions.

At each level and for each network: the PoZ-ordered sweep at every keep
count, the largest PoZ kept, and a random-pruning null with the two tests
of Experiment 2; then the same for the networks' mean curve, whose null
draw ``j`` is the mean of the networks' draws ``j`` (each network's orders
are drawn independently, seeded by ``null_seed + network``).

The image sets also go through ``poz-jax compare`` (every method fitted on
some images of a set and scored on the others) for the first
``compare_networks`` networks, into ``compare.csv``.

``inputs.npz`` (made by :func:`prepare_inputs` from Experiment 1's
``embeddings.npz``) holds all this needs: per network the class means, the
PoZ over the test images and the fc2 embeddings of the matched images.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from poz_jax import files
from poz_jax.analysis import Analysis, analyse
from poz_jax.core.nulls import improvement_test, null_fits, trend_test
from poz_jax.core.ranking import poz
from poz_jax.core.rsa import class_means, rsm
from poz_jax.data import cifar10h
from poz_jax.pipelines.compare import CompareConfig, compare_set
from poz_jax.plots import exp3_figure, save_figure
from poz_jax.report import number, text, text_table
from poz_jax.runtime import float64, progress_bar, status

N_CLASSES = 10


CLASS_SIMILARITIES = ("mean", "shepard")  # see cifar10h.class_similarity
IMAGE_SIMILARITIES = ("agreement", "cosine", "jsd")  # see cifar10h.image_similarity


@dataclasses.dataclass(frozen=True)
class Exp3Config:
    """Settings of one Experiment 3 run (saved with its results)."""

    n_null: int = 1000  # random keep orders per network and level
    null_seed: int = 0
    class_similarity: str = "mean"  # see cifar10h.class_similarity
    image_similarity: str = "agreement"  # see cifar10h.image_similarity
    per_class: int = 12
    n_sets: int = 5
    set_seed: int = 0
    compare_networks: int = 5  # networks run through poz-jax compare per image set (0: none)

    def __post_init__(self) -> None:
        from poz_jax.core import validate as v

        v.check_int(self.n_null, "n_null", 1)
        v.check_seed(self.null_seed, "null_seed")
        v.check_int(self.per_class, "per_class", 3)
        v.check_int(self.n_sets, "n_sets", 1)
        v.check_seed(self.set_seed, "set_seed")
        v.check_int(self.compare_networks, "compare_networks", 0)
        v.check_choice(self.class_similarity, "class_similarity", CLASS_SIMILARITIES)
        v.check_choice(self.image_similarity, "image_similarity", IMAGE_SIMILARITIES)


def prepare_inputs(embeddings: str | Path, cifar10h_dir: str | Path) -> dict[str, np.ndarray]:
    """What Experiment 3 needs from Experiment 1's ``embeddings.npz``, small enough to commit.

    Returns ``class_means`` ``(S, 10, 84)``, ``poz`` ``(S, 84)`` (over all test
    images), ``matched_fc2`` ``(S, m, 84)`` (the images CIFAR-10H can be
    aligned with), ``matched_official`` ``(m,)`` their official indices, and
    ``matched_labels`` ``(m,)``.
    """
    arrays, _ = files.load_arrays(embeddings)
    if "fc2" not in arrays or "labels" not in arrays:
        raise ValueError(f"{embeddings} is not Experiment 1's embeddings.npz (fc2 and labels)")
    fc2, labels = arrays["fc2"], arrays["labels"]
    official = cifar10h.load_official_labels(cifar10h_dir)
    if len(labels) == cifar10h.N_TEST and np.array_equal(labels, official):
        index, rows = np.arange(cifar10h.N_TEST), np.arange(cifar10h.N_TEST)  # official order
    else:
        index, rows = cifar10h.align_to_local(cifar10h_dir, labels, official)
    with float64():
        acts = jnp.asarray(fc2, jnp.float64)
        means = np.asarray(class_means(acts, jnp.asarray(labels), N_CLASSES))
        node_poz = np.asarray(poz(acts))
    return {
        "class_means": means,
        "poz": node_poz,
        "matched_fc2": fc2[:, rows].astype(np.float32),
        "matched_official": index,
        "matched_labels": official[index],
    }


def level_analysis(acts, node_poz, human, n_null: int, seed: int, bar=None):
    """Sweep, null and tests for ``S`` networks and their mean curve, at every keep count.

    Args:
      acts: ``(S, n_items, n_nodes)``; node_poz: ``(S, n_nodes)``;
      human: ``(n_items, n_items)`` target.

    Returns:
      ``(analysis, null)``: the :class:`Analysis` and the nulls ``(S, n_null, n_nodes)``.
    """
    with float64():
        result = analyse(acts, human, _all_counts(acts), poz_values=node_poz)
        null = []
        for s in range(acts.shape[0]):
            null.append(null_fits(acts[s], human, _all_counts(acts), n_null, seed=seed + s))
            if bar is not None:
                bar.update(1)
    return result, np.stack(null)


def stats_rows(result: Analysis, null: np.ndarray, level: str, set_name: str = "") -> list[dict]:
    """Per network and pooled (the networks' mean curve): unpruned and best fit, tests."""
    pct = 100.0 * result.keep_counts / result.n_nodes
    with float64():
        curves = np.concatenate([result.fit, mean_curve(result.fit)[None]])
        nulls = np.concatenate([null, mean_curve(null)[None]])
        imp = improvement_test(curves, nulls)
        trend = trend_test(curves, nulls, pct)
    rows = []
    for i, fit in enumerate(curves):
        ok = ~np.isnan(fit)
        best = int(np.flatnonzero(ok)[np.argmax(fit[ok])]) if ok.any() else None
        rows.append(
            {
                "level": level,
                "set": set_name,
                "network": "pooled" if i == len(curves) - 1 else i,
                "unpruned_fit": float(fit[0]),
                "best_fit": np.nan if best is None else float(fit[best]),
                "best_percent_kept": np.nan if best is None else float(pct[best]),
                "improvement": float(imp.improvement[i]),
                "p_improvement": float(imp.p[i]),
                "trend_slope_per_percent": float(trend.slope[i]),
                "p_trend": float(trend.p[i]),
                "n_null": int(null.shape[1]),
            }
        )
    return rows


def summary_rows(result: Analysis, null: np.ndarray, level: str, set_name: str = "") -> list[dict]:
    """One row per keep count: fit mean and sd over networks; the mean curve's null
    mean and 95% band."""
    pooled = mean_curve(null)  # (n_null, L): draw j of the mean curve
    rows = []
    for j, k in enumerate(result.keep_counts):
        draws = pooled[:, j][~np.isnan(pooled[:, j])]
        fits = result.fit[:, j][~np.isnan(result.fit[:, j])]
        rows.append(
            {
                "level": level,
                "set": set_name,
                "keep_count": int(k),
                "keep_fraction": float(result.keep_fraction[j]),
                "fit_mean": float(np.mean(fits)) if fits.size else np.nan,
                "fit_sd": float(np.std(fits, ddof=1)) if fits.size > 1 else np.nan,
                "max_poz_mean": float(np.mean(result.max_poz[:, j])),
                "null_mean": float(np.mean(draws)) if draws.size else np.nan,
                "null_q025": float(np.quantile(draws, 0.025)) if draws.size else np.nan,
                "null_q975": float(np.quantile(draws, 0.975)) if draws.size else np.nan,
            }
        )
    return rows


def run(
    cfg: Exp3Config,
    out: str | Path,
    inputs: str | Path,
    cifar10h_dir: str | Path,
    progress: bool = True,
) -> dict:
    """Experiment 3 into ``out``; ``inputs``: an ``inputs.npz`` or Exp. 1's ``embeddings.npz``.

    Writes ``inputs.npz`` (when made from embeddings), ``summary.csv``,
    ``stats.csv``, ``figure_classes.png``/``.pdf`` and ``figure_images``; each
    null is saved once computed and reused while its inputs are the same.
    """
    out = files.check_out_dir(out)
    counts = cifar10h.load_counts(cifar10h_dir)
    data = files.load_arrays(inputs)[0]
    made = "class_means" not in data
    if made:
        data = prepare_inputs(inputs, cifar10h_dir)
    official = cifar10h.load_official_labels(cifar10h_dir)
    human_classes = cifar10h.class_similarity(
        cifar10h.class_confusion(counts, official), cfg.class_similarity
    )
    matched = data["matched_official"]
    sets = cifar10h.matched_sets(data["matched_labels"], cfg.per_class, cfg.n_sets, cfg.set_seed)
    out.mkdir(parents=True, exist_ok=True)
    files.clean_temporaries(out)
    files.write_json(out / "config.json", {"exp3": dataclasses.asdict(cfg), "inputs": str(inputs)})
    if made:
        files.save_arrays(out / "inputs.npz", {}, compressed=True, **data)
    n_net = len(data["class_means"])
    summary, stats, curves = [], [], {}
    with progress_bar(n_net * (1 + cfg.n_sets), "random-pruning nulls", progress) as bar:
        res, null = _cached(
            cfg, out, "classes", data["class_means"], data["poz"], human_classes, bar
        )
        summary += summary_rows(res, null, "classes")
        stats += stats_rows(res, null, "classes")
        curves["classes"] = (res, null)
        for i, idx in enumerate(sets):
            name = f"set{i}"
            probs = counts[matched[idx]] / counts[matched[idx]].sum(1, keepdims=True)
            human = cifar10h.image_similarity(probs, cfg.image_similarity)
            acts = data["matched_fc2"][:, idx].astype(np.float64)
            with float64():
                set_poz = np.asarray(poz(jnp.asarray(acts)))
            res, null = _cached(cfg, out, name, acts, set_poz, human, bar)
            summary += summary_rows(res, null, "images", name)
            stats += stats_rows(res, null, "images", name)
            curves[name] = (res, null)
    files.write_csv(out / "summary.csv", summary)
    files.write_csv(out / "stats.csv", stats)
    n_cmp = min(cfg.compare_networks, n_net)
    if n_cmp:
        rows = []
        ccfg = CompareConfig()  # the comparison's defaults, in float64
        total = n_cmp * len(sets) * ccfg.folds * ccfg.repeats
        with float64(), progress_bar(total, "comparison splits", progress) as bar:
            for i, idx in enumerate(sets):
                probs = counts[matched[idx]] / counts[matched[idx]].sum(1, keepdims=True)
                human = cifar10h.image_similarity(probs, cfg.image_similarity)
                for n in range(n_cmp):
                    acts = data["matched_fc2"][n][idx].astype(np.float64)
                    res = compare_set(ccfg, out, f"set{i}_network{n}", acts, human, bar)
                    rows += [{"network": n, **r} for r in res.summary_rows(f"set{i}")]
        files.write_csv(out / "compare.csv", rows)
    # Beside it, Experiment 1's curve for the same networks: the fit to each
    # network's own unpruned class-mean RSM.
    with float64():
        means = data["class_means"]
        own = analyse(means, rsm(means), _all_counts(means), poz_values=data["poz"])
    reference = mean_curve(own.fit)
    fig = exp3_figure(*curves["classes"], reference=reference, title="10 classes")
    figs = save_figure(fig, out / "figure_classes")
    fig = exp3_figure(*curves["set0"], title=f"images (set0, {cfg.per_class} per class)")
    figs += save_figure(fig, out / "figure_images")
    pooled = [r for r in stats if r["network"] == "pooled"]
    return {"stats": pooled, "figures": figs}


def mean_curve(curves: np.ndarray) -> np.ndarray:
    """Mean over the networks (axis 0) of the defined values; NaN where none is defined.

    At 1 and 2 nodes kept every fit is NaN by definition (constant rows, or
    every r exactly 1), so those levels stay NaN without a warning.
    """
    curves = np.asarray(curves, float)
    ok = ~np.isnan(curves)
    n = ok.sum(0)
    return np.where(n > 0, np.where(ok, curves, 0.0).sum(0) / np.maximum(n, 1), np.nan)


def _all_counts(acts) -> np.ndarray:
    # Every keep count, all nodes down to 1.
    return np.arange(acts.shape[-1], 0, -1)


def _cached(cfg, out: Path, name: str, acts, node_poz, human, bar):
    key = {
        "acts": files.fingerprint(acts),
        "poz": files.fingerprint(node_poz),
        "human": files.fingerprint(human),
        "n_null": cfg.n_null,
        "null_seed": cfg.null_seed,
    }
    path = out / f"null_{name}.npz"
    arrays, why = files.load_current(path, key)
    if arrays is not None:
        with float64():
            res = analyse(acts, human, _all_counts(acts), poz_values=node_poz)
        bar.update(len(acts))
        return res, arrays["null"]
    if why:
        status(f"recomputing {path.name}: {why}")
    res, null = level_analysis(acts, node_poz, human, cfg.n_null, cfg.null_seed, bar)
    files.save_arrays(path, {"key": key}, null=null)
    return res, null


def format_stats(stats: list[dict]) -> str:
    """The pooled rows of ``stats.csv`` as a text table."""
    table = text_table(
        stats,
        [
            ("level", text("level")),
            ("set", text("set")),
            ("unpruned fit", number("unpruned_fit")),
            ("best fit", number("best_fit")),
            ("best at % kept", number("best_percent_kept", ".1f", suffix="%")),
            ("gain", number("improvement")),
            ("p (gain)", number("p_improvement")),
            ("p (trend)", number("p_trend")),
        ],
    )
    return f"{table}\nthe networks' mean curve against the mean of their random-pruning nulls"
