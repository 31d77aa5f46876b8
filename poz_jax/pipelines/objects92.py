"""The 92-image set: PoZ pruning against each participant, with noise ceilings.

Experiment 1's LeNet5s see the 92 object images of Kriegeskorte et al.
(2008) at 32 x 32 (the shorter side resized to ``scale`` pixels with PIL's
antialiased bilinear filter, then the central 32 x 32: ``scale=32`` is the
whole image, 43 its central three quarters, objects larger). Two targets,
each one dissimilarity matrix per participant: the similarity judgments of
16 people (Mur et al. 2013) and human IT fMRI of 4 people (each the mean of
their two sessions). Participants are the random effect: every fit is a
signed Pearson r per participant (positive = the model agrees with the
person), means come with a 95% t interval across participants, and the
noise ceiling is rsatoolbox's for ``corr`` (leave one participant out /
all, pooled).

Per layer and scale, with every network's PoZ over the 92 images: the
networks' mean r at every keep count for each participant; a random-pruning
null (draw ``j``: every network's ``j``-th random order, seeded
``seed + network``, averaged over networks) and the improvement test per
participant and for the participants' mean; and PoZ pruning out of sample:
on each of ``folds`` item folds, PoZ and the keep level are chosen on the
other items and scored on the fold, the gain over the unpruned network
averaged over folds per participant and tested across participants.
References: the images' pixels (floor) and the 2008 paper's monkey and
human IT group matrices (human IT only against the judgments: it is the
hIT participants' own mean).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from poz_jax.analysis import stats
from poz_jax.analysis.networks import null_key
from poz_jax.core import validate as v
from poz_jax.core.crossval import item_splits
from poz_jax.core.nulls import improvement_test, null_band, participant_null
from poz_jax.core.ranking import keep_grid, keep_order, poz
from poz_jax.core.reliability import noise_ceiling
from poz_jax.core.rsa import participant_fits, rsm
from poz_jax.core.sweeps import sweep_rsms
from poz_jax.data.images import resize_images
from poz_jax.data.objects92 import load_objects92
from poz_jax.data.rdms import save_rdms
from poz_jax.io import cache, files, provenance
from poz_jax.models.lenet import layer_outputs, load_networks
from poz_jax.report.console import summary_table
from poz_jax.report.plots import ceiling_figure, participant_curves, save_figure
from poz_jax.study.contract import LENET_NETWORKS, Input, Result, Study
from poz_jax.study.options import PRECISION_HELP, setting
from poz_jax.study.runner import check_results_folder, results_folder
from poz_jax.study.runtime import dtype_of, precision_scope, progress_bar, status
from poz_jax.study.staging import relocate

INPUT_SIZE = 32
FC_LAYERS = ("fc1", "fc2")


@dataclasses.dataclass(frozen=True)
class Objects92Config:
    """Settings of one 92-image run (saved with its results)."""

    layers: tuple[str, ...] = setting(("fc2", "fc1"), "comma-separated, of fc2 and fc1")
    scales: tuple[int, ...] = setting(
        (32, 43), "shorter side resized to each, then the central 32 x 32 (32: whole image)"
    )
    n_null: int = setting(1000, "random orders per network")
    seed: int = setting(0, "seed (+ network) of the random orders, and of the item folds")
    folds: int = setting(5, "item folds of the out-of-sample test")
    pixel_sizes: tuple[int, ...] = setting((32, 175), "image sizes of the pixel floor")
    precision: str = setting("float64", PRECISION_HELP, choices=v.PRECISIONS)

    def __post_init__(self) -> None:
        for name in ("layers", "scales", "pixel_sizes"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not self.layers or len(set(self.layers)) != len(self.layers):
            raise v.FieldError("layers", f"must be distinct names from {FC_LAYERS}")
        for layer in self.layers:
            v.check_choice(layer, "layers", FC_LAYERS)
        for size in self.scales:
            v.check_int(size, "scales", INPUT_SIZE, 175)
        for size in self.pixel_sizes:
            v.check_int(size, "pixel_sizes", 8, 175)
        v.check_int(self.n_null, "n_null", 1)
        v.check_seed(self.seed, "seed")
        v.check_int(self.folds, "folds", 2, 30)
        v.check_choice(self.precision, "precision", v.PRECISIONS)


def run(cfg: Objects92Config, out, data, networks, progress: bool = True) -> Result:
    """The 92-image study into ``out``; returns ``{"group": rows, "figures": paths}``.

    Writes ``stats.csv`` (per target, layer, scale and participant),
    ``group.csv`` (every model's mean r across participants, with its
    interval, t-test and the ceiling), ``ceiling.csv``, ``levels.csv`` (the
    participants' mean r at every keep count, with the null's 95% band),
    ``analysis.npz`` (every participant's curve), ``rdms.hdf5`` (rsatoolbox's
    layout: network 0's RDMs unpruned and at the group's best level, and the
    pixels') and two figures per target.
    """
    out = check_results_folder(out, "objects92", data=data)
    d = load_objects92(data)
    params, _ = load_networks(networks)
    n_net = len(params["fc3"]["bias"])
    record = provenance.input_record(networks)
    names = list(d.targets)
    people = np.concatenate([t.matrices for t in d.targets.values()])
    who = [(name, p) for name, t in d.targets.items() for p in t.participants]
    with results_folder(out, "objects92", cfg, {"data": data, "networks": record}) as work:
        emb = _embeddings(cfg, work, d.images, params, record["sha256"], progress)
        dtype = dtype_of(cfg.precision)
        group, rows, curves, levels = [], [], {}, []
        with precision_scope(cfg.precision):
            ceilings = {n: noise_ceiling(t.matrices) for n, t in d.targets.items()}
            pixels = _pixel_rsms(cfg, d.images, dtype)
            refs = _references(pixels, d, people)
            splits = item_splits(len(d.images), cfg.folds, 1, cfg.seed)
            pairs = [(layer, s) for layer in cfg.layers for s in cfg.scales]
            total = len(pairs) * n_net * (cfg.n_null + len(splits))
            with progress_bar(total, "nulls and item folds", progress) as bar:
                for layer, s in pairs:
                    acts = np.asarray(emb[f"{layer}_{s}"], dtype)
                    curves[layer, s] = _analyse(
                        cfg, work, acts, people, splits, f"{layer}_{s}", bar
                    )
        index = {name: np.array([i for i, (n, _) in enumerate(who) if n == name]) for name in names}
        for layer, s in pairs:
            c = curves[layer, s]
            for name, idx in index.items():
                part = {k: c[k][..., idx] for k in ("r", "null", "gain")}
                rows += _participant_rows(name, layer, s, c["keep_counts"], part, who, idx)
                levels += _level_rows(name, layer, s, c["keep_counts"], part, ceilings[name])
                group += _group_rows(name, layer, s, c["keep_counts"], part, ceilings[name])
        for name, idx in index.items():
            for model, r in refs.items():
                if not (name == "hIT" and model == "human IT"):
                    group.append(_across(name, model, "r", r[idx], ceilings[name]))
        files.write_csv(work / "stats.csv", rows)
        files.write_csv(work / "group.csv", group)
        files.write_csv(work / "levels.csv", levels)
        files.write_csv(work / "ceiling.csv", [_ceiling_row(n, c) for n, c in ceilings.items()])
        files.save_arrays(
            work / "analysis.npz",
            {"targets": [n for n, _ in who], "participants": [p for _, p in who]},
            compressed=True,
            **{f"{k}_{layer}_{s}": c[k] for (layer, s), c in curves.items()
               for k in ("keep_counts", "r", "gain", "poz")},
        )  # fmt: skip
        with precision_scope(cfg.precision):
            _save_rdms(work, d, emb, curves, pixels, dtype)
        figs = []
        for name in names:
            sel = [g for g in group if g["target"] == name]
            figs += save_figure(ceiling_figure(sel, ceilings[name], name), work / f"models_{name}")
            lv = [r for r in levels if r["target"] == name]
            figs += save_figure(
                participant_curves(lv, ceilings[name], name), work / f"curves_{name}"
            )
        text = summary_table(group, SUMMARY, "mean over participants (t interval and t-test)")
        return relocate(Result(group, figs, text), work, out)


def _embeddings(cfg, out: Path, images, params, networks: str, progress) -> dict:
    """``{f"{layer}_{scale}": (S, 92, nodes)}``, computed once while images and networks stay."""
    key = cache.product_key(
        {"images": images, "networks": networks}, layers=list(cfg.layers), scales=list(cfg.scales)
    )

    def fresh():
        status(f"embedding the 92 images at {len(cfg.scales)} scale(s) in every network", progress)
        emb = {}
        for s in cfg.scales:
            x = resize_images(images, s, INPUT_SIZE)
            for layer, a in layer_outputs(params, x, cfg.layers).items():
                emb[f"{layer}_{s}"] = a
        return emb

    return cache.cached(out / "embeddings.npz", key, fresh)


def _analyse(cfg, out: Path, acts, people, splits, label: str, bar) -> dict:
    """Every participant's curve, null and out-of-sample gain for one layer and scale.

    ``acts`` ``(N, 92, nodes)``; ``people`` ``(S, 92, 92)`` dissimilarities.
    Returns ``keep_counts (L,)``, ``poz (N, nodes)``, ``r (L, S)`` (networks'
    mean), ``null (n_null, L, S)`` and ``gain (S,)``.
    """
    n_net, _, nodes = acts.shape
    counts = keep_grid(nodes, step=1)
    node_poz = np.asarray(poz(jnp.asarray(acts)))
    order = keep_order(node_poz)
    r = np.mean(
        [participant_fits(sweep_rsms(acts[i], counts, order[i]), people, "dissimilarity")
         for i in range(n_net)], axis=0,
    )  # fmt: skip
    key = null_key(acts, people, counts, cfg.n_null, cfg.seed, cfg.precision)

    def fresh_null():
        total = 0.0
        for i in range(n_net):
            total = total + participant_null(
                acts[i], people, counts, cfg.n_null, cfg.seed + i, "dissimilarity",
                progress=bar.update,
            )  # fmt: skip
        return {"null": total / n_net}

    null = cache.cached(
        out / f"null_{label}.npz", key, fresh_null, lambda: bar.update(n_net * cfg.n_null)
    )["null"]
    gains = []
    for split in splits:
        tr, te = split.train, split.test
        fold_order = keep_order(poz(jnp.asarray(acts[:, tr])))
        fits = {"train": 0.0, "test": 0.0}
        for i in range(n_net):
            rsms = np.asarray(sweep_rsms(acts[i], counts, fold_order[i]))
            for part, items in (("train", tr), ("test", te)):
                block = np.ix_(items, items)
                fits[part] = fits[part] + np.asarray(
                    participant_fits(
                        rsms[:, block[0], block[1]], people[:, block[0], block[1]], "dissimilarity"
                    )
                )
            bar.update(1)
        best = stats.best_along(fits["train"], axis=0)  # (S,) level chosen on other items
        test = fits["test"] / n_net
        gains.append(test[best, np.arange(test.shape[1])] - test[0])
    return {"keep_counts": counts, "poz": node_poz, "r": r, "null": null,
            "gain": stats.mean(np.stack(gains), axis=0)}  # fmt: skip


def _pixel_rsms(cfg, images, dtype) -> dict[int, np.ndarray]:
    """``{size: (92, 92)}``: the RSM of the images' pixels at each of ``cfg.pixel_sizes``."""
    out = {}
    for size in cfg.pixel_sizes:
        px = images if size == images.shape[1] else resize_images(images, size, size)
        out[size] = np.asarray(rsm(jnp.asarray(px.reshape(len(px), -1), dtype)))
    return out


def _references(pixels: dict, d, people) -> dict[str, np.ndarray]:
    """Each reference model's r with every participant: the pixels' RSMs
    (:func:`_pixel_rsms`), the IT groups."""
    refs = {}
    for size, model in pixels.items():
        refs[f"pixels {size}x{size}"] = np.asarray(participant_fits(model, people, "dissimilarity"))
    for name, m in d.references.items():
        # A dissimilarity as a model: its negative is a similarity with the same r, sign flipped.
        refs[name] = np.asarray(participant_fits(-m, people, "dissimilarity"))
    return refs


def _participant_rows(target, layer, scale, counts, part, who, idx) -> list[dict]:
    rows = []
    test = improvement_test(part["r"].T, np.moveaxis(part["null"], 2, 0))
    for j, i in enumerate(idx):
        curve = part["r"][:, j]
        b = int(stats.best_along(curve))
        rows.append({
            "target": target, "layer": layer, "scale": scale, "participant": who[i][1],
            "unpruned_r": float(curve[0]), "best_r": float(curve[b]),
            "best_keep_count": int(counts[b]),
            "best_percent_kept": 100.0 * counts[b] / counts[0],
            "improvement": float(test.improvement[j]), "p_improvement": float(test.p[j]),
            "out_of_sample_gain": float(part["gain"][j]),
        })  # fmt: skip
    return rows


def _level_rows(target, layer, scale, counts, part, ceiling) -> list[dict]:
    curve = stats.mean(part["r"], axis=1)
    low, high = null_band(stats.mean(part["null"], axis=2))
    return [
        {"target": target, "layer": layer, "scale": scale, "keep_count": int(k),
         "percent_kept": 100.0 * k / counts[0], "r_mean": float(curve[i]),
         "null_low": float(low[i]), "null_high": float(high[i]),
         "noise_ceiling_lower": float(ceiling.lower), "noise_ceiling_upper": float(ceiling.upper)}
        for i, k in enumerate(counts)
    ]  # fmt: skip


def _group_rows(target, layer, scale, counts, part, ceiling) -> list[dict]:
    """The participants' mean curve's rows: unpruned, best level, and the out-of-sample gain."""
    curve = stats.mean(part["r"], axis=1)
    b = int(stats.best_along(curve))
    test = improvement_test(curve, stats.mean(part["null"], axis=2))
    net = f"LeNet5 {layer} {scale}px"
    best = _across(target, f"{net} best level ({counts[b]} nodes, in-sample)", "r",
                   part["r"][b], ceiling)  # fmt: skip
    best["p_improvement"] = float(test.p)
    return [
        _across(target, f"{net} unpruned", "r", part["r"][0], ceiling),
        best,
        _across(target, f"{net} PoZ-pruned, level chosen out of sample", "gain in r",
                part["gain"], ceiling),
    ]  # fmt: skip


def _across(target, model, quantity, values, ceiling) -> dict:
    a = stats.across(values)
    return {
        "target": target, "model": model, "quantity": quantity,
        **{k: a[k] for k in ("mean", "sd", "n", "interval_low", "interval_high", "t", "p")},
        "mean_r2": stats.mean(np.asarray(values) ** 2) if quantity == "r" else np.nan,
        "noise_ceiling_lower": float(ceiling.lower), "noise_ceiling_upper": float(ceiling.upper),
        "p_improvement": np.nan,
    }  # fmt: skip


def _ceiling_row(target, c) -> dict:
    return {"target": target, "n_participants": len(c.lower_each),
            "lower_r": float(c.lower), "upper_r": float(c.upper),
            "lower_r2": float(c.lower_r2), "upper_r2": float(c.upper_r2)}  # fmt: skip


def _save_rdms(work: Path, d, emb, curves, pixels: dict, dtype) -> None:
    """Network 0's RSMs unpruned and at the judgments' best level, and the pixels', as RDMs."""
    n_judged = len(d.targets["judgments"].participants)
    mats, desc = [], {"model": [], "layer": [], "scale": [], "keep_count": [], "network": []}
    for (layer, s), c in curves.items():
        x = np.asarray(emb[f"{layer}_{s}"][0], dtype)
        best = int(stats.best_along(stats.mean(c["r"][:, :n_judged], axis=1)))
        for level in sorted({0, best}):
            k = int(c["keep_counts"][level])
            mats.append(np.asarray(sweep_rsms(x, [k], keep_order(c["poz"][0]))[0]))
            for key, val in zip(desc, (f"LeNet5 {layer}", layer, s, k, 0), strict=True):
                desc[key].append(val)
    for size, m in pixels.items():
        mats.append(m)
        for key, val in zip(desc, ("pixels", "", size, size * size * 3, -1), strict=True):
            desc[key].append(val)
    save_rdms(work / "rdms.hdf5", np.stack(mats), "similarity", desc,
              [f"image{i + 1}" for i in range(len(d.images))],
              measure="1 - squared Pearson r (poz-jax RSM)")  # fmt: skip


# Every model's mean r across participants, with the ceiling: the console summary.
SUMMARY = "target model quantity mean interval_low interval_high p noise_ceiling_lower "
SUMMARY += "noise_ceiling_upper"

STUDY = Study(
    name="objects92",
    help="the 92-image set: every participant's judgments and human IT, with noise ceilings",
    description="Experiment 1's LeNet5s on the 92 object images of Kriegeskorte et al. "
    "(2008), against each of 16 people's similarity judgments and 4 people's human IT: "
    "every keep level per participant, random-pruning nulls, PoZ pruning out of sample, "
    "pixels and IT as reference models, rsatoolbox's noise ceilings and t tests across "
    "participants. Writes stats.csv, group.csv, ceiling.csv, levels.csv, analysis.npz, "
    "rdms.hdf5 and two figures per target.",
    config=Objects92Config,
    inputs=(
        Input(
            "data",
            "the 92-image folder (rsatoolbox's demos/92imageData: ../shared/data/kriegeskorte92)",
            required=True,
        ),
        LENET_NETWORKS,
    ),
    run=run,
)
