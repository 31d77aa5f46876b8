"""Re-derive the committed Experiment 1 tables and figures from their analysis (no training).

Each ``experiments/results/exp1*`` folder's ``summary.csv``, ``per_network.csv``
and ``accuracy.csv`` are rebuilt from its ``analysis.npz`` (the fits and PoZ
of every network at every level) and its networks' test accuracies, by the
same table builders the pipeline uses (``poz_jax.report.tables.exp1_tables``), and
``figure1.png``/``.pdf`` is redrawn from the new ``summary.csv``:

    python experiments/retabulate_exp1.py

Used when the summary statistics change (e.g. the sd's ddof) and the numbers
they summarise do not; ``tests/test_results.py`` checks the outcome.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from poz_jax.analysis.pruning import Analysis
from poz_jax.core.ranking import keep_grid
from poz_jax.io import files, provenance
from poz_jax.pipelines.exp1 import N_NODES, draw_figure1
from poz_jax.report.tables import exp1_tables

RESULTS = Path(__file__).resolve().parent / "results"


def tables(folder: Path) -> dict[str, list[dict]]:
    """The folder's three tables, re-derived: ``{file name: rows}``."""
    arrays, _ = files.load_arrays(folder / "analysis.npz")
    arrays.pop("rsm")
    with open(folder / "accuracy.csv", newline="") as fh:
        acc = np.array([float(r["test_accuracy"]) for r in csv.DictReader(fh)])
    rows = exp1_tables(Analysis(**arrays), keep_grid(N_NODES), acc)
    return dict(zip(("summary.csv", "per_network.csv", "accuracy.csv"), rows, strict=True))


def main() -> None:
    for folder in sorted(RESULTS.glob("exp1*")):
        derived = tables(folder)
        for name, rows in derived.items():
            files.write_csv(folder / name, rows)
            print(f"wrote {(folder / name).relative_to(RESULTS.parent)}")
        paper = [r for r in derived["summary.csv"] if r["paper_level"]]
        train = provenance.saved_config(folder)[1]
        for path in draw_figure1(paper, train, folder / "figure1"):
            print(f"wrote {path.relative_to(RESULTS.parent)}")


if __name__ == "__main__":
    main()
