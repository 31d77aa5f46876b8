"""Experiment 2 end to end on generated stimulus sets whose answer is planted."""

from __future__ import annotations

import numpy as np
import pytest
from bounds import assert_within, sweep_bound
from conftest import EXP2_SETS, N_NULL, read_rows
from scipy import stats as sps

import poz_jax as pj
from poz_jax import cli
from poz_jax.core.nulls import random_orders
from poz_jax.core.ranking import keep_grid
from poz_jax.data import load_embeddings, load_stimulus_sets
from poz_jax.data.synthetic import write_stimulus_sets
from poz_jax.io import files
from poz_jax.pipelines import exp2


@pytest.fixture(scope="module")
def stimuli(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stim")
    write_stimulus_sets(folder, **EXP2_SETS)
    return folder


@pytest.fixture(scope="module")
def result(stimuli, tmp_path_factory):
    out = tmp_path_factory.mktemp("exp2")
    cfg = exp2.Exp2Config(n_null=N_NULL)
    res = exp2.run(cfg, out, stimuli, stimuli / "embeddings.npz", progress=False)
    return out, res


@pytest.mark.slow  # a pipeline or stacked-model run: outside the fast loop
def test_planted_answer_is_found(result):
    out, res = result
    for row in res.rows:
        # a quarter of the nodes carry the similarity: the fit peaks near 25% kept
        assert 20.0 <= row["best_percent_kept"] <= 30.0
        assert row["improvement"] > 0.3
        smallest_p = 1 / (N_NULL + 1)  # beats every null draw
        assert row["p_improvement"] == pytest.approx(smallest_p)
        assert row["trend_slope_per_percent"] > 0 and row["p_trend"] == pytest.approx(smallest_p)
    for suffix in ("png", "pdf"):
        assert (out / f"figure2.{suffix}").stat().st_size > 1000
        assert (out / f"figure3.{suffix}").stat().st_size > 1000


def test_tables_against_a_scipy_reference(stimuli, result):
    out, _ = result
    emb = np.load(stimuli / "embeddings.npz")
    sims = np.load(stimuli / "similarity.npz")
    summary, levels, stats = (
        read_rows(out / f) for f in ("summary.csv", "levels.csv", "stats.csv")
    )
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
            assert float(r["max_poz"]) == pytest.approx(poz[order[:k]].max(), abs=1e-12)
            assert float(r["keep_fraction"]) == round(k / 4096, 6)
        lv = {int(r["keep_count"]): float(r["fit"]) for r in levels if r["set"] == name}
        for k in (4096, 3001, 777, 50, 3):
            assert lv[k] == pytest.approx(fit_at(k), abs=1e-10)
        st = next(r for r in stats if r["set"] == name)
        assert float(st["share_poz_above_80"]) == pytest.approx(np.mean(poz > 0.8))
        null = np.load(out / f"null_{name}.npz")["null_fits"]
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
    again = exp2.run(
        exp2.Exp2Config(n_null=N_NULL), out, stimuli, stimuli / "embeddings.npz", False
    )
    assert again.rows == res.rows


@pytest.mark.slow
def test_network_path_with_random_weights(tmp_path):
    # Three images: every VGG-16 forward at 224 x 224 costs seconds on a CPU.
    write_stimulus_sets(tmp_path / "stim", names=("discs", "hues"), n_items=3)
    # image_batch 2: the last batch of one image is padded to two and cut back.
    cfg = exp2.Exp2Config(
        n_null=5, weights="random", sets=("hues",), precision="float32", image_batch=2
    )
    res = exp2.run(cfg, tmp_path / "out", tmp_path / "stim", progress=False)
    emb = np.load(tmp_path / "out" / "embeddings.npz")["hues"]
    assert emb.shape == (3, 4096) and emb.min() >= 0
    assert res.rows[0]["set"] == "hues" and res.rows[0]["n_null"] == 5


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
            str(N_NULL),
            "--out",
            str(tmp_path / "d"),
            "--no-progress",
        ]
    )
    assert code == 0 and "discs" in capsys.readouterr().out
    assert cli.main(["make-stimuli", str(tmp_path / "gen"), "--items", "5"]) == 0
    assert (tmp_path / "gen" / "embeddings.npz").is_file()


@pytest.mark.slow
def test_float32_and_float64_agree(stimuli, tmp_path):
    runs = {}
    for prec in ("float32", "float64"):
        cfg = exp2.Exp2Config(n_null=N_NULL, precision=prec, sets=("discs",))
        runs[prec] = exp2.run(cfg, tmp_path / prec, stimuli, stimuli / "embeddings.npz", False)
    a, b = runs["float32"].rows[0], runs["float64"].rows[0]
    sets = load_stimulus_sets(stimuli, ["discs"])
    x = load_embeddings(stimuli / "embeddings.npz", sets)["discs"].astype(np.float64)
    counts = keep_grid(x.shape[1], step=20)
    order = np.asarray(pj.keep_order(pj.poz(x)))
    bound = sweep_bound(x, sets["discs"].similarity, counts, order, np.float32)
    bound += sweep_bound(x, sets["discs"].similarity, counts, order, np.float64)
    assert abs(a["unpruned_fit"] - b["unpruned_fit"]) <= bound[0]
    # A maximum moves by at most the largest bound among the levels it may come from.
    assert abs(a["best_fit"] - b["best_fit"]) <= np.nanmax(bound)


@pytest.mark.slow
def test_a_float32_run_leaves_the_p_values_of_a_float64_run_unchanged(stimuli, tmp_path):
    # A float32 run (--precision float32: curves and null) must give the same
    # p-values as the default float64 one, on sets sparse enough to cost
    # float32 digits.
    runs = {}
    for prec in ("float32", "float64"):
        cfg = exp2.Exp2Config(n_null=N_NULL, precision=prec)
        runs[prec] = exp2.run(cfg, tmp_path / prec, stimuli, stimuli / "embeddings.npz", False)
    for a, b in zip(runs["float32"].rows, runs["float64"].rows, strict=True):
        assert a["set"] == b["set"]
        for key in ("p_improvement", "p_trend", "n_null_used_improvement", "n_null_used_trend"):
            assert a[key] == b[key] or (np.isnan(a[key]) and np.isnan(b[key])), (a["set"], key)
    sets = load_stimulus_sets(stimuli)
    emb = load_embeddings(stimuli / "embeddings.npz", sets)
    counts = keep_grid(4096, step=20)
    for name in runs["float32"].rows:
        f32 = np.load(tmp_path / "float32" / f"null_{name['set']}.npz")["null_fits"]
        f64 = np.load(tmp_path / "float64" / f"null_{name['set']}.npz")["null_fits"]
        assert f32.dtype == np.float32 and f64.dtype == np.float64
        np.testing.assert_array_equal(np.isnan(f32), np.isnan(f64))
        # The rest, bounded by the sweep's rounding bound (tests/bounds.py), on
        # the first orders: sparse 12-item sets lose float32 digits where few,
        # mostly silent nodes remain, and the bound grows there with the data's
        # condition (it is infinite where float32 promises nothing; no
        # p-value changed there either, as checked above).
        x = emb[name["set"]].astype(np.float64)
        target = sets[name["set"]].similarity
        orders = np.asarray(random_orders(0, x.shape[1], 0, 8))
        for i, order in enumerate(orders):
            bound64 = sweep_bound(x, target, counts, order, np.float64, fits=f64[i])
            # These are the null's orders: its float64 curve is their sweep.
            assert_within(pj.sweep(x, target, counts, order), f64[i], 2 * bound64, "order")
            bound = sweep_bound(x, target, counts, order, np.float32, fits=f64[i]) + bound64
            assert np.mean(np.isfinite(bound[~np.isnan(f64[i])])) > 0.5  # mostly informative
            assert_within(f32[i], f64[i], bound, f"null order {i} of {name['set']}")
    # The precision is part of the null's key: switching it recomputes.
    cfg = exp2.Exp2Config(n_null=N_NULL, precision="float32")
    exp2.run(cfg, tmp_path / "float64", stimuli, stimuli / "embeddings.npz", False)
    assert np.load(tmp_path / "float64" / "null_discs.npz")["null_fits"].dtype == np.float32


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_changed_embeddings_or_matrix_recompute_the_null(stimuli, tmp_path):
    rng = np.random.default_rng(3)
    emb = dict(np.load(stimuli / "embeddings.npz"))
    # Other embeddings with the same shape and the same zeros (so the same PoZ order).
    other = {**emb, "discs": emb["discs"] * rng.uniform(0.2, 2.0, emb["discs"].shape[1])}
    np.savez(tmp_path / "other.npz", **other)
    sims = dict(np.load(stimuli / "similarity.npz"))
    noise = rng.normal(size=sims["hues"].shape)
    np.savez(tmp_path / "sims.npz", **{**sims, "hues": sims["hues"] + noise + noise.T})
    cfg = exp2.Exp2Config(n_null=N_NULL)
    runs = [
        (stimuli / "similarity.npz", stimuli / "embeddings.npz"),
        (stimuli / "similarity.npz", tmp_path / "other.npz"),  # embeddings changed
        (tmp_path / "sims.npz", tmp_path / "other.npz"),  # a matrix changed
    ]
    for i, (sim, e) in enumerate(runs):
        exp2.run(cfg, tmp_path / "reused", sim, e, progress=False)
        if i:
            exp2.run(cfg, tmp_path / f"fresh{i}", sim, e, progress=False)
            for f in ("stats.csv", "summary.csv"):
                fresh = (tmp_path / f"fresh{i}" / f).read_text()
                assert (tmp_path / "reused" / f).read_text() == fresh
            for name in ("discs", "hues"):
                a = np.load(tmp_path / "reused" / f"null_{name}.npz")["null_fits"]
                b = np.load(tmp_path / f"fresh{i}" / f"null_{name}.npz")["null_fits"]
                np.testing.assert_array_equal(a, b)


def _fake_embed(calls):
    def embed(sets, params, layer, batch, progress):
        calls.append(sorted(sets))
        out = {}
        for name, s in sets.items():
            rows = []
            for path in s.images:
                seed = int(files.file_digest(path)[:8], 16)
                rows.append(np.maximum(np.random.default_rng(seed).normal(size=80), 0))
            out[name] = np.array(rows, np.float32)
        return out

    return embed


@pytest.mark.slow
def test_embeddings_follow_the_images_their_order_and_the_weights(stimuli, tmp_path, monkeypatch):
    import shutil

    calls = []
    monkeypatch.setattr(exp2, "embed_sets", _fake_embed(calls))
    monkeypatch.setattr(exp2, "_network", lambda cfg, sets: None)
    shutil.copytree(stimuli / "hues", tmp_path / "hues")
    weights = tmp_path / "w.npz"
    weights.write_bytes(b"weights one")
    cfg = exp2.Exp2Config(n_null=N_NULL, weights=str(weights))

    def run():
        exp2.run(cfg, tmp_path / "out", tmp_path / "hues", progress=False)
        return np.load(tmp_path / "out" / "embeddings.npz")["hues"]

    first = run()
    run()
    assert len(calls) == 1  # the same inputs: reused
    order = (tmp_path / "hues" / "order.txt").read_text().split()
    order[0], order[1] = order[1], order[0]
    (tmp_path / "hues" / "order.txt").write_text("\n".join(order) + "\n")
    swapped = run()
    assert len(calls) == 2
    np.testing.assert_array_equal(swapped[[1, 0, *range(2, len(order))]], first)
    weights.write_bytes(b"weights two")
    run()
    assert len(calls) == 3
    run()
    assert len(calls) == 3


def test_a_refused_run_leaves_the_folder_as_it_was(stimuli, tmp_path, capsys):
    out = tmp_path / "out"
    cfg = exp2.Exp2Config(n_null=N_NULL)
    exp2.run(cfg, out, stimuli / "similarity.npz", stimuli / "embeddings.npz", progress=False)
    before = _snapshot(out)
    emb = dict(np.load(stimuli / "embeddings.npz"))
    np.savez(tmp_path / "short.npz", discs=emb["discs"][:5], hues=emb["hues"])
    bad_runs = [
        (["--embeddings", str(tmp_path / "short.npz")], "embeddings must be (12, n_nodes)"),
        (["--embeddings", str(stimuli / "embeddings.npz"), "--sets", "birds"], "no stimulus set"),
        (["--embeddings", str(stimuli / "embeddings.npz"), "--n-null", "0"], "--n-null"),
        (["--embeddings", str(stimuli / "embeddings.npz"), "--seed", "-1"], "(--seed) must be in"),
        (["--weights", "random"], "have no images (a similarity-only file)"),
    ]
    for extra, msg in bad_runs:
        args = ["exp2", "--stimuli", str(stimuli / "similarity.npz"), "--out", str(out), *extra]
        assert cli.main(args) == 2, extra
        assert msg in capsys.readouterr().err
        assert _snapshot(out) == before
    args = ["exp2", "--stimuli", str(stimuli / "similarity.npz"), "--weights", "random"]
    assert cli.main([*args, "--out", str(tmp_path / "new")]) == 2
    assert not (tmp_path / "new").exists()


@pytest.mark.slow  # a pipeline or stacked-model run: outside the fast loop
def test_a_set_whose_every_fit_is_nan_still_gets_its_tables_and_figures(tmp_path, capsys):
    # All-zero embeddings: every RSM entry undefined. The run used to write
    # every CSV and then fail drawing Figure 3 ("All-NaN slice encountered").
    write_stimulus_sets(tmp_path / "st", n_items=6, n_nodes=40)
    emb = dict(np.load(tmp_path / "st" / "embeddings.npz"))
    emb["discs"] = np.zeros_like(emb["discs"])
    np.savez(tmp_path / "zero.npz", **emb)
    args = ["exp2", "--stimuli", str(tmp_path / "st"), "--embeddings", str(tmp_path / "zero.npz")]
    assert cli.main([*args, "--n-null", "5", "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    stats = {r["set"]: r for r in read_rows(tmp_path / "o" / "stats.csv")}
    assert stats["discs"]["unpruned_fit"] == "nan" and stats["hues"]["unpruned_fit"] != "nan"
    assert (tmp_path / "o" / "figure3.png").stat().st_size > 0
