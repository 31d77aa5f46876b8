"""The committed results: their tables follow, digit for digit, from their analysis.npz."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from poz_jax import files
from poz_jax.analysis import Analysis
from poz_jax.core.ranking import keep_grid
from poz_jax.pipelines import exp1

RESULTS = Path(__file__).resolve().parents[1] / "experiments" / "results"
RUNS = sorted(p.parent for p in RESULTS.glob("*/analysis.npz"))


def test_every_committed_run_is_checked():
    assert {p.name for p in RUNS} >= {"exp1", "exp1_adam"}


@pytest.mark.parametrize("run", RUNS, ids=lambda p: p.name)
def test_tables_are_reproduced_from_the_analysis(run, tmp_path):
    arrays, _ = files.load_arrays(run / "analysis.npz")
    arrays.pop("rsm")
    result = Analysis(**arrays)
    with open(run / "accuracy.csv") as fh:
        acc = np.array([float(r["test_accuracy"]) for r in csv.DictReader(fh)])
    tables = exp1.tables(result, keep_grid(exp1.N_NODES), acc)
    for name, rows in zip(("summary.csv", "per_seed.csv", "accuracy.csv"), tables, strict=True):
        files.write_csv(tmp_path / name, rows)
        assert (tmp_path / name).read_text() == (run / name).read_text(), name
