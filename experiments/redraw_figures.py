"""Redraw the committed Experiment 1 figures from their committed tables (no training).

Each ``experiments/results/exp1*/figure1.png``/``.pdf`` is drawn by the same
function the pipeline uses (``poz_jax.pipelines.exp1.draw_figure1``) from the
folder's ``summary.csv`` (its paper-level rows) and ``config.json``:

    python experiments/redraw_figures.py
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from poz_jax.pipelines.exp1 import draw_figure1

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    for folder in sorted(RESULTS.glob("exp1*")):
        with open(folder / "summary.csv", newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r["paper_level"] == "True"]
        train = json.loads((folder / "config.json").read_text())["train"]
        for path in draw_figure1(rows, train, folder / "figure1"):
            print(f"wrote {path.relative_to(RESULTS.parent)}")


if __name__ == "__main__":
    main()
