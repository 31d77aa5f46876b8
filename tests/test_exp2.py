"""Experiment 2 end to end on generated stimulus sets whose answer is planted."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from scipy import stats as sps

from poz_jax import cli, exp2
from poz_jax.synthetic import write_stimulus_sets


def _read(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def stimuli(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stim")
    write_stimulus_sets(folder, n_items=12, n_nodes=4096)
    return folder


@pytest.fixture(scope="module")
def result(stimuli, tmp_path_factory):
    out = tmp_path_factory.mktemp("exp2")
    cfg = exp2.Exp2Config(n_null=40)
    res = exp2.run(cfg, out, stimuli, stimuli / "embeddings.npz", progress=False)
    return out, res


def test_planted_answer_is_found(result):
    out, res = result
    for row in res["stats"]:
        # a quarter of the nodes carry the similarity: the fit peaks near 25% kept
        assert 20.0 <= row["peak_percent_kept"] <= 30.0
        assert row["improvement"] > 0.3
        assert row["p_improvement"] == pytest.approx(1 / 41)  # beats every null draw
        assert row["trend_slope_per_percent"] > 0 and row["p_trend"] == pytest.approx(1 / 41)
    for suffix in ("png", "pdf"):
        assert (out / f"figure2.{suffix}").stat().st_size > 1000
        assert (out / f"figure3.{suffix}").stat().st_size > 1000


def test_tables_against_a_scipy_reference(stimuli, result):
    out, _ = result
    emb = np.load(stimuli / "embeddings.npz")
    sims = np.load(stimuli / "similarity.npz")
    summary, levels, stats = (_read(out / f) for f in ("summary.csv", "levels.csv", "stats.csv"))
    assert len(summary) == 2 * 205 and len(levels) == 2 * 4096
    for name in ("discs", "hues"):
        x = emb[name].astype(np.float64)
        poz = (x == 0).mean(0)
        order = np.argsort(poz, kind="stable")
        iu = np.triu_indices(12, 1)

        def fit_at(k, x=x, order=order, name=name, iu=iu):
            r = np.corrcoef(x[:, order[:k]])
            return sps.pearsonr((r**2)[iu], sims[name][iu])[0] ** 2

        rows = [r for r in summary if r["set"] == name]
        assert [int(r["keep_count"]) for r in rows] == list(range(4096, 15, -20))
        for r in rows[::40]:
            k = int(r["keep_count"])
            assert float(r["fit"]) == pytest.approx(fit_at(k), abs=1e-10)
            assert float(r["max_poz_kept"]) == pytest.approx(poz[order[:k]].max(), abs=1e-12)
        lv = {int(r["keep_count"]): float(r["fit"]) for r in levels if r["set"] == name}
        for k in (4096, 3001, 777, 50, 3):
            assert lv[k] == pytest.approx(fit_at(k), abs=1e-10)
        st = next(r for r in stats if r["set"] == name)
        assert float(st["share_poz_above_80"]) == pytest.approx(np.mean(poz > 0.8))
        null = np.load(out / f"null_{name}.npz")["fit"]
        fits = np.array([float(r["fit"]) for r in rows])
        gain = fits.max() - fits[0]
        ref_p = (1 + np.sum(np.nanmax(null, 1) - null[:, 0] >= gain)) / (1 + len(null))
        assert float(st["p_improvement"]) == pytest.approx(ref_p)
        np.testing.assert_allclose(null[:, 0], fits[0], rtol=1e-9)  # unpruned = same for all


def test_resume_reuses_finished_nulls(stimuli, result, monkeypatch):
    out, res = result

    def refuse(*a, **k):
        raise AssertionError("a finished null was recomputed")

    monkeypatch.setattr(exp2, "null_fits", refuse)
    again = exp2.run(exp2.Exp2Config(n_null=40), out, stimuli, stimuli / "embeddings.npz", False)
    assert again["stats"] == res["stats"]


def test_network_path_with_random_weights(stimuli, tmp_path):
    cfg = exp2.Exp2Config(n_null=5, weights="random", sets=("hues",), precision="float32")
    res = exp2.run(cfg, tmp_path, stimuli, progress=False)
    emb = np.load(tmp_path / "embeddings.npz")["hues"]
    assert emb.shape == (12, 4096) and emb.min() >= 0
    assert res["stats"][0]["set"] == "hues" and res["stats"][0]["n_null"] == 5


def test_cli(stimuli, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["exp2", "--help"])
    assert e.value.code == 0 and "--embeddings" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["convert-vgg16", "--help"])
    assert "safetensors" in capsys.readouterr().out
    code = cli.main(["exp2", "--stimuli", str(stimuli), "--out", str(tmp_path / "a")])
    assert code == 2 and "no network weights" in capsys.readouterr().err
    code = cli.main(["exp2", "--stimuli", str(tmp_path / "none"), "--out", str(tmp_path / "b")])
    assert code == 2 and "does not exist" in capsys.readouterr().err
    args = ["exp2", "--stimuli", str(stimuli / "similarity.npz"), "--sets", "birds"]
    assert cli.main([*args, "--out", str(tmp_path / "c")]) == 2
    assert "no stimulus set named ['birds']" in capsys.readouterr().err
    code = cli.main(
        [
            "exp2",
            "--stimuli",
            str(stimuli / "similarity.npz"),
            "--embeddings",
            str(stimuli / "embeddings.npz"),
            "--n-null",
            "3",
            "--out",
            str(tmp_path / "d"),
            "--no-progress",
        ]
    )
    assert code == 0 and "discs" in capsys.readouterr().out
    assert cli.main(["make-stimuli", str(tmp_path / "gen"), "--items", "5"]) == 0
    assert (tmp_path / "gen" / "embeddings.npz").is_file()


def test_float32_and_float64_agree(stimuli, tmp_path):
    runs = {}
    for prec in ("float32", "float64"):
        cfg = exp2.Exp2Config(n_null=3, precision=prec, sets=("discs",))
        runs[prec] = exp2.run(cfg, tmp_path / prec, stimuli, stimuli / "embeddings.npz", False)
    a, b = runs["float32"]["stats"][0], runs["float64"]["stats"][0]
    assert a["unpruned_fit"] == pytest.approx(b["unpruned_fit"], abs=1e-4)
    assert a["peak_fit"] == pytest.approx(b["peak_fit"], abs=1e-4)
