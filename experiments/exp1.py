"""Experiment 1 as run for experiments/results/: the paper (SGD) and Adam presets.

Trains into ``--work`` (checkpoints and embeddings, resumable) and copies the
small outputs (tables, figure, config, history) into ``experiments/results/``.

    python experiments/exp1.py --data-dir ../shared/data/cifar10 --preset paper --epochs 10
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from poz_jax.pipelines import exp1

RESULTS = Path(__file__).resolve().parent / "results"
SMALL = (
    "summary.csv",
    "per_network.csv",
    "accuracy.csv",
    "analysis.npz",
    "networks.npz",
    "config.json",
    "history.json",
    "figure1.png",
    "figure1.pdf",
)
NAMES = {"paper": "exp1", "adam": "exp1_adam"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--preset", choices=list(NAMES), nargs="+", default=list(NAMES))
    parser.add_argument("--epochs", type=int, help="override the preset's 10 epochs")
    parser.add_argument("--seeds", type=int, help="override the preset's 50 networks")
    parser.add_argument("--init", choices=["torch", "flax"], help="override the preset's torch")
    parser.add_argument("--name", help="results folder name (default exp1 / exp1_adam)")
    parser.add_argument("--work", default="runs", help="folder for checkpoints and embeddings")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    for preset in args.preset:
        cfg = exp1.config(preset, epochs=args.epochs, seeds=args.seeds, init_style=args.init)
        name = args.name or NAMES[preset]
        work = Path(args.work) / name
        res = exp1.run(cfg, work, args.data_dir, progress=not args.no_progress)
        print(exp1.format_summary(res))
        dest = RESULTS / name
        dest.mkdir(parents=True, exist_ok=True)
        for fname in SMALL:
            shutil.copy2(work / fname, dest / fname)
        print(f"copied {', '.join(SMALL)} to {dest}")


if __name__ == "__main__":
    main()
