"""The numbers docs/studies/exp1.md quotes for Experiment 1, from a results folder alone.

Reads ``summary.csv``, ``accuracy.csv`` and ``analysis.npz`` (no data, no
training) and prints, for the paper's ten levels, the fit and max-PoZ means
and sample sds over networks; the paper's statement about the 20% highest-PoZ
nodes network by network; how many nodes never or hardly fire; and how many
network-level cuts fall inside a PoZ tie:

    python scripts/exp1_statements.py experiments/results/exp1
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

from poz_jax.analysis import stats
from poz_jax.core.ranking import keep_grid
from poz_jax.io import files


def main(folder: Path) -> None:
    with open(folder / "summary.csv", newline="") as fh:
        summary = {int(r["keep_count"]): r for r in csv.DictReader(fh)}
    with open(folder / "accuracy.csv", newline="") as fh:
        acc = np.array([float(r["test_accuracy"]) for r in csv.DictReader(fh)])
    arrays, _ = files.load_arrays(folder / "analysis.npz")
    poz, n = arrays["poz"], arrays["poz"].shape[1]
    print(f"{folder}: {len(acc)} networks")
    print(
        f"test accuracy {stats.mean(acc):.4f} +- {stats.sd(acc):.4f} (sd), "
        f"range {acc.min():.4f}-{acc.max():.4f}"
    )
    print("% kept | fit mean (sd) | max PoZ % mean (sd)")
    for k in keep_grid(n):
        r = summary[int(k)]
        print(
            f"{100 * k / n:5.1f} | {float(r['fit_mean']):.3f} ({float(r['fit_sd']):.3f}) | "
            f"{100 * float(r['max_poz_mean']):.1f} ({100 * float(r['max_poz_sd']):.1f})"
        )
    top = int(round(0.2 * n))  # the 20% highest-PoZ nodes: 17 of 84
    kth = np.sort(poz, axis=1)[:, -top]  # the 17th-highest PoZ of each network
    print(
        f"the {top} highest-PoZ nodes all above 60% PoZ in {int(np.sum(kth > 0.6))} of "
        f"{len(poz)} networks; lowest {top}th-highest PoZ {100 * kth.min():.1f}%"
    )
    print(
        f"nodes per network firing on no test image {np.mean(np.sum(poz == 1, 1)):.1f}, "
        f"on fewer than 5% of them {np.mean(np.sum(poz > 0.95, 1)):.1f}"
    )
    # A cut between keep count k and k + 1 is inside a tie when the last kept
    # and the first pruned node have the same PoZ.
    ties = 0
    for p, o in zip(poz, arrays["order"], strict=True):
        kept = p[o]
        ties += sum(int(kept[k - 1] == kept[k]) for k in keep_grid(n) if k < n)
    print(
        f"{ties} of {len(poz) * (len(keep_grid(n)) - 1)} network-level cuts fall inside a PoZ tie"
    )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
