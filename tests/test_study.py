"""The study contract: a flag per config field, one runner, a new study in one file."""

from __future__ import annotations

import ast
import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import read_rows, ref_sweep

from poz_jax import cli
from poz_jax.study import options, registry

ROOT = Path(__file__).resolve().parent.parent


def test_every_config_field_of_every_study_has_a_flag_in_its_help(capsys):
    for study in registry.all_studies():
        with pytest.raises(SystemExit):
            cli.main([study.name, "--help"])
        said = capsys.readouterr().out
        for field in dataclasses.fields(study.config):
            flag = options.flag_of(field)
            assert f"{flag} " in said or f"{flag}\n" in said, (study.name, flag)
        for spec in study.inputs:
            assert spec.option in said, (study.name, spec.option)


def test_a_refused_field_is_named_with_its_flag_from_the_metadata(tmp_path, capsys):
    from poz_jax.data.synthetic import write_stimulus_sets

    write_stimulus_sets(tmp_path / "s", n_items=8, n_nodes=20)
    base = [
        "--stimuli",
        str(tmp_path / "s"),
        "--embeddings",
        str(tmp_path / "s" / "embeddings.npz"),
    ]
    cases = [
        (["exp2", *base, "--keep-step", "0"], "keep_step (--keep-step) must be at least 1, got 0"),
        (["compare", *base, "--methods", "poz,poz"], "methods (--methods) must be distinct"),
        (["trim", "--cifar10h", "c", "--sds", "-1"], "sds (--sds) must be a number >= 0"),
        (["trim", "--cifar10h", "c", "--keep", "a,b"], "--keep must be comma-separated numbers"),
        (["exp1", "--lr", "0"], "learning_rate (--lr) must be positive"),
    ]
    for args, message in cases:
        assert cli.main([*args, "--out", str(tmp_path / "o")]) == 2, args
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (args, err)
    assert not (tmp_path / "o").exists()


def test_a_saved_config_is_refused_with_the_fields_it_lacks_or_adds():
    from poz_jax.analysis.comparison import CompareConfig

    saved = dataclasses.asdict(CompareConfig())
    assert options.from_saved(CompareConfig, saved, "x") == CompareConfig()
    edited = {k: v for k, v in {**saved, "colour": 1}.items() if k != "folds"}
    with pytest.raises(ValueError, match="unknown field 'colour'.*no field 'folds'"):
        options.from_saved(CompareConfig, edited, "x")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_no_study_module_imports_another():
    modules = dict(registry.STUDIES)
    for name, module in modules.items():
        path = ROOT / (module.replace(".", "/") + ".py")
        others = {m for n, m in modules.items() if n != name}
        assert not _imports(path) & others, (name, _imports(path) & others)


def test_a_new_study_is_one_file_run_by_the_cli_and_reproduce(tmp_path, monkeypatch, capsys):
    from poz_jax.data.synthetic import write_stimulus_sets

    monkeypatch.syspath_prepend(str(ROOT / "docs"))
    monkeypatch.setitem(registry.STUDIES, "levels", "example_study")
    write_stimulus_sets(tmp_path / "s", n_items=10, n_nodes=30)
    stim, emb = tmp_path / "s", tmp_path / "s" / "embeddings.npz"
    out = tmp_path / "levels"
    args = ["levels", "--stimuli", str(stim), "--embeddings", str(emb), "--step", "7"]
    assert cli.main([*args, "--out", str(out), "--no-progress"]) == 0
    assert "levels" in capsys.readouterr().out
    rows = read_rows(out / "levels.csv")
    from poz_jax import poz
    from poz_jax.data import load_embeddings, load_stimulus_sets

    sets = load_stimulus_sets(stim)
    x = load_embeddings(emb, sets)
    for name, s in sets.items():
        got = [(int(r["keep_count"]), float(r["fit"])) for r in rows if r["set"] == name]
        counts = [k for k, _ in got]
        assert counts == list(range(30, 0, -7))
        a = np.asarray(x[name], np.float64)
        order = np.argsort(np.asarray(poz(a)), kind="stable")
        want = ref_sweep(a, s.similarity, counts, order)
        np.testing.assert_allclose([f for _, f in got], want, rtol=0, atol=1e-5)
    assert cli.main(["reproduce", str(out), "--no-progress"]) == 0
    assert "reproduced" in capsys.readouterr().out
    assert cli.main([*args[:-1], "0", "--out", str(tmp_path / "x")]) == 2
    assert "step (--step) must be at least 1" in capsys.readouterr().err
    sys.modules.pop("example_study", None)


def _rooms_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("rooms", ROOT / "scripts" / "rooms.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["rooms"] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_every_study_config_enters_at_most_six_rooms_and_climbs_at_most_four_times():
    rooms = _rooms_script()
    # The follower sees a config passed on: exp1's reaches training through two calls.
    exp1 = rooms.follow(registry.STUDIES["exp1"])
    assert (
        "poz_jax.pipelines.exp1._networks",
        "poz_jax.training.train.train_networks",
    ) in exp1.calls
    assert set(rooms.RANKS) == {
        p.name for p in (ROOT / "poz_jax").iterdir() if p.is_dir() and (p / "__init__.py").exists()
    } | {"cli"}
    for name, module in registry.STUDIES.items():
        path = rooms.follow(module)
        assert len(path.rooms) <= 6, (name, path.rooms)
        assert len(path.climbs) <= 4, (name, path.climbs)


def test_the_room_follower_counts_a_climb_back_up():
    rooms = _rooms_script()
    # A call from the array core back into a study, with the config, is one climb.
    path = rooms.Path_(
        "x",
        calls=[
            ("poz_jax.core.rsa.f", "poz_jax.pipelines.exp2.g"),
            ("poz_jax.pipelines.exp2.g", "poz_jax.core.rsa.f"),
        ],
    )
    assert path.climbs == [("poz_jax.core.rsa.f", "poz_jax.pipelines.exp2.g")]


def test_every_study_returns_one_result_whose_paths_land_in_out(tmp_path):
    from poz_jax.study.contract import Result
    from poz_jax.study.staging import relocate

    work, out = tmp_path / "out" / ".partial", tmp_path / "out"
    res = Result([{"a": 1}], [work / "f.png"], "text", {"file": work / "x.csv", "n": 3})
    moved = relocate(res, work, out)
    assert isinstance(moved, Result) and moved.rows == [{"a": 1}] and moved.text == "text"
    assert moved.figures == [out / "f.png"] and moved.extra == {"file": out / "x.csv", "n": 3}
    # Every registered study's run says it returns one.
    import importlib
    import inspect

    for name, module in registry.STUDIES.items():
        run = importlib.import_module(module).run
        assert inspect.signature(run).return_annotation in (Result, "Result"), name
