"""poz-jax reproduce: a results folder re-derived from its inputs; an edited cell is named."""

from __future__ import annotations

import csv

import pytest
from conftest import SMALL_TRAIN

from poz_jax import cli
from poz_jax.pipelines import exp1
from poz_jax.pipelines.reproduce import compare_tables, format_report, reproduce
from poz_jax.synthetic import write_fake_cifar10, write_stimulus_sets


def _edit(path, row: int, column: str, value: str) -> str:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    old = rows[row - 1][column]
    rows[row - 1][column] = value
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return old


def test_compare_tables_names_each_cell(tmp_path):
    (tmp_path / "a.csv").write_text("k,fit\n1,0.5\n2,nan\n3,x\n")
    (tmp_path / "b.csv").write_text("k,fit\n1,0.5000001\n2,nan\n3,y\n")
    diffs = compare_tables(tmp_path / "a.csv", tmp_path / "b.csv")
    assert [(d.row, d.column) for d in diffs] == [(1, "fit"), (3, "fit")]
    assert [
        (d.row, d.column) for d in compare_tables(tmp_path / "a.csv", tmp_path / "b.csv", 1e-6)
    ] == [(3, "fit")]
    (tmp_path / "c.csv").write_text("k,other\n1,0.5\n")
    assert compare_tables(tmp_path / "a.csv", tmp_path / "c.csv")[0].column == "(header)"
    assert compare_tables(tmp_path / "a.csv", tmp_path / "none.csv")[0].derived == "not written"


@pytest.mark.slow
def test_an_exp1_folder_is_reproduced_from_its_networks_and_an_edit_is_named(tmp_path):
    data, _ = write_fake_cifar10(tmp_path / "cifar", "npz", n_train=60, n_test=200, seed=5)
    out = tmp_path / "results"
    exp1.run(SMALL_TRAIN, out, data, progress=False, verify=False)
    for f in ("checkpoint.npz", "embeddings.npz"):
        (out / f).unlink()  # what a committed folder holds: networks.npz, tables, config
    report = reproduce(out, data_dir=data, verify=False)
    assert report.ok and report.study == "exp1", report.differences
    assert set(report.tables) == {"summary.csv", "per_seed.csv", "accuracy.csv"}
    old = _edit(out / "summary.csv", 3, "fit_mean", "0.123")
    report = reproduce(out, data_dir=data, verify=False)
    assert [(d.table, d.row, d.column, d.committed, d.derived) for d in report.differences] == [
        ("summary.csv", 3, "fit_mean", "0.123", old)
    ]
    said = format_report(report, out)
    assert f"differs: summary.csv row 3, fit_mean: committed 0.123, re-derived {old}" in said
    assert "NOT reproduced" in said


@pytest.mark.slow
def test_exp2_and_compare_folders_are_reproduced(tmp_path, capsys):
    stim = tmp_path / "stim"
    write_stimulus_sets(stim, n_items=12, n_nodes=40)
    emb = stim / "embeddings.npz"
    base = ["--stimuli", str(stim), "--embeddings", str(emb), "--no-progress"]
    assert cli.main(["exp2", *base, "--n-null", "5", "--out", str(tmp_path / "e2")]) == 0
    cmp_ = ["--folds", "2", "--repeats", "1", "--n-random", "2", "--inner-folds", "2"]
    assert cli.main(["compare", *base, *cmp_, "--out", str(tmp_path / "c")]) == 0
    capsys.readouterr()
    for name in ("e2", "c"):
        assert cli.main(["reproduce", str(tmp_path / name), "--no-progress"]) == 0
        assert "reproduced" in capsys.readouterr().out
    # An input that is not the recorded one is refused, not silently used.
    write_stimulus_sets(tmp_path / "other", n_items=12, n_nodes=40, seed=1)
    args = ["reproduce", str(tmp_path / "e2"), "--stimuli", str(tmp_path / "other")]
    assert cli.main(args) == 2
    assert "is not the input the folder was made from" in capsys.readouterr().err


def test_reproduce_warns_when_the_environment_is_not_the_recorded_one():
    from poz_jax import provenance
    from poz_jax.pipelines.reproduce import environment_warnings

    here = provenance.environment()
    assert environment_warnings(here) == []
    other = {**here, "jax": "0.0.1", "backend": "elsewhere"}
    said = environment_warnings(other)
    assert any(w.startswith("jax is") and "0.0.1" in w for w in said)
    assert f"backend is {here['backend']} here, elsewhere in the folder" in said
    assert "records no environment" in environment_warnings(None)[0]
