"""Experiment 1's analysis at several training lengths of the same networks.

Takes copies of a run's per-epoch ``checkpoint.npz`` (the run overwrites
its own after every epoch, so keep copies as it goes), embeds the test set
with each, runs the usual analysis and writes one table: per epoch and
paper keep level, the test accuracy, the fit and the max PoZ (means over
networks).

    python experiments/exp1_epochs.py --data-dir ../shared/data/cifar10 \\
        --out experiments/results/exp1/by_epoch.csv runs/exp1_snap/epoch*.npz
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
from pathlib import Path

from poz_jax.io import files
from poz_jax.pipelines import exp1
from poz_jax.training.train import TrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoints", nargs="+", help="copies of a run's checkpoint.npz")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", required=True, help="CSV to write")
    parser.add_argument("--work", default="runs/by_epoch", help="folder for the embeddings")
    args = parser.parse_args()
    rows = []
    for path in args.checkpoints:
        _, meta = files.load_arrays(path)
        cfg = dataclasses.replace(TrainConfig.from_dict(meta["train"]), epochs=meta["epoch"])
        work = Path(args.work) / f"epoch{cfg.epochs}"
        work.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, work / "checkpoint.npz")  # run() resumes from it: no training left
        res = exp1.run(cfg, work, args.data_dir, progress=False)
        acc = res.extra["test_accuracy"]
        print(f"epoch {cfg.epochs}:\n{exp1.format_summary(res)}", flush=True)
        rows += [
            {
                "epoch": cfg.epochs,
                "test_acc_mean": float(acc.mean()),
                "keep_fraction": r["keep_fraction"],
                "fit_mean": r["fit_mean"],
                "max_poz_mean": r["max_poz_mean"],
            }
            for r in res.rows
        ]
    rows.sort(key=lambda r: (r["epoch"], -r["keep_fraction"]))
    files.write_csv(args.out, rows)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
