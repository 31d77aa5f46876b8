"""Peterson et al.'s (2018) real files load as they are (skipped without ../shared)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from bounds import assert_within, fit_bound
from PIL import Image

import poz_jax as pj
from poz_jax.data import load_stimulus_sets
from poz_jax.data.images import load_image

PETERSON = Path(__file__).resolve().parents[2] / "shared" / "data" / "peterson2018"
pytestmark = pytest.mark.skipif(not PETERSON.is_dir(), reason="needs ../shared/data/peterson2018")

SETS = ("animals", "automobiles", "fruits", "furniture", "various", "vegetables")
# SOURCES.md: mean off-diagonal similarity of each set (0-1 scale).
MEAN_OFF_DIAGONAL = {
    "animals": 0.218,
    "automobiles": 0.067,
    "fruits": 0.211,
    "vegetables": 0.190,
    "furniture": 0.165,
    "various": 0.104,
}


def _off_diagonal_mean(m):
    return m[~np.eye(len(m), dtype=bool)].mean()


def test_the_three_image_folders_load_in_their_stated_order_and_ranges():
    sets = load_stimulus_sets(PETERSON)
    assert list(sets) == ["animals", "fruits", "vegetables"]
    names = json.loads((PETERSON / "file_names.json").read_text())
    for name, s in sets.items():
        order = (PETERSON / name / "order.txt").read_text().split()
        assert [p.name for p in s.images] == order == sorted(order) and len(order) == 120
        assert [Path(n).stem for n in names[name]] == [Path(n).stem for n in order]
        m = s.similarity
        top = 10.0 if name == "animals" else 1.0  # the .mat is on a 0-10 scale
        assert m.shape == (120, 120) and np.array_equal(m, m.T)
        assert m.min() >= 0 and m.max() <= top and np.all(np.diag(m) == top)
        assert _off_diagonal_mean(m) / top == pytest.approx(MEAN_OFF_DIAGONAL[name], abs=5e-4)


def test_the_single_file_layout_holds_all_six_sets():
    sets = load_stimulus_sets(PETERSON / "similarity_all_sets.npz")
    assert sorted(sets) == sorted(SETS)
    for name, s in sets.items():
        m = s.similarity
        assert m.shape == (120, 120) and s.images is None
        assert m.min() >= 0 and m.max() <= 1 and np.all(np.diag(m) == 1)
        assert _off_diagonal_mean(m) == pytest.approx(MEAN_OFF_DIAGONAL[name], abs=5e-4)


def test_the_animals_mat_and_npz_are_the_same_judgments_and_give_the_same_fits():
    mat = load_stimulus_sets(PETERSON, ["animals"])["animals"].similarity
    npz = load_stimulus_sets(PETERSON / "similarity_all_sets.npz", ["animals"])[
        "animals"
    ].similarity
    np.testing.assert_array_equal(mat / 10, npz)  # SOURCES.md: equal exactly
    rng = np.random.default_rng(0)
    x = np.maximum(rng.normal(size=(120, 64)), 0)
    r = np.asarray(pj.rsm(x))
    bound = fit_bound(r, npz, np.float64) + fit_bound(r, mat, np.float64)
    assert_within(pj.fit(r, mat), pj.fit(r, npz), bound, "animals fit, 0-10 vs 0-1 scale")


def test_every_image_decodes_and_transparency_meets_white():
    sets = load_stimulus_sets(PETERSON)
    sizes = {"animals": (300, 300), "fruits": (500, 500), "vegetables": (500, 500)}
    with_alpha = 0
    for name, s in sets.items():
        for path in s.images:
            with Image.open(path) as im:
                assert im.size == sizes[name], path
                if im.mode == "RGBA":
                    a = np.asarray(im)[..., 3]
                    if (a < 255).any():
                        with_alpha += 1
                        assert a.min() >= 249  # SOURCES.md: nearly opaque even there
            img = load_image(path, resize=32, crop=32)
            assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    assert with_alpha == 23  # SOURCES.md: 23 animals images have transparent pixels


def test_the_animals_rater_batches_load_and_give_the_stated_reliability():
    from poz_jax.core.reliability import split_half
    from poz_jax.study.runtime import float64

    sets = load_stimulus_sets(PETERSON)
    animals = sets["animals"]
    assert animals.batches is not None and animals.batches.shape == (2, 120, 120)
    assert sets["fruits"].batches is None and sets["vegetables"].batches is None
    np.testing.assert_array_equal(animals.batches.mean(0), animals.similarity)
    with float64():
        got = split_half(*animals.batches)
    # SOURCES.md: split-half Pearson r .913 over the 7,140 pairs (Spearman-Brown .955).
    assert round(float(got.r), 3) == 0.913
    assert round(float(got.reliability), 3) == 0.955
