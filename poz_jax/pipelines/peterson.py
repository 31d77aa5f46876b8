"""Experiment 2 on the paper's own human judgments (Peterson et al. 2018), many networks.

The stimulus sets with images (``../shared/data/peterson2018``: animals,
fruits, vegetables) go through every network of a stacked LeNet5
``networks.npz`` (Experiment 1's): each image composited on white, its
shorter side resized to 32 pixels with PIL's antialiased bilinear filter
and centre-cropped to 32 x 32, the input size the networks were trained
at, then scaled as in training. Per set and layer (fc2, the paper's
penultimate layer, and fc1), as in Experiment 3 (:mod:`per_network`):
PoZ over the set's images per network, the sweep at every keep count
against the human matrix, each network's random-pruning null and both
tests, and the same for the networks' mean curve. The first
``compare_networks`` networks also go through ``poz-jax compare``.

Two references: a floor, the fit of the images' own pixels (at 32 x 32 and
at the 224 x 224 of VGG-16's preprocessing), and, for a set whose matrix is
the mean of two rater batches (animals), the split-half noise ceiling
(:mod:`poz_jax.core.reliability`), with every fit also as a fraction of it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from poz_jax.analysis import stats
from poz_jax.analysis.comparison import CompareConfig, check_design
from poz_jax.analysis.networks import analyse_networks, compare_networks
from poz_jax.core import validate as v
from poz_jax.core.nulls import null_band
from poz_jax.core.ranking import poz
from poz_jax.core.reliability import split_half
from poz_jax.core.rsa import fit, rsm
from poz_jax.data import load_stimulus_sets
from poz_jax.data.images import load_images
from poz_jax.data.stimuli import check_have_images, image_digests
from poz_jax.io import cache, files, provenance
from poz_jax.models.lenet import LAYERS, layer_outputs, load_networks
from poz_jax.report.console import summary_table
from poz_jax.report.plots import POZ_TICKS, compare_figure, figure2, figure3, poz_ticks, save_figure
from poz_jax.report.tables import network_tables
from poz_jax.study.contract import LENET_NETWORKS, Input, Result, Study
from poz_jax.study.options import PRECISION_HELP, setting
from poz_jax.study.runner import check_results_folder, results_folder
from poz_jax.study.runtime import dtype_of, precision_scope, progress_bar, status
from poz_jax.study.staging import relocate

INPUT_SIZE = 32  # the networks' input: CIFAR-10's images are 32 x 32
FC_LAYERS = ("fc1", "fc2")  # PoZ over images needs one value per node and image


@dataclasses.dataclass(frozen=True)
class PetersonConfig:
    """Settings of one Peterson study run (saved with its results).

    ``layers``: of ``fc2`` (84 nodes) and ``fc1`` (120). ``n_null``: random
    keep orders per network, seeded ``seed + network``. ``compare_networks``:
    the first so many networks go through ``poz-jax compare`` (its defaults,
    with this ``seed`` and ``precision``) at ``compare_layers``.
    ``pixel_sizes``: image sizes of the pixel floor.
    """

    layers: tuple[str, ...] = setting(("fc2", "fc1"), "comma-separated")
    n_null: int = setting(10000, "random orders per network")
    seed: int = setting(0, "seed (+ network) of the random orders, and of the comparison")
    precision: str = setting("float64", PRECISION_HELP, choices=v.PRECISIONS)
    compare_networks: int = setting(10, "networks through poz-jax compare; 0: none")
    compare_layers: tuple[str, ...] = setting(("fc2",), "layers the comparison runs on")
    pixel_sizes: tuple[int, ...] = setting((32, 224), "image sizes of the pixel floor")
    sets: tuple[str, ...] | None = setting(None, "comma-separated set names (default: all)")

    def __post_init__(self) -> None:
        for name in ("layers", "compare_layers", "pixel_sizes"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.sets is not None:
            object.__setattr__(self, "sets", tuple(self.sets))
        if not self.layers or len(set(self.layers)) != len(self.layers):
            raise v.FieldError(
                "layers", f"must be distinct names from {FC_LAYERS}, got {self.layers}"
            )
        for layer in self.layers:
            v.check_choice(layer, "layers", FC_LAYERS)
        extra = [layer for layer in self.compare_layers if layer not in self.layers]
        if extra:
            raise v.FieldError(
                "compare_layers", f"{extra} are not among layers {list(self.layers)}"
            )
        v.check_int(self.n_null, "n_null", 1)
        v.check_seed(self.seed, "seed")
        v.check_choice(self.precision, "precision", v.PRECISIONS)
        v.check_int(self.compare_networks, "compare_networks", 0)
        for size in self.pixel_sizes:
            v.check_int(size, "pixel_sizes", 8, 1024)
        v.check_set_names(self.sets)

    @classmethod
    def from_dict(cls, saved: dict) -> PetersonConfig:
        """The config a ``config.json`` holds (lists become tuples)."""
        return cls(**saved)


def run(
    cfg: PetersonConfig,
    out: str | Path,
    stimuli: str | Path,
    networks: str | Path,
    progress: bool = True,
) -> Result:
    """The Peterson study into ``out``; returns ``{"stats": pooled rows, "figures": paths}``.

    Writes ``summary.csv``, ``stats.csv``, ``ceiling.csv``, ``compare.csv``,
    ``analysis.npz`` (per set and layer, every network's ``poz``, ``fit`` and
    ``max_poz`` at every ``keep_counts``) and Figures 2 and 3 per layer.

    ``stimuli``: a folder of set folders with images (or one set's folder);
    ``networks``: a stacked LeNet5 ``networks.npz``. Every input is checked
    before anything is written; the embeddings, every null and every
    comparison are saved as they finish and reused while the numbers they
    come from are the same.
    """
    out = check_results_folder(out, "peterson", stimuli=stimuli)
    sets = load_stimulus_sets(stimuli, list(cfg.sets) if cfg.sets else None)
    check_have_images(sets)
    params, _ = load_networks(networks)
    n_net = len(params["fc3"]["bias"])
    n_cmp = min(cfg.compare_networks, n_net)
    ccfg = CompareConfig(seed=cfg.seed, precision=cfg.precision)
    if n_cmp:
        for name, s in sets.items():
            for layer in cfg.compare_layers:
                try:
                    check_design(s.n_items, LAYERS[layer], *ccfg.design())
                except ValueError as err:
                    # The comparison's folds are compare's defaults, not a peterson flag.
                    raise ValueError(
                        f"set {name} ({s.n_items} items) is too small for the comparison of "
                        f"orderings ({ccfg.folds} folds, {ccfg.inner_folds} inner folds, each "
                        "of at least 3 items); pass --compare-networks 0 to skip it"
                    ) from err
    record = provenance.input_record(networks)
    with results_folder(out, "peterson", cfg, {"stimuli": stimuli, "networks": record}) as work:
        images = {name: load_images(s.images, INPUT_SIZE, INPUT_SIZE) for name, s in sets.items()}
        emb = _embeddings(cfg, work, sets, images, params, record["sha256"], progress)
        dtype = dtype_of(cfg.precision)
        with precision_scope(cfg.precision):
            floors = _pixel_floors(cfg, sets, images, dtype)
            ceilings = {n: split_half(*s.batches) for n, s in sets.items() if s.batches is not None}
        summary, stat_rows, curves = [], [], {}
        levels = [(name, layer) for name in sets for layer in cfg.layers]
        with (
            precision_scope(cfg.precision),
            progress_bar(n_net * len(levels), "random-pruning nulls", progress) as bar,
        ):
            for name, layer in levels:
                acts = np.asarray(emb[f"{layer}_{name}"], dtype)
                human = np.asarray(sets[name].similarity, dtype)
                node_poz = np.asarray(poz(jnp.asarray(acts)))
                res, null, tests = analyse_networks(
                    work, f"{name}_{layer}", acts, node_poz, human, cfg.n_null, cfg.seed,
                    cfg.precision, bar,
                )  # fmt: skip
                rows = network_tables(res, null, tests, {"set": name, "layer": layer})
                ceiling = float(ceilings[name].ceiling) if name in ceilings else np.nan
                summary += _with_ceiling(rows[0], ceiling, ("fit_mean",))
                shares = [float(np.mean(p > 0.8)) for p in res.poz]
                for row, share in zip(rows[1], [*shares, stats.mean(shares)], strict=True):
                    row["share_poz_above_80"] = share
                stat_rows += _with_ceiling(rows[1], ceiling, ("unpruned_fit", "best_fit"))
                curves[name, layer] = (res, null)
        files.write_csv(work / "summary.csv", summary)
        files.write_csv(work / "stats.csv", stat_rows)
        # Every network's curve at every keep count (the tables hold their summaries).
        files.save_arrays(
            work / "analysis.npz",
            {"levels": [f"{n}_{layer}" for n, layer in levels]},
            compressed=True,
            **{
                f"{k}_{n}_{layer}": getattr(curves[n, layer][0], k)
                for n, layer in levels
                for k in ("keep_counts", "poz", "fit", "max_poz")
            },
        )
        pooled_rows = [r for r in stat_rows if r["network"] == "pooled"]
        files.write_csv(work / "ceiling.csv", _ceiling_rows(sets, floors, ceilings, pooled_rows))
        figs = _figures(cfg, sets, curves, floors, ceilings, n_net, work)
        if n_cmp:
            rows = _compare(cfg, ccfg, work, sets, emb, n_cmp, dtype, progress)
            files.write_csv(work / "compare.csv", rows)
            means = [r for r in rows if r["network"] == "mean"]
            title = f"Fit to new images, mean of {n_cmp} networks (95% interval over networks)"
            figs += save_figure(compare_figure(means, title=title), work / "compare")
        note = "the networks' mean curve against the mean of their random-pruning nulls"
        text = summary_table(pooled_rows, SUMMARY, note)
        return relocate(Result(pooled_rows, figs, text), work, out)


def _embeddings(cfg, out: Path, sets, images, params, networks: str, progress) -> dict:
    """``{f"{layer}_{set}": (S, n, nodes)}``, computed once while images and networks stay."""
    digests = {**image_digests(sets), "networks": networks}
    key = cache.product_key(digests, layers=list(cfg.layers), input_size=INPUT_SIZE)

    def fresh():
        status(f"embedding {sum(map(len, images.values()))} images in every network", progress)
        emb = {}
        for name, x in images.items():
            for layer, a in layer_outputs(params, x, cfg.layers).items():
                emb[f"{layer}_{name}"] = a
        return emb

    return cache.cached(out / "embeddings.npz", key, fresh)


def _pixel_floors(cfg: PetersonConfig, sets, images, dtype) -> dict[str, dict[int, float]]:
    """Each set's fit of its images' pixel RSM to the human matrix, at each size.

    A row's Pearson r ignores its scale and offset, so raw pixels and the
    networks' scaled inputs give the same RSM.
    """
    floors = {}
    for name, s in sets.items():
        floors[name] = {}
        for size in cfg.pixel_sizes:
            if size == INPUT_SIZE:
                px = images[name]
            else:  # as VGG-16's preprocessing at 224: shorter side to 8/7 of it, centre crop
                px = load_images(s.images, round(size * 256 / 224), size)
            x = jnp.asarray(px.reshape(len(px), -1), dtype)
            floors[name][size] = float(fit(rsm(x), jnp.asarray(s.similarity, x.dtype)))
    return floors


def _with_ceiling(rows: list[dict], ceiling: float, columns) -> list[dict]:
    """``rows`` with the set's ``ceiling`` and each of ``columns`` as a fraction of it."""
    for row in rows:
        row["noise_ceiling"] = ceiling
        for c in columns:
            row[f"{c}_of_ceiling"] = row[c] / ceiling if np.isfinite(ceiling) else np.nan
    return rows


def _ceiling_rows(sets, floors, ceilings, pooled_rows) -> list[dict]:
    """A row per set and measure: its fit, the set's ceiling and the fit as a fraction of it.

    Measures: the pixel floors, and per layer the networks' mean unpruned
    fit and the best fit of their mean curve. A set without rater batches
    has no ceiling (NaN), none is invented.
    """
    rows = []
    for name in sets:
        split = ceilings.get(name)
        ref = {
            "noise_ceiling": np.nan if split is None else float(split.ceiling),
            "split_half_r": np.nan if split is None else float(split.r),
            "batch_to_batch_fit": np.nan if split is None else float(split.batch_fit),
        }
        measures = [(f"pixels {k}x{k}", f) for k, f in floors[name].items()]
        for r in (r for r in pooled_rows if r["set"] == name):
            measures += [
                (f"{r['layer']} unpruned (networks' mean)", r["unpruned_fit"]),
                (f"{r['layer']} best of the mean curve", r["best_fit"]),
            ]
        for measure, value in measures:
            ceiling = ref["noise_ceiling"]
            rows.append(
                {
                    "set": name,
                    "measure": measure,
                    "fit": value,
                    **ref,
                    "fraction_of_ceiling": value / ceiling if np.isfinite(ceiling) else np.nan,
                }
            )
    return rows


def _compare(cfg, ccfg, out: Path, sets, emb, n_cmp: int, dtype, progress) -> list[dict]:
    """Per network comparison rows, then a ``network="mean"`` row per set, layer and method.

    The mean row's interval is over networks (independent replicates):
    mean +- t(0.975, n - 1) sd / sqrt(n) of the networks' out-of-sample means.
    """
    pairs = [(name, layer) for name in sets for layer in cfg.compare_layers]
    total = n_cmp * len(pairs) * ccfg.folds * ccfg.repeats
    rows = []
    with precision_scope(cfg.precision), progress_bar(total, "comparison splits", progress) as bar:
        for name, layer in pairs:
            level = [(f"{name}_{layer}", emb[f"{layer}_{name}"], sets[name].similarity)]
            got = compare_networks(ccfg, out, level, n_cmp, dtype, bar)
            for r in got:  # compare names the level f"{set}_{layer}": split it in two
                rows.append({"network": r["network"], "set": name, "layer": layer, **r})
                rows[-1]["set"] = name
    means = []
    for name, layer in pairs:
        for method in ccfg.methods:
            sel = [r for r in rows if (r["set"], r["layer"], r["method"]) == (name, layer, method)]
            fits = np.array([r["fit_out_of_sample_mean"] for r in sel], np.float64)
            m, sd, half = stats.mean(fits), stats.sd(fits), stats.t_half_width(fits)
            n = int(np.sum(np.isfinite(fits)))
            diffs = np.array([r["minus_unpruned_mean"] for r in sel], np.float64)
            means.append(
                {
                    "network": "mean",
                    "set": name,
                    "layer": layer,
                    "method": method,
                    "fit_out_of_sample_mean": m,
                    "fit_out_of_sample_sd": sd,
                    "interval_low": m - half,
                    "interval_high": m + half,
                    "fit_in_sample": stats.mean([r["fit_in_sample"] for r in sel]),
                    "minus_unpruned_mean": stats.mean(diffs),
                    "n_networks_better": int(
                        sum(r["minus_unpruned_mean"] > 0 and r["p_corrected"] < 0.05 for r in sel)
                    ),
                    "n_networks_worse": int(
                        sum(r["minus_unpruned_mean"] < 0 and r["p_corrected"] < 0.05 for r in sel)
                    ),
                    "n_networks": n,
                }
            )
    both = rows + means
    columns = list(dict.fromkeys(k for r in both for k in r))  # a network's row lacks counts
    return [{c: r.get(c, np.nan) for c in columns} for r in both]


def _figures(cfg, sets, curves, floors, ceilings, n_net: int, out: Path) -> list[Path]:
    """Figure 2 and Figure 3 per layer (PNG and PDF)."""
    figs = []
    for layer in cfg.layers:
        by_set = {name: curves[name, layer] for name in sets}
        fig2 = figure2(
            {n: res.poz for n, (res, _) in by_set.items()},
            title=f"Cumulative PoZ per set, {n_net} CIFAR-10 LeNet5s, {layer}",
        )
        figs += save_figure(fig2, out / f"figure2_{layer}")
        lines = {}
        for name in sets:
            lines[name] = {f"pixels {k}x{k}": f for k, f in floors[name].items()}
            if name in ceilings:
                lines[name]["noise ceiling (split-half)"] = float(ceilings[name].ceiling)
        mean_curve = {n: stats.mean(res.fit, axis=0) for n, (res, _) in by_set.items()}
        pct = {n: 100.0 * res.keep_counts / res.n_nodes for n, (res, _) in by_set.items()}
        fig3 = figure3(
            {n: (pct[n], mean_curve[n]) for n in by_set},
            {n: poz_ticks(res.poz) for n, (res, _) in by_set.items()},
            title=f"PoZ-ordered pruning of {layer} against human similarity, mean of {n_net} "
            "LeNet5s",
            null_bands={n: null_band(stats.mean(null, axis=0)) for n, (_, null) in by_set.items()},
            tick_labels=POZ_TICKS,
            lines=lines,
        )
        figs += save_figure(fig3, out / f"figure3_{layer}")
    return figs


# The networks' mean curves (network "pooled") in the console summary.
SUMMARY = "set layer share_poz_above_80 unpruned_fit best_fit best_percent_kept "
SUMMARY += "p_improvement p_trend unpruned_fit_of_ceiling"

STUDY = Study(
    name="peterson",
    help="Experiment 2 on Peterson et al.'s human judgments, with Experiment 1's networks",
    description="Each stimulus set's images (composited on white, resized to 32 x 32) "
    "through every LeNet5 of a networks.npz; per set and layer the PoZ, the PoZ-ordered "
    "sweep at every keep count against the human similarity matrix, each network's "
    "random-pruning null and both tests, and the networks' mean curve; the pixel floor, "
    "the split-half noise ceiling of a matrix with two rater batches, and poz-jax compare "
    "for the first networks. Writes summary.csv, stats.csv, ceiling.csv, compare.csv and "
    "Figures 2 and 3 per layer; a re-run with the same --out reuses every finished part.",
    config=PetersonConfig,
    inputs=(
        Input(
            "stimuli",
            "a folder of set folders, each with its images, order.txt and similarity file "
            "(../shared/data/peterson2018)",
            required=True,
        ),
        LENET_NETWORKS,
    ),
    run=run,
)
