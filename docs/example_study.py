"""An example study in one file: every set's fit at every keep level, as a table.

Registered by one line in ``poz_jax/study/registry.py`` (``"levels":
"example_study"``, with this file importable), it becomes ``poz-jax levels``
with a flag per config field, and ``poz-jax reproduce`` re-derives its folders.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from poz_jax import analyse, keep_grid
from poz_jax.core import validate as v
from poz_jax.data import load_embeddings, load_stimulus_sets
from poz_jax.io import files
from poz_jax.study.contract import Input, Result, Study
from poz_jax.study.options import setting
from poz_jax.study.runner import results_folder


@dataclasses.dataclass(frozen=True)
class LevelsConfig:
    """The settings of one run (saved in ``config.json``, one flag each)."""

    step: int = setting(1, "keep counts n, n - step, ..., down to 1")

    def __post_init__(self) -> None:
        v.check_int(self.step, "step", 1)


def run(cfg: LevelsConfig, out, stimuli, embeddings, progress: bool = True) -> Result:
    """Write ``levels.csv``: set, keep count and fit of the PoZ-ordered sweep."""
    inputs = {"stimuli": stimuli, "embeddings": embeddings}
    with results_folder(out, "levels", cfg, inputs) as work:
        sets = load_stimulus_sets(stimuli)
        embeddings = load_embeddings(embeddings, sets)
        rows = []
        for name, s in sets.items():
            x = np.asarray(embeddings[name], np.float64)
            counts = keep_grid(x.shape[1], step=cfg.step)
            fits = analyse(x, s.similarity, counts).fit
            rows += [
                {"set": name, "keep_count": int(k), "fit": float(f)}
                for k, f in zip(counts, fits, strict=True)
            ]
        files.write_csv(work / "levels.csv", rows)
    return Result(rows, text=f"{len(rows)} levels")


STUDY = Study(
    name="levels",
    help="example: every set's fit at every keep level",
    description="The PoZ-ordered sweep of each set's embeddings against its similarity "
    "matrix at every keep count; writes levels.csv.",
    config=LevelsConfig,
    inputs=(
        Input("stimuli", "the similarity matrices (as for exp2)", required=True),
        Input("embeddings", "an .npz with one (n_items, n_nodes) matrix per set", required=True),
    ),
    run=run,
)
