"""The split-half noise ceiling against a float64 SciPy reference and a simulation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from poz_jax.core.reliability import split_half
from poz_jax.study.runtime import float64


def _symmetric(rng, n):
    a = rng.normal(size=(n, n))
    return (a + a.T) / 2


def _triu(m):
    return m[np.triu_indices(len(m), 1)]


def test_split_half_matches_scipy_and_the_spearman_brown_formula():
    rng = np.random.default_rng(11)
    t = _symmetric(rng, 40)
    a, b = t + 0.7 * _symmetric(rng, 40), 3.0 * (t + 0.7 * _symmetric(rng, 40)) + 5.0
    r = scipy.stats.pearsonr(_triu(a), _triu(b))[0]
    with float64():
        got = split_half(a, b)
    # float64 sums of 780 terms: far below 1e-12 relative error.
    assert float(got.r) == pytest.approx(r, rel=1e-12)
    assert float(got.reliability) == pytest.approx(2 * r / (1 + r), rel=1e-12)
    assert float(got.ceiling) == pytest.approx(2 * r / (1 + r), rel=1e-12)
    assert float(got.batch_fit) == pytest.approx(r * r, rel=1e-12)


def test_the_ceiling_is_the_expected_fit_of_the_true_matrix_to_the_batches_mean():
    # Two batches = one true matrix + independent noise: the squared
    # correlation of the truth with their mean is what the ceiling predicts.
    # Each estimate comes from 7,140 pairs, so its sampling sd is about 0.005;
    # the mean of 20 draws is within 0.01 with room to spare.
    rng = np.random.default_rng(5)
    gaps = []
    for _ in range(20):
        t = _symmetric(rng, 120)
        a, b = t + _symmetric(rng, 120), t + _symmetric(rng, 120)
        truth = scipy.stats.pearsonr(_triu(t), _triu((a + b) / 2))[0] ** 2
        with float64():
            gaps.append(float(split_half(a, b).ceiling) - truth)
    assert abs(np.mean(gaps)) < 0.01


def test_unrelated_batches_have_a_ceiling_of_zero():
    rng = np.random.default_rng(2)
    a, b = _symmetric(rng, 30), _symmetric(rng, 30)
    b = b - 3 * a  # negatively related
    with float64():
        got = split_half(a, b)
    assert float(got.r) < 0 and float(got.ceiling) == 0.0


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        (np.ones((4, 5)), np.ones((4, 5)), "must be square"),
        (np.arange(16.0).reshape(4, 4), np.eye(4), "symmetric"),
        (np.eye(4), np.eye(5), "items"),
        (np.full((4, 4), np.nan), np.eye(4), "NaN"),
        (np.ones((2, 3, 3)), np.ones((2, 3, 3)), "one \\(n, n\\) matrix"),
    ],
)
def test_bad_batches_are_refused_with_a_clear_message(a, b, message):
    with pytest.raises(ValueError, match=message):
        split_half(a, b)
