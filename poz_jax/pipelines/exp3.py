"""Experiment 3: PoZ pruning against real human judgments of CIFAR-10 (CIFAR-10H).

Experiment 1's networks (their fc2 embeddings of the test images) meet
CIFAR-10H's human label counts over two kinds of item (the ``items`` column):

- classes: the items are each network's 10 class means (as in Experiment 1),
  the target the human class similarity from the confusion matrix;
- images: disjoint stimulus sets of 12 matched images per class, the target
  an image-by-image similarity from the human label distributions.

For each kind of item and each network: the PoZ-ordered sweep at every keep
count, the largest PoZ kept, and a random-pruning null with the two tests
of Experiment 2; then the same for the networks' mean curve, whose null
draw ``j`` is the mean of the networks' draws ``j`` (each network's orders
are drawn independently, seeded by ``seed + network``; the image sets are
drawn with ``seed``).

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

from poz_jax.analysis.comparison import CompareConfig
from poz_jax.analysis.networks import analyse_networks, compare_networks, every_count
from poz_jax.analysis.pruning import analyse
from poz_jax.analysis.stats import mean as stats_mean
from poz_jax.core.ranking import poz
from poz_jax.core.rsa import class_means, rsm
from poz_jax.core.validate import PRECISIONS
from poz_jax.data import cifar10h as c10h
from poz_jax.io import files
from poz_jax.report.console import summary_table
from poz_jax.report.plots import exp3_figure, save_figure
from poz_jax.report.tables import exp3_tables
from poz_jax.study.contract import Input, Result, Study
from poz_jax.study.options import PRECISION_HELP, setting
from poz_jax.study.runner import check_results_folder, results_folder
from poz_jax.study.runtime import dtype_of, float64, precision_scope, progress_bar
from poz_jax.study.staging import relocate

N_CLASSES = 10


CLASS_SIMILARITIES = ("mean", "shepard")  # see cifar10h.class_similarity
IMAGE_SIMILARITIES = ("agreement", "cosine", "jsd")  # see cifar10h.image_similarity


@dataclasses.dataclass(frozen=True)
class Exp3Config:
    """Settings of one Experiment 3 run (saved with its results).

    ``seed`` draws the image sets and, as ``seed + network``, each network's
    random keep orders. ``precision``: ``"float64"`` (default) or ``"float32"``
    for every fit, null and comparison.
    """

    n_null: int = setting(1000, "random orders per network")
    seed: int = setting(0, "seed of the image sets and (+ network) of the random orders")
    precision: str = setting("float64", PRECISION_HELP, choices=PRECISIONS)
    class_similarity: str = setting(
        "mean",
        "confusions to similarity: (P + P.T)/2 or Shepard's sqrt(PabPba/PaaPbb)",
        choices=CLASS_SIMILARITIES,
    )
    image_similarity: str = setting(
        "agreement",
        "label distributions to similarity: sum_k p_ik p_jk, cosine, 1 - JSD",
        choices=IMAGE_SIMILARITIES,
    )
    per_class: int = setting(12, "images per class")
    n_sets: int = setting(5, "disjoint image sets")
    compare_networks: int = setting(
        5, "networks whose image sets also go through poz-jax compare; 0: none"
    )

    @classmethod
    def from_dict(cls, saved: dict) -> Exp3Config:
        """The config a ``config.json`` holds, earlier versions' two seeds included."""
        return cls(**current_names(saved))

    def __post_init__(self) -> None:
        from poz_jax.core import validate as v

        v.check_int(self.n_null, "n_null", 1)
        v.check_seed(self.seed, "seed")
        v.check_choice(self.precision, "precision", v.PRECISIONS)
        v.check_int(self.per_class, "per_class", 3)
        v.check_int(self.n_sets, "n_sets", 1)
        v.check_int(self.compare_networks, "compare_networks", 0)
        v.check_choice(self.class_similarity, "class_similarity", CLASS_SIMILARITIES)
        v.check_choice(self.image_similarity, "image_similarity", IMAGE_SIMILARITIES)


_INPUT_KEYS = ("class_means", "poz", "matched_fc2", "matched_official", "matched_labels")


def _read_inputs(path: str | Path) -> dict[str, np.ndarray]:
    path = Path(path)
    if files.not_npz(path):
        raise ValueError(f"--inputs {path}: {files.not_npz(path)}")
    try:
        return files.load_arrays(path)[0]
    except ValueError as err:
        # Never advise deleting an input.
        raise ValueError(f"--inputs {path} is not a readable .npz file") from err


def check_inputs(data: dict[str, np.ndarray], where, official: np.ndarray) -> None:
    """Refuse an ``inputs.npz`` (see :func:`prepare_inputs`) whose arrays do not fit together.

    Shapes (``S`` networks, ``m`` matched images, ``d`` nodes), finite
    values, PoZ in [0, 1], official indices unique and in range, and labels
    that are the official labels of those images (not a permutation of them).
    """
    missing = [k for k in _INPUT_KEYS if k not in data]
    if missing:
        raise ValueError(f"{where} lacks {', '.join(missing)}: not an Experiment 3 inputs.npz")
    means, node_poz, fc2 = (np.asarray(data[k]) for k in ("class_means", "poz", "matched_fc2"))
    index, labels = np.asarray(data["matched_official"]), np.asarray(data["matched_labels"])
    if means.ndim != 3 or means.shape[1] != N_CLASSES:
        raise ValueError(f"{where}: class_means must be (networks, 10, nodes), got {means.shape}")
    n_net, _, d = means.shape
    want = {"poz": ((n_net, d), node_poz.shape), "matched_fc2": ((n_net, len(index), d), fc2.shape)}
    for name, (shape, got) in want.items():
        if got != shape:
            raise ValueError(f"{where}: {name} must be {shape} beside class_means, got {got}")
    if index.ndim != 1 or labels.shape != index.shape:
        raise ValueError(f"{where}: matched_official and matched_labels must be (m,) alike")
    for name, a in (("class_means", means), ("poz", node_poz), ("matched_fc2", fc2)):
        if a.dtype.kind not in "iuf" or not np.all(np.isfinite(a)):
            raise ValueError(f"{where}: {name} must hold finite numbers")
    if np.any((node_poz < 0) | (node_poz > 1)):
        raise ValueError(f"{where}: poz must lie in [0, 1]")
    if (
        index.dtype.kind not in "iu"
        or index.min(initial=0) < 0
        or index.max(initial=0) >= len(official)
    ):
        raise ValueError(
            f"{where}: matched_official must be indices into the {len(official)} test images"
        )
    if len(np.unique(index)) != len(index):
        raise ValueError(f"{where}: matched_official names an image twice")
    wrong = int(np.sum(labels != official[index]))
    if wrong:
        raise ValueError(
            f"{where}: {wrong} of {len(index)} matched_labels are not the official labels of "
            "their images (matched_official): rows out of order?"
        )


def prepare_inputs(embeddings: str | Path, cifar10h_dir: str | Path) -> dict[str, np.ndarray]:
    """What Experiment 3 needs from Experiment 1's ``embeddings.npz``, small enough to commit.

    Returns ``class_means`` ``(S, 10, 84)``, ``poz`` ``(S, 84)`` (over all test
    images), ``matched_fc2`` ``(S, m, 84)`` (the images CIFAR-10H can be
    aligned with), ``matched_official`` ``(m,)`` their official indices, and
    ``matched_labels`` ``(m,)``.
    """
    return _prepare(files.load_arrays(embeddings)[0], embeddings, cifar10h_dir)


def _prepare(arrays: dict, embeddings, cifar10h_dir) -> dict[str, np.ndarray]:
    """:func:`prepare_inputs` of embeddings already read (``embeddings`` names them)."""
    if "fc2" not in arrays or "labels" not in arrays:
        raise ValueError(f"{embeddings} is not Experiment 1's embeddings.npz (fc2 and labels)")
    fc2, labels = arrays["fc2"], arrays["labels"]
    official = c10h.load_official_labels(cifar10h_dir)
    if len(labels) == c10h.N_TEST and np.array_equal(labels, official):
        index, rows = np.arange(c10h.N_TEST), np.arange(c10h.N_TEST)  # official order
    else:
        index, rows = c10h.align_to_local(cifar10h_dir, labels, official)
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


def run(
    cfg: Exp3Config,
    out: str | Path,
    inputs: str | Path,
    cifar10h: str | Path,
    progress: bool = True,
) -> Result:
    """Experiment 3 into ``out``; ``inputs``: an ``inputs.npz`` or Exp. 1's ``embeddings.npz``.

    Writes ``inputs.npz`` (when made from embeddings), ``summary.csv``,
    ``stats.csv``, ``figure_classes.png``/``.pdf`` and ``figure_images``; each
    null is saved once computed and reused while its inputs are the same.
    """
    out = check_results_folder(out, "exp3")
    counts = c10h.load_counts(cifar10h)
    official = c10h.load_official_labels(cifar10h)
    c10h.check_row_order(counts, official, f"{cifar10h}/{c10h.COUNTS}")
    data = _read_inputs(inputs)
    made = "class_means" not in data
    if made:  # Experiment 1's embeddings, read once (they are large)
        data = _prepare(data, inputs, cifar10h)
    check_inputs(data, inputs, official)
    human_classes = c10h.class_similarity(
        c10h.class_confusion(counts, official), cfg.class_similarity
    )
    sets = c10h.matched_sets(data["matched_labels"], cfg.per_class, cfg.n_sets, cfg.seed)
    with results_folder(out, "exp3", cfg, {"inputs": inputs, "cifar10h": cifar10h}) as work:
        if made:
            files.save_arrays(work / "inputs.npz", {}, compressed=True, **data)
        dtype = dtype_of(cfg.precision)
        n_net = len(data["class_means"])
        targets = _targets(cfg, data, counts, sets, human_classes)
        summary, stats, curves = [], [], {}
        with (
            precision_scope(cfg.precision),
            progress_bar(n_net * len(targets), "random-pruning nulls", progress) as bar,
        ):
            for name, items, set_name, acts, node_poz, human in targets:
                acts, human = np.asarray(acts, dtype), np.asarray(human, dtype)
                res, null, tests = analyse_networks(
                    work, name, acts, node_poz, human, cfg.n_null, cfg.seed, cfg.precision, bar
                )
                rows = exp3_tables(res, null, tests, items, set_name)
                summary, stats = summary + rows[0], stats + rows[1]
                curves[name] = (res, null)
        files.write_csv(work / "summary.csv", summary)
        files.write_csv(work / "stats.csv", stats)
        n_cmp = min(cfg.compare_networks, n_net)
        if n_cmp:
            files.write_csv(
                work / "compare.csv", _compare(cfg, work, targets[1:], n_cmp, dtype, progress)
            )
        figs = _figures(cfg, data, curves, work)
        pooled_rows = [r for r in stats if r["network"] == "pooled"]
        return relocate(Result(pooled_rows, figs, format_stats(pooled_rows)), work, out)


def current_names(saved: dict) -> dict:
    """A saved Experiment 3 config with earlier versions' two seeds made one ``seed``."""
    saved = dict(saved)
    seeds = {saved.pop(k) for k in ("null_seed", "set_seed") if k in saved}
    if len(seeds) > 1:
        raise ValueError(
            f"this run drew its sets and nulls with different seeds {sorted(seeds)}; "
            "one seed now draws both"
        )
    if seeds:
        saved["seed"] = seeds.pop()
    return saved


def _targets(cfg: Exp3Config, data: dict, counts, sets, human_classes) -> list[tuple]:
    """Each target: ``(name, items, set name, activations (S, n, d), PoZ (S, d), matrix)``.

    The classes (class means, PoZ over all test images), then each image set
    (its matched images, PoZ over them).
    """
    targets = [("classes", "classes", "", data["class_means"], data["poz"], human_classes)]
    for i, idx in enumerate(sets):
        acts = data["matched_fc2"][:, idx]
        with float64():
            set_poz = np.asarray(poz(jnp.asarray(acts, jnp.float64)))
        human = _image_target(cfg, counts, data["matched_official"][idx])
        targets.append((f"set{i}", "images", f"set{i}", acts, set_poz, human))
    return targets


def _image_target(cfg: Exp3Config, counts: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The image-by-image human similarity of CIFAR-10H rows ``rows``."""
    probs = counts[rows] / counts[rows].sum(1, keepdims=True)
    return c10h.image_similarity(probs, cfg.image_similarity)


def _compare(cfg: Exp3Config, out: Path, targets, n_cmp: int, dtype, progress) -> list[dict]:
    """``poz-jax compare``'s rows for the first ``n_cmp`` networks on every image set."""
    ccfg = CompareConfig(seed=cfg.seed, precision=cfg.precision)  # otherwise its defaults
    total = n_cmp * len(targets) * ccfg.folds * ccfg.repeats
    with precision_scope(cfg.precision), progress_bar(total, "comparison splits", progress) as bar:
        return compare_networks(
            ccfg,
            out,
            [(name, acts, human) for name, _, _, acts, _, human in targets],
            n_cmp,
            dtype,
            bar,
        )


def _figures(cfg: Exp3Config, data: dict, curves: dict, out: Path) -> list[Path]:
    """The classes' and the first image set's figure, PNG and PDF."""
    # Beside the classes, Experiment 1's curve for the same networks: the fit
    # to each network's own unpruned class-mean RSM.
    with float64():
        means = data["class_means"]
        own = analyse(means, rsm(means), every_count(means), poz_values=data["poz"])
    fig = exp3_figure(*curves["classes"], reference=stats_mean(own.fit, axis=0), title="10 classes")
    figs = save_figure(fig, out / "figure_classes")
    fig = exp3_figure(*curves["set0"], title=f"images (set0, {cfg.per_class} per class)")
    return figs + save_figure(fig, out / "figure_images")


def format_stats(stats: list[dict]) -> str:
    """The pooled rows of ``stats.csv`` as a text table."""
    table = summary_table(
        stats, "items set unpruned_fit best_fit best_percent_kept improvement p_improvement p_trend"
    )
    return f"{table}\nthe networks' mean curve against the mean of their random-pruning nulls"


STUDY = Study(
    name="exp3",
    help="Experiment 3: Experiment 1's networks against CIFAR-10H human judgments",
    description="PoZ-ordered pruning of each network's fc2 against human similarity from "
    "CIFAR-10H: the class confusion matrix (10 class means) and image-by-image label "
    "agreement (disjoint sets of matched images), with random-pruning nulls and the two "
    "tests per network and for the networks' mean curve. Writes summary.csv, stats.csv "
    "and figures; a re-run with the same --out reuses every finished null.",
    config=Exp3Config,
    inputs=(
        Input(
            "inputs",
            "Experiment 1's embeddings.npz (its --out folder holds one), or an inputs.npz "
            "that exp3 wrote before (experiments/results/cifar10h/inputs.npz)",
            required=True,
            committed="inputs.npz",
        ),
        Input(
            "cifar10h",
            "folder with cifar10h-counts.npy, cifar10_test_labels_official.npy and, for a "
            "class-sorted local test set, official_to_npz_row.npy",
            required=True,
        ),
    ),
    run=run,
    saved_names=current_names,
)
