"""experiments/exp2_colab.ipynb runs, offline: its download cell skipped, random weights.

The notebook is executed by a real Jupyter kernel (nbclient), with its
install and download cells (tagged ``setup`` and ``download``) left out and
its parameters cell's paths pointed at generated stimulus sets.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import EXP2_SETS, N_NULL

NOTEBOOK = Path(__file__).resolve().parents[1] / "experiments" / "exp2_colab.ipynb"


@pytest.mark.slow
def test_the_exp2_notebook_runs_on_generated_stimuli_with_random_weights(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from poz_jax.data.synthetic import write_stimulus_sets

    write_stimulus_sets(tmp_path / "stimuli", names=("discs",), n_items=EXP2_SETS["n_items"])
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    tags = [set(c.metadata.get("tags", [])) for c in nb.cells]
    assert any("download" in t for t in tags) and any("parameters" in t for t in tags)
    cells = []
    for cell, t in zip(nb.cells, tags, strict=True):
        if t & {"setup", "download"}:
            continue
        cells.append(cell)
        if "parameters" in t:  # papermill's convention: overrides follow the parameters
            cells.append(
                nbformat.v4.new_code_cell(
                    f"PETERSON = {str(tmp_path / 'stimuli')!r}\nWEIGHTS = 'random'\n"
                    f"OUT = {str(tmp_path / 'out')!r}\nN_NULL = {N_NULL}"
                )
            )
    nb.cells = cells
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # ipykernel's own kernel spec runs this interpreter
    assert (tmp_path / "out" / "stats.csv").is_file()
    assert (tmp_path / "out" / "figure3.png").is_file()
    shown = [
        o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "display_data"
    ]
    assert len(shown) == 3  # the table and the two figures
