"""``poz-jax peterson`` on generated stimulus sets and random LeNet5s.

Every number is checked against an independent float64 reference: the
networks' layers by :func:`layer_outputs` (itself checked against NumPy in
test_model.py), PoZ, keep order, RSMs and fits by the SciPy reference of
conftest.py, the ceiling by the Spearman-Brown formula, the pixel floor by
the same reference on the images' pixels.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
import scipy.stats
from bounds import assert_within, sweep_bound
from conftest import N_NULL, lenet_params, read_rows, ref_fit, ref_rsm_fast

from poz_jax.cli import main
from poz_jax.data.images import load_images
from poz_jax.data.synthetic import write_stimulus_sets
from poz_jax.io import files
from poz_jax.models.lenet import layer_outputs
from poz_jax.pipelines import peterson

N_NET = 3
# Items per set: 40, as in test_exp3.py's image sets, so the comparison's 5
# folds split them alike (32 + 8) and both files' compare programs are the
# same (compiled once in the run's shared cache); 24 split two ways (19 + 5
# and 20 + 4) and compiled each.
N_ITEMS = 40


def _nanmean0(a):
    # The mean of the defined values per column, NaN where none is (1 and 2 nodes kept).
    ok = ~np.isnan(a)
    return np.where(ok.any(0), np.where(ok, a, 0).sum(0) / np.maximum(ok.sum(0), 1), np.nan)


@pytest.fixture(scope="module")
def study_inputs(tmp_path_factory):
    """Two generated sets (one with two rater batches in its .mat) and 3 random LeNet5s."""
    root = tmp_path_factory.mktemp("peterson")
    write_stimulus_sets(root / "stimuli", names=("discs", "hues", "rated"), n_items=N_ITEMS)
    rng = np.random.default_rng(4)
    sim = np.asarray(scipy.io.loadmat(root / "stimuli" / "rated" / "similarity.mat")["simMatrix"])
    noise = rng.normal(scale=0.05, size=sim.shape)
    first, second = sim + (noise + noise.T), sim - (noise + noise.T)
    scipy.io.savemat(
        root / "stimuli" / "rated" / "similarity.mat",
        {"simMatrix": (first + second) / 2, "simMatrixFirstBatch": first,
         "simMatrixSecondBatch": second},
    )  # fmt: skip
    (root / "stimuli" / "hues").rename(root / "hues_elsewhere")  # two sets keep the test short
    params = lenet_params(N_NET, 7)
    files.save_tree(root / "networks.npz", params, {"epoch": 0})
    return root, params, (first, second)


@pytest.mark.slow
def test_the_study_matches_references_and_resumes(study_inputs, monkeypatch):
    root, params, batches = study_inputs
    out = root / "out"
    cfg = peterson.PetersonConfig(n_null=N_NULL, compare_networks=1, pixel_sizes=(32, 48))
    res = peterson.run(cfg, out, root / "stimuli", root / "networks.npz", progress=False)
    for name in ("summary.csv", "stats.csv", "ceiling.csv", "compare.csv", "config.json",
                 "analysis.npz"):  # fmt: skip
        assert (out / name).is_file(), name
    for layer in ("fc1", "fc2"):
        for fig in ("figure2", "figure3"):
            assert (out / f"{fig}_{layer}.png").is_file() and (out / f"{fig}_{layer}.pdf").is_file()
    summary, stats = read_rows(out / "summary.csv"), read_rows(out / "stats.csv")
    ceiling = read_rows(out / "ceiling.csv")
    assert [(r["set"], r["layer"]) for r in res.rows] == [
        ("discs", "fc2"), ("discs", "fc1"), ("rated", "fc2"), ("rated", "fc1"),
    ]  # fmt: skip

    from poz_jax.data import load_stimulus_sets

    sets = load_stimulus_sets(root / "stimuli")
    for name, s in sets.items():
        images = load_images(s.images, 32, 32)
        emb = layer_outputs(params, images, ("fc1", "fc2"))
        human = s.similarity
        for layer, acts in emb.items():
            d = acts.shape[-1]
            counts = np.arange(d, 0, -1)
            fits, shares = [], []
            for n in range(N_NET):
                x = acts[n].astype(np.float64)
                node_poz = np.mean(x == 0, axis=0)
                order = np.argsort(node_poz, kind="stable")  # lowest PoZ first, ties by index
                want = np.array([ref_fit(ref_rsm_fast(x[:, order[:k]]), human) for k in counts])
                row = next(
                    r for r in stats
                    if (r["set"], r["layer"], r["network"]) == (name, layer, str(n))
                )  # fmt: skip
                bound = sweep_bound(x, human, counts[:1], order, np.float64)
                assert_within(float(row["unpruned_fit"]), want[0], bound[0], f"{name} {layer} {n}")
                assert float(row["share_poz_above_80"]) == pytest.approx(np.mean(node_poz > 0.8))
                fits.append(want)
                shares.append(np.mean(node_poz > 0.8))
            mean = _nanmean0(np.array(fits))
            rows = [r for r in summary if (r["set"], r["layer"]) == (name, layer)]
            assert [int(r["keep_count"]) for r in rows] == list(counts)
            got = np.array([float(r["fit_mean"]) for r in rows])
            # float64 end to end from the same float32 activations: rounding only.
            np.testing.assert_allclose(got, mean, rtol=1e-9, atol=1e-12)
            curves = files.load_arrays(out / "analysis.npz")[0]
            assert_within(
                curves[f"fit_{name}_{layer}"], np.array(fits), 1e-9 * np.abs(np.array(fits)),
                f"{name} {layer} curves",
            )  # fmt: skip
            null = np.load(out / f"null_{name}_{layer}.npz")["null_fits"]
            assert null.shape == (N_NET, N_NULL, d)
            pooled_null = _nanmean0(null)
            np.testing.assert_allclose(
                [float(r["null_mean"]) for r in rows], _nanmean0(pooled_null), rtol=1e-9
            )
            pooled = next(
                r for r in stats
                if (r["set"], r["layer"], r["network"]) == (name, layer, "pooled")
            )  # fmt: skip
            assert float(pooled["share_poz_above_80"]) == pytest.approx(np.mean(shares))
        # The floor: the images' own pixels as a network of that input size sees them
        # (32: the LeNets' input, the whole image; others: VGG-16's resize and crop).
        for size in (32, 48):
            resize = size if size == 32 else round(size * 256 / 224)
            px = load_images(s.images, resize, size).reshape(len(s.images), -1)
            floor = next(
                r for r in ceiling if (r["set"], r["measure"]) == (name, f"pixels {size}x{size}")
            )
            want = ref_fit(ref_rsm_fast(px.astype(np.float64)), human)
            assert float(floor["fit"]) == pytest.approx(want, rel=1e-9)

    # The ceiling: Spearman-Brown of the batches' split-half r; none without batches.
    iu = np.triu_indices(N_ITEMS, 1)
    r = scipy.stats.pearsonr(batches[0][iu], batches[1][iu])[0]
    rated = [row for row in ceiling if row["set"] == "rated"]
    assert len(rated) == 6  # two pixel sizes, two layers x (unpruned, best)
    for row in rated:
        assert float(row["noise_ceiling"]) == pytest.approx(2 * r / (1 + r), rel=1e-12)
    for row in rated:
        assert float(row["fraction_of_ceiling"]) == pytest.approx(
            float(row["fit"]) / (2 * r / (1 + r))
        )
    assert all(row["noise_ceiling"] == "nan" for row in ceiling if row["set"] == "discs")
    compared = read_rows(out / "compare.csv")
    assert {(row["network"], row["set"], row["layer"]) for row in compared} == {
        ("0", "discs", "fc2"), ("0", "rated", "fc2"), ("mean", "discs", "fc2"),
        ("mean", "rated", "fc2"),
    }  # fmt: skip

    # A second run recomputes nothing and writes the same tables.
    before = {p.name: p.read_bytes() for p in out.glob("*.csv")}

    def refuse(*args, **kwargs):
        raise AssertionError("a finished product was recomputed")

    monkeypatch.setattr("poz_jax.analysis.networks.null_fits", refuse)
    monkeypatch.setattr("poz_jax.analysis.comparison.compare_methods", refuse)
    monkeypatch.setattr(peterson, "layer_outputs", refuse)
    peterson.run(cfg, out, root / "stimuli", root / "networks.npz", progress=False)
    assert {p.name: p.read_bytes() for p in out.glob("*.csv")} == before


def test_refused_runs_say_why_and_write_nothing(study_inputs, tmp_path, capsys):
    root, _, _ = study_inputs
    out = tmp_path / "out"
    base = ["peterson", "--stimuli", str(root / "stimuli"), "--networks"]
    cases = [
        (base + [str(root / "networks.npz"), "--layers", "fc7"], "--layers"),
        (base + [str(root / "networks.npz"), "--compare-layers", "fc1", "--layers", "fc2"],
         "compare_layers"),
        (base + [str(root / "absent.npz")], "does not exist"),
        (base + [str(root / "stimuli" / "similarity.npz")], "does not hold stacked LeNet5"),
        (["peterson", "--stimuli", str(root / "stimuli" / "similarity.npz"), "--networks",
          str(root / "networks.npz")], "have no images"),
        (base + [str(root / "networks.npz"), "--pixel-sizes", "32,big"], "whole numbers"),
    ]  # fmt: skip
    for argv, message in cases:
        assert main([*argv, "--out", str(out), "--no-progress"]) == 2
        assert message in capsys.readouterr().err, message
        assert not out.exists()
    with pytest.raises(SystemExit) as exit_:
        main(["peterson", "--help"])
    assert exit_.value.code == 0
    assert "--n-null" in capsys.readouterr().out


@pytest.mark.slow  # a pipeline or stacked-model run: outside the fast loop
def test_reproduce_re_derives_a_peterson_folder_and_names_a_changed_cell(study_inputs, tmp_path):
    from poz_jax.study.reproduce import reproduce

    root, _, _ = study_inputs
    out = tmp_path / "committed"
    cfg = peterson.PetersonConfig(layers=("fc2",), n_null=5, compare_networks=0)
    peterson.run(cfg, out, root / "stimuli", root / "networks.npz", progress=False)
    report = reproduce(out)
    assert report.ok and report.study == "peterson"
    assert report.tables == ("ceiling.csv", "stats.csv", "summary.csv")
    rows = read_rows(out / "ceiling.csv")
    rows[0]["fit"] = "0.5"
    files.write_csv(out / "ceiling.csv", rows)
    report = reproduce(out)
    assert not report.ok and [d.table for d in report.differences] == ["ceiling.csv"]
