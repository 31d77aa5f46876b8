"""Network trimming (Hu et al. 2016) of Experiment 1's networks, beside its baselines.

Each network's nodes are scored per layer (conv1, conv2, fc1, fc2) by
APoZ (the share of zeros after the ReLU over ``score_images`` training
images and, for a channel, all positions of its map), by the L1 norm of
their incoming weights (Li et al. 2017) and by ``random_draws`` seeded
random scores; each layer alone is trimmed to every ``keep`` fraction of
its nodes (the highest scores go), as masks, and every trimmed network is
fine-tuned with its mask held (:func:`poz_jax.training.train.fine_tune`, SGD as in
Experiment 1, ``epochs`` over ``tune_images`` training images). Beside
them, the untrimmed networks fine-tuned with the same recipe (method
``none``): what the extra training alone does.

For every trimmed network, before and after fine-tuning: test accuracy,
parameters and multiply-adds kept (of the physical network), and the fit of
its fc2 class-mean RSM (over its kept nodes) to the untrimmed network's and
to the human class similarity of CIFAR-10H (Experiment 3's target).

Then Hu et al.'s iterative scheme (over all four layers, whatever
``layers`` says): ``rounds`` times, each network
recomputes APoZ, trims the layer of highest mean APoZ by the threshold rule
of :func:`poz_jax.models.trim.threshold_step` (nodes more than ``sds``
standard deviations above that layer's mean) and is fine-tuned again.

Every group of fine-tuned networks (one per layer, the control, each round)
is saved as it finishes and reused while its inputs are the same; a group
interrupted mid-epoch resumes from its last epoch's checkpoint.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import numpy as np

from poz_jax.analysis import stats
from poz_jax.core import validate as v
from poz_jax.core.rsa import fit, rsm
from poz_jax.data import cifar10h as c10h
from poz_jax.data.cifar10 import load_cifar10
from poz_jax.io import cache, files, provenance
from poz_jax.models.lenet import LAYERS, layer_apoz, load_networks
from poz_jax.models.trim import keep_masks, kept_rsms, l1_scores, masked_eval, size, threshold_step
from poz_jax.report.console import summary_table
from poz_jax.report.plots import save_figure, trim_figure
from poz_jax.study.contract import LENET_NETWORKS, Input, Result, Study
from poz_jax.study.options import setting
from poz_jax.study.runner import check_results_folder, results_folder
from poz_jax.study.runtime import float64, status
from poz_jax.study.staging import relocate
from poz_jax.training.train import TrainConfig, data_key, fine_tune

METHODS = ("apoz", "l1", "random")
UNTRIMMED = size(tuple(LAYERS.values()))


@dataclasses.dataclass(frozen=True)
class TrimConfig:
    """Settings of one trimming study (saved with its results).

    ``n_networks``: the first so many of the networks file (0: all; saved by
    folders before this name as ``networks``, the name of the file's input).
    ``keep``: fractions of a layer's nodes kept (each rounded to a whole
    node, at least one). ``seed`` draws the scoring images, the random
    scores and (as in :class:`TrainConfig`) the fine-tuning images and order.
    """

    n_networks: int = setting(10, "the first so many networks; 0: all")
    layers: tuple[str, ...] = setting(tuple(LAYERS), "comma-separated")
    keep: tuple[float, ...] = setting(
        (0.75, 0.5, 0.25), "fractions of a layer's nodes kept, comma-separated"
    )
    random_draws: int = setting(3, "seeded random trimmings per layer and level")
    score_images: int = setting(10000, "training images APoZ is measured on")
    tune_images: int = setting(10000, "training images of the fine-tuning")
    epochs: int = setting(1, "fine-tuning epochs")
    learning_rate: float = setting(0.001, "learning rate of the fine-tuning (SGD)")
    momentum: float = setting(0.9, "momentum of the fine-tuning (SGD)")
    rounds: int = setting(4, "rounds of iterative APoZ trimming; 0: none")
    sds: float = setting(
        1.0, "iterative trimming removes nodes this many sds above the layer's mean APoZ"
    )
    seed: int = setting(0, "seed of the images drawn, the random scores and the fine-tuning")

    def __post_init__(self) -> None:
        for name in ("layers", "keep"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not self.layers or len(set(self.layers)) != len(self.layers):
            raise v.FieldError("layers", f"must be distinct names from {list(LAYERS)}")
        for layer in self.layers:
            v.check_choice(layer, "layers", tuple(LAYERS))
        if not self.keep or len(set(self.keep)) != len(self.keep):
            raise v.FieldError("keep", f"must be distinct fractions, got {self.keep}")
        for f in self.keep:
            if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f < 1:
                raise v.FieldError(
                    "keep", f"fractions must lie strictly between 0 and 1, got {f!r}"
                )
        v.check_int(self.n_networks, "n_networks", 0)
        v.check_int(self.random_draws, "random_draws", 0)
        v.check_int(self.score_images, "score_images", 1)
        v.check_int(self.tune_images, "tune_images", 50)
        v.check_int(self.epochs, "epochs", 1)
        v.check_int(self.rounds, "rounds", 0)
        v.check_seed(self.seed, "seed")
        if isinstance(self.sds, bool) or not isinstance(self.sds, (int, float)) or self.sds < 0:
            raise v.FieldError("sds", f"must be a number >= 0, got {self.sds!r}")
        self.train_config(1)  # the fine-tuning's own checks (learning rate, momentum)

    @classmethod
    def from_dict(cls, saved: dict) -> TrimConfig:
        """The config a ``config.json`` holds (lists become tuples, old names today's)."""
        return cls(**_current_names(saved))

    def train_config(self, n_networks: int, round_: int = 0) -> TrainConfig:
        """The fine-tuning of ``n_networks`` stacked networks (round ``round_`` of the path)."""
        return TrainConfig(
            seeds=n_networks,
            epochs=self.epochs,
            learning_rate=self.learning_rate,
            momentum=self.momentum,
            seed=self.seed + round_,
            train_subset=self.tune_images,
        )


def keep_counts(cfg: TrimConfig, layer: str) -> np.ndarray:
    """Nodes kept at each ``cfg.keep`` fraction of ``layer``: the nearest whole node (half
    up), at least one.

    Deliberately not :func:`~poz_jax.core.ranking.keep_grid`'s ``int(n * p)``:
    that truncation reproduces the authors' grid for the PoZ sweeps
    (floating point drops a node there, 67 at 80% of 84); a trimming fraction
    of a 6-channel layer means its nearest count (75% of 6 keeps 5, not 4).
    """
    n = LAYERS[layer]
    return np.array([max(1, int(np.floor(f * n + 0.5))) for f in cfg.keep])


def designs(cfg: TrimConfig) -> list[tuple[str, int]]:
    """The ``(method, draw)`` pairs every layer is trimmed by."""
    return [("apoz", 0), ("l1", 0)] + [("random", d) for d in range(cfg.random_draws)]


def node_scores(cfg: TrimConfig, params, images: np.ndarray) -> dict[str, np.ndarray]:
    """``{"<method>_<layer>": (S, draws, nodes)}``: the scores trimming removes highest first."""
    apoz = layer_apoz(params, images, cfg.layers)
    l1 = l1_scores(params)
    rng = np.random.default_rng(cfg.seed)
    n_net = len(params["fc3"]["bias"])
    out = {}
    for layer in cfg.layers:
        out[f"apoz_{layer}"] = np.asarray(apoz[layer])[:, None]
        out[f"l1_{layer}"] = np.asarray(l1[layer])[:, None]
        out[f"random_{layer}"] = rng.random((n_net, cfg.random_draws, LAYERS[layer]))
    return out


def scoring_images(cfg: TrimConfig, train_images: np.ndarray) -> np.ndarray:
    """The ``cfg.score_images`` training images APoZ is measured on (drawn with ``cfg.seed``)."""
    pick = np.random.default_rng(cfg.seed).permutation(len(train_images))[: cfg.score_images]
    return train_images[np.sort(pick)]


def tiled(cfg: TrimConfig, params, scores: dict, layer: str) -> tuple[dict, dict]:
    """One layer's group: ``(params, masks)`` with each network repeated per design and level.

    Network ``s``'s trimmings are rows ``s * R .. (s + 1) * R - 1`` (``R`` =
    designs x levels, in :func:`layer_masks`' order).
    """
    m = layer_masks(cfg, scores, layer)
    reps = m.shape[1] * m.shape[2]
    n_net = len(params["fc3"]["bias"])
    masks = {layer: m.reshape(n_net * reps, -1)}
    return jax.tree_util.tree_map(lambda a: np.repeat(a, reps, 0), params), masks


def layer_masks(cfg: TrimConfig, scores: dict, layer: str) -> np.ndarray:
    """``(S, designs, levels, nodes)`` 0/1 masks of ``layer`` for every design and keep level."""
    counts = keep_counts(cfg, layer)
    per = [np.asarray(keep_masks(scores[f"{m}_{layer}"][:, d], counts)) for m, d in designs(cfg)]
    return np.stack(per, 1)


def run(
    cfg: TrimConfig,
    out: str | Path,
    networks: str | Path,
    data_dir: str | Path | None,
    cifar10h: str | Path,
    progress: bool = True,
    verify: bool = True,
) -> Result:
    """The trimming study into ``out``; returns ``{"summary": rows, "figures": paths}``.

    Writes ``trim.csv`` (one row per network, layer, method, draw and level),
    ``summary.csv`` (their means and sds per layer, method and level),
    ``iterative.csv`` (the iterative APoZ path per round), ``timing.json``
    and ``figure.png``/``.pdf`` (accuracy against parameters kept).
    ``verify``: check the CIFAR-10 files and split sizes (see ``load_cifar10``).
    """
    t_start = time.perf_counter()
    out = check_results_folder(out, "trim")
    params, _ = load_networks(networks)
    n_all = len(params["fc3"]["bias"])
    n_net = n_all if cfg.n_networks == 0 else cfg.n_networks
    if n_net > n_all:
        raise ValueError(f"networks: {networks} holds {n_all} networks, fewer than {n_net}")
    params = jax.tree_util.tree_map(lambda a: np.asarray(a[:n_net]), params)
    counts = c10h.load_counts(cifar10h)
    official = c10h.load_official_labels(cifar10h)
    c10h.check_row_order(counts, official, f"{cifar10h}/{c10h.COUNTS}")
    human = c10h.class_similarity(c10h.class_confusion(counts, official), "mean")
    data = {split: load_cifar10(split, data_dir, verify) for split in ("train", "test")}
    if cfg.score_images > len(data["train"][0]):
        raise ValueError(f"score_images {cfg.score_images} exceeds the training images")
    record = provenance.input_record(networks)
    inputs = {
        "networks": record,
        "cifar10": data_dir if data_dir else {"path": "download"},
        "cifar10h": cifar10h,
    }
    with results_folder(out, "trim", cfg, inputs) as work:
        key = data_key(data)
        base = {"networks": record["sha256"], **key, "n_networks": n_net}
        score_x = scoring_images(cfg, data["train"][0])
        scores = cache.cached(
            work / "scores.npz",
            cache.product_key(
                {"images": score_x}, **base, **_fields(cfg, "layers", "random_draws", "seed")
            ),
            lambda: node_scores(cfg, params, score_x),
        )
        test = data["test"]
        untrimmed = cache.cached(
            work / "untrimmed.npz",
            cache.product_key(**base),
            lambda: masked_eval(params, {}, *test),
        )
        with float64():
            own = np.asarray(rsm(untrimmed["class_means"]))
        evals = Evaluator(own, human, test)
        rows = []
        tune_key = {**base, **_fields(cfg, "epochs", "learning_rate", "momentum", "tune_images")}
        groups = [("none", None)] + [(layer, layer) for layer in cfg.layers]
        for name, layer in groups:
            group, masks = (params, {}) if layer is None else tiled(cfg, params, scores, layer)
            n = len(group["fc3"]["bias"])
            status(f"trimming {name}: fine-tuning {n} networks", progress)
            res = _tuned(cfg, work, f"group_{name}", group, masks, data, tune_key, evals, progress)
            rows += _group_rows(cfg, name, layer, res, n_net)
        path_rows = _iterative(cfg, work, params, score_x, data, tune_key, evals, progress)
        summary = summarise(rows)
        files.write_csv(work / "trim.csv", rows)
        files.write_csv(work / "summary.csv", summary)
        files.write_csv(work / "iterative.csv", path_rows)
        figs = save_figure(trim_figure(summary, path_rows), work / "figure")
        files.write_json(work / "timing.json", {"seconds": time.perf_counter() - t_start})
        res = Result(summary, figs, format_summary(summary), {"iterative": path_rows})
        return relocate(res, work, out)


def _fields(cfg: TrimConfig, *names: str) -> dict:
    return {n: getattr(cfg, n) for n in names}


class Evaluator:
    """Accuracy, class means and the two fits of masked networks on the test images."""

    def __init__(self, own_rsm: np.ndarray, human: np.ndarray, test) -> None:
        self.own, self.human, self.test = own_rsm, np.asarray(human, np.float64), test

    def measure(self, params, masks: dict) -> dict[str, np.ndarray]:
        """``{"accuracy": (N,), "class_means": (N, 10, 84)}`` (:func:`masked_eval`)."""
        return masked_eval(params, masks, *self.test)

    def fits(self, class_means, fc2_mask, reference) -> dict[str, np.ndarray]:
        """``{"fit_untrimmed", "fit_human"}`` ``(N,)`` of the RSMs over each one's kept fc2 nodes.

        ``reference`` ``(N,)``: the untrimmed network each one came from.
        """
        with float64():
            rsms = kept_rsms(class_means, fc2_mask)
            return {
                "fit_untrimmed": np.asarray(fit(rsms, self.own[np.asarray(reference)])),
                "fit_human": np.asarray(fit(rsms, self.human)),
            }


def _tuned(cfg, out: Path, name: str, params, masks, data, tune_key, evals, progress, round_=0):
    """Measure, fine-tune and measure again one group of masked networks (cached).

    Network ``i`` of the group came from untrimmed network ``i // (N / S)``
    (the groups repeat each network's weights for its trimmings).
    """
    n = len(params["fc3"]["bias"])
    reference = np.arange(n) // (n // tune_key["n_networks"])
    full = {k: np.asarray(masks.get(k, np.ones((n, d))), np.float32) for k, d in LAYERS.items()}
    key = cache.product_key(
        {"masks": np.concatenate(list(full.values()), 1), "start": files.tree_digest(params)},
        **tune_key,
        seed=cfg.seed + round_,
    )
    folder = out / "fine_tune" / name

    def compute():
        before = evals.measure(params, full)
        tcfg = cfg.train_config(n, round_)
        # The data's digest is in tune_key already: no second pass over the images.
        digest = {k: tune_key[k] for k in ("train_data", "test_data")}
        tuned, _ = fine_tune(tcfg, data, params, full, folder, progress=progress, key=digest)
        after = evals.measure(tuned, full)
        leaves = jax.tree_util.tree_leaves(tuned)
        return {
            **{f"before_{k}": a for k, a in before.items()},
            **{f"after_{k}": a for k, a in after.items()},
            **{f"leaf{i}": np.asarray(a) for i, a in enumerate(leaves)},
        }

    res = cache.cached(out / f"{name}.npz", key, compute, scratch=folder)
    for when in ("before", "after"):
        fits = evals.fits(res[f"{when}_class_means"], full["fc2"], reference)
        res.update({f"{when}_{k}": a for k, a in fits.items()})
    treedef = jax.tree_util.tree_structure(params)
    n_leaves = treedef.num_leaves
    res["params"] = jax.tree_util.tree_unflatten(
        treedef, [res[f"leaf{i}"] for i in range(n_leaves)]
    )
    res["masks"] = full
    return res


_MEASURES = ("accuracy", "fit_untrimmed", "fit_human")


def _group_rows(cfg: TrimConfig, name: str, layer, res: dict, n_net: int) -> list[dict]:
    """One row per network, design and keep level of a fine-tuned group."""
    if layer is None:
        cells = [("none", 0, 1.0)]
    else:
        # The order of layer_masks' (designs, levels) axes.
        cells = [(m, d, f) for m, d in designs(cfg) for f in cfg.keep]
    rows = []
    for s in range(n_net):
        for j, (method, draw, frac) in enumerate(cells):
            i = s * len(cells) + j
            widths = [int(res["masks"][k][i].sum()) for k in LAYERS]
            sz = size(tuple(widths))
            row = {
                "layer": name,
                "method": method,
                "draw": draw,
                "network": s,
                "keep_fraction": frac,
                "nodes_kept": widths[list(LAYERS).index(layer)] if layer else None,
                "parameters": sz["parameters"],
                "parameters_kept": sz["parameters"] / UNTRIMMED["parameters"],
                "macs_kept": sz["macs"] / UNTRIMMED["macs"],
            }
            for when in ("before", "after"):
                for m in _MEASURES:
                    row[f"{m}_{when}"] = float(res[f"{when}_{m}"][i])
            rows.append(row)
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and sd over networks (and random draws) per layer, method and keep level.

    Beside each measure, two paired differences of the fine-tuned accuracy,
    network by network: to the untrimmed network fine-tuned alike
    (``accuracy_after_minus_control``: what trimming costs at equal training)
    and to the untrimmed network as it was (``accuracy_after_minus_untrimmed``:
    Hu et al.'s comparison, which credits the retraining to the trimming).
    ``rows``: :func:`run`'s ``trim.csv`` rows, the untrimmed control included.
    """
    control = {r["network"]: r for r in rows if r["method"] == "none"}
    out = []
    cells = {}
    for r in rows:
        cells.setdefault((r["layer"], r["method"], r["keep_fraction"]), []).append(r)
    for (layer, method, frac), group in cells.items():
        row = {
            "layer": layer,
            "method": method,
            "keep_fraction": frac,
            "nodes_kept": group[0]["nodes_kept"],
            "n": len(group),
            "parameters_kept": group[0]["parameters_kept"],
            "macs_kept": group[0]["macs_kept"],
        }
        for when in ("before", "after"):
            for m in _MEASURES:
                row.update(stats.describe([g[f"{m}_{when}"] for g in group], f"{m}_{when}"))
        for name, ref in (("control", "accuracy_after"), ("untrimmed", "accuracy_before")):
            diff = [g["accuracy_after"] - control[g["network"]][ref] for g in group]
            row.update(stats.describe(diff, f"accuracy_after_minus_{name}"))
        out.append(row)
    return out


def _iterative(cfg, out, params, score_x, data, tune_key, evals, progress) -> list:
    """Hu et al.'s path: per round, APoZ, the threshold rule on one layer, fine-tuning."""
    n = len(params["fc3"]["bias"])
    masks = {k: np.ones((n, d), np.float32) for k, d in LAYERS.items()}
    start = evals.measure(params, masks)
    start.update(evals.fits(start["class_means"], masks["fc2"], np.arange(n)))
    start = {f"after_{k}": a for k, a in start.items()}
    acc0 = start["after_accuracy"]
    rows = [_round_row(0, "", masks, acc0, acc0, start)]
    for r in range(1, cfg.rounds + 1):
        apoz = layer_apoz(params, score_x, masks=masks)
        new, pick = threshold_step(apoz, masks, cfg.sds)
        new = {k: np.asarray(a) for k, a in new.items()}
        status(f"iterative trimming, round {r}: fine-tuning {n} networks", progress)
        res = _tuned(cfg, out, f"round{r}", params, new, data, tune_key, evals, progress, r)
        names = np.array(list(LAYERS))[np.asarray(pick)]
        layers = ",".join(f"{k}:{int(np.sum(names == k))}" for k in LAYERS if np.any(names == k))
        rows.append(_round_row(r, layers, new, res["before_accuracy"], res["after_accuracy"], res))
        params, masks = res["params"], new
    return rows


def _round_row(r: int, layers: str, masks: dict, before, after, res: dict) -> dict:
    widths = np.stack([masks[k].sum(-1) for k in LAYERS], -1)  # (S, 4)
    params = [size(tuple(int(w) for w in ws))["parameters"] for ws in widths]
    row = {"round": r, "layers_trimmed": layers}
    for k, w in zip(LAYERS, widths.T, strict=True):
        row[f"{k}_nodes_mean"] = stats.mean(w)
    row["parameters_mean"] = stats.mean(params)
    row["parameters_kept_mean"] = stats.mean(params) / UNTRIMMED["parameters"]
    row.update(stats.describe(before, "accuracy_trimmed"))
    row.update(stats.describe(after, "accuracy_after"))
    for m in ("fit_untrimmed", "fit_human"):
        row[f"{m}_after_mean"] = stats.mean(res[f"after_{m}"])
    return row


def format_summary(summary: list[dict]) -> str:
    """The summary rows as a text table."""
    return summary_table(
        summary,
        "layer method keep_fraction parameters_kept accuracy_before_mean accuracy_after_mean "
        "accuracy_after_minus_control_mean fit_untrimmed_after_mean fit_human_after_mean",
    )


def _current_names(saved: dict) -> dict:
    """A saved config's fields by today's names (``networks`` was the count's old name)."""
    return {("n_networks" if k == "networks" else k): v for k, v in saved.items()}


STUDY = Study(
    name="trim",
    help="network trimming (Hu et al. 2016) of Experiment 1's networks, with baselines",
    description="Each layer of each network trimmed by APoZ, by the L1 norm of its "
    "weights and at random to every --keep fraction, fine-tuned with the trimming held; "
    "test accuracy, parameters kept and the fit of the fc2 class-mean RSM to the "
    "untrimmed network's and to CIFAR-10H's human class similarity, before and after; "
    "then Hu et al.'s iterative APoZ trimming. Writes trim.csv, summary.csv, "
    "iterative.csv and a figure; a re-run with the same --out reuses every finished "
    "group of fine-tuned networks.",
    config=TrimConfig,
    saved_names=_current_names,
    inputs=(
        LENET_NETWORKS,
        Input(
            "data_dir",
            "local CIFAR-10 (.npz, python or binary archive or folder); default: tfds or a "
            "download",
            record="cifar10",
            digest=False,
        ),
        Input(
            "cifar10h",
            "folder with cifar10h-counts.npy and cifar10_test_labels_official.npy",
            required=True,
        ),
    ),
    run=run,
)
