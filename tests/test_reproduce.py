"""poz-jax reproduce: a results folder re-derived from its inputs; an edited cell is named."""

from __future__ import annotations

import csv

import pytest
from conftest import COMPARE_ARGS, COMPARE_SETS, N_NULL, SMALL_TRAIN

from poz_jax import cli
from poz_jax.data.synthetic import write_fake_cifar10, write_stimulus_sets
from poz_jax.pipelines import exp1
from poz_jax.study.reproduce import compare_tables, format_report, reproduce


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
    assert set(report.tables) == {"summary.csv", "per_network.csv", "accuracy.csv"}
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
    write_stimulus_sets(stim, **COMPARE_SETS)
    emb = stim / "embeddings.npz"
    base = ["--stimuli", str(stim), "--embeddings", str(emb), "--no-progress"]
    assert cli.main(["exp2", *base, f"--n-null={N_NULL}", "--out", str(tmp_path / "e2")]) == 0
    assert cli.main(["compare", *base, *COMPARE_ARGS, "--out", str(tmp_path / "c")]) == 0
    capsys.readouterr()
    for name in ("e2", "c"):
        assert cli.main(["reproduce", str(tmp_path / name), "--no-progress"]) == 0
        assert "reproduced" in capsys.readouterr().out
    # An input that is not the recorded one is refused, not silently used.
    write_stimulus_sets(tmp_path / "other", **COMPARE_SETS, seed=1)
    args = ["reproduce", str(tmp_path / "e2"), "--stimuli", str(tmp_path / "other")]
    assert cli.main(args) == 2
    assert "is not the input the folder was made from" in capsys.readouterr().err


def test_reproduce_warns_when_the_environment_is_not_the_recorded_one():
    from poz_jax.io import provenance
    from poz_jax.study.reproduce import environment_warnings

    here = provenance.environment()
    assert environment_warnings(here) == []
    other = {**here, "jax": "0.0.1", "backend": "elsewhere"}
    said = environment_warnings(other)
    assert any(w.startswith("jax is") and "0.0.1" in w for w in said)
    assert f"backend is {here['backend']} here, elsewhere in the folder" in said
    assert "records no environment" in environment_warnings(None)[0]


@pytest.mark.slow
def test_an_incomplete_or_edited_folder_is_not_reproduced(tmp_path, capsys):
    import json
    import shutil

    stim = tmp_path / "stim"
    write_stimulus_sets(stim, **COMPARE_SETS)
    emb = stim / "embeddings.npz"
    base = ["--stimuli", str(stim), "--embeddings", str(emb), "--no-progress"]
    done = tmp_path / "e2"
    assert cli.main(["exp2", *base, f"--n-null={N_NULL}", "--out", str(done)]) == 0
    capsys.readouterr()

    def copy(name):
        shutil.copytree(done, tmp_path / name)
        return tmp_path / name

    def verdict(folder):
        code = cli.main(["reproduce", str(folder), "--no-progress"])
        out = capsys.readouterr()
        return code, out.out + out.err

    no_tables = copy("no_tables")
    for p in no_tables.glob("*.csv"):
        p.unlink()
    code, said = verdict(no_tables)
    assert code == 1 and "NOT reproduced" in said
    for t in ("summary.csv", "levels.csv", "stats.csv"):
        assert f"differs: {t} row 0, (file): committed missing, re-derived written" in said
    two_gone = copy("two_gone")
    (two_gone / "summary.csv").unlink()
    (two_gone / "figure3.png").unlink()
    code, said = verdict(two_gone)
    assert code == 1 and "summary.csv row 0, (file)" in said and "figure3.png row 0" in said
    cut = copy("cut")
    lines = (cut / "stats.csv").read_text().splitlines()
    lines[1] = ",".join(lines[1].split(",")[:3])
    (cut / "stats.csv").write_text("\n".join(lines) + "\n")
    code, said = verdict(cut)
    assert code == 1 and "differs: stats.csv row 1, (cells)" in said
    extra = copy("extra")
    (extra / "notes.csv").write_text("a\n1\n")
    code, said = verdict(extra)
    assert code == 1 and "notes.csv row 0, (file): committed present, re-derived not" in said

    for name, edit, message in [
        ("unknown", lambda c: c["config"].update(colour="red"), "unknown field 'colour'"),
        ("missing", lambda c: c["config"].pop("n_null"), "no field 'n_null'"),
    ]:
        folder = copy(name)
        config = json.loads((folder / "config.json").read_text())
        edit(config)
        (folder / "config.json").write_text(json.dumps(config))
        code, said = verdict(folder)
        assert code == 2 and message in said and "Traceback" not in said, said
    # Another embeddings file than the recorded one is refused by its digest.
    write_stimulus_sets(tmp_path / "other", **COMPARE_SETS, seed=1)
    args = ["reproduce", str(done), "--embeddings", str(tmp_path / "other" / "embeddings.npz")]
    assert cli.main(args) == 2
    assert "embeddings" in capsys.readouterr().err


@pytest.mark.slow
def test_a_compare_config_without_methods_is_refused_by_name(tmp_path, capsys):
    import json

    stim = tmp_path / "stim"
    write_stimulus_sets(stim, **COMPARE_SETS)
    base = ["--stimuli", str(stim), "--embeddings", str(stim / "embeddings.npz")]
    out = tmp_path / "c"
    assert cli.main(["compare", *base, *COMPARE_ARGS, "--out", str(out), "--no-progress"]) == 0
    config = json.loads((out / "config.json").read_text())
    del config["config"]["methods"]
    (out / "config.json").write_text(json.dumps(config))
    capsys.readouterr()
    assert cli.main(["reproduce", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "no field 'methods'" in err and "Traceback" not in err
