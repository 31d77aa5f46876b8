"""Participants as the random effect: the signed fit, the noise ceiling, the t across people.

Every number against rsatoolbox (installed with the ``bench`` extra) or
SciPy in float64; the test across participants shown calibrated under a
true null.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
import scipy.stats
from conftest import ref_rsm

import poz_jax as pj
from poz_jax.analysis import stats


def _participants(rng, n_subj=6, n=10, shared=1.0):
    """Dissimilarity matrices: a shared structure plus each participant's own noise."""
    base = rng.normal(size=(n, 4))
    out = []
    for _ in range(n_subj):
        x = shared * base + rng.normal(size=base.shape)
        d = 1 - ref_rsm(x)  # a dissimilarity, zero diagonal
        out.append((d + d.T) / 2)
    return np.stack(out)


def test_noise_ceiling_equals_rsatoolbox(rng):
    rsatoolbox = pytest.importorskip("rsatoolbox")
    from rsatoolbox.inference import boot_noise_ceiling
    from rsatoolbox.rdm import RDMs, compare
    from rsatoolbox.util.inference_util import pool_rdm

    mats = _participants(rng, n_subj=7, n=12)
    rdms = RDMs(np.stack([m[np.triu_indices(12, 1)] for m in mats]), dissimilarity_measure="x")
    lo, hi = boot_noise_ceiling(rdms, method="corr", rdm_descriptor="index")
    with jax.enable_x64(True):
        got = pj.noise_ceiling(mats)
        assert abs(float(got.lower) - lo) < 1e-10 and abs(float(got.upper) - hi) < 1e-10
        # In the units of the fit: each participant's r ** 2, by rsatoolbox too.
        pooled = pool_rdm(rdms, method="corr")
        upper_r2 = np.mean([compare(pooled, rdms[i], "corr")[0, 0] ** 2 for i in range(7)])
        assert abs(float(got.upper_r2) - upper_r2) < 1e-10
        others = [pool_rdm(rdms[[j for j in range(7) if j != i]], method="corr") for i in range(7)]
        lower_r2 = np.mean([compare(others[i], rdms[i], "corr")[0, 0] ** 2 for i in range(7)])
        assert abs(float(got.lower_r2) - lower_r2) < 1e-10
    assert rsatoolbox is not None


def test_fit_r_is_the_signed_fit_oriented_by_the_kind_of_matrix(rng):
    mats = _participants(rng, n_subj=3, n=9)
    model = ref_rsm(rng.normal(size=(9, 5)))  # a similarity
    iu = np.triu_indices(9, 1)
    with jax.enable_x64(True):
        got = np.asarray(pj.fit_r(model, mats, human_kind="dissimilarity"))
        for s in range(3):
            r = scipy.stats.pearsonr(model[iu], mats[s][iu])[0]
            assert abs(got[s] + r) < 1e-12  # an RDM's r is negated
        same = np.asarray(pj.fit_r(model, -mats, human_kind="similarity"))
        np.testing.assert_allclose(same, got, rtol=0, atol=1e-12)
        np.testing.assert_allclose(got**2, np.asarray(pj.fit(model, mats)), rtol=0, atol=1e-12)
        # A model equal to people's similarity agrees with them: r = +1 either way.
        assert float(pj.fit_r(-mats[0], mats[0], "dissimilarity")) == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match="human_kind must be one of"):
        pj.fit_r(model, mats, human_kind="rdm")


@pytest.mark.slow
def test_across_participants_matches_scipy_and_is_calibrated_under_a_true_null():
    rng = np.random.default_rng(11)
    v = rng.normal(0.1, 0.2, size=16)
    got = stats.across(v)
    test = scipy.stats.ttest_1samp(v, 0.0)
    assert got["t"] == pytest.approx(test.statistic, rel=1e-12)
    assert got["p"] == pytest.approx(test.pvalue, rel=1e-10)
    lo, hi = scipy.stats.t.interval(0.95, 15, loc=v.mean(), scale=scipy.stats.sem(v))
    assert got["interval_low"] == pytest.approx(lo, rel=1e-12)
    assert got["interval_high"] == pytest.approx(hi, rel=1e-12)
    # The whole path under a true null (no participant's matrix has anything to
    # do with the model): each participant's signed fit, the t across them.
    # 400 draws of 16 participants: the share of p <= 0.05 lies within 3
    # binomial sds of 0.05 (0.017 .. 0.083).
    n_items, n_subj, draws = 10, 16, 400
    model = ref_rsm(rng.normal(size=(n_items, 5)))
    # Every draw's participants at once: (draws * participants) independent RDMs.
    x = rng.normal(size=(draws * n_subj, n_items, 4))
    xc = x - x.mean(-1, keepdims=True)
    xc /= np.linalg.norm(xc, axis=-1, keepdims=True)
    people = 1 - np.einsum("sif,sjf->sij", xc, xc) ** 2  # 1 - rsm, each participant's own
    with jax.enable_x64(True):
        r = np.asarray(pj.participant_fits(model, people, "dissimilarity")).reshape(draws, n_subj)
    hits = sum(stats.across(row)["p"] <= 0.05 for row in r)
    share = hits / draws
    sd = np.sqrt(0.05 * 0.95 / draws)
    assert abs(share - 0.05) <= 3 * sd, share  # sd = 0.011


def test_noise_ceiling_refuses_one_participant_or_bad_matrices(rng):
    mats = _participants(rng, n_subj=3, n=6)
    with pytest.raises(ValueError, match="at least 2 participants"):
        pj.noise_ceiling(mats[:1])
    bad = mats.copy()
    bad[1, 0, 3] += 1.0
    with pytest.raises(ValueError, match="symmetric"):
        pj.noise_ceiling(bad)
    bad = mats.copy()
    bad[0, 1, 2] = bad[0, 2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        pj.noise_ceiling(bad)
