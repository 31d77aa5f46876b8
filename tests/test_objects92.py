"""``poz-jax objects92`` on a generated 92-image folder and random LeNet5s, and the real
folder's noise ceilings against rsatoolbox.

Numbers against independent float64 references: layer outputs by
:func:`layer_outputs`, RSMs and Pearson r by NumPy/SciPy, the ceilings and
the pixels' RDMs by rsatoolbox where it is installed.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest
import scipy.stats
from conftest import lenet_params, read_rows, ref_rsm_fast

from poz_jax.cli import main
from poz_jax.core.nulls import null_fits, participant_null
from poz_jax.data.errors import DataError
from poz_jax.data.images import resize_images
from poz_jax.data.objects92 import load_objects92
from poz_jax.data.synthetic import write_objects92
from poz_jax.io import files
from poz_jax.models.lenet import layer_outputs

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "kriegeskorte92"
COMMITTED = Path(__file__).resolve().parents[1] / "experiments" / "results" / "objects92"
N_NET = 3
IU = np.triu_indices(92, 1)


def _r(a, b) -> float:
    return float(scipy.stats.pearsonr(a[IU], b[IU])[0])


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("objects92")
    write_objects92(root / "data", n_judges=4, n_brain=2)
    params = lenet_params(N_NET, 3)
    files.save_tree(root / "networks.npz", params, {"epoch": 0})
    args = ["objects92", "--data", str(root / "data"), "--networks", str(root / "networks.npz"),
            "--layers", "fc2", "--n-null", "7", "--folds", "3", "--pixel-sizes", "32",
            "--out", str(root / "out"), "--no-progress"]  # fmt: skip
    assert main(args) == 0
    return root, params


@pytest.mark.slow
def test_every_participant_number_against_a_float64_reference(finished):
    root, params = finished
    d = load_objects92(root / "data")
    people = np.concatenate([t.matrices for t in d.targets.values()])
    rows = read_rows(root / "out" / "stats.csv")
    for scale in (32, 43):
        acts = layer_outputs(params, resize_images(d.images, scale, 32), ("fc2",))["fc2"]
        rsms = [ref_rsm_fast(np.asarray(a, np.float64)) for a in acts]
        # Unpruned: the networks' mean r, negated because the targets are dissimilarities.
        want = [-np.mean([_r(m, p) for m in rsms]) for p in people]
        got = [float(r["unpruned_r"]) for r in rows if int(r["scale"]) == scale]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    group = read_rows(root / "out" / "group.csv")
    px = resize_images(d.images, 32, 32).reshape(92, -1).astype(np.float64)
    per = [-_r(ref_rsm_fast(px), p) for p in d.targets["judgments"].matrices]
    row = next(g for g in group if g["target"] == "judgments" and g["model"] == "pixels 32x32")
    assert float(row["mean"]) == pytest.approx(np.mean(per), abs=1e-10)
    low, high = scipy.stats.t.interval(0.95, 3, loc=np.mean(per), scale=scipy.stats.sem(per))
    assert float(row["interval_low"]) == pytest.approx(low, abs=1e-10)
    assert float(row["interval_high"]) == pytest.approx(high, abs=1e-10)
    assert float(row["p"]) == pytest.approx(scipy.stats.ttest_1samp(per, 0).pvalue, rel=1e-8)
    gains = [g for g in group if g["quantity"] == "gain in r"]
    assert len(gains) == 4 and all(np.isfinite(float(g["mean"])) for g in gains)


@pytest.mark.slow
def test_ceilings_and_rdms_load_in_rsatoolbox(finished):
    rsatoolbox = pytest.importorskip("rsatoolbox")
    from rsatoolbox.inference import boot_noise_ceiling

    root, _ = finished
    d = load_objects92(root / "data")
    for row in read_rows(root / "out" / "ceiling.csv"):
        mats = d.targets[row["target"]].matrices
        rdms = rsatoolbox.rdm.RDMs(np.stack([m[IU] for m in mats]))
        lo, hi = boot_noise_ceiling(rdms, method="corr", rdm_descriptor="index")
        assert float(row["lower_r"]) == pytest.approx(lo, abs=1e-10)
        assert float(row["upper_r"]) == pytest.approx(hi, abs=1e-10)
    saved = rsatoolbox.rdm.load_rdm(str(root / "out" / "rdms.hdf5"))
    pixels = saved.subset("model", "pixels")
    judged = rsatoolbox.rdm.RDMs(np.stack([m[IU] for m in d.targets["judgments"].matrices]))
    r = rsatoolbox.rdm.compare(pixels, judged, method="corr")[0]
    row = next(
        g for g in read_rows(root / "out" / "group.csv")
        if g["target"] == "judgments" and g["model"] == "pixels 32x32"
    )  # fmt: skip
    # An RDM against RDMs: r has the sign the group table gives (agreement is positive).
    assert float(row["mean"]) == pytest.approx(float(np.mean(r)), abs=1e-10)


@pytest.mark.slow
def test_reproduce_re_derives_the_folder(finished):
    root, _ = finished
    assert (
        main(["reproduce", str(root / "out"), "--data", str(root / "data"), "--no-progress"]) == 0
    )


def test_participant_null_squared_is_null_fits_for_one_participant(rng):
    x = np.maximum(rng.normal(size=(9, 12)), 0)
    target = ref_rsm_fast(rng.normal(size=(9, 4)))
    counts = np.arange(12, 0, -1)
    with jax.enable_x64(True):
        r = participant_null(x, target[None], counts, 30, seed=5)
        want = null_fits(x, target, counts, 30, seed=5)
    assert r.shape == (30, 12, 1)
    np.testing.assert_allclose(r[..., 0] ** 2, want, rtol=0, atol=1e-12)


def test_a_missing_or_wrong_folder_is_named(tmp_path):
    with pytest.raises(DataError, match="is not a folder"):
        load_objects92(tmp_path / "none")
    write_objects92(tmp_path / "d", n_judges=2, n_brain=1)
    (tmp_path / "d" / "92_brainRDMs.mat").unlink()
    with pytest.raises(DataError, match="has no 92_brainRDMs.mat"):
        load_objects92(tmp_path / "d")


@pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/data/kriegeskorte92")
def test_real_ceilings_equal_rsatoolbox_and_the_committed_table():
    rsatoolbox = pytest.importorskip("rsatoolbox")
    from rsatoolbox.inference import boot_noise_ceiling

    from poz_jax.core.reliability import noise_ceiling

    d = load_objects92(REAL)
    assert d.images.shape == (92, 175, 175, 3)
    committed = (
        {r["target"]: r for r in read_rows(COMMITTED / "ceiling.csv")}
        if (COMMITTED / "ceiling.csv").exists()
        else {}
    )
    for name, t in d.targets.items():
        rdms = rsatoolbox.rdm.RDMs(np.stack([m[IU] for m in t.matrices]))
        lo, hi = boot_noise_ceiling(rdms, method="corr", rdm_descriptor="index")
        with jax.enable_x64(True):
            got = noise_ceiling(t.matrices)
        assert abs(float(got.lower) - lo) < 1e-10 and abs(float(got.upper) - hi) < 1e-10
        if name in committed:
            assert float(committed[name]["lower_r"]) == pytest.approx(lo, abs=1e-10)
            assert float(committed[name]["upper_r"]) == pytest.approx(hi, abs=1e-10)
