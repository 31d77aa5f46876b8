"""The ``poz-jax`` command line."""

from __future__ import annotations

import argparse
import sys


def _demo(args: argparse.Namespace) -> int:
    from poz_jax.demo import run_demo

    print(run_demo(args.items, args.nodes, args.seed))
    return 0


def _exp1(args: argparse.Namespace) -> int:
    import dataclasses

    from poz_jax import exp1

    preset = "quick" if args.quick else args.preset
    changes = {
        k: v
        for k, v in (
            ("seeds", args.seeds),
            ("epochs", args.epochs),
            ("learning_rate", args.lr),
            ("base_seed", args.seed),
        )
        if v is not None
    }
    if args.optimizer is not None:
        changes["optimizer"] = args.optimizer
    if args.init is not None:
        changes["init_style"] = args.init
    cfg = dataclasses.replace(exp1.PRESETS[preset], **changes)
    out = args.out or f"results/exp1_{preset}"
    res = exp1.run(cfg, out, args.data_dir, progress=not args.no_progress)
    print(exp1.format_summary(res))
    print(f"wrote {out}/summary.csv, per_seed.csv, accuracy.csv, figure1.png/.pdf")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="poz-jax",
        description="Rarely-firing nodes (PoZ) and representational similarity, in JAX.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="sweep a generated layer and print a table")
    demo.add_argument("--items", type=int, default=120, help="number of items (default 120)")
    demo.add_argument("--nodes", type=int, default=4096, help="number of nodes (default 4096)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.set_defaults(func=_demo)

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
        choices=["paper", "adam", "quick"],
        default="paper",
        help="paper: SGD lr 0.001 momentum 0.9, 50 seeds, 10 epochs (default); "
        "adam: Adam lr 0.001; quick: 4 seeds, 1 epoch on 5000 images",
    )
    exp1.add_argument("--quick", action="store_true", help="same as --preset quick")
    exp1.add_argument("--seeds", type=int, help="number of networks (overrides the preset)")
    exp1.add_argument("--epochs", type=int, help="training epochs (overrides the preset)")
    exp1.add_argument("--optimizer", choices=["sgd", "adam"], help="overrides the preset")
    exp1.add_argument(
        "--init",
        choices=["torch", "flax"],
        help="parameter initialisation: torch (PyTorch's defaults, as the authors'; "
        "the presets' choice) or flax (LeCun normal, zero bias)",
    )
    exp1.add_argument("--lr", type=float, help="learning rate (overrides the preset)")
    exp1.add_argument("--seed", type=int, help="base random seed (default 0)")
    exp1.add_argument("--out", help="output folder (default results/exp1_<preset>)")
    exp1.add_argument("--no-progress", action="store_true", help="no progress bars")
    exp1.set_defaults(func=_exp1)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``poz-jax`` command."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"poz-jax: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
