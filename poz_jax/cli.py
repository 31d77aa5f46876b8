"""The ``poz-jax`` command line."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys

# Config fields and the flags that set them, so an error names what the user typed.
_EXP1_FLAGS = {
    "seeds": "--seeds",
    "epochs": "--epochs",
    "learning_rate": "--lr",
    "seed": "--seed",
}
_EXP2_FLAGS = {
    "layer": "--layer",
    "n_null": "--n-null",
    "seed": "--seed",
    "precision": "--precision",
    "sets": "--sets",
}
_EXP3_FLAGS = {
    "n_null": "--n-null",
    "seed": "--seed",
    "precision": "--precision",
    "per_class": "--per-class",
    "n_sets": "--n-sets",
    "compare_networks": "--compare-networks",
    "class_similarity": "--class-similarity",
    "image_similarity": "--image-similarity",
}
_PETERSON_FLAGS = {
    "layers": "--layers",
    "n_null": "--n-null",
    "seed": "--seed",
    "precision": "--precision",
    "compare_networks": "--compare-networks",
    "compare_layers": "--compare-layers",
    "pixel_sizes": "--pixel-sizes",
    "sets": "--sets",
}
_COMPARE_FLAGS = {
    "methods": "--methods",
    "folds": "--folds",
    "repeats": "--repeats",
    "seed": "--seed",
    "n_random": "--n-random",
    "inner_folds": "--inner-folds",
    "precision": "--precision",
    "sets": "--sets",
}


def _default(config, field: str):
    """A config field's default: the CLI's defaults are the library's, never copies."""
    return next(f.default for f in dataclasses.fields(config) if f.name == field)


def _listed(config, field: str) -> str:
    """A tuple field's default as the comma-separated text its flag takes."""
    return ",".join(str(x) for x in _default(config, field))


def _param_default(func, name: str):
    """A function parameter's default (for commands whose settings are plain arguments)."""
    import inspect

    return inspect.signature(func).parameters[name].default


def _int_flags(parser, config, flags) -> None:
    """``--flag`` ints whose defaults are ``config``'s: ``flags`` holds ``(flag, field, what)``."""
    for flag, field, what in flags:
        default = _default(config, field)
        parser.add_argument(flag, type=int, default=default, help=f"{what} (default {default})")


def _names(value: str | None) -> tuple[str, ...] | None:
    """A comma-separated flag as a tuple (``""`` gives ``("",)``, which the config refuses)."""
    return None if value is None else tuple(value.split(","))


@contextlib.contextmanager
def _flag_names(flags: dict[str, str]):
    """Re-raise a config's ValueError with the command-line flag beside the field's name."""
    try:
        yield
    except ValueError as err:
        msg = str(err)
        for field, flag in flags.items():
            if msg.startswith(f"{field} "):
                raise ValueError(msg.replace(field, f"{field} ({flag})", 1)) from None
        raise


def _check_args(args: argparse.Namespace, rules: dict[str, tuple[int, int | None]]) -> None:
    """Each ``--flag`` value in its ``(lo, hi)`` range, or one line naming the flag."""
    from poz_jax.core.validate import check_int

    for name, (lo, hi) in rules.items():
        value = getattr(args, name)
        if value is not None:
            check_int(value, f"--{name.replace('_', '-')}", lo, hi)


_SEED = (0, 2**31 - 1)


class _Renamed(argparse.Action):
    """A flag of an earlier version: refused with one line saying what replaced it."""

    def __init__(self, option_strings, dest, now: str, **kwargs):
        self.now = now
        super().__init__(option_strings, dest, nargs=0, help=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"{option_string} was renamed: {self.now}")


def _precision_flags(parser, config) -> None:
    """``--precision`` (choices and default from ``config``) and its short form ``--float32``."""
    from poz_jax.core.validate import PRECISIONS

    default = _default(config, "precision")
    parser.add_argument(
        "--precision",
        choices=list(PRECISIONS),
        help=f"float type of every fit, null and test (default {default}; float32 is faster, "
        "its fits differ by rounding)",
    )
    parser.add_argument("--float32", action="store_true", help="same as --precision float32")
    parser.set_defaults(precision_default=default)


def _precision(args: argparse.Namespace) -> str:
    if args.float32 and args.precision not in (None, "float32"):
        raise ValueError(f"--float32 and --precision {args.precision} contradict each other")
    return "float32" if args.float32 else args.precision or args.precision_default


@contextlib.contextmanager
def _writes(folder):
    """Run a command's block, then list every file it wrote (from the writes themselves)."""
    from poz_jax import files

    with files.recording() as written:
        yield
    print(files.describe_writes(folder, written))


def _version() -> str:
    from poz_jax import __version__

    return __version__


def _demo(args: argparse.Namespace) -> int:
    from poz_jax.pipelines.demo import run_demo

    # A fit needs 3 items (2 pairs); keep_grid's ten levels need 10 nodes.
    _check_args(args, {"items": (3, None), "nodes": (10, None), "seed": _SEED})
    print(run_demo(args.items, args.nodes, args.seed))
    return 0


def _exp1(args: argparse.Namespace) -> int:
    from poz_jax.pipelines import exp1
    from poz_jax.train import Compute

    if args.quick and args.preset not in (None, "quick"):
        raise ValueError(f"--quick and --preset {args.preset} contradict each other; give one")
    preset = "quick" if args.quick else args.preset or "paper"
    compute = Compute(conv=args.conv)
    with _flag_names(_EXP1_FLAGS):
        cfg = exp1.config(
            preset,
            seeds=args.seeds,
            epochs=args.epochs,
            learning_rate=args.lr,
            seed=args.seed,
            optimizer=args.optimizer,
            init_style=args.init,
        )
    out = args.out or f"results/exp1_{preset}"
    with _writes(out):
        res = exp1.run(cfg, out, args.data_dir, progress=not args.no_progress, compute=compute)
        print(exp1.format_summary(res))
    return 0


def _exp2(args: argparse.Namespace) -> int:
    from poz_jax.pipelines import exp2

    with _flag_names(_EXP2_FLAGS):
        cfg = exp2.Exp2Config(
            layer=args.layer,
            n_null=args.n_null,
            seed=args.seed,
            precision=_precision(args),
            weights=args.weights,
            sets=_names(args.sets),
        )
    # A dry run with random weights never lands in the real run's folder.
    out = args.out or ("results/exp2_random" if args.weights == "random" else "results/exp2")
    with _writes(out):
        res = exp2.run(cfg, out, args.stimuli, args.embeddings, progress=not args.no_progress)
        print(exp2.format_stats(res["stats"]))
    return 0


def _exp3(args: argparse.Namespace) -> int:
    from poz_jax.pipelines import exp3

    with _flag_names(_EXP3_FLAGS):
        cfg = exp3.Exp3Config(
            n_null=args.n_null,
            seed=args.seed,
            precision=_precision(args),
            class_similarity=args.class_similarity,
            image_similarity=args.image_similarity,
            per_class=args.per_class,
            n_sets=args.n_sets,
            compare_networks=args.compare_networks,
        )
    with _writes(args.out):
        res = exp3.run(cfg, args.out, args.inputs, args.cifar10h, progress=not args.no_progress)
        print(exp3.format_stats(res["stats"]))
    return 0


def _peterson(args: argparse.Namespace) -> int:
    from poz_jax.pipelines import peterson

    with _flag_names(_PETERSON_FLAGS):
        sizes = _names(args.pixel_sizes)
        if not all(s.isdigit() for s in sizes):
            raise ValueError(f"pixel_sizes must be whole numbers, got {args.pixel_sizes!r}")
        cfg = peterson.PetersonConfig(
            layers=_names(args.layers),
            n_null=args.n_null,
            seed=args.seed,
            precision=_precision(args),
            compare_networks=args.compare_networks,
            compare_layers=_names(args.compare_layers),
            pixel_sizes=tuple(int(s) for s in sizes),
            sets=_names(args.sets),
        )
    with _writes(args.out):
        res = peterson.run(
            cfg, args.out, args.stimuli, args.networks, progress=not args.no_progress
        )
        print(peterson.format_stats(res["stats"]))
    return 0


def _trim(args: argparse.Namespace) -> int:
    from poz_jax.pipelines import trim

    with _flag_names(_TRIM_FLAGS):
        keep = _names(args.keep)
        try:
            fractions = tuple(float(f) for f in keep)
        except ValueError:
            raise ValueError(f"keep must be fractions like 0.5,0.25, got {args.keep!r}") from None
        cfg = trim.TrimConfig(
            networks=args.n_networks,
            layers=_names(args.layers),
            keep=fractions,
            random_draws=args.random_draws,
            score_images=args.score_images,
            tune_images=args.tune_images,
            epochs=args.epochs,
            rounds=args.rounds,
            seed=args.seed,
        )
    with _writes(args.out):
        res = trim.run(
            cfg, args.out, args.networks, args.data_dir, args.cifar10h, not args.no_progress
        )
        print(trim.format_summary(res["summary"]))
    return 0


def _compare(args: argparse.Namespace) -> int:
    from poz_jax.pipelines import compare

    with _flag_names(_COMPARE_FLAGS):
        cfg = compare.CompareConfig(
            methods=compare.METHODS if args.methods is None else _names(args.methods),
            folds=args.folds,
            repeats=args.repeats,
            seed=args.seed,
            n_random=args.n_random,
            inner_folds=args.inner_folds,
            precision=_precision(args),
            sets=_names(args.sets),
        )
    with _writes(args.out):
        res = compare.run(
            cfg, args.out, args.stimuli, args.embeddings, progress=not args.no_progress
        )
        print(compare.format_rows(res["rows"]))
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from poz_jax.pipelines.reproduce import format_report, reproduce

    if not args.tolerance >= 0:
        raise ValueError(f"--tolerance must be a number >= 0, got {args.tolerance}")
    report = reproduce(
        args.folder,
        data_dir=args.data_dir,
        cifar10h_dir=args.cifar10h,
        stimuli=args.stimuli,
        embeddings=args.embeddings,
        networks=args.networks,
        tolerance=args.tolerance,
        progress=not args.no_progress,
    )
    print(format_report(report, args.folder))
    return 0 if report.ok else 1


def _convert(args: argparse.Namespace) -> int:
    from pathlib import Path

    from poz_jax.models.convert import convert

    with _writes(Path(args.dst).parent):
        convert(args.src, args.dst)
    return 0


def _make_stimuli(args: argparse.Namespace) -> int:
    from poz_jax.files import check_out_dir
    from poz_jax.synthetic import check_stimuli_folder_free, write_stimulus_sets

    # Experiment 2's fits need at least 3 items (2 pairs).
    _check_args(args, {"items": (3, None), "seed": _SEED})
    check_out_dir(args.folder, "folder")
    check_stimuli_folder_free(args.folder)
    with _writes(args.folder):
        write_stimulus_sets(args.folder, n_items=args.items, seed=args.seed)
    return 0


def _demo_parser(sub) -> None:
    from poz_jax.pipelines.demo import run_demo

    demo = sub.add_parser("demo", help="sweep a generated layer and print a table")
    for flag, param, what in (
        ("--items", "n_items", "number of items"),
        ("--nodes", "n_nodes", "number of nodes"),
        ("--seed", "seed", "random seed"),
    ):
        default = _param_default(run_demo, param)
        demo.add_argument(flag, type=int, default=default, help=f"{what} (default {default})")
    demo.set_defaults(func=_demo)


def _exp1_parser(sub) -> None:
    from poz_jax.pipelines.exp1 import PRESETS
    from poz_jax.train import CONVS, INIT_STYLES, OPTIMIZERS, TrainConfig

    exp1 = sub.add_parser(
        "exp1",
        help="Experiment 1: LeNet5 x many seeds on CIFAR-10, PoZ sweep, Figure 1",
        description="Train LeNet5 networks (all seeds in one vmapped step), embed the "
        "CIFAR-10 test set at fc2, sweep PoZ-ordered pruning of the class-mean RSMs, "
        "and write summary.csv, per_seed.csv, accuracy.csv and figure1.png/.pdf. "
        "Re-running with the same --out resumes after the last finished epoch.",
    )
    exp1.add_argument(
        "--data-dir",
        help="local CIFAR-10: cifar-10-python.tar.gz, its "
        "extracted folder, the binary version, or cifar10_{train,test}.npz; "
        "default: tensorflow-datasets if installed, else download the archive",
    )
    exp1.add_argument(
        "--preset",
        choices=list(PRESETS),
        help="paper: SGD lr 0.001 momentum 0.9, 50 seeds, 10 epochs (default); "
        "adam: Adam lr 0.001; quick: Adam, 4 seeds, 1 epoch on 5000 images",
    )
    exp1.add_argument("--quick", action="store_true", help="same as --preset quick")
    exp1.add_argument("--seeds", type=int, help="number of networks (overrides the preset)")
    exp1.add_argument("--epochs", type=int, help="training epochs (overrides the preset)")
    exp1.add_argument("--optimizer", choices=list(OPTIMIZERS), help="overrides the preset")
    exp1.add_argument(
        "--init",
        choices=list(INIT_STYLES),
        help="parameter initialisation: torch (PyTorch's defaults, as the authors'; "
        "the presets' choice) or flax (LeCun normal, zero bias)",
    )
    exp1.add_argument("--lr", type=float, help="learning rate (overrides the preset)")
    exp1.add_argument(
        "--seed", type=int, help=f"base random seed (default {_default(TrainConfig, 'seed')})"
    )
    exp1.add_argument(
        "--conv",
        choices=list(CONVS),
        help="how convolutions are computed (the same numbers): default rows on CPU, "
        "lax (XLA's) on GPU/TPU; a run may resume with another",
    )
    exp1.add_argument("--out", help="output folder (default results/exp1_<preset>)")
    exp1.add_argument("--no-progress", action="store_true", help="no progress bars")
    exp1.set_defaults(func=_exp1)


def _exp2_parser(sub) -> None:
    from poz_jax.models.vgg import LAYERS
    from poz_jax.pipelines.exp2 import Exp2Config

    exp2 = sub.add_parser(
        "exp2",
        help="Experiment 2: VGG-16 PoZ sweeps against human similarity, nulls, Figures 2-3",
        description="Embed each stimulus set with VGG-16 (or read --embeddings), sweep "
        "PoZ-ordered pruning against each set's human similarity matrix, test the best "
        "improvement and the trend against random pruning, and write summary.csv, "
        "levels.csv, stats.csv and figure2/figure3 (.png/.pdf). Re-running with the same "
        "--out reuses the embeddings and every finished null.",
    )
    exp2.add_argument(
        "--stimuli",
        required=True,
        help="a folder of images with its similarity matrix (.npy/.npz/.csv/.mat), a folder "
        "of such folders (one per set), or an .npz with one matrix per set",
    )
    exp2.add_argument(
        "--embeddings", help="an .npz with one (n_images, n_nodes) matrix per set: skip the network"
    )
    exp2.add_argument(
        "--weights",
        help="converted VGG-16 weights (.npz from convert-vgg16), or 'random' for a dry run",
    )
    layer = _default(Exp2Config, "layer")
    exp2.add_argument(
        "--layer",
        default=layer,
        choices=list(LAYERS),
        help=f"layer to analyse (default {layer}; fc6 and fc7 after their ReLU)",
    )
    _int_flags(
        exp2,
        Exp2Config,
        [
            ("--n-null", "n_null", "random keep orders per set"),
            ("--seed", "seed", "seed of the random orders"),
        ],
    )
    exp2.add_argument("--sets", help="comma-separated set names to analyse (default: all)")
    _precision_flags(exp2, Exp2Config)
    exp2.add_argument(
        "--null-float32", action=_Renamed, now="--precision float32 sets curves and nulls alike"
    )
    exp2.add_argument(
        "--out",
        help="output folder (default results/exp2, or results/exp2_random with --weights random)",
    )
    exp2.add_argument("--no-progress", action="store_true", help="no progress bars")
    exp2.set_defaults(func=_exp2)


def _exp3_parser(sub) -> None:
    from poz_jax.pipelines.exp3 import CLASS_SIMILARITIES, IMAGE_SIMILARITIES, Exp3Config

    def default(field: str):
        return _default(Exp3Config, field)

    exp3 = sub.add_parser(
        "exp3",
        help="Experiment 3: Experiment 1's networks against CIFAR-10H human judgments",
        description="PoZ-ordered pruning of each network's fc2 against human similarity from "
        "CIFAR-10H: the class confusion matrix (10 class means) and image-by-image label "
        "agreement (disjoint sets of matched images), with random-pruning nulls and the two "
        "tests per network and for the networks' mean curve. Writes summary.csv, stats.csv "
        "and figures; a re-run with the same --out reuses every finished null.",
    )
    exp3.add_argument(
        "--inputs",
        required=True,
        help="Experiment 1's embeddings.npz (its --out folder holds one), or an inputs.npz "
        "that exp3 wrote before (experiments/results/cifar10h/inputs.npz)",
    )
    exp3.add_argument(
        "--cifar10h",
        required=True,
        help="folder with cifar10h-counts.npy, cifar10_test_labels_official.npy and, for a "
        "class-sorted local test set, official_to_npz_row.npy",
    )
    _int_flags(
        exp3,
        Exp3Config,
        [
            ("--n-null", "n_null", "random orders per network"),
            ("--seed", "seed", "seed of the image sets and (+ network) of the random orders"),
            ("--n-sets", "n_sets", "disjoint image sets"),
            ("--per-class", "per_class", "images per class"),
            (
                "--compare-networks",
                "compare_networks",
                "networks whose image sets also go through poz-jax compare; 0: none",
            ),
        ],
    )
    exp3.add_argument(
        "--class-similarity",
        choices=list(CLASS_SIMILARITIES),
        default=default("class_similarity"),
        help="confusions to similarity: (P + P.T)/2 (default) or Shepard's sqrt(PabPba/PaaPbb)",
    )
    exp3.add_argument(
        "--image-similarity",
        choices=list(IMAGE_SIMILARITIES),
        default=default("image_similarity"),
        help="label distributions to similarity: sum_k p_ik p_jk (default), cosine, 1 - JSD",
    )
    _precision_flags(exp3, Exp3Config)
    exp3.add_argument("--out", default="results/exp3", help="output folder (default results/exp3)")
    exp3.add_argument("--no-progress", action="store_true", help="no progress bars")
    exp3.set_defaults(func=_exp3)


def _peterson_parser(sub) -> None:
    from poz_jax.pipelines.peterson import PetersonConfig

    def listed(field: str) -> str:
        return _listed(PetersonConfig, field)

    cmd = sub.add_parser(
        "peterson",
        help="Experiment 2 on Peterson et al.'s human judgments, with Experiment 1's networks",
        description="Each stimulus set's images (composited on white, resized to 32 x 32) "
        "through every LeNet5 of a networks.npz; per set and layer the PoZ, the PoZ-ordered "
        "sweep at every keep count against the human similarity matrix, each network's "
        "random-pruning null and both tests, and the networks' mean curve; the pixel floor, "
        "the split-half noise ceiling of a matrix with two rater batches, and poz-jax compare "
        "for the first networks. Writes summary.csv, stats.csv, ceiling.csv, compare.csv and "
        "Figures 2 and 3 per layer; a re-run with the same --out reuses every finished part.",
    )
    cmd.add_argument(
        "--stimuli",
        required=True,
        help="a folder of set folders, each with its images, order.txt and similarity file "
        "(../shared/data/peterson2018)",
    )
    cmd.add_argument(
        "--networks",
        default="experiments/results/exp1/networks.npz",
        help="stacked LeNet5s (Experiment 1's networks.npz; default "
        "experiments/results/exp1/networks.npz)",
    )
    cmd.add_argument(
        "--layers", default=listed("layers"), help=f"comma-separated (default {listed('layers')})"
    )
    _int_flags(
        cmd,
        PetersonConfig,
        [
            ("--n-null", "n_null", "random orders per network"),
            ("--seed", "seed", "seed (+ network) of the random orders, and of the comparison"),
            ("--compare-networks", "compare_networks", "networks through poz-jax compare; 0: none"),
        ],
    )
    cmd.add_argument(
        "--compare-layers",
        default=listed("compare_layers"),
        help=f"layers the comparison runs on (default {listed('compare_layers')})",
    )
    cmd.add_argument(
        "--pixel-sizes",
        default=listed("pixel_sizes"),
        help=f"image sizes of the pixel floor (default {listed('pixel_sizes')})",
    )
    cmd.add_argument("--sets", help="comma-separated set names to analyse (default: all)")
    _precision_flags(cmd, PetersonConfig)
    cmd.add_argument(
        "--out", default="results/peterson", help="output folder (default results/peterson)"
    )
    cmd.add_argument("--no-progress", action="store_true", help="no progress bars")
    cmd.set_defaults(func=_peterson)


_TRIM_FLAGS = {
    "networks": "--n-networks",
    "layers": "--layers",
    "keep": "--keep",
    "random_draws": "--random-draws",
    "score_images": "--score-images",
    "tune_images": "--tune-images",
    "epochs": "--epochs",
    "rounds": "--rounds",
    "seed": "--seed",
}


def _trim_parser(sub) -> None:
    from poz_jax.pipelines.trim import TrimConfig

    def listed(field: str) -> str:
        return _listed(TrimConfig, field)

    cmd = sub.add_parser(
        "trim",
        help="network trimming (Hu et al. 2016) of Experiment 1's networks, with baselines",
        description="Each layer of each network trimmed by APoZ, by the L1 norm of its "
        "weights and at random to every --keep fraction, fine-tuned with the trimming held; "
        "test accuracy, parameters kept and the fit of the fc2 class-mean RSM to the "
        "untrimmed network's and to CIFAR-10H's human class similarity, before and after; "
        "then Hu et al.'s iterative APoZ trimming. Writes trim.csv, summary.csv, "
        "iterative.csv and a figure; a re-run with the same --out reuses every finished "
        "group of fine-tuned networks.",
    )
    cmd.add_argument(
        "--networks",
        default="experiments/results/exp1/networks.npz",
        help="stacked LeNet5s (default experiments/results/exp1/networks.npz)",
    )
    cmd.add_argument(
        "--data-dir",
        help="local CIFAR-10 (.npz, python or binary archive or folder); default: tfds or a "
        "download",
    )
    cmd.add_argument(
        "--cifar10h",
        required=True,
        help="folder with cifar10h-counts.npy and cifar10_test_labels_official.npy",
    )
    cmd.add_argument(
        "--layers", default=listed("layers"), help=f"comma-separated (default {listed('layers')})"
    )
    cmd.add_argument(
        "--keep",
        default=listed("keep"),
        help=f"fractions of a layer's nodes kept, comma-separated (default {listed('keep')})",
    )
    _int_flags(
        cmd,
        TrimConfig,
        [
            ("--n-networks", "networks", "the first so many networks; 0: all"),
            ("--random-draws", "random_draws", "seeded random trimmings per layer and level"),
            ("--score-images", "score_images", "training images APoZ is measured on"),
            ("--tune-images", "tune_images", "training images of the fine-tuning"),
            ("--epochs", "epochs", "fine-tuning epochs"),
            ("--rounds", "rounds", "rounds of iterative APoZ trimming; 0: none"),
            ("--seed", "seed", "seed of the images drawn, the random scores and the fine-tuning"),
        ],
    )
    cmd.add_argument("--out", default="results/trim", help="output folder (default results/trim)")
    cmd.add_argument("--no-progress", action="store_true", help="no progress bars")
    cmd.set_defaults(func=_trim)


def _compare_parser(sub) -> None:
    from poz_jax.comparison import METHODS
    from poz_jax.pipelines.compare import CompareConfig

    cmp_ = sub.add_parser(
        "compare",
        help="beyond the paper: PoZ and other pruning orders, supervised pruning and "
        "reweighting, each fitted on some stimuli and scored on the others",
        description="For each stimulus set, split the items into folds (repeated with "
        "seeded shuffles); fit every method on the training items only (keep orders, "
        "keep counts, supervised importances, ridge weights and penalty) and score the "
        "fit of its similarity among the test items to the target's test block. Writes "
        "compare.csv, compare_splits.csv and compare.png/.pdf; a re-run with the same "
        "--out reuses every finished set.",
    )
    cmp_.add_argument(
        "--stimuli",
        required=True,
        help="the similarity matrices: a set folder, a folder of set folders, or an .npz "
        "with one matrix per set (as for exp2)",
    )
    cmp_.add_argument(
        "--embeddings",
        required=True,
        help="an .npz with one (n_items, n_nodes) matrix per set (exp2 writes one)",
    )
    cmp_.add_argument(
        "--methods",
        help=f"comma-separated methods to compare (default all: {', '.join(METHODS)})",
    )
    _int_flags(
        cmp_,
        CompareConfig,
        [
            ("--folds", "folds", "folds over stimuli"),
            ("--repeats", "repeats", "seeded repeats"),
            ("--seed", "seed", "seed of splits and random orders"),
            ("--n-random", "n_random", "random keep orders per split"),
            (
                "--inner-folds",
                "inner_folds",
                "folds of the inner cross-validation choosing the ridge penalty",
            ),
        ],
    )
    cmp_.add_argument("--sets", help="comma-separated set names (default: all)")
    _precision_flags(cmp_, CompareConfig)
    cmp_.add_argument(
        "--out", default="results/compare", help="output folder (default results/compare)"
    )
    cmp_.add_argument("--no-progress", action="store_true", help="no progress bars")
    cmp_.set_defaults(func=_compare)


def _reproduce_parser(sub) -> None:
    rep = sub.add_parser(
        "reproduce",
        help="re-derive a results folder's tables from its committed inputs and compare them",
        description="Re-run the analysis of a results folder (its study and settings from its "
        "config.json; Experiment 1 from its networks.npz, Experiment 3 from its inputs.npz) into "
        "a temporary folder and compare every CSV table cell by cell with the committed one. "
        "Exit 0: every cell reproduced; 1: some differ (each is printed); 2: an input is missing.",
    )
    rep.add_argument("folder", help="a results folder (e.g. experiments/results/exp1)")
    rep.add_argument("--data-dir", help="CIFAR-10 (default: the path config.json records)")
    rep.add_argument("--cifar10h", help="CIFAR-10H (default: the path config.json records)")
    rep.add_argument("--stimuli", help="stimulus sets (default: the path config.json records)")
    rep.add_argument("--embeddings", help="embeddings (default: the path config.json records)")
    rep.add_argument("--networks", help="networks.npz (default: the path config.json records)")
    rep.add_argument(
        "--tolerance",
        type=float,
        default=0.0,
        help="largest absolute difference of a number to accept (default 0: every digit; "
        "another XLA release or backend may move float32 results by rounding)",
    )
    rep.add_argument("--no-progress", action="store_true", help="no progress bars")
    rep.set_defaults(func=_reproduce)


def _convert_parser(sub) -> None:
    conv = sub.add_parser(
        "convert-vgg16",
        help="convert torchvision/timm VGG-16 weights to a poz-jax .npz",
        description="Convert torchvision's vgg16-397923af.pth (needs torch) or timm's "
        "vgg16.tv_in1k model.safetensors (NumPy only) to Flax parameters in an .npz that "
        "loads without torch.",
    )
    conv.add_argument("src", help="vgg16-397923af.pth or model.safetensors")
    conv.add_argument("dst", help="output .npz")
    conv.set_defaults(func=_convert)


def _make_stimuli_parser(sub) -> None:
    make = sub.add_parser(
        "make-stimuli",
        help="write generated stimulus sets (images, matrices, planted embeddings)",
    )
    from poz_jax.synthetic import write_stimulus_sets

    make.add_argument("folder", help="output folder")
    for flag, param, what in (
        ("--items", "n_items", "images per set"),
        ("--seed", "seed", "random seed"),
    ):
        default = _param_default(write_stimulus_sets, param)
        make.add_argument(flag, type=int, default=default, help=f"{what} (default {default})")
    make.set_defaults(func=_make_stimuli)


def build_parser() -> argparse.ArgumentParser:
    """The ``poz-jax`` parser: one sub-command per study, each built by its own function."""
    parser = argparse.ArgumentParser(
        prog="poz-jax",
        description="Rarely-firing nodes (PoZ) and representational similarity, in JAX.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (
        _demo_parser,
        _exp1_parser,
        _exp2_parser,
        _exp3_parser,
        _peterson_parser,
        _trim_parser,
        _compare_parser,
        _reproduce_parser,
        _convert_parser,
        _make_stimuli_parser,
    ):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``poz-jax`` command."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as err:  # DataError is a ValueError
        print(f"poz-jax: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the disk, permissions, a folder that cannot be made
        where = f" {err.filename}" if err.filename else ""
        print(f"poz-jax: error: cannot write{where}: {err.strerror or err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
